//! Fast RNS basis conversion (Bajard–Eynard–Hasan–Zucca, SAC 2016; Halevi–Polyakov–Shoup,
//! CT-RSA 2019, §2.2), the building block of ModUp and ModDown in hybrid key switching
//! (Han–Ki, CT-RSA 2020, §3).
//!
//! For a source basis `B = {b_0 … b_{k-1}}` and a target basis `C`, the conversion of
//! `x ∈ [0, B)` given by its residues `x_i` is
//!
//! `FastBConv(x)_j = Σ_i [x_i · (B/b_i)^{-1}]_{b_i} · (B/b_i)  mod c_j  =  (x + u·B) mod c_j`
//!
//! with an integer `0 ≤ u < k`: exact up to a small multiple of `B`.

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use crate::ring::RingContext;

/// Precomputed constants to convert RNS residues from one basis to another.
#[derive(Debug, Clone)]
pub struct BasisConverter {
    from: Vec<usize>,
    to: Vec<usize>,
    from_moduli: Vec<Modulus>,
    to_moduli: Vec<Modulus>,
    /// `(B/b_i)^{-1} mod b_i` and Shoup constants.
    punctured_inv: Vec<(u64, u64)>,
    /// Row-major `[j][i] = (B/b_i) mod c_j`.
    matrix: Vec<u64>,
    /// Largest source modulus (bound on the premultiplied residues).
    max_from: u64,
}

impl BasisConverter {
    /// Precomputes the conversion from the moduli `from` to the moduli `to` (indices into
    /// `ctx`); the two sets must be disjoint.
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] if a basis is invalid or the sets intersect.
    pub fn new(ctx: &RingContext, from: &[usize], to: &[usize]) -> Result<Self> {
        ctx.check_basis(from)?;
        ctx.check_basis(to)?;
        if from.iter().any(|i| to.contains(i)) {
            return Err(MathError::BasisMismatch(format!(
                "conversion bases intersect: {from:?} and {to:?}"
            )));
        }
        let from_moduli: Vec<Modulus> = from.iter().map(|&i| *ctx.modulus(i)).collect();
        let to_moduli: Vec<Modulus> = to.iter().map(|&i| *ctx.modulus(i)).collect();
        let mut punctured_inv = Vec::with_capacity(from.len());
        for (i, bi) in from_moduli.iter().enumerate() {
            let mut prod = 1 % bi.value();
            for (k, bk) in from_moduli.iter().enumerate() {
                if k != i {
                    prod = bi.mul(prod, bi.reduce(bk.value()));
                }
            }
            let inv = bi.inv(prod)?;
            punctured_inv.push((inv, bi.shoup(inv)));
        }
        let mut matrix = Vec::with_capacity(to.len() * from.len());
        for cj in &to_moduli {
            for i in 0..from.len() {
                let mut prod = 1 % cj.value();
                for (k, bk) in from_moduli.iter().enumerate() {
                    if k != i {
                        prod = cj.mul(prod, cj.reduce(bk.value()));
                    }
                }
                matrix.push(prod);
            }
        }
        let max_from = from_moduli.iter().map(|m| m.value()).max().unwrap_or(0);
        Ok(Self {
            max_from,
            from: from.to_vec(),
            to: to.to_vec(),
            from_moduli,
            to_moduli,
            punctured_inv,
            matrix,
        })
    }

    /// Source moduli indices.
    pub fn from(&self) -> &[usize] {
        &self.from
    }

    /// Target moduli indices.
    pub fn to(&self) -> &[usize] {
        &self.to
    }

    /// The largest source modulus: every premultiplied residue is below it.
    pub fn max_from_modulus(&self) -> u64 {
        self.max_from
    }

    /// Source moduli.
    pub fn from_moduli(&self) -> &[Modulus] {
        &self.from_moduli
    }

    /// Target moduli.
    pub fn to_moduli(&self) -> &[Modulus] {
        &self.to_moduli
    }

    /// `(B/b_i)^{-1} mod b_i` with its Shoup constant.
    pub fn punctured_inv(&self) -> &[(u64, u64)] {
        &self.punctured_inv
    }

    /// `(B/b_i) mod c_j` for output `j`, all `i`.
    pub fn row(&self, j: usize) -> &[u64] {
        let k = self.from.len();
        &self.matrix[j * k..(j + 1) * k]
    }
}
