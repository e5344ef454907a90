//! The checks `cohort-proto` applies to numbers that came over the network:
//! model specs (`ParameterLayout::of`), parameter vectors (`decode_f32`),
//! feature statistics (`FeatureStats::combine`) and scalings
//! (`FeatureScaling::validate`), on arbitrary values.
//!
//! Checks that none of them panics (no overflow, no out-of-bounds index) and that
//! what they accept is what they promise: a decoded vector has the expected
//! length, only finite values and re-encodes to the same bytes; a scaling the
//! coordinator combines passes the validation every node applies to it; a
//! validated scaling has the requested width, finite means and positive,
//! finite standard deviations.
#![no_main]

use cohort_proto::model::{
    DecodeError, ModelDescriptor, ParameterLayout, SavedSpec, decode_f32, encode_f32,
};
use cohort_proto::scaling::{FeatureScaling, FeatureStats};
use cohort_proto::v1;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0..=3)? {
        0 => layout(u),
        1 => parameters(u),
        2 => statistics(u),
        _ => scaling(u),
    }
}

/// A model spec as a config states it, and a descriptor as a coordinator
/// sends it in its `RegisterResponse`.
fn layout(u: &mut Unstructured<'_>) -> Result<()> {
    let kind = match u.int_in_range(0..=2)? {
        0 => "logistic_regression".to_owned(),
        1 => "mlp".to_owned(),
        _ => u.arbitrary()?,
    };
    let spec = SavedSpec {
        kind,
        num_features: u.arbitrary()?,
        num_classes: u.arbitrary()?,
        hidden_layers: u.arbitrary()?,
    };
    if let Ok(layout) = ParameterLayout::of(&spec) {
        let parameters = layout.num_parameters();
        assert_eq!(layout.num_bytes(), parameters * 4);
        assert_eq!(layout.layers.len(), spec.hidden_layers.len() + 1);
        let descriptor = layout.descriptor();
        assert_eq!(descriptor.num_parameters(), parameters);
        assert_eq!(ParameterLayout::from_descriptor(&descriptor).as_ref(), Ok(&layout));
    }
    // A descriptor from the wire: checked sizes never overflow, and its
    // protocol form reads back to itself.
    let wire = v1::ModelDescriptor {
        name: u.arbitrary()?,
        version: u.arbitrary()?,
        tensors: (0..u.int_in_range(0..=4)?)
            .map(|_| {
                Ok(v1::TensorSpec {
                    name: u.arbitrary()?,
                    shape: u.arbitrary()?,
                    dtype: u.int_in_range(0..=2)?,
                })
            })
            .collect::<Result<_>>()?,
    };
    if let Ok(descriptor) = ModelDescriptor::from_proto(&wire) {
        assert_eq!(descriptor.num_bytes(), descriptor.num_parameters() * 4);
        assert_eq!(ModelDescriptor::from_proto(&descriptor.to_proto()).as_ref(), Ok(&descriptor));
        descriptor.fingerprint();
    }
    Ok(())
}

/// Parameter bytes as a node uploads them or the coordinator serves them.
fn parameters(u: &mut Unstructured<'_>) -> Result<()> {
    let bytes: &[u8] = u.arbitrary()?;
    let expected_len = match u.int_in_range(0..=2)? {
        0 => bytes.len() / 4,
        1 => bytes.len() / 4 + 1,
        _ => u.arbitrary()?,
    };
    match decode_f32(bytes, expected_len) {
        Ok(values) => {
            assert_eq!(values.len(), expected_len);
            assert!(values.iter().all(|v| v.is_finite()));
            assert_eq!(encode_f32(&values), bytes);
        }
        Err(DecodeError::WrongLength { .. }) => {
            assert_ne!(Some(bytes.len()), expected_len.checked_mul(4));
        }
        Err(DecodeError::NotFinite { index }) => {
            let word = &bytes[4 * index..4 * index + 4];
            let value = f32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            assert!(!value.is_finite());
        }
    }
    Ok(())
}

/// Nodes' feature statistics, combined by the coordinator into the scaling it
/// sends every node.
fn statistics(u: &mut Unstructured<'_>) -> Result<()> {
    let width = u.int_in_range(0..=6)?;
    let mut parts = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        // Mostly the agreed width, sometimes another.
        let mut features = || -> Result<Vec<f64>> {
            let n = if u.ratio(1, 8)? {
                u.int_in_range(0..=8)?
            } else {
                width
            };
            (0..n).map(|_| u.arbitrary()).collect()
        };
        let sum = features()?;
        let sum_of_squares = features()?;
        parts.push(FeatureStats {
            count: u.arbitrary()?,
            sum,
            sum_of_squares,
        });
    }
    if let Ok(scaling) = FeatureStats::combine(&parts) {
        // Every part has the first one's width, or combining refuses.
        let width = parts[0].num_features();
        assert_eq!(scaling.num_features(), width);
        if let Err(e) = scaling.validate(width) {
            panic!("combined scaling {scaling:?} fails a node's validation: {e}");
        }
    }
    Ok(())
}

/// A scaling as a node receives it in a task.
fn scaling(u: &mut Unstructured<'_>) -> Result<()> {
    let scaling = FeatureScaling {
        mean: u.arbitrary()?,
        std: u.arbitrary()?,
    };
    let width = if u.arbitrary()? {
        scaling.mean.len()
    } else {
        u.int_in_range(0..=8)?
    };
    if scaling.validate(width).is_ok() {
        assert_eq!(scaling.mean.len(), width);
        assert_eq!(scaling.std.len(), width);
        assert!(scaling.mean.iter().all(|m| m.is_finite()));
        assert!(scaling.std.iter().all(|s| s.is_finite() && *s > 0.0));
    }
    Ok(())
}
