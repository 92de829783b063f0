//! HETAL's matrix products DiagABT (`A·Bᵀ`) and DiagATB (`Aᵀ·B`) on the block layout
//! (Lee et al., ICML 2023, §4.2 and Algorithms 2–5), with two diagonals per
//! ciphertext multiplication through the complex slots.
//!
//! Notation: unit shape `(s0, s1)`, `c` classes padded to `c'` ([`padded_classes`]),
//! `RotUp(x, k)` = rotate left by `k·s1` (row `r` receives row `r + k`), `RotDown` the
//! inverse, `RotLeft(x, k)` = rotate left by `k` (column `t` receives column `t + k`).
//! Every rotation is cyclic over the whole ciphertext, so a row shift by a multiple of
//! `c'` (which divides `s0`) maps each row class `r mod c'` onto itself.
//!
//! **Complex packing of diagonals.** The slots are complex; all matrices are real. Two
//! diagonals `k` and `k+1` ride in one ciphertext as `x + i·y`; the products, row and
//! column sums and rotations are linear and act on both at once, and a final
//! `z + conj(z)` (one conjugation per output ciphertext) separates them after a complex
//! mask `(M_k − i·M_{k+1})/2` has sent each to its place. This halves the
//! ciphertext multiplications: `Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉`, HETAL's Table 6 count.
//!
//! | algorithm | inputs | output | depth |
//! |---|---|---|---|
//! | [`MatrixEvaluator::diag_abt`] | `A` plain `a×b`, `B` vertically tiled `c×b` | plain `a×c` | 3 |
//! | [`MatrixEvaluator::diag_abt_prepared`] | `A` plain, `B` aligned ([`AbtWeights`]) | plain `a×c` | 3 |
//! | [`MatrixEvaluator::diag_atb`] | `A` plain `a×c`, `B` plain `a×b` | vertically tiled `c×b` | 3 from `A`, 1 from `B` |
//! | [`MatrixEvaluator::diag_atb_prepared`] | `A` prepared ([`AtbLhs`]), `B` plain | vertically tiled `c×b` | 1 |
//! | [`MatrixEvaluator::diag_atb_prot_up`] | same | same | 2 from `A`, 3 from `B` |
//!
//! The output level is the minimum over the inputs of `level − depth from that input`;
//! inputs are first aligned ([`MatrixEvaluator::align`]) to a common level.
//!
//! **Preparation.** Each product splits into an operand preparation that depends on
//! the small operand only — DiagABT's alignment of `B` (`⌈b/s1⌉·c'/2` rotations),
//! DiagATB's diagonal extraction from `A` (`⌈a/s0⌉·c'/2·(log2 c' + log2 s1)`
//! rotations, two levels) — and the product proper. The split is public: a training
//! loop prepares once per step, and a client that holds the small operand in the clear
//! can encrypt it already prepared ([`AbtWeights::encrypt`], [`AtbLhs::encrypt`]), as
//! the baselines' clients encrypt their replicated packings.
//!
//! **Scaled products.** [`MatrixEvaluator::diag_atb_scaled`] computes `η·Aᵀ·B` with the
//! constant inside a multiplication the product does anyway (an operand's alignment to
//! the product's level, else a mask), at the levels and with the operations of the
//! unscaled one: a gradient step `η·G` costs no level of its own. As late as possible:
//! the noise added after a small constant does not shrink with it.

/// Levels [`MatrixEvaluator::diag_abt`] consumes (from either operand; see the table in
/// the module docs).
pub const DIAG_ABT_DEPTH: usize = 3;
/// Levels [`MatrixEvaluator::diag_atb`] (RotLeft) consumes from its left operand `A`.
pub const DIAG_ATB_DEPTH_LHS: usize = 3;
/// Levels [`MatrixEvaluator::diag_atb`] (RotLeft) consumes from its right operand `B`.
pub const DIAG_ATB_DEPTH_RHS: usize = 1;

/// Most row blocks (`⌈a/s0⌉`) for which RotLeft's DiagATB rotates `B` rather than the
/// products: `RotDown(Σ_i Â_{im} ⊙ B_{ik}, 2m) = Σ_i RotDown(Â_{im}, 2m) ⊙ RotDown(B_{ik},
/// 2m)`, so with `B`'s `c'/2 − 1` rotations hoisted (one decomposition, about a third of
/// a key switch, for all of them) the `c'/2` products of a column block share one
/// relinearization: per column block `⌈a/s0⌉·(1 + 2h)/3 + 1` key switches against
/// `2h + 1` (`h = c'/2 − 1`), fewer up to two row blocks.
const ROTATE_B_MAX_ROW_BLOCKS: usize = 2;

/// Where RotLeft's DiagATB multiplies its constant in ([`MatrixEvaluator::diag_atb_scaled`]).
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// No constant (`scale = 1`).
    None,
    /// In the alignment of `A`'s prepared diagonals to the product's level.
    Lhs(f64),
    /// In the alignment of `B` to the product's level.
    Rhs(f64),
    /// In the `A`-side column mask (already applied when the diagonals were prepared).
    Mask,
}

use crate::encrypted::{EncryptedMatrix, MatrixEncryptor};
use crate::error::{LinalgError, Result};
use crate::evaluator::{MatrixEvaluator, real_mask};
use crate::layout::{BlockLayout, Tiling, UnitShape, padded_classes};
use crate::matrix::Matrix;
use ckks::he_math::Backend;
use ckks::{Ciphertext, Complex64, Context};
use std::borrow::Cow;
use std::sync::Arc;

/// DiagABT's `B` operand aligned for the products: for each column block `k` and pair
/// `m < c'/2`, the ciphertext whose row `r` holds
/// `B[(r+2m) mod c'] + i·B[(r+2m+1) mod c']` (columns of block `k`, zero for classes
/// `≥ c`). Built by the server from a vertically tiled `B`
/// ([`MatrixEvaluator::prepare_abt_weights`]) or encrypted directly by a client that
/// holds `B` ([`AbtWeights::encrypt`]).
#[derive(Debug, Clone)]
pub struct AbtWeights<B: Backend> {
    layout: BlockLayout,
    aligned: Vec<Vec<Ciphertext<B>>>,
}

/// DiagATB's `A` operand prepared for the products: for each row block `i` and pair
/// `m < c'/2`, the ciphertext whose row `r` holds, in every column,
/// `½·(A[r, (r+2m) mod c'] + i·A[r, (r+2m+1) mod c'])`. Built by the server
/// ([`MatrixEvaluator::prepare_atb_lhs`]) or encrypted directly by a client that
/// holds `A` ([`AtbLhs::encrypt`]).
#[derive(Debug, Clone)]
pub struct AtbLhs<B: Backend> {
    layout: BlockLayout,
    diagonals: Vec<Vec<Ciphertext<B>>>,
}

fn encrypt_all<B: Backend>(
    ctx: &Arc<Context<B>>,
    encryptor: &impl MatrixEncryptor<B>,
    vectors: Vec<Vec<Vec<Complex64>>>,
    level: usize,
) -> Result<Vec<Vec<Ciphertext<B>>>> {
    let scale = ctx.params().scale_at(level)?;
    vectors
        .into_iter()
        .map(|row| {
            row.iter()
                .map(|v| encryptor.encrypt_block(&ctx.encode_complex(v, level, scale)?))
                .collect()
        })
        .collect()
}

impl<B: Backend> AbtWeights<B> {
    /// Client side: encrypts the aligned form of `b` (`c×b'`) for unit shape `shape` at
    /// `level` — what [`MatrixEvaluator::prepare_abt_weights`] computes, without its
    /// rotations.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] if `c' > s0` or `c' > s1`; CKKS errors.
    pub fn encrypt(
        ctx: &Arc<Context<B>>,
        encryptor: &impl MatrixEncryptor<B>,
        b: &Matrix,
        shape: UnitShape,
        level: usize,
    ) -> Result<Self> {
        let layout = BlockLayout::vertical(b.rows(), b.cols(), shape)?;
        let cp = padded_classes(b.rows());
        check_classes(shape, cp)?;
        let UnitShape { s0, s1 } = shape;
        let vectors = (0..layout.col_blocks())
            .map(|k| {
                (0..cp / 2)
                    .map(|m| {
                        (0..s0 * s1)
                            .map(|x| {
                                let (r, t) = (x / s1, k * s1 + x % s1);
                                Complex64::new(
                                    b.get_or_zero((r + 2 * m) % cp, t),
                                    b.get_or_zero((r + 2 * m + 1) % cp, t),
                                )
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            layout,
            aligned: encrypt_all(ctx, encryptor, vectors, level)?,
        })
    }

    /// The layout of the underlying `B` (vertically tiled).
    pub fn layout(&self) -> &BlockLayout {
        &self.layout
    }

    /// The level of the ciphertexts.
    pub fn level(&self) -> usize {
        self.aligned
            .first()
            .and_then(|v| v.first())
            .map_or(0, Ciphertext::level)
    }

    /// Number of ciphertexts (`⌈b/s1⌉·c'/2`).
    pub fn num_ciphertexts(&self) -> usize {
        self.aligned.iter().map(Vec::len).sum()
    }
}

impl<B: Backend> AtbLhs<B> {
    /// Client side: encrypts the prepared diagonals of `a` (`a×c`) for unit shape
    /// `shape` at `level` — what [`MatrixEvaluator::prepare_atb_lhs`] computes, without
    /// its masks and rotations.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] if `c' > s0` or `c' > s1`; CKKS errors.
    pub fn encrypt(
        ctx: &Arc<Context<B>>,
        encryptor: &impl MatrixEncryptor<B>,
        a: &Matrix,
        shape: UnitShape,
        level: usize,
    ) -> Result<Self> {
        let layout = BlockLayout::new(a.rows(), a.cols(), shape)?;
        let cp = padded_classes(a.cols());
        check_classes(shape, cp)?;
        let UnitShape { s0, s1 } = shape;
        let vectors = (0..layout.row_blocks())
            .map(|i| {
                (0..cp / 2)
                    .map(|m| {
                        (0..s0 * s1)
                            .map(|x| {
                                let r = x / s1;
                                let row = i * s0 + r;
                                Complex64::new(
                                    0.5 * a.get_or_zero(row, (r + 2 * m) % cp),
                                    0.5 * a.get_or_zero(row, (r + 2 * m + 1) % cp),
                                )
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            layout,
            diagonals: encrypt_all(ctx, encryptor, vectors, level)?,
        })
    }

    /// The layout of the underlying `A` (plain).
    pub fn layout(&self) -> &BlockLayout {
        &self.layout
    }

    /// The level of the ciphertexts.
    pub fn level(&self) -> usize {
        self.diagonals
            .first()
            .and_then(|v| v.first())
            .map_or(0, Ciphertext::level)
    }

    /// Number of ciphertexts (`⌈a/s0⌉·c'/2`).
    pub fn num_ciphertexts(&self) -> usize {
        self.diagonals.iter().map(Vec::len).sum()
    }
}

/// Which DiagATB variant to run (see [`MatrixEvaluator::diag_atb_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiagAtbVariant {
    /// Diagonals of `A` gathered and replicated along rows (depth 3 from `A`, 1 from
    /// `B`; fewest rotations).
    RotLeft,
    /// `A` tiled horizontally and rotated left, the row wrap-around corrected on `B` by
    /// a partial row rotation (depth 2 from `A`, 3 from `B`; `log2 s0` extra rotations
    /// per pair of diagonals and `c'` instead of `c'/2` ciphertext multiplications).
    PRotUp,
    /// [`Self::PRotUp`] when it yields a higher output level (`level(A) < level(B)`,
    /// e.g. `A = P − Y` coming out of the softmax), [`Self::RotLeft`] otherwise.
    Auto,
}

fn check_vertical(l: &BlockLayout) -> Result<usize> {
    match l.tiling() {
        Tiling::Vertical { period } if period == padded_classes(l.rows()) => Ok(period),
        t => Err(LinalgError::Layout(format!(
            "expected a vertical tiling with period {} (rows {}), got {t:?}",
            padded_classes(l.rows()),
            l.rows()
        ))),
    }
}

fn check_plain(l: &BlockLayout, what: &str) -> Result<()> {
    if l.tiling() != Tiling::None {
        return Err(LinalgError::Layout(format!(
            "{what} must be a plain block layout, got {:?}",
            l.tiling()
        )));
    }
    Ok(())
}

/// DiagABT's operand checks: `A` plain, the same unit shapes, the same column counts.
fn check_abt(la: &BlockLayout, lb: &BlockLayout) -> Result<UnitShape> {
    check_plain(la, "A")?;
    let shape = la.unit_shape();
    if lb.unit_shape() != shape {
        return Err(LinalgError::Layout(
            "A and B have different unit shapes".into(),
        ));
    }
    if la.cols() != lb.cols() {
        return Err(LinalgError::Shape(format!(
            "A·Bᵀ with A {}×{} and B {}×{}",
            la.rows(),
            la.cols(),
            lb.rows(),
            lb.cols()
        )));
    }
    Ok(shape)
}

fn check_classes(shape: UnitShape, cp: usize) -> Result<()> {
    if cp > shape.s0 || cp > shape.s1 {
        return Err(LinalgError::Layout(format!(
            "{cp} (padded) classes need s0, s1 ≥ {cp}; unit shape ({}, {})",
            shape.s0, shape.s1
        )));
    }
    Ok(())
}

fn need_levels(level: usize, depth: usize) -> Result<()> {
    if level < depth {
        return Err(LinalgError::LevelTooLow {
            needed: depth,
            level,
        });
    }
    Ok(())
}

impl<B: Backend> MatrixEvaluator<B> {
    /// DiagABT (HETAL Alg. 2–3): `A·Bᵀ` for `A` (`a×b`, plain blocks) and `B` (`c×b`,
    /// vertically tiled with period `c'`, one block per column block of `A`), e.g.
    /// logits `X·Wᵀ`. Output: `a×c`, plain blocks of the same unit shape (columns
    /// `≥ c` zero), at level `min(level A, level B) − 3`.
    ///
    /// The same products as [`Self::prepare_abt_weights`] followed by
    /// [`Self::diag_abt_prepared`], streamed over the column blocks: each block of `B`
    /// is brought to the product's level, aligned (`c'/2` hoisted rotations) and
    /// multiplied into `⌈a/s0⌉·c'/2` unrelinearized accumulators, and its rotations are
    /// dropped before the next block's. At DermaMNIST's shape that keeps 4 rotated blocks
    /// alive instead of 164 (with the aligned copies of `A`, the largest part of a
    /// training step's memory). The result is bit for bit the prepared path's.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for other layouts or unit shapes, `c' > s0` or
    /// `c' > s1`; [`LinalgError::Shape`] unless the column counts agree;
    /// [`LinalgError::LevelTooLow`] below level 3; missing rotation keys (see
    /// [`crate::keys::diag_abt_keys`]).
    pub fn diag_abt(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("diag_abt_streamed").entered();
        let (la, lb) = (a.layout(), b.layout());
        let cp = check_vertical(lb)?;
        let shape = check_abt(la, lb)?;
        check_classes(shape, cp)?;
        let level = a.level().min(b.level());
        need_levels(level, DIAG_ABT_DEPTH)?;
        let ev = self.evaluator();
        let s1 = shape.s1;
        let shifts: Vec<i64> = (0..cp / 2).map(|m| (2 * m * s1) as i64).collect();
        let (rb, cb) = (la.row_blocks(), la.col_blocks());
        // acc[i][m] = Σ_k A_{ik} ⊗ RotUp(B'_k, 2m), degree 2.
        let mut acc: Vec<Vec<Option<Ciphertext<B>>>> = vec![vec![None; cp / 2]; rb];
        for (k, bk) in b.ciphertexts().iter().enumerate() {
            let bk = self.align_cow(bk, level)?;
            let up = ev.rotate(&bk, s1 as i64)?;
            let bp = ev.add(&bk, &ev.mul_by_i(&up)?)?;
            drop((bk, up));
            let rots = ev.rotate_hoisted(&bp, &shifts)?;
            for (i, row) in acc.iter_mut().enumerate() {
                let ak = self.align_cow(&a.ciphertexts()[i * cb + k], level)?;
                for (slot, r) in row.iter_mut().zip(&rots) {
                    self.accumulate(slot, ev.mul(&ak, r)?)?;
                }
            }
        }
        let out = acc
            .into_iter()
            .map(|row| {
                let zs = row.into_iter().map(|z| {
                    let z = z.ok_or_else(|| LinalgError::Shape("empty inner dimension".into()))?;
                    Ok(ev.relinearize_rescale_owned(z)?)
                });
                self.abt_row_block(zs, shape, cp, lb.rows(), level)
            })
            .collect::<Result<Vec<_>>>()?;
        EncryptedMatrix::from_parts(BlockLayout::new(la.rows(), lb.rows(), shape)?, out)
    }

    /// The `B`-side alignment of DiagABT: for each column block `k`,
    /// `B'_k = B_k + i·RotUp(B_k, 1)` and its hoisted rotations `RotUp(B'_k, 2m)`,
    /// `m < c'/2` (`⌈b/s1⌉·c'/2` rotations, no level). In training this runs once per
    /// step on the encrypted `W`; a client holding `B` can instead encrypt the aligned
    /// form directly ([`AbtWeights::encrypt`]).
    ///
    /// # Errors
    /// [`LinalgError::Layout`] unless `b` is vertically tiled with period `c'`
    /// (`c' ≤ s0, s1`); missing rotation keys.
    pub fn prepare_abt_weights(&self, b: &EncryptedMatrix<B>) -> Result<AbtWeights<B>> {
        let _span = tracing::debug_span!("prepare_abt_weights").entered();
        let lb = b.layout();
        let cp = check_vertical(lb)?;
        let shape = lb.unit_shape();
        check_classes(shape, cp)?;
        let ev = self.evaluator();
        let s1 = shape.s1;
        let shifts: Vec<i64> = (0..cp / 2).map(|m| (2 * m * s1) as i64).collect();
        let aligned = b
            .ciphertexts()
            .iter()
            .map(|bk| {
                let up = ev.rotate(bk, s1 as i64)?;
                let bp = ev.add(bk, &ev.mul_by_i(&up)?)?;
                Ok(ev.rotate_hoisted(&bp, &shifts)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AbtWeights {
            layout: *lb,
            aligned,
        })
    }

    /// DiagABT on an aligned `B` ([`AbtWeights`]). Per row block `i` and pair `m`:
    /// `Z = Σ_k A_{ik} ⊙ RotUp(B'_k, 2m)` (one relinearization), row sums into
    /// column 0 by `log2 s1` rotate-and-adds, column-0 mask, replication over `c'`
    /// columns (`log2 c'` rotations), the complex diagonal mask, and at the end one
    /// `z + conj(z)`. Counts: `Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉`, `CMult = c'·⌈a/s0⌉`,
    /// `Rot = (c'/2)·⌈a/s0⌉·(log2 s1 + log2 c')`, `⌈a/s0⌉` conjugations. Depth 3.
    ///
    /// # Errors
    /// As [`Self::diag_abt`].
    pub fn diag_abt_prepared(
        &self,
        a: &EncryptedMatrix<B>,
        w: &AbtWeights<B>,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("diag_abt").entered();
        let (la, lb) = (a.layout(), &w.layout);
        let cp = check_vertical(lb)?;
        let shape = check_abt(la, lb)?;
        check_classes(shape, cp)?;
        let level = a.level().min(w.level());
        need_levels(level, DIAG_ABT_DEPTH)?;
        let a_cts = self.align_all(a.ciphertexts(), level)?;
        let b_rot = w
            .aligned
            .iter()
            .map(|v| self.align_all(v, level))
            .collect::<Result<Vec<_>>>()?;
        let (rb, cb) = (la.row_blocks(), la.col_blocks());
        let out = (0..rb)
            .map(|i| {
                let zs = (0..cp / 2).map(|m| {
                    let pairs: Vec<_> = (0..cb)
                        .map(|k| (&*a_cts[i * cb + k], &*b_rot[k][m]))
                        .collect();
                    self.dot(&pairs) // level − 1
                });
                self.abt_row_block(zs, shape, cp, lb.rows(), level)
            })
            .collect::<Result<Vec<_>>>()?;
        EncryptedMatrix::from_parts(BlockLayout::new(la.rows(), lb.rows(), shape)?, out)
    }

    /// The end of DiagABT for one row block, from its products
    /// `z_m = Σ_k A_{ik} ⊙ RotUp(B'_k, 2m)` (`m < c'/2`, relinearized and rescaled, at
    /// `level − 1`): row sums into column 0 (`log2 s1` rotate-and-adds), the column-0
    /// mask, replication over `c'` columns, the complex diagonal mask (accumulated), and
    /// `z + conj(z)`; at `level − 3`.
    fn abt_row_block(
        &self,
        zs: impl Iterator<Item = Result<Ciphertext<B>>>,
        shape: UnitShape,
        cp: usize,
        c: usize,
        level: usize,
    ) -> Result<Ciphertext<B>> {
        let ev = self.evaluator();
        let UnitShape { s0, s1 } = shape;
        let slots = s0 * s1;
        let col0 = self.mask(format!("col0/{s0}x{s1}"), level - 1, || {
            real_mask(slots, |x| f64::from(u8::from(x % s1 == 0)))
        })?;
        let mut acc = None;
        for (m, z) in zs.enumerate() {
            let s = ev.rotate_and_sum(&z?, s1, 1)?;
            let w = self.mul_mask(&s, &col0)?; // level − 2
            let w = ev.rotate_and_sum(&w, cp, -1)?;
            let diag = self.mask(format!("abt/{s0}x{s1}/c{c}/m{m}"), level - 2, || {
                (0..slots)
                    .map(|x| {
                        let (r, t) = (x / s1, x % s1);
                        let mut z = Complex64::new(0.0, 0.0);
                        if t < c && t == (r + 2 * m) % cp {
                            z.re = 0.5;
                        }
                        if t < c && t == (r + 2 * m + 1) % cp {
                            z.im = -0.5;
                        }
                        z
                    })
                    .collect()
            })?;
            ev.mul_plain_accumulate(&mut acc, &w, &diag)?;
        }
        let t = ev.rescale_owned(acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?)?;
        Ok(ev.add(&t, &ev.conjugate(&t)?)?) // level − 3
    }

    /// DiagATB with the variant chosen by `variant` (see [`DiagAtbVariant`]).
    ///
    /// # Errors
    /// As [`Self::diag_atb`] / [`Self::diag_atb_prot_up`].
    pub fn diag_atb_with(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
        variant: DiagAtbVariant,
    ) -> Result<EncryptedMatrix<B>> {
        self.diag_atb_scaled(a, b, variant, 1.0)
    }

    /// `scale·Aᵀ·B` by [`Self::diag_atb_with`] in the same levels as `scale = 1`, so a
    /// gradient step `η·G` costs no level of its own. Where the constant is folded:
    ///
    /// - RotLeft: into the alignment of `B` (or of `A`'s prepared diagonals) to the
    ///   product's level when that operand sits above it (`level B > level A − 2`, or
    ///   the reverse): the alignment's integer carries it
    ///   ([`ckks::Evaluator::adjust_scaled`]), and only that rescale's error is added
    ///   after the scaling. Measured at N = 2^16 on a training step's shapes (`A`
    ///   1024×7 at level 8, `B` 1024×1281 one level above the product, `scale =
    ///   2/1024`): 9.6·10^-7 max, 1.8·10^-7 rms against the float64 product
    ///   (docs/results/dermamnist.md, fourteenth session). When both meet at the
    ///   product's level, into the `A`-side column mask, before the rotations and
    ///   products that follow it, whose absolute noise does not shrink with the
    ///   constant: 7.4·10^-6 max, 8.7·10^-7 rms on the same shapes (measured with the
    ///   product's eager rescales of before), where a final scaling gives about 10^-8.
    /// - PRotUp: into the final complex mask, after the row sums.
    ///
    /// # Errors
    /// As [`Self::diag_atb_with`]; [`LinalgError::Shape`] for a scale that is not finite;
    /// [`ckks::CkksError::InvalidValue`] (as [`LinalgError::Ckks`]) for a nonzero scale
    /// too small to ride in an alignment's integer (below about `2^-20` of the
    /// modulus-to-scale ratio; `scale = 0` likewise).
    pub fn diag_atb_scaled(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
        variant: DiagAtbVariant,
        scale: f64,
    ) -> Result<EncryptedMatrix<B>> {
        if !scale.is_finite() {
            return Err(LinalgError::Shape(format!(
                "DiagATB scale {scale} is not finite"
            )));
        }
        match variant {
            DiagAtbVariant::RotLeft => self.diag_atb_rot_left_scaled(a, b, scale),
            DiagAtbVariant::PRotUp => self.diag_atb_prot_up_scaled(a, b, scale),
            DiagAtbVariant::Auto => {
                // Output levels: RotLeft min(ℓA − 3, ℓB − 1); PRotUp min(ℓA − 2, ℓB − 3).
                let (la, lb) = (a.level() as i64, b.level() as i64);
                let rot_left = (la - 3).min(lb - 1);
                let prot_up = (la - 2).min(lb - 3);
                if prot_up > rot_left {
                    self.diag_atb_prot_up_scaled(a, b, scale)
                } else {
                    self.diag_atb_rot_left_scaled(a, b, scale)
                }
            }
        }
    }

    fn check_atb(&self, la: &BlockLayout, b: &EncryptedMatrix<B>) -> Result<(UnitShape, usize)> {
        let lb = b.layout();
        check_plain(la, "A")?;
        check_plain(lb, "B")?;
        let shape = la.unit_shape();
        if lb.unit_shape() != shape {
            return Err(LinalgError::Layout(
                "A and B have different unit shapes".into(),
            ));
        }
        if la.rows() != lb.rows() {
            return Err(LinalgError::Shape(format!(
                "Aᵀ·B with A {}×{} and B {}×{}",
                la.rows(),
                la.cols(),
                lb.rows(),
                lb.cols()
            )));
        }
        let cp = padded_classes(la.cols());
        check_classes(shape, cp)?;
        Ok((shape, cp))
    }

    /// DiagATB, RotLeft variant (HETAL Alg. 4): `Aᵀ·B` for `A` (`a×c`, plain blocks,
    /// `c' ≤ s1`, e.g. `P − Y`) and `B` (`a×b`, plain blocks, e.g. `X`). Output: `c×b`
    /// vertically tiled with period `c'` — the layout [`Self::diag_abt`] takes for `W` —
    /// at level `min(level A − 3, level B − 1)`.
    ///
    /// [`Self::prepare_atb_lhs`] (the `A`-side diagonals, two levels) followed by
    /// [`Self::diag_atb_prepared`].
    ///
    /// # Errors
    /// [`LinalgError::Layout`] unless both are plain with the same unit shape and
    /// `c' ≤ min(s0, s1)`; [`LinalgError::Shape`] unless the row counts agree;
    /// [`LinalgError::LevelTooLow`] unless `level A ≥ 3` and `level B ≥ 1`; missing
    /// rotation keys (see [`crate::keys::diag_atb_keys`]).
    pub fn diag_atb(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        self.diag_atb_rot_left_scaled(a, b, 1.0)
    }

    /// [`Self::diag_atb`] of `scale·A`, the constant folded as [`Self::diag_atb_scaled`]
    /// says.
    fn diag_atb_rot_left_scaled(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
        scale: f64,
    ) -> Result<EncryptedMatrix<B>> {
        self.check_atb(a.layout(), b)?;
        need_levels(a.level(), DIAG_ATB_DEPTH_LHS)?;
        need_levels(b.level(), DIAG_ATB_DEPTH_RHS)?;
        let lhs_level = a.level() - (DIAG_ATB_DEPTH_LHS - DIAG_ATB_DEPTH_RHS);
        let level = lhs_level.min(b.level());
        let fold = if scale == 1.0 {
            Fold::None
        } else if b.level() > level {
            Fold::Rhs(scale)
        } else if lhs_level > level {
            Fold::Lhs(scale)
        } else {
            Fold::Mask
        };
        let mask_scale = if matches!(fold, Fold::Mask) {
            scale
        } else {
            1.0
        };
        let lhs = self.prepare_atb_lhs_scaled(a, mask_scale)?;
        self.diag_atb_prepared_folded(&lhs, b, fold)
    }

    /// The `A`-side diagonals of DiagATB: per row block `i` and pair `m`, the diagonals
    /// `A[r, (r+2m) mod c'] + i·A[r, (r+2m+1) mod c']` are selected by a complex mask,
    /// gathered into column 0 by `log2 c'` RotLeft-and-adds, masked (with the factor
    /// ½ of the final real/imaginary split) and replicated along the row (`log2 s1`
    /// rotations). Two levels; `CMult = c'·⌈a/s0⌉`. A client holding `A` can encrypt
    /// the same form directly ([`AtbLhs::encrypt`]).
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for a tiled `A` or `c' > s1`;
    /// [`LinalgError::LevelTooLow`] below level 2; missing rotation keys.
    pub fn prepare_atb_lhs(&self, a: &EncryptedMatrix<B>) -> Result<AtbLhs<B>> {
        self.prepare_atb_lhs_scaled(a, 1.0)
    }

    /// [`Self::prepare_atb_lhs`] of `scale·A`: the constant rides in the mask that
    /// already carries the factor ½ (no level, no operation).
    #[allow(clippy::needless_range_loop)] // m also names the masks
    fn prepare_atb_lhs_scaled(&self, a: &EncryptedMatrix<B>, scale: f64) -> Result<AtbLhs<B>> {
        let _span = tracing::debug_span!("prepare_atb_lhs").entered();
        let la = a.layout();
        check_plain(la, "A")?;
        let shape = la.unit_shape();
        let cp = padded_classes(la.cols());
        check_classes(shape, cp)?;
        need_levels(a.level(), 2)?;
        let ev = self.evaluator();
        let UnitShape { s0, s1 } = shape;
        let slots = s0 * s1;
        let level_a = a.level();
        let half = 0.5 * scale;
        let col0_half = self.mask(format!("col0half/{s0}x{s1}/{half:e}"), level_a - 1, || {
            real_mask(slots, |x| if x % s1 == 0 { half } else { 0.0 })
        })?;
        let mut diagonals = Vec::with_capacity(la.row_blocks());
        for ai in a.ciphertexts() {
            let mut row = Vec::with_capacity(cp / 2);
            for m in 0..cp / 2 {
                let d = self.mask(format!("atbdiag/{s0}x{s1}/cp{cp}/m{m}"), level_a, || {
                    (0..slots)
                        .map(|x| {
                            let (r, t) = (x / s1, x % s1);
                            let re = f64::from(u8::from(t == (r + 2 * m) % cp));
                            let im = f64::from(u8::from(t == (r + 2 * m + 1) % cp));
                            Complex64::new(re, im)
                        })
                        .collect()
                })?;
                let v = self.mul_mask(ai, &d)?;
                let g = ev.rotate_and_sum(&v, cp, 1)?;
                let w = self.mul_mask(&g, &col0_half)?;
                row.push(ev.rotate_and_sum(&w, s1, -1)?);
            }
            diagonals.push(row);
        }
        Ok(AtbLhs {
            layout: *la,
            diagonals,
        })
    }

    /// DiagATB on prepared `A`-side diagonals ([`AtbLhs`]). Per column block `k`:
    /// `T = Σ_m RotDown(Σ_i Â_{im} ⊙ B_{ik}, 2m)`, row sums within each row class
    /// (`log2(s0/c')` rotations), then `Re T + RotDown(Im T, 1)` (one conjugation, one
    /// rotation), all at the product scale and rescaled once. Up to two row blocks the
    /// rotations by `2m` rows move to the operands, `Σ_{i,m} RotDown(Â_{im}, 2m) ⊙
    /// RotDown(B_{ik}, 2m)` (`B`'s hoisted, one relinearization per column block).
    /// Counts: `Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉`; `Rot = ⌈b/s1⌉·(c'/2 − 1 + log2(s0/c') + 1)`
    /// above two row blocks, `⌈a/s0⌉·(c'/2 − 1)·(1 + ⌈b/s1⌉) + ⌈b/s1⌉·(log2(s0/c') + 1)`
    /// up to two; `⌈b/s1⌉` conjugations. Depth 1.
    ///
    /// # Errors
    /// As [`Self::diag_atb`].
    pub fn diag_atb_prepared(
        &self,
        lhs: &AtbLhs<B>,
        b: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        self.diag_atb_prepared_folded(lhs, b, Fold::None)
    }

    /// [`Self::diag_atb_prepared`] with a constant folded into one operand's alignment
    /// ([`Fold`]).
    fn diag_atb_prepared_folded(
        &self,
        lhs: &AtbLhs<B>,
        b: &EncryptedMatrix<B>,
        fold: Fold,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("diag_atb").entered();
        let (shape, cp) = self.check_atb(&lhs.layout, b)?;
        let ev = self.evaluator();
        let UnitShape { s0, s1 } = shape;
        let (la, lb) = (&lhs.layout, b.layout());
        let (rb, cb) = (lb.row_blocks(), lb.col_blocks());
        let level = lhs.level().min(b.level());
        need_levels(level, 1)?;
        let fold_all = |cts: &'_ [ckks::Ciphertext<B>], k: f64| {
            cts.iter()
                .map(|c| Ok(Cow::Owned(self.align_scaled(c, level, k)?)))
                .collect::<Result<Vec<_>>>()
        };
        let a_hat = lhs
            .diagonals
            .iter()
            .map(|v| match fold {
                Fold::Lhs(k) => fold_all(v, k),
                _ => self.align_all(v, level),
            })
            .collect::<Result<Vec<_>>>()?;
        let b_cts = match fold {
            Fold::Rhs(k) => fold_all(b.ciphertexts(), k)?,
            _ => self.align_all(b.ciphertexts(), level)?,
        };

        // Rescaled once at the end (lazy rescaling): the key switches of the alignment,
        // row-sum and final rotations add their noise at the product scale, where it is
        // negligible, instead of at Δ, where the row sum over `s0/c'` slots would
        // multiply it (measured: the product's only error above a final scaling,
        // docs/results/dermamnist.md).
        let shifts: Vec<i64> = (1..cp / 2).map(|m| -((2 * m * s1) as i64)).collect();
        let rotate_b = rb <= ROTATE_B_MAX_ROW_BLOCKS;
        // RotDown(Â_{im}, 2m), shared by every column block (B-side form only).
        let a_rot = if rotate_b {
            a_hat
                .iter()
                .map(|row| {
                    row.iter()
                        .zip(std::iter::once(&0).chain(&shifts))
                        .map(|(c, &r)| {
                            Ok(if r == 0 {
                                Cow::Borrowed(&**c)
                            } else {
                                Cow::Owned(ev.rotate(c, r)?)
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(cb);
        for k in 0..cb {
            let t = if rotate_b {
                let rotated = (0..rb)
                    .map(|i| Ok(ev.rotate_hoisted(&b_cts[i * cb + k], &shifts)?))
                    .collect::<Result<Vec<_>>>()?;
                let mut pairs = Vec::with_capacity(rb * cp / 2);
                for i in 0..rb {
                    pairs.push((&*a_rot[i][0], &*b_cts[i * cb + k]));
                    for (a, x) in a_rot[i][1..].iter().zip(&rotated[i]) {
                        pairs.push((&**a, x));
                    }
                }
                self.dot_unrescaled(&pairs)?
            } else {
                let mut acc = None;
                for m in 0..cp / 2 {
                    let pairs: Vec<_> = (0..rb)
                        .map(|i| (&*a_hat[i][m], &*b_cts[i * cb + k]))
                        .collect();
                    let p = self.dot_unrescaled(&pairs)?;
                    let p = if m == 0 {
                        p
                    } else {
                        ev.rotate(&p, shifts[m - 1])?
                    };
                    self.accumulate(&mut acc, p)?;
                }
                acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?
            };
            let t = if s0 > cp {
                ev.rotate_and_sum(&t, s0 / cp, (cp * s1) as i64)?
            } else {
                t
            };
            // T holds (x + i·y)/2; out = x + RotDown(y, 1).
            let cj = ev.conjugate(&t)?;
            let re = ev.add(&t, &cj)?;
            let im = ev.mul_by_i(&ev.sub(&cj, &t)?)?;
            out.push(ev.rescale_owned(ev.add(&re, &ev.rotate(&im, -(s1 as i64))?)?)?);
        }
        EncryptedMatrix::from_parts(BlockLayout::vertical(la.cols(), lb.cols(), shape)?, out)
    }

    /// DiagATB, PRotUp variant: for `A` at a lower level than `B` (HETAL §4.2). `A` is
    /// tiled horizontally (`log2(s1/c')` rotations, no level) and rotated left by
    /// `k < c'` (hoisted); RotLeft on a tiled row is exact except in the last `k`
    /// columns, which receive the next row — so `B` is partially rotated up by one row
    /// in those columns (`PRotUp`: one rotation per block and a column mask, one level
    /// on `B`), which relabels rows consistently and leaves the sum over rows unchanged.
    /// Per column block and pair `m`: `Σ_i Y_{2m} ⊙ B'_{2m} + i·Y_{2m+1} ⊙ B'_{2m+1}`,
    /// full row sums (`log2 s0` rotations), complex mask `(M_{2m} − i·M_{2m+1})/2` with
    /// `M_k[r, t] = [r ≡ t + k mod c']`, and one `z + conj(z)`. Output as
    /// [`Self::diag_atb`], at level `min(level A − 2, level B − 3)`. Counts:
    /// `Mult = c'·⌈a/s0⌉·⌈b/s1⌉`, `CMult = (c'−1)·⌈a/s0⌉·⌈b/s1⌉ + (c'/2)·⌈b/s1⌉`.
    ///
    /// # Errors
    /// As [`Self::diag_atb`], with `level A ≥ 2` and `level B ≥ 3`; missing rotation
    /// keys (see [`crate::keys::diag_atb_prot_up_keys`]).
    pub fn diag_atb_prot_up(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        self.diag_atb_prot_up_scaled(a, b, 1.0)
    }

    /// [`Self::diag_atb_prot_up`] of `scale·A` (the constant folded into the final
    /// complex mask).
    fn diag_atb_prot_up_scaled(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
        scale: f64,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("diag_atb_prot_up").entered();
        let (shape, cp) = self.check_atb(a.layout(), b)?;
        need_levels(a.level(), 2)?;
        need_levels(b.level(), 3)?;
        let ev = self.evaluator();
        let params = ev.context().params();
        let UnitShape { s0, s1 } = shape;
        let slots = s0 * s1;
        let (la, lb) = (a.layout(), b.layout());
        let (rb, cb) = (lb.row_blocks(), lb.col_blocks());
        let level_b = b.level();
        let level = a.level().min(level_b - 1);

        // Y_{i,k} = RotLeft(tile(A_i), k).
        let lefts: Vec<i64> = (0..cp as i64).collect();
        let y = a
            .ciphertexts()
            .iter()
            .map(|ai| {
                let tiled = if s1 > cp {
                    ev.rotate_and_sum(ai, s1 / cp, -(cp as i64))?
                } else {
                    ai.clone()
                };
                let rots = ev.rotate_hoisted(&tiled, &lefts)?;
                rots.into_iter()
                    .map(|r| self.align_owned(r, level))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        // B'_{ij,k} = B + R_k ⊙ (RotUp(B, 1) − B), R_k = [t ≥ s1 − k].
        let b_prime = b
            .ciphertexts()
            .iter()
            .map(|bij| {
                let up = ev.rotate(bij, s1 as i64)?;
                let diff = ev.sub(&up, bij)?;
                let base = ev.adjust(bij, level_b - 1, params.scale_at(level_b - 1)?)?;
                let mut v = Vec::with_capacity(cp);
                v.push(self.align(&base, level)?);
                for k in 1..cp {
                    let r = self.mask(format!("protup/{s0}x{s1}/k{k}"), level_b, || {
                        real_mask(slots, |x| f64::from(u8::from(x % s1 >= s1 - k)))
                    })?;
                    let corr = self.mul_mask(&diff, &r)?;
                    v.push(self.align_owned(ev.add(&base, &corr)?, level)?);
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;

        let mut out = Vec::with_capacity(cb);
        for j in 0..cb {
            let mut acc = None;
            for m in 0..cp / 2 {
                let mut x: Option<ckks::Ciphertext<B>> = None;
                for i in 0..rb {
                    let bij = &b_prime[i * cb + j];
                    let re = ev.mul(&y[i][2 * m], &bij[2 * m])?;
                    let im = ev.mul_by_i(&ev.mul(&y[i][2 * m + 1], &bij[2 * m + 1])?)?;
                    self.accumulate(&mut x, ev.add(&re, &im)?)?;
                }
                let x = x.ok_or_else(|| LinalgError::Shape("no rows".into()))?;
                let x = ev.relinearize_rescale_owned(x)?;
                let s = ev.rotate_and_sum(&x, s0, s1 as i64)?;
                let half = 0.5 * scale;
                let mask = self.mask(
                    format!("protupmask/{s0}x{s1}/cp{cp}/m{m}/{half:e}"),
                    level - 1,
                    || {
                        (0..slots)
                            .map(|x| {
                                let (r, t) = (x / s1, x % s1);
                                let mut z = Complex64::new(0.0, 0.0);
                                if r % cp == (t + 2 * m) % cp {
                                    z.re = half;
                                }
                                if r % cp == (t + 2 * m + 1) % cp {
                                    z.im = -half;
                                }
                                z
                            })
                            .collect()
                    },
                )?;
                ev.mul_plain_accumulate(&mut acc, &s, &mask)?;
            }
            let t =
                ev.rescale_owned(acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?)?;
            out.push(ev.add(&t, &ev.conjugate(&t)?)?);
        }
        EncryptedMatrix::from_parts(BlockLayout::vertical(la.cols(), lb.cols(), shape)?, out)
    }
}
