//! The restart rule (7) for a node rebuilt as a learner, and catch-up: a learner votes again once
//! a master committed a slot through it; a caught-up node resumes as a slave.

use super::*;

impl Machine {
    /// A learner that a master just brought up to date (its log matches the master's chosen
    /// slots) may vote from now on.
    pub(super) fn graduate(&mut self, out: &mut Vec<Action>) {
        if self.record.learner {
            let record = BallotRecord { learner: false, ..self.record };
            let token = self.next_token;
            self.next_token += 1;
            self.record = record;
            out.push(Action::Persist { token, ballot: Some(record), entry: None });
        }
    }

    /// Whether this node was rebuilt after losing its disk and may not vote yet.
    pub fn is_learner(&self) -> bool {
        self.record.learner
    }

    pub(super) fn on_caught_up(
        &mut self,
        now_ms: u64,
        last: Option<(u64, Value)>,
        prev: Option<(u64, Value)>,
        applied: Option<u64>,
    ) {
        if let Some((i, v)) = last {
            // Caught-up slots are chosen: any ballot may be reported for them.
            self.prev = prev.filter(|(p, _)| p + 1 == i).map(|(p, pv)| Slot::new(p, Some(0), pv));
            self.last = Some(Slot::new(i, Some(0), v));
            self.committed = self.committed.max(Some(i));
        }
        self.applied = self.applied.max(applied);
        // Slots the catch-up applied need not wait for this node's entries of them.
        while self.to_apply.front().is_some_and(|(i, _, _)| Some(*i) <= self.applied) {
            self.to_apply.pop_front();
        }
        if matches!(self.role, Role::CatchingUp { .. }) {
            let at = now_ms + self.jitter();
            self.role = Role::Slave { election_at_ms: at };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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

    /// The baseline campaign's seed 864 (`sim --seeds 0..10000 --nodes draw`): n1 accepted a
    /// master's lease renewal, crashed, restarted having forgotten it, caught up from that
    /// master at once, and ran for master half a lease later: its own vote and that of the
    /// node that missed the renewal made a quorum while the old master's lease still ran. A
    /// catch-up must not cut the restart wait short for the node's own candidacy.
    #[test]
    fn restart_rule_a_node_caught_up_after_a_restart_does_not_run_within_a_lease() {
        let mut m = machine(3, 1, Durable::default());
        let accept =
            Msg::Accept { n: 3, i: 5, value: Value::client(vec![set("x")]), prev_hash: None };
        let out = run(&mut m, 1, Input::Message { from: 0, msg: accept });
        assert!(out.iter().any(|a| matches!(a, Action::CatchUp { .. })), "{out:?}");
        let caught = Input::CaughtUp {
            last: Some((4, Value::client(vec![set("y")]))),
            prev: None,
            applied: Some(4),
        };
        run(&mut m, 2, caught);
        for t in (3..LEASE).step_by(10) {
            let out = run(&mut m, t, Input::Tick);
            let prepares =
                sends(&out).into_iter().filter(|(_, m)| matches!(m, Msg::Prepare { .. }));
            assert_eq!(prepares.count(), 0, "a Prepare {t} ms after the restart: {out:?}");
        }
        // Once the lease is over, with no master heard, it runs.
        let ran = (LEASE..4 * LEASE).step_by(10).any(|t| {
            let out = run(&mut m, t, Input::Tick);
            sends(&out).iter().any(|(_, m)| matches!(m, Msg::Prepare { .. }))
        });
        assert!(ran, "no election after the restart wait");
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
        let out = run(
            &mut m,
            5000,
            Input::Message { from: 0, msg: Msg::Prepare { n: 3, last_i: Some(4) } },
        );
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
}
