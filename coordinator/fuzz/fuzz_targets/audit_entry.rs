//! Parses arbitrary bytes as a stored audit-log entry, as `audit::verify` reads
//! one back from sled (`serde_json::from_slice::<AuditEntry>`).
//!
//! Checks that parsing never panics, and that the canonical encoding is stable:
//! an entry that parses encodes (`AuditEntry::to_bytes`, the bytes that become
//! the Merkle leaf) to bytes that parse back to the same entry and encode to the
//! same bytes again, so an entry read and re-written hashes to the same leaf.
#![no_main]

use cohort_coordinator::audit::AuditEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = serde_json::from_slice::<AuditEntry>(data) else {
        return;
    };
    let canonical = match entry.to_bytes() {
        Ok(bytes) => bytes,
        Err(e) => panic!("a parsed entry {entry:?} cannot be encoded: {e}"),
    };
    let again: AuditEntry = match serde_json::from_slice(&canonical) {
        Ok(again) => again,
        Err(e) => panic!(
            "the canonical bytes {:?} of a parsed entry do not parse: {e}",
            String::from_utf8_lossy(&canonical)
        ),
    };
    assert_eq!(again, entry, "an entry changed through its canonical bytes");
    assert_eq!(again.to_bytes().ok(), Some(canonical));
});
