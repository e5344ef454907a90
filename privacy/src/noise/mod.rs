//! Noise for the two placements of DP-FedAvg.
//!
//! - [`gaussian`]: continuous Gaussian noise of std σ·C on an f32 sum — the
//!   central placement (McMahan et al., ICLR 2018) and DP-SGD (Abadi et al.,
//!   CCS 2016).
//! - [`discrete_gaussian`]: exact integer noise N_ℤ(0, σ²) that each node adds
//!   to its quantized update before secure-aggregation masking — the
//!   distributed placement (Kairouz, Liu, Steinke, ICML 2021), sampled with
//!   the exact algorithm of Canonne, Kamath, Steinke (NeurIPS 2020).
//!
//! Randomness always comes from the caller, and the samplers require a
//! [`rand::CryptoRng`]: privacy noise drawn from a predictable generator is no
//! noise at all, and the bound keeps `SmallRng`-style generators out while
//! still letting tests seed a `ChaCha20Rng`.
//!
//! Why not the `opendp` crate's samplers: opendp 0.16 draws entropy from its
//! own source (OpenSSL's `RAND_priv_bytes` with its default features, or
//! `rand 0.7`'s `thread_rng` without them, which opendp itself documents as
//! insecure). It takes no caller RNG, so it could not be seeded for tests or
//! driven by a CSPRNG of our choosing. The discrete Gaussian here follows the
//! same published algorithm (CKS20, Algorithms 1–3) with exact rational
//! arithmetic. (Build cost was not the obstacle: opendp 0.16 with
//! `default-features = false` compiled in 86 s cold here, plus 25 s for the
//! `contrib` feature its measurements need.)

pub mod discrete_gaussian;
pub mod gaussian;
