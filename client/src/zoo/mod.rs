//! Models built on the node SDK's contract ([`crate::model::FederatedModel`]),
//! each a plain burn module the federation knows only by its descriptor.
//!
//! - [`DigitsCnn`] (`digits_cnn.rs`): a small convolutional network over the
//!   8×8 digits, read as 1×8×8 images.
//! - [`FraudConv1d`] (`fraud_conv1d.rs`): a 1-D convolutional sequence model
//!   over accounts' last ten transactions (the synthetic
//!   `data/fraud_sequences.csv.gz`).

mod digits_cnn;
mod fraud_conv1d;

pub use digits_cnn::DigitsCnn;
pub use fraud_conv1d::FraudConv1d;
