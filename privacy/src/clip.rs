//! L2 clipping of a model update or a per-example gradient.
//!
//! Promise: after [`clip_l2`] the update's L2 norm, computed in f64 over the
//! stored f32 values, is at most the clip norm C. This bounds one client's
//! (DP-FedAvg, McMahan et al., ICLR 2018) or one example's (DP-SGD, Abadi et
//! al., CCS 2016) contribution to a sum, which is the sensitivity the
//! Gaussian noise and the accountants assume.

use crate::error::{Result, check_finite, check_positive};

/// What clipping did to one vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipOutcome {
    /// L2 norm before clipping.
    pub original_norm: f64,
    /// Factor the vector was multiplied by (1.0 when it was within C).
    pub scale: f64,
}

impl ClipOutcome {
    /// Whether the vector had to be shrunk. Adaptive clipping counts the
    /// clients for which this is false (Andrew et al., NeurIPS 2021).
    pub fn was_clipped(&self) -> bool {
        self.scale < 1.0
    }
}

/// L2 norm of an f32 vector, accumulated in f64.
pub fn l2_norm(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

/// Scales `update` in place so that its L2 norm is at most `clip_norm`.
///
/// Rejects a non-positive clip norm and updates holding NaN or ±∞ (a NaN
/// would otherwise pass every `norm > C` test and escape clipping).
pub fn clip_l2(update: &mut [f32], clip_norm: f64) -> Result<ClipOutcome> {
    check_positive("clip_norm", clip_norm)?;
    check_finite("update", update)?;
    let original_norm = l2_norm(update);
    if original_norm <= clip_norm {
        return Ok(ClipOutcome {
            original_norm,
            scale: 1.0,
        });
    }
    let mut scale = clip_norm / original_norm;
    scale_in_place(update, scale);
    // Rounding each coordinate to f32 can leave the norm a few ulps above C;
    // shrink again by the observed overshoot until the bound holds exactly.
    for _ in 0..4 {
        let norm = l2_norm(update);
        if norm <= clip_norm {
            break;
        }
        let extra = clip_norm / norm * (1.0 - f64::from(f32::EPSILON));
        scale_in_place(update, extra);
        scale *= extra;
    }
    Ok(ClipOutcome {
        original_norm,
        scale,
    })
}

fn scale_in_place(values: &mut [f32], scale: f64) {
    for v in values.iter_mut() {
        *v = (f64::from(*v) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::PrivacyError;

    #[test]
    fn short_vectors_are_left_alone() {
        let mut v = vec![0.3_f32, 0.4];
        let out = clip_l2(&mut v, 1.0).unwrap();
        assert_eq!(v, vec![0.3, 0.4]);
        assert!(!out.was_clipped());
        assert!((out.original_norm - 0.5).abs() < 1e-7);
    }

    #[test]
    fn long_vectors_are_scaled_to_the_clip_norm() {
        let mut v = vec![3.0_f32, 4.0];
        let out = clip_l2(&mut v, 1.0).unwrap();
        assert!(out.was_clipped());
        assert!((l2_norm(&v) - 1.0).abs() < 1e-6);
        assert!(l2_norm(&v) <= 1.0);
        assert!((f64::from(v[0]) - 0.6).abs() < 1e-6);
    }

    #[test]
    fn nan_and_bad_clip_norms_are_rejected() {
        let mut v = vec![1.0_f32, f32::NAN];
        assert_eq!(
            clip_l2(&mut v, 1.0),
            Err(PrivacyError::NonFinite {
                parameter: "update",
                index: 1
            })
        );
        let mut w = vec![1.0_f32];
        assert!(matches!(
            clip_l2(&mut w, 0.0),
            Err(PrivacyError::InvalidParameter {
                parameter: "clip_norm",
                ..
            })
        ));
    }
}
