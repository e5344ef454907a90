//! Pinning the server's Cohort identity on the client side.
//!
//! Threat model: every certificate of the federation chains to the same CA, and
//! a node serving encrypted inference holds a server certificate too. WebPKI
//! validation alone (chain to the CA, DNS name or IP address, validity) would
//! therefore let any holder of a federation certificate with the right server
//! name pose as the coordinator to a node, or as one node to a requester that
//! meant another: a node that can redirect traffic (DNS, a shared host, a
//! misconfigured address) could hand out tasks, collect updates or read an
//! auditor's queries. So a client states whom it expects
//! ([`ExpectedServer`]), and [`PinnedServerVerifier`] refuses, during the
//! handshake and before the client sends its own certificate or any request,
//! a server whose `cohort://ROLE/NAME` identity is not that. Given the
//! federation's CA-signed revocation list ([`RevocationList`]), it also
//! refuses a server whose certificate the list names (`CertificateError::
//! Revoked`; [`server_revoked`] finds it in a connection's error), so a
//! requester does not send its encrypted inputs to a revoked node.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::authz::RevocationList;
use crate::identity::{IdentityError, PeerIdentity, Role};

/// Whom a client expects to reach: stated by every caller of
/// [`super::client_config`], so a connection never trusts "any certificate of
/// the CA".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedServer {
    /// Any certificate of this role (the federation's coordinator, whatever
    /// name it was issued under).
    Role(Role),
    /// Exactly this identity (the node a requester named).
    Identity(PeerIdentity),
}

impl ExpectedServer {
    /// The federation's coordinator: any `cohort://coordinator/NAME`.
    pub fn coordinator() -> Self {
        Self::Role(Role::Coordinator)
    }

    /// The node named `name`: exactly `cohort://node/NAME`.
    pub fn node(name: &str) -> Result<Self, IdentityError> {
        Ok(Self::Identity(PeerIdentity::new(Role::Node, name)?))
    }

    /// Whether a server presenting `identity` is the one expected.
    pub fn accepts(&self, identity: &PeerIdentity) -> bool {
        match self {
            Self::Role(role) => identity.role() == *role,
            Self::Identity(expected) => identity == expected,
        }
    }
}

impl fmt::Display for ExpectedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role(role) => write!(f, "a cohort://{role}/... certificate"),
            Self::Identity(identity) => write!(f, "{identity}"),
        }
    }
}

/// A server whose certificate, although issued by the federation's CA, is not
/// the server the client expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server presented {found}, but this client only talks to {expected}")]
pub struct UnexpectedServer {
    /// Whom the client expected.
    pub expected: ExpectedServer,
    /// The identity the server's certificate carries, or why it carries none.
    pub found: String,
}

/// A [`ServerCertVerifier`] that runs rustls's WebPKI verification (chain to
/// the federation's CA, server name, validity) and then requires the
/// certificate's Cohort identity to be the [`ExpectedServer`]. A mismatch fails
/// the handshake with `CertificateError::Other` holding an [`UnexpectedServer`].
#[derive(Debug)]
pub struct PinnedServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    expected: ExpectedServer,
    revocations: Arc<RevocationList>,
}

impl PinnedServerVerifier {
    /// Wraps `webpki` so that only `expected` passes.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, expected: ExpectedServer) -> Self {
        Self {
            webpki,
            expected,
            revocations: Arc::new(RevocationList::none()),
        }
    }

    /// Also refuses a server whose certificate `revocations` lists.
    pub fn refusing_revoked(mut self, revocations: Arc<RevocationList>) -> Self {
        self.revocations = revocations;
        self
    }

    /// The revocation check, on a certificate WebPKI already accepted. An
    /// unreadable list refuses (fails closed), naming why.
    fn check_revocation(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let fingerprint = crate::pki::fingerprint(end_entity);
        match self.revocations.is_revoked(&fingerprint) {
            Ok(false) => Ok(()),
            Ok(true) => Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)),
            Err(unreadable) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(unreadable)),
            ))),
        }
    }

    /// The identity check alone, on a certificate WebPKI already accepted.
    fn check_identity(&self, end_entity: &CertificateDer<'_>) -> Result<(), UnexpectedServer> {
        let found = match PeerIdentity::from_certificate(end_entity) {
            Ok(identity) if self.expected.accepts(&identity) => return Ok(()),
            Ok(identity) => identity.uri(),
            Err(e) => format!("no valid identity ({e})"),
        };
        Err(UnexpectedServer {
            expected: self.expected.clone(),
            found,
        })
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.check_identity(end_entity).map_err(|unexpected| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                unexpected,
            ))))
        })?;
        self.check_revocation(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The [`UnexpectedServer`] a failed connection carries somewhere in its error
/// chain (inside an `io::Error`, inside a rustls certificate error), if any.
pub fn unexpected_server(error: &(dyn std::error::Error + 'static)) -> Option<UnexpectedServer> {
    find_in_chain(error, &|error| {
        if let Some(found) = error.downcast_ref::<UnexpectedServer>() {
            return Some(found.clone());
        }
        match error.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
                other.0.downcast_ref::<UnexpectedServer>().cloned()
            }
            _ => None,
        }
    })
}

/// Whether a failed connection's error chain says the server's certificate
/// is revoked ([`PinnedServerVerifier::refusing_revoked`]).
pub fn server_revoked(error: &(dyn std::error::Error + 'static)) -> bool {
    find_in_chain(
        error,
        &|error| match error.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => Some(()),
            _ => None,
        },
    )
    .is_some()
}

/// The first error in `error`'s chain that `found` recognises.
fn find_in_chain<T>(
    error: &(dyn std::error::Error + 'static),
    found: &dyn Fn(&(dyn std::error::Error + 'static)) -> Option<T>,
) -> Option<T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(hit) = found(error) {
            return Some(hit);
        }
        // An io::Error's `source` skips the error it wraps: look inside it.
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(hit) = find_in_chain(inner, found)
        {
            return Some(hit);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{PkiDir, Validity};
    use crate::tls::{load_certificates, load_roots, provider};

    fn verifier(pki: &PkiDir, expected: ExpectedServer) -> PinnedServerVerifier {
        let roots = load_roots(&pki.ca_certificate()).unwrap();
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap();
        PinnedServerVerifier::new(webpki, expected)
    }

    /// A fresh federation CA, and a validity for what it issues.
    fn federation() -> (tempfile::TempDir, PkiDir, Validity) {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        pki.init("test", validity).unwrap();
        (tmp, pki, validity)
    }

    fn verify(
        verifier: &PinnedServerVerifier,
        pki: &PkiDir,
        who: &PeerIdentity,
    ) -> Result<(), rustls::Error> {
        let cert = load_certificates(&pki.files_of(who).certificate).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        verifier
            .verify_server_cert(&cert[0], &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn only_the_expected_identity_passes() {
        let (_tmp, pki, validity) = federation();
        let san = ["localhost".to_owned()];
        let coordinator = PeerIdentity::new(Role::Coordinator, "main").unwrap();
        let node_a = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let node_b = PeerIdentity::new(Role::Node, "hospital-b").unwrap();
        for who in [&coordinator, &node_a, &node_b] {
            pki.issue(who, &san, validity).unwrap();
        }

        let to_coordinator = verifier(&pki, ExpectedServer::coordinator());
        verify(&to_coordinator, &pki, &coordinator).unwrap();
        let to_a = verifier(&pki, ExpectedServer::node("hospital-a").unwrap());
        verify(&to_a, &pki, &node_a).unwrap();

        // Same CA, right server name, wrong identity: refused, and the error
        // carries what was expected and what was found.
        for (verifier, who) in [
            (&to_coordinator, &node_a),
            (&to_a, &node_b),
            (&to_a, &coordinator),
        ] {
            let err = verify(verifier, &pki, who).unwrap_err();
            let unexpected = unexpected_server(&err).expect("an UnexpectedServer in the error");
            assert_eq!(unexpected.expected, verifier.expected);
            assert_eq!(unexpected.found, who.uri());
            // Inside an io::Error too, as tokio-rustls reports it.
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
            assert_eq!(unexpected_server(&io), Some(unexpected));
        }
        // WebPKI still runs first: a name the certificate lacks is refused as such.
        let cert = load_certificates(&pki.files_of(&coordinator).certificate).unwrap();
        let other = ServerName::try_from("elsewhere.example").unwrap();
        let err = to_coordinator
            .verify_server_cert(&cert[0], &[], &other, &[], UnixTime::now())
            .unwrap_err();
        assert!(unexpected_server(&err).is_none(), "{err}");
    }
    #[test]
    fn a_revoked_server_is_refused_when_the_client_consults_the_list() {
        let (_tmp, pki, validity) = federation();
        let node_a = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let issued = pki
            .issue(&node_a, &["localhost".to_owned()], validity)
            .unwrap();
        let list =
            RevocationList::watch(&pki.signed_revocation_list(), &pki.ca_certificate()).unwrap();
        let expected = ExpectedServer::node("hospital-a").unwrap();
        let consulting = verifier(&pki, expected.clone()).refusing_revoked(Arc::new(list));
        let ignoring = verifier(&pki, expected);
        verify(&consulting, &pki, &node_a).unwrap();

        pki.revoke(&issued.certificate).unwrap();
        let err = verify(&consulting, &pki, &node_a).unwrap_err();
        assert!(server_revoked(&err), "{err}");
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert!(server_revoked(&io), "found inside an io::Error too");
        assert!(unexpected_server(&io).is_none());
        // Without the list the revoked node would have been trusted.
        verify(&ignoring, &pki, &node_a).unwrap();
    }
}
