//! The node-to-node messages on the wire, in the llio style of the client protocol.
//!
//! One frame holds one message: int32 tag, then its fields. Values are encoded as in the TLog
//! (`Value::encode`), optional slots as an llio bool followed by the fields. Decoding is bounded
//! by the frame (a length prefix cannot claim more than the frame holds) and every malformed
//! frame is a typed error, never a panic.

use crate::consensus::{Msg, NakReason};
use crate::llio::{DecodeError, Put, Reader};
use crate::value::Value;

const PREPARE: i32 = 1;
const PROMISE: i32 = 2;
const NAK: i32 = 3;
const ACCEPT: i32 = 4;
const ACCEPTED: i32 = 5;
const COMMIT: i32 = 6;
const HOLD: i32 = 7;
const HELD: i32 = 8;

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.put_i64(v as i64);
}

fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    buf.put_bool(v.is_some());
    if let Some(v) = v {
        put_u64(buf, v);
    }
}

fn get_u64(r: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    let at = r.position();
    let v = r.i64()?;
    u64::try_from(v).map_err(|_| DecodeError::Negative { at, what, value: v })
}

fn get_opt_u64(r: &mut Reader<'_>, what: &'static str) -> Result<Option<u64>, DecodeError> {
    if r.bool()? {
        Ok(Some(get_u64(r, what)?))
    } else {
        Ok(None)
    }
}

/// A hash: all 64 bits are meaningful.
fn get_hash(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    Ok(r.i64()? as u64)
}

fn get_opt_hash(r: &mut Reader<'_>) -> Result<Option<u64>, DecodeError> {
    if r.bool()? {
        Ok(Some(get_hash(r)?))
    } else {
        Ok(None)
    }
}

fn nak_code(reason: NakReason) -> i32 {
    match reason {
        NakReason::LowBallot => 1,
        NakReason::LeaseHeld => 2,
        NakReason::Behind => 3,
        NakReason::Restarting => 4,
    }
}

/// Encodes one message as a frame payload, in a buffer allocated once at its size (a value of
/// a MiB grown by doubling was copied about twice more on its way).
pub fn encode(msg: &Msg) -> Vec<u8> {
    let value_len = match msg {
        Msg::Promise { last: Some((_, _, value)), .. } | Msg::Accept { value, .. } => {
            value.encoded_len()
        }
        _ => 0,
    };
    // Tag, three numbers, two options: 40 bytes at most besides the value.
    let mut buf = Vec::with_capacity(64 + value_len);
    match msg {
        Msg::Prepare { n, last_i } => {
            buf.put_i32(PREPARE);
            put_u64(&mut buf, *n);
            put_opt_u64(&mut buf, *last_i);
        }
        Msg::Promise { n, last, prev_hash } => {
            buf.put_i32(PROMISE);
            put_u64(&mut buf, *n);
            buf.put_bool(last.is_some());
            if let Some((i, accepted_n, value)) = last {
                put_u64(&mut buf, *i);
                put_u64(&mut buf, *accepted_n);
                value.encode(&mut buf);
            }
            put_opt_u64(&mut buf, *prev_hash);
        }
        Msg::Nak { n, reason, promised, last_i } => {
            buf.put_i32(NAK);
            put_u64(&mut buf, *n);
            buf.put_i32(nak_code(*reason));
            put_u64(&mut buf, *promised);
            put_opt_u64(&mut buf, *last_i);
        }
        Msg::Accept { n, i, value, prev_hash } => {
            buf.put_i32(ACCEPT);
            put_u64(&mut buf, *n);
            put_u64(&mut buf, *i);
            value.encode(&mut buf);
            put_opt_u64(&mut buf, *prev_hash);
        }
        Msg::Accepted { n, i } => {
            buf.put_i32(ACCEPTED);
            put_u64(&mut buf, *n);
            put_u64(&mut buf, *i);
        }
        Msg::Commit { n, i, hash } => {
            buf.put_i32(COMMIT);
            put_u64(&mut buf, *n);
            put_u64(&mut buf, *i);
            put_u64(&mut buf, *hash);
        }
        Msg::Hold { n, t } => {
            buf.put_i32(HOLD);
            put_u64(&mut buf, *n);
            put_u64(&mut buf, *t);
        }
        Msg::Held { n, t } => {
            buf.put_i32(HELD);
            put_u64(&mut buf, *n);
            put_u64(&mut buf, *t);
        }
    }
    buf
}

/// Decodes one frame payload; the whole payload must be one message.
pub fn decode(frame: &[u8]) -> Result<Msg, DecodeError> {
    let mut r = Reader::new(frame);
    let at = r.position();
    let msg = match r.i32()? {
        PREPARE => {
            Msg::Prepare { n: get_u64(&mut r, "n")?, last_i: get_opt_u64(&mut r, "last_i")? }
        }
        PROMISE => {
            let n = get_u64(&mut r, "n")?;
            let last = if r.bool()? {
                let i = get_u64(&mut r, "i")?;
                let accepted_n = get_u64(&mut r, "accepted_n")?;
                Some((i, accepted_n, Value::decode(&mut r)?))
            } else {
                None
            };
            Msg::Promise { n, last, prev_hash: get_opt_hash(&mut r)? }
        }
        NAK => {
            let n = get_u64(&mut r, "n")?;
            let code_at = r.position();
            let reason = match r.i32()? {
                1 => NakReason::LowBallot,
                2 => NakReason::LeaseHeld,
                3 => NakReason::Behind,
                4 => NakReason::Restarting,
                other => {
                    return Err(DecodeError::BadTag {
                        at: code_at,
                        what: "nak reason",
                        tag: i64::from(other),
                    })
                }
            };
            Msg::Nak {
                n,
                reason,
                promised: get_u64(&mut r, "promised")?,
                last_i: get_opt_u64(&mut r, "last_i")?,
            }
        }
        ACCEPT => Msg::Accept {
            n: get_u64(&mut r, "n")?,
            i: get_u64(&mut r, "i")?,
            value: Value::decode(&mut r)?,
            prev_hash: get_opt_hash(&mut r)?,
        },
        ACCEPTED => Msg::Accepted { n: get_u64(&mut r, "n")?, i: get_u64(&mut r, "i")? },
        COMMIT => Msg::Commit {
            n: get_u64(&mut r, "n")?,
            i: get_u64(&mut r, "i")?,
            hash: get_hash(&mut r)?,
        },
        HOLD => Msg::Hold { n: get_u64(&mut r, "n")?, t: get_u64(&mut r, "t")? },
        HELD => Msg::Held { n: get_u64(&mut r, "n")?, t: get_u64(&mut r, "t")? },
        other => {
            return Err(DecodeError::BadTag { at, what: "peer message", tag: i64::from(other) })
        }
    };
    r.finish("peer message")?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Update;
    use proptest::prelude::*;

    fn every_message() -> Vec<Msg> {
        let v = Value::client(vec![Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }]);
        vec![
            Msg::Prepare { n: 7, last_i: None },
            Msg::Prepare { n: 8, last_i: Some(41) },
            Msg::Promise { n: 7, last: None, prev_hash: None },
            Msg::Promise { n: 7, last: Some((4, 3, v.clone())), prev_hash: Some(u64::MAX) },
            Msg::Nak { n: 7, reason: NakReason::LowBallot, promised: 9, last_i: None },
            Msg::Nak { n: 7, reason: NakReason::LeaseHeld, promised: 9, last_i: Some(2) },
            Msg::Nak { n: 7, reason: NakReason::Behind, promised: 9, last_i: Some(2) },
            Msg::Nak { n: 7, reason: NakReason::Restarting, promised: 0, last_i: None },
            Msg::Accept { n: 7, i: 5, value: v, prev_hash: Some(3) },
            Msg::Accept {
                n: 7,
                i: 0,
                value: Value::MasterSet { master: "n0".into(), lease_start: 0 },
                prev_hash: None,
            },
            Msg::Accepted { n: 7, i: 5 },
            Msg::Commit { n: 7, i: 5, hash: 12345 },
            Msg::Hold { n: 7, t: 1_234_567 },
            Msg::Held { n: 7, t: 1_234_567 },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in every_message() {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn truncated_and_padded_frames_are_errors() {
        for m in every_message() {
            let bytes = encode(&m);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut padded = bytes.clone();
            padded.push(0);
            assert!(matches!(decode(&padded), Err(DecodeError::Trailing { .. })));
        }
        assert!(matches!(decode(&99i32.to_le_bytes()), Err(DecodeError::BadTag { .. })));
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
