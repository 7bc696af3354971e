//! `arakoon-admin`: the operator's toolkit for arakoon-rs.
//!
//! One module per command family; each returns the process exit code, or a [`Failure`] whose
//! message is printed on stderr. Exit codes are named in exit.rs and listed in the README.

mod bench_cmd;
mod catchup_cmd;
mod check_cmd;
mod client_cmd;
mod collapse_cmd;
mod completions_cmd;
mod connect;
mod drill_cmd;
mod drill_live;
mod exit;
mod node_files;
mod output;
mod rebuild_cmd;
mod sandbox_cmd;
mod sim_cmd;
mod soak_cmd;
mod store_cmd;
mod tlog_cmd;

use clap::{CommandFactory, Parser, Subcommand};
use output::Failure;

/// mimalloc rather than glibc's malloc: a simulation campaign allocates and frees at every
/// event, and spent about a tenth less CPU with it (README, the simulator's speed).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "arakoon-admin", version, about = "The operator's toolkit for arakoon-rs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, verify and repair TLog directories.
    #[command(subcommand)]
    Tlog(tlog_cmd::TlogCommand),
    /// Run failure drills (YAML) and judge every seed: `drill run` with no file runs the built-in one.
    #[command(subcommand)]
    Drill(drill_cmd::DrillCommand),
    /// Simulate whole clusters under faults, seed by seed, and check every run.
    Sim(sim_cmd::SimArgs),
    /// Check that a recorded history is linearizable; explain a violation.
    Check(check_cmd::CheckArgs),
    /// Look inside a stopped node's store; check it against its TLog and cluster.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Rebuild a stopped node's store from its TLog, replacing the old one atomically.
    Rebuild(rebuild_cmd::RebuildArgs),
    /// Bring a stopped node up to date from a peer, then exit.
    Catchup(catchup_cmd::CatchupArgs),
    /// Fold a stopped node's old TLog files into its head snapshot and remove them.
    Collapse(collapse_cmd::CollapseArgs),
    /// Run a client command against a cluster (get, set, range, who-master, ...).
    Client(client_cmd::ClientArgs),
    /// Closed-loop load on a running cluster: ops/s and latency per client count.
    Bench(bench_cmd::BenchArgs),
    /// A local cluster of real arakoon processes on loopback: kill, pause, partition, wipe.
    Sandbox(sandbox_cmd::SandboxArgs),
    /// A sandbox under long load and seeded faults: each node's memory and descriptors against
    /// its bounds, every acknowledged write read back.
    ///
    /// Brings up a sandbox of real `arakoon` processes on loopback (as `sandbox up`), drives a
    /// mixed load (sets of fresh keys with values of mixed sizes, consistent gets, deletes,
    /// range and range_entries with a bounded max, sequences; one connection per client) and
    /// strikes it on a schedule drawn from the seed: kill -9 and restart, SIGSTOP and SIGCONT,
    /// a node cut off by the peer-link proxies and healed, on the master or a random node.
    /// Every --sample it reads each node's resident memory (/proc/PID/statm) and open
    /// descriptors (/proc/PID/fd). At the end it heals and restarts everything, waits until
    /// every node caught up, reads back every key the clients wrote, and prints per node: RSS
    /// min / median / max, the node's memory bound (memory_bound_bytes of the configuration),
    /// the most descriptors, their count before and after the load; and the operations per
    /// kind. The sandbox is taken down afterwards (--keep keeps its files).
    ///
    /// It fails when a node's RSS passed its bound; when its descriptors passed
    /// max_connections plus the node's reserve, or were not back within 16 + 4 per node of
    /// their count before the load once the load stopped and the cluster settled (a leak); or
    /// when an acknowledged write was lost (a consistent get or a delete that did not find it,
    /// or the read-back).
    Soak(soak_cmd::SoakArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: arakoon-admin completions bash > /etc/bash_completion.d/arakoon-admin
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() {
    // `-config FILE`, as arakoon takes it, would read as `-c onfig`: rewrite it first.
    let cli = Cli::parse_from(node_files::normalize_args(std::env::args_os()));
    let result = match cli.command {
        Command::Tlog(cmd) => tlog_cmd::run(cmd),
        Command::Drill(cmd) => drill_cmd::run(cmd),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Store(cmd) => store_cmd::run(cmd),
        Command::Rebuild(args) => rebuild_cmd::run(args),
        Command::Catchup(args) => catchup_cmd::run(args),
        Command::Collapse(args) => collapse_cmd::run(args),
        Command::Client(args) => client_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Sandbox(args) => sandbox_cmd::run(args),
        Command::Soak(args) => soak_cmd::run(args),
        Command::Completions { shell } => Ok(completions_cmd::run(shell, &mut Cli::command())),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(Failure { code, message }) => {
            eprintln!("arakoon-admin: {message}");
            std::process::exit(code);
        }
    }
}
