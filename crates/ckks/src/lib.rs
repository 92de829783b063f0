//! RNS-CKKS (Cheon–Kim–Kim–Song, Asiacrypt 2017; full-RNS variant Cheon–Han–Kim–Kim–Song,
//! SAC 2018) on the `he-math` Backend trait.
//!
//! In progress: only the canonical embedding ([`embedding`]) exists so far; parameters,
//! keys, encryption and the evaluator are the subject of the CKKS core issue (see the
//! project README "Status" section).

pub mod embedding;
pub mod error;

pub use error::{CkksError, Result};
pub use he_math;
