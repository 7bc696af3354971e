//! The sandbox's primitives for the one drill engine: the view comes from the supervisor's
//! state and the nodes' answers; a fault is applied with the supervisor's control requests, the
//! proxies' link states, files changed on disk and `collapse_tlogs` requests. [`settle`] heals
//! the cluster after a run and waits until every node has caught up.

use super::collapse::{collapse_once, collapse_series, CollapseTally, COLLAPSE_EVERY_MS};
use crate::director::{
    bridge_link, bridge_node, ring_link, Backend, BackendError, ClusterView, Resolved, Strikes,
};
use crate::drill::Condition;
use crate::faults::Fault;
use crate::proxy::{LinkMode, LinkState};
use crate::real_client;
use crate::sandbox::{self, NetState, SandboxState};
use crate::sandbox_control::{
    self, ControlError, CorruptHow, CorruptTarget, Refusal, Request as Control,
};
use arakoon_node::client::{Client, ClientConfig};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the nodes have, after the heal that ends a run, to all catch up.
const SETTLE_WITHIN_S: u64 = 30;

/// Why a step (or the heal after the run) could not be done on the sandbox. Each names the node
/// or the file; the supervisor's refusals carry its own message, which says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The supervisor could not be reached (it exited, or its socket is gone).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The supervisor refused the request; its message names the node and why.
    #[error("{message}")]
    Refused { refusal: Option<Refusal>, message: String },
    #[error("{}: cannot read the sandbox's state: {source}", dir.display())]
    State { dir: PathBuf, source: crate::sandbox::SandboxError },
    /// A target the director resolved is not a node of this sandbox.
    #[error("no node n{0} in the sandbox")]
    NoNode(usize),
    #[error("no node {0} in the sandbox")]
    NoNodeNamed(String),
    /// A node that would not start (damaged files) was rebuilt from a peer, and that failed too.
    #[error("{node} refused to start ({start}) and could not be rebuilt from a peer: {rebuild}")]
    NotRebuilt { node: String, start: Box<StepError>, rebuild: Box<StepError> },
    #[error("{node} has no TLog file in {}", dir.display())]
    NoTlog { node: String, dir: PathBuf },
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    /// The groups of a partition do not fit the sandbox's nodes.
    #[error(transparent)]
    Groups(crate::sandbox::SandboxError),
    #[error("cannot start the collapse's runtime: {0}")]
    Runtime(io::Error),
    #[error("the nodes did not all catch up within {within_s} s of the heal")]
    NotInSync { within_s: u64 },
}

fn state(dir: &Path) -> Result<SandboxState, StepError> {
    SandboxState::load(dir).map_err(|source| StepError::State { dir: dir.to_path_buf(), source })
}

/// One control request to the supervisor; its answer's message, or its refusal.
fn send(dir: &Path, request: Control) -> Result<String, StepError> {
    let answer = sandbox_control::send(dir, &request)?;
    if answer.ok {
        Ok(answer.message)
    } else {
        Err(StepError::Refused { refusal: answer.refusal, message: answer.message })
    }
}

/// Restarts `node`; one that refuses to start (damaged files) is rebuilt from a peer, as an
/// operator would.
fn restart_or_rebuild(dir: &Path, node: &str) -> Result<(), StepError> {
    if let Err(start) = send(dir, Control::Restart { node: node.to_string() }) {
        send(dir, Control::Wipe { node: node.to_string() }).map_err(|rebuild| {
            StepError::NotRebuilt {
                node: node.to_string(),
                start: Box::new(start),
                rebuild: Box::new(rebuild),
            }
        })?;
    }
    Ok(())
}

/// Every link dropped for which `up(from, to)` says no.
fn links(dir: &Path, up: impl Fn(usize, usize) -> bool) -> Result<NetState, StepError> {
    let s = state(dir)?;
    let idx = |name: &str| s.names().iter().position(|n| n == name).unwrap_or(0);
    let mut net = NetState::new();
    for l in &s.links {
        if !up(idx(&l.from), idx(&l.to)) {
            net.insert(
                sandbox::link_name(&l.from, &l.to),
                LinkState { mode: LinkMode::Drop, delay_ms: 0 },
            );
        }
    }
    Ok(net)
}

/// Where a fault that goes on in the background (a collapse with `for:`) says what it did when
/// it ends: the drill's shared state, or the soak's.
pub(crate) trait FaultLog: Send + Sync {
    /// Ms since the run began.
    fn now_ms(&self) -> u64;
    fn fault(&self, at_ms: u64, what: String);
}

/// Faults that go on while the next steps run (a collapse with `for:`): each logs what it did
/// when it ends; the run waits for them before it settles.
pub(crate) struct Background {
    pub(crate) log: Arc<dyn FaultLog>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The sandbox's primitives for the director: the view comes from the supervisor's state and
/// the nodes' answers; a fault is applied with the supervisor's control requests, the proxies'
/// link states, files changed on disk and `collapse_tlogs` requests.
pub(crate) struct SandboxBackend {
    pub(crate) dir: PathBuf,
    pub(crate) cfg: ClientConfig,
    /// Draws which file a disk fault strikes.
    pub(crate) rng: ChaCha8Rng,
    pub(crate) background: Background,
    /// What was committed anywhere when the current `all_in_sync` wait began.
    pub(crate) sync_target: Option<u64>,
}

impl Backend for SandboxBackend {
    async fn view(&mut self) -> ClusterView {
        let n = self.cfg.nodes.len();
        let (up, paused) = match state(&self.dir) {
            Ok(s) => (
                s.nodes.iter().map(|x| x.pid.is_some()).collect(),
                s.nodes.iter().map(|x| x.paused).collect(),
            ),
            // No state to read: no node is known to run.
            Err(_) => (vec![false; n], vec![false; n]),
        };
        let master = Client::new(self.cfg.clone()).find_master().await.ok();
        ClusterView { up, paused, master }
    }

    async fn holds(&mut self, condition: Condition, begin: bool) -> bool {
        if begin {
            self.sync_target = committed_anywhere(&self.cfg).await;
        }
        holds(&self.dir, &self.cfg, condition, self.sync_target).await
    }

    async fn apply(&mut self, r: &Resolved) -> Result<String, BackendError> {
        match apply(self, r).await {
            Ok(note) => Ok(note),
            Err(Applied::Unsupported(fault)) => {
                Err(BackendError::Unsupported { tier: "sandbox", fault })
            }
            Err(Applied::Failed(e)) => Err(BackendError::Failed(std::sync::Arc::new(e))),
        }
    }
}

/// Applies one resolved fault; returns a note beyond its targets.
/// Why [`apply`] did not: the fault is not the sandbox's, or the step failed.
enum Applied {
    Unsupported(&'static str),
    Failed(StepError),
}

impl From<StepError> for Applied {
    fn from(e: StepError) -> Applied {
        Applied::Failed(e)
    }
}

async fn apply(b: &mut SandboxBackend, r: &Resolved) -> Result<String, Applied> {
    let dir = b.dir.clone();
    let dir = dir.as_path();
    let s = state(dir)?;
    let all = s.names();
    let n = all.len();
    let name = |k: &usize| all.get(*k).cloned().ok_or(StepError::NoNode(*k));
    let ns: Vec<String> = r.strikes.nodes().iter().map(name).collect::<Result<_, _>>()?;
    let named = |ks: &[usize]| ks.iter().map(name).collect::<Result<Vec<String>, StepError>>();
    let each = |make: &dyn Fn(String) -> Control| -> Result<(), StepError> {
        for node in &ns {
            send(dir, make(node.clone()))?;
        }
        Ok(())
    };
    Ok(match (&r.fault, &r.strikes) {
        (Fault::Kill(_), _) => {
            each(&|node| Control::Kill { node })?;
            String::new()
        }
        (Fault::Stop(_), _) => {
            each(&|node| Control::Stop { node })?;
            String::new()
        }
        (Fault::Pause { duration, .. }, _) => {
            each(&|node| Control::Pause { node })?;
            if let Some(d) = duration {
                let (dir, ns, d) = (dir.to_path_buf(), ns.clone(), d.0);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(d)).await;
                    for node in ns {
                        let _ = send(&dir, Control::Resume { node });
                    }
                });
            }
            String::new()
        }
        (Fault::Resume(_), _) => {
            each(&|node| Control::Resume { node })?;
            String::new()
        }
        (Fault::Restart(_), _) => {
            for node in &ns {
                restart_or_rebuild(dir, node)?;
            }
            String::new()
        }
        (Fault::Wipe(_), _) => {
            each(&|node| Control::Wipe { node })?;
            String::new()
        }
        (Fault::Bitflip { store, .. } | Fault::Truncate { store, .. }, _) => {
            let how = if matches!(r.fault, Fault::Bitflip { .. }) {
                CorruptHow::Bitflip
            } else {
                CorruptHow::Truncate
            };
            let target = if *store { CorruptTarget::Store } else { CorruptTarget::Tlog };
            for node in &ns {
                send(dir, Control::Corrupt { node: node.clone(), target, how })?;
            }
            String::new()
        }
        (Fault::TornTail(_) | Fault::DeleteTlog(_), _) => {
            let mut notes = Vec::new();
            for node in &ns {
                let tlogs = sandbox::node_tlog_dir(dir, node);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&tlogs)
                    .map_err(|source| StepError::File { path: tlogs.clone(), source })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "tlog"))
                    .collect();
                files.sort();
                if matches!(r.fault, Fault::TornTail(_)) {
                    let last = files.last().ok_or_else(|| StepError::NoTlog {
                        node: node.clone(),
                        dir: tlogs.clone(),
                    })?;
                    let file_error = |source| StepError::File { path: last.clone(), source };
                    let mut bytes = std::fs::read(last).map_err(file_error)?;
                    bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
                    std::fs::write(last, bytes).map_err(file_error)?;
                } else if files.len() > 1 {
                    let f = &files[b.rng.gen_range(0..files.len() - 1)];
                    std::fs::remove_file(f)
                        .map_err(|source| StepError::File { path: f.clone(), source })?;
                    notes.push(format!("{node}:{}", f.display()));
                }
            }
            notes.join("; ")
        }
        (Fault::Partition(_) | Fault::Isolate(_), Strikes::Groups(groups)) => {
            let groups: Vec<Vec<String>> =
                groups.iter().map(|g| named(g)).collect::<Result<_, _>>()?;
            let net = sandbox::partition(&s, &groups).map_err(StepError::Groups)?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::OneWay { .. }, Strikes::OneWay { from, to }) => {
            let net =
                sandbox::one_way(&s, &named(from)?, &named(to)?).map_err(StepError::Groups)?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::Ring, _) => {
            let net = links(dir, |i, j| ring_link(n, i, j))?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::Bridge, _) => {
            let net = links(dir, |i, j| bridge_link(n, i, j))?;
            send(dir, Control::Net { links: net })?;
            format!("bridge n{}", bridge_node(n))
        }
        (Fault::Heal, _) => {
            send(dir, Control::Net { links: NetState::new() })?;
            String::new()
        }
        (Fault::Delay(d), _) => {
            let net: NetState = s
                .links
                .iter()
                .map(|l| {
                    (
                        sandbox::link_name(&l.from, &l.to),
                        LinkState { mode: LinkMode::Pass, delay_ms: d.0 },
                    )
                })
                .collect();
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::DropMaster, Strikes::Master(m)) => {
            // The client finds the master itself; the note says if it was another by now.
            let mut c = Client::new(b.cfg.clone());
            match c.drop_master().await {
                Ok(()) => String::new(),
                Err(e) => format!("n{m} did not step down: {e}"),
            }
        }
        (Fault::Collapse { keep, duration: None, .. }, _) => {
            let notes: Vec<String> = collapse_once(dir, &b.cfg, &ns, *keep)
                .await?
                .into_iter()
                .zip(&ns)
                .map(|(c, name)| {
                    let mut tally = CollapseTally::default();
                    tally.add(c);
                    tally.note(name, *keep)
                })
                .collect();
            notes.join("; ")
        }
        (Fault::Collapse { keep, duration: Some(d), .. }, _) => {
            let series = collapse_series(dir.to_path_buf(), b.cfg.clone(), ns.clone(), *keep, d.0);
            let bg = &mut b.background;
            let (log, what, keep) = (bg.log.clone(), r.fault.to_string(), *keep);
            let struck = ns.clone();
            bg.tasks.push(tokio::spawn(async move {
                while !series.is_finished() {
                    tokio::time::sleep(Duration::from_millis(COLLAPSE_EVERY_MS)).await;
                }
                let note = match series.join() {
                    Ok(Ok(tallies)) => {
                        let notes: Vec<String> = tallies
                            .iter()
                            .zip(&struck)
                            .map(|(t, name)| t.note(name, keep))
                            .collect();
                        notes.join("; ")
                    }
                    Ok(Err(e)) => format!("stopped: {e}"),
                    Err(_) => "the collapse thread panicked".to_string(),
                };
                log.fault(log.now_ms(), format!("{what}, ended ({note})"));
            }));
            "in the background".to_string()
        }
        (other, _) => return Err(Applied::Unsupported(other.name())),
    })
}

/// The highest slot any node has applied.
pub(crate) async fn committed_anywhere(cfg: &ClientConfig) -> Option<u64> {
    real_client::committed_anywhere(&Client::new(cfg.clone())).await
}

pub(crate) async fn holds(
    dir: &Path,
    cfg: &ClientConfig,
    condition: Condition,
    target: Option<u64>,
) -> bool {
    match condition {
        Condition::MasterElected => Client::new(cfg.clone()).find_master().await.is_ok(),
        Condition::AllUp | Condition::AllInSync => {
            let Ok(s) = state(dir) else { return false };
            if s.nodes.iter().any(|n| n.pid.is_none() || n.paused) {
                return false;
            }
            real_client::nodes_answer(&Client::new(cfg.clone()), condition, target).await
        }
    }
}

/// After the run: heal, resume and restart every node, and wait until all caught up.
pub(crate) async fn settle(dir: &Path, cfg: &ClientConfig) -> Result<(), StepError> {
    send(dir, Control::Net { links: NetState::new() })?;
    for n in state(dir)?.nodes {
        if n.paused {
            send(dir, Control::Resume { node: n.name.clone() })?;
        }
        if n.pid.is_none() {
            restart_or_rebuild(dir, &n.name)?;
        }
    }
    let begin = Instant::now();
    let target = committed_anywhere(cfg).await;
    while begin.elapsed() < Duration::from_secs(SETTLE_WITHIN_S) {
        if holds(dir, cfg, Condition::AllInSync, target).await
            && Client::new(cfg.clone()).find_master().await.is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StepError::NotInSync { within_s: SETTLE_WITHIN_S })
}
