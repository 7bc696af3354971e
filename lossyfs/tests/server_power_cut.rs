//! The production persistence path under power loss: real `arakoon` server processes (their
//! persister thread, TLog writer and rollover, sled store, online collapse, client protocol over
//! TCP on loopback), each node's home (TLog directory and store) on its own lossyfs mount.
//!
//! - [`a_node_keeps_every_acknowledged_write_through_power_cuts`]: one node, clients writing
//!   fresh keys; at a seeded moment the power goes (plain, torn, or after a failed fsync) and the
//!   process is killed; power on, restart (a torn TLog tail gets the operator's repair first, as
//!   exit 48 asks), and every acknowledged write must read back with its value. Several lives a
//!   seed, small TLog files (rollover). With an online collapse in every other life and the cut
//!   right after it ([`a_collapsing_node_keeps_every_acknowledged_write_through_power_cuts`]).
//! - [`three_nodes_keep_every_acknowledged_write_through_power_cuts`]: three nodes, the power
//!   of one cut at a time (the master's in the first life, then a seeded node), the others
//!   going on; the victim restarts and catches up; every acknowledged write reads back from the
//!   master and, stopped cleanly, the three stores hold the same pairs. Online collapses: the
//!   victim's right before its cut in one life, the others' while it is down in two.
//! - [`a_bit_flipped_in_a_tlog_file_is_refused_at_start`]: a bit flipped at rest in a TLog file
//!   of a stopped node: the node must refuse to start with an exit code and a message naming
//!   the file, and never serve a value.
//! - [`a_node_refusing_a_flipped_tlog_is_repaired_from_a_peer`]: the same on the master of
//!   three (even seeds) or a slave (odd ones), then the operator's repair (its home emptied,
//!   `arakoon -catchup-only`, started again): it catches up and every acknowledged write reads
//!   back.
//!
//! Seeds: `LOSSYFS_SEEDS=a..b` (default 0..2); every failure names its seed. The seed fixes
//! the moments, the faults and the tears, not the interleaving of the processes.

use arakoon_node::client::head::request_collapse;
use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::server::env::TokioNet;
use arakoon_node::tlog::{truncate_torn_tail, FsDir};
use arakoon_node::value::Update;
use arakoon_testkit::Cluster;
use lossyfs::LossyFs;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const CLUSTER_ID: &str = "lossysrv";
/// How long a node may take to start serving (or to refuse) on the FUSE mount.
const START_WITHIN: Duration = Duration::from_secs(60);

/// The `arakoon` binary of this build's profile, built (or brought up to date) once: cargo
/// builds it for the node's tests, not for this crate's.
fn arakoon_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // .../target/<profile>/deps/server_power_cut-HASH
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).expect("a profile directory");
        let target = profile_dir.parent().expect("a target directory");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "arakoon-node", "--bin", "arakoon", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building arakoon failed; run cargo build -p arakoon-node");
        let binary = profile_dir.join("arakoon");
        assert!(binary.exists(), "{} is missing after the build", binary.display());
        binary
    })
}

/// A cluster whose every node's home is a lossyfs mount. Dropping it kills every node (by its
/// process), then unmounts.
struct Rig {
    cluster: Cluster,
    fs: Vec<LossyFs>,
}

impl Rig {
    /// None (the test skips) when no FUSE file system can be mounted here.
    fn new(n: usize, extra: &str) -> Option<Rig> {
        let cluster = Cluster::new(arakoon_binary(), CLUSTER_ID, n, 1000, extra);
        let mut fs = Vec::new();
        for node in &cluster.config.nodes {
            std::fs::create_dir_all(&node.home).unwrap();
            match LossyFs::mount(&node.home) {
                Ok(m) => fs.push(m),
                Err(e) => {
                    eprintln!("SKIPPED: cannot mount a FUSE file system here ({e}); needs /dev/fuse and root or fusermount3");
                    return None;
                }
            }
        }
        Some(Rig { cluster, fs })
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::from_cluster(&self.cluster.config);
        c.connect_timeout = Duration::from_secs(2);
        c.request_timeout = Duration::from_secs(5);
        c.attempts = 5;
        c
    }

    /// Starts node `k` and waits until it serves as master (`single`: a 1-node cluster) or
    /// answers at all; a torn TLog tail (exit 48) gets the operator's repair
    /// (`arakoon-admin tlog truncate`, the same function) and a second start. True if repaired.
    fn start_serving(&mut self, k: usize, what: &str) -> bool {
        let mut repaired = false;
        self.cluster.start(k);
        let rt = arakoon_testkit::runtime();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Some(status) = self.cluster.exited(k) {
                let log = self.cluster.log(k);
                assert!(
                    status.code() == Some(48) && !repaired,
                    "{what}: n{k} exited with {status} at start\n{log}"
                );
                let dir = FsDir::open(&self.cluster.config.nodes[k].tlog_dir).unwrap();
                let cut = truncate_torn_tail(&dir)
                    .unwrap_or_else(|e| panic!("{what}: the repair of n{k} failed: {e}\n{log}"));
                assert!(cut.is_some(), "{what}: n{k} exit 48 without a torn tail\n{log}");
                repaired = true;
                self.cluster.start(k);
            }
            let mut client = Client::new(self.client_config());
            let serves = rt.block_on(async {
                if self.cluster.size() == 1 {
                    client.find_master().await.is_ok()
                } else {
                    client.node_state_of(k).await.is_ok()
                }
            });
            if serves {
                return repaired;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: n{k} does not serve\n{}",
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for k in 0..self.cluster.size() {
            self.cluster.resume(k);
            self.cluster.kill(k);
        }
        self.fs.clear();
    }
}

type Acked = Vec<(Vec<u8>, Vec<u8>)>;

/// Three clients writing fresh keys (`prefix`, then a counter) until `stop`: a set, or a
/// sequence of three sets. Returns every write the cluster acknowledged, and how many failed.
fn spawn_writers(
    config: ClientConfig,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Acked, u64)> {
    std::thread::spawn(move || {
        let rt = arakoon_testkit::runtime();
        rt.block_on(async move {
            let tasks: Vec<_> = (0..3)
                .map(|w| {
                    let (config, stop) = (config.clone(), stop.clone());
                    let prefix = format!("{prefix}-w{w}");
                    tokio::spawn(async move {
                        let mut client = Client::new(config);
                        let (mut acked, mut failed) = (Vec::new(), 0u64);
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            let pairs: Acked = (0..if n % 3 == 0 { 3 } else { 1 })
                                .map(|j| {
                                    let key = format!("{prefix}-{n}-{j}").into_bytes();
                                    let value =
                                        format!("{prefix}-{n}-{j}=").repeat(1 + n as usize % 7);
                                    (key, value.into_bytes())
                                })
                                .collect();
                            let result = if pairs.len() == 1 {
                                client.set(&pairs[0].0, &pairs[0].1).await
                            } else {
                                let updates = pairs
                                    .iter()
                                    .map(|(key, value)| Update::Set {
                                        key: key.clone(),
                                        value: value.clone(),
                                    })
                                    .collect();
                                client.sequence(updates, false).await
                            };
                            match result {
                                Ok(()) => acked.extend(pairs),
                                Err(_) => {
                                    failed += 1;
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                        (acked, failed)
                    })
                })
                .collect();
            let (mut acked, mut failed) = (Vec::new(), 0);
            for t in tasks {
                let (a, f) = t.await.unwrap();
                acked.extend(a);
                failed += f;
            }
            (acked, failed)
        })
    })
}

/// Every acknowledged write reads back from the master with its value.
fn check_acked(rig: &Rig, acked: &Acked, what: &str) {
    let rt = arakoon_testkit::runtime();
    rt.block_on(async {
        let mut client = Client::new(rig.client_config());
        for (key, value) in acked {
            let got = client.get(key).await;
            assert!(
                got.as_ref().is_ok_and(|v| v == value),
                "{what}: acknowledged {} = {} reads back as {got:?}\n{}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value),
                rig.cluster.logs()
            );
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Cut,
    TornCut,
    FailedFsync,
}

fn seeds() -> std::ops::Range<u64> {
    let s = std::env::var("LOSSYFS_SEEDS").unwrap_or_else(|_| "0..2".into());
    let (a, b) = s.split_once("..").expect("LOSSYFS_SEEDS=a..b");
    a.parse().unwrap()..b.parse().unwrap()
}

fn replay(seed: u64, test: &str) -> String {
    format!("seed {seed} (replay: LOSSYFS_SEEDS={seed}..{} cargo test --release -p lossyfs --test server_power_cut {test})", seed + 1)
}

#[derive(Debug, Default)]
struct Tally {
    lives: u32,
    acked: usize,
    failed_writes: u64,
    torn_repairs: u32,
    collapses: u32,
    /// Heads of collapsed peers fetched and adopted by catching-up nodes.
    adoptions: usize,
    faults: Vec<Fault>,
}

const LIVES: u32 = 4;

/// One node, [`LIVES`] lives, each ended by a power cut; with `collapse`, every other life
/// collapses online under the load and the power goes right after it.
fn one_node_lives(seed: u64, collapse_lives: bool, test: &str) -> Option<Tally> {
    let mut rig = Rig::new(1, "tlog_max_entries = 20")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut all: Acked = Vec::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    rig.start_serving(0, &replay(seed, test));
    for life in 0..LIVES {
        let what = format!("{} life {life}", replay(seed, test));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(rig.client_config(), format!("s{seed}-l{life}"), stop.clone());
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1500)));
        if collapse_lives && life % 2 == 1 {
            assert!(collapse(&rig, 0, &what) > 0, "{what}: the collapse had nothing to do");
            tally.collapses += 1;
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..50)));
        }
        let fault = [Fault::Cut, Fault::TornCut, Fault::FailedFsync][rng.gen_range(0..3)];
        if fault == Fault::FailedFsync {
            rig.fs[0].fail_next_fsync();
            std::thread::sleep(Duration::from_millis(rng.gen_range(50..300)));
        }
        let tear = (fault == Fault::TornCut).then(|| rng.gen());
        rig.fs[0].power_cut(tear);
        rig.cluster.kill(0);
        stop.store(true, Ordering::Relaxed);
        let (acked, failed) = writers.join().unwrap();
        rig.fs[0].power_on();
        tally.faults.push(fault);
        tally.failed_writes += failed;
        all.extend(acked);
        tally.torn_repairs += rig.start_serving(0, &what) as u32;
        check_acked(&rig, &all, &what);
        tally.lives += 1;
    }
    tally.acked = all.len();
    eprintln!(
        "{}: {tally:?} {:?} in {:.1} s",
        replay(seed, test),
        rig.fs[0].stats(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        all.len() > 100,
        "{}: too few acknowledged writes to test anything",
        replay(seed, test)
    );
    Some(tally)
}

#[test]
fn a_node_keeps_every_acknowledged_write_through_power_cuts() {
    let test = "a_node_keeps_every_acknowledged_write_through_power_cuts";
    for seed in seeds() {
        if one_node_lives(seed, false, test).is_none() {
            return;
        }
    }
}

/// The same with an online collapse (`collapse_tlogs`, keeping one file) in every other life
/// and the power cut right after it. It found two ways sled lost a node's head, each of which
/// lost the slots the collapse had removed from the TLog (fixed by vendor/sled patches 9 and
/// 10; node_power_cut.rs has a focused test of each): without patch 9, seed 0's restart after
/// life 1 refused (exit 50, "the head ... reaches slot none": the new head's `metadata`
/// directory was never made durable); without patch 10, life 3's collapse was refused ("the
/// head needs slot 0 next but the TLog resumes at slot 38398": the start after life 2's cut had
/// deleted the head's only metadata snapshot).
#[test]
fn a_collapsing_node_keeps_every_acknowledged_write_through_power_cuts() {
    let test = "a_collapsing_node_keeps_every_acknowledged_write_through_power_cuts";
    for seed in seeds() {
        if one_node_lives(seed, true, test).is_none() {
            return;
        }
    }
}

/// The TLog files of `dir` (a node's TLog directory), by name.
fn is_tlog(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tlog") && path.parent() == Some(Path::new(""))
}

/// Writes, stops the node cleanly, flips a bit of one of its TLog files, starts it: it must
/// refuse, with a code and a message naming the file.
fn flip_in_tlog(seed: u64) -> Option<(i32, String)> {
    let test = "a_bit_flipped_in_a_tlog_file_is_refused_at_start";
    let what = replay(seed, test);
    let mut rig = Rig::new(1, "tlog_max_entries = 20")?;
    rig.start_serving(0, &what);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(rig.client_config(), format!("s{seed}"), stop.clone());
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    let (acked, _) = writers.join().unwrap();
    assert!(acked.len() > 50, "{what}: too few writes");
    let status = rig.cluster.stop(0);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{what}: the node did not stop cleanly");
    let flip = rig.fs[0]
        .flip_random_bit(Path::new(""), seed, is_tlog)
        .unwrap()
        .expect("the node wrote TLog files");
    let what = format!("{what}: {flip:?}");
    rig.cluster.start(0);
    let deadline = Instant::now() + START_WITHIN;
    let status = loop {
        if let Some(status) = rig.cluster.exited(0) {
            break status;
        }
        let mut client = Client::new(rig.client_config());
        let rt = arakoon_testkit::runtime();
        if rt.block_on(client.find_master()).is_ok() {
            check_acked(&rig, &acked, &what);
            panic!("{what}: the node serves over a damaged TLog (every acknowledged value read back right)\n{}", rig.cluster.log(0));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the node neither refused nor served\n{}",
            rig.cluster.log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = rig.cluster.log(0);
    let code =
        status.code().unwrap_or_else(|| panic!("{what}: killed by a signal: {status}\n{log}"));
    assert!([48, 49, 50].contains(&code), "{what}: exit code {code}\n{log}");
    let name = flip.path.display().to_string();
    assert!(log.contains(&name), "{what}: the refusal does not name {name}\n{log}");
    Some((code, log.lines().rev().find(|l| l.contains(&name)).unwrap_or("").to_string()))
}

#[test]
fn a_bit_flipped_in_a_tlog_file_is_refused_at_start() {
    for seed in seeds() {
        match flip_in_tlog(seed) {
            Some((code, line)) => eprintln!("seed {seed}: exit {code}: {line}"),
            None => return,
        }
    }
}

/// The slot node `k`'s store has applied (`get_txid`), if it answers.
async fn applied(client: &Client, k: usize) -> Option<u64> {
    use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
    match client.ask(k, &Request::GetTxid).await {
        Ok(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) => Some(i),
        _ => None,
    }
}

/// Waits until every node has applied what the master has; returns the master.
fn wait_level(rig: &Rig, what: &str) -> usize {
    let rt = arakoon_testkit::runtime();
    rt.block_on(async {
        let master = rig.cluster.wait_for_master(START_WITHIN).await;
        let client = Client::new(rig.client_config());
        let target = applied(&client, master).await;
        let target = target.unwrap_or_else(|| panic!("{what}: master n{master} has no txid"));
        let deadline = Instant::now() + START_WITHIN;
        for k in 0..rig.cluster.size() {
            while applied(&client, k).await.is_none_or(|i| i < target) {
                assert!(
                    Instant::now() < deadline,
                    "{what}: n{k} is not level with the master's slot {target}\n{}",
                    rig.cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        master
    })
}

/// Collapses node `k` online (keep one TLog file); the steps it took.
fn collapse(rig: &Rig, k: usize, what: &str) -> usize {
    let addr = rig.cluster.client_addr(k);
    let rt = arakoon_testkit::runtime();
    rt.block_on(request_collapse(&TokioNet, addr, CLUSTER_ID, 1, false, &mut |_, _| {}))
        .unwrap_or_else(|e| panic!("{what}: collapsing n{k} failed: {e}\n{}", rig.cluster.logs()))
}

/// Three nodes, one power cut at a time ([`LIVES`] cuts; the master's in the first life and
/// whenever the seed picks it), the victim restarted and caught up; at the end every
/// acknowledged write reads back from the master and the three stores hold the same pairs.
/// Collapses too: in life 2 the victim collapses under the load and the power goes right
/// after; in odd lives the two others collapse while the victim is down, so that it restarts
/// behind peers that folded the slots it lacks into their heads (it fetches a head and adopts
/// it, or catches up from what they kept).
fn three_node_lives(seed: u64) -> Option<Tally> {
    let test = "three_nodes_keep_every_acknowledged_write_through_power_cuts";
    let mut rig = Rig::new(3, "tlog_max_entries = 20")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1000);
    let mut all: Acked = Vec::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    for k in 0..3 {
        rig.cluster.start(k);
    }
    let mut master = wait_level(&rig, &replay(seed, test));
    let mut masters_cut = 0;
    for life in 0..LIVES {
        let victim = if life == 0 { master } else { rng.gen_range(0..3) };
        masters_cut += (victim == master) as u32;
        let what = format!("{} life {life} (n{victim} cut, master n{master})", replay(seed, test));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(rig.client_config(), format!("s{seed}-l{life}"), stop.clone());
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1200)));
        if life == 2 {
            assert!(collapse(&rig, victim, &what) > 0, "{what}: the collapse had nothing to do");
            tally.collapses += 1;
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..50)));
        }
        let fault = [Fault::Cut, Fault::TornCut, Fault::FailedFsync][rng.gen_range(0..3)];
        if fault == Fault::FailedFsync {
            rig.fs[victim].fail_next_fsync();
            std::thread::sleep(Duration::from_millis(rng.gen_range(50..300)));
        }
        let tear = (fault == Fault::TornCut).then(|| rng.gen());
        rig.fs[victim].power_cut(tear);
        rig.cluster.kill(victim);
        // The others go on without it for a while (a new master first if it led).
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..2000)));
        if life % 2 == 1 {
            for k in (0..3).filter(|k| *k != victim) {
                collapse(&rig, k, &what);
                tally.collapses += 1;
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(100..500)));
        }
        stop.store(true, Ordering::Relaxed);
        let (acked, failed) = writers.join().unwrap();
        rig.fs[victim].power_on();
        tally.faults.push(fault);
        tally.failed_writes += failed;
        all.extend(acked);
        tally.torn_repairs += rig.start_serving(victim, &what) as u32;
        master = wait_level(&rig, &what);
        check_acked(&rig, &all, &what);
        tally.lives += 1;
    }
    let what = replay(seed, test);
    check_acked(&rig, &all, &what);
    // Stopped cleanly, the three stores hold the same pairs.
    for k in 0..3 {
        let status = rig.cluster.stop(k);
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{what}: n{k} did not stop cleanly");
    }
    let dump = |k: usize| {
        use arakoon_node::store::{Range, SledStore, Store};
        let path = rig.cluster.config.nodes[k].home.join("store");
        let store = SledStore::open(&path, CLUSTER_ID).unwrap();
        store.range_entries(&Range::default()).unwrap()
    };
    let reference = dump(0);
    let by_key: std::collections::HashMap<&[u8], &[u8]> =
        reference.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    for (key, value) in &all {
        assert!(
            by_key.get(key.as_slice()) == Some(&value.as_slice()),
            "{what}: n0's store lacks {} = {}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        );
    }
    for k in 1..3 {
        assert!(dump(k) == reference, "{what}: n{k}'s store differs from n0's");
    }
    tally.acked = all.len();
    tally.adoptions =
        (0..3).map(|k| rig.cluster.log(k).matches("adopted the peer's head").count()).sum();
    eprintln!(
        "{what}: {tally:?}, {masters_cut} masters cut, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(all.len() > 100, "{what}: too few acknowledged writes to test anything");
    Some(tally)
}

#[test]
fn three_nodes_keep_every_acknowledged_write_through_power_cuts() {
    for seed in seeds() {
        if three_node_lives(seed).is_none() {
            return;
        }
    }
}

/// Starts node `k` over damaged files and waits until it exits (its status and log) or serves
/// (None).
fn start_damaged(
    rig: &mut Rig,
    k: usize,
    what: &str,
) -> Option<(std::process::ExitStatus, String)> {
    rig.cluster.start(k);
    let rt = arakoon_testkit::runtime();
    let deadline = Instant::now() + START_WITHIN;
    loop {
        if let Some(status) = rig.cluster.exited(k) {
            return Some((status, rig.cluster.log(k)));
        }
        let client = Client::new(rig.client_config());
        let serves = rt.block_on(async {
            if rig.cluster.size() == 1 {
                Client::new(rig.client_config()).find_master().await.is_ok()
            } else {
                client.node_state_of(k).await.is_ok()
            }
        });
        if serves {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: n{k} neither refused nor served\n{}",
            rig.cluster.log(k)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A bit flipped in a TLog file of a stopped node of three (the master for even seeds, which
/// the others replace, a slave for odd ones): it refuses to start, naming the file; the
/// operator's repair (its home emptied, `arakoon -catchup-only` from a peer, started again)
/// brings it back level, and every acknowledged write reads back.
fn flip_in_a_nodes_tlog(seed: u64) -> Option<i32> {
    let test = "a_node_refusing_a_flipped_tlog_is_repaired_from_a_peer";
    let what = replay(seed, test);
    let mut rig = Rig::new(3, "tlog_max_entries = 20")?;
    for k in 0..3 {
        rig.cluster.start(k);
    }
    let master = wait_level(&rig, &what);
    let victim = if seed % 2 == 0 { master } else { (master + 1 + seed as usize / 2 % 2) % 3 };
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(rig.client_config(), format!("s{seed}-a"), stop.clone());
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    let (mut acked, _) = writers.join().unwrap();
    wait_level(&rig, &what);
    let status = rig.cluster.stop(victim);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{what}: n{victim} did not stop cleanly");
    let flip = rig.fs[victim]
        .flip_random_bit(Path::new(""), seed, is_tlog)
        .unwrap()
        .expect("the node wrote TLog files");
    let what = format!("{what}: n{victim} {flip:?}");
    // The others go on meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(rig.client_config(), format!("s{seed}-b"), stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let refused = start_damaged(&mut rig, victim, &what);
    stop.store(true, Ordering::Relaxed);
    acked.extend(writers.join().unwrap().0);
    let (status, log) =
        refused.unwrap_or_else(|| panic!("{what}: the node serves over a damaged TLog"));
    let code =
        status.code().unwrap_or_else(|| panic!("{what}: killed by a signal: {status}\n{log}"));
    assert!([48, 49, 50].contains(&code), "{what}: exit code {code}\n{log}");
    let name = flip.path.display().to_string();
    assert!(log.contains(&name), "{what}: the refusal does not name {name}\n{log}");
    // The repair: a lost disk's, as the refusal says.
    let home = rig.cluster.config.nodes[victim].home.clone();
    for entry in std::fs::read_dir(&home).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let (status, log) = rig.cluster.catchup_only(victim);
    assert!(status.success(), "{what}: catch-up failed: {status}\n{log}");
    rig.start_serving(victim, &what);
    wait_level(&rig, &what);
    check_acked(&rig, &acked, &what);
    Some(code)
}

#[test]
fn a_node_refusing_a_flipped_tlog_is_repaired_from_a_peer() {
    for seed in seeds() {
        match flip_in_a_nodes_tlog(seed) {
            Some(code) => eprintln!("seed {seed}: refused with exit {code}, repaired"),
            None => return,
        }
    }
}
