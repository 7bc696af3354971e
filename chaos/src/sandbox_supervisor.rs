//! The sandbox supervisor: the one long-lived process that owns a sandbox's node processes and
//! its peer-link proxies, and does what the operator's commands on `D/control.sock` say.
//!
//! Lifetimes, which are the point of this design:
//!
//! ```text
//! arakoon-admin sandbox up ──spawns──> supervisor (own session; PDEATHSIG = SIGTERM until Detach)
//!                                        ├── proxy runtime (1 worker thread): every a->b proxy
//!                                        └── main thread spawns arakoon n0, n1, ... (PDEATHSIG = SIGKILL)
//! ```
//!
//! - The nodes are the supervisor's children, spawned from its main thread with PR_SET_PDEATHSIG
//!   SIGKILL: if the supervisor dies in any way, even by kill -9, the kernel kills every node.
//!   No orphan outlives it.
//! - The supervisor runs in a session of its own, so the terminal's Ctrl-C after `up` returned
//!   does not reach it. While `up` waits for a master it is still tied to `up` (PDEATHSIG
//!   SIGTERM): Ctrl-C on `up`, or `up` crashing, ends the sandbox it was starting. Once `up` has
//!   seen a master, it sends `Detach` and waits for the answer before it returns; from then on
//!   only `down`, a SIGTERM/SIGINT, or the end of `--exit-with-pid`'s process stop it.
//! - A drill ([`crate::sandbox_drill`]) brings its sandbox up in its own process through
//!   [`crate::sandbox_up::up`], with `owner_pid` set to itself, and after each seed shuts the
//!   supervisor down, kills what is left by PID and reaps it (the supervisor is its child).
//! - It also stops when its control socket disappears (the directory was deleted): nobody could
//!   reach it any more.
//! - It restarts nothing on its own. A node that exits is reaped and recorded in `sandbox.json`
//!   (`last_exit`), where `status` shows it.
//!
//! The main thread is a plain blocking loop: accept a command, do it, answer, and between
//! commands reap exited nodes. Commands run one at a time, so a slow one (a wipe's catch-up)
//! delays the next command but never the proxies, which run on their own runtime thread: peer
//! traffic keeps flowing while the supervisor waits.

use crate::process::{self, Process};
use crate::proxy::{self, LinkState, ProxyHandle};
use crate::sandbox::{self, link_name, NetState, SandboxState, LOCALHOST};
use crate::sandbox_control::{Answer, Refusal, Request, TakeLine, REQUEST_BYTES_MAX};
use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGTERM or SIGINT; the main loop then shuts everything down.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// How long a stopped node may take to exit cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A node that refuses to start (a bad TLog, a taken port) exits within this.
const START_CHECK: Duration = Duration::from_millis(500);
/// The longest a wipe's catch-up may run.
const CATCHUP_MAX: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);
/// How often the owner process and the control socket are checked.
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

/// Why the supervisor could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{}: {source}", path.display())]
    Path { path: PathBuf, source: io::Error },
    #[error(transparent)]
    State(#[from] crate::sandbox::SandboxError),
    #[error("{}: another supervisor already runs this sandbox", socket.display())]
    AlreadySupervised { socket: PathBuf },
    #[error(
        "the proxy for {link} cannot listen on {listen}: {source}; another program took the \
         port since `up` picked it: `sandbox down --clean` and `up` again"
    )]
    Proxy { link: String, listen: SocketAddr, source: io::Error },
    /// A node that would not start.
    #[error(transparent)]
    NodeStart(#[from] NodeStartError),
    /// The control socket, the runtime: the operating system's error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why a node of the sandbox would not start (the refusal names the node, its exit and its log).
#[derive(Debug, thiserror::Error)]
pub enum NodeStartError {
    /// Where the `arakoon` binary should be, it is not.
    #[error("{0}")]
    NoBinary(#[source] io::Error),
    #[error("cannot start {}: {source}", bin.display())]
    Spawn { bin: PathBuf, source: io::Error },
    /// Nodes that exited at once: how, and the end of each one's log.
    #[error("{}", did_not_stay_up(.0))]
    DidNotStayUp(Vec<NodeDown>),
}

/// "n1 did not stay up: exit 49" and the end of its log, for each node.
fn did_not_stay_up(down: &[NodeDown]) -> String {
    let each =
        down.iter().map(|d| format!("{} did not stay up: {}\n{}", d.name, d.how, d.log_tail));
    each.collect::<Vec<_>>().join("\n")
}

/// A node that exited right after it was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDown {
    pub name: String,
    /// Its exit, as the supervisor recorded it ("ended" when unknown).
    pub how: String,
    pub log_tail: String,
}

impl From<NodeStartError> for Answer {
    fn from(e: NodeStartError) -> Answer {
        Answer::refused(Refusal::BadInput, e.to_string())
    }
}

/// Runs the supervisor of the (planned) sandbox in `dir` until it is told to stop.
pub fn run(dir: &Path) -> Result<(), SupervisorError> {
    let dir = dir.canonicalize().map_err(|e| with_path(e, dir))?;
    let state = SandboxState::load(&dir)?;
    // The nodes inherit it: their logs are files, not terminals (tracing colours otherwise).
    // Set while this process has one thread, before the runtime starts any.
    std::env::set_var("NO_COLOR", "1");
    install_signal_handlers();
    let listener = bind(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sandbox-proxies")
        .enable_all()
        .build()?;
    let proxies = runtime.block_on(start_proxies(&state))?;
    let mut sup = Supervisor { dir, state, procs: BTreeMap::new(), proxies };
    sup.state.supervisor_pid = Some(std::process::id());
    sup.apply_net(&sandbox::load_net(&sup.dir));
    say(&format!("supervisor pid {} for {}", std::process::id(), sup.dir.display()));
    let result = sup.start_all().and_then(|()| sup.serve(&listener));
    if !sup.procs.is_empty() || sup.state.supervisor_pid.is_some() {
        let report = sup.shutdown();
        say(&report);
    }
    let _ = std::fs::remove_file(sandbox::socket_path(&sup.dir));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn with_path(source: io::Error, path: &Path) -> SupervisorError {
    SupervisorError::Path { path: path.to_path_buf(), source }
}

/// A line in the supervisor's log (its stdout), with the time.
fn say(line: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    println!("[{}.{:03}] {line}", now / 1000, now % 1000);
}

fn install_signal_handlers() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Binds the control socket; a stale one (no one listening) is replaced, a live one refused.
fn bind(dir: &Path) -> Result<UnixListener, SupervisorError> {
    let path = sandbox::socket_path(dir);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(SupervisorError::AlreadySupervised { socket: path });
        }
        std::fs::remove_file(&path).map_err(|e| with_path(e, &path))?;
    }
    let listener = UnixListener::bind(&path).map_err(|e| with_path(e, &path))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn start_proxies(
    state: &SandboxState,
) -> Result<BTreeMap<String, ProxyHandle>, SupervisorError> {
    let mut proxies = BTreeMap::new();
    for l in &state.links {
        let upstream = SocketAddr::new(LOCALHOST, state.node(&l.to)?.messaging_port);
        let listen = SocketAddr::new(LOCALHOST, l.proxy_port);
        let handle = proxy::start(listen, upstream).await.map_err(|source| {
            SupervisorError::Proxy { link: link_name(&l.from, &l.to), listen, source }
        })?;
        proxies.insert(link_name(&l.from, &l.to), handle);
    }
    Ok(proxies)
}

struct Supervisor {
    dir: PathBuf,
    state: SandboxState,
    /// The running node processes, by node name.
    procs: BTreeMap<String, Process>,
    proxies: BTreeMap<String, ProxyHandle>,
}

/// What the main loop does after answering a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

impl Supervisor {
    fn save(&self) {
        if let Err(e) = self.state.save(&self.dir) {
            say(&format!("cannot write sandbox.json: {e}"));
        }
    }

    fn arakoon_bin(&self) -> io::Result<PathBuf> {
        match &self.state.arakoon_bin {
            Some(p) => Ok(p.clone()),
            None => process::locate_binary("arakoon"),
        }
    }

    fn node_args(&self, name: &str) -> Vec<String> {
        let ini = sandbox::node_ini(&self.dir, name);
        vec!["--node".into(), name.into(), "-config".into(), ini.display().to_string()]
    }

    fn start_all(&mut self) -> Result<(), SupervisorError> {
        let names = self.state.names();
        for name in &names {
            self.spawn_node(name)?;
        }
        self.save();
        Ok(self.check_started(&names)?)
    }

    /// Starts node `name` (not yet running); the caller checks it stayed up.
    fn spawn_node(&mut self, name: &str) -> Result<u32, NodeStartError> {
        let bin = self.arakoon_bin().map_err(NodeStartError::NoBinary)?;
        let log = sandbox::node_log(&self.dir, name);
        append_line(&log, &format!("--- sandbox: starting {name} ---"));
        let p = Process::spawn(name, &bin, &self.node_args(name), &log)
            .map_err(|source| NodeStartError::Spawn { bin: bin.clone(), source })?;
        let pid = p.pid();
        self.procs.insert(name.to_string(), p);
        if let Ok(node) = self.state.node_mut(name) {
            node.pid = Some(pid);
            node.paused = false;
            node.last_exit = None;
        }
        say(&format!("started {name} (pid {pid})"));
        Ok(pid)
    }

    /// Waits a moment and fails for any of `names` that exited at once (a node that refuses to
    /// start does so quickly: a damaged TLog, a taken port).
    fn check_started(&mut self, names: &[String]) -> Result<(), NodeStartError> {
        std::thread::sleep(START_CHECK);
        self.reap();
        let mut down = Vec::new();
        for name in names {
            if !self.procs.contains_key(name) {
                let how = self.last_exit(name).unwrap_or_else(|| "ended".into());
                let log_tail = sandbox::log_tail(&sandbox::node_log(&self.dir, name), 8);
                down.push(NodeDown { name: name.clone(), how, log_tail });
            }
        }
        if down.is_empty() {
            Ok(())
        } else {
            Err(NodeStartError::DidNotStayUp(down))
        }
    }

    fn last_exit(&self, name: &str) -> Option<String> {
        self.state.node(name).ok().and_then(|n| n.last_exit.clone())
    }

    /// Forgets the nodes that exited, recording how.
    fn reap(&mut self) {
        let ended: Vec<(String, String)> = self
            .procs
            .iter_mut()
            .filter_map(|(name, p)| p.exit_status().map(|s| (name.clone(), s.to_string())))
            .collect();
        for (name, status) in &ended {
            self.procs.remove(name);
            self.record_end(name, format!("exited on its own ({status})"));
        }
    }

    fn record_end(&mut self, name: &str, how: String) {
        say(&format!("{name}: {how}"));
        if let Ok(node) = self.state.node_mut(name) {
            node.pid = None;
            node.paused = false;
            node.last_exit = Some(how);
        }
        self.save();
    }

    fn serve(&mut self, listener: &UnixListener) -> Result<(), SupervisorError> {
        let mut checked = Instant::now();
        loop {
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                say("SIGTERM or SIGINT: shutting down");
                return Ok(());
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    if self.answer(stream) == Flow::Exit {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.reap();
                    std::thread::sleep(POLL);
                }
                Err(e) => {
                    say(&format!("accept on the control socket: {e}"));
                    std::thread::sleep(POLL);
                }
            }
            if checked.elapsed() >= LIVENESS_EVERY {
                checked = Instant::now();
                if let Some(why) = self.reason_to_quit() {
                    say(&why);
                    return Ok(());
                }
            }
        }
    }

    /// The sandbox lost its reason to live: its owner process ended, or its directory went.
    fn reason_to_quit(&self) -> Option<String> {
        if let Some(owner) = self.state.owner_pid {
            if !process::pid_alive(owner) {
                return Some(format!("the owner process {owner} ended: shutting down"));
            }
        }
        let socket = sandbox::socket_path(&self.dir);
        if !socket.exists() {
            return Some(format!("{} disappeared: shutting down", socket.display()));
        }
        None
    }

    /// Reads one request from `stream`, does it, writes the answer.
    fn answer(&mut self, stream: UnixStream) -> Flow {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let (answer, flow) = match BufReader::new(&stream).take_line(&mut line, REQUEST_BYTES_MAX) {
            Err(e) => (
                Answer::refused(Refusal::BadRequest, format!("cannot read the request: {e}")),
                Flow::Continue,
            ),
            Ok(()) => match serde_json::from_str::<Request>(&line) {
                Err(e) => (
                    Answer::refused(Refusal::BadRequest, format!("a bad request {line:?}: {e}")),
                    Flow::Continue,
                ),
                Ok(request) => {
                    say(&format!("request: {}", line.trim_end()));
                    self.handle(request)
                }
            },
        };
        say(&format!("answer: {}", answer.message.replace('\n', "\n    ")));
        let mut bytes = serde_json::to_vec(&answer).unwrap_or_default();
        bytes.push(b'\n');
        if let Err(e) = (&stream).write_all(&bytes) {
            say(&format!("cannot send the answer: {e}"));
        }
        flow
    }

    fn handle(&mut self, request: Request) -> (Answer, Flow) {
        let answer = match request {
            Request::Ping => Answer::ok(format!("supervisor pid {} is up", std::process::id())),
            Request::Kill { node } => self.with_node(&node, Self::kill),
            Request::Stop { node } => self.with_node(&node, Self::stop),
            Request::Pause { node } => self.with_node(&node, Self::pause),
            Request::Resume { node } => self.with_node(&node, Self::resume),
            Request::Restart { node } => self.with_node(&node, Self::restart),
            Request::Wipe { node } => self.with_node(&node, Self::wipe),
            Request::Corrupt { node, target, how } => self.with_node(&node, |s, name| {
                if let Some(refusal) = s.refuse_if_running(name, "corrupt the files of") {
                    return refusal;
                }
                let home = sandbox::node_home(&s.dir, name);
                let tlogs = sandbox::node_tlog_dir(&s.dir, name);
                match crate::sandbox_corrupt::corrupt(&home, &tlogs, target, how) {
                    Ok(done) => Answer::ok(format!(
                        "{name}: {done}\n`arakoon-admin sandbox restart {name}` shows what the \
                         node makes of it; `sandbox wipe {name}` repairs it from a peer"
                    )),
                    Err(e) => Answer::refused(Refusal::BadInput, format!("{name}: {e}")),
                }
            }),
            Request::Net { links } => self.net(links),
            Request::Detach => {
                // SAFETY: prctl(PR_SET_PDEATHSIG, 0) only clears this process's death signal.
                let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0) };
                if rc == 0 {
                    Answer::ok("detached: the sandbox runs until `arakoon-admin sandbox down`")
                } else {
                    let e = io::Error::last_os_error();
                    Answer::refused(Refusal::BadInput, format!("cannot detach: {e}"))
                }
            }
            Request::Shutdown => return (Answer::ok(self.shutdown()), Flow::Exit),
        };
        (answer, Flow::Continue)
    }

    /// Runs `f` on a node of the sandbox, or says there is no such node.
    fn with_node(&mut self, name: &str, f: impl FnOnce(&mut Self, &str) -> Answer) -> Answer {
        match self.state.node(name) {
            Ok(_) => f(self, name),
            Err(e) => Answer::refused(Refusal::BadInput, e.to_string()),
        }
    }

    fn not_running(&self, name: &str, what: &str) -> Answer {
        let why = self.last_exit(name).map(|how| format!(" (it {how})")).unwrap_or_default();
        Answer::refused(
            Refusal::BadInput,
            format!(
                "cannot {what} {name}: it is not running{why}; `arakoon-admin sandbox restart \
                 {name} --dir {}` starts it",
                self.dir.display()
            ),
        )
    }

    fn refuse_if_running(&self, name: &str, what: &str) -> Option<Answer> {
        let p = self.procs.get(name)?;
        let paused = self.state.node(name).is_ok_and(|n| n.paused);
        Some(Answer::refused(
            Refusal::BadInput,
            format!(
                "cannot {what} {name}: it is running (pid {}{}); damaging the files under a \
                 running node tests only its page cache, and it may overwrite the damage; \
                 `arakoon-admin sandbox stop {name}` (or `kill {name}`) first",
                p.pid(),
                if paused { ", paused" } else { "" }
            ),
        ))
    }

    fn kill(&mut self, name: &str) -> Answer {
        let Some(mut p) = self.procs.remove(name) else { return self.not_running(name, "kill") };
        let pid = p.pid();
        if let Err(e) = p.kill() {
            say(&format!("{name}: kill -9 of pid {pid}: {e}"));
        }
        self.record_end(name, "was killed with SIGKILL by `sandbox kill`".into());
        Answer::ok(format!("{name} (pid {pid}) killed with SIGKILL"))
    }

    /// SIGTERM, then kill -9 after the grace period; says how it went.
    fn stop_process(&mut self, name: &str) -> Option<String> {
        let mut p = self.procs.remove(name)?;
        let pid = p.pid();
        let how = match p.terminate(STOP_GRACE) {
            Ok(Some(status)) => format!("was stopped with SIGTERM ({status})"),
            Ok(None) => format!(
                "did not stop within {} s of SIGTERM and was killed with SIGKILL",
                STOP_GRACE.as_secs()
            ),
            Err(e) => format!("could not be signalled ({e}); killed with SIGKILL"),
        };
        self.record_end(name, how.clone());
        Some(format!("{name} (pid {pid}) {how}"))
    }

    fn stop(&mut self, name: &str) -> Answer {
        match self.stop_process(name) {
            Some(done) => Answer::ok(done),
            None => self.not_running(name, "stop"),
        }
    }

    fn pause(&mut self, name: &str) -> Answer {
        let paused = self.state.node(name).is_ok_and(|n| n.paused);
        let Some(p) = self.procs.get_mut(name) else { return self.not_running(name, "pause") };
        if paused {
            return Answer::refused(Refusal::BadInput, format!("{name} is already paused"));
        }
        if let Err(e) = p.pause() {
            return Answer::refused(Refusal::BadInput, format!("cannot pause {name}: {e}"));
        }
        let pid = p.pid();
        if let Ok(node) = self.state.node_mut(name) {
            node.paused = true;
        }
        self.save();
        Answer::ok(format!(
            "{name} (pid {pid}) paused with SIGSTOP: its sockets stay open but it answers \
             nothing, as a node stalled by a long GC pause or a frozen VM; `sandbox resume {name}`"
        ))
    }

    fn resume(&mut self, name: &str) -> Answer {
        let paused = self.state.node(name).is_ok_and(|n| n.paused);
        let Some(p) = self.procs.get_mut(name) else { return self.not_running(name, "resume") };
        if !paused {
            return Answer::refused(Refusal::BadInput, format!("{name} is not paused"));
        }
        if let Err(e) = p.resume() {
            return Answer::refused(Refusal::BadInput, format!("cannot resume {name}: {e}"));
        }
        let pid = p.pid();
        if let Ok(node) = self.state.node_mut(name) {
            node.paused = false;
        }
        self.save();
        Answer::ok(format!("{name} (pid {pid}) resumed with SIGCONT"))
    }

    fn restart(&mut self, name: &str) -> Answer {
        let mut lines = Vec::new();
        match self.stop_process(name) {
            Some(done) => lines.push(done),
            None => lines.push(format!("{name} was not running")),
        }
        match self.start_checked(name) {
            Ok(started) => lines.push(started),
            Err(a) => {
                return Answer::refused(
                    a.refusal.unwrap_or(Refusal::BadInput),
                    format!("{}\n{}", lines.join("\n"), a.message),
                )
            }
        }
        Answer::ok(lines.join("\n"))
    }

    fn start_checked(&mut self, name: &str) -> Result<String, Answer> {
        let pid = self.spawn_node(name)?;
        self.save();
        self.check_started(&[name.to_string()])?;
        Ok(format!("{name} started (pid {pid})"))
    }

    /// What an operator does for a lost disk: stop the node, delete its home, rebuild it from a
    /// peer with `arakoon -catchup-only`, start it.
    fn wipe(&mut self, name: &str) -> Answer {
        let mut lines = Vec::new();
        if let Some(done) = self.stop_process(name) {
            lines.push(done);
        }
        let home = sandbox::node_home(&self.dir, name);
        if let Err(e) = std::fs::remove_dir_all(&home).or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }) {
            return Answer::refused(
                Refusal::BadInput,
                format!("cannot delete {}: {e}", home.display()),
            );
        }
        if let Err(e) = std::fs::create_dir_all(&home) {
            return Answer::refused(
                Refusal::BadInput,
                format!("cannot create {}: {e}", home.display()),
            );
        }
        lines.push(format!("{name}: deleted its home {} (a lost disk)", home.display()));
        match self.catch_up(name) {
            Ok(report) => lines.push(report),
            Err(a) => {
                return Answer::refused(
                    a.refusal.unwrap_or(Refusal::BadInput),
                    format!("{}\n{}", lines.join("\n"), a.message),
                )
            }
        }
        match self.start_checked(name) {
            Ok(started) => lines.push(format!(
                "{started}; it is a learner (no vote, no candidacy) until a master has brought it \
                 up to date"
            )),
            Err(a) => {
                return Answer::refused(
                    a.refusal.unwrap_or(Refusal::BadInput),
                    format!("{}\n{}", lines.join("\n"), a.message),
                )
            }
        }
        Answer::ok(lines.join("\n"))
    }

    /// Runs `arakoon --node NAME -config ... -catchup-only` to completion (bounded).
    fn catch_up(&mut self, name: &str) -> Result<String, Answer> {
        let bin =
            self.arakoon_bin().map_err(|e| Answer::refused(Refusal::BadInput, e.to_string()))?;
        let log = sandbox::node_log(&self.dir, name);
        append_line(&log, &format!("--- sandbox: wipe: catch-up of {name} ---"));
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut args = self.node_args(name);
        args.push("-catchup-only".into());
        let shown = format!("`{} {}`", bin.display(), args.join(" "));
        let mut p = Process::spawn(&format!("{name} catch-up"), &bin, &args, &log)
            .map_err(|e| Answer::refused(Refusal::BadInput, format!("cannot run {shown}: {e}")))?;
        let deadline = Instant::now() + CATCHUP_MAX;
        let status = loop {
            if let Some(status) = p.exit_status() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = p.kill();
                return Err(Answer::refused(
                    Refusal::Unreachable,
                    format!(
                        "{shown} did not finish within {} s and was killed; {name} stays \
                         stopped with an empty home",
                        CATCHUP_MAX.as_secs()
                    ),
                ));
            }
            std::thread::sleep(POLL);
        };
        let said = read_from(&log, from);
        if status.success() {
            let report = said.lines().rev().find(|l| l.contains("arakoon:")).unwrap_or("done");
            return Ok(format!("{name}: ran {shown}: {}", report.trim()));
        }
        let tail: Vec<&str> = said.lines().rev().take(6).collect();
        let tail: Vec<String> = tail.iter().rev().map(|l| format!("  | {l}")).collect();
        Err(Answer::refused(
            Refusal::Unreachable,
            format!(
                "{shown} failed ({status}); {name} stays stopped with an empty home. A running \
                 peer must be reachable: heal any partition, restart a peer, then `sandbox wipe \
                 {name}` again\n{}",
                tail.join("\n")
            ),
        ))
    }

    fn net(&mut self, links: NetState) -> Answer {
        if let Some(unknown) = links.keys().find(|l| !self.proxies.contains_key(*l)) {
            let known: Vec<&String> = self.proxies.keys().collect();
            return Answer::refused(
                Refusal::BadInput,
                format!("no link {unknown:?} in this sandbox (links: {known:?})"),
            );
        }
        self.apply_net(&links);
        if let Err(e) = sandbox::save_net(&self.dir, &links) {
            say(&format!("cannot write net.json: {e}"));
        }
        if links.is_empty() {
            Answer::ok("every link passes")
        } else {
            let cut: Vec<&str> = links.keys().map(String::as_str).collect();
            Answer::ok(format!("links cut: {}; every other link passes", cut.join(", ")))
        }
    }

    fn apply_net(&self, net: &NetState) {
        for (name, p) in &self.proxies {
            p.set(net.get(name).copied().unwrap_or(LinkState::default()));
        }
    }

    /// Stops every node (SIGTERM to all, then kill -9 after the grace) and every proxy; says
    /// how each node ended. Idempotent.
    fn shutdown(&mut self) -> String {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        let pids: Vec<u32> = self.procs.values().map(Process::pid).collect();
        let mut procs: Vec<&mut Process> = self.procs.values_mut().collect();
        let statuses = process::terminate_all(&mut procs, STOP_GRACE);
        let mut lines = Vec::new();
        for ((name, pid), status) in names.iter().zip(&pids).zip(&statuses) {
            let how = match status {
                Some(s) => format!("was stopped with SIGTERM ({s})"),
                None => format!(
                    "did not stop within {} s of SIGTERM and was killed with SIGKILL",
                    STOP_GRACE.as_secs()
                ),
            };
            lines.push(format!("{name} (pid {pid}) {how}"));
            if let Ok(node) = self.state.node_mut(name) {
                node.pid = None;
                node.paused = false;
                node.last_exit = Some(format!("{how} when the sandbox went down"));
            }
        }
        self.procs.clear();
        for p in self.proxies.values() {
            p.stop();
        }
        self.state.supervisor_pid = None;
        self.save();
        if lines.is_empty() {
            "no node was running".into()
        } else {
            lines.join("\n")
        }
    }
}

fn append_line(path: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// What a file holds from byte `from` on.
fn read_from(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal names each node that did not stay up, its exit and its log's end, as the
    /// supervisor's answer always did; the kind of failure is typed.
    #[test]
    fn a_node_that_did_not_start_is_named_with_its_exit_and_log() {
        let down = |name: &str, how: &str| NodeDown {
            name: name.into(),
            how: how.into(),
            log_tail: format!("{name}: last line"),
        };
        let e = NodeStartError::DidNotStayUp(vec![down("n1", "exit 49"), down("n2", "ended")]);
        assert_eq!(
            e.to_string(),
            "n1 did not stay up: exit 49\nn1: last line\nn2 did not stay up: ended\nn2: last line"
        );
        let answer = Answer::from(e);
        assert_eq!(answer.refusal, Some(Refusal::BadInput));
        let spawn = NodeStartError::Spawn {
            bin: "/x/arakoon".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(spawn.to_string().starts_with("cannot start /x/arakoon: "), "{spawn}");
        assert!(matches!(SupervisorError::from(spawn), SupervisorError::NodeStart(_)));
    }
}
