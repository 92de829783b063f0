//! [`RingContext`]: the ring `Z_Q[X]/(X^N + 1)` with its table of RNS moduli, NTT plans and
//! the per-pair constants that rescaling and key switching need.
//!
//! A context is built once per parameter set and shared (`Arc`) by every backend. The
//! moduli table is flat; a scheme decides which indices form the ciphertext modulus
//! chain `Q` and which the special primes `P` (CKKS puts `q_0 … q_L` first, then `P`).

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use crate::ntt::{NttEngine, NttPlan};
use crate::rns::RnsBasis;
use std::sync::Arc;

/// Ring degree, moduli and NTT plans of an RNS polynomial ring.
#[derive(Debug)]
pub struct RingContext {
    n: usize,
    log_n: u32,
    moduli: Vec<Modulus>,
    plans: Vec<NttPlan>,
    /// `inv[i][j] = q_j^{-1} mod q_i` (0 on the diagonal), with Shoup constants.
    inv: Vec<Vec<(u64, u64)>>,
}

impl RingContext {
    /// Builds a context with the default NTT engine.
    ///
    /// # Errors
    /// [`MathError::InvalidRingDegree`], [`MathError::NotNttFriendly`],
    /// [`MathError::DuplicateModulus`], or an NTT engine error.
    pub fn new(n: usize, moduli: &[u64]) -> Result<Arc<Self>> {
        Self::with_engine(n, moduli, NttEngine::default_engine())
    }

    /// Builds a context whose NTT plans use `engine`. Every engine uses the same ψ per
    /// prime, so NTT-domain data does not depend on the engine.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_engine(n: usize, moduli: &[u64], engine: NttEngine) -> Result<Arc<Self>> {
        if moduli.is_empty() {
            return Err(MathError::InvalidArgument(
                "a ring needs at least one modulus".into(),
            ));
        }
        for (i, q) in moduli.iter().enumerate() {
            if moduli[..i].contains(q) {
                return Err(MathError::DuplicateModulus(*q));
            }
        }
        let plans = moduli
            .iter()
            .map(|&q| NttPlan::with_engine(n, q, engine))
            .collect::<Result<Vec<_>>>()?;
        let ms: Vec<Modulus> = plans.iter().map(|p| *p.modulus()).collect();
        let inv = ms
            .iter()
            .enumerate()
            .map(|(i, mi)| {
                ms.iter()
                    .enumerate()
                    .map(|(j, mj)| {
                        if i == j {
                            Ok((0, 0))
                        } else {
                            let v = mi.inv(mi.reduce(mj.value()))?;
                            Ok((v, mi.shoup(v)))
                        }
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            n,
            log_n: n.trailing_zeros(),
            moduli: ms,
            plans,
            inv,
        }))
    }

    /// The same ring with plans of another engine (same ψ per prime).
    ///
    /// # Errors
    /// As [`Self::with_engine`].
    pub fn with_other_engine(&self, engine: NttEngine) -> Result<Arc<Self>> {
        let qs: Vec<u64> = self.moduli.iter().map(|m| m.value()).collect();
        if engine == NttEngine::Reference {
            let plans = qs
                .iter()
                .zip(&self.plans)
                .map(|(&q, p)| NttPlan::reference_with_root(self.n, q, p.psi()))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Arc::new(Self {
                n: self.n,
                log_n: self.log_n,
                moduli: self.moduli.clone(),
                plans,
                inv: self.inv.clone(),
            }));
        }
        Self::with_engine(self.n, &qs, engine)
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// Number of moduli in the table.
    pub fn num_moduli(&self) -> usize {
        self.moduli.len()
    }

    /// All moduli.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// Modulus `i` of the table.
    ///
    /// # Panics
    /// If `i` is out of range (bases are checked with [`Self::check_basis`] first).
    pub fn modulus(&self, i: usize) -> &Modulus {
        &self.moduli[i]
    }

    /// NTT plan of modulus `i`.
    pub fn plan(&self, i: usize) -> &NttPlan {
        &self.plans[i]
    }

    /// The NTT engine of the plans.
    pub fn engine(&self) -> NttEngine {
        self.plans[0].engine()
    }

    /// `q_j^{-1} mod q_i` and its Shoup constant (`i ≠ j`).
    pub fn inv_mod(&self, i: usize, j: usize) -> (u64, u64) {
        self.inv[i][j]
    }

    /// Checks that `basis` is non-empty, strictly increasing and in range.
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] or [`MathError::ModulusIndexOutOfRange`].
    pub fn check_basis(&self, basis: &[usize]) -> Result<()> {
        if basis.is_empty() {
            return Err(MathError::BasisMismatch("empty basis".into()));
        }
        if !basis.windows(2).all(|w| w[0] < w[1]) {
            return Err(MathError::BasisMismatch(format!(
                "basis {basis:?} is not strictly increasing"
            )));
        }
        if let Some(&i) = basis.iter().find(|&&i| i >= self.moduli.len()) {
            return Err(MathError::ModulusIndexOutOfRange {
                index: i,
                count: self.moduli.len(),
            });
        }
        Ok(())
    }

    /// The exact CRT basis of the listed moduli (slow path, big integers).
    ///
    /// # Errors
    /// As [`Self::check_basis`].
    pub fn rns_basis(&self, basis: &[usize]) -> Result<RnsBasis> {
        self.check_basis(basis)?;
        RnsBasis::new(&basis.iter().map(|&i| self.moduli[i]).collect::<Vec<_>>())
    }
}
