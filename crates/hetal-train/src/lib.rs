//! Softmax-regression fine-tuning after HETAL (Lee et al., "HETAL: Efficient
//! Privacy-preserving Transfer Learning with Homomorphic Encryption", ICML 2023).
//!
//! - [`data`]: `.npy` features and labels, the dataset registry with HETAL's
//!   hyper-parameters, the client's preprocessing;
//! - [`softmax`]: ASoftmax's parameters and its float64 evaluation (the simulated
//!   path), exact softmax; [`relu`]: the polynomial of its row maximum;
//! - [`train`]: float64 training in `plain` and `simulated` modes — Nesterov's
//!   accelerated gradient, validation-based early stopping.
//!
//! - [`encrypted`]: encrypted ASoftmax, the compact weight refresh and the
//!   client/server protocol of encrypted training;
//! - [`session`]: the training session over a transport: the server's idempotent
//!   session with its state on disk, the client's training loop;
//! - [`model`]: the trained model on disk (`.npy` + JSON, readable without this crate);
//! - [`store`]: crash-safe, checked files (checkpoints, the secret-key cache).
//! - [`ablation`]: algorithm × activation × early stopping in float64 (`cargo xtask
//!   ablate`).
//! - [`chiang`]: Chiang's quadratic-gradient training with a sigmoid in place of the
//!   softmax (float64 `plain` and `simulated`; encrypted in [`encrypted::chiang`]), the
//!   comparison point for HETAL.
//! - [`cryptotl`]: CryptoTL-style encrypted inference through a server's frozen layers
//!   (Walch et al., 2022), with the client's head trained in plaintext.

pub mod ablation;
pub mod chiang;
pub mod cryptotl;
pub mod data;
pub mod encrypted;
pub mod error;
pub mod model;
pub mod relu;
pub mod session;
pub mod softmax;
pub mod store;
pub mod train;

pub use data::{DATASETS, Dataset, DatasetSpec, HyperParams, Preprocessor, dataset, one_hot};
pub use error::{Result, TrainError};
pub use softmax::{ASoftmaxParams, ASoftmaxVariant, PreparedASoftmax, RowMax, softmax_row};
pub use train::{
    Decision, EarlyStopping, EpochRecord, Nesterov, SoftmaxKind, TrainOutcome, accuracy,
    cross_entropy, train_float,
};
