//! Reads, local and admin commands: the read gate, then the answer.
//!
//! Every read passes [`Shell::read_gate`], the one function that says whether this node may
//! serve a read at the consistency asked for (the master lease for a consistent read). A read of
//! the store takes the store's snapshot in the same turn (the read's linearization point: the
//! lease held and every acknowledged write was applied) and is handed to the outbox as a
//! [`ReadJob`] that runs beside the core (shell/read_job.rs); a read of one key, local and admin
//! commands are answered here.

use super::read_job::{point_read, reads_the_store, Live, ReadJob};
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
        let seconds = self.probes.seconds;
        let t0 = seconds();
        let request = match point_read(request, &mut Live(&self.store))? {
            Ok((reply, timed)) => {
                if let Some((op, size)) = timed {
                    self.stats().record_secs(op, seconds() - t0, now_ms, size);
                }
                out.reply(waiter, reply);
                return Ok(());
            }
            Err(request) => request,
        };
        if reads_the_store(&request) {
            let job = ReadJob {
                snapshot: self.store.snapshot(),
                request,
                reply_bytes_max: self.config.reply_bytes_max,
                stats: self.stats.clone(),
                now_ms,
                probes: self.probes,
            };
            out.read(waiter, job);
            return Ok(());
        }
        let reply = self.read(now_ms, request)?;
        out.reply(waiter, reply);
        Ok(())
    }

    fn read(&mut self, now_ms: u64, request: Request) -> Result<Reply, ShellError> {
        let fail = |rc: Rc, message: Vec<u8>| failed(rc, message);
        if let Request::GetRouting | Request::GetNurseryCfg = request {
            // Arakoon reads the routing on the master only; a cluster without one has none.
            return Ok(match self.read_gate(now_ms, &request, Consistency::Consistent) {
                Ok(()) => fail(Rc::NotFound, b"Not_found".to_vec()),
                Err(refusal) => refusal,
            });
        }
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
                let stats = self.stats();
                let node_is = stats.node_is(&self.config.names[self.config.me], s.applied());
                let mem = (self.probes.memory)();
                Reply::Ok(Payload::String(stats.encode(&node_is, &mem)))
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
