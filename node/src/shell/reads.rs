//! Reads, local and admin commands: the read gate, then the answer from the store.
//!
//! Every read passes [`Shell::read_gate`], the one function that says whether this node may
//! serve a read at the consistency asked for (the master lease for a consistent read). The
//! answers are read in the shell's own turn, so a read never sees a slot that is committed but
//! not applied.

use super::{failed, Outbox, Reply, Shell, ShellError};
use crate::consensus::{Input, RoleName};
use crate::protocol::client::{Consistency, Payload, Request, SPOKEN_VERSION};
use crate::rc::Rc;
use crate::store::Store;

impl<S: Store, W> Shell<S, W> {
    /// The name of the master this node knows of, if any.
    pub fn master_name(&self, now_ms: u64) -> Option<String> {
        self.machine.master(now_ms).map(|k| self.config.names[k].clone())
    }

    /// Whether `request`, a read at consistency `c`, may be served here now; `Err` holds the
    /// refusal. A consistent read needs the master lease.
    pub fn read_gate(&self, now_ms: u64, request: &Request, c: Consistency) -> Result<(), Reply> {
        // Planted bug: range reads slip past the lease (a gate written for get alone).
        if crate::planted!(RangeReadWithoutLease) && matches!(request, Request::RangeEntries { .. })
        {
            return Ok(());
        }
        let applied = self.store.applied();
        self.machine.read_permission(now_ms, c.into(), applied).map_err(|refusal| {
            let (rc, message) = crate::rc::read_refusal_of(&refusal, &self.machine.config().names);
            failed(rc, message)
        })
    }

    /// Answers a read, a local or an admin command (drop_master answers later, through the
    /// machine).
    pub(super) fn answer(
        &mut self,
        now_ms: u64,
        request: Request,
        waiter: W,
        out: &mut impl Outbox<W>,
    ) -> Result<(), ShellError> {
        if let Some(c) = request.consistency() {
            if let Err(refusal) = self.read_gate(now_ms, &request, c) {
                out.reply(waiter, refusal);
                return Ok(());
            }
        }
        if let Request::DropMaster = request {
            if let Some(id) = self.wait(waiter, out) {
                self.feed(now_ms, Input::DropMaster { id }, out)?;
            }
            return Ok(());
        }
        let reply = self.read(now_ms, request)?;
        out.reply(waiter, reply);
        Ok(())
    }

    fn read(&mut self, now_ms: u64, request: Request) -> Result<Reply, ShellError> {
        let fail = |rc: Rc, message: Vec<u8>| failed(rc, message);
        let s = &self.store;
        Ok(match request {
            Request::Ping { cluster_id, .. } => {
                if cluster_id != self.config.cluster_id {
                    let msg = format!("this node is in cluster {:?}", self.config.cluster_id);
                    fail(Rc::WrongCluster, msg.into_bytes())
                } else {
                    let (a, b, c) = SPOKEN_VERSION;
                    Reply::Ok(Payload::String(format!("Arakoon {a}.{b}.{c}").into_bytes()))
                }
            }
            Request::WhoMaster => {
                Reply::Ok(Payload::OptionString(self.master_name(now_ms).map(String::into_bytes)))
            }
            Request::Exists { key, .. } => Reply::Ok(Payload::Bool(s.exists(&key)?)),
            Request::Get { key, .. } => match s.get(&key)? {
                Some(v) => Reply::Ok(Payload::String(v)),
                None => fail(Rc::NotFound, key),
            },
            Request::Range { range, .. } => Reply::Ok(Payload::Keys(s.range(&range)?)),
            Request::PrefixKeys { prefix, max, .. } => {
                Reply::Ok(Payload::Keys(s.prefix_keys(&prefix, max)?))
            }
            Request::RangeEntries { range, .. } => {
                Reply::Ok(Payload::Entries(s.range_entries(&range)?))
            }
            Request::RevRangeEntries { range, .. } => {
                Reply::Ok(Payload::Entries(s.rev_range_entries(&range)?))
            }
            Request::MultiGet { keys, .. } => match s.multi_get(&keys)? {
                Ok(values) => Reply::Ok(Payload::Values(values)),
                Err(missing) => fail(Rc::NotFound, missing),
            },
            Request::MultiGetOption { keys, .. } => {
                Reply::Ok(Payload::OptionValues(s.multi_get_option(&keys)?))
            }
            Request::Assert { key, value, .. } => {
                if s.get(&key)? == value {
                    Reply::Ok(Payload::Unit)
                } else {
                    fail(Rc::AssertionFailed, key)
                }
            }
            Request::AssertExists { key, .. } => {
                if s.exists(&key)? {
                    Reply::Ok(Payload::Unit)
                } else {
                    fail(Rc::AssertionFailed, key)
                }
            }
            Request::GetKeyCount => {
                Reply::Ok(Payload::Int64(i64::try_from(s.key_count()?).unwrap_or(i64::MAX)))
            }
            Request::ExpectProgressPossible => {
                Reply::Ok(Payload::Bool(self.machine.expect_progress_possible(now_ms)))
            }
            Request::Statistics => Reply::Ok(Payload::String(self.statistics(now_ms))),
            Request::Version => {
                let (major, minor, patch) = SPOKEN_VERSION;
                let info = format!("arakoon-rs {}", env!("CARGO_PKG_VERSION"));
                Reply::Ok(Payload::Version { major, minor, patch, info })
            }
            Request::CurrentState => {
                Reply::Ok(Payload::String(self.current_state(now_ms).into_bytes()))
            }
            Request::GetTxid => Reply::Ok(Payload::Consistency(match s.applied() {
                Some(i) => Consistency::AtLeast(i),
                None => Consistency::NoGuarantees,
            })),
            Request::OptimizeDb | Request::DefragDb => {
                if self.machine.role() == RoleName::Master {
                    let msg =
                        "optimize_db and defrag_db are refused on the master; run them on a slave";
                    fail(Rc::NotSupported, msg.into())
                } else {
                    self.store.flush()?;
                    Reply::Ok(Payload::Unit)
                }
            }
            Request::FlushStore => {
                self.store.flush()?;
                Reply::Ok(Payload::Unit)
            }
            other => {
                let msg = format!("{} cannot be answered here", other.name());
                fail(Rc::UnknownFailure, msg.into_bytes())
            }
        })
    }
}
