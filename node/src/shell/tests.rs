//! The shell against a real machine and a memory store: what it answers, when, and what it asks
//! of its outbox.

use super::*;
use crate::consensus::{Config, Durable};
use crate::protocol::client::{Consistency, Request};
use crate::store::MemoryStore;
use crate::tlog::MemDir;
use crate::value::Update;

const LEASE: u64 = 1000;

/// Everything the shell asked for, in order; persist jobs are reported durable by [`drive`].
#[derive(Default)]
struct Recorder {
    sends: usize,
    /// The messages sent, with their destination.
    sent: Vec<(NodeIdx, Msg)>,
    persists: Vec<u64>,
    replies: Vec<(u32, Reply)>,
    catch_ups: Vec<CatchUpJob>,
    applied: Vec<u64>,
    /// Reads handed off the core as jobs (the recorder runs them at once, as the default does).
    read_jobs: usize,
    /// Persist jobs and applies, in the order the shell carried them out.
    order: Vec<(&'static str, u64)>,
}

impl Outbox<u32> for Recorder {
    fn send(&mut self, to: NodeIdx, msg: Msg) {
        self.sends += 1;
        self.sent.push((to, msg));
    }
    fn persist(&mut self, job: PersistJob) {
        self.order.push(("persist", job.entry.as_ref().map_or(u64::MAX, |(i, _)| *i)));
        self.persists.push(job.token);
    }
    fn reply(&mut self, waiter: u32, reply: Reply) {
        self.replies.push((waiter, reply));
    }
    fn catch_up(&mut self, job: CatchUpJob) {
        self.catch_ups.push(job);
    }
    fn applied(&mut self, i: u64, _value: &Value) {
        self.order.push(("apply", i));
        self.applied.push(i);
    }
    fn read(&mut self, waiter: u32, job: ReadJob) {
        self.read_jobs += 1;
        let reply = job.run();
        self.reply(waiter, reply);
    }
}

fn shell(nodes: usize) -> Shell<MemoryStore, u32> {
    shell_of(nodes, 0)
}

fn shell_of(nodes: usize, me: NodeIdx) -> Shell<MemoryStore, u32> {
    let names: Vec<String> = (0..nodes).map(|k| format!("n{k}")).collect();
    let machine = Machine::new(Config::new(names.clone(), me, LEASE), Durable::default(), 0, 7);
    let config = ShellConfig {
        cluster_id: "c".into(),
        names,
        me,
        max_value_size: 16,
        max_buffer_size: 1024,
        ship_bytes_max: 1024,
        reply_bytes_max: 1 << 20,
    };
    let dir: Arc<dyn LogDir> = Arc::new(MemDir::new("n0"));
    Shell::new(machine, MemoryStore::new("c"), config, dir, 0)
}

/// Runs a one-node shell for `ms` of ticks, reporting every persist job durable at once.
fn drive(s: &mut Shell<MemoryStore, u32>, out: &mut Recorder, from: u64, ms: u64) -> u64 {
    let mut now = from;
    while now < from + ms {
        now += 10;
        s.feed(now, Input::Tick, out).unwrap();
        while !out.persists.is_empty() {
            for token in std::mem::take(&mut out.persists) {
                s.feed(now, Input::Persisted { token }, out).unwrap();
            }
        }
    }
    now
}

fn get(key: &str, c: Consistency) -> Request {
    Request::Get { c, key: key.as_bytes().to_vec() }
}

#[test]
fn an_update_is_answered_only_once_applied_then_read_back() {
    let (mut s, mut out) = (shell(1), Recorder::default());
    let now = drive(&mut s, &mut out, 0, 3 * LEASE);
    assert!(s.machine.lease_valid(now), "a one-node cluster elects itself");
    let set = Request::Set { key: b"k".to_vec(), value: b"v".to_vec() };
    s.request(now, set, 1, &mut out).unwrap();
    assert!(out.replies.is_empty(), "no answer before the slot is durable and applied");
    assert_eq!(s.pending(), 1);
    let applied_before = out.applied.len();
    let now = drive(&mut s, &mut out, now, 50);
    assert!(out.applied.len() > applied_before);
    assert_eq!(out.replies, vec![(1, Reply::Ok(Payload::Unit))]);
    assert_eq!(s.pending(), 0);
    s.request(now, get("k", Consistency::Consistent), 2, &mut out).unwrap();
    assert_eq!(out.replies[1], (2, Reply::Ok(Payload::String(b"v".to_vec()))));
    s.request(now, get("missing", Consistency::Consistent), 3, &mut out).unwrap();
    // Arakoon names no key: its store raises Not_found.
    assert_eq!(out.replies[2], (3, failed(Rc::NotFound, "Not_found")));
}

#[test]
fn reads_of_one_key_are_answered_on_the_core_and_listings_beside_it() {
    let (mut s, mut out) = (shell(1), Recorder::default());
    let now = drive(&mut s, &mut out, 0, 3 * LEASE);
    let set = Request::Set { key: b"k".to_vec(), value: b"v".to_vec() };
    s.request(now, set, 1, &mut out).unwrap();
    let now = drive(&mut s, &mut out, now, 50);
    let c = Consistency::Consistent;
    let key = b"k".to_vec();
    let one_key = [
        get("k", c),
        Request::Exists { c, key: key.clone() },
        Request::Assert { c, key: key.clone(), value: Some(b"v".to_vec()) },
        Request::AssertExists { c, key: key.clone() },
    ];
    for (n, request) in (10..).zip(one_key) {
        s.request(now, request, n, &mut out).unwrap();
    }
    // Each answered at once, on the core, without a job handed to another thread.
    assert_eq!(out.read_jobs, 0);
    let answers = out.replies[1..].to_vec();
    let ok = |n, p| (n, Reply::Ok(p));
    let want = vec![
        ok(10, Payload::String(b"v".to_vec())),
        ok(11, Payload::Bool(true)),
        ok(12, Payload::Unit),
        ok(13, Payload::Unit),
    ];
    assert_eq!(answers, want);
    let listings = [
        Request::RangeEntries { c, range: Default::default() },
        Request::MultiGetOption { c, keys: vec![key.clone()] },
    ];
    for (n, request) in (20..).zip(listings) {
        s.request(now, request, n, &mut out).unwrap();
    }
    assert_eq!(out.read_jobs, 2, "listings and multi-key reads run as jobs beside the core");
    assert_eq!(out.replies.len(), 7);
}

#[test]
fn the_read_gate_asks_for_the_lease_or_the_applied_slot() {
    let (mut s, mut out) = (shell(3), Recorder::default());
    // A node of three that heard from nobody holds no lease and knows no master.
    s.request(5, get("k", Consistency::Consistent), 1, &mut out).unwrap();
    let range = Request::RangeEntries { c: Consistency::Consistent, range: Default::default() };
    s.request(5, range, 2, &mut out).unwrap();
    s.request(5, get("k", Consistency::AtLeast(3)), 3, &mut out).unwrap();
    s.request(5, get("k", Consistency::NoGuarantees), 4, &mut out).unwrap();
    assert_eq!(out.replies[0], (1, failed(Rc::NotMaster, "None")));
    assert_eq!(out.replies[1], (2, failed(Rc::NotMaster, "None")));
    assert_eq!(reply_rc(&out.replies[2].1), Rc::InconsistentRead);
    assert_eq!(out.replies[3], (4, failed(Rc::NotFound, "Not_found")));
}

#[test]
fn a_sequence_beyond_the_buffer_limit_is_refused_without_a_round() {
    // (A single value over max_value_size never reaches the shell: the connection refuses it,
    // as Arakoon does, in server/limits.rs.)
    let (mut s, mut out) = (shell(1), Recorder::default());
    let now = drive(&mut s, &mut out, 0, 3 * LEASE);
    let (sends, applied) = (out.sends, out.applied.len());
    let updates = vec![Update::Set { key: b"k".to_vec(), value: vec![0; 1100] }];
    let set = Request::Sequence { updates, synced: false };
    s.request(now, set, 9, &mut out).unwrap();
    assert_eq!(out.replies.len(), 1);
    let (waiter, reply) = &out.replies[0];
    assert_eq!((*waiter, reply_rc(reply)), (9, Rc::BadInput));
    assert!(out.persists.is_empty() && out.sends == sends && out.applied.len() == applied);
    assert_eq!(s.pending(), 0);
}

#[test]
fn closing_answers_every_waiting_client_going_down() {
    let (mut s, mut out) = (shell(1), Recorder::default());
    let now = drive(&mut s, &mut out, 0, 3 * LEASE);
    let set = Request::Set { key: b"k".to_vec(), value: b"v".to_vec() };
    s.request(now, set, 1, &mut out).unwrap();
    s.close(&mut out);
    assert_eq!(out.replies, vec![(1, failed(Rc::GoingDown, "the node is shutting down"))]);
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_catch_up_report_without_its_catch_up_is_ignored() {
    let (mut s, mut out) = (shell(3), Recorder::default());
    let verdict = s.catch_up_done(5, 1, Ok::<_, String>(Some(10)), &mut out).unwrap();
    assert_eq!(verdict, CatchUpVerdict::Stale);
    assert!(out.replies.is_empty() && out.sends == 0);
}

#[test]
fn replies_encode_as_the_protocol_says() {
    let mut out = Vec::new();
    encode_reply(&failed(Rc::NotMaster, "n1"), &mut out);
    let mut expected = Vec::new();
    encode_error(Rc::NotMaster, b"n1", &mut expected);
    assert_eq!(out, expected);
    assert_eq!(reply_rc(&consensus_reply(Rc::Ok, String::new())), Rc::Ok);
    assert_eq!(reply_rc(&consensus_reply(Rc::NoLongerMaster, "x".into())), Rc::NoLongerMaster);
}

#[test]
fn a_slave_hands_over_the_next_slot_to_persist_before_it_applies_the_committed_one() {
    // The accept for slot 1 commits slot 0: the machine asks to apply 0, then to persist 1. The
    // persist job goes out first, so that a slow apply does not hold back this node's accepted
    // and with it the master's quorum (issue 17).
    let (mut s, mut out) = (shell_of(3, 1), Recorder::default());
    let value = |k: &str| Value::client(vec![Update::Set { key: k.into(), value: b"v".to_vec() }]);
    let (v0, v1) = (value("a"), value("b"));
    let accept0 = Msg::Accept { n: 3, i: 0, value: v0.clone(), prev_hash: None };
    s.feed(10, Input::Message { from: 0, msg: accept0 }, &mut out).unwrap();
    for token in std::mem::take(&mut out.persists) {
        s.feed(10, Input::Persisted { token }, &mut out).unwrap();
    }
    assert_eq!(out.order, vec![("persist", 0)]);
    let prev_hash = Some(crate::consensus::value_hash(&v0));
    let accept1 = Msg::Accept { n: 3, i: 1, value: v1, prev_hash };
    s.feed(20, Input::Message { from: 0, msg: accept1 }, &mut out).unwrap();
    assert_eq!(out.order, vec![("persist", 0), ("persist", 1), ("apply", 0)]);
    assert_eq!(s.store.next_i(), 1, "slot 0 was applied all the same");
}

/// Node 0 of three, elected: it promised `n`, slot 0 (its MasterSet) is chosen and applied.
fn elected_master_of_three(out: &mut Recorder) -> (Shell<MemoryStore, u32>, u64, u64) {
    let mut s = shell_of(3, 0);
    let mut now = 0;
    let n = loop {
        now += 10;
        assert!(now < 10 * LEASE, "no prepare within ten leases");
        s.feed(now, Input::Tick, out).unwrap();
        if let Some(n) = out.sent.iter().find_map(|(_, m)| match m {
            Msg::Prepare { n, .. } => Some(*n),
            _ => None,
        }) {
            break n;
        }
    };
    for token in std::mem::take(&mut out.persists) {
        s.feed(now, Input::Persisted { token }, out).unwrap();
    }
    for from in [1, 2] {
        let promise = Msg::Promise { n, last: None, prev_hash: None };
        s.feed(now, Input::Message { from, msg: promise }, out).unwrap();
    }
    for token in std::mem::take(&mut out.persists) {
        s.feed(now, Input::Persisted { token }, out).unwrap();
    }
    s.feed(now, Input::Message { from: 1, msg: Msg::Accepted { n, i: 0 } }, out).unwrap();
    assert!(s.machine.lease_valid(now), "elected: {:?}", s.machine.role());
    assert_eq!(out.applied, vec![0]);
    (s, n, now)
}

#[test]
fn a_master_sends_the_next_accept_before_it_applies_the_slot_just_chosen() {
    let mut out = Recorder::default();
    let (mut s, n, now) = elected_master_of_three(&mut out);
    let set = |k: &str| Request::Set { key: k.as_bytes().to_vec(), value: b"v".to_vec() };
    // Slot 1 carries the first set; the second waits in the queue for slot 2.
    s.request(now, set("a"), 1, &mut out).unwrap();
    s.request(now, set("b"), 2, &mut out).unwrap();
    for token in std::mem::take(&mut out.persists) {
        s.feed(now, Input::Persisted { token }, &mut out).unwrap();
    }
    out.sent.clear();
    let accepted = Input::Message { from: 1, msg: Msg::Accepted { n, i: 1 } };
    let waits = s.feed_sends_first(now, accepted, &mut out).unwrap();
    assert!(waits, "sends went out and an apply waits");
    let names: Vec<(&str, u64)> = out
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            Msg::Commit { i, .. } | Msg::Accept { i, .. } => Some((m.name(), *i)),
            _ => None,
        })
        .collect();
    assert!(names.contains(&("commit", 1)) && names.contains(&("accept", 2)), "{names:?}");
    assert_eq!(out.applied, vec![0], "slot 1 is not applied before finish");
    assert!(out.replies.is_empty());
    s.finish(&mut out).unwrap();
    assert_eq!(out.applied, vec![0, 1]);
    assert_eq!(out.replies, vec![(1, Reply::Ok(Payload::Unit))]);
    // An input with nothing kept for later says so: no reason to let the links go first.
    let tick = s.feed_sends_first(now + 1, Input::Tick, &mut out).unwrap();
    assert!(!tick);
    s.finish(&mut out).unwrap();
}

/// One client: the slot chosen carries the only set, so the first half sends a Commit and no
/// Accept. Nobody waits on a Commit, so the links need not write it before the apply and the
/// reply (which it would delay): the first half says there is nothing to let go first, and
/// the Commit is still sent, in order, before the apply.
#[test]
fn a_master_with_only_a_commit_to_send_applies_and_answers_without_letting_the_links_go_first() {
    let mut out = Recorder::default();
    let (mut s, n, now) = elected_master_of_three(&mut out);
    let set = Request::Set { key: b"a".to_vec(), value: b"v".to_vec() };
    s.request(now, set, 1, &mut out).unwrap();
    for token in std::mem::take(&mut out.persists) {
        s.feed(now, Input::Persisted { token }, &mut out).unwrap();
    }
    out.sent.clear();
    let accepted = Input::Message { from: 1, msg: Msg::Accepted { n, i: 1 } };
    let waits = s.feed_sends_first(now, accepted, &mut out).unwrap();
    assert!(!waits, "only a Commit went out: nothing to let the links write first");
    let names: Vec<&str> = out.sent.iter().map(|(_, m)| m.name()).collect();
    assert!(names.iter().all(|m| *m == "commit") && !names.is_empty(), "{names:?}");
    assert_eq!(out.applied, vec![0], "the apply still waits for finish");
    s.finish(&mut out).unwrap();
    assert_eq!(out.applied, vec![0, 1]);
    assert_eq!(out.replies, vec![(1, Reply::Ok(Payload::Unit))]);
}
