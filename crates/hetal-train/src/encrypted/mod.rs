//! Encrypted training (HETAL, Lee et al., ICML 2023): encrypted ASoftmax, the compact
//! weight refresh, and the client/server protocol, on `he-linalg` and `ckks`.
//!
//! - [`ops`]: canonical-scale arithmetic and the bootstrapping [`Refresher`];
//! - [`plan`]: [`StepPlan`], the level plan of a training step;
//! - [`softmax`]: [`EncryptedSoftmax`], ASoftmax on ciphertexts;
//! - [`weights`]: [`WeightRefresh`], pack, bootstrap, re-tile;
//! - [`config`]: [`SessionConfig`], what both parties agree on;
//! - [`messages`]: what they exchange, with byte and streamed forms;
//! - [`client`]: [`Client`], the data owner (secret key);
//! - [`server`]: [`Server`], the training party (evaluation keys only);
//! - [`presets`]: parameter sets for training;
//! - [`chiang`]: Chiang's quadratic-gradient training on ciphertexts ([`ChiangServer`]).

pub mod chiang;
pub mod client;
pub mod config;
pub mod messages;
pub mod ops;
pub mod plan;
pub mod presets;
pub mod server;
pub mod softmax;
pub mod weights;

pub use chiang::{ChiangRun, ChiangServer};
pub use client::{Client, Validation};
pub use config::SessionConfig;
/// The noise-flooding policy of [`Client`] decryptions (`ckks::flooding`).
pub use he_linalg::ckks::{Flooding, FloodingReport};
pub use messages::{
    EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback,
    SessionSetup, SetupHeader, StepTimings,
};
pub use ops::{BootstrapStats, Ops, Refresher};
pub use plan::StepPlan;
pub use server::{Server, ServerOptions};
pub use softmax::EncryptedSoftmax;
pub use weights::WeightRefresh;
