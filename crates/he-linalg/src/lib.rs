//! Encrypted block matrices and HETAL matrix products (DiagABT, DiagATB).
//!
//! Not implemented yet (see the README "Status" section); depends on `ckks`.

pub use ckks;
