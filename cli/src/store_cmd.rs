//! `arakoon-admin store ...`: look inside a stopped node's store and check it against its TLog.
//!
//! The store is derived from the TLog, so the questions an operator asks are: what does it hold
//! (`dump`), and does it agree with its log and its cluster (`verify`)? A store behind its log
//! is harmless (the node replays on start) but says the node did not stop cleanly or is a
//! copy; one ahead of its log, or of another cluster, must be rebuilt.

use crate::exit::Exit;
use crate::node_files::{open_own_store, open_store, NodeFiles, NodeFilesArgs};
use crate::output::{escape, tlog_failure, Failure};
use arakoon_node::head::RestoreError;
use arakoon_node::store::verify::{self, Standing};
use arakoon_node::store::{self, SledStore, Store};
use arakoon_node::tlog::{self, FsDir};
use clap::{Args, Subcommand};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Print a stopped node's store: applied i, cluster id, key count, master, then every key
    /// and value (internal keys are not shown).
    ///
    /// Binary bytes are printed as \xNN. The node must be stopped: a store is open in one
    /// process at a time.
    #[command(
        after_help = "Examples:\n  arakoon-admin store dump --node n0 -config cluster.ini\n  \
                            arakoon-admin store dump --store /var/lib/arakoon/n0/store \
                            --cluster-id demo --json"
    )]
    Dump(DumpArgs),
    /// Check a stopped node's store against its TLog and its cluster: applied i against the
    /// log's last committed i, the cluster id against the configuration, the key count against
    /// the keys it holds.
    ///
    /// Exit code 0 when they agree; otherwise the code of the first disagreement (45 another
    /// cluster or a wrong key count, 40 store ahead of the TLog, 41 the TLog lacks the entries
    /// the store needs next, 42 store behind the TLog), with what to do about it.
    #[command(
        after_help = "Examples:\n  arakoon-admin store verify --node n0 -config cluster.ini\n  \
                            arakoon-admin store verify --store s --tlog-dir t --cluster-id demo \
                            --json"
    )]
    Verify(VerifyArgs),
    /// Restore a stopped node from a file saved by get_db (Arakoon's downloadDb): the file's
    /// state becomes the node's head and store, and its TLog restarts after it; on start the
    /// node catches up the rest from its peers.
    ///
    /// The file is checked whole first (cluster id, framing, pair count, slot). A node that has
    /// a store, a head or TLog files is left alone unless --yes is given: replacing them forgets
    /// the node's log, as wiping it does, so restore one node at a time.
    #[command(
        after_help = "Examples:\n  arakoon-admin store restore n1.db --node n1 -config cluster.ini\n  \
                            arakoon-admin store restore n1.db --node n1 -config cluster.ini --yes\n\n\
                            Exit codes: 0 restored; 3 the node has files (pass --yes) or a bad \
                            node name; 7 the file cannot be read; 45 the file is not a get_db file \
                            of this cluster (the message says what is wrong); 40-50 writing the \
                            node's files failed."
    )]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The file saved by get_db.
    #[arg(value_name = "FILE")]
    file: std::path::PathBuf,
    /// The (stopped) node to restore.
    #[arg(long, value_name = "NAME")]
    node: String,
    /// The cluster's INI file; `-config FILE` works too, as for arakoon.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: std::path::PathBuf,
    /// Replace the node's store, head and TLog files if it has any.
    #[arg(long)]
    yes: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    files: NodeFilesArgs,
    /// Only the summary, not the keys and values.
    #[arg(long)]
    summary: bool,
    /// One JSON object: the summary and "entries": [{"key", "value"}].
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    files: NodeFilesArgs,
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: StoreCommand) -> Result<i32, Failure> {
    match cmd {
        StoreCommand::Dump(args) => dump(&args),
        StoreCommand::Verify(args) => verify(&args),
        StoreCommand::Restore(args) => restore(&args),
    }
}

fn restore(args: &RestoreArgs) -> Result<i32, Failure> {
    let config = crate::node_files::load_config(&args.config)?;
    let node = &config.nodes[crate::node_files::node_index(&config, &args.config, &args.node)?];
    let store = arakoon_node::server::startup::store_path(node);
    if store.exists() {
        // Opening the store fails while a node holds it: refuse to work under a running node.
        if let Err(e @ arakoon_node::store::StoreError::Backend { .. }) =
            SledStore::open(&store, &config.cluster_id)
        {
            let msg = format!("{e}; is {} running? stop it first", node.name);
            return Err(Failure::new(Exit::Store, msg));
        }
    }
    let dir = FsDir::create_all(&node.tlog_dir).map_err(|e| {
        Failure::new(
            Exit::CatchUpWrite,
            format!("{}: cannot create the TLog directory: {e}", node.tlog_dir.display()),
        )
    })?;
    if let Some(parent) = store.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failure::new(
                Exit::CatchUpWrite,
                format!("{}: cannot create the node's home: {e}", parent.display()),
            )
        })?;
    }
    let done = arakoon_node::head::restore_from_db_file(
        &args.file,
        &config.cluster_id,
        &dir,
        &node.tlog_dir,
        &store,
        args.yes,
    )
    .map_err(|e| Failure::new(restore_exit(&e), e.to_string()))?;
    let applied = done.applied.map_or("-".to_string(), |i| i.to_string());
    if args.json {
        println!(
            "{}",
            json!({
                "node": node.name,
                "applied": done.applied,
                "pairs": done.pairs,
                "head": done.head.display().to_string(),
                "store": done.store.display().to_string(),
            })
        );
    } else {
        println!(
            "restored {} at slot {applied} ({} pairs) into {} and {}; start it: it catches up \
             the slots after {applied} from its peers",
            node.name,
            done.pairs,
            done.head.display(),
            done.store.display()
        );
    }
    Ok(0)
}

/// Every user entry in key order (the store reads them a page at a time).
fn for_each_entry(store: &SledStore, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<u64, Failure> {
    store::for_each_entry(store, visit).map_err(|e| Failure::new(Exit::Store, e.to_string()))
}

fn summary_json(store: &SledStore, files: &NodeFiles) -> Result<serde_json::Value, Failure> {
    Ok(json!({
        "store": files.store.display().to_string(),
        "cluster_id": store.cluster_id(),
        "applied": store.applied(),
        "key_count": store.key_count().map_err(|e| Failure::new(Exit::Store, e.to_string()))?,
        "master": store.master().map(|m| m.master),
    }))
}

fn dump(args: &DumpArgs) -> Result<i32, Failure> {
    let files = args.files.resolve(false)?;
    let store = open_own_store(&files.store, &files.cluster_id)?;
    let summary = summary_json(&store, &files)?;
    if args.json {
        let mut entries = Vec::new();
        if !args.summary {
            for_each_entry(&store, &mut |k, v| {
                entries.push(json!({"key": escape(k), "value": escape(v)}));
            })?;
        }
        let mut out = summary;
        out["entries"] = json!(entries);
        println!("{out}");
        return Ok(0);
    }
    println!("store      {}", files.store.display());
    println!("cluster id {}", store.cluster_id());
    println!("applied i  {}", store.applied().map_or("- (empty)".into(), |i| i.to_string()));
    println!("master     {}", store.master().map_or("-".into(), |m| m.master));
    println!("key count  {}", summary["key_count"]);
    if !args.summary {
        for_each_entry(&store, &mut |k, v| println!("{}\t{}", escape(k), escape(v)))?;
    }
    Ok(0)
}

/// One disagreement found by `verify`.
struct Problem {
    code: i32,
    kind: &'static str,
    message: String,
    repair: String,
}

fn verify(args: &VerifyArgs) -> Result<i32, Failure> {
    let files = args.files.resolve(true)?;
    let rebuild = match args.files.hint() {
        Some(hint) => format!("arakoon-admin rebuild {hint} --yes"),
        None => "arakoon-admin rebuild (with the node's --node and --config)".to_string(),
    };
    let mut problems = Vec::new();
    let dir = FsDir::open(files.tlog_dir()).map_err(|e| {
        Failure::new(
            Exit::TlogDir,
            format!("{}: cannot open the TLog directory: {e}", files.tlog_dir().display()),
        )
    })?;
    let log_last = tlog::last_i(&dir).map_err(tlog_failure)?;
    let committed = verify::committed(log_last, files.last_is_committed);
    let store = match open_store(&files.store, &files.cluster_id)? {
        Ok(store) => store,
        Err(found) => {
            problems.push(Problem {
                code: 45,
                kind: "wrong_cluster",
                message: format!(
                    "the store belongs to cluster {found:?}, the configuration says {:?}",
                    files.cluster_id
                ),
                repair: format!(
                    "point the node at its own store, or rebuild this one from the TLog: {rebuild}"
                ),
            });
            open_own_store(&files.store, &found)?
        }
    };
    let applied = store.applied();
    let show = |i: Option<u64>| i.map_or("-".to_string(), |i| i.to_string());
    let first = || tlog::log_first_i(&dir).map_err(tlog_failure);
    match verify::standing(applied, log_last, committed, first)? {
        Standing::AheadOfTlog { applied: a, last } => problems.push(Problem {
            code: 40,
            kind: "store_ahead",
            message: format!(
                "the store has applied i={a} but the TLog in {} ends at i={last}",
                files.tlog_dir().display()
            ),
            repair: format!("the store belongs to another history; rebuild it: {rebuild}"),
        }),
        Standing::AheadOfEmptyTlog { applied: a } => problems.push(Problem {
            code: 40,
            kind: "store_ahead",
            message: format!(
                "the store has applied i={a} but the TLog in {} is empty",
                files.tlog_dir().display()
            ),
            repair: "restore the node's TLog, or catch the node up from a peer: \
                     arakoon-admin catchup --node NAME -config FILE"
                .to_string(),
        }),
        Standing::Gap { need, first } => problems.push(Problem {
            code: 41,
            kind: "gap",
            message: format!(
                "the store needs i={need} next but the TLog resumes at i={}",
                show(first)
            ),
            repair: "catch the node up from a peer: arakoon-admin catchup --node NAME \
                     -config FILE (after moving the store aside)"
                .to_string(),
        }),
        Standing::Behind { applied: a, committed } => problems.push(Problem {
            code: 42,
            kind: "store_behind",
            message: format!(
                "the store has applied i={} but the TLog has committed up to i={}",
                show(a),
                show(committed)
            ),
            repair: format!(
                "harmless: the node replays the rest when it starts; or now: {rebuild}"
            ),
        }),
        Standing::Agrees => {}
    }
    let key_count = store.key_count().map_err(|e| Failure::new(Exit::Store, e.to_string()))?;
    let counted = for_each_entry(&store, &mut |_, _| {})?;
    if key_count != counted {
        problems.push(Problem {
            code: 45,
            kind: "key_count",
            message: format!("the store's key count says {key_count} but it holds {counted} keys"),
            repair: format!("rebuild the store from the TLog: {rebuild}"),
        });
    }
    let code = problems.first().map_or(0, |p| p.code);
    if args.json {
        let list: Vec<_> = problems
            .iter()
            .map(|p| {
                json!({"kind": p.kind, "exit_code": p.code, "message": p.message,
                       "repair": p.repair})
            })
            .collect();
        println!(
            "{}",
            json!({
                "store": files.store.display().to_string(),
                "tlog_dir": files.tlog_dir().display().to_string(),
                "cluster_id": store.cluster_id(), "expected_cluster_id": files.cluster_id,
                "applied": applied, "tlog_last_i": log_last, "tlog_committed_i": committed,
                "key_count": key_count, "keys_counted": counted,
                "problems": list, "exit_code": code,
            })
        );
        return Ok(code);
    }
    println!("store {} against TLog {}", files.store.display(), files.tlog_dir().display());
    println!("  cluster id {} (expected {})", store.cluster_id(), files.cluster_id);
    println!(
        "  applied i {}; TLog last i {}, committed up to {}",
        show(applied),
        show(log_last),
        show(committed)
    );
    println!("  key count {key_count} (counted {counted})");
    for p in &problems {
        println!("PROBLEM [{}] {}", p.kind, p.message);
        println!("  repair: {}", p.repair);
    }
    if problems.is_empty() {
        println!("ok: the store agrees with its TLog and its cluster");
    } else {
        println!("{} problem(s) found; exit code {code}", problems.len());
    }
    Ok(code)
}

/// A failed restore's exit code: the adoption's and the TLog's own (40 to 50), 7 when the file
/// could not be read, 3 when it would replace a node's state without --yes, 45 for a file or
/// store that is not usable.
fn restore_exit(e: &RestoreError) -> i32 {
    match e {
        RestoreError::Collapse(e) => e.exit_code(),
        RestoreError::Tlog(e) => e.exit_code(),
        RestoreError::Read { .. } => Exit::CatchUpWrite.code(),
        RestoreError::WouldReplace(_) => Exit::BadInput.code(),
        _ => Exit::Store.code(),
    }
}
