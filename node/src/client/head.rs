//! The client side of collapse and of a head's transfer: asking a node to collapse
//! (`collapse_tlogs`, `copy_db_to_head`) and fetching a collapsed node's head (`fetch_head`) into
//! a new store. The serving side is server/collapse.rs; `arakoon-admin`, the drills and the
//! running node's catch-up (server/catchup.rs) call these.

use super::fetch::{self as catchup, FetchError, OnProgress, Phase, ReplyStream};
use crate::protocol::client::{DbFrame, Payload, Request, StepFrame};
use crate::server::env::{Network, Stream};
use crate::store::{MemoryStore, SledStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// One pair of a head's stream on its way to the importer, or why the stream failed.
type PairItem = Result<(Vec<u8>, Vec<u8>), StreamBroke>;

/// What the importer of a fetched head hears when the stream from the peer broke: it stops and
/// leaves no store behind; the fetch's own error says how the stream broke.
#[derive(Debug, thiserror::Error)]
#[error("the head's stream from {addr} broke")]
struct StreamBroke {
    addr: SocketAddr,
}

/// Pairs that wait for the importer at most (four of the server's chunks).
const PAIRS_QUEUED: usize = 4 * 1024;
/// A peer that sends nothing for this long is given up on.
const SILENCE_TIMEOUT_MS: u64 = 30_000;

/// Asks the node at `addr` to collapse (`copy_db`: copy_db_to_head), calling `on_step` with the
/// step number and its int64 (milliseconds since the start) as each arrives. Returns the number
/// of steps announced (0 for copy_db_to_head, which answers the bare rc); a failure is an error.
pub async fn request_collapse<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    keep: i32,
    copy_db: bool,
    on_step: &mut dyn FnMut(usize, i64),
) -> Result<usize, FetchError> {
    let request =
        if copy_db { Request::CopyDbToHead { keep } } else { Request::CollapseTlogs { keep } };
    let (mut stream, reply) =
        ReplyStream::open(net, addr, cluster_id, &request, SILENCE_TIMEOUT_MS).await?;
    let command = request.name();
    let total = match reply {
        Ok(Payload::Unit) if copy_db => return Ok(0),
        Ok(Payload::Int32(n)) if !copy_db => usize::try_from(n).map_err(|_| {
            FetchError::Unexpected { addr, command, answer: Box::new(Payload::Int32(n)) }
        })?,
        Ok(other) => return Err(FetchError::Unexpected { addr, command, answer: Box::new(other) }),
        Err((rc, message)) => {
            return Err(FetchError::Refused { addr, command: command.into(), rc, message })
        }
    };
    for done in 1..=total {
        match stream.next("step", StepFrame::decode).await?.0 {
            StepFrame::Done { elapsed_ms } => on_step(done, elapsed_ms),
            StepFrame::Failed { rc, message } => {
                let command = format!("{command} (step {done} of {total})");
                return Err(FetchError::Refused { addr, command, rc, message });
            }
        }
    }
    Ok(total)
}

/// Asks the node at `addr` for its head (`fetch_head`): the stream its pairs come on, or the
/// node's refusal.
async fn open_head<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
) -> Result<ReplyStream<N::Stream>, FetchError> {
    let (stream, reply) =
        ReplyStream::open(net, addr, cluster_id, &Request::FetchHead, SILENCE_TIMEOUT_MS).await?;
    match reply {
        Ok(_) => Ok(stream),
        Err((rc, message)) => {
            Err(FetchError::Refused { addr, command: "fetch_head".into(), rc, message })
        }
    }
}

/// Fetches the head of the node at `addr` into a new store at `dest` (which must not exist);
/// returns it opened. A cut stream or a pair count that does not match leaves no store behind.
pub async fn fetch_db<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    dest: &Path,
    progress: OnProgress<'_>,
) -> Result<SledStore, FetchError> {
    let mut stream = open_head(net, addr, cluster_id).await?;
    let (tx, mut rx) = mpsc::channel::<PairItem>(PAIRS_QUEUED);
    let (dest_owned, id) = (dest.to_path_buf(), cluster_id.to_string());
    let importer = tokio::task::spawn_blocking(move || {
        SledStore::import(&dest_owned, &id, std::iter::from_fn(|| rx.blocking_recv()))
    });
    let received = receive_db(&mut stream, cluster_id, &tx, progress).await;
    if received.is_err() {
        // The importer stops at this and leaves nothing behind.
        let _ = tx.send(Err(StreamBroke { addr })).await;
    }
    drop(tx);
    let imported = importer.await;
    let dest_owned = dest.to_path_buf();
    let result = match (received, imported) {
        (Ok(()), Ok(Ok(store))) => return Ok(store),
        (Err(e), _) => e,
        (Ok(()), Ok(Err(source))) => FetchError::Import { dest: dest_owned, source },
        (Ok(()), Err(e)) => FetchError::ImportThread(e),
    };
    let _ = std::fs::remove_dir_all(dest);
    Err(result)
}

/// Fetches the head of the node at `addr` into memory, for a node in memory (tier B of the
/// simulator): the stream of [`fetch_db`], its pairs gathered on the calling task (no thread
/// may race the simulation) and built into a [`MemoryStore`] ([`MemoryStore::import`], which
/// refuses what [`SledStore::import`] refuses). `shown` names it in messages. The pairs are the
/// head's, which the node keeps in memory anyway.
pub async fn fetch_db_in_memory<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    shown: &str,
    progress: OnProgress<'_>,
) -> Result<MemoryStore, FetchError> {
    let mut stream = open_head(net, addr, cluster_id).await?;
    let (tx, mut rx) = mpsc::channel::<PairItem>(PAIRS_QUEUED);
    let mut pairs = Vec::new();
    let receive = async move {
        let received = receive_db(&mut stream, cluster_id, &tx, progress).await;
        drop(tx);
        received
    };
    let gather = async {
        while let Some(pair) = rx.recv().await {
            pairs.push(pair);
        }
    };
    // `join!` polls the two in a fixed order: nothing here is left to chance.
    let (received, ()) = tokio::join!(receive, gather);
    received?;
    MemoryStore::import(shown, cluster_id, pairs)
        .map_err(|source| FetchError::Import { dest: PathBuf::from(shown), source })
}

async fn receive_db<S: Stream>(
    stream: &mut ReplyStream<S>,
    cluster_id: &str,
    tx: &mpsc::Sender<PairItem>,
    progress: OnProgress<'_>,
) -> Result<(), FetchError> {
    let addr = stream.addr;
    let mut state = catchup::Progress { phase: Phase::Head, done: 0, total: None, bytes: 0 };
    let mut header = true;
    loop {
        let (frame, used) = stream.next("get_db frame", |b| DbFrame::decode(b, header)).await?;
        state.bytes += used as u64;
        match frame {
            DbFrame::Header { cluster_id: theirs, .. } => {
                if theirs != cluster_id {
                    return Err(FetchError::OtherCluster { addr, theirs });
                }
                header = false;
            }
            DbFrame::Pairs(pairs) => {
                state.done += pairs.len() as u64;
                for pair in pairs {
                    if tx.send(Ok(pair)).await.is_err() {
                        return Err(FetchError::ImportStopped);
                    }
                }
                progress(&state);
            }
            DbFrame::End { pairs } => {
                if pairs != state.done {
                    let (announced, sent) = (pairs, state.done);
                    return Err(FetchError::PairCount { addr, announced, sent });
                }
                progress(&state);
                return Ok(());
            }
        }
    }
}
