//! What the soak measures of each node process: its resident memory (`/proc/PID/statm`, the
//! second field, in pages) and its open descriptors (the entries of `/proc/PID/fd`), sampled
//! at an interval while the run goes on. A node is known by name; its process changes with
//! every restart, and the series follows the node.

use serde::Serialize;
use std::io;

/// The most samples kept per node (at one a second, twelve days); later ones still count
/// toward the maximum but not the median.
pub const SAMPLES_MAX: usize = 1 << 20;

/// Resident memory of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let pages: u64 =
        text.split_whitespace().nth(1).and_then(|f| f.parse().ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("statm: {text:?}"))
        })?;
    Ok(pages * page_bytes())
}

fn page_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// Open descriptors of process `pid`.
pub fn descriptors(pid: u32) -> io::Result<u32> {
    let n = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// One sample of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub pid: u32,
    pub rss_bytes: u64,
    pub descriptors: u32,
}

/// Samples process `pid`; `None` if it is gone (killed between the state and the read).
pub fn sample(pid: u32) -> Option<Sample> {
    let rss_bytes = rss_bytes(pid).ok()?;
    let descriptors = descriptors(pid).ok()?;
    Some(Sample { pid, rss_bytes, descriptors })
}

/// One node's samples over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    rss: Vec<u64>,
    rss_max: u64,
    descriptors_max: u32,
    samples: u64,
    /// Samples missed because the node had no process (killed, not yet restarted).
    pub down: u64,
    pids: Vec<u32>,
}

/// A node's series summed up, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub samples: u64,
    /// The node's processes seen (each restart is one more).
    pub processes: usize,
    pub rss_min_bytes: u64,
    pub rss_median_bytes: u64,
    pub rss_max_bytes: u64,
    pub descriptors_max: u32,
}

impl Series {
    pub fn add(&mut self, s: Sample) {
        self.samples += 1;
        if self.rss.len() < SAMPLES_MAX {
            self.rss.push(s.rss_bytes);
        }
        self.rss_max = self.rss_max.max(s.rss_bytes);
        self.descriptors_max = self.descriptors_max.max(s.descriptors);
        if !self.pids.contains(&s.pid) {
            self.pids.push(s.pid);
        }
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn rss_max(&self) -> u64 {
        self.rss_max
    }

    pub fn descriptors_max(&self) -> u32 {
        self.descriptors_max
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.rss.clone();
        sorted.sort_unstable();
        Summary {
            samples: self.samples,
            processes: self.pids.len(),
            rss_min_bytes: sorted.first().copied().unwrap_or(0),
            rss_median_bytes: sorted.get(sorted.len() / 2).copied().unwrap_or(0),
            rss_max_bytes: self.rss_max,
            descriptors_max: self.descriptors_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let me = std::process::id();
        let s = sample(me).expect("this process");
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
        assert!(s.descriptors >= 3, "{s:?}");
        assert_eq!(sample(u32::MAX), None, "no such process");
    }

    #[test]
    fn a_series_gives_min_median_max_and_counts_processes() {
        let mut series = Series::default();
        assert_eq!(series.summary().rss_median_bytes, 0);
        for (pid, rss, fds) in [(10, 5, 20), (10, 1, 25), (11, 9, 21), (11, 3, 22), (11, 4, 19)] {
            series.add(Sample { pid, rss_bytes: rss, descriptors: fds });
        }
        let s = series.summary();
        assert_eq!((s.rss_min_bytes, s.rss_median_bytes, s.rss_max_bytes), (1, 4, 9));
        assert_eq!((s.samples, s.processes, s.descriptors_max), (5, 2, 25));
    }
}
