//! Error type of `he-math`.

use thiserror::Error;

/// Errors returned by `he-math`: bad parameters, mismatched operands, or a
/// backend that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MathError {
    /// A modulus is outside the supported range `2 ≤ q < 2^61`.
    #[error("modulus {0} is outside the supported range [2, 2^61)")]
    ModulusOutOfRange(u64),
    /// A requested prime size in bits is not supported (allowed: 10 ..= 61).
    #[error("prime size of {0} bits is not supported (allowed: 10..=61)")]
    PrimeBitsOutOfRange(u32),
    /// Not enough NTT-friendly primes of the asked size exist.
    #[error("only {found} NTT-friendly primes of {bits} bits for 2N = {two_n}, {wanted} asked")]
    NotEnoughPrimes {
        /// Prime size in bits.
        bits: u32,
        /// 2N, the order of the roots of unity needed.
        two_n: u64,
        /// Number of primes asked for.
        wanted: usize,
        /// Number of primes found.
        found: usize,
    },
    /// The ring degree is not a power of two in the supported range.
    #[error("ring degree N = {0} is not a power of two in [16, 2^17]")]
    InvalidRingDegree(usize),
    /// A modulus is not a prime congruent to 1 mod 2N, so no negacyclic NTT exists.
    #[error("modulus {q} is not an NTT-friendly prime for N = {n} (need a prime q ≡ 1 mod 2N)")]
    NotNttFriendly {
        /// The modulus.
        q: u64,
        /// The ring degree.
        n: usize,
    },
    /// The same prime appears twice in an RNS basis.
    #[error("modulus {0} appears twice in the RNS basis")]
    DuplicateModulus(u64),
    /// An element has no inverse modulo q.
    #[error("{value} is not invertible modulo {q}")]
    NotInvertible {
        /// The element.
        value: u64,
        /// The modulus.
        q: u64,
    },
    /// The NTT engine is not compiled in (missing cargo feature) or rejected the prime.
    #[error("NTT engine {0} is unavailable: {1}")]
    EngineUnavailable(&'static str, String),
    /// The NTT engine's output order is not the documented bit-reversed order.
    #[error(
        "NTT engine {0} does not produce the bit-reversed evaluation order this crate relies on"
    )]
    EngineOrder(&'static str),
    /// A Galois element is not odd or not below 2N.
    #[error("Galois element {k} is not an odd integer in [1, 2N) for N = {n}")]
    InvalidGaloisElement {
        /// The Galois element.
        k: usize,
        /// The ring degree.
        n: usize,
    },
    /// Operands live over different RNS bases.
    #[error("RNS basis mismatch: {0}")]
    BasisMismatch(String),
    /// An operation was asked in the wrong representation (coefficient vs NTT).
    #[error("representation mismatch: expected {expected:?}, got {got:?}")]
    ReprMismatch {
        /// Representation required by the operation.
        expected: crate::poly::Representation,
        /// Representation of the operand.
        got: crate::poly::Representation,
    },
    /// A buffer has the wrong length.
    #[error("length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A residue is not reduced below its modulus.
    #[error("residue {value} is not below its modulus {q}")]
    ResidueOutOfRange {
        /// The residue.
        value: u64,
        /// The modulus.
        q: u64,
    },
    /// A modulus index is outside the ring context.
    #[error("modulus index {index} is outside the ring context ({count} moduli)")]
    ModulusIndexOutOfRange {
        /// The index.
        index: usize,
        /// Number of moduli in the context.
        count: usize,
    },
    /// An operation got an argument outside its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for `he-math`.
pub type Result<T> = std::result::Result<T, MathError>;
