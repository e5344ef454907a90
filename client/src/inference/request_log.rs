//! The node's record of who asked it for what: one JSON line per event, appended
//! to a file and mirrored to tracing.
//!
//! Why: the model is the consortium's asset and the node answers people outside
//! it, so the operator must be able to say who used which model version, when and
//! how often. What is recorded is the requester's identity *as its mTLS
//! certificate says* (never a claim from the request), the certificate's
//! SHA-256, the model version, the key id, the number of inputs, and refusals with
//! their reason. Never recorded: ciphertexts, evaluation keys, scores. The file is
//! opened in append mode and each line is written with one `write_all` under a
//! lock, so concurrent requests do not interleave lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RequestEvent {
    /// An evaluation key was accepted and cached.
    KeyRegistered {
        /// The key's id (hex).
        key_id: String,
        /// The key's size in bytes, as uploaded.
        bytes: u64,
    },
    /// A batch of encrypted inputs passed every check and is being evaluated.
    Predict {
        /// The model evaluated.
        model_version: String,
        /// The id (hex) of the key the inputs are encrypted under.
        key_id: String,
        /// Encrypted inputs in the batch.
        inputs: usize,
    },
    /// A request was refused.
    Refused {
        /// The call refused (`Predict`, `RegisterKey`, …).
        rpc: String,
        /// The gRPC status code returned, by name.
        code: String,
        /// Why it was refused.
        reason: String,
    },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// When it happened, in Unix milliseconds.
    pub unix_ms: u64,
    /// `cohort://ROLE/NAME` from the client certificate.
    pub requester: String,
    /// Hex SHA-256 of the requester's certificate.
    pub certificate_sha256: String,
    /// What happened.
    #[serde(flatten)]
    pub event: RequestEvent,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("request log {}: {source}", path.display())]
pub struct RequestLogError {
    /// The log file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// The append-only JSON-lines file (or tracing only).
#[derive(Debug)]
pub struct RequestLog {
    file: Option<(PathBuf, Mutex<File>)>,
}

impl RequestLog {
    /// Appends to `path` (created if missing).
    pub fn open(path: &Path) -> Result<Self, RequestLogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| RequestLogError {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file: Some((path.to_owned(), Mutex::new(file))),
        })
    }

    /// Records to tracing only.
    pub fn tracing_only() -> Self {
        Self { file: None }
    }

    /// Records one event for `requester`.
    pub fn record(&self, requester: &str, certificate_sha256: &str, event: RequestEvent) {
        let record = RequestRecord {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            requester: requester.to_owned(),
            certificate_sha256: certificate_sha256.to_owned(),
            event,
        };
        match &record.event {
            RequestEvent::Refused { rpc, code, reason } => {
                tracing::warn!(requester, rpc, code, reason, "inference request refused");
            }
            RequestEvent::KeyRegistered { key_id, bytes } => {
                tracing::info!(requester, key_id, bytes, "evaluation key registered");
            }
            RequestEvent::Predict {
                model_version,
                key_id,
                inputs,
            } => {
                tracing::info!(
                    requester,
                    model_version,
                    key_id,
                    inputs,
                    "encrypted prediction"
                );
            }
        }
        let Some((path, file)) = &self.file else {
            return;
        };
        let mut line = match serde_json::to_vec(&record) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "request record not serializable");
                return;
            }
        };
        line.push(b'\n');
        let written = match file.lock() {
            Ok(mut file) => file.write_all(&line).and_then(|()| file.flush()),
            Err(_) => Err(std::io::Error::other("request log lock poisoned")),
        };
        if let Err(error) = written {
            tracing::error!(path = %path.display(), %error, "cannot append to the request log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let log = RequestLog::open(&path).unwrap();
        log.record(
            "cohort://requester/clinic-x",
            "ab",
            RequestEvent::Predict {
                model_version: "v1".into(),
                key_id: "k".into(),
                inputs: 3,
            },
        );
        drop(log);
        let log = RequestLog::open(&path).unwrap();
        log.record(
            "cohort://requester/clinic-x",
            "ab",
            RequestEvent::Refused {
                rpc: "Predict".into(),
                code: "NotFound".into(),
                reason: "no such model".into(),
            },
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "predict");
        assert_eq!(lines[0]["inputs"], 3);
        assert_eq!(lines[0]["requester"], "cohort://requester/clinic-x");
        assert_eq!(lines[1]["event"], "refused");
        assert_eq!(lines[1]["code"], "NotFound");
    }
}
