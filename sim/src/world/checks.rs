//! What must hold after (and during) every run.
//!
//! - agreement: one value per slot across every node's committed TLog and every value a node
//!   ever applied;
//! - applied prefixes: nodes that applied the same slot hold the same store;
//! - no acknowledged write lost: every write a client saw succeed is in the committed log;
//! - at most one valid lease at any moment (checked as the run goes).

use super::node::SimNode;
use arakoon_node::store::Store;
use arakoon_node::tlog::for_each_committed;
use arakoon_node::value::{Update, Value};
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// The first violated check, said for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
}

/// Every committed slot of every node's log, checked for agreement; returns the union (a value
/// a node applied is borrowed from its history, one read from a log only is kept as read).
pub fn agreement(nodes: &[SimNode]) -> Result<BTreeMap<u64, Cow<'_, Value>>, Violation> {
    let mut chosen: BTreeMap<u64, (&str, Cow<'_, Value>)> = BTreeMap::new();
    for n in nodes {
        for (i, v) in &n.applied {
            see(&mut chosen, &n.name, *i, Cow::Borrowed(&**v))?;
        }
        let mut failure = None;
        let walked = for_each_committed::<()>(&n.disk, 0, false, &mut |e| {
            if let Err(v) = see(&mut chosen, &n.name, e.i, Cow::Owned(e.value)) {
                failure = Some(v);
                return Err(());
            }
            Ok(())
        });
        if let Some(v) = failure {
            return Err(v);
        }
        if let Err(e) = walked {
            return Err(Violation { check: "tlog", detail: format!("{}: {e}", n.name) });
        }
    }
    Ok(chosen.into_iter().map(|(i, (_, v))| (i, v)).collect())
}

/// Node `node` holds `v` at slot `i`: the first value seen there is the slot's, and any other
/// breaks agreement.
fn see<'a>(
    chosen: &mut BTreeMap<u64, (&'a str, Cow<'a, Value>)>,
    node: &'a str,
    i: u64,
    v: Cow<'a, Value>,
) -> Result<(), Violation> {
    match chosen.entry(i) {
        Entry::Occupied(seen) => {
            let (other, w) = seen.get();
            // Nodes' applied values of a slot are mostly one shared value: the same, unread.
            if !std::ptr::eq::<Value>(&**w, &*v) && **w != *v {
                return Err(Violation {
                    check: "agreement",
                    detail: format!("slot {i}: {node} holds {v:?} but {other} holds {w:?}"),
                });
            }
            Ok(())
        }
        Entry::Vacant(slot) => {
            slot.insert((node, v));
            Ok(())
        }
    }
}

/// Nodes at the same applied slot hold identical stores.
pub fn applied_prefixes(nodes: &[SimNode]) -> Result<(), Violation> {
    type Entries = Vec<(Vec<u8>, Vec<u8>)>;
    let mut by_slot: BTreeMap<Option<u64>, (&str, Entries)> = BTreeMap::new();
    for n in nodes {
        let Some(state) = &n.state else { continue };
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            state.store.entries().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match by_slot.get(&state.store.applied()) {
            Some((other, theirs)) if *theirs != entries => {
                return Err(Violation {
                    check: "applied prefixes",
                    detail: format!(
                        "{} and {other} both applied slot {:?} but hold different stores",
                        n.name,
                        state.store.applied()
                    ),
                })
            }
            Some(_) => {}
            None => {
                by_slot.insert(state.store.applied(), (&n.name, entries));
            }
        }
    }
    Ok(())
}

/// Every value written by an acknowledged set is in the committed log.
pub fn no_acknowledged_write_lost(
    chosen: &BTreeMap<u64, Cow<'_, Value>>,
    acknowledged: &BTreeSet<Vec<u8>>,
) -> Result<(), Violation> {
    let mut written = BTreeSet::new();
    fn collect<'a>(u: &'a Update, out: &mut BTreeSet<&'a [u8]>) {
        match u {
            Update::Set { value, .. } => {
                out.insert(value.as_slice());
            }
            Update::Sequence(us) | Update::SyncedSequence(us) => {
                for u in us {
                    collect(u, out);
                }
            }
            _ => {}
        }
    }
    for v in chosen.values() {
        if let Value::Client { updates, .. } = &**v {
            for u in updates.iter() {
                collect(u, &mut written);
            }
        }
    }
    for value in acknowledged {
        if !written.contains(value.as_slice()) {
            return Err(Violation {
                check: "no acknowledged write lost",
                detail: format!(
                    "the write of {:?} was acknowledged but is in no committed slot",
                    String::from_utf8_lossy(value)
                ),
            });
        }
    }
    Ok(())
}
