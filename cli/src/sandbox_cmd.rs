//! `arakoon-admin sandbox`: a local cluster of real `arakoon` processes on loopback, to try
//! faults by hand: kill, stop, pause, wipe and corrupt nodes, cut and heal peer links.
//!
//! `up` plans the sandbox (free ports, a generated INI per node, see `arakoon_chaos::sandbox`),
//! starts a supervisor process (`sandbox supervise`, hidden) that owns the node processes and the
//! peer-link proxies, waits for a master, detaches the supervisor and returns. Every other
//! command finds the sandbox by its directory: `status` reads `sandbox.json` and asks each node
//! for its state; the commands that change processes or links go to the supervisor over
//! `D/control.sock` (why, and how lifetimes work: `arakoon_chaos::sandbox_supervisor`).

use crate::connect::parse_duration_ms;
use crate::exit::Exit;
use crate::output::{spinner, Failure};
use arakoon_chaos::process;
use arakoon_chaos::sandbox::{self, GroupsError, SandboxNode, SandboxState, NODES_MAX};
use arakoon_chaos::sandbox_control::{self, CorruptHow, CorruptTarget, Request};
use arakoon_chaos::sandbox_lifecycle;
use arakoon_chaos::sandbox_up::{self, UpError, UpPlan};
use arakoon_chaos::sandbox_view::{self, NodeView, SandboxStatus};
use arakoon_node::client::AskError;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "Example session:\n  \
    arakoon-admin sandbox up --nodes 3 --dir /tmp/sb\n  \
    arakoon-admin sandbox status --dir /tmp/sb\n  \
    arakoon-admin sandbox partition n0 n1,n2 --dir /tmp/sb\n  \
    arakoon-admin sandbox heal --dir /tmp/sb\n  \
    arakoon-admin sandbox kill n1 --dir /tmp/sb\n  \
    arakoon-admin sandbox restart n1 --dir /tmp/sb\n  \
    arakoon-admin sandbox down --dir /tmp/sb\n\n\
    Exit codes: 0 done; 2 bad command line; 3 bad input (no sandbox in the directory, an unknown \
    node, a node not running, corrupting a running node); 5 no master within the timeout, the \
    sandbox is not running, or a wipe found no peer to catch up from; 130 interrupted.")]
pub struct SandboxArgs {
    /// The sandbox's directory: every command on one sandbox names the same one.
    #[arg(long, global = true, value_name = "DIR", default_value = "arakoon-sandbox")]
    dir: PathBuf,
    #[command(subcommand)]
    command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start N arakoon processes on loopback; return once a master is elected.
    ///
    /// Free ports, one INI per node (peers reached through fault proxies), a log per node;
    /// the processes keep running in the background under a supervisor process until `down`.
    #[command(after_help = "Examples:\n  arakoon-admin sandbox up --nodes 3 --dir /tmp/sb \
                            --lease-ms 1000\n  \
                            arakoon-admin sandbox up --nodes 5 --set tlog_max_entries=100")]
    Up(UpArgs),
    /// Per node: process (running, paused, stopped), pid, ports, role, master and applied i.
    #[command(after_help = "Example:\n  arakoon-admin sandbox status --dir /tmp/sb --json")]
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// kill -9 a node (a crash: only what it fsynced survives).
    #[command(after_help = "Example:\n  arakoon-admin sandbox kill n1 --dir /tmp/sb")]
    Kill(NodeArg),
    /// Stop a node cleanly (SIGTERM; kill -9 after 10 s).
    #[command(after_help = "Example:\n  arakoon-admin sandbox stop n1 --dir /tmp/sb")]
    Stop(NodeArg),
    /// Freeze a node with SIGSTOP (its sockets stay open, it answers nothing).
    #[command(after_help = "Example:\n  arakoon-admin sandbox pause n0 --dir /tmp/sb")]
    Pause(NodeArg),
    /// Thaw a paused node with SIGCONT.
    #[command(after_help = "Example:\n  arakoon-admin sandbox resume n0 --dir /tmp/sb")]
    Resume(NodeArg),
    /// Stop a node if it runs, then start it (alias: start).
    #[command(
        alias = "start",
        after_help = "Example:\n  arakoon-admin sandbox restart n1 --dir /tmp/sb"
    )]
    Restart(NodeArg),
    /// A lost disk, and the operator's repair: stop the node, delete its home, rebuild it from
    /// a peer with `arakoon -catchup-only`, start it.
    #[command(after_help = "Example:\n  arakoon-admin sandbox wipe n2 --dir /tmp/sb")]
    Wipe(NodeArg),
    /// Cut the peer links between groups of nodes, in both directions (or one, --one-way).
    ///
    /// Each group is a comma-separated list of nodes; nodes named in no group form one more
    /// group. Each `partition` replaces the previous one; `heal` ends it. Client ports are not
    /// cut: clients still reach every node, as in a partition between servers only.
    #[command(after_help = "Examples:\n  \
        arakoon-admin sandbox partition n0 n1,n2 --dir /tmp/sb     n0 alone on one side\n  \
        arakoon-admin sandbox partition n0 --dir /tmp/sb           the same\n  \
        arakoon-admin sandbox partition --one-way n0 n1 --dir /tmp/sb\n                  \
        n0's messages to n1 are lost; n1 still reaches n0")]
    Partition(PartitionArgs),
    /// Let every peer link pass again.
    #[command(after_help = "Example:\n  arakoon-admin sandbox heal --dir /tmp/sb")]
    Heal,
    /// Damage a stopped node's newest TLog file or its store: flip a bit, or cut the file.
    #[command(after_help = "Examples:\n  \
        arakoon-admin sandbox stop n1 --dir /tmp/sb\n  \
        arakoon-admin sandbox corrupt n1 --tlog --bitflip --dir /tmp/sb\n  \
        arakoon-admin sandbox restart n1 --dir /tmp/sb    the node refuses its damaged TLog\n  \
        arakoon-admin sandbox wipe n1 --dir /tmp/sb       the repair")]
    Corrupt(CorruptArgs),
    /// Stop every process of the sandbox; keep the data for inspection unless --clean.
    #[command(after_help = "Example:\n  arakoon-admin sandbox down --dir /tmp/sb --clean")]
    Down {
        /// Delete the sandbox directory too.
        #[arg(long)]
        clean: bool,
    },
    /// The supervisor process that `up` starts (not for direct use).
    #[command(hide = true)]
    Supervise,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many nodes (named n0, n1, ...).
    #[arg(long, default_value_t = 3, value_name = "N")]
    nodes: usize,
    /// The master's lease.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    lease_ms: u64,
    /// A [global] setting of the nodes' configuration, e.g. --set tlog_max_entries=100
    /// (repeat for more; checked as the node checks its INI file).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// How long to wait for a master, e.g. 60s or 1m.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    timeout: String,
    /// The arakoon binary (default: the one beside arakoon-admin, or $ARAKOON_BIN).
    #[arg(long, value_name = "FILE")]
    arakoon: Option<PathBuf>,
    /// Take the sandbox down when this process ends (for tests and scripts).
    #[arg(long, value_name = "PID", hide = true)]
    exit_with_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct NodeArg {
    /// The node's name (n0, n1, ...).
    node: String,
}

#[derive(Debug, Args)]
pub struct PartitionArgs {
    /// Groups of nodes, each comma-separated: `n0,n1 n2`.
    #[arg(required = true, value_name = "GROUP")]
    groups: Vec<String>,
    /// Cut only the links from the first group to the second (exactly two groups).
    #[arg(long)]
    one_way: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["tlog", "store"])))]
#[command(group(ArgGroup::new("how").required(true).args(["bitflip", "truncate"])))]
pub struct CorruptArgs {
    /// The stopped node to damage.
    node: String,
    /// Damage its newest TLog file.
    #[arg(long)]
    tlog: bool,
    /// Damage its store (its largest file).
    #[arg(long)]
    store: bool,
    /// Flip one bit in the middle (of an entry's payload, for the TLog).
    #[arg(long)]
    bitflip: bool,
    /// Cut the file (the TLog inside its last entry, as a torn write; the store file in half).
    #[arg(long)]
    truncate: bool,
}

pub fn run(args: SandboxArgs) -> Result<i32, Failure> {
    let dir = args.dir;
    match args.command {
        SandboxCommand::Up(up_args) => up(&dir, up_args),
        SandboxCommand::Supervise => {
            arakoon_chaos::sandbox_supervisor::run(&dir).map(|()| 0).map_err(|e| {
                Failure::new(
                    Exit::BadInput,
                    format!("sandbox supervisor for {}: {e}", dir.display()),
                )
            })
        }
        SandboxCommand::Status { json } => status(&dir, json),
        SandboxCommand::Kill(a) => {
            node_command(&dir, &a.node, Request::Kill { node: a.node.clone() })
        }
        SandboxCommand::Stop(a) => {
            node_command(&dir, &a.node, Request::Stop { node: a.node.clone() })
        }
        SandboxCommand::Pause(a) => {
            node_command(&dir, &a.node, Request::Pause { node: a.node.clone() })
        }
        SandboxCommand::Resume(a) => {
            node_command(&dir, &a.node, Request::Resume { node: a.node.clone() })
        }
        SandboxCommand::Restart(a) => {
            node_command(&dir, &a.node, Request::Restart { node: a.node.clone() })
        }
        SandboxCommand::Wipe(a) => {
            node_command(&dir, &a.node, Request::Wipe { node: a.node.clone() })
        }
        SandboxCommand::Partition(a) => partition(&dir, a),
        SandboxCommand::Heal => {
            let state = load(&dir)?;
            let answer = send(&dir, &state, Request::Net { links: Default::default() })?;
            println!("healed: {}", answer.message);
            Ok(0)
        }
        SandboxCommand::Corrupt(a) => corrupt(&dir, a),
        SandboxCommand::Down { clean } => down(&dir, clean),
    }
}

/// The sandbox in `dir`, or a failure that says there is none.
fn load(dir: &Path) -> Result<SandboxState, Failure> {
    SandboxState::load(dir).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))
}

/// Sends `request` to the running supervisor; a refusal becomes a failure with its code.
fn send(
    dir: &Path,
    state: &SandboxState,
    request: Request,
) -> Result<sandbox_control::Answer, Failure> {
    if state.running_supervisor().is_none() {
        return Err(Failure::new(
            Exit::Unreachable,
            format!(
                "the sandbox in {dir} is not running (it is down, or its supervisor died: see \
                 {dir}/supervisor.log); start a new one with `arakoon-admin sandbox down --dir \
                 {dir} --clean` and `arakoon-admin sandbox up --dir {dir}`",
                dir = dir.display()
            ),
        ));
    }
    let answer = sandbox_control::send(dir, &request)
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    if answer.ok {
        Ok(answer)
    } else {
        Err(Failure::new(answer.refusal.map_or(Exit::BadInput, Exit::from), answer.message))
    }
}

fn node_command(dir: &Path, node: &str, request: Request) -> Result<i32, Failure> {
    let state = load(dir)?;
    state.node(node).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let answer = send(dir, &state, request)?;
    println!("{}", answer.message);
    Ok(0)
}

// ---- up ------------------------------------------------------------------------------------

fn up(dir: &Path, args: UpArgs) -> Result<i32, Failure> {
    if !(1..=NODES_MAX).contains(&args.nodes) {
        return Err(Failure::new(Exit::Usage, format!("--nodes {}: 1 to {NODES_MAX}", args.nodes)));
    }
    if args.lease_ms == 0 {
        return Err(Failure::new(Exit::Usage, "--lease-ms 0: the lease must be at least 1 ms"));
    }
    let timeout = Duration::from_millis(parse_duration_ms("--timeout", &args.timeout)?);
    let (arakoon, exe) = binaries(args.arakoon)?;
    // The supervisor is this same binary, as `sandbox supervise` (hidden).
    let supervise =
        vec!["sandbox".into(), "supervise".into(), "--dir".into(), dir.display().to_string()];
    let plan = UpPlan {
        dir: dir.to_path_buf(),
        nodes: args.nodes,
        lease_ms: args.lease_ms,
        settings: args.settings,
        arakoon,
        owner_pid: args.exit_with_pid,
        supervisor: (exe, supervise),
        timeout,
        interruptible: true,
    };
    let bar = spinner();
    bar.set_message(format!("waiting for a master among {} nodes", args.nodes));
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = sandbox_up::up(&plan);
    bar.finish_and_clear();
    let up = result.map_err(|e| {
        if !matches!(e, UpError::Dir(_)) {
            eprintln!("arakoon-admin: stopped the sandbox's supervisor and nodes");
        }
        Failure::new(Exit::from(&e), e.to_string())
    })?;
    print_up(&up.dir, &up.master, up.took, up.supervisor_pid, args.lease_ms)?;
    Ok(0)
}

fn print_up(
    dir: &Path,
    master: &str,
    took: Duration,
    supervisor_pid: u32,
    lease_ms: u64,
) -> Result<(), Failure> {
    let state = load(dir)?;
    let d = dir.display();
    println!(
        "sandbox up in {d}: {} nodes, lease {lease_ms} ms, master {master} (elected in {:.1} s)",
        state.nodes.len(),
        took.as_secs_f64()
    );
    for n in &state.nodes {
        println!(
            "  {:<4} pid {:<8} client 127.0.0.1:{:<6} messaging {:<6} log {}",
            n.name,
            n.pid.map_or("-".into(), |p| p.to_string()),
            n.client_port,
            n.messaging_port,
            sandbox::node_log(dir, &n.name).display()
        );
    }
    println!("configuration: {d}/cluster.ini (arakoon-admin client who-master -c {d}/cluster.ini)");
    println!(
        "supervisor: pid {supervisor_pid}, owns the nodes and the peer-link proxies; log \
         {d}/supervisor.log"
    );
    println!(
        "next: arakoon-admin sandbox status --dir {d}; stop everything: sandbox down --dir {d}"
    );
    Ok(())
}

// ---- status --------------------------------------------------------------------------------

/// A node's line of the status: what the supervisor recorded, its process, its pid, its answer.
type Row<'a> = (&'a SandboxNode, &'a str, Option<u32>, &'a Result<NodeView, AskError>);

fn status(dir: &Path, as_json: bool) -> Result<i32, Failure> {
    let status =
        sandbox_view::status(dir).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let SandboxStatus { dir, state, supervisor, nodes, masters, net } = status;
    let rows: Vec<Row> =
        nodes.iter().map(|s| (&s.node, s.process.name(), s.process.pid(), &s.view)).collect();
    let masters: Vec<&str> = masters.iter().map(String::as_str).collect();
    let cut: Vec<&String> = net.keys().collect();
    if as_json {
        let nodes: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, process_state, pid, view)| {
                let v = view.as_ref().cloned().unwrap_or_default();
                json!({
                    "name": n.name,
                    "process": process_state,
                    "pid": pid,
                    "client_port": n.client_port,
                    "messaging_port": n.messaging_port,
                    "role": v.role,
                    "master": v.master,
                    "lease_valid": v.lease_valid,
                    "applied": v.applied,
                    "committed": v.committed,
                    "learner": v.learner,
                    "last_exit": n.last_exit,
                    "error": view.as_ref().err().map(ToString::to_string),
                })
            })
            .collect();
        let report = json!({
            "dir": dir.display().to_string(),
            "cluster_id": state.cluster_id,
            "lease_ms": state.lease_ms,
            "supervisor": { "pid": state.supervisor_pid, "running": supervisor.is_some() },
            "master": if masters.len() == 1 { Some(masters[0]) } else { None },
            "masters": masters,
            "nodes": nodes,
            "links_cut": cut,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(0);
    }
    let sup = match supervisor {
        Some(pid) => format!("supervisor pid {pid}"),
        None => "DOWN (no supervisor; no node can run)".into(),
    };
    println!(
        "sandbox {}: cluster {}, {} nodes, lease {} ms, {sup}",
        dir.display(),
        state.cluster_id,
        state.nodes.len(),
        state.lease_ms
    );
    match masters.as_slice() {
        [] => println!("master: none (no node holds a valid lease: an election, or no quorum)"),
        [m] => println!("master: {m}"),
        many => println!("masters: {} (more than one valid lease!)", many.join(", ")),
    }
    println!(
        "{:<5} {:<8} {:<8} {:<7} {:<9} {:<12} {:<7} applied",
        "node", "process", "pid", "client", "messaging", "role", "master"
    );
    let dash = || "-".to_string();
    for (n, process_state, pid, view) in &rows {
        let (role, master, applied, note) = match view {
            Ok(v) => (
                v.role.clone().map(|r| if v.learner == Some(true) { format!("{r}*") } else { r }),
                v.master.clone(),
                v.applied.map(|i| i.to_string()),
                n.last_exit.clone().filter(|_| *process_state == "stopped"),
            ),
            Err(e) => (None, None, None, Some(format!("no answer: {e}"))),
        };
        println!(
            "{:<5} {:<8} {:<8} {:<7} {:<9} {:<12} {:<7} {}{}",
            n.name,
            process_state,
            pid.map_or_else(dash, |p| p.to_string()),
            n.client_port,
            n.messaging_port,
            role.unwrap_or_else(dash),
            master.unwrap_or_else(dash),
            applied.unwrap_or_else(dash),
            note.map(|s| format!("  ({s})")).unwrap_or_default()
        );
    }
    if rows.iter().any(|(_, _, _, v)| matches!(v, Ok(v) if v.learner == Some(true))) {
        println!("* a learner: rebuilt from a peer, no vote until a master caught it up");
    }
    if cut.is_empty() {
        println!("links: all pass");
    } else {
        let cut: Vec<&str> = cut.iter().map(|s| s.as_str()).collect();
        println!("links cut: {}", cut.join(", "));
    }
    Ok(0)
}

// ---- partition, corrupt, down --------------------------------------------------------------

fn partition(dir: &Path, args: PartitionArgs) -> Result<i32, Failure> {
    let state = load(dir)?;
    let (links, said) =
        sandbox::partition_of_groups(&state, &args.groups, args.one_way).map_err(|e| {
            let code = match e {
                GroupsError::Names(_) => Exit::BadInput,
                GroupsError::OneWayNotTwo | GroupsError::OneGroup => Exit::Usage,
            };
            Failure::new(code, e.to_string())
        })?;
    let answer = send(dir, &state, Request::Net { links })?;
    println!("partition {said}: {}", answer.message);
    println!("heal with: arakoon-admin sandbox heal --dir {}", dir.display());
    Ok(0)
}

fn corrupt(dir: &Path, args: CorruptArgs) -> Result<i32, Failure> {
    let state = load(dir)?;
    let node = state.node(&args.node).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let target = if args.tlog { CorruptTarget::Tlog } else { CorruptTarget::Store };
    let how = if args.bitflip { CorruptHow::Bitflip } else { CorruptHow::Truncate };
    if state.running_supervisor().is_some() {
        // The supervisor knows whether the node runs, and no restart can race the damage.
        let answer = send(dir, &state, Request::Corrupt { node: node.name.clone(), target, how })?;
        println!("{}", answer.message);
        return Ok(0);
    }
    // The sandbox is down: no node runs (they die with the supervisor); damage the files here.
    let done = arakoon_chaos::sandbox_corrupt::corrupt_down(dir, &state, &node.name, target, how)
        .map_err(|e| Failure::new(Exit::BadInput, format!("{}: {e}", node.name)))?;
    println!("{}: {done}", node.name);
    Ok(0)
}

fn down(dir: &Path, clean: bool) -> Result<i32, Failure> {
    let said = sandbox_lifecycle::down(dir, clean)
        .map_err(|e| Failure::new(Exit::from(&e), e.to_string()))?;
    for line in said {
        println!("{line}");
    }
    Ok(0)
}

pub(crate) fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{text:?}: write KEY=VALUE, e.g. tlog_max_entries=100")),
    }
}

/// The `arakoon` binary a sandbox runs (`--arakoon`, or the one beside this program or on the
/// PATH) and this program itself, which supervises the sandbox.
pub(crate) fn binaries(
    arakoon: Option<std::path::PathBuf>,
) -> Result<(std::path::PathBuf, std::path::PathBuf), Failure> {
    let arakoon = match arakoon {
        Some(p) if p.is_file() => p,
        Some(p) => {
            return Err(Failure::new(
                Exit::BadInput,
                format!("--arakoon {}: no such file", p.display()),
            ))
        }
        None => process::locate_binary("arakoon")
            .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?,
    };
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(Exit::BadInput, format!("cannot find arakoon-admin itself: {e}"))
    })?;
    Ok((arakoon, exe))
}
