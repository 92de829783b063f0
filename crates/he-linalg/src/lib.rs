//! Encrypted block matrices and HETAL's matrix products on CKKS.
//!
//! - [`matrix`]: a small row-major `f64` [`Matrix`] (inputs, outputs, float64
//!   references);
//! - [`layout`]: HETAL's block packing ([`BlockLayout`], unit shape [`UnitShape`],
//!   vertical/horizontal [`Tiling`]) and the [`Packing`] abstraction;
//! - [`encrypted`]: [`EncryptedMatrix`] (and [`PlainBlockMatrix`]) — encryption by the
//!   client, decryption;
//! - [`evaluator`]: [`MatrixEvaluator`], the server's matrix engine (evaluation keys
//!   only, mask cache, level alignment);
//! - [`diag`]: DiagABT and DiagATB (Lee et al., "HETAL: Efficient Privacy-preserving
//!   Transfer Learning with Homomorphic Encryption", ICML 2023, §4.2);
//! - [`baselines`]: ColMajor/RowMajor (Crockett 2020) and Jin et al. (2020);
//! - [`plain`]: plaintext matrix × encrypted vector/matrix (diagonal method, BSGS;
//!   GAZELLE's hybrid method for wide matrices; encodings kept for reuse);
//! - [`keys`]: the Galois keys each product needs.
//!
//! The CKKS types a user needs are re-exported, so a crate depending on `he-linalg`
//! alone can encrypt, multiply and decrypt:
//!
//! ```
//! use he_linalg::{BlockLayout, Context, EncryptedMatrix, Evaluator, KeyGenerator, Matrix,
//!                 MatrixEvaluator, UnitShape, keys, presets};
//! use std::sync::Arc;
//! let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
//! let shape = UnitShape::new(16, 32).unwrap(); // 512 slots
//! let mut kg = KeyGenerator::new(&ctx);
//! let sk = kg.gen_secret_key().unwrap();
//! let req = keys::diag_abt_keys(shape, 3).to_request();
//! let ev = Arc::new(Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap())));
//! let a = Matrix::from_fn(20, 40, |i, j| ((i + j) % 5) as f64 / 5.0);
//! let w = Matrix::from_fn(3, 40, |i, j| ((i * j) % 7) as f64 / 7.0);
//! let top = ctx.params().max_level();
//! let ea = EncryptedMatrix::encrypt(&ctx, &sk, &a, BlockLayout::new(20, 40, shape).unwrap(), top).unwrap();
//! let ew = EncryptedMatrix::encrypt(&ctx, &sk, &w, BlockLayout::vertical(3, 40, shape).unwrap(), top).unwrap();
//! let me = MatrixEvaluator::new(ev);
//! let prod = me.diag_abt(&ea, &ew).unwrap().decrypt(&ctx, &sk).unwrap();
//! assert!(prod.max_abs_diff(&a.matmul_bt(&w).unwrap()).unwrap() < 1e-4);
//! ```

pub mod baselines;
pub mod diag;
pub mod encrypted;
pub mod error;
pub mod evaluator;
pub mod keys;
pub mod layout;
pub mod matrix;
pub mod plain;

pub use baselines::{BaselineMatrix, BaselinePacking};
pub use diag::{
    AbtWeights, AtbLhs, DIAG_ABT_DEPTH, DIAG_ATB_DEPTH_LHS, DIAG_ATB_DEPTH_RHS, DiagAtbVariant,
};
pub use encrypted::{EncryptedMatrix, MatrixEncryptor, Packed, PackedPlain, PlainBlockMatrix};
pub use error::{LinalgError, Result};
pub use evaluator::MatrixEvaluator;
pub use keys::KeyRequirements;
pub use layout::{
    BlockLayout, MAX_BLOCKS, MAX_UNIT_SLOTS, Packing, Tiling, UnitShape, padded_classes,
};
pub use matrix::Matrix;
pub use plain::EncodedPlainMatmul;

pub use ckks;
pub use ckks::he_math::{Backend, CpuBackend};
pub use ckks::{
    Ciphertext, CkksError, Context, EvaluationKeyRequest, EvaluationKeySet, Evaluator,
    KeyGenerator, OpCounts, Parameters, ParametersLiteral, Plaintext, PublicKey, SecretKey,
    presets,
};
