//! A global model kept on disk by the node (`cohort-node run --models-dir DIR`),
//! so that after the federation the node can serve predictions with it
//! (`cohort-node inference serve`).
//!
//! One JSON file per model version, `DIR/{version}.model.json`: the model's
//! architecture, the federation's feature scaling its inputs need, and its
//! parameters. The version is a content address ([`model_version`]): reading a
//! file recomputes it from the architecture and parameters and refuses a file
//! whose content does not match its name or its recorded version, so a served
//! model is exactly the one the federation agreed on. Files are written to a
//! temporary name and renamed, so a crash never leaves half a model.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cohort_proto::model::{ParameterLayout, SavedSpec, decode_f32, encode_f32, model_version};
use cohort_proto::scaling::FeatureScaling;
use serde::{Deserialize, Serialize};

/// File name suffix of a saved model.
pub const MODEL_FILE_SUFFIX: &str = ".model.json";

/// Why a saved model could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SavedModelError {
    /// The file or its directory could not be created, written, renamed or
    /// read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a saved model's JSON (or the model could not be
    /// encoded).
    #[error("{}: not a saved model: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        reason: String,
    },
    /// The file parses but does not hold together: its content does not hash to
    /// its version, it is not named after its version, or its spec, scaling and
    /// parameters do not make a model.
    #[error("{}: {reason}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What does not hold together.
        reason: String,
    },
}

/// A global model version with what is needed to use it on raw features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// Content address: hex SHA-256 over the layout fingerprint and parameters.
    pub model_version: String,
    /// The model's architecture.
    pub spec: SavedSpec,
    /// Raw features are standardized with this before the model sees them.
    pub scaling: FeatureScaling,
    /// The flat parameter vector (wire layout).
    pub parameters: Vec<f32>,
}

impl SavedModel {
    /// Builds a saved model, computing its version; refuses parameters or a
    /// scaling that do not fit the spec.
    pub fn new(
        spec: SavedSpec,
        scaling: FeatureScaling,
        parameters: Vec<f32>,
    ) -> Result<Self, String> {
        let layout = ParameterLayout::of(&spec).map_err(|e| e.to_string())?;
        let encoded = encode_f32(&parameters);
        decode_f32(&encoded, layout.num_parameters()).map_err(|e| e.to_string())?;
        scaling
            .validate(spec.num_features as usize)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            model_version: model_version(&layout.fingerprint(), &encoded),
            spec,
            scaling,
            parameters,
        })
    }

    /// The model's parameter layout.
    pub fn layout(&self) -> Result<ParameterLayout, String> {
        ParameterLayout::of(&self.spec).map_err(|e| e.to_string())
    }

    /// Where this model is saved in `dir`.
    pub fn path_in(dir: &Path, version: &str) -> PathBuf {
        dir.join(format!("{version}{MODEL_FILE_SUFFIX}"))
    }

    /// Writes `dir/{version}.model.json` (creating `dir`), unless it exists: a
    /// version's content never changes. Returns the path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, SavedModelError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SavedModelError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = Self::path_in(dir, &self.model_version);
        if path.exists() {
            return Ok(path);
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| SavedModelError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let partial = dir.join(format!(".{}.partial", self.model_version));
        let mut file = fs::File::create(&partial).map_err(io(&partial))?;
        file.write_all(&json).map_err(io(&partial))?;
        file.sync_all().map_err(io(&partial))?;
        fs::rename(&partial, &path).map_err(io(&path))?;
        Ok(path)
    }

    /// Reads a saved model and checks that its content hashes to its version.
    pub fn load(path: &Path) -> Result<Self, SavedModelError> {
        let bytes = fs::read(path).map_err(|source| SavedModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        let read: Self = serde_json::from_slice(&bytes).map_err(|e| SavedModelError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let inconsistent = |reason: String| SavedModelError::Inconsistent {
            path: path.to_owned(),
            reason,
        };
        let rebuilt = Self::new(
            read.spec.clone(),
            read.scaling.clone(),
            read.parameters.clone(),
        )
        .map_err(inconsistent)?;
        if rebuilt.model_version != read.model_version {
            return Err(inconsistent(format!(
                "content hashes to version {}, the file says {}",
                rebuilt.model_version, read.model_version
            )));
        }
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(MODEL_FILE_SUFFIX));
        if named != Some(read.model_version.as_str()) {
            return Err(inconsistent(format!(
                "holds version {} but is not named after it",
                read.model_version
            )));
        }
        Ok(rebuilt)
    }

    /// Every saved model in `dir`, sorted by version.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, SavedModelError> {
        let io = |source| SavedModelError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_model = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(MODEL_FILE_SUFFIX) && !n.starts_with('.'));
            if is_model {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|p| Self::load(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_proto::model::initial_parameters;

    fn lr() -> SavedModel {
        let spec = SavedSpec::logistic_regression(3, 2);
        let layout = ParameterLayout::of(&spec).unwrap();
        let scaling = FeatureScaling {
            mean: vec![0.0, 1.0, 2.0],
            std: vec![1.0, 2.0, 3.0],
        };
        SavedModel::new(spec, scaling, initial_parameters(&layout, 5)).unwrap()
    }

    #[test]
    fn a_saved_model_reads_back_identical() {
        let dir = tempfile::tempdir().unwrap();
        let model = lr();
        let path = model.save(dir.path()).unwrap();
        assert_eq!(SavedModel::load(&path).unwrap(), model);
        assert_eq!(SavedModel::load_dir(dir.path()).unwrap(), vec![model]);
    }

    #[test]
    fn a_tampered_or_misnamed_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = lr();
        let path = model.save(dir.path()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        model.parameters[0] += 1.0;
        let tampered = serde_json::to_string(&model).unwrap();
        fs::write(&path, tampered).unwrap();
        let err = SavedModel::load(&path).unwrap_err();
        assert!(err.to_string().contains("hashes to version"), "{err}");
        let other = dir.path().join(format!("abc{MODEL_FILE_SUFFIX}"));
        fs::write(&other, text).unwrap();
        let err = SavedModel::load(&other).unwrap_err();
        assert!(err.to_string().contains("not named after it"), "{err}");
    }
}
