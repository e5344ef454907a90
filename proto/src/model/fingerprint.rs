//! What names one version of a model's parameters: its content address
//! under the model's fingerprint ([`super::ModelDescriptor::fingerprint`]).

/// The content address of a model version: hex SHA-256 over its fingerprint and
/// its encoded parameters.
pub fn model_version(fingerprint: &[u8; 32], encoded: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(fingerprint);
    ctx.update(encoded);
    hex::encode(ctx.finish().as_ref())
}
