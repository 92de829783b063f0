//! Plaintext matrix × encrypted vector or matrix by the diagonal method with
//! baby-step giant-step (Halevi–Shoup, Crypto 2014 and 2018), on the linear-transform
//! machinery of `ckks` ([`ckks::LinearTransform`], hoisted baby steps).

use crate::encrypted::EncryptedMatrix;
use crate::error::{LinalgError, Result};
use crate::evaluator::MatrixEvaluator;
use crate::layout::{BlockLayout, Tiling, UnitShape};
use crate::matrix::Matrix;
use ckks::he_math::Backend;
use ckks::{Ciphertext, Complex64, LinearTransform};
use std::collections::BTreeMap;

/// Packs `v` (length `≤ dim`) replicated with period `dim` over `slots` slots (slot `p`
/// holds `v[p mod dim]`, zero past `v.len()`): the input format of
/// [`MatrixEvaluator::plain_matvec`].
///
/// # Errors
/// [`LinalgError::Layout`] unless `dim` is a power of two dividing `slots` and
/// `v.len() ≤ dim`.
pub fn pack_vector_replicated(v: &[f64], dim: usize, slots: usize) -> Result<Vec<f64>> {
    if !dim.is_power_of_two() || !slots.is_power_of_two() || dim > slots || v.len() > dim {
        return Err(LinalgError::Layout(format!(
            "vector of {} in period {dim} over {slots} slots",
            v.len()
        )));
    }
    Ok((0..slots)
        .map(|p| v.get(p % dim).copied().unwrap_or(0.0))
        .collect())
}

/// The slot transform of `M·x` for `x` packed by [`pack_vector_replicated`] with period
/// `dim`: diagonal `d` holds `M[p mod dim][(p + d) mod dim]` (zero outside `M`).
///
/// # Errors
/// [`LinalgError::Shape`] if `M` is larger than `dim × dim`; [`LinalgError::Layout`]
/// for a bad period.
pub fn matvec_transform(m: &Matrix, dim: usize, slots: usize) -> Result<LinearTransform> {
    if m.rows() > dim || m.cols() > dim {
        return Err(LinalgError::Shape(format!(
            "{}×{} matrix in period {dim}",
            m.rows(),
            m.cols()
        )));
    }
    pack_vector_replicated(&[], dim, slots)?;
    let mut diags = BTreeMap::new();
    for d in 0..dim {
        let diag: Vec<Complex64> = (0..slots)
            .map(|p| Complex64::new(m.get_or_zero(p % dim, (p % dim + d) % dim), 0.0))
            .collect();
        if diag.iter().any(|z| z.re != 0.0) {
            diags.insert(d, diag);
        }
    }
    Ok(LinearTransform::new(slots, diags)?)
}

/// The slot transform of `M·X` for `X` in a plain block layout of unit shape `shape`
/// with one block row: output slot `(i, j)` is `Σ_k M[i][k]·X[k][j]`, nonzero
/// diagonals at multiples of `s1`.
///
/// # Errors
/// [`LinalgError::Shape`] if `M` has more than `s0` rows or columns.
pub fn matmul_transform(m: &Matrix, shape: UnitShape) -> Result<LinearTransform> {
    let UnitShape { s0, s1 } = shape;
    if m.rows() > s0 || m.cols() > s0 {
        return Err(LinalgError::Shape(format!(
            "{}×{} matrix for blocks of {s0} rows",
            m.rows(),
            m.cols()
        )));
    }
    let n = shape.slots();
    let mut diags = BTreeMap::new();
    for delta in 0..s0 {
        let diag: Vec<Complex64> = (0..n)
            .map(|v| {
                let i = v / s1;
                Complex64::new(m.get_or_zero(i, (i + delta) % s0), 0.0)
            })
            .collect();
        if diag.iter().any(|z| z.re != 0.0) {
            diags.insert(delta * s1, diag);
        }
    }
    Ok(LinearTransform::new(n, diags)?)
}

impl<B: Backend> MatrixEvaluator<B> {
    /// `M·x` for a plaintext `M` (`≤ dim × dim`) and an encrypted vector packed by
    /// [`pack_vector_replicated`] with period `dim`; the result is packed the same way
    /// (length `M.rows()`). One level; `O(√dim)` rotations (BSGS).
    ///
    /// # Errors
    /// Shape/layout errors; [`LinalgError::LevelTooLow`] at level 0; missing rotation
    /// keys ([`crate::keys::linear_transform_keys`] of [`matvec_transform`]).
    pub fn plain_matvec(&self, m: &Matrix, x: &Ciphertext<B>, dim: usize) -> Result<Ciphertext<B>> {
        let lt = matvec_transform(m, dim, x.slots())?;
        self.apply_transform(&lt, x)
    }

    /// `M·X` for a plaintext `M` (`m×n`, `m, n ≤ s0`) and an encrypted `X` (`n×b`,
    /// plain block layout with one block row): the output (`m×b`) has the same unit
    /// shape. One level; BSGS over the `≤ s0` nonzero diagonals, per column block.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] unless `M.cols() == X.rows()`; [`LinalgError::Layout`]
    /// for a tiled or multi-row-block `X`; as [`Self::plain_matvec`].
    pub fn plain_matmul(&self, m: &Matrix, x: &EncryptedMatrix<B>) -> Result<EncryptedMatrix<B>> {
        let l = x.layout();
        if l.tiling() != Tiling::None || l.row_blocks() != 1 {
            return Err(LinalgError::Layout(format!(
                "plaintext × ciphertext matmul takes one plain block row, got {l:?}"
            )));
        }
        if m.cols() != l.rows() {
            return Err(LinalgError::Shape(format!(
                "{}×{} · {}×{}",
                m.rows(),
                m.cols(),
                l.rows(),
                l.cols()
            )));
        }
        let lt = matmul_transform(m, l.unit_shape())?;
        let out = x
            .ciphertexts()
            .iter()
            .map(|c| self.apply_transform(&lt, c))
            .collect::<Result<Vec<_>>>()?;
        EncryptedMatrix::from_parts(BlockLayout::new(m.rows(), l.cols(), l.unit_shape())?, out)
    }

    fn apply_transform(&self, lt: &LinearTransform, x: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        if x.level() == 0 {
            return Err(LinalgError::LevelTooLow {
                needed: 1,
                level: 0,
            });
        }
        let ev = self.evaluator();
        let params = ev.context().params();
        let enc = lt.encode(
            ev.context(),
            x.level(),
            x.scale(),
            params.scale_at(x.level() - 1)?,
        )?;
        Ok(ev.linear_transform(x, &enc)?)
    }
}
