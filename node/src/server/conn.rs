//! One client connection: the prologue, then requests one at a time.
//!
//! The connection task only frames: it decodes requests from a bounded buffer, hands each to the
//! core and writes back the bytes the core answers. The rules of ARAKOON-FORMATS §2 live here: a
//! wrong prologue closes the connection without a word; a request that cannot be decoded gets its
//! return code and a close (the stream is out of step); after an answered request the connection
//! stays open only for the return codes that allow it. A client that sends half a request and
//! stalls is dropped after `request_stall_ms`, and one that trickles it is dropped when it falls
//! below `client_min_bytes_per_s`; a connection idle between requests is closed after
//! `client_idle_ms`, and one address holds at most its share of the slots.
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
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// How long a client may take to send its prologue.
const PROLOGUE_TIMEOUT_MS: u64 = 10_000;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Why a client connection gets no slot: one of the limits on connections (the client hears
/// it as rc max_connections with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefused {
    #[error(
        "max_connections_per_address: {ip} holds {held} client connections, the most one \
         address may hold (this node accepts at most {max} in all)"
    )]
    PerAddress { ip: IpAddr, held: usize, max: usize },
    #[error("max_connections: this node accepts at most {max} client connections")]
    Total { max: usize },
}

/// Counts a connection while it lives, in all and for its address.
pub struct ConnectionSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// Takes a slot for a client at `ip`, or says why not: `max_connections` are open, or this
    /// address holds its share of them already (so that one host cannot take every slot).
    pub fn take(shared: &Arc<Shared>, ip: IpAddr) -> Result<ConnectionSlot, SlotRefused> {
        let max = shared.max_connections;
        let mut per = shared.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let held = per.get(&ip).copied().unwrap_or(0);
        if held >= shared.per_address_max {
            return Err(SlotRefused::PerAddress { ip, held, max });
        }
        let taken = shared
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        if !taken {
            return Err(SlotRefused::Total { max });
        }
        *per.entry(ip).or_insert(0) += 1;
        Ok(ConnectionSlot { shared: shared.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
        let mut per = self.shared.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// Refuses a connection with 0xfe and `why`, and closes it.
pub async fn refuse<S: Stream>(mut stream: S, why: SlotRefused) {
    let mut out = Vec::new();
    encode_error(Rc::MaxConnections, why.to_string().as_bytes(), &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
}

/// The buffer a connection may hold without asking the node's request memory
/// ([`request_memory_bytes`]); beyond, it waits for the bytes, so that all connections together
/// hold at most `max_connections x this + the request memory`.
pub const BUFFER_FREE_BYTES: usize = 48 * 1024;

/// The memory all connections together may hold beyond [`BUFFER_FREE_BYTES`] each, for
/// requests that are being read: the largest request, and the eighth a buffer grows by.
pub fn request_memory_bytes(max_buffer_size: u32) -> usize {
    super::limits::request_bytes_max(max_buffer_size) as usize / 8 * 9
}

/// The bytes a request must bring in each window of `stall_ms` (at least one: a silent client is
/// always dropped).
fn window_bytes(stall_ms: u64, min_bytes_per_s: u64) -> usize {
    (stall_ms.saturating_mul(min_bytes_per_s) / 1000).max(1) as usize
}

/// Whether a request lists keys or entries (a reply of up to reply_bytes_max).
fn lists(request: &Request) -> bool {
    matches!(
        request,
        Request::Range { .. }
            | Request::RangeEntries { .. }
            | Request::RevRangeEntries { .. }
            | Request::PrefixKeys { .. }
            | Request::MultiGet { .. }
            | Request::MultiGetOption { .. }
    )
}

/// Room for the next read: at least [`READ_CHUNK`], growing by an eighth of what is held (not
/// doubling: a buffer stays within an eighth of the request it holds).
fn grow(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve_exact(READ_CHUNK.max(buf.len() / 8));
    }
}

/// Shrinks `buf` back after a large request or reply, so that an idle connection holds little.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > BUFFER_FREE_BYTES && buf.len() <= BUFFER_FREE_BYTES / 2 {
        buf.shrink_to(BUFFER_FREE_BYTES / 2);
    }
}

/// The share of the node's request memory one connection holds now.
#[derive(Default)]
struct Budget {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    kib: u32,
}

impl Budget {
    /// Makes sure `buf`'s capacity beyond [`BUFFER_FREE_BYTES`] is covered, waiting at most
    /// `wait_ms`: `Some(asked)` (whether more memory was taken), `None` if it stayed taken.
    async fn cover(&mut self, cap: usize, shared: &Shared, wait_ms: u64) -> Option<bool> {
        let need =
            u32::try_from(cap.saturating_sub(BUFFER_FREE_BYTES).div_ceil(1024)).unwrap_or(u32::MAX);
        if need <= self.kib {
            return Some(false);
        }
        let more = shared.request_memory.clone().acquire_many_owned(need - self.kib);
        match tokio::time::timeout(Duration::from_millis(wait_ms), more).await {
            Ok(Ok(p)) => {
                match &mut self.permit {
                    Some(held) => held.merge(p),
                    None => self.permit = Some(p),
                }
                self.kib = need;
                Some(true)
            }
            _ => None,
        }
    }

    /// Gives the memory back once the buffer is small again.
    fn release_if_small(&mut self, cap: usize) {
        if cap <= BUFFER_FREE_BYTES {
            *self = Budget::default();
        }
    }
}

/// How long a request of `received` bytes so far may have taken: `stall_ms`, plus the time the
/// bytes take at `min_bytes_per_s`. A client that sends one byte now and then is judged by its
/// rate, not kept alive by each byte.
fn request_allowance(received: usize, stall_ms: u64, min_bytes_per_s: u64) -> Duration {
    let transfer_ms = (received as u64).saturating_mul(1000) / min_bytes_per_s.max(1);
    Duration::from_millis(stall_ms.saturating_add(transfer_ms))
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
    grow(buf);
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
    // The prologue, whole within PROLOGUE_TIMEOUT_MS (a byte now and then does not extend it).
    let prologue_deadline =
        tokio::time::Instant::now() + Duration::from_millis(PROLOGUE_TIMEOUT_MS);
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
        let left = prologue_deadline.saturating_duration_since(tokio::time::Instant::now());
        match read_more(&mut stream, &mut buf, Some(left.as_millis() as u64)).await {
            ReadOutcome::Data => {}
            ReadOutcome::Closed | ReadOutcome::TimedOut => return,
        }
    }
    let mut out = Vec::with_capacity(4096);
    // When the request now in `buf` began to arrive.
    // The window the request's rate is judged over: when it began, and the bytes held then.
    let mut window: Option<(tokio::time::Instant, usize)> = None;
    let mut budget = Budget::default();
    loop {
        let request_max = super::limits::request_bytes_max(shared.max_buffer_size);
        let decoded = Request::decode(&buf, request_max);
        let request = match decoded {
            Ok(Decoded::Request(req, n)) => {
                buf.drain(..n);
                shrink(&mut buf);
                shrink(&mut out);
                budget.release_if_small(buf.capacity());
                window = None;
                req
            }
            Ok(Decoded::NeedMore) => {
                if buf.len() > request_max as usize + 64 {
                    let msg = format!(
                        "request exceeds {request_max} bytes (twice max_buffer_size {}, plus \
                         framing); send smaller requests",
                        shared.max_buffer_size
                    );
                    out.clear();
                    encode_error(Rc::BadInput, msg.as_bytes(), &mut out);
                    let _ = stream.write_all(&out).await;
                    return;
                }
                // Idle between requests up to client_idle_ms; inside one, each window of
                // client_stall_ms must bring client_min_bytes_per_s (a byte now and then does
                // not hold a slot, nor request memory another client waits for).
                let timeout_ms = if buf.is_empty() {
                    shared.client_idle_ms
                } else {
                    let now = tokio::time::Instant::now();
                    let stall = Duration::from_millis(shared.request_stall_ms);
                    let (since, held) = *window.get_or_insert((now, 0));
                    if now >= since + stall {
                        let need =
                            window_bytes(shared.request_stall_ms, shared.client_min_bytes_per_s);
                        if buf.len() - held < need {
                            tracing::debug!(
                                "dropped a client that sent {} bytes of a request in {} ms \
                                 (client_min_bytes_per_s: {need} were due)",
                                buf.len() - held,
                                shared.request_stall_ms
                            );
                            return;
                        }
                        window = Some((now, buf.len()));
                    }
                    let (since, _) = window.expect("set above");
                    (since + stall).saturating_duration_since(now).as_millis() as u64
                };
                grow(&mut buf);
                let wait_ms = timeout_ms.max(shared.request_stall_ms);
                match budget.cover(buf.capacity(), &shared, wait_ms).await {
                    // Time spent waiting for memory is not the client's: a new window.
                    Some(true) if !buf.is_empty() => {
                        window = Some((tokio::time::Instant::now(), buf.len()))
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(
                            "dropped a client: the node's request memory stayed taken for \
                             {wait_ms} ms"
                        );
                        return;
                    }
                }
                match read_more(&mut stream, &mut buf, Some(timeout_ms)).await {
                    ReadOutcome::Data => continue,
                    ReadOutcome::Closed => return,
                    ReadOutcome::TimedOut if buf.is_empty() => {
                        tracing::debug!("closed a client connection idle for {timeout_ms} ms");
                        return;
                    }
                    // The window's end: judged at the top of the loop.
                    ReadOutcome::TimedOut => continue,
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
        // Arakoon's master answers drop_master once it has stepped down and then half a lease
        // more (sync_backend.ml), time for the others to elect; a slave answers at once.
        let dropping = matches!(request, Request::DropMaster) && is_master(&shared).await;
        // A listing read may build a reply of up to reply_bytes_max: one at a time, held until
        // written, so that replies add one such reply (and its encoding) to the node's memory.
        let mut listing = match lists(&request) {
            true => match shared.listing.clone().acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            },
            false => None,
        };
        let (reply, answer) = oneshot::channel();
        let started = crate::spans::start();
        if shared.core.send(CoreMsg::Client { request, reply }).await.is_err() {
            going_down(&mut stream, &mut out).await;
            return;
        }
        let Ok(reply) = answer.await else {
            going_down(&mut stream, &mut out).await;
            return;
        };
        crate::spans::CLIENT_WAIT.since(started);
        if dropping && matches!(reply, crate::shell::Reply::Ok(_)) {
            tokio::time::sleep(std::time::Duration::from_millis(shared.lease_ms / 2)).await;
        }
        out.clear();
        crate::shell::encode_reply(&reply, &mut out);
        let keep_open = crate::shell::reply_rc(&reply).keeps_connection_open();
        drop(reply);
        if out.len() <= BUFFER_FREE_BYTES / 2 {
            // A small reply is within the connection's own share: a client slow to read it
            // does not hold up the others' listing reads.
            listing = None;
        }
        // A client that does not read its reply at client_min_bytes_per_s is dropped.
        let allowed =
            request_allowance(out.len(), shared.request_stall_ms, shared.client_min_bytes_per_s);
        match tokio::time::timeout(allowed, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(
                    "dropped a client that did not read a reply of {} bytes",
                    out.len()
                );
                return;
            }
        }
        drop(listing);
        if !keep_open {
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
            return Err(());
        }
        let mut bytes = Vec::new();
        if flavour == Flavour::Ours {
            EntryFrame::Entry(e.i, e.value).encode(&mut bytes);
        } else {
            tlog::encode_entry(&mut bytes, e.i, &e.value, None);
        }
        // Past the last slot asked for, or the receiver gone: stop reading.
        if send(Ok((e.i, bytes))) {
            Ok(())
        } else {
            Err(())
        }
    });
    if let Err(e) = result {
        send(Err(e));
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
    // One entry stream at a time: each holds up to two of the largest entries.
    let Ok(_streaming) = shared.entry_streams.clone().acquire_owned().await else { return false };
    // Pin the files to read, so that no collapse removes them meanwhile; a slot that a collapse
    // already folded into the head is answered with where the log starts now (ours), or with
    // the head itself and the entries after it (Arakoon's).
    let mut from_i = from_i;
    let mut head_sent = false;
    let guard = loop {
        let (dir, pins) = (shared.dir.clone(), shared.head.pins.clone());
        let pinned = blocking::call(shared.reads.as_ref(), move || pins.pin(dir.as_ref(), from_i));
        match pinned.await {
            Some(Ok(crate::head::Pinned::Reading(guard))) => break guard,
            Some(Ok(crate::head::Pinned::Collapsed { .. }))
                if flavour != Flavour::Ours && !head_sent =>
            {
                // Arakoon sends its head's database file (int32 2, an int64 size, the bytes),
                // then the entries after the head's slot.
                let prefix = std::mem::take(&mut out);
                let Some(head_i) =
                    super::collapse::send_head_for_entries(stream, shared, prefix).await
                else {
                    return false;
                };
                head_sent = true;
                from_i = head_i.map_or(0, |i| i + 1);
                if from_i > to_i {
                    out.put_i32(1);
                    out.put_i64(-1);
                    out.put_i64(-2);
                    return stream.write_all(&out).await.is_ok();
                }
            }
            // A collapse folded the slots after the head just sent: the stream ends without its
            // end markers (the reader asks again).
            Some(Ok(crate::head::Pinned::Collapsed { .. })) if flavour != Flavour::Ours => {
                return false
            }
            Some(Ok(crate::head::Pinned::Collapsed { first_i })) => {
                // A typed answer: the catcher reads where the log starts from the frame, not a
                // text.
                out.put_i32(Rc::Ok.code() as i32);
                EntryFrame::Collapsed { first_i }.encode(&mut out);
                return stream.write_all(&out).await.is_ok();
            }
            Some(Err(e)) => {
                encode_error(Rc::UnknownFailure, e.to_string().as_bytes(), &mut out);
                return stream.write_all(&out).await.is_ok();
            }
            None => return false,
        }
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
                if bytes.len() >= READ_CHUNK {
                    // A large entry goes out as it is, not copied into `out`.
                    if stream.write_all(&out).await.is_err()
                        || stream.write_all(&bytes).await.is_err()
                    {
                        return false;
                    }
                    out.clear();
                    continue;
                }
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

/// Whether this node is the master now, as its core says (false when the core is gone).
async fn is_master(shared: &Shared) -> bool {
    let (reply, answer) = oneshot::channel();
    if shared.core.send(CoreMsg::IsMaster { reply }).await.is_err() {
        return false;
    }
    answer.await.unwrap_or(false)
}
