//! `arakoon-admin sim`: run the deterministic simulator over one seed or a range of seeds.

use crate::output::{progress_bar, say, Failure};
use arakoon_sim::{run_seed, FaultMix, Outcome, SimConfig};
use clap::{Args, ValueEnum};
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
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, `A..B` (B excluded).
    #[arg(long, default_value = "0..20")]
    seeds: String,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    nodes: u8,
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
}

fn parse_duration_ms(text: &str) -> Result<u64, Failure> {
    let bad = || Failure::new(3, format!("--duration {text:?}: write it as 60s, 1500ms or 2m"));
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
    let bad =
        || Failure::new(3, format!("--pause {text:?}: write it as MIN..MAX, e.g. 10ms..100ms"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b) =
        (parse_duration_ms(a).map_err(|_| bad())?, parse_duration_ms(b).map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a * 1000, b * 1000))
}

fn parse_range(text: &str) -> Result<std::ops::Range<u64>, Failure> {
    let bad = || Failure::new(3, format!("--seeds {text:?}: write a range as A..B, e.g. 0..100"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

pub fn run(args: SimArgs) -> Result<i32, Failure> {
    let seeds = match args.seed {
        Some(s) => s..s + 1,
        None => parse_range(&args.seeds)?,
    };
    let faults = match args.faults {
        FaultChoice::Swarm => None,
        FaultChoice::All => Some(FaultMix::all()),
        FaultChoice::None => Some(FaultMix::none()),
    };
    let keep_trace = args.trace.is_some() || args.determinism;
    let cfg = SimConfig {
        nodes: args.nodes as usize,
        clients: args.clients,
        duration_ms: parse_duration_ms(&args.duration)?,
        think_us: parse_pause_us(&args.pause)?,
        faults,
        keep_trace,
        keep_history: args.history.is_some(),
        ..SimConfig::default()
    };
    let flags = format!(
        "--nodes {} --clients {} --duration {} --pause {} --faults {:?}",
        args.nodes, args.clients, args.duration, args.pause, args.faults
    )
    .to_lowercase();
    println!(
        "simulating seeds {}..{} ({} nodes, {} clients, {} each, faults {:?})",
        seeds.start, seeds.end, cfg.nodes, cfg.clients, args.duration, args.faults
    );
    let bar = progress_bar(seeds.end - seeds.start, "seeds");
    let started = Instant::now();
    let (mut failures, mut simulated_ms, mut ok_ops, mut slots) = (0u64, 0u64, 0u64, 0u64);
    let mut unchecked = 0u64;
    if let Some(dir) = &args.history {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::new(3, format!("{}: cannot create the history directory: {e}", dir.display()))
        })?;
    }
    for seed in seeds.clone() {
        let report = run_seed(seed, &cfg);
        simulated_ms += report.simulated_ms;
        ok_ops += report.ops_ok;
        slots += report.committed_slots;
        if args.determinism {
            let again = run_seed(seed, &cfg);
            if again.trace != report.trace {
                let at = report.trace.iter().zip(&again.trace).position(|(a, b)| a != b);
                let at = at.unwrap_or(report.trace.len().min(again.trace.len()));
                say(&bar, format!(
                    "seed {seed}: NOT DETERMINISTIC: the runs diverge at event {at}:\n  first:  {}\n  second: {}",
                    report.trace.get(at).map_or("(end)", String::as_str),
                    again.trace.get(at).map_or("(end)", String::as_str)
                ));
                failures += 1;
            }
        }
        if let Outcome::Violation(v) = &report.outcome {
            failures += 1;
            say(&bar, format!(
                "seed {seed}: VIOLATION of {}: {}\n  faults: {}\n  replay: arakoon-admin sim --seed {seed} {flags} --trace seed{seed}.txt",
                v.check, v.detail, report.faults
            ));
        }
        if report.linearizability.starts_with("unknown") {
            unchecked += 1;
            say(&bar, format!("seed {seed}: linearizability {}", report.linearizability));
        }
        if let (Some(dir), Some((kv, seq))) = (&args.history, &report.histories) {
            for (name, text) in [("kv", kv), ("sequences", seq)] {
                let path = dir.join(format!("seed{seed}-{name}.jsonl"));
                std::fs::write(&path, text).map_err(|e| {
                    Failure::new(3, format!("{}: cannot write the history: {e}", path.display()))
                })?;
            }
        }
        if let Some(path) = &args.trace {
            std::fs::write(path, report.trace.join("\n") + "\n").map_err(|e| {
                Failure::new(3, format!("{}: cannot write the trace: {e}", path.display()))
            })?;
            say(&bar, format!("trace of seed {seed} written to {}", path.display()));
        }
        bar.inc(1);
        bar.set_message(format!("seeds ({failures} failed)"));
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let runs = seeds.end - seeds.start;
    println!(
        "{runs} seeds, {failures} failed; {ok_ops} client operations succeeded in {slots} chosen slots; {:.0}x real time, {:.1} seeds/s",
        simulated_ms as f64 / 1000.0 / wall.max(1e-9),
        runs as f64 / wall.max(1e-9)
    );
    if unchecked > 0 {
        println!("{unchecked} seed(s) got no linearizability verdict within the time limit");
    }
    if failures == 0 {
        println!("verdict: every check held on every seed");
        Ok(0)
    } else {
        println!("verdict: {failures} seed(s) broke a check (see above for the replay commands)");
        Ok(1)
    }
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
