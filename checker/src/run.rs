//! Checking a history by model name: what the command line, the benchmark and the drills use
//! when the model is chosen at run time. [`ModelKind`] names every model with its default
//! initial value; [`check_raw`] converts a raw history to that model's operations, checks it,
//! and keeps what the reports need.

use crate::check::{check, views, Budget, OpView, Report};
use crate::explain::{html::render_html, text::render_text};
use crate::history::{History, HistoryError};
use crate::import::RawHistory;
use crate::model::kv::Kv;
use crate::model::multi_key::MultiKey;
use crate::model::mutex::Mutex;
use crate::model::register::Register;
use crate::model::set::Set;
use crate::model::{bytes_of, convert, FromRaw, Model, RawError};
use crate::value::Value;
use std::sync::Arc;

/// The models, by the names the command line uses; `arakoon-admin check --model` lists them
/// with [`ModelKind::about`] as their help, so this is the one table of models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `read`, `write`; a read of nil saw the unset register.
    Register,
    /// `read`, `write`, `cas [old new]`, Knossos semantics.
    CasRegister,
    /// `read`, `write`, `cas [old new]` as Jepsen's etcd tests record them.
    EtcdRegister,
    /// The key-value map, checked key by key.
    Kv,
    /// The key-value map as one state, with sequences and transactions.
    MultiKey,
    /// `acquire`, `release`.
    Mutex,
    /// `add`, `read`.
    Set,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::EtcdRegister,
        ModelKind::Kv,
        ModelKind::MultiKey,
        ModelKind::Mutex,
        ModelKind::Set,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::EtcdRegister => "etcd-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiKey => "multi-key",
            ModelKind::Mutex => "mutex",
            ModelKind::Set => "set",
        }
    }

    pub fn parse(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// One line for `--help`: the operations and the default initial value.
    pub fn about(self) -> &'static str {
        match self {
            ModelKind::Register => {
                "read, write v; initially nil (unset); a read of nil saw it unset"
            }
            ModelKind::CasRegister => {
                "read, write v, cas [old new]; initially 0; Knossos: a failed op did not \
                 happen, a read of nil matches any value"
            }
            ModelKind::EtcdRegister => {
                "read, write v, cas [old new]; initially nil; a failed cas saw another value, \
                 a read of nil saw the register unset"
            }
            ModelKind::Kv => {
                "get, set/put, delete, test_and_set [expected wanted], replace, append, each \
                 with a key; checked key by key; every key initially absent (nil)"
            }
            ModelKind::MultiKey => {
                "the kv operations plus txn [[read k v] [write k v] ...] and sequence \
                 [[set k v] [delete k] [assert k v] [assert_exists k] [replace k v]]; one \
                 state for the whole map"
            }
            ModelKind::Mutex => "acquire, release; initially free; who holds it is not recorded",
            ModelKind::Set => "add e, read -> [e ...]; initially empty",
        }
    }
}

/// A finished check with what its reports need.
#[derive(Debug, Clone)]
pub struct Checked {
    pub report: Report,
    /// Every operation of the history, by call time, as the model describes it: described the
    /// first time [`Checked::ops`] is asked, since a check whose operations no page shows (the
    /// simulator's, run after every seed) need not write a text for each.
    ops: std::sync::OnceLock<Vec<OpView>>,
    history: Arc<dyn Described>,
}

/// A model with its history, to describe the operations when a report needs them.
trait Described: Send + Sync {
    fn views(&self) -> Vec<OpView>;
}

struct ModelHistory<M: Model> {
    model: M,
    history: History<M::Input, M::Output>,
}

impl<M: Model + Send> Described for ModelHistory<M> {
    fn views(&self) -> Vec<OpView> {
        let all: Vec<usize> = (0..self.history.len()).collect();
        views(&self.model, &self.history, &all)
    }
}

impl std::fmt::Debug for dyn Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a model and its history")
    }
}

impl Checked {
    /// Every operation of the history, by call time, as the model describes it.
    pub fn ops(&self) -> &[OpView] {
        self.ops.get_or_init(|| self.history.views())
    }

    /// The report as text for a terminal.
    pub fn text(&self) -> String {
        render_text(&self.report)
    }

    /// The report as JSON (the linearization orders are left out).
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.report).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("the report does not serialize: {e}") }),
        )
    }

    /// The report as one self-contained HTML page.
    pub fn html(&self, title: &str) -> String {
        render_html(&self.report, title, self.ops(), &self.text())
    }
}

/// An integer initial value, or nil.
fn int_or_nil(value: &Value) -> Result<Option<i64>, RawError> {
    match value {
        Value::Nil => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
        other => Err(RawError::expected("an integer or nil", other)),
    }
}

/// A byte-string initial value, or nil for absent.
fn bytes_or_nil(value: &Value) -> Result<Option<Vec<u8>>, RawError> {
    match value {
        Value::Nil => Ok(None),
        other => bytes_of(other).map(Some),
    }
}

fn run<M>(model: &M, raw: &RawHistory, budget: &Budget) -> Result<Checked, HistoryError>
where
    M: FromRaw + Clone + Send + 'static,
{
    let history = convert(model, raw)?;
    let report = check(model, &history, budget);
    let history = Arc::new(ModelHistory { model: model.clone(), history });
    Ok(Checked { report, ops: std::sync::OnceLock::new(), history })
}

/// Checks `raw` against the model `kind`, starting from `initial` (`None`: the model's
/// default; see [`ModelKind::about`]).
pub fn check_raw(
    kind: ModelKind,
    initial: Option<&Value>,
    raw: &RawHistory,
    budget: &Budget,
) -> Result<Checked, HistoryError> {
    let bad_initial = |why: RawError| HistoryError::BadInitial { model: kind.name(), why };
    match kind {
        ModelKind::Register | ModelKind::CasRegister | ModelKind::EtcdRegister => {
            let default = if kind == ModelKind::CasRegister { Some(0) } else { None };
            let initial = initial.map(int_or_nil).transpose().map_err(bad_initial)?;
            let initial = initial.unwrap_or(default);
            let model = match kind {
                ModelKind::Register => Register::plain(initial),
                ModelKind::CasRegister => Register::cas(initial),
                _ => Register::etcd(initial),
            };
            run(&model, raw, budget)
        }
        ModelKind::Kv | ModelKind::MultiKey => {
            let initial = initial.map(bytes_or_nil).transpose().map_err(bad_initial)?.flatten();
            if kind == ModelKind::Kv {
                run(&Kv { initial }, raw, budget)
            } else {
                run(&MultiKey { initial }, raw, budget)
            }
        }
        ModelKind::Mutex | ModelKind::Set => {
            if initial.is_some() {
                return Err(HistoryError::NoInitial { model: kind.name() });
            }
            if kind == ModelKind::Mutex {
                run(&Mutex, raw, budget)
            } else {
                run(&Set, raw, budget)
            }
        }
    }
}
