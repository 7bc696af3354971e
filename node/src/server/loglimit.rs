//! A bound on log lines about one remote address: at most one a window (a minute) per address,
//! for at most [`ADDRESSES_MAX`] addresses at a time. A stranger knocking on the peer port, or a
//! node with the wrong secret redialing every second, then costs one line a minute, not a flood.
//!
//! Time is tokio's, so that under the tier-B simulator it is virtual like everything else.

use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Addresses remembered at once; past this, further addresses are not logged until a window
/// passes (the bound keeps both the memory and the log finite under a flood of sources).
pub const ADDRESSES_MAX: usize = 256;

/// One line a window per address.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    last: Vec<(IpAddr, Instant)>,
}

impl LogLimiter {
    pub fn per_minute() -> LogLimiter {
        LogLimiter::new(Duration::from_secs(60))
    }

    pub fn new(window: Duration) -> LogLimiter {
        LogLimiter { window, last: Vec::new() }
    }

    /// Whether a line about `addr` may be logged now; if so, the window starts again.
    pub fn allow(&mut self, addr: IpAddr) -> bool {
        self.allow_at(addr, Instant::now())
    }

    /// [`LogLimiter::allow`] at a given time.
    pub fn allow_at(&mut self, addr: IpAddr, now: Instant) -> bool {
        let window = self.window;
        self.last.retain(|(_, at)| now.duration_since(*at) < window);
        if self.last.iter().any(|(a, _)| *a == addr) {
            return false;
        }
        if self.last.len() >= ADDRESSES_MAX {
            return false;
        }
        self.last.push((addr, now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_and_window() {
        let mut l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.allow_at(a, at(0)));
        assert!(!l.allow_at(a, at(0)));
        assert!(l.allow_at(b, at(1)));
        assert!(!l.allow_at(a, at(59)));
        assert!(l.allow_at(a, at(61)));
        for k in 0..ADDRESSES_MAX as u32 {
            l.allow_at(IpAddr::from((0x0a00_0000 + k).to_be_bytes()), at(62));
        }
        assert!(!l.allow_at("192.168.0.1".parse().unwrap(), at(62)), "the bound holds");
        assert!(l.allow_at("192.168.0.1".parse().unwrap(), at(200)), "old entries expire");
    }
}
