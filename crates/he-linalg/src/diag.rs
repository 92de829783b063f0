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
//! | [`MatrixEvaluator::diag_atb`] | `A` plain `a×c`, `B` plain `a×b` | vertically tiled `c×b` | 3 from `A`, 1 from `B` |
//! | [`MatrixEvaluator::diag_atb_prot_up`] | same | same | 2 from `A`, 3 from `B` |
//!
//! The output level is the minimum over the inputs of `level − depth from that input`;
//! inputs are first aligned ([`MatrixEvaluator::align`]) to a common level.

use crate::encrypted::EncryptedMatrix;
use crate::error::{LinalgError, Result};
use crate::evaluator::{MatrixEvaluator, real_mask};
use crate::layout::{BlockLayout, Tiling, UnitShape, padded_classes};
use ckks::Complex64;
use ckks::he_math::Backend;

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
    /// Per column block `k`: `B'_k = B_k + i·RotUp(B_k, 1)` and its hoisted rotations
    /// `RotUp(B'_k, 2m)`, `m < c'/2`. Per row block `i` and pair `m`:
    /// `Z = Σ_k A_{ik} ⊙ RotUp(B'_k, 2m)` (one relinearization), row sums into
    /// column 0 by `log2 s1` rotate-and-adds, column-0 mask, replication over `c'`
    /// columns (`log2 c'` rotations), the complex diagonal mask, and at the end one
    /// `z + conj(z)`. Counts: `Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉`,
    /// `CMult = c'·⌈a/s0⌉`, `Rot = (c'/2)·⌈b/s1⌉ + (c'/2)·⌈a/s0⌉·(log2 s1 + log2 c')`
    /// (minus the trivial ones), plus `⌈a/s0⌉` conjugations.
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
        let _span = tracing::debug_span!("diag_abt").entered();
        let (la, lb) = (a.layout(), b.layout());
        check_plain(la, "A")?;
        let cp = check_vertical(lb)?;
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
        check_classes(shape, cp)?;
        let level = a.level().min(b.level());
        need_levels(level, 3)?;
        let ev = self.evaluator();
        let UnitShape { s0, s1 } = shape;
        let slots = s0 * s1;
        let c = lb.rows();
        let a_cts = self.align_all(a.ciphertexts(), level)?;
        let b_cts = self.align_all(b.ciphertexts(), level)?;
        let (rb, cb) = (la.row_blocks(), la.col_blocks());

        // RotUp(B'_k, 2m) for every column block k and pair m.
        let shifts: Vec<i64> = (0..cp / 2).map(|m| (2 * m * s1) as i64).collect();
        let b_rot = b_cts
            .iter()
            .map(|bk| {
                let up = ev.rotate(bk, s1 as i64)?;
                let bp = ev.add(bk, &ev.mul_by_i(&up)?)?;
                Ok(ev.rotate_hoisted(&bp, &shifts)?)
            })
            .collect::<Result<Vec<_>>>()?;

        let col0 = self.mask(format!("col0/{s0}x{s1}"), level - 1, || {
            real_mask(slots, |x| f64::from(u8::from(x % s1 == 0)))
        })?;
        let mut out = Vec::with_capacity(rb);
        for i in 0..rb {
            let mut acc = None;
            for m in 0..cp / 2 {
                let pairs: Vec<_> = (0..cb)
                    .map(|k| (&a_cts[i * cb + k], &b_rot[k][m]))
                    .collect();
                let z = self.dot(&pairs)?; // level − 1
                let s = ev.rotate_and_sum(&z, s1, 1)?;
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
                self.accumulate(&mut acc, ev.mul_plain(&w, &diag)?)?;
            }
            let t =
                ev.rescale_owned(acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?)?;
            out.push(ev.add(&t, &ev.conjugate(&t)?)?); // level − 3
        }
        EncryptedMatrix::from_parts(BlockLayout::new(la.rows(), c, shape)?, out)
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
        match variant {
            DiagAtbVariant::RotLeft => self.diag_atb(a, b),
            DiagAtbVariant::PRotUp => self.diag_atb_prot_up(a, b),
            DiagAtbVariant::Auto => {
                // Output levels: RotLeft min(ℓA − 3, ℓB − 1); PRotUp min(ℓA − 2, ℓB − 3).
                let (la, lb) = (a.level() as i64, b.level() as i64);
                let rot_left = (la - 3).min(lb - 1);
                let prot_up = (la - 2).min(lb - 3);
                if prot_up > rot_left {
                    self.diag_atb_prot_up(a, b)
                } else {
                    self.diag_atb(a, b)
                }
            }
        }
    }

    fn check_atb(
        &self,
        a: &EncryptedMatrix<B>,
        b: &EncryptedMatrix<B>,
    ) -> Result<(UnitShape, usize)> {
        let (la, lb) = (a.layout(), b.layout());
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
    /// Per row block `i` and pair `m`, `A`'s diagonals `A[r, (r+2m) mod c'] +
    /// i·A[r, (r+2m+1) mod c']` are selected by a complex mask, gathered into column 0
    /// by `log2 c'` RotLeft-and-adds, masked and replicated along the row (`log2 s1`
    /// rotations). Per column block `k`: `T = Σ_m RotDown(Σ_i Â_{im} ⊙ B_{ik}, 2m)`,
    /// row sums within each row class (`log2(s0/c')` rotations), then
    /// `Re T + RotDown(Im T, 1)` (one conjugation, one rotation). Counts:
    /// `Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉`, `CMult = c'·⌈a/s0⌉`.
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
        let _span = tracing::debug_span!("diag_atb").entered();
        let (shape, cp) = self.check_atb(a, b)?;
        need_levels(a.level(), 3)?;
        need_levels(b.level(), 1)?;
        let ev = self.evaluator();
        let UnitShape { s0, s1 } = shape;
        let slots = s0 * s1;
        let (la, lb) = (a.layout(), b.layout());
        let (rb, cb) = (lb.row_blocks(), lb.col_blocks());
        let level_a = a.level();
        let level = (level_a - 2).min(b.level());

        // Â_{i,m}: the replicated complex diagonal pair m of row block i.
        let col0_half = self.mask(format!("col0half/{s0}x{s1}"), level_a - 1, || {
            real_mask(slots, |x| if x % s1 == 0 { 0.5 } else { 0.0 })
        })?;
        let mut a_hat = vec![Vec::with_capacity(cp / 2); rb];
        for (i, ai) in a.ciphertexts().iter().enumerate() {
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
                let rep = ev.rotate_and_sum(&w, s1, -1)?;
                a_hat[i].push(self.align(&rep, level)?);
            }
        }
        let b_cts = self.align_all(b.ciphertexts(), level)?;

        let mut out = Vec::with_capacity(cb);
        for k in 0..cb {
            let mut acc = None;
            for m in 0..cp / 2 {
                let pairs: Vec<_> = (0..rb)
                    .map(|i| (&a_hat[i][m], &b_cts[i * cb + k]))
                    .collect();
                let p = self.dot(&pairs)?;
                let p = ev.rotate(&p, -((2 * m * s1) as i64))?;
                self.accumulate(&mut acc, p)?;
            }
            let t = acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?;
            let t = if s0 > cp {
                ev.rotate_and_sum(&t, s0 / cp, (cp * s1) as i64)?
            } else {
                t
            };
            // T holds (x + i·y)/2; out = x + RotDown(y, 1).
            let cj = ev.conjugate(&t)?;
            let re = ev.add(&t, &cj)?;
            let im = ev.mul_by_i(&ev.sub(&cj, &t)?)?;
            out.push(ev.add(&re, &ev.rotate(&im, -(s1 as i64))?)?);
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
        let _span = tracing::debug_span!("diag_atb_prot_up").entered();
        let (shape, cp) = self.check_atb(a, b)?;
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
                self.align_all(&rots, level)
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
                    v.push(self.align(&ev.add(&base, &corr)?, level)?);
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
                let x = ev.rescale_owned(ev.relinearize_owned(x)?)?;
                let s = ev.rotate_and_sum(&x, s0, s1 as i64)?;
                let mask = self.mask(
                    format!("protupmask/{s0}x{s1}/cp{cp}/m{m}"),
                    level - 1,
                    || {
                        (0..slots)
                            .map(|x| {
                                let (r, t) = (x / s1, x % s1);
                                let mut z = Complex64::new(0.0, 0.0);
                                if r % cp == (t + 2 * m) % cp {
                                    z.re = 0.5;
                                }
                                if r % cp == (t + 2 * m + 1) % cp {
                                    z.im = -0.5;
                                }
                                z
                            })
                            .collect()
                    },
                )?;
                self.accumulate(&mut acc, ev.mul_plain(&s, &mask)?)?;
            }
            let t =
                ev.rescale_owned(acc.ok_or_else(|| LinalgError::Shape("no classes".into()))?)?;
            out.push(ev.add(&t, &ev.conjugate(&t)?)?);
        }
        EncryptedMatrix::from_parts(BlockLayout::vertical(la.cols(), lb.cols(), shape)?, out)
    }
}
