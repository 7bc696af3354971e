//! `arakoon-admin drill ...` run as a binary: the built-in drill, reports, and refusals.

use std::process::{Command, Output};

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon-admin")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scenario(name: &str) -> String {
    format!("{}/../scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_built_in_drill_passes_and_leaves_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().to_str().unwrap();
    let out = admin(&["drill", "run", "--seed", "3", "--report", report]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("master-killed-under-load     seed 3   PASS"), "{}", text(&out));
    let folder = dir.path().join("master-killed-under-load-seed3");
    for f in [
        "history-kv.jsonl",
        "history-sequences.jsonl",
        "faults.log",
        "summary.json",
        "timeline.html",
    ] {
        assert!(folder.join(f).exists(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["linearizability"], "linearizable");
    assert!(summary["faults"][0]["what"].as_str().unwrap().starts_with("kill master"));
    let html = std::fs::read_to_string(folder.join("timeline.html")).unwrap();
    assert!(html.contains("client 4") && html.contains(">n2<") && html.contains("kill master"));
    assert!(!html.contains("http://") || html.contains("xmlns='http://www.w3.org/2000/svg'"));
    // The history it wrote checks with the checker.
    let kv = folder.join("history-kv.jsonl");
    let out = admin(&["check", kv.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_drill_that_expects_a_violation_passes_when_the_guarantee_breaks() {
    let out = admin(&["drill", "run", &scenario("clock-drift-beyond-bound.yaml"), "--seed", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("PASS"), "{}", text(&out));
}

#[test]
fn bad_drills_are_refused_before_anything_runs_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nduration: 5s\nsteps:\n  - at: 1s\n    kill: n9\n").unwrap();
    let out = admin(&["drill", "run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bad.yaml:5:11") && t.contains("no node \"n9\""), "{t}");
    // A fault the tier cannot apply.
    let out = admin(&["drill", "validate", &scenario("power-loss.yaml"), "--tier", "sandbox"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("cannot apply power_loss"), "{}", text(&out));
    // A fault the sandbox cannot apply is refused before anything starts.
    let out = admin(&["drill", "run", &scenario("power-loss.yaml"), "--tier", "sandbox"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("cannot apply power_loss"), "{}", text(&out));
    // Nor one turmoil cannot: refused before anything starts, with the step's line and column.
    let out = admin(&["drill", "run", &scenario("flapping-partitions.yaml"), "--tier", "turmoil"]);
    assert_eq!(out.status.code(), Some(3));
    let t = text(&out);
    assert!(t.contains("flapping-partitions.yaml:26:5"), "{t}");
    assert!(t.contains("the turmoil tier cannot apply one_way"), "{t}");
}

#[test]
fn drills_run_on_the_turmoil_tier_and_print_their_replay() {
    let dir = tempfile::tempdir().unwrap();
    let out = admin(&[
        "drill",
        "run",
        &scenario("master-in-minority.yaml"),
        "--tier",
        "turmoil",
        "--seed",
        "1",
        "--report",
        dir.path().to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("on the turmoil tier") && t.contains("PASS"), "{t}");
    let folder = dir.path().join("master-in-minority-seed1");
    let summary = std::fs::read_to_string(folder.join("summary.json")).unwrap();
    assert!(summary.contains("--tier turmoil --seed 1"), "{summary}");
    assert!(
        std::fs::read_to_string(folder.join("history-kv.jsonl")).unwrap().lines().count() > 100
    );
}

/// The `arakoon` binary beside arakoon-admin, built if missing.
fn arakoon_built() -> bool {
    let admin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_arakoon-admin"));
    let arakoon = admin.with_file_name("arakoon");
    if !arakoon.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "arakoon-node", "--bin", "arakoon"])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot build the arakoon binary (cargo build -p arakoon-node --bin arakoon)");
            return false;
        }
    }
    arakoon.exists()
}

#[test]
fn a_drill_runs_on_real_processes_leaves_a_report_and_no_process_behind() {
    if !arakoon_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let drill = dir.path().join("short.yaml");
    std::fs::write(
        &drill,
        "name: short-kill\ndescription: kill the master of real processes\n\
         cluster: { nodes: 3, lease: 1s, config: { tlog_max_entries: 200 } }\n\
         workload: { clients: 3, rate: 100/s, key_distribution: zipf }\nduration: 8s\nseed: 1\n\
         steps:\n  - at: 2s\n    kill: master\n  - wait_until: master_elected\n    timeout: 4s\n\
         \x20 - after: 1s\n    restart: down\n  - wait_until: all_in_sync\n    timeout: 10s\n\
         expect: [linearizable, no_lost_writes, in_sync, { master_within: 3s }]\n",
    )
    .unwrap();
    let report = dir.path().join("report");
    let out = admin(&[
        "drill",
        "run",
        drill.to_str().unwrap(),
        "--tier",
        "sandbox",
        "--report",
        report.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("short-kill") && t.contains("PASS"), "{t}");
    // Ops succeeded on real processes (the history that was checked is not empty).
    let ok: u64 = t
        .split("PASS  (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ok > 100, "only {ok} operations succeeded: {t}");
    let left = Command::new("pgrep").args(["-f", "sandbox-short-kill"]).output().unwrap();
    assert!(left.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&left.stdout));
    // Off a terminal, each fault is a plain line as it is applied.
    assert!(t.contains("ms kill master (n"), "{t}");
    sandbox_report_holds_what_happened(&report.join("short-kill-seed1"), ok);
}

/// The report of the `short-kill` drill on the sandbox: every file parses, and they agree with
/// what the run printed and with each other.
fn sandbox_report_holds_what_happened(folder: &std::path::Path, ops_ok: u64) {
    let read =
        |f: &str| std::fs::read_to_string(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    assert_eq!(summary["tier"], "sandbox");
    assert_eq!(summary["seed"], 1);
    assert_eq!(summary["passed"], true, "{summary:#}");
    assert_eq!(summary["linearizability"], "linearizable");
    assert_eq!(summary["ops_ok"], ops_ok);
    assert!(summary["replay"].as_str().unwrap().ends_with("--tier sandbox --seed 1"));
    assert!(summary["checks"].as_array().unwrap().iter().any(|c| c == "linearizable"));
    // The faults, in the order they were applied: the kill names the master it struck, and
    // the restart brings that same node back.
    let faults = summary["faults"].as_array().unwrap();
    let what: Vec<&str> = faults.iter().map(|f| f["what"].as_str().unwrap()).collect();
    let kill = what.iter().position(|w| w.starts_with("kill master (n")).expect("the kill");
    let restart = what.iter().position(|w| w.starts_with("restart down (n")).expect("the restart");
    assert!(kill < restart, "{what:?}");
    let victim = &what[kill]["kill master (".len()..what[kill].len() - 1];
    assert_eq!(what[restart], format!("restart down ({victim})"));
    let kill_ms = faults[kill]["at_ms"].as_u64().unwrap();
    assert!((2000..3000).contains(&kill_ms), "the kill was due at 2 s: {kill_ms}");
    // The fault log says the same, a line each.
    let log = read("faults.log");
    assert_eq!(log.lines().count(), faults.len(), "{log}");
    assert!(log.lines().next().unwrap().starts_with(&format!("{kill_ms}ms kill master")));
    // The observer saw the victim start again after the kill.
    let restarts = summary["restarts"].as_array().unwrap();
    assert!(
        restarts.iter().any(|r| r["node"] == *victim && r["at_ms"].as_u64().unwrap() > kill_ms),
        "{restarts:?}"
    );
    // Both histories parse line by line; their completions are the operations counted.
    let mut completions = std::collections::BTreeMap::new();
    for f in ["history-kv.jsonl", "history-sequences.jsonl"] {
        for line in read(f).lines() {
            let op: serde_json::Value = serde_json::from_str(line).unwrap();
            *completions.entry(op["type"].as_str().unwrap().to_string()).or_insert(0u64) += 1;
        }
    }
    assert_eq!(completions.get("ok").copied(), Some(ops_ok), "{completions:?}");
    assert_eq!(completions.get("fail").copied().unwrap_or(0), summary["ops_failed"]);
    // The timeline: client lanes, the final reads, node lanes with the master change and the
    // restart, the fault bands.
    let html = read("timeline.html");
    for wanted in [
        "client 2",
        "final reads",
        &format!(">{victim}<"),
        "kill master",
        &format!("{victim} started again at"),
        "became master at",
        "sandbox tier, seed 1",
    ] {
        assert!(html.contains(wanted), "timeline.html lacks {wanted:?}");
    }
    // The nodes' logs outlive the sandbox, in the report.
    for f in ["n0.log", "n1.log", "n2.log", "supervisor.log"] {
        assert!(!read(&format!("logs/{f}")).is_empty(), "logs/{f} is empty");
    }
    // The histories check with the checker, each with its model.
    for (f, model) in [("history-kv.jsonl", "kv"), ("history-sequences.jsonl", "multi-key")] {
        let out = admin(&["check", folder.join(f).to_str().unwrap(), "--model", model]);
        assert_eq!(out.status.code(), Some(0), "{f}: {}", text(&out));
    }
}

/// A collapse during a catch-up, on real processes: every node collapses again and again while
/// a slave that missed seconds of writes restarts and catches up; it ends level and every check
/// holds. The fault log names the files each node removed.
#[test]
fn a_collapse_during_a_catch_up_runs_on_real_processes_and_leaves_no_process() {
    if !arakoon_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = admin(&[
        "drill",
        "run",
        &scenario("collapse-during-catch-up.yaml"),
        "--tier",
        "sandbox",
        "--seed",
        "0",
        "--report",
        report.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("collapse-during-catch-up     seed 0   PASS"), "{t}");
    let folder = report.join("collapse-during-catch-up-seed0");
    let log = std::fs::read_to_string(folder.join("faults.log")).unwrap();
    assert!(log.contains("collapse all keep 1 for 3s (n0,n1,n2): in the background"), "{log}");
    let ended = log
        .lines()
        .find(|l| l.contains("collapse all keep 1 for 3s, ended ("))
        .unwrap_or_else(|| panic!("the collapses' note: {log}"));
    // "n0: 27 collapses, removed 27 TLog file(s) (000.tlog..026.tlog), head up to i=2699; ..."
    let removed: Vec<u64> = ended
        .split("removed ")
        .skip(1)
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(removed.iter().any(|&n| n >= 2), "no node removed TLog files: {ended}");
    assert!(log.contains("AllInSync after"), "{log}");
    // Whether the slave had to adopt a peer's head depends on which came first, its catch-up
    // or the first collapse: said, not asserted.
    let adopted = ["n0", "n1", "n2"].iter().any(|n| {
        std::fs::read_to_string(folder.join(format!("logs/{n}.log")))
            .is_ok_and(|l| l.contains("adopted a peer's head"))
    });
    eprintln!("the restarted slave adopted a peer's head: {adopted}");
    let left = Command::new("pgrep").args(["-f", "sandbox-collapse-during"]).output().unwrap();
    assert!(left.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&left.stdout));
}

/// Of several drills, one written for other tiers (`tiers:`) is skipped on the tier asked for,
/// said so; named alone, it is refused with its file, line and column.
#[test]
fn a_drill_for_other_tiers_is_skipped_among_several_and_refused_alone() {
    let drift = scenario("clock-drift-within-bound.yaml");
    let out = admin(&[
        "drill",
        "run",
        &scenario("master-killed-under-load.yaml"),
        &drift,
        "--seed",
        "0",
        "--tier",
        "turmoil",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!(
            "skipped {drift}: the drill is for the sim tier (its `tiers:`), not turmoil"
        )),
        "{t}"
    );
    assert!(t.contains("running 1 drill(s)") && t.contains("PASS"), "{t}");
    let out = admin(&["drill", "run", &drift, "--seed", "0", "--tier", "turmoil"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    // The clock step is read before `tiers:` is looked at: the fault names the tier it needs.
    assert!(t.contains("clock-drift-within-bound.yaml:10:5"), "{t}");
    assert!(t.contains("the turmoil tier cannot apply clock_drift; it runs on: sim"), "{t}");
}
