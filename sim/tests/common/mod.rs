//! What several test binaries of the simulator share.

use arakoon_sim::{FaultMix, SimConfig};

/// Runs of 30 s with collapses, crashes (torn), lost disks and a fault every 300 ms, under a
/// heavy load (a pause of 0-5 ms between calls); `and_more` adds partitions and failed fsyncs,
/// which cut and fail catch-ups and adoptions.
pub fn collapse_runs(and_more: bool) -> SimConfig {
    let mix = FaultMix {
        collapses: true,
        crashes: true,
        torn_writes: true,
        wipes: true,
        partitions: and_more,
        fsync_failures: and_more,
        fault_interval_ms: 300,
        ..FaultMix::none()
    };
    SimConfig {
        duration_ms: 30_000,
        faults: Some(mix),
        think_us: (0, 5_000),
        ..SimConfig::default()
    }
}
