//! RNS-CKKS (Cheon–Kim–Kim–Song, Asiacrypt 2017; full-RNS variant Cheon–Han–Kim–Kim–Song,
//! SAC 2018) with hybrid key switching (Han–Ki, CT-RSA 2020), written against the
//! `he-math` [`Backend`](he_math::Backend) trait so the same scheme code runs on every
//! backend.
//!
//! Layers, after Lattigo's `ckks`/`rlwe` packages:
//! - [`params`]: the serialisable [`ParametersLiteral`], validated [`Parameters`] and
//!   presets;
//! - [`security`]: the `log2(QP)` bound of each secret distribution and the check
//!   [`Parameters::new`] runs;
//! - [`context`]: parameters bound to a backend;
//! - [`embedding`] and [`encoding`]: the canonical embedding and the encoder;
//! - [`keys`]: secret key (client) vs evaluation keys (server), key generation;
//! - [`encryption`]: encryption and decryption;
//! - [`flooding`]: noise flooding of decrypted values before they are revealed;
//! - [`evaluator`]: homomorphic operations, key switching, rotations;
//! - [`serialization`]: validated postcard encodings of everything above;
//! - [`circuits`]: polynomial evaluation, linear transformations, the homomorphic DFT and
//!   bootstrapping.
//!
//! ```
//! use ckks::{Context, EvaluationKeyRequest, Evaluator, KeyGenerator, presets};
//! use std::sync::Arc;
//! let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
//! let mut kg = KeyGenerator::new(&ctx);
//! let sk = kg.gen_secret_key().unwrap();
//! let req = EvaluationKeyRequest { relinearization: true, rotations: vec![1], ..Default::default() };
//! let eval = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
//! let top = ctx.params().max_level();
//! let x: Vec<f64> = (0..512).map(|i| i as f64 / 512.0).collect();
//! let ct = sk.encrypt(&ctx.encode_at_level(&x, top).unwrap()).unwrap();
//! let sq = eval.rotate(&eval.mul_relin_rescale(&ct, &ct).unwrap(), 1).unwrap();
//! let y = ctx.decode(&sk.decrypt(&sq).unwrap()).unwrap();
//! assert!((y[0] - x[1] * x[1]).abs() < 1e-6);
//! ```

pub mod ciphertext;
pub mod circuits;
pub mod context;
pub mod embedding;
pub mod encoding;
pub mod encryption;
pub mod error;
pub mod evaluator;
pub mod flooding;
pub mod keys;
pub mod params;
pub mod security;
pub mod serialization;

pub use ciphertext::{Ciphertext, Plaintext};
pub use circuits::{
    Bootstrapper, BootstrappingConfig, LinearTransform, Polynomial, PolynomialBasis,
};
pub use context::Context;
pub use error::{CkksError, Result};
pub use evaluator::{Decomposition, Evaluator, OpCounts};
pub use flooding::{FloodedDecoding, Flooding, FloodingReport};
pub use he_math;
pub use keys::{
    EncapsulationKeys, EvaluationKeyRequest, EvaluationKeySet, GaloisKey, KeyGenerator, KeyStorage,
    PublicKey, RelinearizationKey, SecretKey, SwitchingKey,
};
pub use num_complex::Complex64;
pub use params::{Parameters, ParametersLiteral, SecretDistribution, presets};
pub use security::SecurityLevel;
