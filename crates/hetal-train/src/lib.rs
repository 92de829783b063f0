//! Encrypted softmax-regression fine-tuning after HETAL (Lee et al., ICML 2023).
//!
//! Not implemented yet (see the README "Status" section); depends on `he-linalg`.

pub use he_linalg;
