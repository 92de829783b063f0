//! CryptoTL-style transfer learning (Walch, Sousa, Helminger, Lindstaedt, Rechberger,
//! Trügler, "CryptoTL: Private, Efficient and Secure Transfer Learning", 2022): the
//! *server* owns a pre-trained network and keeps it private; the *client* encrypts its
//! features, the server evaluates its frozen layers on the ciphertexts with plaintext
//! weights and returns encrypted outputs, and the client decrypts them and fine-tunes a
//! classifier in plaintext. Training never happens under encryption (unlike HETAL,
//! [`crate::encrypted`]); the price is that the client sees the frozen layers' outputs
//! and the server's weights are exposed through them, which the optional
//! differential-privacy noise on the answers limits.
//!
//! - [`network`]: the frozen network (dense, square, dense) and its file;
//! - [`mod@pretrain`]: the server's plaintext pre-training on its share of a dataset, the
//!   split that keeps the client's share unseen;
//! - [`dp`]: the analytic Gaussian mechanism;
//! - [`inference`]: the encrypted forward pass (client and server sides, presets);
//! - [`experiment`]: one end-to-end run with accuracies against plaintext baselines
//!   (`cargo xtask cryptotl`).

pub mod dp;
pub mod experiment;
pub mod inference;
pub mod network;
pub mod pretrain;

pub use dp::GaussianMechanism;
pub use experiment::{ExperimentConfig, ExperimentReport};
pub use inference::{DpConfig, InferenceClient, InferencePreset, InferenceServer};
pub use network::{FrozenNetwork, Provenance, spectral_norm_bound};
pub use pretrain::{PretrainConfig, PretrainReport, normalize_rows, pretrain, transfer_split};
