//! Property: every clipped update has L2 norm ≤ C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::dp_sgd::accumulate_clipped_gradient;
use cohort_privacy::{clip_l2, l2_norm};
use proptest::prelude::*;

proptest! {
    #[test]
    fn clipped_norm_never_exceeds_the_clip_norm(
        mut update in prop::collection::vec(-1e4_f32..1e4_f32, 1..300),
        clip_norm in 1e-3_f64..1e3,
    ) {
        let before = l2_norm(&update);
        let outcome = clip_l2(&mut update, clip_norm).unwrap();
        let after = l2_norm(&update);
        prop_assert!(after <= clip_norm, "norm {after} > C = {clip_norm}");
        if before <= clip_norm {
            prop_assert_eq!(outcome.scale, 1.0);
        } else {
            // Clipping lands on C, not far below it.
            prop_assert!(after >= clip_norm * (1.0 - 1e-5), "norm {after} ≪ C = {clip_norm}");
        }
    }

    #[test]
    fn accumulated_contribution_is_bounded(
        gradient in prop::collection::vec(-1e3_f32..1e3_f32, 1..100),
        clip_norm in 1e-2_f64..1e2,
    ) {
        let mut sum = vec![0.0_f32; gradient.len()];
        accumulate_clipped_gradient(&mut sum, &gradient, clip_norm).unwrap();
        prop_assert!(l2_norm(&sum) <= clip_norm);
    }
}
