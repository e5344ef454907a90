//! Mutual TLS 1.3 configurations (RFC 8446) for Cohort's gRPC, on rustls with the
//! ring provider.
//!
//! Both sides trust only the federation's CA. The server *requires* a client
//! certificate chained to that CA; the client verifies the server against the same
//! CA *and* requires the server's `cohort://` identity to be the one it expects
//! (the coordinator, or the node it named; see [`ExpectedServer`]), since every
//! member of the federation holds a certificate of that CA. Only TLS 1.3 is offered, and ALPN is `h2` because gRPC runs over HTTP/2.
//! There is no plaintext or server-only mode to fall back to.

#[cfg(feature = "acceptor")]
pub mod acceptor;
#[cfg(feature = "connector")]
pub mod connector;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::authz::RevocationList;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

mod peer_certificate;
mod server_identity;
pub use peer_certificate::PeerCertificateVerifier;
pub use server_identity::{
    ExpectedServer, PinnedServerVerifier, UnexpectedServer, server_revoked, unexpected_server,
};

/// What kept a TLS configuration from being built, with the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A private key file could not be read, or is open to group or others
    /// (`PkiError::InsecureKeyFile`).
    #[error(transparent)]
    KeyFile(#[from] crate::pki::PkiError),
    /// A certificate file holds no certificate.
    #[error("{path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate cannot serve as a trust anchor.
    #[error("CA certificate {path} was refused: {reason}")]
    BadAuthority {
        /// The CA certificate's file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// rustls refused the configuration (for example a key that does not match
    /// the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// A relayed peer certificate is not one the CA issued for client
    /// authentication, is not valid now, or carries no valid identity.
    #[error("peer certificate refused: {0}")]
    PeerCertificate(String),
}

/// Where a peer's trust anchor, certificate and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The federation's CA certificate (PEM), the only trust anchor.
    pub ca_certificate: PathBuf,
    /// This peer's certificate chain (PEM).
    pub certificate: PathBuf,
    /// This peer's private key (PEM).
    pub private_key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads a private key, refusing a file open to group or others (see
/// [`crate::pki::read_secret_file`]).
fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = crate::pki::read_secret_file(path)?;
    // The DER moves straight into rustls's signing key; the PEM is wiped.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::BadAuthority {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// The first certificate (DER) of the PEM file `path`: the federation's CA,
/// against which signed lists and peers' certificates are checked.
pub fn load_authority(path: &Path) -> Result<Vec<u8>, TlsError> {
    load_certificates(path)?
        .first()
        .map(|der| der.to_vec())
        .ok_or_else(|| TlsError::NoCertificate {
            path: path.to_owned(),
        })
}

/// The server side: TLS 1.3 only, client certificates required and verified.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let roots = load_roots(&files.ca_certificate)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            load_certificates(&files.certificate)?,
            load_private_key(&files.private_key)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The client side: TLS 1.3 only, presenting this peer's certificate, and
/// talking only to `server`: a server certificate of the federation's CA with
/// another `cohort://` identity fails the handshake (see
/// [`PinnedServerVerifier`]).
pub fn client_config(
    files: &TlsFiles,
    server: ExpectedServer,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_refusing_revoked(files, server, Arc::new(RevocationList::none()))
}

/// As [`client_config`], and refusing a server whose certificate the
/// federation's signed revocation list names (checked at each handshake,
/// against the list as it is then).
pub fn client_config_refusing_revoked(
    files: &TlsFiles,
    server: ExpectedServer,
    revocations: Arc<RevocationList>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(
        load_roots(&files.ca_certificate)?,
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier =
        Arc::new(PinnedServerVerifier::new(webpki, server).refusing_revoked(revocations));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            load_certificates(&files.certificate)?,
            load_private_key(&files.private_key)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{PeerIdentity, Role};
    use crate::pki::{PkiDir, Validity};

    #[test]
    fn configs_build_from_issued_files_and_offer_only_tls13() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        pki.init("test", validity).unwrap();
        let coordinator = PeerIdentity::new(Role::Coordinator, "main").unwrap();
        let server = pki
            .issue(
                &coordinator,
                &["localhost".into(), "127.0.0.1".into()],
                validity,
            )
            .unwrap();
        let node = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let client = pki.issue(&node, &[], validity).unwrap();
        let files = |issued: crate::pki::IssuedFiles| TlsFiles {
            ca_certificate: pki.ca_certificate(),
            certificate: issued.certificate,
            private_key: issued.private_key,
        };
        let server_cfg = server_config(&files(server)).unwrap();
        let client_cfg = client_config(&files(client), ExpectedServer::coordinator()).unwrap();
        assert_eq!(server_cfg.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(client_cfg.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn missing_files_are_named() {
        let err = load_certificates(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
