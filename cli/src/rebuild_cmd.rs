//! `arakoon-admin rebuild`: a stopped node's store, rebuilt from its TLog
//! ([`arakoon_node::store_rebuild`] does it: a fresh store beside the old one, swapped in once
//! complete). This command shows what it will replace, asks, shows progress and reports.

use crate::exit::Exit;
use crate::node_files::{open_store, store_exists, NodeFilesArgs};
use crate::output::{confirm, progress_bar, Failure};
use arakoon_node::replay::ReplayError;
use arakoon_node::store::Store;
use arakoon_node::store_rebuild::{rebuild_store, RebuildStoreError, Rebuilt};
use arakoon_node::tlog::{self, FsDir};
use clap::Args;
use serde_json::json;
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
    let started = Instant::now();
    let bar = progress_bar(0, "replaying slots");
    let rebuilt =
        rebuild_store(&dir, &files.store, &files.cluster_id, files.last_is_committed, &mut |p| {
            if let Some(target) = p.target_i {
                bar.set_length(target + 1);
            }
            bar.set_position(p.applied_i.map_or(0, |i| i + 1));
        });
    bar.finish_and_clear();
    let Rebuilt { progress, keys } = rebuilt.map_err(rebuild_failure)?;
    let elapsed = started.elapsed().as_secs_f64();
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

/// The failure of a rebuild, with the exit code of what failed.
fn rebuild_failure(e: RebuildStoreError) -> Failure {
    match e {
        RebuildStoreError::NotADirectoryName { .. } => Failure::new(Exit::Usage, e.to_string()),
        RebuildStoreError::Io { .. } | RebuildStoreError::Store(_) => {
            Failure::new(Exit::Store, e.to_string())
        }
        RebuildStoreError::Head(_) => Failure::new(Exit::Head, e.to_string()),
        RebuildStoreError::Replay(ReplayError::Tlog(e)) => crate::output::tlog_failure(e),
        RebuildStoreError::Replay(other) => Failure::new(other.exit_code(), other.to_string()),
    }
}
