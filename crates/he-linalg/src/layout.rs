//! Packings of a matrix into CKKS slot vectors.
//!
//! HETAL's block packing (Lee et al., ICML 2023, §4.1): a logical `rows × cols` matrix is
//! cut into blocks of a *unit shape* `(s0, s1)` with `s0·s1 = slots`; block `(bi, bj)`
//! holds rows `bi·s0 …` and columns `bj·s1 …` in row-major slot order (slot
//! `i·s1 + j`), zero padded. Blocks are stored row-major (`bi·col_blocks + bj`).
//! Two tilings replicate a small matrix inside the block:
//! - **vertical** with period `p` (`p | s0`): slot row `r` holds matrix row `r mod p`
//!   (rows `≥ rows` of the period are zero) — the weight matrix `W` as DiagABT takes it
//!   and as DiagATB returns the gradient;
//! - **horizontal** with period `p` (`p | s1`): slot column `t` holds matrix column
//!   `t mod p`.
//!
//! [`Packing`] abstracts "matrix ↔ list of slot vectors" so the baselines'
//! packings (column-major, replicated, …; see [`crate::baselines`]) share the
//! encryption and decryption code.

use crate::error::{LinalgError, Result};
use crate::matrix::Matrix;
use serde::{Deserialize, Serialize};

/// The most slots a unit shape may cover (`2^20`, more than the `2^16` of N = 2^17):
/// bounds what a deserialized layout can make a reader allocate.
pub const MAX_UNIT_SLOTS: usize = 1 << 20;

/// The most blocks a [`BlockLayout`] may have (`2^24`): bounds what a deserialized
/// layout can make a reader allocate or loop over.
pub const MAX_BLOCKS: usize = 1 << 24;

/// A unit shape `(s0, s1)`: `s0` rows × `s1` columns per ciphertext, both powers of two
/// with `s0·s1 ≤ `[`MAX_UNIT_SLOTS`]. Deserialization runs the same checks as
/// [`UnitShape::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "UnitShapeWire")]
pub struct UnitShape {
    /// Rows per block.
    pub s0: usize,
    /// Columns per block.
    pub s1: usize,
}

impl UnitShape {
    /// A unit shape.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] unless both are powers of two with `s0·s1 ≤`
    /// [`MAX_UNIT_SLOTS`].
    pub fn new(s0: usize, s1: usize) -> Result<Self> {
        if !s0.is_power_of_two()
            || !s1.is_power_of_two()
            || s0.checked_mul(s1).is_none_or(|n| n > MAX_UNIT_SLOTS)
        {
            return Err(LinalgError::Layout(format!(
                "unit shape ({s0}, {s1}) must be powers of two with at most {MAX_UNIT_SLOTS} slots"
            )));
        }
        Ok(Self { s0, s1 })
    }

    /// HETAL's rule (§4.1): with `c` classes padded to `c' = `[`padded_classes`]`(c)`,
    /// `s0 = min(max(batch', c'), slots / c')` where `batch'` is `batch` rounded up to a
    /// power of two, and `s1 = slots / s0`.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] unless `slots` is a power of two with `c'² ≤ slots`.
    pub fn hetal(batch: usize, classes: usize, slots: usize) -> Result<Self> {
        let cp = padded_classes(classes);
        if !slots.is_power_of_two() || cp * cp > slots {
            return Err(LinalgError::Layout(format!(
                "{classes} classes (padded {cp}) do not fit {slots} slots"
            )));
        }
        let s0 = batch.max(1).next_power_of_two().max(cp).min(slots / cp);
        Self::new(s0, slots / s0)
    }

    /// `s0·s1`.
    pub fn slots(&self) -> usize {
        self.s0 * self.s1
    }
}

/// The serialized form of a [`UnitShape`], checked on the way in.
#[derive(Deserialize)]
struct UnitShapeWire {
    s0: usize,
    s1: usize,
}

impl TryFrom<UnitShapeWire> for UnitShape {
    type Error = LinalgError;

    fn try_from(w: UnitShapeWire) -> Result<Self> {
        Self::new(w.s0, w.s1)
    }
}

/// `c' = max(2, c rounded up to a power of two)`: the class count padded as HETAL does
/// (at least two so that pairs of diagonals fill the real and imaginary slot parts).
pub fn padded_classes(classes: usize) -> usize {
    classes.max(2).next_power_of_two()
}

/// How a matrix fills its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tiling {
    /// Plain blocks, zero padded.
    None,
    /// One block row; slot row `r` holds matrix row `r mod period` (`rows ≤ period`,
    /// `period | s0`).
    Vertical {
        /// The period (a power of two).
        period: usize,
    },
    /// One block column; slot column `t` holds matrix column `t mod period`
    /// (`cols ≤ period`, `period | s1`).
    Horizontal {
        /// The period (a power of two).
        period: usize,
    },
}

/// A matrix-to-slots map: the number of slot vectors, and both directions.
pub trait Packing {
    /// Logical matrix shape `(rows, cols)`.
    fn shape(&self) -> (usize, usize);
    /// Slots per ciphertext.
    fn slots(&self) -> usize;
    /// Number of ciphertexts.
    fn num_ciphertexts(&self) -> usize;
    /// The slot vectors of `m` (each of length [`Self::slots`]).
    ///
    /// # Errors
    /// [`LinalgError::Shape`] if `m` does not have [`Self::shape`].
    fn pack(&self, m: &Matrix) -> Result<Vec<Vec<f64>>>;
    /// The matrix back from its slot vectors (padding and tiled copies are ignored).
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for the wrong number or length of vectors.
    fn unpack(&self, slots: &[Vec<f64>]) -> Result<Matrix>;
}

pub(crate) fn check_shape(p: &impl Packing, m: &Matrix) -> Result<()> {
    if (m.rows(), m.cols()) != p.shape() {
        return Err(LinalgError::Shape(format!(
            "a {}×{} matrix for a {}×{} packing",
            m.rows(),
            m.cols(),
            p.shape().0,
            p.shape().1
        )));
    }
    Ok(())
}

pub(crate) fn check_vectors(p: &impl Packing, v: &[Vec<f64>]) -> Result<()> {
    if v.len() != p.num_ciphertexts() || v.iter().any(|x| x.len() != p.slots()) {
        return Err(LinalgError::Layout(format!(
            "{} slot vectors for a packing of {} ciphertexts × {} slots",
            v.len(),
            p.num_ciphertexts(),
            p.slots()
        )));
    }
    Ok(())
}

/// HETAL's block layout of a `rows × cols` matrix (see the module docs). Deserialization
/// runs the checks of [`BlockLayout::with_tiling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BlockLayoutWire")]
pub struct BlockLayout {
    rows: usize,
    cols: usize,
    shape: UnitShape,
    tiling: Tiling,
}

/// The serialized form of a [`BlockLayout`], checked on the way in.
#[derive(Deserialize)]
struct BlockLayoutWire {
    rows: usize,
    cols: usize,
    shape: UnitShape,
    tiling: Tiling,
}

impl TryFrom<BlockLayoutWire> for BlockLayout {
    type Error = LinalgError;

    fn try_from(w: BlockLayoutWire) -> Result<Self> {
        Self::with_tiling(w.rows, w.cols, w.shape, w.tiling)
    }
}

impl BlockLayout {
    /// A plain (untiled) block layout.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for an empty matrix.
    pub fn new(rows: usize, cols: usize, shape: UnitShape) -> Result<Self> {
        Self::with_tiling(rows, cols, shape, Tiling::None)
    }

    /// A vertically tiled layout with period `c' = `[`padded_classes`]`(rows)` (the
    /// weight-matrix layout).
    ///
    /// # Errors
    /// As [`Self::with_tiling`].
    pub fn vertical(rows: usize, cols: usize, shape: UnitShape) -> Result<Self> {
        Self::with_tiling(
            rows,
            cols,
            shape,
            Tiling::Vertical {
                period: padded_classes(rows),
            },
        )
    }

    /// A layout with an explicit tiling.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for an empty matrix, a period that is not a power of two
    /// dividing `s0` (vertical) or `s1` (horizontal), a matrix larger than the period,
    /// or more than [`MAX_BLOCKS`] blocks.
    pub fn with_tiling(rows: usize, cols: usize, shape: UnitShape, tiling: Tiling) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(LinalgError::Layout("empty matrix".into()));
        }
        let (rb, cb) = match tiling {
            Tiling::None => (rows.div_ceil(shape.s0), cols.div_ceil(shape.s1)),
            Tiling::Vertical { .. } => (1, cols.div_ceil(shape.s1)),
            Tiling::Horizontal { .. } => (rows.div_ceil(shape.s0), 1),
        };
        if rb.checked_mul(cb).is_none_or(|n| n > MAX_BLOCKS) {
            return Err(LinalgError::Layout(format!(
                "a {rows}×{cols} matrix in ({}, {}) blocks needs more than {MAX_BLOCKS} blocks",
                shape.s0, shape.s1
            )));
        }
        match tiling {
            Tiling::None => {}
            Tiling::Vertical { period } => {
                if !period.is_power_of_two() || period > shape.s0 || rows > period {
                    return Err(LinalgError::Layout(format!(
                        "vertical tiling with period {period} of {rows} rows in blocks of {} rows",
                        shape.s0
                    )));
                }
            }
            Tiling::Horizontal { period } => {
                if !period.is_power_of_two() || period > shape.s1 || cols > period {
                    return Err(LinalgError::Layout(format!(
                        "horizontal tiling with period {period} of {cols} columns in blocks of {} columns",
                        shape.s1
                    )));
                }
            }
        }
        Ok(Self {
            rows,
            cols,
            shape,
            tiling,
        })
    }

    /// Logical rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Logical columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The unit shape.
    pub fn unit_shape(&self) -> UnitShape {
        self.shape
    }

    /// The tiling.
    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    /// Number of block rows (1 when vertically tiled).
    pub fn row_blocks(&self) -> usize {
        match self.tiling {
            Tiling::Vertical { .. } => 1,
            _ => self.rows.div_ceil(self.shape.s0),
        }
    }

    /// Number of block columns (1 when horizontally tiled).
    pub fn col_blocks(&self) -> usize {
        match self.tiling {
            Tiling::Horizontal { .. } => 1,
            _ => self.cols.div_ceil(self.shape.s1),
        }
    }

    /// The matrix entry a slot of block `(bi, bj)` holds, or `None` for padding.
    fn source(&self, bi: usize, bj: usize, r: usize, t: usize) -> Option<(usize, usize)> {
        let (i, j) = match self.tiling {
            Tiling::None => (bi * self.shape.s0 + r, bj * self.shape.s1 + t),
            Tiling::Vertical { period } => (r % period, bj * self.shape.s1 + t),
            Tiling::Horizontal { period } => (bi * self.shape.s0 + r, t % period),
        };
        (i < self.rows && j < self.cols).then_some((i, j))
    }
}

impl Packing for BlockLayout {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn slots(&self) -> usize {
        self.shape.slots()
    }

    fn num_ciphertexts(&self) -> usize {
        self.row_blocks() * self.col_blocks()
    }

    fn pack(&self, m: &Matrix) -> Result<Vec<Vec<f64>>> {
        check_shape(self, m)?;
        let UnitShape { s0, s1 } = self.shape;
        let mut out = Vec::with_capacity(self.num_ciphertexts());
        for bi in 0..self.row_blocks() {
            for bj in 0..self.col_blocks() {
                let mut v = vec![0.0; s0 * s1];
                for r in 0..s0 {
                    for t in 0..s1 {
                        if let Some((i, j)) = self.source(bi, bj, r, t) {
                            v[r * s1 + t] = m.get(i, j);
                        }
                    }
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    fn unpack(&self, slots: &[Vec<f64>]) -> Result<Matrix> {
        check_vectors(self, slots)?;
        let UnitShape { s0, s1 } = self.shape;
        let mut m = Matrix::zeros(self.rows, self.cols);
        let cb = self.col_blocks();
        for bi in 0..self.row_blocks() {
            for bj in 0..cb {
                let v = &slots[bi * cb + bj];
                // Read each entry from its first occurrence (r < period for tilings).
                for r in 0..s0 {
                    for t in 0..s1 {
                        let first = match self.tiling {
                            Tiling::Vertical { period } => r < period,
                            Tiling::Horizontal { period } => t < period,
                            Tiling::None => true,
                        };
                        if !first {
                            continue;
                        }
                        if let Some((i, j)) = self.source(bi, bj, r, t) {
                            m.set(i, j, v[r * s1 + t]);
                        }
                    }
                }
            }
        }
        Ok(m)
    }
}
