//! A running node catches up by itself from peers that collapsed the slots it needs: it fetches a
//! peer's head (`get_db`), adopts it as its head and store, restarts its TLog after it, fetches
//! the rest and rejoins, with no operator action. Real `arakoon` processes on loopback, real sled
//! stores, real fsync.

mod harness;

use arakoon_node::client::head::request_collapse;
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::server::env::TokioNet;
use arakoon_node::store::{Range, SledStore, Store};
use arakoon_node::tlog::FsDir;
use std::time::{Duration, Instant};

const KEYS: u32 = 1200;

fn key(k: u32) -> Vec<u8> {
    format!("key{k:05}").into_bytes()
}

fn value(k: u32, round: u32) -> Vec<u8> {
    format!("value-{k}-{round}-{}", "x".repeat((k % 40) as usize)).into_bytes()
}

fn tlog_files(dir: &std::path::Path) -> Vec<String> {
    let files = arakoon_node::tlog::list_files(&FsDir::open(dir).unwrap()).unwrap();
    files.iter().map(|f| f.name()).collect()
}

/// The slot node `k`'s store has applied (`get_txid`), if it answers.
async fn applied(cluster: &harness::Cluster, k: usize) -> Option<u64> {
    match cluster.client().ask(k, &Request::GetTxid).await {
        Ok(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) => Some(i),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_adopts_a_collapsed_peers_head_and_becomes_level_by_itself() {
    let mut cluster = harness::cluster(3, 1000, "tlog_max_entries = 100");
    cluster.start_all();
    let master = cluster.wait_for_master(Duration::from_secs(30)).await;
    let behind = (master + 1) % 3;
    let mut c = cluster.client();
    for k in 0..50 {
        c.set(&key(k), &value(k, 0)).await.unwrap();
    }
    assert_eq!(cluster.stop(behind).map(|s| s.code()), Some(Some(0)), "{}", cluster.logs());
    let behind_next = {
        let store = cluster.config.nodes[behind].home.join("store");
        SledStore::open(&store, &cluster.config.cluster_id).unwrap().next_i()
    };

    // Many slots while it is down, over a dozen TLog files: sets, overwrites and deletes.
    for k in 0..KEYS {
        c.set(&key(k), &value(k, 1)).await.unwrap();
    }
    for k in (0..KEYS).step_by(7) {
        c.delete(&key(k)).await.unwrap();
    }
    for k in (0..KEYS).step_by(5) {
        c.set(&key(k), &value(k, 2)).await.unwrap();
    }
    // The others collapse online, keeping one sealed file: the slots the stopped node needs
    // next are folded into their heads.
    for k in (0..3).filter(|k| *k != behind) {
        let tlog_dir = &cluster.config.nodes[k].tlog_dir;
        let before = tlog_files(tlog_dir);
        assert!(before.len() >= 15, "n{k}: {before:?}");
        let id = &cluster.config.cluster_id;
        let steps =
            request_collapse(&TokioNet, cluster.client_addr(k), id, 1, false, &mut |_, _| {})
                .await
                .unwrap();
        assert!(steps >= 10, "n{k}: {steps} steps");
        let after = tlog_files(tlog_dir);
        assert!(after.len() <= 3 && after[0] != "000.tlog", "n{k}: {after:?}");
        let start = arakoon_node::head::log_start(&FsDir::open(tlog_dir).unwrap()).unwrap();
        let first_i = start.and_then(|s| s.first_i).expect("a log after the collapse");
        assert!(first_i > behind_next + 500, "n{k}'s log starts at {first_i}: too early");
    }

    // Restarted, with no operator action: it must fetch a head to get level.
    cluster.start(behind);
    for k in 0..10 {
        c.set(&key(k), &value(k, 3)).await.unwrap();
    }
    let target = applied(&cluster, master).await.expect("the master answers get_txid");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if applied(&cluster, behind).await.is_some_and(|i| i >= target) {
            break;
        }
        assert!(Instant::now() < deadline, "n{behind} is not level\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cluster.log(behind);
    assert!(log.contains("fetching its head"), "{log}");
    assert!(log.contains("adopted a peer's head"), "{log}");
    let behind_tlog = &cluster.config.nodes[behind].tlog_dir;
    assert!(behind_tlog.join("head.db").is_dir());
    assert!(!tlog_files(behind_tlog).contains(&"000.tlog".to_string()));
    // It takes part again: a write the master commits with it.
    c.set(b"after", b"level").await.unwrap();

    // Every node holds the same data: stop them all and compare the stores.
    let last_write = applied(&cluster, master).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 0..3 {
        while applied(&cluster, k).await.is_none_or(|i| i < last_write) {
            assert!(Instant::now() < deadline, "n{k} behind {last_write}\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for k in 0..3 {
        assert_eq!(cluster.stop(k).map(|s| s.code()), Some(Some(0)), "n{k}\n{}", cluster.logs());
    }
    let dump = |k: usize| {
        let path = cluster.config.nodes[k].home.join("store");
        let store = SledStore::open(&path, &cluster.config.cluster_id).unwrap();
        assert!(store.applied().is_some_and(|i| i >= last_write), "n{k}");
        (store.key_count().unwrap(), store.range_entries(&Range::default()).unwrap())
    };
    let reference = dump(master);
    // 1200 keys, 172 deleted (every 7th), 35 of those set again (every 35th) and key 7 after the
    // restart, and "after".
    assert_eq!(reference.0, 1200 - 172 + 35 + 1 + 1);
    for k in (0..3).filter(|k| *k != master) {
        let other = dump(k);
        assert_eq!(other.0, reference.0, "n{k}'s key count");
        assert!(other.1 == reference.1, "n{k}'s data differs from the master's");
    }
}
