//! Checking a certificate that reached us other than by a TLS handshake.
//!
//! Secure aggregation relays each node's certificate to its neighbours so they can
//! verify the node's signed key advertisement. The relay is the coordinator, which
//! the protocol does not trust to vouch for keys: each node checks the certificate
//! itself, with the same WebPKI path validation (to the federation's CA, valid now)
//! that its TLS stack applies to a live peer, and against the federation's
//! revocation list signed by that CA ([`crate::pki::signed_revocations`]),
//! which the node receives with its tasks: a revoked neighbour is refused
//! although its certificate still chains to the CA.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsError, load_authority, load_roots, provider};
use crate::identity::PeerIdentity;
use crate::pki::{RevocationsRefused, VerifiedRevocations, fingerprint};

/// Verifies client certificates against the federation's CA and the newest
/// CA-signed revocation list it was given.
#[derive(Debug, Clone)]
pub struct PeerCertificateVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
    /// The CA certificate (DER) that signs revocation lists.
    authority: Vec<u8>,
    revoked: VerifiedRevocations,
}

impl PeerCertificateVerifier {
    /// Trusts the CA certificate(s) in a PEM file (the first signs
    /// revocation lists); nothing is revoked until a list is adopted.
    pub fn from_ca_file(path: &Path) -> Result<Self, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(path)?, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let authority = load_authority(path)?;
        Ok(Self {
            verifier,
            authority,
            revoked: VerifiedRevocations::default(),
        })
    }

    /// Adopts the signed revocation list in `bytes` if the CA signed it and
    /// it is not older than the one held; empty `bytes` (no list sent) keep
    /// the one held. A refused list changes nothing.
    pub fn adopt_revocations(&mut self, bytes: &[u8]) -> Result<(), RevocationsRefused> {
        if bytes.is_empty() {
            return Ok(());
        }
        let offered = VerifiedRevocations::verify(bytes, &self.authority)?;
        self.revoked.adopt(offered)
    }

    /// The revocation list held.
    pub fn revocations(&self) -> &VerifiedRevocations {
        &self.revoked
    }

    /// The identity in `der` if it is a certificate the CA issued for client
    /// authentication, it is valid now, and the revocation list held does not
    /// list it.
    pub fn verify(&self, der: &[u8]) -> Result<PeerIdentity, TlsError> {
        let certificate = CertificateDer::from(der);
        self.verifier
            .verify_client_cert(&certificate, &[], UnixTime::now())
            .map_err(|e| TlsError::PeerCertificate(e.to_string()))?;
        let identity = PeerIdentity::from_certificate(der)
            .map_err(|e| TlsError::PeerCertificate(e.to_string()))?;
        if self.revoked.is_revoked(&fingerprint(der)) {
            return Err(TlsError::PeerCertificate(format!(
                "the certificate of {identity} was revoked (the CA's revocation list {})",
                self.revoked.sequence()
            )));
        }
        Ok(identity)
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

    #[test]
    fn a_neighbour_on_the_signed_revocation_list_is_refused() {
        let validity = Validity::days_from_now(1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path());
        pki.init("ours", validity).unwrap();
        let issue = |name: &str| {
            let node = PeerIdentity::new(Role::Node, name).unwrap();
            pki.issue(&node, &[], validity).unwrap().certificate
        };
        let (mallory, honest) = (issue("mallory"), issue("honest"));
        let read = |path: &Path| super::super::load_certificates(path).unwrap()[0].to_vec();
        let mut verifier = PeerCertificateVerifier::from_ca_file(&pki.ca_certificate()).unwrap();
        verifier.verify(&read(&mallory)).unwrap();

        pki.revoke(&mallory).unwrap();
        let signed = std::fs::read(pki.signed_revocation_list()).unwrap();
        verifier.adopt_revocations(&signed).unwrap();
        let err = verifier.verify(&read(&mallory)).unwrap_err().to_string();
        assert!(err.contains("revoked"), "{err}");
        verifier.verify(&read(&honest)).unwrap();
        // No list sent keeps the one held; a forged one changes nothing.
        verifier.adopt_revocations(&[]).unwrap();
        let forged = String::from_utf8(signed)
            .unwrap()
            .replace("sequence 1", "sequence 9");
        assert!(verifier.adopt_revocations(forged.as_bytes()).is_err());
        assert!(verifier.verify(&read(&mallory)).is_err());
    }
}
