//! Test helpers shared by the rule groups' tests: a machine of a small cluster, its inputs and
//! actions in one call, a master elected by hand, and a deterministic cluster (messages
//! delivered in order, persist jobs completed at once, links that can be cut).

#![allow(dead_code)] // each rule group uses a different part

pub(crate) use crate::consensus::*;

pub(crate) use crate::tlog::BallotRecord;

pub(crate) use crate::value::{Update, Value};

pub(crate) use std::collections::{BTreeSet, VecDeque};

pub(crate) const LEASE: u64 = 1000;

pub(crate) fn names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("n{k}")).collect()
}

pub(crate) fn machine(nodes: usize, me: usize, durable: Durable) -> Machine {
    Machine::new(Config::new(names(nodes), me, LEASE), durable, 0, 42)
}

pub(crate) fn set(k: &str) -> Update {
    Update::Set { key: k.as_bytes().to_vec(), value: b"v".to_vec() }
}

pub(crate) fn master_set(m: &str) -> Value {
    Value::MasterSet { master: m.into(), lease_start: 0 }
}

pub(crate) fn run(m: &mut Machine, now: u64, input: Input) -> Vec<Action> {
    let mut out = Vec::new();
    m.handle(now, input, &mut out);
    out
}

pub(crate) fn tokens(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| if let Action::Persist { token, .. } = a { Some(*token) } else { None })
        .collect()
}

pub(crate) fn sends(actions: &[Action]) -> Vec<(NodeIdx, Msg)> {
    actions
        .iter()
        .filter_map(
            |a| if let Action::Send { to, msg } = a { Some((*to, msg.clone())) } else { None },
        )
        .collect()
}

/// A 3-node master with a lease, built by driving it through an election.
pub(crate) fn elected_master() -> (Machine, u64) {
    let mut m = machine(3, 0, Durable::default());
    let mut now = 0;
    let mut out = Vec::new();
    while m.role() != RoleName::Candidate {
        now += 10;
        out = run(&mut m, now, Input::Tick);
    }
    let n = m.promised();
    let self_token = tokens(&out)[0];
    run(&mut m, now, Input::Persisted { token: self_token });
    let out = run(
        &mut m,
        now,
        Input::Message { from: 1, msg: Msg::Promise { n, last: None, prev_hash: None } },
    );
    // The candidate won and proposes its MasterSet at slot 0.
    let t = tokens(&out)[0];
    assert!(sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Msg::Accept { i: 0, value: Value::MasterSet { .. }, .. })));
    run(&mut m, now, Input::Persisted { token: t });
    let out = run(&mut m, now, Input::Message { from: 1, msg: Msg::Accepted { n, i: 0 } });
    assert!(matches!(out[0], Action::Apply { i: 0, .. }));
    assert!(m.lease_valid(now));
    (m, now)
}

/// A deterministic cluster: messages delivered in order, persist jobs completed at once, links
/// that can be cut.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Machine>,
    pub(crate) inbox: VecDeque<(NodeIdx, NodeIdx, Msg)>,
    pub(crate) persists: Vec<VecDeque<u64>>,
    pub(crate) logs: Vec<Vec<(u64, Value)>>,
    pub(crate) applied: Vec<Vec<(u64, Value)>>,
    pub(crate) cut: BTreeSet<(NodeIdx, NodeIdx)>,
    pub(crate) down: BTreeSet<NodeIdx>,
    pub(crate) replies: Vec<(ClientReqId, Result<(), Refusal>)>,
    pub(crate) now: u64,
}

impl Cluster {
    pub(crate) fn new(n: usize, forced: Option<NodeIdx>) -> Cluster {
        let nodes = (0..n)
            .map(|k| {
                let mut cfg = Config::new(names(n), k, LEASE);
                cfg.forced_master = forced;
                Machine::new(cfg, Durable::default(), 0, 7 + k as u64)
            })
            .collect();
        Cluster {
            nodes,
            inbox: VecDeque::new(),
            persists: vec![VecDeque::new(); n],
            logs: vec![Vec::new(); n],
            applied: vec![Vec::new(); n],
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            replies: Vec::new(),
            now: 0,
        }
    }

    pub(crate) fn exec(&mut self, k: NodeIdx, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.inbox.push_back((k, to, msg)),
                Action::Persist { token, entry, .. } => {
                    if let Some(e) = entry {
                        self.logs[k].push(e);
                    }
                    self.persists[k].push_back(token);
                }
                Action::Apply { i, value, .. } => {
                    let expected = self.applied[k].last().map_or(0, |(j, _)| j + 1);
                    assert_eq!(i, expected, "node {k} applies in order");
                    self.applied[k].push((i, value));
                }
                Action::Reply { id, result } => self.replies.push((id, result)),
                Action::CatchUp { from, to_i } => {
                    // Copy the source's applied slots up to to_i.
                    let mut source = self.applied[from].clone();
                    source.retain(|(i, _)| *i <= to_i);
                    if source.last().map(|(i, _)| *i) != Some(to_i) {
                        let out = self.step(k, Input::CatchUpFailed);
                        self.exec(k, out);
                        continue;
                    }
                    let last = source.last().cloned();
                    for (i, v) in &source {
                        self.logs[k].push((*i, v.clone()));
                    }
                    self.applied[k] = source;
                    let applied = last.as_ref().map(|(i, _)| *i);
                    let prev = self.applied[k].iter().rev().nth(1).cloned();
                    let out = self.step(k, Input::CaughtUp { last, prev, applied });
                    self.exec(k, out);
                }
            }
        }
    }

    pub(crate) fn step(&mut self, k: NodeIdx, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.nodes[k].handle(self.now, input, &mut out);
        out
    }

    /// Advances time by `ms` in 5 ms ticks, delivering everything in between.
    pub(crate) fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 5;
            for k in 0..self.nodes.len() {
                if self.down.contains(&k) {
                    continue;
                }
                let out = self.step(k, Input::Tick);
                self.exec(k, out);
            }
            self.drain();
        }
    }

    pub(crate) fn drain(&mut self) {
        for _ in 0..100_000 {
            let mut progressed = false;
            for k in 0..self.nodes.len() {
                while let Some(t) = self.persists[k].pop_front() {
                    progressed = true;
                    if self.down.contains(&k) {
                        continue;
                    }
                    let out = self.step(k, Input::Persisted { token: t });
                    self.exec(k, out);
                }
            }
            if let Some((from, to, msg)) = self.inbox.pop_front() {
                progressed = true;
                if !self.cut.contains(&(from, to))
                    && !self.down.contains(&to)
                    && !self.down.contains(&from)
                {
                    let out = self.step(to, Input::Message { from, msg });
                    self.exec(to, out);
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("the cluster never went quiet");
    }

    pub(crate) fn masters(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len())
            .filter(|k| !self.down.contains(k) && self.nodes[*k].lease_valid(self.now))
            .collect()
    }

    pub(crate) fn isolate(&mut self, k: NodeIdx) {
        for j in 0..self.nodes.len() {
            if j != k {
                self.cut.insert((k, j));
                self.cut.insert((j, k));
            }
        }
    }

    pub(crate) fn submit(&mut self, k: NodeIdx, id: u64, key: &str) {
        let out = self.step(k, Input::ClientUpdate { id: ClientReqId(id), update: set(key) });
        self.exec(k, out);
        self.drain();
    }

    /// Every node's applied slots are a prefix of the longest one.
    pub(crate) fn assert_applied_prefixes_agree(&self) {
        let longest = self.applied.iter().max_by_key(|a| a.len()).unwrap();
        for (k, a) in self.applied.iter().enumerate() {
            assert_eq!(&longest[..a.len()], &a[..], "node {k} diverges");
        }
    }
}
