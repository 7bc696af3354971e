//! Update admission: a client's update request becomes the machine's `ClientUpdate`, or is
//! refused before it costs a round (an unknown user function, a value beyond the size limits).

use super::{failed, Outbox, Reply, Shell, ShellError};
use crate::consensus::Input;
use crate::protocol::client::{Payload, Request};
use crate::rc::Rc;
use crate::store::Store;
use crate::value::Update;

/// What becomes of an update request.
enum Admission {
    Propose(Update),
    /// Answered without a round: refused, or a confirm of the value already there.
    Answer(Reply),
}

impl<S: Store, W> Shell<S, W> {
    /// Admits an update request and proposes it; the client is answered once its slot is
    /// applied, or when the machine refuses it.
    pub(super) fn update(
        &mut self,
        now_ms: u64,
        request: Request,
        waiter: W,
        out: &mut impl Outbox<W>,
    ) -> Result<(), ShellError> {
        let update = match self.admit(now_ms, request)? {
            Admission::Propose(update) => update,
            Admission::Answer(reply) => {
                out.reply(waiter, reply);
                return Ok(());
            }
        };
        let (op, size) = super::statistics::op_of(&update);
        let Some(id) = self.wait(waiter, out) else { return Ok(()) };
        self.stats().begin(id.0, op, now_ms, size);
        self.feed(now_ms, Input::ClientUpdate { id, update }, out)
    }

    fn admit(&self, now_ms: u64, request: Request) -> Result<Admission, ShellError> {
        let refuse = |rc: Rc, msg: String| Ok(Admission::Answer(failed(rc, msg)));
        let update = match request {
            Request::Set { key, value } => Update::Set { key, value },
            Request::Delete { key } => Update::Delete { key },
            Request::TestAndSet { key, expected, wanted } => {
                Update::TestAndSet { key, expected, wanted }
            }
            Request::Sequence { updates, synced: false } => Update::Sequence(updates),
            Request::Sequence { updates, synced: true } => Update::SyncedSequence(updates),
            Request::UserFunction { name, arg } => {
                if crate::store::UserFunctionRegistry::default().get(&name).is_none() {
                    // Arakoon's words (`%S`-quoted name).
                    let quoted = crate::update_text::ocaml_quoted(name.as_bytes());
                    let msg = format!("User function {quoted} could not be found");
                    return refuse(Rc::BadInput, msg);
                }
                Update::UserFunction { name, arg }
            }
            Request::Confirm { key, value } => {
                // Sets only if different: on the master, an equal value needs no round.
                if self.machine.lease_valid(now_ms)
                    && self.store.get(&key)?.as_deref() == Some(value.as_slice())
                {
                    return Ok(Admission::Answer(Reply::Ok(Payload::Unit)));
                }
                Update::Set { key, value }
            }
            Request::DeletePrefix { prefix } => Update::DeletePrefix { prefix },
            Request::Replace { key, wanted } => Update::Replace { key, value: wanted },
            Request::Nop => Update::Nop,
            other => {
                return refuse(Rc::UnknownFailure, format!("{} is not an update", other.name()))
            }
        };
        // Values are held to max_value_size before the core (server/limits.rs, as Arakoon
        // does); a sequence over the buffer limit is refused here, after the master check, as
        // Arakoon orders them; so is an update the master could not ship within its lease
        // (ours: proposed, it would lapse the lease and be proposed again by every new master).
        let too_large =
            crate::server::limits::sequence_too_large(&update, self.config.max_buffer_size)
                .or_else(|| {
                    crate::server::limits::unshippable(&update, self.config.ship_bytes_max)
                });
        match too_large {
            Some(msg) if self.machine.lease_valid(now_ms) => refuse(Rc::BadInput, msg),
            Some(_) => {
                let master = self.master_name(now_ms).unwrap_or_else(|| "None".into());
                refuse(Rc::NotMaster, master)
            }
            None => Ok(Admission::Propose(update)),
        }
    }
}
