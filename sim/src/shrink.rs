//! Shrinking a failing seed: the same seed run again with less in it (a shorter run, smaller
//! TLog files, fewer clients, clients that pause longer between calls or start calling later,
//! fewer operations per client, the nemesis' strikes and the clients' calls left out by delta
//! debugging) until the smallest run found that still breaks the same check. Every attempt is
//! a whole deterministic run, so the result is the same on every machine; the number of
//! attempts is bounded, and each run by its simulated duration.
//!
//! What is left out must not move what is kept. Each client draws its calls, pauses and
//! request delays from a stream of its own, apart from the world's (network, disks): leaving a
//! call out does not redraw the other clients' calls nor this client's later ones. The nemesis
//! draws from streams of its own too: one for its schedule (when it strikes, which fault, on
//! which node) and one per strike for what the strike draws (a partition's sides, a crash's
//! point, when the node comes back), so that fewer clients, calls left out or a strike left
//! out keep the other strikes as they were. Before that, every message's delay came from the
//! stream the nemesis drew from, and a run with a call less struck other nodes with other
//! faults: 29 of the 69 runs of `benches/shrink.rs` kept more than 20 events, most of them at
//! the attempts' cap (18 of 68 at eaa4596, with the passes below; docs/CONSENSUS.md, "Shrinking
//! their seeds", says which and why). What the left-out call would have set off in the cluster still changes,
//! so a run with a call less is another run, not quite the same run minus a call.
//!
//! The search therefore assumes nothing about which reductions compose; it keeps any run that
//! breaks the same check with no more events, and repeats its passes while they shrink the
//! run: the coarse ones (each takes out many calls at once) before delta debugging over the
//! strikes, then over the calls ordered by client (so that its first chunks are whole
//! clients, then ranges of one client's calls). Smaller TLog files (4, 8 or 16 entries instead
//! of 64) let a bug that needs a rollover, a sealed file or a collapse fail after a few writes
//! rather than after 64 (rollover-skips-fsync, skip-crc-check, head-flushed-after-removal).
//! A configuration tried once is not run again (the run is deterministic). The passes end
//! where none shrinks the run, which need not be the smallest run; with attempts left and more
//! than [`GOAL_EVENTS`] events, a second search from the start leaves the number of clients to
//! delta debugging, and the smaller result is kept; a third, from that result, delta-debugs the
//! calls in the order they were made, latest first.
//!
//! A call left out that way (`skip-calls`) is not made, and its client calls its next one after
//! a pause: its later calls come sooner and draw other things (the left-out call drew no request
//! delay). A call can also be held (`hold-calls`, [`Reduction::hold_calls`]): not made either,
//! but its client draws what it drew for it, goes on to the node the answer sent it to and
//! calls again when it would have. A read so held leaves the rest of the run as it was
//! (`tests/world.rs` checks it). The world's most frequent draws (a message's fate, a disk's
//! latency, a reply's hop) are keyed by what they are for and when (world/keyed.rs): a write
//! left out or held moves only what it set off, not every later message's delay, as it did
//! while they came from one stream. With attempts left and more than
//! [`GOAL_EVENTS`] events, a fourth step delta-debugs the calls held, latest first, then the
//! passes run again; then a polish leaves out together what cannot go one at a time: TLog files
//! of every size below the run's, 2 to 6 consecutive calls held at once, and any two events
//! (strikes or calls held) when the run has at most 40, then up to 10 consecutive calls held
//! for a TLog file as many entries smaller or fewer (a rollover that must come at a moment needs
//! the file's size of writes before it); the passes again after each. A last
//! search, still above the goal, starts from the start again with passes that hold calls
//! instead of skipping them, and the smaller run is kept. The 75 runs of `benches/shrink.rs`:
//! 65 within 20 events before holding and polishing, 74 after; since the world's draws are keyed
//! and calls are traded for smaller files, all 74 of its runs today (docs/CONSENSUS.md,
//! "Shrinking their seeds").
//!
//! The calls made after the run's end are the liveness check's: they wait for a write while
//! the cluster comes back, and no reduction leaves them out. A run that broke liveness is first
//! tried with a probe in their place (`probe`: client 0 alone writes, a lease apart, and the
//! bound counts that pause), since a cluster that never comes back otherwise collects a
//! hundred failed calls (promise-beyond-quorum and ballot-reach-unchecked kept 75 to 129
//! events before); any other broken check is first tried without the liveness check.
//!
//! A shrunk run is written as a spec (`duration=4000;clients=2;pause-us=40000-400000;from=9000;
//! ops=3;tlog-entries=8;skip=0,2;hold-calls=1.4@2310042>0~2309880;no-liveness`) that
//! `arakoon-admin sim --seed N --shrunk SPEC` replays (a spec without a part leaves that part
//! as the run had it, so older specs read as they did; a held call is `CLIENT.OP@US`, the
//! answer's time, then `>NODE` or `>?` when the client then asked another node, a given one or
//! one drawn, and `~US` when a node answered it), and its events (the strikes kept and the
//! clients' calls) are listed in time order.

use crate::world::{run_seed, Held, Outcome, Redirect, Reduction, RunReport, SimConfig};
use std::collections::{BTreeMap, BTreeSet};

/// The attempts one shrink may spend (each a whole run): 1,000 left 3 of the bench's 68 runs
/// above 20 events that 4,000 bring within, and 12,000 three more of 75 that 4,000 left
/// there (docs/CONSENSUS.md, "Shrinking their seeds"). The slowest shrink of the bench then
/// takes about 80 s; the command shows its progress.
pub const ATTEMPTS_MAX: u32 = 12_000;

/// A shrunk failing run.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub seed: u64,
    /// The configuration the shrunk run ran with.
    pub cfg: SimConfig,
    /// The check the original run broke, which the shrunk one breaks too.
    pub check: &'static str,
    pub detail: String,
    /// The shrunk run's report (with its history).
    pub report: RunReport,
    /// Strikes kept and calls made, in time order.
    pub events: Vec<String>,
    /// Events of the original run.
    pub events_before: usize,
    pub attempts: u32,
}

impl Shrunk {
    /// The spec `--shrunk` reads back.
    pub fn spec(&self) -> String {
        spec_of(&self.cfg)
    }
}

/// The spec of `cfg`'s duration, clients and reduction.
pub fn spec_of(cfg: &SimConfig) -> String {
    let mut parts =
        vec![format!("duration={}", cfg.duration_ms), format!("clients={}", cfg.clients)];
    if cfg.think_us != SimConfig::default().think_us {
        parts.push(format!("pause-us={}-{}", cfg.think_us.0, cfg.think_us.1));
    }
    if let Some(ms) = cfg.reduce.calls_from_ms {
        parts.push(format!("from={ms}"));
    }
    if let Some(m) = cfg.reduce.ops_max {
        parts.push(format!("ops={m}"));
    }
    if let Some(n) = cfg.reduce.tlog_entries {
        parts.push(format!("tlog-entries={n}"));
    }
    if !cfg.reduce.skip_faults.is_empty() {
        let skip = runs(cfg.reduce.skip_faults.iter().map(|n| (0, u64::from(*n))), "");
        parts.push(format!("skip={skip}"));
    }
    if !cfg.reduce.skip_calls.is_empty() {
        parts.push(format!("skip-calls={}", runs(cfg.reduce.skip_calls.iter().copied(), ".")));
    }
    if !cfg.reduce.hold_calls.is_empty() {
        let held = cfg.reduce.hold_calls.iter().map(|((c, op), held)| {
            let to = match held.redirect {
                Redirect::Stay => String::new(),
                Redirect::To(k) => format!(">{k}"),
                Redirect::Drawn => ">?".into(),
            };
            let answered = held.answered_us.map_or(String::new(), |us| format!("~{us}"));
            format!("{c}.{op}@{}{to}{answered}", held.until_us)
        });
        parts.push(format!("hold-calls={}", held.collect::<Vec<_>>().join(",")));
    }
    if cfg.reduce.no_liveness {
        parts.push("no-liveness".into());
    }
    if cfg.reduce.probe {
        parts.push("probe".into());
    }
    parts.join(";")
}

/// Numbers written as runs: `0-3,7` (with a client: `1.0-3,1.7`); `ordered` ascending.
fn runs(ordered: impl Iterator<Item = (usize, u64)>, dot: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut open: Option<(usize, u64, u64)> = None;
    let show = |(c, a, b): (usize, u64, u64)| {
        let c = if dot.is_empty() { String::new() } else { format!("{c}{dot}") };
        if a == b {
            format!("{c}{a}")
        } else {
            format!("{c}{a}-{b}")
        }
    };
    for (c, n) in ordered {
        open = match open {
            Some((oc, a, b)) if oc == c && b + 1 == n => Some((oc, a, n)),
            Some(run) => {
                out.push(show(run));
                Some((c, n, n))
            }
            None => Some((c, n, n)),
        };
    }
    out.extend(open.map(show));
    out.join(",")
}

/// `A` or `A-B` (both included), as numbers.
fn span(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b - a < 1_000_000).then_some((a, b))
}

/// Why a `--shrunk` spec does not read: which part is wrong, and what it should look like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--shrunk {spec:?}: {name}={value:?} is not a number")]
    NotANumber { spec: String, name: String, value: String },
    #[error("--shrunk {spec:?}: strikes {value:?} are not N or A-B")]
    NotStrikes { spec: String, value: String },
    #[error("--shrunk {spec:?}: calls {value:?} are not CLIENT.OP or CLIENT.A-B")]
    NotCalls { spec: String, value: String },
    #[error("--shrunk {spec:?}: held call {value:?} is not CLIENT.OP@US[>NODE|>?][~US]")]
    NotHeld { spec: String, value: String },
    #[error("--shrunk {spec:?}: pause-us {value:?} is not MIN-MAX (µs)")]
    NotPause { spec: String, value: String },
    #[error(
        "--shrunk {spec:?}: unknown part {part:?} (write duration=MS;clients=N;\
         pause-us=MIN-MAX;from=MS;ops=N;tlog-entries=N;skip=A,B;skip-calls=C.OP,C.OP;\
         hold-calls=C.OP@US>N,C.OP@US;no-liveness;probe)"
    )]
    UnknownPart { spec: String, part: String },
    #[error("--shrunk {spec:?}: a run needs a client and a duration")]
    Empty { spec: String },
}

/// `cfg` with a spec applied; an error says which part is wrong.
pub fn apply_spec(cfg: &SimConfig, spec: &str) -> Result<SimConfig, SpecError> {
    let mut out = SimConfig { reduce: Reduction::default(), ..cfg.clone() };
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let number = |v: &str| {
            v.parse::<u64>().map_err(|_| SpecError::NotANumber {
                spec: spec.to_string(),
                name: name.to_string(),
                value: v.to_string(),
            })
        };
        match name {
            "duration" => out.duration_ms = number(value)?,
            "clients" => out.clients = number(value)? as usize,
            "ops" => out.reduce.ops_max = Some(number(value)?),
            "from" => out.reduce.calls_from_ms = Some(number(value)?),
            "tlog-entries" => out.reduce.tlog_entries = Some(number(value)?.max(1)),
            "pause-us" => {
                let bad = || SpecError::NotPause { spec: spec.to_string(), value: value.into() };
                let (a, b) = value.split_once('-').ok_or_else(bad)?;
                let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.think_us = (a, b);
            }
            "skip" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    let bad =
                        || SpecError::NotStrikes { spec: spec.to_string(), value: v.to_string() };
                    let (a, b) = span(v).ok_or_else(bad)?;
                    for n in a..=b {
                        out.reduce.skip_faults.insert(u32::try_from(n).map_err(|_| bad())?);
                    }
                }
            }
            "skip-calls" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    let bad =
                        || SpecError::NotCalls { spec: spec.to_string(), value: v.to_string() };
                    let (c, ops) = v.split_once('.').ok_or_else(bad)?;
                    let c = number(c)? as usize;
                    let (a, b) = span(ops).ok_or_else(bad)?;
                    out.reduce.skip_calls.extend((a..=b).map(|op| (c, op)));
                }
            }
            "hold-calls" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    let bad =
                        || SpecError::NotHeld { spec: spec.to_string(), value: v.to_string() };
                    let (v, answered_us) = match v.split_once('~') {
                        Some((v, us)) => (v, Some(us.parse().map_err(|_| bad())?)),
                        None => (v, None),
                    };
                    let (call, end) = v.split_once('@').ok_or_else(bad)?;
                    let (c, op) = call.split_once('.').ok_or_else(bad)?;
                    let (us, to) = end.split_once('>').map_or((end, None), |(u, t)| (u, Some(t)));
                    let redirect = match to {
                        None => Redirect::Stay,
                        Some("?") => Redirect::Drawn,
                        Some(k) => Redirect::To(k.parse().map_err(|_| bad())?),
                    };
                    let (c, op, us) = (c.parse(), op.parse(), us.parse());
                    let (Ok(c), Ok(op), Ok(until_us)) = (c, op, us) else { return Err(bad()) };
                    let held = Held { until_us, redirect, answered_us };
                    out.reduce.hold_calls.insert((c, op), held);
                }
            }
            "no-liveness" => out.reduce.no_liveness = true,
            "probe" => out.reduce.probe = true,
            _ => {
                return Err(SpecError::UnknownPart {
                    spec: spec.to_string(),
                    part: part.to_string(),
                })
            }
        }
    }
    if out.clients == 0 || out.duration_ms == 0 {
        return Err(SpecError::Empty { spec: spec.to_string() });
    }
    Ok(out)
}

/// The strikes kept and the calls made by a run (with its history kept), in time order.
pub fn events(report: &RunReport) -> Vec<String> {
    let mut all: Vec<(u64, String)> = report
        .strikes
        .iter()
        .map(|(ms, n, what)| (ms * 1000, format!("{ms:>6}ms strike #{n}: {what}")))
        .collect();
    all.extend(report.ops.iter().map(|o| {
        let ret = o.ret_us.map_or("…".into(), |r| format!("{}ms", r / 1000));
        (
            o.call_us,
            format!(
                "{:>6}ms p{} {} [{}, until {ret}]",
                o.call_us / 1000,
                o.process,
                o.label,
                o.outcome
            ),
        )
    }));
    all.sort_by_key(|(at, _)| *at);
    all.into_iter().map(|(_, line)| line).collect()
}

/// The number of events of a run: strikes applied and calls made.
fn size(report: &RunReport) -> usize {
    report.strikes.len() + report.history_ops
}

struct Search<'p> {
    seed: u64,
    /// Told the runs spent and the best run's events after each run.
    progress: &'p mut dyn FnMut(u32, usize),
    /// The specs of the configurations run so far, with the report of those that broke the
    /// same check: a run is deterministic, so one tried before is not run again.
    tried: BTreeMap<String, Option<RunReport>>,
    check: &'static str,
    attempts: u32,
    best: SimConfig,
    best_report: RunReport,
    /// The passes delta-debug the calls held as well as skipped (the last search's).
    hold: bool,
}

impl Search<'_> {
    /// Runs `cfg`; keeps it when it breaks the same check with no more events.
    fn try_cfg(&mut self, cfg: SimConfig) -> bool {
        let spec = spec_of(&cfg);
        let report = match self.tried.get(&spec) {
            Some(known) => known.clone(),
            None if self.attempts >= ATTEMPTS_MAX => return false,
            None => {
                self.attempts += 1;
                let report = run_seed(self.seed, &cfg);
                let same =
                    matches!(&report.outcome, Outcome::Violation(v) if v.check == self.check);
                let known = same.then_some(report);
                self.tried.insert(spec, known.clone());
                known
            }
        };
        let kept = match report {
            Some(report) if size(&report) <= size(&self.best_report) => {
                self.best = cfg;
                self.best_report = report;
                true
            }
            _ => false,
        };
        (self.progress)(self.attempts, size(&self.best_report));
        kept
    }

    /// The smallest value in `lo..=hi` for which `with` fails, assuming more fails more.
    fn bisect(&mut self, lo: u64, hi: u64, with: impl Fn(&SimConfig, u64) -> SimConfig) {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi && self.attempts < ATTEMPTS_MAX {
            let mid = lo + (hi - lo) / 2;
            if self.try_cfg(with(&self.best, mid)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
    }

    /// Delta debugging over what the best run still holds (`items` lists it): leaves out
    /// chunks of it (`without` leaves a chunk out of a configuration) while the run still
    /// fails; the chunks halve when none can go.
    fn ddmin<T: Clone>(
        &mut self,
        items: impl Fn(&RunReport) -> Vec<T>,
        without: impl Fn(&mut SimConfig, &[T]),
    ) {
        let mut kept = items(&self.best_report);
        let mut chunks = 2usize;
        while !kept.is_empty() && self.attempts < ATTEMPTS_MAX {
            let size = kept.len().div_ceil(chunks);
            let mut removed = false;
            for part in kept.chunks(size).map(<[T]>::to_vec).collect::<Vec<_>>() {
                let mut cfg = self.best.clone();
                without(&mut cfg, &part);
                if self.try_cfg(cfg) {
                    kept = items(&self.best_report);
                    chunks = (chunks - 1).max(2);
                    removed = true;
                    break;
                }
            }
            if !removed {
                if chunks >= kept.len() {
                    break;
                }
                chunks = (chunks * 2).min(kept.len());
            }
        }
    }
}

impl Search<'_> {
    /// Coarse passes, then strikes, then calls, again while any shrinks: every pass changes
    /// the run the others see. `fewer_clients`: the coarse passes may run fewer clients.
    fn passes(&mut self, fewer_clients: bool) {
        let strikes = |r: &RunReport| r.strikes.iter().map(|(_, n, _)| *n).collect::<Vec<_>>();
        loop {
            let before = size(&self.best_report);
            self.coarse(fewer_clients);
            self.ddmin(strikes, |c, part| c.reduce.skip_faults.extend(part.iter().copied()));
            // By client, so that a chunk is a range of one client's calls (whole clients first).
            let calls = |r: &RunReport| BTreeSet::from_iter(r.calls.iter().copied());
            if self.hold {
                // Each call left out holding its client.
                self.ddmin(|r| BTreeMap::from_iter(held(r)).into_iter().collect(), hold_calls);
            } else {
                self.ddmin(|r| calls(r).into_iter().collect(), skip_calls);
            }
            if size(&self.best_report) >= before || self.attempts >= ATTEMPTS_MAX {
                break;
            }
        }
    }

    /// The passes that take out many events at once, each keeping the smallest failing run it
    /// finds: a shorter run, fewer clients, longer pauses between calls, a later first call,
    /// fewer calls per client.
    fn coarse(&mut self, fewer_clients: bool) {
        // Smaller TLog files: a rollover, a sealed file to damage or a collapse come after
        // fewer writes. The smallest that still fails.
        if self.best.reduce.tlog_entries.is_none() {
            for n in TLOG_ENTRIES_TRIED {
                let reduce = Reduction { tlog_entries: Some(n), ..self.best.reduce.clone() };
                if self.try_cfg(SimConfig { reduce, ..self.best.clone() }) {
                    break;
                }
            }
        }
        let seconds = self.best.duration_ms.div_ceil(1000);
        self.bisect(1, seconds, |c, n| SimConfig {
            duration_ms: (n * 1000).min(c.duration_ms),
            ..c.clone()
        });
        for clients in (1..self.best.clients).filter(|_| fewer_clients) {
            if self.try_cfg(SimConfig { clients, ..self.best.clone() }) {
                break;
            }
        }
        // Slower clients make fewer calls in the same time; the slowest that still fails.
        let (lo, hi) = self.best.think_us;
        for factor in [64, 16, 4, 2] {
            let lo = (lo * factor).min(PAUSE_MAX_US);
            let think_us = (lo, (hi * factor).clamp(lo, PAUSE_MAX_US));
            if think_us != self.best.think_us
                && self.try_cfg(SimConfig { think_us, ..self.best.clone() })
            {
                break;
            }
        }
        // The latest first call that still fails: `n` tenths of a second of calls before the
        // run's end (whole seconds left five clients' calls of up to a second in runs whose
        // failure came within a second of the first call).
        let from = self.best.reduce.calls_from_ms.unwrap_or(FIRST_CALL_MS);
        let span = self.best.duration_ms.saturating_sub(from) / 100;
        self.bisect(0, span, |c, n| {
            let from = c.duration_ms.saturating_sub(n * 100).max(FIRST_CALL_MS);
            let reduce = Reduction { calls_from_ms: Some(from), ..c.reduce.clone() };
            SimConfig { reduce, ..c.clone() }
        });
        // Past the most operations any client called, a bound leaves nothing out.
        let most = self.best_report.calls.iter().map(|(_, op)| op + 1).max().unwrap_or(0);
        self.bisect(0, most, |c, n| {
            let reduce = Reduction { ops_max: Some(n), ..c.reduce.clone() };
            SimConfig { reduce, ..c.clone() }
        });
    }
}

impl Search<'_> {
    /// Past every search, while above the goal: what the searches cannot leave out one at a
    /// time, left out together (TLog files smaller than the searches try, so that a rollover
    /// needs fewer writes; a few consecutive calls at once, so that the writes between two
    /// rollovers or collapses stay as many modulo the file's size; calls traded for a smaller
    /// file), then the passes again.
    fn polish(&mut self) {
        while self.attempts < ATTEMPTS_MAX && size(&self.best_report) > GOAL_EVENTS {
            let before = size(&self.best_report);
            let entries = self.best.reduce.tlog_entries.unwrap_or(TLOG_ENTRIES_WORLD);
            for n in 1..entries {
                let reduce = Reduction { tlog_entries: Some(n), ..self.best.reduce.clone() };
                if self.try_cfg(SimConfig { reduce, ..self.best.clone() }) {
                    break;
                }
            }
            self.windows();
            self.pairs();
            self.fewer_slots();
            self.ddmin(|r| held(r).into_iter().rev().collect(), hold_calls);
            self.passes(false);
            if size(&self.best_report) >= before {
                break;
            }
        }
    }

    /// Leaves out `k` consecutive calls (in the order made) at once, for `k` from 2 to
    /// [`WINDOW_MAX`], each holding its client; starts again after each window left out.
    fn windows(&mut self) {
        'again: while self.attempts < ATTEMPTS_MAX {
            let calls = held(&self.best_report);
            for k in 2..=WINDOW_MAX.min(calls.len()) {
                for window in calls.windows(k).rev() {
                    let mut cfg = self.best.clone();
                    hold_calls(&mut cfg, window);
                    if self.try_cfg(cfg) {
                        continue 'again;
                    }
                    if self.attempts >= ATTEMPTS_MAX {
                        return;
                    }
                }
            }
            return;
        }
    }
}

impl Search<'_> {
    /// Leaves out `k` consecutive calls (each holding its client) and makes the TLog file `d`
    /// entries smaller at once, for `d` from 1 to `k` and `k` up to [`TRADE_MAX`]: a bug that
    /// needs a rollover (or a collapse) at a given moment needs as many writes before it as the
    /// file holds, so neither a call left out nor a smaller file fails alone (apply-before-commit
    /// seed 102 kept 29 events for it). Only when the run has at most [`PAIRS_MAX`] events
    /// (about 10 runs an event a round); starts again after each trade kept.
    fn fewer_slots(&mut self) {
        'again: while self.attempts < ATTEMPTS_MAX && size(&self.best_report) > GOAL_EVENTS {
            let entries = self.best.reduce.tlog_entries.unwrap_or(TLOG_ENTRIES_WORLD);
            let calls = held(&self.best_report);
            if size(&self.best_report) > PAIRS_MAX {
                return;
            }
            for k in 1..=TRADE_MAX.min(calls.len()) {
                for window in calls.windows(k).rev() {
                    for d in (1..=k as u64).filter(|d| *d < entries) {
                        let mut cfg = self.best.clone();
                        hold_calls(&mut cfg, window);
                        cfg.reduce.tlog_entries = Some(entries - d);
                        if self.try_cfg(cfg) {
                            continue 'again;
                        }
                        if self.attempts >= ATTEMPTS_MAX {
                            return;
                        }
                    }
                }
            }
            return;
        }
    }
}

/// The most consecutive calls [`Search::fewer_slots`] trades for a smaller TLog file.
const TRADE_MAX: usize = 10;

impl Search<'_> {
    /// Leaves out any two of the strikes and calls (each call holding its client) at once,
    /// when the run has at most [`PAIRS_MAX`] events; starts again after each pair left out.
    fn pairs(&mut self) {
        'again: while self.attempts < ATTEMPTS_MAX && size(&self.best_report) > GOAL_EVENTS {
            let mut events: Vec<Event> =
                self.best_report.strikes.iter().map(|(_, n, _)| Event::Strike(*n)).collect();
            events
                .extend(held(&self.best_report).into_iter().map(|(call, h)| Event::Call(call, h)));
            if events.len() > PAIRS_MAX {
                return;
            }
            for (i, a) in events.iter().enumerate() {
                for b in &events[i + 1..] {
                    let mut cfg = self.best.clone();
                    for e in [a, b] {
                        match e {
                            Event::Strike(n) => {
                                cfg.reduce.skip_faults.insert(*n);
                            }
                            Event::Call(call, h) => {
                                cfg.reduce.hold_calls.insert(*call, *h);
                            }
                        }
                    }
                    if self.try_cfg(cfg) {
                        continue 'again;
                    }
                    if self.attempts >= ATTEMPTS_MAX {
                        return;
                    }
                }
            }
            return;
        }
    }
}

/// A strike or a call of a run, as [`Search::pairs`] leaves it out.
enum Event {
    Strike(u32),
    Call((usize, u64), Held),
}

/// The most events a run may have for [`Search::pairs`] to try each pair (about 800 runs).
const PAIRS_MAX: usize = 40;

/// The most consecutive calls [`Search::windows`] leaves out at once.
const WINDOW_MAX: usize = 6;

/// The TLog file's size (entries) when a run does not reduce it.
const TLOG_ENTRIES_WORLD: u64 = 64;

/// `cfg` leaves out the calls `part` names (a delta-debugging step over calls).
fn skip_calls(cfg: &mut SimConfig, part: &[(usize, u64)]) {
    cfg.reduce.skip_calls.extend(part.iter().copied());
}

/// The calls `report` made in the order made, each with how it ended.
fn held(report: &RunReport) -> Vec<((usize, u64), Held)> {
    let never = Held { until_us: u64::MAX, redirect: Redirect::Stay, answered_us: None };
    let held = |call| report.returns.get(call).copied().unwrap_or(never);
    report.calls.iter().map(|call| (*call, held(call))).collect()
}

/// `cfg` leaves out the calls `part` names, each client going on as the call's answer made it.
fn hold_calls(cfg: &mut SimConfig, part: &[((usize, u64), Held)]) {
    cfg.reduce.hold_calls.extend(part.iter().copied());
}

/// At most this many events is what issue 14 asks of a shrunk run: short of it, the shrinking
/// spends attempts left on a second search.
pub const GOAL_EVENTS: usize = 20;

/// The TLog file sizes (entries) the shrinking tries, smallest first (the world's is 64).
const TLOG_ENTRIES_TRIED: [u64; 3] = [4, 8, 16];

/// When clients make their first call unless told later (the world's default).
const FIRST_CALL_MS: u64 = 2_000;

/// The longest pause between a client's calls the shrinking tries (µs).
const PAUSE_MAX_US: u64 = 5_000_000;

/// Shrinks `seed` run with `cfg`; `None` when it does not fail.
pub fn shrink(seed: u64, cfg: &SimConfig) -> Option<Shrunk> {
    shrink_with(seed, cfg, &mut |_, _| {})
}

/// [`shrink`], telling `progress` the runs spent (at most [`ATTEMPTS_MAX`]) and the best
/// run's events after each run.
pub fn shrink_with(
    seed: u64,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(u32, usize),
) -> Option<Shrunk> {
    let base = SimConfig { keep_trace: false, keep_history: false, ..cfg.clone() };
    let first = run_seed(seed, &base);
    let Outcome::Violation(v) = &first.outcome else { return None };
    let check = v.check;
    let events_before = size(&first);
    let mut s = Search {
        seed,
        progress,
        tried: BTreeMap::from([(spec_of(&base), Some(first.clone()))]),
        check,
        attempts: 1,
        best: base,
        best_report: first,
        hold: false,
    };
    // The liveness check is not what broke: no check, so no calls after the run. It is: one
    // probe instead of every client's calls while the check waits.
    let mut cfg = s.best.clone();
    if check == "liveness" {
        cfg.reduce.probe = true;
    } else {
        cfg.reduce.no_liveness = true;
    }
    s.try_cfg(cfg);
    let start = (s.best.clone(), s.best_report.clone());
    s.passes(true);
    // Each search ends where no pass shrinks the run further, which need not be the smallest
    // run: with attempts left and more than the goal's events, a second search from the start
    // leaves the number of clients to delta debugging (which keeps any of them, not the
    // first ones); the smaller run of the two is kept.
    if s.attempts < ATTEMPTS_MAX && size(&s.best_report) > GOAL_EVENTS {
        let first = std::mem::replace(&mut s.best, start.0.clone());
        let first_report = std::mem::replace(&mut s.best_report, start.1.clone());
        s.passes(false);
        if size(&first_report) < size(&s.best_report) {
            (s.best, s.best_report) = (first, first_report);
        }
    }
    // Still above the goal with runs left: from the best run found, calls in the order they
    // were made, latest first, so that the calls after whatever broke go first and a chunk
    // is a stretch of time rather than one client's calls.
    if s.attempts < ATTEMPTS_MAX && size(&s.best_report) > GOAL_EVENTS {
        s.ddmin(|r| r.calls.iter().rev().copied().collect(), skip_calls);
        s.passes(false);
    }
    // Still above the goal: calls left out once more, latest first, but each holding its
    // client as long as it took in the best run, so that the client's later calls keep their
    // times and what they drew (`hold-calls`): a call left out then changes what the cluster
    // saw of it, not when everything after it happens.
    if s.attempts < ATTEMPTS_MAX && size(&s.best_report) > GOAL_EVENTS {
        s.ddmin(|r| held(r).into_iter().rev().collect(), hold_calls);
        s.passes(false);
    }
    s.polish();
    // Still above the goal: a last search from the start, whose passes hold calls instead of
    // skipping them.
    if s.attempts < ATTEMPTS_MAX && size(&s.best_report) > GOAL_EVENTS {
        let first = std::mem::replace(&mut s.best, start.0);
        let first_report = std::mem::replace(&mut s.best_report, start.1);
        s.hold = true;
        s.passes(true);
        s.polish();
        if size(&first_report) < size(&s.best_report) {
            (s.best, s.best_report) = (first, first_report);
        }
    }
    // The shrunk run once more, with its history for the event list.
    let cfg = SimConfig { keep_history: true, ..s.best.clone() };
    let report = run_seed(seed, &cfg);
    let detail = match (&report.outcome, &s.best_report.outcome) {
        (Outcome::Violation(v), _) | (Outcome::Pass, Outcome::Violation(v)) => v.detail.clone(),
        (Outcome::Pass, Outcome::Pass) => String::new(),
    };
    Some(Shrunk {
        seed,
        cfg: SimConfig { keep_history: false, ..cfg },
        check,
        detail,
        events: events(&report),
        report,
        events_before,
        attempts: s.attempts + 1,
    })
}

/// The shrunk run as one self-contained HTML page: a lane per client process (each call a bar
/// from call to return, coloured by outcome, its label in the tooltip), the nemesis' strikes as
/// red lines across the lanes, then the event list and the broken rule.
pub fn html_timeline(s: &Shrunk) -> String {
    use arakoon_checker::explain::html::esc;
    use std::fmt::Write as _;
    let r = &s.report;
    let end_ms = r.simulated_ms.max(1) as f64;
    let (left, width, lane) = (80.0, 1200.0, 18.0);
    let x = |us: u64| left + (us as f64 / 1000.0) / end_ms * (width - left - 10.0);
    let mut processes: Vec<u64> = r.ops.iter().map(|o| o.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let height = 30.0 + processes.len().max(1) as f64 * lane + 20.0;
    let mut svg = String::new();
    let _ = write!(svg, "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='monospace' font-size='11'>");
    for (k, p) in processes.iter().enumerate() {
        let y = 30.0 + k as f64 * lane;
        let _ = write!(svg, "<text x='4' y='{}'>p{p}</text>", y + 12.0);
        for o in r.ops.iter().filter(|o| o.process == *p) {
            let (x0, x1) = (x(o.call_us), x(o.ret_us.unwrap_or(r.simulated_ms * 1000)));
            let color = match o.outcome {
                "ok" => "#6b6",
                "fail" => "#c66",
                _ => "#fc6",
            };
            let _ = write!(
                svg,
                "<rect x='{x0:.1}' y='{y}' width='{:.1}' height='{}' fill='{color}'><title>{}</title></rect>",
                (x1 - x0).max(2.0),
                lane - 4.0,
                esc(&o.label)
            );
        }
    }
    for (ms, n, what) in &r.strikes {
        let xs = x(ms * 1000);
        let _ = write!(
            svg,
            "<line x1='{xs:.1}' y1='20' x2='{xs:.1}' y2='{height}' stroke='red'><title>strike #{n}: {}</title></line>",
            esc(what)
        );
    }
    let _ = write!(
        svg,
        "<text x='{left}' y='14'>0 ms</text><text x='{}' y='14'>{end_ms} ms</text></svg>",
        width - 90.0
    );
    format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>seed {} shrunk</title></head><body>\
         <h1>seed {}: {} broken, {} events</h1><p>replay: <code>arakoon-admin sim --seed {} --shrunk '{}'</code></p>{svg}\
         <h2>events</h2><pre>{}</pre><h2>rule broken</h2><pre>{}: {}</pre></body></html>",
        s.seed,
        s.seed,
        esc(s.check),
        s.events.len(),
        s.seed,
        esc(&s.spec()),
        esc(&s.events.join("\n")),
        esc(s.check),
        esc(&s.detail)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_back_what_it_wrote() {
        let mut cfg = SimConfig { duration_ms: 4_000, clients: 2, ..SimConfig::default() };
        cfg.reduce.ops_max = Some(7);
        cfg.reduce.tlog_entries = Some(8);
        cfg.reduce.no_liveness = true;
        cfg.reduce.probe = true;
        cfg.reduce.calls_from_ms = Some(9_000);
        cfg.think_us = (40_000, 400_000);
        cfg.reduce.skip_faults.extend([0, 1, 2, 5]);
        cfg.reduce.skip_calls.extend([(0, 1), (0, 2), (0, 3), (1, 0), (1, 4)]);
        let held = |until_us, redirect, answered_us| Held { until_us, redirect, answered_us };
        cfg.reduce.hold_calls.extend([
            ((0, 5), held(2_500_000, Redirect::Stay, Some(2_499_000))),
            ((1, 6), held(2_600_000, Redirect::To(2), None)),
            ((1, 7), held(4_600_000, Redirect::Drawn, Some(2_700_000))),
        ]);
        let spec = spec_of(&cfg);
        assert_eq!(
            spec,
            "duration=4000;clients=2;pause-us=40000-400000;from=9000;ops=7;tlog-entries=8;\
             skip=0-2,5;skip-calls=0.1-3,1.0,1.4;hold-calls=0.5@2500000~2499000,\
             1.6@2600000>2,1.7@4600000>?~2700000;no-liveness;probe"
        );
        assert_eq!(apply_spec(&SimConfig::default(), &spec), Ok(cfg.clone()));
        // A spec written before the TLog's size was a reduction reads as it did.
        let old = "duration=4000;clients=2;pause-us=40000-400000;from=9000;ops=7;skip=0-2,5;\
                   skip-calls=0.1-3,1.0,1.4;no-liveness";
        let mut without = cfg;
        without.reduce.tlog_entries = None;
        without.reduce.probe = false;
        without.reduce.hold_calls.clear();
        assert_eq!(apply_spec(&SimConfig::default(), old), Ok(without));
        let bad = |spec: &str| apply_spec(&SimConfig::default(), spec).unwrap_err();
        assert!(matches!(bad("skip=3-1"), SpecError::NotStrikes { value, .. } if value == "3-1"));
        assert!(matches!(bad("calls=1"), SpecError::UnknownPart { part, .. } if part == "calls=1"));
        assert!(
            matches!(bad("clients=x"), SpecError::NotANumber { name, .. } if name == "clients")
        );
        assert!(matches!(bad("pause-us=9-1"), SpecError::NotPause { value, .. } if value == "9-1"));
        assert!(
            matches!(bad("hold-calls=1.2@3>x"), SpecError::NotHeld { value, .. } if value == "1.2@3>x")
        );
    }
}
