//! The requester's key folder: `client.key` (the TFHE secret key, mode 0600,
//! never sent anywhere) and `evaluation.key` (the compressed evaluation key it
//! uploads to nodes; public in the sense that it cannot decrypt).
//!
//! Files are never overwritten; the folder is created 0700. Reading refuses a
//! client key that others may read (as ssh does), and a pair whose evaluation key
//! was not generated with the client key (their key ids differ). Secret bytes are
//! held in zeroizing buffers.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cohort_crypto::he::{ClientKey, CompressedEvaluationKey, HeError, KeyId, SizeLimits, keygen};
use cohort_crypto::pki::{InsecureKeyFile, PkiError, read_secret_file, write_secret_file};

/// The secret key's file name in a key folder.
pub const CLIENT_KEY_FILE: &str = "client.key";
/// The compressed evaluation key's file name in a key folder.
pub const EVALUATION_KEY_FILE: &str = "evaluation.key";

/// What went wrong with a key folder, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A key file or the folder could not be created, written, inspected or
    /// read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The client key could not be written as a private file.
    #[error("{}: {source}", path.display())]
    Write {
        /// The client key's file.
        path: PathBuf,
        /// The error writing it.
        #[source]
        source: PkiError,
    },
    /// A key file already exists; keys are never overwritten.
    #[error("{} already exists; refusing to overwrite keys", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The client key file is open to group or others (mode not 0600 or
    /// stricter); it is not read.
    #[error(transparent)]
    Insecure(#[from] InsecureKeyFile),
    /// The client key file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The client key's file.
        path: PathBuf,
        /// The error reading it.
        #[source]
        source: PkiError,
    },
    /// A key could not be generated, serialized or parsed.
    #[error("{}: {source}", path.display())]
    Key {
        /// The key's file.
        path: PathBuf,
        /// The homomorphic-encryption library's error.
        #[source]
        source: HeError,
    },
    #[error(
        "the evaluation key {evaluation} was not generated with the client key (made for {client})"
    )]
    /// The evaluation key on file does not belong to the client key.
    Mismatch {
        /// The client key's id (hex).
        client: String,
        /// The evaluation key's id (hex).
        evaluation: String,
    },
}

/// A requester's keys, read from its folder.
#[derive(Debug)]
pub struct RequesterKeys {
    /// The secret client key: encrypts inputs and decrypts answers.
    pub client: ClientKey,
    /// The serialized compressed evaluation key, as uploaded.
    pub evaluation_key: Vec<u8>,
}

impl RequesterKeys {
    /// The id of this key pair, under which nodes cache its evaluation key.
    pub fn key_id(&self) -> KeyId {
        self.client.key_id()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Generates a fresh key pair (seeded by the operating system) into `dir`.
pub fn generate_keys(dir: &Path) -> Result<(KeyId, u64), KeyFileError> {
    let client_path = dir.join(CLIENT_KEY_FILE);
    let eval_path = dir.join(EVALUATION_KEY_FILE);
    for path in [&client_path, &eval_path] {
        if path.exists() {
            return Err(KeyFileError::Exists { path: path.clone() });
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let (client, compressed) = keygen(None).map_err(|source| KeyFileError::Key {
        path: eval_path.clone(),
        source,
    })?;
    write_keys(dir, &client, &compressed)?;
    Ok((
        client.key_id(),
        fs::metadata(&eval_path).map_err(io(&eval_path))?.len(),
    ))
}

/// Writes a key pair into an existing folder (the client key 0600).
pub fn write_keys(
    dir: &Path,
    client: &ClientKey,
    compressed: &CompressedEvaluationKey,
) -> Result<(), KeyFileError> {
    let client_path = dir.join(CLIENT_KEY_FILE);
    let eval_path = dir.join(EVALUATION_KEY_FILE);
    let eval_bytes = compressed
        .to_bytes(&SizeLimits::default())
        .map_err(|source| KeyFileError::Key {
            path: eval_path.clone(),
            source,
        })?;
    write_secret_file(&client_path, &client.to_secret_bytes()).map_err(|source| {
        KeyFileError::Write {
            path: client_path.clone(),
            source,
        }
    })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&eval_path)
        .map_err(io(&eval_path))?;
    file.write_all(&eval_bytes).map_err(io(&eval_path))?;
    file.sync_all().map_err(io(&eval_path))
}

/// Reads the key pair of `dir` and checks it belongs together.
pub fn read_keys(dir: &Path) -> Result<RequesterKeys, KeyFileError> {
    let client_path = dir.join(CLIENT_KEY_FILE);
    let eval_path = dir.join(EVALUATION_KEY_FILE);
    let secret = read_secret_file(&client_path).map_err(|source| match source {
        PkiError::InsecureKeyFile(insecure) => KeyFileError::Insecure(insecure),
        source => KeyFileError::Read {
            path: client_path.clone(),
            source,
        },
    })?;
    let client = ClientKey::from_secret_bytes(&secret).map_err(|source| KeyFileError::Key {
        path: client_path.clone(),
        source,
    })?;
    let evaluation_key = fs::read(&eval_path).map_err(io(&eval_path))?;
    let evaluation = KeyId::of(&evaluation_key);
    if evaluation != client.key_id() {
        return Err(KeyFileError::Mismatch {
            client: client.key_id().to_hex(),
            evaluation: evaluation.to_hex(),
        });
    }
    Ok(RequesterKeys {
        client,
        evaluation_key,
    })
}
