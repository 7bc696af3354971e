//! The node's operation counters and Arakoon 1.9's `statistics` (0x13) encoding.
//!
//! Arakoon keeps, per kind of operation, a running count, minimum, maximum, mean and variance of
//! its durations in seconds (Welford's method, its `x_stats`), and running means of value sizes
//! and result counts; it encodes them as a named-value tree (`Llio.named_field_to`: int32 type,
//! name string, value; 1 int32, 2 int64, 3 float64, 4 string, 5 list: int32 count, then the
//! items in order) under the name `arakoon_stats`, in a fixed order that its decoder
//! (`Statistics.from_buffer`) reads positionally, ending with `node_is`. We keep the same fields,
//! computed from the core's own clock (the core never reads the wall clock), so `start` and
//! `last` are in seconds of that clock. Copied quirk: Arakoon writes the mean set size under the
//! name `avg_get_size` and the mean get size under `avg_set_size`; we do the same, so that its
//! decoder, which reads them positionally, gets them right. The memory fields (`mem_*`) describe
//! OCaml's process in Arakoon (KiB allocated by its GC, getrusage's maxrss, GC collection
//! counts); the shell reads no OS figure (the simulator runs it), so they and the clock that
//! times reads come from [`HostProbes`], which the server fills from the process and the
//! simulator leaves at zero.

use crate::llio::Put;
use std::collections::BTreeMap;

/// Arakoon's `x_stats`: Welford's running statistics of one kind of duration.
#[derive(Debug, Clone, PartialEq)]
pub struct XStats {
    pub n: i32,
    pub min: f64,
    pub max: f64,
    pub m2: f64,
    pub avg: f64,
    pub var: f64,
}

impl Default for XStats {
    fn default() -> Self {
        // Arakoon starts `min` at max_float so that the first sample replaces it.
        XStats { n: 0, min: f64::MAX, max: 0.0, m2: 0.0, avg: 0.0, var: 0.0 }
    }
}

impl XStats {
    /// Adds one sample, as Arakoon's `update_x_stats` does (its variance divides by the old n).
    pub fn update(&mut self, x: f64) {
        let n = self.n;
        self.n = n.saturating_add(1);
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
        let delta = x - self.avg;
        let mean = self.avg + delta / f64::from(self.n);
        self.avg = mean;
        if self.n > 1 {
            self.m2 += delta * (x - mean);
        }
        self.var = self.m2 / f64::from(n);
    }

    fn encode(&self, name: &str, out: &mut Vec<u8>) {
        list_header(name, 6, out);
        int(out, "n", self.n);
        float(out, "min", self.min);
        float(out, "max", self.max);
        float(out, "m2", self.m2);
        float(out, "avg", self.avg);
        float(out, "var", self.var);
    }
}

fn header(out: &mut Vec<u8>, tag: i32, name: &str) {
    out.put_i32(tag);
    out.put_bytes(name.as_bytes());
}

fn int(out: &mut Vec<u8>, name: &str, v: i32) {
    header(out, 1, name);
    out.put_i32(v);
}

fn float(out: &mut Vec<u8>, name: &str, v: f64) {
    header(out, 3, name);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn list_header(name: &str, count: usize, out: &mut Vec<u8>) {
    header(out, 5, name);
    out.put_i32(i32::try_from(count).unwrap_or(i32::MAX));
}

/// The process's memory figures sent as `mem_*`: Arakoon's are OCaml GC figures; ours are the
/// nearest a Rust process has (see [`HostProbes`] and README's conformance section).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemFigures {
    /// `mem_allocated`, KiB: Arakoon sends the KiB its GC ever allocated; we send the KiB
    /// resident now (there is no GC whose allocations we could count).
    pub allocated_kib: f64,
    /// `mem_maxrss`, KiB: the peak resident size (getrusage's `ru_maxrss`), as Arakoon sends.
    pub maxrss_kib: i32,
    /// `mem_minor_collections`, `mem_major_collections`, `mem_compactions`: OCaml GC counts; a
    /// Rust process has no collector, so these stay 0.
    pub minor_collections: i32,
    pub major_collections: i32,
    pub compactions: i32,
}

/// What the statistics need from the host: a monotonic clock in seconds (to time reads, which
/// the core's millisecond clock would show as 0 s) and the process's memory figures. Plain
/// function pointers, so that the shell stays free of OS reads unless the server hands them in.
#[derive(Debug, Clone, Copy)]
pub struct HostProbes {
    pub seconds: fn() -> f64,
    pub memory: fn() -> MemFigures,
}

impl Default for HostProbes {
    /// The simulator's probes: no clock (reads take 0 s) and zero memory figures.
    fn default() -> Self {
        HostProbes { seconds: || 0.0, memory: MemFigures::default }
    }
}

/// The kinds of operation Arakoon times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Get,
    Delete,
    Sequence,
    MultiGet,
    MultiGetOption,
    TestAndSet,
    Range,
    RangeEntries,
    RevRangeEntries,
    PrefixKeys,
    DeletePrefix,
    /// Timed in `op_info` only (Arakoon times replace, user functions, ... nowhere else).
    Other,
}

/// The kind of an update and its size for the counters: set's value length, delete_prefix's
/// count comes when it is applied.
pub fn op_of(update: &crate::value::Update) -> (Op, usize) {
    use crate::value::Update as U;
    match update {
        U::Set { value, .. } => (Op::Set, value.len()),
        U::Delete { .. } => (Op::Delete, 0),
        U::Sequence(_) | U::SyncedSequence(_) => (Op::Sequence, 0),
        U::TestAndSet { .. } => (Op::TestAndSet, 0),
        U::DeletePrefix { .. } => (Op::DeletePrefix, 0),
        _ => (Op::Other, 0),
    }
}

/// The counters behind `statistics`.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    start: f64,
    last: f64,
    avg_set_size: f64,
    avg_get_size: f64,
    avg_range_size: f64,
    avg_range_entries_size: f64,
    avg_rev_range_entries_size: f64,
    avg_prefix_size: f64,
    avg_del_prefix_size: f64,
    harvest: XStats,
    set: XStats,
    get: XStats,
    del: XStats,
    seq: XStats,
    mget: XStats,
    mget_option: XStats,
    tas: XStats,
    range: XStats,
    range_entries: XStats,
    rev_range_entries: XStats,
    prefix: XStats,
    delete_prefix: XStats,
    op: XStats,
    /// Updates on their way through consensus: when each began, its kind and size.
    in_flight: BTreeMap<u64, (u64, Op, usize)>,
    /// `node_is`: the last slot each peer showed in a message (Arakoon's `witness`).
    witnessed: BTreeMap<String, i64>,
}

/// The slot a peer's message shows, for `node_is`.
pub fn slot_of(msg: &crate::consensus::Msg) -> Option<u64> {
    use crate::consensus::Msg;
    match msg {
        Msg::Accept { i, .. } | Msg::Accepted { i, .. } | Msg::Commit { i, .. } => Some(*i),
        Msg::Prepare { last_i, .. } | Msg::Nak { last_i, .. } => *last_i,
        Msg::Promise { last, .. } => last.as_ref().map(|(i, _, _)| *i),
        Msg::Hold { .. } | Msg::Held { .. } => None,
    }
}

/// How often the counters are logged and cleared. Arakoon's `reporting` thread does this at a
/// configured period; we use a fixed one (its configuration key is not read).
pub const REPORT_PERIOD_MS: u64 = 300_000;

/// The most updates whose start is remembered; beyond it an update is not timed (a bound).
const IN_FLIGHT_MAX: usize = 1 << 16;

fn running_mean(mean: &mut f64, n: i32, x: f64) {
    *mean += (x - *mean) / f64::from(n.max(1));
}

impl Statistics {
    /// Counters that start at `now_ms` of the core's clock.
    pub fn new(now_ms: u64) -> Statistics {
        let now = now_ms as f64 / 1000.0;
        Statistics { start: now, last: now, ..Statistics::default() }
    }

    /// Records one operation of `op` that began at `start_ms` and ended at `now_ms`; `size` is
    /// the value's length (set, get) or the number of keys (ranges, prefix, delete_prefix).
    pub fn record(&mut self, op: Op, start_ms: u64, now_ms: u64, size: usize) {
        let x = now_ms.saturating_sub(start_ms) as f64 / 1000.0;
        self.record_secs(op, x, now_ms, size);
    }

    /// Records one operation of `op` that took `x` seconds and ended at `now_ms`.
    pub fn record_secs(&mut self, op: Op, x: f64, now_ms: u64, size: usize) {
        self.last = now_ms as f64 / 1000.0;
        // A clock that went backwards must not give a negative duration.
        let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
        self.op.update(x);
        let size = size as f64;
        let (stats, mean) = match op {
            Op::Set => (&mut self.set, Some(&mut self.avg_set_size)),
            Op::Get => (&mut self.get, Some(&mut self.avg_get_size)),
            Op::Delete => (&mut self.del, None),
            Op::Sequence => (&mut self.seq, None),
            Op::MultiGet => (&mut self.mget, None),
            Op::MultiGetOption => (&mut self.mget_option, None),
            Op::TestAndSet => (&mut self.tas, None),
            Op::Range => (&mut self.range, Some(&mut self.avg_range_size)),
            Op::RangeEntries => (&mut self.range_entries, Some(&mut self.avg_range_entries_size)),
            Op::RevRangeEntries => {
                (&mut self.rev_range_entries, Some(&mut self.avg_rev_range_entries_size))
            }
            Op::PrefixKeys => (&mut self.prefix, Some(&mut self.avg_prefix_size)),
            Op::DeletePrefix => (&mut self.delete_prefix, Some(&mut self.avg_del_prefix_size)),
            Op::Other => return,
        };
        stats.update(x);
        if let Some(mean) = mean {
            running_mean(mean, stats.n, size);
        }
    }

    /// An update (request `id`) handed to consensus at `now_ms`.
    pub fn begin(&mut self, id: u64, op: Op, now_ms: u64, size: usize) {
        if self.in_flight.len() < IN_FLIGHT_MAX {
            self.in_flight.insert(id, (now_ms, op, size));
        }
    }

    /// Request `id` applied at `now_ms`; `count` is delete_prefix's number of keys.
    pub fn end(&mut self, id: u64, now_ms: u64, count: Option<usize>) {
        if let Some((start, op, size)) = self.in_flight.remove(&id) {
            self.record(op, start, now_ms, count.unwrap_or(size));
        }
    }

    /// A peer showed slot `i` (Arakoon's `witness`); the map is bounded by the cluster's nodes.
    pub fn witness(&mut self, node: &str, i: u64) {
        if let Some(seen) = self.witnessed.get_mut(node) {
            *seen = i as i64;
        } else if self.witnessed.len() < 256 {
            self.witnessed.insert(node.to_string(), i as i64);
        }
    }

    /// `node_is` as Arakoon fills it: every peer heard from, and this node at its own slot.
    pub fn node_is(&self, me: &str, applied: Option<u64>) -> Vec<(String, i64)> {
        let mut all = self.witnessed.clone();
        if let Some(i) = applied {
            all.insert(me.to_string(), i as i64);
        }
        all.into_iter().collect()
    }

    /// An update that will not be applied (refused, or the node stepped down).
    pub fn forget(&mut self, id: u64) {
        self.in_flight.remove(&id);
    }

    /// Every [`REPORT_PERIOD_MS`], as Arakoon's `reporting` thread does: logs the counters, then
    /// clears most of them ([`Statistics::clear_most`]).
    pub fn report_if_due(&mut self, now_ms: u64) {
        let started_ms = (self.start * 1000.0) as u64;
        if now_ms.saturating_sub(started_ms) < REPORT_PERIOD_MS {
            return;
        }
        tracing::info!(
            "stats: ops={} sets={} gets={} sequences={} mean op {:.6} s",
            self.op.n,
            self.set.n,
            self.get.n,
            self.seq.n,
            self.op.avg
        );
        self.clear_most(now_ms);
    }

    /// Arakoon's `clear_most`: everything but `node_is`, `avg_rev_range_entries_size` and
    /// `mget_option_info` (Arakoon leaves those two; so do we).
    pub fn clear_most(&mut self, now_ms: u64) {
        let keep = (
            self.avg_rev_range_entries_size,
            self.mget_option.clone(),
            std::mem::take(&mut self.in_flight),
            std::mem::take(&mut self.witnessed),
        );
        *self = Statistics::new(now_ms);
        (self.avg_rev_range_entries_size, self.mget_option, self.in_flight, self.witnessed) = keep;
    }

    /// The encoded tree; `node_is` is each node this one has heard of and its last slot, `mem`
    /// the process's memory figures.
    pub fn encode(&self, node_is: &[(String, i64)], mem: &MemFigures) -> Vec<u8> {
        let mut out = Vec::new();
        // 2 times, 7 mean sizes, 14 x_stats, 5 memory fields, node_is.
        list_header("arakoon_stats", 29, &mut out);
        float(&mut out, "start", self.start);
        float(&mut out, "last", self.last);
        // Arakoon's swap of the two names, copied (see the module comment).
        float(&mut out, "avg_get_size", self.avg_set_size);
        float(&mut out, "avg_set_size", self.avg_get_size);
        float(&mut out, "avg_range_size", self.avg_range_size);
        float(&mut out, "avg_range_entries_size", self.avg_range_entries_size);
        float(&mut out, "avg_rev_range_entries_size", self.avg_rev_range_entries_size);
        float(&mut out, "avg_prefix_size", self.avg_prefix_size);
        float(&mut out, "avg_del_prefix_size", self.avg_del_prefix_size);
        self.harvest.encode("harvest_stats", &mut out);
        self.set.encode("set_info", &mut out);
        self.get.encode("get_info", &mut out);
        self.del.encode("del_info", &mut out);
        self.seq.encode("seq_info", &mut out);
        self.mget.encode("mget_info", &mut out);
        self.mget_option.encode("mget_option_info", &mut out);
        self.tas.encode("tas_info", &mut out);
        self.range.encode("range_info", &mut out);
        self.range_entries.encode("range_entries_info", &mut out);
        self.rev_range_entries.encode("rev_range_entries_info", &mut out);
        self.prefix.encode("prefix_info", &mut out);
        self.delete_prefix.encode("delete_prefix_info", &mut out);
        self.op.encode("op_info", &mut out);
        float(&mut out, "mem_allocated", mem.allocated_kib);
        int(&mut out, "mem_maxrss", mem.maxrss_kib);
        int(&mut out, "mem_minor_collections", mem.minor_collections);
        int(&mut out, "mem_major_collections", mem.major_collections);
        int(&mut out, "mem_compactions", mem.compactions);
        list_header("node_is", node_is.len(), &mut out);
        for (name, i) in node_is {
            header(&mut out, 2, name);
            out.put_i64(*i);
        }
        out
    }
}

/// One value of the named-value tree [`Statistics::encode`] writes (and Arakoon's nodes send).
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    Int32(i32),
    Int64(i64),
    Float(f64),
    Text(String),
    /// Named values, in the order they were written.
    List(Vec<(String, StatValue)>),
}

/// Decodes a `statistics` reply: the top item's name and value, or `None` when the bytes are
/// not in the named-value format (or are followed by more).
pub fn decode(bytes: &[u8]) -> Option<(String, StatValue)> {
    fn item(r: &mut crate::llio::Reader<'_>) -> Option<(String, StatValue)> {
        let tag = r.i32().ok()?;
        let name = r.string("name").ok()?;
        let value = match tag {
            1 => StatValue::Int32(r.i32().ok()?),
            2 => StatValue::Int64(r.i64().ok()?),
            3 => StatValue::Float(r.f64().ok()?),
            4 => StatValue::Text(r.string("value").ok()?),
            5 => {
                let n = r.count(8).ok()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(item(r)?);
                }
                StatValue::List(items)
            }
            _ => return None,
        };
        Some((name, value))
    }
    let mut r = crate::llio::Reader::new(bytes);
    let out = item(&mut r)?;
    r.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_as_arakoon_computes_it() {
        let mut x = XStats::default();
        for v in [2.0, 4.0, 6.0] {
            x.update(v);
        }
        assert_eq!((x.n, x.min, x.max, x.avg), (3, 2.0, 6.0, 4.0));
        // m2 = 8; Arakoon divides by the old n (2).
        assert_eq!((x.m2, x.var), (8.0, 4.0));
    }

    #[test]
    fn a_read_timed_in_seconds_counts_and_a_backward_clock_counts_zero() {
        let mut s = Statistics::new(0);
        s.record_secs(Op::Get, 0.000_25, 5, 3);
        s.record_secs(Op::Get, -1.0, 5, 3);
        assert_eq!((s.get.n, s.get.max, s.get.min), (2, 0.000_25, 0.0));
    }

    #[test]
    fn the_tree_starts_as_arakoon_s_and_ends_with_node_is() {
        let mut s = Statistics::new(1000);
        s.record(Op::Set, 1000, 1500, 10);
        s.record(Op::Get, 1500, 1500, 4);
        let mem = MemFigures { allocated_kib: 2.5, maxrss_kib: 9, ..MemFigures::default() };
        let bytes = s.encode(&[("n0".into(), 7)], &mem);
        // list "arakoon_stats" of 29 items, then float "start" = 1.0
        let mut want = vec![5, 0, 0, 0, 13, 0, 0, 0];
        want.extend_from_slice(b"arakoon_stats");
        want.extend_from_slice(&[29, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0]);
        want.extend_from_slice(b"start");
        want.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
        assert_eq!(&bytes[..want.len()], &want[..]);
        // ... and the last item: list "node_is" of 1, int64 "n0" = 7.
        let mut tail = vec![5, 0, 0, 0, 7, 0, 0, 0];
        tail.extend_from_slice(b"node_is");
        tail.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, b'n', b'0']);
        tail.extend_from_slice(&7i64.to_le_bytes());
        assert!(bytes.ends_with(&tail));
        // The swapped names: "avg_get_size" carries the mean set size (10).
        let at = bytes.windows(12).position(|w| w == b"avg_get_size").unwrap() + 12;
        assert_eq!(f64::from_bits(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())), 10.0);
        // The memory figures handed in are the ones sent.
        let at = bytes.windows(13).position(|w| w == b"mem_allocated").unwrap() + 13;
        assert_eq!(f64::from_bits(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())), 2.5);
        let at = bytes.windows(10).position(|w| w == b"mem_maxrss").unwrap() + 10;
        assert_eq!(i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 9);
        s.report_if_due(1000 + REPORT_PERIOD_MS - 1);
        assert_eq!(s.set.n, 1, "not yet due");
        s.report_if_due(1000 + REPORT_PERIOD_MS);
        assert_eq!((s.set.n, s.start), (0, (1000 + REPORT_PERIOD_MS) as f64 / 1000.0));
    }

    #[test]
    fn what_encode_writes_decodes_as_named_values() {
        let mut stats = Statistics::new(1000);
        stats.record(Op::Set, 1000, 1200, 3);
        let mem = MemFigures { maxrss_kib: 2048, ..Default::default() };
        let bytes = stats.encode(&[("n0".into(), 5)], &mem);
        let (name, value) = decode(&bytes).expect("decodes");
        assert_eq!(name, "arakoon_stats");
        let StatValue::List(items) = value else { panic!("a list") };
        let get = |items: &[(String, StatValue)], k: &str| {
            items.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        assert!(matches!(
            get(&items, "mem_maxrss"),
            Some(StatValue::Int32(2048) | StatValue::Int64(2048))
        ));
        let Some(StatValue::List(node_is)) = get(&items, "node_is") else { panic!("node_is") };
        assert!(matches!(get(&node_is, "n0"), Some(StatValue::Int32(5) | StatValue::Int64(5))));
        assert_eq!(decode(&[bytes.as_slice(), &[0]].concat()), None, "trailing bytes");
        assert_eq!(decode(b"\x09\0\0\0"), None, "an unknown tag");
    }
}
