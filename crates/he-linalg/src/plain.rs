//! Plaintext matrix × encrypted vector or matrix by the diagonal method with
//! baby-step giant-step (Halevi–Shoup, Crypto 2014 and 2018), on the linear-transform
//! machinery of `ckks` ([`ckks::LinearTransform`], hoisted baby steps), and GAZELLE's
//! hybrid method for wide matrices (Juvekar–Vaikuntanathan–Chandrakasan, USENIX
//! Security 2018, §5.2): `m'` extended diagonals and `log2(s0/m')` folding rotations
//! instead of up to `s0` diagonals.

use crate::encrypted::EncryptedMatrix;
use crate::error::{LinalgError, Result};
use crate::evaluator::MatrixEvaluator;
use crate::layout::{BlockLayout, Tiling, UnitShape};
use crate::matrix::Matrix;
use ckks::circuits::EncodedLinearTransform;
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

/// The slot transform of GAZELLE's hybrid method (before its folding) for `M·X`, `X`
/// in a plain block layout of unit shape `shape` with one block row, `M` with
/// `m ≤ s0` rows and `n ≤ s0` columns: with `m' = m.next_power_of_two()`, the `m'`
/// diagonals `δ·s1` (`δ < m'`) hold `M[k mod m'][(k + δ) mod s0]` at row `k` of every
/// column. Summing the result's rows `k, k + m', k + 2m', …` (the fold of
/// [`MatrixEvaluator::plain_matmul_hybrid`]) gives `(M·X)[k mod m']` in every row `k`.
/// Returns the transform and `m'`.
///
/// # Errors
/// [`LinalgError::Shape`] if `M` has more than `s0` rows or columns, or no rows.
pub fn hybrid_matmul_transform(m: &Matrix, shape: UnitShape) -> Result<(LinearTransform, usize)> {
    let UnitShape { s0, s1 } = shape;
    if m.rows() == 0 || m.rows() > s0 || m.cols() > s0 {
        return Err(LinalgError::Shape(format!(
            "{}×{} matrix for the hybrid method with blocks of {s0} rows",
            m.rows(),
            m.cols()
        )));
    }
    let period = m.rows().next_power_of_two();
    let n = shape.slots();
    let mut diags = BTreeMap::new();
    for delta in 0..period {
        let diag: Vec<Complex64> = (0..n)
            .map(|v| {
                let k = v / s1;
                Complex64::new(m.get_or_zero(k % period, (k + delta) % s0), 0.0)
            })
            .collect();
        if diag.iter().any(|z| z.re != 0.0) {
            diags.insert(delta * s1, diag);
        }
    }
    Ok((LinearTransform::new(n, diags)?, period))
}

/// A plaintext matrix encoded for [`MatrixEvaluator::apply_plain_matmul`]: the diagonals
/// of `M` encoded once for one input level and scale, so a server that multiplies many
/// ciphertexts by the same frozen weights encodes them once (encoding costs about as
/// much as the products).
pub struct EncodedPlainMatmul<B: Backend> {
    transform: EncodedLinearTransform<B>,
    shape: UnitShape,
    rows: usize,
    cols: usize,
    /// Hybrid method: `(count, step)` of the folding rotate-and-sum.
    fold: Option<(usize, i64)>,
}

impl<B: Backend> std::fmt::Debug for EncodedPlainMatmul<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedPlainMatmul")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("shape", &self.shape)
            .field("fold", &self.fold)
            .field("transform", &self.transform)
            .finish()
    }
}

impl<B: Backend> EncodedPlainMatmul<B> {
    /// The input level.
    pub fn level(&self) -> usize {
        self.transform.level()
    }

    /// The scale an input must have.
    pub fn input_scale(&self) -> f64 {
        self.transform.input_scale()
    }

    /// `(rows, cols)` of `M`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The period of the output's rows: `Some(m')` for the hybrid method (rows repeat
    /// with period `m' = m.next_power_of_two()` over the `s0` rows of a block), `None`
    /// for the plain diagonal method (rows `≥ m` are zero).
    pub fn replication_period(&self) -> Option<usize> {
        self.fold.map(|(count, _)| self.shape.s0 / count)
    }
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
        let enc = self.encode_plain_matmul(m, l.unit_shape(), false, x.level(), x.scale())?;
        self.apply_plain_matmul(&enc, x)
    }

    /// `M·X` by GAZELLE's hybrid method ([`hybrid_matmul_transform`]) for a wide `M`
    /// (`m×n`, `m, n ≤ s0`): `m'` diagonals (`m' = m.next_power_of_two()`), hoisted BSGS,
    /// then `log2(s0/m')` folding rotations — against up to `m + n − 1` diagonals for
    /// [`Self::plain_matmul`]. One level. The output's layout says `m` rows, but its
    /// padding rows are **not zero**: row `k` of every block holds row `k mod m'` of
    /// `M·X` (zero for `m ≤ k mod m' < m'`). A consumer that reads only the first `m`
    /// rows ([`Self::plain_matmul`], decryption) is unaffected; products that assume zero
    /// padding (DiagABT, DiagATB) need a mask first.
    ///
    /// # Errors
    /// As [`Self::plain_matmul`]; missing keys: [`crate::keys::plain_matmul_hybrid_keys`].
    pub fn plain_matmul_hybrid(
        &self,
        m: &Matrix,
        x: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        let enc =
            self.encode_plain_matmul(m, x.layout().unit_shape(), true, x.level(), x.scale())?;
        self.apply_plain_matmul(&enc, x)
    }

    /// Encodes `M` for [`Self::apply_plain_matmul`] on inputs of unit shape `shape` at
    /// `level` and scale `input_scale`; the output has the canonical scale of
    /// `level − 1`. `hybrid` selects GAZELLE's method ([`Self::plain_matmul_hybrid`]).
    ///
    /// # Errors
    /// Shape errors as [`matmul_transform`] / [`hybrid_matmul_transform`];
    /// [`LinalgError::LevelTooLow`] at level 0; CKKS errors (level above the chain).
    pub fn encode_plain_matmul(
        &self,
        m: &Matrix,
        shape: UnitShape,
        hybrid: bool,
        level: usize,
        input_scale: f64,
    ) -> Result<EncodedPlainMatmul<B>> {
        if level == 0 {
            return Err(LinalgError::LevelTooLow {
                needed: 1,
                level: 0,
            });
        }
        let (lt, fold) = if hybrid {
            let (lt, period) = hybrid_matmul_transform(m, shape)?;
            (lt, Some((shape.s0 / period, (period * shape.s1) as i64)))
        } else {
            (matmul_transform(m, shape)?, None)
        };
        let ctx = self.evaluator().context();
        let out_scale = ctx.params().scale_at(level - 1)?;
        Ok(EncodedPlainMatmul {
            transform: lt.encode(ctx, level, input_scale, out_scale)?,
            shape,
            rows: m.rows(),
            cols: m.cols(),
            fold,
        })
    }

    /// `M·X` for an encoded `M` ([`Self::encode_plain_matmul`]); `X` (`n×b`) in a plain
    /// block layout with one block row, at the encoding's level and scale.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for a tiled or multi-row-block `X` or another unit shape;
    /// [`LinalgError::Shape`] unless `M.cols() == X.rows()`; CKKS errors (level or scale
    /// other than the encoding's, missing rotation keys).
    pub fn apply_plain_matmul(
        &self,
        enc: &EncodedPlainMatmul<B>,
        x: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        let l = x.layout();
        if l.tiling() != Tiling::None || l.row_blocks() != 1 || l.unit_shape() != enc.shape {
            return Err(LinalgError::Layout(format!(
                "plaintext × ciphertext matmul takes one plain block row of unit shape \
                 {:?}, got {l:?}",
                enc.shape
            )));
        }
        if enc.cols != l.rows() {
            return Err(LinalgError::Shape(format!(
                "{}×{} · {}×{}",
                enc.rows,
                enc.cols,
                l.rows(),
                l.cols()
            )));
        }
        let ev = self.evaluator();
        let out = x
            .ciphertexts()
            .iter()
            .map(|c| {
                let y = ev.linear_transform(c, &enc.transform)?;
                match enc.fold {
                    Some((count, step)) => ev.rotate_and_sum(&y, count, step),
                    None => Ok(y),
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        EncryptedMatrix::from_parts(BlockLayout::new(enc.rows, l.cols(), enc.shape)?, out)
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
