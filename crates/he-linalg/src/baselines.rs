//! Baseline encrypted matrix products, for comparison with DiagABT/DiagATB (HETAL,
//! Lee et al., ICML 2023, §5.2 and Table 2 compare against the same ones):
//!
//! - **ColMajor** `A·Bᵀ` and **RowMajor** `Aᵀ·B` (Crockett, "A low-depth homomorphic
//!   circuit for logistic regression model training", WAHC 2020): `A` column-major,
//!   each row of `B` replicated over the segments; one product per (class, block) and
//!   a log-step sum over the segments. RowMajor keeps `B` row-major and replicates each
//!   column of `A` along the rows.
//! - **Jin et al.** (PrivGD, "Secure transfer learning for machine fault diagnosis
//!   under different operating conditions", ProvSec 2020): column packing (one column
//!   per ciphertext); `A·Bᵀ` multiplies column `j` of `A` by the replicated entry
//!   `B[k, j]` (`c·b` products, no rotation); `Aᵀ·B` multiplies column `k` of `A` by
//!   column `t` of `B` and sums all slots (`c·b` products and `c·b·log2(slots)`
//!   rotations).
//!
//! Each baseline takes its inputs in its own packing ([`BaselinePacking`]; the client
//! packs them) and products are summed before one relinearization, as in our own
//! algorithms, so the comparison measures the algorithms, not the plumbing. All have
//! depth 1.

use crate::encrypted::Packed;
use crate::error::{LinalgError, Result};
use crate::evaluator::MatrixEvaluator;
use crate::layout::{BlockLayout, Packing, Tiling, UnitShape, check_shape, check_vectors};
use crate::matrix::Matrix;
use ckks::he_math::Backend;
use serde::{Deserialize, Serialize};

/// The baselines' packings. Ciphertext order is given per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BaselinePacking {
    /// Column-major blocks (ColMajor's `A`): block `(bi, bj)` holds rows `bi·s0 …` and
    /// columns `bj·s1 …` at slot `jj·s0 + ii`; order `bi·col_blocks + bj`.
    ColumnMajor {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// `(s0, s1)`: `s0` rows per segment, `s1` segments.
        shape: UnitShape,
    },
    /// Each row's entries replicated over segments (ColMajor's `B`): for row `k` and
    /// column chunk `bj`, segment `jj` (slots `jj·s0 … jj·s0 + s0 − 1`) is filled with
    /// `M[k, bj·s1 + jj]`; order `k·col_blocks + bj`.
    SegmentReplicated {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// `(s0, s1)`.
        shape: UnitShape,
    },
    /// Each column replicated along the rows of row-major blocks (RowMajor's `A`): for
    /// column `k` and row block `bi`, slot `(r, t)` holds `M[bi·s0 + r, k]` for every
    /// `t`; order `k·row_blocks + bi`.
    ColumnReplicated {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// `(s0, s1)`.
        shape: UnitShape,
    },
    /// Each row replicated down the rows of a block (RowMajor's output): for row `k`
    /// and column block `bj`, slot `(r, t)` holds `M[k, bj·s1 + t]` for every `r`;
    /// order `k·col_blocks + bj`.
    RowReplicated {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// `(s0, s1)`.
        shape: UnitShape,
    },
    /// Column packing (Jin et al.; also ColMajor's output with `chunk = s0`): for column
    /// `j` and row chunk `ch`, slot `ii < chunk` holds `M[ch·chunk + ii, j]` (other
    /// slots zero when packing, ignored when unpacking); order `j·chunks + ch`.
    Columns {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Rows per ciphertext (≤ slots).
        chunk: usize,
        /// Slots per ciphertext.
        slots: usize,
    },
    /// Every entry replicated over all slots (Jin et al.'s `B` for `A·Bᵀ` and output of
    /// `Aᵀ·B`); order `k·cols + j` (row-major).
    ReplicatedEntries {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Slots per ciphertext.
        slots: usize,
    },
}

impl Packing for BaselinePacking {
    fn shape(&self) -> (usize, usize) {
        match *self {
            Self::ColumnMajor { rows, cols, .. }
            | Self::SegmentReplicated { rows, cols, .. }
            | Self::ColumnReplicated { rows, cols, .. }
            | Self::RowReplicated { rows, cols, .. }
            | Self::Columns { rows, cols, .. }
            | Self::ReplicatedEntries { rows, cols, .. } => (rows, cols),
        }
    }

    fn slots(&self) -> usize {
        match *self {
            Self::ColumnMajor { shape, .. }
            | Self::SegmentReplicated { shape, .. }
            | Self::ColumnReplicated { shape, .. }
            | Self::RowReplicated { shape, .. } => shape.slots(),
            Self::Columns { slots, .. } | Self::ReplicatedEntries { slots, .. } => slots,
        }
    }

    fn num_ciphertexts(&self) -> usize {
        match *self {
            Self::ColumnMajor { rows, cols, shape } => {
                rows.div_ceil(shape.s0) * cols.div_ceil(shape.s1)
            }
            Self::SegmentReplicated { rows, cols, shape }
            | Self::RowReplicated { rows, cols, shape } => rows * cols.div_ceil(shape.s1),
            Self::ColumnReplicated { rows, cols, shape } => cols * rows.div_ceil(shape.s0),
            Self::Columns {
                rows, cols, chunk, ..
            } => cols * rows.div_ceil(chunk),
            Self::ReplicatedEntries { rows, cols, .. } => rows * cols,
        }
    }

    fn pack(&self, m: &Matrix) -> Result<Vec<Vec<f64>>> {
        check_shape(self, m)?;
        let n = self.slots();
        let mut out = Vec::with_capacity(self.num_ciphertexts());
        match *self {
            Self::ColumnMajor { rows, cols, shape } => {
                let UnitShape { s0, s1 } = shape;
                for bi in 0..rows.div_ceil(s0) {
                    for bj in 0..cols.div_ceil(s1) {
                        out.push(
                            (0..n)
                                .map(|x| m.get_or_zero(bi * s0 + x % s0, bj * s1 + x / s0))
                                .collect(),
                        );
                    }
                }
            }
            Self::SegmentReplicated { rows, cols, shape } => {
                let UnitShape { s0, s1 } = shape;
                for k in 0..rows {
                    for bj in 0..cols.div_ceil(s1) {
                        out.push((0..n).map(|x| m.get_or_zero(k, bj * s1 + x / s0)).collect());
                    }
                }
            }
            Self::ColumnReplicated { rows, cols, shape } => {
                let UnitShape { s0, s1 } = shape;
                for k in 0..cols {
                    for bi in 0..rows.div_ceil(s0) {
                        out.push((0..n).map(|x| m.get_or_zero(bi * s0 + x / s1, k)).collect());
                    }
                }
            }
            Self::RowReplicated { rows, cols, shape } => {
                let s1 = shape.s1;
                for k in 0..rows {
                    for bj in 0..cols.div_ceil(s1) {
                        out.push((0..n).map(|x| m.get_or_zero(k, bj * s1 + x % s1)).collect());
                    }
                }
            }
            Self::Columns {
                rows, cols, chunk, ..
            } => {
                for j in 0..cols {
                    for ch in 0..rows.div_ceil(chunk) {
                        out.push(
                            (0..n)
                                .map(|x| {
                                    if x < chunk {
                                        m.get_or_zero(ch * chunk + x, j)
                                    } else {
                                        0.0
                                    }
                                })
                                .collect(),
                        );
                    }
                }
            }
            Self::ReplicatedEntries { rows, cols, .. } => {
                for k in 0..rows {
                    for j in 0..cols {
                        out.push(vec![m.get(k, j); n]);
                    }
                }
            }
        }
        Ok(out)
    }

    fn unpack(&self, v: &[Vec<f64>]) -> Result<Matrix> {
        check_vectors(self, v)?;
        let (rows, cols) = self.shape();
        let m = match *self {
            Self::ColumnMajor { shape, .. } => {
                let UnitShape { s0, s1 } = shape;
                let cb = cols.div_ceil(s1);
                Matrix::from_fn(rows, cols, |i, j| {
                    v[(i / s0) * cb + j / s1][(j % s1) * s0 + i % s0]
                })
            }
            Self::SegmentReplicated { shape, .. } => {
                let UnitShape { s0, s1 } = shape;
                let cb = cols.div_ceil(s1);
                Matrix::from_fn(rows, cols, |k, j| v[k * cb + j / s1][(j % s1) * s0])
            }
            Self::ColumnReplicated { shape, .. } => {
                let UnitShape { s0, s1 } = shape;
                let rb = rows.div_ceil(s0);
                Matrix::from_fn(rows, cols, |i, k| v[k * rb + i / s0][(i % s0) * s1])
            }
            Self::RowReplicated { shape, .. } => {
                let s1 = shape.s1;
                let cb = cols.div_ceil(s1);
                Matrix::from_fn(rows, cols, |k, j| v[k * cb + j / s1][j % s1])
            }
            Self::Columns { chunk, .. } => {
                let chunks = rows.div_ceil(chunk);
                Matrix::from_fn(rows, cols, |i, j| v[j * chunks + i / chunk][i % chunk])
            }
            Self::ReplicatedEntries { .. } => {
                Matrix::from_fn(rows, cols, |k, j| v[k * cols + j][0])
            }
        };
        Ok(m)
    }
}

/// A matrix encrypted in a baseline packing.
pub type BaselineMatrix<B> = Packed<BaselinePacking, B>;

fn layout_err(what: &str, p: &impl std::fmt::Debug) -> LinalgError {
    LinalgError::Layout(format!("{what}: unexpected packing {p:?}"))
}

impl<B: Backend> MatrixEvaluator<B> {
    /// Crockett's ColMajor `A·Bᵀ`: `A` (`a×b`) in [`BaselinePacking::ColumnMajor`], `B`
    /// (`c×b`) in [`BaselinePacking::SegmentReplicated`], same unit shape. Output `a×c`
    /// in [`BaselinePacking::Columns`] with `chunk = s0`. `Mult = c·⌈a/s0⌉·⌈b/s1⌉`,
    /// `Rot = c·⌈a/s0⌉·log2 s1`, depth 1.
    ///
    /// # Errors
    /// [`LinalgError::Layout`]/[`LinalgError::Shape`] for other packings or shapes;
    /// CKKS errors (missing rotation keys `s0·2^j`).
    pub fn col_major_abt(
        &self,
        a: &BaselineMatrix<B>,
        b: &BaselineMatrix<B>,
    ) -> Result<BaselineMatrix<B>> {
        let _span = tracing::debug_span!("col_major_abt").entered();
        let (
            BaselinePacking::ColumnMajor { rows, cols, shape },
            BaselinePacking::SegmentReplicated {
                rows: c,
                cols: bc,
                shape: bs,
            },
        ) = (*a.packing(), *b.packing())
        else {
            return Err(layout_err("ColMajor", &(a.packing(), b.packing())));
        };
        if bs != shape || bc != cols {
            return Err(LinalgError::Shape(format!("A {rows}×{cols}, B {c}×{bc}")));
        }
        let ev = self.evaluator();
        let level = a.level().min(b.level());
        let (ac, bcts) = (
            self.align_all(a.ciphertexts(), level)?,
            self.align_all(b.ciphertexts(), level)?,
        );
        let (rb, cb) = (rows.div_ceil(shape.s0), cols.div_ceil(shape.s1));
        let mut out = Vec::with_capacity(c * rb);
        for k in 0..c {
            for bi in 0..rb {
                let pairs: Vec<_> = (0..cb)
                    .map(|bj| (&*ac[bi * cb + bj], &*bcts[k * cb + bj]))
                    .collect();
                let p = self.dot(&pairs)?;
                out.push(ev.rotate_and_sum(&p, shape.s1, shape.s0 as i64)?);
            }
        }
        Packed::from_parts(
            BaselinePacking::Columns {
                rows,
                cols: c,
                chunk: shape.s0,
                slots: shape.slots(),
            },
            out,
        )
    }

    /// Crockett's RowMajor `Aᵀ·B`: `A` (`a×c`) in [`BaselinePacking::ColumnReplicated`],
    /// `B` (`a×b`) in HETAL's plain block layout with the same unit shape. Output `c×b`
    /// in [`BaselinePacking::RowReplicated`]. `Mult = c·⌈a/s0⌉·⌈b/s1⌉`,
    /// `Rot = c·⌈b/s1⌉·log2 s0`, depth 1.
    ///
    /// # Errors
    /// As [`Self::col_major_abt`] (rotation keys `s1·2^j`).
    pub fn row_major_atb(
        &self,
        a: &BaselineMatrix<B>,
        b: &Packed<BlockLayout, B>,
    ) -> Result<BaselineMatrix<B>> {
        let _span = tracing::debug_span!("row_major_atb").entered();
        let BaselinePacking::ColumnReplicated {
            rows,
            cols: c,
            shape,
        } = *a.packing()
        else {
            return Err(layout_err("RowMajor A", a.packing()));
        };
        let lb = b.packing();
        if lb.tiling() != Tiling::None || lb.unit_shape() != shape || lb.rows() != rows {
            return Err(LinalgError::Shape(format!("A {rows}×{c}, B {lb:?}")));
        }
        let ev = self.evaluator();
        let level = a.level().min(b.level());
        let (ac, bcts) = (
            self.align_all(a.ciphertexts(), level)?,
            self.align_all(b.ciphertexts(), level)?,
        );
        let (rb, cb) = (lb.row_blocks(), lb.col_blocks());
        let mut out = Vec::with_capacity(c * cb);
        for k in 0..c {
            for bj in 0..cb {
                let pairs: Vec<_> = (0..rb)
                    .map(|bi| (&*ac[k * rb + bi], &*bcts[bi * cb + bj]))
                    .collect();
                let p = self.dot(&pairs)?;
                out.push(ev.rotate_and_sum(&p, shape.s0, shape.s1 as i64)?);
            }
        }
        Packed::from_parts(
            BaselinePacking::RowReplicated {
                rows: c,
                cols: lb.cols(),
                shape,
            },
            out,
        )
    }

    /// Jin et al.'s `A·Bᵀ`: `A` (`a×b`) in [`BaselinePacking::Columns`], `B` (`c×b`) in
    /// [`BaselinePacking::ReplicatedEntries`]. Output `a×c` in
    /// [`BaselinePacking::Columns`]. `Mult = c·b·⌈a/chunk⌉`, no rotation, depth 1.
    ///
    /// # Errors
    /// As [`Self::col_major_abt`].
    pub fn jin_abt(
        &self,
        a: &BaselineMatrix<B>,
        b: &BaselineMatrix<B>,
    ) -> Result<BaselineMatrix<B>> {
        let _span = tracing::debug_span!("jin_abt").entered();
        let (
            BaselinePacking::Columns {
                rows,
                cols,
                chunk,
                slots,
            },
            BaselinePacking::ReplicatedEntries {
                rows: c, cols: bc, ..
            },
        ) = (*a.packing(), *b.packing())
        else {
            return Err(layout_err("Jin A·Bᵀ", &(a.packing(), b.packing())));
        };
        if bc != cols {
            return Err(LinalgError::Shape(format!("A {rows}×{cols}, B {c}×{bc}")));
        }
        let level = a.level().min(b.level());
        let (ac, bcts) = (
            self.align_all(a.ciphertexts(), level)?,
            self.align_all(b.ciphertexts(), level)?,
        );
        let chunks = rows.div_ceil(chunk);
        let mut out = Vec::with_capacity(c * chunks);
        for k in 0..c {
            for ch in 0..chunks {
                let pairs: Vec<_> = (0..cols)
                    .map(|j| (&*ac[j * chunks + ch], &*bcts[k * cols + j]))
                    .collect();
                out.push(self.dot(&pairs)?);
            }
        }
        Packed::from_parts(
            BaselinePacking::Columns {
                rows,
                cols: c,
                chunk,
                slots,
            },
            out,
        )
    }

    /// Jin et al.'s `Aᵀ·B`: `A` (`a×c`) and `B` (`a×b`) both in
    /// [`BaselinePacking::Columns`] with the same chunk. Output `c×b` in
    /// [`BaselinePacking::ReplicatedEntries`]: each entry is the inner product of two
    /// columns, summed over all slots. `Mult = c·b·⌈a/chunk⌉`,
    /// `Rot = c·b·log2(slots)`, depth 1.
    ///
    /// # Errors
    /// As [`Self::col_major_abt`] (rotation keys `2^j`).
    pub fn jin_atb(
        &self,
        a: &BaselineMatrix<B>,
        b: &BaselineMatrix<B>,
    ) -> Result<BaselineMatrix<B>> {
        let _span = tracing::debug_span!("jin_atb").entered();
        let (
            BaselinePacking::Columns {
                rows,
                cols: c,
                chunk,
                slots,
            },
            BaselinePacking::Columns {
                rows: br,
                cols,
                chunk: bch,
                ..
            },
        ) = (*a.packing(), *b.packing())
        else {
            return Err(layout_err("Jin Aᵀ·B", &(a.packing(), b.packing())));
        };
        if br != rows || bch != chunk {
            return Err(LinalgError::Shape(format!("A {rows}×{c}, B {br}×{cols}")));
        }
        let ev = self.evaluator();
        let level = a.level().min(b.level());
        let (ac, bcts) = (
            self.align_all(a.ciphertexts(), level)?,
            self.align_all(b.ciphertexts(), level)?,
        );
        let chunks = rows.div_ceil(chunk);
        let mut out = Vec::with_capacity(c * cols);
        for k in 0..c {
            for t in 0..cols {
                let pairs: Vec<_> = (0..chunks)
                    .map(|ch| (&*ac[k * chunks + ch], &*bcts[t * chunks + ch]))
                    .collect();
                let p = self.dot(&pairs)?;
                out.push(ev.rotate_and_sum(&p, slots, 1)?);
            }
        }
        Packed::from_parts(
            BaselinePacking::ReplicatedEntries {
                rows: c,
                cols,
                slots,
            },
            out,
        )
    }
}
