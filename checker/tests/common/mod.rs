//! What the integration tests share: where the recorded histories are, and reading and checking
//! a file by model name.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use arakoon_checker::edn::read_one;
use arakoon_checker::import::{read, Format};
use arakoon_checker::{check_raw, Budget, Checked, ModelKind};
use std::path::{Path, PathBuf};

/// `../shared/histories` relative to the repository root, or `None` (with the message every
/// such test prints) when it is absent.
pub fn histories() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: ../shared/histories not found (looked at {})", dir.display());
        None
    }
}

/// The files of `dir` whose name ends with `ext`, sorted by name.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{ext} file in {}", dir.display());
    files
}

/// Checks the file at `path` against `model`, from `initial` (EDN text; `None`: the default).
pub fn check_file(
    path: &Path,
    model: ModelKind,
    initial: Option<&str>,
    budget: &Budget,
) -> Checked {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw =
        read(&text, Format::detect(&text)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let initial = initial.map(|i| read_one(i).expect("a valid initial value"));
    check_raw(model, initial.as_ref(), &raw, budget)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A budget without shrinking, for verdicts only.
pub fn verdict_only() -> Budget {
    Budget { shrink: false, ..Budget::default() }
}
