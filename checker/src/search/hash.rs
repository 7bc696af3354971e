//! Hashing for the search's tables: a fast multiplicative hasher for states (the standard
//! SipHash is several times slower on small keys, and nothing here faces an adversary) and a
//! 64-bit finalizer for ids and Zobrist keys.

use std::hash::{Hash, Hasher};

/// The splitmix64 finalizer: spreads every input bit over every output bit.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Zobrist key of operation `op`: the hash of a set of operations is the XOR of its
/// members' keys, so adding or removing one costs one XOR.
#[inline]
pub(crate) fn zobrist(op: usize) -> u64 {
    mix64((op as u64).wrapping_add(0x9e37_79b9_7f4a_7c15))
}

/// A word-at-a-time multiplicative hasher, finalized with [`mix64`].
#[derive(Default)]
pub(crate) struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.hash)
    }
}

/// The hash of any `Hash` value with [`FastHasher`].
#[inline]
pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = FastHasher::default();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zobrist_keys_differ_and_hashes_separate_lengths() {
        let keys: std::collections::HashSet<u64> = (0..10_000).map(zobrist).collect();
        assert_eq!(keys.len(), 10_000);
        assert_ne!(hash_of(&[0u8; 3][..]), hash_of(&[0u8; 4][..]));
        assert_ne!(hash_of(&Some(1i64)), hash_of(&Some(2i64)));
    }
}
