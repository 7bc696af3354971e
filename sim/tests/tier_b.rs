//! Tier B: the real server and client over turmoil's network, with faults, histories checked.
//!
//! Every run prints its seed first; a failing one prints the command that replays it.

use arakoon_chaos::drill;
use arakoon_chaos::faults::Tier;
use arakoon_node::exit::NodeExit;
use arakoon_sim::tier_b::drill::{run_drill, TurmoilDrillRun};
use arakoon_sim::tier_b::nemesis::schedule;
use arakoon_sim::tier_b::{
    run_tier_b, Fault, FaultKind, FaultSet, TierBConfig, TierBReport, Verdict,
};

fn run(seed: u64, cfg: &TierBConfig) -> TierBReport {
    println!("tier B seed {seed}, {} nodes", cfg.nodes);
    let report = run_tier_b(seed, cfg);
    println!("{}", report.summary());
    for f in &report.faults {
        println!("  {f}");
    }
    for line in &report.repairs.log {
        println!("  repair log: {}", line.replace('\n', " "));
    }
    if !report.passed() {
        println!("replay: {}", report.replay_command());
    }
    report
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn smoke_three_nodes_without_faults() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults = FaultSet::NONE;
    cfg.workload_ms = 5_000;
    let r = run(1, &cfg);
    assert!(r.passed(), "{}", r.summary());
    assert_eq!(r.tally.unknown, 0, "no fault, no unknown outcome");
    assert!(r.tally.ok > 100, "{}", r.summary());
}

#[test]
fn three_nodes_ride_out_partitions_crashes_and_latency() {
    let cfg = TierBConfig::new(3);
    let (mut crashes, mut partitions, mut refused) = (0, 0, 0);
    for seed in 1..=6 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 500, "{}", r.summary());
        crashes += r.faults.iter().filter(|f| matches!(f.kind, FaultKind::Crash { .. })).count();
        partitions +=
            r.faults.iter().filter(|f| matches!(f.kind, FaultKind::Partition { .. })).count();
        refused += r.tally.fail + r.tally.unknown;
    }
    // The faults struck: nodes were crashed and restarted, minorities cut off, and clients
    // were refused or left unsure at times.
    assert!(crashes >= 2 && partitions >= 2, "{crashes} crashes, {partitions} partitions");
    assert!(refused > 0);
}

/// Message loss on tier B: turmoil drops segments for good, so a link that loses one stalls
/// until a timeout notices (a half-open connection); the cluster must ride it out all the same.
#[test]
fn three_nodes_ride_out_message_loss() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults.loss = true;
    let mut losses = 0;
    for seed in 1..=4 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 500, "{}", r.summary());
        losses += r.faults.iter().filter(|f| matches!(f.kind, FaultKind::Loss { .. })).count();
    }
    assert!(losses >= 2, "loss struck {losses} time(s) in 4 seeds");
}

/// Disk faults on tier B: a node's fsync fails and the real server stops (as it must), to be
/// started again, half the time after a power loss of its machine; or every node loses power at
/// once. Every acknowledged write survives (the history is checked), the logs agree, and the
/// nodes that stopped did so for the failed fsync (any other stop fails the run).
#[test]
fn three_nodes_ride_out_failed_fsyncs_and_power_losses() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults.disk = true;
    let (mut stops, mut power_losses) = (0, 0);
    for seed in 1..=8 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 500, "{}", r.summary());
        assert!(r.logs_agree.is_ok(), "{:?}", r.logs_agree);
        for (k, why) in &r.fsync_stops {
            println!("  n{k}: {why}");
            let tlog_exit = format!("(exit code {})", NodeExit::TlogDir.code());
            assert!(why.contains("fsync") && why.ends_with(&tlog_exit), "{why}");
        }
        stops += r.fsync_stops.len();
        power_losses += r.faults.iter().filter(|f| f.kind == FaultKind::PowerLoss).count();
    }
    assert!(stops >= 2 && power_losses >= 2, "{stops} fsync stops, {power_losses} power losses");
    // A failed fsync and its stop replay exactly.
    let (a, b) = (run(2, &cfg), run(2, &cfg));
    assert!(!a.fsync_stops.is_empty(), "seed 2 stopped no node");
    assert_replays(2, &a, &b);
}

/// Damaged disks on tier B: a node's power is cut as it syncs a TLog write and the crash keeps
/// a torn part of the write, or a bit of its TLog flips while it is stopped. Started again, the
/// real server must see the damage (a flipped TLog it serves over fails the run); the operator's
/// repair follows (the torn tail truncated; the flipped node wiped and caught up from a peer by
/// the server's `-catchup-only` code), and every acknowledged write survives, the logs agree.
#[test]
fn three_nodes_refuse_damaged_tlogs_and_are_repaired() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults.damage = true;
    let mut tally = arakoon_sim::tier_b::cluster::RepairTally::default();
    let mut stops = 0;
    for seed in 1..=8 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 500, "{}", r.summary());
        for line in &r.repairs.log {
            println!("  {line}");
        }
        // A node rebuilt from a peer votes again once a master caught it up: by the end.
        assert!(r.learners.is_empty(), "still learners: {:?}\n{}", r.learners, r.summary());
        for (k, why) in &r.fsync_stops {
            println!("  n{k}: {why}");
            assert!(why.contains("power cut"), "{why}");
        }
        stops += r.fsync_stops.len();
        tally.tails_truncated += r.repairs.tails_truncated;
        tally.tears_accepted += r.repairs.tears_accepted;
        tally.flips_repaired += r.repairs.flips_repaired;
    }
    println!("{stops} power cuts at a sync, {tally:?}");
    assert!(tally.tails_truncated >= 2, "{tally:?}");
    assert!(tally.flips_repaired >= 2, "{tally:?}");
    // With collapses, the peer a wiped node catches up from may have folded the slots it needs
    // into its head: the rebuild installs that head, over memory storage as over files.
    // The seeds where that happens are looked for (a third of them did at 877ce97), not named:
    // any change to the server's scheduling moves what each seed's nemesis meets.
    cfg.faults.collapses = true;
    let (mut from_heads, mut seeds) = (0, 0);
    for seed in 1..=HEAD_SEEDS_MAX {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.learners.is_empty(), "still learners: {:?}\n{}", r.learners, r.summary());
        from_heads += r.repairs.rebuilt_from_heads;
        seeds += 1;
        if from_heads >= 2 {
            break;
        }
    }
    println!("{from_heads} rebuilds installed a head in seeds 1..={seeds}");
    assert!(from_heads >= 2, "{from_heads} rebuilds installed a head in seeds 1..={seeds}");
    cfg.faults.collapses = false;
    // A cut, a flip and their repairs replay exactly.
    let (a, b) = (run(1, &cfg), run(1, &cfg));
    assert_replays(1, &a, &b);
    assert_eq!(a.repairs, b.repairs);
}

#[test]
fn five_nodes_ride_out_partitions_crashes_and_latency() {
    let cfg = TierBConfig::new(5);
    for seed in 1..=2 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(!r.faults.is_empty());
    }
}

/// The check is not vacuous: a stale read planted in a real run's history is caught.
#[test]
fn a_planted_stale_read_is_caught() {
    let mut cfg = TierBConfig::new(3);
    cfg.plant_stale_read = true;
    let r = run(3, &cfg);
    let planted =
        r.planted.clone().expect("the run acknowledged sets and read the keys at the end");
    println!("planted: {planted}");
    assert!(matches!(r.verdict, Verdict::Violation(_)), "{}", r.summary());
}

/// A seed replays a run exactly: the same fault schedule and the same history, byte for byte
/// (times, operations, outcomes, answers), over several seeds that crash and restart nodes;
/// different seeds differ.
#[test]
fn a_seed_replays_the_same_history_byte_for_byte() {
    let mut cfg = TierBConfig::new(3);
    cfg.workload_ms = 12_000;
    // Seeds whose schedule crashes a node: dropping a runtime is the likeliest place for an order
    // the seed does not fix.
    let crashing = |seed: &u64| {
        let faults = schedule(*seed, 3, cfg.faults, cfg.quiet_start_ms, cfg.workload_ms);
        faults.iter().any(|f| matches!(f.kind, FaultKind::Crash { .. }))
    };
    let seeds: Vec<u64> = (11..).filter(crashing).take(3).collect();
    let (mut digests, mut crashes) = (Vec::new(), 0);
    for seed in seeds {
        let a = run(seed, &cfg);
        let b = run(seed, &cfg);
        assert!(a.passed() && b.passed(), "{}\n{}", a.summary(), b.summary());
        assert!(!a.faults.is_empty());
        assert_eq!(a.ops, b.ops, "seed {seed}: the same number of operations");
        assert_replays(seed, &a, &b);
        digests.push(a.history_digest);
        crashes += a.faults.iter().filter(|f| matches!(f.kind, FaultKind::Crash { .. })).count();
    }
    assert!(crashes >= 3);
    digests.sort_unstable();
    digests.dedup();
    assert_eq!(digests.len(), 3, "different seeds, different histories");
}

/// The first line where two runs' histories part.
/// Two runs of `seed` are the same run: faults, history (byte for byte), tally, the
/// collapses and adoptions, the logs' agreement and the virtual time.
fn assert_replays(seed: u64, a: &TierBReport, b: &TierBReport) {
    assert_eq!(a.faults, b.faults);
    assert!(
        a.history == b.history,
        "seed {seed}: the histories differ:\n{}",
        first_difference(a, b)
    );
    assert_eq!(a.history_digest, b.history_digest);
    assert_eq!(a.tally, b.tally);
    assert_eq!(a.collapses, b.collapses);
    assert_eq!(a.adoptions, b.adoptions);
    assert_eq!(a.logs_agree, b.logs_agree);
    assert_eq!(a.virtual_ms, b.virtual_ms);
}

fn first_difference(a: &TierBReport, b: &TierBReport) -> String {
    let lines = |r: &TierBReport| -> Vec<String> {
        r.history.0.lines().chain(r.history.1.lines()).map(str::to_string).collect()
    };
    let (la, lb) = (lines(a), lines(b));
    for (k, (x, y)) in la.iter().zip(&lb).enumerate() {
        if x != y {
            return format!("line {k}:\n  {x}\n  {y}");
        }
    }
    format!("one history is a prefix of the other ({} and {} lines)", la.len(), lb.len())
}

/// Runs the seed in TIER_B_SEED (TIER_B_NODES nodes, 3 by default; TIER_B_LOSS=1 adds message
/// loss; TIER_B_COLLAPSE=1 adds collapses; TIER_B_DISK=1 failed fsyncs and power losses;
/// TIER_B_DAMAGE=1 torn writes and flipped bits with the operator's repair; TIER_B_RUNS runs
/// that many seeds from it; TIER_B_TWICE=1 runs each twice and says whether the histories are
/// the same). RUST_LOG (for instance `info`) prints the nodes' logs, with virtual times from
/// the start of the run.
#[test]
#[ignore]
fn replay() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(VirtualTime)
            .with_ansi(false)
            .init();
    }
    let seed = env_u64("TIER_B_SEED").unwrap_or(1);
    let mut cfg = TierBConfig::new(env_u64("TIER_B_NODES").unwrap_or(3) as usize);
    if env_u64("TIER_B_LOSS") == Some(1) {
        cfg.faults.loss = true;
    }
    if env_u64("TIER_B_COLLAPSE") == Some(1) {
        cfg.faults.collapses = true;
    }
    if env_u64("TIER_B_DISK") == Some(1) {
        cfg.faults.disk = true;
    }
    if env_u64("TIER_B_DAMAGE") == Some(1) {
        cfg.faults.damage = true;
    }
    let runs = env_u64("TIER_B_RUNS").unwrap_or(1);
    let mut failed = Vec::new();
    let (mut virtual_ms, mut wall) = (0, 0.0);
    for s in seed..seed + runs {
        let r = run(s, &cfg);
        virtual_ms += r.virtual_ms;
        wall += r.wall.as_secs_f64();
        if !r.passed() {
            failed.push(s);
        }
        if env_u64("TIER_B_TWICE") == Some(1) {
            let again = run_tier_b(s, &cfg);
            println!("  again: same history: {}", again.history_digest == r.history_digest);
        }
    }
    println!(
        "{runs} runs, {:.0}x real time, failed: {failed:?}",
        virtual_ms as f64 / 1000.0 / wall
    );
    assert!(failed.is_empty());
}

/// Log lines' times: turmoil's virtual clock since the run started.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

// ---- drills on the turmoil tier ----------------------------------------------------------------

fn scenario(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(file)
}

fn run_turmoil_drill(file: &str, seed: u64) -> TurmoilDrillRun {
    let d = drill::load(&scenario(file), Some(Tier::Turmoil)).expect("the turmoil tier runs it");
    let r = run_drill(&d, seed);
    println!(
        "{} seed {seed} on turmoil: {} ({}); {} ok, {} failed, {} unknown; {:.1} virtual s, {:.0}x",
        d.name,
        if r.passed { "PASS" } else { "FAIL" },
        r.verdict,
        r.ops_ok,
        r.ops_failed,
        r.ops_unknown,
        r.virtual_ms as f64 / 1000.0,
        r.speed()
    );
    for (at, what) in &r.fault_log {
        println!("  {at}ms {what}");
    }
    r
}

/// Four of the scenarios, on two seeds each: the steps strike (the master is killed, cut off,
/// loses power with the others, or stops on a failed fsync; a new one is elected in time, the
/// old one rejoins), and the history is linearizable with every key read after the heal.
#[test]
fn drills_run_on_the_turmoil_tier() {
    for (file, fault) in [
        ("master-killed-under-load.yaml", "kill master"),
        ("master-in-minority.yaml", "isolate"),
        ("power-loss.yaml", "power_loss"),
        ("fsync-failures.yaml", "fsync_fail master"),
    ] {
        for seed in 0..2 {
            let r = run_turmoil_drill(file, seed);
            assert!(r.passed, "{file} seed {seed}: {}", r.verdict);
            assert!(r.fault_log.iter().any(|(_, w)| w.starts_with(fault)), "{:?}", r.fault_log);
            assert!(r.fault_log.iter().any(|(_, w)| w.starts_with("AllInSync")));
            assert!(r.master_after_ms.is_some());
            assert!(r.ops_ok > 100, "{} ok", r.ops_ok);
            assert!(r.history.0.lines().count() > 100);
        }
    }
}

/// The drills that damage a stopped node's disk run on turmoil: the real start-up refuses a
/// flipped bit and a torn tail, and the operator's repair follows (a wiped disk rebuilt from a
/// peer by the server's `-catchup-only` code; the torn tail truncated); a lost disk is rebuilt
/// the same way. The node rejoins and every acknowledged write is read back.
#[test]
fn damaged_disk_drills_run_on_the_turmoil_tier() {
    for (file, fault, repair) in [
        ("bitflip-in-sealed-tlog.yaml", "bitflip", "wiped, caught up from a peer"),
        ("torn-tail-at-restart.yaml", "torn_tail", "truncated: Some"),
        ("wiped-node-rebuilt.yaml", "wipe", "catch-up: "),
    ] {
        for seed in 0..2 {
            let r = run_turmoil_drill(file, seed);
            assert!(r.passed, "{file} seed {seed}: {}", r.verdict);
            assert!(r.fault_log.iter().any(|(_, w)| w.starts_with(fault)), "{:?}", r.fault_log);
            let repaired = r.fault_log.iter().find(|(_, w)| w.contains(repair));
            println!("  {:?}", repaired);
            assert!(repaired.is_some(), "{file} seed {seed}: no repair: {:?}", r.fault_log);
            assert!(r.ops_ok > 100, "{} ok", r.ops_ok);
        }
    }
}

/// A drill on turmoil replays exactly from its seed: the same steps struck the same nodes at the
/// same times, and the clients saw the same answers.
#[test]
fn a_turmoil_drill_replays_exactly() {
    let a = run_turmoil_drill("master-killed-under-load.yaml", 5);
    let b = run_turmoil_drill("master-killed-under-load.yaml", 5);
    assert!(a.passed, "{}", a.verdict);
    let lines = |r: &TurmoilDrillRun| -> Vec<String> {
        r.history.0.lines().chain(r.history.1.lines()).map(str::to_string).collect()
    };
    let (la, lb) = (lines(&a), lines(&b));
    if let Some(k) = (0..la.len().min(lb.len())).find(|&k| la[k] != lb[k]) {
        panic!("the histories part at line {k}:\n  {}\n  {}", la[k], lb[k]);
    }
    assert_eq!(la.len(), lb.len());
    assert_eq!(a.fault_log, b.fault_log);
    assert_eq!((a.ops_ok, a.ops_failed, a.ops_unknown), (b.ops_ok, b.ops_failed, b.ops_unknown));
    assert_eq!(a.virtual_ms, b.virtual_ms);
}

/// A drill asking for a fault turmoil cannot apply is refused when it is read, with the file,
/// line and column of the step and the tiers that can apply it.
#[test]
fn a_drill_with_a_fault_turmoil_cannot_apply_is_refused_before_it_starts() {
    for (file, fault) in
        [("flapping-partitions.yaml", "one_way"), ("lossy-slow-network.yaml", "loss")]
    {
        let path = scenario(file);
        let e = drill::load(&path, Some(Tier::Turmoil)).expect_err("refused");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().position(|l| l.contains(&format!("{fault}:"))).unwrap() + 1;
        println!("{e}");
        assert!(e.file.ends_with(file), "{e}");
        assert!(
            e.line >= line.saturating_sub(1) && e.line <= line,
            "{e} (the step is at line {line})"
        );
        assert!(e.column > 0, "{e}");
        assert!(e.message.contains(&format!("the turmoil tier cannot apply {fault}")), "{e}");
        assert!(e.message.contains("sim"), "names the tiers that can: {e}");
        // The same drill is fine on the simulation tier.
        assert!(drill::load(&path, Some(Tier::Sim)).is_ok());
    }
}

// ---- collapse and adoption on tier B -------------------------------------------------------

fn collapse(at_ms: u64, node: usize, keep: u32) -> Fault {
    Fault { start_ms: at_ms, end_ms: at_ms, kind: FaultKind::Collapse { node, keep } }
}

/// n2 is down while both other nodes collapse their TLogs (the real server's `collapse_tlogs`,
/// asked by the operator host as `arakoon-admin collapse` asks it): when n2 comes back, the
/// slots after its log are collapsed away at whichever peer it catches up from, so it fetches
/// that peer's head and adopts it (the server's `adopt_fetched`, over its disk in memory), then
/// the entries after it. The history is linearizable, every key is read after the heal, and
/// the collapses and the adoption happened (counted: the collapses by the operator, the
/// adoption on n2's disk).
#[test]
fn a_node_behind_collapsed_peers_adopts_a_head_and_catches_up() {
    let mut cfg = TierBConfig::new(3);
    cfg.workload_ms = 16_000;
    cfg.schedule = Some(vec![
        Fault { start_ms: 3_000, end_ms: 11_000, kind: FaultKind::Crash { node: 2 } },
        collapse(9_000, 0, 1),
        collapse(9_500, 1, 1),
    ]);
    for seed in [1, 2] {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 300, "{}", r.summary());
        assert_eq!(r.collapses.requested, 2, "{:?}", r.collapses);
        assert_eq!(r.collapses.collapsed, 2, "both peers folded files: {:?}", r.collapses);
        assert!(r.adoptions >= 1, "n2 adopted a peer's head: {}", r.summary());
        assert!(matches!(r.logs_agree, Ok(n) if n > 100), "{:?}", r.logs_agree);
        // n2 caught up: its log ends with the others' (a slot apart at most, in flight).
        let ends: Vec<u64> = r.committed_ends.iter().map(|e| e.unwrap_or(0)).collect();
        let top = ends.iter().copied().max().unwrap_or(0);
        assert!(ends.iter().all(|e| e + 1 >= top) && top > 100, "logs end at {ends:?}");
    }
}

/// Collapses drawn from the seed among the other faults (their own stream): the cluster rides
/// them out, the history is linearizable and the logs agree; the collapses struck (files were
/// folded and removed) on every seed.
#[test]
fn three_nodes_ride_out_collapses_among_the_other_faults() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults.collapses = true;
    let (mut collapsed, mut adopted) = (0, 0);
    for seed in 1..=6 {
        let r = run(seed, &cfg);
        assert!(r.passed(), "{}\nreplay: {}", r.summary(), r.replay_command());
        assert!(r.tally.ok > 500, "{}", r.summary());
        assert!(r.collapses.collapsed >= 2, "{}: {:?}", r.summary(), r.collapses);
        assert!(matches!(r.logs_agree, Ok(n) if n > 100), "{:?}", r.logs_agree);
        collapsed += r.collapses.collapsed;
        adopted += r.adoptions;
    }
    println!("{collapsed} collapses, {adopted} heads adopted");
}

/// Seeds looked at for ones where a node installs or adopts a peer's head (a third of the
/// seeds did with collapses on, at 877ce97).
const HEAD_SEEDS_MAX: u64 = 30;

/// A seed with collapses replays exactly: the same faults, the same history byte for byte, the
/// same collapses and adoptions. The first two seeds where a node adopts a head are replayed
/// (looked for, not named: a change to the server's scheduling moves what each seed meets).
#[test]
fn a_seed_with_collapses_and_adoptions_replays_byte_for_byte() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults.collapses = true;
    let (mut adopted, mut replayed) = (0, Vec::new());
    for seed in 1..=HEAD_SEEDS_MAX {
        let a = run(seed, &cfg);
        assert!(a.passed(), "{}\nreplay: {}", a.summary(), a.replay_command());
        if a.adoptions == 0 {
            continue;
        }
        let b = run(seed, &cfg);
        assert!(b.passed(), "{}", b.summary());
        assert!(a.faults.iter().any(|f| matches!(f.kind, FaultKind::Collapse { .. })));
        assert_replays(seed, &a, &b);
        assert!(a.collapses.collapsed >= 2, "{:?}", a.collapses);
        adopted += a.adoptions;
        replayed.push(seed);
        if replayed.len() == 2 {
            break;
        }
    }
    println!("seeds {replayed:?} adopted {adopted} heads and replayed exactly");
    assert_eq!(replayed.len(), 2, "fewer than two of seeds 1..={HEAD_SEEDS_MAX} adopted a head");
}

/// collapse-during-catch-up on the turmoil tier: a slave misses seconds of writes, every node
/// is asked to collapse (the real server's `collapse_tlogs`) every 100 ms for 3 s while the
/// slave restarts; it adopts a peer's head and ends level, nothing acknowledged lost; a seed
/// replays exactly.
#[test]
fn collapse_during_catch_up_runs_on_the_turmoil_tier() {
    for seed in 0..2 {
        let r = run_turmoil_drill("collapse-during-catch-up.yaml", seed);
        println!("  collapses {:?}, {} heads adopted", r.collapses, r.adoptions);
        assert!(r.passed, "seed {seed}: {}", r.verdict);
        assert!(r.collapses.collapsed >= 3, "{:?}", r.collapses);
        assert!(r.fault_log.iter().any(|(_, w)| w.starts_with("collapse")), "{:?}", r.fault_log);
        assert!(r.adoptions >= 1, "seed {seed}: the restarted slave adopted no head");
    }
    // It replays exactly too: the background collapses run in the director's host.
    let (a, b) = (
        run_turmoil_drill("collapse-during-catch-up.yaml", 0),
        run_turmoil_drill("collapse-during-catch-up.yaml", 0),
    );
    assert!(a.history == b.history, "the histories of two runs of seed 0 differ");
    assert_eq!(a.fault_log, b.fault_log);
    assert_eq!((a.collapses, a.adoptions), (b.collapses, b.adoptions));
}
