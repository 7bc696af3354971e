//! A sandbox's life outside its supervisor: the directory checked before one is brought up
//! ([`prepare_dir`]), and a sandbox brought down ([`down`]): the supervisor asked to stop (then
//! killed if it does not), any process of the sandbox left behind killed, its files deleted or
//! kept for inspection. The CLI's `sandbox up` and `sandbox down` call these and print what they
//! say; a drill on the sandbox tier brings its sandbox down with them too.

use crate::process;
use crate::sandbox::{self, SandboxState, SOCKET_PATH_BYTES_MAX};
use crate::sandbox_control::{self, Request};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a supervisor asked to stop may take before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(15);
/// How long a killed supervisor may take to be gone.
const KILLED_WITHIN: Duration = Duration::from_secs(5);

/// Why a sandbox could not be brought up in a directory, or down.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot create {}: {source}", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("{}: {source}", dir.display())]
    Read { dir: PathBuf, source: io::Error },
    /// The sandbox's state file (the error names it).
    #[error(transparent)]
    State(#[from] crate::sandbox::SandboxError),
    #[error("a sandbox already runs in {dir} (supervisor pid {pid}); `arakoon-admin sandbox status --dir {dir}` shows it, `sandbox down --dir {dir}` stops it", dir = dir.display())]
    AlreadyRunning { dir: PathBuf, pid: u32 },
    #[error("{dir} holds a sandbox that is down (its data kept for inspection); `arakoon-admin sandbox down --dir {dir} --clean` deletes it, or choose another --dir", dir = dir.display())]
    DownButKept { dir: PathBuf },
    #[error("{} is not empty and holds no sandbox; choose a new or empty --dir", dir.display())]
    NotEmpty { dir: PathBuf },
    #[error("--dir {} is too long: the control socket {} would pass the {SOCKET_PATH_BYTES_MAX} bytes a Unix socket path may have; choose a shorter --dir", dir.display(), socket.display())]
    PathTooLong { dir: PathBuf, socket: PathBuf },
    #[error("cannot delete {}: {source}", dir.display())]
    Delete { dir: PathBuf, source: io::Error },
}

/// Creates (or checks) a sandbox directory: new or empty, never someone's files; returns its
/// canonical path.
pub fn prepare_dir(dir: &Path) -> Result<PathBuf, LifecycleError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| LifecycleError::Create { dir: dir.to_path_buf(), source })?;
    let dir = dir
        .canonicalize()
        .map_err(|source| LifecycleError::Read { dir: dir.to_path_buf(), source })?;
    if dir.join("sandbox.json").exists() {
        let state = SandboxState::load(&dir)?;
        return Err(match state.running_supervisor() {
            Some(pid) => LifecycleError::AlreadyRunning { dir, pid },
            None => LifecycleError::DownButKept { dir },
        });
    }
    let empty = std::fs::read_dir(&dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    if !empty {
        return Err(LifecycleError::NotEmpty { dir });
    }
    let socket = sandbox::socket_path(&dir);
    if socket.as_os_str().len() > SOCKET_PATH_BYTES_MAX {
        return Err(LifecycleError::PathTooLong { dir, socket });
    }
    Ok(dir)
}

/// Brings the sandbox in `dir` down: the supervisor stopped (its nodes with it), leftovers
/// killed; with `clean` the directory deleted, else its state marked down and its files kept.
/// Returns what was done, a line each, for the caller to show.
pub fn down(dir: &Path, clean: bool) -> Result<Vec<String>, LifecycleError> {
    let read = |source| LifecycleError::Read { dir: dir.to_path_buf(), source };
    let state = SandboxState::load(dir)?;
    let dir = dir.canonicalize().map_err(read)?;
    let shown = dir.display();
    let mut said = Vec::new();
    match state.running_supervisor() {
        Some(pid) => {
            match sandbox_control::send(&dir, &Request::Shutdown) {
                Ok(answer) => said.push(answer.message),
                Err(e) => {
                    said.push(format!(
                        "the supervisor did not answer ({e}); killing it (pid {pid})"
                    ));
                    let _ = process::term_pid(pid);
                }
            }
            if !wait_gone(pid, STOP_WITHIN) {
                said.push(format!("the supervisor (pid {pid}) is still there; kill -9"));
                let _ = process::kill_pid(pid);
                wait_gone(pid, KILLED_WITHIN);
            }
            said.push(format!("supervisor (pid {pid}) stopped; the peer-link proxies are gone"));
        }
        None => said.push("the supervisor was not running".to_string()),
    }
    // Anything left of this sandbox (a supervisor killed mid-way leaves nothing, as its nodes
    // die with it; this is the belt to those braces).
    for pid in sandbox::processes_of(&dir) {
        let _ = process::kill_pid(pid);
        said.push(format!("killed leftover process {pid}"));
    }
    if clean {
        std::fs::remove_dir_all(&dir)
            .map_err(|source| LifecycleError::Delete { dir: dir.clone(), source })?;
        said.push(format!("deleted {shown}"));
    } else {
        if let Ok(mut state) = SandboxState::load(&dir) {
            state.supervisor_pid = None;
            for n in &mut state.nodes {
                n.pid = None;
                n.paused = false;
            }
            let _ = state.save(&dir);
        }
        said.push(format!(
            "data kept in {shown} for inspection: logs {shown}/<node>/node.log, TLogs \
             {shown}/<node>/home/tlogs (arakoon-admin tlog list ...); `arakoon-admin sandbox down \
             --dir {shown} --clean` deletes it"
        ));
    }
    Ok(said)
}

/// Waits (at most `within`) until the process has ended; whether it has.
pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while process::pid_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_taken_when_new_or_empty_and_refused_when_it_holds_files_or_a_sandbox() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let new = tmp.path().join("new");
        assert_eq!(prepare_dir(&new).expect("new dir"), new.canonicalize().unwrap());
        std::fs::write(new.join("notes.txt"), b"mine").unwrap();
        let e = prepare_dir(&new).expect_err("not empty");
        assert!(matches!(e, LifecycleError::NotEmpty { .. }), "{e}");
        let long = tmp.path().join("x".repeat(120));
        let e = prepare_dir(&long).expect_err("too long");
        assert!(e.to_string().contains("choose a shorter --dir"), "{e}");
        assert!(matches!(e, LifecycleError::PathTooLong { .. }), "{e:?}");
    }

    #[test]
    fn down_without_a_sandbox_says_where_it_looked_and_with_a_stopped_one_cleans_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let e = down(tmp.path(), false).expect_err("no sandbox");
        assert!(e.to_string().starts_with(&tmp.path().display().to_string()), "{e}");
        let dir = tmp.path().join("s");
        std::fs::create_dir_all(&dir).unwrap();
        let (state, _) = sandbox::plan_with(&dir, 3, 1000, &[]).expect("plan");
        state.save(&dir).expect("save");
        let e = prepare_dir(&dir).expect_err("holds a sandbox");
        assert!(matches!(e, LifecycleError::DownButKept { .. }), "{e}");
        let said = down(&dir, true).expect("down");
        assert_eq!(said.first().map(String::as_str), Some("the supervisor was not running"));
        assert!(!dir.exists(), "{said:?}");
    }
}
