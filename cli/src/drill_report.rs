//! A drill run's report folder, the same on every tier: the histories (JSON lines, for
//! `arakoon-admin check`), the fault log, a summary (JSON) and a self-contained HTML timeline.
//!
//! Each tier's runner fills the one outcome type ([`Report`], `arakoon_sim::drill::DrillOutcome`) with what it saw (the simulator from its own state, the
//! sandbox by recording its clients and polling its nodes); the folder is written from that
//! alone, so the files and the timeline mean the same on every tier.
//!
//! ```text
//! <dir>/<drill>-seed<N>/history-kv.jsonl          single-key operations (check --model kv)
//!                      /history-sequences.jsonl   sequences and ranges (check --model multi-key)
//!                      /faults.log                "<ms>ms <what>" per line
//!                      /summary.json              verdict, seed, checks, replay command, counts
//!                      /timeline.html             client lanes, node lanes, fault bands
//!                      /trace.txt                 the simulator's trace (sim tier only)
//!                      /logs/<node>.log           the nodes' logs (sandbox tier only)
//! ```

use crate::exit::Exit;
use crate::output::Failure;
use std::path::{Path, PathBuf};

pub use arakoon_sim::drill::{last_master, DrillOutcome as Report};

/// Writes the folder for this seed under `dir` and returns it.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, Failure> {
    let folder = report.folder(dir);
    let io = |e: std::io::Error| {
        Failure::new(Exit::BadInput, format!("{}: cannot write the report: {e}", folder.display()))
    };
    std::fs::create_dir_all(&folder).map_err(io)?;
    if let Some((kv, seq)) = &report.histories {
        std::fs::write(folder.join("history-kv.jsonl"), kv).map_err(io)?;
        std::fs::write(folder.join("history-sequences.jsonl"), seq).map_err(io)?;
    }
    let faults: String = report.fault_log.iter().map(|(t, l)| format!("{t}ms {l}\n")).collect();
    std::fs::write(folder.join("faults.log"), faults).map_err(io)?;
    let text = serde_json::to_string_pretty(&report.summary()).unwrap_or_default();
    std::fs::write(folder.join("summary.json"), text).map_err(io)?;
    std::fs::write(folder.join("timeline.html"), crate::drill_timeline::html_page(report))
        .map_err(io)?;
    if !report.trace.is_empty() {
        std::fs::write(folder.join("trace.txt"), report.trace.join("\n") + "\n").map_err(io)?;
    }
    if !report.logs.is_empty() {
        std::fs::create_dir_all(folder.join("logs")).map_err(io)?;
        for (name, text) in &report.logs {
            std::fs::write(folder.join("logs").join(name), text).map_err(io)?;
        }
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arakoon_sim::drill::restarts_from_roles;

    fn roles(list: &[(u64, usize, &str)]) -> Vec<(u64, usize, String)> {
        list.iter().map(|(t, k, r)| (*t, *k, r.to_string())).collect()
    }

    #[test]
    fn a_restart_is_a_node_coming_back_from_down() {
        let r = roles(&[
            (0, 0, "slave"),
            (0, 1, "master"),
            (5, 1, "down"),
            (6, 0, "master"),
            (9, 1, "slave"),
            (12, 1, "down"),
        ]);
        assert_eq!(restarts_from_roles(&r), vec![(9, 1)]);
        assert_eq!(last_master(&r, 2), Some(0));
        assert_eq!(last_master(&r[..3], 2), None);
    }
}
