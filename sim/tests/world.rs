//! The tier-A world: runs pass their checks, and a seed replays a run exactly.

mod common;

use arakoon_sim::world::{
    Aimed, FSYNC_FAILED_NODE_STOPPED, FSYNC_FAILED_THEN_POWER_LOSS, VOTE_GUARD_DAMAGED,
};
use arakoon_sim::{run_seed, FaultMix, SimConfig};

fn short(faults: Option<FaultMix>) -> SimConfig {
    SimConfig { duration_ms: 20_000, faults, ..SimConfig::default() }
}

#[test]
fn a_perfect_world_passes_and_serves_clients() {
    for nodes in [1, 2, 3, 5] {
        let cfg = SimConfig { nodes, ..short(Some(FaultMix::none())) };
        let r = run_seed(1, &cfg);
        assert!(r.passed(), "{nodes} nodes: {:?}", r.outcome);
        assert!(r.ops_ok > 500, "{nodes} nodes: only {} operations succeeded", r.ops_ok);
    }
}

#[test]
fn every_fault_family_at_once_passes_the_checks() {
    // Safety on every seed; liveness on most: with every family at once (power loss, slow
    // disks, lost disks, partitions ...) a 20 s run may spend its whole time recovering.
    let mut idle = Vec::new();
    for seed in 0..20 {
        let r = run_seed(seed, &short(Some(FaultMix::all())));
        assert!(r.passed(), "seed {seed} ({}): {:?}\nreplay: cargo run -p arakoon-cli -- sim --seed {seed} --faults all", r.faults, r.outcome);
        if r.ops_ok == 0 {
            idle.push(seed);
        }
    }
    assert!(idle.len() <= 4, "no operation succeeded on seeds {idle:?}");
}

/// The aimed faults (sim/src/world/aimed.rs) strike where they aim, alone in an otherwise
/// quiet world of 3 and 5 nodes: each family bites (a renewal chosen, a Prepare forged), each
/// strike is listed with the run's strikes, and every check holds.
#[test]
fn aimed_faults_strike_and_the_checks_hold() {
    let mix = FaultMix { aimed: Aimed::all(), ..FaultMix::none() };
    let mut bit: std::collections::BTreeMap<String, u64> = Default::default();
    for nodes in [3, 5] {
        for seed in 0..6 {
            let r = run_seed(seed, &SimConfig { nodes, ..short(Some(mix.clone())) });
            assert!(r.passed(), "{nodes} nodes, seed {seed}: {:?}", r.outcome);
            assert!(
                r.strikes.iter().any(|(_, _, what)| what.ends_with("(aimed)")),
                "{nodes} nodes, seed {seed}: no aimed strike listed: {:?}",
                r.strikes
            );
            for (check, n) in r.exercised.into_iter().filter(|(c, _)| c.starts_with("aimed: ")) {
                *bit.entry(check).or_default() += n;
            }
        }
    }
    for family in ["aimed: forgotten lease", "aimed: slow master", "aimed: forged ballot"] {
        assert!(bit.get(family).is_some_and(|n| *n > 0), "{family} never bit: {bit:?}");
    }
    println!("aimed strikes that bit over 12 runs: {bit:?}");
}

#[test]
fn swarm_seeds_pass_the_checks() {
    for seed in 100..160 {
        let r = run_seed(seed, &short(None));
        assert!(
            r.passed(),
            "seed {seed} ({}): {:?}\nreplay: cargo run -p arakoon-cli -- sim --seed {seed}",
            r.faults,
            r.outcome
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in 0..10 {
        let cfg = SimConfig { keep_trace: true, ..short(None) };
        let a = run_seed(seed, &cfg);
        let b = run_seed(seed, &cfg);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert!(a.events > 100, "seed {seed}: {} events", a.events);
    }
    let a = run_seed(1, &short(None));
    let b = run_seed(2, &short(None));
    assert_ne!(a.trace_hash, b.trace_hash, "different seeds, different runs");
}

#[test]
fn two_damaged_disks_never_take_the_quorum_s_votes() {
    // The liveness check's finding, first seen as seed 45 (3 nodes, 60 s, swarm): a bit flip
    // struck n0's log while it was down, then n2's while both were down. Both refused their
    // logs at restart and were rebuilt as learners, leaving n1 the only voter of a quorum of
    // 2: no master could ever be elected again, and the run failed "liveness". The world now
    // counts a stopped node with a damaged log as one that lost its vote, so the second bit
    // flip is spared. Every change to the world's draws moved the seeds where the guard acts
    // (22, 97, 296; then 140, 285, 296; 22, 118, 423; 22, 118, 248), so the test takes the first
    // three seeds below 600 where it does, and each must pass and write after the heal.
    let mut acted = Vec::new();
    for seed in 0..600u64 {
        let r = run_seed(seed, &SimConfig::default());
        if r.exercised.get(VOTE_GUARD_DAMAGED).copied().unwrap_or(0) == 0 {
            continue;
        }
        assert!(
            r.passed(),
            "seed {seed} ({}): {:?}\nreplay: cargo run -p arakoon-cli -- sim --seed {seed}",
            r.faults,
            r.outcome
        );
        assert!(r.write_after_heal_ms.is_some(), "seed {seed}: a write after the heal");
        acted.push(seed);
        if acted.len() == 3 {
            return;
        }
    }
    panic!("the guard spared a second damaged disk in only {acted:?} of seeds 0..600");
}

/// Clocks beyond the bound the configuration promises (here a rate error of up to 60%, far past
/// the 27,027 ppm a 1 s lease covers) break the lease: a labelled run reports it as expected
/// and passes. (The drill clock-drift-beyond-bound shows that an unlabelled run fails.)
#[test]
fn a_lease_broken_beyond_the_clock_bound_is_reported_not_failed() {
    let mix = FaultMix {
        partitions: true,
        pauses: true,
        clock_drift_ppm: 600_000,
        clock_offset_ms: 1_500,
        beyond_bound: true,
        fault_interval_ms: 400,
        ..FaultMix::none()
    };
    let labelled = short(Some(mix.clone()));
    let (seed, r) = (0..30)
        .map(|seed| (seed, run_seed(seed, &labelled)))
        .find(|(_, r)| r.broke_beyond_bound.is_some())
        .expect("60% clock drift never broke the lease in 30 seeds");
    assert!(r.passed(), "seed {seed}: a labelled run does not fail: {:?}", r.outcome);
    assert!(r.beyond_bound.is_some(), "seed {seed}: the run says it was beyond the bound");
    let broke = r.broke_beyond_bound.expect("found above");
    assert!(
        ["at most one valid lease", "linearizable"].contains(&broke.check),
        "seed {seed}: only clock-dependent checks are excused: {broke:?}"
    );
    // Unlabelled, the world draws the same mix's clock faults within the bound: they hold.
    let within = run_seed(seed, &short(Some(FaultMix { beyond_bound: false, ..mix })));
    assert!(within.passed(), "seed {seed} within the bound: {:?}", within.outcome);
    assert!(within.broke_beyond_bound.is_none() && within.beyond_bound.is_none());
}

/// A failed fsync (its data left volatile) stops the node, as the server does, and the node
/// never acknowledges what that fsync covered: over seeds where fsyncs fail, nodes crash (half
/// the stops are followed by a power loss at once) and writes tear, every check holds (the
/// persist-before-promise, -accepted and -ack checks at every send, no acknowledged write lost
/// and agreement at the end), and both kinds of stop happened.
#[test]
fn a_failed_fsync_stops_the_node_and_loses_no_acknowledged_write() {
    let mix = FaultMix {
        fsync_failures: true,
        crashes: true,
        torn_writes: true,
        fault_interval_ms: 300,
        ..FaultMix::none()
    };
    let cfg = SimConfig { duration_ms: 20_000, faults: Some(mix), ..SimConfig::default() };
    let (mut stopped, mut power_lost, mut acknowledged) = (0, 0, 0);
    for seed in 0..8 {
        let r = run_seed(seed, &cfg);
        assert!(r.passed(), "seed {seed}: {:?}", r.outcome);
        stopped += r.exercised.get(FSYNC_FAILED_NODE_STOPPED).copied().unwrap_or(0);
        power_lost += r.exercised.get(FSYNC_FAILED_THEN_POWER_LOSS).copied().unwrap_or(0);
        acknowledged += r.ops_ok;
    }
    assert!(stopped > 0 && power_lost > 0, "stopped {stopped}, then power lost {power_lost}");
    assert!(acknowledged > 0);
}

/// The crash points inside the node's own writes (armed on the simulated disk) strike: in the
/// middle of a rollover (before the directory sync, before the new file's first sync) and
/// before the ballot record's rename; every check holds after each.
#[test]
fn crash_points_inside_rollover_and_the_ballot_record_strike_and_the_checks_hold() {
    // A heavy load (0-5 ms between calls) rolls the TLog over often (every 64 slots).
    let mix = FaultMix { crashes: true, fault_interval_ms: 500, ..FaultMix::none() };
    let cfg = SimConfig {
        duration_ms: 30_000,
        faults: Some(mix),
        think_us: (0, 5_000),
        ..SimConfig::default()
    };
    let points = [
        "crash-at-rollover-before-dir-sync",
        "crash-at-rollover-before-first-sync",
        "crash-before-ballot-rename",
    ];
    let mut struck = [0u64; 3];
    for seed in 0..8 {
        let r = run_seed(seed, &cfg);
        assert!(r.passed(), "seed {seed}: {:?}", r.outcome);
        for (n, p) in struck.iter_mut().zip(points) {
            *n += r.exercised.get(p).copied().unwrap_or(0);
        }
    }
    println!("struck: {:?}", points.iter().zip(struck).collect::<Vec<_>>());
    assert!(struck.iter().all(|n| *n > 0), "{:?}", points.iter().zip(struck).collect::<Vec<_>>());
}

/// The baseline campaign's seed 3137 (`sim --seeds 0..10000 --nodes draw`: five nodes, two held
/// down by the liveness check): a master was elected a second after the heal, yet no write
/// reached it in the next four. A request to a stopped node was dropped in silence, so each
/// such try cost a client its 2 s timeout, and clients that drew stopped nodes again and again
/// kept the cluster's master idle past the bound. A stopped process refuses the connection at
/// once, as a real one does, and the client tries the next node.
#[test]
fn a_stopped_node_refuses_the_connection_and_the_client_moves_on() {
    let cfg = SimConfig { draw_shape: true, keep_trace: true, ..SimConfig::default() };
    let r = run_seed(3137, &cfg);
    assert!(
        r.passed(),
        "{:?}\nreplay: cargo run -p arakoon-cli -- sim --seed 3137 --nodes draw",
        r.outcome
    );
    assert!(r.write_after_heal_ms.is_some(), "a write after the heal");
    let refused = r.trace.iter().filter(|l| l.contains("refused the connection")).count();
    assert!(refused > 0, "no request reached a stopped node: the seed no longer tests this");
}

/// The baseline campaign's seeds 797 and 1162 (`sim --seeds 0..10000 --nodes draw`), the two
/// that still failed "liveness", and 8477, which failed the same way once collapses were drawn:
/// their links carry 208 to 272 bytes a second and stay slow after the heal, and the nodes
/// wait, by design, what their configuration allows a value on such a link (several seconds for
/// a slot of a few hundred bytes) before they run for master. The write after the heal came
/// later than five leases, within the bound that adds the link's share (sim/src/world/
/// liveness.rs argues it); the bound in leases alone failed them. Every new draw moves some of
/// these seeds (797 draws collapses now and writes sooner; none of the four wrote past five
/// leases once the nemesis drew from streams of its own, and 390 does, 5.3 s after the heal;
/// once the world's frequent draws were keyed, 390 no longer did, and 3522, 4417 and 4822, the
/// first three of seeds 0..8000 that do, write 5.2 to 5.3 s after): each must pass, and one at
/// least must still write past five leases.
#[test]
fn on_a_slow_link_the_liveness_bound_adds_what_the_nodes_allow_a_value_on_it() {
    let cfg = SimConfig { draw_shape: true, ..SimConfig::default() };
    let mut late = Vec::new();
    for seed in [797, 1162, 8477, 1954, 390, 3522, 4417, 4822] {
        let r = run_seed(seed, &cfg);
        let replay = format!("replay: cargo run -p arakoon-cli -- sim --seed {seed} --nodes draw");
        assert!(r.passed(), "seed {seed}: {:?}\n{replay}", r.outcome);
        assert!(r.faults.contains("slow link"), "seed {seed} draws no slow link: {}", r.faults);
        let after_ms = r.write_after_heal_ms.expect("a write after the heal");
        println!("seed {seed}: first write {after_ms} ms after the heal");
        if after_ms > 5 * cfg.lease_ms {
            late.push(seed);
        }
    }
    assert!(
        !late.is_empty(),
        "every seed wrote within five leases: none tests the slow link's share"
    );
}

/// Shrinking slows the clients down (pauses of up to 5 s between calls) to find the fewest
/// calls that still fail; three shrunk runs of planted bugs then failed "liveness" with the bug
/// turned off, since no client called within the bound after the heal whatever the nodes did.
/// While the liveness check waits, clients pause no longer than the default, and the bound adds
/// the longest pause: runs this slow pass the check.
#[test]
fn clients_slowed_by_shrinking_do_not_fail_the_liveness_check() {
    let cfg = SimConfig { think_us: (640_000, 5_000_000), ..SimConfig::default() };
    let mut waited = 0;
    for seed in 0..12 {
        let r = run_seed(seed, &cfg);
        assert!(
            r.passed(),
            "seed {seed}: {:?}\nreplay: cargo run -p arakoon-cli -- sim --seed {seed} --pause 640ms..5s",
            r.outcome
        );
        waited += u64::from(r.write_after_heal_ms.is_some_and(|ms| ms > 100));
    }
    assert!(waited > 0, "no seed waited for its write after the heal: the test tests nothing");
}

/// A message that reaches a paused process waits for the resume, once: it used to wait in the
/// agenda, tried again every millisecond, and a pause of two seconds under a heavy load (seed 2
/// at `--pause 0ms..5ms`: 1,300 messages held) cost millions of events, most of the run's
/// time. Every event a run handles is then within a small multiple of the messages and calls
/// it made.
#[test]
fn messages_to_a_paused_process_wait_for_the_resume_without_costing_events() {
    let cfg = SimConfig { think_us: (0, 5_000), ..SimConfig::default() };
    let r = run_seed(2, &cfg);
    assert!(
        r.passed(),
        "{:?}\nreplay: cargo run -p arakoon-cli -- sim --seed 2 --pause 0ms..5ms",
        r.outcome
    );
    let held = r.exercised.get(arakoon_sim::world::HELD_WHILE_PAUSED).copied().unwrap_or(0);
    assert!(
        held > 500,
        "only {held} messages waited for a paused process: the seed no longer tests this"
    );
    let per_call = r.agenda_events / r.history_ops.max(1) as u64;
    println!(
        "seed 2: {} events, {} calls, {held} held, {per_call} events a call",
        r.agenda_events, r.history_ops
    );
    assert!(
        per_call < 30,
        "{} events for {} calls ({per_call} a call)",
        r.agenda_events,
        r.history_ops
    );
}

/// Collapses on running nodes, alone with crashes and lost disks: the TLog folded into each
/// node's head on its simulated disk, crashes inside the collapse (before the head's sync,
/// before the first removal, between removals), nodes restored from collapsed peers and lagging
/// ones catching up from them. Every check holds, and each of those is exercised.
#[test]
fn collapses_with_crashes_inside_them_pass_the_checks() {
    use arakoon_sim::world::collapse::{COLLAPSED, RESTORED_WITH_HEAD};
    use arakoon_sim::world::rules::CrashPoint;
    let cfg = common::collapse_runs(false);
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    // Since the nemesis draws from streams of its own, seeds 0..20 crash between removals in
    // none; seeds 15..25 exercise every point.
    let mut collapsing = None;
    for seed in 15..25 {
        let r = run_seed(seed, &cfg);
        assert!(r.passed(), "seed {seed}: {:?}\nreplay: the test's mix", r.outcome);
        if r.exercised.get(COLLAPSED).is_some_and(|n| *n > 0) {
            collapsing = collapsing.or(Some(seed));
        }
        for (check, n) in r.exercised {
            *seen.entry(check).or_default() += n;
        }
    }
    let names = CrashPoint::COLLAPSE.map(CrashPoint::name);
    for name in names.iter().chain(&[COLLAPSED, RESTORED_WITH_HEAD]) {
        assert!(seen.get(*name).is_some_and(|n| *n > 0), "{name} never exercised: {seen:?}");
    }
    // Collapse reads no clock and no map's order: a seed replays it to the byte.
    let seed = collapsing.expect("a seed collapsed");
    let cfg = SimConfig { keep_trace: true, ..cfg };
    let (a, b) = (run_seed(seed, &cfg), run_seed(seed, &cfg));
    assert!(a.trace.iter().any(|l| l.contains("removed")), "seed {seed} collapsed nothing");
    assert_eq!(a.trace, b.trace);
}

/// Catch-ups beside collapses, with crashes, lost disks, partitions and failed fsyncs: the
/// world's catch-ups stream in steps under the peer's pins while the peer collapses between
/// two steps (the pinned files stay, the stream goes on), and a node whose slots every peer
/// collapsed away adopts a head with the node crate's own adoption, crashing inside it at
/// each of its points or failing its fsync. Every check holds, and each of those is exercised.
#[test]
fn catch_ups_beside_collapses_and_adoptions_with_crashes_inside_pass_the_checks() {
    use arakoon_sim::world::adopt::ADOPT_FSYNC_FAILED;
    use arakoon_sim::world::catchup::{CAUGHT_UP_ACROSS_COLLAPSE, COLLAPSE_KEPT_PINNED};
    use arakoon_sim::world::collapse::HEAD_ADOPTED;
    use arakoon_sim::world::rules::CrashPoint;
    let cfg = common::collapse_runs(true);
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    let names = CrashPoint::ADOPT.map(CrashPoint::name);
    let others =
        [HEAD_ADOPTED, ADOPT_FSYNC_FAILED, COLLAPSE_KEPT_PINNED, CAUGHT_UP_ACROSS_COLLAPSE];
    let all_seen = |seen: &std::collections::BTreeMap<String, u64>| {
        names.iter().chain(&others).all(|name| seen.get(*name).is_some_and(|n| *n > 0))
    };
    // Seeds 0..81 reach every point inside an adoption today (80 the last: before the head's
    // sync); a change to the world's draws may move them, so the run goes on until each was
    // reached, within 400 seeds.
    let mut adopting = None;
    for seed in 0..400 {
        if seed >= 80 && all_seen(&seen) {
            break;
        }
        let r = run_seed(seed, &cfg);
        assert!(r.passed(), "seed {seed}: {:?}\nreplay: the test's mix", r.outcome);
        if r.exercised.get(HEAD_ADOPTED).is_some_and(|n| *n > 0) {
            adopting.get_or_insert(seed);
        }
        for (check, n) in r.exercised {
            *seen.entry(check).or_default() += n;
        }
    }
    for name in names.iter().chain(&others) {
        assert!(seen.get(*name).is_some_and(|n| *n > 0), "{name} never exercised: {seen:?}");
    }
    // A seed replays a run with adoptions and streams to the byte.
    let seed = adopting.expect("a seed adopted a head");
    let cfg = SimConfig { keep_trace: true, ..cfg };
    let (a, b) = (run_seed(seed, &cfg), run_seed(seed, &cfg));
    assert!(a.trace.iter().any(|l| l.contains("adopted")), "seed {seed} adopted no head");
    assert_eq!(a.trace, b.trace);
}

#[test]
fn the_strikes_stay_where_they_were_when_shrinking_leaves_calls_or_strikes_out() {
    // The nemesis draws from streams of its own (its schedule, and each strike what it draws),
    // so that a shrunk run keeps the strikes of the run it shrinks: fewer clients, calls left
    // out, a strike left out change none of the others' times, faults or nodes.
    for seed in 0..4 {
        let cfg = short(Some(FaultMix::all()));
        let full = run_seed(seed, &cfg);
        assert!(full.passed(), "seed {seed}: {:?}", full.outcome);
        assert!(full.strikes.len() > 5, "seed {seed}: {} strikes", full.strikes.len());
        let mut fewer = SimConfig { clients: 1, ..cfg.clone() };
        fewer.reduce.skip_calls.extend((0..40).map(|op| (0, op)));
        let r = run_seed(seed, &fewer);
        assert_eq!(r.strikes, full.strikes, "seed {seed}: one client, 40 calls left out");
        let mut skipped = cfg.clone();
        let left_out = full.strikes[1].1;
        skipped.reduce.skip_faults.insert(left_out);
        let r = run_seed(seed, &skipped);
        let kept: Vec<_> = full.strikes.iter().filter(|s| s.1 != left_out).cloned().collect();
        assert_eq!(r.strikes, kept, "seed {seed}: strike {left_out} left out");
    }
}

#[test]
fn a_held_read_leaves_the_rest_of_the_run_as_it_was() {
    // A call shrinking holds (`Reduction::hold_calls`) is left out with its client going on when
    // and as the answer made it go on, and the world drawing the answer's delay when the node
    // answered: a read left out so changes nothing else of the run.
    for seed in 0..3 {
        let cfg = SimConfig { keep_history: true, ..short(Some(FaultMix::none())) };
        let full = run_seed(seed, &cfg);
        assert!(full.passed(), "seed {seed}: {:?}", full.outcome);
        let summary = |o: &arakoon_chaos::history::OpSummary| {
            (o.process, o.call_us, o.ret_us, o.label.clone(), o.outcome)
        };
        let first: Vec<_> = full.ops.iter().filter(|o| o.process == 0).collect();
        // Then the calls after the run, while the liveness check waits for a write.
        let made = full.calls.iter().filter(|(c, _)| *c == 0).count();
        assert!(first.len() >= made, "seed {seed}: client 0 kept its process");
        let (n, read) = first
            .iter()
            .take(made)
            .enumerate()
            .find(|(_, o)| o.label.starts_with("get ") && o.outcome == "ok")
            .expect("client 0 reads");
        let mut held = cfg.clone();
        held.reduce.hold_calls.insert((0, n as u64), full.returns[&(0, n as u64)]);
        let r = run_seed(seed, &held);
        assert!(r.passed(), "seed {seed}: {:?}", r.outcome);
        let expected: Vec<_> =
            full.ops.iter().map(summary).filter(|o| *o != summary(read)).collect();
        assert_eq!(r.ops.iter().map(summary).collect::<Vec<_>>(), expected, "seed {seed}");
    }
}
