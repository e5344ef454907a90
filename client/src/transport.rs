//! The node's side of mutual TLS: a tonic channel whose every connection is a
//! TLS 1.3 session made with the node's certificate (see
//! [`cohort_crypto::tls::client_config`]). There is no plaintext channel.
//!
//! The channel's URI uses the `http` scheme on purpose: TLS is done by this
//! connector, not by tonic, so tonic must not try to add its own.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid server name {0:?} for TLS")]
    ServerName(String),
    #[error("invalid coordinator address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
}

/// This node's own certificate could not give it a node identity.
#[derive(Debug, Clone, thiserror::Error)]
#[error("own certificate {path}: {reason}")]
pub struct IdentityError {
    pub path: String,
    pub reason: String,
}

/// The identity in this node's certificate (`tls.certificate`), which must
/// be a node's: what the coordinator will see it as.
pub fn own_identity(
    tls: &cohort_crypto::tls::TlsFiles,
) -> Result<cohort_crypto::PeerIdentity, IdentityError> {
    let invalid = |reason: String| IdentityError {
        path: tls.certificate.display().to_string(),
        reason,
    };
    let chain = cohort_crypto::tls::load_certificates(&tls.certificate)
        .map_err(|e| invalid(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| invalid("the file holds no certificate".into()))?;
    let identity =
        cohort_crypto::PeerIdentity::from_certificate(leaf).map_err(|e| invalid(e.to_string()))?;
    if identity.role() != cohort_crypto::Role::Node {
        return Err(invalid(format!("{identity} is not a node certificate")));
    }
    Ok(identity)
}

/// Where the coordinator is: `host:port` to dial, and the name its certificate
/// must carry (a DNS name or an IP address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorAddress {
    pub address: String,
    pub server_name: String,
}

impl CoordinatorAddress {
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

/// Connects to the coordinator over mutual TLS and returns a gRPC channel.
pub async fn connect(
    coordinator: &CoordinatorAddress,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Channel, TransportError> {
    let server_name = ServerName::try_from(coordinator.server_name.clone())
        .map_err(|_| TransportError::ServerName(coordinator.server_name.clone()))?;
    let endpoint = Endpoint::from_shared(format!("http://{}", coordinator.address))
        .map_err(|e| TransportError::Address {
            address: coordinator.address.clone(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let connector = TlsConnector::from(tls);
    let address = coordinator.address.clone();
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
        .map_err(|e| TransportError::Connect {
            address: coordinator.address.clone(),
            reason: error_chain(&e),
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
            CoordinatorAddress::new("localhost:7443").server_name,
            "localhost"
        );
        assert_eq!(
            CoordinatorAddress::new("10.0.0.5:7443").server_name,
            "10.0.0.5"
        );
        assert_eq!(CoordinatorAddress::new("[::1]:7443").server_name, "::1");
    }
}
