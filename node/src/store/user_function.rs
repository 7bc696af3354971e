//! User functions: named, deterministic updates compiled into the binary.
//!
//! A user function runs inside the transaction of its update: it reads and writes user keys
//! through a [`UserContext`], and what it writes is kept only if it returns `Ok`. It must be
//! deterministic (no clock, no randomness, no I/O): every node applies it and must reach the
//! same state.

use crate::value::Bytes;
use std::collections::BTreeMap;

/// The transaction as a user function sees it.
pub trait UserContext {
    fn get(&mut self, key: &[u8]) -> Option<Bytes>;
    fn set(&mut self, key: &[u8], value: &[u8]);
    fn delete(&mut self, key: &[u8]);
}

/// A user function: its argument in, an optional value out, or a failure message.
pub type UserFunction = fn(&mut dyn UserContext, Option<&[u8]>) -> Result<Option<Bytes>, String>;

/// The functions a node knows, by name.
#[derive(Clone)]
pub struct UserFunctionRegistry {
    functions: BTreeMap<String, UserFunction>,
}

impl std::fmt::Debug for UserFunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.functions.keys()).finish()
    }
}

impl Default for UserFunctionRegistry {
    /// The built-ins: `arakoon.incr` and `arakoon.append`.
    fn default() -> Self {
        let mut r = UserFunctionRegistry::empty();
        r.register("arakoon.incr", incr);
        r.register("arakoon.append", append);
        r
    }
}

impl UserFunctionRegistry {
    pub fn empty() -> Self {
        UserFunctionRegistry { functions: BTreeMap::new() }
    }

    pub fn register(&mut self, name: &str, f: UserFunction) {
        self.functions.insert(name.to_string(), f);
    }

    pub fn get(&self, name: &str) -> Option<UserFunction> {
        self.functions.get(name).copied()
    }

    pub fn names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }
}

/// `arakoon.incr`, argument a key: adds one to the decimal counter stored there (absent = 0)
/// and returns the new value.
fn incr(ctx: &mut dyn UserContext, arg: Option<&[u8]>) -> Result<Option<Bytes>, String> {
    let key = arg.ok_or("arakoon.incr needs a key as its argument")?;
    let current = match ctx.get(key) {
        None => 0i64,
        Some(v) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            format!("the value at {} is not a decimal counter", String::from_utf8_lossy(key))
        })?,
    };
    let next = current.checked_add(1).ok_or("counter overflow")?.to_string().into_bytes();
    ctx.set(key, &next);
    Ok(Some(next))
}

/// `arakoon.append`, argument `key` NUL `suffix`: appends `suffix` to the value at `key`
/// (absent = empty) and returns the new value.
fn append(ctx: &mut dyn UserContext, arg: Option<&[u8]>) -> Result<Option<Bytes>, String> {
    let arg = arg.ok_or("arakoon.append needs `key\\0suffix` as its argument")?;
    let split = arg.iter().position(|&b| b == 0).ok_or("arakoon.append: no NUL after the key")?;
    let (key, suffix) = (&arg[..split], &arg[split + 1..]);
    let mut value = ctx.get(key).unwrap_or_default();
    value.extend_from_slice(suffix);
    ctx.set(key, &value);
    Ok(Some(value))
}
