//! What the crash tests share: a printed, replayable seed, and a child process (this same test
//! binary, running one named test) that reports progress on stdout until it is killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// The seed from `ARAKOON_CRASH_SEED`, or a fresh one; printed with the command that replays it.
pub fn crash_seed(test: &str) -> u64 {
    let seed = std::env::var("ARAKOON_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
        });
    println!("{test} seed {seed} (replay: ARAKOON_CRASH_SEED={seed} cargo test -p arakoon-node --test {test})");
    seed
}

/// Starts `test` of this binary as a child with `env=dir`; the thread returns the last number
/// the child printed after `prefix` before it died.
pub fn spawn_reporter(
    test: &str,
    env: &str,
    dir: &Path,
    prefix: &'static str,
) -> (Child, JoinHandle<Option<u64>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix(prefix) {
                last = Some(i.trim().parse::<u64>().unwrap());
            }
        }
        last
    });
    (child, reader)
}
