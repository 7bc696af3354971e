//! The resource limits of a node that Arakoon 1.9 does not have (our `[global]` extensions),
//! and what follows from them: the largest update the master can ship within its lease, and the
//! bound on a node's memory that README states.
//!
//! They sit apart from [`crate::config::ClusterConfig`]'s Arakoon keys so that code building a
//! configuration by hand (the sandbox) takes their defaults in one line.

/// The defaults, in one place (README quotes them).
pub const LINK_BYTES_PER_S_DEFAULT: u64 = crate::consensus::LINK_BYTES_PER_S_DEFAULT;
pub const CLIENT_IDLE_MS_DEFAULT: u64 = 600_000;
pub const CLIENT_MIN_BYTES_PER_S_DEFAULT: u64 = 64 * 1024;
pub const REPLY_BYTES_MAX_DEFAULT: u64 = 16 * 1024 * 1024;

/// An update must reach a quorum within this fraction of the lease: the master renews its lease
/// at half the lease, only when no slot is in flight, and its own view of the lease ends a
/// margin (a tenth) before the slaves'; an update proposed just before the renewal is due thus
/// has `lease/2 - lease/10` to be chosen, and the renewal after it needs a round of its own.
/// A quarter leaves that round room.
pub const SHIP_FRACTION_OF_LEASE: u64 = 4;

/// Our limits; every one has a default, so a file of Arakoon's needs none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The slowest path from the master to a slave's disk, in bytes per second: the network and
    /// the slave's TLog write together (`link_bytes_per_s`). Updates larger than what it carries
    /// in a quarter lease are refused at admission.
    pub link_bytes_per_s: u64,
    /// A client connection with no request for this long is closed (`client_idle_ms`).
    pub client_idle_ms: u64,
    /// One client address holds at most this many of the `max_connections` slots
    /// (`max_connections_per_address`; default: half of them, at least one).
    pub max_connections_per_address: Option<usize>,
    /// A client in the middle of a request must send at least this many bytes per second,
    /// judged over each window of `client_stall_ms`, and read a reply as fast
    /// (`client_min_bytes_per_s`).
    pub client_min_bytes_per_s: u64,
    /// The largest reply a range, range_entries, prefix_keys or rev_range_entries may build
    /// (`reply_bytes_max`).
    pub reply_bytes_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            link_bytes_per_s: LINK_BYTES_PER_S_DEFAULT,
            client_idle_ms: CLIENT_IDLE_MS_DEFAULT,
            max_connections_per_address: None,
            client_min_bytes_per_s: CLIENT_MIN_BYTES_PER_S_DEFAULT,
            reply_bytes_max: REPLY_BYTES_MAX_DEFAULT,
        }
    }
}

impl Limits {
    /// The largest update (its encoded size) the master can ship to a slave within
    /// `lease / SHIP_FRACTION_OF_LEASE` at `link_bytes_per_s`, never above `max_buffer_size`.
    pub fn ship_bytes_max(&self, lease_ms: u64, max_buffer_size: u32) -> u32 {
        let bytes = (self.link_bytes_per_s as u128 * lease_ms as u128)
            / (1000 * SHIP_FRACTION_OF_LEASE as u128);
        bytes.min(max_buffer_size as u128) as u32
    }

    /// The slots one address may hold.
    pub fn per_address(&self, max_connections: usize) -> usize {
        self.max_connections_per_address
            .unwrap_or((max_connections / 2).max(1))
            .min(max_connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_ship_the_default_buffer_within_a_quarter_of_the_default_lease() {
        let l = Limits::default();
        // Arakoon's defaults: a 2 s lease, a 32 MiB buffer: nothing is lowered.
        assert_eq!(l.ship_bytes_max(2000, 32 << 20), 32 << 20);
        // A 1 s lease halves what can be shipped: a 24 MiB sequence no longer fits.
        assert_eq!(l.ship_bytes_max(1000, 32 << 20), 16 << 20);
        let fast = Limits { link_bytes_per_s: 1 << 40, ..l.clone() };
        assert_eq!(fast.ship_bytes_max(3_600_000, u32::MAX), u32::MAX, "no overflow");
        assert_eq!(l.per_address(1024), 512);
        assert_eq!(l.per_address(1), 1);
        let set = Limits { max_connections_per_address: Some(5000), ..l };
        assert_eq!(set.per_address(10), 10);
    }
}
