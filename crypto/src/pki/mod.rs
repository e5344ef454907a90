//! The federation's certificate authority.
//!
//! `init` makes a self-signed CA (ECDSA P-256); `issue` signs a certificate whose
//! only identity is the URI SAN `cohort://{role}/{name}` (see [`crate::identity`]),
//! plus, for servers, the DNS names and IP addresses clients dial. Every private
//! key is written with mode 0600 and zeroized in memory when dropped, and a key
//! file open to group or others is refused when read
//! ([`PkiError::InsecureKeyFile`]).
//!
//! Files in a PKI folder: `ca.pem` and `ca.key`, then `{role}-{name}.pem` and
//! `{role}-{name}.key` per issued identity; once a certificate is revoked,
//! `revoked.signed` (the list signed by the CA, which servers read and the
//! coordinator relays to nodes) and `revoked.txt` (the same fingerprints
//! annotated with identities, for the operator).

mod files;
mod revocation;
pub mod signed_revocations;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::identity::{PeerIdentity, Role};

pub use files::{
    InsecureKeyFile, check_key_mode, read_key_pem, read_secret_file, write_private_key,
    write_secret_file,
};
pub use revocation::{REVOKED_FILE, fingerprint, load_revocations};
pub use signed_revocations::{RevocationsRefused, SIGNED_REVOKED_FILE, VerifiedRevocations};

/// What went wrong in the PKI, with the file or identity concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or folder could not be read, written or created, or a certificate
    /// file or revocation list holds no valid content.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A key or certificate is already there: the PKI never overwrites one.
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The folder has no CA certificate to issue with.
    #[error("no CA in {dir}: run `cohort-coordinator pki init --dir {dir}` first")]
    NoAuthority {
        /// The PKI folder.
        dir: PathBuf,
    },
    /// rcgen could not generate a key, read the CA's key or certificate, or sign.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
    /// A private key file is open to group or others; it is not read.
    #[error(transparent)]
    InsecureKeyFile(#[from] InsecureKeyFile),
    /// A server name is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}: expected a DNS name or an IP address")]
    InvalidServerName(String),
    /// A validity shorter than one day (the days asked for).
    #[error("a certificate must be valid for at least one day, got {0} days")]
    InvalidValidity(i64),
    /// A name or certificate carries no valid identity.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first instant the certificate is valid.
    pub not_before: OffsetDateTime,
    /// The last instant the certificate is valid.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From now (less a minute of clock skew) for `days` days.
    pub fn days_from_now(days: i64) -> Result<Self, PkiError> {
        if days < 1 {
            return Err(PkiError::InvalidValidity(days));
        }
        let now = OffsetDateTime::now_utc();
        Ok(Self {
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(days),
        })
    }
}

/// Paths of one issued identity's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// The certificate (PEM).
    pub certificate: PathBuf,
    /// The private key (PKCS#8 PEM, mode 0600).
    pub private_key: PathBuf,
}

/// A PKI folder: where the CA and every issued certificate live.
#[derive(Debug, Clone)]
pub struct PkiDir {
    dir: PathBuf,
}

impl PkiDir {
    /// The PKI folder at `dir` (nothing is read or created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The CA's certificate, `ca.pem`, which every peer trusts.
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Where `identity`'s certificate and key are (or will be) written.
    pub fn files_of(&self, identity: &PeerIdentity) -> IssuedFiles {
        let stem = format!("{}-{}", identity.role(), identity.name());
        IssuedFiles {
            certificate: self.dir.join(format!("{stem}.pem")),
            private_key: self.dir.join(format!("{stem}.key")),
        }
    }

    /// Creates a new CA in this folder (which is created if missing).
    pub fn init(&self, federation: &str, validity: Validity) -> Result<(), PkiError> {
        files::create_dir(&self.dir)?;
        for path in [self.ca_certificate(), self.ca_key()] {
            if path.exists() {
                return Err(PkiError::AlreadyExists { path });
            }
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Cohort CA for {federation}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key)?;
        files::write_private_key(&self.ca_key(), &Zeroizing::new(key.serialize_pem()))?;
        files::write_public(&self.ca_certificate(), &cert.pem())?;
        Ok(())
    }

    /// Issues a certificate for `identity`, valid for `server_names` too when the
    /// holder also serves TLS (the coordinator; a node serving inference).
    pub fn issue(
        &self,
        identity: &PeerIdentity,
        server_names: &[String],
        validity: Validity,
    ) -> Result<IssuedFiles, PkiError> {
        let ca_cert_path = self.ca_certificate();
        if !ca_cert_path.exists() {
            return Err(PkiError::NoAuthority {
                dir: self.dir.clone(),
            });
        }
        let out = self.files_of(identity);
        for path in [&out.certificate, &out.private_key] {
            if path.exists() {
                return Err(PkiError::AlreadyExists { path: path.clone() });
            }
        }
        let ca_pem = files::read_public(&ca_cert_path)?;
        let ca_key = KeyPair::from_pem(&read_key_pem(&self.ca_key())?)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.uri());
        params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
        for name in server_names {
            params.subject_alt_names.push(server_san(name)?);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if identity.role() == Role::Coordinator || !server_names.is_empty() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        files::write_private_key(&out.private_key, &Zeroizing::new(key.serialize_pem()))?;
        files::write_public(&out.certificate, &cert.pem())?;
        Ok(out)
    }
}

fn server_san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = name
        .try_into()
        .map_err(|_| PkiError::InvalidServerName(name.to_owned()))?;
    Ok(SanType::DnsName(dns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn issued_certificates_carry_their_identity_and_keys_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path().join("pki"));
        let validity = Validity::days_from_now(30).unwrap();
        pki.init("test", validity).unwrap();
        let node = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let files = pki.issue(&node, &[], validity).unwrap();

        let der = crate::tls::load_certificates(&files.certificate).unwrap();
        assert_eq!(PeerIdentity::from_certificate(&der[0]).unwrap(), node);
        for key in [&files.private_key, &tmp.path().join("pki/ca.key")] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn is_insecure(err: &PkiError, path: &Path, mode: u32) -> bool {
        matches!(err, PkiError::InsecureKeyFile(e) if e.path == path && e.mode == mode)
    }

    #[test]
    fn tls_and_signing_keys_open_to_group_or_others_are_refused() {
        use crate::secagg::{EcdsaP256Signer, SecAggError};
        use crate::tls::{ExpectedServer, TlsError, TlsFiles};
        let client_config =
            |tls: &TlsFiles| crate::tls::client_config(tls, ExpectedServer::coordinator());

        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        pki.init("test", validity).unwrap();
        let node = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
        let issued = pki.issue(&node, &[], validity).unwrap();
        let key = issued.private_key.clone();
        let tls = TlsFiles {
            ca_certificate: pki.ca_certificate(),
            certificate: issued.certificate,
            private_key: key.clone(),
        };

        // 0600 (and stricter) is accepted.
        for mode in [0o600, 0o400] {
            chmod(&key, mode);
            read_key_pem(&key).unwrap();
            client_config(&tls).unwrap();
            EcdsaP256Signer::from_pem_file(&key).unwrap();
        }
        // Any group or other bit is refused, naming the file, its mode and the fix.
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
            chmod(&key, mode);
            assert!(is_insecure(&read_key_pem(&key).unwrap_err(), &key, mode));
            match client_config(&tls) {
                Err(TlsError::KeyFile(err)) => assert!(is_insecure(&err, &key, mode), "{err}"),
                other => panic!("0{mode:o} key accepted for TLS: {other:?}"),
            }
            assert_eq!(
                EcdsaP256Signer::from_pem_file(&key).unwrap_err(),
                SecAggError::InsecureKeyFile(InsecureKeyFile {
                    path: key.clone(),
                    mode
                })
            );
        }
        let message = read_key_pem(&key).unwrap_err().to_string();
        let fix = format!("chmod 600 {}", key.display());
        assert!(
            message.contains(&fix) && message.contains("601"),
            "{message}"
        );
    }

    #[test]
    fn audit_pseudonym_and_ca_keys_open_to_group_or_others_are_refused() {
        use crate::transparency::{AuditSigningKey, SubjectPseudonymKey, TransparencyError};

        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        pki.init("test", validity).unwrap();
        let audit = tmp.path().join("audit.key");
        AuditSigningKey::generate(&audit).unwrap();
        let pseudonyms = tmp.path().join("pseudonym.key");
        SubjectPseudonymKey::generate(&pseudonyms).unwrap();
        AuditSigningKey::load(&audit).unwrap();
        SubjectPseudonymKey::load(&pseudonyms).unwrap();

        chmod(&audit, 0o644);
        match AuditSigningKey::load(&audit) {
            Err(TransparencyError::KeyFile(err)) => assert!(is_insecure(&err, &audit, 0o644)),
            other => panic!("world-readable audit key accepted: {other:?}"),
        }
        chmod(&pseudonyms, 0o640);
        assert!(matches!(
            SubjectPseudonymKey::load(&pseudonyms),
            Err(TransparencyError::KeyFile(PkiError::InsecureKeyFile(_)))
        ));
        // The CA's key too: nothing is issued with a shared CA key.
        chmod(&tmp.path().join("ca.key"), 0o644);
        let auditor = PeerIdentity::new(Role::Auditor, "alice").unwrap();
        assert!(matches!(
            pki.issue(&auditor, &[], validity),
            Err(PkiError::InsecureKeyFile(_))
        ));
    }

    #[test]
    fn nothing_is_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(tmp.path());
        let validity = Validity::days_from_now(1).unwrap();
        let node = PeerIdentity::new(Role::Node, "bank-b").unwrap();
        assert!(matches!(
            pki.issue(&node, &[], validity),
            Err(PkiError::NoAuthority { .. })
        ));
        pki.init("test", validity).unwrap();
        assert!(matches!(
            pki.init("test", validity),
            Err(PkiError::AlreadyExists { .. })
        ));
        pki.issue(&node, &[], validity).unwrap();
        assert!(matches!(
            pki.issue(&node, &[], validity),
            Err(PkiError::AlreadyExists { .. })
        ));
        assert!(matches!(
            Validity::days_from_now(0),
            Err(PkiError::InvalidValidity(0))
        ));
    }
}
