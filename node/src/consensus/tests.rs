//! The core, rule by rule: exact actions for one input, then small clusters driven by a
//! deterministic message loop.

use super::*;
use crate::tlog::BallotRecord;
use crate::value::{Update, Value};
use std::collections::{BTreeSet, VecDeque};

const LEASE: u64 = 1000;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("n{k}")).collect()
}

fn machine(nodes: usize, me: usize, durable: Durable) -> Machine {
    Machine::new(Config::new(names(nodes), me, LEASE), durable, 0, 42)
}

fn set(k: &str) -> Update {
    Update::Set { key: k.as_bytes().to_vec(), value: b"v".to_vec() }
}

fn master_set(m: &str) -> Value {
    Value::MasterSet { master: m.into(), lease_start: 0 }
}

fn run(m: &mut Machine, now: u64, input: Input) -> Vec<Action> {
    let mut out = Vec::new();
    m.handle(now, input, &mut out);
    out
}

fn tokens(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| if let Action::Persist { token, .. } = a { Some(*token) } else { None })
        .collect()
}

fn sends(actions: &[Action]) -> Vec<(NodeIdx, Msg)> {
    actions
        .iter()
        .filter_map(
            |a| if let Action::Send { to, msg } = a { Some((*to, msg.clone())) } else { None },
        )
        .collect()
}

// ---- promise rule (1) -------------------------------------------------------------------------

#[test]
fn promise_rule_nak_when_ballot_not_higher() {
    let durable = Durable {
        ballot: BallotRecord { promised: 7, ..Default::default() },
        ..Default::default()
    };
    let mut m = machine(3, 1, durable);
    let out =
        run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n: 7, last_i: None } });
    assert_eq!(
        out,
        vec![Action::Send {
            to: 0,
            msg: Msg::Nak { n: 7, reason: NakReason::LowBallot, promised: 7, last_i: None }
        }]
    );
}

#[test]
fn promise_rule_promise_only_after_the_promise_is_durable() {
    let mut m = machine(3, 1, Durable::default());
    let out =
        run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: None } });
    let record = BallotRecord { promised: 3, ..Default::default() };
    assert_eq!(out, vec![Action::Persist { token: 1, ballot: Some(record), entry: None }]);
    let out = run(&mut m, 5001, Input::Persisted { token: 1 });
    assert_eq!(
        out,
        vec![Action::Send { to: 0, msg: Msg::Promise { n: 3, last: None, prev_hash: None } }]
    );
}

#[test]
fn restart_rule_no_promise_within_a_lease_of_starting() {
    let mut m = machine(3, 1, Durable::default());
    let out = run(
        &mut m,
        LEASE - 1,
        Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: None } },
    );
    assert!(
        matches!(&sends(&out)[..], [(0, Msg::Nak { reason: NakReason::Restarting, .. })]),
        "{out:?}"
    );
}

#[test]
fn promise_rule_nak_while_another_masters_lease_is_held() {
    let mut m = machine(3, 1, Durable::default());
    let now = 5000;
    let out = run(
        &mut m,
        now,
        Input::Message {
            from: 0,
            msg: Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None },
        },
    );
    assert_eq!(tokens(&out), vec![1]);
    let out = run(
        &mut m,
        now + 10,
        Input::Message { from: 2, msg: Msg::Prepare { n: 5, last_i: Some(0) } },
    );
    assert!(
        matches!(&sends(&out)[..], [(2, Msg::Nak { reason: NakReason::LeaseHeld, .. })]),
        "{out:?}"
    );
    // Once the lease has expired, the same candidate gets a promise.
    let out = run(
        &mut m,
        now + LEASE + 1,
        Input::Message { from: 2, msg: Msg::Prepare { n: 5, last_i: Some(0) } },
    );
    assert!(matches!(&out[..], [Action::Persist { ballot: Some(_), entry: None, .. }]), "{out:?}");
}

#[test]
fn promise_rule_a_candidate_that_is_behind_is_refused() {
    let durable = Durable {
        last: Some((10, Value::client(vec![set("a")]))),
        prev: Some((9, Value::client(vec![set("b")]))),
        applied: Some(9),
        ..Default::default()
    };
    let durable = Durable {
        ballot: BallotRecord { promised: 2, accepted_n: 2, accepted_from: 9, learner: false },
        ..durable
    };
    let mut m = machine(3, 1, durable);
    // Slot 9 is committed here; a candidate whose log ends at 8 is behind.
    let out =
        run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(8) } });
    assert!(
        matches!(
            &sends(&out)[..],
            [(0, Msg::Nak { reason: NakReason::Behind, last_i: Some(10), .. })]
        ),
        "{out:?}"
    );
    // One that ends at 9 is not.
    let out =
        run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(9) } });
    assert_eq!(tokens(&out).len(), 1);
}

// ---- accept rule (3) ----------------------------------------------------------------------------

#[test]
fn accept_rule_accepted_only_after_the_entry_is_durable() {
    let mut m = machine(3, 1, Durable::default());
    let v = master_set("n0");
    let out = run(
        &mut m,
        100,
        Input::Message {
            from: 0,
            msg: Msg::Accept { n: 3, i: 0, value: v.clone(), prev_hash: None },
        },
    );
    let record = BallotRecord { promised: 3, accepted_n: 3, accepted_from: 0, learner: false };
    assert_eq!(out, vec![Action::Persist { token: 1, ballot: Some(record), entry: Some((0, v)) }]);
    let out = run(&mut m, 101, Input::Persisted { token: 1 });
    assert_eq!(out, vec![Action::Send { to: 0, msg: Msg::Accepted { n: 3, i: 0 } }]);
}

#[test]
fn accept_rule_nak_a_lower_ballot() {
    let durable = Durable {
        ballot: BallotRecord { promised: 9, ..Default::default() },
        ..Default::default()
    };
    let mut m = machine(3, 1, durable);
    let out = run(
        &mut m,
        100,
        Input::Message {
            from: 0,
            msg: Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None },
        },
    );
    assert!(matches!(
        &sends(&out)[..],
        [(0, Msg::Nak { reason: NakReason::LowBallot, promised: 9, .. })]
    ));
}

#[test]
fn accept_rule_a_node_that_is_behind_catches_up_and_does_not_answer() {
    let mut m = machine(3, 1, Durable::default());
    let out = run(
        &mut m,
        100,
        Input::Message {
            from: 0,
            msg: Msg::Accept { n: 3, i: 5, value: master_set("n0"), prev_hash: Some(1) },
        },
    );
    assert_eq!(out, vec![Action::CatchUp { from: 0, to_i: 4 }]);
    assert_eq!(m.role(), RoleName::CatchingUp);
}

#[test]
fn accept_rule_a_previous_slot_that_differs_is_fetched_not_committed() {
    let mine = Value::client(vec![set("stale")]);
    let durable = Durable { last: Some((4, mine)), applied: Some(3), ..Default::default() };
    let mut m = machine(3, 1, durable);
    let chosen = Value::client(vec![set("chosen")]);
    let accept =
        Msg::Accept { n: 3, i: 5, value: master_set("n0"), prev_hash: Some(value_hash(&chosen)) };
    let out = run(&mut m, 100, Input::Message { from: 0, msg: accept });
    assert_eq!(out, vec![Action::CatchUp { from: 0, to_i: 4 }], "slot 4 must not be applied");
}

#[test]
fn accept_rule_a_matching_previous_slot_is_committed_and_applied() {
    let mine = Value::client(vec![set("x")]);
    let durable = Durable { last: Some((4, mine.clone())), applied: Some(3), ..Default::default() };
    let mut m = machine(3, 1, durable);
    let accept =
        Msg::Accept { n: 3, i: 5, value: master_set("n0"), prev_hash: Some(value_hash(&mine)) };
    let out = run(&mut m, 100, Input::Message { from: 0, msg: accept });
    assert_eq!(out[0], Action::Apply { i: 4, value: mine, clients: vec![] });
    assert!(matches!(out[1], Action::Persist { entry: Some((5, _)), .. }));
}

// ---- commit rule (4) and group commit (8) ------------------------------------------------------

/// A 3-node master with a lease, built by driving it through an election.
fn elected_master() -> (Machine, u64) {
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

#[test]
fn commit_rule_the_master_counts_itself_only_once_durable() {
    let (mut m, now) = elected_master();
    let n = m.promised();
    let out = run(&mut m, now, Input::ClientUpdate { id: ClientReqId(1), update: set("a") });
    let t = tokens(&out)[0];
    let out = run(&mut m, now, Input::Message { from: 1, msg: Msg::Accepted { n, i: 1 } });
    assert!(
        out.iter().all(|a| !matches!(a, Action::Apply { .. })),
        "not durable here yet: {out:?}"
    );
    let out = run(&mut m, now, Input::Persisted { token: t });
    assert_eq!(
        out[0],
        Action::Apply { i: 1, value: Value::client(vec![set("a")]), clients: vec![ClientReqId(1)] }
    );
    assert!(sends(&out).iter().any(|(_, m)| matches!(m, Msg::Commit { i: 1, .. })));
}

#[test]
fn group_commit_harvests_the_queue_bounded_by_count() {
    let (mut m, now) = elected_master();
    let n = m.promised();
    let out = run(&mut m, now, Input::ClientUpdate { id: ClientReqId(0), update: set("first") });
    let t = tokens(&out)[0];
    for k in 1..=2000u64 {
        let out = run(&mut m, now, Input::ClientUpdate { id: ClientReqId(k), update: set("q") });
        assert!(out.is_empty(), "queued while slot 1 is in flight");
    }
    run(&mut m, now, Input::Persisted { token: t });
    let out = run(&mut m, now, Input::Message { from: 2, msg: Msg::Accepted { n, i: 1 } });
    let next = sends(&out).into_iter().find_map(|(_, m)| match m {
        Msg::Accept { i: 2, value: Value::Client { updates, .. }, .. } => Some(updates.len()),
        _ => None,
    });
    assert_eq!(next, Some(1024), "one value holds the batch, at most batch_updates_max");
}

#[test]
fn group_commit_harvests_the_queue_bounded_by_bytes() {
    let mut cfg = Config::new(names(1), 0, LEASE);
    cfg.batch_bytes_max = 1000;
    let mut m = Machine::new(cfg, Durable::default(), 0, 1);
    let mut now = 0;
    let mut persists = VecDeque::new();
    let mut applied = Vec::new();
    while m.role() != RoleName::Master || !m.lease_valid(now) {
        assert!(now < 10 * LEASE, "a 1-node cluster elects itself");
        now += 10;
        let out = run(&mut m, now, Input::Tick);
        persists.extend(tokens(&out));
        while let Some(t) = persists.pop_front() {
            let out = run(&mut m, now, Input::Persisted { token: t });
            persists.extend(tokens(&out));
        }
    }
    assert_eq!(m.role(), RoleName::Master);
    let big = |k: u64| Update::Set { key: format!("k{k}").into_bytes(), value: vec![0; 300] };
    let out = run(&mut m, now, Input::ClientUpdate { id: ClientReqId(0), update: big(0) });
    persists.extend(tokens(&out));
    for k in 1..10 {
        run(&mut m, now, Input::ClientUpdate { id: ClientReqId(k), update: big(k) });
    }
    while let Some(t) = persists.pop_front() {
        let out = run(&mut m, now, Input::Persisted { token: t });
        persists.extend(tokens(&out));
        for a in out {
            if let Action::Apply { value: Value::Client { updates, .. }, .. } = a {
                applied.push(updates.len());
            }
        }
    }
    assert_eq!(applied, vec![1, 3, 3, 3], "300-byte updates, 1000 bytes a batch");
}

// ---- lease rule (5) -----------------------------------------------------------------------------

#[test]
fn lease_rule_the_master_steps_down_when_its_renewal_is_not_committed() {
    let (mut m, now) = elected_master();
    let out = run(&mut m, now + LEASE / 2, Input::Tick);
    assert!(
        sends(&out)
            .iter()
            .any(|(_, m)| matches!(m, Msg::Accept { value: Value::MasterSet { .. }, .. })),
        "renewal at half the lease"
    );
    // Updates arrive; nobody answers the renewal.
    run(
        &mut m,
        now + LEASE / 2 + 1,
        Input::ClientUpdate { id: ClientReqId(9), update: set("late") },
    );
    assert!(m.lease_valid(now + LEASE - LEASE / 10 - 1));
    let out = run(&mut m, now + LEASE, Input::Tick);
    assert!(!m.lease_valid(now + LEASE));
    assert_eq!(m.role(), RoleName::Slave);
    assert_eq!(
        out,
        vec![Action::Reply {
            id: ClientReqId(9),
            result: Err(Refusal::NotMaster { master: None })
        }]
    );
}

#[test]
fn lease_rule_a_slave_refuses_updates_and_names_the_master() {
    let mut m = machine(3, 1, Durable::default());
    run(
        &mut m,
        5000,
        Input::Message {
            from: 0,
            msg: Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None },
        },
    );
    let out = run(&mut m, 5001, Input::ClientUpdate { id: ClientReqId(1), update: set("a") });
    assert_eq!(
        out,
        vec![Action::Reply {
            id: ClientReqId(1),
            result: Err(Refusal::NotMaster { master: Some(0) })
        }]
    );
    assert!(!m.lease_valid(5001));
}

#[test]
fn lease_rule_a_consistent_read_is_served_only_by_a_master_inside_its_lease() {
    let (m, now) = elected_master();
    assert_eq!(m.read_permission(now, ReadWant::Consistent, None), Ok(()));
    let end = now + LEASE - LEASE / 10;
    assert_eq!(m.read_permission(end - 1, ReadWant::Consistent, None), Ok(()));
    // The master's own view of its lease ends a margin before the slaves' timers do.
    assert!(matches!(
        m.read_permission(end, ReadWant::Consistent, None),
        Err(ReadRefusal::NotMaster { .. })
    ));
}

#[test]
fn lease_rule_a_slave_refuses_consistent_reads_and_names_the_master() {
    let mut m = machine(3, 1, Durable::default());
    let accept = Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None };
    run(&mut m, 5000, Input::Message { from: 0, msg: accept });
    assert_eq!(
        m.read_permission(5001, ReadWant::Consistent, Some(0)),
        Err(ReadRefusal::NotMaster { master: Some(0) })
    );
    // Past the lease it knows of, it names nobody.
    assert_eq!(
        m.read_permission(5000 + LEASE, ReadWant::Consistent, Some(0)),
        Err(ReadRefusal::NotMaster { master: None })
    );
    assert_eq!(m.read_permission(5001, ReadWant::Anywhere, None), Ok(()));
}

#[test]
fn lease_rule_an_at_least_read_waits_for_the_store_to_apply_the_slot() {
    let m = machine(3, 1, Durable::default());
    assert_eq!(
        m.read_permission(0, ReadWant::AtLeast(5), Some(4)),
        Err(ReadRefusal::NotYetApplied { applied: Some(4), wanted: 5 })
    );
    assert_eq!(
        m.read_permission(0, ReadWant::AtLeast(0), None),
        Err(ReadRefusal::NotYetApplied { applied: None, wanted: 0 })
    );
    assert_eq!(m.read_permission(0, ReadWant::AtLeast(5), Some(5)), Ok(()));
}

// ---- candidate rule (2) -------------------------------------------------------------------------

#[test]
fn candidate_rule_reproposes_the_highest_ballot_value_of_the_highest_slot() {
    let old = Value::client(vec![set("old")]);
    let durable = Durable {
        last: Some((3, old)),
        prev: Some((2, Value::client(vec![set("two")]))),
        applied: Some(2),
        ballot: BallotRecord { promised: 4, accepted_n: 4, accepted_from: 3, learner: false },
    };
    let mut m = machine(3, 0, durable);
    let mut now = 0;
    let mut out = Vec::new();
    while m.role() != RoleName::Candidate {
        now += 10;
        out = run(&mut m, now, Input::Tick);
    }
    let n = m.promised();
    run(&mut m, now, Input::Persisted { token: tokens(&out)[0] });
    let newer = Value::client(vec![set("newer")]);
    let promise = Msg::Promise { n, last: Some((3, 7, newer.clone())), prev_hash: None };
    let out = run(&mut m, now, Input::Message { from: 2, msg: promise });
    let accepts: Vec<(u64, Value)> = sends(&out)
        .into_iter()
        .filter_map(
            |(_, m)| if let Msg::Accept { i, value, .. } = m { Some((i, value)) } else { None },
        )
        .collect();
    assert_eq!(accepts[0], (3, newer), "slot 3 again, with the value of ballot 7, not 4");
}

// ---- election rule (6) --------------------------------------------------------------------------

#[test]
fn election_rule_with_a_forced_master_only_it_runs_elections() {
    let mut cfg = Config::new(names(3), 1, LEASE);
    cfg.forced_master = Some(0);
    let mut m = Machine::new(cfg, Durable::default(), 0, 3);
    for t in 0..100 {
        run(&mut m, t * 100, Input::Tick);
        assert_eq!(m.role(), RoleName::Slave);
    }
}

#[test]
fn drop_master_is_not_supported_on_one_node() {
    let mut m = machine(1, 0, Durable::default());
    let out = run(&mut m, 0, Input::DropMaster { id: ClientReqId(1) });
    assert!(matches!(&out[..], [Action::Reply { result: Err(Refusal::SoleNode), .. }]));
}

// ---- clusters -----------------------------------------------------------------------------------

/// A deterministic cluster: messages delivered in order, persist jobs completed at once, links
/// that can be cut.
struct Cluster {
    nodes: Vec<Machine>,
    inbox: VecDeque<(NodeIdx, NodeIdx, Msg)>,
    persists: Vec<VecDeque<u64>>,
    logs: Vec<Vec<(u64, Value)>>,
    applied: Vec<Vec<(u64, Value)>>,
    cut: BTreeSet<(NodeIdx, NodeIdx)>,
    down: BTreeSet<NodeIdx>,
    replies: Vec<(ClientReqId, Result<(), Refusal>)>,
    now: u64,
}

impl Cluster {
    fn new(n: usize, forced: Option<NodeIdx>) -> Cluster {
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

    fn exec(&mut self, k: NodeIdx, actions: Vec<Action>) {
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

    fn step(&mut self, k: NodeIdx, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.nodes[k].handle(self.now, input, &mut out);
        out
    }

    /// Advances time by `ms` in 5 ms ticks, delivering everything in between.
    fn run_for(&mut self, ms: u64) {
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

    fn drain(&mut self) {
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

    fn masters(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len())
            .filter(|k| !self.down.contains(k) && self.nodes[*k].lease_valid(self.now))
            .collect()
    }

    fn isolate(&mut self, k: NodeIdx) {
        for j in 0..self.nodes.len() {
            if j != k {
                self.cut.insert((k, j));
                self.cut.insert((j, k));
            }
        }
    }

    fn submit(&mut self, k: NodeIdx, id: u64, key: &str) {
        let out = self.step(k, Input::ClientUpdate { id: ClientReqId(id), update: set(key) });
        self.exec(k, out);
        self.drain();
    }

    /// Every node's applied slots are a prefix of the longest one.
    fn assert_applied_prefixes_agree(&self) {
        let longest = self.applied.iter().max_by_key(|a| a.len()).unwrap();
        for (k, a) in self.applied.iter().enumerate() {
            assert_eq!(&longest[..a.len()], &a[..], "node {k} diverges");
        }
    }
}

fn elects_and_commits(n: usize) {
    let mut c = Cluster::new(n, None);
    c.run_for(4 * LEASE);
    let masters = c.masters();
    assert_eq!(masters.len(), 1, "{n} nodes: exactly one master, got {masters:?}");
    let m = masters[0];
    for id in 0..20 {
        c.submit(m, id, &format!("k{id}"));
    }
    c.run_for(LEASE);
    assert_eq!(c.masters(), vec![m], "the lease is renewed");
    let updates: usize = c.applied[m]
        .iter()
        .map(|(_, v)| if let Value::Client { updates, .. } = v { updates.len() } else { 0 })
        .sum();
    assert_eq!(updates, 20);
    c.assert_applied_prefixes_agree();
    if n > 1 {
        // Slaves apply everything once the master commits again (Commit messages).
        for k in 0..n {
            assert!(c.applied[k].len() + 1 >= c.applied[m].len(), "node {k} lags");
        }
    }
}

#[test]
fn a_one_node_cluster_elects_itself_and_commits() {
    elects_and_commits(1);
}

#[test]
fn a_two_node_cluster_elects_and_commits() {
    elects_and_commits(2);
}

#[test]
fn a_three_node_cluster_elects_and_commits() {
    elects_and_commits(3);
}

#[test]
fn a_five_node_cluster_elects_and_commits() {
    elects_and_commits(5);
}

#[test]
fn an_isolated_master_is_replaced_and_never_overlaps() {
    let mut c = Cluster::new(3, None);
    c.run_for(4 * LEASE);
    let old = c.masters()[0];
    c.submit(old, 1, "before");
    c.isolate(old);
    // Step through time: never two valid leases at once.
    for _ in 0..(4 * LEASE / 5) {
        c.run_for(5);
        assert!(c.masters().len() <= 1, "two masters at {}", c.now);
    }
    let new = c.masters();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    c.submit(new[0], 2, "after");
    c.cut.clear();
    c.run_for(3 * LEASE);
    assert_eq!(c.masters().len(), 1);
    c.assert_applied_prefixes_agree();
    // The old master rejoined and holds the same history.
    assert!(c.applied[old].len() >= c.applied[new[0]].len() - 1);
}

#[test]
fn a_node_that_is_behind_never_becomes_master() {
    let mut c = Cluster::new(3, None);
    c.run_for(4 * LEASE);
    let m = c.masters()[0];
    let lagging = (m + 1) % 3;
    c.isolate(lagging);
    for id in 0..10 {
        c.submit(m, id, "x");
    }
    c.run_for(LEASE);
    // Now the master dies and the lagging node comes back: only the up-to-date node may win.
    c.cut.clear();
    c.down.insert(m);
    c.run_for(6 * LEASE);
    let masters = c.masters();
    assert_eq!(masters.len(), 1);
    assert_ne!(masters[0], lagging, "the lagging node became master");
    c.assert_applied_prefixes_agree();
}

#[test]
fn a_forced_master_cluster_has_only_that_master() {
    let mut c = Cluster::new(3, Some(2));
    c.run_for(4 * LEASE);
    assert_eq!(c.masters(), vec![2]);
    c.submit(2, 1, "k");
    c.run_for(LEASE);
    c.assert_applied_prefixes_agree();
}

#[test]
fn drop_master_hands_over_to_another_node() {
    let mut c = Cluster::new(3, None);
    c.run_for(4 * LEASE);
    let old = c.masters()[0];
    let out = c.step(old, Input::DropMaster { id: ClientReqId(77) });
    c.exec(old, out);
    assert!(c.replies.contains(&(ClientReqId(77), Ok(()))));
    c.run_for(4 * LEASE);
    let new = c.masters();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
}

#[test]
fn restart_rule_a_learner_neither_votes_nor_runs_until_a_master_caught_it_up() {
    let durable = Durable {
        ballot: BallotRecord { learner: true, ..Default::default() },
        last: Some((4, Value::client(vec![set("x")]))),
        applied: Some(4),
        ..Default::default()
    };
    let mut m = machine(3, 1, durable);
    for t in 0..50 {
        let out = run(&mut m, t * 100, Input::Tick);
        assert!(sends(&out).is_empty(), "a learner never prepares: {out:?}");
    }
    let out =
        run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(4) } });
    assert!(matches!(&sends(&out)[..], [(0, Msg::Nak { reason: NakReason::Restarting, .. })]));
    assert!(m.is_learner());
    // A master's Accept whose previous slot matches brings it up to date: it votes again.
    let accept = Msg::Accept { n: 3, i: 5, value: master_set("n0"), prev_hash: None };
    let out = run(&mut m, 5001, Input::Message { from: 0, msg: accept });
    assert!(!m.is_learner());
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Persist { ballot: Some(BallotRecord { learner: false, .. }), .. }
    )));
}

// ---- bounded ballots ----------------------------------------------------------------------------

#[test]
fn bounded_ballots_a_ballot_beyond_the_reach_is_dropped_unseen() {
    let mut m = machine(3, 1, Durable::default());
    let forged = Msg::Prepare { n: MAX_BALLOT, last_i: Some(1 << 40) };
    assert_eq!(run(&mut m, 5000, Input::Message { from: 0, msg: forged }), vec![]);
    assert_eq!((m.promised(), m.refused_ballots()), (0, 1));
    // Just within the reach: an honest candidate that climbed far is still heard.
    let far = Msg::Prepare { n: BALLOT_REACH, last_i: None };
    let out = run(&mut m, 5001, Input::Message { from: 0, msg: far });
    let record = BallotRecord { promised: BALLOT_REACH, ..Default::default() };
    assert_eq!(out, vec![Action::Persist { token: 1, ballot: Some(record), entry: None }]);
    // The forged ballot did not raise this node's next ballot: it stays within the reach.
    let mut now = 5001;
    let mut out = Vec::new();
    while m.role() != RoleName::Candidate {
        now += 10;
        out = run(&mut m, now, Input::Tick);
    }
    let n = m.promised();
    assert!(n > BALLOT_REACH && n < 2 * BALLOT_REACH, "{n}");
    assert!(sends(&out).iter().all(|(_, msg)| msg.ballot() == n));
}

#[test]
fn bounded_ballots_no_ballot_above_the_maximum_is_ever_used() {
    // A node whose promise sits at the very top (an old forged ballot on disk) cannot pick a
    // higher one: it stays a slave rather than overflow.
    let top = BallotRecord { promised: MAX_BALLOT - 1, ..Default::default() };
    let mut m = machine(3, 2, Durable { ballot: top, ..Default::default() });
    for now in (0..10 * LEASE).step_by(10) {
        let out = run(&mut m, now, Input::Tick);
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(m.role(), RoleName::Slave);
    // Just below it, the next ballot is the node's own and still fits.
    let near = BallotRecord { promised: MAX_BALLOT - 10, ..Default::default() };
    let mut m = machine(3, 2, Durable { ballot: near, ..Default::default() });
    let mut now = 0;
    while m.role() != RoleName::Candidate {
        now += 10;
        run(&mut m, now, Input::Tick);
    }
    assert!(m.promised() <= MAX_BALLOT && m.promised() % 3 == 2, "{}", m.promised());
}

#[test]
fn bounded_ballots_every_ballot_persisted_or_sent_reads_back() {
    use crate::protocol::peer;
    use crate::tlog::MemDir;
    let mut m = machine(3, 1, Durable::default());
    let n = BALLOT_REACH;
    let out = run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n, last_i: None } });
    let Some(Action::Persist { ballot: Some(record), .. }) = out.first() else {
        panic!("no ballot record persisted: {out:?}")
    };
    let dir = MemDir::new("b");
    record.store(&dir).unwrap();
    assert_eq!(BallotRecord::load(&dir).unwrap(), *record);
    let top = BallotRecord { promised: MAX_BALLOT, accepted_n: MAX_BALLOT, ..*record };
    top.store(&dir).unwrap();
    assert_eq!(BallotRecord::load(&dir).unwrap(), top);
    let prepare = Msg::Prepare { n: MAX_BALLOT, last_i: Some(MAX_BALLOT) };
    assert_eq!(peer::decode(&peer::encode(&prepare)).unwrap(), prepare);
    let nak = Msg::Nak {
        n: MAX_BALLOT,
        reason: NakReason::LowBallot,
        promised: MAX_BALLOT,
        last_i: None,
    };
    assert_eq!(peer::decode(&peer::encode(&nak)).unwrap(), nak);
}
