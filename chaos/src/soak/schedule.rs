//! The soak's faults: a schedule drawn from the seed alone (no clock, no OS randomness), as
//! drill steps that the one drill engine ([`crate::director`]) plays on the sandbox.
//!
//! The run is cut into episodes that never overlap. Each starts at a time drawn around
//! `fault_every_ms` after the previous one started, strikes the master or a random node with
//! one fault of the catalogue, holds it a while, and repairs it:
//!
//! ```text
//! kill -9 (Kill)          ... hold ...  Restart(Down): the killed node starts again
//! SIGSTOP (Pause for ...)  ... hold ...  SIGCONT, by the pause's own duration
//! Isolate (a partition)   ... hold ...  Heal
//! ```
//!
//! The hold is drawn in [every/4, every/2] and the gap to the next start in [every/2, 3every/2],
//! so an episode is repaired before the next one starts; the last episode ends within the run.
//! Which node `master` or `random` names is decided when the fault strikes, by the director's
//! own seeded resolver.

use crate::drill::{Action, Millis, Step, When};
use crate::faults::{Fault, Target};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixed into the run's seed so that the schedule's draws are a stream of their own, apart from
/// the clients' and the resolver's.
const SCHEDULE_STREAM: u64 = 0x736f_616b_5f73_6368;

/// The faults a soak applies, one per episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// kill -9, then a restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// The node cut off from its peers (the proxies drop its links), then healed.
    Isolate,
}

impl Family {
    const ALL: [Family; 3] = [Family::Kill, Family::Pause, Family::Isolate];
}

/// A soak's schedule: the steps for the director, from the seed and these bounds alone.
pub fn schedule(seed: u64, duration_ms: u64, fault_every_ms: u64) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SCHEDULE_STREAM);
    let every = fault_every_ms.max(4);
    let mut steps = Vec::new();
    let mut start = 0u64;
    loop {
        start += rng.gen_range(every / 2..=every + every / 2);
        let hold = rng.gen_range(every / 4..=every / 2);
        let family = Family::ALL[rng.gen_range(0..Family::ALL.len())];
        let target = if rng.gen_bool(0.5) { Target::Master } else { Target::Random };
        if start.saturating_add(hold) > duration_ms {
            return steps;
        }
        let mut push = |when: When, fault: Fault| {
            let line = steps.len() + 1;
            steps.push(Step { when, action: Action::Fault(fault), line });
        };
        match family {
            Family::Kill => {
                push(When::At(Millis(start)), Fault::Kill(target));
                push(When::After(Millis(hold)), Fault::Restart(Target::Down));
            }
            Family::Pause => {
                let duration = Some(Millis(hold));
                push(When::At(Millis(start)), Fault::Pause { target, duration });
            }
            Family::Isolate => {
                push(When::At(Millis(start)), Fault::Isolate(target));
                push(When::After(Millis(hold)), Fault::Heal);
            }
        }
    }
}

/// The schedule as lines (`12.3s kill master`, `+2.5s restart down`), for the run's report.
pub fn describe(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            let when = match s.when {
                When::At(Millis(ms)) => format!("{:.1}s", ms as f64 / 1000.0),
                When::After(Millis(ms)) => format!("+{:.1}s", ms as f64 / 1000.0),
            };
            match &s.action {
                Action::Fault(f) => format!("{when} {f}"),
                other => format!("{when} {other:?}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Tier;

    fn starts(steps: &[Step]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|s| match s.when {
                When::At(Millis(ms)) => Some(ms),
                When::After(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_seed_gives_one_schedule_and_another_seed_another() {
        let a = schedule(7, 600_000, 20_000);
        assert_eq!(a, schedule(7, 600_000, 20_000));
        assert_ne!(a, schedule(8, 600_000, 20_000));
        // About one episode per `every`: 600 s / 20 s.
        let episodes = starts(&a).len();
        assert!((20..=40).contains(&episodes), "{episodes} episodes");
    }

    #[test]
    fn episodes_are_repaired_before_the_next_and_end_within_the_run() {
        for seed in 0..50 {
            let steps = schedule(seed, 60_000, 8_000);
            let mut ends_at = 0;
            let mut last_start = 0;
            for s in &steps {
                match (s.when, &s.action) {
                    (When::At(Millis(t)), Action::Fault(f)) => {
                        assert!(t >= ends_at, "seed {seed}: {f} at {t} before {ends_at}");
                        last_start = t;
                        ends_at = t;
                        if let Fault::Pause { duration: Some(Millis(d)), .. } = f {
                            ends_at = t + d;
                        }
                    }
                    (When::After(Millis(d)), Action::Fault(f)) => {
                        assert!(matches!(f, Fault::Restart(Target::Down) | Fault::Heal), "{f}");
                        ends_at = last_start + d;
                    }
                    other => panic!("seed {seed}: unexpected step {other:?}"),
                }
                assert!(ends_at <= 60_000, "seed {seed}: ends at {ends_at}");
            }
        }
    }

    #[test]
    fn every_fault_runs_on_the_sandbox_and_every_family_appears() {
        let steps = schedule(1, 3_600_000, 10_000);
        let names: std::collections::BTreeSet<&str> = steps
            .iter()
            .map(|s| match &s.action {
                Action::Fault(f) => {
                    assert!(f.tiers().contains(&Tier::Sandbox), "{f}");
                    f.name()
                }
                _ => "",
            })
            .collect();
        let all: Vec<&str> = names.into_iter().collect();
        assert_eq!(all, ["heal", "isolate", "kill", "pause", "restart"]);
    }

    #[test]
    fn a_run_shorter_than_an_episode_has_no_fault() {
        assert!(schedule(3, 1_000, 20_000).is_empty());
        assert!(schedule(3, 0, 0).is_empty());
        let lines = describe(&schedule(3, 60_000, 10_000));
        assert!(lines.iter().all(|l| l.contains('s')), "{lines:?}");
    }

    /// `cli/tests/soak_cli.rs` runs seed 2 for 16 s with a fault every 4 s: kill and restart,
    /// isolate and heal.
    #[test]
    fn the_cli_tests_seed_kills_and_isolates() {
        let lines = describe(&schedule(2, 16_000, 4_000));
        assert_eq!(
            lines,
            [
                "3.9s kill master",
                "+1.7s restart down",
                "7.9s isolate master",
                "+1.2s heal",
                "11.6s kill random",
                "+1.8s restart down"
            ]
        );
    }
}
