//! The Arakoon 1.x client protocol (ARAKOON-FORMATS §2), byte for byte.
//!
//! A connection opens with a prologue (magic, version, cluster id); then each request is a
//! command word (`0xb1ff0000 | code`) and its arguments, and each response a return code followed
//! by the command's payload on success or a message string on failure. Requests carry no length
//! prefix, so the server decodes from a growing buffer: [`Request::decode`] answers
//! [`Decoded::NeedMore`] until a whole request is there, and every length is checked against the
//! limits before anything is allocated.
//!
//! Lists in replies follow the original's order rule: `range`, `prefix_keys`, `range_entries`,
//! `rev_range_entries` and `multi_get` are written last-element-first, `multi_get_option` in
//! request order. The codec keeps that rule; callers see presentation order.
//!
//! Two commands are ours, on private codes outside Arakoon's table (which ends at 0x50):
//! `catchup_entries` (0x100) streams committed TLog entries to a lagging peer (see
//! [`EntryFrame`]) and `fetch_head` (0x101) streams a collapsed node's head (see [`DbFrame`]).
//! Arakoon's own `last_entries` codes (0x0e, 0x40, 0x46) keep their public meaning.

use super::node_state::NodeState;
use crate::llio::{DecodeError, Put, Reader, VALUE_BYTES_MAX};
use crate::rc::Rc;
use crate::store::Range;
use crate::value::{Bytes, Key, Update, Value};

/// The magic in the prologue and in every command word.
pub const MAGIC: u32 = 0xb1ff_0000;
/// The protocol version in the prologue.
pub const VERSION: i32 = 1;
/// The version reported by `version` and `ping`: the Arakoon release whose protocol we speak.
pub const SPOKEN_VERSION: (i32, i32, i32) = (1, 9, 0);

/// The smallest encoded key or value (its length prefix), for bounding list counts.
const STRING_BYTES_MIN: usize = 4;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Only the master, inside its lease.
    Consistent,
    /// Any node, from its store as it is ("dirty read").
    NoGuarantees,
    /// Any node whose store has applied slot `i`.
    AtLeast(u64),
}

impl Consistency {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Consistency::Consistent => buf.put_u8(0),
            Consistency::NoGuarantees => buf.put_u8(1),
            Consistency::AtLeast(i) => {
                buf.put_u8(2);
                buf.put_i64(*i as i64);
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Consistency, DecodeError> {
        let at = r.position();
        match r.u8()? {
            0 => Ok(Consistency::Consistent),
            1 => Ok(Consistency::NoGuarantees),
            2 => {
                let i = r.i64()?;
                u64::try_from(i).map(Consistency::AtLeast).map_err(|_| DecodeError::Negative {
                    at,
                    what: "consistency at_least slot",
                    value: i,
                })
            }
            tag => Err(DecodeError::BadTag { at, what: "consistency", tag: i64::from(tag) }),
        }
    }
}

/// A client request, by command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping {
        client_id: String,
        cluster_id: String,
    },
    WhoMaster,
    Exists {
        c: Consistency,
        key: Key,
    },
    Get {
        c: Consistency,
        key: Key,
    },
    Set {
        key: Key,
        value: Bytes,
    },
    Delete {
        key: Key,
    },
    Range {
        c: Consistency,
        range: Range,
    },
    PrefixKeys {
        c: Consistency,
        prefix: Key,
        max: Option<usize>,
    },
    TestAndSet {
        key: Key,
        expected: Option<Bytes>,
        wanted: Option<Bytes>,
    },
    /// Ours (0x100): the committed entries from slot `from_i` to `to_i`, streamed.
    CatchupEntries {
        from_i: u64,
        to_i: u64,
    },
    /// Arakoon's `last_entries` (0x0e): one int64, the first slot wanted.
    LastEntries {
        i: i64,
    },
    /// Arakoon's `last_entries2` (0x40).
    LastEntries2 {
        i: i64,
    },
    /// Arakoon's `last_entries3` (0x46).
    LastEntries3 {
        i: i64,
    },
    /// Arakoon's `user_hook` (0x45): a registered server-side hook by name.
    UserHook {
        c: Consistency,
        name: String,
    },
    /// The nursery's `get_routing` (0x18).
    GetRouting,
    /// The nursery's `get_nursery_cfg` (0x20).
    GetNurseryCfg,
    RangeEntries {
        c: Consistency,
        range: Range,
    },
    /// `sequence` (0x10) or, with `synced`, `synced_sequence` (0x24).
    Sequence {
        updates: Vec<Update>,
        synced: bool,
    },
    MultiGet {
        c: Consistency,
        keys: Vec<Key>,
    },
    ExpectProgressPossible,
    Statistics,
    UserFunction {
        name: String,
        arg: Option<Bytes>,
    },
    Assert {
        c: Consistency,
        key: Key,
        value: Option<Bytes>,
    },
    GetKeyCount,
    Confirm {
        key: Key,
        value: Bytes,
    },
    RevRangeEntries {
        c: Consistency,
        range: Range,
    },
    OptimizeDb,
    DefragDb,
    DeletePrefix {
        prefix: Key,
    },
    Version,
    AssertExists {
        c: Consistency,
        key: Key,
    },
    DropMaster,
    MultiGetOption {
        c: Consistency,
        keys: Vec<Key>,
    },
    CurrentState,
    /// Ours (0x102): the node's detailed state (role, master, lease, ballot, slots), typed
    /// ([`super::node_state::NodeState`]).
    NodeState,
    Replace {
        key: Key,
        wanted: Option<Bytes>,
    },
    Nop,
    FlushStore,
    GetTxid,
    /// Fold all but the open TLog file and the last `keep` sealed ones into the head and remove
    /// them. The reply is a [`ReplyKind::StepStream`]. `keep` is as sent: below 1 is refused by
    /// the server, as Arakoon refuses it.
    CollapseTlogs {
        keep: i32,
    },
    /// Bring the head up to the store's committed slot, then collapse as [`Request::CollapseTlogs`];
    /// the reply is the bare rc.
    CopyDbToHead {
        keep: i32,
    },
    /// Arakoon's `get_db` (0x1b): rc 0, int64 size, then the database file's bytes
    /// ([`ReplyKind::DbFile`]).
    GetDb,
    /// Ours (0x101): the node's head, streamed as [`DbFrame`]s (a wiped node's catch-up from a
    /// collapsed peer).
    FetchHead,
}

/// What a request's successful reply carries, so that the client knows how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Unit,
    Bool,
    String,
    OptionString,
    Keys,
    Entries,
    Values,
    OptionValues,
    Int32,
    Int64,
    Version,
    Consistency,
    /// `catchup_entries`: a stream of [`EntryFrame`]s.
    EntryStream,
    /// `collapse_tlogs`: int32 total steps (the payload), then that many [`StepFrame`]s, fewer if
    /// a step fails (a failed step is the last).
    StepStream,
    /// `fetch_head`: [`DbFrame`]s follow.
    DbStream,
    /// `get_db`: int64 size (the payload), then that many bytes of the database file.
    DbFile,
    /// `last_entries2` / `last_entries3`: Arakoon's entry stream follows.
    ArakoonEntries,
    /// `user_hook`: the hook's own bytes follow.
    Hook,
    /// `node_state` (ours): a [`NodeState`].
    NodeState,
}

/// A successful reply's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Unit,
    Bool(bool),
    String(Bytes),
    OptionString(Option<Bytes>),
    Keys(Vec<Key>),
    Entries(Vec<(Key, Bytes)>),
    Values(Vec<Bytes>),
    OptionValues(Vec<Option<Bytes>>),
    Int32(i32),
    Int64(i64),
    Version {
        major: i32,
        minor: i32,
        patch: i32,
        info: String,
    },
    Consistency(Consistency),
    /// Boxed: it is the largest payload and rare.
    NodeState(Box<NodeState>),
    /// A payload already in its wire form (what follows rc 0): a node encodes a large read's
    /// answer where the read ran, beside its consensus core (shell/read_job.rs), so that the
    /// core's thread never walks it. Never decoded: a client sees the payload's own kind.
    Encoded(Bytes),
}

/// How far decoding a request got.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole request, and how many bytes it took.
    Request(Request, usize),
    /// The buffer ends inside the request: read more (up to the message limit).
    NeedMore,
}

/// Why a request was refused; each maps to the return code the client hears.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("command word {0:#010x} lacks the magic {MAGIC:#010x}")]
    NoMagic(u32),
    /// Arakoon's wording: the code in hex without `0x`.
    #[error("{0:x}: command not found")]
    UnknownCommand(u32),
    #[error("{name} ({code:#x}) is not supported by this node")]
    NotSupported { code: u32, name: &'static str },
    #[error("malformed {command} request: {error}")]
    Malformed { command: &'static str, error: DecodeError },
}

impl RequestError {
    pub fn rc(&self) -> Rc {
        match self {
            RequestError::NoMagic(_) => Rc::NoMagic,
            RequestError::UnknownCommand(_) => Rc::NotFound,
            RequestError::NotSupported { .. } => Rc::NotSupported,
            RequestError::Malformed { .. } => Rc::BadInput,
        }
    }

    /// Whether the connection may go on after this error (the stream is still in step).
    pub fn keeps_connection_open(&self) -> bool {
        matches!(self, RequestError::NotSupported { .. })
    }
}

/// The prologue a client sends first.
pub fn encode_prologue(cluster_id: &str, buf: &mut Vec<u8>) {
    buf.put_i32(MAGIC as i32);
    buf.put_i32(VERSION);
    buf.put_bytes(cluster_id.as_bytes());
}

/// Why a prologue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrologueError {
    #[error("prologue magic {0:#010x} is not {MAGIC:#010x}")]
    Magic(u32),
    #[error("protocol version {0} is not {VERSION}")]
    Version(i32),
    #[error("cluster id {found:?} is not {expected:?}")]
    WrongCluster { expected: String, found: String },
    #[error("malformed prologue: {0}")]
    Malformed(DecodeError),
}

/// Decodes a prologue from the start of `buf`: `Ok(None)` until it is all there.
pub fn decode_prologue(buf: &[u8], cluster_id: &str) -> Result<Option<usize>, PrologueError> {
    let mut r = Reader::with_limit(buf, 1024);
    let parse = |r: &mut Reader<'_>| -> Result<(u32, i32, Bytes), DecodeError> {
        Ok((r.i32()? as u32, r.i32()?, r.bytes()?))
    };
    match parse(&mut r) {
        Ok((magic, version, id)) => {
            if magic != MAGIC {
                return Err(PrologueError::Magic(magic));
            }
            if version != VERSION {
                return Err(PrologueError::Version(version));
            }
            if id != cluster_id.as_bytes() {
                return Err(PrologueError::WrongCluster {
                    expected: cluster_id.to_string(),
                    found: String::from_utf8_lossy(&id).into_owned(),
                });
            }
            Ok(Some(r.position()))
        }
        Err(DecodeError::Truncated { .. }) => {
            // A wrong magic is known after 4 bytes: no need to wait for the rest.
            if buf.len() >= 4 && u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) != MAGIC {
                return Err(PrologueError::Magic(u32::from_le_bytes([
                    buf[0], buf[1], buf[2], buf[3],
                ])));
            }
            Ok(None)
        }
        Err(e) => Err(PrologueError::Malformed(e)),
    }
}

fn encode_range(range: &Range, buf: &mut Vec<u8>) {
    buf.put_option(range.first.as_deref());
    buf.put_bool(range.first_inclusive);
    buf.put_option(range.last.as_deref());
    buf.put_bool(range.last_inclusive);
    buf.put_i32(encode_max(range.max));
}

fn decode_range(r: &mut Reader<'_>) -> Result<Range, DecodeError> {
    Ok(Range {
        first: r.option()?,
        first_inclusive: r.bool()?,
        last: r.option()?,
        last_inclusive: r.bool()?,
        max: decode_max(r)?,
    })
}

fn encode_max(max: Option<usize>) -> i32 {
    max.map_or(-1, |m| i32::try_from(m).unwrap_or(i32::MAX))
}

/// The wire's `max`: -1 (or any negative) means all.
fn decode_max(r: &mut Reader<'_>) -> Result<Option<usize>, DecodeError> {
    let m = r.i32()?;
    Ok(usize::try_from(m).ok())
}

fn encode_keys(keys: &[Key], buf: &mut Vec<u8>) {
    buf.put_list_in_order(keys, |b, k| b.put_bytes(k));
}

/// An update inside a `sequence` payload must be a sequence.
fn decode_sequence_payload(r: &mut Reader<'_>) -> Result<Vec<Update>, DecodeError> {
    let at = r.position();
    let bytes = r.bytes_ref()?;
    let update = Update::from_bytes(bytes).map_err(|e| DecodeError::Inside {
        at,
        what: "sequence",
        inner: Box::new(e),
    })?;
    match update {
        Update::Sequence(updates) | Update::SyncedSequence(updates) => {
            match updates.iter().find_map(Update::node_only_part) {
                Some(u) => Err(DecodeError::NodeOnly { at, what: "sequence", update: u.name() }),
                None => Ok(updates),
            }
        }
        other => Err(DecodeError::NotASequence { at, what: "sequence", update: other.name() }),
    }
}

impl Request {
    /// The command code (the low bits of the command word).
    pub fn code(&self) -> u32 {
        use Request::*;
        match self {
            Ping { .. } => 0x01,
            WhoMaster => 0x02,
            Exists { .. } => 0x07,
            Get { .. } => 0x08,
            Set { .. } => 0x09,
            Delete { .. } => 0x0a,
            Range { .. } => 0x0b,
            PrefixKeys { .. } => 0x0c,
            TestAndSet { .. } => 0x0d,
            CatchupEntries { .. } => 0x100,
            LastEntries { .. } => 0x0e,
            LastEntries2 { .. } => 0x40,
            LastEntries3 { .. } => 0x46,
            UserHook { .. } => 0x45,
            GetRouting => 0x18,
            GetNurseryCfg => 0x20,
            FetchHead => 0x101,
            NodeState => 0x102,
            RangeEntries { .. } => 0x0f,
            Sequence { synced: false, .. } => 0x10,
            Sequence { synced: true, .. } => 0x24,
            MultiGet { .. } => 0x11,
            ExpectProgressPossible => 0x12,
            Statistics => 0x13,
            UserFunction { .. } => 0x15,
            Assert { .. } => 0x16,
            GetKeyCount => 0x1a,
            Confirm { .. } => 0x1c,
            RevRangeEntries { .. } => 0x23,
            OptimizeDb => 0x25,
            DefragDb => 0x26,
            DeletePrefix { .. } => 0x27,
            Version => 0x28,
            AssertExists { .. } => 0x29,
            DropMaster => 0x30,
            MultiGetOption { .. } => 0x31,
            CurrentState => 0x32,
            Replace { .. } => 0x33,
            Nop => 0x41,
            FlushStore => 0x42,
            GetTxid => 0x43,
            CollapseTlogs { .. } => 0x14,
            GetDb => 0x1b,
            CopyDbToHead { .. } => 0x44,
        }
    }

    /// The command's name as in the protocol table.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }

    /// Whether the command changes the store (and so goes through consensus).
    pub fn is_update(&self) -> bool {
        use Request::*;
        matches!(
            self,
            Set { .. }
                | Delete { .. }
                | TestAndSet { .. }
                | Sequence { .. }
                | UserFunction { .. }
                | Confirm { .. }
                | DeletePrefix { .. }
                | Replace { .. }
                | Nop
        )
    }

    /// The read consistency, for reads.
    pub fn consistency(&self) -> Option<Consistency> {
        use Request::*;
        match self {
            Exists { c, .. }
            | Get { c, .. }
            | Range { c, .. }
            | PrefixKeys { c, .. }
            | RangeEntries { c, .. }
            | MultiGet { c, .. }
            | Assert { c, .. }
            | RevRangeEntries { c, .. }
            | AssertExists { c, .. }
            | UserHook { c, .. }
            | MultiGetOption { c, .. } => Some(*c),
            GetKeyCount => Some(Consistency::Consistent),
            _ => None,
        }
    }

    /// What a successful reply to this request carries.
    pub fn reply_kind(&self) -> ReplyKind {
        use Request::*;
        match self {
            Ping { .. } | Statistics | CurrentState => ReplyKind::String,
            NodeState => ReplyKind::NodeState,
            WhoMaster => ReplyKind::OptionString,
            Exists { .. } | ExpectProgressPossible => ReplyKind::Bool,
            Get { .. } => ReplyKind::String,
            Range { .. } | PrefixKeys { .. } => ReplyKind::Keys,
            TestAndSet { .. } | UserFunction { .. } | Replace { .. } => ReplyKind::OptionString,
            CatchupEntries { .. } => ReplyKind::EntryStream,
            LastEntries { .. } => ReplyKind::Unit,
            LastEntries2 { .. } | LastEntries3 { .. } => ReplyKind::ArakoonEntries,
            UserHook { .. } => ReplyKind::Hook,
            GetRouting | GetNurseryCfg => ReplyKind::String,
            FetchHead => ReplyKind::DbStream,
            RangeEntries { .. } | RevRangeEntries { .. } => ReplyKind::Entries,
            MultiGet { .. } => ReplyKind::Values,
            MultiGetOption { .. } => ReplyKind::OptionValues,
            GetKeyCount => ReplyKind::Int64,
            DeletePrefix { .. } => ReplyKind::Int32,
            Version => ReplyKind::Version,
            GetTxid => ReplyKind::Consistency,
            CollapseTlogs { .. } => ReplyKind::StepStream,
            GetDb => ReplyKind::DbFile,
            Set { .. }
            | Delete { .. }
            | Sequence { .. }
            | Assert { .. }
            | Confirm { .. }
            | OptimizeDb
            | DefragDb
            | AssertExists { .. }
            | DropMaster
            | Nop
            | FlushStore
            | CopyDbToHead { .. } => ReplyKind::Unit,
        }
    }

    /// Appends the command word and the arguments.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        use Request::*;
        buf.put_i32((MAGIC | self.code()) as i32);
        match self {
            Ping { client_id, cluster_id } => {
                buf.put_bytes(client_id.as_bytes());
                buf.put_bytes(cluster_id.as_bytes());
            }
            WhoMaster
            | ExpectProgressPossible
            | Statistics
            | GetKeyCount
            | OptimizeDb
            | DefragDb
            | Version
            | DropMaster
            | CurrentState
            | NodeState
            | Nop
            | FlushStore
            | GetTxid
            | GetDb
            | FetchHead
            | GetRouting
            | GetNurseryCfg => {}
            CollapseTlogs { keep } | CopyDbToHead { keep } => buf.put_i32(*keep),
            LastEntries { i } | LastEntries2 { i } | LastEntries3 { i } => buf.put_i64(*i),
            UserHook { c, name } => {
                c.encode(buf);
                buf.put_bytes(name.as_bytes());
            }
            Exists { c, key } | Get { c, key } | AssertExists { c, key } => {
                c.encode(buf);
                buf.put_bytes(key);
            }
            Set { key, value } | Confirm { key, value } => {
                buf.put_bytes(key);
                buf.put_bytes(value);
            }
            Delete { key } => buf.put_bytes(key),
            Range { c, range } | RangeEntries { c, range } | RevRangeEntries { c, range } => {
                c.encode(buf);
                encode_range(range, buf);
            }
            PrefixKeys { c, prefix, max } => {
                c.encode(buf);
                buf.put_bytes(prefix);
                buf.put_i32(encode_max(*max));
            }
            TestAndSet { key, expected, wanted } => {
                buf.put_bytes(key);
                buf.put_option(expected.as_deref());
                buf.put_option(wanted.as_deref());
            }
            CatchupEntries { from_i, to_i } => {
                buf.put_i64(*from_i as i64);
                buf.put_i64(*to_i as i64);
            }
            Sequence { updates, .. } => {
                buf.put_bytes(&Update::Sequence(updates.clone()).to_bytes());
            }
            MultiGet { c, keys } | MultiGetOption { c, keys } => {
                c.encode(buf);
                encode_keys(keys, buf);
            }
            UserFunction { name, arg } => {
                buf.put_bytes(name.as_bytes());
                buf.put_option(arg.as_deref());
            }
            Assert { c, key, value } => {
                c.encode(buf);
                buf.put_bytes(key);
                buf.put_option(value.as_deref());
            }
            DeletePrefix { prefix } => buf.put_bytes(prefix),
            Replace { key, wanted } => {
                buf.put_bytes(key);
                buf.put_option(wanted.as_deref());
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }

    /// Decodes one request from the start of `buf`. Strings above `string_bytes_max` are
    /// refused as soon as their length prefix is read.
    pub fn decode(buf: &[u8], string_bytes_max: u32) -> Result<Decoded, RequestError> {
        let mut r = Reader::with_limit(buf, string_bytes_max);
        let word = match r.i32() {
            Ok(w) => w as u32,
            Err(_) => return Ok(Decoded::NeedMore),
        };
        if word & 0xffff_0000 != MAGIC {
            return Err(RequestError::NoMagic(word));
        }
        let code = word & 0xffff;
        let command = command_name(code);
        match decode_args(code, &mut r) {
            Ok(Some(req)) => Ok(Decoded::Request(req, r.position())),
            Ok(None) => match code {
                0x17..=0x22 => Err(RequestError::NotSupported { code, name: command }),
                _ => Err(RequestError::UnknownCommand(code)),
            },
            Err(DecodeError::Truncated { .. }) => Ok(Decoded::NeedMore),
            Err(error) => Err(RequestError::Malformed { command, error }),
        }
    }
}

fn decode_args(code: u32, r: &mut Reader<'_>) -> Result<Option<Request>, DecodeError> {
    use Request::*;
    let c = |r: &mut Reader<'_>| Consistency::decode(r);
    Ok(Some(match code {
        0x01 => Ping { client_id: r.string("client id")?, cluster_id: r.string("cluster id")? },
        0x02 => WhoMaster,
        0x07 => Exists { c: c(r)?, key: r.bytes()? },
        0x08 => Get { c: c(r)?, key: r.bytes()? },
        0x09 => Set { key: r.bytes()?, value: r.bytes()? },
        0x0a => Delete { key: r.bytes()? },
        0x0b => Range { c: c(r)?, range: decode_range(r)? },
        0x0c => PrefixKeys { c: c(r)?, prefix: r.bytes()?, max: decode_max(r)? },
        0x0d => TestAndSet { key: r.bytes()?, expected: r.option()?, wanted: r.option()? },
        0x100 => {
            let at = r.position();
            let (from, to) = (r.i64()?, r.i64()?);
            if from < 0 || to < from {
                return Err(DecodeError::NotARange { at, what: "catchup_entries", from, to });
            }
            CatchupEntries { from_i: from as u64, to_i: to as u64 }
        }
        0x0e => LastEntries { i: r.i64()? },
        0x40 => LastEntries2 { i: r.i64()? },
        0x46 => LastEntries3 { i: r.i64()? },
        0x45 => UserHook { c: c(r)?, name: r.string("user hook name")? },
        0x18 => GetRouting,
        0x20 => GetNurseryCfg,
        0x101 => FetchHead,
        0x102 => NodeState,
        0x0f => RangeEntries { c: c(r)?, range: decode_range(r)? },
        0x10 => Sequence { updates: decode_sequence_payload(r)?, synced: false },
        0x24 => Sequence { updates: decode_sequence_payload(r)?, synced: true },
        0x11 => MultiGet { c: c(r)?, keys: r.list_in_order(STRING_BYTES_MIN, Reader::bytes)? },
        0x12 => ExpectProgressPossible,
        0x13 => Statistics,
        0x15 => UserFunction { name: r.string("user function name")?, arg: r.option()? },
        0x16 => Assert { c: c(r)?, key: r.bytes()?, value: r.option()? },
        0x1a => GetKeyCount,
        0x1c => Confirm { key: r.bytes()?, value: r.bytes()? },
        0x23 => RevRangeEntries { c: c(r)?, range: decode_range(r)? },
        0x25 => OptimizeDb,
        0x26 => DefragDb,
        0x27 => DeletePrefix { prefix: r.bytes()? },
        0x28 => Version,
        0x29 => AssertExists { c: c(r)?, key: r.bytes()? },
        0x30 => DropMaster,
        0x31 => {
            MultiGetOption { c: c(r)?, keys: r.list_in_order(STRING_BYTES_MIN, Reader::bytes)? }
        }
        0x32 => CurrentState,
        0x33 => Replace { key: r.bytes()?, wanted: r.option()? },
        0x41 => Nop,
        0x42 => FlushStore,
        0x43 => GetTxid,
        0x14 => CollapseTlogs { keep: r.i32()? },
        0x1b => GetDb,
        0x44 => CopyDbToHead { keep: r.i32()? },
        _ => return Ok(None),
    }))
}

/// The protocol table's name of a command code.
pub fn command_name(code: u32) -> &'static str {
    match code {
        0x01 => "ping",
        0x02 => "who_master",
        0x07 => "exists",
        0x08 => "get",
        0x09 => "set",
        0x0a => "delete",
        0x0b => "range",
        0x0c => "prefix_keys",
        0x0d => "test_and_set",
        0x0e => "last_entries",
        0x100 => "catchup_entries",
        0x101 => "fetch_head",
        0x102 => "node_state",
        0x18 => "get_routing",
        0x20 => "get_nursery_cfg",
        0x40 => "last_entries2",
        0x45 => "user_hook",
        0x46 => "last_entries3",
        0x0f => "range_entries",
        0x10 => "sequence",
        0x11 => "multi_get",
        0x12 => "expect_progress_possible",
        0x13 => "statistics",
        0x14 => "collapse_tlogs",
        0x15 => "user_function",
        0x16 => "assert",
        0x1a => "get_key_count",
        0x1b => "get_db",
        0x1c => "confirm",
        0x17..=0x22 => "nursery",
        0x23 => "rev_range_entries",
        0x24 => "synced_sequence",
        0x25 => "optimize_db",
        0x26 => "defrag_db",
        0x27 => "delete_prefix",
        0x28 => "version",
        0x29 => "assert_exists",
        0x30 => "drop_master",
        0x31 => "multi_get_option",
        0x32 => "current_state",
        0x33 => "replace",
        0x41 => "nop",
        0x42 => "flush_store",
        0x43 => "get_txid",
        0x44 => "copy_db_to_head",
        _ => "unknown",
    }
}

// ---- replies -------------------------------------------------------------------------------

/// Encodes a successful reply: rc 0, then the payload.
pub fn encode_ok(payload: &Payload, buf: &mut Vec<u8>) {
    buf.put_i32(Rc::Ok.code() as i32);
    encode_payload(payload, buf);
}

/// Encodes a payload as it follows rc 0 on the wire.
pub fn encode_payload(payload: &Payload, buf: &mut Vec<u8>) {
    match payload {
        Payload::Unit => {}
        Payload::Bool(b) => buf.put_bool(*b),
        Payload::String(s) => buf.put_bytes(s),
        Payload::OptionString(o) => buf.put_option(o.as_deref()),
        Payload::Keys(keys) => buf.put_list_reversed(keys, |b, k| b.put_bytes(k)),
        Payload::Entries(entries) => buf.put_list_reversed(entries, |b, (k, v)| {
            b.put_bytes(k);
            b.put_bytes(v);
        }),
        Payload::Values(values) => buf.put_list_reversed(values, |b, v| b.put_bytes(v)),
        Payload::OptionValues(values) => {
            buf.put_list_in_order(values, |b, v| b.put_option(v.as_deref()))
        }
        Payload::Int32(n) => buf.put_i32(*n),
        Payload::Int64(n) => buf.put_i64(*n),
        Payload::Version { major, minor, patch, info } => {
            buf.put_i32(*major);
            buf.put_i32(*minor);
            buf.put_i32(*patch);
            buf.put_bytes(info.as_bytes());
        }
        Payload::Consistency(c) => c.encode(buf),
        Payload::NodeState(state) => state.encode(buf),
        Payload::Encoded(bytes) => buf.extend_from_slice(bytes),
    }
}

/// Encodes a failure: the rc, then the message.
pub fn encode_error(rc: Rc, message: &[u8], buf: &mut Vec<u8>) {
    buf.put_i32(rc.code() as i32);
    buf.put_bytes(message);
}

/// A decoded reply: a payload or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(Payload),
    Failed { rc: Rc, message: Bytes },
}

/// Decodes one reply of the given kind from the start of `buf`: `Ok(None)` until it is all
/// there. An unknown return code is a decode error.
pub fn decode_reply(
    kind: ReplyKind,
    buf: &[u8],
    string_bytes_max: u32,
) -> Result<Option<(Reply, usize)>, DecodeError> {
    let mut r = Reader::with_limit(buf, string_bytes_max);
    match decode_reply_from(kind, &mut r) {
        Ok(reply) => Ok(Some((reply, r.position()))),
        Err(DecodeError::Truncated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A return code; one the protocol does not know is refused where it stands.
fn read_rc(r: &mut Reader<'_>, what: &'static str) -> Result<Rc, DecodeError> {
    let at = r.position();
    let code = r.i32()? as u32;
    Rc::from_code(code).ok_or(DecodeError::BadTag { at, what, tag: i64::from(code) })
}

fn decode_reply_from(kind: ReplyKind, r: &mut Reader<'_>) -> Result<Reply, DecodeError> {
    let rc = read_rc(r, "return code")?;
    if rc != Rc::Ok {
        return Ok(Reply::Failed { rc, message: r.bytes()? });
    }
    let s = STRING_BYTES_MIN;
    let payload = match kind {
        ReplyKind::Unit
        | ReplyKind::EntryStream
        | ReplyKind::DbStream
        | ReplyKind::ArakoonEntries
        | ReplyKind::Hook => Payload::Unit,
        ReplyKind::DbFile => Payload::Int64(r.i64()?),
        ReplyKind::StepStream => Payload::Int32(r.i32()?),
        ReplyKind::Bool => Payload::Bool(r.bool()?),
        ReplyKind::String => Payload::String(r.bytes()?),
        ReplyKind::OptionString => Payload::OptionString(r.option()?),
        ReplyKind::Keys => Payload::Keys(r.list_reversed(s, Reader::bytes)?),
        ReplyKind::Entries => {
            Payload::Entries(r.list_reversed(2 * s, |r| Ok((r.bytes()?, r.bytes()?)))?)
        }
        ReplyKind::Values => Payload::Values(r.list_reversed(s, Reader::bytes)?),
        ReplyKind::OptionValues => Payload::OptionValues(r.list_in_order(1, Reader::option)?),
        ReplyKind::Int32 => Payload::Int32(r.i32()?),
        ReplyKind::Int64 => Payload::Int64(r.i64()?),
        ReplyKind::Version => Payload::Version {
            major: r.i32()?,
            minor: r.i32()?,
            patch: r.i32()?,
            info: r.string("version info")?,
        },
        ReplyKind::Consistency => Payload::Consistency(Consistency::decode(r)?),
        ReplyKind::NodeState => Payload::NodeState(Box::new(NodeState::decode(r)?)),
    };
    Ok(Reply::Ok(payload))
}

// ---- catch-up stream -----------------------------------------------------------------------

/// One frame of our `catchup_entries` stream (after rc 0): an entry (int64 i, then the entry as
/// a string), the end (int64 -1), or, as the only frame, word that the slots asked for were
/// collapsed away (int64 -2, then int64 the first slot this node's TLog still holds: the slots
/// before it are in its head, fetched with `fetch_head`).
#[derive(Debug, Clone, PartialEq)]
pub enum EntryFrame {
    Entry(u64, Value),
    End,
    Collapsed { first_i: u64 },
}

impl EntryFrame {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            EntryFrame::Entry(i, value) => {
                buf.put_i64(*i as i64);
                buf.put_bytes(&value.to_bytes());
            }
            EntryFrame::End => buf.put_i64(-1),
            EntryFrame::Collapsed { first_i } => {
                buf.put_i64(-2);
                buf.put_i64(i64::try_from(*first_i).unwrap_or(i64::MAX));
            }
        }
    }

    /// Decodes one frame from the start of `buf`: `Ok(None)` until it is all there.
    pub fn decode(buf: &[u8]) -> Result<Option<(EntryFrame, usize)>, DecodeError> {
        let mut r = Reader::new(buf);
        match decode_entry_frame(&mut r) {
            Ok(f) => Ok(Some((f, r.position()))),
            Err(DecodeError::Truncated { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn decode_entry_frame(r: &mut Reader<'_>) -> Result<EntryFrame, DecodeError> {
    let i = r.i64()?;
    if i == -1 {
        return Ok(EntryFrame::End);
    }
    if i == -2 {
        let at = r.position();
        let first_i = r.i64()?;
        let first_i = u64::try_from(first_i).map_err(|_| DecodeError::Negative {
            at,
            what: "collapsed frame's first slot",
            value: first_i,
        })?;
        return Ok(EntryFrame::Collapsed { first_i });
    }
    let at = r.position();
    let bytes = r.bytes_ref()?;
    let i = u64::try_from(i).map_err(|_| DecodeError::Negative {
        at,
        what: "entry's slot",
        value: i,
    })?;
    // The value is whole here: any problem inside it, truncation included, is corruption.
    let value = Value::decode(&mut Reader::new(bytes)).map_err(|e| DecodeError::Inside {
        at,
        what: "entry",
        inner: Box::new(e),
    })?;
    Ok(EntryFrame::Entry(i, value))
}

// ---- collapse and get_db streams -----------------------------------------------------------

/// The steps a `collapse_tlogs` announces beyond the TLog files it folds and removes: Arakoon
/// announces the files plus 2 (or 0 when there is nothing to collapse).
pub const COLLAPSE_STEPS_BEYOND_FILES: usize = 2;

/// The TLog files a `collapse_tlogs` that announced `steps` steps folds and removes.
pub fn collapsed_files(steps: usize) -> usize {
    steps.saturating_sub(COLLAPSE_STEPS_BEYOND_FILES)
}

/// One step of a `collapse_tlogs` reply, as Arakoon 1.9 writes it: rc 0 and an int64 (Arakoon
/// sends a time since the collapse began; we send the milliseconds since it began). A failure is
/// what Arakoon's exception handler writes: the rc and a message string, then the connection
/// closes. What each step did is in the node's log, not on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFrame {
    Done { elapsed_ms: i64 },
    Failed { rc: Rc, message: String },
}

impl StepFrame {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            StepFrame::Done { elapsed_ms } => {
                buf.put_i32(Rc::Ok.code() as i32);
                buf.put_i64(*elapsed_ms);
            }
            StepFrame::Failed { rc, message } => encode_error(*rc, message.as_bytes(), buf),
        }
    }

    /// Decodes one frame from the start of `buf`: `Ok(None)` until it is all there.
    pub fn decode(buf: &[u8]) -> Result<Option<(StepFrame, usize)>, DecodeError> {
        let mut r = Reader::new(buf);
        let step = (|| {
            let rc = read_rc(&mut r, "step return code")?;
            if rc == Rc::Ok {
                Ok(StepFrame::Done { elapsed_ms: r.i64()? })
            } else {
                Ok(StepFrame::Failed { rc, message: r.string("step message")? })
            }
        })();
        match step {
            Ok(f) => Ok(Some((f, r.position()))),
            Err(DecodeError::Truncated { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One frame of our `fetch_head` stream (the private catch-up command; Arakoon's `get_db` is
/// [`ReplyKind::DbFile`], whose file holds these same frames), after rc 0: a header (string
/// cluster id, int64 applied slot, -1 for none), chunks of pairs (int32 n > 0, then n times string key, string value: the
/// head's pairs in its own layout, as Arakoon's get_db sent its database file), and the end
/// (int32 0, then int64 the number of pairs sent, a check against a cut stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbFrame {
    Header { cluster_id: String, applied: Option<u64> },
    Pairs(Vec<(Bytes, Bytes)>),
    End { pairs: u64 },
}

impl DbFrame {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            DbFrame::Header { cluster_id, applied } => {
                buf.put_bytes(cluster_id.as_bytes());
                buf.put_i64(applied.map_or(-1, |i| i as i64));
            }
            DbFrame::Pairs(pairs) => {
                buf.put_i32(pairs.len() as i32);
                for (k, v) in pairs {
                    buf.put_bytes(k);
                    buf.put_bytes(v);
                }
            }
            DbFrame::End { pairs } => {
                buf.put_i32(0);
                buf.put_i64(*pairs as i64);
            }
        }
    }

    /// Decodes one frame; `header` says whether the header is due. `Ok(None)` until it is all
    /// there.
    pub fn decode(buf: &[u8], header: bool) -> Result<Option<(DbFrame, usize)>, DecodeError> {
        let mut r = Reader::new(buf);
        let frame = (|| {
            if header {
                let cluster_id = r.string("cluster id")?;
                let applied = r.i64()?;
                return Ok(DbFrame::Header { cluster_id, applied: u64::try_from(applied).ok() });
            }
            let at = r.position();
            let n = r.i32()?;
            if n == 0 {
                return Ok(DbFrame::End { pairs: r.i64()?.max(0) as u64 });
            }
            let n = usize::try_from(n).map_err(|_| DecodeError::Negative {
                at,
                what: "get_db chunk's pair count",
                value: i64::from(n),
            })?;
            let mut pairs = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                pairs.push((r.bytes()?, r.bytes()?));
            }
            Ok(DbFrame::Pairs(pairs))
        })();
        match frame {
            Ok(f) => Ok(Some((f, r.position()))),
            Err(DecodeError::Truncated { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The default bound on one key or value on the client port.
pub const DEFAULT_VALUE_BYTES_MAX: u32 = VALUE_BYTES_MAX;

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Consistency {
        Consistency::AtLeast(7)
    }

    fn all_requests() -> Vec<Request> {
        use Request::*;
        let range = crate::store::Range {
            first: Some(b"a".to_vec()),
            first_inclusive: true,
            last: None,
            last_inclusive: false,
            max: Some(10),
        };
        vec![
            Ping { client_id: "me".into(), cluster_id: "demo".into() },
            WhoMaster,
            Exists { c: c(), key: b"k".to_vec() },
            Get { c: Consistency::Consistent, key: b"k".to_vec() },
            Set { key: b"k".to_vec(), value: vec![0; 300] },
            Delete { key: b"k".to_vec() },
            Range { c: Consistency::NoGuarantees, range: range.clone() },
            PrefixKeys { c: c(), prefix: b"p".to_vec(), max: None },
            TestAndSet { key: b"k".to_vec(), expected: None, wanted: Some(b"v".to_vec()) },
            CatchupEntries { from_i: 3, to_i: 9 },
            LastEntries { i: 3 },
            LastEntries2 { i: 4 },
            LastEntries3 { i: 5 },
            UserHook { c: c(), name: "h".into() },
            GetRouting,
            GetNurseryCfg,
            FetchHead,
            RangeEntries { c: c(), range: range.clone() },
            Sequence {
                updates: vec![
                    Update::Set { key: b"a".to_vec(), value: b"1".to_vec() },
                    Update::Delete { key: b"b".to_vec() },
                ],
                synced: false,
            },
            Sequence { updates: vec![Update::Nop], synced: true },
            MultiGet { c: c(), keys: vec![b"a".to_vec(), b"b".to_vec()] },
            ExpectProgressPossible,
            Statistics,
            UserFunction { name: "arakoon.incr".into(), arg: Some(b"x".to_vec()) },
            Assert { c: c(), key: b"k".to_vec(), value: None },
            GetKeyCount,
            Confirm { key: b"k".to_vec(), value: b"v".to_vec() },
            RevRangeEntries { c: c(), range },
            OptimizeDb,
            DefragDb,
            DeletePrefix { prefix: b"p".to_vec() },
            Version,
            AssertExists { c: c(), key: b"k".to_vec() },
            DropMaster,
            MultiGetOption { c: c(), keys: vec![b"a".to_vec()] },
            CurrentState,
            NodeState,
            Replace { key: b"k".to_vec(), wanted: None },
            Nop,
            FlushStore,
            GetTxid,
            CollapseTlogs { keep: 1 },
            CopyDbToHead { keep: 0 },
            CollapseTlogs { keep: -1 },
            GetDb,
        ]
    }

    #[test]
    fn every_request_round_trips_and_every_prefix_asks_for_more() {
        for req in all_requests() {
            let bytes = req.to_bytes();
            assert_eq!(
                Request::decode(&bytes, VALUE_BYTES_MAX).unwrap(),
                Decoded::Request(req.clone(), bytes.len()),
                "{}",
                req.name()
            );
            for cut in 0..bytes.len() {
                assert_eq!(
                    Request::decode(&bytes[..cut], VALUE_BYTES_MAX).unwrap(),
                    Decoded::NeedMore,
                    "{} cut at {cut}",
                    req.name()
                );
            }
        }
    }

    #[test]
    fn the_command_word_is_exactly_as_the_table_says() {
        let get = Request::Get { c: Consistency::Consistent, key: b"ab".to_vec() }.to_bytes();
        assert_eq!(get, [0x08, 0x00, 0xff, 0xb1, 0x00, 2, 0, 0, 0, b'a', b'b']);
        let mut prologue = Vec::new();
        encode_prologue("x", &mut prologue);
        assert_eq!(prologue, [0, 0, 0xff, 0xb1, 1, 0, 0, 0, 1, 0, 0, 0, b'x']);
        assert_eq!(decode_prologue(&prologue, "x"), Ok(Some(prologue.len())));
        assert_eq!(decode_prologue(&prologue[..6], "x"), Ok(None));
        assert!(matches!(decode_prologue(&prologue, "y"), Err(PrologueError::WrongCluster { .. })));
        assert_eq!(decode_prologue(&[1, 2, 3, 4], "x"), Err(PrologueError::Magic(0x0403_0201)));
    }

    #[test]
    fn bad_requests_get_the_table_s_return_codes() {
        let no_magic = 0x0000_0008u32.to_le_bytes();
        let e = Request::decode(&no_magic, VALUE_BYTES_MAX).unwrap_err();
        assert_eq!(e.rc(), Rc::NoMagic);
        let unknown = (MAGIC | 0x77).to_le_bytes();
        let e = Request::decode(&unknown, VALUE_BYTES_MAX).unwrap_err();
        assert_eq!((e.rc(), e.to_string().as_str()), (Rc::NotFound, "77: command not found"));
        let nursery = (MAGIC | 0x17).to_le_bytes();
        let e = Request::decode(&nursery, VALUE_BYTES_MAX).unwrap_err();
        assert_eq!(e.rc(), Rc::NotSupported);
        // A value above the limit is refused from its length prefix, before it arrives.
        let mut big = Vec::new();
        big.put_i32((MAGIC | 0x09) as i32);
        big.put_bytes(b"k");
        big.put_i32(1 << 20);
        let e = Request::decode(&big, 1024).unwrap_err();
        assert_eq!(e.rc(), Rc::BadInput);
        assert!(e.to_string().contains("exceeds the maximum"), "{e}");
        // A bool that is not 0 or 1.
        let mut bad = Vec::new();
        bad.put_i32((MAGIC | 0x0d) as i32);
        bad.put_bytes(b"k");
        bad.put_u8(7);
        assert_eq!(Request::decode(&bad, 1024).unwrap_err().rc(), Rc::BadInput);
    }

    #[test]
    fn reply_lists_are_reversed_on_the_wire_except_multi_get_option() {
        let keys = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let mut buf = Vec::new();
        encode_ok(&Payload::Keys(keys.clone()), &mut buf);
        let mut expected = vec![0, 0, 0, 0, 3, 0, 0, 0];
        for k in ["c", "b", "a"] {
            expected.extend_from_slice(&[1, 0, 0, 0, k.as_bytes()[0]]);
        }
        assert_eq!(buf, expected);
        assert_eq!(
            decode_reply(ReplyKind::Keys, &buf, VALUE_BYTES_MAX).unwrap(),
            Some((Reply::Ok(Payload::Keys(keys)), buf.len()))
        );
        let opts = vec![Some(b"x".to_vec()), None];
        let mut buf = Vec::new();
        encode_ok(&Payload::OptionValues(opts.clone()), &mut buf);
        assert_eq!(buf, [0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, b'x', 0]);
        assert_eq!(
            decode_reply(ReplyKind::OptionValues, &buf, VALUE_BYTES_MAX).unwrap(),
            Some((Reply::Ok(Payload::OptionValues(opts)), buf.len()))
        );
        let mut buf = Vec::new();
        encode_error(Rc::NotMaster, b"n1", &mut buf);
        assert_eq!(buf, [4, 0, 0, 0, 2, 0, 0, 0, b'n', b'1']);
        assert_eq!(
            decode_reply(ReplyKind::Unit, &buf[..5], VALUE_BYTES_MAX).unwrap(),
            None,
            "a partial reply asks for more"
        );
    }

    #[test]
    fn a_collapse_of_n_files_announces_n_plus_2_steps_and_the_client_counts_n_back() {
        assert_eq!(collapsed_files(3 + COLLAPSE_STEPS_BEYOND_FILES), 3);
        assert_eq!(collapsed_files(0), 0, "nothing to collapse announces 0 steps");
    }

    #[test]
    fn step_and_db_frames_round_trip() {
        let mut buf = Vec::new();
        let step = StepFrame::Done { elapsed_ms: 12 };
        step.encode(&mut buf);
        assert_eq!(StepFrame::decode(&buf).unwrap(), Some((step, buf.len())));
        assert_eq!(StepFrame::decode(&buf[..buf.len() - 1]).unwrap(), None);
        let frames = [
            DbFrame::Header { cluster_id: "c".into(), applied: Some(41) },
            DbFrame::Pairs(vec![(b"@k".to_vec(), b"v".to_vec()), (b"*applied".to_vec(), vec![1])]),
            DbFrame::End { pairs: 2 },
        ];
        let mut buf = Vec::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        let mut at = 0;
        for (k, f) in frames.iter().enumerate() {
            let (got, n) = DbFrame::decode(&buf[at..], k == 0).unwrap().unwrap();
            assert_eq!(&got, f);
            assert_eq!(DbFrame::decode(&buf[at..at + n - 1], k == 0).unwrap(), None);
            at += n;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn entry_frames_round_trip() {
        let v = Value::client(vec![Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }]);
        let mut buf = Vec::new();
        EntryFrame::Entry(5, v.clone()).encode(&mut buf);
        EntryFrame::End.encode(&mut buf);
        let (first, n) = EntryFrame::decode(&buf).unwrap().unwrap();
        assert_eq!(first, EntryFrame::Entry(5, v));
        assert_eq!(EntryFrame::decode(&buf[n..]).unwrap(), Some((EntryFrame::End, 8)));
        assert_eq!(EntryFrame::decode(&buf[..n - 1]).unwrap(), None);
        // The collapsed frame: -2 and the first slot held, typed.
        let mut buf = Vec::new();
        EntryFrame::Collapsed { first_i: 4096 }.encode(&mut buf);
        let mut want = (-2i64).to_le_bytes().to_vec();
        want.extend_from_slice(&4096i64.to_le_bytes());
        assert_eq!(buf, want);
        assert_eq!(
            EntryFrame::decode(&buf).unwrap(),
            Some((EntryFrame::Collapsed { first_i: 4096 }, 16))
        );
        assert_eq!(EntryFrame::decode(&buf[..15]).unwrap(), None);
        buf[8..].copy_from_slice(&(-7i64).to_le_bytes());
        assert!(EntryFrame::decode(&buf).is_err());
    }
}
