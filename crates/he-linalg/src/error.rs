//! Errors of the linear-algebra layer.

use ckks::CkksError;

/// Errors of `he-linalg`. Shape and layout problems are reported before any
/// homomorphic work starts.
#[derive(Debug, thiserror::Error)]
pub enum LinalgError {
    /// An error of the CKKS layer (levels, scales, missing keys, encoding …).
    #[error(transparent)]
    Ckks(#[from] CkksError),
    /// Matrix dimensions that do not fit the operation (e.g. inner dimensions differ).
    #[error("shape error: {0}")]
    Shape(String),
    /// A packing that the operation does not accept, or that is inconsistent
    /// (unit shape not matching the slot count, wrong tiling period …).
    #[error("layout error: {0}")]
    Layout(String),
    /// Not enough levels left for the operation's multiplicative depth.
    #[error("level too low: the operation needs {needed} levels, the input has {level}")]
    LevelTooLow {
        /// Levels the operation consumes.
        needed: usize,
        /// The input's level.
        level: usize,
    },
}

/// `Result` with [`LinalgError`].
pub type Result<T> = std::result::Result<T, LinalgError>;
