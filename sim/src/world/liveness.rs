//! Liveness: after the last fault heals, the cluster must come back. The nemesis stops at the
//! run's end; everything heals and restarts, except, drawn per seed, up to as many nodes as the
//! quorum can spare (`nodes - quorum`), which stay down: a cluster must serve without a
//! minority. From the heal on, a master must be elected and a client's write acknowledged
//! within [`LIVENESS_LEASES`] leases, or the run fails the check "liveness" with the reason;
//! the nodes held down are then started again so that the end checks see every node.
//!
//! The bound, in leases: one for the old master's lease to run out, one for an election and
//! its retries, one for catching up the voters that lag and committing; two more for a
//! client's timeout (2 s) and its retry on another node. A cluster that needs longer than that
//! after a clean heal is not available in any sense an operator would accept.
//!
//! The clients' longest pause between calls is added (100 ms by default): a client answered
//! just before the heal calls again only after it. While the check waits, clients pause no
//! longer than the default, so that a workload slowed down by shrinking (pauses of seconds)
//! does not fail the cluster.
//!
//! Two things lengthen the bound, each by what the nodes themselves are configured to allow
//! ([`World::liveness_bound_us`]):
//!
//! - **A slow link** (drawn per seed, [`super::faults::SlowLink`]; it stays slow after the
//!   heal, as a WAN link does). Let `V` be the largest value a Promise or an Accept carried in
//!   the run, `A` what the core allows such a value on the link (`Config::ship_allowance_ms`:
//!   `HOLD_SHIP_FACTOR` times `V` at the *configured* speed) and `S` the time `V` takes at the
//!   link's *true* speed. Four of the core's waits may each stretch by `A` on the way to the
//!   first write: the old master keeps its lease by Hold while a slot ships (lease rule 5); a
//!   slave that promised a candidate waits `A` before running against it; a candidate waits
//!   `A` past its half lease for promises; and once more for one election that has to be
//!   retried. Three messages on that way carry a value and take `S` each: a Promise, the new
//!   master's Accept of the last slot, and the Accept of the client's write. The bound grows
//!   by `4A + 3S`. A link slower than configured (up to four times in the world) is covered:
//!   `S` counts at its true speed.
//! - **Clocks that run slow.** Every wait above is counted on a node's clock; a clock that runs
//!   slow by `ρ` (the run's largest drift, within the clock bound or beyond it, and the bound's
//!   rate where the aimed slow master sets it) stretches a wait
//!   by `1 / (1 - ρ)` in true time, so the bound is divided by `1 - ρ`. A clock that steps
//!   *backwards* lengthens every wait of its node by the step, as often as it steps, and no
//!   bound in true time holds: the world steps clocks backwards only beyond the clock bound,
//!   and there a liveness failure is reported as expected (like the lease), not counted.
//!
//! On a fast link with clocks that keep time the bound is the five leases. Seeds 797 and 1162
//! of the baseline campaign (`sim --seeds 0..10000 --nodes draw`: links of 208 and 272 B/s,
//! slots of a few hundred bytes, so `A` of several seconds) came back within the longer bound
//! and failed the five leases alone (their draws have moved since; tests/world.rs keeps a few
//! slow-link seeds of which one at least writes past five leases).

use super::run::{stream_seed, World, DEFAULT_THINK_US, LIVENESS_STREAM};
use arakoon_node::consensus::{ship_allowance_ms, NodeIdx};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How long after the heal a write must be acknowledged, in leases (see the module doc).
pub const LIVENESS_LEASES: u64 = 5;

/// How many of the core's waits may stretch by a value's ship allowance on the way to the
/// first write after the heal (see the module doc).
pub const LIVENESS_SHIP_WAITS: u64 = 4;

/// How many messages carrying a value lie on that way (see the module doc).
pub const LIVENESS_SHIPS: u64 = 3;

/// The liveness check's state during the run's settle period.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    /// When the last fault healed (µs); `None` before, and in drills (their steps say what
    /// stays down).
    pub(super) healed_at_us: Option<u64>,
    /// Nodes kept down through the check.
    pub(super) held_down: Vec<NodeIdx>,
    /// When the first write after the heal was acknowledged (µs).
    pub(super) write_at_us: Option<u64>,
    /// The largest value a Promise or an Accept carried in the run, bytes (`V` of the module
    /// doc).
    pub(super) shipped_max_bytes: usize,
}

impl Liveness {
    /// Whether node `k` is kept down by the check (a scheduled restart waits for the release).
    pub(super) fn holds(&self, k: NodeIdx) -> bool {
        self.held_down.contains(&k)
    }
}

impl World {
    /// Draws the nodes held down for the check, among the voters, so that at least a quorum
    /// of voters stays: a node rebuilt after a lost disk (a learner) counts as one that cannot
    /// vote. Call once the heal restarted the nodes, so that their roles are known.
    pub(super) fn start_liveness(&mut self, quorum: usize) {
        let n = self.cfg.nodes;
        let spare = n.saturating_sub(quorum);
        let can_vote: Vec<NodeIdx> = (0..n).filter(|k| self.healthy(*k)).collect();
        let non_voters = n - can_vote.len();
        // From a stream of its own, so that a run with fewer calls (shrinking) holds the same.
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(self.report.seed, LIVENESS_STREAM));
        let down = rng.gen_range(0..=spare).saturating_sub(non_voters);
        let mut pool = can_vote;
        let mut held = Vec::new();
        for _ in 0..down.min(pool.len()) {
            held.push(pool.remove(rng.gen_range(0..pool.len())));
        }
        held.sort_unstable();
        for &k in &held {
            self.crash_node(k);
        }
        let now = self.now_us;
        self.trace(|| format!("liveness: heal at {now}µs, held down {held:?}"), 60);
        // The probe starts at the heal, whatever pause client 0 drew during the run (a shrunk
        // run's clients may pause minutes).
        if self.cfg.reduce.probe && !self.clients.is_empty() && self.client_idle(0) {
            self.schedule_call(0, now);
        }
        let shipped_max_bytes = self.liveness.shipped_max_bytes;
        self.liveness = Liveness {
            healed_at_us: Some(now),
            held_down: held,
            write_at_us: None,
            shipped_max_bytes,
        };
    }

    /// A client's write was acknowledged: the first after the heal passes the check and
    /// releases the nodes held down.
    pub(super) fn note_write_acknowledged(&mut self) {
        if self.liveness.healed_at_us.is_none() || self.liveness.write_at_us.is_some() {
            return;
        }
        self.liveness.write_at_us = Some(self.now_us);
        let healed = self.liveness.healed_at_us.unwrap_or(self.now_us);
        self.report.write_after_heal_ms = Some((self.now_us - healed) / 1000);
        self.release_held_down();
    }

    /// A client's pause before its next call (µs): the run's pace, but no slower than the
    /// world's default while the liveness check waits for its write, so that the check
    /// measures the cluster and not a workload slowed down by shrinking (whose clients may
    /// pause seconds). With the default pace the draw is the same either way.
    pub(super) fn think_us(&mut self, c: usize) -> u64 {
        if let Some(pause_us) = self.probe_pause_us() {
            return pause_us;
        }
        let (mut lo, mut hi) = self.cfg.think_us;
        if self.liveness.healed_at_us.is_some() && self.liveness.write_at_us.is_none() {
            let (default_lo, default_hi) = DEFAULT_THINK_US;
            (lo, hi) = (lo.min(default_lo), hi.min(default_hi));
        }
        self.clients[c].rng.gen_range(lo..=hi)
    }

    /// The probe's pause between its calls (µs), if the run probes (`Reduction::probe`): one
    /// lease.
    fn probe_period_us(&self) -> Option<u64> {
        self.cfg.reduce.probe.then_some(self.cfg.lease_ms * 1000)
    }

    /// The probe's pause once the run has ended (before it, clients pause as the run says).
    fn probe_pause_us(&self) -> Option<u64> {
        let ended = self.now_us >= self.cfg.duration_ms * 1000;
        self.probe_period_us().filter(|_| ended)
    }

    /// A Promise or an Accept carried a value of `bytes`.
    pub(super) fn note_shipped(&mut self, bytes: usize) {
        self.liveness.shipped_max_bytes = self.liveness.shipped_max_bytes.max(bytes);
    }

    /// How long after the heal a write must be acknowledged, µs: five leases, plus the slow
    /// link's and the slow clocks' share (the module doc argues each term).
    pub(super) fn liveness_bound_us(&self) -> u64 {
        self.liveness_bound().total_us()
    }

    /// The terms of the liveness bound, as the run drew them.
    fn liveness_bound(&self) -> Bound {
        let slow_link = self.mix.slow_link.map(|link| {
            let bytes = self.liveness.shipped_max_bytes;
            let allowance_us =
                ship_allowance_ms(bytes, link.configured_bytes_per_s).saturating_mul(1000);
            (allowance_us, link.ship_us(bytes), bytes)
        });
        // The aimed slow master sets clocks to the ends of the bound's rate, whatever the mix's
        // drift; they keep that rate through the heal.
        let aimed_ppm = if self.mix.aimed.slow_master { self.clock_bound.drift_ppm } else { 0 };
        let drift_ppm = (self.mix.clock_drift_ppm.max(0) as u64).max(aimed_ppm).min(900_000);
        Bound {
            leases_us: LIVENESS_LEASES * self.cfg.lease_ms * 1000,
            // The probe calls a lease apart: its pause replaces the clients'.
            pause_us: self.probe_period_us().unwrap_or(self.cfg.think_us.1),
            slow_link,
            drift_ppm,
        }
    }

    /// Whether the liveness check's verdict depends on clocks that broke their bound: beyond
    /// the bound the world steps clocks backwards (see the module doc).
    pub(super) fn liveness_beyond_bound(&self) -> bool {
        self.mix.beyond_bound && self.mix.clock_offset_ms > 0
    }

    /// The first instant past which the run's quiet period may end: `quiet_us` after the
    /// liveness check's bound, or after its first write when that came later than the five
    /// leases (a slow link, slow clocks); `None` when the check does not run.
    pub(super) fn liveness_settle_until_us(&self, quiet_us: u64) -> Option<u64> {
        let healed = self.liveness.healed_at_us?;
        let base = healed + LIVENESS_LEASES * self.cfg.lease_ms * 1000;
        let until = match self.liveness.write_at_us {
            Some(at) => base.max(at),
            None => base.max(healed + self.liveness_bound_us()),
        };
        Some(until + quiet_us)
    }

    /// Past the bound with no write acknowledged: fails the run with what the cluster looked
    /// like, then releases the nodes held down.
    pub(super) fn check_liveness(&mut self) {
        let Some(healed) = self.liveness.healed_at_us else { return };
        if self.liveness.write_at_us.is_some() {
            return;
        }
        let bound = self.liveness_bound();
        let bound_us = bound.total_us();
        if self.now_us < healed + bound_us {
            return;
        }
        let terms = bound.describe();
        let roles: Vec<String> =
            (0..self.cfg.nodes).map(|k| format!("n{k} {}", self.role_name(k))).collect();
        let detail = format!(
            "no write acknowledged within {} ms ({terms}) after the last fault healed at {} ms; held down (a minority the quorum spares): {:?}; roles at the bound: {}",
            bound_us / 1000,
            healed / 1000,
            self.liveness.held_down,
            roles.join(", ")
        );
        self.fail("liveness", detail);
        self.liveness.write_at_us = Some(self.now_us);
        self.release_held_down();
    }

    fn release_held_down(&mut self) {
        for k in std::mem::take(&mut self.liveness.held_down) {
            self.trace(|| format!("liveness: release n{k}"), 61);
            self.restart(k);
        }
    }
}

/// The liveness bound's terms (the module doc argues each one).
struct Bound {
    leases_us: u64,
    /// The clients' longest pause between calls.
    pause_us: u64,
    /// On a slow link: `A` and `S` of the module doc (µs) and the value's bytes.
    slow_link: Option<(u64, u64, usize)>,
    /// The largest rate error of the run's clocks (capped well below a clock that stops).
    drift_ppm: u64,
}

impl Bound {
    fn total_us(&self) -> u64 {
        let mut us = self.leases_us + self.pause_us;
        if let Some((allowance_us, ship_us, _)) = self.slow_link {
            us += LIVENESS_SHIP_WAITS * allowance_us + LIVENESS_SHIPS * ship_us;
        }
        let stretched = u128::from(us) * 1_000_000 / u128::from(1_000_000 - self.drift_ppm);
        u64::try_from(stretched).unwrap_or(u64::MAX)
    }

    fn describe(&self) -> String {
        let mut terms =
            format!("{LIVENESS_LEASES} leases + a client's pause of {} ms", self.pause_us / 1000);
        if let Some((allowance_us, ship_us, bytes)) = self.slow_link {
            terms += &format!(
                " + {LIVENESS_SHIP_WAITS} x {} ms allowed and {LIVENESS_SHIPS} x {} ms taken for a {bytes}-byte value on the slow link",
                allowance_us / 1000,
                ship_us / 1000
            );
        }
        if self.drift_ppm > 0 {
            terms += &format!(", over 1 - {} ppm of clock drift", self.drift_ppm);
        }
        terms
    }
}
