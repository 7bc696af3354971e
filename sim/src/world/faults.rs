//! Which faults a run injects, and how often. Swarm mode draws the mix itself from the seed, so
//! that across seeds some runs see only partitions, some only crashes, some everything.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct FaultMix {
    pub loss: f64,
    pub duplicate: f64,
    /// Network delay range, µs (a wide range reorders).
    pub delay_min_us: u64,
    pub delay_max_us: u64,
    pub partitions: bool,
    pub crashes: bool,
    /// A crash keeps a torn piece of the un-synced tail.
    pub torn_writes: bool,
    pub wipes: bool,
    pub pauses: bool,
    /// Bit flips and truncations of TLog files at rest (detected at restart, then repaired).
    pub disk_corruption: bool,
    /// Some fsyncs stall for milliseconds, as real disks' do.
    pub slow_disk: bool,
    /// Clock offsets up to this many ms either way.
    pub clock_offset_ms: i64,
    /// Clock drift up to this many ppm either way.
    pub clock_drift_ppm: i64,
    /// Mean time between faults, ms.
    pub fault_interval_ms: u64,
}

impl FaultMix {
    /// A perfect world.
    pub fn none() -> FaultMix {
        FaultMix {
            loss: 0.0,
            duplicate: 0.0,
            delay_min_us: 100,
            delay_max_us: 400,
            partitions: false,
            crashes: false,
            torn_writes: false,
            wipes: false,
            pauses: false,
            disk_corruption: false,
            slow_disk: false,
            clock_offset_ms: 0,
            clock_drift_ppm: 0,
            fault_interval_ms: 1000,
        }
    }

    /// Every family on, at moderate rates; drift within the bound the lease margin covers.
    pub fn all() -> FaultMix {
        FaultMix {
            loss: 0.02,
            duplicate: 0.02,
            delay_min_us: 100,
            delay_max_us: 5_000,
            partitions: true,
            crashes: true,
            torn_writes: true,
            wipes: true,
            pauses: true,
            disk_corruption: true,
            slow_disk: true,
            clock_offset_ms: 500,
            clock_drift_ppm: 20_000,
            fault_interval_ms: 700,
        }
    }

    /// Swarm mode: each family on or off, and its rate, drawn from the run's RNG.
    pub fn swarm(rng: &mut ChaCha8Rng) -> FaultMix {
        let mut m = FaultMix::none();
        if rng.gen_bool(0.5) {
            m.loss = rng.gen_range(0.0..0.1);
        }
        if rng.gen_bool(0.3) {
            m.duplicate = rng.gen_range(0.0..0.05);
        }
        if rng.gen_bool(0.5) {
            m.delay_max_us = rng.gen_range(400..20_000);
        }
        m.partitions = rng.gen_bool(0.6);
        m.crashes = rng.gen_bool(0.6);
        m.torn_writes = m.crashes && rng.gen_bool(0.5);
        m.wipes = rng.gen_bool(0.2);
        m.pauses = rng.gen_bool(0.3);
        m.disk_corruption = rng.gen_bool(0.2);
        if rng.gen_bool(0.3) {
            m.clock_offset_ms = rng.gen_range(0..2_000);
        }
        if rng.gen_bool(0.3) {
            m.clock_drift_ppm = rng.gen_range(0..30_000);
        }
        m.fault_interval_ms = rng.gen_range(200..2_000);
        m.slow_disk = rng.gen_bool(0.3);
        m
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        let mut on = Vec::new();
        if self.loss > 0.0 {
            on.push(format!("loss {:.1}%", self.loss * 100.0));
        }
        if self.duplicate > 0.0 {
            on.push(format!("dup {:.1}%", self.duplicate * 100.0));
        }
        on.push(format!("delay {}-{}µs", self.delay_min_us, self.delay_max_us));
        for (flag, name) in [
            (self.partitions, "partitions"),
            (self.crashes, "crashes"),
            (self.torn_writes, "torn writes"),
            (self.wipes, "wipes"),
            (self.pauses, "pauses"),
            (self.disk_corruption, "disk corruption"),
            (self.slow_disk, "slow disk"),
        ] {
            if flag {
                on.push(name.to_string());
            }
        }
        if self.clock_offset_ms > 0 {
            on.push(format!("clock offset ±{}ms", self.clock_offset_ms));
        }
        if self.clock_drift_ppm > 0 {
            on.push(format!("drift ±{}ppm", self.clock_drift_ppm));
        }
        on.join(", ")
    }
}
