//! Per-node clocks of the simulated world.
//!
//! The world keeps one true time in microseconds; each node reads its own clock, which may be
//! offset and may run fast or slow (drift in parts per million). The consensus core only ever
//! sees its node's clock, so offsets and drift reach it exactly as they would in production.

/// One node's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimClock {
    /// Added to the true time.
    pub offset_us: i64,
    /// Rate error: +100 means the clock gains 100 µs per true second.
    pub drift_ppm: i64,
    /// The true time at which the drift started to count (set when drift changes, so changing
    /// the rate never makes the clock jump).
    pub drift_since_us: u64,
    /// What the drift had accumulated before `drift_since_us`.
    pub drift_carried_us: i64,
    /// When the clock last stepped forward (true µs): within the clock bound, steps are at
    /// least a lease apart.
    pub last_step_us: Option<u64>,
}

impl SimClock {
    /// Whether the clock may step forward at true time `now_us`: within the clock bound, steps
    /// are at least a lease apart.
    pub fn may_step(&self, now_us: u64, lease_us: u64) -> bool {
        self.last_step_us.is_none_or(|t| now_us >= t + lease_us)
    }

    /// The node's reading of true time `now_us`, in milliseconds, never below zero.
    pub fn now_ms(&self, now_us: u64) -> u64 {
        let drift = self.drift_carried_us + self.drift_of(now_us);
        let local = now_us as i64 + self.offset_us + drift;
        (local.max(0) as u64) / 1000
    }

    fn drift_of(&self, now_us: u64) -> i64 {
        if self.drift_ppm == 0 {
            // Most clocks keep time: no 128-bit division at every reading.
            return 0;
        }
        let elapsed = now_us.saturating_sub(self.drift_since_us);
        // In 64 bits when the product fits (any run shorter than decades): the same quotient,
        // without a 128-bit division at every reading.
        match i64::try_from(elapsed).ok().and_then(|e| e.checked_mul(self.drift_ppm)) {
            Some(product) => product / 1_000_000,
            None => (elapsed as i128 * self.drift_ppm as i128 / 1_000_000) as i64,
        }
    }

    /// Changes the rate from `now_us` on, keeping the reading continuous.
    pub fn set_drift(&mut self, now_us: u64, drift_ppm: i64) {
        self.drift_carried_us += self.drift_of(now_us);
        self.drift_since_us = now_us;
        self.drift_ppm = drift_ppm;
    }

    /// The first true time, from `now_us` on, at which this clock reads `local_ms` or more, if
    /// its offset and rate stay as they are: how the world places a node's deadline (a lease's
    /// end) in its own time.
    pub fn true_us_when(&self, now_us: u64, local_ms: u64) -> u64 {
        if self.now_ms(now_us) >= local_ms {
            return now_us;
        }
        // local(t) = t + offset + carried + (t - since) * ppm / 1e6, solved for local = target.
        let target = local_ms as i128 * 1000;
        let ppm = self.drift_ppm.max(-999_999) as i128;
        let since = self.drift_since_us as i128;
        let numerator = (target - self.offset_us as i128 - self.drift_carried_us as i128)
            * 1_000_000
            + since * ppm;
        let estimate = (numerator / (1_000_000 + ppm)).max(now_us as i128);
        let mut t = u64::try_from(estimate).unwrap_or(u64::MAX);
        // The division rounds: settle on the exact first microsecond (a few steps at most).
        for _ in 0..8 {
            if t > now_us && self.now_ms(t - 1) >= local_ms {
                t -= 1;
            } else if self.now_ms(t) < local_ms {
                t = t.saturating_add(1);
            } else {
                break;
            }
        }
        t
    }

    /// How far this clock's reading may be from true time at `now_us`, in µs.
    pub fn error_us(&self, now_us: u64) -> i64 {
        self.offset_us + self.drift_carried_us + self.drift_of(now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_drift_shift_the_reading() {
        let mut c = SimClock { offset_us: 5_000, ..SimClock::default() };
        assert_eq!(c.now_ms(1_000_000), 1_005);
        c.set_drift(1_000_000, 1_000); // gains 1 ms per second from t = 1 s
        assert_eq!(c.now_ms(1_000_000), 1_005, "changing the rate does not jump");
        assert_eq!(c.now_ms(3_000_000), 3_007);
        c.set_drift(3_000_000, 0);
        assert_eq!(c.now_ms(10_000_000), 10_007);
        assert_eq!(c.error_us(10_000_000), 7_000);
    }

    #[test]
    fn the_true_time_of_a_reading_is_found_whatever_the_offset_and_drift() {
        for (offset_us, ppm) in [(0, 0), (5_000, 0), (-7_300, 27_000), (1_000, -27_000)] {
            let mut c = SimClock { offset_us, ..SimClock::default() };
            c.set_drift(2_000_000, ppm);
            for local_ms in [2_500u64, 3_001, 10_000] {
                let t = c.true_us_when(2_000_000, local_ms);
                assert!(c.now_ms(t) >= local_ms, "{offset_us} {ppm}: {t}");
                assert!(c.now_ms(t - 1) < local_ms, "{offset_us} {ppm}: {t} is not the first");
            }
        }
        let c = SimClock::default();
        assert_eq!(c.true_us_when(9_000_000, 4_000), 9_000_000, "read already");
    }

    #[test]
    fn a_clock_never_reads_below_zero() {
        let c = SimClock { offset_us: -10_000, ..SimClock::default() };
        assert_eq!(c.now_ms(0), 0);
    }
}
