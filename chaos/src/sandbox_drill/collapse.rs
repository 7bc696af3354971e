//! `collapse_tlogs` sent to the sandbox's nodes as an operator would, once or as a series while
//! the drill goes on, and what each node did, told in one line ([`CollapseTally::note`]): the
//! TLog files it removed, those it kept because a catch-up was reading them, where its head
//! ended, or why it could not collapse.

use super::backend::StepError;
use crate::sandbox::{self, SandboxState};
use arakoon_node::client::fetch::FetchError;
use arakoon_node::client::ClientConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a collapse with `for:` asks each node again.
pub(super) const COLLAPSE_EVERY_MS: u64 = 100;

/// What one node's `collapse_tlogs` came to.
pub(super) enum Collapsed {
    /// Not asked: "not running" or "paused" (it would not answer before the request timed out).
    NotAsked(&'static str),
    /// The messages of its steps, and its step count or why it failed.
    Answered(Vec<String>, Result<usize, FetchError>),
}

/// `collapse_tlogs` sent to each of `nodes` at once, as an operator would. A node that cannot
/// collapse does not fail the step: the drill is about what the others do meanwhile.
pub(super) async fn collapse_once(
    dir: &Path,
    cfg: &ClientConfig,
    nodes: &[String],
    keep: u32,
) -> Result<Vec<Collapsed>, StepError> {
    let s = SandboxState::load(dir)
        .map_err(|source| StepError::State { dir: dir.to_path_buf(), source })?;
    let mut asked = Vec::new();
    for name in nodes {
        let node = s
            .nodes
            .iter()
            .find(|n| &n.name == name)
            .ok_or_else(|| StepError::NoNodeNamed(name.clone()))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.client_port));
        let why_not = match (node.pid, node.paused) {
            (None, _) => Some("not running"),
            (Some(_), true) => Some("paused"),
            (Some(_), false) => None,
        };
        asked.push(async move {
            if let Some(why) = why_not {
                return Collapsed::NotAsked(why);
            }
            // Arakoon's steps carry an int64 only: the files removed are seen in the node's
            // TLog directory, before and after.
            let tlogs = sandbox::node_tlog_dir(dir, name);
            let list = || -> std::collections::BTreeSet<String> {
                std::fs::read_dir(&tlogs)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|f| f.ends_with(".tlog"))
                    .collect()
            };
            let before = list();
            let result = arakoon_node::client::head::request_collapse(
                &arakoon_node::server::env::TokioNet,
                addr,
                &cfg.cluster_id,
                i32::try_from(keep).unwrap_or(i32::MAX),
                false,
                &mut |_, _| {},
            )
            .await;
            let after = list();
            let steps = before.difference(&after).map(|f| format!("removed {f}")).collect();
            Collapsed::Answered(steps, result)
        });
    }
    Ok(join_all(asked).await)
}

/// `collapse_tlogs` to each of `nodes` every [`COLLAPSE_EVERY_MS`] for `duration_ms`, on a
/// thread of its own (the step callback of a collapse is not `Send`), while the drill goes on;
/// what each node did is logged when the series ends.
pub(super) fn collapse_series(
    dir: PathBuf,
    cfg: ClientConfig,
    nodes: Vec<String>,
    keep: u32,
    duration_ms: u64,
) -> std::thread::JoinHandle<Result<Vec<CollapseTally>, StepError>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StepError::Runtime)?;
        runtime.block_on(async {
            let end = Instant::now() + Duration::from_millis(duration_ms);
            let mut tallies: Vec<CollapseTally> =
                nodes.iter().map(|_| CollapseTally::default()).collect();
            while Instant::now() < end {
                for (t, c) in tallies.iter_mut().zip(collapse_once(&dir, &cfg, &nodes, keep).await?)
                {
                    t.add(c);
                }
                tokio::time::sleep(Duration::from_millis(COLLAPSE_EVERY_MS)).await;
            }
            Ok(tallies)
        })
    })
}

/// Every future's output, in order, the futures polled together on this task (the step
/// callback of a collapse is not `Send`, so they cannot be spawned).
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                }
            }
        }
        if done.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().map(|o| o.expect("every future ended")).collect()
}

/// What one node's collapses came to, over one or a series of them.
#[derive(Default)]
pub(super) struct CollapseTally {
    asked: u32,
    /// Times it was not asked, and the last reason.
    not_asked: (u32, &'static str),
    failed: u32,
    first_error: Option<FetchError>,
    removed: Vec<String>,
    /// Files kept because a catch-up was reading them (or a file before them).
    kept: std::collections::BTreeSet<String>,
    /// "i=1234": where the head ended after the last fold.
    head: Option<String>,
}

impl CollapseTally {
    pub(super) fn add(&mut self, c: Collapsed) {
        let (steps, result) = match c {
            Collapsed::NotAsked(why) => {
                self.not_asked = (self.not_asked.0 + 1, why);
                return;
            }
            Collapsed::Answered(steps, result) => (steps, result),
        };
        self.asked += 1;
        if let Err(e) = result {
            self.failed += 1;
            self.first_error.get_or_insert(e);
        }
        for s in steps {
            if let Some(name) = s.strip_prefix("removed ") {
                self.removed.push(name.to_string());
            } else if let Some(kept) = s.strip_prefix("kept ") {
                // "kept 011.tlog: a catch-up is reading it or a file before it"
                self.kept.insert(kept.split(':').next().unwrap_or(kept).to_string());
            } else if let Some((_, i)) = s.rsplit_once("up to ") {
                // "folded N slots into the head, which covers every slot up to i=H"
                self.head = Some(i.to_string());
            }
        }
    }

    /// One line: `n0: removed 12 TLog file(s) (000.tlog..011.tlog), head up to i=1234`, with
    /// the collapses asked for when more than one, the files kept for a catch-up, why it could
    /// not collapse.
    pub(super) fn note(&self, name: &str, keep: u32) -> String {
        if self.asked == 0 {
            return format!("{name}: {}, not collapsed", self.not_asked.1);
        }
        let mut parts = Vec::new();
        if self.asked > 1 {
            parts.push(format!("{} collapses", self.asked));
        }
        if self.not_asked.0 > 0 {
            parts.push(format!("not asked {} time(s) ({})", self.not_asked.0, self.not_asked.1));
        }
        if let Some(e) = &self.first_error {
            parts.push(match self.asked {
                1 => format!("could not collapse: {e}"),
                _ => format!("{} could not (the first: {e})", self.failed),
            });
        }
        match &self.removed[..] {
            [] => {}
            [only] => parts.push(format!("removed 1 TLog file(s) ({only})")),
            [first, .., last] => {
                parts.push(format!("removed {} TLog file(s) ({first}..{last})", self.removed.len()))
            }
        }
        match (self.kept.first(), self.kept.last()) {
            (Some(first), Some(last)) if first != last => parts
                .push(format!("kept {} a catch-up was reading ({first}..{last})", self.kept.len())),
            (Some(only), _) => parts.push(format!("kept 1 a catch-up was reading ({only})")),
            _ => {}
        }
        if let Some(h) = &self.head {
            parts.push(format!("head up to {h}"));
        }
        if parts.is_empty() {
            parts.push(format!("nothing to collapse (at most {keep} sealed TLog files)"));
        }
        format!("{name}: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::{CollapseTally, Collapsed, FetchError};

    /// A node that hung up on the request (one of the ways a collapse fails).
    fn hung_up() -> FetchError {
        FetchError::ClosedEarly { addr: "127.0.0.1:4000".parse().unwrap() }
    }

    fn tally(answers: Vec<Collapsed>) -> CollapseTally {
        let mut t = CollapseTally::default();
        for a in answers {
            t.add(a);
        }
        t
    }

    fn answered(steps: &[&str], result: Result<usize, FetchError>) -> Collapsed {
        Collapsed::Answered(steps.iter().map(|s| s.to_string()).collect(), result)
    }

    const FOLDED: &str = "folded 300 slots into the head, which covers every slot up to i=299";

    #[test]
    fn a_collapse_note_names_the_files_removed_kept_and_the_head_or_why_not() {
        let all =
            answered(&[FOLDED, "removed 000.tlog", "removed 001.tlog", "removed 002.tlog"], Ok(4));
        assert_eq!(
            tally(vec![all]).note("n0", 1),
            "n0: removed 3 TLog file(s) (000.tlog..002.tlog), head up to i=299"
        );
        let pinned = answered(
            &[
                FOLDED,
                "removed 000.tlog",
                "kept 001.tlog: a catch-up is reading it or a file before it",
            ],
            Ok(3),
        );
        assert_eq!(
            tally(vec![pinned]).note("n1", 1),
            "n1: removed 1 TLog file(s) (000.tlog), kept 1 a catch-up was reading (001.tlog), \
             head up to i=299"
        );
        assert_eq!(
            tally(vec![answered(&[], Ok(0))]).note("n2", 1),
            "n2: nothing to collapse (at most 1 sealed TLog files)"
        );
        let busy = || answered(&[], Err(hung_up()));
        assert_eq!(
            tally(vec![busy()]).note("n2", 1),
            "n2: could not collapse: 127.0.0.1:4000 closed the connection early"
        );
        assert_eq!(
            tally(vec![Collapsed::NotAsked("not running")]).note("n2", 1),
            "n2: not running, not collapsed"
        );
    }

    #[test]
    fn a_series_of_collapses_adds_up_what_each_did() {
        let later = "folded 100 slots into the head, which covers every slot up to i=399";
        let t = tally(vec![
            Collapsed::NotAsked("not running"),
            answered(&[FOLDED, "removed 000.tlog", "removed 001.tlog"], Ok(3)),
            answered(&[], Err(hung_up())),
            answered(&[], Ok(0)),
            answered(
                &[later, "removed 002.tlog", "kept 003.tlog: a catch-up is reading it"],
                Ok(3),
            ),
            answered(&["kept 003.tlog: reading", "kept 004.tlog: reading"], Ok(2)),
        ]);
        assert_eq!(
            t.note("n1", 1),
            "n1: 5 collapses, not asked 1 time(s) (not running), 1 could not (the first: \
             127.0.0.1:4000 closed the connection early), removed 3 TLog file(s) (000.tlog..002.tlog), kept 2 a catch-up was reading \
             (003.tlog..004.tlog), head up to i=399"
        );
    }
}
