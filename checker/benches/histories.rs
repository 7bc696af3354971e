//! Time per group of recorded histories (`../shared/histories/`), against the figures of
//! porcupine v1.3.0 measured on the same 2-core machine. Verdicts only (no shrinking), default
//! threads; each group runs several times and the median is printed. The peak memory of the
//! whole-map c10 check is measured in a child process (VmHWM of /proc/self/status), so that
//! nothing else this process did counts.
//!
//! Run with `cargo bench -p arakoon-checker`.

use arakoon_checker::import::{read, Format, RawHistory};
use arakoon_checker::{check_raw, edn::read_one, Budget, ModelKind, Value, Verdict};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const CHILD_FLAG: &str = "--measure-c10-map";

struct Group {
    name: &'static str,
    model: ModelKind,
    initial: Option<&'static str>,
    files: Vec<PathBuf>,
    expected: Vec<Verdict>,
    /// Porcupine's time for the same work, when known.
    porcupine: Option<Duration>,
}

fn load(path: &Path) -> RawHistory {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read(&text, Format::detect(&text)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sorted(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files
}

fn budget() -> Budget {
    Budget { shrink: false, ..Budget::default() }
}

/// Checks every file of `group` once; the total time.
fn run_once(group: &Group, histories: &[RawHistory], initial: Option<&Value>) -> Duration {
    let start = Instant::now();
    for ((raw, expected), path) in histories.iter().zip(&group.expected).zip(&group.files) {
        let checked = check_raw(group.model, initial, raw, &budget()).expect("a valid history");
        assert_eq!(checked.report.verdict, *expected, "{}", path.display());
    }
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn groups(dir: &Path) -> Vec<Group> {
    let etcd = sorted(&dir.join("porcupine-etcd"), ".log");
    let etcd_expected = etcd
        .iter()
        .map(|p| {
            let good =
                ["etcd_002.log", "etcd_005.log", "etcd_007.log"].iter().any(|g| p.ends_with(g));
            if good {
                Verdict::Linearizable
            } else {
                Verdict::NotLinearizable
            }
        })
        .collect();
    let good = sorted(&dir.join("knossos/cas-register/good"), ".edn");
    let bad = sorted(&dir.join("knossos/cas-register/bad"), ".edn");
    let kv = |name: &str| dir.join("porcupine-kv").join(name);
    vec![
        Group {
            name: "etcd logs (10 files)",
            model: ModelKind::EtcdRegister,
            initial: None,
            expected: etcd_expected,
            files: etcd,
            // 1.06 s for 102 such histories: 10.4 ms each.
            porcupine: Some(Duration::from_secs_f64(1.06 * 10.0 / 102.0)),
        },
        Group {
            name: "etcd_007 alone",
            model: ModelKind::EtcdRegister,
            initial: None,
            files: vec![dir.join("porcupine-etcd/etcd_007.log")],
            expected: vec![Verdict::Linearizable],
            porcupine: Some(Duration::from_millis(240)),
        },
        Group {
            name: "kv c50-ok per key",
            model: ModelKind::Kv,
            initial: Some("\"\""),
            files: vec![kv("c50-ok.txt")],
            expected: vec![Verdict::Linearizable],
            porcupine: Some(Duration::from_millis(600)),
        },
        Group {
            name: "kv c10-ok as one map",
            model: ModelKind::MultiKey,
            initial: Some("\"\""),
            files: vec![kv("c10-ok.txt")],
            expected: vec![Verdict::Linearizable],
            porcupine: Some(Duration::from_millis(5500)),
        },
        Group {
            name: "kv c10-bad as one map",
            model: ModelKind::MultiKey,
            initial: Some("\"\""),
            files: vec![kv("c10-bad.txt")],
            expected: vec![Verdict::NotLinearizable],
            porcupine: None,
        },
        Group {
            name: "knossos cas-register good (113 files)",
            model: ModelKind::CasRegister,
            initial: None,
            expected: vec![Verdict::Linearizable; good.len()],
            files: good,
            porcupine: None,
        },
        Group {
            name: "knossos cas-register bad (7 files)",
            model: ModelKind::CasRegister,
            initial: None,
            expected: vec![Verdict::NotLinearizable; bad.len()],
            files: bad,
            porcupine: None,
        },
        Group {
            name: "knossos mutex etcd.edn",
            model: ModelKind::Mutex,
            initial: None,
            files: vec![dir.join("knossos/mutex/bad/etcd.edn")],
            expected: vec![Verdict::NotLinearizable],
            porcupine: None,
        },
    ]
}

/// The peak resident memory of this process, from /proc/self/status.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories");
    if !dir.is_dir() {
        println!("skipped: ../shared/histories not found (looked at {})", dir.display());
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == CHILD_FLAG) {
        let raw = load(&dir.join("porcupine-kv/c10-ok.txt"));
        let before = peak_kib().unwrap_or(0);
        let initial = read_one("\"\"").expect("an EDN string");
        let checked = check_raw(ModelKind::MultiKey, Some(&initial), &raw, &budget())
            .expect("a valid history");
        assert_eq!(checked.report.verdict, Verdict::Linearizable);
        let tables = checked.report.stats.partition_bytes_max;
        println!("{} {} {}", before, peak_kib().unwrap_or(0), tables);
        return;
    }

    println!("{:<40} {:>12} {:>12} {:>10}", "group", "median", "porcupine", "speed-up");
    for group in groups(&dir) {
        let histories: Vec<RawHistory> = group.files.iter().map(|p| load(p)).collect();
        let initial = group.initial.map(|i| read_one(i).expect("an EDN value"));
        let times: Vec<Duration> =
            (0..RUNS).map(|_| run_once(&group, &histories, initial.as_ref())).collect();
        let m = median(times);
        let (reference, ratio) = match group.porcupine {
            Some(p) => (
                format!("{:.1} ms", p.as_secs_f64() * 1e3),
                format!("{:.1}x", p.as_secs_f64() / m.as_secs_f64()),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<40} {:>9.2} ms {:>12} {:>10}",
            group.name,
            m.as_secs_f64() * 1e3,
            reference,
            ratio
        );
    }

    // Peak memory of the whole-map c10 check, in a fresh process.
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            println!("peak memory: cannot find this executable: {e}");
            return;
        }
    };
    match std::process::Command::new(exe).arg(CHILD_FLAG).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let nums: Vec<u64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            if let [before, peak, tables] = nums[..] {
                println!(
                    "kv c10-ok as one map: peak resident memory {:.1} MiB (history loaded: \
                     {:.1} MiB; search tables {:.1} MiB); porcupine: 0.6 GB",
                    peak as f64 / 1024.0,
                    before as f64 / 1024.0,
                    tables as f64 / (1 << 20) as f64
                );
            } else {
                println!("peak memory: unexpected child output {text:?}");
            }
        }
        Ok(out) => {
            println!("peak memory: the child failed: {}", String::from_utf8_lossy(&out.stderr))
        }
        Err(e) => println!("peak memory: cannot run the child: {e}"),
    }
}
