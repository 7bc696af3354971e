//! Length-prefixed frames on node-to-node connections: int32 length, then the payload.
//!
//! A peer connection opens with a hello frame (magic, cluster id, the sender's name, how it
//! proves membership and its nonce), so a node never mixes up clusters or peers; with a cluster
//! secret the handshake of server/auth.rs follows. Every frame is bounded: a length above the
//! maximum closes the connection before anything is allocated.

use crate::llio::{DecodeError, Put, Reader};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The magic of a peer hello ("arakoon-rs peer v3": v1 had no proof of membership, v2 hashed
/// values with FNV-1a where v3 uses XXH3-64, so their Commits and prev_hashes do not compare).
pub const PEER_MAGIC: i32 = 0x0a7a_0003;

/// The most bytes a hello or handshake frame may have.
pub const HANDSHAKE_FRAME_BYTES_MAX: u32 = 4096;

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    write_frame_parts(w, &[payload]).await
}

/// Frames up to this size are copied into one buffer and written with one call; larger ones are
/// written from where they lie (a value of a MiB is not copied once more for its length prefix).
const FRAME_COPY_BYTES_MAX: usize = 64 << 10;

/// Writes one frame whose payload is `parts` one after the other (a message and its MAC).
pub async fn write_frame_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    parts: &[&[u8]],
) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(total)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let header = len.to_le_bytes();
    if total <= FRAME_COPY_BYTES_MAX {
        let mut buf = Vec::with_capacity(4 + total);
        buf.extend_from_slice(&header);
        for part in parts {
            buf.extend_from_slice(part);
        }
        return w.write_all(&buf).await;
    }
    let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
    slices.push(io::IoSlice::new(&header));
    slices.extend(parts.iter().filter(|p| !p.is_empty()).map(|p| io::IoSlice::new(p)));
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Reads one frame into `buf`; `Ok(false)` on a clean end of stream before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    bytes_max: u32,
) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > bytes_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the maximum of {bytes_max}"),
        ));
    }
    // Grow with what arrives, by at most 1 MiB a step, rather than allocate what the length
    // claims: a peer that announces the maximum and sends nothing then holds little memory.
    buf.clear();
    let len = len as usize;
    while buf.len() < len {
        let start = buf.len();
        buf.resize(start + (len - start).min(1 << 20), 0);
        r.read_exact(&mut buf[start..]).await?;
    }
    Ok(true)
}

/// Who opens a peer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub cluster_id: String,
    pub node: String,
}

/// The first frame on a peer connection: the sender, how it proves membership (the scheme of
/// server/auth.rs) and its fresh nonce (empty without proof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloFrame {
    pub hello: Hello,
    pub scheme: i32,
    pub nonce: Vec<u8>,
}

/// Why a peer's first frame is not a hello this node can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// Another program, or a peer of another version of the peer protocol.
    #[error("not a peer hello of this version (magic {magic:#x}, expected {PEER_MAGIC:#x})")]
    Magic { magic: i32 },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl HelloFrame {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.put_i32(PEER_MAGIC);
        buf.put_bytes(self.hello.cluster_id.as_bytes());
        buf.put_bytes(self.hello.node.as_bytes());
        buf.put_i32(self.scheme);
        buf.put_bytes(&self.nonce);
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<HelloFrame, HelloError> {
        let mut r = Reader::new(bytes);
        let magic = r.i32()?;
        if magic != PEER_MAGIC {
            return Err(HelloError::Magic { magic });
        }
        let cluster_id = r.string("cluster id")?;
        let node = r.string("node name")?;
        let scheme = r.i32()?;
        let nonce = r.bytes()?;
        r.finish("hello")?;
        Ok(HelloFrame { hello: Hello { cluster_id, node }, scheme, nonce })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let hello = HelloFrame {
            hello: Hello { cluster_id: "c".into(), node: "n0".into() },
            scheme: 1,
            nonce: vec![9; 16],
        };
        write_frame(&mut a, &hello.encode()).await.unwrap();
        write_frame(&mut a, &[7u8; 100]).await.unwrap();
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, &mut buf, 1024).await.unwrap());
        assert_eq!(HelloFrame::decode(&buf).unwrap(), hello);
        // Another program's first bytes: named by its magic, not a decode error.
        let other = HelloFrame::decode(&[0x47, 0x45, 0x54, 0x20]).unwrap_err();
        assert_eq!(other, HelloError::Magic { magic: i32::from_le_bytes(*b"GET ") });
        for cut in 0..buf.len() {
            assert!(HelloFrame::decode(&buf[..cut]).is_err());
        }
        let err = read_frame(&mut b, &mut buf, 50).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        drop(a);
        let (mut a, mut b) = tokio::io::duplex(64);
        drop(a.shutdown().await);
        assert!(!read_frame(&mut b, &mut buf, 50).await.unwrap());
    }

    /// A frame past the copy threshold is written from its parts with vectored writes that the
    /// reader's small window cuts short again and again; it reads back as one payload.
    #[tokio::test]
    async fn a_large_frame_written_in_parts_reads_back_whole() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let body: Vec<u8> = (0..(1u32 << 20) + 7).map(|x| (x % 251) as u8).collect();
        let tag = [0xabu8; 32];
        let writer = {
            let body = body.clone();
            tokio::spawn(async move {
                write_frame_parts(&mut a, &[&body, &[], &tag]).await.unwrap();
                write_frame_parts(&mut a, &[b"small", &tag]).await.unwrap();
            })
        };
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, &mut buf, 2 << 20).await.unwrap());
        assert_eq!(buf.len(), body.len() + tag.len());
        assert!(buf[..body.len()] == body[..] && buf[body.len()..] == tag);
        assert!(read_frame(&mut b, &mut buf, 2 << 20).await.unwrap());
        assert_eq!(&buf[..5], b"small");
        assert_eq!(buf[5..], tag);
        writer.await.unwrap();
    }
}
