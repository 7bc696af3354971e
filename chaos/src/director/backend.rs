//! What a tier does for the director: show the cluster, apply a resolved fault with the tier's
//! own primitives, say whether a condition holds.

use super::{ClusterView, Command, Director, Input, Resolved};
use crate::drill::Condition;
use std::future::Future;
use std::sync::Arc;

/// Why a tier could not apply a fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The drill should have been refused when it was read for this tier.
    #[error("the {tier} tier cannot apply {fault} (the drill should have been refused when it was read for this tier)")]
    Unsupported { tier: &'static str, fault: &'static str },
    /// The tier tried and failed (a node that would not start, a control request refused): the
    /// tier's own typed error (the sandbox's `StepError`), shared so that the director's input
    /// stays cloneable.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

/// One tier's primitives. The methods are `async` because two tiers ask the nodes over the
/// network; the simulator's answer at once.
pub trait Backend {
    /// The cluster now: which nodes run, which are paused, who holds the lease.
    fn view(&mut self) -> impl Future<Output = ClusterView>;
    /// Applies `fault` to the nodes it was resolved to; returns a note for the log (what it
    /// did beyond the targets, e.g. which file a bitflip struck), empty if nothing to say.
    fn apply(&mut self, fault: &Resolved) -> impl Future<Output = Result<String, BackendError>>;
    /// Whether `condition` holds now. `begin` is set on the first look of a `wait_until`: an
    /// `all_in_sync` then notes what was committed, which every node must have applied.
    fn holds(&mut self, condition: Condition, begin: bool) -> impl Future<Output = bool>;
}

/// The output of a future that is ready at once (a backend whose methods never wait, as the
/// simulator's), or `None` if it would have to wait.
pub fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Plays `director` to its end against `backend`: the one step loop of every tier that waits in
/// real or simulated time (the sandbox, turmoil). `now_ms` reads the drill's clock, `sleep_until`
/// waits until a drill time, and `log` takes the director's new log lines after each step.
pub async fn drive<B: Backend, S: Future<Output = ()>>(
    director: &mut Director,
    backend: &mut B,
    mut now_ms: impl FnMut() -> u64,
    mut sleep_until: impl FnMut(u64) -> S,
    mut log: impl FnMut(&[(u64, String)]),
) {
    let mut input = Input::Tick;
    loop {
        let command = director.handle(now_ms(), input);
        log(director.new_lines());
        input = match command {
            Command::WaitUntil(ms) => {
                sleep_until(ms).await;
                Input::Tick
            }
            Command::Observe => Input::View(backend.view().await),
            Command::Apply(fault) => Input::Applied(backend.apply(&fault).await),
            Command::Check { condition, begin } => {
                Input::Holds(backend.holds(condition, begin).await)
            }
            Command::Done => return,
        };
    }
}
