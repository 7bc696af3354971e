//! Draws keyed by what they are for and when they are made, for the world's most frequent
//! draws: a message's fate on its link, a persister's wake-up and its disk's latency, a reply's
//! hop back to its client; and for those that follow from what the clients did: a node's
//! election seed as it starts, a catch-up's first step, an adoption's or a collapse's fault
//! beside a catch-up, a crash at a crash point and a failed fsync's aftermath.
//!
//! Drawn from one stream, as they were, each depended on how many draws came before it: a run
//! with one write less (shrinking leaves calls out) drew every later message's delay from
//! another place in the stream, and became another run from that write on. Keyed, a draw is a
//! function of the seed, the simulated microsecond, what it is for and on which node or link,
//! and how many such draws came before it in that same microsecond: what a left-out call would
//! have set off no longer moves the draws of everything else, only those made at the same
//! instant for the same thing.

use rand::RngCore;

/// What a keyed draw is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Draw {
    /// A message's fate on the link `from -> to` (key `from * 256 + to`).
    Message = 1,
    /// When node `k`'s idle persister wakes up for jobs waiting.
    PersistWake = 2,
    /// How long node `k`'s disk takes to write and sync a group.
    DiskLatency = 3,
    /// A reply's hop from the node back to client `c`.
    ReplyHop = 4,
    /// The election jitter's seed of node `k`'s process as it starts.
    NodeStart = 5,
    /// When node `k`'s catch-up makes its first step.
    CatchUpStart = 6,
    /// Whether node `k`'s adoption of a fetched head crashes or fails an fsync, and where.
    Adoption = 7,
    /// Whether the peer of node `k`'s catch-up stream collapses beside it (key `k * 256 +
    /// peer`), and what it keeps.
    PeerCollapse = 8,
    /// What a crash of node `k` at an armed crash point keeps of a torn write, and when it
    /// comes back.
    CrashRecovery = 9,
    /// After node `k`'s failed fsync: a power loss or not, what it keeps, when it comes back.
    FsyncFall = 10,
}

/// The keyed draws of one run.
#[derive(Debug)]
pub(super) struct KeyedDraws {
    base: u64,
    now_us: u64,
    /// The draws made this microsecond, per (what, key): the next one's index.
    repeats: Vec<((u64, u64), u32)>,
}

/// SplitMix64's finalizer: every bit of the input moves every bit of the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl KeyedDraws {
    pub(super) fn new(seed: u64) -> KeyedDraws {
        KeyedDraws { base: mix(seed ^ 0x6b65_7965_6420_6472), now_us: 0, repeats: Vec::new() }
    }

    /// The generator for a draw of `what` on `key` at `now_us`.
    pub(super) fn rng(&mut self, now_us: u64, what: Draw, key: u64) -> SplitMix {
        if now_us != self.now_us {
            self.now_us = now_us;
            self.repeats.clear();
        }
        let id = (what as u64, key);
        let n = match self.repeats.iter_mut().find(|(k, _)| *k == id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.repeats.push((id, 0));
                0
            }
        };
        let state = mix(mix(mix(mix(self.base ^ now_us) ^ id.0) ^ key) ^ u64::from(n));
        SplitMix(state)
    }
}

/// SplitMix64: a small, fast generator, seeded per draw.
#[derive(Debug)]
pub(super) struct SplitMix(u64);

impl RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// A draw depends on the instant, what it is for, its key and its rank in that instant,
    /// not on the draws made before it.
    #[test]
    fn a_draw_is_a_function_of_its_key_not_of_the_draws_before() {
        let mut a = KeyedDraws::new(7);
        let mut b = KeyedDraws::new(7);
        let _ = a.rng(10, Draw::Message, 1).gen_range(0..1000u64);
        let _ = a.rng(20, Draw::DiskLatency, 0).gen_range(0..1000u64);
        let x = a.rng(30, Draw::Message, 1).gen_range(0..1_000_000u64);
        let y = b.rng(30, Draw::Message, 1).gen_range(0..1_000_000u64);
        assert_eq!(x, y, "the earlier draws of a moved nothing");
        let again = b.rng(30, Draw::Message, 1).gen_range(0..1_000_000u64);
        assert_ne!(x, again, "a second draw of the same instant and key differs");
        let other = KeyedDraws::new(8).rng(30, Draw::Message, 1).gen_range(0..1_000_000u64);
        assert_ne!(x, other, "another seed draws another number");
    }
}
