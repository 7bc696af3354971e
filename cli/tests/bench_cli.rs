//! `arakoon-admin bench --compare etcd` on real processes: three arakoon nodes and three etcd
//! members on loopback, one short step each. Skipped, with a line saying so, where etcd is not
//! installed (CI installs Debian's etcd-server first).

mod common;

use common::{admin, text};

fn etcd_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
}

#[test]
fn compare_with_etcd_prints_both_systems_side_by_side() {
    if !etcd_installed() {
        eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    }
    common::arakoon_binary();
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

/// Large values run each step on a pair of clusters of its own: the whole table of 1 MiB
/// values on one pair once took each etcd member past 6 GB and the machine into swap.
#[test]
fn large_values_start_fresh_clusters_for_every_step() {
    if !etcd_installed() {
        eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    }
    common::arakoon_binary();
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
        "--json",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let starts = t.matches("starting 3 arakoon nodes and 3 etcd members").count();
    assert_eq!(starts, 3, "one pair for the 100-byte steps, one for each 64 KiB step: {t}");
    let json: serde_json::Value =
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).expect("a JSON line")).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8, "2 sizes x 2 client counts x 2 systems: {t}");
    assert!(steps.iter().all(|s| s["errors"] == 0 && s["ops"].as_u64().unwrap() > 0), "{t}");
}

#[test]
fn compare_refuses_what_it_cannot_run() {
    let out = admin(&["bench", "--compare", "etcd", "--value-sizes", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
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
