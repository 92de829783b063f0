//! Errors of the training crate.

/// Errors of `hetal-train`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Reading a dataset file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A dataset file has the wrong type, shape or content.
    #[error("dataset: {0}")]
    Data(String),
    /// Invalid hyper-parameters or softmax parameters.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An error of the encrypted linear algebra.
    #[error(transparent)]
    Linalg(#[from] he_linalg::LinalgError),
    /// An error of the CKKS layer (levels, keys, bootstrapping, serialization).
    #[error(transparent)]
    Ckks(#[from] he_linalg::CkksError),
    /// A malformed or mismatched protocol message.
    #[error("message: {0}")]
    Message(String),
    /// The transport between client and server failed, or the other side refused a
    /// request (its message).
    #[error("transport: {0}")]
    Transport(String),
    /// A stored file (checkpoint, key cache) is corrupted, of another kind or session,
    /// or not safe to read ([`crate::store`]).
    #[error("{path}: {reason}")]
    Store {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
