//! `arakoon-admin catchup`, `client ...` and `bench` run as a binary against real clusters of
//! `arakoon` processes on loopback.

mod common;

use common::{admin, expect_code, free_port, stdout, text};
use std::time::Duration;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn catchup_brings_a_stopped_node_level_with_the_cluster() {
    let mut cluster = common::cluster(3, "");
    cluster.start_all();
    let config = cluster.config_arg().to_string();
    let rt = common::runtime();
    let master = rt.block_on(async {
        let m = cluster.wait_for_master(Duration::from_secs(30)).await;
        let mut c = cluster.client();
        for k in 0..20u32 {
            c.set(format!("early{k}").as_bytes(), b"v").await.unwrap();
        }
        m
    });
    // A slave is stopped; the other two go on without it.
    let lagging = (master + 1) % 3;
    let peer = (master + 2) % 3;
    let name = format!("n{lagging}");
    cluster.stop(lagging);

    // A running node is refused: catch-up would write under it.
    let out = admin(&["catchup", "--node", &format!("n{master}"), "-config", &config]);
    expect_code(&out, 45);
    assert!(text(&out).contains("stop it first"), "{}", text(&out));

    rt.block_on(async {
        let mut c = cluster.client();
        for k in 0..300u32 {
            c.set(format!("late{k:03}").as_bytes(), &[7; 500]).await.unwrap();
        }
    });
    let (keys, peer_applied) = rt.block_on(async {
        let mut c = cluster.client();
        let keys = c.get_key_count().await.unwrap();
        // What the peer has applied: catch-up fetches up to there.
        let state = admin(&["client", "node-state", "-c", &config, &format!("n{peer}")]);
        expect_code(&state, 0);
        (keys, stdout(&state))
    });
    assert_eq!(keys, 320);
    assert!(!peer_applied.is_empty());

    let out =
        admin(&["catchup", "--node", &name, "-config", &config, "--from", &format!("n{peer}")]);
    expect_code(&out, 0);
    let t = text(&out);
    assert!(t.contains(&format!("{name} fetched")) && t.contains(&format!("from n{peer}")), "{t}");
    assert!(t.contains("MB of TLog written"), "{t}");

    let dump = admin(&["store", "dump", "--json", "--node", &name, "-config", &config]);
    expect_code(&dump, 0);
    let d = json(&dump);
    // A slave's last slot is committed once the next one exists: at most the master's last
    // write may still be missing here, and the node learns it when it rejoins.
    let count = d["key_count"].as_u64().unwrap();
    assert!((319..=320).contains(&count), "{count} keys after catch-up\n{t}");
    assert!(stdout(&dump).contains(r#""key":"late298""#), "{}", stdout(&dump));

    // Again: nothing (or almost nothing) left to fetch.
    let again = admin(&["catchup", "--node", &name, "-config", &config, "--json"]);
    expect_code(&again, 0);
    assert!(json(&again)["report"].is_string());

    // The node rejoins and serves what the others wrote while it was away.
    cluster.start(lagging);
    rt.block_on(async {
        let mut c = cluster.client();
        c.set(b"after", b"rejoin").await.unwrap();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = admin(&[
            "client",
            "get",
            "late299",
            "--consistency",
            "dirty",
            "--cluster",
            "admintest",
            "--node",
            &format!("127.0.0.1:{}", cluster.config.nodes[lagging].client_port),
        ]);
        if out.status.code() == Some(0) {
            assert_eq!(stdout(&out).trim(), "\\x07".repeat(500));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}\n{}", text(&out), cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    // With every peer down, catch-up says so in one line.
    cluster.stop(lagging);
    cluster.stop(master);
    cluster.stop(peer);
    let out = admin(&["catchup", "--node", &name, "-config", &config]);
    expect_code(&out, 5);
    assert_eq!(text(&out).trim().lines().count(), 1, "{}", text(&out));
    assert!(text(&out).contains("no peer answered"), "{}", text(&out));
    let out = admin(&["catchup", "--node", &name, "-config", &config, "--from", "n7"]);
    expect_code(&out, 3);
}

#[test]
fn client_commands_round_trip_against_a_real_node() {
    let mut cluster = common::cluster(1, "");
    cluster.start(0);
    common::runtime().block_on(cluster.wait_for_master(Duration::from_secs(20)));
    let config = cluster.config_arg().to_string();
    let c = |args: &[&str]| admin(&[&["client", "-c", &config][..], args].concat());
    let ok = |args: &[&str]| {
        let out = c(args);
        expect_code(&out, 0);
        stdout(&out).trim_end().to_string()
    };

    assert_eq!(ok(&["set", "greeting", "hello"]), "ok");
    assert_eq!(ok(&["get", "greeting"]), "hello");
    assert_eq!(
        json(&c(&["get", "greeting", "--json"])),
        serde_json::json!({"key": "greeting", "value": "hello"})
    );
    // -config, as arakoon takes it, and the config after the command.
    let out = admin(&["client", "get", "greeting", "-config", &config]);
    expect_code(&out, 0);
    assert_eq!(ok(&["get", "greeting", "--consistency", "dirty"]), "hello");

    for k in ["a1", "a2", "a3", "b1"] {
        ok(&["set", k, &format!("v-{k}")]);
    }
    assert_eq!(ok(&["range", "--first", "a", "--last", "b"]), "a1\na2\na3");
    assert_eq!(ok(&["range-entries", "--first", "a2", "--max", "2"]), "a2\tv-a2\na3\tv-a3");
    let r =
        json(&c(&["range-entries", "--first", "a", "--last", "a3", "--include-last", "--json"]));
    assert_eq!(r["entries"].as_array().unwrap().len(), 3);
    assert_eq!(ok(&["prefix", "a"]), "a1\na2\na3");
    assert_eq!(
        json(&c(&["prefix", "a", "--max", "1", "--json"]))["keys"],
        serde_json::json!(["a1"])
    );

    // Destructive: refused without --yes when there is no terminal.
    let out = c(&["delete-prefix", "a"]);
    expect_code(&out, 1);
    assert_eq!(ok(&["key-count"]), "5");
    assert_eq!(ok(&["delete-prefix", "a", "--yes"]), "deleted 3 keys");
    assert_eq!(json(&c(&["key-count", "--json"]))["key_count"], 2);

    assert_eq!(ok(&["delete", "b1"]), "ok");
    let out = c(&["get", "b1"]);
    expect_code(&out, 4);
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    assert_eq!(text(&out).trim().lines().count(), 1, "{}", text(&out));

    assert_eq!(ok(&["test-and-set", "lock", "--wanted", "me"]), "set (value before: none)");
    let t = json(&c(&["test-and-set", "lock", "--expected", "you", "--wanted", "x", "--json"]));
    assert_eq!(t, serde_json::json!({"previous": "me", "changed": false}));

    let file = cluster.dir.path().join("seq.json");
    std::fs::write(
        &file,
        r#"[{"op": "set", "key": "s1", "value": "one\u0001"},
            {"op": "assert", "key": "lock", "value": "me"},
            {"op": "replace", "key": "s2", "value": "two"}]"#,
    )
    .unwrap();
    assert_eq!(ok(&["sequence", file.to_str().unwrap()]), "ok: 3 updates applied");
    assert_eq!(ok(&["get", "s1"]), "one\\x01");
    std::fs::write(&file, r#"[{"op": "assert", "key": "lock", "value": "you"}]"#).unwrap();
    let out = c(&["sequence", file.to_str().unwrap(), "--synced"]);
    expect_code(&out, 4);
    assert!(text(&out).contains("assertion_failed"), "{}", text(&out));
    std::fs::write(&file, r#"[{"op": "set", "key": "s1"}]"#).unwrap();
    let out = c(&["sequence", file.to_str().unwrap()]);
    expect_code(&out, 3);
    assert!(text(&out).contains("update 0: \"value\" must be a string"), "{}", text(&out));

    assert_eq!(ok(&["who-master"]), "n0");
    assert_eq!(json(&c(&["who-master", "--json"]))["master"], "n0");
    let stats = json(&c(&["statistics", "--json"]));
    // Arakoon's statistics: the sets above are counted, node_is names this node.
    assert!(stats["set_info"]["n"].as_i64().unwrap() > 0, "{stats}");
    assert!(stats["node_is"]["n0"].as_i64().unwrap() > 0, "{stats}");
    assert!(ok(&["statistics"]).contains("set_info.n: "));
    assert!(ok(&["version"]).starts_with("1."));
    assert_eq!(json(&c(&["version", "--json"]))["major"], 1);
    assert!(ok(&["expect-progress"]).starts_with("yes"));
    assert_eq!(ok(&["nop"]), "ok");
    assert!(!ok(&["node-state", "n0"]).is_empty());
    assert_eq!(json(&c(&["node-version", "n0", "--json"]))["node"], "n0");
    let out = c(&["node-state", "n5"]);
    expect_code(&out, 3);
    assert!(text(&out).contains("known: n0"), "{}", text(&out));

    // Addresses instead of a configuration.
    let addr = format!("127.0.0.1:{}", cluster.config.nodes[0].client_port);
    let out = admin(&["client", "who-master", "--cluster", "admintest", "--node", &addr]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "n0");
    assert!(
        stdout(&admin(&["client", "node-state", &addr, "--cluster", "admintest", "--node", &addr]))
            .len()
            > 1
    );

    let out = c(&["drop-master"]);
    expect_code(&out, 1);
    let out = c(&["drop-master", "--yes", "--json"]);
    assert!(matches!(out.status.code(), Some(0) | Some(4)), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[test]
fn client_errors_are_one_line_with_an_exit_code() {
    let down = format!("127.0.0.1:{}", free_port());
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["client", "get", "k", "--cluster", "x", "--node", &down, "--timeout", "1s"],
            5,
            "no master",
        ),
        (
            &["client", "node-state", &down, "--cluster", "x", "--node", &down],
            5,
            "is the node running",
        ),
        (&["client", "get", "k"], 2, "--config FILE"),
        (&["client", "get", "k", "--cluster", "x", "--node", "nowhere"], 2, "not a HOST:PORT"),
        (&["client", "get", "k", "-c", "/nonexistent/cluster.ini"], 3, "/nonexistent/cluster.ini"),
    ];
    for (args, code, mentions) in cases {
        let out = admin(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {t}");
        assert_eq!(t.trim().lines().count(), 1, "{args:?}: {t}");
        assert!(t.contains(mentions), "{args:?} should mention {mentions}: {t}");
    }
}

#[test]
fn bench_reports_a_row_per_client_count() {
    let mut cluster = common::cluster(1, "");
    cluster.start(0);
    common::runtime().block_on(cluster.wait_for_master(Duration::from_secs(20)));
    let config = cluster.config_arg();
    let out = admin(&[
        "bench",
        "-c",
        config,
        "--clients",
        "1,4",
        "--duration",
        "1s",
        "--mix",
        "mixed",
        "--keys",
        "50",
        "--json",
    ]);
    expect_code(&out, 0);
    let j = json(&out);
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["clients"], 4);
    for r in runs {
        assert!(r["ops"].as_u64().unwrap() > 0, "{j}");
        assert!(r["p50_us"].as_u64().unwrap() <= r["p99_us"].as_u64().unwrap(), "{j}");
    }
    let out =
        admin(&["bench", "-c", config, "--clients", "2", "--duration", "500ms", "--mix", "get"]);
    expect_code(&out, 0);
    let t = stdout(&out);
    assert!(t.contains("ops/s") && t.contains("p99 ms"), "{t}");
    assert_eq!(t.lines().count(), 2, "{t}");
}

#[test]
fn completions_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let out = admin(&["completions", shell]);
        expect_code(&out, 0);
        assert!(stdout(&out).contains("catchup"), "{shell}");
    }
    for cmd in [
        &["rebuild", "--help"][..],
        &["catchup", "--help"],
        &["store", "dump", "--help"],
        &["store", "verify", "--help"],
        &["client", "--help"],
        &["client", "test-and-set", "--help"],
        &["bench", "--help"],
        &["completions", "--help"],
    ] {
        let out = admin(cmd);
        expect_code(&out, 0);
        assert!(stdout(&out).contains("Example"), "{cmd:?}: {}", stdout(&out));
    }
}
