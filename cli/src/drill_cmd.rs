//! `arakoon-admin drill`: run failure drills (YAML) and judge them.
//!
//! A drill runs seed by seed on a tier; each seed's steps are applied at their times while the
//! clients record their history; at the end every check runs (agreement, identical stores, no
//! acknowledged write lost, one lease at a time, the history linearizable) plus the drill's own
//! expectations. With `--report DIR` each seed leaves a folder, the same on every tier
//! (`arakoon_chaos::outcome`: the one outcome type, its folder and its timeline). While drills run, a live display shows their progress
//! ([`crate::drill_live`]).

use crate::drill_live::{Live, Status};
use crate::exit::Exit;
use crate::output::Failure;
use arakoon_chaos::drill::{self, Drill};
use arakoon_chaos::faults::Tier;
use arakoon_chaos::outcome::{self, last_master, DrillOutcome as Report};
use arakoon_chaos::sandbox_drill::{self, RunPlan};
use arakoon_sim::drill::run_drill;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a sandbox seed's cluster may take to elect its first master (as `sandbox up`).
const SANDBOX_UP_WITHIN: Duration = Duration::from_secs(60);

/// The drill that runs when no file is named.
const DEFAULT_DRILL: &str = include_str!("../../scenarios/master-killed-under-load.yaml");

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierChoice {
    /// The deterministic simulator (no set-up; thousands of times faster than real time).
    Sim,
    /// The real server and client code over turmoil's simulated network, in memory; a seed
    /// replays a run exactly.
    Turmoil,
    /// Real `arakoon` processes on loopback behind fault proxies (needs the `arakoon` binary
    /// beside arakoon-admin: `cargo build -p arakoon-node --bin arakoon`).
    Sandbox,
}

impl TierChoice {
    fn tier(self) -> Tier {
        match self {
            TierChoice::Sim => Tier::Sim,
            TierChoice::Turmoil => Tier::Turmoil,
            TierChoice::Sandbox => Tier::Sandbox,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    Run(RunArgs),
    Validate(ValidateArgs),
}

/// Run drills and judge every seed.
///
/// Without a file, runs the built-in drill "master-killed-under-load" (the master is killed
/// under load; a new one must serve within two leases, nothing acknowledged may be lost).
/// Exit code 0 when every seed of every drill met its expectation, 1 otherwise, 3 when a drill
/// cannot be read or asks the tier for a fault it cannot apply. Of several files, a drill whose
/// `tiers:` leaves out the tier is skipped (a line says so); one named alone is refused.
///
/// Examples:
///   arakoon-admin drill run
///   arakoon-admin drill run scenarios/*.yaml --seeds 0..4
///   arakoon-admin drill run scenarios/bridge.yaml --seed 3 --report /tmp/bridge
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Drill files (YAML); none: the built-in drill.
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = TierChoice::Sim)]
    tier: TierChoice,
    /// Run this one seed instead of the drill's own seeds.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run these seeds (`A..B`, B excluded) instead of the drill's own.
    #[arg(long)]
    seeds: Option<String>,
    /// Write a report folder per drill and seed under this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// Check drill files without running them: syntax, targets, and the faults a tier can apply.
///
/// Examples:
///   arakoon-admin drill validate scenarios/*.yaml
///   arakoon-admin drill validate my-drill.yaml --tier sandbox
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also check that this tier can apply every fault.
    #[arg(long, value_enum)]
    tier: Option<TierChoice>,
}

pub fn run(cmd: DrillCommand) -> Result<i32, Failure> {
    match cmd {
        DrillCommand::Run(args) => run_drills(args),
        DrillCommand::Validate(args) => validate(args),
    }
}

fn validate(args: ValidateArgs) -> Result<i32, Failure> {
    let tier = args.tier.map(TierChoice::tier);
    let mut bad = 0;
    for f in &args.files {
        match drill::load(f, tier) {
            Ok(d) => {
                let tiers: Vec<&str> =
                    Tier::ALL.iter().filter(|t| d.runs_on(**t)).map(|t| t.name()).collect();
                println!(
                    "{}: ok ({}, {} steps; runs on {})",
                    f.display(),
                    d.name,
                    d.steps.len(),
                    tiers.join(", ")
                );
            }
            Err(e) => {
                println!("{e}");
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 { 0 } else { 3 })
}

/// The tiers a drill names in `tiers:` when `tier` is not among them ("sim, turmoil").
fn meant_for_others(d: &Drill, tier: Tier) -> Option<String> {
    (!d.tiers.is_empty() && !d.tiers.contains(&tier))
        .then(|| d.tiers.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "))
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, Failure> {
    let bad =
        || Failure::new(Exit::Usage, format!("--seeds {text:?}: write A..B, for example 0..8"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

fn run_drills(args: RunArgs) -> Result<i32, Failure> {
    let tier = args.tier.tier();
    let mut drills: Vec<(String, Drill)> = Vec::new();
    if args.files.is_empty() {
        let d = drill::parse(DEFAULT_DRILL, "(built-in) master-killed-under-load.yaml", Some(tier))
            .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        drills.push(("(built-in)".into(), d));
    }
    for f in &args.files {
        // Of several files (`scenarios/*.yaml`), a drill written for other tiers only is
        // skipped, said so; one asked for by itself is refused below, with where it says so.
        if args.files.len() > 1 {
            if let Some(only) = drill::load(f, None).ok().and_then(|d| meant_for_others(&d, tier)) {
                println!(
                    "skipped {}: the drill is for the {only} tier (its `tiers:`), not {}",
                    f.display(),
                    tier.name()
                );
                continue;
            }
        }
        let d =
            drill::load(f, Some(tier)).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
        drills.push((f.display().to_string(), d));
    }
    if drills.is_empty() {
        return Err(Failure::new(
            Exit::BadInput,
            format!("none of the {} drills is for the {} tier", args.files.len(), tier.name()),
        ));
    }
    let seeds_override = match (&args.seed, &args.seeds) {
        (Some(s), _) => Some(*s..*s + 1),
        (None, Some(r)) => Some(parse_seeds(r)?),
        (None, None) => None,
    };
    let total: u64 = drills
        .iter()
        .map(|(_, d)| seeds_override.clone().unwrap_or(d.seeds.clone()).count() as u64)
        .sum();
    println!(
        "running {} drill(s), {total} seed(s) in all, on the {} tier",
        drills.len(),
        tier.name()
    );
    let live = Live::new(total);
    let started = Instant::now();
    let mut failed = 0u64;
    for (file, d) in &drills {
        let seeds = seeds_override.clone().unwrap_or(d.seeds.clone());
        for seed in seeds {
            let replay = if file.starts_with('(') {
                format!("arakoon-admin drill run --tier {} --seed {seed}", tier.name())
            } else {
                format!("arakoon-admin drill run {file} --tier {} --seed {seed}", tier.name())
            };
            // A failure clears the display first, so that its message is not drawn over.
            let report = run_seed(tier, d, seed, replay, args.report.is_some(), &live)
                .inspect_err(|_| live.finish())?;
            show(&live, &report);
            if !report.passed {
                failed += 1;
            }
            if let Some(dir) = &args.report {
                let folder = outcome::write_folder(&report, dir)
                    .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))
                    .inspect_err(|_| live.finish())?;
                live.say(format!("  report: {}", folder.join("timeline.html").display()));
            }
            live.seed_done();
        }
    }
    live.finish();
    println!("{total} seed(s), {failed} failed, in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if failed == 0 { Exit::Ok.code() } else { Exit::Declined.code() })
}

/// Runs `seed` of `d` on `tier`; `keep_files` keeps what only a report needs (the simulator's
/// trace, the sandbox's logs).
fn run_seed(
    tier: Tier,
    d: &Drill,
    seed: u64,
    replay: String,
    keep_files: bool,
    live: &Live,
) -> Result<Report, Failure> {
    if tier == Tier::Sandbox {
        live.say(format!(
            "{} seed {seed}: a sandbox of {} nodes, {} s",
            d.name,
            d.cluster.nodes,
            d.duration.0 / 1000
        ));
        let plan = sandbox_plan(keep_files)?;
        let run = sandbox_drill::run(d, seed, &plan, Arc::new(live.clone()))
            .map_err(|e| Failure::new(Exit::BadInput, format!("{}: seed {seed}: {e}", d.name)))?;
        return Ok(run.outcome(d, seed, replay));
    }
    if tier == Tier::Turmoil {
        // The real server and client code over turmoil's simulated network: a seed replays a
        // run exactly, as on the simulation tier; the timeline is in virtual ms.
        return Ok(arakoon_sim::tier_b::drill::run_drill(d, seed).outcome(d, replay));
    }
    Ok(run_drill(d, seed, keep_files).outcome(d, replay))
}

/// Where a sandbox seed runs: in the temporary directory, the nodes running the `arakoon`
/// beside this binary (or `$ARAKOON_BIN`), the supervisor this same binary as `sandbox
/// supervise`.
fn sandbox_plan(keep_logs: bool) -> Result<RunPlan, Failure> {
    let arakoon = arakoon_chaos::process::locate_binary("arakoon")
        .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(Exit::BadInput, format!("cannot find arakoon-admin itself: {e}"))
    })?;
    Ok(RunPlan {
        base: std::env::temp_dir(),
        arakoon,
        supervisor: (exe, vec!["sandbox".into(), "supervise".into()]),
        keep_logs,
        up_within: SANDBOX_UP_WITHIN,
    })
}

/// Shows a finished seed: its status, its verdict line, and for a failed one why and how to
/// replay it.
fn show(live: &Live, report: &Report) {
    let d = &report.drill;
    live.status(&Status {
        drill: d.name.clone(),
        seed: report.seed,
        elapsed_ms: report.end_ms,
        ops_ok: report.ops_ok,
        ops_failed: report.ops_failed,
        ops_unknown: report.ops_unknown,
        faults: report.fault_log.len(),
        latest_fault: report.fault_log.last().map(|(_, what)| what.clone()),
        master: last_master(&report.roles, d.cluster.nodes).map(|k| format!("n{k}")),
        done: true,
    });
    live.say(format!(
        "{:<28} seed {:<3} {}  ({} ops ok, {} failed, {} unknown; {} faults applied)",
        d.name,
        report.seed,
        if report.passed { "PASS" } else { "FAIL" },
        report.ops_ok,
        report.ops_failed,
        report.ops_unknown,
        report.fault_log.len()
    ));
    if report.tier != Tier::Sandbox {
        // A simulated seed is over before it could be watched: its faults are shown once it
        // ends (off a terminal, a line each).
        for (at, what) in &report.fault_log {
            live.fault(*at, what);
        }
    }
    if !report.passed {
        live.say(format!("  {}\n  replay: {}", report.verdict, report.replay));
        // Off a terminal the faults were printed as they were applied.
        if live.is_terminal() {
            for (at, what) in &report.fault_log {
                live.say(format!("    {at}ms {what}"));
            }
        }
    }
}
