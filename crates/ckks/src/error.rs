//! Error type of the `ckks` crate.

use thiserror::Error;

/// Errors returned by the CKKS layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CkksError {
    /// A slot count is not a power of two in `[1, N/2]`.
    #[error("slot count {slots} is not a power of two in [1, {max}]")]
    InvalidSlots {
        /// Requested slot count.
        slots: usize,
        /// Largest allowed slot count (N/2).
        max: usize,
    },
    /// A vector has the wrong length.
    #[error("length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An error from the arithmetic layer.
    #[error(transparent)]
    Math(#[from] he_math::MathError),
}

/// Result alias of the `ckks` crate.
pub type Result<T> = std::result::Result<T, CkksError>;
