//! `arakoon_chaos::sandbox_drill`, and the `sandbox_up`, `sandbox_view` and `sandbox_lifecycle`
//! under it, on real processes: a 3-node sandbox of `arakoon` on loopback (free ports, real sled
//! and fsync) for each test, a short drill played on it by the one drill engine (or the sandbox
//! brought up, looked at and taken down directly), and afterwards no process of it left (every
//! one stopped by PID, the supervisor reaped) and no directory.
//!
//! The supervisor of a sandbox runs as a process of its own; here it is this test binary,
//! started again as `<test> supervise --dir D` (hence `harness = false` and a `main` of its
//! own). The nodes run the `arakoon` binary beside the test binary (built once with `cargo build
//! -p arakoon-node --bin arakoon` into the same target directory when it is missing, or
//! `$ARAKOON_BIN`). Each test is bounded: the drill's duration, 30 s for the nodes to come up and
//! 30 s for them to settle.

use arakoon_chaos::drill::{self, Drill};
use arakoon_chaos::process::locate_binary;
use arakoon_chaos::sandbox;
use arakoon_chaos::sandbox_drill::{self, RunPlan, SandboxDrillError, SandboxRun};
use arakoon_chaos::sandbox_up::{self, UpPlan};
use arakoon_chaos::sandbox_view::{self, Process, StatusError};
use arakoon_chaos::watch::{Status, Watch};
use arakoon_chaos::{sandbox_control, sandbox_lifecycle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run told its watcher.
#[derive(Default)]
struct Seen {
    faults: Mutex<Vec<(u64, String)>>,
    statuses: Mutex<Vec<Status>>,
}

impl Watch for Seen {
    fn fault(&self, at_ms: u64, what: &str) {
        self.faults.lock().unwrap().push((at_ms, what.to_string()));
    }

    fn status(&self, status: &Status) {
        self.statuses.lock().unwrap().push(status.clone());
    }
}

/// The `arakoon` binary, built into this target directory if it is not there yet.
fn arakoon() -> PathBuf {
    if let Ok(p) = locate_binary("arakoon") {
        return p;
    }
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "arakoon-node", "--bin", "arakoon"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p arakoon-node --bin arakoon failed");
    locate_binary("arakoon").expect("arakoon beside the test binary after the build")
}

fn plan(base: &Path, arakoon: PathBuf) -> RunPlan {
    RunPlan {
        base: base.to_path_buf(),
        arakoon,
        supervisor: (std::env::current_exe().unwrap(), vec!["supervise".into()]),
        keep_logs: true,
        up_within: Duration::from_secs(30),
    }
}

fn drill(yaml: &str) -> Drill {
    drill::parse(yaml, "test.yaml", None).unwrap_or_else(|e| panic!("{e}"))
}

/// The seed's directory, as the runner names it.
fn seed_dir(base: &Path, d: &Drill, seed: u64) -> PathBuf {
    base.join(format!("sandbox-{}-{seed}-{}", d.name, std::process::id()))
}

/// Nothing of the seed is left: no process mentions its directory, the directory is gone, and
/// this process has no child (the supervisor was reaped, not left a zombie).
#[track_caller]
fn nothing_left(dir: &Path) {
    assert_eq!(sandbox::processes_of(dir), Vec::<u32>::new(), "processes of {}", dir.display());
    assert!(!dir.exists(), "{} was not removed", dir.display());
    let mut status = 0;
    // SAFETY: waitpid(2) with a valid pointer to a local int.
    let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    assert_eq!(rc, -1, "a child of the test was left (pid {rc}): the supervisor was not reaped");
}

fn explain(run: &SandboxRun) -> String {
    let logs: Vec<String> = run.logs.iter().map(|(n, t)| format!("--- {n}\n{t}")).collect();
    format!("{}\n{:?}\n{}", run.verdict, run.fault_log, logs.join("\n"))
}

/// The drill engine strikes the master it finds on real processes, a new one is elected, the
/// old one restarts and catches up; the history is linearizable; the watcher saw every fault
/// and the status while it ran; the timeline has the roles and the restart.
fn a_master_killed_and_restarted_passes_and_leaves_nothing(base: &Path, arakoon: PathBuf) {
    let d = drill(
        "name: kill-restart\n\
         cluster: { nodes: 3, lease: 1s }\n\
         workload: { clients: 2, keys: 4, op_timeout: 2s }\n\
         duration: 8s\n\
         steps:\n  \
           - at: 2s\n    kill: master\n  \
           - wait_until: master_elected\n    timeout: 4s\n  \
           - after: 1s\n    restart: down\n  \
           - wait_until: all_in_sync\n    timeout: 10s\n\
         expect: [linearizable, no_lost_writes, in_sync]\n",
    );
    let seen = Arc::new(Seen::default());
    let run = sandbox_drill::run(&d, 0, &plan(base, arakoon), seen.clone()).unwrap();
    assert!(run.passed, "{}", explain(&run));
    assert_eq!(run.linearizability, "linearizable");
    assert!(run.ops_ok > 0, "no operation succeeded");
    let struck = |prefix: &str| run.fault_log.iter().any(|(_, f)| f.starts_with(prefix));
    assert!(struck("kill master (n"), "{:?}", run.fault_log);
    assert!(struck("restart down (n"), "{:?}", run.fault_log);
    assert_eq!(*seen.faults.lock().unwrap(), run.fault_log, "the watcher saw another fault log");
    let statuses = seen.statuses.lock().unwrap();
    assert!(statuses.len() >= 10, "{} statuses in an 8 s run", statuses.len());
    assert!(statuses.iter().any(|s| s.master.is_some()), "no status named a master");
    assert!(run.roles.iter().any(|(_, _, r)| r == "master"), "{:?}", run.roles);
    assert!(run.roles.iter().any(|(_, _, r)| r == "down"), "{:?}", run.roles);
    assert!(!run.restarts.is_empty(), "the restart was not seen");
    assert!(run.logs.iter().any(|(n, _)| n == "supervisor.log"), "{} logs", run.logs.len());
    nothing_left(&seed_dir(base, &d, 0));
}

/// A step the supervisor refuses (damaging the files of a running node) fails the seed, and the
/// verdict carries the supervisor's reason and what to do instead.
fn a_refused_step_fails_the_seed_with_the_reason(base: &Path, arakoon: PathBuf) {
    let d = drill(
        "name: refused\n\
         cluster: { nodes: 3, lease: 1s }\n\
         workload: { clients: 1, keys: 2 }\n\
         duration: 3s\n\
         steps:\n  \
           - at: 1s\n    bitflip: slave\n    file: tlog\n",
    );
    let run = sandbox_drill::run(&d, 1, &plan(base, arakoon), Arc::new(Seen::default())).unwrap();
    assert!(!run.passed, "{}", explain(&run));
    assert!(run.verdict.contains("it is running"), "{}", run.verdict);
    assert!(run.verdict.contains("sandbox stop"), "{}", run.verdict);
    nothing_left(&seed_dir(base, &d, 1));
}

/// A sandbox whose nodes cannot start is an error that names the directory and says why, and
/// whatever was started is gone.
fn a_sandbox_that_cannot_come_up_says_where_and_leaves_nothing(base: &Path, _: PathBuf) {
    let d = drill("name: no-binary\ncluster: { nodes: 3, lease: 1s }\nduration: 1s\nsteps: []\n");
    let started = Instant::now();
    let e = sandbox_drill::run(
        &d,
        2,
        &plan(base, PathBuf::from("/nonexistent/arakoon")),
        Arc::new(Seen::default()),
    )
    .unwrap_err();
    assert!(matches!(e, SandboxDrillError::Up { .. }), "{e:?}");
    let dir = seed_dir(base, &d, 2);
    assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    assert!(e.to_string().contains("/nonexistent/arakoon"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "it took {:?}", started.elapsed());
    nothing_left(&dir);
}

/// The library without the drill: a sandbox comes up with a master, its status shows every
/// node running and one master, a node killed through the supervisor shows as stopped, and
/// `down` stops every process and removes the directory.
fn a_sandbox_comes_up_shows_its_status_and_goes_down(base: &Path, arakoon: PathBuf) {
    let dir = base.join("sb");
    let plan = UpPlan {
        dir: dir.clone(),
        nodes: 3,
        lease_ms: 1000,
        settings: Vec::new(),
        arakoon,
        owner_pid: Some(std::process::id()),
        supervisor: (
            std::env::current_exe().unwrap(),
            vec!["supervise".into(), "--dir".into(), dir.display().to_string()],
        ),
        timeout: Duration::from_secs(30),
        interruptible: false,
    };
    let up = sandbox_up::up(&plan).unwrap();
    let status = sandbox_view::status(&dir).unwrap();
    assert_eq!(status.supervisor, Some(up.supervisor_pid));
    let running: Vec<&str> = status.nodes.iter().map(|n| n.process.name()).collect();
    assert_eq!(running, ["running"; 3]);
    // The master `up` saw may have lost its lease since; some node holds one within a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut masters = status.masters;
    while masters.len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        masters = sandbox_view::status(&dir).unwrap().masters;
    }
    assert_eq!(masters.len(), 1, "{masters:?}");
    let answer =
        sandbox_control::send(&dir, &sandbox_control::Request::Kill { node: "n1".into() }).unwrap();
    assert!(answer.ok, "{answer:?}");
    let status = sandbox_view::status(&dir).unwrap();
    assert_eq!(status.nodes[1].process, Process::Stopped);
    let said = sandbox_lifecycle::down(&dir, true).unwrap();
    assert!(!said.is_empty());
    // The supervisor is this process's child: reap it (down saw it gone).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child, with a valid pointer to a local int.
    while unsafe { libc::waitpid(up.supervisor_pid as i32, &mut status, libc::WNOHANG) } == 0 {
        assert!(Instant::now() < deadline, "the supervisor did not exit after down");
        std::thread::sleep(Duration::from_millis(10));
    }
    nothing_left(&dir);
    let gone = sandbox_view::status(&dir).unwrap_err();
    assert!(matches!(gone, StatusError::State { .. }), "{gone:?}");
}

type Test = fn(&Path, PathBuf);

const TESTS: [(&str, Test); 4] = [
    (
        "a_master_killed_and_restarted_passes_and_leaves_nothing",
        a_master_killed_and_restarted_passes_and_leaves_nothing,
    ),
    (
        "a_refused_step_fails_the_seed_with_the_reason",
        a_refused_step_fails_the_seed_with_the_reason,
    ),
    (
        "a_sandbox_that_cannot_come_up_says_where_and_leaves_nothing",
        a_sandbox_that_cannot_come_up_says_where_and_leaves_nothing,
    ),
    (
        "a_sandbox_comes_up_shows_its_status_and_goes_down",
        a_sandbox_comes_up_shows_its_status_and_goes_down,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Started again by a sandbox as its supervisor.
    if args.get(1).map(String::as_str) == Some("supervise") {
        let dir = match &args[2..] {
            [flag, dir] if flag == "--dir" => PathBuf::from(dir),
            other => panic!("supervise --dir DIR, not {other:?}"),
        };
        if let Err(e) = arakoon_chaos::sandbox_supervisor::run(&dir) {
            eprintln!("supervisor for {}: {e}", dir.display());
            std::process::exit(3);
        }
        return;
    }
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    // `cargo test` passes its filters and flags on: a name given selects the tests with it in.
    let filter: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let arakoon = arakoon();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in TESTS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let base = tempfile::tempdir().unwrap();
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(|| test(base.path(), arakoon.clone()));
        let took = began.elapsed().as_secs_f64();
        if outcome.is_ok() {
            println!("test {name} ... ok ({took:.1} s)");
        } else {
            println!("test {name} ... FAILED ({took:.1} s)");
            failed.push(name);
        }
    }
    println!("\n{ran} run, {} failed: {failed:?}", failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
