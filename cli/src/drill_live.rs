//! The live display of `drill run`: on a terminal, a status redrawn under the output
//! (seeds done, the drill time, operations ok / failed / unknown so far, faults applied with the
//! latest one, the current master); off a terminal (CI, a pipe), plain lines instead of a
//! redraw: one per fault applied, and the per-seed verdict lines the runner prints anyway.
//!
//! The sandbox feeds it in real time from the run; the simulator, seed by seed (a seed is over
//! long before a person could read its progress). The terminal is redrawn at most
//! `REDRAWS_PER_S_MAX` times a second however often the status changes, so a fast tier is not
//! slowed by its display.

use crate::output::say;
pub use arakoon_chaos::watch::Status;
use arakoon_chaos::watch::Watch;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

const REDRAWS_PER_S_MAX: u64 = 10;

/// The display; cheap to clone into the tasks of a run.
#[derive(Clone)]
pub struct Live {
    bar: ProgressBar,
}

impl Live {
    /// A display for `seeds` seeds in all.
    pub fn new(seeds: u64) -> Live {
        // Styled before it can draw; `wide_msg` cuts the status to the terminal's width.
        let bar = ProgressBar::with_draw_target(Some(seeds), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:12}] {pos}/{len} {prefix}\n  {wide_msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(REDRAWS_PER_S_MAX as u8));
            // The spinner turns even while the status stands still (a long wait_until).
            bar.enable_steady_tick(Duration::from_millis(1000 / REDRAWS_PER_S_MAX));
        }
        Live { bar }
    }

    /// Whether the display redraws (a terminal) or prints plain lines.
    pub fn is_terminal(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// A line above the status (on stdout off a terminal).
    pub fn say(&self, line: impl Into<String>) {
        say(&self.bar, line);
    }

    /// A fault was applied at `at_ms` of the seed: a plain line off a terminal; on one, the
    /// status shows it.
    pub fn fault(&self, at_ms: u64, what: &str) {
        if !self.is_terminal() {
            println!("  {at_ms:>6}ms {what}");
        }
    }

    /// The latest status (the next redraw shows it; nothing off a terminal).
    pub fn status(&self, status: &Status) {
        if self.is_terminal() {
            self.bar.set_prefix(status.title());
            self.bar.set_message(status.line());
        }
    }

    pub fn seed_done(&self) {
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A sandbox seed reports to the display as it runs.
impl Watch for Live {
    fn fault(&self, at_ms: u64, what: &str) {
        Live::fault(self, at_ms, what);
    }

    fn status(&self, status: &Status) {
        Live::status(self, status);
    }
}
