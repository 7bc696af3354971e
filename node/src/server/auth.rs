//! Peer authentication: a peer connection proves membership before any message is read.
//!
//! With a cluster secret (`[global] cluster_secret_file`, an arakoon-rs extension) both ends
//! prove that they know it, each over the other's fresh nonce, so that no recorded answer can be
//! replayed:
//!
//! ```text
//! dialer   -> listener  hello: cluster id, dialer's name, scheme 1, nonce_d
//! listener -> dialer    challenge: nonce_l, HMAC(secret, "listener" | transcript)
//! dialer   -> listener  proof: HMAC(secret, "dialer" | transcript)
//!                       transcript = cluster id | dialer's name | nonce_d | nonce_l
//! ```
//!
//! Both then derive a session key, HMAC(secret, "session" | transcript), and every later frame
//! carries HMAC-SHA256(session key, sequence number | payload): a frame cannot be forged,
//! altered, dropped silently, replayed, reordered or carried into another connection. MACs are
//! compared in constant time (`Mac::verify_slice`).
//!
//! Without a secret the hello says scheme 0 and frames carry no MAC: the peer port trusts its
//! network (the node warns once at start). The two never talk to each other: a scheme mismatch
//! is refused like a wrong secret.
//!
//! [`PeerAuth`] is the seam for mutual TLS (a later issue): it would be one more variant whose
//! handshake proves membership by certificate, wrapping the stream, and whose [`FrameGuard`] is
//! [`FrameGuard::Open`] (TLS protects each record itself).

use super::frame::{read_frame, write_frame, Hello, HelloFrame, HANDSHAKE_FRAME_BYTES_MAX};
use crate::llio::{Put, Reader};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

type HmacSha256 = Hmac<Sha256>;

/// The bytes of a nonce.
pub const NONCE_BYTES: usize = 16;
/// The bytes of a MAC (HMAC-SHA256, untruncated).
pub const TAG_BYTES: usize = 32;
/// A secret shorter than this is refused: it could be guessed.
pub const SECRET_BYTES_MIN: usize = 16;
/// A secret file longer than this is refused before it is read whole.
pub const SECRET_BYTES_MAX: usize = 4096;

const SCHEME_OPEN: i32 = 0;
const SCHEME_SECRET: i32 = 1;

/// The shared cluster secret. Its Debug form never shows it.
#[derive(Clone)]
pub struct Secret {
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.key.len())
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    /// The file cannot be opened or read (the operating system's error); a file that reads but
    /// holds a secret of the wrong size is [`SecretError::Length`].
    #[error(
        "{path}: cannot read the cluster secret ([global] cluster_secret_file): {source}; \
         create it (e.g. `head -c 32 /dev/urandom | base64 > FILE`, mode 0600) or fix the path"
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: the cluster secret ([global] cluster_secret_file) is {len} bytes (without the \
         trailing newline); it must be {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, the same \
         file on every node"
    )]
    Length { path: PathBuf, len: usize },
}

impl Secret {
    /// Reads the secret file; a trailing line break is not part of the secret (so that `echo`
    /// and editors make the same secret).
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        use std::io::Read;
        let unreadable = |source| SecretError::Unreadable { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        // The maximum, a line break of two bytes, and one more byte to tell an overlong file
        // from a full one (which would otherwise be read cut short and accepted).
        let cap = SECRET_BYTES_MAX + 3;
        file.take(cap as u64).read_to_end(&mut bytes).map_err(unreadable)?;
        let too_long = || SecretError::Length { path: path.into(), len: bytes.len() };
        if bytes.len() == cap {
            return Err(too_long());
        }
        Secret::from_bytes(&bytes).map_err(|len| SecretError::Length { path: path.into(), len })
    }

    /// The secret in `bytes` (a trailing line break dropped), or its length if out of bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Secret, usize> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(bytes.len());
        }
        Ok(Secret { key: Arc::new(bytes.to_vec()) })
    }

    /// A MAC keyed with the secret, over the labelled transcript (not yet finalized).
    fn transcript(
        &self,
        label: &[u8],
        hello: &Hello,
        nonce_d: &[u8],
        nonce_l: &[u8],
    ) -> HmacSha256 {
        mac_over(
            &self.key,
            &[label, hello.cluster_id.as_bytes(), hello.node.as_bytes(), nonce_d, nonce_l],
        )
    }
}

/// HMAC-SHA256 of length-prefixed parts (so that no two transcripts share an encoding).
fn mac_over(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = keyed(key);
    for part in parts {
        mac.update(&(part.len() as u32).to_le_bytes());
        mac.update(part);
    }
    mac
}

fn tag(mac: HmacSha256) -> [u8; 32] {
    mac.finalize().into_bytes().into()
}

/// Checks a received MAC against the expected computation, in constant time (`verify_slice`).
fn verify(expected: HmacSha256, received: &[u8]) -> Result<(), AuthError> {
    expected.verify_slice(received).map_err(|_| AuthError::BadProof)
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (longer ones are hashed), so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
}

/// Why a peer connection was refused or dropped.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the connection during the handshake (does it use the same cluster secret?)")]
    Closed,
    #[error("not a peer hello: {0}")]
    BadHello(#[source] super::frame::HelloError),
    #[error("a node of cluster {cluster:?} (this is {ours:?})")]
    OtherCluster { cluster: String, ours: String },
    #[error("{node:?} is not a member of this cluster")]
    NotMember { node: String },
    #[error(
        "the peer {theirs} a cluster secret and this node {ours}: give every node the same \
         [global] cluster_secret_file"
    )]
    SchemeMismatch { theirs: &'static str, ours: &'static str },
    #[error("malformed handshake frame: {0}")]
    BadHandshake(#[source] crate::llio::DecodeError),
    /// A handshake field (`"MAC"`, `"nonce"`) of another length than the scheme's.
    #[error("malformed handshake frame: a {field} of {bytes} bytes")]
    HandshakeFieldLength { field: &'static str, bytes: usize },
    #[error(
        "the peer's proof does not verify: it does not know this cluster's secret (compare \
         [global] cluster_secret_file on both nodes)"
    )]
    BadProof,
    #[error("frame {seq} fails its MAC (altered, replayed or reordered)")]
    BadFrameMac { seq: u64 },
}

/// How peer connections prove membership.
#[derive(Debug, Clone, Default)]
pub enum PeerAuth {
    /// No proof: the peer port trusts its network.
    #[default]
    Open,
    /// HMAC-SHA256 challenge-response over a shared secret, and a MAC on every frame.
    Secret(Secret),
}

fn uses(scheme: i32) -> &'static str {
    if scheme == SCHEME_SECRET {
        "uses"
    } else {
        "uses no"
    }
}

fn fresh_nonce() -> Vec<u8> {
    use rand::RngCore;
    let mut nonce = vec![0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

async fn read_handshake<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, AuthError> {
    let mut buf = Vec::new();
    if read_frame(stream, &mut buf, HANDSHAKE_FRAME_BYTES_MAX).await? {
        Ok(buf)
    } else {
        Err(AuthError::Closed)
    }
}

fn tag_field(r: &mut Reader<'_>) -> Result<Vec<u8>, AuthError> {
    let tag = r.bytes().map_err(AuthError::BadHandshake)?;
    if tag.len() != TAG_BYTES {
        return Err(AuthError::HandshakeFieldLength { field: "MAC", bytes: tag.len() });
    }
    Ok(tag)
}

impl PeerAuth {
    fn scheme(&self) -> i32 {
        match self {
            PeerAuth::Open => SCHEME_OPEN,
            PeerAuth::Secret(_) => SCHEME_SECRET,
        }
    }

    /// The dialer's side: sends the hello, and with a secret checks the listener's proof and
    /// gives its own. Returns the guard for the frames this side sends.
    pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        hello: &Hello,
    ) -> Result<FrameGuard, AuthError> {
        let nonce_d = match self {
            PeerAuth::Open => Vec::new(),
            PeerAuth::Secret(_) => fresh_nonce(),
        };
        let frame = HelloFrame { hello: hello.clone(), scheme: self.scheme(), nonce: nonce_d };
        write_frame(stream, &frame.encode()).await?;
        let PeerAuth::Secret(secret) = self else { return Ok(FrameGuard::Open) };
        let challenge = read_handshake(stream).await?;
        let mut r = Reader::new(&challenge);
        let nonce_l = r.bytes().map_err(AuthError::BadHandshake)?;
        let their_tag = tag_field(&mut r)?;
        r.finish("challenge").map_err(AuthError::BadHandshake)?;
        if nonce_l.len() != NONCE_BYTES {
            return Err(AuthError::HandshakeFieldLength { field: "nonce", bytes: nonce_l.len() });
        }
        let nonce_d = &frame.nonce;
        verify(secret.transcript(b"listener", hello, nonce_d, &nonce_l), &their_tag)?;
        let proof = tag(secret.transcript(b"dialer", hello, nonce_d, &nonce_l));
        let mut buf = Vec::new();
        buf.put_bytes(&proof);
        write_frame(stream, &buf).await?;
        Ok(FrameGuard::session(tag(secret.transcript(b"session", hello, nonce_d, &nonce_l))))
    }

    /// The listener's side: reads the hello, refuses another cluster, a non-member and a
    /// different scheme, and with a secret runs the challenge-response. Returns the dialer's
    /// name and the guard for the frames it sends.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        cluster_id: &str,
        members: &[String],
    ) -> Result<(String, FrameGuard), AuthError> {
        let frame = read_handshake(stream).await?;
        let HelloFrame { hello, scheme, nonce: nonce_d } =
            HelloFrame::decode(&frame).map_err(AuthError::BadHello)?;
        if hello.cluster_id != cluster_id {
            return Err(AuthError::OtherCluster {
                cluster: hello.cluster_id,
                ours: cluster_id.to_string(),
            });
        }
        if !members.contains(&hello.node) {
            return Err(AuthError::NotMember { node: hello.node });
        }
        if scheme != self.scheme() {
            return Err(AuthError::SchemeMismatch {
                theirs: uses(scheme),
                ours: uses(self.scheme()),
            });
        }
        let PeerAuth::Secret(secret) = self else { return Ok((hello.node, FrameGuard::Open)) };
        if nonce_d.len() != NONCE_BYTES {
            return Err(AuthError::HandshakeFieldLength { field: "nonce", bytes: nonce_d.len() });
        }
        let nonce_l = fresh_nonce();
        let mut buf = Vec::new();
        buf.put_bytes(&nonce_l);
        buf.put_bytes(&tag(secret.transcript(b"listener", &hello, &nonce_d, &nonce_l)));
        write_frame(stream, &buf).await?;
        let answer = read_handshake(stream).await?;
        let mut r = Reader::new(&answer);
        let their_tag = tag_field(&mut r)?;
        r.finish("proof").map_err(AuthError::BadHandshake)?;
        verify(secret.transcript(b"dialer", &hello, &nonce_d, &nonce_l), &their_tag)?;
        let session = tag(secret.transcript(b"session", &hello, &nonce_d, &nonce_l));
        Ok((hello.node, FrameGuard::session(session)))
    }
}

/// The per-frame protection of one direction of one connection.
#[derive(Clone)]
pub enum FrameGuard {
    /// Frames as they are.
    Open,
    /// Each frame ends with HMAC-SHA256(session key, sequence number | payload).
    Mac { key: HmacSha256, seq: u64 },
}

impl std::fmt::Debug for FrameGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameGuard::Open => write!(f, "Open"),
            FrameGuard::Mac { seq, .. } => write!(f, "Mac {{ seq: {seq} }}"),
        }
    }
}

impl FrameGuard {
    fn session(key: [u8; 32]) -> FrameGuard {
        FrameGuard::Mac { key: keyed(&key), seq: 0 }
    }

    /// The bytes this guard adds to each frame.
    pub fn overhead(&self) -> usize {
        match self {
            FrameGuard::Open => 0,
            FrameGuard::Mac { .. } => TAG_BYTES,
        }
    }

    /// The MAC that follows `payload` on the wire (none without a secret); the next frame's
    /// sequence number is counted.
    pub fn tag(&mut self, payload: &[u8]) -> Option<[u8; TAG_BYTES]> {
        let FrameGuard::Mac { key, seq } = self else { return None };
        let mut mac = key.clone();
        mac.update(&seq.to_le_bytes());
        mac.update(payload);
        *seq += 1;
        Some(mac.finalize().into_bytes().into())
    }

    /// Appends the frame's MAC to `payload` (the tests' way; links write the tag as a part).
    #[cfg(test)]
    pub fn seal(&mut self, mut payload: Vec<u8>) -> Vec<u8> {
        if let Some(tag) = self.tag(&payload) {
            payload.extend_from_slice(&tag);
        }
        payload
    }

    /// Checks and removes the MAC at the end of `frame`; an error means the connection must be
    /// dropped (the sequence can no longer be trusted).
    pub fn open(&mut self, frame: &mut Vec<u8>) -> Result<(), AuthError> {
        let FrameGuard::Mac { key, seq } = self else { return Ok(()) };
        let Some(body) = frame.len().checked_sub(TAG_BYTES) else {
            return Err(AuthError::BadFrameMac { seq: *seq });
        };
        let mut mac = key.clone();
        mac.update(&seq.to_le_bytes());
        mac.update(&frame[..body]);
        // verify_slice compares in constant time.
        mac.verify_slice(&frame[body..]).map_err(|_| AuthError::BadFrameMac { seq: *seq })?;
        frame.truncate(body);
        *seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> PeerAuth {
        PeerAuth::Secret(Secret::from_bytes(&[b; 32]).unwrap())
    }

    fn members() -> Vec<String> {
        vec!["n0".into(), "n1".into()]
    }

    async fn handshake(
        dialer: PeerAuth,
        listener: PeerAuth,
        hello: Hello,
    ) -> (Result<FrameGuard, AuthError>, Result<(String, FrameGuard), AuthError>) {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let d = async move {
            let r = dialer.dial(&mut a, &hello).await;
            drop(a);
            r
        };
        let l = async move {
            let r = listener.accept(&mut b, "c", &members()).await;
            drop(b);
            r
        };
        tokio::join!(d, l)
    }

    fn hello(node: &str) -> Hello {
        Hello { cluster_id: "c".into(), node: node.into() }
    }

    #[tokio::test]
    async fn the_same_secret_talks_and_frames_are_sealed() {
        let (d, l) = handshake(secret(1), secret(1), hello("n0")).await;
        let mut tx = d.unwrap();
        let (from, mut rx) = l.unwrap();
        assert_eq!(from, "n0");
        let mut a = tx.seal(b"first".to_vec());
        let mut b = tx.seal(b"second".to_vec());
        assert_eq!(a.len(), 5 + TAG_BYTES);
        // Reordered: the second frame does not verify as the first.
        assert!(matches!(rx.clone().open(&mut b.clone()), Err(AuthError::BadFrameMac { seq: 0 })));
        // Altered.
        let mut bent = a.clone();
        bent[0] ^= 1;
        assert!(rx.clone().open(&mut bent).is_err());
        rx.open(&mut a).unwrap();
        assert_eq!(a, b"first");
        // Replayed: the first frame again is not the second.
        let mut again = tx.clone();
        if let FrameGuard::Mac { seq, .. } = &mut again {
            *seq = 0;
        }
        assert!(rx.clone().open(&mut again.seal(b"first".to_vec())).is_err());
        rx.open(&mut b).unwrap();
        assert_eq!(b, b"second");
        assert!(rx.open(&mut vec![0u8; 3]).is_err(), "shorter than a MAC");
    }

    #[tokio::test]
    async fn a_wrong_secret_or_scheme_or_stranger_is_refused() {
        let (d, l) = handshake(secret(1), secret(2), hello("n0")).await;
        assert!(matches!(d, Err(AuthError::BadProof)), "{d:?}");
        assert!(l.is_err());
        let (_, l) = handshake(PeerAuth::Open, secret(1), hello("n0")).await;
        let e = l.unwrap_err().to_string();
        assert!(e.contains("uses no a cluster secret") || e.contains("uses no"), "{e}");
        let (d, l) = handshake(secret(1), PeerAuth::Open, hello("n0")).await;
        assert!(matches!(l, Err(AuthError::SchemeMismatch { .. })), "{l:?}");
        assert!(matches!(d, Err(AuthError::Closed)), "{d:?}");
        let (_, l) = handshake(secret(1), secret(1), hello("n9")).await;
        assert!(matches!(l, Err(AuthError::NotMember { .. })), "{l:?}");
        let (d, l) = handshake(PeerAuth::Open, PeerAuth::Open, hello("n1")).await;
        assert!(matches!(d, Ok(FrameGuard::Open)) && l.is_ok());
    }

    #[test]
    fn secrets_are_bounded_and_lose_one_line_break() {
        assert_eq!(Secret::from_bytes(b"short\n").unwrap_err(), 5);
        let s = Secret::from_bytes(b"0123456789abcdef\r\n").unwrap();
        assert_eq!(s.key.len(), 16);
        assert_eq!(format!("{s:?}"), "Secret(16 bytes)");
        assert!(Secret::from_bytes(&vec![7; SECRET_BYTES_MAX + 1]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let mut long = vec![b'x'; SECRET_BYTES_MAX];
        long.extend(b"\r\nmore");
        std::fs::write(&file, &long).unwrap();
        assert!(matches!(Secret::load(&file), Err(SecretError::Length { .. })), "not cut short");
        std::fs::write(&file, b"0123456789abcdef\n").unwrap();
        assert_eq!(Secret::load(&file).unwrap().key.as_slice(), b"0123456789abcdef");
        let e = Secret::load(Path::new("/nonexistent/secret")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/secret") && e.contains("cluster_secret_file"), "{e}");
    }
}
