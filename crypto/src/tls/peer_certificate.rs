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

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{TlsError, load_authority, load_roots, provider};
use crate::identity::PeerIdentity;
use crate::pki::{RevocationsRefused, VerifiedRevocations, fingerprint};

/// At most this many validated certificates are remembered (see
/// [`PeerCertificateVerifier::verify`]); past it the memory starts over.
const MAX_REMEMBERED: usize = 4096;

/// A certificate whose path to the CA was validated: whom it names and when it
/// is valid (seconds since the Unix epoch, inclusive).
#[derive(Debug, Clone)]
struct Validated {
    identity: PeerIdentity,
    not_before: u64,
    not_after: u64,
}

/// Verifies client certificates against the federation's CA and the newest
/// CA-signed revocation list it was given.
#[derive(Debug, Clone)]
pub struct PeerCertificateVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
    /// The CA certificate (DER) that signs revocation lists.
    authority: Vec<u8>,
    revoked: VerifiedRevocations,
    /// Certificates already validated, by their SHA-256 fingerprint.
    validated: Arc<Mutex<HashMap<String, Validated>>>,
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
            validated: Arc::default(),
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
    ///
    /// A certificate's path to the CA is validated once and remembered, by its
    /// fingerprint, with its validity window: a neighbour's certificate comes
    /// again every round, and its path validation (DER parsing and an ECDSA
    /// verification of the CA's signature) was 6 % of a node's CPU in a SecAgg
    /// round at n = 100, k = 20 (#17). What can change between uses is checked
    /// at every use: the window against the clock, and the revocation list.
    pub fn verify(&self, der: &[u8]) -> Result<PeerIdentity, TlsError> {
        let fingerprint = fingerprint(der);
        let now = UnixTime::now();
        let identity = match self.remembered(&fingerprint, now.as_secs()) {
            Some(identity) => identity,
            None => self.validate(der, &fingerprint, now)?,
        };
        if self.revoked.is_revoked(&fingerprint) {
            return Err(TlsError::PeerCertificate(format!(
                "the certificate of {identity} was revoked (the CA's revocation list {})",
                self.revoked.sequence()
            )));
        }
        Ok(identity)
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Validated>> {
        // Plain data: a panic while holding it leaves valid entries behind.
        self.validated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity of a certificate validated before, if it is valid at `now`.
    fn remembered(&self, fingerprint: &str, now: u64) -> Option<PeerIdentity> {
        let memory = self.memory();
        let validated = memory.get(fingerprint)?;
        (validated.not_before..=validated.not_after)
            .contains(&now)
            .then(|| validated.identity.clone())
    }

    /// The full check: the path to the CA at `now`, then the identity it names.
    fn validate(
        &self,
        der: &[u8],
        fingerprint: &str,
        now: UnixTime,
    ) -> Result<PeerIdentity, TlsError> {
        let refused = |e: &dyn std::fmt::Display| TlsError::PeerCertificate(e.to_string());
        let certificate = CertificateDer::from(der);
        self.verifier
            .verify_client_cert(&certificate, &[], now)
            .map_err(|e| refused(&e))?;
        let (_, parsed) = X509Certificate::from_der(der).map_err(|e| refused(&e))?;
        let identity = PeerIdentity::from_parsed(&parsed).map_err(|e| refused(&e))?;
        let validity = parsed.validity();
        let seconds = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
        let validated = Validated {
            identity: identity.clone(),
            not_before: seconds(validity.not_before),
            not_after: seconds(validity.not_after),
        };
        let mut memory = self.memory();
        if memory.len() >= MAX_REMEMBERED {
            memory.clear();
        }
        memory.insert(fingerprint.to_owned(), validated);
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

        // A validated certificate is remembered for its validity window only; a
        // refused one is not remembered at all.
        let now = UnixTime::now().as_secs();
        assert_eq!(verifier.remembered(&fingerprint(&good), now), Some(node));
        let past_expiry = now + 2 * 24 * 3600;
        assert_eq!(verifier.remembered(&fingerprint(&good), past_expiry), None);
        assert_eq!(verifier.remembered(&fingerprint(&foreign), now), None);
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
