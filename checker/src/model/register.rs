//! A register of integers: read, write, and (for the compare-and-set register) cas.
//!
//! Three flavours, because the recorded histories mean different things by the same words:
//! - [`Register::plain`]: read and write; a read of nil saw the unset register.
//! - [`Register::cas`], Knossos semantics: a failed operation did not happen, and a read that
//!   answered nil is a read whose value nobody recorded, so it matches any state (Knossos's
//!   `CASRegister` accepts `(read nil)` everywhere; its histories rely on that).
//! - [`Register::etcd`], as Jepsen's etcd tests record it: a read of nil saw the unset register,
//!   and a compare-and-set reported as failed is an observation that the value was not the
//!   expected one at some point between call and return.

use super::{FromRaw, Model, RawError};
use crate::import::RawCall;
use crate::value::Value;

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    Read,
    Write(i64),
    /// Sets the second value if the register holds the first.
    Cas(i64, i64),
}

/// What a register operation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOut {
    /// A read's value; `None` for the unset register.
    Value(Option<i64>),
    /// A compare-and-set that found another value (only with `failed_cas_observes`).
    CasFailed,
}

/// The register model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// The value before any write; `None` for unset (reads answer nil).
    pub initial: Option<i64>,
    /// Whether cas operations are allowed (the compare-and-set register) or rejected.
    pub cas: bool,
    /// Whether a failed cas observed another value instead of not happening.
    pub failed_cas_observes: bool,
    /// Whether a read that answered nil says nothing (Knossos) rather than "unset".
    pub nil_read_unknown: bool,
}

impl Register {
    /// A plain read/write register.
    pub fn plain(initial: Option<i64>) -> Register {
        Register { initial, cas: false, failed_cas_observes: false, nil_read_unknown: false }
    }

    /// The compare-and-set register with Knossos semantics.
    pub fn cas(initial: Option<i64>) -> Register {
        Register { initial, cas: true, failed_cas_observes: false, nil_read_unknown: true }
    }

    /// The compare-and-set register of Jepsen's etcd tests (and porcupine's etcd histories).
    pub fn etcd(initial: Option<i64>) -> Register {
        Register { initial, cas: true, failed_cas_observes: true, nil_read_unknown: false }
    }
}

impl Model for Register {
    type Input = RegisterOp;
    type Output = RegisterOut;
    type State = Option<i64>;

    fn init(&self) -> Option<i64> {
        self.initial
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterOp,
        output: Option<&RegisterOut>,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterOp::Read, Some(RegisterOut::Value(v))) => (v == state).then_some(*state),
            (RegisterOp::Read, None) => Some(*state),
            (RegisterOp::Read, Some(RegisterOut::CasFailed)) => None,
            (RegisterOp::Write(v), _) => Some(Some(*v)),
            (RegisterOp::Cas(old, _), Some(RegisterOut::CasFailed)) => {
                (*state != Some(*old)).then_some(*state)
            }
            // A cas that answered ok, or whose answer nobody saw: it can only have taken effect
            // where the comparison held (an unknown one that failed is the same as none at all).
            (RegisterOp::Cas(old, new), _) => (*state == Some(*old)).then_some(Some(*new)),
        }
    }

    fn failure(&self, input: &RegisterOp, _output: Option<&RegisterOut>) -> Option<RegisterOut> {
        match input {
            RegisterOp::Cas(..) if self.failed_cas_observes => Some(RegisterOut::CasFailed),
            _ => None,
        }
    }

    fn is_read_only(&self, input: &RegisterOp) -> bool {
        matches!(input, RegisterOp::Read)
    }

    fn describe(&self, input: &RegisterOp, output: Option<&RegisterOut>) -> String {
        let show = |v: &Option<i64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
        match (input, output) {
            (RegisterOp::Read, Some(RegisterOut::Value(v))) => format!("read -> {}", show(v)),
            (RegisterOp::Read, _) => "read -> ?".to_string(),
            (RegisterOp::Write(v), _) => format!("write {v}"),
            (RegisterOp::Cas(a, b), Some(RegisterOut::CasFailed)) => format!("cas {a}->{b} failed"),
            (RegisterOp::Cas(a, b), _) => format!("cas {a}->{b}"),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        state.map_or_else(|| "nil".to_string(), |v| v.to_string())
    }
}

fn int_of(value: &Value) -> Result<i64, RawError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(RawError::expected("an integer", other)),
    }
}

impl FromRaw for Register {
    fn input(&self, call: &RawCall) -> Result<RegisterOp, RawError> {
        match call.f.as_str() {
            "read" => Ok(RegisterOp::Read),
            "write" => Ok(RegisterOp::Write(int_of(&call.value)?)),
            "cas" if !self.cas => Err(RawError::CasOnPlainRegister),
            "cas" => match call.value.as_list() {
                Some([old, new]) => Ok(RegisterOp::Cas(int_of(old)?, int_of(new)?)),
                _ => Err(RawError::expected("[old new]", &call.value)),
            },
            other => Err(RawError::UnknownFunction {
                model: "register",
                f: other.to_string(),
                known: "read, write, cas",
            }),
        }
    }

    fn output(&self, input: &RegisterOp, value: &Value) -> Result<Option<RegisterOut>, RawError> {
        match input {
            RegisterOp::Read => match value {
                Value::Nil if self.nil_read_unknown => Ok(None),
                Value::Nil => Ok(Some(RegisterOut::Value(None))),
                v => Ok(Some(RegisterOut::Value(Some(int_of(v)?)))),
            },
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_takes_effect_only_where_the_comparison_holds() {
        let m = Register::cas(Some(0));
        assert_eq!(m.step(&Some(1), &RegisterOp::Cas(1, 2), None), Some(Some(2)));
        assert_eq!(m.step(&Some(0), &RegisterOp::Cas(1, 2), None), None);
        assert_eq!(
            m.step(&Some(0), &RegisterOp::Cas(1, 2), Some(&RegisterOut::CasFailed)),
            Some(Some(0))
        );
        assert_eq!(m.step(&Some(1), &RegisterOp::Cas(1, 2), Some(&RegisterOut::CasFailed)), None);
    }

    #[test]
    fn failed_cas_is_an_observation_only_when_asked() {
        let knossos = Register::cas(Some(0));
        let etcd = Register::etcd(Some(0));
        assert_eq!(knossos.failure(&RegisterOp::Cas(1, 2), None), None);
        assert_eq!(etcd.failure(&RegisterOp::Cas(1, 2), None), Some(RegisterOut::CasFailed));
        assert_eq!(etcd.failure(&RegisterOp::Write(1), None), None);
    }
}
