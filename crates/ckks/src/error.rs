//! Error type of the `ckks` crate.

use thiserror::Error;

/// Errors returned by the CKKS layer. Bad input always yields one of these, never a panic
/// or a silently wrong result.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CkksError {
    /// A parameter literal failed validation.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// Parameters that ask for 128-bit security exceed the bound of their secret
    /// distribution, or no published bound covers it (see [`crate::security`]).
    #[error("insecure parameters: {0}")]
    InsecureParameters(String),
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
    /// A value cannot be encoded: not finite, or too large for the modulus at this level
    /// and scale.
    #[error("value cannot be encoded: {0}")]
    InvalidValue(String),
    /// Reading or writing a stream failed (the message of the `std::io::Error`).
    #[error("I/O error: {0}")]
    Io(String),
    /// A level is above the parameters' maximum level.
    #[error("level {level} is above the maximum level {max}")]
    LevelOutOfRange {
        /// Requested level.
        level: usize,
        /// Maximum level `L`.
        max: usize,
    },
    /// Two operands are at different levels.
    #[error("level mismatch: {0} vs {1} (bring them to one level first)")]
    LevelMismatch(usize, usize),
    /// Two operands have different scales.
    #[error("scale mismatch: 2^{:.6} vs 2^{:.6}", .0.log2(), .1.log2())]
    ScaleMismatch(f64, f64),
    /// Two operands have different slot counts.
    #[error("slot-count mismatch: {0} vs {1}")]
    SlotsMismatch(usize, usize),
    /// An operation needs more levels than the ciphertext has.
    #[error("level too low: the operation needs level ≥ {needed}, the operand is at {level}")]
    LevelTooLow {
        /// Minimum level needed.
        needed: usize,
        /// Level of the operand.
        level: usize,
    },
    /// An operation needs a degree-1 ciphertext (two parts) and got a larger one.
    #[error("ciphertext of degree {0}: relinearize first")]
    DegreeTooHigh(usize),
    /// The relinearization key is not in the evaluation-key set.
    #[error("the evaluation-key set has no relinearization key")]
    MissingRelinearizationKey,
    /// Bootstrapping with encapsulation needs [`crate::EncapsulationKeys`].
    #[error(
        "the evaluation-key set has no sparse-secret encapsulation keys (of Hamming weight {0})"
    )]
    MissingEncapsulationKeys(usize),
    /// No Galois key for the needed element.
    #[error("no Galois key for element {element} (rotation by {rotation:?})")]
    MissingGaloisKey {
        /// The Galois element `5^k mod 2N` (or `2N−1` for conjugation).
        element: usize,
        /// The rotation it implements, `None` for conjugation.
        rotation: Option<i64>,
    },
    /// A switching key generated for levels up to `key_level` only (see
    /// [`crate::EvaluationKeyRequest::rotations_up_to`]) was used at a higher level.
    #[error("the switching key serves levels ≤ {key_level}, the ciphertext is at level {level}")]
    KeyLevelTooLow {
        /// The highest level the key was generated for.
        key_level: usize,
        /// Level of the ciphertext.
        level: usize,
    },
    /// Objects from different parameter sets were combined.
    #[error("parameter mismatch: {0}")]
    ParameterMismatch(String),
    /// Serialized bytes could not be decoded or failed validation.
    #[error("malformed serialized data: {0}")]
    Malformed(String),
    /// An error from the arithmetic layer.
    #[error(transparent)]
    Math(#[from] he_math::MathError),
}

/// Result alias of the `ckks` crate.
pub type Result<T> = std::result::Result<T, CkksError>;
