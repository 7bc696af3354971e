//! Stage timings of a running node, for benchmarks: where a set's time goes (docs/PERFORMANCE.md).
//!
//! Off unless the `arakoon` binary is given `--spans DIR`: then every stage
//! below records its durations in a histogram of about 19% resolution (four buckets per power of
//! two of microseconds), and a thread rewrites `<dir>/<node>.spans` every second with the counts
//! so far. `arakoon-admin bench --compare` sets it for the nodes it starts and prints, per step,
//! each stage's p50, p99 and slowest bucket over the three nodes ([`read`], [`Counts::since`]).
//! Off, a stage costs one relaxed load; the simulator never turns it on (it reads no clock).
//!
//! The stages, all outside the consensus core and the shell:
//! - `core.event`: the event loop's handling of one event (a batch of peer messages or client
//!   requests, a persist report, a tick), store applies included: time the core is busy.
//! - `store.apply`: the sled store's commit of one applied slot (store/sled_store.rs).
//! - `persist.wait`: a group's first job, from the core handing it over to the persister thread
//!   taking it (the thread's wake-up, or the group before it).
//! - `persist.group`: the persister writing one group of jobs, fsync included.
//! - `store.flush`: one flush of the sled store to disk (its own thread).
//! - `client.wait`: a connection's wait for the core's answer to one request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BUCKETS: usize = 256;

/// One stage's histogram of durations.
pub struct Span {
    pub name: &'static str,
    buckets: [AtomicU64; BUCKETS],
}

static ENABLED: AtomicBool = AtomicBool::new(false);

pub static CORE_EVENT: Span = Span::new("core.event");
pub static STORE_APPLY: Span = Span::new("store.apply");
pub static PERSIST_WAIT: Span = Span::new("persist.wait");
pub static PERSIST_GROUP: Span = Span::new("persist.group");
pub static STORE_FLUSH: Span = Span::new("store.flush");
pub static CLIENT_WAIT: Span = Span::new("client.wait");

/// Every stage, in the order they are written and printed.
pub static ALL: [&Span; 6] =
    [&CORE_EVENT, &STORE_APPLY, &PERSIST_WAIT, &PERSIST_GROUP, &STORE_FLUSH, &CLIENT_WAIT];

/// The start of a timed stage: `None` while spans are off (no clock is read then).
pub fn start() -> Option<Instant> {
    ENABLED.load(Ordering::Relaxed).then(Instant::now)
}

impl Span {
    const fn new(name: &'static str) -> Span {
        Span { name, buckets: [const { AtomicU64::new(0) }; BUCKETS] }
    }

    /// Records the time since `started` (from [`start`]), if spans are on.
    pub fn since(&self, started: Option<Instant>) {
        if let Some(t) = started {
            self.record(t.elapsed());
        }
    }

    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }
}

/// The bucket of a duration in microseconds: exact below 4, then four per power of two.
fn bucket_of(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let log = 63 - us.leading_zeros() as usize; // >= 2
    let quarter = ((us >> (log - 2)) & 3) as usize;
    (4 * (log - 1) + quarter).min(BUCKETS - 1)
}

/// The largest duration (µs) that falls in bucket `b`.
pub fn bucket_top(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    let (log, quarter) = (b / 4 + 1, (b % 4) as u64);
    let step = 1u64 << (log - 2);
    (4 + quarter) * step + step - 1
}

/// Turns spans on and starts the thread that writes `<dir>/<node>.spans` every second.
pub fn enable(dir: &Path, node: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{node}.spans"));
    write(&path)?;
    ENABLED.store(true, Ordering::Relaxed);
    let target = path.clone();
    std::thread::Builder::new().name("spans".into()).spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = write(&target) {
            tracing::warn!("spans: cannot write {}: {e}", target.display());
        }
    })?;
    Ok(path)
}

/// Writes every stage's counts, one line each (`name count...`), through a temporary file so
/// that a reader never sees half of it.
fn write(path: &Path) -> std::io::Result<()> {
    let mut text = String::new();
    for span in ALL {
        text.push_str(span.name);
        for c in span.counts() {
            text.push(' ');
            text.push_str(&c.to_string());
        }
        text.push('\n');
    }
    let tmp = path.with_extension("spans.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// A stage's counts per bucket, as read from a spans file (or summed over several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts(pub Vec<u64>);

impl Counts {
    /// What was recorded since `before` (an earlier reading of the same stage).
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .enumerate()
                .map(|(b, c)| c.saturating_sub(before.0.get(b).copied().unwrap_or(0)))
                .collect(),
        )
    }

    pub fn add(&mut self, other: &Counts) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine += theirs;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The top of the bucket that holds quantile `q` (0..=1), in µs; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_top(b));
            }
        }
        None
    }
}

/// Reads a spans file: each stage's counts by name. Lines it does not understand are skipped.
pub fn read(path: &Path) -> std::io::Result<Vec<(String, Counts)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_string();
            let counts: Option<Vec<u64>> = words.map(|w| w.parse().ok()).collect();
            Some((name, Counts(counts?)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_falls_in_a_bucket_whose_top_holds_it() {
        let mut last = 0;
        for us in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 2]) {
            let b = bucket_of(us);
            assert!(bucket_top(b) >= us, "{us} µs in bucket {b} topped at {}", bucket_top(b));
            assert!(b == 0 || bucket_top(b - 1) < us, "{us} µs belongs below bucket {b}");
            assert!(b >= last, "buckets grow with the duration");
            last = b;
        }
        // Four buckets per power of two: the top is within a quarter of the duration above 4 µs.
        assert_eq!(bucket_top(bucket_of(1000)), 1023);
        assert_eq!(bucket_top(bucket_of(10_000)), 10_239);
    }

    #[test]
    fn quantiles_of_a_reading_since_an_earlier_one() {
        let mut before = Counts(vec![0; BUCKETS]);
        before.0[bucket_of(100)] = 5;
        let mut now = before.clone();
        now.0[bucket_of(100)] += 98;
        now.0[bucket_of(20_000)] += 2;
        let step = now.since(&before);
        assert_eq!(step.total(), 100);
        assert_eq!(step.quantile(0.5), Some(bucket_top(bucket_of(100))));
        assert_eq!(step.quantile(0.98), Some(bucket_top(bucket_of(100))));
        assert_eq!(step.quantile(0.99), Some(bucket_top(bucket_of(20_000))));
        assert_eq!(Counts::default().quantile(0.5), None);
    }

    #[test]
    fn a_written_file_reads_back_and_a_disabled_stage_reads_no_clock() {
        assert!(start().is_none(), "spans are off unless enabled");
        CLIENT_WAIT.since(None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.spans");
        write(&path).unwrap();
        let read = read(&path).unwrap();
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ALL.map(|s| s.name));
        assert!(read.iter().all(|(_, c)| c.0.len() == BUCKETS));
    }
}
