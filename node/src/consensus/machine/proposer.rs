//! The proposer's rules: the candidate rule (2) that turns a quorum of promises into a master,
//! the master's side of the commit rule (4), and group commit (8) that harvests queued client
//! updates into one value per slot.

use super::*;

impl Machine {
    /// With nothing in flight: renew the lease when due, else propose the queued updates.
    pub(super) fn propose_next(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &mut self.role else { return };
        if m.in_flight.is_some() {
            return;
        }
        let renew = m.lease_t0.is_none_or(|t0| now_ms >= t0 + self.cfg.lease_ms / 2);
        let (value, clients) = if renew {
            let master = self.cfg.names[self.cfg.me].clone();
            (Value::MasterSet { master, lease_start: 0 }, Vec::new())
        } else if !m.queue.is_empty() {
            // Group commit (rule 8): everything queued, bounded by count and bytes.
            let mut updates = Vec::new();
            let mut clients = Vec::new();
            let mut bytes = 0usize;
            while let Some((_, u)) = m.queue.front() {
                let size = u.encoded_len();
                if !updates.is_empty()
                    && (updates.len() >= self.cfg.batch_updates_max
                        || bytes + size > self.cfg.batch_bytes_max)
                {
                    break;
                }
                let (id, u) = m.queue.pop_front().expect("front exists");
                bytes += size;
                let synced = matches!(u, Update::SyncedSequence(_));
                updates.push(u);
                clients.push(id);
                if synced {
                    break;
                }
            }
            let synced = updates.iter().any(|u| matches!(u, Update::SyncedSequence(_)));
            // Planted bug GroupCommitRepliesShifted, after the harvest (rule 8).
            if crate::planted!(GroupCommitRepliesShifted) {
                clients.rotate_left(1);
            }
            (Value::Client { synced, updates: updates.into() }, clients)
        } else {
            return;
        };
        let i = self.last_i().map_or(0, |l| l + 1);
        self.propose(now_ms, i, value, clients, out);
    }

    /// Sends Accept for slot `i` and persists it locally (the master votes once durable).
    pub(super) fn propose(
        &mut self,
        now_ms: u64,
        i: u64,
        value: Value,
        clients: Vec<ClientReqId>,
        out: &mut Vec<Action>,
    ) {
        let Role::Master(m) = &self.role else { return };
        let n = m.n;
        if self.last.as_ref().is_some_and(|l| l.i + 1 == i) || self.last.is_none() {
            assert!(
                self.committed == self.last_i(),
                "propose {i} before the previous slot is chosen"
            );
        }
        let record = (self.record.accepted_n != n).then_some(BallotRecord {
            promised: self.promised,
            accepted_n: n,
            accepted_from: i,
            ..self.record
        });
        self.set_last(i, Some(n), value.clone());
        let prev_hash = self.prev.as_ref().filter(|p| p.i + 1 == i).map(|p| p.hash);
        self.broadcast(Msg::Accept { n, i, value: value.clone(), prev_hash }, out);
        self.persist(record, Some((i, value.clone())), After::SelfAck { n, i }, out);
        let hash = self.last.as_ref().expect("the slot just kept").hash;
        let Role::Master(m) = &mut self.role else { unreachable!() };
        let bytes = value.encoded_len();
        m.in_flight = Some(InFlight {
            i,
            hash,
            bytes,
            value,
            clients,
            acks: BTreeSet::new(),
            self_durable: false,
            first_sent_ms: now_ms,
            last_sent_ms: now_ms,
        });
    }

    /// Candidate rule (2).
    pub(super) fn on_promise(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        last: Option<(u64, u64, Value)>,
        prev_hash: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let Role::Candidate { n: mine, promises, .. } = &mut self.role else { return };
        if *mine != n {
            return;
        }
        promises.insert(from, Promised { last, prev_hash });
        self.try_win(now_ms, out);
    }

    pub(super) fn try_win(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Candidate { n, promises, self_promised, .. } = &self.role else { return };
        let won = *self_promised && promises.len() + 1 >= self.cfg.quorum;
        // Planted bug PromiseBeyondQuorum, at the edge of the rule: one promise more is awaited.
        let won =
            won && !(crate::planted!(PromiseBeyondQuorum) && promises.len() + 1 == self.cfg.quorum);
        if !won {
            return;
        }
        let n = *n;
        // The highest slot any promiser holds, and among its holders the highest ballot.
        let mut best: Option<(u64, u64, Value, Option<u64>, NodeIdx)> =
            self.last.as_ref().map(|s| (s.i, s.n.unwrap_or(0), s.value.clone(), None, self.cfg.me));
        for (&k, p) in promises {
            if let Some((i, pn, v)) = &p.last {
                let better = match &best {
                    None => true,
                    Some((bi, bn, ..)) => (*i, *pn) > (*bi, *bn),
                };
                if better {
                    best = Some((*i, *pn, v.clone(), p.prev_hash, k));
                }
            }
        }
        let promises_for_check: Vec<(NodeIdx, Option<u64>, Option<u64>)> =
            promises.iter().map(|(k, p)| (*k, p.last.as_ref().map(|l| l.0), p.prev_hash)).collect();
        let Some((s, _, value, _, holder)) = best else {
            // Nobody holds anything: start the log with this node's MasterSet.
            self.become_master(n);
            self.propose_next(now_ms, out);
            return;
        };
        // This node must hold the chosen slot s-1 before it can re-propose s.
        let my_last = self.last_i();
        let ok = match my_last {
            Some(l) if l >= s => true,
            Some(l) if l + 1 == s => {
                let mine = self.last.as_ref().map(|x| x.hash);
                promises_for_check
                    .iter()
                    .any(|(_, li, ph)| *li == Some(s) && *ph == mine && ph.is_some())
            }
            None if s == 0 => true,
            _ => false,
        };
        // Planted bug LaggingMaster, at the edge of the check: a candidate that lacks slot s-1
        // proposes anyway.
        let ok = ok || crate::planted!(LaggingMaster);
        if !ok {
            let source = promises_for_check
                .iter()
                .find(|(_, li, _)| *li == Some(s))
                .map_or(holder, |(k, ..)| *k);
            self.role = Role::CatchingUp { since_ms: now_ms };
            out.push(Action::CatchUp { from: source, to_i: s - 1 });
            return;
        }
        self.become_master(n);
        if my_last == Some(s) {
            // Re-propose the highest-ballot value for s (it may be chosen already; Paxos makes
            // re-proposing it under n safe).
            let value = if self.last.as_ref().is_some_and(|l| l.value == value) {
                self.last.as_ref().expect("last exists").value.clone()
            } else {
                value
            };
            self.repropose(now_ms, s, value, out);
        } else {
            self.repropose(now_ms, s, value, out);
        }
    }

    fn become_master(&mut self, n: u64) {
        self.role = Role::Master(MasterState::new(n));
        // Its promise to itself binds it from now on, as it accepts under n: a later candidacy
        // that fails must not return below n (election rule 6), or it would promise a lower
        // ballot than one it accepted under.
        self.promised_others = self.promised_others.max(n);
    }

    /// Re-proposes slot `s` (the same slot as this node's last, or the one after it).
    pub(super) fn repropose(&mut self, now_ms: u64, s: u64, value: Value, out: &mut Vec<Action>) {
        if let Some(l) = &self.last {
            if l.i == s {
                // Overwrite the uncommitted last slot: keep `prev` as is.
                let Role::Master(m) = &self.role else { return };
                let n = m.n;
                let record = BallotRecord {
                    promised: self.promised,
                    accepted_n: n,
                    accepted_from: s,
                    ..self.record
                };
                self.last = Some(Slot::new(s, Some(n), value.clone()));
                let prev_hash = self.prev.as_ref().filter(|p| p.i + 1 == s).map(|p| p.hash);
                self.broadcast(Msg::Accept { n, i: s, value: value.clone(), prev_hash }, out);
                self.persist(
                    Some(record),
                    Some((s, value.clone())),
                    After::SelfAck { n, i: s },
                    out,
                );
                let hash = self.last.as_ref().expect("the slot just kept").hash;
                let Role::Master(m) = &mut self.role else { unreachable!() };
                m.in_flight = Some(InFlight {
                    i: s,
                    hash,
                    bytes: value.encoded_len(),
                    value,
                    clients: Vec::new(),
                    acks: BTreeSet::new(),
                    self_durable: false,
                    first_sent_ms: now_ms,
                    last_sent_ms: now_ms,
                });
                return;
            }
        }
        // s is one past this node's last, which is chosen.
        if let Some(l) = self.last_i() {
            self.commit_through(l, Vec::new(), out);
        }
        self.propose(now_ms, s, value, Vec::new(), out);
    }

    pub(super) fn on_nak(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        reason: NakReason,
        last_i: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let (Role::Candidate { n: mine, .. } | Role::Master(MasterState { n: mine, .. })) =
            &self.role
        else {
            return;
        };
        if *mine != n {
            return;
        }
        match reason {
            NakReason::Behind => {
                if matches!(self.role, Role::Master(_)) {
                    self.become_slave(now_ms, out);
                }
                let to_i = last_i.and_then(|l| l.checked_sub(1));
                match to_i {
                    Some(to_i) if opt_lt(self.committed, Some(to_i)) => {
                        self.role = Role::CatchingUp { since_ms: now_ms };
                        out.push(Action::CatchUp { from, to_i });
                    }
                    _ => self.become_slave(now_ms, out),
                }
            }
            // A master keeps its lease: a node with a higher ballot either cannot win (the
            // lease holds at a quorum) or will win, in which case this master's rounds fail and
            // its lease lapses. A candidate gives up.
            NakReason::LowBallot if matches!(self.role, Role::Master(_)) => {}
            NakReason::LowBallot => self.become_slave(now_ms, out),
            NakReason::LeaseHeld | NakReason::Restarting => {
                // Others may still promise; the candidate's deadline bounds the attempt.
            }
        }
    }

    /// Commit rule (4), on the master.
    pub(super) fn on_accepted(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        i: u64,
        out: &mut Vec<Action>,
    ) {
        let Role::Master(m) = &mut self.role else { return };
        if m.n != n {
            return;
        }
        if let Some(f) = &mut m.in_flight {
            if f.i == i {
                f.acks.insert(from);
            }
        }
        self.check_commit(now_ms, out);
    }

    pub(super) fn check_commit(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &mut self.role else { return };
        let Some(f) = &m.in_flight else { return };
        let quorum = f.acks.len() + 1 >= self.cfg.quorum;
        // Planted bug AckBeforeQuorum, at the edge of the check: the master's own vote is enough.
        let quorum = quorum || crate::planted!(AckBeforeQuorum);
        if !f.self_durable || !quorum {
            return;
        }
        let f = m.in_flight.take().expect("in flight");
        let n = m.n;
        if matches!(&f.value, Value::MasterSet { master, .. } if *master == self.cfg.names[self.cfg.me])
        {
            m.lease_t0 = Some(f.first_sent_ms);
        }
        let hash = f.hash;
        self.commit_through(f.i, f.clients, out);
        self.broadcast(Msg::Commit { n, i: f.i, hash }, out);
        self.propose_next(now_ms, out);
    }

    pub(super) fn on_client_update(
        &mut self,
        now_ms: u64,
        id: ClientReqId,
        update: Update,
        out: &mut Vec<Action>,
    ) {
        let master = self.master(now_ms);
        let queue_max = self.cfg.queue_max;
        let Role::Master(m) = &mut self.role else {
            out.push(Action::Reply { id, result: Err(Refusal::NotMaster { master }) });
            return;
        };
        if m.queue.len() >= queue_max {
            out.push(Action::Reply { id, result: Err(Refusal::QueueFull) });
            return;
        }
        m.queue.push_back((id, update));
        if m.lease_t0.is_some() {
            self.propose_next(now_ms, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
            Action::Apply {
                i: 1,
                value: Value::client(vec![set("a")]),
                clients: vec![ClientReqId(1)]
            }
        );
        assert!(sends(&out).iter().any(|(_, m)| matches!(m, Msg::Commit { i: 1, .. })));
    }

    #[test]
    fn group_commit_harvests_the_queue_bounded_by_count() {
        let (mut m, now) = elected_master();
        let n = m.promised();
        let out =
            run(&mut m, now, Input::ClientUpdate { id: ClientReqId(0), update: set("first") });
        let t = tokens(&out)[0];
        for k in 1..=2000u64 {
            let out =
                run(&mut m, now, Input::ClientUpdate { id: ClientReqId(k), update: set("q") });
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

    /// The sizes of the batches a 1-node master applies when `count` updates of `value_len`
    /// bytes queue while its first slot is in flight.
    fn batches(cfg: Config, value_len: usize, count: u64) -> Vec<usize> {
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
        let big =
            |k: u64| Update::Set { key: format!("k{k}").into_bytes(), value: vec![0; value_len] };
        let out = run(&mut m, now, Input::ClientUpdate { id: ClientReqId(0), update: big(0) });
        persists.extend(tokens(&out));
        for k in 1..count {
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
        applied
    }

    #[test]
    fn group_commit_harvests_the_queue_bounded_by_bytes() {
        let mut cfg = Config::new(names(1), 0, LEASE);
        cfg.batch_bytes_max = 1000;
        assert_eq!(batches(cfg, 300, 10), vec![1, 3, 3, 3], "300-byte updates, 1000 bytes a batch");
    }

    /// By default a slot holds at most a MiB: values of 600 KiB go one a slot (with the 4 MiB of
    /// before, six shared a slot, whose round took longer than six rounds of one).
    #[test]
    fn large_values_go_one_a_slot_by_default() {
        let cfg = Config::new(names(1), 0, LEASE);
        assert_eq!(batches(cfg, 600 << 10, 8), vec![1; 8]);
        // Small values still share a slot, up to the count bound.
        let cfg = Config::new(names(1), 0, LEASE);
        assert_eq!(batches(cfg, 100, 2000), vec![1, 1024, 975]);
    }

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
    fn a_one_node_cluster_elects_itself_and_commits() {
        elects_and_commits(1);
    }
}
