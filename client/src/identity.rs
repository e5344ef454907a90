//! This node's own identity, as the coordinator will see it: read from its
//! certificate, which must be a node's. (The mutual-TLS channel itself is
//! [`cohort_crypto::tls::connector`].)

/// This node's own certificate could not give it a node identity.
#[derive(Debug, Clone, thiserror::Error)]
#[error("own certificate {path}: {reason}")]
pub struct IdentityError {
    /// The certificate file.
    pub path: String,
    /// Why it gives no node identity.
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
