//! What a node tells the coordinator about the data it trains on, for the
//! audit log and data lineage: a name, a content hash that changes whenever a
//! row does (so removing a data subject's rows yields a new version), the row
//! count, the kinds of data and the GDPR Art. 6(1) legal basis for using them.
//! None of the rows leave the node.

use cohort_proto::v1;
use ring::digest::{Context, SHA256};

use super::Dataset;
pub use cohort_proto::dataset::LegalBasis;

/// Domain label hashed first, so the digest is of this encoding and no other.
const CONTENT_LABEL: &[u8] = b"cohort-dataset-v1";

/// Hex digits of the content hash that name a version.
const VERSION_DIGITS: usize = 16;

/// How the node describes its training data; the version comes from the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetDescriptor {
    /// The node's name for the data set, the same across its versions.
    pub dataset_id: String,
    /// The GDPR Art. 6(1) basis the node processes the data under.
    pub legal_basis: LegalBasis,
    /// Lowercase kinds of data, e.g. `phi`, `personal`, `financial`.
    pub data_categories: Vec<String>,
}

impl Default for DatasetDescriptor {
    fn default() -> Self {
        Self {
            dataset_id: "training-data".to_owned(),
            legal_basis: LegalBasis::default(),
            data_categories: vec!["personal".to_owned()],
        }
    }
}

impl DatasetDescriptor {
    /// The version of `train` under this description.
    pub fn version_of(&self, train: &Dataset) -> v1::DatasetVersion {
        let content = content_sha256(train);
        v1::DatasetVersion {
            dataset_id: self.dataset_id.clone(),
            version: content[..VERSION_DIGITS].to_owned(),
            content_sha256: content,
            row_count: train.len() as u64,
            data_categories: self.data_categories.clone(),
            legal_basis: self.legal_basis.as_str().to_owned(),
        }
    }
}

/// Hex SHA-256 over the label, the feature count (u64 big-endian), then every
/// row in order: its features as f32 little-endian bits, then its label as u32
/// little-endian. The same rows in the same order always give the same hash.
pub fn content_sha256(data: &Dataset) -> String {
    let mut context = Context::new(&SHA256);
    context.update(CONTENT_LABEL);
    context.update(&(data.num_features() as u64).to_be_bytes());
    for (features, label) in data.rows() {
        for x in features {
            context.update(&x.to_bits().to_le_bytes());
        }
        context.update(&label.to_le_bytes());
    }
    hex_digest(context.finish().as_ref())
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: &[([f32; 2], u32)]) -> Dataset {
        Dataset::new(
            2,
            rows.iter().flat_map(|(x, _)| *x).collect(),
            rows.iter().map(|(_, y)| *y).collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_hash_follows_every_row_and_names_the_version() {
        let base = data(&[([1.0, 2.0], 0), ([3.0, 4.0], 1)]);
        let hash = content_sha256(&base);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, content_sha256(&base.clone()));
        for changed in [
            data(&[([1.0, 2.0], 0)]),
            data(&[([1.0, 2.0], 0), ([3.0, 4.0], 0)]),
            data(&[([1.0, 2.5], 0), ([3.0, 4.0], 1)]),
            data(&[([3.0, 4.0], 1), ([1.0, 2.0], 0)]),
        ] {
            assert_ne!(content_sha256(&changed), hash, "{changed:?}");
        }
        let version = DatasetDescriptor::default().version_of(&base);
        assert_eq!(version.version, hash[..16]);
        assert_eq!(version.row_count, 2);
        assert_eq!(version.legal_basis, "consent");
    }
}
