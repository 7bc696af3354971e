//! The server's two seams to the outside world besides the disk: the clock and the network.
//!
//! Production uses the monotonic clock and tokio's TCP; the tier-B simulator substitutes
//! turmoil's network and simulated time. Nothing in the server reads time or opens sockets except
//! through these traits.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

/// Milliseconds on this node's clock. Only differences matter (leases, timeouts).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The monotonic clock, counted from when it was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock { start: Instant::now() }
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Tokio's clock: the monotonic clock outside a paused runtime, virtual time inside one (the
/// tier-B simulator runs every node on a paused runtime that turmoil advances). Counted from when
/// it was made, like [`MonotonicClock`].
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be called inside a tokio runtime when time is paused, so that it reads that
    /// runtime's clock.
    pub fn new() -> Self {
        TokioClock { start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// A stream socket.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A listening socket.
pub trait Listener: Send + 'static {
    type Stream: Stream;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

/// How the server binds and connects.
pub trait Network: Clone + Send + Sync + 'static {
    type Stream: Stream;
    type Listener: Listener<Stream = Self::Stream>;
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Real TCP through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNet;

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, a) = tokio::net::TcpListener::accept(self).await?;
        s.set_nodelay(true)?;
        Ok((s, a))
    }
}

impl Network for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}
