//! `arakoon-admin soak`: a sandbox of real nodes under a long mixed load and seeded faults, each
//! node's resident memory and descriptors sampled and judged against its bounds, every
//! acknowledged write read back (the soak itself is `arakoon_chaos::soak`; this parses the
//! arguments, shows the progress and prints the report).

use crate::connect::parse_duration_ms;
use crate::exit::Exit;
use crate::output::{say, Failure};
use arakoon_chaos::sandbox::NODES_MAX;
use arakoon_chaos::soak::{self, Finding, Progress, SoakError, SoakPlan, SoakReport, SoakWatch};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `arakoon-admin soak`'s arguments (its help is in main.rs, where clap takes it from).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    arakoon-admin soak --duration 3m\n  \
    arakoon-admin soak --duration 30s --clients 4 --value-bytes-max 1048576 --fault-every 5s\n  \
    arakoon-admin soak --seed 42 --duration 10m --json > soak.json\n\n\
    The seed and the command that replays its schedule are printed first.\n\n\
    Exit codes: 0 every bound held and nothing was lost; 1 a fault of the schedule could not be \
    applied, the cluster did not settle or the keys could not be read back; 2 bad command line; \
    3 bad input (the arakoon binary, a --set); 5 no master at the start; 8 a node went over its \
    memory or descriptor bound, or kept descriptors; 9 an acknowledged write was lost.")]
pub struct SoakArgs {
    /// How long the load and the faults go on, e.g. 30s, 10m.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    duration: String,
    /// The seed of the schedule and of the clients' draws (default: drawn, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How many nodes (named n0, n1, ...).
    #[arg(long, default_value_t = 3, value_name = "N")]
    nodes: usize,
    /// Clients, each its own connection.
    #[arg(long, default_value_t = 8, value_name = "N")]
    clients: usize,
    /// The largest value written; sizes are drawn from 16 bytes up, as many of each power of two.
    #[arg(long, default_value_t = 65_536, value_name = "BYTES")]
    value_bytes_max: usize,
    /// About how often a fault strikes (each is repaired before the next), e.g. 20s.
    #[arg(long, default_value = "20s", value_name = "DURATION")]
    fault_every: String,
    /// How often each node's memory and descriptors are read.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    sample: String,
    /// The master's lease.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    lease_ms: u64,
    /// A [global] setting of the nodes' configuration, e.g. --set max_connections=256 (repeat
    /// for more); the memory bound follows from them.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::sandbox_cmd::parse_setting)]
    settings: Vec<(String, String)>,
    /// Where the sandbox lives (default: a new directory in the temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the sandbox's directory (logs, TLogs, stores) afterwards.
    #[arg(long)]
    keep: bool,
    /// The arakoon binary (default: the one beside arakoon-admin, or $ARAKOON_BIN).
    #[arg(long, value_name = "FILE")]
    arakoon: Option<PathBuf>,
    /// Print the report as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

/// How long the sandbox may take to elect its first master (as `sandbox up`).
const UP_WITHIN: Duration = Duration::from_secs(60);

pub fn run(args: SoakArgs) -> Result<i32, Failure> {
    let plan = plan(&args)?;
    let live = Arc::new(Live::new(plan.duration, args.json));
    live.line(format!(
        "soak seed {}: {} nodes, {} clients, values up to {} bytes, a fault about every {}, for {}",
        plan.seed,
        plan.nodes,
        plan.workload.clients,
        plan.workload.value_bytes_max,
        args.fault_every,
        args.duration
    ));
    live.line(format!("replay: {}", replay(&args, plan.seed)));
    let result = soak::run(&plan, live.clone());
    live.bar.finish_and_clear();
    let report = result.map_err(failure)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    Ok(exit_code(&report.findings).code())
}

fn plan(args: &SoakArgs) -> Result<SoakPlan, Failure> {
    if !(1..=NODES_MAX).contains(&args.nodes) {
        return Err(Failure::new(Exit::Usage, format!("--nodes {}: 1 to {NODES_MAX}", args.nodes)));
    }
    if args.lease_ms == 0 {
        return Err(Failure::new(Exit::Usage, "--lease-ms 0: the lease must be at least 1 ms"));
    }
    let duration = Duration::from_millis(parse_duration_ms("--duration", &args.duration)?);
    let fault_every = Duration::from_millis(parse_duration_ms("--fault-every", &args.fault_every)?);
    let sample_every = Duration::from_millis(parse_duration_ms("--sample", &args.sample)?);
    let (arakoon, exe) = crate::sandbox_cmd::binaries(args.arakoon.clone())?;
    let seed = args.seed.unwrap_or_else(drawn_seed);
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("arakoon-soak-{seed}-{}", std::process::id()))
    });
    let plan = SoakPlan {
        dir,
        keep: args.keep,
        nodes: args.nodes,
        lease_ms: args.lease_ms,
        settings: args.settings.clone(),
        arakoon,
        supervisor: (exe, vec!["sandbox".into(), "supervise".into()]),
        up_within: UP_WITHIN,
        seed,
        duration,
        fault_every,
        sample_every,
        workload: soak::WorkloadSpec {
            clients: args.clients,
            value_bytes_max: args.value_bytes_max,
            pause_us_max: 5_000,
        },
    };
    plan.check().map_err(|e| Failure::new(Exit::Usage, e.to_string()))?;
    Ok(plan)
}

/// A seed when none is given: the time and the pid (it is printed, and replays the schedule).
fn drawn_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (u64::from(std::process::id()) << 32)) % 1_000_000
}

/// The command that runs the same schedule again.
fn replay(args: &SoakArgs, seed: u64) -> String {
    let mut line = format!(
        "arakoon-admin soak --seed {seed} --duration {} --nodes {} --clients {} \
         --value-bytes-max {} --fault-every {} --sample {} --lease-ms {}",
        args.duration,
        args.nodes,
        args.clients,
        args.value_bytes_max,
        args.fault_every,
        args.sample,
        args.lease_ms
    );
    for (k, v) in &args.settings {
        line += &format!(" --set {k}={v}");
    }
    line
}

fn failure(e: SoakError) -> Failure {
    let code = match &e {
        SoakError::Plan(_) => Exit::Usage,
        SoakError::Up { source, .. } => Exit::from(source),
        _ => Exit::BadInput,
    };
    Failure::new(code, e.to_string())
}

/// The exit code of a report: a lost write before a bound, a bound before a run that could
/// not be judged.
fn exit_code(findings: &[Finding]) -> Exit {
    let lost = findings.iter().any(|f| matches!(f, Finding::LostWrites { .. }));
    let bound = findings.iter().any(|f| {
        matches!(
            f,
            Finding::OverMemory { .. }
                | Finding::OverDescriptors { .. }
                | Finding::DescriptorsKept { .. }
                | Finding::NoSamples { .. }
        )
    });
    match (lost, bound, findings.is_empty()) {
        (true, _, _) => Exit::LostWrite,
        (false, true, _) => Exit::OverBound,
        (false, false, true) => Exit::Ok,
        (false, false, false) => Exit::Declined,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

fn print_report(r: &SoakReport) {
    println!(
        "\n{:<5} {:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8}",
        "node",
        "samples",
        "procs",
        "rss min",
        "median",
        "max",
        "bound",
        "fd max",
        "fd 0",
        "fd end",
        "fd bound"
    );
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    for n in &r.nodes {
        let s = &n.summary;
        println!(
            "{:<5} {:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8}",
            n.name,
            s.samples,
            s.processes,
            mib(s.rss_min_bytes),
            mib(s.rss_median_bytes),
            mib(s.rss_max_bytes),
            mib(n.memory_bound_bytes),
            s.descriptors_max,
            opt(n.descriptors_start),
            opt(n.descriptors_end),
            n.descriptors_bound
        );
    }
    println!("(RSS in MiB; fd 0: descriptors before the load, fd end: after it, settled)");
    println!("\n{:<14} {:>9} {:>9} {:>9}", "op", "ok", "failed", "unknown");
    for o in &r.ops {
        println!("{:<14} {:>9} {:>9} {:>9}", o.kind.name(), o.ok, o.failed, o.unknown);
    }
    println!(
        "\n{} faults applied in {:.0} s; {} keys tracked, {} read back at the end{}",
        r.faults.len(),
        r.duration_ms as f64 / 1000.0,
        r.keys_tracked,
        r.keys_read_back,
        if r.keys_untracked > 0 {
            format!(" ({} more written, not tracked)", r.keys_untracked)
        } else {
            String::new()
        }
    );
    if r.passed {
        println!("PASS: every node stayed within its bounds; no acknowledged write was lost");
    } else {
        println!("FAIL:");
        for f in &r.findings {
            println!("  {f}");
        }
        println!("replay the schedule with --seed {}", r.seed);
    }
}

/// How often the progress is printed as a line when no bar is drawn (not a terminal).
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(30);

/// The display while a soak runs: a bar of the time on a terminal, lines for faults and phases
/// (and, off a terminal, for the progress every [`PROGRESS_LINE_EVERY`]).
struct Live {
    bar: ProgressBar,
    json: bool,
    /// When the progress was last printed as a line.
    last_line: std::sync::Mutex<std::time::Instant>,
}

impl Live {
    fn new(duration: Duration, json: bool) -> Live {
        let bar = crate::output::timed_bar(duration, "soak [{bar:30}] {elapsed} {msg}");
        Live { bar, json, last_line: std::sync::Mutex::new(std::time::Instant::now()) }
    }

    /// A line above the bar; with --json on stderr, so that stdout holds the report only.
    fn line(&self, text: String) {
        if self.json && self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            say(&self.bar, text);
        }
    }
}

impl SoakWatch for Live {
    fn progress(&self, p: &Progress) {
        let text = format!(
            "ops {} ok, {} failed, {} unknown | faults {} | max RSS {} MiB, fds {}",
            p.ops_ok,
            p.ops_failed,
            p.ops_unknown,
            p.faults,
            mib(p.rss_now_bytes),
            p.descriptors_now
        );
        if self.bar.is_hidden() {
            let mut last = self.last_line.lock().expect("last line");
            if last.elapsed() >= PROGRESS_LINE_EVERY {
                *last = std::time::Instant::now();
                drop(last);
                self.line(format!("{:>9.1}s {text}", p.elapsed_ms as f64 / 1000.0));
            }
            return;
        }
        self.bar.set_position(p.elapsed_ms.min(p.duration_ms));
        self.bar.set_message(text);
    }

    fn fault(&self, at_ms: u64, what: &str) {
        self.line(format!("  {:>7.1}s {what}", at_ms as f64 / 1000.0));
    }

    fn phase(&self, what: &str) {
        self.line(what.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_write_outranks_a_bound_which_outranks_the_rest() {
        let lost = Finding::LostWrites { count: 1, first: vec![] };
        let memory = Finding::OverMemory { node: "n0".into(), rss_max_bytes: 2, bound_bytes: 1 };
        let broke = Finding::ScheduleBroke { detail: "x".into() };
        assert_eq!(exit_code(&[]), Exit::Ok);
        assert_eq!(exit_code(std::slice::from_ref(&broke)), Exit::Declined);
        assert_eq!(exit_code(&[broke.clone(), memory.clone()]), Exit::OverBound);
        assert_eq!(exit_code(&[memory, lost, broke]), Exit::LostWrite);
    }
}
