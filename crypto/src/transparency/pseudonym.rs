//! Pseudonyms for data subjects, so the audit log never holds a raw identifier
//! (GDPR Art. 5(1)(c) data minimization; Art. 4(5) pseudonymisation).
//!
//! `pseudonym(id)` is the lowercase hex of HMAC-SHA256(key, id) (RFC 2104 with
//! SHA-256): the same subject gets the same pseudonym under one key, so audit
//! entries about them can be linked, but without the key a pseudonym can be
//! neither reversed nor confirmed by hashing guessed identifiers.
//!
//! The [`SubjectPseudonymKey`] stays on the node that holds the data: it is
//! generated there, written 0600 and never sent to the coordinator or to
//! auditors. Whoever holds it can re-identify subjects, so it is secret like a
//! private key. Its 32 bytes are zeroized on drop and it has no `Debug` output
//! beyond its type name. ring derives the HMAC state from the key on each call
//! and does not wipe that state; it lives only for the call.

use std::fmt;
use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::TransparencyError;
use crate::pki::{read_key_pem, write_private_key};

/// Bytes in a pseudonym key (the HMAC-SHA256 block of entropy RFC 2104 advises).
pub const PSEUDONYM_KEY_LEN: usize = 32;

const KEY_KIND: &str = "subject pseudonym key (64 hex digits)";

/// The node's secret HMAC-SHA256 key for data-subject pseudonyms.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SubjectPseudonymKey {
    bytes: [u8; PSEUDONYM_KEY_LEN],
}

impl SubjectPseudonymKey {
    /// Generates a key from the system's CSPRNG and writes it to `path` as hex
    /// (mode 0600). Fails if `path` exists: replacing the key would break the
    /// linkage of every pseudonym already logged.
    pub fn generate(path: &Path) -> Result<Self, TransparencyError> {
        let mut key = Self {
            bytes: [0u8; PSEUDONYM_KEY_LEN],
        };
        SystemRandom::new()
            .fill(&mut key.bytes)
            .map_err(|_| TransparencyError::KeyGeneration {
                kind: KEY_KIND,
                reason: "the system random number generator failed".to_owned(),
            })?;
        let mut text = Zeroizing::new(String::with_capacity(2 * PSEUDONYM_KEY_LEN + 1));
        for byte in key.bytes {
            text.push(hex_digit(byte >> 4));
            text.push(hex_digit(byte & 0x0f));
        }
        text.push('\n');
        write_private_key(path, &text)?;
        Ok(key)
    }

    /// Loads the key that [`SubjectPseudonymKey::generate`] wrote.
    pub fn load(path: &Path) -> Result<Self, TransparencyError> {
        let text = read_key_pem(path)?;
        let mut key = Self {
            bytes: [0u8; PSEUDONYM_KEY_LEN],
        };
        hex::decode_to_slice(text.trim(), &mut key.bytes).map_err(|e| {
            TransparencyError::InvalidKeyFile {
                path: path.to_owned(),
                kind: KEY_KIND,
                reason: e.to_string(),
            }
        })?;
        Ok(key)
    }

    /// The subject's pseudonym: 64 lowercase hex digits of
    /// HMAC-SHA256(key, `subject_id`).
    pub fn pseudonym(&self, subject_id: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        hex::encode(hmac::sign(&key, subject_id.as_bytes()))
    }
}

/// Never shows the key.
impl fmt::Debug for SubjectPseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectPseudonymKey(..)")
    }
}

/// One lowercase hex digit, without an intermediate heap string to wipe.
fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pseudonyms_are_deterministic_per_key_and_differ_across_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let a = SubjectPseudonymKey::generate(&tmp.path().join("a.key")).unwrap();
        let b = SubjectPseudonymKey::generate(&tmp.path().join("b.key")).unwrap();
        let reloaded = SubjectPseudonymKey::load(&tmp.path().join("a.key")).unwrap();

        let subject = "patient-0042";
        let p = a.pseudonym(subject);
        assert_eq!(p.len(), 64);
        assert!(
            p.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(a.pseudonym(subject), p);
        assert_eq!(reloaded.pseudonym(subject), p);
        assert_ne!(b.pseudonym(subject), p);
        assert_ne!(a.pseudonym("patient-0043"), p);
    }

    fn known_key() -> ([u8; PSEUDONYM_KEY_LEN], SubjectPseudonymKey) {
        let raw: [u8; PSEUDONYM_KEY_LEN] = std::array::from_fn(|i| i as u8 * 7 + 1);
        (raw, SubjectPseudonymKey { bytes: raw })
    }

    #[test]
    fn is_hmac_sha256_as_rfc_2104_defines_it() {
        // H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), with SHA-256 alone, not ring::hmac.
        let (raw, key) = known_key();
        let sha256 = |parts: &[&[u8]]| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            parts.iter().for_each(|p| ctx.update(p));
            ctx.finish()
        };
        let mut block = [0u8; 64];
        block[..PSEUDONYM_KEY_LEN].copy_from_slice(&raw);
        let ipad = block.map(|b| b ^ 0x36);
        let opad = block.map(|b| b ^ 0x5c);
        let inner = sha256(&[&ipad, b"patient-0042"]);
        let expected = sha256(&[&opad, inner.as_ref()]);
        assert_eq!(key.pseudonym("patient-0042"), hex::encode(expected));

        // A key file holds the key's bytes as hex.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known.key");
        crate::pki::write_secret_file(&path, format!("{}\n", hex::encode(raw)).as_bytes()).unwrap();
        let loaded = SubjectPseudonymKey::load(&path).unwrap();
        assert_eq!(loaded.pseudonym("patient-0042"), hex::encode(expected));
    }

    proptest::proptest! {
        #[test]
        fn pseudonyms_never_contain_the_identifier(id in "[ -~]{8,40}") {
            let (_, key) = known_key();
            let p = key.pseudonym(&id);
            proptest::prop_assert_eq!(p.len(), 64);
            proptest::prop_assert!(!p.contains(&id));
            proptest::prop_assert!(!p.contains(&id.to_lowercase()));
            proptest::prop_assert!(!p.contains(&hex::encode(&id)));
        }
    }

    #[test]
    fn key_file_is_private_never_overwritten_and_never_printed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pseudonym.key");
        let key = SubjectPseudonymKey::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(SubjectPseudonymKey::generate(&path).is_err());
        assert_eq!(
            SubjectPseudonymKey::load(&path).unwrap().pseudonym("x"),
            key.pseudonym("x")
        );
        let debug = format!("{key:?}");
        assert_eq!(debug, "SubjectPseudonymKey(..)");
        assert!(!debug.contains(text.trim()));

        crate::pki::write_secret_file(&tmp.path().join("short.key"), b"abcd").unwrap();
        let err = SubjectPseudonymKey::load(&tmp.path().join("short.key")).unwrap_err();
        assert!(err.to_string().contains("short.key"), "{err}");
    }
}
