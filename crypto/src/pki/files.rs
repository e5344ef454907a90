//! File handling for keys and certificates: keys are created 0600 and never
//! overwritten; their text is held in `Zeroizing` buffers.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::PkiError;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(super) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(io_error(dir))
}

/// Writes a private key readable by its owner only. Fails if the file exists.
pub fn write_private_key(path: &Path, pem: &Zeroizing<String>) -> Result<(), PkiError> {
    write_secret_file(path, pem.as_bytes())
}

/// Writes secret bytes (any key) to a new file readable by its owner only (0600).
/// Fails if the file exists.
pub fn write_secret_file(path: &Path, secret: &[u8]) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(secret).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

pub(super) fn write_public(path: &Path, pem: &str) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(pem.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

pub(super) fn read_public(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_error(path))
}

/// Reads a PEM private key into a buffer that is wiped when dropped.
pub fn read_key_pem(path: &Path) -> Result<Zeroizing<String>, PkiError> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(io_error(path))
}
