//! Loopback ports for clusters planned on this machine: the sandbox, `bench --compare` and the
//! tests pick a node's ports in one process and the node (or the sandbox's supervisor) binds
//! them later, in another.
//!
//! A port from `bind(0)`, released at once, comes from the kernel's ephemeral range, where the
//! next `bind(0)` of any process and the source port of any outgoing connection may take it
//! before its owner binds it (seen: `sandbox up` beside busy tests, "Address already in use"
//! from the supervisor). Ports are therefore picked outside that range (read from
//! `/proc/sys/net/ipv4/ip_local_port_range`; 32768..=60999 when it cannot be read), each one
//! free when picked, none handed out twice by one process, and processes start at different
//! places.

use std::io;
use std::net::TcpListener;
use std::sync::Mutex;

/// The ports tried first: below Linux's default ephemeral range and above most services'.
const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

/// The kernel's ephemeral port range, inclusive.
pub fn ephemeral_range() -> (u16, u16) {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let parsed = read.and_then(|text| {
        let mut it = text.split_whitespace().map(|w| w.parse::<u16>().ok());
        Some((it.next()??, it.next()??))
    });
    match parsed {
        Some((lo, hi)) if lo <= hi => (lo, hi),
        _ => (32_768, 60_999),
    }
}

/// The ports this machine lets us pick from: [LOW, HIGH) without the ephemeral range, or the
/// ports above that range when it covers them all.
fn candidates() -> Vec<u16> {
    let (lo, hi) = ephemeral_range();
    let below: Vec<u16> = (LOW..HIGH).filter(|p| *p < lo || *p > hi).collect();
    if below.len() >= 1_000 {
        return below;
    }
    (hi.saturating_add(1)..=u16::MAX).filter(|p| *p >= 1_024).collect()
}

/// `n` distinct loopback ports, each free when picked and outside the ephemeral range.
pub fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    static NEXT: Mutex<Option<usize>> = Mutex::new(None);
    let pool = candidates();
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let mut at = next.unwrap_or((std::process::id() as usize % 1_000) * 12) % pool.len().max(1);
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..pool.len() {
        if ports.len() == n {
            break;
        }
        let port = pool[at];
        at = (at + 1) % pool.len();
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
            ports.push(port);
        }
    }
    *next = Some(at);
    if ports.len() < n {
        let (lo, hi) = ephemeral_range();
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "only {} of the {n} loopback ports needed are free outside the ephemeral range \
                 {lo}..={hi} (tried {} ports from {LOW}); stop what holds them",
                ports.len(),
                pool.len()
            ),
        ));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_outside_the_ephemeral_range() {
        let (lo, hi) = ephemeral_range();
        let a = free_loopback_ports(16).unwrap();
        let b = free_loopback_ports(16).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        // (Each was free when picked; whether it still is depends on every other process.)
        for p in &all {
            assert!(*p < lo || *p > hi, "port {p} inside the ephemeral range {lo}..={hi}");
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 32, "no port handed out twice");
    }
}
