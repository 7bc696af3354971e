//! `arakoon-admin rebuild`: a stopped node's store, rebuilt from its TLog.
//!
//! The store is derived from the TLog, so a store that is damaged, ahead of its log or of
//! another cluster is rebuilt by replaying the log into a fresh one. The fresh store is built in
//! a directory beside the old one (same file system) and swapped in with one atomic
//! `renameat2(RENAME_EXCHANGE)` only once it is complete and flushed: a crash or a failure
//! midway leaves the old store exactly as it was, plus a `*.rebuild-PID` directory to delete.

use crate::exit::Exit;
use crate::node_files::{open_store, store_exists, NodeFilesArgs};
use crate::output::{confirm, progress_bar, Failure};
use arakoon_node::replay::{self, ReplayError};
use arakoon_node::store::{SledStore, Store};
use arakoon_node::tlog::{self, FsDir};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  arakoon-admin rebuild --node n0 -config cluster.ini\n  \
                        arakoon-admin rebuild --tlog-dir /srv/n0/tlogs --store /srv/n0/store \
                        --cluster-id demo --yes\n\n\
                        Exit codes: 0 rebuilt; 1 declined or --yes needed; 43 TLog directory \
                        unusable; 45 store in use or unusable; 48-50 a damaged TLog (see \
                        `arakoon-admin tlog verify`).")]
pub struct RebuildArgs {
    #[command(flatten)]
    files: NodeFilesArgs,
    /// Replace an existing store without asking.
    #[arg(long)]
    yes: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RebuildArgs) -> Result<i32, Failure> {
    let files = args.files.resolve(true)?;
    let dir = FsDir::open(files.tlog_dir()).map_err(|e| {
        Failure::new(
            Exit::TlogDir,
            format!("{}: cannot open the TLog directory: {e}", files.tlog_dir().display()),
        )
    })?;
    let log_last = tlog::last_i(&dir).map_err(crate::output::tlog_failure)?;
    if store_exists(&files.store) {
        // Opening it proves no node holds it (sled locks its directory).
        let about = match open_store(&files.store, &files.cluster_id)? {
            Ok(old) => format!(
                "applied i={}, {} keys",
                old.applied().map_or("-".into(), |i| i.to_string()),
                old.key_count().unwrap_or(0)
            ),
            Err(found) => format!("it belongs to cluster {found:?}"),
        };
        let notice = format!(
            "will replace the store at {} ({about}) with one rebuilt from the TLog in {} \
             (last i {})",
            files.store.display(),
            files.tlog_dir().display(),
            log_last.map_or("-".into(), |i| i.to_string())
        );
        // With --json, stdout holds the report alone.
        if args.json {
            eprintln!("{notice}");
        } else {
            println!("{notice}");
        }
        if !args.yes && !confirm("replace the store?")? {
            println!("nothing changed");
            return Ok(Exit::Declined.code());
        }
    }
    let fresh = sibling(&files.store, &format!("rebuild-{}", std::process::id()))?;
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| io_failure(&fresh, "remove", e))?;
    }
    let started = Instant::now();
    let built = build(&dir, &fresh, &files.cluster_id, files.last_is_committed);
    let (progress, keys) = match built {
        Ok(done) => done,
        Err(failure) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(failure);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    swap_in(&fresh, &files.store)?;
    let rate = progress.updates as f64 / elapsed.max(1e-9);
    let applied = progress.applied_i;
    if args.json {
        println!(
            "{}",
            json!({
                "store": files.store.display().to_string(), "applied": applied,
                "values": progress.values, "updates": progress.updates, "keys": keys,
                "seconds": elapsed, "updates_per_second": rate,
            })
        );
    } else {
        println!(
            "rebuilt {}: {} slots ({} updates) replayed up to i={} in {elapsed:.2} s \
             ({rate:.0} updates/s); {keys} keys",
            files.store.display(),
            progress.values,
            progress.updates,
            applied.map_or("-".into(), |i| i.to_string()),
        );
    }
    Ok(0)
}

/// `store` with `.suffix` appended to its last component (a directory beside it).
fn sibling(store: &Path, suffix: &str) -> Result<PathBuf, Failure> {
    let name = store.file_name().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            format!("{}: the store must be a directory name", store.display()),
        )
    })?;
    let mut name = name.to_os_string();
    name.push(format!(".{suffix}"));
    Ok(store.with_file_name(name))
}

fn io_failure(path: &Path, what: &str, e: std::io::Error) -> Failure {
    Failure::new(Exit::Store, format!("{}: cannot {what}: {e}", path.display()))
}

/// Replays the whole TLog into a new store at `path`; returns the final progress and key count.
fn build(
    dir: &FsDir,
    path: &Path,
    cluster_id: &str,
    last_is_committed: bool,
) -> Result<(replay::Progress, u64), Failure> {
    // A collapsed log starts after its head: the fresh store starts as a copy of the head.
    let head_path = arakoon_node::head::head_path(dir.root());
    let mut store = if head_path.is_dir() {
        let head = SledStore::open(&head_path, cluster_id)
            .map_err(|e| Failure::new(Exit::Head, format!("head: {e}")))?;
        SledStore::import(path, cluster_id, head.export())
    } else {
        SledStore::open(path, cluster_id)
    }
    .map_err(|e| Failure::new(Exit::Store, e.to_string()))?;
    let bar = progress_bar(0, "replaying slots");
    let result = replay::replay(dir, &mut store, last_is_committed, &mut |p| {
        if let Some(target) = p.target_i {
            bar.set_length(target + 1);
        }
        bar.set_position(p.applied_i.map_or(0, |i| i + 1));
    });
    bar.finish_and_clear();
    let progress = result.map_err(|e| match e {
        ReplayError::Tlog(e) => crate::output::tlog_failure(e),
        other => Failure::new(other.exit_code(), other.to_string()),
    })?;
    store.flush().map_err(|e| Failure::new(Exit::Store, e.to_string()))?;
    let keys = store.key_count().map_err(|e| Failure::new(Exit::Store, e.to_string()))?;
    Ok((progress, keys))
}

/// Puts the complete store at `fresh` in place of `store`, atomically, and deletes the old one.
fn swap_in(fresh: &Path, store: &Path) -> Result<(), Failure> {
    if !store.exists() {
        std::fs::rename(fresh, store).map_err(|e| io_failure(store, "move the new store in", e))?;
    } else {
        // Atomic where the file system has RENAME_EXCHANGE; otherwise two renames, the old
        // store kept until the new one is in place.
        arakoon_node::head::exchange(fresh, store)
            .map_err(|e| io_failure(store, "swap in the rebuilt store", e))?;
        // `fresh` now holds the old store.
        std::fs::remove_dir_all(fresh).map_err(|e| io_failure(fresh, "remove the old store", e))?;
    }
    if let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The renames are durable once the directory is synced.
        std::fs::File::open(parent).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}
