//! The server's [`Network`] over turmoil's simulated TCP.
//!
//! Turmoil gives every host its own IP address; a listener binds only the unspecified address or
//! loopback, so [`TurmoilNet::bind`] keeps the port of the configured address and binds
//! `0.0.0.0:port` on the calling host. Connections go to the peer's turmoil address, which is what
//! the cluster configuration names. Both must be called on a host of a running simulation.

use arakoon_node::server::env::{Listener, Network};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Turmoil's TCP, for servers and clients inside a simulation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilNet;

/// A listener on a turmoil host.
pub struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }
}

impl Network for TurmoilNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = TurmoilListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<TurmoilListener> {
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        turmoil::net::TcpListener::bind(any).await.map(TurmoilListener)
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}
