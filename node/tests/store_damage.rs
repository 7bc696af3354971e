//! A bit flipped at rest in the sled store's files: the node must refuse to start (or refuse the
//! read that meets the damage) or serve the right value, never serve a wrong value, panic or
//! hang. Each trial starts a one-node home as the server does (`startup::prepare`), appends
//! slots to its TLog and applies them to its store (values of mixed bytes, so that sled's
//! compression keeps them long), flushes and closes, flips one bit of one of the store's files
//! (file, byte and bit drawn from the seed), then starts again as the server does on a thread of
//! its own and reads every key back; the test waits for that thread at most 30 s.
//!
//! A flip in sled's metadata log can roll the store back silently (sled takes a frame whose CRC
//! fails for the torn end of its log: the store then lacks every slot since): the store is
//! derived, and start-up replays what the TLog holds beyond the store's applied slot.
//!
//! Seeds: `STORE_DAMAGE_SEEDS=a..b` (default 0..24); every failure names its seed.

use arakoon_node::config::ClusterConfig;
use arakoon_node::server::startup::{self, Prepared};
use arakoon_node::store::Store;
use arakoon_node::value::{Update, Value};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SLOTS: u64 = 200;
const KEYS_A_SLOT: u64 = 10;

fn key(i: u64, k: u64) -> Vec<u8> {
    format!("key/{i:05}/{k:02}").into_bytes()
}

fn value(i: u64, k: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i * 100 + k);
    (0..200).map(|_| rng.gen()).collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::metadata(&p).unwrap().len() > 0 {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a read-back found; the texts are printed (Debug).
#[derive(Debug)]
#[allow(dead_code)]
enum Outcome {
    RefusedAtOpen(String),
    RefusedARead(String),
    AllRight,
    Wrong(String),
}

fn config(home: &Path) -> ClusterConfig {
    let text = format!(
        "[global]\ncluster = n0\ncluster_id = damage\n[n0]\n\
         ip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\nhome = {}\n",
        home.display()
    );
    ClusterConfig::parse(&text, "damage.ini").unwrap()
}

fn read_back(cfg: ClusterConfig) -> Outcome {
    let store = match startup::prepare(&cfg, &cfg.nodes[0]) {
        Ok(p) => p.store,
        Err(e) => {
            let text = e.to_string();
            // A refusal names the store and what to do about it.
            if !(text.contains("arakoon-admin rebuild") && e.exit_code() == 45) {
                return Outcome::Wrong(format!("a refusal that does not say what to do: {text}"));
            }
            return Outcome::RefusedAtOpen(format!("exit {}: {text}", e.exit_code()));
        }
    };
    for i in 0..SLOTS {
        for k in 0..KEYS_A_SLOT {
            match store.get(&key(i, k)) {
                Err(e) => return Outcome::RefusedARead(e.to_string()),
                Ok(Some(v)) if v[..] == value(i, k)[..] => {}
                Ok(other) => {
                    return Outcome::Wrong(format!(
                        "key/{i:05}/{k:02} read {:?} bytes",
                        other.map(|v| v.len())
                    ))
                }
            }
        }
    }
    Outcome::AllRight
}

fn trial(seed: u64) -> Result<Outcome, String> {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let dir = startup::store_path(&cfg.nodes[0]);
    {
        let Prepared { mut writer, mut store, .. } = startup::prepare(&cfg, &cfg.nodes[0]).unwrap();
        for i in 0..SLOTS {
            let updates =
                (0..KEYS_A_SLOT).map(|k| Update::Set { key: key(i, k), value: value(i, k) });
            let v = Value::client(updates.collect());
            writer.append(&[(i, &v)]).unwrap();
            store.apply(i, &v).unwrap();
        }
        store.flush().unwrap();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let all = files(&dir);
    let file = &all[rng.gen_range(0..all.len())];
    let len = std::fs::metadata(file).unwrap().len();
    let (at, bit) = (rng.gen_range(0..len), rng.gen_range(0..8u8));
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize] ^= 1 << bit;
    std::fs::write(file, &bytes).unwrap();
    let what = format!(
        "seed {seed}: bit {bit} of byte {at} of {} ({len} bytes) flipped",
        file.strip_prefix(tmp.path()).unwrap().display()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let _ = tx.send(read_back(cfg));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(outcome) => {
            eprintln!("{what}: {outcome:?}");
            let _ = reader.join();
            Ok(outcome)
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("{what}: the store panicked (see above)"))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            std::mem::forget(tmp);
            Err(format!("{what}: opening and reading the store did not end within 30 s"))
        }
    }
}

fn seeds() -> std::ops::Range<u64> {
    let Ok(text) = std::env::var("STORE_DAMAGE_SEEDS") else { return 0..24 };
    let (a, b) = text.split_once("..").expect("STORE_DAMAGE_SEEDS=a..b");
    a.parse().unwrap()..b.parse().unwrap()
}

#[test]
fn a_bit_flipped_in_the_store_is_refused_or_harmless_never_wrong() {
    let mut failures = Vec::new();
    for seed in seeds() {
        match trial(seed) {
            Ok(Outcome::Wrong(w)) => failures.push(format!("seed {seed}: a wrong value: {w}")),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nreplay one: STORE_DAMAGE_SEEDS=N..N+1 cargo test --release -p arakoon-node --test \
         store_damage",
        failures.join("\n")
    );
}
