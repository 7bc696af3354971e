//! The director: a drill's steps as a pure state machine. It never reads a clock or an OS RNG:
//! a tier feeds it the time (ms since the run began) and the answer to its last command, and
//! it says what to do next. The same steps, seed and answers give the same commands on every
//! tier.

use super::{BackendError, ClusterView, Resolved, Resolver};
use crate::drill::{Action, Condition, Step, When};
use crate::faults::Fault;

/// How often a `wait_until` condition is looked at, ms.
pub const POLL_MS: u64 = 50;

/// What a tier hands the director.
#[derive(Debug, Clone)]
pub enum Input {
    /// Time passed (the answer to [`Command::WaitUntil`], or the first call).
    Tick,
    /// The cluster now (the answer to [`Command::Observe`]).
    View(ClusterView),
    /// How the fault of [`Command::Apply`] went: a note for the log, or why it failed.
    Applied(Result<String, BackendError>),
    /// Whether the condition of [`Command::Check`] holds.
    Holds(bool),
}

/// What the director asks a tier to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Nothing before this time (ms since the start); then hand in [`Input::Tick`].
    WaitUntil(u64),
    /// Show the cluster: hand in [`Input::View`].
    Observe,
    /// Apply this fault now; hand in [`Input::Applied`].
    Apply(Resolved),
    /// Look whether `condition` holds; hand in [`Input::Holds`]. `begin` on the first look of a
    /// wait.
    Check { condition: Condition, begin: bool },
    /// Every step is done (see [`Director::finished_ms`]) or one failed ([`Director::broke`]).
    Done,
}

/// A step that failed: the check it broke and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broke {
    /// "wait_until" or "step".
    pub check: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Broke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Between steps: the next one is due at its time.
    Between,
    /// A fault is due; waiting for the view to resolve it (since when, ms).
    Observing {
        at: u64,
    },
    /// A resolved fault was handed out; waiting for how it went.
    Applying {
        at: u64,
        fault: Resolved,
    },
    /// A condition was handed out; waiting for the answer (the wait began at `since`).
    Checking {
        since: u64,
    },
    /// A condition did not hold; looking again at `next`.
    Polling {
        since: u64,
        next: u64,
    },
    /// A plain `wait` ends at `until`.
    Waiting {
        until: u64,
    },
    Done,
}

/// A drill's steps, carried out one after the other.
#[derive(Debug, Clone)]
pub struct Director {
    steps: Vec<Step>,
    resolver: Resolver,
    nodes: usize,
    next: usize,
    phase: Phase,
    /// When the previous step finished, ms.
    previous_done: u64,
    finished: Option<u64>,
    broke: Option<Broke>,
    log: Vec<(u64, String)>,
    unread: usize,
    resolved: Vec<(usize, Resolved)>,
}

impl Director {
    /// The director of `steps` on a cluster of `nodes` nodes; targets drawn from `seed`.
    pub fn new(steps: Vec<Step>, nodes: usize, seed: u64) -> Director {
        Director {
            steps,
            resolver: Resolver::new(seed),
            nodes,
            next: 0,
            phase: Phase::Between,
            previous_done: 0,
            finished: None,
            broke: None,
            log: Vec::new(),
            unread: 0,
            resolved: Vec::new(),
        }
    }

    /// Takes `input` at `now_ms` and says what to do next. An input that does not answer the
    /// last command (a `Tick` while a view is awaited) repeats that command.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Command {
        let phase = std::mem::replace(&mut self.phase, Phase::Between);
        match (phase, input) {
            (Phase::Done, _) => self.done(),
            (Phase::Observing { at }, Input::View(view)) => self.resolve_due(now_ms, at, &view),
            (Phase::Applying { at, fault }, Input::Applied(result)) => match result {
                Ok(note) => {
                    let line = if note.is_empty() {
                        fault.to_string()
                    } else {
                        format!("{fault}: {note}")
                    };
                    self.log_line(at, line);
                    self.resolved.push((self.next, fault));
                    self.step_done(now_ms);
                    self.between(now_ms)
                }
                Err(e) => {
                    let line = self.steps[self.next].line;
                    let detail = format!("step at line {line}: {}: {e}", fault.fault);
                    self.fail("step", detail)
                }
            },
            (Phase::Checking { since }, Input::Holds(holds)) => {
                let Some(Action::WaitUntil { condition, timeout }) =
                    self.steps.get(self.next).map(|s| s.action.clone())
                else {
                    return self.between(now_ms);
                };
                if holds {
                    self.log_line(now_ms, format!("{condition:?} after {}ms", now_ms - since));
                    self.step_done(now_ms);
                    self.between(now_ms)
                } else if now_ms >= since + timeout.0 {
                    let line = self.steps[self.next].line;
                    let detail = format!(
                        "{condition:?} did not hold within {timeout} (step at line {line})"
                    );
                    self.fail("wait_until", detail)
                } else {
                    let next = now_ms + POLL_MS;
                    self.phase = Phase::Polling { since, next };
                    Command::WaitUntil(next)
                }
            }
            (Phase::Polling { since, next }, Input::Tick) if now_ms >= next => {
                self.check(since, false)
            }
            (Phase::Waiting { until }, Input::Tick) if now_ms >= until => {
                self.step_done(until);
                self.between(now_ms)
            }
            (Phase::Between, Input::Tick) => self.between(now_ms),
            // Not the answer awaited: the command again.
            (phase, _) => {
                self.phase = phase;
                self.pending()
            }
        }
    }

    /// The command the current phase waits on.
    fn pending(&mut self) -> Command {
        match &self.phase {
            Phase::Between => Command::WaitUntil(0),
            Phase::Observing { .. } => Command::Observe,
            Phase::Applying { fault, .. } => Command::Apply(fault.clone()),
            Phase::Checking { .. } => {
                let condition = match self.steps.get(self.next).map(|s| &s.action) {
                    Some(Action::WaitUntil { condition, .. }) => *condition,
                    _ => Condition::AllUp,
                };
                Command::Check { condition, begin: false }
            }
            Phase::Polling { next, .. } => Command::WaitUntil(*next),
            Phase::Waiting { until } => Command::WaitUntil(*until),
            Phase::Done => Command::Done,
        }
    }

    /// Between steps: start the next one if it is due.
    fn between(&mut self, now_ms: u64) -> Command {
        let Some(step) = self.steps.get(self.next) else {
            self.finished.get_or_insert(self.previous_done);
            return self.done();
        };
        let due = match step.when {
            When::At(t) => t.0,
            When::After(d) => self.previous_done + d.0,
        };
        if now_ms < due {
            self.phase = Phase::Between;
            return Command::WaitUntil(due);
        }
        match step.action.clone() {
            Action::Fault(fault) if Resolver::needs_view(&fault) => {
                self.phase = Phase::Observing { at: now_ms };
                Command::Observe
            }
            Action::Fault(_) => {
                let view = ClusterView::all_up(self.nodes);
                self.resolve_due(now_ms, now_ms, &view)
            }
            Action::Wait(d) => {
                let until = now_ms + d.0;
                self.phase = Phase::Waiting { until };
                Command::WaitUntil(until)
            }
            Action::WaitUntil { .. } => self.check(now_ms, true),
        }
    }

    fn check(&mut self, since: u64, begin: bool) -> Command {
        let condition = match self.steps.get(self.next).map(|s| &s.action) {
            Some(Action::WaitUntil { condition, .. }) => *condition,
            _ => return self.between(since),
        };
        self.phase = Phase::Checking { since };
        Command::Check { condition, begin }
    }

    /// Resolves the due fault against `view`; a fault that strikes nothing is a note.
    fn resolve_due(&mut self, now_ms: u64, at: u64, view: &ClusterView) -> Command {
        let Some(Action::Fault(fault)) = self.steps.get(self.next).map(|s| s.action.clone()) else {
            return self.between(now_ms);
        };
        match self.resolver.resolve(&fault, view) {
            Some(r) if !r.strikes.is_empty() => {
                self.phase = Phase::Applying { at, fault: r.clone() };
                Command::Apply(r)
            }
            Some(_) => {
                self.log_line(at, format!("{fault}: no node to strike, nothing applied"));
                self.step_done(now_ms);
                self.between(now_ms)
            }
            None => {
                let why = match fault {
                    Fault::DropMaster => "no master, nothing applied",
                    _ => "nothing to strike, nothing applied",
                };
                self.log_line(at, format!("{fault}: {why}"));
                self.step_done(now_ms);
                self.between(now_ms)
            }
        }
    }

    fn step_done(&mut self, at: u64) {
        self.previous_done = at;
        self.next += 1;
    }

    fn fail(&mut self, check: &'static str, detail: String) -> Command {
        self.broke = Some(Broke { check, detail });
        self.done()
    }

    fn done(&mut self) -> Command {
        self.phase = Phase::Done;
        Command::Done
    }

    fn log_line(&mut self, at: u64, line: String) {
        self.log.push((at, line));
    }

    /// When the last step finished (ms), once every step is done; `None` if a step failed.
    pub fn finished_ms(&self) -> Option<u64> {
        self.finished
    }

    /// The step that failed, if one did.
    pub fn broke(&self) -> Option<&Broke> {
        self.broke.as_ref()
    }

    /// Whether the director has nothing more to do.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// What the steps did: ms, line.
    pub fn log(&self) -> &[(u64, String)] {
        &self.log
    }

    /// The lines logged since the last call (for a tier that shows them as they come).
    pub fn new_lines(&mut self) -> &[(u64, String)] {
        let from = self.unread;
        self.unread = self.log.len();
        &self.log[from..]
    }

    /// Every fault applied, in order, with the index of its step.
    pub fn resolved(&self) -> &[(usize, Resolved)] {
        &self.resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::director::Strikes;
    use crate::drill::Millis;
    use crate::faults::Target;

    fn step(when: When, action: Action) -> Step {
        Step { when, action, line: 7 }
    }

    fn at(ms: u64) -> When {
        When::At(Millis(ms))
    }

    fn after(ms: u64) -> When {
        When::After(Millis(ms))
    }

    #[test]
    fn a_script_gives_exactly_these_commands() {
        let steps = vec![
            step(at(1000), Action::Fault(Fault::Kill(Target::Master))),
            step(
                after(0),
                Action::WaitUntil { condition: Condition::MasterElected, timeout: Millis(200) },
            ),
            step(after(500), Action::Wait(Millis(300))),
            step(after(0), Action::Fault(Fault::Heal)),
            step(after(0), Action::Fault(Fault::Restart(Target::Down))),
        ];
        let mut d = Director::new(steps, 3, 0);
        assert_eq!(d.handle(0, Input::Tick), Command::WaitUntil(1000));
        assert_eq!(d.handle(1000, Input::Tick), Command::Observe);
        let view = ClusterView { up: vec![true; 3], paused: vec![false; 3], master: Some(2) };
        let kill =
            Resolved { fault: Fault::Kill(Target::Master), strikes: Strikes::Nodes(vec![2]) };
        assert_eq!(d.handle(1000, Input::View(view)), Command::Apply(kill));
        assert_eq!(
            d.handle(1001, Input::Applied(Ok(String::new()))),
            Command::Check { condition: Condition::MasterElected, begin: true }
        );
        assert_eq!(d.handle(1001, Input::Holds(false)), Command::WaitUntil(1051));
        // An early tick repeats the wait.
        assert_eq!(d.handle(1020, Input::Tick), Command::WaitUntil(1051));
        assert_eq!(
            d.handle(1051, Input::Tick),
            Command::Check { condition: Condition::MasterElected, begin: false }
        );
        assert_eq!(d.handle(1100, Input::Holds(true)), Command::WaitUntil(1600));
        assert_eq!(d.handle(1600, Input::Tick), Command::WaitUntil(1900));
        // The heal needs no view; the restart does.
        assert_eq!(
            d.handle(1900, Input::Tick),
            Command::Apply(Resolved { fault: Fault::Heal, strikes: Strikes::Cluster })
        );
        assert_eq!(d.handle(1900, Input::Applied(Ok(String::new()))), Command::Observe);
        let view =
            ClusterView { up: vec![true, true, false], paused: vec![false; 3], master: None };
        let restart =
            Resolved { fault: Fault::Restart(Target::Down), strikes: Strikes::Nodes(vec![2]) };
        assert_eq!(d.handle(1900, Input::View(view)), Command::Apply(restart));
        assert_eq!(d.handle(1950, Input::Applied(Ok("started".into()))), Command::Done);
        assert_eq!(d.finished_ms(), Some(1950));
        assert_eq!(d.broke(), None);
        let log: Vec<String> = d.log().iter().map(|(t, l)| format!("{t} {l}")).collect();
        assert_eq!(
            log,
            [
                "1000 kill master (n2)",
                "1100 MasterElected after 99ms",
                "1900 heal",
                "1900 restart down (n2): started"
            ]
        );
        assert_eq!(d.resolved().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 3, 4]);
    }

    #[test]
    fn a_wait_that_times_out_and_a_failed_fault_end_the_drill_with_what_broke() {
        let wait = Action::WaitUntil { condition: Condition::AllInSync, timeout: Millis(100) };
        let mut d = Director::new(vec![step(at(0), wait)], 3, 0);
        assert!(matches!(d.handle(0, Input::Tick), Command::Check { begin: true, .. }));
        assert_eq!(d.handle(0, Input::Holds(false)), Command::WaitUntil(50));
        assert!(matches!(d.handle(50, Input::Tick), Command::Check { begin: false, .. }));
        assert_eq!(d.handle(100, Input::Holds(false)), Command::Done);
        let broke = d.broke().expect("broke");
        assert_eq!(broke.check, "wait_until");
        assert_eq!(broke.detail, "AllInSync did not hold within 100ms (step at line 7)");
        assert_eq!(d.finished_ms(), None);

        let mut d =
            Director::new(vec![step(at(0), Action::Fault(Fault::Kill(Target::Node(1))))], 3, 0);
        assert_eq!(d.handle(0, Input::Tick), Command::Observe);
        assert!(matches!(d.handle(0, Input::View(ClusterView::all_up(3))), Command::Apply(_)));
        assert_eq!(
            d.handle(
                0,
                Input::Applied(Err(BackendError::Failed(std::sync::Arc::new(
                    std::io::Error::other("refused"),
                ))))
            ),
            Command::Done
        );
        assert_eq!(d.broke().expect("broke").to_string(), "step: step at line 7: kill n1: refused");
    }

    #[test]
    fn drop_master_without_a_master_and_a_target_with_no_node_are_notes() {
        let steps = vec![
            step(at(10), Action::Fault(Fault::DropMaster)),
            step(after(0), Action::Fault(Fault::Restart(Target::Down))),
        ];
        let mut d = Director::new(steps, 3, 0);
        assert_eq!(d.handle(10, Input::Tick), Command::Observe);
        assert_eq!(d.handle(10, Input::View(ClusterView::all_up(3))), Command::Observe);
        assert_eq!(d.handle(10, Input::View(ClusterView::all_up(3))), Command::Done);
        assert_eq!(d.broke(), None);
        let lines: Vec<&str> = d.log().iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "drop_master: no master, nothing applied",
                "restart down: no node to strike, nothing applied"
            ]
        );
        assert!(d.resolved().is_empty());
        assert_eq!(d.finished_ms(), Some(10));
    }
}
