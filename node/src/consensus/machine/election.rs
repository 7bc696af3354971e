//! The election rule (6) and bounded ballots: when a slave runs for master, with which ballot,
//! how a candidate or master falls back to slave, and how an operator's drop_master hands over.

use super::*;

impl Machine {
    /// A fresh ballot above everything seen, owned by this node; `None` once no ballot of this
    /// node fits below [`MAX_BALLOT`] (see [`BALLOT_REACH`] for why only thousands of
    /// forged messages that win promises get there, and never an honest cluster).
    pub(super) fn next_ballot(&self) -> Option<u64> {
        let nodes = self.cfg.nodes() as u64;
        let round = self.seen_ballot.max(self.promised) / nodes;
        let me = self.cfg.me as u64;
        // Planted bug BallotsNotUnique, at the edge of the ballots' uniqueness.
        let me = if crate::planted!(BallotsNotUnique) { 0 } else { me };
        let n = round.checked_add(1)?.checked_mul(nodes)?.checked_add(me)?;
        (n <= MAX_BALLOT).then_some(n)
    }

    /// The highest ballot a message may carry to be heard: [`BALLOT_REACH`] above the highest
    /// this node has seen or promised, and never above [`MAX_BALLOT`].
    pub(super) fn ballot_horizon(&self) -> u64 {
        self.seen_ballot.max(self.promised).saturating_add(BALLOT_REACH).min(MAX_BALLOT)
    }

    pub(super) fn become_slave(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let old = std::mem::replace(&mut self.role, Role::Slave { election_at_ms: 0 });
        if let Role::Candidate { n, .. } = &old {
            // A ballot this node promised only to itself, and will never propose under (the
            // next one is above `seen_ballot`), binds nobody: go back to the highest promise made
            // to another node, so that a failed candidacy does not make it refuse the master.
            if self.promised == *n {
                self.promised = self.promised_others;
            }
        }
        if let Role::Master(m) = old {
            // In flight: a quorum may still choose it under the next master. Queued: never
            // proposed, so it certainly did not happen.
            if let Some(f) = m.in_flight {
                for id in f.clients {
                    out.push(Action::Reply { id, result: Err(Refusal::NoLongerMaster) });
                }
            }
            for (id, _) in m.queue {
                let result = Err(Refusal::NotMaster { master: None });
                out.push(Action::Reply { id, result });
            }
        }
        let lease_end = self.lease.map_or(now_ms, |(_, exp)| exp.max(now_ms));
        let at = lease_end.max(self.quiet_until_ms) + self.jitter();
        self.role = Role::Slave { election_at_ms: at };
    }

    /// Restart rule (7): within a lease of starting, this node may have forgotten a lease it
    /// granted, so it promises nobody, itself included.
    pub(super) fn in_restart_wait(&self, now_ms: u64) -> bool {
        now_ms < self.started_ms + self.cfg.lease_ms
    }

    pub(super) fn may_run_election(&self) -> bool {
        // A learner forgot what it accepted: it can neither vote nor count itself.
        if self.record.learner {
            return false;
        }
        match self.cfg.forced_master {
            Some(m) => m == self.cfg.me,
            None => true,
        }
    }

    /// How long a candidate waits for promises: half a lease, plus what a promise that shows
    /// a slot as large as this node's last one may take on the link
    /// ([`Config::ship_allowance_ms`]): on a slow link, promises that carry a large value
    /// arrive after a fixed half lease, every candidate would give up before its quorum, and no
    /// election would ever end.
    pub(super) fn election_wait_ms(&self) -> u64 {
        (self.cfg.lease_ms / 2).max(1).saturating_add(self.last_ship_allowance_ms())
    }

    /// What a promise showing this node's last slot may take on the link
    /// ([`Config::ship_allowance_ms`]).
    pub(super) fn last_ship_allowance_ms(&self) -> u64 {
        let last_bytes = self.last.as_ref().map_or(0, |s| s.value.encoded_len());
        self.cfg.ship_allowance_ms(last_bytes)
    }

    pub(super) fn start_election(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Some(n) = self.next_ballot() else { return };
        self.promised = n;
        self.seen_ballot = n;
        let deadline_ms = now_ms + self.election_wait_ms();
        self.role =
            Role::Candidate { n, deadline_ms, promises: BTreeMap::new(), self_promised: false };
        let record = BallotRecord { promised: n, ..self.record };
        self.persist(Some(record), None, After::SelfPromise { n }, out);
        self.broadcast(Msg::Prepare { n, last_i: self.last_i() }, out);
    }

    pub(super) fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        // The restart rule (7) holds for this node's own vote too: it does not promise itself
        // within the restart wait either, whatever set its election time since it started (a
        // catch-up, a failed candidacy).
        let restarting = !self.single() && self.in_restart_wait(now_ms);
        match &mut self.role {
            Role::Slave { election_at_ms } => {
                let lease_known = self.lease.is_some_and(|(_, exp)| now_ms < exp);
                if now_ms >= *election_at_ms
                    && !lease_known
                    && !restarting
                    && self.may_run_election()
                {
                    self.start_election(now_ms, out);
                }
            }
            Role::Candidate { deadline_ms, .. } => {
                if now_ms >= *deadline_ms {
                    self.become_slave(now_ms, out);
                }
            }
            Role::CatchingUp { since_ms } => {
                // The shell always answers a catch-up; this only guards against a lost answer.
                if now_ms >= *since_ms + 20 * self.cfg.lease_ms {
                    self.become_slave(now_ms, out);
                }
            }
            Role::Master(_) => self.master_tick(now_ms, out),
        }
    }

    pub(super) fn on_drop_master(&mut self, now_ms: u64, id: ClientReqId, out: &mut Vec<Action>) {
        if self.single() {
            out.push(Action::Reply { id, result: Err(Refusal::SoleNode) });
            return;
        }
        if !matches!(self.role, Role::Master(_)) {
            let master = self.master(now_ms);
            out.push(Action::Reply { id, result: Err(Refusal::NotMaster { master }) });
            return;
        }
        // Stay out of the next election so that another node takes over.
        self.quiet_until_ms = now_ms + 2 * self.cfg.lease_ms;
        self.lease = None;
        self.become_slave(now_ms, out);
        out.push(Action::Reply { id, result: Ok(()) });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
    fn election_rule_a_failed_candidate_never_returns_below_a_ballot_it_led() {
        // Found by the simulator (an aimed-fault seed): a master stepped down, ran again, failed,
        // went back to the last ballot it had promised another node, below the one it had led
        // and accepted under, and then accepted under a lower ballot ("accepted ballots only
        // grow" fired).
        let (mut m, mut now) = elected_master();
        let led = m.promised();
        let mut ran = false;
        loop {
            now += 10;
            run(&mut m, now, Input::Tick);
            match m.role() {
                RoleName::Candidate => ran = true,
                RoleName::Slave if ran => break,
                _ => {}
            }
        }
        assert!(m.promised() >= led, "{} < {led}", m.promised());
        let low = Msg::Prepare { n: led - 2, last_i: Some(0) };
        let out = run(&mut m, now + 1, Input::Message { from: 1, msg: low });
        assert!(
            matches!(&sends(&out)[..], [(1, Msg::Nak { reason: NakReason::LowBallot, .. })]),
            "{out:?}"
        );
    }

    #[test]
    fn drop_master_is_not_supported_on_one_node() {
        let mut m = machine(1, 0, Durable::default());
        let out = run(&mut m, 0, Input::DropMaster { id: ClientReqId(1) });
        assert!(matches!(&out[..], [Action::Reply { result: Err(Refusal::SoleNode), .. }]));
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
        let out =
            run(&mut m, 5000, Input::Message { from: 0, msg: Msg::Prepare { n, last_i: None } });
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
}
