//! Bringing a sandbox up: the directory checked ([`crate::sandbox_lifecycle::prepare_dir`]), the
//! cluster planned on free loopback ports, the supervisor process started (it owns the nodes and
//! the proxies, [`crate::sandbox_supervisor`]), then a wait until a master is elected, and the
//! supervisor detached so that it outlives the caller. Until it is detached the supervisor is
//! tied to the caller: a failed or interrupted `up` stops it, and with it every node.
//!
//! The supervisor runs as a process of its own; which program runs it is the caller's to say
//! ([`UpPlan::supervisor`]): `arakoon-admin` runs itself as `sandbox supervise`. The CLI parses
//! the arguments, calls [`up`] and prints what it answers.

use crate::process::Process;
use crate::sandbox::{self, SandboxState};
use crate::sandbox_control::{self, ControlError, Refusal, Request};
use crate::sandbox_lifecycle::{self, LifecycleError};
use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::config::ClusterConfig;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// How often a starting sandbox is asked for its master.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long a supervisor told to stop (a failed `up`) may take before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// What to bring up, and where.
#[derive(Debug, Clone)]
pub struct UpPlan {
    pub dir: PathBuf,
    pub nodes: usize,
    pub lease_ms: u64,
    /// Configuration overrides, `key = value`, as `--set` gives them.
    pub settings: Vec<(String, String)>,
    /// The `arakoon` binary the nodes run.
    pub arakoon: PathBuf,
    /// The supervisor exits when this process does (a drill ties its sandbox to itself).
    pub owner_pid: Option<u32>,
    /// The program and arguments that run [`crate::sandbox_supervisor::run`] on `dir`.
    pub supervisor: (PathBuf, Vec<String>),
    /// How long to wait for a master.
    pub timeout: Duration,
    /// Whether Ctrl-C stops the wait ([`UpError::Interrupted`]). Watching for it replaces the
    /// process's default SIGINT action for good, so a caller that goes on afterwards (a drill
    /// bringing up one sandbox per seed) says no, and Ctrl-C ends it as before; its supervisor
    /// follows (PDEATHSIG, then `owner_pid`).
    pub interruptible: bool,
}

/// A sandbox that is up: its master and the supervisor, detached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Up {
    /// The canonical directory.
    pub dir: PathBuf,
    pub master: String,
    /// From the supervisor's start to the master's election.
    pub took: Duration,
    pub supervisor_pid: u32,
}

/// Why a sandbox did not come up (whatever was started is stopped again).
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Dir(#[from] LifecycleError),
    #[error("cannot plan the sandbox in {}: {source}", dir.display())]
    Plan { dir: PathBuf, source: crate::sandbox::SandboxError },
    #[error("cannot start the sandbox's supervisor {}: {source}", program.display())]
    Supervisor { program: PathBuf, source: io::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    #[error("the sandbox supervisor exited ({status}) before a master was elected\n{logs}")]
    SupervisorExited { status: ExitStatus, logs: String },
    #[error("no master within {timeout:?}; the logs say why\n{logs}")]
    NoMaster { timeout: Duration, logs: String },
    #[error("interrupted")]
    Interrupted,
    #[error("cannot detach the supervisor: {0}")]
    Detach(#[from] ControlError),
    /// The supervisor answered the detach with a refusal.
    #[error("{message}")]
    DetachRefused { refusal: Option<Refusal>, message: String },
}

/// The supervisor while `up` waits: stopped (and with it every node) unless released.
struct Starting {
    supervisor: Option<Process>,
}

impl Starting {
    fn release(&mut self) -> u32 {
        self.supervisor.take().map_or(0, Process::release)
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut p) = self.supervisor.take() {
            // SIGTERM: the supervisor stops its nodes cleanly; if it hangs, kill -9, and the
            // kernel kills the nodes (PDEATHSIG).
            let _ = p.terminate(STOP_WITHIN);
        }
    }
}

/// The client settings for polling a starting sandbox: short timeouts, no retries.
pub fn poll_config(config: &ClusterConfig) -> ClientConfig {
    let mut c = ClientConfig::from_cluster(config);
    c.connect_timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(2);
    c.attempts = 1;
    c
}

/// Brings the sandbox of `plan` up and waits for a master; blocks. Ctrl-C meanwhile stops what
/// was started and answers [`UpError::Interrupted`].
pub fn up(plan: &UpPlan) -> Result<Up, UpError> {
    let dir = sandbox_lifecycle::prepare_dir(&plan.dir)?;
    let plan_error = |source| UpError::Plan { dir: dir.clone(), source };
    let (mut state, config) =
        sandbox::plan_with(&dir, plan.nodes, plan.lease_ms, &plan.settings).map_err(plan_error)?;
    state.arakoon_bin = Some(plan.arakoon.clone());
    state.owner_pid = plan.owner_pid;
    state.save(&dir).map_err(|e| plan_error(e.into()))?;

    let (program, args) = &plan.supervisor;
    let log = dir.join("supervisor.log");
    // Tied to this process (SIGTERM when it dies) until detached; in a session of its own so
    // the terminal's Ctrl-C reaches only us, and we decide.
    let supervisor = Process::spawn_with("supervisor", program, args, &log, libc::SIGTERM, true)
        .map_err(|source| UpError::Supervisor { program: program.clone(), source })?;
    let mut starting = Starting { supervisor: Some(supervisor) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UpError::Runtime)?;
    let client = poll_config(&config);
    let (master, took) = runtime.block_on(wait_for_master(
        &dir,
        client,
        &mut starting,
        plan.timeout,
        plan.interruptible,
    ))?;
    let answer = sandbox_control::send(&dir, &Request::Detach)?;
    if !answer.ok {
        return Err(UpError::DetachRefused { refusal: answer.refusal, message: answer.message });
    }
    let supervisor_pid = starting.release();
    Ok(Up { dir, master, took, supervisor_pid })
}

async fn wait_for_master(
    dir: &Path,
    config: ClientConfig,
    starting: &mut Starting,
    timeout: Duration,
    interruptible: bool,
) -> Result<(String, Duration), UpError> {
    let started = Instant::now();
    let interrupted = async move {
        if interruptible {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    loop {
        if let Some(status) = starting.supervisor.as_mut().and_then(Process::exit_status) {
            return Err(UpError::SupervisorExited { status, logs: logs(dir) });
        }
        if started.elapsed() >= timeout {
            return Err(UpError::NoMaster { timeout, logs: logs(dir) });
        }
        let mut client = Client::new(config.clone());
        tokio::select! {
            found = client.find_master() => {
                if let Ok(k) = found {
                    return Ok((config.nodes[k].0.clone(), started.elapsed()));
                }
            }
            _ = &mut interrupted => return Err(UpError::Interrupted),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = &mut interrupted => return Err(UpError::Interrupted),
        }
    }
}

/// The tails of the supervisor's and the nodes' logs, for a failed `up`.
pub fn logs(dir: &Path) -> String {
    let mut parts = vec![sandbox::log_tail(&dir.join("supervisor.log"), 10)];
    if let Ok(state) = SandboxState::load(dir) {
        for n in &state.nodes {
            parts.push(sandbox::log_tail(&sandbox::node_log(dir, &n.name), 5));
        }
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, supervisor: &str) -> UpPlan {
        UpPlan {
            dir: dir.to_path_buf(),
            nodes: 3,
            lease_ms: 1000,
            settings: Vec::new(),
            arakoon: PathBuf::from("/nonexistent/arakoon"),
            owner_pid: None,
            supervisor: (PathBuf::from(supervisor), Vec::new()),
            timeout: Duration::from_secs(5),
            interruptible: true,
        }
    }

    /// A supervisor that dies at once is seen, reported with its logs, and nothing is left
    /// waiting for a master that will never come.
    #[test]
    fn a_supervisor_that_exits_stops_the_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sb");
        let started = Instant::now();
        let e = up(&plan(&dir, "/bin/false")).unwrap_err();
        assert!(matches!(e, UpError::SupervisorExited { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "it waited {:?}", started.elapsed());
        // The plan was written: `sandbox status` and `down` find the sandbox.
        assert!(SandboxState::load(&dir).is_ok());
    }

    #[test]
    fn a_supervisor_that_cannot_start_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let e = up(&plan(&tmp.path().join("sb"), "/nonexistent/supervisor")).unwrap_err();
        assert!(matches!(e, UpError::Supervisor { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/supervisor"), "{e}");
    }

    #[test]
    fn a_directory_of_someone_elses_files_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let e = up(&plan(tmp.path(), "/bin/false")).unwrap_err();
        assert!(matches!(e, UpError::Dir(LifecycleError::NotEmpty { .. })), "{e:?}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(), "mine");
    }
}
