//! Revoked certificates: a plain list of SHA-256 fingerprints (hex, of the
//! DER certificate), one per line, `#` comments allowed, kept as
//! `revoked.txt` in the PKI folder with each certificate's identity (the
//! operator's annotated copy), and the same fingerprints signed by the CA in
//! `revoked.signed` ([`super::signed_revocations`]), which is what servers
//! ([`crate::authz::RevocationList`]) and nodes read: they refuse those
//! certificates even though they still chain to the CA, from the request
//! after the list changed; the coordinator logs each newly revoked
//! fingerprint in its audit log (never a private key).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use super::signed_revocations::{SIGNED_REVOKED_FILE, sequence_of, sign};
use super::{PkiDir, PkiError};
use crate::identity::PeerIdentity;

/// The file name of the revocation list in a PKI folder.
pub const REVOKED_FILE: &str = "revoked.txt";

/// Hex SHA-256 of a DER certificate: the fingerprint the lists and logs use.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

impl PkiDir {
    /// Adds the certificate in `certificate` (PEM) to this folder's revocation
    /// list; returns its identity and fingerprint.
    pub fn revoke(&self, certificate: &Path) -> Result<(PeerIdentity, String), PkiError> {
        let chain = crate::tls::load_certificates(certificate).map_err(|e| PkiError::Io {
            path: certificate.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let leaf = chain.first().ok_or_else(|| PkiError::Io {
            path: certificate.to_owned(),
            source: std::io::Error::other("no certificate"),
        })?;
        let identity = PeerIdentity::from_certificate(leaf)?;
        let fingerprint = fingerprint(leaf);
        let path = self.revocation_list();
        let io = |source| PkiError::Io {
            path: path.clone(),
            source,
        };
        let mut text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        writeln!(text, "{fingerprint}  # {identity}").map_err(|e| io(std::io::Error::other(e)))?;
        let revoked = parse_revocations(&path, &text)?;
        self.write_signed_revocations(&revoked)?;
        replace_file(&path, text.as_bytes())?;
        Ok((identity, fingerprint))
    }

    /// This folder's revocation list (which may not exist yet).
    pub fn revocation_list(&self) -> std::path::PathBuf {
        self.dir.join(REVOKED_FILE)
    }

    /// This folder's revocation list signed by its CA (which may not exist
    /// yet; see [`super::signed_revocations`]).
    pub fn signed_revocation_list(&self) -> std::path::PathBuf {
        self.dir.join(SIGNED_REVOKED_FILE)
    }

    /// Signs `revoked` with the CA key as the next list number.
    pub(crate) fn write_signed_revocations(
        &self,
        revoked: &BTreeSet<String>,
    ) -> Result<(), PkiError> {
        let path = self.signed_revocation_list();
        let previous = match std::fs::read(&path) {
            Ok(bytes) => sequence_of(&bytes).unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(PkiError::Io { path, source }),
        };
        let ca_key = rcgen::KeyPair::from_pem(&super::read_key_pem(&self.ca_key())?)?;
        let signed = sign(previous + 1, revoked, &ca_key)?;
        replace_file(&path, &signed)
    }
}

/// Writes `bytes` beside `path` and renames them over it: a reader sees the
/// old file or the new one, never half a line.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, bytes).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

/// Reads a revocation list; a missing file is an empty list. A line that is
/// not a 64-digit hex fingerprint is refused with its number.
pub fn load_revocations(path: &Path) -> Result<BTreeSet<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_revocations(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(source) => Err(PkiError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The fingerprints in `text`, the content of the list at `path`.
fn parse_revocations(path: &Path, text: &str) -> Result<BTreeSet<String>, PkiError> {
    let mut revoked = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        if entry.len() != 64 || !entry.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PkiError::Io {
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "line {}: {entry:?} is not a hex SHA-256 fingerprint",
                    number + 1
                )),
            });
        }
        revoked.insert(entry.to_ascii_lowercase());
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use crate::pki::Validity;

    #[test]
    fn revoked_certificates_are_listed_by_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        pki.init("test", validity).unwrap();
        let node = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let issued = pki.issue(&node, &[], validity).unwrap();
        assert!(load_revocations(&pki.revocation_list()).unwrap().is_empty());
        let (who, print) = pki.revoke(&issued.certificate).unwrap();
        assert_eq!(who, node);
        let der = crate::tls::load_certificates(&issued.certificate).unwrap();
        assert_eq!(print, fingerprint(&der[0]));
        assert_eq!(
            load_revocations(&pki.revocation_list()).unwrap(),
            BTreeSet::from([print])
        );
        std::fs::write(tmp.path().join("bad.txt"), "# ok\nnot-a-fingerprint\n").unwrap();
        let err = load_revocations(&tmp.path().join("bad.txt")).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
