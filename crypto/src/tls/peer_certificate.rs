//! Checking a certificate that reached us other than by a TLS handshake.
//!
//! Secure aggregation relays each node's certificate to its neighbours so they can
//! verify the node's signed key advertisement. The relay is the coordinator, which
//! the protocol does not trust to vouch for keys: each node checks the certificate
//! itself, with the same WebPKI path validation (to the federation's CA, valid now)
//! that its TLS stack applies to a live peer.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsError, load_roots, provider};
use crate::identity::PeerIdentity;

/// Verifies client certificates against the federation's CA.
#[derive(Debug, Clone)]
pub struct PeerCertificateVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl PeerCertificateVerifier {
    /// Trusts the CA certificate(s) in a PEM file.
    pub fn from_ca_file(path: &Path) -> Result<Self, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(path)?, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(Self { verifier })
    }

    /// The identity in `der` if it is a certificate the CA issued for client
    /// authentication and it is valid now.
    pub fn verify(&self, der: &[u8]) -> Result<PeerIdentity, TlsError> {
        let certificate = CertificateDer::from(der);
        self.verifier
            .verify_client_cert(&certificate, &[], UnixTime::now())
            .map_err(|e| TlsError::PeerCertificate(e.to_string()))?;
        PeerIdentity::from_certificate(der).map_err(|e| TlsError::PeerCertificate(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use crate::pki::{PkiDir, Validity};

    #[test]
    fn accepts_the_federations_certificates_only() {
        let validity = Validity::days_from_now(1).unwrap();
        let ours = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(ours.path());
        pki.init("ours", validity).unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let other = PkiDir::new(theirs.path());
        other.init("theirs", validity).unwrap();
        let node = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let read = |issued: crate::pki::IssuedFiles| {
            super::super::load_certificates(&issued.certificate).unwrap()[0].to_vec()
        };
        let good = read(pki.issue(&node, &[], validity).unwrap());
        let foreign = read(other.issue(&node, &[], validity).unwrap());

        let verifier = PeerCertificateVerifier::from_ca_file(&pki.ca_certificate()).unwrap();
        assert_eq!(verifier.verify(&good).unwrap(), node);
        let err = verifier.verify(&foreign).unwrap_err().to_string();
        assert!(err.contains("certificate"), "{err}");
        assert!(verifier.verify(b"not a certificate").is_err());
    }
}
