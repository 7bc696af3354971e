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
    -h, --help         this text
    -V, --version      the version

The node validates its TLog and store before serving. When it refuses to start, the message
names the file, the offset and the command that repairs it; the exit code says why:
{EXIT_CODES}
SIGTERM and SIGINT stop the node cleanly: waiting clients hear going_down, the TLog gets its
closed marker, the store is flushed; the exit code is then 0.

EXAMPLE:
    arakoon --node n0 -config cluster.ini
";

struct Args {
    node: String,
    config: PathBuf,
    catchup_only: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut node = None;
    let mut config = None;
    let mut catchup_only = false;
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
    Ok(Some(Args { node, config, catchup_only }))
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

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
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
        let options = ServerOptions { seed, peer_auth, ..ServerOptions::default() };
        match serve(config, me, TokioNet, MonotonicClock::default(), options, shutdown_signal())
            .await
        {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("arakoon: {e}");
                e.exit_code()
            }
        }
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        // Without signal handling the node still serves; it stops when killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
