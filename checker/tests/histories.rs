//! Every recorded history of `../shared/histories/` against its known verdict (see the README
//! there): Knossos's compare-and-set register, multi-register and mutex files, porcupine's
//! key-value files (per key and as one map) and its etcd logs.

mod common;

use arakoon_checker::{Budget, ModelKind, Verdict};
use common::{check_file, files, histories, verdict_only};
use std::path::Path;
use std::time::Duration;

fn expect(path: &Path, model: ModelKind, initial: Option<&str>, expected: Verdict) {
    let checked = check_file(path, model, initial, &verdict_only());
    assert_eq!(
        checked.report.verdict,
        expected,
        "{} as {}: {}",
        path.display(),
        model.name(),
        checked.text()
    );
}

#[test]
fn knossos_cas_register_good_files_are_linearizable() {
    let Some(dir) = histories() else { return };
    let good = files(&dir.join("knossos/cas-register/good"), ".edn");
    assert!(good.len() >= 100, "{} files", good.len());
    for path in good {
        expect(&path, ModelKind::CasRegister, None, Verdict::Linearizable);
    }
}

#[test]
fn knossos_cas_register_bad_files_are_not() {
    let Some(dir) = histories() else { return };
    let bad = files(&dir.join("knossos/cas-register/bad"), ".edn");
    assert_eq!(bad.len(), 7);
    for path in bad {
        expect(&path, ModelKind::CasRegister, None, Verdict::NotLinearizable);
        // The rethink files start from an unset register: not linearizable either way.
        expect(&path, ModelKind::CasRegister, Some("nil"), Verdict::NotLinearizable);
    }
}

#[test]
fn knossos_bad_analysis_blames_a_spurious_read_not_a_later_operation() {
    // Its comments: the value is 0, then two concurrent reads see 3 and 2, which nobody wrote.
    let Some(dir) = histories() else { return };
    let path = dir.join("knossos/cas-register/bad/bad-analysis.edn");
    let checked = check_file(&path, ModelKind::CasRegister, None, &Budget::default());
    let text = checked.text();
    let v = checked.report.violation.expect("a violation");
    let blocking = v.ops.iter().find(|o| o.index == v.stuck.blocking).expect("in the partition");
    assert!(blocking.text == "read -> 2" || blocking.text == "read -> 3", "{}", blocking.text);
    assert!(v.stuck.refused);
    // The counterexample: a read of 0, then a read of 2 after it; every write may or may not
    // have happened (within its call and return), and still the only write of 2 returned
    // before the read of 0 began.
    let kept: Vec<&str> = v.counterexample.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(kept, vec!["read -> 0", "read -> 2"], "{text}");
    let context: Vec<&str> = v.context.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(context, vec!["write 2", "write 4", "write 0", "write 1"], "{text}");
    assert!(v.counterexample_minimal);
}

#[test]
fn knossos_multi_register_is_linearizable_and_a_changed_read_is_not() {
    let Some(dir) = histories() else { return };
    let path = dir.join("knossos/multi-register/good/multi-register.edn");
    expect(&path, ModelKind::MultiKey, Some("0"), Verdict::Linearizable);
    // The same transactions from registers starting at 1: the first reads of 0 cannot be.
    expect(&path, ModelKind::MultiKey, Some("1"), Verdict::NotLinearizable);
}

/// The mutex history from etcd is not linearizable, as its folder says. Why: Knossos's mutex
/// has no owner, so it only counts; the counterexample our shrinker finds keeps 131 successful
/// acquires (shown as recorded) and relaxes every release and every other operation to "may or
/// may not have happened": even then no order fits, because the releases that completed
/// cannot separate every pair of those acquires in time. The first operation that cannot be
/// placed is the acquire of process 0 called on line 1096, which returns while the mutex is
/// still held in every linearization of what came before.
#[test]
fn the_etcd_mutex_history_is_not_linearizable() {
    let Some(dir) = histories() else { return };
    let path = dir.join("knossos/mutex/bad/etcd.edn");
    let checked = check_file(&path, ModelKind::Mutex, None, &verdict_only());
    assert_eq!(checked.report.verdict, Verdict::NotLinearizable);
    let v = checked.report.violation.expect("a violation");
    let blocking = v.ops.iter().find(|o| o.index == v.stuck.blocking).expect("in the partition");
    assert_eq!(
        (blocking.process, blocking.line, blocking.text.as_str()),
        (0, Some(1096), "acquire")
    );
    assert!(v.stuck.refused, "the mutex is held there");
}

fn kv_expected(name: &str) -> Verdict {
    if name.ends_with("-ok.txt") {
        Verdict::Linearizable
    } else {
        Verdict::NotLinearizable
    }
}

#[test]
fn porcupine_key_value_files_checked_per_key() {
    let Some(dir) = histories() else { return };
    let all = files(&dir.join("porcupine-kv"), ".txt");
    assert_eq!(all.len(), 6);
    for path in all {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let checked = check_file(&path, ModelKind::Kv, Some("\"\""), &verdict_only());
        assert_eq!(checked.report.verdict, kv_expected(&name), "{name}: {}", checked.text());
        let keys = if name == "c01-bad.txt" { 8 } else { 10 };
        assert_eq!(checked.report.partitions, keys, "{name}: one partition per key");
        if name == "c01-bad.txt" {
            // "a get of key "7" misses an earlier append"
            let v = checked.report.violation.expect("a violation");
            assert_eq!(v.partition, "\"7\"");
            let blocking = v.ops.iter().find(|o| o.index == v.stuck.blocking).expect("in it");
            assert!(blocking.text.starts_with("get(\"7\")"), "{}", blocking.text);
        }
    }
}

#[test]
fn porcupine_key_value_files_checked_as_one_map() {
    let Some(dir) = histories() else { return };
    for name in ["c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt"] {
        let path = dir.join("porcupine-kv").join(name);
        let checked = check_file(&path, ModelKind::MultiKey, Some("\"\""), &verdict_only());
        assert_eq!(checked.report.verdict, kv_expected(name), "{name}: {}", checked.text());
        assert_eq!(checked.report.partitions, 1);
    }
}

/// With 50 clients the whole-map search is far beyond any budget (every key's pending
/// operations multiply); what it must never do is guess. With a small budget it answers
/// unknown, naming the one unfinished partition, or a correct verdict.
#[test]
fn porcupine_c50_as_one_map_answers_unknown_rather_than_guess() {
    let Some(dir) = histories() else { return };
    for name in ["c50-ok.txt", "c50-bad.txt"] {
        let path = dir.join("porcupine-kv").join(name);
        let budget = Budget {
            time_limit: Some(Duration::from_millis(300)),
            shrink: false,
            ..Budget::default()
        };
        let checked = check_file(&path, ModelKind::MultiKey, Some("\"\""), &budget);
        match checked.report.verdict {
            Verdict::Unknown => {
                let u = checked.report.unfinished.expect("a reason");
                assert!(u.reason.contains("time budget"), "{}", u.reason);
                assert_eq!(u.partitions.len(), 1);
            }
            verdict => assert_eq!(verdict, kv_expected(name), "{name}"),
        }
    }
}

#[test]
fn porcupine_etcd_logs() {
    let Some(dir) = histories() else { return };
    let logs = files(&dir.join("porcupine-etcd"), ".log");
    assert_eq!(logs.len(), 10);
    for path in logs {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let good = ["etcd_002.log", "etcd_005.log", "etcd_007.log"].contains(&name.as_str());
        let expected = if good { Verdict::Linearizable } else { Verdict::NotLinearizable };
        expect(&path, ModelKind::EtcdRegister, None, expected);
    }
}
