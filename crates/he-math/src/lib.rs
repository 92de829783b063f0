//! `he-math`: the arithmetic foundation of the project.
//!
//! Layers (bottom up), after Lattigo's `ring` package:
//! - [`modulus`]: word-size modular arithmetic (Barrett, Shoup, lazy variants);
//! - [`primes`]: NTT-friendly prime generation;
//! - [`rns`]: exact RNS decomposition and CRT reconstruction with big integers;
//! - [`ntt`]: the negacyclic NTT behind [`NttPlan`], with interchangeable engines;
//! - [`galois`]: automorphisms `X ↦ X^k` in coefficient and NTT representation;
//! - [`basis_conv`]: fast RNS basis conversion (ModUp/ModDown building block);
//! - [`ring`] and [`poly`]: the ring context and host RNS polynomials;
//! - [`sampling`]: CSPRNG sampling of uniform, ternary and Gaussian polynomials;
//! - [`expand`]: public uniform residues expanded from a seed, limb by limb (seeded keys);
//! - [`backend`]: the [`Backend`] trait and its CPU implementations;
//! - [`conformance`]: the test suite every backend must pass;
//! - `allocator` (feature `mimalloc`): the binaries' global allocator and its settings.
//!
//! See `docs/architecture.md` at the repository root for the whole picture.

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod backend;
pub mod basis_conv;
pub mod conformance;
pub mod error;
pub mod expand;
pub mod galois;
pub mod modulus;
pub mod ntt;
pub mod poly;
pub mod primes;
pub mod ring;
pub mod rns;
pub mod sampling;
pub mod simd;

pub use backend::{Backend, CpuBackend, ReferenceBackend, UniformParts};
pub use error::{MathError, Result};
pub use modulus::Modulus;
pub use ntt::{NttEngine, NttPlan};
pub use poly::{Representation, RnsPoly};
pub use ring::RingContext;
pub use rns::RnsBasis;
pub use sampling::Csprng;
