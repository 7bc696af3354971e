//! A drill run's report folder, the same on every tier: the histories (JSON lines, for
//! `arakoon-admin check`), the fault log, a summary (JSON) and a self-contained HTML timeline.
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

use super::DrillOutcome;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A report folder that could not be written.
#[derive(Debug, Error)]
#[error("{}: cannot write the report: {source}", folder.display())]
pub struct FolderError {
    /// The seed's folder (the file that failed is in it).
    pub folder: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes the folder for this seed under `dir` and returns it.
pub fn write_folder(report: &DrillOutcome, dir: &Path) -> Result<PathBuf, FolderError> {
    let folder = report.folder(dir);
    let io = |source: std::io::Error| FolderError { folder: folder.clone(), source };
    std::fs::create_dir_all(&folder).map_err(io)?;
    if let Some((kv, seq)) = &report.histories {
        std::fs::write(folder.join("history-kv.jsonl"), kv).map_err(io)?;
        std::fs::write(folder.join("history-sequences.jsonl"), seq).map_err(io)?;
    }
    let faults: String = report.fault_log.iter().map(|(t, l)| format!("{t}ms {l}\n")).collect();
    std::fs::write(folder.join("faults.log"), faults).map_err(io)?;
    let text = serde_json::to_string_pretty(&report.summary()).unwrap_or_default();
    std::fs::write(folder.join("summary.json"), text).map_err(io)?;
    std::fs::write(folder.join("timeline.html"), super::timeline::html_page(report)).map_err(io)?;
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

    #[test]
    fn the_folder_holds_histories_faults_summary_timeline_and_logs() {
        let mut report = crate::outcome::timeline::tests::report();
        report.histories = Some(("kv\n".into(), "seq\n".into()));
        report.logs = vec![("n0.log".into(), "started\n".into())];
        let dir = tempfile::tempdir().unwrap();
        let folder = write_folder(&report, dir.path()).unwrap();
        assert_eq!(folder, dir.path().join("t-seed7"));
        let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
        assert_eq!(read("history-kv.jsonl"), "kv\n");
        assert_eq!(read("history-sequences.jsonl"), "seq\n");
        assert_eq!(read("faults.log"), "100ms kill n0 <&>\n");
        assert_eq!(read("logs/n0.log"), "started\n");
        assert!(read("timeline.html").starts_with("<!doctype html>"));
        let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
        assert_eq!(summary["seed"], 7);
        assert_eq!(summary["tier"], "sandbox");
        assert!(!folder.join("trace.txt").exists(), "no trace was kept");
    }

    #[test]
    fn a_folder_that_cannot_be_made_names_it() {
        let report = crate::outcome::timeline::tests::report();
        let file = tempfile::NamedTempFile::new().unwrap();
        let e = write_folder(&report, file.path()).unwrap_err();
        assert_eq!(e.folder, file.path().join("t-seed7"));
        assert!(e.to_string().contains("cannot write the report"), "{e}");
    }
}
