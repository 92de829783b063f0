//! Circuits on top of the scheme, after Lattigo's `he` layer: polynomial evaluation,
//! linear transformations, the homomorphic DFT and bootstrapping.

pub mod bootstrapping;
pub mod dft;
pub mod linear_transform;
pub mod polynomial;

pub use bootstrapping::{
    BootstrapOrder, Bootstrapper, BootstrapperOptions, BootstrappingConfig, DEFAULT_META_LOG_GAIN,
    StageTimings,
};
pub use linear_transform::{
    DiagonalStorage, EncodedLinearTransform, GIANT_STEP_WEIGHT, LinearTransform,
};
pub use polynomial::{Polynomial, PolynomialBasis};
