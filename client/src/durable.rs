//! Files a node must not lose or half-write: its privacy ledgers and its list
//! of withdrawn models. Written to a temporary file, fsynced, renamed into
//! place and the folder fsynced, so a crash leaves the old file or the new.

use std::io::Write;
use std::path::Path;

/// Writes `value` as pretty JSON to `path` durably; the error names the step
/// and the file.
pub(crate) fn write_json_atomically<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    let mut file =
        std::fs::File::create(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("syncing the folder {}: {e}", folder.display()))
}
