//! A mutex with Knossos semantics: acquire when free, release when held; who holds it is not
//! recorded (a release by another process than the holder is allowed). A failed acquire or
//! release did not happen.

use super::{FromRaw, Model, RawError};
use crate::import::RawCall;
use crate::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutexOp {
    Acquire,
    Release,
}

/// The mutex model; the state is "held".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mutex;

impl Model for Mutex {
    type Input = MutexOp;
    type Output = ();
    type State = bool;

    fn init(&self) -> bool {
        false
    }

    fn step(&self, held: &bool, input: &MutexOp, _output: Option<&()>) -> Option<bool> {
        match input {
            MutexOp::Acquire => (!held).then_some(true),
            MutexOp::Release => held.then_some(false),
        }
    }

    fn describe(&self, input: &MutexOp, _output: Option<&()>) -> String {
        match input {
            MutexOp::Acquire => "acquire".into(),
            MutexOp::Release => "release".into(),
        }
    }

    fn describe_state(&self, held: &bool) -> String {
        if *held { "held" } else { "free" }.into()
    }
}

impl FromRaw for Mutex {
    fn input(&self, call: &RawCall) -> Result<MutexOp, RawError> {
        match call.f.as_str() {
            "acquire" | "lock" => Ok(MutexOp::Acquire),
            "release" | "unlock" => Ok(MutexOp::Release),
            other => Err(RawError::UnknownFunction {
                model: "mutex",
                f: other.to_string(),
                known: "acquire, release",
            }),
        }
    }

    fn output(&self, _input: &MutexOp, _value: &Value) -> Result<Option<()>, RawError> {
        Ok(None)
    }
}
