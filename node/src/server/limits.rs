//! Arakoon 1.9's checks that come before the core, and their exact answers.
//!
//! Arakoon checks a value's size in its backend before it asks whether it is the master, and
//! refuses a value of `max_value_size` bytes or more with an exception its client handler does
//! not know: the client hears rc 0xff "unknown failure" and the connection closes. A ping with
//! a wrong cluster id ends the same way (its exception is not the protocol's either). An unknown
//! user hook is rc 0x82 with the hook's name, and a close. These answers depend on the request
//! and the limits only, so the connection task gives them without a trip to the core.
//!
//! A sequence's values are not checked one by one (Arakoon does not); the sequence as a whole is
//! held to `max_buffer_size` by the core ([`sequence_too_large`]), after the master check, with
//! rc 0x26 and the connection kept.

use super::shared::Shared;
use crate::protocol::client::{encode_error, Request};
use crate::rc::Rc;
use crate::value::Update;

/// The message Arakoon's client handler sends for an exception it does not know.
pub const UNKNOWN_FAILURE: &str = "unknown failure";

/// An answer given before the core: the bytes, and whether the connection closes after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rc: Rc,
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl Refusal {
    fn new(rc: Rc, message: &[u8], close: bool) -> Refusal {
        let mut bytes = Vec::new();
        encode_error(rc, message, &mut bytes);
        Refusal { rc, bytes, close }
    }
}

/// The value a request would write, for the size check (Arakoon checks values, never keys).
fn written_value(request: &Request) -> Option<&[u8]> {
    match request {
        Request::Set { value, .. } | Request::Confirm { value, .. } => Some(value),
        Request::TestAndSet { wanted, .. } | Request::Replace { wanted, .. } => wanted.as_deref(),
        _ => None,
    }
}

/// Whether `request` is refused before the core, and how.
pub fn refuse_early(request: &Request, shared: &Shared) -> Option<Refusal> {
    refuse(request, &shared.cluster_id, shared.max_value_size)
}

/// [`refuse_early`] on its inputs.
pub fn refuse(request: &Request, cluster_id: &str, max_value_size: u32) -> Option<Refusal> {
    if let Some(value) = written_value(request) {
        if value.len() >= max_value_size as usize {
            tracing::debug!(
                "{}: a value of {} bytes is at or above max_value_size ({max_value_size})",
                request.name(),
                value.len()
            );
            return Some(Refusal::new(Rc::UnknownFailure, UNKNOWN_FAILURE.as_bytes(), true));
        }
    }
    match request {
        Request::Ping { cluster_id: theirs, .. } if theirs != cluster_id => {
            tracing::debug!("ping from cluster {theirs:?}, not {cluster_id:?}");
            Some(Refusal::new(Rc::UnknownFailure, UNKNOWN_FAILURE.as_bytes(), true))
        }
        _ => None,
    }
}

/// Whether a sequence is over the buffer limit (Arakoon: its serialized size `>` the limit);
/// `Some(message)` refuses it with rc 0x26.
pub fn sequence_too_large(update: &Update, max_buffer_size: u32) -> Option<String> {
    match update {
        Update::Sequence(_) | Update::SyncedSequence(_) => {
            let size = update.encoded_len();
            (size > max_buffer_size as usize).then(|| {
                let text = crate::update_text::update_text(update);
                format!("update {text} has size {size} > {max_buffer_size}")
            })
        }
        _ => None,
    }
}

/// Whether an update is larger than the master can ship to a slave within its lease
/// (node/src/limits_config.rs); `Some(message)` refuses it with rc 0x26. Admitted, it would be
/// proposed, outlive the master's lease, and be proposed again by each new master: elections
/// without end.
pub fn unshippable(update: &Update, ship_bytes_max: u32) -> Option<String> {
    let size = update.encoded_len();
    (size > ship_bytes_max as usize).then(|| {
        format!(
            "update {} has size {size} > {ship_bytes_max}, the most the master can ship within a \
             quarter of its lease at link_bytes_per_s; split it, or raise lease_period or \
             link_bytes_per_s if the links are faster",
            update.name()
        )
    })
}

/// The most bytes one request may take on the wire. Arakoon reads a request whole whatever its
/// size and then answers it (a sequence over `max_buffer_size` gets rc 0x26 and the connection
/// stays open), so this bound sits above the buffer limit: twice it, plus room for the framing.
/// Beyond it the connection is refused and closed, as every unbounded frame is.
pub fn request_bytes_max(max_buffer_size: u32) -> u32 {
    max_buffer_size.saturating_mul(2).saturating_add(1 << 20)
}

/// The resident memory a node stays under, whatever clients and peers do, from its limits
/// (README "Limits" derives it term by term; `node/tests/memory.rs` measures it):
///
/// ```text
///   32 MiB                                the program and its runtime
/// + 40 MiB + ship_bytes_max               sled: its cache, unflushed writes (store::resident_bytes_max)
/// + max_connections x 80 KiB              each connection's buffers (server/conn.rs)
/// + request_bytes_max x 9/8               the request memory larger requests share
/// + (nodes - 1) x (max_buffer_size + 1 MiB)   the queue to each peer
/// + 3 x ship_bytes_max                    the value in flight: the slot, its copy, the TLog job
/// + 2 x reply_bytes_max                   one listing reply and its encoding
/// + 2 x ship_bytes_max                    one entry stream: the entry read, the one queued
/// ```
pub fn memory_bound_bytes(config: &crate::config::ClusterConfig) -> u64 {
    let ship = config.limits.ship_bytes_max(config.lease_ms, config.max_buffer_size) as u64;
    let per_connection = 80 * 1024;
    let peers = config.nodes.len().saturating_sub(1) as u64;
    (32 << 20)
        + crate::store::resident_bytes_max(ship)
        + config.max_connections as u64 * per_connection
        + request_bytes_max(config.max_buffer_size) as u64 / 8 * 9
        + peers * super::peers::link_queue_bytes_max(config.max_buffer_size) as u64
        + 5 * ship
        + 2 * config.limits.reply_bytes_max
        + crate::store::JOURNAL_BYTES_MAX as u64
        // Accepts a slave holds while it catches up (consensus::HELD_ACCEPTS_MAX).
        + config.batch_max_bytes as u64 / 2
}

/// The `version` call's info text in Arakoon's layout: `revision`, `compiled` and `machine`
/// lines, each value quoted as OCaml's `%S` quotes it.
pub fn version_info() -> String {
    format!(
        "revision: \"arakoon-rs {}\"\ncompiled: \"{}\"\nmachine: \"{}-{}\"\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_NAME"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_at_the_limit_are_refused_keys_are_not() {
        let set = |k: usize, v: usize| Request::Set { key: vec![1; k], value: vec![2; v] };
        assert_eq!(refuse(&set(100, 9), "c", 10), None);
        let r = refuse(&set(1, 10), "c", 10).unwrap();
        assert_eq!(r.bytes, b"\xff\0\0\0\x0f\0\0\0unknown failure");
        assert!(r.close);
        let tas = Request::TestAndSet { key: vec![], expected: Some(vec![0; 50]), wanted: None };
        assert_eq!(refuse(&tas, "c", 10), None, "expected values are not written");
    }

    #[test]
    fn the_default_limits_bound_memory_at_520_mib_or_less() {
        let text = "[global]\ncluster = a, b, c\ncluster_id = x\n\
                    [a]\nip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\nhome = /h/a\n\
                    [b]\nip = 127.0.0.1\nclient_port = 3\nmessaging_port = 4\nhome = /h/b\n\
                    [c]\nip = 127.0.0.1\nclient_port = 5\nmessaging_port = 6\nhome = /h/c\n";
        let config = crate::config::ClusterConfig::parse(text, "t.ini").unwrap();
        let bound = memory_bound_bytes(&config);
        // 32 + (40 + 32) + 80 + 73.1 + 2 x 33 + 5 x 32 + 2 x 16 + 4 + 0.5 = 519.6 MiB (README).
        assert_eq!(bound >> 20, 519, "{bound}");
        assert!(bound <= 520 << 20);
    }
}
