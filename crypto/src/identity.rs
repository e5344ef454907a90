//! Peer identities.
//!
//! A peer's identity is the one URI subject alternative name of the form
//! `cohort://{role}/{name}` in its certificate, issued by the federation's CA. It is
//! never taken from a field the peer sends: the coordinator reads it from the
//! verified TLS session, and checks any claimed id against it.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const SCHEME: &str = "cohort://";

/// What a certificate entitles its holder to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A hospital or bank that trains.
    Node,
    /// A compliance auditor with read-only access to the audit log.
    Auditor,
    /// The coordinator's server certificate.
    Coordinator,
    /// Someone outside the training consortium who asks a node for encrypted
    /// predictions (a clinic, a bank branch); may use nothing else.
    Requester,
    /// Whoever runs the coordinator for the consortium: may read the
    /// coordinator's web console (rounds, nodes, the stage in flight), and
    /// no gRPC API.
    Operator,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Auditor => "auditor",
            Role::Coordinator => "coordinator",
            Role::Requester => "requester",
            Role::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "node" => Some(Role::Node),
            "auditor" => Some(Role::Auditor),
            "coordinator" => Some(Role::Coordinator),
            "requester" => Some(Role::Requester),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name or certificate carries no valid identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The name is not plain: 1 to 63 lowercase letters, digits and `-`, not
    /// starting or ending with `-`.
    #[error(
        "invalid name {0:?}: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'"
    )]
    InvalidName(String),
    /// The certificate, or its subject alternative names, could not be parsed.
    #[error("certificate is not valid X.509: {0}")]
    Unparseable(String),
    /// The certificate has no `cohort://` URI among its subject alternative names.
    #[error("certificate has no cohort:// identity in its subject alternative names")]
    Missing,
    /// The certificate has several `cohort://` URIs (how many): its identity is
    /// not clear.
    #[error("certificate has {0} cohort:// identities; exactly one is allowed")]
    Ambiguous(usize),
    /// A `cohort://` URI does not name a known role and a name.
    #[error("certificate identity {0:?} is not of the form cohort://ROLE/NAME")]
    Malformed(String),
}

/// A validated (role, name) pair, e.g. `cohort://node/hospital-a`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIdentity {
    role: Role,
    name: String,
}

impl PeerIdentity {
    /// Checks the name: it becomes a file name and a log field, so it is kept plain.
    pub fn new(role: Role, name: &str) -> Result<Self, IdentityError> {
        let plain = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !plain {
            return Err(IdentityError::InvalidName(name.to_owned()));
        }
        Ok(Self {
            role,
            name: name.to_owned(),
        })
    }

    /// What the peer is in the federation.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The node (or auditor) id, e.g. `hospital-a`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SAN URI that carries this identity in a certificate.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/{}", self.role, self.name)
    }

    /// Parses `cohort://ROLE/NAME`.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        let malformed = || IdentityError::Malformed(uri.to_owned());
        let rest = uri.strip_prefix(SCHEME).ok_or_else(malformed)?;
        let (role, name) = rest.split_once('/').ok_or_else(malformed)?;
        let role = Role::parse(role).ok_or_else(malformed)?;
        Self::new(role, name)
    }

    /// Reads the identity from a DER certificate (already verified by TLS).
    pub fn from_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::Unparseable(e.to_string()))?;
        Self::from_parsed(&cert)
    }

    /// The identity in a certificate already parsed.
    pub(crate) fn from_parsed(cert: &X509Certificate<'_>) -> Result<Self, IdentityError> {
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Unparseable(e.to_string()))?;
        let uris: Vec<&str> = san
            .map(|ext| ext.value.general_names.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(SCHEME) => Some(*uri),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [] => Err(IdentityError::Missing),
            [uri] => Self::from_uri(uri),
            many => Err(IdentityError::Ambiguous(many.len())),
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        assert!(PeerIdentity::new(Role::Node, "hospital-a").is_ok());
        for bad in ["", "Hospital", "a/b", "-a", "a-", "a b", &"x".repeat(64)] {
            assert_eq!(
                PeerIdentity::new(Role::Node, bad),
                Err(IdentityError::InvalidName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn uri_round_trips() {
        let id = PeerIdentity::new(Role::Auditor, "alice").unwrap();
        assert_eq!(id.uri(), "cohort://auditor/alice");
        assert_eq!(PeerIdentity::from_uri(&id.uri()).unwrap(), id);
        assert!(PeerIdentity::from_uri("cohort://admin/alice").is_err());
        let requester = PeerIdentity::from_uri("cohort://requester/clinic-x").unwrap();
        assert_eq!(requester.role(), Role::Requester);
        let operator = PeerIdentity::from_uri("cohort://operator/ops-1").unwrap();
        assert_eq!(operator.role(), Role::Operator);
        assert_eq!(operator.uri(), "cohort://operator/ops-1");
        assert!(PeerIdentity::from_uri("https://node/alice").is_err());
    }
}
