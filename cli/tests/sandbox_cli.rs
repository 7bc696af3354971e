//! `arakoon-admin sandbox ...` run as a binary: real 3-node sandboxes of `arakoon` processes on
//! loopback, partitioned, healed, killed, restarted, corrupted, wiped and taken down; and `up`
//! failing or interrupted, which must leave no process behind.
//!
//! The `arakoon` binary must be beside `arakoon-admin` (`cargo build -p arakoon-node --bin
//! arakoon` with the same target directory). Every sandbox is taken down by a drop guard, and is
//! started with `--exit-with-pid` so that it goes down by itself should this test process die.

use arakoon_chaos::process::{pid_alive, pids_where};
use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::config::ClusterConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn admin_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_arakoon-admin"))
}

fn admin(args: &[&str]) -> Output {
    Command::new(admin_path()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[track_caller]
fn expect_code(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

/// Fails with the command that fixes it when `arakoon` was not built.
fn require_arakoon() {
    let binary = admin_path().with_file_name("arakoon");
    assert!(
        binary.is_file(),
        "{} is missing: the sandbox runs real nodes; build them first with `cargo build -p \
         arakoon-node --bin arakoon` (with the same CARGO_TARGET_DIR as this test)",
        binary.display()
    );
}

/// Polls `probe` every 200 ms until it gives a value, for at most `within`.
#[track_caller]
fn wait_until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running sandbox, taken down when dropped.
struct Sandbox {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    down: bool,
}

impl Sandbox {
    fn up(nodes: usize, lease_ms: u64) -> Sandbox {
        Sandbox::up_with(nodes, lease_ms, &[])
    }

    /// `up` with extra arguments (`--set KEY=VALUE`).
    fn up_with(nodes: usize, lease_ms: u64, extra: &[&str]) -> Sandbox {
        require_arakoon();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sb");
        let me = std::process::id().to_string();
        let out = admin(
            &[
                "sandbox",
                "up",
                "--nodes",
                &nodes.to_string(),
                "--lease-ms",
                &lease_ms.to_string(),
                "--timeout",
                "60s",
                "--exit-with-pid",
                &me,
                "--dir",
                dir.to_str().unwrap(),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
        );
        // The guard exists before the first assertion, so a failed `up` is cleaned too.
        let sandbox = Sandbox { _tmp: tmp, dir, down: false };
        expect_code(&out, 0);
        assert!(text(&out).contains("sandbox up in"), "{}", text(&out));
        sandbox
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = vec!["sandbox"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", self.dir.to_str().unwrap()]);
        admin(&all)
    }

    fn status(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        expect_code(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
        status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap()
    }

    /// The master every running node agrees on, with a valid lease.
    fn agreed_master(&self) -> Option<String> {
        let s = self.status();
        let master = s["master"].as_str()?.to_string();
        let running = s["nodes"].as_array()?.iter().filter(|n| n["process"] == "running");
        running.clone().all(|n| n["master"] == master.as_str()).then_some(master)
    }

    fn config(&self) -> ClusterConfig {
        ClusterConfig::load(&self.dir.join("cluster.ini")).unwrap()
    }

    /// A client of only the nodes named.
    fn client_of(&self, names: &[&str]) -> Client {
        let mut c = ClientConfig::from_cluster(&self.config());
        c.nodes.retain(|(n, _)| names.contains(&n.as_str()));
        c.request_timeout = Duration::from_secs(5);
        c.attempts = 40;
        Client::new(c)
    }

    fn down(&mut self) -> Output {
        self.down = true;
        self.run(&["down"])
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.run(&["down"]);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn pid_of(status: &Value, name: &str) -> u32 {
    Sandbox::node(status, name)["pid"].as_u64().unwrap() as u32
}

#[test]
fn a_sandbox_fails_over_under_a_partition_heals_restarts_a_node_and_goes_down_cleanly() {
    let mut sb = Sandbox::up(3, 1500);
    let rt = runtime();
    let names = ["n0", "n1", "n2"];

    let first = sb.status();
    let old = first["master"].as_str().expect("up returns once a master is elected").to_string();
    for n in names {
        assert_eq!(Sandbox::node(&first, n)["process"], "running", "{first}");
    }
    rt.block_on(sb.client_of(&names).set(b"before", b"1")).unwrap();

    // The master alone on one side: the majority elects a new master and takes writes.
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != old).collect();
    let out = sb.run(&["partition", &old, &others.join(",")]);
    expect_code(&out, 0);
    assert!(text(&out).contains("links cut"), "{}", text(&out));
    let new = wait_until("a master on the majority side", Duration::from_secs(45), || {
        let s = sb.status();
        s["master"].as_str().filter(|m| others.contains(m)).map(str::to_string)
    });
    assert_ne!(new, old);
    rt.block_on(sb.client_of(&others).set(b"during", b"2")).unwrap();

    let out = sb.run(&["heal"]);
    expect_code(&out, 0);
    let after_heal = wait_until("every node agrees on one master", Duration::from_secs(45), || {
        sb.agreed_master()
    });
    let value = rt.block_on(sb.client_of(&names).get(b"during")).unwrap();
    assert_eq!(value, b"2", "the write on the majority side survived the heal");

    // A slave killed; commands on it say it is not running; writes go on; it catches up.
    let victim = *names.iter().find(|n| **n != after_heal).unwrap();
    expect_code(&sb.run(&["kill", victim]), 0);
    let s = sb.status();
    assert_eq!(Sandbox::node(&s, victim)["process"], "stopped", "{s}");
    let out = sb.run(&["pause", victim]);
    expect_code(&out, 3);
    assert!(text(&out).contains("not running"), "{}", text(&out));
    rt.block_on(async {
        let mut c = sb.client_of(&names);
        for k in 0..50u32 {
            c.set(format!("while-down-{k}").as_bytes(), b"v").await.unwrap();
        }
    });
    let target = {
        let s = sb.status();
        let m = s["master"].as_str().unwrap().to_string();
        Sandbox::node(&s, &m)["applied"].as_u64().unwrap()
    };
    let out = sb.run(&["restart", victim]);
    expect_code(&out, 0);
    assert!(text(&out).contains("started"), "{}", text(&out));
    wait_until("the restarted node catches up", Duration::from_secs(45), || {
        let s = sb.status();
        let n = Sandbox::node(&s, victim);
        (n["process"] == "running" && n["applied"].as_u64() >= Some(target)).then_some(())
    });

    // Down: every process of the sandbox ends.
    let s = sb.status();
    let supervisor = s["supervisor"]["pid"].as_u64().unwrap() as u32;
    let pids: Vec<u32> = names.iter().map(|n| pid_of(&s, n)).collect();
    let out = sb.down();
    expect_code(&out, 0);
    assert!(text(&out).contains("data kept in"), "{}", text(&out));
    for pid in pids.iter().chain([&supervisor]) {
        assert!(!pid_alive(*pid), "pid {pid} is still running after down\n{}", text(&out));
    }
    let dir = sb.dir.display().to_string();
    let left = pids_where(|args| args.iter().any(|a| a.starts_with(&dir)));
    assert!(left.is_empty(), "processes of the sandbox left: {left:?}");
    // The data stays for inspection, and a down sandbox says so.
    assert!(sb.dir.join("n0/home/tlogs/000.tlog").exists());
    let out = sb.run(&["kill", "n0"]);
    expect_code(&out, 5);
    assert!(text(&out).contains("not running"), "{}", text(&out));
}

#[test]
fn corruption_is_refused_on_a_running_node_and_a_wipe_repairs_it_from_a_peer() {
    let sb = Sandbox::up(3, 1500);
    let rt = runtime();
    let master = sb.status()["master"].as_str().unwrap().to_string();
    let victim = ["n0", "n1", "n2"].into_iter().find(|n| *n != master).unwrap();
    rt.block_on(async {
        let mut c = sb.client_of(&["n0", "n1", "n2"]);
        for k in 0..30u32 {
            c.set(format!("key{k}").as_bytes(), b"value").await.unwrap();
        }
    });

    let out = sb.run(&["corrupt", victim, "--tlog", "--bitflip"]);
    expect_code(&out, 3);
    assert!(text(&out).contains("it is running"), "{}", text(&out));

    expect_code(&sb.run(&["stop", victim]), 0);
    let out = sb.run(&["corrupt", victim, "--tlog", "--bitflip"]);
    expect_code(&out, 0);
    assert!(text(&out).contains("flipped bit"), "{}", text(&out));

    // The node refuses its damaged TLog at start; the restart says so, with the node's words.
    let out = sb.run(&["restart", victim]);
    expect_code(&out, 3);
    assert!(text(&out).contains("did not stay up"), "{}", text(&out));
    assert!(text(&out).contains("checksum"), "{}", text(&out));

    let out = sb.run(&["wipe", victim]);
    expect_code(&out, 0);
    let t = text(&out);
    assert!(t.contains("deleted its home") && t.contains("-catchup-only"), "{t}");
    let target = {
        let s = sb.status();
        Sandbox::node(&s, &master)["applied"].as_u64().unwrap()
    };
    wait_until("the wiped node is level again", Duration::from_secs(45), || {
        let s = sb.status();
        let n = Sandbox::node(&s, victim);
        (n["process"] == "running" && n["applied"].as_u64() >= Some(target)).then_some(())
    });
}

/// A fake `arakoon` for `up --arakoon`: a shell script.
fn fake_arakoon(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("arakoon");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Live processes with an argument under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    pids_where(|args| args.iter().any(|a| a.starts_with(&dir)))
}

#[test]
fn a_failed_or_interrupted_up_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();

    // Nodes that exit at once: up fails, naming what the node said.
    let failing = fake_arakoon(tmp.path(), "echo 'refusing to start' >&2; exit 3");
    let dir = tmp.path().join("failing");
    let d = dir.to_str().unwrap();
    let out = admin(&["sandbox", "up", "--dir", d, "--arakoon", failing.to_str().unwrap()]);
    expect_code(&out, 3);
    assert!(text(&out).contains("refusing to start"), "{}", text(&out));
    wait_until("no process of the failed sandbox", Duration::from_secs(10), || {
        processes_under(&dir).is_empty().then_some(())
    });

    // Nodes that never elect a master: Ctrl-C on up's wait stops everything it started.
    let mute_dir = tmp.path().join("mute");
    std::fs::create_dir(&mute_dir).unwrap();
    let mute = fake_arakoon(&mute_dir, "while true; do sleep 0.1; done");
    let dir = tmp.path().join("interrupted");
    let mut up = Command::new(admin_path())
        .args(["sandbox", "up", "--timeout", "2m", "--dir", dir.to_str().unwrap()])
        .args(["--arakoon", mute.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the fake nodes run", Duration::from_secs(20), || {
        (processes_under(&dir).len() >= 4).then_some(())
    });
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(up.id() as i32, libc::SIGINT);
    }
    let status =
        wait_until("up ends after Ctrl-C", Duration::from_secs(60), || up.try_wait().unwrap());
    assert_eq!(status.code(), Some(130), "{:?}", up.wait_with_output());
    wait_until("no process of the interrupted sandbox", Duration::from_secs(10), || {
        processes_under(&dir).is_empty().then_some(())
    });
}

/// `up --set` reaches the nodes: with ten entries a TLog file, thirty writes fill several files.
#[test]
fn settings_given_to_up_are_what_the_nodes_run_with() {
    let mut sandbox = Sandbox::up_with(1, 1000, &["--set", "tlog_max_entries=10"]);
    assert_eq!(sandbox.config().tlog_max_entries, 10);
    let mut client = sandbox.client_of(&["n0"]);
    runtime().block_on(async {
        for k in 0..30 {
            client.set(format!("k{k}").as_bytes(), b"v").await.unwrap();
        }
    });
    let tlogs = sandbox.dir.join("n0").join("home").join("tlogs");
    let files = std::fs::read_dir(&tlogs)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tlog"))
        .count();
    assert!(files >= 3, "{files} TLog file(s) in {} for 30 writes", tlogs.display());
    expect_code(&sandbox.down(), 0);
}

#[test]
fn every_sandbox_command_has_help_with_an_example_and_bad_input_is_refused() {
    for sub in [
        "up",
        "status",
        "kill",
        "stop",
        "pause",
        "resume",
        "restart",
        "wipe",
        "partition",
        "heal",
        "corrupt",
        "down",
    ] {
        let out = admin(&["sandbox", sub, "--help"]);
        expect_code(&out, 0);
        assert!(text(&out).contains("Example"), "sandbox {sub} --help: {}", text(&out));
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = admin(&["sandbox", "status", "--dir", d]);
    expect_code(&out, 3);
    assert!(text(&out).contains("sandbox up"), "{}", text(&out));
    let out = admin(&["sandbox", "up", "--nodes", "0", "--dir", d]);
    expect_code(&out, 2);
    let out = admin(&["sandbox", "corrupt", "n0", "--tlog", "--dir", d]);
    expect_code(&out, 2);
    let out = admin(&["sandbox", "up", "--set", "quorum=4", "--dir", d]);
    expect_code(&out, 3);
    assert!(text(&out).contains("[global] quorum"), "{}", text(&out));
    let out = admin(&["sandbox", "up", "--set", "quorum", "--dir", d]);
    expect_code(&out, 2);
    std::fs::write(tmp.path().join("precious"), "x").unwrap();
    let out = admin(&["sandbox", "up", "--dir", d]);
    expect_code(&out, 3);
    assert!(text(&out).contains("not empty"), "{}", text(&out));
}
