//! Which node's files a command works on, named the way operators name them: `--node NAME` with
//! the cluster's configuration (as `arakoon` itself takes them), or the paths spelled out
//! (`--tlog-dir`, `--store`, `--cluster-id`) for a copy of a node's files elsewhere.
//!
//! Also the argv rule every command shares: `arakoon` takes `-config FILE` with one dash, and
//! operators type it from habit; clap would read that as `-c onfig`, so [`normalize_args`]
//! rewrites the one-dash long options we know before clap sees them.

use crate::exit::Exit;
use crate::output::Failure;
use arakoon_node::config::ClusterConfig;
use arakoon_node::server::startup::store_path;
use arakoon_node::store::{SledStore, StoreError};
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One-dash spellings of long options that `arakoon` accepts and operators carry over.
const ONE_DASH_LONG: [&str; 2] = ["-config", "-catchup-only"];

/// Rewrites `-config FILE` and `-config=FILE` into their two-dash forms; everything else stays.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            for long in ONE_DASH_LONG {
                if text == long || text.strip_prefix(long).is_some_and(|rest| rest.starts_with('='))
                {
                    return OsString::from(format!("-{text}"));
                }
            }
            arg
        })
        .collect()
}

/// A cluster configuration, with errors that say which file and what to fix.
pub fn load_config(path: &Path) -> Result<ClusterConfig, Failure> {
    ClusterConfig::load(path).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))
}

/// The node's index in the configuration, or an error listing the known nodes.
pub fn node_index(config: &ClusterConfig, path: &Path, name: &str) -> Result<usize, Failure> {
    config
        .index_of(name, &path.display().to_string())
        .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))
}

#[derive(Debug, Args)]
pub struct NodeFilesArgs {
    /// The node whose files to use (needs --config).
    #[arg(long, requires = "config", value_name = "NAME")]
    node: Option<String>,
    /// The cluster's INI file; `-config FILE` works too, as for arakoon.
    #[arg(short = 'c', long, requires = "node", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The TLog directory (instead of --node and --config).
    #[arg(long, conflicts_with = "node", value_name = "DIR")]
    tlog_dir: Option<PathBuf>,
    /// The store directory (instead of --node and --config).
    #[arg(long, conflicts_with = "node", value_name = "DIR")]
    store: Option<PathBuf>,
    /// The cluster id the store must belong to (instead of --node and --config).
    #[arg(long, conflicts_with = "node", value_name = "ID")]
    cluster_id: Option<String>,
    /// The TLog's last entry is committed, as in a 1-node cluster (implied by a 1-node --config).
    #[arg(long)]
    last_committed: bool,
}

/// A node's files, resolved.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    pub tlog_dir: Option<PathBuf>,
    pub store: PathBuf,
    pub cluster_id: String,
    /// Whether the log's last slot counts as committed (a 1-node cluster: nobody else decides).
    pub last_is_committed: bool,
}

impl NodeFilesArgs {
    /// Resolves the arguments; `need_tlog` says whether the command reads the TLog.
    pub fn resolve(&self, need_tlog: bool) -> Result<NodeFiles, Failure> {
        if let (Some(name), Some(path)) = (&self.node, &self.config) {
            let config = load_config(path)?;
            let k = node_index(&config, path, name)?;
            let node = &config.nodes[k];
            return Ok(NodeFiles {
                tlog_dir: Some(node.tlog_dir.clone()),
                store: store_path(node),
                cluster_id: config.cluster_id.clone(),
                last_is_committed: self.last_committed || config.nodes.len() == 1,
            });
        }
        let missing = || {
            Failure::new(
                Exit::Usage,
                format!(
                    "name the node's files: --node NAME --config FILE, or --store DIR \
                     --cluster-id ID{}",
                    if need_tlog { " --tlog-dir DIR" } else { "" }
                ),
            )
        };
        let (Some(store), Some(cluster_id)) = (&self.store, &self.cluster_id) else {
            return Err(missing());
        };
        if need_tlog && self.tlog_dir.is_none() {
            return Err(missing());
        }
        Ok(NodeFiles {
            tlog_dir: self.tlog_dir.clone(),
            store: store.clone(),
            cluster_id: cluster_id.clone(),
            last_is_committed: self.last_committed,
        })
    }
}

impl NodeFilesArgs {
    /// The arguments that name these files again, for the repair commands we print.
    pub fn hint(&self) -> Option<String> {
        if let (Some(node), Some(config)) = (&self.node, &self.config) {
            return Some(format!("--node {node} -config {}", config.display()));
        }
        let (store, tlog_dir, id) =
            (self.store.as_ref()?, self.tlog_dir.as_ref()?, &self.cluster_id);
        Some(format!(
            "--store {} --tlog-dir {} --cluster-id {}{}",
            store.display(),
            tlog_dir.display(),
            id.as_deref()?,
            if self.last_committed { " --last-committed" } else { "" }
        ))
    }
}

impl NodeFiles {
    pub fn tlog_dir(&self) -> &Path {
        // `resolve(true)` guarantees a TLog directory to every command that reads one.
        self.tlog_dir.as_deref().unwrap_or(Path::new("."))
    }
}

/// Whether a store directory holds anything (opening a missing store would create one).
pub fn store_exists(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some())
}

/// Opens an existing store. A store that belongs to another cluster comes back as
/// `Err(Ok(found_id))` so that a caller can report it and still look inside.
pub fn open_store(path: &Path, cluster_id: &str) -> Result<Result<SledStore, String>, Failure> {
    if !store_exists(path) {
        return Err(Failure::new(
            Exit::Store,
            format!(
                "{}: no store here (a node creates its store when it first starts; \
                 `arakoon-admin rebuild` builds one from the TLog)",
                path.display()
            ),
        ));
    }
    match SledStore::open(path, cluster_id) {
        Ok(store) => Ok(Ok(store)),
        Err(StoreError::WrongCluster { found, .. }) => Ok(Err(found)),
        Err(e @ StoreError::Backend { .. }) => Err(Failure::new(
            Exit::Store,
            format!("{e}; if its node is running, stop it first: only one process opens a store"),
        )),
        Err(e) => Err(Failure::new(Exit::Store, e.to_string())),
    }
}

/// Opens an existing store that must belong to `cluster_id`.
pub fn open_own_store(path: &Path, cluster_id: &str) -> Result<SledStore, Failure> {
    open_store(path, cluster_id)?.map_err(|found| {
        Failure::new(
            Exit::Store,
            format!(
                "store at {}: belongs to cluster {found:?}, not {cluster_id:?}; point at the \
                 node's own store, or give --cluster-id {found} to read it anyway",
                path.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_args;
    use std::ffi::OsString;

    #[test]
    fn one_dash_config_becomes_two_dash() {
        let args = ["x", "-config", "f.ini", "-config=g.ini", "-c", "h.ini", "-configure"];
        let out = normalize_args(args.iter().map(OsString::from));
        let out: Vec<_> = out.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(out, ["x", "--config", "f.ini", "--config=g.ini", "-c", "h.ini", "-configure"]);
    }
}
