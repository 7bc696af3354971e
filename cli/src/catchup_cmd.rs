//! `arakoon-admin catchup`: bring a stopped node level with its cluster, then exit.
//!
//! This wraps the node's own catch-up (`arakoon -catchup-only`): the node's files are validated
//! as at start-up, the most advanced peer that answers streams its committed entries from the
//! node's next slot on, and they are appended to the TLog and applied to the store. `--from`
//! restricts the choice of peer to one node; it does so by handing catch-up a configuration of
//! just the two nodes, which is all catch-up reads from it besides the cluster id and the TLog
//! limits (kept as they are).
//!
//! The node must be stopped: its store is opened first, which fails while a node holds it.

use crate::exit::Exit;
use crate::node_files::{load_config, node_index};
use crate::output::{progress_bar, say, Failure};
use arakoon_node::server::catchup::{Phase, Progress};
use arakoon_node::server::env::TokioNet;
use arakoon_node::server::rebuild::{catch_up_stopped_node_with, store_free, RebuildError};
use arakoon_node::server::startup::store_path;
use arakoon_node::tlog::{self, FsDir};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  arakoon-admin catchup --node n2 -config cluster.ini\n  \
                        arakoon-admin catchup --node n2 -config cluster.ini --from n0\n\n\
                        Exit codes: 0 caught up (or nothing to fetch); 3 bad configuration or \
                        node name; 5 no peer answered, or the peer failed mid-stream; 7 writing \
                        the node's files failed; 40-50 the node's own files are damaged (the \
                        message says how to repair them).")]
pub struct CatchupArgs {
    /// The (stopped) node to bring up to date.
    #[arg(long, value_name = "NAME")]
    node: String,
    /// The cluster's INI file; `-config FILE` works too, as for arakoon.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: PathBuf,
    /// Fetch from this peer only (by default: the most advanced peer that answers).
    #[arg(long, value_name = "PEER")]
    from: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CatchupArgs) -> Result<i32, Failure> {
    let mut config = load_config(&args.config)?;
    let mut me = node_index(&config, &args.config, &args.node)?;
    if config.nodes.len() == 1 {
        return Err(Failure::new(
            Exit::BadInput,
            format!(
                "{} is a 1-node cluster: there is no peer to catch up from",
                args.config.display()
            ),
        ));
    }
    if let Some(from) = &args.from {
        let peer = node_index(&config, &args.config, from)?;
        if peer == me {
            return Err(Failure::new(
                Exit::BadInput,
                format!("--from {from}: a node cannot catch up from itself"),
            ));
        }
        config.nodes = vec![config.nodes[me].clone(), config.nodes[peer].clone()];
        me = 0;
    }
    let node = config.nodes[me].clone();
    refuse_if_running(&store_path(&node), &config.cluster_id, &node.name)?;

    let before = tlog_bytes(&node.tlog_dir);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Declined, format!("cannot start the runtime: {e}")))?;
    let mut shown = Shown::new(args.json);
    let mut on_progress = |p: &Progress| shown.update(p);
    let result =
        runtime.block_on(catch_up_stopped_node_with(&config, me, &TokioNet, &mut on_progress));
    shown.bar.finish_and_clear();
    let report = result.map_err(|e| {
        let code = match &e {
            RebuildError::Start(s) => s.exit_code(),
            RebuildError::NoPeer { .. }
            | RebuildError::Fetch { .. }
            | RebuildError::Head { .. }
            | RebuildError::Short { .. } => Exit::Unreachable.code(),
            RebuildError::Write(_) => Exit::CatchUpWrite.code(),
        };
        Failure::new(code, format!("catch-up of {} failed: {e}", node.name))
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = tlog_bytes(&node.tlog_dir).saturating_sub(before);
    let mb_per_s = bytes as f64 / 1e6 / elapsed.max(1e-9);
    if args.json {
        println!(
            "{}",
            json!({"node": node.name, "report": report, "tlog_bytes_written": bytes,
                   "seconds": elapsed, "mb_per_second": mb_per_s})
        );
    } else {
        println!("{report}");
        println!(
            "{:.1} MB of TLog written in {elapsed:.2} s ({mb_per_s:.1} MB/s)",
            bytes as f64 / 1e6
        );
    }
    Ok(0)
}

/// A running node holds its store's lock; catching up under it would corrupt its files.
fn refuse_if_running(store: &Path, cluster_id: &str, name: &str) -> Result<(), Failure> {
    store_free(store, cluster_id).map_err(|e| {
        Failure::new(
            Exit::Store,
            format!("{e}; is {name} running? stop it first: catch-up works on a stopped node"),
        )
    })
}

/// The bytes of the TLog files in `dir` (what catch-up writes, for the report); 0 if the
/// directory cannot be opened.
fn tlog_bytes(dir: &Path) -> u64 {
    FsDir::open(dir).map_or(0, |d| tlog::files_bytes(&d))
}

/// Catch-up progress as the operator sees it: an indicatif bar on a terminal (slots fetched of
/// how many, slots/s, ETA; a counter of pairs while a collapsed peer's head comes), plain lines
/// every few seconds otherwise (on stderr with `--json`, so that stdout holds the report alone).
struct Shown {
    bar: ProgressBar,
    json: bool,
    phase: Option<Phase>,
    phase_started: Instant,
    line_at: Option<Instant>,
}

/// Plain progress lines at most this often.
const LINE_EVERY_MS: u64 = 2_000;

impl Shown {
    fn new(json: bool) -> Shown {
        let bar = progress_bar(0, "catch-up");
        Shown { bar, json, phase: None, phase_started: Instant::now(), line_at: None }
    }

    fn update(&mut self, p: &Progress) {
        let what = match p.phase {
            Phase::Head => "head pairs",
            Phase::Entries => "slots",
        };
        if self.phase != Some(p.phase) {
            self.phase = Some(p.phase);
            self.phase_started = Instant::now();
            self.line_at = None;
            self.bar.reset();
            let template = match p.phase {
                Phase::Head => "{spinner} fetching the peer's head: {pos} pairs ({per_sec}) {msg}",
                Phase::Entries => "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
            };
            let style = ProgressStyle::with_template(template).expect("a valid template");
            self.bar.set_style(style.progress_chars("=> "));
            self.bar.set_message(match p.phase {
                Phase::Head => String::new(),
                Phase::Entries => "fetching slots".to_string(),
            });
        }
        if let Some(total) = p.total {
            self.bar.set_length(total);
        }
        self.bar.set_position(p.done);
        if p.phase == Phase::Head {
            self.bar.set_message(format!("{:.1} MB", p.bytes as f64 / 1e6));
        }
        if !self.bar.is_hidden() {
            return;
        }
        let now = Instant::now();
        let finished = p.total.is_some_and(|t| p.done >= t);
        let due = self
            .line_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_millis(LINE_EVERY_MS));
        if !due && !finished {
            return;
        }
        self.line_at = Some(now);
        let secs = now.duration_since(self.phase_started).as_secs_f64().max(1e-3);
        let of = p.total.map_or(String::new(), |t| format!(" of {t}"));
        let line = format!(
            "catch-up: {}{of} {what} fetched, {:.1} MB ({:.0} {what}/s)",
            p.done,
            p.bytes as f64 / 1e6,
            p.done as f64 / secs
        );
        if self.json {
            eprintln!("{line}");
        } else {
            say(&self.bar, line);
        }
    }
}
