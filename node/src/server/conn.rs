//! One client connection: the prologue, then requests one at a time.
//!
//! The connection task only frames: it decodes requests from a bounded buffer, hands each to the
//! core and writes back the bytes the core answers. The rules of ARAKOON-FORMATS §2 live here: a
//! wrong prologue closes the connection without a word; a request that cannot be decoded gets its
//! return code and a close (the stream is out of step); after an answered request the connection
//! stays open only for the return codes that allow it. A client that sends half a request and
//! stalls is dropped after `request_stall_ms`; an idle connection between requests is fine.
//!
//! `catchup_entries` (ours) and Arakoon's `last_entries2` / `last_entries3` are answered here,
//! from the TLog files, so that a long catch-up never holds the core. Arakoon 1.9's own
//! `last_entries` (0x0e) answers rc 0 and closes, as 1.9 does (it no longer supports it).

use super::blocking::{self, EntryItem};
use super::env::Stream;
use super::shared::{CoreMsg, Shared};
use crate::llio::Put;
use crate::protocol::client::{
    decode_prologue, encode_error, Decoded, EntryFrame, Request, RequestError,
};
use crate::rc::Rc;
use crate::tlog;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// How long a client may take to send its prologue.
const PROLOGUE_TIMEOUT_MS: u64 = 10_000;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Counts a connection while it lives.
pub struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl ConnectionSlot {
    /// Takes a slot, or `None` when `max_connections` are open.
    pub fn take(shared: &Arc<Shared>) -> Option<ConnectionSlot> {
        let max = shared.max_connections;
        let taken = shared
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        taken.then(|| ConnectionSlot { shared: shared.clone() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Refuses a connection over the limit with 0xfe and closes it.
pub async fn refuse<S: Stream>(mut stream: S, max: usize) {
    let mut out = Vec::new();
    let msg = format!("max_connections: this node accepts at most {max} client connections");
    encode_error(Rc::MaxConnections, msg.as_bytes(), &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
}

enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
}

async fn read_more<S: Stream>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    timeout_ms: Option<u64>,
) -> ReadOutcome {
    buf.reserve(READ_CHUNK);
    let read = stream.read_buf(buf);
    let result = match timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), read).await {
            Ok(r) => r,
            Err(_) => return ReadOutcome::TimedOut,
        },
        None => read.await,
    };
    match result {
        Ok(0) | Err(_) => ReadOutcome::Closed,
        Ok(_) => ReadOutcome::Data,
    }
}

/// Serves one client connection until it closes, misbehaves, or the node stops.
pub async fn serve<S: Stream>(mut stream: S, shared: Arc<Shared>, _slot: ConnectionSlot) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    // The prologue.
    loop {
        match decode_prologue(&buf, &shared.cluster_id) {
            Ok(Some(n)) => {
                buf.drain(..n);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("closed a client connection: {e}");
                return;
            }
        }
        match read_more(&mut stream, &mut buf, Some(PROLOGUE_TIMEOUT_MS)).await {
            ReadOutcome::Data => {}
            ReadOutcome::Closed | ReadOutcome::TimedOut => return,
        }
    }
    let mut out = Vec::with_capacity(4096);
    loop {
        let request_max = super::limits::request_bytes_max(shared.max_buffer_size);
        let decoded = Request::decode(&buf, request_max);
        let request = match decoded {
            Ok(Decoded::Request(req, n)) => {
                buf.drain(..n);
                req
            }
            Ok(Decoded::NeedMore) => {
                if buf.len() > request_max as usize + 64 {
                    let msg = format!(
                        "request exceeds {request_max} bytes (twice max_buffer_size {}, plus                          framing); send smaller requests",
                        shared.max_buffer_size
                    );
                    out.clear();
                    encode_error(Rc::BadInput, msg.as_bytes(), &mut out);
                    let _ = stream.write_all(&out).await;
                    return;
                }
                // Idle between requests is fine; silence in the middle of one is not.
                let timeout = (!buf.is_empty()).then_some(shared.request_stall_ms);
                match read_more(&mut stream, &mut buf, timeout).await {
                    ReadOutcome::Data => continue,
                    ReadOutcome::Closed => return,
                    ReadOutcome::TimedOut => {
                        tracing::debug!("dropped a client that stalled inside a request");
                        return;
                    }
                }
            }
            Err(e) => {
                refuse_request(&mut stream, &e, &mut out).await;
                return;
            }
        };
        if let Some(refusal) = super::limits::refuse_early(&request, &shared) {
            tracing::debug!("refused {}: rc {:?}", request.name(), refusal.rc);
            let _ = stream.write_all(&refusal.bytes).await;
            if refusal.close {
                return;
            }
            continue;
        }
        let streamed = match request {
            Request::CatchupEntries { from_i, to_i } => {
                Some(stream_entries(&mut stream, &shared, from_i, Some(to_i), Flavour::Ours).await)
            }
            Request::LastEntries { .. } => {
                // Arakoon 1.9 writes rc 0, then fails "no longer supported" and drops the client.
                let _ = stream.write_all(&(Rc::Ok.code() as i32).to_le_bytes()).await;
                return;
            }
            Request::LastEntries2 { i } | Request::LastEntries3 { i } => {
                let flavour = if matches!(request, Request::LastEntries2 { .. }) {
                    Flavour::Arakoon2
                } else {
                    Flavour::Arakoon3
                };
                Some(stream_entries(&mut stream, &shared, i.max(0) as u64, None, flavour).await)
            }
            _ => None,
        };
        match streamed {
            Some(true) => continue,
            Some(false) => return,
            None => {}
        }
        // Collapse and the head's transfer run beside the core, never in it.
        let beside = match request {
            Request::CollapseTlogs { keep } => {
                Some(super::collapse::serve_collapse(&mut stream, &shared, keep, false).await)
            }
            Request::CopyDbToHead { keep } => {
                Some(super::collapse::serve_collapse(&mut stream, &shared, keep, true).await)
            }
            Request::GetDb => Some(super::collapse::serve_get_db(&mut stream, &shared).await),
            Request::FetchHead => {
                Some(super::collapse::serve_fetch_head(&mut stream, &shared).await)
            }
            _ => None,
        };
        match beside {
            Some(true) => continue,
            Some(false) => return,
            None => {}
        }
        let (reply, answer) = oneshot::channel();
        if shared.core.send(CoreMsg::Client { request, reply }).await.is_err() {
            going_down(&mut stream, &mut out).await;
            return;
        }
        let Ok(reply) = answer.await else {
            going_down(&mut stream, &mut out).await;
            return;
        };
        out.clear();
        crate::shell::encode_reply(&reply, &mut out);
        if stream.write_all(&out).await.is_err() {
            return;
        }
        if !crate::shell::reply_rc(&reply).keeps_connection_open() {
            return;
        }
    }
}

async fn refuse_request<S: Stream>(stream: &mut S, e: &RequestError, out: &mut Vec<u8>) {
    tracing::debug!("refused a request: {e}");
    out.clear();
    if let RequestError::NoMagic(_) = e {
        // Arakoon writes the bare int32 rc 1 and drops the client: no message follows.
        out.put_i32(Rc::NoMagic.code() as i32);
    } else {
        encode_error(e.rc(), e.to_string().as_bytes(), out);
    }
    let _ = stream.write_all(out).await;
}

async fn going_down<S: Stream>(stream: &mut S, out: &mut Vec<u8>) {
    out.clear();
    encode_error(Rc::GoingDown, b"the node is shutting down", out);
    let _ = stream.write_all(out).await;
}

/// How an entry stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// Our `catchup_entries`: [`EntryFrame`]s.
    Ours,
    /// Arakoon's `last_entries2`: int32 1, TLog entries (int64 i, crc32c, the cmd string), int64
    /// -1, int64 -2; nothing after rc 0 when nothing is committed.
    Arakoon2,
    /// Arakoon's `last_entries3`: as `last_entries2`, but int64 -2 also when nothing is committed.
    Arakoon3,
}

/// Reads the committed entries `from_i..=to_i` into `send` until it returns false.
fn read_entries(
    dir: &dyn tlog::LogDir,
    from_i: u64,
    to_i: u64,
    flavour: Flavour,
    send: &mut dyn FnMut(EntryItem) -> bool,
) {
    let result = tlog::for_each_committed(dir, from_i, true, &mut |e| {
        if e.i > to_i {
            return Err(None);
        }
        let mut bytes = Vec::new();
        if flavour == Flavour::Ours {
            EntryFrame::Entry(e.i, e.value).encode(&mut bytes);
        } else {
            tlog::encode_entry(&mut bytes, e.i, &e.value, None);
        }
        if send(Ok((e.i, bytes))) {
            Ok(())
        } else {
            Err(Some("receiver gone".to_string()))
        }
    });
    if let Err(e) = result {
        send(Err(e.to_string()));
    }
}

/// Streams the committed entries `from_i..=to_i` (`None`: up to the last committed) this node
/// holds. Returns whether the connection may go on.
async fn stream_entries<S: Stream>(
    stream: &mut S,
    shared: &Arc<Shared>,
    from_i: u64,
    to_i: Option<u64>,
    flavour: Flavour,
) -> bool {
    let (reply, answer) = oneshot::channel();
    if shared.core.send(CoreMsg::Committed { reply }).await.is_err() {
        return false;
    }
    let Ok(committed) = answer.await else { return false };
    let mut out = Vec::new();
    if flavour != Flavour::Ours {
        out.put_i32(Rc::Ok.code() as i32);
        let Some(committed) = committed else {
            if flavour == Flavour::Arakoon3 {
                out.put_i64(-2);
            }
            return stream.write_all(&out).await.is_ok();
        };
        if from_i > committed {
            // Arakoon streams the empty run: int32 1, the end of the entries, the end.
            out.put_i32(1);
            out.put_i64(-1);
            out.put_i64(-2);
            return stream.write_all(&out).await.is_ok();
        }
    }
    let to_i = to_i.unwrap_or(u64::MAX);
    let Some(committed) = committed.filter(|c| *c >= from_i) else {
        let msg = format!("this node has not committed slot {from_i} yet");
        encode_error(Rc::NotFound, msg.as_bytes(), &mut out);
        return stream.write_all(&out).await.is_ok();
    };
    let to_i = to_i.min(committed);
    // Pin the files to read, so that no collapse removes them meanwhile; a slot that a collapse
    // already folded into the head is answered with where the log starts now.
    let (dir, pins) = (shared.dir.clone(), shared.head.pins.clone());
    let pinned = blocking::call(shared.reads.as_ref(), move || pins.pin(dir.as_ref(), from_i));
    let guard = match pinned.await {
        Some(Ok(crate::head::Pinned::Reading(guard))) => guard,
        Some(Ok(crate::head::Pinned::Collapsed { .. })) if flavour != Flavour::Ours => {
            // Arakoon would send its head's database file here (int32 2); ours is a different
            // file, so the stream ends after rc 0 and the connection closes (README).
            let _ = stream.write_all(&out).await;
            return false;
        }
        Some(Ok(crate::head::Pinned::Collapsed { first_i })) => {
            // A typed answer: the catcher reads where the log starts from the frame, not a text.
            out.put_i32(Rc::Ok.code() as i32);
            EntryFrame::Collapsed { first_i }.encode(&mut out);
            return stream.write_all(&out).await.is_ok();
        }
        Some(Err(e)) => {
            encode_error(Rc::UnknownFailure, e.to_string().as_bytes(), &mut out);
            return stream.write_all(&out).await.is_ok();
        }
        None => return false,
    };
    // Read the files where start-up said blocking reads run (server/blocking.rs); the pin is
    // held until the reading ends.
    let dir = shared.dir.clone();
    let mut rx = shared.reads.stream(Box::new(move |send: &mut dyn FnMut(EntryItem) -> bool| {
        let _guard = guard;
        read_entries(dir.as_ref(), from_i, to_i, flavour, send);
    }));
    if flavour == Flavour::Ours {
        out.put_i32(Rc::Ok.code() as i32);
    } else {
        out.put_i32(1);
    }
    let mut next = from_i;
    while let Some(item) = rx.recv().await {
        match item {
            Ok((i, bytes)) => {
                if i != next {
                    // A gap: stop here; the catcher sees the short stream and tries elsewhere.
                    break;
                }
                next = i + 1;
                out.extend_from_slice(&bytes);
                if out.len() >= READ_CHUNK {
                    if stream.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
            }
            Err(e) => {
                tracing::warn!("last_entries {from_i}..={to_i}: {e}");
                break;
            }
        }
    }
    drop(rx);
    if flavour == Flavour::Ours {
        EntryFrame::End.encode(&mut out);
    } else {
        out.put_i64(-1);
        out.put_i64(-2);
    }
    stream.write_all(&out).await.is_ok()
}
