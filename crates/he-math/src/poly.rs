//! [`RnsPoly`]: an RNS polynomial in host memory, and its [`Representation`].

use crate::error::{MathError, Result};
use crate::ring::RingContext;
use num_bigint::BigInt;
use serde::{Deserialize, Serialize};

/// Whether a polynomial holds coefficients or NTT evaluations (see [`crate::ntt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Representation {
    /// Coefficients `a_0 … a_{N-1}` of `a(X)`, one limb per RNS modulus.
    Coeff,
    /// Evaluations at `ψ^{2·bitrev(i)+1}` (bit-reversed order), one limb per modulus.
    Ntt,
}

/// An element of `∏_j Z_{q_j}[X]/(X^N + 1)` in host memory.
///
/// `basis` lists indices into a [`RingContext`]'s moduli, strictly increasing; `data`
/// holds `basis.len()` limbs of `N` residues each, limb-major (limb `j` is
/// `data[j·N .. (j+1)·N]`, residues modulo `ctx.modulus(basis[j])`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RnsPoly {
    n: usize,
    basis: Vec<usize>,
    repr: Representation,
    data: Vec<u64>,
}

impl RnsPoly {
    /// The zero polynomial over `basis`.
    pub fn zero(n: usize, basis: &[usize], repr: Representation) -> Self {
        Self {
            n,
            basis: basis.to_vec(),
            repr,
            data: vec![0; n * basis.len()],
        }
    }

    /// Builds a polynomial from limb-major residues, checking only the length (use
    /// [`Self::validate`] for untrusted data).
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] if `data.len() != n · basis.len()`.
    pub fn from_data(
        n: usize,
        basis: &[usize],
        repr: Representation,
        data: Vec<u64>,
    ) -> Result<Self> {
        if data.len() != n * basis.len() {
            return Err(MathError::LengthMismatch {
                expected: n * basis.len(),
                got: data.len(),
            });
        }
        Ok(Self {
            n,
            basis: basis.to_vec(),
            repr,
            data,
        })
    }

    /// A polynomial with small signed coefficients (secrets, errors, rounded messages),
    /// reduced into every limb of `basis`; coefficient representation.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] if `coeffs.len() != N`, or a basis error.
    pub fn from_signed(ctx: &RingContext, basis: &[usize], coeffs: &[i64]) -> Result<Self> {
        ctx.check_basis(basis)?;
        if coeffs.len() != ctx.n() {
            return Err(MathError::LengthMismatch {
                expected: ctx.n(),
                got: coeffs.len(),
            });
        }
        let mut p = Self::zero(ctx.n(), basis, Representation::Coeff);
        for (j, &bi) in basis.iter().enumerate() {
            let m = ctx.modulus(bi);
            for (o, &c) in p.limb_mut(j).iter_mut().zip(coeffs) {
                *o = m.reduce_i64(c);
            }
        }
        Ok(p)
    }

    /// Checks the polynomial against a context: degree, basis indices (strictly
    /// increasing, in range), length, and every residue below its modulus. Run this on
    /// every deserialized polynomial.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`], [`MathError::BasisMismatch`],
    /// [`MathError::ModulusIndexOutOfRange`] or [`MathError::ResidueOutOfRange`].
    pub fn validate(&self, ctx: &RingContext) -> Result<()> {
        if self.n != ctx.n() {
            return Err(MathError::LengthMismatch {
                expected: ctx.n(),
                got: self.n,
            });
        }
        ctx.check_basis(&self.basis)?;
        if self.data.len() != self.n * self.basis.len() {
            return Err(MathError::LengthMismatch {
                expected: self.n * self.basis.len(),
                got: self.data.len(),
            });
        }
        for (j, &bi) in self.basis.iter().enumerate() {
            let q = ctx.modulus(bi).value();
            if let Some(&v) = self.limb(j).iter().find(|&&v| v >= q) {
                return Err(MathError::ResidueOutOfRange { value: v, q });
            }
        }
        Ok(())
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Indices of the moduli of the limbs, strictly increasing.
    pub fn basis(&self) -> &[usize] {
        &self.basis
    }

    /// Number of limbs.
    pub fn num_limbs(&self) -> usize {
        self.basis.len()
    }

    /// Current representation.
    pub fn repr(&self) -> Representation {
        self.repr
    }

    /// Sets the representation tag without transforming the data (for backends).
    pub fn set_repr(&mut self, repr: Representation) {
        self.repr = repr;
    }

    /// Limb `j` (modulus `basis[j]`).
    pub fn limb(&self, j: usize) -> &[u64] {
        &self.data[j * self.n..(j + 1) * self.n]
    }

    /// Limb `j`, mutable.
    pub fn limb_mut(&mut self, j: usize) -> &mut [u64] {
        &mut self.data[j * self.n..(j + 1) * self.n]
    }

    /// All limbs, limb-major.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// All limbs, limb-major, mutable.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// The basis and the mutable limb data at once (for limb-parallel kernels).
    pub fn parts_mut(&mut self) -> (&[usize], &mut [u64]) {
        (&self.basis, &mut self.data)
    }

    /// Removes the last `k` limbs (dropping levels of a CKKS ciphertext).
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] if fewer than `k + 1` limbs are present.
    pub fn drop_last_limbs(&mut self, k: usize) -> Result<()> {
        if k >= self.basis.len() {
            return Err(MathError::BasisMismatch(format!(
                "cannot drop {k} of {} limbs",
                self.basis.len()
            )));
        }
        self.basis.truncate(self.basis.len() - k);
        self.data.truncate(self.basis.len() * self.n);
        Ok(())
    }

    /// Iterator over `(modulus index, limb)`.
    pub fn limbs(&self) -> impl Iterator<Item = (usize, &[u64])> {
        self.basis
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.n))
    }

    /// Position of modulus index `bi` in the basis, if present.
    pub fn position(&self, bi: usize) -> Option<usize> {
        self.basis.binary_search(&bi).ok()
    }

    /// Keeps only the limbs whose modulus index is in `keep` (a subset of the basis).
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] if `keep` is not a subset of the basis.
    pub fn select_limbs(&self, keep: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(keep.len() * self.n);
        for &bi in keep {
            let j = self.position(bi).ok_or_else(|| {
                MathError::BasisMismatch(format!("modulus {bi} not in basis {:?}", self.basis))
            })?;
            data.extend_from_slice(self.limb(j));
        }
        Ok(Self {
            n: self.n,
            basis: keep.to_vec(),
            repr: self.repr,
            data,
        })
    }

    /// Centred big-integer coefficients by CRT over the polynomial's basis (slow; for
    /// tests and debugging). The polynomial must be in coefficient representation.
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] in NTT representation, or a basis error.
    pub fn to_bigint_centered(&self, ctx: &RingContext) -> Result<Vec<BigInt>> {
        if self.repr != Representation::Coeff {
            return Err(MathError::ReprMismatch {
                expected: Representation::Coeff,
                got: self.repr,
            });
        }
        let rns = ctx.rns_basis(&self.basis)?;
        let mut res = vec![0u64; self.basis.len()];
        (0..self.n)
            .map(|i| {
                for (j, r) in res.iter_mut().enumerate() {
                    *r = self.data[j * self.n + i];
                }
                rns.reconstruct_centered(&res)
            })
            .collect()
    }
}
