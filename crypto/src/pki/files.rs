//! File handling for keys and certificates: keys are created 0600 and never
//! overwritten; their text is held in `Zeroizing` buffers.
//!
//! Threat model: another local account on the host (or a backup, a shared
//! volume, a container image layer) that can read a private key can impersonate
//! its holder. So a key is not only *written* 0600: every reader of a private
//! key ([`read_secret_file`], and through it [`read_key_pem`]) refuses a file
//! whose group or other permission bits are set, as ssh does, rather than use a
//! key that may already be known to others. The mode is read from the opened
//! file, so the file checked is the file read.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// Permission bits a private key file must not have: any access by its group
/// or by others.
const SHARED_BITS: u32 = 0o077;

/// A private key file that its group or others may access, refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is accessible by group or others (mode {mode:03o}); a private key must be \
     readable by its owner only: run `chmod 600 {}`",
    path.display(),
    path.display()
)]
pub struct InsecureKeyFile {
    /// The key file.
    pub path: PathBuf,
    /// Its permission bits (`mode & 0o777`).
    pub mode: u32,
}

/// Refuses `mode` (a file's permission bits) for the private key at `path` if
/// its group or others have any access. The one check every key reader uses.
pub fn check_key_mode(path: &Path, mode: u32) -> Result<(), InsecureKeyFile> {
    let mode = mode & 0o777;
    if mode & SHARED_BITS != 0 {
        return Err(InsecureKeyFile {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret file (any private key) into a buffer wiped when dropped,
/// after [`check_key_mode`] on the opened file: a file open to group or others
/// is refused with [`PkiError::InsecureKeyFile`].
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let metadata = file.metadata().map_err(io_error(path))?;
    check_key_mode(path, metadata.permissions().mode())?;
    // Room for the whole file up front, so no reallocation leaves a copy behind.
    let capacity = usize::try_from(metadata.len())
        .unwrap_or(0)
        .saturating_add(1);
    let mut secret = Zeroizing::new(Vec::with_capacity(capacity));
    file.read_to_end(&mut secret).map_err(io_error(path))?;
    Ok(secret)
}

/// Reads a PEM private key into a buffer that is wiped when dropped. Refuses a
/// file open to group or others (see [`read_secret_file`]).
pub fn read_key_pem(path: &Path) -> Result<Zeroizing<String>, PkiError> {
    let bytes = read_secret_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| PkiError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}
