//! `arakoon-admin sim`: run the deterministic simulator over one seed or a range of seeds.

use crate::exit::Exit;
use crate::output::{progress_bar, say, Failure};
use arakoon_sim::campaign::{self, CampaignReport, Shard};
use arakoon_sim::{FaultMix, Outcome, SimConfig};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FaultChoice {
    /// Each seed draws which fault families are on, and their rates.
    Swarm,
    /// Every fault family at once.
    All,
    /// A perfect world.
    None,
}

/// Simulate whole clusters under faults, one seed at a time, and check every run.
///
/// Each seed is a complete, reproducible run: the same seed gives the same run, event for
/// event. Clients record their history (get, set, delete, test_and_set on k* keys; sequences
/// and range reads on s* keys), which is checked for linearizability after the other checks
/// (agreement, identical stores, no acknowledged write lost, one lease at a time). A failing
/// seed prints the check it broke and the command that replays it.
///
/// Examples:
///   arakoon-admin sim --seeds 0..100
///   arakoon-admin sim --seed 42 --faults all --trace /tmp/seed42.txt
///   arakoon-admin sim --seeds 0..20 --determinism
///   arakoon-admin sim --seeds 0..10 --pause 0ms..5ms    # heavy load
///   arakoon-admin sim --seed 7 --history /tmp/h && arakoon-admin check /tmp/h/seed7-kv.jsonl --model kv
///   arakoon-admin sim --seeds 0..1000000 --shard 3/16 --jobs 2 --report shard3.json
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, `A..B` (B excluded).
    #[arg(long, default_value = "0..20")]
    seeds: String,
    /// Cluster size, 1 to 5; or `draw`: with `--faults swarm` each seed draws its shape from
    /// its RNG (1 to 5 nodes, sometimes a quorum override at or above the majority), and the
    /// summary counts the seeds of each shape. With a fixed fault mix, `draw` runs 3 nodes.
    #[arg(long, default_value = "3", value_parser = parse_nodes, value_name = "N|draw")]
    nodes: Nodes,
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Simulated duration of each run, e.g. 60s or 500ms.
    #[arg(long, default_value = "60s")]
    duration: String,
    #[arg(long, value_enum, default_value_t = FaultChoice::Swarm)]
    faults: FaultChoice,
    /// A client's pause between an answer and its next call, drawn between the two bounds:
    /// 10ms..100ms is a Jepsen-like pace (about 90 calls a second from 5 clients), 0ms..5ms a
    /// heavy load (about 1,000 a second; each seed then takes about ten times longer).
    #[arg(long, default_value = "10ms..100ms", value_name = "MIN..MAX")]
    pause: String,
    /// Write the event trace of the (single) seed to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Run each seed twice and report the first event where the two runs differ.
    #[arg(long)]
    determinism: bool,
    /// Write each seed's client histories into this directory as JSON lines
    /// (`seedN-kv.jsonl`: check with `arakoon-admin check F --model kv`;
    /// `seedN-sequences.jsonl`: `--model multi-key`).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Worker threads, each running whole seeds (default: every core). The runs, and the
    /// order they are reported in, do not depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    jobs: Option<usize>,
    /// Run only the K-th of N disjoint slices of the seed range (every N-th seed), e.g. one
    /// job of a CI matrix or of a batch cluster's array job; join the reports with `sim merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Write the campaign's report (seeds, failures with their replay commands, seeds per
    /// fault family and cluster size, broken checks, speed) to this JSON file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// With --seed, if it fails: shrink it (a shorter run, smaller TLog files, fewer and slower
    /// clients that start later, fewer calls, strikes and calls left out) to the smallest run found that breaks
    /// the same check, print its events, the command that replays it and write its HTML
    /// timeline (seedN-shrunk.html).
    #[arg(long, requires = "seed")]
    shrink: bool,
    /// Replay a shrunk run: the spec `--shrink` printed (duration=MS;clients=N;
    /// pause-us=MIN-MAX;from=MS;ops=N;tlog-entries=N;skip=A,B;skip-calls=C.OP;
    /// hold-calls=C.OP@US>NODE~US;no-liveness;probe).
    #[arg(long, value_name = "SPEC", requires = "seed")]
    shrunk: Option<String>,
    #[command(subcommand)]
    command: Option<SimCommand>,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Join the reports of a campaign's shards (`sim --shard K/N --report FILE`) into one:
    /// seeds, failures with their replay commands, counts per fault family, cluster size and
    /// broken check. Refuses reports of different simulations or overlapping seeds.
    ///
    /// Example:
    ///   arakoon-admin sim --seeds 0..100000 --shard 1/2 --report a.json
    ///   arakoon-admin sim --seeds 0..100000 --shard 2/2 --report b.json
    ///   arakoon-admin sim merge a.json b.json
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard reports.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Also write the merged report here.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `--nodes`: a fixed size or a shape drawn per seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nodes {
    Fixed(u8),
    Draw,
}

impl std::fmt::Display for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Nodes::Fixed(n) => write!(f, "{n}"),
            Nodes::Draw => f.write_str("draw"),
        }
    }
}

fn parse_nodes(text: &str) -> Result<Nodes, String> {
    if text == "draw" {
        return Ok(Nodes::Draw);
    }
    match text.parse::<u8>() {
        Ok(n) if (1..=5).contains(&n) => Ok(Nodes::Fixed(n)),
        _ => Err(format!("{text:?}: give a cluster size from 1 to 5, or `draw`")),
    }
}

fn parse_duration_ms(text: &str) -> Result<u64, Failure> {
    let bad = || {
        Failure::new(Exit::BadInput, format!("--duration {text:?}: write it as 60s, 1500ms or 2m"))
    };
    let (num, unit) =
        text.trim().split_at(text.trim().find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    Ok(match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        _ => return Err(bad()),
    })
}

fn parse_pause_us(text: &str) -> Result<(u64, u64), Failure> {
    let bad = || {
        Failure::new(
            Exit::BadInput,
            format!("--pause {text:?}: write it as MIN..MAX, e.g. 10ms..100ms"),
        )
    };
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b) =
        (parse_duration_ms(a).map_err(|_| bad())?, parse_duration_ms(b).map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a * 1000, b * 1000))
}

fn parse_range(text: &str) -> Result<std::ops::Range<u64>, Failure> {
    let bad = || {
        Failure::new(
            Exit::BadInput,
            format!("--seeds {text:?}: write a range as A..B, e.g. 0..100"),
        )
    };
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

pub fn run(args: SimArgs) -> Result<i32, Failure> {
    if let Some(SimCommand::Merge(m)) = args.command {
        return merge(m);
    }
    let range = match args.seed {
        Some(s) => s..s + 1,
        None => parse_range(&args.seeds)?,
    };
    let shard = match &args.shard {
        Some(text) => {
            text.parse::<Shard>().map_err(|e| Failure::new(Exit::BadInput, format!("--{e}")))?
        }
        None => Shard::ALL,
    };
    let seeds: Vec<u64> = shard.seeds(range.clone()).collect();
    let jobs = args.jobs.unwrap_or_else(campaign::all_cores).max(1);
    let faults = match args.faults {
        FaultChoice::Swarm => None,
        FaultChoice::All => Some(FaultMix::all()),
        FaultChoice::None => Some(FaultMix::none()),
    };
    let keep_trace = args.trace.is_some() || args.determinism;
    let cfg = SimConfig {
        nodes: match args.nodes {
            Nodes::Fixed(n) => usize::from(n),
            Nodes::Draw => 3,
        },
        draw_shape: args.nodes == Nodes::Draw,
        clients: args.clients,
        duration_ms: parse_duration_ms(&args.duration)?,
        think_us: parse_pause_us(&args.pause)?,
        faults,
        keep_trace,
        keep_history: args.history.is_some(),
        ..SimConfig::default()
    };
    let cfg = match &args.shrunk {
        Some(spec) => arakoon_sim::shrink::apply_spec(&cfg, spec)
            .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?,
        None => cfg,
    };
    if args.shrink {
        return shrink(&args, &cfg);
    }
    let flags = format!(
        "--nodes {} --clients {} --duration {} --pause {} --faults {:?}",
        args.nodes, args.clients, args.duration, args.pause, args.faults
    )
    .to_lowercase();
    let slice = if shard == Shard::ALL { String::new() } else { format!(", shard {shard}") };
    println!(
        "simulating seeds {}..{}{slice}: {} seeds on {jobs} worker(s) ({} nodes, {} clients, {} each, faults {:?})",
        range.start, range.end, seeds.len(), args.nodes, cfg.clients, args.duration, args.faults
    );
    if let Some(dir) = &args.history {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::new(
                Exit::BadInput,
                format!("{}: cannot create the history directory: {e}", dir.display()),
            )
        })?;
    }
    let bar = progress_bar(seeds.len() as u64, "seeds");
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let mut report = CampaignReport::new(flags.clone());
    let mut written: Result<(), Failure> = Ok(());
    campaign::run(&seeds, &cfg, jobs, args.determinism, |result| {
        let seed = result.seed;
        let r = &result.report;
        let replay = format!("arakoon-admin sim --seed {seed} {flags} --trace seed{seed}.txt");
        if let Some(d) = &result.divergence {
            say(&bar, format!(
                "seed {seed}: NOT DETERMINISTIC: the runs diverge at event {}:\n  first:  {}\n  second: {}",
                d.event, d.first, d.second
            ));
        }
        if let Outcome::Violation(v) = &r.outcome {
            say(
                &bar,
                format!(
                    "seed {seed}: VIOLATION of {}: {}\n  faults: {}\n  replay: {replay}",
                    v.check, v.detail, r.faults
                ),
            );
        }
        if let (Some(what), Some(v)) = (&r.beyond_bound, &r.broke_beyond_bound) {
            say(
                &bar,
                format!(
                    "seed {seed}: expected beyond the bound ({what}): {} broke: {}",
                    v.check, v.detail
                ),
            );
        }
        if r.linearizability.starts_with("unknown") {
            say(&bar, format!("seed {seed}: linearizability {}", r.linearizability));
        }
        if written.is_ok() {
            written = write_outputs(&args, seed, r, &bar);
        }
        report.add(&result, replay);
        bar.inc(1);
        bar.set_message(format!("seeds ({} failed)", report.failed_seeds()));
    });
    bar.finish_and_clear();
    written?;
    report.wall_s = started.elapsed().as_secs_f64();
    report.jobs = jobs as u64;
    if let (Some(from), Some(to)) = (cpu_started, cpu_seconds()) {
        report.set_cpu_s(to - from);
    }
    if let Some(path) = &args.report {
        report.write(path).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        println!(
            "campaign report written to {} (join shards with `arakoon-admin sim merge`)",
            path.display()
        );
    }
    Ok(summarize(&report))
}

/// `--shrink`: shrinks the seed and reports the shrunk run.
fn shrink(args: &SimArgs, cfg: &SimConfig) -> Result<i32, Failure> {
    let seed = args.seed.unwrap_or_default();
    let started = Instant::now();
    let bar = progress_bar(u64::from(arakoon_sim::shrink::ATTEMPTS_MAX), "shrinking: runs");
    let shrunk = arakoon_sim::shrink::shrink_with(seed, cfg, &mut |runs, events| {
        bar.set_position(u64::from(runs));
        bar.set_message(format!("shrinking ({events} events): runs"));
    });
    bar.finish_and_clear();
    let Some(s) = shrunk else {
        println!("seed {seed} passes: nothing to shrink");
        return Ok(0);
    };
    let flags = format!("--nodes {} --pause {} --faults {:?}", args.nodes, args.pause, args.faults)
        .to_lowercase();
    let replay = format!("arakoon-admin sim --seed {seed} {flags} --shrunk '{}'", s.spec());
    let html = PathBuf::from(format!("seed{seed}-shrunk.html"));
    std::fs::write(&html, arakoon_sim::shrink::html_timeline(&s)).map_err(|e| {
        Failure::new(Exit::BadInput, format!("{}: cannot write the timeline: {e}", html.display()))
    })?;
    println!(
        "seed {seed} breaks {}; shrunk from {} to {} events in {} runs ({:.1?}):",
        s.check,
        s.events_before,
        s.events.len(),
        s.attempts,
        started.elapsed()
    );
    for e in &s.events {
        println!("  {e}");
    }
    println!("rule broken: {}: {}", s.check, s.detail);
    println!("replay: {replay}");
    println!("timeline: {}", html.display());
    Ok(Exit::Declined.code())
}

/// The trace and histories a seed was asked to leave.
fn write_outputs(
    args: &SimArgs,
    seed: u64,
    r: &arakoon_sim::RunReport,
    bar: &indicatif::ProgressBar,
) -> Result<(), Failure> {
    if let (Some(dir), Some((kv, seq))) = (&args.history, &r.histories) {
        for (name, text) in [("kv", kv), ("sequences", seq)] {
            let path = dir.join(format!("seed{seed}-{name}.jsonl"));
            std::fs::write(&path, text).map_err(|e| {
                Failure::new(
                    Exit::BadInput,
                    format!("{}: cannot write the history: {e}", path.display()),
                )
            })?;
        }
    }
    if let Some(path) = &args.trace {
        std::fs::write(path, r.trace.join("\n") + "\n").map_err(|e| {
            Failure::new(Exit::BadInput, format!("{}: cannot write the trace: {e}", path.display()))
        })?;
        say(bar, format!("trace of seed {seed} written to {}", path.display()));
    }
    Ok(())
}

/// The CPU seconds (user and system, every thread) this process has spent so far, if the
/// system says: what a campaign's seeds per CPU second are measured with.
fn cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage writes the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// Prints what a campaign (or several merged) ran and found; the exit code.
fn summarize(report: &CampaignReport) -> i32 {
    let (seeds_per_s, speed) = report.speed();
    let runs = report.seeds.len();
    let failed = report.failed_seeds();
    let per_core = if report.seeds_per_cpu_s > 0.0 {
        format!(", {:.1} seeds per CPU second", report.seeds_per_cpu_s)
    } else {
        String::new()
    };
    println!(
        "{runs} seeds, {failed} failed; {} client operations succeeded in {} chosen slots; {speed:.0}x real time, {seeds_per_s:.1} seeds/s on {} worker(s){per_core}",
        report.ops_ok, report.committed_slots, report.jobs
    );
    let count = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    let sizes: Vec<String> =
        report.per_nodes.iter().map(|(n, v)| format!("{n} nodes {v}")).collect();
    println!("seeds per cluster size: {}", sizes.join(", "));
    if report.per_shape.len() > report.per_nodes.len() {
        println!("seeds per shape: {}", count(&report.per_shape));
    }
    if !report.per_fault.is_empty() {
        println!("seeds per fault family: {}", count(&report.per_fault));
    }
    if !report.per_check.is_empty() {
        println!("broken checks: {}", count(&report.per_check));
    }
    if !report.exercised.is_empty() {
        println!("checks and crash points exercised: {}", count(&report.exercised));
    }
    if report.beyond_bound > 0 {
        let mut broke: std::collections::BTreeMap<&str, u64> = Default::default();
        for f in &report.broke_beyond_bound {
            *broke.entry(f.check.as_str()).or_default() += 1;
        }
        let broke: Vec<String> = broke.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{} seed(s) drew clock faults beyond the bound (not failures); expected beyond the bound, {} broke: {}",
            report.beyond_bound,
            report.broke_beyond_bound.len(),
            if broke.is_empty() { "nothing".to_string() } else { broke.join(", ") }
        );
    }
    if !report.unchecked.is_empty() {
        println!(
            "{} seed(s) got no linearizability verdict within the time limit",
            report.unchecked.len()
        );
    }
    if failed == 0 {
        println!("verdict: every check held on every seed");
        0
    } else {
        println!("verdict: {failed} seed(s) broke a check; replay with:");
        for f in &report.failed {
            println!("  seed {} ({}): {}", f.seed, f.check, f.replay);
        }
        1
    }
}

fn merge(args: MergeArgs) -> Result<i32, Failure> {
    let mut total = CampaignReport::default();
    for path in &args.reports {
        let one =
            CampaignReport::read(path).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        total.merge(one).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    }
    println!("{} report(s) of: {}", args.reports.len(), total.flags);
    if let Some(path) = &args.output {
        total.write(path).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        println!("merged report written to {}", path.display());
    }
    Ok(summarize(&total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ranges_parse() {
        assert_eq!(parse_duration_ms("60s").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert_eq!(parse_duration_ms("2m").unwrap(), 120_000);
        assert!(parse_duration_ms("soon").is_err());
        assert_eq!(parse_range("3..7").unwrap(), 3..7);
        assert!(parse_range("7..3").is_err());
    }
}
