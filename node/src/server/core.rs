//! Start-up of a running node: prepare its files, bind its ports, start its peer links, its
//! client acceptor and its persister, build the node shell, then hand over to the event loop
//! (server/event_loop.rs) until shutdown.

use super::conn;
use super::env::{Clock, Listener, Network};
use super::event_loop::{EventLoop, ServerIo};
use super::frame::Hello;
use super::peers::{spawn_link, spawn_listener, PeerLink};
use super::shared::Shared;
use super::storage::Storage;
use crate::config::ClusterConfig;
use crate::consensus::{Durable, Machine, NodeIdx};
use crate::shell::{Shell, ShellConfig};
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use super::error::ServeError;

/// Settings of the server shell that the cluster configuration does not carry.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How often the core is told that time passed.
    pub tick_ms: u64,
    /// The seed of the machine's election jitter.
    pub seed: u64,
    /// Where the TLog and the store live: on disk (production) or in memory (simulation, where
    /// everything then runs on the node's task; see server/storage.rs).
    pub storage: Storage,
    /// How peer connections prove membership (server/auth.rs).
    pub peer_auth: super::auth::PeerAuth,
    /// Client connections at most, when the process's descriptors allow fewer than the
    /// configuration's `max_connections` (server/fdlimit.rs); `None`: as configured.
    pub max_connections: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tick_ms: 10,
            seed: 0,
            storage: Storage::Disk,
            peer_auth: Default::default(),
            max_connections: None,
        }
    }
}

/// Runs node `me` of `config` until `shutdown` resolves, then stops cleanly: pending clients hear
/// going_down, the TLog gets its closed marker, the store is flushed.
pub async fn serve<N: Network, C: Clock>(
    config: ClusterConfig,
    me: NodeIdx,
    net: N,
    clock: C,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let node = config.nodes[me].clone();
    let prepared = options.storage.prepare(&config, &node).await?;
    let client_addr = SocketAddr::new(node.ip, node.client_port);
    let peer_addr = SocketAddr::new(node.ip, node.messaging_port);
    let client_listener = net
        .bind(client_addr)
        .await
        .map_err(|source| ServeError::Bind { addr: client_addr, source })?;
    let peer_listener =
        net.bind(peer_addr).await.map_err(|source| ServeError::Bind { addr: peer_addr, source })?;

    let ccfg = config.consensus(me);
    let durable = Durable {
        ballot: prepared.ballot,
        last: prepared.last.clone(),
        prev: prepared.prev.clone(),
        applied: prepared.store.applied(),
    };
    tracing::info!(
        node = %node.name,
        last = ?prepared.last.as_ref().map(|(i, _)| *i),
        applied = ?durable.applied,
        closed_cleanly = prepared.closed_cleanly,
        seed = options.seed,
        "starting"
    );
    let ship = config.limits.ship_bytes_max(config.lease_ms, config.max_buffer_size);
    if ship < config.max_buffer_size {
        // Not refused: Arakoon's files with a short lease must still start (README "Limits").
        tracing::warn!(
            "max_buffer_size is {} bytes, but at link_bytes_per_s = {} the master ships at most \
             {ship} bytes within a quarter of its {} ms lease: updates above {ship} bytes are \
             refused with bad_input; raise lease_period, or link_bytes_per_s if the links and \
             disks are faster",
            config.max_buffer_size,
            config.limits.link_bytes_per_s,
            config.lease_ms
        );
    }
    tracing::info!(
        "memory bound: {} MiB from the limits (README \"Limits\")",
        super::limits::memory_bound_bytes(&config) >> 20
    );
    let machine = Machine::new(ccfg, durable, clock.now_ms(), options.seed);
    let mut shell = Shell::new(
        machine,
        prepared.store,
        ShellConfig::new(&config, me),
        prepared.dir.clone(),
        clock.now_ms(),
    );
    // The process's clock and memory figures for `statistics` (server/host.rs).
    shell.set_host_probes(super::host::probes());

    let (persisted_tx, persisted_rx) = mpsc::unbounded_channel();
    let persister =
        options.storage.persister(prepared.writer, prepared.dir.clone(), persisted_tx.clone());
    let (core_tx, core_rx) = mpsc::channel(4096);
    let max_connections = options.max_connections.unwrap_or(config.max_connections);
    let shared = Arc::new(Shared {
        cluster_id: config.cluster_id.clone(),
        core: core_tx,
        dir: prepared.dir.clone(),
        connections: AtomicUsize::new(0),
        max_connections,
        max_buffer_size: config.max_buffer_size,
        max_value_size: config.max_value_size,
        request_stall_ms: config.client_stall_ms,
        client_idle_ms: config.limits.client_idle_ms,
        client_min_bytes_per_s: config.limits.client_min_bytes_per_s,
        per_address_max: config.limits.per_address(max_connections),
        per_address: Default::default(),
        lease_ms: config.lease_ms,
        listing: Arc::new(tokio::sync::Semaphore::new(1)),
        entry_streams: Arc::new(tokio::sync::Semaphore::new(1)),
        request_memory: Arc::new(tokio::sync::Semaphore::new(
            conn::request_memory_bytes(config.max_buffer_size) / 1024,
        )),
        head: super::shared::HeadShared::new(
            options.storage.head_space(&node.tlog_dir, prepared.dir.clone()),
        ),
        reads: options.storage.blocking_reads(),
    });

    // Peers.
    let hello = Hello { cluster_id: config.cluster_id.clone(), node: node.name.clone() };
    let links: Vec<Option<PeerLink>> = config
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            (k != me).then(|| {
                let addr = SocketAddr::new(n.ip, n.messaging_port);
                spawn_link(
                    net.clone(),
                    hello.clone(),
                    options.peer_auth.clone(),
                    addr,
                    super::peers::link_queue_bytes_max(config.max_buffer_size),
                )
            })
        })
        .collect();
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    let peer_names: Vec<String> =
        config.names().into_iter().enumerate().filter(|(k, _)| *k != me).map(|(_, n)| n).collect();
    spawn_listener::<N>(
        peer_listener,
        config.cluster_id.clone(),
        peer_names,
        options.peer_auth.clone(),
        config.max_buffer_size.saturating_add(1024),
        peer_tx,
    );

    // Clients.
    let accept_shared = shared.clone();
    let acceptor = tokio::spawn(async move {
        let mut listener = client_listener;
        loop {
            let Ok((stream, addr)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match conn::ConnectionSlot::take(&accept_shared, addr.ip()) {
                Ok(slot) => {
                    tokio::spawn(conn::serve(stream, accept_shared.clone(), slot));
                }
                Err(why) => {
                    tokio::spawn(conn::refuse(stream, why));
                }
            }
        }
    });

    let io = ServerIo {
        links,
        reads: shared.reads.clone(),
        persister: Some(persister),
        catch_up: None,
        accept_encoded: None,
    };
    let dir = prepared.dir.clone();
    let head_lock = shared.head.lock.clone();
    let mut core = EventLoop::new(config, me, net, clock, shell, io, dir, persisted_tx, head_lock);
    let result = core.run(core_rx, peer_rx, persisted_rx, options.tick_ms, shutdown).await;
    acceptor.abort();
    let closing = core.close().await;
    drop(shared);
    result.and(closing)
}
