//! Binding a node's round keys to its identity.
//!
//! The coordinator relays every [`AdvertiseKeys`](super::messages::AdvertiseKeys); if
//! it could swap in public keys of its own, it would sit in the middle of every
//! pairwise mask and every sealed share. So each node signs its advertisement
//! ([`AdvertiseKeys::signed_payload`](super::messages::AdvertiseKeys::signed_payload))
//! with its TLS identity key, and each neighbour verifies it against the public key in
//! the signer's certificate before using the keys. The hooks are traits (closures
//! qualify); [`EcdsaP256Signer`] and [`EcdsaP256Verifier`] implement them with ring for
//! the federation's ECDSA P-256 certificates.

use std::collections::HashMap;
use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::SecAggError;
use super::messages::NodeId;

/// Signs a node's own key advertisement.
pub trait AdvertisementSigner {
    /// Signs `payload` with the node's identity key; the error says why it could not.
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// Checks a peer's key advertisement against that peer's identity.
pub trait AdvertisementVerifier {
    /// Whether `signature` over `payload` was made by node `node`'s identity key.
    fn verify(&self, node: NodeId, payload: &[u8], signature: &[u8]) -> bool;
}

impl<F> AdvertisementSigner for F
where
    F: Fn(&[u8]) -> Result<Vec<u8>, String>,
{
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        self(payload)
    }
}

impl<F> AdvertisementVerifier for F
where
    F: Fn(NodeId, &[u8], &[u8]) -> bool,
{
    fn verify(&self, node: NodeId, payload: &[u8], signature: &[u8]) -> bool {
        self(node, payload, signature)
    }
}

/// Signs with an ECDSA P-256 key (the node's TLS key, PKCS#8), DER signatures.
pub struct EcdsaP256Signer {
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl EcdsaP256Signer {
    /// A signer from the node's private key in PKCS#8 DER.
    ///
    /// Fails with [`SecAggError::Signing`] if it is not an ECDSA P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SecAggError> {
        let rng = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|e| SecAggError::Signing(format!("not an ECDSA P-256 PKCS#8 key: {e}")))?;
        Ok(Self { key_pair, rng })
    }

    /// Reads the node's TLS private key (PKCS#8 PEM, as `cohort-coordinator pki`
    /// writes it).
    ///
    /// Fails with [`SecAggError::InsecureKeyFile`] if the file is open to group
    /// or others, and with [`SecAggError::Signing`] if it cannot be read or
    /// holds no PKCS#8 ECDSA P-256 key.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, SecAggError> {
        use crate::pki::{PkiError, read_secret_file};
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let pem = match read_secret_file(path) {
            Ok(pem) => pem,
            Err(PkiError::InsecureKeyFile(insecure)) => return Err(insecure.into()),
            Err(e) => return Err(SecAggError::Signing(e.to_string())),
        };
        match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(PrivateKeyDer::Pkcs8(key)) => Self::from_pkcs8(key.secret_pkcs8_der()),
            Ok(_) => Err(SecAggError::Signing(format!(
                "{}: the key is not PKCS#8",
                path.display()
            ))),
            Err(e) => Err(SecAggError::Signing(format!("{}: {e}", path.display()))),
        }
    }

    /// The public key (uncompressed SEC1 point), as a verifier expects it.
    pub fn public_key(&self) -> Vec<u8> {
        self.key_pair.public_key().as_ref().to_vec()
    }
}

impl fmt::Debug for EcdsaP256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaP256Signer")
            .field("public_key", &hex::encode(self.key_pair.public_key()))
            .finish_non_exhaustive()
    }
}

impl AdvertisementSigner for EcdsaP256Signer {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.key_pair
            .sign(&self.rng, payload)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|e| format!("ECDSA P-256 signing failed: {e}"))
    }
}

/// Verifies ECDSA P-256 signatures against each node's certificate public key.
#[derive(Debug, Clone, Default)]
pub struct EcdsaP256Verifier {
    public_keys: HashMap<NodeId, Vec<u8>>,
}

impl EcdsaP256Verifier {
    /// A verifier that knows no node's key yet: it refuses every signature.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `node`'s public key (uncompressed SEC1 point).
    pub fn insert_public_key(&mut self, node: NodeId, public_key: Vec<u8>) {
        self.public_keys.insert(node, public_key);
    }

    /// Registers the public key of `node`'s certificate (DER; its chain to the
    /// federation's CA must already be verified, e.g. by TLS).
    pub fn insert_certificate(&mut self, node: NodeId, der: &[u8]) -> Result<(), SecAggError> {
        let (_, certificate) = X509Certificate::from_der(der)
            .map_err(|e| SecAggError::Signing(format!("certificate of node {node}: {e}")))?;
        let key = certificate.public_key().subject_public_key.data.to_vec();
        self.insert_public_key(node, key);
        Ok(())
    }
}

impl AdvertisementVerifier for EcdsaP256Verifier {
    fn verify(&self, node: NodeId, payload: &[u8], signature: &[u8]) -> bool {
        self.public_keys.get(&node).is_some_and(|key| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
                .verify(payload, signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_keys_verify_their_signatures_only() {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["node-a".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let signer = EcdsaP256Signer::from_pkcs8(&key.serialize_der()).unwrap();
        let mut verifier = EcdsaP256Verifier::new();
        verifier
            .insert_certificate(NodeId(1), certificate.der())
            .unwrap();
        assert_eq!(verifier.public_keys[&NodeId(1)], signer.public_key());

        let signature = signer.sign(b"payload").unwrap();
        assert!(verifier.verify(NodeId(1), b"payload", &signature));
        assert!(!verifier.verify(NodeId(1), b"payloaD", &signature));
        assert!(!verifier.verify(NodeId(2), b"payload", &signature));
        assert!(!format!("{signer:?}").contains("private"));
    }
}
