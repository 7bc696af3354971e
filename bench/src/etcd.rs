//! A minimal etcd v3 client: Put, linearizable Range of one key, and Status, as gRPC calls over
//! one HTTP/2 connection.
//!
//! A gRPC call is an HTTP/2 POST to `/<service>/<method>` with `content-type: application/grpc`,
//! whose body is one message: a flag byte (0: not compressed), a big-endian u32 length, then the
//! protobuf bytes; the answer's status is the `grpc-status` trailer (or header, for an answer
//! without a body). The messages used here are a few fields each (etcd's `rpc.proto` and
//! `kv.proto`), written and read by hand below.

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use thiserror::Error;
use tokio::net::TcpStream;

#[derive(Debug, Error)]
pub enum EtcdError {
    #[error("etcd at {addr}: {what}")]
    Transport { addr: SocketAddr, what: String },
    #[error("etcd at {addr}: {method} answered gRPC status {status}: {message}")]
    Status { addr: SocketAddr, method: &'static str, status: u32, message: String },
    #[error("etcd at {addr}: {method} answered a message that does not parse: {why}")]
    Malformed { addr: SocketAddr, method: &'static str, why: &'static str },
}

/// One client connection to one etcd member.
pub struct EtcdConn {
    addr: SocketAddr,
    send: h2::client::SendRequest<Bytes>,
}

/// What `Status` says of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader: u64,
}

impl EtcdConn {
    pub async fn connect(addr: SocketAddr) -> Result<EtcdConn, EtcdError> {
        let err = |what: String| EtcdError::Transport { addr, what };
        let tcp = TcpStream::connect(addr).await.map_err(|e| err(format!("connect: {e}")))?;
        tcp.set_nodelay(true).map_err(|e| err(format!("nodelay: {e}")))?;
        let (send, conn) =
            h2::client::handshake(tcp).await.map_err(|e| err(format!("HTTP/2: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(EtcdConn { addr, send })
    }

    /// Put `key` = `value`; done when etcd acknowledges it (committed by its Raft quorum).
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EtcdError> {
        let mut msg = Vec::with_capacity(key.len() + value.len() + 16);
        put_bytes(&mut msg, 1, key);
        put_bytes(&mut msg, 2, value);
        self.call("/etcdserverpb.KV/Put", "Put", msg).await.map(drop)
    }

    /// A linearizable read of `key` (etcd's default Range, not `serializable`); the value, if the
    /// key exists.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, EtcdError> {
        let mut msg = Vec::with_capacity(key.len() + 8);
        put_bytes(&mut msg, 1, key);
        let answer = self.call("/etcdserverpb.KV/Range", "Range", msg).await?;
        let bad = |why| EtcdError::Malformed { addr: self.addr, method: "Range", why };
        for field in Fields::new(&answer) {
            if let (2, Wire::Bytes(kv)) = field.map_err(bad)? {
                for f in Fields::new(&kv) {
                    if let (5, Wire::Bytes(v)) = f.map_err(bad)? {
                        return Ok(Some(v));
                    }
                }
                return Ok(Some(Bytes::new())); // an empty value is left out on the wire
            }
        }
        Ok(None)
    }

    /// The member's own id and the leader it knows.
    pub async fn status(&mut self) -> Result<MemberStatus, EtcdError> {
        let answer = self.call("/etcdserverpb.Maintenance/Status", "Status", Vec::new()).await?;
        let bad = |why| EtcdError::Malformed { addr: self.addr, method: "Status", why };
        let mut status = MemberStatus { member_id: 0, leader: 0 };
        for field in Fields::new(&answer) {
            match field.map_err(bad)? {
                (1, Wire::Bytes(header)) => {
                    for f in Fields::new(&header) {
                        if let (2, Wire::Varint(id)) = f.map_err(bad)? {
                            status.member_id = id;
                        }
                    }
                }
                (4, Wire::Varint(leader)) => status.leader = leader,
                _ => {}
            }
        }
        Ok(status)
    }

    async fn call(
        &mut self,
        path: &str,
        method: &'static str,
        msg: Vec<u8>,
    ) -> Result<Bytes, EtcdError> {
        let addr = self.addr;
        let err = |what: String| EtcdError::Transport { addr, what };
        let mut send =
            self.send.clone().ready().await.map_err(|e| err(format!("{method}: {e}")))?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| err(format!("{method}: {e}")))?;
        let (answer, mut stream) =
            send.send_request(request, false).map_err(|e| err(format!("{method}: {e}")))?;
        let mut body = BytesMut::with_capacity(5 + msg.len());
        body.extend_from_slice(&[0]);
        body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        body.extend_from_slice(&msg);
        stream.send_data(body.freeze(), true).map_err(|e| err(format!("{method}: {e}")))?;
        let answer = answer.await.map_err(|e| err(format!("{method}: {e}")))?;
        let (head, mut recv) = answer.into_parts();
        let mut data = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| err(format!("{method}: {e}")))?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await.map_err(|e| err(format!("{method}: {e}")))?;
        let status_of = |h: &http::HeaderMap| {
            let status = h.get("grpc-status")?.to_str().ok()?.parse::<u32>().ok()?;
            let message = h.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or("");
            Some((status, message.to_string()))
        };
        let (status, message) = trailers
            .as_ref()
            .and_then(status_of)
            .or_else(|| status_of(&head.headers))
            .ok_or_else(|| err(format!("{method}: the answer carries no grpc-status")))?;
        if status != 0 {
            return Err(EtcdError::Status { addr, method, status, message });
        }
        if data.len() < 5 {
            return Err(EtcdError::Malformed { addr, method, why: "no message in the answer" });
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if data[0] != 0 || data.len() != 5 + len {
            return Err(EtcdError::Malformed { addr, method, why: "a bad gRPC message frame" });
        }
        Ok(data.freeze().slice(5..))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf field's value, for the two wire types read here (others are skipped).
#[derive(Debug, PartialEq)]
enum Wire {
    Varint(u64),
    Bytes(Bytes),
    Skipped,
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a Bytes) -> Fields<'a> {
        Fields { buf, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or("a varint runs past the end")?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint longer than ten bytes")
    }

    fn skip(&mut self, n: usize) -> Result<(), &'static str> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        self.at = end.ok_or("a field runs past the end")?;
        Ok(())
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<(u64, Wire), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let mut field = || {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Wire::Varint(self.varint()?),
                1 => self.skip(8).map(|_| Wire::Skipped)?,
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| "a huge length")?;
                    let start = self.at;
                    self.skip(n)?;
                    Wire::Bytes(self.buf.slice(start..self.at))
                }
                5 => self.skip(4).map(|_| Wire::Skipped)?,
                _ => return Err("an unknown wire type"),
            };
            Ok((key >> 3, value))
        };
        let result = field();
        if result.is_err() {
            self.at = self.buf.len(); // stop after the first error
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_request_is_two_length_delimited_fields() {
        let mut msg = Vec::new();
        put_bytes(&mut msg, 1, b"k");
        put_bytes(&mut msg, 2, &[7u8; 200]);
        // field 1, wire type 2 = 0x0a; field 2 = 0x12; 200 = 0xc8 0x01 as a varint
        assert_eq!(&msg[..3], &[0x0a, 1, b'k']);
        assert_eq!(&msg[3..6], &[0x12, 0xc8, 0x01]);
        assert_eq!(msg.len(), 6 + 200);
    }

    #[test]
    fn fields_read_nested_messages_and_refuse_truncation() {
        // A RangeResponse: header {member_id: 300}, kvs {key: "a", value: "xyz"}, count: 1
        let bytes = Bytes::from_static(&[
            0x0a, 0x03, 0x10, 0xac, 0x02, 0x12, 0x08, 0x0a, 0x01, b'a', 0x2a, 0x03, b'x', b'y',
            b'z', 0x20, 0x01,
        ]);
        let fields: Vec<_> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields.len(), 3);
        let Wire::Bytes(header) = &fields[0].1 else { panic!("{fields:?}") };
        let inner: Vec<_> = Fields::new(header).collect::<Result<_, _>>().unwrap();
        assert_eq!(inner, vec![(2, Wire::Varint(300))]);
        assert_eq!(fields[2], (4, Wire::Varint(1)));
        let cut = bytes.slice(..9);
        assert!(Fields::new(&cut).any(|f| f.is_err()));
    }
}
