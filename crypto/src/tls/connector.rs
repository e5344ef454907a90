//! The client side of mutual TLS for gRPC: a tonic channel whose every
//! connection is a TLS 1.3 session made with the caller's certificate (see
//! [`super::client_config`]). There is no plaintext channel. Nodes dial the
//! coordinator with it, requesters dial a node, auditors the coordinator; each
//! states whom it expects there when building its configuration
//! ([`super::ExpectedServer`]), and the handshake fails with any other
//! member of the federation.
//!
//! The channel's URI uses the `http` scheme on purpose: TLS is done by this
//! connector, not by tonic, so tonic must not try to add its own.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use super::{UnexpectedServer, server_revoked, unexpected_server};

/// Why a channel to a server could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server name is neither a DNS name nor an IP address TLS can check.
    #[error("invalid server name {0:?} for TLS")]
    ServerName(String),
    /// The address does not make a valid endpoint URI.
    #[error("invalid server address {address:?}: {reason}")]
    Address {
        /// The `host:port` given.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The server's certificate is the federation's but not the server the
    /// caller expected (its `cohort://` identity differs): nothing was sent.
    #[error("refusing {address}: {source}")]
    UnexpectedServer {
        /// The `host:port` dialled.
        address: String,
        /// Whom the caller expected and what the server presented.
        source: UnexpectedServer,
    },
    /// The server's certificate is on the federation's revocation list the
    /// caller consults: nothing was sent.
    #[error("refusing {address}: its certificate is revoked")]
    ServerRevoked {
        /// The `host:port` dialled.
        address: String,
    },
    /// The TCP connection, the TLS handshake or the HTTP/2 connection failed.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The `host:port` dialled.
        address: String,
        /// The error and its sources, on one line.
        reason: String,
    },
}

/// Where a server is: `host:port` to dial, and the name its certificate must
/// carry (a DNS name or an IP address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// `host:port` to dial.
    pub address: String,
    /// The DNS name or IP address the server's certificate must carry.
    pub server_name: String,
}

impl ServerAddress {
    /// The server name defaults to the host part of the address.
    pub fn new(address: &str) -> Self {
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        Self {
            address: address.to_owned(),
            server_name: host.to_owned(),
        }
    }
}

/// Connects to `server` over mutual TLS and returns a gRPC channel. `tls`
/// (from [`super::client_config`]) names the server expected; another member
/// of the federation on that address fails with
/// [`ConnectError::UnexpectedServer`].
pub async fn connect(
    server: &ServerAddress,
    tls: Arc<ClientConfig>,
) -> Result<Channel, ConnectError> {
    let server_name = ServerName::try_from(server.server_name.clone())
        .map_err(|_| ConnectError::ServerName(server.server_name.clone()))?;
    let endpoint = Endpoint::from_shared(format!("http://{}", server.address))
        .map_err(|e| ConnectError::Address {
            address: server.address.clone(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        // A server that stops answering (a paused or partitioned coordinator,
        // not only a dead one whose kernel resets the connection) is given
        // up within 15 s, so that a node fails over to a standby.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    let connector = TlsConnector::from(tls);
    let address = server.address.clone();
    endpoint
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let address = address.clone();
            async move {
                let tcp = TcpStream::connect(&address).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            let address = server.address.clone();
            match unexpected_server(&e) {
                Some(source) => ConnectError::UnexpectedServer { address, source },
                None if server_revoked(&e) => ConnectError::ServerRevoked { address },
                None => ConnectError::Connect {
                    address,
                    reason: error_chain(&e),
                },
            }
        })
}

/// The error and its sources on one line: tonic's top-level message alone
/// ("transport error") does not say what went wrong.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_defaults_to_host() {
        assert_eq!(
            ServerAddress::new("localhost:7443").server_name,
            "localhost"
        );
        assert_eq!(ServerAddress::new("10.0.0.5:7443").server_name, "10.0.0.5");
        assert_eq!(ServerAddress::new("[::1]:7443").server_name, "::1");
    }
}
