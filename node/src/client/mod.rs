//! The async Rust client: master discovery, fail-over, every command.
//!
//! A client knows the cluster's nodes. Before its first request, and after losing its master,
//! it asks the nodes `who_master` and confirms the answer with the named master itself. A request
//! that hears `not_master`, or finds no connection, is retried on the master found anew, a bounded
//! number of times with backoff. An update whose outcome cannot be known (the connection broke
//! after it was sent, the master lost its lease meanwhile: `no_longer_master`, the node went
//! down) is reported as [`ClientError::Unknown`] and never retried: retrying could apply it twice.
//! Reads are always safe to retry.

mod error;
pub mod fetch;
pub mod head;
pub mod sequence_file;

pub use error::{
    AskError, ClientError, ExchangeError, IoFailure, MasterNote, NoAnswer, NoMaster, NoMasterFound,
    ReadError, UnknownNode, UnknownOutcome,
};

use crate::protocol::client::{
    decode_reply, encode_prologue, Consistency, Payload, Reply, Request,
};
pub use crate::protocol::node_state::NodeState;
use crate::rc::Rc;
use crate::server::env::{Network, TokioNet};
use crate::store::Range;
use crate::value::{Bytes, Key, Update};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a client reaches a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub cluster_id: String,
    /// Every node: its name and client address.
    pub nodes: Vec<(String, SocketAddr)>,
    pub connect_timeout: Duration,
    /// How long one request may take before its outcome is called unknown.
    pub request_timeout: Duration,
    /// Attempts to find a master and send a request, in all.
    pub attempts: u32,
    /// The first pause between attempts; it doubles up to a second.
    pub backoff: Duration,
    /// The largest reply accepted.
    pub reply_bytes_max: u32,
}

impl ClientConfig {
    pub fn new(cluster_id: &str, nodes: Vec<(String, SocketAddr)>) -> ClientConfig {
        ClientConfig {
            cluster_id: cluster_id.to_string(),
            nodes,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            attempts: 20,
            backoff: Duration::from_millis(50),
            reply_bytes_max: crate::llio::MESSAGE_BYTES_MAX,
        }
    }

    /// The nodes of a cluster configuration.
    pub fn from_cluster(config: &crate::config::ClusterConfig) -> ClientConfig {
        let nodes = config
            .nodes
            .iter()
            .map(|n| (n.name.clone(), SocketAddr::new(n.ip, n.client_port)))
            .collect();
        ClientConfig::new(&config.cluster_id, nodes)
    }

    /// The index of the node named `node`, by its name or its client address (`ip:port`).
    pub fn node_index(&self, node: &str) -> Result<usize, UnknownNode> {
        self.nodes
            .iter()
            .position(|(name, addr)| name == node || addr.to_string() == node)
            .ok_or_else(|| UnknownNode {
                node: node.to_string(),
                known: self.nodes.iter().map(|(n, _)| n.clone()).collect(),
            })
    }
}

/// One open, greeted connection.
pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    reply_bytes_max: u32,
}

impl<S: crate::server::env::Stream> Connection<S> {
    /// Opens a connection and sends the prologue.
    pub async fn open<N: Network<Stream = S>>(
        net: &N,
        addr: SocketAddr,
        cluster_id: &str,
        timeout: Duration,
        reply_bytes_max: u32,
    ) -> Result<Connection<S>, AskError> {
        let mut stream = tokio::time::timeout(timeout, net.connect(addr))
            .await
            .map_err(|_| AskError::ConnectTimeout { addr })?
            .map_err(|e| AskError::Connect { addr, source: e.into() })?;
        let mut hello = Vec::new();
        encode_prologue(cluster_id, &mut hello);
        stream
            .write_all(&hello)
            .await
            .map_err(|e| AskError::Prologue { addr, source: e.into() })?;
        Ok(Connection { stream, buf: Vec::with_capacity(4096), reply_bytes_max })
    }

    /// Sends one request and reads its reply.
    pub async fn exchange(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Reply, ExchangeError> {
        let bytes = request.to_bytes();
        if let Err(e) = self.stream.write_all(&bytes).await {
            // A write that failed at once on a dead connection: the node got nothing it can act
            // on (a partial request is dropped by the server).
            return Err(ExchangeError::NotSent(e.into()));
        }
        let kind = request.reply_kind();
        let read = async {
            self.buf.clear();
            loop {
                match decode_reply(kind, &self.buf, self.reply_bytes_max) {
                    Ok(Some((reply, _))) => return Ok(reply),
                    Ok(None) => {}
                    Err(e) => return Err(NoAnswer::BadReply(e)),
                }
                if self.buf.len() > self.reply_bytes_max as usize + 64 {
                    return Err(NoAnswer::TooLarge { bytes_max: self.reply_bytes_max });
                }
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Err(NoAnswer::Closed),
                    Ok(_) => {}
                    Err(e) => return Err(NoAnswer::Io(e.into())),
                }
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ExchangeError::NoAnswer(e)),
            Err(_) => Err(ExchangeError::NoAnswer(NoAnswer::Timeout(timeout))),
        }
    }
}

/// A client of one cluster.
pub struct Client<N: Network = TokioNet> {
    config: ClientConfig,
    net: N,
    master: Option<(usize, Connection<N::Stream>)>,
}

impl Client<TokioNet> {
    /// A client over real TCP.
    pub fn new(config: ClientConfig) -> Client<TokioNet> {
        Client::with_network(config, TokioNet)
    }
}

impl<N: Network> Client<N> {
    pub fn with_network(config: ClientConfig, net: N) -> Client<N> {
        Client { config, net, master: None }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    async fn connect(&self, k: usize) -> Result<Connection<N::Stream>, AskError> {
        let (_, addr) = &self.config.nodes[k];
        Connection::open(
            &self.net,
            *addr,
            &self.config.cluster_id,
            self.config.connect_timeout,
            self.config.reply_bytes_max,
        )
        .await
    }

    /// Asks node `k` a local question on a fresh connection.
    pub async fn ask(&self, k: usize, request: &Request) -> Result<Reply, AskError> {
        let mut conn = self.connect(k).await?;
        Ok(conn.exchange(request, self.config.request_timeout).await?)
    }

    /// A read: a consistent one goes to the master (found and confirmed, as [`Client::request`]
    /// does); a dirty or at-least one is served by the first node, in the configured order,
    /// that answers, so that a configuration naming one node reads from that node.
    pub async fn read(&mut self, request: &Request) -> Result<Payload, ReadError> {
        let consistent = match request {
            Request::Get { c, .. }
            | Request::Range { c, .. }
            | Request::RangeEntries { c, .. }
            | Request::PrefixKeys { c, .. } => *c == Consistency::Consistent,
            _ => true,
        };
        if consistent {
            return Ok(self.request(request).await?);
        }
        let mut notes = Vec::new();
        for k in 0..self.config.nodes.len() {
            let node = self.config.nodes[k].0.clone();
            match self.ask(k, request).await {
                Ok(Reply::Ok(payload)) => return Ok(payload),
                Ok(Reply::Failed { rc, message }) => {
                    return Err(ReadError::Refused { node, rc, message })
                }
                Err(e) => notes.push((node, e)),
            }
        }
        Err(ReadError::NoNodeAnswered { notes })
    }

    /// Finds the master: a node names it, and it confirms.
    pub async fn find_master(&mut self) -> Result<usize, NoMasterFound> {
        let mut notes = Vec::new();
        for k in 0..self.config.nodes.len() {
            let name = &self.config.nodes[k].0;
            let answer = match self.ask(k, &Request::WhoMaster).await {
                Ok(Reply::Ok(Payload::OptionString(Some(m)))) => m,
                Ok(Reply::Ok(Payload::OptionString(None))) => {
                    notes.push((name.clone(), MasterNote::KnowsNone));
                    continue;
                }
                Ok(other) => {
                    notes.push((name.clone(), MasterNote::OddAnswer(Box::new(other))));
                    continue;
                }
                Err(e) => {
                    notes.push((name.clone(), MasterNote::Unreachable(e)));
                    continue;
                }
            };
            let Some(m) = self.config.nodes.iter().position(|(n, _)| n.as_bytes() == answer) else {
                notes.push((name.clone(), MasterNote::NamesUnknown { name: answer }));
                continue;
            };
            let mut conn = match self.connect(m).await {
                Ok(c) => c,
                Err(e) => {
                    notes.push((self.config.nodes[m].0.clone(), MasterNote::Unreachable(e)));
                    continue;
                }
            };
            match conn.exchange(&Request::WhoMaster, self.config.request_timeout).await {
                Ok(Reply::Ok(Payload::OptionString(Some(again)))) if again == answer => {
                    self.master = Some((m, conn));
                    return Ok(m);
                }
                _ => notes.push((self.config.nodes[m].0.clone(), MasterNote::DoesNotConfirm)),
            }
        }
        self.master = None;
        Err(NoMasterFound { notes })
    }

    /// The index of the master this client currently talks to.
    pub fn current_master(&self) -> Option<usize> {
        self.master.as_ref().map(|(k, _)| *k)
    }

    /// Sends a request to the master, with fail-over. See the module documentation for what is
    /// retried.
    pub async fn request(&mut self, request: &Request) -> Result<Payload, ClientError> {
        let update = request.is_update();
        let mut backoff = self.config.backoff;
        let mut last_problem = NoMaster::NoAttempt;
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            if self.master.is_none() {
                if let Err(e) = self.find_master().await {
                    last_problem = NoMaster::NotFound(e);
                    continue;
                }
            }
            let Some((_, conn)) = self.master.as_mut() else { continue };
            let result = conn.exchange(request, self.config.request_timeout).await;
            match result {
                Ok(Reply::Ok(payload)) => return Ok(payload),
                Ok(Reply::Failed { rc, message }) => {
                    if !rc.keeps_connection_open() {
                        self.master = None;
                    }
                    match rc {
                        Rc::NotMaster => {
                            last_problem = NoMaster::NotMaster { master: message };
                            continue;
                        }
                        Rc::NoLongerMaster | Rc::GoingDown if update => {
                            return Err(ClientError::Unknown(UnknownOutcome::MasterLeft {
                                rc,
                                message,
                            }));
                        }
                        Rc::NoLongerMaster | Rc::GoingDown => {
                            last_problem = NoMaster::MasterLeft(rc);
                            continue;
                        }
                        _ => return Err(ClientError::Failed { rc, message }),
                    }
                }
                Err(ExchangeError::NotSent(e)) => {
                    self.master = None;
                    last_problem = NoMaster::NotSent(e);
                }
                Err(ExchangeError::NoAnswer(e)) => {
                    self.master = None;
                    if update {
                        return Err(ClientError::Unknown(UnknownOutcome::NoAnswer(e)));
                    }
                    last_problem = NoMaster::NoAnswer(e);
                }
            }
        }
        Err(ClientError::NoMaster(last_problem))
    }

    // ---- typed commands ------------------------------------------------------------------

    pub async fn ping(&mut self, client_id: &str) -> Result<String, ClientError> {
        let cluster_id = self.config.cluster_id.clone();
        let req = Request::Ping { client_id: client_id.to_string(), cluster_id };
        match self.request(&req).await? {
            Payload::String(s) => Ok(String::from_utf8_lossy(&s).into_owned()),
            other => Err(unexpected(&req, other)),
        }
    }

    pub async fn who_master(&mut self) -> Result<Option<String>, ClientError> {
        match self.request(&Request::WhoMaster).await? {
            Payload::OptionString(s) => Ok(s.map(|s| String::from_utf8_lossy(&s).into_owned())),
            other => Err(unexpected(&Request::WhoMaster, other)),
        }
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Bytes, ClientError> {
        self.get_with(Consistency::Consistent, key).await
    }

    pub async fn get_with(&mut self, c: Consistency, key: &[u8]) -> Result<Bytes, ClientError> {
        let req = Request::Get { c, key: key.to_vec() };
        match self.request(&req).await? {
            Payload::String(v) => Ok(v),
            other => Err(unexpected(&req, other)),
        }
    }

    pub async fn exists(&mut self, c: Consistency, key: &[u8]) -> Result<bool, ClientError> {
        let req = Request::Exists { c, key: key.to_vec() };
        self.bool(&req).await
    }

    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.unit(&Request::Set { key: key.to_vec(), value: value.to_vec() }).await
    }

    pub async fn confirm(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.unit(&Request::Confirm { key: key.to_vec(), value: value.to_vec() }).await
    }

    pub async fn delete(&mut self, key: &[u8]) -> Result<(), ClientError> {
        self.unit(&Request::Delete { key: key.to_vec() }).await
    }

    pub async fn test_and_set(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        wanted: Option<&[u8]>,
    ) -> Result<Option<Bytes>, ClientError> {
        let req = Request::TestAndSet {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            wanted: wanted.map(<[u8]>::to_vec),
        };
        self.option(&req).await
    }

    pub async fn replace(
        &mut self,
        key: &[u8],
        wanted: Option<&[u8]>,
    ) -> Result<Option<Bytes>, ClientError> {
        let req = Request::Replace { key: key.to_vec(), wanted: wanted.map(<[u8]>::to_vec) };
        self.option(&req).await
    }

    pub async fn user_function(
        &mut self,
        name: &str,
        arg: Option<&[u8]>,
    ) -> Result<Option<Bytes>, ClientError> {
        let req = Request::UserFunction { name: name.to_string(), arg: arg.map(<[u8]>::to_vec) };
        self.option(&req).await
    }

    pub async fn sequence(
        &mut self,
        updates: Vec<Update>,
        synced: bool,
    ) -> Result<(), ClientError> {
        self.unit(&Request::Sequence { updates, synced }).await
    }

    pub async fn delete_prefix(&mut self, prefix: &[u8]) -> Result<i32, ClientError> {
        let req = Request::DeletePrefix { prefix: prefix.to_vec() };
        match self.request(&req).await? {
            Payload::Int32(n) => Ok(n),
            other => Err(unexpected(&req, other)),
        }
    }

    pub async fn nop(&mut self) -> Result<(), ClientError> {
        self.unit(&Request::Nop).await
    }

    pub async fn range(&mut self, c: Consistency, range: Range) -> Result<Vec<Key>, ClientError> {
        self.keys(&Request::Range { c, range }).await
    }

    pub async fn prefix_keys(
        &mut self,
        c: Consistency,
        prefix: &[u8],
        max: Option<usize>,
    ) -> Result<Vec<Key>, ClientError> {
        self.keys(&Request::PrefixKeys { c, prefix: prefix.to_vec(), max }).await
    }

    pub async fn range_entries(
        &mut self,
        c: Consistency,
        range: Range,
    ) -> Result<Vec<(Key, Bytes)>, ClientError> {
        self.entries(&Request::RangeEntries { c, range }).await
    }

    pub async fn rev_range_entries(
        &mut self,
        c: Consistency,
        range: Range,
    ) -> Result<Vec<(Key, Bytes)>, ClientError> {
        self.entries(&Request::RevRangeEntries { c, range }).await
    }

    pub async fn multi_get(
        &mut self,
        c: Consistency,
        keys: Vec<Key>,
    ) -> Result<Vec<Bytes>, ClientError> {
        let req = Request::MultiGet { c, keys };
        match self.request(&req).await? {
            Payload::Values(v) => Ok(v),
            other => Err(unexpected(&req, other)),
        }
    }

    pub async fn multi_get_option(
        &mut self,
        c: Consistency,
        keys: Vec<Key>,
    ) -> Result<Vec<Option<Bytes>>, ClientError> {
        let req = Request::MultiGetOption { c, keys };
        match self.request(&req).await? {
            Payload::OptionValues(v) => Ok(v),
            other => Err(unexpected(&req, other)),
        }
    }

    pub async fn assert(
        &mut self,
        c: Consistency,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        self.unit(&Request::Assert { c, key: key.to_vec(), value: value.map(<[u8]>::to_vec) }).await
    }

    pub async fn assert_exists(&mut self, c: Consistency, key: &[u8]) -> Result<(), ClientError> {
        self.unit(&Request::AssertExists { c, key: key.to_vec() }).await
    }

    pub async fn get_key_count(&mut self) -> Result<i64, ClientError> {
        match self.request(&Request::GetKeyCount).await? {
            Payload::Int64(n) => Ok(n),
            other => Err(unexpected(&Request::GetKeyCount, other)),
        }
    }

    pub async fn expect_progress_possible(&mut self) -> Result<bool, ClientError> {
        self.bool(&Request::ExpectProgressPossible).await
    }

    pub async fn drop_master(&mut self) -> Result<(), ClientError> {
        let result = self.unit(&Request::DropMaster).await;
        self.master = None;
        result
    }

    pub async fn version(&mut self) -> Result<(i32, i32, i32, String), ClientError> {
        match self.request(&Request::Version).await? {
            Payload::Version { major, minor, patch, info } => Ok((major, minor, patch, info)),
            other => Err(unexpected(&Request::Version, other)),
        }
    }

    /// Arakoon's state name (`Stable_master`, `Slave_steady_state`, ...).
    pub async fn current_state(&mut self) -> Result<String, ClientError> {
        match self.request(&Request::CurrentState).await? {
            Payload::String(s) => Ok(String::from_utf8_lossy(&s).into_owned()),
            other => Err(unexpected(&Request::CurrentState, other)),
        }
    }

    /// Our detailed state of the node answering (role, master, lease, ballot, slots).
    pub async fn node_state(&mut self) -> Result<NodeState, ClientError> {
        match self.request(&Request::NodeState).await? {
            Payload::NodeState(state) => Ok(*state),
            other => Err(unexpected(&Request::NodeState, other)),
        }
    }

    /// Node `k`'s own detailed state (whatever its role), typed: tools read a node's role and
    /// lease from this, never from text.
    pub async fn node_state_of(&self, k: usize) -> Result<NodeState, AskError> {
        let node = self.config.nodes.get(k).map_or("?", |(n, _)| n.as_str()).to_string();
        let command = "node_state";
        match self.ask(k, &Request::NodeState).await? {
            Reply::Ok(Payload::NodeState(state)) => Ok(*state),
            Reply::Ok(other) => {
                Err(AskError::Unexpected { node, command, answer: Box::new(other) })
            }
            Reply::Failed { rc, message } => {
                let message = String::from_utf8_lossy(&message).into_owned();
                Err(AskError::Refused { node, command, rc, message })
            }
        }
    }

    pub async fn statistics(&mut self) -> Result<Bytes, ClientError> {
        match self.request(&Request::Statistics).await? {
            Payload::String(s) => Ok(s),
            other => Err(unexpected(&Request::Statistics, other)),
        }
    }

    pub async fn get_txid(&mut self) -> Result<Consistency, ClientError> {
        match self.request(&Request::GetTxid).await? {
            Payload::Consistency(c) => Ok(c),
            other => Err(unexpected(&Request::GetTxid, other)),
        }
    }

    pub async fn flush_store(&mut self) -> Result<(), ClientError> {
        self.unit(&Request::FlushStore).await
    }

    async fn unit(&mut self, req: &Request) -> Result<(), ClientError> {
        match self.request(req).await? {
            Payload::Unit => Ok(()),
            other => Err(unexpected(req, other)),
        }
    }

    async fn bool(&mut self, req: &Request) -> Result<bool, ClientError> {
        match self.request(req).await? {
            Payload::Bool(b) => Ok(b),
            other => Err(unexpected(req, other)),
        }
    }

    async fn option(&mut self, req: &Request) -> Result<Option<Bytes>, ClientError> {
        match self.request(req).await? {
            Payload::OptionString(v) => Ok(v),
            other => Err(unexpected(req, other)),
        }
    }

    async fn keys(&mut self, req: &Request) -> Result<Vec<Key>, ClientError> {
        match self.request(req).await? {
            Payload::Keys(k) => Ok(k),
            other => Err(unexpected(req, other)),
        }
    }

    async fn entries(&mut self, req: &Request) -> Result<Vec<(Key, Bytes)>, ClientError> {
        match self.request(req).await? {
            Payload::Entries(e) => Ok(e),
            other => Err(unexpected(req, other)),
        }
    }
}

fn unexpected(req: &Request, payload: Payload) -> ClientError {
    ClientError::Unexpected { command: req.name(), answer: Box::new(payload) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_found_by_name_or_address_and_an_unknown_one_lists_the_known() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let c = ClientConfig::new("c", vec![("n0".into(), a(4000)), ("n1".into(), a(4001))]);
        assert_eq!(c.node_index("n1"), Ok(1));
        assert_eq!(c.node_index("127.0.0.1:4000"), Ok(0));
        let e = c.node_index("n7").unwrap_err();
        assert_eq!(e.to_string(), "no node \"n7\" (known: n0, n1)");
    }

    /// A loopback address where nothing listens (bound, then closed again).
    fn closed_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[tokio::test]
    async fn asking_a_node_that_is_down_is_a_typed_connect_error() {
        let (a, b) = (closed_addr(), closed_addr());
        let mut config = ClientConfig::new("c", vec![("n0".into(), a), ("n1".into(), b)]);
        config.connect_timeout = Duration::from_secs(2);
        let mut client = Client::new(config);
        let e = client.ask(0, &Request::WhoMaster).await.unwrap_err();
        assert!(matches!(e, AskError::Connect { addr, .. } if addr == a), "{e:?}");
        let e = client.node_state_of(1).await.unwrap_err();
        assert!(matches!(e, AskError::Connect { addr, .. } if addr == b), "{e:?}");
        // No master: one note per node, in node order, each naming the node.
        let e = client.find_master().await.unwrap_err();
        assert_eq!(e.notes.len(), 2, "{e}");
        assert!(
            matches!(&e.notes[0], (n, MasterNote::Unreachable(AskError::Connect { .. })) if n == "n0"),
            "{e}"
        );
        assert_eq!(e.notes[1].0, "n1", "{e}");
        assert!(e.to_string().starts_with("n0: connecting to"), "{e}");
    }

    /// A dirty read asks each node in order; none answering, each is noted, in node order.
    #[tokio::test]
    async fn a_dirty_read_that_no_node_answers_notes_every_node() {
        let (a, b) = (closed_addr(), closed_addr());
        let mut client =
            Client::new(ClientConfig::new("c", vec![("n0".into(), a), ("n1".into(), b)]));
        let get = Request::Get { c: Consistency::NoGuarantees, key: b"k".to_vec() };
        let e = client.read(&get).await.unwrap_err();
        let ReadError::NoNodeAnswered { notes } = &e else { panic!("{e:?}") };
        let names: Vec<&str> = notes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["n0", "n1"]);
        assert!(e.to_string().starts_with("no node answered: n0: connecting to"), "{e}");
    }
}
