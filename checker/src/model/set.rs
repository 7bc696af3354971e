//! A set: `add` an element, `read` the whole set (Jepsen's set workload checked for
//! linearizability, not only for lost elements).

use super::kv::Bytes;
use super::{bytes_of, show_bytes, FromRaw, Model, RawError};
use crate::import::RawCall;
use crate::value::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetOp {
    Add(Bytes),
    Read,
}

/// The set model; elements are compared as bytes (integers as their decimal text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Set;

impl Model for Set {
    type Input = SetOp;
    type Output = BTreeSet<Bytes>;
    type State = BTreeSet<Bytes>;

    fn init(&self) -> BTreeSet<Bytes> {
        BTreeSet::new()
    }

    fn step(
        &self,
        state: &BTreeSet<Bytes>,
        input: &SetOp,
        output: Option<&BTreeSet<Bytes>>,
    ) -> Option<BTreeSet<Bytes>> {
        match input {
            SetOp::Add(e) => {
                let mut next = state.clone();
                next.insert(e.clone());
                Some(next)
            }
            SetOp::Read => output.is_none_or(|seen| seen == state).then(|| state.clone()),
        }
    }

    fn is_read_only(&self, input: &SetOp) -> bool {
        matches!(input, SetOp::Read)
    }

    fn describe(&self, input: &SetOp, output: Option<&BTreeSet<Bytes>>) -> String {
        match input {
            SetOp::Add(e) => format!("add {}", show_bytes(e)),
            SetOp::Read => match output {
                Some(seen) => format!("read -> {}", self.describe_state(seen)),
                None => "read -> ?".into(),
            },
        }
    }

    fn describe_state(&self, state: &BTreeSet<Bytes>) -> String {
        let parts: Vec<String> = state.iter().map(|e| show_bytes(e)).collect();
        format!("#{{{}}}", parts.join(" "))
    }
}

impl FromRaw for Set {
    fn input(&self, call: &RawCall) -> Result<SetOp, RawError> {
        match call.f.as_str() {
            "add" => Ok(SetOp::Add(bytes_of(&call.value)?)),
            "read" => Ok(SetOp::Read),
            other => Err(RawError::UnknownFunction {
                model: "set",
                f: other.to_string(),
                known: "add, read",
            }),
        }
    }

    fn output(&self, input: &SetOp, value: &Value) -> Result<Option<BTreeSet<Bytes>>, RawError> {
        match input {
            SetOp::Read => {
                let items = value
                    .as_list()
                    .ok_or_else(|| RawError::expected("a list (a read answers one)", value))?;
                Ok(Some(items.iter().map(bytes_of).collect::<Result<_, _>>()?))
            }
            SetOp::Add(_) => Ok(None),
        }
    }
}
