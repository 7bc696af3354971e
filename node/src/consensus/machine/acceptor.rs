//! The acceptor's rules: the promise rule (1), the accept rule (3) and a slave's side of the
//! commit rule (4). Every answer that binds the node (Promise, Accepted) leaves only after the
//! persist job that makes it true is durable.

use super::*;

impl Machine {
    /// Promise rule (1).
    pub(super) fn on_prepare(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        last_i: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let nak = |reason| Action::Send {
            to: from,
            msg: Msg::Nak { n, reason, promised: self.promised, last_i: self.last_i() },
        };
        if n <= self.promised {
            out.push(nak(NakReason::LowBallot));
            return;
        }
        let lease_wait = self.in_restart_wait(now_ms);
        // Planted bug NoLeaseWaitAfterRestart, at the edge of the restart rule (7).
        let lease_wait = lease_wait && !crate::planted!(NoLeaseWaitAfterRestart);
        let restarting = self.record.learner
            || lease_wait
            || self.last.as_ref().is_some_and(|s| s.n.is_none() && self.committed != Some(s.i));
        if restarting || matches!(self.role, Role::CatchingUp { .. }) {
            out.push(nak(NakReason::Restarting));
            return;
        }
        // Planted bug LaggingMaster, at the edge of this check: the candidate is taken to be
        // level with this node.
        let last_i =
            if crate::planted!(LaggingMaster) { last_i.max(self.committed) } else { last_i };
        // Behind first: a lagging candidate must learn to catch up, whatever the lease.
        if opt_lt(last_i, self.committed) {
            out.push(nak(NakReason::Behind));
            return;
        }
        let held = self.lease_valid(now_ms)
            || self.lease.is_some_and(|(m, exp)| m != from && now_ms < exp);
        if held {
            out.push(nak(NakReason::LeaseHeld));
            return;
        }
        if !matches!(self.role, Role::Slave { .. }) {
            self.become_slave(now_ms, out);
        }
        self.promised = n;
        self.promised_others = n;
        // Give the candidate the time the promises' values take on the link before running
        // against it (nothing on a fast link: a slave that promised a candidate that cannot win
        // must still run itself, learn it is behind, and catch up).
        let wait = self.last_ship_allowance_ms() + self.jitter();
        if let Role::Slave { election_at_ms } = &mut self.role {
            *election_at_ms = (*election_at_ms).max(now_ms + wait);
        }
        let record = BallotRecord { promised: n, ..self.record };
        self.persist(Some(record), None, After::Promise { to: from, n }, out);
        // Planted bug PromiseBeforeDurable, past the end of the rule: the Promise leaves before
        // the ballot record that holds it is durable.
        if crate::planted!(PromiseBeforeDurable) {
            out.push(Action::Send { to: from, msg: self.promise_msg(n) });
        }
    }

    pub(super) fn promise_msg(&self, n: u64) -> Msg {
        let last = self.last.as_ref().map(|s| {
            // A committed last slot may report any ballot: its value is the chosen one.
            (s.i, s.n.unwrap_or(0), s.value.clone())
        });
        let prev_hash = self
            .prev
            .as_ref()
            .filter(|p| self.last.as_ref().is_some_and(|l| p.i + 1 == l.i))
            .map(|p| p.hash);
        Msg::Promise { n, last, prev_hash }
    }

    /// Accept rule (3).
    #[allow(clippy::too_many_arguments)] // one argument per field of the message
    pub(super) fn on_accept(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        i: u64,
        value: Value,
        prev_hash: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let low = n < self.promised;
        // Planted bug AcceptLowerBallot, at the edge of the check: the low ballot goes unnoticed.
        let low = low && !crate::planted!(AcceptLowerBallot);
        if low {
            out.push(Action::Send {
                to: from,
                msg: Msg::Nak {
                    n,
                    reason: NakReason::LowBallot,
                    promised: self.promised,
                    last_i: self.last_i(),
                },
            });
            return;
        }
        if matches!(self.role, Role::CatchingUp { .. }) {
            self.hold_while_catching_up(from, n, i, value, prev_hash);
            return;
        }
        if n > self.promised || !matches!(self.role, Role::Slave { .. }) {
            if matches!(self.role, Role::Master(MasterState { n: mine, .. }) if mine == n) {
                return; // our own ballot: cannot come from another node
            }
            self.become_slave(now_ms, out);
            self.promised = n;
        }
        self.promised_others = self.promised_others.max(n);
        let my_last = self.last_i();
        match my_last {
            Some(l) if l == i => {
                if self.last.as_ref().is_some_and(|s| s.n == Some(n)) {
                    // A duplicate: already accepted under n; answer again once durable.
                    let record = None;
                    self.persist(record, None, After::Accepted { to: from, n, i }, out);
                    return;
                }
            }
            Some(l) if l + 1 == i => {
                let mine = self.last.as_ref().map(|s| s.hash);
                // A last slot known committed holds the chosen value already; otherwise it must
                // match the master's.
                let verified =
                    self.committed == Some(l) || (prev_hash.is_some() && prev_hash == mine);
                // Planted bug CommitUnverifiedSlot, at the edge of the check: the last slot is
                // taken as the master's unchecked.
                let verified = verified || crate::planted!(CommitUnverifiedSlot);
                if !verified {
                    // Our last slot may hold a value that was not chosen: fetch the chosen one.
                    self.role = Role::CatchingUp { since_ms: now_ms };
                    out.push(Action::CatchUp { from, to_i: l });
                    return;
                }
                self.graduate(out);
                self.commit_through(l, Vec::new(), out);
            }
            None if i == 0 => {}
            Some(l) if l > i => return, // stale
            _ => {
                // Behind: slots before i are chosen but missing here. Keep the Accept: once
                // caught up, this node can still accept slot i and so rejoin the quorum.
                self.role = Role::CatchingUp { since_ms: now_ms };
                out.push(Action::CatchUp { from, to_i: i - 1 });
                self.held_accepts.clear();
                self.held_accepts.push_back((from, Msg::Accept { n, i, value, prev_hash }));
                return;
            }
        }
        let record =
            if self.record.promised != n || self.record.accepted_n != n || my_last == Some(i) {
                Some(BallotRecord { promised: n, accepted_n: n, accepted_from: i, ..self.record })
            } else {
                None
            };
        if let Value::MasterSet { master, .. } = &value {
            if let Some(k) = self.cfg.names.iter().position(|x| x == master) {
                self.lease = Some((k, now_ms + self.cfg.lease_ms));
            }
        }
        self.set_last(i, Some(n), value.clone());
        let jitter = self.jitter();
        if let Role::Slave { election_at_ms } = &mut self.role {
            let lease_end = self.lease.map_or(now_ms, |(_, e)| e);
            *election_at_ms = (*election_at_ms).max(lease_end + jitter);
        }
        self.persist(record, Some((i, value)), After::Accepted { to: from, n, i }, out);
        // Planted bugs past the end of the rule: answering before the entry is durable, and
        // applying before the slot is chosen.
        if crate::planted!(SkipFsyncBeforeAccepted) {
            out.push(Action::Send { to: from, msg: Msg::Accepted { n, i } });
        }
        if crate::planted!(ApplyBeforeCommit) {
            self.commit_through(i, Vec::new(), out);
        }
    }

    /// An Accept that comes while this node catches up: kept when it continues the held run
    /// (the next slot, or the last held slot again under a ballot as high), within
    /// [`HELD_ACCEPTS_MAX`] and [`Machine::held_bytes_max`]; else dropped, as Paxos allows.
    fn hold_while_catching_up(
        &mut self,
        from: NodeIdx,
        n: u64,
        i: u64,
        value: Value,
        prev_hash: Option<u64>,
    ) {
        let Some((_, Msg::Accept { n: last_n, i: last_i, .. })) = self.held_accepts.back() else {
            return;
        };
        let (last_n, last_i) = (*last_n, *last_i);
        if n < last_n {
            return;
        }
        if i == last_i {
            self.held_accepts.pop_back();
        } else if i != last_i + 1 || self.held_accepts.len() >= HELD_ACCEPTS_MAX {
            return;
        }
        let held: usize = self
            .held_accepts
            .iter()
            .skip(1)
            .map(|(_, m)| if let Msg::Accept { value, .. } = m { value.encoded_len() } else { 0 })
            .sum();
        if !self.held_accepts.is_empty() && held + value.encoded_len() > self.held_bytes_max() {
            return;
        }
        self.held_accepts.push_back((from, Msg::Accept { n, i, value, prev_hash }));
    }

    /// The bytes of values held while catching up beyond the first Accept: half a slot's
    /// bound (512 KiB by default; a node's memory bound counts it, server/limits.rs).
    pub fn held_bytes_max(&self) -> usize {
        self.cfg.batch_bytes_max / 2
    }

    pub(super) fn on_commit(&mut self, n: u64, i: u64, hash: u64, out: &mut Vec<Action>) {
        if n < self.promised || !matches!(self.role, Role::Slave { .. }) {
            return;
        }
        if self.last.as_ref().is_some_and(|s| s.i == i && s.hash == hash) {
            self.graduate(out);
            self.commit_through(i, Vec::new(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
        assert!(
            matches!(&out[..], [Action::Persist { ballot: Some(_), entry: None, .. }]),
            "{out:?}"
        );
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
        let out = run(
            &mut m,
            5000,
            Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(8) } },
        );
        assert!(
            matches!(
                &sends(&out)[..],
                [(0, Msg::Nak { reason: NakReason::Behind, last_i: Some(10), .. })]
            ),
            "{out:?}"
        );
        // One that ends at 9 is not.
        let out = run(
            &mut m,
            5000,
            Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(9) } },
        );
        assert_eq!(tokens(&out).len(), 1);
    }

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
        assert_eq!(
            out,
            vec![Action::Persist { token: 1, ballot: Some(record), entry: Some((0, v)) }]
        );
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

    /// A slave that fell behind holds the Accepts that come while it catches up and takes them
    /// in order once it has. It once dropped them, so that a slave a few slots behind was behind
    /// again each time it caught up, for as long as the master outran its catch-ups (a loop of
    /// 346 catch-ups in 8 s with 4 KiB values at 64 clients).
    #[test]
    fn accept_rule_a_node_catching_up_takes_the_accepts_that_came_meanwhile() {
        let v = |k: &str| Value::client(vec![set(k)]);
        let durable = Durable { last: Some((3, v("3"))), applied: Some(3), ..Default::default() };
        let mut m = machine(3, 1, durable);
        let accept = |i: u64, prev: &str| Input::Message {
            from: 0,
            msg: Msg::Accept {
                n: 3,
                i,
                value: v(&i.to_string()),
                prev_hash: Some(value_hash(&v(prev))),
            },
        };
        let out = run(&mut m, 100, accept(5, "4"));
        assert_eq!(out, vec![Action::CatchUp { from: 0, to_i: 4 }]);
        for (t, i) in [(101, 6), (102, 7)] {
            let out = run(&mut m, t, accept(i, &(i - 1).to_string()));
            assert!(out.is_empty(), "slot {i} while catching up: {out:?}");
        }
        // A slot beyond the held run is not held (a gap): caught up, slot 9 is a new catch-up.
        assert!(run(&mut m, 103, accept(9, "8")).is_empty());
        let caught_up =
            Input::CaughtUp { last: Some((4, v("4"))), prev: Some((3, v("3"))), applied: Some(4) };
        let out = run(&mut m, 104, caught_up);
        let persisted: Vec<u64> = out
            .iter()
            .filter_map(|a| match a {
                Action::Persist { entry: Some((i, _)), .. } => Some(*i),
                _ => None,
            })
            .collect();
        assert_eq!(persisted, [5, 6, 7], "{out:?}");
        assert!(!out.iter().any(|a| matches!(a, Action::CatchUp { .. })), "{out:?}");
        assert_eq!(m.role(), RoleName::Slave);
    }

    #[test]
    fn accept_rule_a_previous_slot_that_differs_is_fetched_not_committed() {
        let mine = Value::client(vec![set("stale")]);
        let durable = Durable { last: Some((4, mine)), applied: Some(3), ..Default::default() };
        let mut m = machine(3, 1, durable);
        let chosen = Value::client(vec![set("chosen")]);
        let accept = Msg::Accept {
            n: 3,
            i: 5,
            value: master_set("n0"),
            prev_hash: Some(value_hash(&chosen)),
        };
        let out = run(&mut m, 100, Input::Message { from: 0, msg: accept });
        assert_eq!(out, vec![Action::CatchUp { from: 0, to_i: 4 }], "slot 4 must not be applied");
    }

    #[test]
    fn accept_rule_a_matching_previous_slot_is_committed_and_applied() {
        let mine = Value::client(vec![set("x")]);
        let durable =
            Durable { last: Some((4, mine.clone())), applied: Some(3), ..Default::default() };
        let mut m = machine(3, 1, durable);
        let accept =
            Msg::Accept { n: 3, i: 5, value: master_set("n0"), prev_hash: Some(value_hash(&mine)) };
        let out = run(&mut m, 100, Input::Message { from: 0, msg: accept });
        assert_eq!(out[0], Action::Apply { i: 4, value: mine, clients: vec![] });
        assert!(matches!(out[1], Action::Persist { entry: Some((5, _)), .. }));
    }

    /// The apply rule: a slave told slot `i` is chosen before its own entry of `i` is durable
    /// applies it only once it is (its store, flushed meanwhile, would otherwise be ahead of
    /// the log a crash leaves, and start-up refuses such a store). The simulator's flushed
    /// store found it (`persist-before-apply`).
    #[test]
    fn apply_rule_a_committed_slot_waits_for_its_own_entry_to_be_durable() {
        let mine = Value::client(vec![set("x")]);
        let durable =
            Durable { last: Some((4, mine.clone())), applied: Some(3), ..Default::default() };
        let mut m = machine(3, 1, durable);
        let five = Value::client(vec![set("y")]);
        let accept =
            Msg::Accept { n: 3, i: 5, value: five.clone(), prev_hash: Some(value_hash(&mine)) };
        let out = run(&mut m, 100, Input::Message { from: 0, msg: accept });
        // Slot 4 is durable here already: applied at once; slot 5 goes to the persister.
        assert_eq!(out[0], Action::Apply { i: 4, value: mine, clients: vec![] });
        let token = out
            .iter()
            .find_map(|a| match a {
                Action::Persist { token, entry: Some((5, _)), .. } => Some(*token),
                _ => None,
            })
            .expect("slot 5 persisted");
        let commit = Msg::Commit { n: 3, i: 5, hash: value_hash(&five) };
        let out = run(&mut m, 101, Input::Message { from: 0, msg: commit });
        assert!(
            out.iter().all(|a| !matches!(a, Action::Apply { .. })),
            "slot 5 applied before its entry is durable: {out:?}"
        );
        let out = run(&mut m, 102, Input::Persisted { token });
        assert_eq!(out[0], Action::Apply { i: 5, value: five, clients: vec![] });
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Send { msg: Msg::Accepted { i: 5, .. }, .. })));
        assert_eq!(m.applied_i(), Some(5));
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

    /// A Promise whose persist job completes after an Accept of the same ballot arrived is not
    /// sent: that ballot's candidate has won, and the Promise would name the Accept's slot
    /// before it is durable (found by the simulator's check persist-before-promise, seed 2 of
    /// sim/tests/rule_checks.rs).
    #[test]
    fn promise_rule_a_promise_overtaken_by_its_ballot_s_accept_is_not_sent() {
        let mut m = machine(3, 1, Durable::default());
        let prepare = Msg::Prepare { n: 3, last_i: None };
        let promise_job = tokens(&run(&mut m, 5000, Input::Message { from: 0, msg: prepare }));
        let accept = Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None };
        let entry_job = tokens(&run(&mut m, 5001, Input::Message { from: 0, msg: accept }));
        let out = run(&mut m, 5002, Input::Persisted { token: promise_job[0] });
        assert!(sends(&out).is_empty(), "a promise naming a slot not yet durable: {out:?}");
        let out = run(&mut m, 5003, Input::Persisted { token: entry_job[0] });
        assert!(matches!(&sends(&out)[..], [(0, Msg::Accepted { n: 3, i: 0 })]), "{out:?}");
    }
}
