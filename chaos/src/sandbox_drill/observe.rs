//! The observer of a sandbox seed: it polls the nodes (the supervisor's state for processes,
//! each node's typed `node_state` for its role) to draw the node lanes of the report's timeline
//! (roles, master changes, restarts) and to keep the watcher's status current.

use super::Shared;
use crate::sandbox::SandboxState;
use crate::watch::Status;
use arakoon_node::client::{Client, ClientConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the observer polls the nodes; a role held for less may not be seen.
const OBSERVE_EVERY_MS: u64 = 150;
/// How long the observer waits for a node's answer before calling it "starting".
const OBSERVE_TIMEOUT_MS: u64 = 300;

/// Role changes seen (time in ms, node, role) and new processes of a node (time in ms, node).
pub(super) type Seen = (Vec<(u64, usize, String)>, Vec<(u64, usize)>);

/// Polls the nodes until the run is over: records role changes and new processes for the
/// timeline, and shows the run's status on the live display.
pub(super) async fn observe(
    dir: PathBuf,
    cfg: ClientConfig,
    shared: Arc<Shared>,
    (drill, seed): (String, u64),
) -> Seen {
    use std::sync::atomic::Ordering::SeqCst;
    let mut probe_cfg = cfg;
    probe_cfg.request_timeout = Duration::from_millis(OBSERVE_TIMEOUT_MS);
    probe_cfg.connect_timeout = Duration::from_millis(OBSERVE_TIMEOUT_MS);
    probe_cfg.attempts = 1;
    let probe = Client::new(probe_cfg);
    let mut roles: Vec<(u64, usize, String)> = Vec::new();
    let mut restarts: Vec<(u64, usize)> = Vec::new();
    let mut last_role: Vec<Option<String>> = Vec::new();
    let mut last_pid: Vec<Option<u32>> = Vec::new();
    let mut master: Option<String> = None;
    let mut first_poll = true;
    // Bounded by the run: the runner sets `observed_enough` once the final reads are over.
    while !shared.observed_enough.load(SeqCst) {
        let at = shared.now_us() / 1000;
        if let Ok(s) = SandboxState::load(&dir) {
            last_role.resize(s.nodes.len(), None);
            last_pid.resize(s.nodes.len(), None);
            let mut masters = Vec::new();
            for (k, n) in s.nodes.iter().enumerate() {
                let role = match n.pid {
                    None => "down".to_string(),
                    Some(_) if n.paused => "paused".to_string(),
                    Some(_) => match crate::sandbox_view::ask_state(&probe, k).await {
                        Ok(view) => {
                            if view.holds_the_lease() {
                                masters.push(n.name.clone());
                            }
                            view.role.unwrap_or_else(|| "starting".into())
                        }
                        Err(_) => "starting".to_string(),
                    },
                };
                if last_role[k].as_deref() != Some(role.as_str()) {
                    roles.push((at, k, role.clone()));
                    last_role[k] = Some(role);
                }
                // A pid it did not have at the last poll: the node's process started again.
                if !first_poll && n.pid.is_some() && n.pid != last_pid[k] {
                    restarts.push((at, k));
                }
                last_pid[k] = n.pid;
            }
            // Polls are not simultaneous: with two claims, the display names neither.
            master = if masters.len() == 1 { masters.pop() } else { None };
            first_poll = false;
        }
        let (faults, latest_fault) = {
            let log = shared.faults.lock().expect("fault log");
            (log.len(), log.last().map(|(_, what)| what.clone()))
        };
        shared.watch.status(&Status {
            drill: drill.clone(),
            seed,
            elapsed_ms: at,
            ops_ok: shared.ok.load(SeqCst),
            ops_failed: shared.failed.load(SeqCst),
            ops_unknown: shared.unknown.load(SeqCst),
            faults,
            latest_fault,
            master: master.clone(),
            done: false,
        });
        tokio::time::sleep(Duration::from_millis(OBSERVE_EVERY_MS)).await;
    }
    (roles, restarts)
}
