//! The meaning of every update, written once for both stores.
//!
//! A value is applied into an [`Overlay`]: pending writes over a read-only [`View`] of the
//! store. Each update of a client value gets a child overlay of its own, merged only if the
//! update succeeds, so a failed update leaves nothing behind; a sequence applies its members into
//! one child, so the first failure discards all of it. The store then commits the top overlay's
//! writes and the new applied index in one atomic write.

use super::user_function::{UserContext, UserFunctionRegistry};
use super::{MasterRecord, StoreError, UpdateFailure, UpdateOutput, UpdateResult};
use crate::rc::Rc;
use crate::value::{Bytes, Key, Update, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Read access to user keys and internal ("admin") keys.
pub(crate) trait View {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// User keys starting with `prefix`, ascending.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Key>, StoreError>;
}

/// Pending writes over a view.
pub(crate) struct Overlay<'a> {
    base: &'a dyn View,
    /// `None`: deleted.
    pub writes: BTreeMap<Key, Option<Bytes>>,
    pub admin: BTreeMap<Key, Option<Bytes>>,
    pub master: Option<MasterRecord>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn View) -> Overlay<'a> {
        Overlay { base, writes: BTreeMap::new(), admin: BTreeMap::new(), master: None }
    }

    fn put(&mut self, key: &[u8], value: Option<Bytes>) {
        self.writes.insert(key.to_vec(), value);
    }

    /// Takes over a child's writes (the child succeeded).
    fn absorb(&mut self, child: Pending) {
        self.writes.extend(child.writes);
        self.admin.extend(child.admin);
        if child.master.is_some() {
            self.master = child.master;
        }
    }
}

/// What a finished child overlay leaves behind.
pub(crate) struct Pending {
    writes: BTreeMap<Key, Option<Bytes>>,
    admin: BTreeMap<Key, Option<Bytes>>,
    master: Option<MasterRecord>,
}

impl Overlay<'_> {
    fn finish(self) -> Pending {
        Pending { writes: self.writes, admin: self.admin, master: self.master }
    }
}

impl View for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Key>, StoreError> {
        let mut keys: std::collections::BTreeSet<Key> =
            self.base.keys_with_prefix(prefix)?.into_iter().collect();
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if v.is_some() {
                keys.insert(k.clone());
            } else {
                keys.remove(k);
            }
        }
        Ok(keys.into_iter().collect())
    }
}

fn fail(rc: Rc, message: impl Into<Bytes>) -> UpdateResult {
    Err(UpdateFailure::new(rc, message))
}

/// Applies a whole value into `top`; one result per update (one for a MasterSet value).
pub(crate) fn apply_value(
    top: &mut Overlay<'_>,
    value: &Value,
    registry: &UserFunctionRegistry,
) -> Result<Vec<UpdateResult>, StoreError> {
    match value {
        Value::MasterSet { master, lease_start } => {
            top.master = Some(MasterRecord { master: master.clone(), lease_start: *lease_start });
            Ok(vec![Ok(UpdateOutput::Unit)])
        }
        Value::Client { updates, .. } => {
            let mut results = Vec::with_capacity(updates.len());
            for update in updates.iter() {
                results.push(apply_isolated(top, update, registry)?);
            }
            Ok(results)
        }
    }
}

/// Applies a batch of values that must continue the store at slot `next_i` into one overlay
/// (the stores' `apply_many`); one list of results per value.
pub(crate) fn apply_batch(
    top: &mut Overlay<'_>,
    next_i: u64,
    values: &[(u64, Value)],
    registry: &UserFunctionRegistry,
) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
    let mut all = Vec::with_capacity(values.len());
    for (expected, (i, value)) in (next_i..).zip(values) {
        if *i != expected {
            return Err(StoreError::OutOfOrder { i: *i, expected });
        }
        all.push(apply_value(top, value, registry)?);
    }
    Ok(all)
}

/// [`apply_batch`] for replay: the order is checked first, then the values are moved into
/// `top` ([`apply_value_owned`]) and `values` is left empty.
pub(crate) fn apply_batch_replayed(
    top: &mut Overlay<'_>,
    next_i: u64,
    values: &mut Vec<(u64, Value)>,
    registry: &UserFunctionRegistry,
) -> Result<(), StoreError> {
    for (expected, (i, _)) in (next_i..).zip(values.iter()) {
        if *i != expected {
            return Err(StoreError::OutOfOrder { i: *i, expected });
        }
    }
    for (_, value) in values.drain(..) {
        apply_value_owned(top, value, registry)?;
    }
    Ok(())
}

/// Applies a value nobody waits on (replay): the same as [`apply_value`] with the results
/// dropped, but a Set's key and value are moved into the overlay rather than copied.
pub(crate) fn apply_value_owned(
    top: &mut Overlay<'_>,
    value: Value,
    registry: &UserFunctionRegistry,
) -> Result<(), StoreError> {
    let Value::Client { mut updates, .. } = value else {
        return apply_value(top, &value, registry).map(drop);
    };
    // A value decoded for the replay is held only here; a shared one is applied by reference.
    let Some(updates) = Arc::get_mut(&mut updates) else {
        return apply_value(top, &Value::Client { synced: false, updates }, registry).map(drop);
    };
    for update in updates.iter_mut().map(|u| std::mem::replace(u, Update::Nop)) {
        match update {
            // A Set cannot fail: what apply_isolated would do, without the copy.
            Update::Set { key, value } => {
                top.writes.insert(key, Some(value));
            }
            // A failed update left nothing behind, and nobody waits for its result.
            other => drop(apply_isolated(top, &other, registry)?),
        }
    }
    Ok(())
}

/// Whether `update` writes nothing when it fails: it decides (reads, compares) before its only
/// writes, so it can be applied straight into its parent. The compound updates (a sequence, a user
/// function) may write and then fail; they go through a child overlay.
fn decides_before_writing(update: &Update) -> bool {
    match update {
        Update::Set { .. }
        | Update::Delete { .. }
        | Update::TestAndSet { .. }
        | Update::Replace { .. }
        | Update::MasterSet { .. }
        | Update::Nop
        | Update::Assert { .. }
        | Update::AssertExists { .. }
        | Update::AdminSet { .. }
        | Update::DeletePrefix { .. }
        | Update::AssertRange { .. }
        | Update::SetInterval { .. }
        | Update::SetRoutingDelta { .. } => true,
        Update::Sequence(_) | Update::SyncedSequence(_) | Update::UserFunction { .. } => false,
    }
}

/// Applies one update so that it leaves nothing behind if it fails: straight into `parent` when
/// it decides before writing (a child overlay per update cost an allocation and a merge for
/// every Set of a replay), otherwise in a child overlay merged only on success.
fn apply_isolated(
    parent: &mut Overlay<'_>,
    update: &Update,
    registry: &UserFunctionRegistry,
) -> Result<UpdateResult, StoreError> {
    if decides_before_writing(update) {
        return apply_update(parent, update, registry);
    }
    let mut child = Overlay::new(&*parent);
    let result = apply_update(&mut child, update, registry)?;
    let pending = child.finish();
    if result.is_ok() {
        parent.absorb(pending);
    }
    Ok(result)
}

/// The semantics of one update. `Err(StoreError)` only when the store itself fails.
fn apply_update(
    o: &mut Overlay<'_>,
    update: &Update,
    registry: &UserFunctionRegistry,
) -> Result<UpdateResult, StoreError> {
    let unit = Ok(UpdateOutput::Unit);
    Ok(match update {
        Update::Set { key, value } => {
            o.put(key, Some(value.clone()));
            unit
        }
        Update::Delete { key } => {
            if o.get(key)?.is_none() {
                return Ok(fail(Rc::NotFound, key.clone()));
            }
            o.put(key, None);
            unit
        }
        Update::TestAndSet { key, expected, wanted } => {
            let current = o.get(key)?;
            if &current == expected {
                o.put(key, wanted.clone());
            }
            Ok(UpdateOutput::Previous(current))
        }
        Update::Replace { key, value } => {
            let current = o.get(key)?;
            o.put(key, value.clone());
            Ok(UpdateOutput::Previous(current))
        }
        Update::MasterSet { master, lease_start } => {
            o.master = Some(MasterRecord { master: master.clone(), lease_start: *lease_start });
            unit
        }
        Update::Sequence(members) | Update::SyncedSequence(members) => {
            // All members in one child: the first failure discards the whole sequence.
            let mut child = Overlay::new(&*o);
            for member in members {
                if let Err(failure) = apply_update(&mut child, member, registry)? {
                    return Ok(Err(failure));
                }
            }
            let pending = child.finish();
            o.absorb(pending);
            unit
        }
        Update::Nop => unit,
        Update::UserFunction { name, arg } => {
            let Some(function) = registry.get(name) else {
                return Ok(fail(Rc::BadInput, format!("unknown user function {name:?}")));
            };
            let mut ctx = FunctionContext { overlay: Overlay::new(&*o), error: None };
            let returned = function(&mut ctx, arg.as_deref());
            if let Some(e) = ctx.error {
                return Err(e);
            }
            match returned {
                Ok(out) => {
                    let pending = ctx.overlay.finish();
                    o.absorb(pending);
                    Ok(UpdateOutput::Returned(out))
                }
                Err(refused) => fail(Rc::UserFunctionFailure, refused.to_string()),
            }
        }
        Update::Assert { key, value } => {
            if &o.get(key)? == value {
                unit
            } else {
                fail(Rc::AssertionFailed, key.clone())
            }
        }
        Update::AssertExists { key } => {
            if o.get(key)?.is_some() {
                unit
            } else {
                fail(Rc::AssertionFailed, key.clone())
            }
        }
        Update::AdminSet { key, value } => {
            o.admin.insert(key.clone(), value.clone());
            unit
        }
        Update::DeletePrefix { prefix } => {
            let keys = o.keys_with_prefix(prefix)?;
            for k in &keys {
                o.put(k, None);
            }
            Ok(UpdateOutput::Count(keys.len() as i64))
        }
        Update::AssertRange { prefix, keys } => {
            // As Arakoon: the list as decoded, against the keys in ascending order; no sorting,
            // no de-duplication (a list in another order, or with a key twice, fails).
            let actual = o.keys_with_prefix(prefix)?;
            if actual == *keys {
                unit
            } else {
                // Arakoon's message: the assertion, then the keys found.
                fail(
                    Rc::AssertionFailed,
                    crate::update_text::range_assertion_failure(keys, &actual),
                )
            }
        }
        Update::SetInterval { .. } | Update::SetRoutingDelta { .. } => fail(
            Rc::NotSupported,
            format!("{} (nursery) is not supported by arakoon-rs", update.name()),
        ),
    })
}

/// What a user function sees: the transaction so far.
struct FunctionContext<'a> {
    overlay: Overlay<'a>,
    /// A store failure met inside the function: reported after it returns.
    error: Option<StoreError>,
}

impl UserContext for FunctionContext<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Bytes> {
        match self.overlay.get(key) {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.overlay.put(key, Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.overlay.put(key, None);
    }
}
