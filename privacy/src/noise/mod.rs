//! Noise for the placements of DP-FedAvg and for DP-SGD.
//!
//! - [`grid_gaussian`]: exact central noise — contributions rounded to a
//!   grid, summed as integers, plus exact N_ℤ(0, σ²Δ²) noise — for the
//!   coordinator's central placement (McMahan et al., ICLR 2018), safe from
//!   floating-point attacks.
//! - [`discrete_gaussian`]: exact integer noise N_ℤ(0, σ²) (Canonne, Kamath,
//!   Steinke, NeurIPS 2020), which each node adds to its quantized update
//!   before secure-aggregation masking in the distributed placement
//!   (Kairouz, Liu, Steinke, ICML 2021), and which [`grid_gaussian`] uses.
//! - [`gaussian`]: continuous Gaussian noise in floating point, for DP-SGD's
//!   per-step noise on a node (Abadi et al., CCS 2016) and the adaptive
//!   clipping count; not hardened against floating-point attacks.
//!
//! Randomness always comes from the caller, and the samplers require a
//! [`rand::CryptoRng`]: privacy noise drawn from a predictable generator is no
//! noise at all, and the bound keeps `SmallRng`-style generators out while
//! still letting tests seed a `ChaCha20Rng`.
//!
//! Why not the `opendp` crate's samplers (see `README.md` for the numbers):
//! opendp 0.16 draws entropy from its own source (OpenSSL's
//! `RAND_priv_bytes` with its `use-openssl` feature, which also builds
//! OpenSSL from source; or `rand 0.7`'s `thread_rng` without it, which opendp
//! itself documents as insecure). It takes no caller RNG, so it could not be
//! seeded for tests or driven by a CSPRNG of our choosing. The discrete
//! Gaussian here follows the same published algorithm (CKS20, Algorithms
//! 1–3) with exact rational arithmetic, and opendp checks its privacy map in
//! the tests (`tests/opendp_cross_check.rs`).

pub mod discrete_gaussian;
pub mod gaussian;
pub mod grid_gaussian;
