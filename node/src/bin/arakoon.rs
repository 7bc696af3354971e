//! `arakoon`: one node of an arakoon-rs cluster.
//!
//! ```text
//! arakoon --node NAME -config FILE.ini            serve until SIGTERM or SIGINT
//! arakoon --node NAME -config FILE.ini -catchup-only
//!                                                 fetch the committed log from a peer, then stop
//! ```
//!
//! Options take one or two dashes, as the original's did (`-config` and `--config`).

use arakoon_node::config::ClusterConfig;
use arakoon_node::exit::NodeExit;
use arakoon_node::server::auth::{PeerAuth, Secret};
use arakoon_node::server::core::{serve, ServerOptions};
use arakoon_node::server::env::{MonotonicClock, TokioNet};
use arakoon_node::server::rebuild;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The help text; `{EXIT_CODES}` is replaced by [`NodeExit::table`], the one list of codes.
const HELP: &str = "\
arakoon: one node of an arakoon-rs cluster (Arakoon 1.x client protocol)

USAGE:
    arakoon --node NAME -config FILE.ini [-catchup-only]

OPTIONS:
    --node NAME        which node of the configuration this process is
    -config FILE       the cluster's INI file ([global] and one section per node)
    -catchup-only      rebuild this (stopped) node's TLog and store from a running peer, mark it a
                       learner (it may not vote until a master caught it up), and exit; for a node
                       whose disk was lost
    --spans DIR        time the node's stages (event loop, store apply, TLog group write and
                       fsync, store flush, client wait) and rewrite DIR/NAME.spans with their
                       histograms every second; for benchmarks (arakoon-admin bench --compare
                       prints them), off by default
    -h, --help         this text
    -V, --version      the version

The node validates its TLog and store before serving. When it refuses to start, the message
names the file, the offset and the command that repairs it; the exit code says why:
{EXIT_CODES}
SIGTERM and SIGINT stop the node cleanly: waiting clients hear going_down, the TLog gets its
closed marker, the store is flushed; the exit code is then 0. A node that has not finished
stopping 8 s after the signal (a disk that does not answer) exits with 5.

EXAMPLE:
    arakoon --node n0 -config cluster.ini
";

struct Args {
    node: String,
    config: PathBuf,
    catchup_only: bool,
    spans: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut node = None;
    let mut config = None;
    let mut catchup_only = false;
    let mut spans = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline.clone().or_else(|| args.next()).ok_or(format!("{what} needs a value"))
        };
        match name.trim_start_matches('-') {
            "node" => node = Some(value("--node")?),
            "config" => config = Some(PathBuf::from(value("-config")?)),
            "catchup-only" => catchup_only = true,
            "spans" => spans = Some(PathBuf::from(value("--spans")?)),
            "h" | "help" => {
                print!("{}", HELP.replace("{EXIT_CODES}\n", &NodeExit::table()));
                return Ok(None);
            }
            "V" | "version" => {
                println!("arakoon (arakoon-rs) {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(format!("unknown argument {arg:?}; see arakoon --help")),
        }
    }
    let node = node.ok_or("--node NAME is required; see arakoon --help")?;
    let config = config.ok_or("-config FILE is required; see arakoon --help")?;
    Ok(Some(Args { node, config, catchup_only, spans }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arakoon: {e}");
            return ExitCode::from(NodeExit::Usage as u8);
        }
    };
    let config = match ClusterConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arakoon: {e}");
            return ExitCode::from(NodeExit::Usage as u8);
        }
    };
    let file = args.config.display().to_string();
    let me = match config.index_of(&args.node, &file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("arakoon: {e}");
            return ExitCode::from(NodeExit::Usage as u8);
        }
    };
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| config.nodes[me].log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    // Stage timings for benchmarks (node/src/spans.rs), off unless asked for.
    if let Some(dir) = &args.spans {
        match arakoon_node::spans::enable(dir, &config.nodes[me].name) {
            Ok(path) => tracing::info!("stage timings every second in {}", path.display()),
            Err(e) => {
                eprintln!("arakoon: --spans {}: cannot write stage timings: {e}", dir.display());
                return ExitCode::from(NodeExit::Usage as u8);
            }
        }
    }

    // Peers prove membership with the cluster secret; without one, say once that the peer port
    // trusts its network.
    let peer_auth = match &config.cluster_secret_file {
        Some(path) => match Secret::load(path) {
            Ok(secret) => PeerAuth::Secret(secret),
            Err(e) => {
                eprintln!("arakoon: {e}");
                return ExitCode::from(NodeExit::Usage as u8);
            }
        },
        None => {
            if !args.catchup_only {
                tracing::warn!(
                    port = config.nodes[me].messaging_port,
                    "no [global] cluster_secret_file: the peer port trusts its network; anyone \
                     who reaches it can act as a member"
                );
            }
            PeerAuth::Open
        }
    };

    // Before any thread starts, so that every thread inherits the blocked signals.
    let stop = Arc::new(tokio::sync::Notify::new());
    if !args.catchup_only && !watch_signals(stop.clone()) {
        eprintln!("arakoon: cannot set up SIGTERM and SIGINT handling");
        return ExitCode::from(NodeExit::Usage as u8);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(arakoon_node::server::blocking::BLOCKING_THREADS_MAX)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arakoon: cannot start the runtime: {e}");
            return ExitCode::from(NodeExit::Usage as u8);
        }
    };
    let code = runtime.block_on(async move {
        if args.catchup_only {
            return match rebuild::catch_up_stopped_node(&config, me, &TokioNet).await {
                Ok(report) => {
                    eprintln!("arakoon: {report}");
                    0
                }
                Err(e) => {
                    eprintln!("arakoon: catch-up failed: {e}");
                    e.exit_code()
                }
            };
        }
        // The election jitter's seed: the shell may draw randomness, the core may not.
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(me);
            h.finish()
        };
        // Descriptors: the node's own first, clients get what is left (server/fdlimit.rs).
        let fd_plan = arakoon_node::server::fdlimit::raise_nofile_limit()
            .and_then(|limit| arakoon_node::server::fdlimit::plan(&config, limit));
        let max_connections = match fd_plan {
            Ok(plan) => {
                if let Some(w) = &plan.warning {
                    tracing::warn!("{w}");
                }
                plan.max_connections
            }
            Err(e) => {
                eprintln!("arakoon: {e}");
                return NodeExit::Usage.code();
            }
        };
        let options = ServerOptions {
            seed,
            peer_auth,
            max_connections: Some(max_connections),
            ..ServerOptions::default()
        };
        let shutdown = async move { stop.notified().await };
        match serve(config, me, TokioNet, MonotonicClock::default(), options, shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("arakoon: {e}");
                e.exit_code()
            }
        }
    });
    // A blocking task stuck on a disk that does not answer must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// How long a node may take to stop after SIGTERM or SIGINT.
const STOP_WITHIN: Duration = Duration::from_secs(8);

/// Blocks SIGTERM and SIGINT in this thread and in every thread started after it, and waits for
/// them on a thread of its own: the first one tells the node to stop (`stop`), and if the process
/// still runs [`STOP_WITHIN`] later (a store whose flush a full disk never finishes, a core stuck
/// in a disk call), it exits with [`NodeExit::StopTimedOut`]. The signal is seen even when every
/// runtime thread is blocked, which tokio's own signal handling cannot promise. False if the
/// signals could not be set up.
fn watch_signals(stop: Arc<tokio::sync::Notify>) -> bool {
    // SAFETY: plain libc calls on a local, zero-initialised signal set; sigwait is the
    // documented way to take blocked signals synchronously.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return false;
        }
        let watcher = move || {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                return;
            }
            let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
            tracing::info!("{name}: stopping");
            stop.notify_one();
            std::thread::sleep(STOP_WITHIN);
            eprintln!(
                "arakoon: did not stop within {} s of {name} (a disk that does not answer, or a \
                 store whose flush cannot finish); exiting with {}: start-up validates the TLog \
                 and replays what the store lacks",
                STOP_WITHIN.as_secs(),
                NodeExit::StopTimedOut.code()
            );
            std::process::exit(NodeExit::StopTimedOut.code());
        };
        std::thread::Builder::new().name("signals".into()).spawn(watcher).is_ok()
    }
}
