//! Catch-up, the catching side: fetch committed entries from a peer's client port with
//! `last_entries`, in chunks, checking that they come in order without a gap.
//!
//! The running node feeds the chunks to its core (which appends them to the TLog and applies
//! them); `arakoon --catchup-only` and `arakoon-admin catchup` write them on a stopped node.

use super::env::Network;
use crate::llio::VALUE_BYTES_MAX;
use crate::protocol::client::{
    decode_reply, encode_prologue, EntryFrame, Reply, ReplyKind, Request,
};
use crate::value::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Entries handed over at a time.
pub const CHUNK_ENTRIES: usize = 2048;
/// Bytes handed over at a time (roughly).
pub const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// A peer that sends nothing for this long is given up on.
const SILENCE_TIMEOUT_MS: u64 = 10_000;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The peer collapsed `from_i` away: its log starts at `first_i`; the slots before are in
    /// its head (fetch it with `get_db`).
    #[error("{message}")]
    Collapsed { first_i: u64, message: String },
    #[error("{0}")]
    Other(String),
}

impl From<String> for FetchError {
    fn from(s: String) -> Self {
        FetchError::Other(s)
    }
}

/// Fetches the committed entries `from_i..=to_i` from the node whose client port is `addr`,
/// calling `chunk` with consecutive runs of entries. Returns the last slot received (`None` if
/// none). Fewer than asked is not an error here: the caller decides.
pub async fn fetch<N: Network, F>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    from_i: u64,
    to_i: u64,
    chunk: F,
) -> Result<Option<u64>, String>
where
    F: AsyncChunk,
{
    fetch_typed(net, addr, cluster_id, from_i, to_i, chunk).await.map_err(|e| e.to_string())
}

/// [`fetch`], telling a peer that collapsed the slots asked for from other failures.
pub async fn fetch_typed<N: Network, F>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    from_i: u64,
    to_i: u64,
    mut chunk: F,
) -> Result<Option<u64>, FetchError>
where
    F: AsyncChunk,
{
    let timeout = Duration::from_millis(SILENCE_TIMEOUT_MS);
    let mut stream = tokio::time::timeout(timeout, net.connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let mut out = Vec::new();
    encode_prologue(cluster_id, &mut out);
    Request::LastEntries { from_i, to_i }.encode(&mut out);
    stream.write_all(&out).await.map_err(|e| format!("{addr}: {e}"))?;

    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    // The return code.
    loop {
        match decode_reply(ReplyKind::EntryStream, &buf, VALUE_BYTES_MAX)
            .map_err(|e| format!("{addr}: bad reply: {e}"))?
        {
            Some((Reply::Ok(_), n)) => {
                buf.drain(..n);
                break;
            }
            Some((Reply::Failed { rc, message }, _)) => {
                let message = format!(
                    "{addr} refused last_entries {from_i}..={to_i}: {rc}: {}",
                    String::from_utf8_lossy(&message)
                );
                let first_i = (rc == crate::rc::Rc::OutsideInterval)
                    .then(|| message.split("starts at slot ").nth(1))
                    .flatten()
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok());
                return Err(match first_i {
                    Some(first_i) => FetchError::Collapsed { first_i, message },
                    None => FetchError::Other(message),
                });
            }
            None => {}
        }
        match read_some(&mut stream, &mut buf, timeout).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(format!("{addr} closed the connection").into()),
            Err(_) => return Err(format!("{addr} went silent").into()),
        }
    }
    let mut last: Option<u64> = None;
    let mut pending: Vec<(u64, Value)> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut at = 0usize;
    loop {
        match EntryFrame::decode(&buf[at..]).map_err(|e| format!("{addr}: bad entry: {e}"))? {
            Some((EntryFrame::Entry(i, value), n)) => {
                at += n;
                let expected = last.map_or(from_i, |l| l + 1);
                if i != expected {
                    return Err(format!("{addr} sent slot {i} where {expected} was due").into());
                }
                if i > to_i {
                    return Err(format!("{addr} sent slot {i}, beyond the {to_i} asked for").into());
                }
                last = Some(i);
                pending_bytes += n;
                pending.push((i, value));
                if pending.len() >= CHUNK_ENTRIES || pending_bytes >= CHUNK_BYTES {
                    chunk.take(std::mem::take(&mut pending)).await?;
                    pending_bytes = 0;
                }
            }
            Some((EntryFrame::End, _)) => {
                if !pending.is_empty() {
                    chunk.take(pending).await?;
                }
                return Ok(last);
            }
            None => {
                buf.drain(..at);
                at = 0;
                match read_some(&mut stream, &mut buf, timeout).await {
                    Ok(Ok(n)) if n > 0 => {}
                    Ok(_) => return Err(format!("{addr} closed the stream early").into()),
                    Err(_) => return Err(format!("{addr} went silent during catch-up").into()),
                }
            }
        }
    }
}

async fn read_some<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<std::io::Result<usize>, tokio::time::error::Elapsed> {
    buf.reserve(64 * 1024);
    tokio::time::timeout(timeout, stream.read_buf(buf)).await
}

/// Where fetched chunks go.
pub trait AsyncChunk {
    fn take(
        &mut self,
        entries: Vec<(u64, Value)>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Chunks into a channel (the running node's core takes them).
impl AsyncChunk for tokio::sync::mpsc::Sender<Vec<(u64, Value)>> {
    async fn take(&mut self, entries: Vec<(u64, Value)>) -> Result<(), String> {
        self.send(entries).await.map_err(|_| "the node stopped".to_string())
    }
}
