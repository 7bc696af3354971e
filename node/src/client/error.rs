//! Why a client's request, question or exchange failed: one type per layer (an exchange on one
//! connection, a question to one node, a request with master discovery and fail-over), each
//! case typed, so that callers decide on the case (retry, report unknown, give up) and not on
//! a text.

use crate::protocol::client::{Payload, Reply};
use crate::rc::Rc;
use crate::value::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Why a read ([`super::Client::read`]) has no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// A consistent read, sent to the master.
    #[error(transparent)]
    Master(#[from] ClientError),
    /// A dirty or at-least read refused by the first node that answered.
    #[error("{node}: {rc}: {}", String::from_utf8_lossy(message))]
    Refused {
        node: String,
        rc: Rc,
        /// The node's message, as it sent it.
        message: Bytes,
    },
    /// No node answered a dirty or at-least read: one note per node, in node order.
    #[error("no node answered: {}", notes.iter().map(|(n, e)| format!("{n}: {e}")).collect::<Vec<_>>().join("; "))]
    NoNodeAnswered { notes: Vec<(String, AskError)> },
}

/// A node named (by name or by client address) that is not one of the cluster's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no node {node:?} (known: {})", known.join(", "))]
pub struct UnknownNode {
    pub node: String,
    pub known: Vec<String>,
}

/// An I/O failure on a connection, kept comparable and cloneable (an `io::Error` is neither).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text}")]
pub struct IoFailure {
    pub kind: std::io::ErrorKind,
    /// The operating system's own text for it ("Connection refused (os error 111)"): it comes
    /// from outside, so it is kept as it was said.
    pub text: String,
}

impl From<std::io::Error> for IoFailure {
    fn from(e: std::io::Error) -> IoFailure {
        IoFailure { kind: e.kind(), text: e.to_string() }
    }
}

/// Why a request that was sent got no (whole) answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoAnswer {
    /// The bytes that came back are not a reply to the request.
    #[error("bad reply: {0}")]
    BadReply(crate::llio::DecodeError),
    /// The reply grew beyond the client's bound (`reply_bytes_max`).
    #[error("reply too large (over {bytes_max} bytes)")]
    TooLarge { bytes_max: u32 },
    #[error("the node closed the connection")]
    Closed,
    #[error("{0}")]
    Io(IoFailure),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Why one exchange on a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExchangeError {
    /// Nothing was sent: safe to retry anywhere.
    #[error("{0}")]
    NotSent(IoFailure),
    /// Sent, but no (whole) answer came.
    #[error("{0}")]
    NoAnswer(NoAnswer),
}

/// Why an update's outcome cannot be known: it may or may not have taken effect.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnknownOutcome {
    /// The master lost its lease (`no_longer_master`) or went down (`going_down`) with the
    /// update in flight.
    #[error("{rc}: {}", String::from_utf8_lossy(message))]
    MasterLeft {
        rc: Rc,
        /// The node's message, as it sent it.
        message: Bytes,
    },
    /// The update was sent and no answer came.
    #[error("{0}")]
    NoAnswer(NoAnswer),
}

/// The last thing that stood in the way of a request, when no master served it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoMaster {
    #[error("no attempt made")]
    NoAttempt,
    /// Master discovery found none.
    #[error("{0}")]
    NotFound(NoMasterFound),
    /// The node taken for the master said it is not; it named the master it knows.
    #[error("not_master (master: {})", String::from_utf8_lossy(master))]
    NotMaster { master: Bytes },
    /// The master lost its lease or went down while a read was in flight (a read is retried).
    #[error("{0}")]
    MasterLeft(Rc),
    #[error("{0}")]
    NotSent(IoFailure),
    #[error("{0}")]
    NoAnswer(NoAnswer),
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The node answered with an error: the request did not take effect (not_found,
    /// assertion_failed, bad_input, ...).
    #[error("{rc}: {}", String::from_utf8_lossy(message))]
    Failed {
        rc: Rc,
        /// The node's message, as it sent it.
        message: Bytes,
    },
    /// The update may or may not have taken effect.
    #[error("outcome unknown: {0}")]
    Unknown(UnknownOutcome),
    /// No master could be found or reached within the attempts.
    #[error("no master: {0}")]
    NoMaster(NoMaster),
    /// The master answered with another kind of reply than the request's (a bug on one side,
    /// or another program on the port).
    #[error("{}: {command}: unexpected reply {answer:?}", Rc::UnknownFailure)]
    Unexpected { command: &'static str, answer: Box<Payload> },
}

impl ClientError {
    pub fn rc(&self) -> Option<Rc> {
        match self {
            ClientError::Failed { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

/// Why one node could not be asked a question.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AskError {
    #[error("connecting to {addr} timed out")]
    ConnectTimeout { addr: SocketAddr },
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: IoFailure },
    /// The connection broke while the prologue was sent.
    #[error("{addr}: {source}")]
    Prologue { addr: SocketAddr, source: IoFailure },
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The node answered with a failure where a typed answer was due.
    #[error("{node}: {command} refused: {rc}: {message}")]
    Refused {
        node: String,
        command: &'static str,
        rc: Rc,
        /// The node's message, as it sent it.
        message: String,
    },
    /// The node answered with another kind of reply than the request's.
    #[error("{node}: {command} answered {answer:?}")]
    Unexpected { node: String, command: &'static str, answer: Box<Payload> },
}

/// What one node said when asked for the master.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MasterNote {
    #[error("knows no master")]
    KnowsNone,
    /// It answered `who_master` with something else than a name.
    #[error("{0:?}")]
    OddAnswer(Box<Reply>),
    #[error("{0}")]
    Unreachable(AskError),
    /// It named a node that is not in the client's configuration.
    #[error("names an unknown master")]
    NamesUnknown { name: Bytes },
    /// The node named as master did not confirm it is.
    #[error("does not confirm")]
    DoesNotConfirm,
}

/// Why no master was found: what each node said, in node order.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", notes.iter().map(|(node, note)| format!("{node}: {note}")).collect::<Vec<_>>().join("; "))]
pub struct NoMasterFound {
    /// The node's name and what it said.
    pub notes: Vec<(String, MasterNote)>,
}
