//! What a drill in progress shows to whoever watches it: the [`Status`] of the seed that runs,
//! and each fault as it is applied. The runner of a tier reports through a [`Watch`]; the CLI's
//! live display implements it (a redrawn status on a terminal, plain lines off one), a test can
//! simply collect what it is told.

/// The state of the seed that runs (or, on the simulator, that ran last).
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

/// Where a running drill reports; called from the run's tasks, so shared across threads.
pub trait Watch: Send + Sync {
    /// A step did something at `at_ms` of the seed (a fault applied, a background fault ended).
    fn fault(&self, at_ms: u64, what: &str);
    /// The latest status; called a few times a second while a sandbox seed runs.
    fn status(&self, status: &Status);
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
