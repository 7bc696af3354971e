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
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

const REDRAWS_PER_S_MAX: u64 = 10;

/// What the display shows of the seed that runs (or, on the simulator, that ran last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub drill: String,
    pub seed: u64,
    /// Since the seed started: wall-clock on the sandbox, simulated on the simulator.
    pub elapsed_ms: u64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub faults: usize,
    pub latest_fault: Option<String>,
    /// The node serving as master, if one is.
    pub master: Option<String>,
    /// The seed is over (the simulator shows each seed once it ends).
    pub done: bool,
}

impl Status {
    /// The first line: which seed of which drill.
    pub fn title(&self) -> String {
        let done = if self.done { ", done" } else { "" };
        format!("{} seed {}{done}", self.drill, self.seed)
    }

    /// The second line, longest part last (a narrow terminal cuts the end).
    pub fn line(&self) -> String {
        let latest =
            self.latest_fault.as_deref().map_or(String::new(), |f| format!(", latest: {f}"));
        format!(
            "{:.1}s | ops {} ok, {} failed, {} unknown | master {} | faults {}{latest}",
            self.elapsed_ms as f64 / 1000.0,
            self.ops_ok,
            self.ops_failed,
            self.ops_unknown,
            self.master.as_deref().unwrap_or("none"),
            self.faults,
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_time_operations_faults_and_master() {
        let s = Status {
            drill: "kill".into(),
            seed: 3,
            elapsed_ms: 12_345,
            ops_ok: 10,
            ops_failed: 2,
            ops_unknown: 1,
            faults: 2,
            latest_fault: Some("kill master (n1)".into()),
            master: Some("n0".into()),
            done: false,
        };
        assert_eq!(s.title(), "kill seed 3");
        assert_eq!(
            s.line(),
            "12.3s | ops 10 ok, 2 failed, 1 unknown | master n0 | faults 2, latest: kill master (n1)"
        );
        let none = Status { master: None, latest_fault: None, done: true, ..s };
        assert_eq!(none.title(), "kill seed 3, done");
        assert!(none.line().ends_with("master none | faults 2"), "{}", none.line());
    }
}
