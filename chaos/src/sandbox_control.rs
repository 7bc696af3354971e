//! How commands reach the sandbox supervisor: one JSON line over the Unix socket
//! `D/control.sock`, answered by one JSON line, then the connection closes.
//!
//! A socket rather than command files because every command wants an answer (did the node
//! stop? was it running at all?), and the answer must come from the one process that owns the
//! node processes. The supervisor handles one command at a time, so two operators cannot
//! restart the same node at once; the socket lives in the sandbox directory, so it has the
//! directory's permissions.

use crate::proxy::LinkState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// What to damage on a stopped node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptTarget {
    Tlog,
    Store,
}

/// How to damage it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptHow {
    Bitflip,
    Truncate,
}

/// A command for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Is the supervisor there?
    Ping,
    /// kill -9.
    Kill { node: String },
    /// SIGTERM, then kill -9 after a grace period.
    Stop { node: String },
    /// SIGSTOP.
    Pause { node: String },
    /// SIGCONT.
    Resume { node: String },
    /// Stop if running, then start.
    Restart { node: String },
    /// Stop, delete the home, `arakoon -catchup-only`, start.
    Wipe { node: String },
    /// Damage a stopped node's files.
    Corrupt { node: String, target: CorruptTarget, how: CorruptHow },
    /// Set every link: those named get the state given, the others pass.
    Net { links: BTreeMap<String, LinkState> },
    /// `up` saw a master and returns: the supervisor no longer dies with it.
    Detach,
    /// Stop every node and the proxies, then exit.
    Shutdown,
}

impl Request {
    /// How long the answer may take: a wipe waits for a catch-up, a shutdown for every node.
    pub fn answer_within(&self) -> Duration {
        match self {
            Request::Wipe { .. } => Duration::from_secs(240),
            Request::Shutdown | Request::Restart { .. } | Request::Stop { .. } => {
                Duration::from_secs(60)
            }
            _ => Duration::from_secs(30),
        }
    }
}

/// The supervisor's answer: done, or refused and why (`refusal`; the CLI turns it into its
/// exit code, `cli/src/exit.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    /// Set exactly when `ok` is not.
    pub refusal: Option<Refusal>,
    pub message: String,
}

/// Why the supervisor refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The request does not read (another version of `arakoon-admin` sent it).
    BadRequest,
    /// The request cannot be done as asked: an unknown node, a node not running (or running
    /// where it must be stopped), a binary that does not start.
    BadInput,
    /// What the request needs is not reachable: a wipe with no peer to catch up from.
    Unreachable,
}

impl Answer {
    pub fn ok(message: impl Into<String>) -> Answer {
        Answer { ok: true, refusal: None, message: message.into() }
    }

    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Answer {
        Answer { ok: false, refusal: Some(refusal), message: message.into() }
    }
}

/// Why a command could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the control socket (the operating system's error says why).
    #[error(
        "the sandbox in {dir} is not running: no supervisor answers on {socket} ({source}); \
         start one with `arakoon-admin sandbox up --dir {dir}`"
    )]
    NotRunning { dir: String, socket: String, source: io::Error },
    #[error("the sandbox supervisor ({socket}) did not answer: {why}; its log: {log}")]
    /// `why` is boxed to keep the errors that carry a `ControlError` small.
    NoAnswer { socket: String, why: Box<Silence>, log: String },
}

/// Why a supervisor that was reached gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Silence {
    /// Sending the request, or setting the socket's timeouts.
    #[error("{0}")]
    Send(io::Error),
    #[error("{source} (waited {waited:?})")]
    Read { source: LineError, waited: Duration },
    #[error("a bad answer {answer:?}: {source}")]
    BadAnswer { answer: String, source: serde_json::Error },
}

/// Why one line of the control protocol could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the connection closed")]
    Closed,
    #[error("a line too long or cut off")]
    TooLong,
}

/// Sends one request to the supervisor of the sandbox in `dir` and returns its answer.
pub fn send(dir: &Path, request: &Request) -> Result<Answer, ControlError> {
    let socket = crate::sandbox::socket_path(dir);
    let not_running = |source| ControlError::NotRunning {
        dir: dir.display().to_string(),
        socket: socket.display().to_string(),
        source,
    };
    let no_answer = |why| ControlError::NoAnswer {
        socket: socket.display().to_string(),
        why: Box::new(why),
        log: dir.join("supervisor.log").display().to_string(),
    };
    let stream = UnixStream::connect(&socket).map_err(not_running)?;
    let send = |e| no_answer(Silence::Send(e));
    stream.set_read_timeout(Some(request.answer_within())).map_err(send)?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).map_err(send)?;
    let mut line =
        serde_json::to_vec(request).map_err(|e| no_answer(Silence::Send(io::Error::from(e))))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(send)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .take_line(&mut reply, ANSWER_BYTES_MAX)
        .map_err(|source| no_answer(Silence::Read { source, waited: request.answer_within() }))?;
    serde_json::from_str(&reply)
        .map_err(|source| no_answer(Silence::BadAnswer { answer: reply.clone(), source }))
}

/// The longest request or answer line read.
pub const ANSWER_BYTES_MAX: u64 = 1 << 20;
pub const REQUEST_BYTES_MAX: u64 = 1 << 20;

/// Reads one line of at most `max` bytes.
pub trait TakeLine {
    fn take_line(self, line: &mut String, max: u64) -> Result<(), LineError>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(self, line: &mut String, max: u64) -> Result<(), LineError> {
        let n = self.take(max).read_line(line)?;
        if n == 0 {
            return Err(LineError::Closed);
        }
        if !line.ends_with('\n') {
            return Err(LineError::TooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line_each() {
        let r = Request::Corrupt {
            node: "n1".into(),
            target: CorruptTarget::Tlog,
            how: CorruptHow::Bitflip,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"command":"corrupt","node":"n1","target":"tlog","how":"bitflip"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
    }

    #[test]
    fn a_sandbox_without_supervisor_says_how_to_start_one() {
        let tmp = tempfile::tempdir().unwrap();
        let err = send(tmp.path(), &Request::Ping).unwrap_err();
        assert!(err.to_string().contains("sandbox up --dir"), "{err}");
    }
}
