//! How a client command reaches a cluster: the cluster's INI file (`--config`, `-c`, or
//! `-config` as for arakoon), or the cluster id and the nodes' client addresses spelled out
//! (`--cluster ID --node HOST:PORT ...`), for a machine that has no copy of the configuration.

use crate::exit::Exit;
use crate::node_files::load_config;
use crate::output::Failure;
use arakoon_node::client::{Client, ClientConfig, ClientError};
use clap::Args;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The cluster's INI file; `-config FILE` works too, as for arakoon.
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The cluster id (with --node, instead of --config).
    #[arg(long, global = true, value_name = "ID", conflicts_with = "config")]
    pub cluster: Option<String>,
    /// A node's client address, as NAME=HOST:PORT or HOST:PORT (the name is then asked of the
    /// node); repeat for each node; with --cluster, instead of --config.
    #[arg(
        long = "node",
        global = true,
        value_name = "[NAME=]HOST:PORT",
        conflicts_with = "config"
    )]
    pub nodes: Vec<String>,
    /// How long one request may take, e.g. 10s or 500ms.
    #[arg(long, global = true, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}

impl ConnectArgs {
    /// The client configuration these arguments name.
    pub fn client_config(&self) -> Result<ClientConfig, Failure> {
        let mut config = if let Some(path) = &self.config {
            ClientConfig::from_cluster(&load_config(path)?)
        } else {
            let (Some(cluster), false) = (&self.cluster, self.nodes.is_empty()) else {
                return Err(Failure::new(
                    Exit::Usage,
                    "say which cluster: --config FILE (or -c FILE, -config FILE), or \
                     --cluster ID --node HOST:PORT [--node HOST:PORT ...]",
                ));
            };
            let mut nodes = Vec::new();
            for text in &self.nodes {
                let addr =
                    text.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
                        Failure::new(
                            Exit::Usage,
                            format!("--node {text:?}: not a HOST:PORT address"),
                        )
                    })?;
                nodes.push((text.clone(), addr));
            }
            ClientConfig::new(cluster, nodes)
        };
        let timeout = Duration::from_millis(parse_duration_ms("--timeout", &self.timeout)?);
        config.request_timeout = timeout;
        config.connect_timeout = timeout.min(Duration::from_secs(2));
        // A command line gives up sooner than a library: about 3 s of retries with backoff.
        config.attempts = 7;
        Ok(config)
    }
}

/// Names the nodes given by bare address, by asking each its `node_state` (which carries the
/// node's name): master discovery matches the name `who_master` answers with. A node
/// that does not answer keeps its address as its name.
pub async fn learn_names(mut config: ClientConfig) -> ClientConfig {
    let client = Client::new(config.clone());
    for (k, (name, addr)) in config.nodes.iter_mut().enumerate() {
        if *name != addr.to_string() && name.to_socket_addrs().is_err() {
            continue;
        }
        if let Ok(state) = client.node_state_of(k).await {
            *name = state.name;
        }
    }
    config
}

/// `60s`, `1500ms`, `2m`.
pub fn parse_duration_ms(option: &str, text: &str) -> Result<u64, Failure> {
    let bad =
        || Failure::new(Exit::Usage, format!("{option} {text:?}: write it as 20s, 1500ms or 2m"));
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// A client error as a failure: what was asked, what the cluster said, and the exit code
/// (4 the cluster refused, 5 no master or nobody reachable, 6 outcome unknown).
pub fn client_failure(what: &str, e: ClientError) -> Failure {
    match e {
        ClientError::Failed { .. } | ClientError::Unexpected { .. } => {
            Failure::new(Exit::Refused, format!("{what}: {e}"))
        }
        ClientError::NoMaster(_) => Failure::new(
            Exit::Unreachable,
            format!("{what}: {e}; is the cluster running, and are --config or --node right?"),
        ),
        ClientError::Unknown(_) => Failure::new(
            Exit::Unknown,
            format!("{what}: {e}; read the key back to learn whether the update took effect"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_duration_ms("-", "20s").unwrap(), 20_000);
        assert_eq!(super::parse_duration_ms("-", "250ms").unwrap(), 250);
        assert_eq!(super::parse_duration_ms("-", "2m").unwrap(), 120_000);
        assert_eq!(super::parse_duration_ms("-", "7").unwrap(), 7_000);
        assert!(super::parse_duration_ms("-", "soon").is_err());
    }
}
