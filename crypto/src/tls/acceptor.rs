//! The listening side of mutual TLS, shared by every Cohort server (the
//! coordinator's federation service, a node's encrypted-inference service), so
//! there is one acceptor to get right. Behind the feature `acceptor` (it brings
//! tokio and tonic, which the pure-crypto users of this crate do not need).
//!
//! Each TCP connection is handshaken in its own task (a slow or hostile peer cannot
//! stall `accept`), with a deadline. A connection is handed to tonic only once the
//! client presented a certificate chained to the federation CA (see
//! [`super::server_config`]) *and* that
//! certificate carries a valid Cohort identity; every refusal is logged. The
//! identity travels with the connection as [`PeerInfo`], which handlers read from
//! the request's extensions: a node's id is never taken from what it sends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::identity::PeerIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for tonic to take them.
const ACCEPT_BACKLOG: usize = 256;

/// Who is on the other end of a connection, as its certificate says.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The identity in the client's certificate.
    pub identity: PeerIdentity,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// Hex SHA-256 of the client's leaf certificate (DER).
    pub certificate_sha256: String,
    /// The client's leaf certificate (DER), shared so that `Arc` clones are cheap.
    pub certificate: std::sync::Arc<[u8]>,
}

/// A mutually authenticated TLS connection. It holds one of the listener's
/// connection slots until it closes.
#[derive(Debug)]
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
    _slot: OwnedSemaphorePermit,
}

/// Open connections a listener accepts at once, counting those still in their
/// handshake; past it, new connections are closed at once (and reported). Each
/// costs a socket and a TLS session's memory, so a flood of them must not take
/// the process down.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener`, completes mutual TLS with `config`, and
/// yields the connections whose client identity is valid; `on_refusal` hears of
/// every other one, and of every connection past `max_connections` open at
/// once. The accept loop ends when the returned stream is dropped.
pub fn mutual_tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    max_connections: usize,
    on_refusal: impl Fn(SocketAddr, String) + Send + Sync + 'static,
) -> ReceiverStream<Result<PeerStream, io::Error>> {
    let on_refusal = Arc::new(on_refusal);
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, remote_addr) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                let reason = format!("connection limit reached ({max_connections} open)");
                tracing::warn!(%remote_addr, %reason, "refused TCP connection");
                on_refusal(remote_addr, reason);
                drop(tcp);
                continue;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let on_refusal = on_refusal.clone();
            tokio::spawn(async move {
                match handshake(acceptor, tcp, remote_addr, slot).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(reason) => {
                        tracing::warn!(%remote_addr, %reason, "refused TLS connection");
                        on_refusal(remote_addr, reason);
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    slot: OwnedSemaphorePermit,
) -> Result<PeerStream, String> {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| "no client certificate".to_owned())?;
    let identity = PeerIdentity::from_certificate(leaf).map_err(|e| e.to_string())?;
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let info = PeerInfo {
        identity,
        remote_addr,
        certificate_sha256: hex::encode(digest.as_ref()),
        certificate: std::sync::Arc::from(leaf.as_ref()),
    };
    Ok(PeerStream {
        inner: tls,
        info,
        _slot: slot,
    })
}
