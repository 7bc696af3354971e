//! Rule checks where the rule is kept (sim/src/world/rules.rs): every send of a Promise or an
//! Accepted and every acknowledged write is checked against what the node's disk holds
//! durably, every Hold a slave owes its master an answer is answered, crashes strike at the
//! points armed for them, and the report counts each.

use arakoon_sim::world::rules::{
    CrashPoint, HOLD_ANSWERED, PERSIST_BEFORE_ACCEPTED, PERSIST_BEFORE_ACK, PERSIST_BEFORE_APPLY,
    PERSIST_BEFORE_PROMISE, START_FROM_FLUSHED,
};
use arakoon_sim::{run_seed, FaultMix, SimConfig};
use std::collections::BTreeMap;

fn short(faults: Option<FaultMix>) -> SimConfig {
    SimConfig { duration_ms: 20_000, faults, ..SimConfig::default() }
}

/// Seeds are run until every check and crash point was exercised, at most 200 (the rarest, a
/// crash between a rollover's new file and its directory sync, first struck at seed 42). The
/// crash points inside a collapse are left to tests/world.rs, under a load that gives a
/// collapse several files to remove: in these 20 s runs a collapse seldom removes two.
#[test]
fn every_rule_check_and_crash_point_is_exercised_and_holds() {
    let names: Vec<&str> = [
        PERSIST_BEFORE_PROMISE,
        PERSIST_BEFORE_ACCEPTED,
        PERSIST_BEFORE_ACK,
        PERSIST_BEFORE_APPLY,
        HOLD_ANSWERED,
        START_FROM_FLUSHED,
    ]
    .into_iter()
    .chain(CrashPoint::ALL.map(CrashPoint::name))
    .collect();
    let mut exercised: BTreeMap<String, u64> = BTreeMap::new();
    let all_seen =
        |e: &BTreeMap<String, u64>| names.iter().all(|n| e.get(*n).is_some_and(|n| *n > 0));
    let mut seeds = 0;
    while seeds < 200 && !all_seen(&exercised) {
        let r = run_seed(seeds, &short(Some(FaultMix::all())));
        assert!(r.passed(), "seed {seeds}: {:?}", r.outcome);
        for (check, n) in r.exercised {
            *exercised.entry(check).or_default() += n;
        }
        seeds += 1;
    }
    for name in &names {
        assert!(
            exercised.get(*name).is_some_and(|n| *n > 0),
            "{name} never exercised in {seeds} seeds: {exercised:?}"
        );
    }
    println!("exercised over {seeds} seeds: {exercised:?}");
}

/// A node that answers before its write is durable is caught at the send, by the check named
/// for the rule, on the first seed.
#[cfg(feature = "planted-bugs")]
#[test]
fn answering_before_the_fsync_is_caught_where_the_rule_is_kept() {
    use arakoon_node::planted::{self, Bug};
    use arakoon_sim::Outcome;
    for (bug, check) in [
        (Bug::PromiseBeforeDurable, PERSIST_BEFORE_PROMISE),
        (Bug::SkipFsyncBeforeAccepted, PERSIST_BEFORE_ACCEPTED),
        (Bug::ApplyBeforeDurable, PERSIST_BEFORE_APPLY),
    ] {
        planted::clear();
        planted::set(bug, true);
        let found = (0..5).find_map(|seed| match run_seed(seed, &short(None)).outcome {
            Outcome::Violation(v) => Some((seed, v)),
            Outcome::Pass => None,
        });
        planted::clear();
        let (seed, v) = found.unwrap_or_else(|| panic!("{} not found in 5 seeds", bug.name()));
        assert_eq!(v.check, check, "{} at seed {seed}: {}", bug.name(), v.detail);
        // With the bug off, the seed passes.
        assert!(run_seed(seed, &short(None)).passed(), "seed {seed} fails with the bug off");
    }
}
