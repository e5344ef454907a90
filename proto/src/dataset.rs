//! Describing a node's data set version on the wire, for the coordinator's
//! audit log and data lineage: the GDPR Art. 6(1) legal bases both sides name
//! identically, and the checks the coordinator applies to a registration.

use std::fmt;
use std::str::FromStr;

use crate::v1;

/// The lawful bases of GDPR Art. 6(1)(a)–(f).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegalBasis {
    /// (a) the data subject's consent.
    #[default]
    Consent,
    /// (b) performance of a contract with the data subject.
    Contract,
    /// (c) a legal obligation of the controller.
    LegalObligation,
    /// (d) the vital interests of a natural person.
    VitalInterests,
    /// (e) a task in the public interest or official authority.
    PublicTask,
    /// (f) the controller's or a third party's legitimate interests.
    LegitimateInterests,
}

impl LegalBasis {
    /// Every basis, in the order of Art. 6(1).
    pub const ALL: [LegalBasis; 6] = [
        Self::Consent,
        Self::Contract,
        Self::LegalObligation,
        Self::VitalInterests,
        Self::PublicTask,
        Self::LegitimateInterests,
    ];

    /// The snake_case name that travels in `DatasetVersion.legal_basis`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterests => "vital_interests",
            Self::PublicTask => "public_task",
            Self::LegitimateInterests => "legitimate_interests",
        }
    }
}

impl fmt::Display for LegalBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LegalBasis {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|basis| basis.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|b| b.as_str()).collect();
                format!(
                    "unknown legal basis {text:?}; expected one of {}",
                    known.join(", ")
                )
            })
    }
}

/// Why a [`v1::DatasetVersion`] was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetVersionError {
    /// `dataset_id` is empty, too long or has other characters.
    #[error("dataset_id {0:?} must be 1 to 128 characters of letters, digits, '.', '_' or '-'")]
    DatasetId(String),
    /// `version` is empty, too long or has other characters.
    #[error("version {0:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
    Version(String),
    /// `content_sha256` is not a lowercase hex SHA-256.
    #[error("content_sha256 {0:?} is not 64 lowercase hex digits")]
    ContentHash(String),
    /// A data category is not a lowercase name.
    #[error("data category {0:?} must be lowercase letters, digits, '_' or '-'")]
    Category(String),
    /// `legal_basis` names none of [`LegalBasis::ALL`].
    #[error("{0}")]
    LegalBasis(String),
}

fn is_name(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `text` is a valid data category (lowercase, digits, `_`, `-`).
pub fn is_category(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// Checks every field of a registered data set version and returns its legal
/// basis.
///
/// # Errors
/// [`DatasetVersionError`], naming the first field refused.
pub fn check_dataset_version(
    dataset: &v1::DatasetVersion,
) -> Result<LegalBasis, DatasetVersionError> {
    if !is_name(&dataset.dataset_id, 128) {
        return Err(DatasetVersionError::DatasetId(dataset.dataset_id.clone()));
    }
    if !is_name(&dataset.version, 64) {
        return Err(DatasetVersionError::Version(dataset.version.clone()));
    }
    let hash = &dataset.content_sha256;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DatasetVersionError::ContentHash(hash.clone()));
    }
    if let Some(bad) = dataset.data_categories.iter().find(|c| !is_category(c)) {
        return Err(DatasetVersionError::Category(bad.clone()));
    }
    dataset
        .legal_basis
        .parse()
        .map_err(DatasetVersionError::LegalBasis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_bases_parse_and_name_the_choices_when_unknown() {
        for basis in LegalBasis::ALL {
            assert_eq!(basis.as_str().parse::<LegalBasis>(), Ok(basis));
        }
        let error = "because".parse::<LegalBasis>().unwrap_err();
        assert!(error.contains("\"because\"") && error.contains("legitimate_interests"));
    }

    #[test]
    fn a_registration_names_the_field_it_is_refused_for() {
        let good = v1::DatasetVersion {
            dataset_id: "breast-cancer".into(),
            version: "0123456789abcdef".into(),
            content_sha256: "ab".repeat(32),
            row_count: 10,
            data_categories: vec!["phi".into()],
            legal_basis: "consent".into(),
        };
        assert_eq!(check_dataset_version(&good), Ok(LegalBasis::Consent));
        let with = |change: fn(&mut v1::DatasetVersion)| {
            let mut bad = good.clone();
            change(&mut bad);
            check_dataset_version(&bad).unwrap_err()
        };
        assert!(matches!(
            with(|d| d.dataset_id = "a@b".into()),
            DatasetVersionError::DatasetId(_)
        ));
        assert!(matches!(
            with(|d| d.version.clear()),
            DatasetVersionError::Version(_)
        ));
        assert!(matches!(
            with(|d| d.content_sha256 = "AB".repeat(32)),
            DatasetVersionError::ContentHash(_)
        ));
        assert!(matches!(
            with(|d| d.data_categories.push("PHI".into())),
            DatasetVersionError::Category(_)
        ));
        assert!(matches!(
            with(|d| d.legal_basis = "whim".into()),
            DatasetVersionError::LegalBasis(_)
        ));
    }
}
