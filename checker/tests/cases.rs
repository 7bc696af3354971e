//! Small histories built in memory, one rule each: what linearizability allows and what it does
//! not, for every model; the budget that answers "unknown" rather than guess.

use arakoon_checker::model::kv::{Kv, KvOp};
use arakoon_checker::model::multi_key::{MultiKey, MultiOp, MultiOut, SeqUpdate};
use arakoon_checker::model::mutex::{Mutex, MutexOp};
use arakoon_checker::model::register::{Register, RegisterOp, RegisterOut};
use arakoon_checker::model::set::{Set, SetOp};
use arakoon_checker::{check, Budget, History, Model, Operation, Outcome, Report, Verdict};
use std::collections::BTreeSet;
use std::time::Duration;

/// An operation: `(process, call, return)`; `ret: None` for an unknown outcome.
fn op<I, O>(
    process: u64,
    call: u64,
    ret: Option<u64>,
    input: I,
    output: Option<O>,
    outcome: Outcome,
) -> Operation<I, O> {
    Operation { process, call, ret, input, output, outcome }
}

fn run<M: Model>(model: &M, ops: Vec<Operation<M::Input, M::Output>>) -> Report {
    let history = History::new(ops).expect("a well-formed history");
    check(model, &history, &Budget::default())
}

fn read(p: u64, call: u64, ret: u64, v: Option<i64>) -> Operation<RegisterOp, RegisterOut> {
    op(p, call, Some(ret), RegisterOp::Read, Some(RegisterOut::Value(v)), Outcome::Ok)
}

fn write(p: u64, call: u64, ret: u64, v: i64) -> Operation<RegisterOp, RegisterOut> {
    op(p, call, Some(ret), RegisterOp::Write(v), None, Outcome::Ok)
}

#[test]
fn an_empty_history_is_linearizable_for_every_model() {
    assert_eq!(run(&Register::cas(Some(0)), vec![]).verdict, Verdict::Linearizable);
    assert_eq!(run(&Kv::default(), vec![]).verdict, Verdict::Linearizable);
    assert_eq!(run(&MultiKey::default(), vec![]).verdict, Verdict::Linearizable);
    assert_eq!(run(&Mutex, vec![]).verdict, Verdict::Linearizable);
    assert_eq!(run(&Set, vec![]).verdict, Verdict::Linearizable);
}

#[test]
fn zero_duration_operations_at_the_same_time_overlap_and_later_ones_follow() {
    let m = Register::plain(Some(0));
    // Both at time 5: concurrent, so the read may come after the write.
    let same_time = vec![read(1, 5, 5, Some(1)), write(0, 5, 5, 1)];
    assert_eq!(run(&m, same_time).verdict, Verdict::Linearizable);
    // A read at time 6 follows the write at 5 strictly: it cannot see the old value.
    let after = vec![write(0, 5, 5, 1), read(1, 6, 6, Some(0))];
    let report = run(&m, after);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    assert_eq!(report.violation.expect("a violation").stuck.blocking, 1);
}

#[test]
fn a_crashed_write_may_take_effect_late_or_never_but_not_undo_itself() {
    let m = Register::plain(Some(0));
    let crashed = || op(0, 0, None, RegisterOp::Write(1), None, Outcome::Unknown);
    // Never happened.
    assert_eq!(run(&m, vec![crashed(), read(1, 1, 2, Some(0))]).verdict, Verdict::Linearizable);
    // Happened late: after a first read, before the second.
    let late = vec![crashed(), read(1, 1, 2, Some(0)), read(1, 3, 4, Some(1))];
    assert_eq!(run(&m, late).verdict, Verdict::Linearizable);
    // Once seen, it cannot disappear.
    let undone = vec![crashed(), read(1, 1, 2, Some(1)), read(1, 3, 4, Some(0))];
    let report = run(&m, undone);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let stuck = report.violation.expect("a violation").stuck;
    assert_eq!(stuck.blocking, 2, "the read of 0 after the read of 1 cannot be placed");
    // Unknown with a return time recorded (Jepsen's :info): the same, it never has to return.
    let info = op(0, 0, Some(1), RegisterOp::Write(1), None, Outcome::Unknown);
    let long_after = vec![info, read(1, 2, 3, Some(0)), read(1, 8, 9, Some(1))];
    assert_eq!(run(&m, long_after).verdict, Verdict::Linearizable);
}

#[test]
fn reading_a_wrong_initial_value_is_refused_at_once() {
    let report = run(&Register::plain(Some(0)), vec![read(0, 0, 1, Some(5))]);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let v = report.violation.expect("a violation");
    assert_eq!(v.stuck.blocking, 0);
    assert!(v.stuck.refused, "the model refuses it in the initial state");
    assert!(v.stuck.prefix.is_empty());
    assert_eq!(v.stuck.initial_state, "0");
    // The unset register reads nil.
    let nil = run(&Register::plain(None), vec![read(0, 0, 1, None)]);
    assert_eq!(nil.verdict, Verdict::Linearizable);
}

#[test]
fn a_failed_write_did_not_happen() {
    let failed = op(0, 0, Some(1), RegisterOp::Write(2), None, Outcome::Fail);
    let report = run(&Register::cas(Some(0)), vec![failed, read(1, 2, 3, Some(2))]);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
}

#[test]
fn a_failed_cas_is_an_observation_for_etcd_and_nothing_for_knossos() {
    // The register holds 1 throughout; a cas from 1 "failed" anyway.
    let ops = || {
        vec![
            write(0, 0, 1, 1),
            op(1, 2, Some(3), RegisterOp::Cas(1, 2), None, Outcome::Fail),
            read(2, 4, 5, Some(1)),
        ]
    };
    assert_eq!(run(&Register::cas(None), ops()).verdict, Verdict::Linearizable);
    let etcd = run(&Register::etcd(None), ops());
    assert_eq!(etcd.verdict, Verdict::NotLinearizable);
    assert_eq!(etcd.violation.expect("a violation").stuck.blocking, 1);
    // A failed cas that did find another value is fine under both.
    let mismatch = vec![
        write(0, 0, 1, 3),
        op(1, 2, Some(3), RegisterOp::Cas(1, 2), None, Outcome::Fail),
        read(2, 4, 5, Some(3)),
    ];
    assert_eq!(run(&Register::etcd(None), mismatch).verdict, Verdict::Linearizable);
}

#[test]
fn a_cas_of_unknown_outcome_takes_effect_only_where_its_comparison_holds() {
    let m = Register::cas(Some(0));
    let cas = || op(0, 0, None, RegisterOp::Cas(5, 7), None, Outcome::Unknown);
    // The register never holds 5: the cas cannot have written 7.
    assert_eq!(run(&m, vec![cas(), read(1, 1, 2, Some(7))]).verdict, Verdict::NotLinearizable);
    let with_five = vec![cas(), write(1, 1, 2, 5), read(1, 3, 4, Some(7))];
    assert_eq!(run(&m, with_five).verdict, Verdict::Linearizable);
}

#[test]
fn key_value_partitions_per_key_and_agrees_with_the_whole_map() {
    let k = |s: &str| s.as_bytes().to_vec();
    let set = |p, c, r, key: &str, v: &str| {
        op(p, c, Some(r), KvOp::Set { key: k(key), value: k(v) }, None, Outcome::Ok)
    };
    let get = |p, c, r, key: &str, v: Option<&str>| {
        op(p, c, Some(r), KvOp::Get { key: k(key) }, Some(v.map(k)), Outcome::Ok)
    };
    let good = vec![
        set(0, 0, 3, "a", "1"),
        set(1, 1, 2, "b", "2"),
        get(2, 1, 4, "a", Some("1")),
        get(3, 4, 5, "b", Some("2")),
        get(3, 6, 7, "c", None),
    ];
    // "b" was set to 2 before the get was called, which still saw nothing.
    let bad = vec![set(0, 0, 1, "a", "1"), set(1, 0, 1, "b", "2"), get(2, 2, 3, "b", None)];
    let whole = |ops: &Vec<Operation<KvOp, Option<Vec<u8>>>>| {
        ops.iter()
            .map(|o| Operation {
                process: o.process,
                call: o.call,
                ret: o.ret,
                input: MultiOp::Kv(o.input.clone()),
                output: o.output.clone().map(MultiOut::Value),
                outcome: o.outcome,
            })
            .collect::<Vec<_>>()
    };
    let per_key = run(&Kv::default(), good.clone());
    assert_eq!(per_key.verdict, Verdict::Linearizable);
    assert_eq!(per_key.partitions, 3);
    assert_eq!(run(&MultiKey::default(), whole(&good)).verdict, Verdict::Linearizable);
    let per_key = run(&Kv::default(), bad.clone());
    assert_eq!(per_key.verdict, Verdict::NotLinearizable);
    assert_eq!(per_key.violation.expect("a violation").partition, "\"b\"");
    assert_eq!(run(&MultiKey::default(), whole(&bad)).verdict, Verdict::NotLinearizable);
}

#[test]
fn a_sequence_is_atomic_a_read_cannot_see_half_of_it() {
    let k = |s: &str| s.as_bytes().to_vec();
    let seq = MultiOp::Sequence(vec![
        SeqUpdate::Set { key: k("a"), value: k("1") },
        SeqUpdate::Set { key: k("b"), value: k("1") },
    ]);
    let get = |p, c, r, key: &str, v: Option<&str>| {
        op(
            p,
            c,
            Some(r),
            MultiOp::Kv(KvOp::Get { key: k(key) }),
            Some(MultiOut::Value(v.map(k))),
            Outcome::Ok,
        )
    };
    let seq_op = || op(0, 0, Some(10), seq.clone(), None, Outcome::Ok);
    // a then b, both during the sequence: a saw it, so b, read after a returned, must too.
    let torn = vec![seq_op(), get(1, 1, 2, "a", Some("1")), get(1, 3, 4, "b", None)];
    assert_eq!(run(&MultiKey::default(), torn).verdict, Verdict::NotLinearizable);
    let whole = vec![seq_op(), get(1, 1, 2, "a", Some("1")), get(1, 3, 4, "b", Some("1"))];
    assert_eq!(run(&MultiKey::default(), whole).verdict, Verdict::Linearizable);
    // A sequence that asserts a wrong value fails as a whole: a failed one did not happen.
    let asserting = MultiOp::Sequence(vec![
        SeqUpdate::Assert { key: k("a"), value: Some(k("9")) },
        SeqUpdate::Set { key: k("b"), value: k("1") },
    ]);
    let ok_but_impossible = vec![op(0, 0, Some(1), asserting.clone(), None, Outcome::Ok)];
    assert_eq!(run(&MultiKey::default(), ok_but_impossible).verdict, Verdict::NotLinearizable);
    let failed = vec![op(0, 0, Some(1), asserting, None, Outcome::Fail), get(1, 2, 3, "b", None)];
    assert_eq!(run(&MultiKey::default(), failed).verdict, Verdict::Linearizable);
}

#[test]
fn a_mutex_is_held_by_one_at_a_time() {
    let acq = |p, c, r| op(p, c, Some(r), MutexOp::Acquire, None, Outcome::Ok);
    let rel = |p, c, r| op(p, c, Some(r), MutexOp::Release, None, Outcome::Ok);
    let fine = vec![acq(0, 0, 1), acq(1, 0, 4), rel(0, 2, 3)];
    assert_eq!(run(&Mutex, fine).verdict, Verdict::Linearizable);
    let twice = vec![acq(0, 0, 1), acq(1, 2, 3)];
    assert_eq!(run(&Mutex, twice).verdict, Verdict::NotLinearizable);
    let failed_release = op(0, 2, Some(3), MutexOp::Release, None, Outcome::Fail);
    let still_held = vec![acq(0, 0, 1), failed_release, acq(1, 4, 5)];
    assert_eq!(run(&Mutex, still_held).verdict, Verdict::NotLinearizable);
}

#[test]
fn a_set_read_sees_exactly_the_adds_before_it() {
    let add =
        |p, c, r, e: &str| op(p, c, Some(r), SetOp::Add(e.as_bytes().to_vec()), None, Outcome::Ok);
    let read = |p, c, r, es: &[&str]| {
        let seen: BTreeSet<Vec<u8>> = es.iter().map(|e| e.as_bytes().to_vec()).collect();
        op(p, c, Some(r), SetOp::Read, Some(seen), Outcome::Ok)
    };
    let fine = vec![add(0, 0, 3, "1"), add(1, 0, 3, "2"), read(2, 1, 2, &["2"])];
    assert_eq!(run(&Set, fine).verdict, Verdict::Linearizable);
    let lost = vec![add(0, 0, 1, "1"), add(1, 0, 1, "2"), read(2, 2, 3, &["2"])];
    assert_eq!(run(&Set, lost).verdict, Verdict::NotLinearizable);
}

/// `n` writes of distinct values, all concurrent, then a read of a value nobody wrote: not
/// linearizable, but the search must try every subset of writes before it can say so.
fn hard(n: u64) -> Vec<Operation<RegisterOp, RegisterOut>> {
    let mut ops: Vec<_> = (0..n).map(|p| write(p, 0, 100, p as i64 + 1)).collect();
    for p in 0..n {
        ops.push(read(n + p, 1, 100, Some(p as i64 + 1)));
    }
    ops.push(read(2 * n, 101, 102, Some(-1)));
    ops
}

#[test]
fn the_time_budget_answers_unknown_with_the_unfinished_partitions() {
    let history = History::new(hard(16)).expect("well formed");
    let budget = Budget { time_limit: Some(Duration::ZERO), ..Budget::default() };
    let report = check(&Register::plain(Some(0)), &history, &budget);
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(report.violation.is_none());
    let unfinished = report.unfinished.expect("the reason");
    assert!(unfinished.reason.contains("time budget"), "{}", unfinished.reason);
    assert_eq!(unfinished.partitions.len(), 1);
    assert_eq!(unfinished.partitions[0].operations, 33);
}

#[test]
fn the_memory_budget_answers_unknown_never_a_verdict() {
    let history = History::new(hard(16)).expect("well formed");
    let budget = Budget { memory_bytes_max: 1 << 20, ..Budget::default() };
    let report = check(&Register::plain(Some(0)), &history, &budget);
    assert_eq!(report.verdict, Verdict::Unknown);
    let unfinished = report.unfinished.expect("the reason");
    assert!(unfinished.reason.contains("memory budget"), "{}", unfinished.reason);
    // With room enough, the same history gets its verdict.
    let small = History::new(hard(8)).expect("well formed");
    let report = check(&Register::plain(Some(0)), &small, &Budget::default());
    assert_eq!(report.verdict, Verdict::NotLinearizable);
}

#[test]
fn a_partition_in_violation_cancels_the_others_and_is_reported() {
    let k = |s: &str| s.as_bytes().to_vec();
    let mut ops = Vec::new();
    // Ten busy keys that are fine, and one small key that is not.
    for key in 0..10u64 {
        for i in 0..6u64 {
            let v = format!("{i}");
            ops.push(op(
                i,
                key * 100 + i,
                Some(key * 100 + i + 20),
                KvOp::Set { key: k(&key.to_string()), value: k(&v) },
                None,
                Outcome::Ok,
            ));
        }
    }
    ops.push(op(50, 0, Some(1), KvOp::Set { key: k("x"), value: k("1") }, None, Outcome::Ok));
    ops.push(op(51, 2, Some(3), KvOp::Get { key: k("x") }, Some(Some(k("2"))), Outcome::Ok));
    let report = run(&Kv::default(), ops);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    assert_eq!(report.violation.expect("a violation").partition, "\"x\"");
    assert_eq!(report.partitions, 11);
}

#[test]
fn a_history_with_a_return_before_its_call_is_refused() {
    let bad = vec![op(0, 5, Some(4), RegisterOp::Read, None::<RegisterOut>, Outcome::Ok)];
    let err = History::new(bad).expect_err("a return before the call");
    assert!(err.to_string().contains("operation 0"), "{err}");
    let no_return = vec![op(0, 5, None, RegisterOp::Read, None::<RegisterOut>, Outcome::Ok)];
    assert!(History::new(no_return).is_err());
}

/// A partition of many operations keeps no dense step table: its rows (one entry an operation,
/// filled whole for every new state) cost more to fill than the few steps a state takes. The
/// simulator's heavy-load histories (thousands of operations in one partition) filled 16 MiB a
/// search for a few thousand steps, an eighth of the run's time.
#[test]
fn a_long_partition_keeps_no_dense_step_table() {
    // Two processes writing distinct values in turn and reading them back: 6,000 operations,
    // one new state each write.
    let mut ops = Vec::new();
    for k in 0..3_000u64 {
        let t = k * 10;
        ops.push(write(k % 2, t, t + 4, k as i64));
        ops.push(read(k % 2, t + 5, t + 9, Some(k as i64)));
    }
    let report = run(&Register::cas(None), ops);
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert!(report.stats.states >= 3_000, "{:?}", report.stats);
    assert!(
        report.stats.partition_bytes_max < 16 << 20,
        "the search's tables took {} bytes for {} states",
        report.stats.partition_bytes_max,
        report.stats.states
    );
}
