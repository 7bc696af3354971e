//! An open-addressing index from 64-bit hashes to dense ids `0, 1, 2, ...`. The caller keeps
//! the data of each id in its own flat vectors (states, linearized sets, memo keys) and says
//! whether an id matches; the index only stores one `u64` per slot: the hash's high 32 bits,
//! which also pick the slot, and the id. Flat vectors and no per-entry allocation are what keep
//! the cache of the search small: a few words per explored configuration.

/// Grow past this many occupied slots per ten.
const LOAD_TENTHS_MAX: usize = 7;
const SLOTS_MIN: usize = 256;

pub(crate) struct IdIndex {
    /// 0 for empty, else `tag << 32 | (id + 1)`.
    slots: Vec<u64>,
    len: usize,
    mask: usize,
}

impl IdIndex {
    pub(crate) fn new() -> IdIndex {
        IdIndex { slots: vec![0; SLOTS_MIN], len: 0, mask: SLOTS_MIN - 1 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Memory held by the index itself.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    /// The id with this `hash` for which `is(id)` holds, with `false`; or the next id (`len`
    /// before the call), now recorded under `hash`, with `true`: the caller must then store its
    /// data under that id.
    #[inline]
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        mut is: impl FnMut(usize) -> bool,
    ) -> (usize, bool) {
        if (self.len + 1) * 10 > self.slots.len() * LOAD_TENTHS_MAX {
            self.grow();
        }
        let tag = hash >> 32;
        let mut i = tag as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                assert!(self.len < u32::MAX as usize - 1, "more ids than an index can hold");
                let id = self.len;
                self.slots[i] = (tag << 32) | (id as u64 + 1);
                self.len += 1;
                return (id, true);
            }
            if slot >> 32 == tag {
                let id = (slot & 0xffff_ffff) as usize - 1;
                if is(id) {
                    return (id, false);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut i = (slot >> 32) as usize & self.mask;
            while self.slots[i] != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::hash::mix64;

    #[test]
    fn finds_what_it_inserted_through_growth_and_tag_collisions() {
        let mut index = IdIndex::new();
        let mut keys: Vec<u64> = Vec::new();
        for k in 0..50_000u64 {
            // Keys go by pairs with one hash: only `is` tells them apart.
            let h = mix64(k / 2);
            let (id, new) = index.find_or_insert(h, |id| keys[id] == k);
            assert!(new);
            assert_eq!(id, keys.len());
            keys.push(k);
        }
        for k in 0..50_000u64 {
            let (id, new) = index.find_or_insert(mix64(k / 2), |id| keys[id] == k);
            assert!(!new);
            assert_eq!(keys[id], k);
        }
        assert_eq!(index.len(), 50_000);
    }
}
