//! Unit tests that need the module's internals: decoding, and the measured noise
//! of one keyswitch + bootstrap.

use tfhe::core_crypto::prelude::{
    DefaultRandomGenerator, EncryptionRandomGenerator, LweCiphertextOwned, Plaintext,
    allocate_and_encrypt_new_lwe_ciphertext, decrypt_lwe_ciphertext, new_seeder,
};

use super::encrypt::decode;
use super::evaluate::{Worker, lut};
use super::keygen;
use super::params::{PARAMS, modulus};

#[test]
fn decode_rounds_and_sign_extends() {
    for width in [2u32, 13, 24, 63] {
        let shift = 64 - width;
        let max = (1i64 << (width - 1)) - 1;
        for v in [0i64, 1, -1, max, -max - 1] {
            let phase = (v as u64) << shift;
            assert_eq!(decode(phase, width), v);
            let noise = (1u64 << (shift - 1)) - 1;
            assert_eq!(decode(phase.wrapping_add(noise), width), v);
            assert_eq!(decode(phase.wrapping_sub(noise), width), v);
        }
    }
}

/// Bootstraps known values and measures the output noise (printed as log2 of the
/// standard deviation relative to the torus). The evaluation's margins assume it
/// is below 2^-24.
#[test]
fn bootstrap_output_noise_is_small() {
    let (client, compressed) = keygen(Some(11)).unwrap();
    let eval = compressed.expand();
    let mut worker = Worker::new(&eval);
    let mut seeder = new_seeder();
    let mut generator =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder.as_mut());
    let out_shift = 50u32;
    let table = lut(|k| k << out_shift);
    let mut errors = Vec::new();
    let start = std::time::Instant::now();
    let runs = 24u64;
    for i in 0..runs {
        let m = i % 16;
        let ct: LweCiphertextOwned<u64> = allocate_and_encrypt_new_lwe_ciphertext(
            &client.big_key,
            Plaintext(m << 59),
            PARAMS.glwe_noise(),
            modulus(),
            &mut generator,
        );
        worker.keyswitch(ct.as_ref());
        let out = worker.bootstrap(&table);
        let out = LweCiphertextOwned::from_container(out, modulus());
        let phase = decrypt_lwe_ciphertext(&client.big_key, &out).0;
        let err = phase.wrapping_sub(m << out_shift) as i64;
        errors.push(err as f64);
    }
    let per = start.elapsed() / runs as u32;
    let var = errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64;
    let log2_std = var.sqrt().log2() - 64.0;
    println!("keyswitch + bootstrap: {per:?} each; output noise std 2^{log2_std:.1}");
    assert!(log2_std < -24.0, "bootstrap noise 2^{log2_std:.1}");
    // Correct value: the error is far below half a unit of 2^50.
    assert!(errors.iter().all(|e| e.abs() < (1u64 << 45) as f64));
}

mod argmax;
mod circuit_privacy;

/// The compact public key in an evaluation key is shape-checked before use: one
/// of another dimension is refused, naming it.
#[test]
fn an_evaluation_key_with_a_public_key_of_another_dimension_is_refused() {
    use tfhe::core_crypto::prelude::{LweDimension, SeededLweCompactPublicKey};

    use super::error::{Blob, HeError};
    use super::keys::CompressedEvaluationKey;
    use super::serialize::{self, SizeLimits};

    let (_, mut compressed) = keygen(Some(12)).unwrap();
    compressed.wire.public_key = SeededLweCompactPublicKey::new(
        0u64,
        LweDimension(1024),
        compressed.wire.public_key.compression_seed(),
        modulus(),
    );
    let bytes = serialize::to_bytes(&compressed.wire, Blob::EvaluationKey, u64::MAX).unwrap();
    match CompressedEvaluationKey::from_bytes(&bytes, &SizeLimits::default()) {
        Err(HeError::Mismatch {
            blob: Blob::EvaluationKey,
            what,
            expected: 2048,
            actual: 1024,
        }) => assert_eq!(what, "public key dimension"),
        other => panic!("expected a public-key dimension mismatch, got {other:?}"),
    }
}
