//! Reads, local and admin commands: the read gate, then the answer from the store.
//!
//! Every read passes [`Shell::read_gate`], the one function that says whether this node may
//! serve a read at the consistency asked for (the master lease for a consistent read). The
//! answers are read in the shell's own turn, so a read never sees a slot that is committed but
//! not applied.

use super::statistics::Op;
use super::{failed, Outbox, Reply, Shell, ShellError};
use crate::consensus::{Input, RoleName};
use crate::protocol::client::{Consistency, Payload, Request, SPOKEN_VERSION};
use crate::rc::Rc;
use crate::store::{Scan, Store};

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
        // Arakoon: drop_master is refused on a single node and a no-op (OK) on a node that is not
        // the master.
        if let Request::DropMaster = request {
            let me = &self.config.names[self.config.me];
            if self.config.names.len() == 1 {
                let msg = "drop master not supported for singletons";
                out.reply(waiter, failed(Rc::NotSupported, msg));
                return Ok(());
            }
            if self.master_name(now_ms).as_ref() != Some(me) {
                out.reply(waiter, Reply::Ok(Payload::Unit));
                return Ok(());
            }
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
        // Reads are answered at once, so the core's millisecond clock would time them at 0 s;
        // the host's clock (zero in the simulator) is read around the store call instead.
        let now = now_ms;
        let clock = self.probes.seconds;
        let t0 = clock();
        let took = || clock() - t0;
        if let Request::GetRouting | Request::GetNurseryCfg = request {
            // Arakoon reads the routing on the master only; a cluster without one has none.
            return Ok(match self.read_gate(now_ms, &request, Consistency::Consistent) {
                Ok(()) => fail(Rc::NotFound, b"Not_found".to_vec()),
                Err(refusal) => refusal,
            });
        }
        let (s, stats) = (&self.store, &mut self.stats);
        // Listing reads are held to reply_bytes_max (ours; Arakoon builds a reply of any size).
        let max = self.config.reply_bytes_max;
        let too_large = |what: &str, max: usize| {
            let msg = format!(
                "{what}: the reply would pass reply_bytes_max ({max} bytes); ask for fewer with \
                 max, or a narrower range, and go on from the last key"
            );
            failed(Rc::BadInput, msg.into_bytes())
        };
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
                Some(v) => {
                    stats.record_secs(Op::Get, took(), now, v.len());
                    Reply::Ok(Payload::String(v))
                }
                // Arakoon's store raises Not_found, which its handler answers by that name.
                None => fail(Rc::NotFound, b"Not_found".to_vec()),
            },
            Request::Range { range, .. } => match s.scan_within(&Scan::Range(&range), max)? {
                Some(found) => {
                    stats.record_secs(Op::Range, took(), now, found.len());
                    Reply::Ok(Payload::Keys(found.into_iter().map(|(k, _)| k).collect()))
                }
                None => too_large("range", max),
            },
            Request::PrefixKeys { prefix, max: count, .. } => {
                match s.scan_within(&Scan::PrefixKeys(&prefix, count), max)? {
                    Some(found) => {
                        stats.record_secs(Op::PrefixKeys, took(), now, found.len());
                        Reply::Ok(Payload::Keys(found.into_iter().map(|(k, _)| k).collect()))
                    }
                    None => too_large("prefix_keys", max),
                }
            }
            Request::RangeEntries { range, .. } => {
                match s.scan_within(&Scan::RangeEntries(&range), max)? {
                    Some(entries) => {
                        stats.record_secs(Op::RangeEntries, took(), now, entries.len());
                        Reply::Ok(Payload::Entries(entries))
                    }
                    None => too_large("range_entries", max),
                }
            }
            Request::RevRangeEntries { range, .. } => {
                match s.scan_within(&Scan::RevRangeEntries(&range), max)? {
                    Some(entries) => {
                        stats.record_secs(Op::RevRangeEntries, took(), now, entries.len());
                        Reply::Ok(Payload::Entries(entries))
                    }
                    None => too_large("rev_range_entries", max),
                }
            }
            Request::MultiGet { keys, .. } => match s.multi_get(&keys)? {
                Ok(values) => {
                    stats.record_secs(Op::MultiGet, took(), now, 0);
                    Reply::Ok(Payload::Values(values))
                }
                Err(missing) => fail(Rc::NotFound, missing),
            },
            Request::MultiGetOption { keys, .. } => {
                let values = s.multi_get_option(&keys)?;
                stats.record_secs(Op::MultiGetOption, took(), now, 0);
                Reply::Ok(Payload::OptionValues(values))
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
            // Arakoon checks the read's consistency first (the gate above), then looks the hook
            // up; no hooks are registered on this node.
            Request::UserHook { name, .. } => fail(Rc::UserHookNotFound, name.into_bytes()),
            Request::GetKeyCount => {
                Reply::Ok(Payload::Int64(i64::try_from(s.key_count()?).unwrap_or(i64::MAX)))
            }
            Request::ExpectProgressPossible => {
                Reply::Ok(Payload::Bool(self.machine.expect_progress_possible(now_ms)))
            }
            Request::Statistics => {
                let node_is = self.stats.node_is(&self.config.names[self.config.me], s.applied());
                let mem = (self.probes.memory)();
                Reply::Ok(Payload::String(self.stats.encode(&node_is, &mem)))
            }
            Request::Version => {
                let (major, minor, patch) = SPOKEN_VERSION;
                let info = crate::server::limits::version_info();
                Reply::Ok(Payload::Version { major, minor, patch, info })
            }
            Request::CurrentState => {
                let name = super::state_name::arakoon_state_name(
                    self.machine.role(),
                    self.master_name(now_ms).is_some(),
                );
                Reply::Ok(Payload::String(name.as_bytes().to_vec()))
            }
            Request::NodeState => Reply::Ok(Payload::NodeState(Box::new(self.node_state(now_ms)))),
            // Arakoon answers At_least 0 when nothing is applied.
            Request::GetTxid => {
                Reply::Ok(Payload::Consistency(Consistency::AtLeast(s.applied().unwrap_or(0))))
            }
            Request::OptimizeDb | Request::DefragDb => {
                if self.machine.role() == RoleName::Master {
                    // Arakoon's words (`_not_if_master`): run them on a slave.
                    fail(Rc::NotSupported, b"Operation cannot be performed on master node".to_vec())
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
