//! What names a model: the fingerprint of its layout (so that a node and a
//! coordinator that disagree on the architecture find out before any
//! training) and the content address of one version of its parameters.

use super::ParameterLayout;

impl ParameterLayout {
    /// SHA-256 over the canonical text `cohort-dense-v1;IxO;IxO;...`.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut canonical = String::from("cohort-dense-v1");
        for layer in &self.layers {
            canonical.push_str(&format!(";{}x{}", layer.inputs, layer.outputs));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
}

/// The content address of a model version: hex SHA-256 over its fingerprint and
/// its encoded parameters.
pub fn model_version(fingerprint: &[u8; 32], encoded: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(fingerprint);
    ctx.update(encoded);
    hex_lower(ctx.finish().as_ref())
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}
