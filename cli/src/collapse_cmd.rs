//! `arakoon-admin collapse`: fold a stopped node's old TLog files into its head and remove them.
//!
//! The node must be stopped (its store is opened first, which fails while a node holds it; the
//! running node collapses with `arakoon-admin client collapse-tlogs`). Collapse keeps the open
//! file and the last `--keep` sealed ones; every older file is replayed into the head
//! (`<tlog_dir>/head.db`), the head is flushed, and only then are the files removed, lowest
//! first. Nothing is lost that the durable head does not hold, so no `--yes` is asked; the files
//! removed are printed.

use crate::exit::Exit;
use crate::node_files::{load_config, node_index};
use crate::output::{progress_bar, say, Failure};
use arakoon_node::head::{self, Step};
use arakoon_node::server::startup::store_path;
use arakoon_node::store::{SledStore, StoreError};
use arakoon_node::tlog::FsDir;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  arakoon-admin collapse --node n0 -config cluster.ini --keep 2\n  \
                        arakoon-admin collapse --node n0 -config cluster.ini --keep 0 --json\n\n\
                        The head is <tlog_dir>/head.db; it is made durable before any file is \
                        removed. On a running node use `arakoon-admin client collapse-tlogs \
                        --keep N`.\n\n\
                        Exit codes: 0 collapsed (or nothing to collapse); 3 bad configuration or \
                        node name; 41 the head does not reach the log (catch the node up); 43 the \
                        TLog directory is unusable; 45 the node is running; 47 the head is \
                        unusable; 48-50 a damaged TLog (see `arakoon-admin tlog verify`)."
)]
pub struct CollapseArgs {
    /// The (stopped) node whose TLog to collapse.
    #[arg(long, value_name = "NAME")]
    node: String,
    /// The cluster's INI file; `-config FILE` works too, as for arakoon.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: PathBuf,
    /// Sealed TLog files to keep besides the open one.
    #[arg(long, value_name = "N")]
    keep: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CollapseArgs) -> Result<i32, Failure> {
    let config = load_config(&args.config)?;
    let me = node_index(&config, &args.config, &args.node)?;
    let node = &config.nodes[me];
    let store = store_path(node);
    if store.exists() {
        match SledStore::open(&store, &config.cluster_id) {
            Ok(_) | Err(StoreError::WrongCluster { .. }) | Err(StoreError::Corrupt { .. }) => {}
            Err(e) => {
                return Err(Failure::new(
                    Exit::Store,
                    format!(
                        "{e}; is {} running? stop it first, or collapse it online with \
                         `arakoon-admin client collapse-tlogs --keep {}`",
                        node.name, args.keep
                    ),
                ))
            }
        }
    }
    let dir = FsDir::open(&node.tlog_dir).map_err(|e| {
        Failure::new(
            Exit::TlogDir,
            format!("{}: cannot open the TLog directory: {e}", node.tlog_dir.display()),
        )
    })?;
    let plan = head::plan(&dir, args.keep).map_err(crate::output::tlog_failure)?;
    let head_path = head::head_path(&node.tlog_dir);
    let Some((first_kept, first_i)) = plan.first_kept.clone() else {
        if args.json {
            println!("{}", json!({ "removed": [], "head": head_path.display().to_string() }));
        } else {
            println!(
                "nothing to collapse: {} holds at most {} sealed file(s) besides the open one",
                node.tlog_dir.display(),
                args.keep
            );
        }
        return Ok(0);
    };
    let started = Instant::now();
    let bar = progress_bar(first_i, "folding slots into the head");
    let result =
        head::collapse(&dir, &head_path, &config.cluster_id, args.keep, None, &mut |s| match s {
            Step::Folding { head_i, .. } => bar.set_position(head_i.map_or(0, |i| i + 1)),
            Step::Folded { head_i, slots } => {
                bar.set_position(head_i + 1);
                if !args.json {
                    say(
                        &bar,
                        format!(
                            "head at {}: {slots} slots folded, up to i={head_i}",
                            head_path.display()
                        ),
                    );
                }
            }
            Step::Removed(name) if !args.json => say(&bar, format!("removed {name}")),
            _ => {}
        });
    bar.finish_and_clear();
    let report = result.map_err(|e| Failure::new(e.exit_code(), e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "head": head_path.display().to_string(), "head_i": report.head_i,
                "folded": report.folded, "removed": report.removed,
                "first_kept": first_kept.name(), "log_first_i": report.log_first_i,
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "collapsed {}: {} file(s) removed, the log starts at {} (i={}); head at i={} \
             ({seconds:.2} s)",
            node.tlog_dir.display(),
            report.removed.len(),
            first_kept.name(),
            first_i,
            report.head_i.map_or("-".into(), |i| i.to_string()),
        );
    }
    Ok(0)
}
