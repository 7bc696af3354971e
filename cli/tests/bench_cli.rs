//! `arakoon-admin bench --compare etcd` on real processes: three arakoon nodes and three etcd
//! members on loopback, one short step each. Skipped, with a line saying so, where etcd is not
//! installed (CI installs Debian's etcd-server first).

mod common;

use common::{admin, text};

fn etcd_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
}

/// etcd is installed and the `arakoon` binary built; else a line saying the test is skipped.
fn ready_to_compare() -> bool {
    if !etcd_installed() {
        eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
        return false;
    }
    common::arakoon_binary();
    true
}

#[test]
fn compare_with_etcd_prints_both_systems_side_by_side() {
    if !ready_to_compare() {
        return;
    }
    let out = admin(&[
        "bench",
        "--compare",
        "etcd",
        "--duration",
        "1s",
        "--clients",
        "1,4",
        "--ops",
        "set,get",
        "--json",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).expect("a JSON line")).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8, "2 ops x 2 client counts x 2 systems: {t}");
    for s in steps {
        assert!(s["ops"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["errors"], 0, "{s}");
        assert!(s["p99_us"].as_u64().unwrap() >= s["p50_us"].as_u64().unwrap(), "{s}");
        assert!(s["server_cpu_us_per_op"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["load_cpu_us_per_op"].as_f64().unwrap() > 0.0, "{s}");
        // Arakoon's nodes say where the step's time went; every acknowledged request waited
        // for the core once. etcd has no such spans.
        let stages = s["stages"].as_array().unwrap();
        if s["system"] == "etcd" {
            assert!(stages.is_empty(), "{s}");
            continue;
        }
        let names: Vec<&str> = stages.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "core.event",
                "store.apply",
                "persist.wait",
                "persist.group",
                "store.flush",
                "client.wait"
            ],
            "{s}"
        );
        let wait = &stages[5];
        assert!(wait["count"].as_u64().unwrap() >= s["ops"].as_u64().unwrap(), "{s}");
        assert!(wait["p99_us"].as_u64().unwrap() >= wait["p50_us"].as_u64().unwrap(), "{s}");
        // Every TLog group's first job waited for the persister once (a set makes groups).
        let (handed, groups) = (&stages[2], &stages[3]);
        if s["op"] == "set" {
            assert!(handed["count"].as_u64().unwrap() > 0, "{s}");
        }
        assert!(handed["count"].as_u64().unwrap() <= groups["count"].as_u64().unwrap(), "{s}");
    }
    let systems: Vec<&str> = steps.iter().map(|s| s["system"].as_str().unwrap()).collect();
    assert_eq!(systems.iter().filter(|s| **s == "etcd").count(), 4, "{systems:?}");
}

/// `--runs 2`: each step runs twice, the systems alternating, and the medians follow, each
/// ratio taken within a run; the text table prints them too.
#[test]
fn repeated_runs_alternate_and_their_medians_follow() {
    if !ready_to_compare() {
        return;
    }
    let args = ["bench", "--compare", "etcd", "--duration", "1s", "--clients", "2", "--ops", "set"];
    let out = admin(&[&args[..], &["--runs", "2", "--json"]].concat());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).expect("a JSON line")).unwrap();
    let steps = json["steps"].as_array().unwrap();
    let order: Vec<(&str, u64)> =
        steps.iter().map(|s| (s["system"].as_str().unwrap(), s["run"].as_u64().unwrap())).collect();
    assert_eq!(order, [("arakoon", 1), ("etcd", 1), ("arakoon", 2), ("etcd", 2)], "{t}");
    let medians = json["medians"].as_array().unwrap();
    assert_eq!(medians.len(), 1, "{t}");
    let m = &medians[0];
    assert_eq!((m["runs"].as_u64(), m["clients"].as_u64()), (Some(2), Some(2)), "{m}");
    let ops = |s: &serde_json::Value| s["ops_per_second"].as_f64().unwrap();
    let ratios = [ops(&steps[0]) / ops(&steps[1]), ops(&steps[2]) / ops(&steps[3])];
    // The rows' ops/s come back from JSON rounded in their last digit: compare to 1e-9.
    let near = |field: &str, want: f64| {
        let got = m[field].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "{field}: {m} against {ratios:?}");
    };
    near("ratio", (ratios[0] + ratios[1]) / 2.0);
    near("ratio_min", ratios[0].min(ratios[1]));
    near("ratio_max", ratios[0].max(ratios[1]));
    let out = admin(&[&args[..], &["--runs", "2"]].concat());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("medians over the runs"), "{t}");
}

/// Large values run each step on a pair of clusters of its own, each run of it too: the whole
/// table of 1 MiB values on one pair once took each etcd member past 6 GB and the machine into
/// swap.
#[test]
fn large_values_start_fresh_clusters_for_every_step() {
    if !ready_to_compare() {
        return;
    }
    let out = admin(&[
        "bench",
        "--compare",
        "etcd",
        "--duration",
        "1s",
        "--clients",
        "1,2",
        "--ops",
        "set",
        "--value-sizes",
        "100,65536",
        "--runs",
        "2",
        "--json",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let starts = t.matches("starting 3 arakoon nodes and 3 etcd members").count();
    assert_eq!(
        starts, 5,
        "one pair for the 100-byte steps, one for each run of each 64 KiB step: {t}"
    );
    let json: serde_json::Value =
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).expect("a JSON line")).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 16, "2 sizes x 2 client counts x 2 runs x 2 systems: {t}");
    assert!(steps.iter().all(|s| s["errors"] == 0 && s["ops"].as_u64().unwrap() > 0), "{t}");
}

/// Interrupted (SIGTERM here, Ctrl-C alike), a comparison stops both clusters and removes their
/// files, and says so with exit 130; killed before, it left its servers' files behind (45 GB of
/// etcd data once).
#[test]
fn an_interrupted_compare_stops_both_clusters_and_removes_their_files() {
    if !ready_to_compare() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr");
    let dir_arg = dir.path().join("runs");
    let mut child = std::process::Command::new(common::admin_path())
        .args(["bench", "--compare", "etcd", "--ops", "set", "--clients", "1", "--duration"])
        .args(["60s", "--dir", dir_arg.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&err).unwrap_or_default().contains("arakoon: set") {
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the first step never started: {}", std::fs::read_to_string(&err).unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("arakoon-admin did not end within 30 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted by SIGTERM"), "{said}");
    let left: Vec<_> = std::fs::read_dir(&dir_arg).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    // No server of the run is left: none names the run's directory on its command line.
    let runs = dir_arg.to_str().unwrap().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&runs), "a server is left: {cmdline}");
    }
}

#[test]
fn compare_refuses_what_it_cannot_run() {
    let out = admin(&["bench", "--compare", "etcd", "--value-sizes", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    for runs in ["0", "10"] {
        let out = admin(&["bench", "--compare", "etcd", "--runs", runs]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("--runs: give 1 to 9"), "{}", text(&out));
    }
    let out = admin(&[
        "bench",
        "--compare",
        "etcd",
        "--etcd-bin",
        "/nonexistent/etcd",
        "--duration",
        "1s",
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}
