//! A client host: the real [`Client`] doing get, set, delete and test_and_set on a few keys,
//! every call and return recorded in virtual time in the tier-A [`Recorder`].
//!
//! Outcomes follow the client's contract, as tier A classifies its own: an answer is `ok` (a
//! get of an absent key answers not_found, which is `ok` with nil); a refusal that guarantees
//! nothing happened (not_found for a delete, not_master and no master found, which the client
//! only reports when no attempt may have reached a master) is `fail`; an update whose outcome the
//! client calls unknown (a timeout or a lost connection after sending, no_longer_master,
//! going_down) is `unknown`. Values are unique, so a read names the write it saw.
//!
//! After the random workload, the client waits until the cluster has been healed and settled,
//! then reads each of its share of the keys until a read succeeds: those reads enter the
//! history too, so a lost acknowledged write shows up as a stale final read.

use super::net::TurmoilNet;
use arakoon_chaos::history::{opt_value, str_value, Recorder, Space};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value};
use arakoon_node::client::{Client, ClientConfig, ClientError};
use arakoon_node::rc::Rc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

/// What one client does, all times virtual.
#[derive(Debug, Clone)]
pub struct Workload {
    pub client: usize,
    pub clients: usize,
    pub keys: usize,
    pub seed: u64,
    /// No new random operation starts after this.
    pub workload_end_ms: u64,
    /// When the final reads start (the cluster was healed before).
    pub final_reads_ms: u64,
    /// Final reads stop trying after this.
    pub final_reads_end_ms: u64,
    /// The longest pause between two operations.
    pub think_max_ms: u64,
}

/// What the clients did, besides the history.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientTally {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Keys whose final read succeeded: the value, and when that read was called (virtual µs).
    pub final_reads: BTreeMap<String, (Option<String>, u64)>,
    /// Acknowledged sets: key, value, when the answer came (virtual µs).
    pub acked_sets: Vec<(String, String, u64)>,
    /// Keys whose final read never succeeded.
    pub unread: Vec<String>,
}

/// Virtual µs since the simulation started.
pub fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

async fn sleep_until_ms(ms: u64) {
    let now = now_us() / 1000;
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

fn key(k: usize) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

/// One client's whole run.
pub async fn run_client(
    w: Workload,
    config: ClientConfig,
    history: std::rc::Rc<RefCell<Recorder>>,
    tally: std::rc::Rc<RefCell<ClientTally>>,
) -> turmoil::Result {
    let c = w.client;
    let mut rng =
        ChaCha8Rng::seed_from_u64(w.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut client = Client::with_network(config, TurmoilNet);
    let mut seen: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut op: u64 = 0;
    let record = |op: u64, outcome: Outcome, output: Option<Value>| {
        history.borrow_mut().done(c, op, now_us(), outcome, output);
        let mut t = tally.borrow_mut();
        match outcome {
            Outcome::Ok => t.ok += 1,
            Outcome::Fail => t.fail += 1,
            Outcome::Unknown => t.unknown += 1,
        }
    };
    loop {
        let pause = rng.gen_range(0..=w.think_max_ms);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if now_us() / 1000 >= w.workload_end_ms {
            break;
        }
        let k = key(rng.gen_range(0..w.keys.max(1)));
        let unique = |tag: &str| format!("c{c}-{op}{tag}").into_bytes();
        let call = |f: &str, value: Value| RawCall { f: f.into(), key: Some(str_value(&k)), value };
        match rng.gen_range(0..4) {
            0 => {
                history.borrow_mut().call(c, op, now_us(), Space::Kv, call("get", Value::Nil));
                let result = client.get(&k).await;
                let (outcome, output) = read_outcome(&result);
                if let Some(v) = read_value(&result) {
                    seen.insert(k.clone(), v);
                }
                record(op, outcome, output);
            }
            1 => {
                let v = unique("");
                history.borrow_mut().call(c, op, now_us(), Space::Kv, call("set", str_value(&v)));
                let result = client.set(&k, &v).await;
                if result.is_ok() {
                    let (key, value) = (String::from_utf8_lossy(&k), String::from_utf8_lossy(&v));
                    let acked = (key.into_owned(), value.into_owned(), now_us());
                    tally.borrow_mut().acked_sets.push(acked);
                    seen.insert(k.clone(), Some(v));
                }
                record(op, update_outcome(&result), None);
            }
            2 => {
                history.borrow_mut().call(c, op, now_us(), Space::Kv, call("delete", Value::Nil));
                let result = client.delete(&k).await;
                if result.is_ok() {
                    seen.insert(k.clone(), None);
                }
                record(op, update_outcome(&result), None);
            }
            _ => {
                let expected = seen.get(&k).cloned().flatten();
                let wanted = unique("t");
                let value = Value::List(vec![opt_value(expected.as_deref()), str_value(&wanted)]);
                history.borrow_mut().call(c, op, now_us(), Space::Kv, call("test_and_set", value));
                let result = client.test_and_set(&k, expected.as_deref(), Some(&wanted)).await;
                let output = match &result {
                    Ok(before) => {
                        let after = if *before == expected { Some(wanted) } else { before.clone() };
                        seen.insert(k.clone(), after);
                        Some(opt_value(before.as_deref()))
                    }
                    Err(_) => None,
                };
                record(op, update_outcome(&result), output);
            }
        }
        op += 1;
    }

    // Final reads of this client's share of the keys, once the cluster is whole again.
    sleep_until_ms(w.final_reads_ms).await;
    for k in (c..w.keys).step_by(w.clients.max(1)) {
        let k = key(k);
        let name = String::from_utf8_lossy(&k).into_owned();
        loop {
            if now_us() / 1000 >= w.final_reads_end_ms {
                tally.borrow_mut().unread.push(name);
                break;
            }
            let call = RawCall { f: "get".into(), key: Some(str_value(&k)), value: Value::Nil };
            let called_us = now_us();
            history.borrow_mut().call(c, op, called_us, Space::Kv, call);
            let result = client.get(&k).await;
            let (outcome, output) = read_outcome(&result);
            record(op, outcome, output);
            op += 1;
            if let Some(v) = read_value(&result) {
                let v = v.map(|v| String::from_utf8_lossy(&v).into_owned());
                tally.borrow_mut().final_reads.insert(name, (v, called_us));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The value a get saw: `Some(None)` for an absent key, `None` when it saw nothing.
fn read_value(result: &Result<Vec<u8>, ClientError>) -> Option<Option<Vec<u8>>> {
    match result {
        Ok(v) => Some(Some(v.clone())),
        Err(ClientError::Failed { rc: Rc::NotFound, .. }) => Some(None),
        Err(_) => None,
    }
}

fn read_outcome(result: &Result<Vec<u8>, ClientError>) -> (Outcome, Option<Value>) {
    match read_value(result) {
        Some(v) => (Outcome::Ok, Some(opt_value(v.as_deref()))),
        // A read changes nothing: whatever went wrong, it did not happen.
        None => (Outcome::Fail, None),
    }
}

fn update_outcome<T>(result: &Result<T, ClientError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(ClientError::Failed { rc: Rc::NoLongerMaster | Rc::GoingDown, .. }) => Outcome::Unknown,
        Err(ClientError::Failed { .. })
        | Err(ClientError::NoMaster(_))
        | Err(ClientError::Unexpected { .. }) => Outcome::Fail,
        Err(ClientError::Unknown(_)) => Outcome::Unknown,
    }
}
