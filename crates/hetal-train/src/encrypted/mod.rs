//! Encrypted training (HETAL, Lee et al., ICML 2023): encrypted ASoftmax, the compact
//! weight refresh, and the client/server protocol, on `he-linalg` and `ckks`.
//!
//! - [`ops`]: canonical-scale arithmetic and the bootstrapping [`Refresher`];
//! - [`plan`]: [`StepPlan`], the level plan of a training step;
//! - [`softmax`]: [`EncryptedSoftmax`], ASoftmax on ciphertexts;
//! - [`weights`]: [`WeightRefresh`], pack, bootstrap, re-tile;
//! - [`protocol`]: [`Client`], [`Server`] and their messages;
//! - [`presets`]: parameter sets for training.

pub mod ops;
pub mod plan;
pub mod presets;
pub mod protocol;
pub mod softmax;
pub mod weights;

pub use ops::{BootstrapStats, Ops, Refresher};
pub use plan::StepPlan;
pub use protocol::{
    Client, EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback,
    Server, SessionConfig, SessionSetup, StepTimings,
};
pub use softmax::EncryptedSoftmax;
pub use weights::WeightRefresh;
