//! `arakoon-admin drill`: run failure drills (YAML) and judge them.
//!
//! A drill runs seed by seed on a tier; each seed's steps are applied at their times while the
//! clients record their history; at the end every check runs (agreement, identical stores, no
//! acknowledged write lost, one lease at a time, the history linearizable) plus the drill's own
//! expectations. With `--report DIR` each seed leaves a folder: the histories (JSON lines, for
//! `arakoon-admin check`), the fault log, a summary (JSON) and a self-contained HTML timeline.

use crate::output::{progress_bar, say, Failure};
use arakoon_chaos::drill::{self, Drill};
use arakoon_chaos::faults::Tier;
use arakoon_sim::drill::{run_drill, DrillRun};
use clap::{Args, Subcommand, ValueEnum};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The drill that runs when no file is named.
const DEFAULT_DRILL: &str = include_str!("../../scenarios/master-killed-under-load.yaml");

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierChoice {
    /// The deterministic simulator (no set-up; thousands of times faster than real time).
    Sim,
    /// The real server code over turmoil's network (not available yet).
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
/// cannot be read or asks the tier for a fault it cannot apply.
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

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, Failure> {
    let bad = || Failure::new(2, format!("--seeds {text:?}: write A..B, for example 0..8"));
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
            .map_err(|e| Failure::new(3, e.to_string()))?;
        drills.push(("(built-in)".into(), d));
    }
    for f in &args.files {
        let d = drill::load(f, Some(tier)).map_err(|e| Failure::new(3, e.to_string()))?;
        drills.push((f.display().to_string(), d));
    }
    if tier == Tier::Turmoil {
        return Err(Failure::new(
            3,
            "the turmoil tier runner is not built yet: run drills on --tier sim or --tier sandbox",
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
    let bar = progress_bar(total, "seeds");
    let started = Instant::now();
    let mut failed = 0u64;
    for (file, d) in &drills {
        let seeds = seeds_override.clone().unwrap_or(d.seeds.clone());
        for seed in seeds {
            bar.set_message(format!("{} seed {seed}", d.name));
            let replay = if file.starts_with('(') {
                format!("arakoon-admin drill run --tier {} --seed {seed}", tier.name())
            } else {
                format!("arakoon-admin drill run {file} --tier {} --seed {seed}", tier.name())
            };
            if tier == Tier::Sandbox {
                let base = std::env::temp_dir();
                let run = crate::drill_sandbox::run(d, seed, &base)
                    .map_err(|e| Failure::new(3, format!("{}: seed {seed}: {e}", d.name)))?;
                say(
                    &bar,
                    format!(
                        "{:<28} seed {seed:<3} {}  ({} ops ok, {} failed, {} unknown; {} steps)",
                        d.name,
                        if run.passed { "PASS" } else { "FAIL" },
                        run.ops_ok,
                        run.ops_failed,
                        run.ops_unknown,
                        run.fault_log.len()
                    ),
                );
                if !run.passed {
                    failed += 1;
                    say(&bar, format!("  {}\n  replay: {replay}", run.verdict));
                    for (at, what) in &run.fault_log {
                        say(&bar, format!("    {at}ms {what}"));
                    }
                }
                bar.inc(1);
                continue;
            }
            let run = run_drill(d, seed, args.report.is_some());
            let r = &run.report;
            let line = format!(
                "{:<28} seed {seed:<3} {}  ({} ops ok, {} failed, {} unknown; {} faults applied)",
                d.name,
                if run.passed { "PASS" } else { "FAIL" },
                r.ops_ok,
                r.ops_failed,
                r.ops_unknown,
                r.fault_log.len()
            );
            say(&bar, line);
            if !run.passed {
                failed += 1;
                say(&bar, format!("  {}\n  replay: {replay}", run.verdict));
            }
            if let Some(dir) = &args.report {
                let folder = dir.join(format!("{}-seed{seed}", d.name));
                write_report(&folder, d, &run, &replay)?;
                say(&bar, format!("  report: {}", folder.join("timeline.html").display()));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!("{total} seed(s), {failed} failed, in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if failed == 0 { 0 } else { 1 })
}

fn write_report(folder: &Path, d: &Drill, run: &DrillRun, replay: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(3, format!("{}: {e}", folder.display()));
    std::fs::create_dir_all(folder).map_err(io)?;
    let r = &run.report;
    if let Some((kv, seq)) = &r.histories {
        std::fs::write(folder.join("history-kv.jsonl"), kv).map_err(io)?;
        std::fs::write(folder.join("history-sequences.jsonl"), seq).map_err(io)?;
    }
    let faults: String = r.fault_log.iter().map(|(t, l)| format!("{t}ms {l}\n")).collect();
    std::fs::write(folder.join("faults.log"), faults).map_err(io)?;
    let summary = serde_json::json!({
        "drill": d.name,
        "seed": run.seed,
        "passed": run.passed,
        "verdict": run.verdict,
        "replay": replay,
        "ops_ok": r.ops_ok,
        "ops_failed": r.ops_failed,
        "ops_unknown": r.ops_unknown,
        "committed_slots": r.committed_slots,
        "linearizability": r.linearizability,
        "master_after_last_step_ms": r.master_after_script_ms,
        "simulated_ms": r.simulated_ms,
        "faults": r.fault_log.iter().map(|(t, l)| serde_json::json!({"at_ms": t, "what": l})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(folder.join("summary.json"), text).map_err(io)?;
    std::fs::write(folder.join("timeline.html"), timeline(d, run, replay)).map_err(io)?;
    if !r.trace.is_empty() {
        std::fs::write(folder.join("trace.txt"), r.trace.join("\n") + "\n").map_err(io)?;
    }
    Ok(())
}

/// A self-contained HTML page: a lane per client, a lane per node (its role over time), and the
/// drill's faults as shaded bands.
fn timeline(d: &Drill, run: &DrillRun, replay: &str) -> String {
    let r = &run.report;
    let end_ms = r.simulated_ms.max(1) as f64;
    let width = 1400.0;
    let x = |ms: f64| 160.0 + ms / end_ms * (width - 170.0);
    let lane_h = 18.0;
    let mut processes: Vec<u64> = r.ops.iter().map(|o| o.process % 1_000_000).collect();
    processes.sort_unstable();
    processes.dedup();
    // Clients that went on as new processes after an unknown outcome share their lane.
    let clients = d.workload.clients.max(1) as u64;
    let lanes_clients = clients as usize;
    let nodes = d.cluster.nodes;
    let height = 40.0 + (lanes_clients + nodes) as f64 * lane_h + 40.0;
    let mut svg = String::new();
    let _ = write!(svg, "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='monospace' font-size='11'>");
    // Fault bands: from each fault to the next one.
    for (k, (at, what)) in r.fault_log.iter().enumerate() {
        let next = r.fault_log.get(k + 1).map_or(*at as f64 + end_ms / 100.0, |(t, _)| *t as f64);
        let (x0, x1) = (x(*at as f64), x(next).max(x(*at as f64) + 2.0));
        let _ = write!(
            svg,
            "<rect x='{x0:.1}' y='20' width='{:.1}' height='{:.1}' fill='#f4a' fill-opacity='0.12'><title>{}ms: {}</title></rect><text x='{x0:.1}' y='14' fill='#a04'>{}</text>",
            x1 - x0,
            height - 40.0,
            at,
            html(what),
            html(&what.chars().take(24).collect::<String>())
        );
    }
    for c in 0..lanes_clients {
        let y = 30.0 + c as f64 * lane_h;
        let _ = write!(svg, "<text x='4' y='{:.1}'>client {c}</text>", y + 12.0);
    }
    for op in &r.ops {
        let lane = (op.process % clients) as f64;
        let y = 30.0 + lane * lane_h;
        let call = op.call_us as f64 / 1000.0;
        let ret = op.ret_us.map_or(end_ms, |t| t as f64 / 1000.0);
        let color = match op.outcome {
            "ok" => "#4a4",
            "fail" => "#bbb",
            _ => "#e90",
        };
        let (x0, x1) = (x(call), x(ret));
        let _ = write!(
            svg,
            "<rect x='{x0:.2}' y='{:.1}' width='{:.2}' height='{:.1}' fill='{color}'><title>{} {} ({:.1}–{:.1} ms)</title></rect>",
            y + 2.0,
            (x1 - x0).max(0.5),
            lane_h - 4.0,
            html(&op.label),
            op.outcome,
            call,
            ret
        );
    }
    for k in 0..nodes {
        let y = 30.0 + (lanes_clients + k) as f64 * lane_h;
        let _ = write!(svg, "<text x='4' y='{:.1}'>n{k}</text>", y + 12.0);
        let changes: Vec<&(u64, usize, String)> =
            r.roles.iter().filter(|(_, n, _)| *n == k).collect();
        for (j, (at, _, role)) in changes.iter().enumerate() {
            let until = changes.get(j + 1).map_or(end_ms, |(t, _, _)| *t as f64);
            let color = match role.as_str() {
                "master" => "#36c",
                "slave" => "#9bd",
                "candidate" => "#c9f",
                "catching_up" => "#fc6",
                "paused" => "#888",
                _ => "#fff",
            };
            let (x0, x1) = (x(*at as f64), x(until));
            let _ = write!(
                svg,
                "<rect x='{x0:.2}' y='{:.1}' width='{:.2}' height='{:.1}' fill='{color}' stroke='#ccc' stroke-width='0.3'><title>n{k} {role} from {at} ms</title></rect>",
                y + 2.0,
                (x1 - x0).max(0.5),
                lane_h - 4.0
            );
        }
    }
    svg.push_str("</svg>");
    let verdict = if run.passed { "PASS" } else { "FAIL" };
    format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>{name} seed {seed}</title>\
         <style>body{{font-family:sans-serif;margin:16px}}pre{{background:#f6f6f6;padding:8px}}</style></head><body>\
         <h1>{name}, seed {seed}: {verdict}</h1><p>{desc}</p><pre>{verdict_text}\nreplay: {replay}</pre>\
         <p>Clients: green ok, grey failed (did not happen), orange unknown outcome. Nodes: blue master, light blue slave, \
         violet candidate, yellow catching up, grey paused, white down. Shaded bands: the drill's faults (hover for details).</p>\
         {svg}<h2>Faults</h2><pre>{faults}</pre></body></html>",
        name = html(&d.name),
        seed = run.seed,
        desc = html(&d.description),
        verdict_text = html(&run.verdict),
        replay = html(replay),
        faults = html(&r.fault_log.iter().map(|(t, l)| format!("{t}ms {l}\n")).collect::<String>()),
    )
}

/// Text made safe for HTML.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
