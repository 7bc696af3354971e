//! The operator of a tier-B run: a client host that asks nodes to collapse their TLog, as
//! `arakoon-admin collapse` does, with the real client's `collapse_tlogs` call
//! (`arakoon_node::client::head::request_collapse`). The nemesis hands it the schedule's
//! collapses as they fall due; it makes them one after the other and counts what they did.
//! It ends once the nemesis has no collapse left to give it.

use super::net::TurmoilNet;
use arakoon_node::client::head::request_collapse;
use arakoon_node::config::ClusterConfig;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a collapse request may take, virtual: a node that is down or cut off answers none.
const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// A collapse to ask for: the node and the sealed files to keep.
pub type CollapseRequest = (usize, u32);

/// What the collapses of a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollapseTally {
    /// Collapses asked for.
    pub requested: u64,
    /// Collapses that folded files into the node's head and removed them (the node announced
    /// steps and sent them all).
    pub collapsed: u64,
    /// Collapses the node answered with nothing to do (too few sealed files).
    pub nothing: u64,
    /// Collapses refused, cut, or unanswered in time (the node was down, or busy collapsing).
    pub failed: u64,
    /// Why the last failed one failed.
    pub last_failure: Option<String>,
}

/// The operator host's software: takes collapse requests from `requests` until it closes.
pub async fn operator(
    config: ClusterConfig,
    mut requests: mpsc::UnboundedReceiver<CollapseRequest>,
    tally: Rc<RefCell<CollapseTally>>,
) -> turmoil::Result {
    while let Some((node, keep)) = requests.recv().await {
        let n = &config.nodes[node];
        let addr = SocketAddr::new(n.ip, n.client_port);
        let answer = ask_collapse(&config.cluster_id, addr, keep).await;
        tally.borrow_mut().add(node, answer);
    }
    Ok(())
}

/// Asks the node at `addr` to collapse keeping `keep` sealed files, as `arakoon-admin collapse`
/// does: the steps it announced (0: nothing to collapse), or why it failed.
pub async fn ask_collapse(cluster_id: &str, addr: SocketAddr, keep: u32) -> Result<usize, String> {
    let keep = i32::try_from(keep).unwrap_or(i32::MAX);
    let mut on_step = |_: usize, _: i64| {};
    let asked = request_collapse(&TurmoilNet, addr, cluster_id, keep, false, &mut on_step);
    match tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), asked).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer in {REQUEST_TIMEOUT_MS} ms")),
    }
}

impl CollapseTally {
    /// Counts the answer of a collapse of node `node`.
    pub fn add(&mut self, node: usize, answer: Result<usize, String>) {
        self.requested += 1;
        match answer {
            Ok(0) => self.nothing += 1,
            Ok(_) => self.collapsed += 1,
            Err(e) => {
                self.failed += 1;
                self.last_failure = Some(format!("n{node}: {e}"));
            }
        }
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &CollapseTally) {
        self.requested += other.requested;
        self.collapsed += other.collapsed;
        self.nothing += other.nothing;
        self.failed += other.failed;
        if other.last_failure.is_some() {
            self.last_failure.clone_from(&other.last_failure);
        }
    }

    /// The tally in a few words, for a fault log.
    pub fn note(&self) -> String {
        let mut note = format!(
            "{} asked, {} collapsed, {} with nothing to do, {} failed",
            self.requested, self.collapsed, self.nothing, self.failed
        );
        if let Some(why) = &self.last_failure {
            note += &format!(" (last: {why})");
        }
        note
    }
}
