//! The process figures behind `statistics`: a monotonic clock for timing reads and the memory
//! figures sent as `mem_*` (the shell reads no OS figure itself; the server hands these in).
//!
//! Arakoon sends OCaml's GC figures; a Rust process has no collector, so `mem_allocated` holds
//! the resident size now (from `/proc/self/statm`) and the collection counts stay 0, while
//! `mem_maxrss` is getrusage's peak resident size, in KiB on Linux, as Arakoon's is.

use crate::shell::statistics::{HostProbes, MemFigures};
use std::sync::OnceLock;
use std::time::Instant;

/// The probes the server hands the shell.
pub fn probes() -> HostProbes {
    HostProbes { seconds, memory }
}

/// Seconds since the first call, on the monotonic clock (only differences are used).
fn seconds() -> f64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The process's memory figures now; a figure that cannot be read is sent as 0.
fn memory() -> MemFigures {
    MemFigures {
        allocated_kib: resident_kib().unwrap_or(0.0),
        maxrss_kib: maxrss_kib().unwrap_or(0),
        ..MemFigures::default()
    }
}

/// The resident set now, in KiB: `/proc/self/statm`'s second field is in pages.
fn resident_kib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|p| *p > 0)?;
    Some(pages.saturating_mul(page) as f64 / 1024.0)
}

/// The peak resident set in KiB (getrusage's `ru_maxrss`, which Linux gives in KiB).
fn maxrss_kib() -> Option<i32> {
    // SAFETY: getrusage fills the zeroed struct it is handed and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return None;
    }
    Some(i32::try_from(usage.ru_maxrss).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size_and_a_peak_at_least_as_big() {
        let mem = memory();
        assert!(mem.allocated_kib > 0.0, "{mem:?}");
        assert!(mem.maxrss_kib > 0, "{mem:?}");
        // The peak cannot be below the resident size now, up to the kernel's bookkeeping: it
        // counts resident pages per thread in batches (up to 64 pages each) and the two figures
        // are read at different instants while the other tests' threads allocate.
        let threads = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Threads:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .unwrap_or(1.0);
        // SAFETY: sysconf only reads a system constant.
        let page_kib = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / 1024.0;
        let slack = (threads + 1.0) * 64.0 * page_kib;
        assert!(f64::from(mem.maxrss_kib) + slack >= mem.allocated_kib, "{mem:?} slack {slack}");
        let t0 = seconds();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(seconds() - t0 >= 0.002);
    }
}
