//! Models built on the node SDK's contract ([`crate::model::FederatedModel`]),
//! each a plain burn module the federation knows only by its descriptor.
//!
//! - [`DigitsCnn`] (`digits_cnn.rs`): a small convolutional network over the
//!   8×8 digits, read as 1×8×8 images.

mod digits_cnn;

pub use digits_cnn::DigitsCnn;
