//! `arakoon-admin check` run as a binary: the verdict is the exit code (0 linearizable, 1 not,
//! 2 unknown, 3 bad input), and `--html` writes a page that stands alone.

use std::path::Path;
use std::process::{Command, Output};

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon-admin")).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("a temporary file");
    path.display().to_string()
}

const GOOD: &str = r#"{"process": 0, "type": "call", "f": "write", "value": 1}
{"process": 1, "type": "call", "f": "read"}
{"process": 0, "type": "ok"}
{"process": 1, "type": "ok", "value": 1}
"#;

/// The read of 0 comes after the write of 1 returned.
const BAD: &str = r#"{"process": 0, "type": "call", "f": "write", "value": 1}
{"process": 0, "type": "ok"}
{"process": 1, "type": "call", "f": "read"}
{"process": 1, "type": "ok", "value": 0}
"#;

#[test]
fn a_linearizable_history_exits_0() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let good = write(dir.path(), "good.jsonl", GOOD);
    let out = admin(&["check", &good, "--model", "cas-register"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).starts_with("LINEARIZABLE"), "{}", text(&out));
}

#[test]
fn a_violation_exits_1_with_its_explanation_and_an_html_timeline() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = write(dir.path(), "bad.jsonl", BAD);
    let html = dir.path().join("report.html");
    let html_arg = html.display().to_string();
    let out = admin(&["check", &bad, "--model", "cas-register", "--html", &html_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.starts_with("NOT LINEARIZABLE"), "{shown}");
    assert!(shown.contains("cannot be placed: #1 line 3  process 1"), "{shown}");
    let page = std::fs::read_to_string(&html).expect("the HTML report was written");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("blocking"), "{page}");
    assert!(!page.contains("https://"), "the page must not fetch anything");

    let json = admin(&["check", &bad, "--model", "cas-register", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("--json prints one JSON document");
    assert_eq!(report["verdict"], "not-linearizable");
}

#[test]
fn bad_input_exits_3_naming_the_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let orphan = write(dir.path(), "orphan.jsonl", "{\"process\": 4, \"type\": \"ok\"}\n");
    let out = admin(&["check", &orphan, "--model", "register"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("line 1: a return for process 4 without a call"), "{}", text(&out));

    let garbage = write(
        dir.path(),
        "garbage.jsonl",
        "{\"process\": 0, \"type\": \"call\", \"f\": \"read\"}\nnot json\n",
    );
    let out = admin(&["check", &garbage, "--model", "register", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("line 2: not JSON"), "{}", text(&out));

    let good = write(dir.path(), "good.jsonl", GOOD);
    let out = admin(&["check", &good, "--model", "mutex"]);
    assert_eq!(out.status.code(), Some(3), "a write is no mutex operation: {}", text(&out));

    let out = admin(&["check", "/nonexistent/history", "--model", "kv"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn an_exhausted_budget_exits_2() {
    // Sixteen concurrent writes, each read back, then a read of a value nobody wrote: every
    // subset of writes must be tried before "not linearizable", far more than no time allows.
    let mut lines = Vec::new();
    for p in 0..16 {
        lines.push(format!(
            r#"{{"process": {p}, "type": "call", "f": "write", "value": {}, "time": 0}}"#,
            p + 1
        ));
        lines
            .push(format!(r#"{{"process": {}, "type": "call", "f": "read", "time": 1}}"#, p + 100));
    }
    for p in 0..16 {
        lines.push(format!(r#"{{"process": {p}, "type": "ok", "time": 100}}"#));
        lines.push(format!(
            r#"{{"process": {}, "type": "ok", "value": {}, "time": 100}}"#,
            p + 100,
            p + 1
        ));
    }
    lines.push(r#"{"process": 999, "type": "call", "f": "read", "time": 101}"#.to_string());
    lines.push(r#"{"process": 999, "type": "ok", "value": -1, "time": 102}"#.to_string());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hard = write(dir.path(), "hard.jsonl", &lines.join("\n"));
    let out =
        admin(&["check", &hard, "--model", "register", "--initial", "0", "--time-limit", "0s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("UNKNOWN"), "{}", text(&out));
}

#[test]
fn help_lists_models_formats_and_exit_codes() {
    let out = admin(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out);
    for word in [
        "cas-register",
        "etcd-register",
        "multi-key",
        "mutex",
        "jepsen-log",
        "jsonl",
        "Exit codes",
        "Examples",
    ] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
}
