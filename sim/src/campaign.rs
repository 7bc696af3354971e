//! Campaigns: many seeds of the tier-A world on every core, in disjoint shards, with reports
//! that merge.
//!
//! A seed is a complete run on its own, so seeds spread over threads without changing any run:
//! each worker builds its own world, and results are handed back in seed order, so the printed
//! output of a campaign does not depend on how many workers ran it. A shard `K/N` takes every
//! N-th seed of the range, starting at its K-th (1-based): the N shards of one range are
//! disjoint and together cover it, and each gets a similar mix of seeds (a CI matrix or a batch
//! cluster's array job runs one shard per job, then `sim merge` joins their reports).

use crate::{run_seed, Outcome, RunReport, SimConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use thiserror::Error;

/// The K-th (1-based) of N disjoint slices of a seed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: u64,
    pub n: u64,
}

impl Shard {
    /// The whole range.
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// The seeds of `range` in this shard, in order.
    pub fn seeds(self, range: Range<u64>) -> impl Iterator<Item = u64> {
        let start = range.start;
        range.filter(move |s| (s - start) % self.n == self.k - 1)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("shard {0:?}: write it as K/N with 1 <= K <= N, e.g. 3/8 (the third of eight slices)")]
pub struct BadShard(String);

impl FromStr for Shard {
    type Err = BadShard;
    fn from_str(text: &str) -> Result<Shard, BadShard> {
        let bad = || BadShard(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (u64, u64) =
            (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

/// One seed's run, and for a determinism check where its second run first differed.
pub struct SeedResult {
    pub seed: u64,
    pub report: RunReport,
    pub divergence: Option<Divergence>,
}

/// The first event where two runs of one seed differ.
#[derive(Debug, Clone)]
pub struct Divergence {
    pub event: usize,
    pub first: String,
    pub second: String,
}

/// The number of workers that uses every core the process may run on.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `seeds` on `jobs` threads (at least one) and hands each result to `done` on the calling
/// thread, in the order of `seeds`. With `determinism`, every seed runs twice and the first
/// event where the traces differ is reported (the config must keep traces for that).
pub fn run(
    seeds: &[u64],
    cfg: &SimConfig,
    jobs: usize,
    determinism: bool,
    mut done: impl FnMut(SeedResult),
) {
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, SeedResult)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(at) else { break };
                if tx.send((at, run_one(seed, cfg, determinism))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Results arrive in any order; they leave in seed order.
        let mut waiting = BTreeMap::new();
        let mut emit = 0usize;
        for (at, result) in rx {
            waiting.insert(at, result);
            while let Some(result) = waiting.remove(&emit) {
                done(result);
                emit += 1;
            }
        }
    });
}

fn run_one(seed: u64, cfg: &SimConfig, determinism: bool) -> SeedResult {
    let report = run_seed(seed, cfg);
    let divergence = determinism.then(|| run_seed(seed, cfg)).and_then(|again| {
        if again.trace == report.trace && again.trace_hash == report.trace_hash {
            return None;
        }
        let at = report.trace.iter().zip(&again.trace).position(|(a, b)| a != b);
        let event = at.unwrap_or(report.trace.len().min(again.trace.len()));
        let line = |t: &[String]| t.get(event).cloned().unwrap_or_else(|| "(end)".into());
        Some(Divergence { event, first: line(&report.trace), second: line(&again.trace) })
    });
    SeedResult { seed, report, divergence }
}

/// A failed seed as a campaign report keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedSeed {
    pub seed: u64,
    /// The check that broke ("agreement", "linearizable", "determinism", ...).
    pub check: String,
    pub detail: String,
    /// The fault mix the seed ran with.
    pub faults: String,
    /// The one-line command that replays it.
    pub replay: String,
}

/// What a campaign (or a shard of one) ran and found; `sim merge` adds reports up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignReport {
    /// The simulator's flags (nodes, clients, duration, pause, faults); reports merge only when
    /// they agree.
    pub flags: String,
    /// Every seed run, sorted (kept so that a merge can refuse overlapping shards).
    pub seeds: Vec<u64>,
    pub failed: Vec<FailedSeed>,
    /// Seeds whose history got no linearizability verdict within the time limit.
    pub unchecked: Vec<u64>,
    /// Seeds that ran each fault family ("crashes", "partitions", ...).
    pub per_fault: BTreeMap<String, u64>,
    /// Seeds that ran each cluster size.
    pub per_nodes: BTreeMap<u64, u64>,
    /// Seeds that ran each deployment shape (`RunReport::shape`: "4 nodes", "3 nodes, quorum
    /// 3"); absent from reports written before shapes were drawn.
    #[serde(default)]
    pub per_shape: BTreeMap<String, u64>,
    /// Broken checks, by name.
    pub per_check: BTreeMap<String, u64>,
    /// Seeds whose clock faults went beyond the bound the configuration promises (labelled
    /// share of swarm seeds).
    #[serde(default)]
    pub beyond_bound: u64,
    /// How often each named rule check and crash point was exercised, over every seed.
    #[serde(default)]
    pub exercised: BTreeMap<String, u64>,
    /// Of those, the ones where a clock-dependent check broke: expected beyond the bound, so
    /// not failures (`check` and `detail` say what broke).
    #[serde(default)]
    pub broke_beyond_bound: Vec<FailedSeed>,
    pub ops_ok: u64,
    pub committed_slots: u64,
    pub simulated_ms: u64,
    /// Wall-clock seconds spent, and the workers that spent them (per report; summed on merge).
    pub wall_s: f64,
    pub jobs: u64,
    /// CPU seconds (user and system) the process spent on the campaign, summed on merge; 0 in
    /// reports written before it was measured, or where it cannot be.
    #[serde(default)]
    pub cpu_s: f64,
    /// Seeds per CPU second (`seeds / cpu_s`): the speed a core gives, whatever else the
    /// machine runs; 0 when `cpu_s` is. Worked out again on merge.
    #[serde(default)]
    pub seeds_per_cpu_s: f64,
}

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{}: cannot read the campaign report: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a campaign report (written by `arakoon-admin sim --report`): {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    /// The report could not be turned into JSON (a bug: every field is plain data).
    #[error("{}: cannot encode the campaign report: {source}", path.display())]
    Encode { path: PathBuf, source: serde_json::Error },
    #[error("{}: cannot write the campaign report: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the reports ran different simulations and do not add up: {a:?} and {b:?} (run every shard with the same flags)")]
    Flags { a: String, b: String },
    #[error("seed {0} is in two of the reports: the shards overlap (give each job its own --shard K/N of one --seeds range)")]
    Overlap(u64),
}

impl CampaignReport {
    pub fn new(flags: String) -> CampaignReport {
        CampaignReport { flags, ..CampaignReport::default() }
    }

    /// Counts one seed's result; `replay` is the command that replays it. The cluster size and
    /// shape counted are those the seed ran (drawn or fixed), as its report names them.
    pub fn add(&mut self, result: &SeedResult, replay: String) {
        let r = &result.report;
        self.seeds.push(result.seed);
        self.ops_ok += r.ops_ok;
        self.committed_slots += r.committed_slots;
        self.simulated_ms += r.simulated_ms;
        // The shape reads "N nodes[, quorum Q]"; a run refused before it started has none.
        if let Some(n) = r.shape.split(' ').next().and_then(|n| n.parse::<u64>().ok()) {
            *self.per_nodes.entry(n).or_default() += 1;
            *self.per_shape.entry(r.shape.clone()).or_default() += 1;
        }
        for family in fault_families(&r.faults) {
            *self.per_fault.entry(family).or_default() += 1;
        }
        let mut fail = |check: &str, detail: String| {
            *self.per_check.entry(check.to_string()).or_default() += 1;
            self.failed.push(FailedSeed {
                seed: result.seed,
                check: check.to_string(),
                detail,
                faults: r.faults.clone(),
                replay: replay.clone(),
            });
        };
        if let Outcome::Violation(v) = &r.outcome {
            fail(v.check, v.detail.clone());
        }
        if let Some(d) = &result.divergence {
            fail(
                "determinism",
                format!("the runs diverge at event {}: {:?} vs {:?}", d.event, d.first, d.second),
            );
        }
        if r.beyond_bound.is_some() {
            self.beyond_bound += 1;
        }
        for (check, n) in &r.exercised {
            *self.exercised.entry(check.clone()).or_default() += n;
        }
        if let Some(v) = &r.broke_beyond_bound {
            self.broke_beyond_bound.push(FailedSeed {
                seed: result.seed,
                check: v.check.to_string(),
                detail: v.detail.clone(),
                faults: r.faults.clone(),
                replay: replay.clone(),
            });
        }
        if r.linearizability.starts_with("unknown") {
            self.unchecked.push(result.seed);
        }
    }

    /// Seeds that broke a check (a seed that broke two counts once).
    pub fn failed_seeds(&self) -> usize {
        let mut seeds: Vec<u64> = self.failed.iter().map(|f| f.seed).collect();
        seeds.dedup();
        seeds.len()
    }

    /// Records the CPU seconds spent, and the seeds per CPU second that follow.
    pub fn set_cpu_s(&mut self, cpu_s: f64) {
        self.cpu_s = cpu_s;
        self.seeds_per_cpu_s = if cpu_s > 0.0 { self.seeds.len() as f64 / cpu_s } else { 0.0 };
    }

    /// Seeds per wall-clock second, and simulated time per wall-clock time.
    pub fn speed(&self) -> (f64, f64) {
        let wall = self.wall_s.max(1e-9);
        (self.seeds.len() as f64 / wall, self.simulated_ms as f64 / 1000.0 / wall)
    }

    /// Adds `other` to this report: same flags, disjoint seeds.
    pub fn merge(&mut self, other: CampaignReport) -> Result<(), ReportError> {
        if self.seeds.is_empty() && self.flags.is_empty() {
            *self = other;
            return Ok(());
        }
        if self.flags != other.flags {
            return Err(ReportError::Flags { a: self.flags.clone(), b: other.flags });
        }
        let mut seeds = std::mem::take(&mut self.seeds);
        seeds.extend(other.seeds);
        seeds.sort_unstable();
        if let Some(w) = seeds.windows(2).find(|w| w[0] == w[1]) {
            return Err(ReportError::Overlap(w[0]));
        }
        self.seeds = seeds;
        self.failed.extend(other.failed);
        self.failed.sort_by_key(|f| f.seed);
        self.unchecked.extend(other.unchecked);
        self.unchecked.sort_unstable();
        for (k, v) in other.per_fault {
            *self.per_fault.entry(k).or_default() += v;
        }
        for (k, v) in other.per_nodes {
            *self.per_nodes.entry(k).or_default() += v;
        }
        for (k, v) in other.per_shape {
            *self.per_shape.entry(k).or_default() += v;
        }
        for (k, v) in other.per_check {
            *self.per_check.entry(k).or_default() += v;
        }
        self.beyond_bound += other.beyond_bound;
        for (k, v) in other.exercised {
            *self.exercised.entry(k).or_default() += v;
        }
        self.broke_beyond_bound.extend(other.broke_beyond_bound);
        self.broke_beyond_bound.sort_by_key(|f| f.seed);
        self.ops_ok += other.ops_ok;
        self.committed_slots += other.committed_slots;
        self.simulated_ms += other.simulated_ms;
        self.wall_s += other.wall_s;
        self.jobs += other.jobs;
        // A shard that did not measure it leaves the sum unknown.
        let cpu_s =
            if self.cpu_s > 0.0 && other.cpu_s > 0.0 { self.cpu_s + other.cpu_s } else { 0.0 };
        self.set_cpu_s(cpu_s);
        Ok(())
    }

    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|source| ReportError::Encode { path: path.to_path_buf(), source })?;
        std::fs::write(path, text + "\n")
            .map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
    }

    pub fn read(path: &Path) -> Result<CampaignReport, ReportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
        serde_json::from_str(&text)
            .map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
    }
}

/// The fault families named in a run's fault description (`FaultMix::describe`): the words
/// before any figure ("loss 2.0%" -> "loss", "clock offset ±500ms" -> "clock offset").
fn fault_families(described: &str) -> Vec<String> {
    described
        .split(", ")
        .map(|part| {
            let words: Vec<&str> = part
                .split(' ')
                .take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit() || c == '±'))
                .collect();
            words.join(" ")
        })
        .filter(|f| !f.is_empty() && f != "delay")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaultMix;

    #[test]
    fn shards_are_disjoint_and_cover_the_range() {
        let range = 10..47;
        let mut all: Vec<u64> = (1..=4)
            .flat_map(|k| Shard { k, n: 4 }.seeds(range.clone()).collect::<Vec<_>>())
            .collect();
        all.sort_unstable();
        assert_eq!(all, range.clone().collect::<Vec<_>>());
        assert_eq!(Shard { k: 2, n: 4 }.seeds(range).take(3).collect::<Vec<_>>(), [11, 15, 19]);
        assert_eq!("3/8".parse::<Shard>(), Ok(Shard { k: 3, n: 8 }));
        for bad in ["0/4", "5/4", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fault_families_are_named_without_their_figures() {
        let mut mix = FaultMix::all();
        mix.slow_disk = false;
        let families = fault_families(&mix.describe());
        assert!(families.contains(&"loss".to_string()));
        assert!(families.contains(&"torn writes".to_string()));
        assert!(families.contains(&"clock offset".to_string()));
        assert!(families.contains(&"drift".to_string()));
        assert!(!families.iter().any(|f| f == "slow disk" || f == "delay"));
    }

    fn small() -> SimConfig {
        SimConfig { duration_ms: 3_000, faults: Some(FaultMix::all()), ..SimConfig::default() }
    }

    /// Workers do not change the runs, only who runs them; results come back in seed order.
    #[test]
    fn parallel_runs_match_serial_runs_in_seed_order() {
        let cfg = small();
        let seeds = [5u64, 1, 9, 2];
        let mut serial = Vec::new();
        run(&seeds, &cfg, 1, false, |r| serial.push((r.seed, r.report.trace_hash)));
        let mut parallel = Vec::new();
        run(&seeds, &cfg, 3, false, |r| parallel.push((r.seed, r.report.trace_hash)));
        assert_eq!(serial.iter().map(|s| s.0).collect::<Vec<_>>(), seeds);
        assert_eq!(serial, parallel);
    }

    #[test]
    fn shard_reports_merge_into_the_whole_and_refuse_overlaps() {
        let cfg = small();
        let mut whole = CampaignReport::new("f".into());
        let mut parts = vec![CampaignReport::new("f".into()), CampaignReport::new("f".into())];
        let seeds: Vec<u64> = (0..4).collect();
        run(&seeds, &cfg, 2, false, |r| {
            whole.add(&r, format!("replay {}", r.seed));
            parts[(r.seed % 2) as usize].add(&r, format!("replay {}", r.seed));
        });
        let mut merged = CampaignReport::default();
        for p in parts.clone() {
            merged.merge(p).unwrap();
        }
        merged.seeds.sort_unstable();
        assert_eq!(merged.seeds, whole.seeds);
        assert_eq!(merged.per_fault, whole.per_fault);
        assert_eq!(merged.exercised, whole.exercised);
        assert!(whole.exercised.get("persist-before-accepted").is_some_and(|n| *n > 0));
        assert_eq!(merged.ops_ok, whole.ops_ok);
        assert_eq!(merged.per_nodes.get(&3), Some(&4));
        assert_eq!(merged.per_shape.get("3 nodes"), Some(&4));
        assert!(matches!(merged.merge(parts[0].clone()), Err(ReportError::Overlap(_))));
        let other = CampaignReport::new("g".into());
        let mut m2 = parts[0].clone();
        m2.seeds.clear();
        assert!(matches!(m2.merge(other), Err(ReportError::Flags { .. })));
    }

    /// With `draw_shape`, each seed draws its size (and sometimes a quorum) from its own RNG:
    /// the same seed the same shape, different seeds different shapes, each counted.
    #[test]
    fn drawn_shapes_vary_by_seed_repeat_per_seed_and_are_counted() {
        let cfg = SimConfig { duration_ms: 3_000, draw_shape: true, ..SimConfig::default() };
        let seeds: Vec<u64> = (0..16).collect();
        let mut report = CampaignReport::new("f".into());
        let mut shapes = Vec::new();
        run(&seeds, &cfg, 2, false, |r| {
            assert!(r.report.passed(), "seed {}: {:?}", r.seed, r.report.outcome);
            shapes.push(r.report.shape.clone());
            report.add(&r, String::new());
        });
        assert_eq!(run_seed(3, &cfg).shape, shapes[3]);
        assert!(report.per_nodes.len() >= 3, "few sizes drawn: {:?}", report.per_shape);
        assert_eq!(report.per_nodes.values().sum::<u64>(), 16);
        assert_eq!(report.per_shape.values().sum::<u64>(), 16);
        assert!(report.per_nodes.keys().all(|n| (1..=5).contains(n)), "{:?}", report.per_nodes);
    }

    /// Seeds beyond the clock bound, what they broke, and the exercised checks add up on merge
    /// and read back from an older report without them.
    #[test]
    fn beyond_bound_seeds_and_exercised_checks_merge() {
        let broke = |seed| FailedSeed {
            seed,
            check: "at most one valid lease".into(),
            detail: "d".into(),
            faults: "beyond the clock bound".into(),
            replay: String::new(),
        };
        let mut a = CampaignReport::new("f".into());
        a.seeds = vec![1];
        a.beyond_bound = 1;
        a.broke_beyond_bound.push(broke(1));
        a.exercised.insert("persist-before-promise".into(), 3);
        let mut b = CampaignReport::new("f".into());
        b.seeds = vec![0];
        b.beyond_bound = 2;
        b.broke_beyond_bound.push(broke(0));
        b.exercised.insert("persist-before-promise".into(), 4);
        a.merge(b).unwrap();
        assert_eq!(a.beyond_bound, 3);
        assert_eq!(a.broke_beyond_bound.iter().map(|f| f.seed).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(a.exercised.get("persist-before-promise"), Some(&7));
        assert_eq!(a.failed_seeds(), 0, "expected beyond the bound: not failures");
        let old: CampaignReport = serde_json::from_str(
            r#"{"flags":"f","seeds":[],"failed":[],"unchecked":[],"per_fault":{},"per_nodes":{},"per_check":{},"ops_ok":0,"committed_slots":0,"simulated_ms":0,"wall_s":0.0,"jobs":1}"#,
        )
        .unwrap();
        assert_eq!((old.beyond_bound, old.exercised.len()), (0, 0));
    }

    #[test]
    fn a_report_reads_back_what_was_written() {
        let mut r = CampaignReport::new("--nodes 3".into());
        r.seeds = vec![1, 2];
        r.failed.push(FailedSeed {
            seed: 2,
            check: "agreement".into(),
            detail: "d".into(),
            faults: "crashes".into(),
            replay: "arakoon-admin sim --seed 2".into(),
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        r.write(&path).unwrap();
        assert_eq!(CampaignReport::read(&path).unwrap(), r);
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(CampaignReport::read(&path), Err(ReportError::Parse { .. })));
    }
}
