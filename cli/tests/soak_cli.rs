//! `arakoon-admin soak` as a binary, on real processes: a 3-node sandbox of `arakoon` on
//! loopback (free ports, real sled and fsync) under the soak's load and a few seeded faults for
//! 16 s, its report read as JSON: every node sampled throughout, its resident memory within
//! the bound its configuration gives, descriptors sampled and back after the load, every
//! acknowledged write read back; and afterwards no process of the sandbox left and no
//! directory.
//!
//! The `arakoon` binary is the one beside `arakoon-admin`, built if it is missing
//! (`common::arakoon_binary`). The soak ties its sandbox to itself (the
//! supervisor exits when `arakoon-admin` does); the test waits for it at most 180 s and kills
//! it by PID after that.

mod common;

use arakoon_chaos::sandbox;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn admin_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_arakoon-admin"))
}

/// How long the soak of the test may take in all: 16 s of load, up to 60 s for the nodes to
/// come up, 30 s to settle, the read-back.
const SOAK_WITHIN: Duration = Duration::from_secs(180);

/// This seed's schedule for 16 s with a fault every 4 s: kill the master and restart it,
/// isolate the master and heal, kill a random node and restart it (pinned by a unit test of
/// `arakoon_chaos::soak::schedule`).
const SEED: &str = "2";

#[test]
fn a_short_soak_samples_every_node_within_its_bounds_and_loses_nothing() {
    // The soak runs real nodes: the `arakoon` beside arakoon-admin, built if it is missing.
    common::arakoon_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("soak");
    let args = [
        "soak",
        "--duration",
        "16s",
        "--fault-every",
        "4s",
        "--clients",
        "3",
        "--value-bytes-max",
        "16384",
        "--lease-ms",
        "1000",
        "--seed",
        SEED,
        "--json",
        "--dir",
        dir.to_str().unwrap(),
    ];
    let out_path = tmp.path().join("out.json");
    let err_path = tmp.path().join("err.txt");
    let mut child = Command::new(admin_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SOAK_WITHIN {
            // By PID: the soak's sandbox follows it (its supervisor watches this pid).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("no end within {SOAK_WITHIN:?}\n{stderr}"));
    assert_eq!(status.code(), Some(0), "{stderr}\n{stdout}");
    assert!(stderr.contains(&format!("replay: arakoon-admin soak --seed {SEED} ")), "{stderr}");
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));

    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report:#}");
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{report:#}");
    for n in nodes {
        let u = |k: &str| n[k].as_u64().unwrap_or_else(|| panic!("{k} of {n}"));
        // One sample before the load and about one a second for 16 s, less those of a node
        // that was down.
        assert!(u("samples") + u("down_samples") >= 10, "{n}");
        assert!(u("samples") >= 5, "{n}");
        assert!(u("rss_min_bytes") > 0 && u("rss_max_bytes") >= u("rss_median_bytes"), "{n}");
        assert!(u("rss_max_bytes") <= u("memory_bound_bytes"), "{n}");
        assert!(u("descriptors_max") > 0, "{n}");
        assert!(u("descriptors_max") <= u("descriptors_bound"), "{n}");
        assert!(u("descriptors_start") > 0 && u("descriptors_end") > 0, "{n}");
    }
    let faults: Vec<&str> =
        report["faults"].as_array().unwrap().iter().filter_map(|f| f[1].as_str()).collect();
    for what in ["kill master (n", "restart down (n", "isolate master (n", "heal"] {
        assert!(faults.iter().any(|f| f.starts_with(what)), "no {what:?} in {faults:?}");
    }
    let ops = report["ops"].as_array().unwrap();
    let ok = |kind: &str| {
        ops.iter().find(|o| o["kind"] == kind).and_then(|o| o["ok"].as_u64()).unwrap_or(0)
    };
    for kind in ["set", "get", "delete", "range", "range_entries", "sequence"] {
        assert!(ok(kind) > 0, "no {kind} succeeded: {report:#}");
    }
    assert!(report["keys_read_back"].as_u64().unwrap() > 0, "{report:#}");

    // Nothing of the sandbox is left.
    assert_eq!(sandbox::processes_of(&dir), Vec::<u32>::new(), "processes of {}", dir.display());
    assert!(!dir.exists(), "{} was not removed", dir.display());
}
