//! The lease rule (5): who a node believes is master, whether a read may be served, and the
//! master's renewal, retransmission and stepping down when its lease lapses.

use super::*;

impl Machine {
    /// Who this node believes is master: itself, or the holder of the last lease it accepted.
    pub fn master(&self, now_ms: u64) -> Option<NodeIdx> {
        match &self.role {
            Role::Master(m) if m.lease_t0.is_some() => Some(self.cfg.me),
            _ => self.lease.filter(|(_, exp)| now_ms < *exp).map(|(m, _)| m),
        }
    }

    /// Whether this node may serve consistent reads now: a master inside its lease.
    pub fn lease_valid(&self, now_ms: u64) -> bool {
        let Role::Master(m) = &self.role else { return false };
        let valid = m.lease_t0.is_some_and(|t0| now_ms < self.lease_until(t0));
        // Planted bug ReadAfterLeaseExpired, at the edge of the rule: a master that held a lease
        // believes it still does.
        valid || (m.lease_t0.is_some() && crate::planted!(ReadAfterLeaseExpired))
    }

    /// Lease rule (5) for reads: whether a read that wants `want` may be served here now.
    /// `store_applied` is the slot the shell's store has applied, which is what the read sees.
    pub fn read_permission(
        &self,
        now_ms: u64,
        want: ReadWant,
        store_applied: Option<u64>,
    ) -> Result<(), ReadRefusal> {
        match want {
            ReadWant::Consistent if self.lease_valid(now_ms) => Ok(()),
            ReadWant::Consistent => Err(ReadRefusal::NotMaster { master: self.master(now_ms) }),
            ReadWant::AtLeast(wanted) if store_applied.is_some_and(|a| a >= wanted) => Ok(()),
            ReadWant::AtLeast(wanted) => {
                Err(ReadRefusal::NotYetApplied { applied: store_applied, wanted })
            }
            ReadWant::Anywhere => Ok(()),
        }
    }

    /// When, on this node's clock, the lease it holds as master ends: `None` unless it is a
    /// master whose MasterSet is committed. (What the simulator compares in true time.)
    pub fn lease_until_ms(&self) -> Option<u64> {
        match &self.role {
            Role::Master(m) => m.lease_t0.map(|t0| self.lease_until(t0)),
            _ => None,
        }
    }

    /// The moment the master's own view of its lease ends.
    pub(super) fn lease_until(&self, t0: u64) -> u64 {
        let until = t0 + self.cfg.lease_ms.saturating_sub(self.cfg.lease_margin_ms);
        // Planted bug LeaseWithoutMargin, at the edge of the lease bound.
        if crate::planted!(LeaseWithoutMargin) {
            return t0 + self.cfg.lease_ms;
        }
        until
    }

    /// A master that heard from a quorum (itself included) within the last lease.
    pub fn expect_progress_possible(&self, now_ms: u64) -> bool {
        if !self.lease_valid(now_ms) {
            return false;
        }
        let recent = self
            .heard_ms
            .iter()
            .enumerate()
            .filter(|(k, t)| *k != self.cfg.me && t.is_some_and(|t| now_ms < t + self.cfg.lease_ms))
            .count();
        recent + 1 >= self.cfg.quorum
    }

    pub(super) fn master_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &self.role else { return };
        let lapsed = match m.lease_t0 {
            Some(t0) => now_ms >= self.lease_until(t0),
            // Still recovering: give up if recovery takes longer than a lease, or than the
            // last Hold a quorum answered keeps the slaves from electing another node.
            None => m.in_flight.as_ref().is_some_and(|f| {
                now_ms >= f.first_sent_ms + self.cfg.lease_ms
                    && m.held_t.is_none_or(|t| now_ms >= self.lease_until(t))
            }),
        };
        if lapsed {
            self.lease = None;
            self.become_slave(now_ms, out);
            return;
        }
        self.hold_if_due(now_ms, out);
        let Role::Master(m) = &mut self.role else { return };
        if let Some(f) = &mut m.in_flight {
            // A large value is not sent again while its copy may still be on its way: half of
            // what it may take at the configured link speed (a link eight times slower than
            // configured still gets one copy before the next).
            let retransmit = self.cfg.retransmit_ms.max(self.cfg.ship_allowance_ms(f.bytes) / 2);
            if now_ms >= f.last_sent_ms + retransmit {
                f.last_sent_ms = now_ms;
                let msg = Msg::Accept {
                    n: m.n,
                    i: f.i,
                    value: f.value.clone(),
                    prev_hash: self.prev.as_ref().filter(|p| p.i + 1 == f.i).map(|p| p.hash),
                };
                let silent: Vec<NodeIdx> = (0..self.cfg.nodes())
                    .filter(|k| *k != self.cfg.me && !f.acks.contains(k))
                    .collect();
                for to in silent {
                    out.push(Action::Send { to, msg: msg.clone() });
                }
            }
            return;
        }
        self.propose_next(now_ms, out);
    }

    /// Lease rule (5), renewal while a slot is on its way: the MasterSet that renews the lease
    /// cannot be proposed before the slot in flight is chosen (one slot in flight), so a master
    /// whose renewal is due while a large slot is still being shipped sends Hold instead, for as
    /// long as the slot may take ([`Config::hold_until_ms`]), again every retransmission
    /// interval until a quorum answers. A small slot gets no Hold.
    fn hold_if_due(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.single() {
            return;
        }
        let (lease_ms, retransmit) = (self.cfg.lease_ms, self.cfg.retransmit_ms);
        let Role::Master(m) = &self.role else { return };
        let Some(f) = &m.in_flight else { return };
        if now_ms >= self.cfg.hold_until_ms(f.first_sent_ms, f.bytes) {
            return;
        }
        let since = m.lease_t0.unwrap_or(f.first_sent_ms.max(m.held_t.unwrap_or(0)));
        let due = now_ms >= since + lease_ms / 2
            && m.hold.as_ref().is_none_or(|h| now_ms >= h.t + retransmit);
        if !due {
            return;
        }
        let n = m.n;
        let Role::Master(m) = &mut self.role else { return };
        m.hold = Some(HoldRound { t: now_ms, acks: BTreeSet::new() });
        self.broadcast(Msg::Hold { n, t: now_ms }, out);
    }

    /// Lease rule (5), a slave's side of Hold: the master it promised `n` keeps the lease as
    /// from now, exactly as if it had accepted a MasterSet from it (no other candidate gets a
    /// promise before it expires), and hears so. Nothing is persisted: a lease is volatile, and
    /// a restarted node waits a lease before it promises (rule 7).
    pub(super) fn on_hold(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        t: u64,
        out: &mut Vec<Action>,
    ) {
        // Only the owner of the ballot this node promised, and only to a slave.
        let owner = n % self.cfg.nodes() as u64 == from as u64;
        if n != self.promised || !owner || !matches!(self.role, Role::Slave { .. }) {
            return;
        }
        self.lease = Some((from, now_ms + self.cfg.lease_ms));
        let jitter = self.jitter();
        if let Role::Slave { election_at_ms } = &mut self.role {
            *election_at_ms = (*election_at_ms).max(now_ms + self.cfg.lease_ms + jitter);
        }
        // Planted bug HeldWithoutLease, at the edge of the rule: the lease just granted is
        // forgotten again, and the answer still goes.
        if crate::planted!(HeldWithoutLease) {
            self.lease = None;
            self.role = Role::Slave { election_at_ms: now_ms };
        }
        out.push(Action::Send { to: from, msg: Msg::Held { n, t } });
    }

    /// Lease rule (5), the master's side: a quorum (itself counted) holding the lease as from
    /// Hold `t` renews it from `t`, as a committed MasterSet first sent at `t` would.
    pub(super) fn on_held(&mut self, from: NodeIdx, n: u64, t: u64) {
        let quorum = self.cfg.quorum;
        let Role::Master(m) = &mut self.role else { return };
        let Some(h) = m.hold.as_mut().filter(|h| m.n == n && h.t == t) else { return };
        h.acks.insert(from);
        if h.acks.len() + 1 < quorum {
            return;
        }
        m.hold = None;
        match &mut m.lease_t0 {
            Some(t0) => *t0 = (*t0).max(t),
            None => m.held_t = Some(m.held_t.map_or(t, |h| h.max(t))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    /// The clock bound keeps the master's lease inside every slave's, in true time: the master
    /// counts `L - M` on a clock slow by the bound, a slave counts `L` on a clock fast by the
    /// bound that also steps forward by the step bound; one ppm more and they overlap.
    #[test]
    fn lease_rule_the_clock_bound_keeps_leases_apart_in_true_time() {
        for (lease_ms, margin) in [(1_000u64, None), (2_000, None), (3_000, Some(600u64))] {
            let mut cfg = Config::new(names(3), 0, lease_ms);
            if let Some(m) = margin {
                cfg.lease_margin_ms = m;
            }
            let b = cfg.clock_bound();
            let (l, m) = (lease_ms as f64, cfg.lease_margin_ms as f64);
            assert!(b.drift_ppm > 0 && b.step_ms > 0, "{b:?}");
            let ends = |ppm: u64| {
                let rho = ppm as f64 / 1e6;
                let master_end = (l - m) / (1.0 - rho);
                let slave_end = (l - b.step_ms as f64) / (1.0 + rho);
                (master_end, slave_end)
            };
            let (master, slave) = ends(b.drift_ppm);
            assert!(master <= slave + 1e-9, "{lease_ms} ms: {master} after {slave}");
            let (master, slave) = ends(b.drift_ppm + 2);
            assert!(master > slave, "{lease_ms} ms: the bound is not tight ({b:?})");
        }
        assert_eq!(
            Config::new(names(3), 0, 1_000).clock_bound(),
            ClockBound { drift_ppm: 27_027, step_ms: 50 }
        );
    }

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

    /// The Holds a master sends in `out`, with their `t`.
    fn holds(out: &[Action]) -> Vec<(NodeIdx, u64)> {
        sends(out)
            .into_iter()
            .filter_map(|(to, m)| if let Msg::Hold { t, .. } = m { Some((to, t)) } else { None })
            .collect()
    }

    /// A master whose large slot is still on its way when the renewal is due keeps its lease by
    /// Hold, for as long as the slot may take at the configured link speed; then it lets the
    /// lease lapse. (With no Hold, the lease lapsed at `lease_t0 + L - M` while the slot was
    /// shipped, and every next master lapsed the same way.)
    #[test]
    fn lease_rule_a_large_slot_on_its_way_keeps_the_lease_by_hold_for_as_long_as_it_may_take() {
        let (mut m, t0) = elected_master();
        m.cfg.link_bytes_per_s = 1 << 20;
        let n = m.promised();
        let big = Update::Set { key: b"big".to_vec(), value: vec![7; 1 << 20] };
        let out = run(&mut m, t0 + 10, Input::ClientUpdate { id: ClientReqId(1), update: big });
        let first_sent = t0 + 10;
        let until = m.cfg.hold_until_ms(first_sent, (1 << 20) + 40);
        assert!(until >= first_sent + 8_000, "a 1 MiB slot at 1 MiB/s holds 16 s");
        run(&mut m, t0 + 10, Input::Persisted { token: tokens(&out)[0] });
        let mut now = t0 + 10;
        let mut last_hold = None;
        while now < first_sent + 7_500 {
            now += 10;
            let out = run(&mut m, now, Input::Tick);
            for (to, t) in holds(&out) {
                assert_eq!(t, now);
                last_hold = Some(t);
                if to == 1 {
                    // Only node 1 answers: with the master, a quorum of 3.
                    assert!(run(
                        &mut m,
                        now + 1,
                        Input::Message { from: 1, msg: Msg::Held { n, t } }
                    )
                    .is_empty());
                }
            }
            assert!(
                m.lease_valid(now),
                "the lease holds at {} ms after the slot left",
                now - first_sent
            );
        }
        assert!(last_hold.is_some_and(|t| t > t0 + 6_000), "Holds went on: {last_hold:?}");
        // Past the hold limit, no Hold: the lease lapses and the client hears no_longer_master.
        let mut stepped_down = None;
        while now < until + LEASE {
            now += 10;
            let out = run(&mut m, now, Input::Tick);
            assert!(holds(&out).iter().all(|(_, t)| *t < until), "a Hold past the limit");
            if out
                .iter()
                .any(|a| matches!(a, Action::Reply { result: Err(Refusal::NoLongerMaster), .. }))
            {
                stepped_down = Some(now);
                break;
            }
        }
        assert!(stepped_down.is_some(), "the master let its lease lapse past the hold limit");
        assert_eq!(m.role(), RoleName::Slave);
    }

    /// A Hold that a quorum does not answer renews nothing; a small slot gets none.
    #[test]
    fn lease_rule_an_unanswered_hold_renews_nothing_and_a_small_slot_sends_none() {
        let (mut m, t0) = elected_master();
        m.cfg.link_bytes_per_s = 1 << 20;
        let big = Update::Set { key: b"big".to_vec(), value: vec![7; 1 << 20] };
        let out = run(&mut m, t0 + 10, Input::ClientUpdate { id: ClientReqId(1), update: big });
        run(&mut m, t0 + 10, Input::Persisted { token: tokens(&out)[0] });
        let out = run(&mut m, t0 + LEASE / 2, Input::Tick);
        assert_eq!(holds(&out).len(), 2, "a Hold to each slave");
        assert!(m.lease_valid(t0 + LEASE - LEASE / 10 - 1));
        assert!(!m.lease_valid(t0 + LEASE - LEASE / 10), "no answer, no renewal");

        let (mut m, t0) = elected_master();
        let out =
            run(&mut m, t0 + 10, Input::ClientUpdate { id: ClientReqId(1), update: set("k") });
        run(&mut m, t0 + 10, Input::Persisted { token: tokens(&out)[0] });
        for now in (t0 + 20..t0 + LEASE).step_by(10) {
            assert!(holds(&run(&mut m, now, Input::Tick)).is_empty(), "a Hold for a small slot");
        }
    }

    /// A slave holds the lease for the master it promised, as from the Hold, and answers; it
    /// ignores a Hold of another ballot or from a node that does not own the ballot.
    #[test]
    fn lease_rule_a_slave_holds_the_lease_for_the_master_it_promised() {
        let mut m = machine(3, 1, Durable::default());
        let accept = Msg::Accept { n: 3, i: 0, value: master_set("n0"), prev_hash: None };
        run(&mut m, 5000, Input::Message { from: 0, msg: accept });
        let out = run(&mut m, 5800, Input::Message { from: 0, msg: Msg::Hold { n: 3, t: 77 } });
        assert_eq!(sends(&out), vec![(0, Msg::Held { n: 3, t: 77 })]);
        // The lease now runs to 6800: another candidate is refused at 6500.
        let out = run(
            &mut m,
            6500,
            Input::Message { from: 2, msg: Msg::Prepare { n: 5, last_i: Some(0) } },
        );
        assert!(
            matches!(sends(&out)[..], [(2, Msg::Nak { reason: NakReason::LeaseHeld, .. })]),
            "{out:?}"
        );
        assert_eq!(m.master(6799), Some(0));
        for (from, n) in [(0, 6), (2, 3)] {
            let out = run(&mut m, 6600, Input::Message { from, msg: Msg::Hold { n, t: 1 } });
            assert!(out.is_empty(), "Hold n={n} from {from}: {out:?}");
        }
        assert_eq!(m.master(6800), None, "the ignored Holds renewed nothing");
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
}
