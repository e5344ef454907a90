//! The revocation list signed by the federation's CA, the one list every
//! member consults: servers read it from disk
//! ([`crate::authz::RevocationList`]), and nodes receive it with their tasks
//! (relayed by the coordinator, which cannot forge or shorten it) and check
//! their secure-aggregation neighbours' certificates against it
//! ([`crate::tls::PeerCertificateVerifier`]).
//!
//! `PkiDir::revoke` writes it as `revoked.signed` beside `revoked.txt`, with
//! the same fingerprints. Format (UTF-8 text; the signature, ECDSA P-256
//! SHA-256 in ASN.1 DER by the CA key, covers every byte before its line):
//!
//! ```text
//! cohort-revocations v1
//! sequence 3
//! <hex SHA-256 of a revoked certificate>
//! …
//! signature <hex>
//! ```
//!
//! The sequence grows with each revocation, so a relay cannot replay an
//! older, shorter list to a node that saw a newer one.

use std::collections::BTreeSet;
use std::fmt::Write;

use rcgen::{KeyPair, SigningKey};

/// The file name of the signed revocation list in a PKI folder.
pub const SIGNED_REVOKED_FILE: &str = "revoked.signed";

const MAGIC: &str = "cohort-revocations v1";

/// Why a signed revocation list was not adopted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationsRefused {
    /// It does not parse.
    #[error("signed revocation list is malformed: {0}")]
    Malformed(String),
    /// Its signature is not the CA's over its content.
    #[error("signed revocation list is not signed by the federation's CA")]
    BadSignature,
    /// It is older than the list already adopted.
    #[error("signed revocation list {offered} is older than the list {held} already adopted")]
    Rollback {
        /// The sequence number already adopted.
        held: u64,
        /// The sequence number offered.
        offered: u64,
    },
}

/// A revocation list whose CA signature was checked (or the empty list,
/// sequence 0, before any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedRevocations {
    sequence: u64,
    fingerprints: BTreeSet<String>,
}

impl VerifiedRevocations {
    /// Its sequence number (0: no list adopted yet).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The revoked fingerprints (lowercase hex SHA-256 of each DER).
    pub fn fingerprints(&self) -> &BTreeSet<String> {
        &self.fingerprints
    }

    /// Whether the certificate with this fingerprint (hex SHA-256 of its
    /// DER) is revoked.
    pub fn is_revoked(&self, certificate_sha256: &str) -> bool {
        self.fingerprints
            .contains(&certificate_sha256.to_ascii_lowercase())
    }

    /// The signed list in `bytes`, if the CA whose certificate is
    /// `ca_certificate` (DER) signed it.
    pub fn verify(bytes: &[u8], ca_certificate: &[u8]) -> Result<Self, RevocationsRefused> {
        let malformed = |what: &str| RevocationsRefused::Malformed(what.to_owned());
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let at = text
            .rfind("signature ")
            .ok_or_else(|| malformed("no signature line"))?;
        let (signed, signature_line) = text.split_at(at);
        let signature = hex::decode(signature_line["signature ".len()..].trim())
            .map_err(|_| malformed("the signature is not hex"))?;
        let (_, ca) = x509_parser::parse_x509_certificate(ca_certificate)
            .map_err(|_| malformed("the CA certificate does not parse"))?;
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            ca.public_key().subject_public_key.data.as_ref(),
        );
        key.verify(signed.as_bytes(), &signature)
            .map_err(|_| RevocationsRefused::BadSignature)?;
        parse_signed(signed)
    }

    /// Adopts `offered` if it is at least as new; refuses an older one.
    pub fn adopt(&mut self, offered: Self) -> Result<(), RevocationsRefused> {
        if offered.sequence < self.sequence {
            return Err(RevocationsRefused::Rollback {
                held: self.sequence,
                offered: offered.sequence,
            });
        }
        *self = offered;
        Ok(())
    }
}

/// The list's content, after the signature checked out.
fn parse_signed(signed: &str) -> Result<VerifiedRevocations, RevocationsRefused> {
    let malformed = |what: String| RevocationsRefused::Malformed(what);
    let mut lines = signed.lines();
    if lines.next() != Some(MAGIC) {
        return Err(malformed(format!("the first line is not {MAGIC:?}")));
    }
    let sequence = lines
        .next()
        .and_then(|line| line.strip_prefix("sequence "))
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| malformed("the second line is not `sequence N`".into()))?;
    let mut fingerprints = BTreeSet::new();
    for line in lines {
        if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(format!(
                "{line:?} is not a hex SHA-256 fingerprint"
            )));
        }
        fingerprints.insert(line.to_ascii_lowercase());
    }
    Ok(VerifiedRevocations {
        sequence,
        fingerprints,
    })
}

/// The sequence number of a signed list, without checking its signature
/// (to number the next one).
pub(super) fn sequence_of(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .nth(1)?
        .strip_prefix("sequence ")?
        .parse()
        .ok()
}

/// `fingerprints` as list number `sequence`, signed with the CA key.
pub(super) fn sign(
    sequence: u64,
    fingerprints: &BTreeSet<String>,
    ca_key: &KeyPair,
) -> Result<Vec<u8>, rcgen::Error> {
    let mut text = format!("{MAGIC}\nsequence {sequence}\n");
    for fingerprint in fingerprints {
        text.push_str(fingerprint);
        text.push('\n');
    }
    let signature = ca_key.sign(text.as_bytes())?;
    // Writing to a String cannot fail.
    let _ = writeln!(text, "signature {}", hex::encode(signature));
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{PeerIdentity, Role};
    use crate::pki::{PkiDir, Validity};

    fn der(path: &std::path::Path) -> Vec<u8> {
        crate::tls::load_certificates(path).unwrap()[0].to_vec()
    }

    fn federation(name: &str) -> (tempfile::TempDir, PkiDir) {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path());
        pki.init(name, Validity::days_from_now(1).unwrap()).unwrap();
        (dir, pki)
    }

    fn revoke(pki: &PkiDir, name: &str) -> String {
        let node = PeerIdentity::new(Role::Node, name).unwrap();
        let issued = pki
            .issue(&node, &[], Validity::days_from_now(1).unwrap())
            .unwrap();
        pki.revoke(&issued.certificate).unwrap().1
    }

    #[test]
    fn each_revocation_signs_a_newer_list_that_only_the_ca_verifies() {
        let (_dir, pki) = federation("ours");
        let (_other_dir, other) = federation("theirs");
        let ca = der(&pki.ca_certificate());
        let mallory = revoke(&pki, "mallory");
        let first = std::fs::read(pki.signed_revocation_list()).unwrap();
        let eve = revoke(&pki, "eve");
        let second = std::fs::read(pki.signed_revocation_list()).unwrap();

        let mut held = VerifiedRevocations::default();
        held.adopt(VerifiedRevocations::verify(&first, &ca).unwrap())
            .unwrap();
        assert_eq!(held.sequence(), 1);
        assert!(held.is_revoked(&mallory) && !held.is_revoked(&eve));
        held.adopt(VerifiedRevocations::verify(&second, &ca).unwrap())
            .unwrap();
        assert_eq!(held.sequence(), 2);
        assert!(held.is_revoked(&mallory) && held.is_revoked(&eve));
        assert_eq!(
            held.clone()
                .adopt(VerifiedRevocations::verify(&first, &ca).unwrap()),
            Err(RevocationsRefused::Rollback {
                held: 2,
                offered: 1
            }),
            "a relay cannot replay the shorter list"
        );

        // A relay that drops a line, or a list of another CA: refused.
        let text = String::from_utf8(second.clone()).unwrap();
        let shortened = text.replacen(&format!("{eve}\n"), "", 1);
        assert_eq!(
            VerifiedRevocations::verify(shortened.as_bytes(), &ca),
            Err(RevocationsRefused::BadSignature)
        );
        revoke(&other, "mallory");
        let foreign = std::fs::read(other.signed_revocation_list()).unwrap();
        assert_eq!(
            VerifiedRevocations::verify(&foreign, &ca),
            Err(RevocationsRefused::BadSignature)
        );
        assert!(matches!(
            VerifiedRevocations::verify(b"garbage", &ca),
            Err(RevocationsRefused::Malformed(_))
        ));
        // The operator's annotated plain list holds the same fingerprints.
        let plain = crate::pki::load_revocations(&pki.revocation_list()).unwrap();
        assert_eq!(plain, BTreeSet::from([mallory, eve]));
    }
}
