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

/// A user function: its argument in, an optional value out, or why it refused. A refusal fails
/// the update with `user_function_failure` and the error's text as the message.
pub type UserFunction =
    fn(&mut dyn UserContext, Option<&[u8]>) -> Result<Option<Bytes>, UserFunctionError>;

/// Why a user function refused its update (nothing it wrote is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserFunctionError {
    /// `function` takes an argument (`expected` says which) and was called without one.
    #[error("{function} needs {expected} as its argument")]
    NoArgument { function: &'static str, expected: &'static str },
    /// `arakoon.incr`: the value at `key` is not a decimal `i64`.
    #[error("the value at {} is not a decimal counter", String::from_utf8_lossy(key))]
    NotACounter { key: Bytes },
    /// `arakoon.incr`: the counter is at `i64::MAX`.
    #[error("counter overflow")]
    CounterOverflow,
    /// `arakoon.append`: the argument has no NUL between the key and the suffix.
    #[error("arakoon.append: no NUL after the key")]
    NoNulAfterKey,
    /// A function registered by the embedder refused in its own words (as Arakoon's user
    /// functions raise a failure with a message): the text comes from that function.
    #[error("{0}")]
    Refused(String),
}

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
fn incr(ctx: &mut dyn UserContext, arg: Option<&[u8]>) -> Result<Option<Bytes>, UserFunctionError> {
    let key =
        arg.ok_or(UserFunctionError::NoArgument { function: "arakoon.incr", expected: "a key" })?;
    let current: i64 = match ctx.get(key) {
        None => 0,
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| UserFunctionError::NotACounter { key: key.to_vec() })?,
    };
    let next =
        current.checked_add(1).ok_or(UserFunctionError::CounterOverflow)?.to_string().into_bytes();
    ctx.set(key, &next);
    Ok(Some(next))
}

/// `arakoon.append`, argument `key` NUL `suffix`: appends `suffix` to the value at `key`
/// (absent = empty) and returns the new value.
fn append(
    ctx: &mut dyn UserContext,
    arg: Option<&[u8]>,
) -> Result<Option<Bytes>, UserFunctionError> {
    let arg = arg.ok_or(UserFunctionError::NoArgument {
        function: "arakoon.append",
        expected: "`key\\0suffix`",
    })?;
    let split = arg.iter().position(|&b| b == 0).ok_or(UserFunctionError::NoNulAfterKey)?;
    let (key, suffix) = (&arg[..split], &arg[split + 1..]);
    let mut value = ctx.get(key).unwrap_or_default();
    value.extend_from_slice(suffix);
    ctx.set(key, &value);
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction over a map, as the store's overlay is one.
    #[derive(Default)]
    struct Map(BTreeMap<Bytes, Bytes>);

    impl UserContext for Map {
        fn get(&mut self, key: &[u8]) -> Option<Bytes> {
            self.0.get(key).cloned()
        }
        fn set(&mut self, key: &[u8], value: &[u8]) {
            self.0.insert(key.to_vec(), value.to_vec());
        }
        fn delete(&mut self, key: &[u8]) {
            self.0.remove(key);
        }
    }

    #[test]
    fn the_built_ins_refuse_with_a_kind_and_arakoons_text() {
        let mut ctx = Map::default();
        let e = incr(&mut ctx, None).unwrap_err();
        assert_eq!(e.to_string(), "arakoon.incr needs a key as its argument");
        ctx.set(b"k", b"ten");
        let e = incr(&mut ctx, Some(b"k")).unwrap_err();
        assert_eq!(e, UserFunctionError::NotACounter { key: b"k".to_vec() });
        assert_eq!(e.to_string(), "the value at k is not a decimal counter");
        ctx.set(b"k", i64::MAX.to_string().as_bytes());
        assert_eq!(incr(&mut ctx, Some(b"k")), Err(UserFunctionError::CounterOverflow));
        let e = append(&mut ctx, None).unwrap_err();
        assert_eq!(e.to_string(), "arakoon.append needs `key\\0suffix` as its argument");
        assert_eq!(append(&mut ctx, Some(b"k")), Err(UserFunctionError::NoNulAfterKey));
        assert_eq!(append(&mut ctx, Some(b"a\0bc")), Ok(Some(b"bc".to_vec())));
        assert_eq!(incr(&mut ctx, Some(b"n")), Ok(Some(b"1".to_vec())));
    }
}
