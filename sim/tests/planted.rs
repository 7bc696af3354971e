//! The simulator finds every planted bug within a bounded number of seeds, and names the check
//! each one broke. Run with `cargo test -p arakoon-sim --features planted-bugs --test planted
//! -- --nocapture`: it prints, per bug, the rule group it breaks (docs/CONSENSUS.md's rules, or
//! the shell's and the store's concerns), the first seed that finds it and the check.
#![cfg(feature = "planted-bugs")]

mod common;

use arakoon_node::planted::{self, Bug};
use arakoon_sim::{run_seed, FaultMix, Outcome, SimConfig};

const SEEDS_MAX: u64 = 1_000;

/// Even seeds run every fault family at once on 3 nodes, odd seeds draw their mix and their
/// deployment's shape (swarm, `--nodes draw`).
fn config(seed: u64) -> SimConfig {
    let faults = seed.is_multiple_of(2).then(FaultMix::all);
    SimConfig { duration_ms: 20_000, faults, draw_shape: true, ..SimConfig::default() }
}

/// The rule group of docs/CONSENSUS.md (or the part of the node outside the core) that a bug
/// breaks. A bug added to `Bug::ALL` without a line here reports "unmapped" (the test fails).
fn rule_group(bug: Bug) -> &'static str {
    match bug.name() {
        "lagging-master" => "rule 1 promise",
        "promise-beyond-quorum" => "rule 2 candidate / liveness",
        "accept-lower-ballot" | "commit-unverified-slot" => "rule 3 accept",
        "skip-fsync-before-accepted" => "rule 3 accept: persist order",
        "ack-before-quorum" | "apply-before-commit" => "rule 4 commit",
        "read-after-lease-expired" => "rule 5 lease",
        "range-read-without-lease" => "rule 5 lease: the shell's read gate",
        "even-quorum-rounded-down" => "rule 9 quorum sizes",
        "skip-crc-check" => "tlog: damage at rest",
        "range-bounds-swapped" => "store: range bounds",
        "promise-before-durable" => "rule 1 promise: persist order",
        "no-lease-wait-after-restart" => "rule 7 restart",
        "group-commit-replies-shifted" => "rule 8 group commit",
        "lease-without-margin" => "rule 5 lease: the bound (margin, drift)",
        "rollover-skips-fsync" => "tlog: rollover (persister)",
        "ballots-not-unique" => "rule 6 election: unique ballots (Hold)",
        "persister-batch-oldest-ballot" => "persister: group commit (ballot record)",
        "held-without-lease" => "rule 5 lease: Hold",
        "ballot-reach-unchecked" => "rule 10 bounded ballots",
        "catch-up-keeps-stale-slot" => "catch-up (persister import)",
        "import-refuses-held-slots" => "catch-up: a log ahead of its store",
        "head-flushed-after-removal" => "collapse: head durable before removal",
        "collapse-ignores-pins" => "collapse: a catch-up's pinned files stay",
        "apply-before-durable" => "rule 4 commit: apply after persist",
        _ => "unmapped",
    }
}

/// Bugs the tier-A world cannot reach (docs/CONSENSUS.md, "Planted bugs by rule group", would
/// say why): hunted and reported like the others, but their escape does not fail the test.
/// None today: no-lease-wait-after-restart and lease-without-margin left it once the aimed
/// faults "forgotten lease" and "slow master" were drawn in swarm seeds, ballots-not-unique
/// once the world checked that a slave answers its master's Hold (`hold-answered`).
const BEYOND_THE_WORLD: [&str; 0] = [];

/// The first seed (and the check) that catches `bug`, if any within the budget: it fails with
/// the bug on and passes with it off, so a seed that fails anyway never counts as a find.
fn hunt(bug: Bug) -> Option<(u64, &'static str, String)> {
    (0..SEEDS_MAX).find_map(|seed| {
        planted::clear();
        planted::set(bug, true);
        let on = run_seed(seed, &config(seed)).outcome;
        planted::clear();
        match on {
            Outcome::Violation(v) if run_seed(seed, &config(seed)).passed() => {
                Some((seed, v.check, v.detail))
            }
            _ => None,
        }
    })
}

#[test]
fn the_simulator_finds_every_planted_bug() {
    let mut missed = Vec::new();
    let started = std::time::Instant::now();
    // `PLANTED_BUGS=name,name` hunts only those (while working on one).
    let only = std::env::var("PLANTED_BUGS").ok();
    let wanted = |bug: Bug| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == bug.name()));
    for bug in Bug::ALL.into_iter().filter(|b| wanted(*b)) {
        let group = rule_group(bug);
        match hunt(bug) {
            Some((seed, check, detail)) => println!(
                "{:<28} {group:<36} found by seed {seed:>3}: {check}: {detail:.80}",
                bug.name()
            ),
            None if BEYOND_THE_WORLD.contains(&bug.name()) => println!(
                "{:<28} {group:<36} not found within {SEEDS_MAX} seeds (beyond the world)",
                bug.name()
            ),
            None => {
                println!("{:<28} {group:<36} NOT FOUND within {SEEDS_MAX} seeds", bug.name());
                missed.push(bug.name());
            }
        }
        assert_ne!(group, "unmapped", "{}: name its rule group in rule_group()", bug.name());
    }
    println!("hunted {} bugs in {:.0?}", Bug::ALL.len(), started.elapsed());
    assert!(missed.is_empty(), "not found within {SEEDS_MAX} seeds: {missed:?}");
}

#[test]
fn with_every_bug_off_the_seeds_that_catch_them_pass() {
    planted::clear();
    for seed in 0..300 {
        let r = run_seed(seed, &config(seed));
        assert!(r.passed(), "seed {seed}: {:?}", r.outcome);
    }
}

/// Drills, not only the random nemesis, catch planted bugs: the master cut off in a minority
/// exposes acknowledging before a quorum, and the master paused beyond its lease exposes reads
/// served after the lease; with the bugs off the same seeds pass.
#[test]
fn drills_catch_planted_bugs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for (file, bug) in [
        ("master-in-minority.yaml", Bug::AckBeforeQuorum),
        ("master-paused-beyond-lease.yaml", Bug::ReadAfterLeaseExpired),
    ] {
        let drill =
            arakoon_chaos::drill::load(&dir.join(file), None).unwrap_or_else(|e| panic!("{e}"));
        planted::clear();
        planted::set(bug, true);
        let caught = drill.seeds.clone().find_map(|seed| {
            let run = arakoon_sim::drill::run_drill(&drill, seed, false);
            (!run.passed).then_some((seed, run.verdict))
        });
        planted::clear();
        let (seed, verdict) =
            caught.unwrap_or_else(|| panic!("{} slips through the drill {file}", bug.name()));
        println!("drill {file} caught {} at seed {seed}: {verdict:.100}", bug.name());
        let run = arakoon_sim::drill::run_drill(&drill, seed, false);
        assert!(run.passed, "{file} with the bug off, seed {seed}: {}", run.verdict);
    }
}

/// The widened workload reads ranges with bounds on, between and outside stored keys, so the
/// store reading its inclusive flags the wrong way round is caught by the checker's model of
/// the ordered map (the one fixed range over all keys the workload read before never was).
#[test]
fn swapped_range_bounds_are_caught_by_the_linearizability_check() {
    planted::clear();
    planted::set(Bug::RangeBoundsSwapped, true);
    let found = (0..50).find_map(|seed| match run_seed(seed, &config(seed)).outcome {
        Outcome::Violation(v) => Some((seed, v)),
        Outcome::Pass => None,
    });
    planted::clear();
    let (seed, v) = found.expect("range-bounds-swapped slips through 50 seeds");
    assert_eq!(v.check, "linearizable", "seed {seed}: {}", v.detail);
    assert!(
        v.detail.contains("range"),
        "seed {seed}: the violation names a range read: {}",
        v.detail
    );
    assert!(run_seed(seed, &config(seed)).passed(), "seed {seed} passes with the bug off");
}

/// A failing seed shrinks to a smaller run that still breaks the same check, and its spec
/// replays that failure; the shrunk run passes with the bug off (the failure is the bug's).
/// Each bug's first seed that fails with it on and passes with it off is the one shrunk, so
/// that a change to the world's runs does not leave the test without a failure to shrink.
/// Those held to 20 events (strikes kept and calls made): a store bug (swapped range bounds),
/// commit-unverified-slot (consensus), and those that need a rollover,
/// a sealed TLog file or a collapse (which kept 84 to 435 events before the nemesis drew from
/// streams of its own and the shrinking tried smaller TLog files), the two liveness bugs
/// (shrunk with the check's probe), lagging-master's third failing seed (the third search),
/// ack-before-quorum's first (a later first call, in tenths of a second), and three that ended
/// at a local minimum before calls could be held and the polish ran.
#[test]
fn a_failing_seed_shrinks_to_at_most_20_events() {
    for (bug, nth) in [
        (Bug::RangeBoundsSwapped, 0),
        // 33 events until the first call's time was bisected in tenths of a second.
        (Bug::AckBeforeQuorum, 0),
        (Bug::CommitUnverifiedSlot, 0),
        (Bug::SkipCrcCheck, 0),
        (Bug::RolloverSkipsFsync, 0),
        (Bug::HeadFlushedAfterRemoval, 0),
        // Liveness failures: the liveness check's probe stands in for the calls clients made
        // while the cluster stayed unavailable (122 and 129 events before).
        (Bug::PromiseBeyondQuorum, 0),
        (Bug::BallotReachUnchecked, 0),
        // The third failing seed of lagging-master kept 33 events until a third search
        // delta-debugged its calls latest first.
        (Bug::LaggingMaster, 2),
        // 31, 34 and 89 events until calls were held (left out with their clients and the
        // world's draws going on as before) and the polish left out pairs of events. Since the
        // world's draws are keyed its failing seeds are others (docs/CONSENSUS.md).
        (Bug::ApplyBeforeCommit, 0),
        // Seed 102 needs a rollover with a crash point armed on it, as many writes before it
        // as the TLog file holds: 29 events until the polish traded calls for a smaller file.
        (Bug::ApplyBeforeCommit, 1),
        (Bug::HeldWithoutLease, 0),
        (Bug::PersisterBatchOldestBallot, 2),
    ] {
        let fails = |seed: u64| {
            planted::clear();
            planted::set(bug, true);
            let on = run_seed(seed, &config(seed)).passed();
            planted::clear();
            !on && run_seed(seed, &config(seed)).passed()
        };
        let seed = (0..400u64).filter(|&seed| fails(seed)).nth(nth).unwrap_or_else(|| {
            panic!("{}: fewer than {} seeds of 0..400 fail", bug.name(), nth + 1)
        });
        planted::set(bug, true);
        let cfg = config(seed);
        let shrunk = arakoon_sim::shrink::shrink(seed, &cfg);
        let replayed = shrunk.as_ref().map(|s| {
            let again =
                arakoon_sim::shrink::apply_spec(&cfg, &s.spec()).expect("the spec reads back");
            run_seed(seed, &again)
        });
        planted::clear();
        let s = shrunk.unwrap_or_else(|| panic!("{}: seed {seed} fails", bug.name()));
        let off = run_seed(seed, &s.cfg);
        assert!(
            off.passed(),
            "{}: the shrunk run fails with the bug off: {:?}",
            bug.name(),
            off.outcome
        );
        println!(
            "{} seed {seed}: {} -> {} events in {} runs, spec {}:\n  {}",
            bug.name(),
            s.events_before,
            s.events.len(),
            s.attempts,
            s.spec(),
            s.events.join("\n  ")
        );
        assert!(s.events.len() <= 20, "{}: {} events left", bug.name(), s.events.len());
        assert!(s.events.len() < s.events_before);
        match replayed.map(|r| r.outcome) {
            Some(Outcome::Violation(v)) => assert_eq!(v.check, s.check),
            other => panic!("{}: the shrunk run replayed as {other:?}", bug.name()),
        }
    }
}

/// A collapse that ignores the catch-up readers' pins removes files a stream is reading: the
/// world's catch-ups stream in steps, the peer collapsing between two of them, and the stream
/// that finds its next slot gone fails the "catch-up pin" check; with the pins heeded the same
/// seed passes.
#[test]
fn a_collapse_that_ignores_pins_is_caught_by_the_catch_up_pin_check() {
    let cfg = common::collapse_runs(true);
    planted::clear();
    planted::set(Bug::CollapseIgnoresPins, true);
    let found = (0..50).find_map(|seed| match run_seed(seed, &cfg).outcome {
        Outcome::Violation(v) => Some((seed, v)),
        Outcome::Pass => None,
    });
    planted::clear();
    let (seed, v) = found.expect("collapse-ignores-pins slips through 50 seeds");
    assert_eq!(v.check, "catch-up pin", "seed {seed}: {}", v.detail);
    assert!(run_seed(seed, &cfg).passed(), "seed {seed} passes with the bug off");
}
