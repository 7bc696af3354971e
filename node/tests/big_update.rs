//! No legal request stops elections (issue 15, item 2), on real processes: with a 1 s lease, a
//! 24 MiB sequence (under the default 32 MiB buffer limit) once lapsed the master's lease while
//! it was shipped, and every new master proposed it again: elections without end and a TLog
//! growing by 24 MiB a second. Now the update is refused at admission with bad_input and a
//! message naming the limit, the master stays, and the TLogs do not grow; an update the lease
//! can carry is committed once, and the master stays too.

mod harness;

use arakoon_node::rc::Rc;
use arakoon_node::value::Update;
use std::path::Path;
use std::time::{Duration, Instant};

/// The bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A sequence of `n` sets of 1 MiB each.
fn sequence(n: usize, tag: u8) -> Vec<Update> {
    (0..n).map(|k| Update::Set { key: vec![tag, k as u8], value: vec![tag; 1 << 20] }).collect()
}

/// Asks every `step` for `within` who is master; panics at the first other answer.
async fn master_stays(cluster: &harness::Cluster, master: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut c = cluster.client();
    while Instant::now() < deadline {
        let now = c.who_master().await.expect("who_master");
        assert_eq!(now.as_deref(), Some(master), "the master changed\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_the_lease_cannot_carry_is_refused_and_elections_stop_not() {
    let mut cluster = harness::cluster(3, 1000, "");
    cluster.start_all();
    let m = cluster.wait_for_master(Duration::from_secs(20)).await;
    let master = format!("n{m}");
    assert!(
        cluster.log(0).contains("updates above 16777216 bytes are refused with bad_input"),
        "the start-up check warns that the lease lowers the buffer limit\n{}",
        cluster.log(0)
    );
    let homes: Vec<_> = cluster.config.nodes.iter().map(|n| n.home.clone()).collect();
    let before: Vec<u64> = homes.iter().map(|h| dir_bytes(h)).collect();

    let mut c = cluster.client();
    let e = c.sequence(sequence(24, 1), false).await.unwrap_err();
    assert_eq!(e.rc(), Some(Rc::BadInput), "{e}");
    assert!(e.to_string().contains("> 16777216") && e.to_string().contains("link_bytes_per_s"));
    master_stays(&cluster, &master, Duration::from_secs(5)).await;
    for (k, h) in homes.iter().enumerate() {
        let grown = dir_bytes(h).saturating_sub(before[k]);
        assert!(grown < 4 << 20, "n{k} grew by {grown} bytes for a refused update");
    }

    // What the lease can carry is committed once, and the master stays.
    let before: Vec<u64> = homes.iter().map(|h| dir_bytes(h)).collect();
    if let Err(e) = c.sequence(sequence(2, 2), false).await {
        panic!("a 2 MiB sequence fits a 1 s lease: {e}\n{}", cluster.logs());
    }
    assert_eq!(c.get(&[2, 1]).await.unwrap().len(), 1 << 20);
    master_stays(&cluster, &master, Duration::from_secs(5)).await;
    for (k, h) in homes.iter().enumerate() {
        let grown = dir_bytes(h).saturating_sub(before[k]);
        // The TLog entry and the store's copy, not one per election.
        assert!(grown < 16 << 20, "n{k} grew by {grown} bytes for one 2 MiB update");
    }
}
