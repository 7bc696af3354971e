//! The fault proxy: a TCP relay on one directed peer link, whose behaviour can be changed while
//! it runs. It is how the sandbox cuts, slows and heals the links between real `arakoon`
//! processes without root: each node reaches each peer through its own proxy, one per direction,
//! so one-way partitions are one switch.
//!
//! Modes: `Pass` relays (after an optional delay per chunk); `Drop` blackholes: connections stay
//! open but nothing is relayed, as packets lost in a partition (the sender notices only by its
//! timeouts); `Reset` closes every connection and refuses new ones at once.
//!
//! A connection that lost bytes in `Drop` mode is closed when its link passes again, instead of
//! relaying the rest of a stream with a hole in it: TCP never delivers such a stream, so the
//! receiver would read garbage frames. The sender reconnects, as after a real partition long
//! enough for its connection to time out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    #[default]
    Pass,
    Drop,
    Reset,
}

/// A link's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LinkState {
    pub mode: LinkMode,
    /// Added before each relayed chunk.
    #[serde(default)]
    pub delay_ms: u64,
}

/// A running proxy; dropping the handle does not stop it, [`ProxyHandle::stop`] does.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    state: watch::Sender<LinkState>,
    stopped: Arc<Mutex<bool>>,
}

impl ProxyHandle {
    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    pub fn get(&self) -> LinkState {
        *self.state.borrow()
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.state.send_modify(|s| s.mode = LinkMode::Reset);
    }
}

/// Starts a proxy listening on `listen` (port 0 picks a free one) that relays to `upstream`.
pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<ProxyHandle> {
    let listener = TcpListener::bind(listen).await?;
    let listen = listener.local_addr()?;
    let (state, rx) = watch::channel(LinkState::default());
    let stopped = Arc::new(Mutex::new(false));
    let handle = ProxyHandle { listen, upstream, state, stopped: stopped.clone() };
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { continue };
            if *stopped.lock().unwrap_or_else(|e| e.into_inner()) {
                return;
            }
            if rx.borrow().mode == LinkMode::Reset {
                drop(client);
                continue;
            }
            tokio::spawn(relay(client, upstream, rx.clone()));
        }
    });
    Ok(handle)
}

async fn relay(client: TcpStream, upstream: SocketAddr, rx: watch::Receiver<LinkState>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut a = tokio::spawn(pump(cr, sw, rx.clone()));
    let mut b = tokio::spawn(pump(sr, cw, rx));
    // When either direction ends, end both: a half-open relay would hide a reset.
    tokio::select! {
        _ = &mut a => {}
        _ = &mut b => {}
    }
    a.abort();
    b.abort();
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<LinkState>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // Whether this stream lost bytes in a blackhole; then it cannot carry on (module doc).
    let mut lost = false;
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = rx.changed() => {
                let mode = rx.borrow().mode;
                if changed.is_err() || mode == LinkMode::Reset || (lost && mode == LinkMode::Pass) {
                    return;
                }
                continue;
            }
        };
        let state = *rx.borrow();
        match state.mode {
            LinkMode::Reset => return,
            // Blackholed: the bytes are lost, as in a partition.
            LinkMode::Drop => {
                lost = true;
                continue;
            }
            LinkMode::Pass if lost => return,
            LinkMode::Pass => {
                if state.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(state.delay_ms)).await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match timeout(wait, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf.to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn pass_drop_delay_and_reset() {
        let upstream = echo_server().await;
        let p = start("127.0.0.1:0".parse().unwrap(), upstream).await.unwrap();
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut s, Duration::from_secs(5)).await.unwrap(), b"ping");

        p.set(LinkState { mode: LinkMode::Drop, delay_ms: 0 });
        assert_eq!(round_trip(&mut s, Duration::from_millis(200)).await, None, "blackholed");

        p.set(LinkState { mode: LinkMode::Pass, delay_ms: 0 });
        let mut buf = [0u8; 1];
        let r = timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "a stream that lost bytes is closed on heal");

        p.set(LinkState { mode: LinkMode::Pass, delay_ms: 150 });
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        let t = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, Duration::from_secs(5)).await.unwrap(), b"ping");
        assert!(t.elapsed() >= Duration::from_millis(300), "delayed both ways");

        p.set(LinkState { mode: LinkMode::Reset, delay_ms: 0 });
        let mut buf = [0u8; 1];
        let r = timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "existing connections are closed");
        p.stop();
    }
}
