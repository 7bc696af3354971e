//! Failure drills: YAML files that say what cluster to run, what the clients do, which faults
//! strike when, and what must hold afterwards.
//!
//! ```yaml
//! name: master-killed-under-load
//! description: The master dies while clients write; a new one serves within two leases.
//! cluster: { nodes: 3, lease: 1s }                     # also: config: { tlog_max_entries: 100 }
//! workload: { clients: 5, keys: 8, op_timeout: 2s }   # also: rate: 20/s, key_distribution: zipf
//! duration: 30s
//! seeds: 0..8
//! steps:
//!   - at: 5s
//!     kill: master
//!   - wait_until: master_elected
//!     timeout: 3s
//!   - after: 2s
//!     restart: down
//!   - collapse: all                                  # collapse_tlogs on each running node
//!     keep: 1                                        # sealed TLog files kept; also for: 3s
//! expect: [linearizable, no_lost_writes, in_sync, { master_within: 3s }]
//! ```
//!
//! Every fault of the catalogue ([`crate::faults`]) names the tiers that can apply it; a drill is
//! checked against the tier it is about to run on before anything starts. Every problem, in the
//! syntax or in the meaning (a target that does not exist, a fault the tier cannot apply), is
//! reported with the file, the line and the column, and the values that would be accepted.

use crate::faults::{Fault, Target, Tier};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::cell::Cell;
use std::fmt;
use std::path::Path;

/// A duration written as `500ms`, `2s`, `1m` (or a bare number of milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);

/// Why a duration or a rate in a drill does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{text:?} is not a duration (write 500ms, 2s or 1m)")]
    NotADuration { text: String },
    #[error("{text:?}: unknown unit {unit:?} (ms, s, m)")]
    UnknownUnit { text: String, unit: String },
    #[error("{text:?} is longer than any drill can run; write a shorter duration")]
    TooLong { text: String },
    #[error("{text:?} is not a rate (write 20/s or 300/m, more than 0)")]
    NotARate { text: String },
}

impl Millis {
    pub fn parse(text: &str) -> Result<Millis, ValueError> {
        let t = text.trim();
        let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
            Some(k) => (&t[..k], t[k..].trim()),
            None => (t, "ms"),
        };
        let n: u64 =
            num.parse().map_err(|_| ValueError::NotADuration { text: text.to_string() })?;
        let factor = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            _ => {
                let (text, unit) = (text.to_string(), unit.to_string());
                return Err(ValueError::UnknownUnit { text, unit });
            }
        };
        // A bad number must not overflow into a panic.
        n.checked_mul(factor)
            .map(Millis)
            .ok_or_else(|| ValueError::TooLong { text: text.to_string() })
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 500ms, 2s or 1m")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                Ok(Millis(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
                Millis::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    #[serde(default = "three")]
    pub nodes: usize,
    #[serde(default = "one_second")]
    pub lease: Millis,
    /// `[global]` settings of the nodes' configuration (`tlog_max_entries: 100`, ...), checked
    /// as the node checks its INI file; the simulation tier honours those of the consensus and
    /// the TLog ([`SIM_CONFIG_KEYS`]) and refuses the rest.
    #[serde(default, deserialize_with = "config_overrides")]
    pub config: Vec<(String, String)>,
}

/// The configuration keys the simulation tier honours: it has no client connections, so the
/// limits on them mean nothing there.
pub const SIM_CONFIG_KEYS: [&str; 5] =
    ["quorum", "tlog_max_entries", "tlog_max_size", "batch_max_updates", "batch_max_bytes"];

fn config_overrides<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of configuration keys to values, e.g. { tlog_max_entries: 100 }")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, String)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value::<Scalar>()?.0;
                if TIER.with(Cell::get) == Some(Tier::Sim)
                    && !SIM_CONFIG_KEYS.contains(&key.as_str())
                {
                    return Err(de::Error::custom(format!(
                        "config {key}: the sim tier does not apply it (it applies {}); run the drill on the sandbox or turmoil tier",
                        SIM_CONFIG_KEYS.join(", ")
                    )));
                }
                out.push((key, value));
            }
            let sample = sample_config(parse_nodes());
            sample.with_overrides(&out, "drill").map_err(|e| {
                de::Error::custom(e.to_string().trim_start_matches("drill: ").to_string())
            })?;
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// A scalar YAML value as text: `100`, `n1`, `true`.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a word")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A configuration of `nodes` nodes named n0, n1, ... with every setting at its default: what
/// a drill's overrides are checked against.
pub fn sample_config(nodes: usize) -> arakoon_node::config::ClusterConfig {
    let names: Vec<String> = (0..nodes).map(|k| format!("n{k}")).collect();
    let mut ini = format!("[global]\ncluster = {}\ncluster_id = drill\n", names.join(", "));
    for (k, n) in names.iter().enumerate() {
        ini += &format!(
            "[{n}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = /nonexistent/{n}\n",
            4000 + k,
            4100 + k
        );
    }
    arakoon_node::config::ClusterConfig::parse(&ini, "drill").expect("a valid sample")
}

fn three() -> usize {
    3
}
fn one_second() -> Millis {
    Millis(1000)
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec { nodes: 3, lease: one_second(), config: Vec::new() }
    }
}

/// The relative weights of the operations clients issue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub get: u32,
    #[serde(default)]
    pub set: u32,
    #[serde(default)]
    pub delete: u32,
    #[serde(default)]
    pub test_and_set: u32,
    #[serde(default)]
    pub sequence: u32,
    #[serde(default)]
    pub range: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { get: 3, set: 4, delete: 1, test_and_set: 2, sequence: 1, range: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default = "five")]
    pub clients: usize,
    #[serde(default = "eight")]
    pub keys: usize,
    #[serde(default = "two_seconds")]
    pub op_timeout: Millis,
    #[serde(default)]
    pub mix: Mix,
    /// About this many calls a second per client when the cluster answers at once (`20/s`);
    /// without it, clients call again after a pause of 0-5 ms: a heavy load.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// How a single-key operation picks its key among `keys`.
    #[serde(default)]
    pub key_distribution: KeyDistribution,
}

impl WorkloadSpec {
    /// A client's pause between an answer and its next call, µs, drawn between these bounds:
    /// around 1/rate (from half to one and a half of it), or 0-5 ms without a rate.
    pub fn pause_us(&self) -> (u64, u64) {
        match self.rate {
            Some(Rate(r)) => ((500_000.0 / r) as u64, (1_500_000.0 / r) as u64),
            None => (0, 5_000),
        }
    }
}

/// Calls per second, written `20/s`, `300/m` or a bare number (per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, ValueError> {
        let bad = || ValueError::NotARate { text: text.to_string() };
        let (num, per) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        let per_second = match per.trim() {
            "s" => n,
            "m" | "min" => n / 60.0,
            _ => return Err(bad()),
        };
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 100_000.0) {
            return Err(bad());
        }
        Ok(Rate(per_second))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let Scalar(text) = Scalar::deserialize(d)?;
        Rate::parse(&text).map_err(de::Error::custom)
    }
}

/// How clients pick the key of a single-key operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDistribution {
    /// Every key as likely as any other.
    #[default]
    Uniform,
    /// Key k with weight 1/(k+1): a few hot keys, contended by every client.
    Zipf,
}

impl KeyDistribution {
    /// The key index, of `keys`, for a number `u` drawn uniformly from [0, 1).
    pub fn pick(self, keys: usize, u: f64) -> usize {
        let keys = keys.max(1);
        match self {
            KeyDistribution::Uniform => ((u * keys as f64) as usize).min(keys - 1),
            KeyDistribution::Zipf => {
                let total: f64 = (1..=keys).map(|k| 1.0 / k as f64).sum();
                let mut left = u * total;
                for k in 0..keys {
                    left -= 1.0 / (k + 1) as f64;
                    if left < 0.0 {
                        return k;
                    }
                }
                keys - 1
            }
        }
    }
}

fn five() -> usize {
    5
}
fn eight() -> usize {
    8
}
fn two_seconds() -> Millis {
    Millis(2000)
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            clients: 5,
            keys: 8,
            op_timeout: two_seconds(),
            mix: Mix::default(),
            rate: None,
            key_distribution: KeyDistribution::Uniform,
        }
    }
}

/// A condition a step can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Some node holds a valid lease.
    MasterElected,
    /// Every node runs and has applied every committed slot.
    AllInSync,
    /// Every node runs.
    AllUp,
}

/// When a step happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// At this time since the start of the run.
    At(Millis),
    /// This long after the previous step finished (0 when nothing is said).
    After(Millis),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Fault(Fault),
    Wait(Millis),
    WaitUntil { condition: Condition, timeout: Millis },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub when: When,
    pub action: Action,
    /// Where the step starts in the file (1-based line).
    pub line: usize,
}

/// One thing that must hold after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    Linearizable,
    NoLostWrites,
    InSync,
    /// After the last step, a master within this long.
    MasterWithin(Millis),
    /// The drill shows a guarantee breaking: some check must fail.
    Violation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    pub name: String,
    pub description: String,
    pub cluster: ClusterSpec,
    pub workload: WorkloadSpec,
    pub duration: Millis,
    pub seeds: std::ops::Range<u64>,
    /// Tiers the drill is meant for; empty: every tier that can apply its faults.
    pub tiers: Vec<Tier>,
    pub steps: Vec<Step>,
    pub expect: Vec<Expectation>,
}

impl Drill {
    /// Whether `tier` can apply every fault of the drill.
    pub fn runs_on(&self, tier: Tier) -> bool {
        (self.tiers.is_empty() || self.tiers.contains(&tier))
            && self.steps.iter().all(|s| match &s.action {
                Action::Fault(f) => f.tiers().contains(&tier),
                _ => true,
            })
    }

    /// A violation is expected instead of every check holding.
    pub fn expects_violation(&self) -> bool {
        self.expect.contains(&Expectation::Violation)
    }
}

/// A drill that cannot be run, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct DrillError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

// The parse of one file needs two facts from outside the value being read: how many nodes the
// cluster has (to check targets) and which tier it is for (to check faults). They are set for
// the duration of one parse.
thread_local! {
    static NODES: Cell<usize> = const { Cell::new(3) };
    static TIER: Cell<Option<Tier>> = const { Cell::new(None) };
}

pub(crate) fn parse_nodes() -> usize {
    NODES.with(Cell::get)
}

const FAULT_KEYS: &[&str] = &[
    "kill",
    "stop",
    "pause",
    "resume",
    "restart",
    "wipe",
    "power_loss",
    "partition",
    "isolate",
    "one_way",
    "ring",
    "bridge",
    "heal",
    "loss",
    "delay",
    "bitflip",
    "truncate",
    "torn_tail",
    "delete_tlog",
    "disk_full",
    "fsync_fail",
    "clock_offset",
    "clock_drift",
    "drop_master",
    "collapse",
];
/// The keys of a step besides its fault.
const STEP_KEYS: &[&str] =
    &["at", "after", "for", "timeout", "wait", "wait_until", "ppm", "ms", "file", "keep"];

/// A step as written; validated into a [`Step`] as it is read.
struct RawStep(When, Action);

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawStep, D::Error> {
        d.deserialize_map(StepVisitor)
    }
}

struct StepVisitor;

impl<'de> Visitor<'de> for StepVisitor {
    type Value = RawStep;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a step: a map with one fault (kill: master, partition: [[n0], [n1, n2]], ...), or wait / wait_until, and optionally at / after")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStep, A::Error> {
        let mut when = None;
        let mut duration: Option<Millis> = None;
        let mut timeout: Option<Millis> = None;
        let mut ppm: Option<i64> = None;
        let mut ms: Option<i64> = None;
        let mut file: Option<String> = None;
        let mut keep: Option<u32> = None;
        let mut action: Option<(String, Option<ActionArg>)> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "at" => when = Some(When::At(map.next_value()?)),
                "after" => when = Some(When::After(map.next_value()?)),
                "for" => duration = Some(map.next_value()?),
                "timeout" => timeout = Some(map.next_value()?),
                "ppm" => ppm = Some(map.next_value()?),
                "ms" => ms = Some(map.next_value()?),
                "file" => file = Some(map.next_value()?),
                "keep" => keep = Some(map.next_value()?),
                "wait" => {
                    let d: Millis = map.next_value()?;
                    set_action(&mut action, key, Some(ActionArg::Dur(d)))?;
                }
                "wait_until" => {
                    let c: Condition = map.next_value()?;
                    set_action(&mut action, key, Some(ActionArg::Cond(c)))?;
                }
                "partition" => {
                    let groups: Vec<Vec<Target>> = map.next_value()?;
                    set_action(&mut action, key, Some(ActionArg::Groups(groups)))?;
                }
                "one_way" => {
                    let pair: Vec<Target> = map.next_value()?;
                    if pair.len() != 2 {
                        return Err(de::Error::custom("one_way takes [from, to]: two nodes"));
                    }
                    set_action(&mut action, key, Some(ActionArg::Groups(vec![pair])))?;
                }
                "loss" => {
                    let rate: f64 = map.next_value()?;
                    if !(0.0..=1.0).contains(&rate) {
                        return Err(de::Error::custom(format!(
                            "loss {rate}: a rate between 0 and 1"
                        )));
                    }
                    set_action(&mut action, key, Some(ActionArg::Rate(rate)))?;
                }
                "delay" => {
                    let d: Millis = map.next_value()?;
                    set_action(&mut action, key, Some(ActionArg::Dur(d)))?;
                }
                "ring" | "bridge" | "heal" | "power_loss" | "drop_master" => {
                    // The value is ignored (`heal: true`, `heal: {}` or `heal: ~`).
                    let _: de::IgnoredAny = map.next_value()?;
                    set_action(&mut action, key, None)?;
                }
                k if FAULT_KEYS.contains(&k) => {
                    let t: Target = map.next_value()?;
                    set_action(&mut action, key, Some(ActionArg::Target(t)))?;
                }
                _ => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{key}` in a step: expected one of {} or a fault: {}",
                        STEP_KEYS.join(", "),
                        FAULT_KEYS.join(", ")
                    )))
                }
            }
        }
        let Some((name, arg)) = action else {
            return Err(de::Error::custom(format!(
                "a step needs one action: wait, wait_until or a fault ({})",
                FAULT_KEYS.join(", ")
            )));
        };
        if keep.is_some() && name != "collapse" {
            return Err(de::Error::custom(format!(
                "keep: only a collapse step keeps TLog files, not {name}"
            )));
        }
        let when = when.unwrap_or(When::After(Millis(0)));
        let target = |arg: Option<ActionArg>| match arg {
            Some(ActionArg::Target(t)) => t,
            _ => Target::Random,
        };
        let action = match name.as_str() {
            "wait" => match arg {
                Some(ActionArg::Dur(d)) => Action::Wait(d),
                _ => unreachable!("wait reads a duration"),
            },
            "wait_until" => match arg {
                Some(ActionArg::Cond(c)) => Action::WaitUntil {
                    condition: c,
                    timeout: timeout.ok_or_else(|| {
                        de::Error::custom("wait_until needs a timeout (timeout: 10s)")
                    })?,
                },
                _ => unreachable!("wait_until reads a condition"),
            },
            other => {
                let fault = match other {
                    "kill" => Fault::Kill(target(arg)),
                    "stop" => Fault::Stop(target(arg)),
                    "pause" => Fault::Pause { target: target(arg), duration },
                    "resume" => Fault::Resume(target(arg)),
                    "restart" => Fault::Restart(target(arg)),
                    "wipe" => Fault::Wipe(target(arg)),
                    "power_loss" => Fault::PowerLoss,
                    "isolate" => Fault::Isolate(target(arg)),
                    "partition" => match arg {
                        Some(ActionArg::Groups(g)) => Fault::Partition(g),
                        _ => unreachable!("partition reads groups"),
                    },
                    "one_way" => match arg {
                        Some(ActionArg::Groups(mut g)) => {
                            let mut pair = g.remove(0);
                            let to = pair.remove(1);
                            Fault::OneWay { from: pair.remove(0), to }
                        }
                        _ => unreachable!("one_way reads a pair"),
                    },
                    "ring" => Fault::Ring,
                    "bridge" => Fault::Bridge,
                    "heal" => Fault::Heal,
                    "loss" => match arg {
                        Some(ActionArg::Rate(r)) => Fault::Loss(r),
                        _ => unreachable!("loss reads a rate"),
                    },
                    "delay" => match arg {
                        Some(ActionArg::Dur(d)) => Fault::Delay(d),
                        _ => unreachable!("delay reads a duration"),
                    },
                    "bitflip" | "truncate" => {
                        let store = match file.as_deref() {
                            None | Some("tlog") => false,
                            Some("store") => true,
                            Some(f) => {
                                return Err(de::Error::custom(format!(
                                    "file: {f:?}: expected tlog or store"
                                )))
                            }
                        };
                        if other == "bitflip" {
                            Fault::Bitflip { target: target(arg), store }
                        } else {
                            Fault::Truncate { target: target(arg), store }
                        }
                    }
                    "torn_tail" => Fault::TornTail(target(arg)),
                    "delete_tlog" => Fault::DeleteTlog(target(arg)),
                    "disk_full" => Fault::DiskFull { target: target(arg), duration },
                    "fsync_fail" => Fault::FsyncFail(target(arg)),
                    "clock_offset" => Fault::ClockOffset {
                        target: target(arg),
                        ms: ms.ok_or_else(|| de::Error::custom("clock_offset needs ms: N"))?,
                    },
                    "clock_drift" => Fault::ClockDrift {
                        target: target(arg),
                        ppm: ppm.ok_or_else(|| de::Error::custom("clock_drift needs ppm: N"))?,
                    },
                    "drop_master" => Fault::DropMaster,
                    "collapse" => Fault::Collapse {
                        target: target(arg),
                        duration,
                        keep: keep.ok_or_else(|| {
                            de::Error::custom(
                                "collapse needs keep: N, the sealed TLog files to keep besides the open one",
                            )
                        })?,
                    },
                    _ => unreachable!("every fault key is handled"),
                };
                if let Some(tier) = TIER.with(Cell::get) {
                    if !fault.tiers().contains(&tier) {
                        return Err(de::Error::custom(format!(
                            "the {} tier cannot apply {}; it runs on: {}",
                            tier.name(),
                            fault.name(),
                            fault.tiers().iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
                Action::Fault(fault)
            }
        };
        Ok(RawStep(when, action))
    }
}

enum ActionArg {
    Target(Target),
    Groups(Vec<Vec<Target>>),
    Dur(Millis),
    Cond(Condition),
    Rate(f64),
}

fn set_action<E: de::Error>(
    slot: &mut Option<(String, Option<ActionArg>)>,
    key: String,
    arg: Option<ActionArg>,
) -> Result<(), E> {
    if let Some((first, _)) = slot {
        return Err(E::custom(format!(
            "a step does one thing: {first} and {key}; put {key} in a step of its own"
        )));
    }
    *slot = Some((key, arg));
    Ok(())
}

/// An expectation as written: `linearizable` or `{ master_within: 3s }`.
struct RawExpectation(Expectation);

impl<'de> Deserialize<'de> for RawExpectation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawExpectation, D::Error> {
        struct V;
        const NAMES: &[&str] =
            &["linearizable", "no_lost_writes", "in_sync", "master_within", "violation"];
        impl<'de> Visitor<'de> for V {
            type Value = RawExpectation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "linearizable, no_lost_writes, in_sync, violation or { master_within: 3s }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawExpectation, E> {
                Ok(RawExpectation(match v {
                    "linearizable" => Expectation::Linearizable,
                    "no_lost_writes" => Expectation::NoLostWrites,
                    "in_sync" => Expectation::InSync,
                    "violation" => Expectation::Violation,
                    other => return Err(E::unknown_variant(other, NAMES)),
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawExpectation, A::Error> {
                let key: String = map.next_key()?.ok_or_else(|| de::Error::custom("empty"))?;
                if key != "master_within" {
                    return Err(de::Error::unknown_variant(&key, NAMES));
                }
                Ok(RawExpectation(Expectation::MasterWithin(map.next_value()?)))
            }
        }
        d.deserialize_any(V)
    }
}

struct Seeds(std::ops::Range<u64>);

impl<'de> Deserialize<'de> for Seeds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Seeds, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seeds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a seed (7) or a range of seeds (0..8, the end excluded)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seeds, E> {
                Ok(Seeds(v..v + 1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seeds, E> {
                let bad = || E::custom(format!("{v:?}: write a seed (7) or a range (0..8)"));
                let (a, b) = v.split_once("..").ok_or_else(bad)?;
                let (a, b) =
                    (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a >= b {
                    return Err(E::custom(format!("{v:?}: an empty range of seeds")));
                }
                Ok(Seeds(a..b))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cluster: ClusterSpec,
    #[serde(default)]
    workload: WorkloadSpec,
    duration: Millis,
    #[serde(default)]
    seeds: Option<Seeds>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    tiers: Vec<Tier>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    expect: Vec<RawExpectation>,
}

/// Only the cluster size, read first: targets are checked against it.
#[derive(Deserialize)]
struct Prelude {
    #[serde(default)]
    cluster: Option<PreludeCluster>,
}

#[derive(Deserialize)]
struct PreludeCluster {
    #[serde(default = "three")]
    nodes: usize,
}

fn located(file: &str, e: serde_norway::Error) -> DrillError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    // The library appends " at line L column C" to its message: keep only the reason.
    let text = e.to_string();
    let message = match text.find(" at line ") {
        Some(k) => text[..k].to_string(),
        None => text,
    };
    DrillError { file: file.to_string(), line, column, message }
}

/// Parses and validates a drill for `tier` (`None`: for no tier in particular).
pub fn parse(text: &str, file: &str, tier: Option<Tier>) -> Result<Drill, DrillError> {
    let prelude: Prelude = serde_norway::from_str(text).map_err(|e| located(file, e))?;
    let nodes = prelude.cluster.map_or(3, |c| c.nodes);
    if !(1..=9).contains(&nodes) {
        let line = text.lines().position(|l| l.contains("nodes")).map_or(0, |k| k + 1);
        return Err(DrillError {
            file: file.into(),
            line,
            column: 1,
            message: format!("cluster.nodes {nodes}: between 1 and 9"),
        });
    }
    NODES.with(|n| n.set(nodes));
    TIER.with(|t| t.set(tier));
    let raw: Result<RawDrill, _> = serde_norway::from_str(text);
    TIER.with(|t| t.set(None));
    let raw = raw.map_err(|e| located(file, e))?;
    let step_lines = step_lines(text);
    let steps = raw
        .steps
        .into_iter()
        .enumerate()
        .map(|(k, RawStep(when, action))| Step {
            when,
            action,
            line: step_lines.get(k).copied().unwrap_or(0),
        })
        .collect();
    let seeds = match (raw.seeds, raw.seed) {
        (Some(s), None) => s.0,
        (None, Some(s)) => s..s + 1,
        (None, None) => 0..1,
        (Some(_), Some(_)) => {
            let line = text.lines().position(|l| l.starts_with("seed")).map_or(0, |k| k + 1);
            return Err(DrillError {
                file: file.into(),
                line,
                column: 1,
                message: "give seed or seeds, not both".into(),
            });
        }
    };
    let drill = Drill {
        name: raw.name,
        description: raw.description,
        cluster: raw.cluster,
        workload: raw.workload,
        duration: raw.duration,
        seeds,
        tiers: raw.tiers,
        steps,
        expect: raw.expect.into_iter().map(|e| e.0).collect(),
    };
    if let Some(t) = tier {
        if !drill.tiers.is_empty() && !drill.tiers.contains(&t) {
            let line = text.lines().position(|l| l.starts_with("tiers")).map_or(0, |k| k + 1);
            return Err(DrillError {
                file: file.into(),
                line,
                column: 1,
                message: format!(
                    "this drill is for {}, not the {} tier",
                    drill.tiers.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                    t.name()
                ),
            });
        }
    }
    Ok(drill)
}

/// The lines where the items of `steps:` start (1-based).
fn step_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut inside = false;
    let mut indent = None;
    for (k, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if line.starts_with("steps:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with(' ')
                && !line.starts_with('-')
                && !trimmed.is_empty()
                && !trimmed.starts_with('#')
            {
                break;
            }
            if trimmed.starts_with("- ") {
                let i = line.len() - trimmed.len();
                if indent.is_none_or(|d| d == i) {
                    indent = Some(i);
                    lines.push(k + 1);
                }
            }
        }
    }
    lines
}

/// Reads and parses a drill file.
pub fn load(path: &Path, tier: Option<Tier>) -> Result<Drill, DrillError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DrillError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file, tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way a duration or a rate can be wrong is its own error; a number too large for its
    /// unit is an error, not an overflow (it panicked before).
    #[test]
    fn durations_and_rates_refuse_bad_text_with_typed_errors() {
        assert_eq!(Millis::parse("2s"), Ok(Millis(2000)));
        assert_eq!(Millis::parse("1500"), Ok(Millis(1500)));
        assert!(matches!(Millis::parse("soon"), Err(ValueError::NotADuration { .. })));
        assert!(
            matches!(Millis::parse("3h"), Err(ValueError::UnknownUnit { unit, .. }) if unit == "h")
        );
        let huge = format!("{}m", u64::MAX / 2);
        let e = Millis::parse(&huge).unwrap_err();
        assert_eq!(e, ValueError::TooLong { text: huge.clone() });
        assert!(e.to_string().contains("shorter"), "{e}");
        assert_eq!(Rate::parse("300/m"), Ok(Rate(5.0)));
        assert!(matches!(Rate::parse("0/s"), Err(ValueError::NotARate { .. })));
        // In a drill file, the error still says where.
        let yaml = GOOD.replace("duration: 20s", &format!("duration: {huge}"));
        let e = parse(&yaml, "d.yaml", Some(Tier::Sim)).unwrap_err().to_string();
        assert!(e.contains("d.yaml") && e.contains("shorter"), "{e}");
    }

    const GOOD: &str = "\
name: master-killed
description: the master dies
cluster: { nodes: 3, lease: 1s }
workload: { clients: 4, keys: 6, op_timeout: 1500ms }
duration: 20s
seeds: 0..4
steps:
  - at: 5s
    kill: master
  - wait_until: master_elected
    timeout: 3s
  - after: 2s
    restart: down
  - partition: [[n0], [n1, n2]]
  - heal: true
  - clock_drift: n1
    ppm: 50000
expect: [linearizable, no_lost_writes, { master_within: 3s }]
";

    #[test]
    fn a_drill_reads_with_every_part() {
        let d = parse(GOOD, "good.yaml", Some(Tier::Sim)).unwrap();
        assert_eq!(d.name, "master-killed");
        assert_eq!(d.cluster.lease, Millis(1000));
        assert_eq!(d.workload.op_timeout, Millis(1500));
        assert_eq!(d.seeds, 0..4);
        assert_eq!(d.steps.len(), 6);
        assert_eq!(d.steps[0].when, When::At(Millis(5000)));
        assert_eq!(d.steps[0].action, Action::Fault(Fault::Kill(Target::Master)));
        assert_eq!(d.steps[0].line, 8);
        assert_eq!(d.steps[2].line, 12);
        assert_eq!(
            d.steps[3].action,
            Action::Fault(Fault::Partition(vec![
                vec![Target::Node(0)],
                vec![Target::Node(1), Target::Node(2)]
            ]))
        );
        assert_eq!(
            d.expect,
            [
                Expectation::Linearizable,
                Expectation::NoLostWrites,
                Expectation::MasterWithin(Millis(3000))
            ]
        );
    }

    fn error(text: &str, tier: Option<Tier>) -> DrillError {
        parse(text, "bad.yaml", tier).expect_err("refused")
    }

    #[test]
    fn config_rate_and_key_distribution_are_read_and_checked() {
        let drill = |cluster: &str, workload: &str| {
            format!(
                "name: t\ncluster: {cluster}\nworkload: {workload}\nduration: 5s\nsteps:\n  - at: 1s\n    kill: master\n"
            )
        };
        let text = drill(
            "{ nodes: 5, config: { tlog_max_entries: 100, quorum: 4 } }",
            "{ rate: 20/s, key_distribution: zipf }",
        );
        let d = parse(&text, "t.yaml", Some(Tier::Sim)).unwrap();
        assert_eq!(
            d.cluster.config,
            [("tlog_max_entries".to_string(), "100".to_string()), ("quorum".into(), "4".into())]
        );
        assert_eq!(d.workload.rate, Some(Rate(20.0)));
        assert_eq!(d.workload.pause_us(), (25_000, 75_000));
        assert_eq!(d.workload.key_distribution, KeyDistribution::Zipf);
        assert_eq!(WorkloadSpec::default().pause_us(), (0, 5_000));

        let bad = |cluster: &str, workload: &str, tier| {
            parse(&drill(cluster, workload), "b.yaml", tier).unwrap_err()
        };
        let e = bad("{ nodes: 3, config: { quorum: 4 } }", "{}", None);
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("[global] quorum") && e.message.contains("1 to 3"), "{e}");
        let e = bad("{ config: { cluster_id: x } }", "{}", None);
        assert!(e.message.contains("cannot be set here"), "{e}");
        let e = bad("{ config: { max_connections: 4 } }", "{}", Some(Tier::Sim));
        assert!(e.message.contains("sim tier does not apply it"), "{e}");
        parse(&drill("{ config: { max_connections: 4 } }", "{}"), "ok.yaml", Some(Tier::Sandbox))
            .unwrap();
        let e = bad("{}", "{ rate: fast }", None);
        assert!(e.message.contains("is not a rate"), "{e}");
        assert_eq!(e.line, 3, "{e}");
        let e = bad("{}", "{ key_distribution: hot }", None);
        assert!(e.message.contains("uniform") && e.message.contains("zipf"), "{e}");
    }

    #[test]
    fn a_collapse_step_reads_with_its_keep_and_runs_on_the_sim_and_the_sandbox() {
        let text = "\
name: collapse
cluster: { nodes: 3, config: { tlog_max_entries: 100 } }
duration: 10s
steps:
  - at: 2s
    stop: slave
  - after: 3s
    restart: down
  - collapse: all
    keep: 1
  - collapse: n2
    keep: 0
    for: 3s
";
        let d = parse(text, "c.yaml", Some(Tier::Sandbox)).unwrap();
        assert_eq!(
            d.steps[2].action,
            Action::Fault(Fault::Collapse { target: Target::All, keep: 1, duration: None })
        );
        assert_eq!(d.steps[2].when, When::After(Millis(0)));
        assert_eq!(d.steps[2].line, 9);
        let Action::Fault(last) = &d.steps[3].action else { panic!("a fault") };
        assert_eq!(last.to_string(), "collapse n2 keep 0 for 3s");
        assert!(d.runs_on(Tier::Sandbox) && d.runs_on(Tier::Sim) && d.runs_on(Tier::Turmoil));
        // Read for no tier in particular, it parses (scenarios/ is listed that way).
        assert_eq!(parse(text, "c.yaml", None).unwrap().steps, d.steps);

        assert_eq!(parse(text, "c.yaml", Some(Tier::Sim)).unwrap().steps, d.steps);
        // Turmoil asks its nodes as the sandbox does (sim/src/tier_b/drill.rs).
        assert_eq!(parse(text, "c.yaml", Some(Tier::Turmoil)).unwrap().steps, d.steps);
        let no_keep = text.replace("    keep: 1\n", "");
        let e = error(&no_keep, None);
        assert_eq!((e.line, e.column), (9, 5), "the step: {e}");
        assert!(e.message.contains("collapse needs keep: N"), "{e}");
        let keep_elsewhere =
            text.replace("    restart: down\n", "    restart: down\n    keep: 2\n");
        let e = error(&keep_elsewhere, None);
        assert_eq!(e.line, 7, "the step: {e}");
        assert!(e.message.contains("only a collapse step") && e.message.contains("restart"), "{e}");
        let negative = text.replace("keep: 1", "keep: -1");
        let e = error(&negative, None);
        assert_eq!((e.line, e.column), (10, 11), "the value: {e}");
        let unknown_node = text.replace("collapse: n2", "collapse: n5");
        let e = error(&unknown_node, None);
        assert!(e.message.contains("no node \"n5\""), "{e}");
    }

    #[test]
    fn zipf_favours_the_first_keys_and_uniform_spreads_evenly() {
        let count = |dist: KeyDistribution| {
            let mut n = [0usize; 8];
            for k in 0..8000 {
                n[dist.pick(8, (k as f64 + 0.5) / 8000.0)] += 1;
            }
            n
        };
        assert_eq!(count(KeyDistribution::Uniform), [1000; 8]);
        let z = count(KeyDistribution::Zipf);
        // Weights 1, 1/2, ..., 1/8 over their sum (2.718): 36.8% for k0, 4.6% for k7.
        assert!((2900..3000).contains(&z[0]) && (350..390).contains(&z[7]), "{z:?}");
        assert!(z.windows(2).all(|w| w[0] > w[1]), "{z:?}");
    }

    #[test]
    fn mistakes_are_refused_with_line_column_and_the_allowed_values() {
        let unknown_fault = GOOD.replace("kill: master", "explode: master");
        let e = error(&unknown_fault, None);
        assert_eq!((e.file.as_str(), e.line, e.column), ("bad.yaml", 8, 5), "the step: {e}");
        assert!(e.message.contains("explode") && e.message.contains("kill"), "{e}");

        let unknown_node = GOOD.replace("[n1, n2]", "[n1, n7]");
        let e = error(&unknown_node, None);
        assert_eq!((e.line, e.column), (14, 28), "the very value: {e}");
        assert!(e.message.contains("n7") && e.message.contains("n0, n1, n2"), "{e}");

        let sandbox = error(GOOD, Some(Tier::Sandbox));
        assert_eq!((sandbox.line, sandbox.column), (16, 5), "{sandbox}");
        assert!(sandbox.message.contains("sandbox tier cannot apply clock_drift"), "{sandbox}");

        let two = GOOD.replace("    kill: master", "    kill: master\n    stop: n1");
        let e = error(&two, None);
        assert!(e.message.contains("does one thing"), "{e}");

        let bad_duration = GOOD.replace("duration: 20s", "duration: soon");
        let e = error(&bad_duration, None);
        assert_eq!((e.line, e.column), (5, 11), "{e}");
        assert!(e.message.contains("500ms"), "{e}");

        let bad_expect = GOOD.replace("no_lost_writes", "no_lost_write");
        let e = error(&bad_expect, None);
        assert!(e.message.contains("no_lost_write") && e.message.contains("in_sync"), "{e}");

        let no_timeout = GOOD.replace("    timeout: 3s\n", "");
        assert!(error(&no_timeout, None).message.contains("timeout"));
    }
}
