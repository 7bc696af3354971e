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
    // The sandbox runner does not exist yet: said plainly, exit 3.
    let out = admin(&["drill", "run", &scenario("wiped-node-rebuilt.yaml"), "--tier", "sandbox"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("not built yet"), "{}", text(&out));
}
