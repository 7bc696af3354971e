//! The search against the definition: thousands of small random register histories (ties,
//! failures, unknown outcomes) checked both by the checker and by trying every order that
//! respects real time. The two must agree on every one, and a linearization the checker
//! returns must replay.

use arakoon_checker::model::register::{Register, RegisterOp, RegisterOut};
use arakoon_checker::{check, Budget, History, Model, Operation, Outcome, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Op = Operation<RegisterOp, RegisterOut>;

/// A history of up to `processes` x `per_process` operations on a coarse clock (so that many
/// times are equal), with small values so that reads often match.
fn random_history(rng: &mut ChaCha8Rng, processes: u64, per_process: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for p in 0..processes {
        let mut t = rng.gen_range(0..3u64);
        for _ in 0..rng.gen_range(1..=per_process) {
            let call = t;
            let ret = call + rng.gen_range(0..4u64);
            t = ret + rng.gen_range(0..2u64);
            let input = match rng.gen_range(0..3) {
                0 => RegisterOp::Read,
                1 => RegisterOp::Write(rng.gen_range(0..3)),
                _ => RegisterOp::Cas(rng.gen_range(0..3), rng.gen_range(0..3)),
            };
            let outcome = match rng.gen_range(0..10) {
                0 | 1 => Outcome::Fail,
                2 | 3 => Outcome::Unknown,
                _ => Outcome::Ok,
            };
            let output = match (input, outcome) {
                (RegisterOp::Read, Outcome::Ok) => {
                    let v = rng.gen_range(-1..3);
                    Some(RegisterOut::Value((v >= 0).then_some(v)))
                }
                _ => None,
            };
            // An unknown outcome sometimes has a return time, as Jepsen's :info does.
            let ret = match outcome {
                Outcome::Unknown if rng.gen_bool(0.5) => None,
                _ => Some(ret),
            };
            ops.push(Operation { process: p, call, ret, input, output, outcome });
        }
    }
    ops
}

/// What each operation is to the definition: required (with the output to check), optional
/// (unknown outcome), or absent (failed, did not happen).
enum Role {
    Required(Option<RegisterOut>),
    Optional,
    /// Optional, but if it happened, then within its call and return (relaxed for shrinking).
    Bounded,
    Absent,
}

fn role(model: &Register, op: &Op) -> Role {
    match op.outcome {
        Outcome::Ok => Role::Required(op.output),
        Outcome::Fail => match model.failure(&op.input, op.output.as_ref()) {
            Some(observed) => Role::Required(Some(observed)),
            None => Role::Absent,
        },
        Outcome::Unknown => Role::Optional,
    }
}

/// Whether some order of the required operations, plus any subset of the optional ones,
/// respects real time (an operation that returned before another was called comes first) and
/// replays on the model. Plain recursion over every choice: small histories only.
fn brute_force(model: &Register, ops: &[Op]) -> bool {
    let roles: Vec<Role> = ops.iter().map(|op| role(model, op)).collect();
    brute_force_roles(model, ops, &roles)
}

fn brute_force_roles(model: &Register, ops: &[Op], roles: &[Role]) -> bool {
    fn go(
        model: &Register,
        ops: &[Op],
        roles: &[Role],
        placed: &mut Vec<bool>,
        state: Option<i64>,
    ) -> bool {
        let all_required_placed =
            roles.iter().zip(placed.iter()).all(|(r, &p)| p || !matches!(r, Role::Required(_)));
        if all_required_placed {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] || matches!(roles[i], Role::Absent) {
                continue;
            }
            // Every required operation that returned before this call must be placed already.
            let blocked = (0..ops.len()).any(|j| {
                !placed[j]
                    && matches!(roles[j], Role::Required(_))
                    && ops[j].ret.is_some_and(|r| r < ops[i].call)
            });
            // A bounded operation cannot come after one called after it returned.
            let too_late = matches!(roles[i], Role::Bounded)
                && (0..ops.len()).any(|j| placed[j] && ops[i].ret.is_some_and(|r| r < ops[j].call));
            if blocked || too_late {
                continue;
            }
            let output = match &roles[i] {
                Role::Required(out) => out.as_ref(),
                _ => None,
            };
            if let Some(next) = model.step(&state, &ops[i].input, output) {
                placed[i] = true;
                if go(model, ops, roles, placed, next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    go(model, ops, roles, &mut vec![false; ops.len()], model.init())
}

/// Replays `order` (history indices) and checks that it contains every required operation and
/// respects real time.
fn replays(model: &Register, ops: &[Op], order: &[usize]) -> bool {
    let mut state = model.init();
    for (k, &i) in order.iter().enumerate() {
        let output = match role(model, &ops[i]) {
            Role::Required(out) => out,
            Role::Optional | Role::Bounded => None,
            Role::Absent => return false,
        };
        match model.step(&state, &ops[i].input, output.as_ref()) {
            Some(next) => state = next,
            None => return false,
        }
        // Nothing required placed later returned before this one was called (an unknown
        // outcome's return time binds nothing).
        let returned_before = |j: usize| {
            matches!(role(model, &ops[j]), Role::Required(_))
                && ops[j].ret.is_some_and(|r| r < ops[i].call)
        };
        if order[k + 1..].iter().any(|&j| returned_before(j)) {
            return false;
        }
    }
    (0..ops.len()).all(|i| !matches!(role(model, &ops[i]), Role::Required(_)) || order.contains(&i))
}

fn compare(model: &Register, seeds: std::ops::Range<u64>) -> (usize, usize) {
    let (mut yes, mut no) = (0, 0);
    for seed in seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ops = random_history(&mut rng, 3, 3);
        let expected = brute_force(model, &ops);
        let history = History::new(ops.clone()).expect("well formed");
        let budget = Budget { threads: 1, ..Budget::default() };
        let report = check(model, &history, &budget);
        let got = match report.verdict {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable => false,
            Verdict::Unknown => panic!("seed {seed}: no verdict on {} operations", ops.len()),
        };
        assert_eq!(got, expected, "seed {seed}: {model:?} on {ops:#?}");
        if got {
            yes += 1;
            let order = &report.linearizations[0];
            assert!(replays(model, &ops, order), "seed {seed}: order {order:?} on {ops:#?}");
        } else {
            no += 1;
        }
    }
    (yes, no)
}

#[test]
fn the_search_agrees_with_every_order_on_random_register_histories() {
    for model in [Register::plain(Some(0)), Register::cas(Some(0)), Register::etcd(None)] {
        let (yes, no) = compare(&model, 0..3000);
        // Both verdicts must be common, or the comparison proves little.
        assert!(yes > 300 && no > 300, "{model:?}: {yes} linearizable, {no} not");
    }
}

#[test]
fn every_shrunk_counterexample_still_proves_the_violation() {
    // The counterexample as recorded, with its context relaxed (each may have happened within
    // its call and return, or not at all; unknown outcomes keep "any time after the call"),
    // must have no linearization: then neither has the history.
    let model = Register::cas(Some(0));
    let mut checked = 0;
    for seed in 0..1500u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ops = random_history(&mut rng, 3, 3);
        let history = History::new(ops.clone()).expect("well formed");
        let report = check(&model, &history, &Budget { threads: 1, ..Budget::default() });
        let Some(v) = report.violation else { continue };
        let mut sub = Vec::new();
        let mut roles = Vec::new();
        for view in &v.counterexample {
            sub.push(ops[view.index].clone());
            roles.push(role(&model, &ops[view.index]));
        }
        for view in &v.context {
            let op = &ops[view.index];
            sub.push(op.clone());
            roles.push(if op.outcome == Outcome::Unknown { Role::Optional } else { Role::Bounded });
        }
        assert!(!brute_force_roles(&model, &sub, &roles), "seed {seed}: {v:#?}");
        assert!(v.counterexample.len() <= ops.len());
        checked += 1;
    }
    assert!(checked > 200, "only {checked} violations");
}
