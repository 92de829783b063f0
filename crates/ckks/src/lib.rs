//! RNS-CKKS (Cheon–Han–Kim–Kim–Song, SAC 2018) on the `he-math` Backend trait.
//!
//! Not implemented yet: this crate is reserved by the workspace layout; see the
//! project README "Status" section and the CKKS core issue.

pub use he_math;
