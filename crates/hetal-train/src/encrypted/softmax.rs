//! ASoftmax on encrypted logits (HETAL, Lee et al., ICML 2023, §4.3): the circuit of
//! [`crate::softmax`] step by step on a ciphertext holding a block of logit rows in
//! HETAL's block layout (row `r`, class `j` in slot `r·s1 + j`), with bootstrapping
//! wherever a stage runs out of levels.
//!
//! Rotations stay inside each row: the `c'` (padded) class columns are first copied
//! into columns `c' … 2c'−1` (one rotation right by `c'`; needs `s1 ≥ 2c'`), so every
//! left rotation by `k < c'` of the pairwise maximum and of the row sum reads the row
//! cyclically, as the float64 reference does. The last round of the maximum keeps the
//! row's first slot only (a mask on its operands, which have levels to spare), and
//! `log2(2c')` right rotations broadcast it over the `2c'` columns, so every slot that
//! enters the exponential is at most a few logits above the maximum and everything that
//! is bootstrapped stays bounded; the class mask after the exponential zeroes the rest.
//!
//! **Where the refresh error goes.** Softmax ignores a shift shared by a row, so the
//! maximum's own refresh errors cost nothing as long as every column of the row sees
//! the same one; a refresh of the per-class values before the exponential costs its
//! error in logits. A refresh of values scaled by `1/(2R)` (`2R = 256`) carries
//! `256·2^-19.5 ≈ 2^-11.5` logits at N = 2^16, which the first circuit paid once, when
//! it refreshed `w = z − max`: the largest error against the simulated path (6·10^-5,
//! docs/results/softmax.md). The subtraction now happens in raw units (`2R` an integer:
//! products by it cost no level): on the logits as they came when they have the levels
//! the domain extension (or the exp's input map) and the exp polynomial need, else on
//! their refresh (in raw units, above the floor, so
//! that a waiting passenger can ride along; the maximum starts from it), corrected by
//! its error `z' − z`, which rides in the imaginary half of the next refresh
//! ([`super::Refresher::board_correction`], after Bae et al., "META-BTS", CCS 2022, §3)
//! and comes back with that refresh's error, about `2^-18.5` logits. The maximum is
//! refreshed where it must be in the first slot of each row only, masked again (a
//! refresh leaves noise in the zero slots, which the broadcast would add to the
//! columns) and then broadcast, so its error is shared by the row. What is left per
//! class is the refresh inside the exponential's squarings (scaled by the bound
//! `exp(shortfall·2^i/2^k)`, [`crate::ASoftmaxParams::max_shortfall`], and multiplied
//! by the squarings after it) and the inverse's pair refresh.
//!
//! **The packed circuit** (the default, [`crate::ASoftmaxParams::packed`]: the relu
//! maximum, no domain extension, `2R` a power of two) spends its levels so that a
//! training step at DermaMNIST's shape takes five bootstraps instead of six
//! (docs/results/dermamnist.md, sixteenth session):
//! - the logits' refresh hands them back already scaled by `1/(2R)`
//!   ([`super::Refresher::refresh_scaled`]: the bootstrap's own scaling), the raw ones are
//!   `2R` times that (an integer product), corrected through the next refresh;
//! - a round `m ← s + q(t)` (`s = b + d/2`, `t = 2d² − 1`, `d = m − b`) that does not fit
//!   in the levels left refreshes its operands `t` and `s` instead of `m`, packed side by
//!   side in the two halves of each row (the maximum only reads columns below
//!   `c' ≤ s1/2`): the round's squaring and the pack's masks use levels that a whole
//!   round could not;
//! - the last round keeps the row's first slot inside its polynomial (its coefficients
//!   times the first-slot mask, [`he_linalg::ckks::Evaluator::evaluate_polynomial_weighted`],
//!   no level) and a mask on `s`, both scaled by the exponential's input factor
//!   `α' = 2R·α`: no level is spent masking or mapping the maximum;
//! - the exponential's input is formed per column from the raw logits and their copies,
//!   `y = α·(x − ln B) + β − α'·max` on the classes (the division by `B` folded,
//!   [`crate::ASoftmaxParams::exp_shift`]), every other column sent to
//!   `u ∈ [−r, −56]` logits, where the exponential vanishes: no class mask before the row
//!   sum;
//! - every value of the exponential is below 1 (the shortfall is below `ln B`), so it is
//!   refreshed without a scaling level, at the floor;
//! - the inverse is refreshed as a pair as late as leaves its last factors and the class
//!   mask (which comes last) above the output level.
//!
//! **Sparse slots** ([`EncryptedSoftmax::folded`], a variant measured by `cargo xtask
//! softmax-error --fold`; training does not use it yet). When a row has room for two
//! (`s1 ≥ 4c'`, e.g. DermaMNIST's `c' = 8` in `s1 = 32`), the block is first folded into
//! half the slots: the second half's rows move next to the first half's (one rotation by
//! `n/2 − s1/2`), a mask keeps the first half and scales it by `1/(2R)` (the level the
//! unfolded circuit spends on that scaling) and a rotation by `n/2` repeats it, so the
//! ciphertext is read with `n/2` slots ([`he_linalg::ckks::Evaluator::with_slots`]) in
//! rows of `s1/2` columns.
//! Every bootstrap inside ASoftmax is then a sparse one (one EvalMod instead of two,
//! smaller CoeffsToSlots and SlotsToCoeffs; [`EncryptedSoftmax::sparse_slots`] says which
//! bootstrapper the server needs). The result is unfolded the same way (two masks in one
//! level, one rotation), so the output layout is the input's.
//!
//! Keys: rotations `±1, ±2, …, ±c'/2` and `−c'`, relinearization, plus bootstrapping's;
//! the packed circuit adds `±s1/2`; folding adds `n/2 − s1/2`, `n/2` and
//! `−(n/2 − s1/2)` and the sparse bootstrapper's.

use super::ops::{Ops, Refresher};
use crate::error::{Result, TrainError};
use crate::softmax::{ASoftmaxParams, SIGN_F, SIGN_G};
use he_linalg::ckks::{
    Bootstrapper, BootstrappingConfig, Ciphertext, EvaluationKeyRequest, Evaluator, Polynomial,
};
use he_linalg::{Backend, BlockLayout, EncryptedMatrix, KeyRequirements, padded_classes};
use std::sync::Arc;

/// Encrypted ASoftmax for `c` classes in blocks of `s1` columns, with its polynomials
/// prepared once.
#[derive(Debug, Clone)]
pub struct EncryptedSoftmax {
    params: ASoftmaxParams,
    classes: usize,
    padded: usize,
    /// The block layout's row width and slots.
    s1: usize,
    slots: usize,
    /// How far the broadcast row maximum may fall short of the true one, in logits
    /// ([`ASoftmaxParams::max_shortfall`]); it bounds the values the exponential's
    /// refreshes see.
    shortfall: f64,
    /// Whether blocks are folded into `slots/2` (see the module docs).
    fold: bool,
    /// Whether the packed circuit runs ([`ASoftmaxParams::packed`], not folded; module
    /// docs).
    packed: bool,
    sign_g: Polynomial,
    sign_f: Polynomial,
    /// `(1 + f)/2`: the last `f` iteration folded with `max(a,b) = b + (a−b)·(1+sign)/2`.
    step_f: Polynomial,
    /// The even part `q` of the relu polynomial ([`ASoftmaxParams::relu_part`]; `None`
    /// for HETAL's sign composition).
    relu: Option<Polynomial>,
    exp: Polynomial,
}

impl EncryptedSoftmax {
    /// Prepares ASoftmax for `classes` classes in blocks of `slots` slots and `s1`
    /// columns.
    ///
    /// # Errors
    /// [`TrainError::Config`] for invalid parameters, `s1 < 2c'` or a block size that
    /// `s1` does not divide.
    pub fn new(params: &ASoftmaxParams, classes: usize, s1: usize, slots: usize) -> Result<Self> {
        params.validate()?;
        let padded = padded_classes(classes);
        if s1 < 2 * padded || !slots.is_multiple_of(s1) {
            return Err(TrainError::Config(format!(
                "encrypted ASoftmax needs s1 ≥ 2c' = {} dividing the {slots} slots (s1 = {s1})",
                2 * padded
            )));
        }
        let poly = |c: Vec<f64>| {
            Polynomial::monomial(c).map_err(|e| TrainError::Config(format!("polynomial: {e}")))
        };
        let mut step = SIGN_F.map(|c| 0.5 * c).to_vec();
        step[0] = 0.5;
        let exp = params.exp_polynomial()?;
        let shortfall = params.max_shortfall(padded)?;
        if params.ext_n == 0 && shortfall >= params.exp_top {
            return Err(TrainError::Config(format!(
                "the row maximum may fall {shortfall:.2} logits short, beyond the exp \
                 polynomial's top of {} logits",
                params.exp_top
            )));
        }
        Ok(Self {
            params: params.clone(),
            classes,
            padded,
            s1,
            slots,
            shortfall,
            fold: false,
            packed: params.packed(padded)?,
            sign_g: poly(SIGN_G.to_vec())?,
            sign_f: poly(SIGN_F.to_vec())?,
            step_f: poly(step)?,
            relu: params.relu_part()?,
            exp,
        })
    }

    /// The same circuit on blocks folded into half the slots (module docs), so that its
    /// bootstraps are sparse. Not the training default: the sparse bootstrapper's keys
    /// and circuit come on top of the full-slot one's (measured at N = 2^16: 17.2 GB peak
    /// instead of 10.6 GB for 13 % less bootstrapping time; docs/results/softmax.md).
    ///
    /// # Errors
    /// [`TrainError::Config`] unless a row has room for two (`s1 ≥ 4c'`).
    pub fn folded(mut self) -> Result<Self> {
        if self.s1 < 4 * self.padded || self.slots < 2 * self.s1 {
            return Err(TrainError::Config(format!(
                "folding ASoftmax needs s1 ≥ 4c' = {} (s1 = {})",
                4 * self.padded,
                self.s1
            )));
        }
        self.fold = true;
        self.packed = false;
        Ok(self)
    }

    /// Row width the circuit runs on (halved when folded).
    fn s1_in(&self) -> usize {
        if self.fold { self.s1 / 2 } else { self.s1 }
    }

    /// Slots the circuit runs on (halved when folded).
    fn slots_in(&self) -> usize {
        if self.fold {
            self.slots / 2
        } else {
            self.slots
        }
    }

    /// The slot count of the ciphertexts ASoftmax bootstraps when it folds (a
    /// bootstrapper for it is needed besides the full-slot one); `None` when it does not.
    pub fn sparse_slots(&self) -> Option<usize> {
        self.fold.then_some(self.slots_in())
    }

    /// The fold's rotation amounts: second half next to the first, the repetition, and
    /// back.
    fn fold_rotations(&self) -> [i64; 3] {
        let half = (self.slots / 2) as i64;
        let shift = half - (self.s1 / 2) as i64;
        [shift, half, -shift]
    }

    /// The evaluation keys ASoftmax needs with `boot`'s bootstrapping: the full-slot
    /// bootstrapper's, the sparse one's when folding, and [`Self::keys`] for levels up
    /// to the top user level (where bootstrapping lands; smaller keys).
    ///
    /// # Errors
    /// Bootstrapping configuration errors.
    pub fn key_request(
        &self,
        params: &he_linalg::Parameters,
        boot: &BootstrappingConfig,
    ) -> Result<EvaluationKeyRequest> {
        let mut req = boot.key_request(params, self.slots)?;
        if let Some(n) = self.sparse_slots() {
            req.merge(&boot.key_request(params, n)?);
        }
        self.keys().add_up_to(&mut req, params.max_user_level());
        Ok(req)
    }

    /// The refresher ASoftmax runs with: `full` (the full-slot bootstrapper) plus, when
    /// folding, a sparse bootstrapper built here from the same evaluator, configuration
    /// and options ([`Bootstrapper::options`]: the server's failure bound and diagonal
    /// storage).
    ///
    /// # Errors
    /// Bootstrapping setup errors (missing keys).
    pub fn refresher<B: Backend>(
        &self,
        ev: &Arc<Evaluator<B>>,
        boot: &BootstrappingConfig,
        full: Arc<Bootstrapper<B>>,
    ) -> Result<Refresher<B>> {
        let options = full.options();
        let r = Refresher::new(full);
        match self.sparse_slots() {
            Some(n) => r.with_sparse(Arc::new(Bootstrapper::with_options(
                ev.clone(),
                boot.clone(),
                n,
                options,
            )?)),
            None => Ok(r),
        }
    }

    /// Rotation keys the circuit needs (bootstrapping's not included).
    pub fn keys(&self) -> KeyRequirements {
        let mut rotations = vec![-(self.padded as i64)];
        if self.fold {
            rotations.extend(self.fold_rotations());
        }
        if self.packed {
            let half = (self.s1 / 2) as i64;
            rotations.extend([half, -half]);
        }
        let mut k = 1;
        while k < self.padded {
            rotations.push(k as i64);
            rotations.push(-(k as i64));
            k *= 2;
        }
        KeyRequirements {
            rotations: rotations.into_iter().collect(),
            conjugation: false,
        }
    }

    /// Levels consumed without bootstrapping (see [`ASoftmaxParams::depth`]; one more
    /// when folded, for the unfold); with fewer levels per bootstrap, the circuit
    /// bootstraps in between.
    ///
    /// # Errors
    /// As [`ASoftmaxParams::depth`].
    pub fn depth(&self) -> Result<usize> {
        Ok(self.params.depth_of_form(self.padded, self.packed)? + usize::from(self.fold))
    }

    /// A mask over the slots the circuit runs on, by column.
    fn column_mask(&self, f: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..self.slots_in()).map(|i| f(i % self.s1_in())).collect()
    }

    /// A mask over the block's full slots, by (half, column).
    fn half_mask(&self, f: impl Fn(bool, usize) -> f64) -> Vec<f64> {
        (0..self.slots)
            .map(|i| f(i < self.slots / 2, i % self.s1))
            .collect()
    }

    /// Folds a full-slot block into `slots/2` (module docs): row `r + a/2` moves to the
    /// columns `s1/2 …` of row `r`, the first half is kept (and scaled by `1/(2R)`, the
    /// circuit's first step) and repeated. One level.
    fn fold_block<B: Backend>(&self, ops: &Ops<B>, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let [shift, half, _] = self.fold_rotations();
        let scale = 1.0 / (2.0 * self.params.r_max);
        let a = ops.add(ct, &ops.rotate(ct, shift)?)?;
        let a = ops.mul_mask(&a, "fold/first-half/2R", &|| {
            self.half_mask(|first, _| if first { scale } else { 0.0 })
        })?;
        let a = ops.add(&a, &ops.rotate(&a, half)?)?;
        Ok(ops.evaluator().with_slots(&a, self.slots_in())?)
    }

    /// Undoes [`Self::fold_block`] on the class columns (the rest is zero). One level.
    fn unfold_block<B: Backend>(&self, ops: &Ops<B>, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let [_, _, back] = self.fold_rotations();
        let (c, h) = (self.classes, self.s1 / 2);
        let full = ops.evaluator().with_slots(ct, self.slots)?;
        let first = ops.mul_mask(&full, &format!("unfold/first{c}"), &|| {
            self.half_mask(|first, j| if first && j < c { 1.0 } else { 0.0 })
        })?;
        let second = ops.mul_mask(&full, &format!("unfold/second{c}"), &|| {
            self.half_mask(|first, j| {
                if first && (h..h + c).contains(&j) {
                    1.0
                } else {
                    0.0
                }
            })
        })?;
        ops.add(&first, &ops.rotate(&second, back)?)
    }

    /// ASoftmax of every row of `logits` (`a×c`, plain block layout, one column block,
    /// columns `≥ c` zero as DiagABT leaves them). The result has the same layout, is
    /// zero outside the class columns, and is at level `out_level` or above (refreshed
    /// where needed: in the sparse domain when folded, so that no full-slot bootstrap
    /// follows).
    ///
    /// # Errors
    /// [`TrainError::Config`] for another layout or class count, or `out_level` beyond
    /// what a bootstrap leaves; CKKS errors (missing keys, bootstrapping).
    pub fn evaluate<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        logits: &EncryptedMatrix<B>,
        out_level: usize,
    ) -> Result<EncryptedMatrix<B>> {
        let l = logits.layout();
        if l.cols() != self.classes
            || l.col_blocks() != 1
            || l.unit_shape().s1 != self.s1
            || l.unit_shape().slots() != self.slots
            || l.tiling() != he_linalg::Tiling::None
        {
            return Err(TrainError::Config(format!(
                "ASoftmax prepared for {} classes in blocks of {} columns, got layout {l:?}",
                self.classes, self.s1
            )));
        }
        let two_r = 2.0 * self.params.r_max;
        let out = logits
            .ciphertexts()
            .iter()
            .map(|ct| {
                let ct = refresher.ensure(ops, ct, 1, self.params.r_max)?;
                if self.packed {
                    let p = self.evaluate_block_packed(ops, refresher, &ct, out_level)?;
                    return refresher.ensure_level(ops, &p, out_level, 1.0);
                }
                if !self.fold {
                    let raw = self.pad_and_copy(ops, &ct, two_r)?;
                    let z = ops.mul_const(&raw, 1.0 / two_r)?;
                    // Raw units need 2R as an integer (products by it cost no level).
                    let raw =
                        (two_r.fract() == 0.0 && two_r <= f64::from(1u32 << 30)).then_some(&raw);
                    let p = self.evaluate_block(ops, refresher, &z, raw, out_level)?;
                    return refresher.ensure_level(ops, &p, out_level, 1.0);
                }
                let z = self.pad_and_copy(ops, &self.fold_block(ops, &ct)?, 1.0)?;
                let p = self.evaluate_block(ops, refresher, &z, None, out_level + 1)?;
                // The unfold takes one level.
                let p = refresher.ensure_level(ops, &p, out_level + 1, 1.0)?;
                self.unfold_block(ops, &p)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncryptedMatrix::from_parts(
            BlockLayout::new(l.rows(), l.cols(), l.unit_shape())?,
            out,
        )?)
    }

    /// One sign chain `g^{∘d_g}` then `f^{∘d_f}` with the last `f` replaced by
    /// `(1 + f)/2`, bootstrapping before each polynomial that would not fit; the result
    /// keeps one spare level for the product that follows.
    fn step_function<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        d: &Ciphertext<B>,
    ) -> Result<Ciphertext<B>> {
        let p = &self.params;
        let mut chain: Vec<&Polynomial> = Vec::new();
        chain.extend(std::iter::repeat_n(&self.sign_g, p.sign_g_iters));
        chain.extend(std::iter::repeat_n(
            &self.sign_f,
            p.sign_f_iters.saturating_sub(1),
        ));
        chain.push(&self.step_f);
        let mut x = d.clone();
        for (i, poly) in chain.iter().enumerate() {
            let spare = usize::from(i + 1 == chain.len());
            x = refresher.ensure(ops, &x, poly.depth() + spare, 1.0)?;
            x = ops.poly(&x, poly)?;
        }
        Ok(x)
    }

    /// Step 1 on a block in `unit`s of `1/(2R)` (1 for scaled logits, `2R` for raw
    /// ones): padded classes set to `−unit/2` (a plaintext addition), then the `c'`
    /// class columns copied right by `c'` (one rotation, no level).
    fn pad_and_copy<B: Backend>(
        &self,
        ops: &Ops<B>,
        ct: &Ciphertext<B>,
        unit: f64,
    ) -> Result<Ciphertext<B>> {
        let (c, cp) = (self.classes, self.padded);
        let z = ops.add_mask(ct, &format!("pad{c}/{unit}"), &|| {
            self.column_mask(|j| {
                if (c..cp).contains(&j) {
                    -0.5 * unit
                } else {
                    0.0
                }
            })
        })?;
        ops.add(&z, &ops.rotate(&z, -(cp as i64))?)
    }

    /// Boards the correction of the raw logits' refresh `fresh` against the exact
    /// `raw` logits: `fresh − raw`, computed at `raw`'s level, rides in the next refresh
    /// ([`Refresher::board_correction`]). `None` when `raw` is at the floor (nothing can
    /// ride from there).
    fn board_logit_correction<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        fresh: &Ciphertext<B>,
        raw: &Ciphertext<B>,
    ) -> Result<Option<usize>> {
        if raw.level() <= refresher.floor() {
            return Ok(None);
        }
        let error = ops.sub(&ops.align(fresh, raw.level())?, raw)?;
        // The refresh scales by at most 2·2R (a host of a pair), so its error is at most
        // 2R·2^-18.5 ≈ 2^-10.5 at R = 128 and N = 2^16: far inside 1/32.
        Ok(Some(refresher.board_correction(
            fresh.clone(),
            error,
            1.0 / 32.0,
        )?))
    }

    /// ASoftmax of one block of padded, copied logits `z` scaled by `1/(2R)`
    /// ([`Self::pad_and_copy`]), in the layout the circuit runs on (folded or not).
    /// With `raw` (the same logits unscaled, above the floor; `2R` an integer), the
    /// subtraction of the maximum happens in raw units on logits refreshed at most once,
    /// with a correction (module docs): the values that enter the exponential carry
    /// about `2^-18.5` logits of refresh error at N = 2^16 instead of `2R·2^-19.5`.
    fn evaluate_block<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        z: &Ciphertext<B>,
        raw: Option<&Ciphertext<B>>,
        p_level: usize,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("asoftmax_block").entered();
        let p = &self.params;
        let (c, cp) = (self.classes, self.padded);
        let (cpi, r_max) = (cp as i64, p.r_max);
        let budget = refresher.budget();
        // Levels the domain extension and the exponential polynomial take on w = z − max,
        // with one to spare: p's output is refreshed with a bound above 1, and the
        // refresh scales by 1/M first.
        let block = (p.extension_depth() + self.exp.depth() + 1).min(budget);
        // Raw logits with fewer levels than the extension needs are refreshed now, in raw
        // units, above the floor (so that a waiting passenger can ride along); the
        // refresh's error rides in the next refresh as a correction, and the maximum
        // starts from the refreshed logits scaled by 1/(2R) (the refresh replaces one
        // of the first round).
        let floor = refresher.floor();
        let (z, fresh) = match raw {
            Some(raw) if raw.level() < floor + block => {
                let fresh = refresher.refresh(ops, raw, r_max)?;
                let id = self.board_logit_correction(ops, refresher, &fresh, raw)?;
                let z = ops.mul_const(&fresh, 1.0 / (2.0 * r_max))?;
                (z, Some((fresh, id)))
            }
            _ => (z.clone(), None),
        };
        // 2. Row maximum: m ← b + step(m − b), b = m rotated by k, with step(d) the relu
        //    polynomial or d·(1 + sign(d))/2; the last round keeps the first slot of each
        //    row only. With the relu polynomial, m is refreshed before the round when the
        //    polynomial would not fit, so that b keeps the levels too; the sign chain
        //    refreshes inside (its product by d needs one level on b).
        let mut m = z.clone();
        let mut k = 1;
        while k < cp {
            let last = 2 * k == cp;
            let need = self.relu.as_ref().map_or(1, crate::relu::round_depth) + usize::from(last);
            m = refresher.ensure(ops, &m, need, 1.0)?;
            let mut b = ops.rotate(&m, k as i64)?;
            let mut d = ops.sub(&m, &b)?;
            if last {
                let first = |j: usize| if j == 0 { 1.0 } else { 0.0 };
                b = ops.mul_mask(&b, "first", &|| self.column_mask(first))?;
                d = ops.mul_mask(&d, "first", &|| self.column_mask(first))?;
            }
            m = match &self.relu {
                // b + r(d) = b + d/2 + q(2d² − 1) (`crate::relu::relu_even_part`).
                Some(q) => {
                    let sq = ops.mul(&d, &d)?;
                    let t = ops.add_const(&ops.evaluator().mul_integer(&sq, 2)?, -1.0)?;
                    let half = ops.add(&b, &ops.mul_const(&d, 0.5)?)?;
                    ops.add(&half, &ops.poly(&t, q)?)?
                }
                None => {
                    let h = self.step_function(ops, refresher, &d)?;
                    ops.add(&b, &ops.mul(&d, &h)?)?
                }
            };
            k *= 2;
        }
        // The logits the maximum is subtracted from: raw, refreshed and corrected; raw as
        // they came (they had the levels); or scaled (folded).
        let (z, unit) = match (fresh, raw) {
            (Some((_, Some(id))), _) => (refresher.collect(id)?, 2.0 * r_max),
            (Some((fresh, None)), _) => (fresh, 2.0 * r_max),
            (None, Some(raw)) => (raw.clone(), 2.0 * r_max),
            (None, None) => (z.clone(), 1.0),
        };
        // When z has the levels the extension needs, the maximum is refreshed, if it must
        // be, in the first slot of each row before the broadcast, and masked again (one
        // level: a refresh leaves its error in the zero slots too, which the broadcast
        // would add to the columns): its refresh error is then the same in every column
        // of the row, a shift that softmax ignores. The mask also converts to `unit`s.
        // Otherwise w = z − max is refreshed below (one refresh either way).
        let before = m.level();
        if z.level() >= floor + block {
            m = refresher.ensure(ops, &m, block, 1.0)?;
        }
        if m.level() > before {
            m = ops.mul_mask(&m, &format!("first/{unit}"), &|| {
                self.column_mask(|j| if j == 0 { unit } else { 0.0 })
            })?;
        } else if unit != 1.0 {
            m = ops.evaluator().mul_integer(&m, unit as i64)?;
        }
        // Broadcast the first slot over the 2c' columns (right rotations stay in the row).
        let mut k = 1;
        while k < 2 * cp {
            m = ops.add(&m, &ops.rotate(&m, -(k as i64))?)?;
            k *= 2;
        }
        // 3.–4. w = z − max ∈ [−unit, unit]; domain extension on u = (2R/unit)·w,
        //    i = n−1 … 0, with the factor 2R/unit folded into the first step and 1/r (the
        //    input scaling of p) into the last: each step is α·u + β·u³ (two levels).
        let w = ops.sub(&z, &m)?;
        let mut u = refresher.ensure(ops, &w, block, unit)?;
        let (mut s_in, mut bound) = (2.0 * r_max / unit, unit);
        for i in (0..p.ext_n).rev() {
            let s_out = if i == 0 { 1.0 / p.ext_r } else { 1.0 };
            let a = 4.0 / 27.0 / (p.ext_r * p.ext_r * p.ext_l.powi(2 * i as i32));
            u = refresher.ensure(ops, &u, 2, bound)?;
            let lin = ops.mul_const(&u, s_out * s_in)?;
            let cub = ops.mul_const(&u, -s_out * a * s_in.powi(3))?;
            let sq = ops.mul(&u, &u)?;
            u = ops.add(&lin, &ops.mul(&cub, &sq)?)?;
            bound = if i == 0 {
                1.0
            } else {
                p.ext_r * p.ext_l.powi(i as i32)
            };
            s_in = 1.0;
        }
        if p.ext_n == 0 {
            // No extension: y = α·u + β with u in logits (module docs of `softmax`).
            let (alpha, beta) = p.exp_input();
            u = refresher.ensure(ops, &u, 1 + self.exp.depth(), bound)?;
            u = ops.add_const(&ops.mul_const(&u, alpha * s_in)?, beta)?;
        }
        // 5. exp(u) = p(y)^(2^k), y = u/r after an extension, else α·u + β. Every slot
        //    has u ≤ shortfall (class columns and their copies sit below the broadcast
        //    maximum, which falls short of the true one by a few logits; other slots
        //    have u = 0), so after i squarings the value
        //    is at most exp(shortfall·2^i/2^k). The refresh comes as late as the
        //    levels allow (each squaring keeps one level spare for the refresh's
        //    scaling): its error is multiplied by the squarings that follow it.
        u = refresher.ensure(ops, &u, self.exp.depth(), 1.0)?;
        let mut e = ops.poly(&u, &self.exp)?;
        let k = f64::from(1u32 << p.exp_squarings);
        for i in 0..p.exp_squarings {
            let bound = (self.shortfall * f64::from(1u32 << i) / k).exp();
            // The last squaring also leaves the mask's and the final product's levels.
            let need = if i + 1 == p.exp_squarings { 3 } else { 2 };
            e = refresher.ensure(ops, &e, need, bound)?;
            e = ops.mul(&e, &e)?;
        }
        let bound = self.shortfall.exp();
        // 6. e' = e/B on the true classes; y = row sum of e' in every class column.
        // Two levels: the mask, and the final product.
        e = refresher.ensure(ops, &e, 2, bound)?;
        let inv_b = p.inverse_range;
        let e = ops.mul_mask(&e, &format!("classes{c}/B"), &|| {
            self.column_mask(|j| if j < c { 1.0 / inv_b } else { 0.0 })
        })?;
        let mut y = ops.add(&e, &ops.rotate(&e, -cpi)?)?;
        let mut k = 1;
        while k < cp {
            y = ops.add(&y, &ops.rotate(&y, k as i64)?)?;
            k *= 2;
        }
        // 7.–8. softmax = e'/y by Goldschmidt with the numerator folded in:
        //    e'·Π_{i < iters} (1 + t^(2^i)), t = 1 − y, one factor per level; columns ≥ c'
        //    get y = 1 (t = 0) so nothing there grows. When the levels run out before the
        //    output reaches `p_level`, the running product and the current power of t are
        //    refreshed together in one bootstrap ([`Refresher::refresh_pair`]), as late as
        //    the pair's scaling allows (one level above the floor): both stay in [−1, 1]
        //    (the partial product is below e'/y, t^(2^i) in [0, 1) after the first
        //    square).
        let iters = p.inverse_iters;
        let (mut num, y) = if e.level().min(y.level()) <= floor {
            (
                refresher.ensure(ops, &e, 1, 1.0)?,
                refresher.ensure(ops, &y, 1, 2.0)?,
            )
        } else {
            (e, y)
        };
        let y = ops.add_mask(&y, &format!("outside{cp}"), &|| {
            self.column_mask(|j| if j >= cp { 1.0 } else { 0.0 })
        })?;
        let mut t = ops.add_const(&ops.evaluator().neg(&y)?, 1.0)?;
        for i in 0..iters {
            let left = iters - i;
            let level = num.level().min(t.level());
            if level < p_level + left && level <= floor + 1 {
                if refresher.pairs(num.slots()) {
                    (num, t) = refresher.refresh_pair(
                        ops,
                        &ops.align(&num, level)?,
                        &ops.align(&t, level)?,
                        1.0,
                    )?;
                } else {
                    num = refresher.refresh(ops, &num, 1.0)?;
                    t = refresher.refresh(ops, &t, 1.0)?;
                }
            }
            num = ops.mul(&num, &ops.add_const(&t, 1.0)?)?;
            if i + 1 < iters {
                t = ops.mul(&t, &t)?;
            }
        }
        Ok(num)
    }

    /// One round's operands from `m`: `b = m` rotated left by `k`, `d = m − b`,
    /// `t = 2d² − 1` (the relu polynomial's even part's input) and `s = b + d/2`, so that
    /// the round's maximum is `s + q(t)`; both one level below `m`.
    fn round_operands<B: Backend>(
        &self,
        ops: &Ops<B>,
        m: &Ciphertext<B>,
        k: usize,
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        let b = ops.rotate(m, k as i64)?;
        let d = ops.sub(m, &b)?;
        let sq = ops.mul(&d, &d)?;
        let t = ops.add_const(&ops.evaluator().mul_integer(&sq, 2)?, -1.0)?;
        let s = ops.add(&b, &ops.mul_const(&d, 0.5)?)?;
        Ok((t, s))
    }

    /// Refreshes a round's operands `t` and `s` in one bootstrap, packed side by side in
    /// the halves of each row (`t` in columns `[0, s1/2)`, `s` moved to `[s1/2, s1)`; one
    /// level for the two half masks, which run in parallel): the row maximum only reads
    /// columns below `c' ≤ s1/2`. Returns `t` (whose upper half then holds `s`'s values,
    /// inside `[−1, 1]`) and `s` moved back, not yet masked (its upper half holds `t`'s
    /// values of the next row; the caller masks it).
    fn refresh_round<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        t: &Ciphertext<B>,
        s: &Ciphertext<B>,
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        let h = self.s1 / 2;
        let t = self.lower_half(ops, t)?;
        let s = self.lower_half(ops, s)?;
        let packed = ops.add(&t, &ops.rotate(&s, -(h as i64))?)?;
        let fresh = refresher.refresh(ops, &packed, 1.0)?;
        let s = ops.rotate(&fresh, h as i64)?;
        Ok((fresh, s))
    }

    /// `ct` with the columns `≥ s1/2` of every row zeroed (one level).
    fn lower_half<B: Backend>(&self, ops: &Ops<B>, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let h = self.s1 / 2;
        ops.mul_mask(ct, &format!("half/{}", self.s1), &|| {
            self.column_mask(|j| if j < h { 1.0 } else { 0.0 })
        })
    }

    /// The packed circuit (module docs) on one block of raw logits above the floor:
    /// the maximum on logits scaled by `1/(2R)` (handed back so by their refresh), its
    /// rounds' operands refreshed packed in one bootstrap when a round does not fit, the
    /// last round masked to the row's first slot inside its polynomial and scaled by the
    /// exponential's input factor; the exponential's input formed per column from the
    /// raw logits (the classes and their copies mapped into `[−1, 1]` with the shift
    /// `ln B`, every other column sent far below 0); the exponential refreshed without a
    /// scaling level before its squarings; the inverse refreshed as a pair where the
    /// levels run out; the class mask last. The result is at `p_level` or above.
    fn evaluate_block_packed<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        raw: &Ciphertext<B>,
        p_level: usize,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("asoftmax_block_packed").entered();
        let p = &self.params;
        let q = self
            .relu
            .as_ref()
            .ok_or_else(|| TrainError::Config("packed ASoftmax needs the relu maximum".into()))?;
        let (c, cp) = (self.classes, self.padded);
        let two_r = 2.0 * p.r_max;
        let floor = refresher.floor();
        let exp_depth = self.exp.depth();
        let round = crate::relu::round_depth(q);
        if p_level + 1 > refresher.output_level() || refresher.budget() < 2 {
            return Err(TrainError::Config(format!(
                "ASoftmax's output at level {p_level} needs bootstrapping to land above it, \
                 two levels above the floor (it lands at {}, floor {floor})",
                refresher.output_level()
            )));
        }
        // 1. The logits scaled by 1/(2R) for the maximum, and raw (one level above the
        //    exponential's input) for the subtraction.
        let (z, raw, correction) = if raw.level() < floor + exp_depth + 1 {
            let z = refresher.refresh_scaled(ops, raw, p.r_max, two_r)?;
            let fresh = ops.evaluator().mul_integer(&z, two_r as i64)?;
            let id = self.board_logit_correction(ops, refresher, &fresh, raw)?;
            (z, fresh, id)
        } else {
            (ops.mul_const(raw, 1.0 / two_r)?, raw.clone(), None)
        };
        // 2. Row maximum, m ← s + q(t); the last round keeps the first slot of each row
        //    (weights in its polynomial, a mask on s) scaled by α' = 2R·α, the
        //    exponential's input factor per logit.
        let (alpha, beta) = p.exp_input();
        let alpha_m = two_r * alpha;
        let first = |j: usize| if j == 0 { alpha_m } else { 0.0 };
        let mut m = self.pad_and_copy(ops, &z, 1.0)?;
        let mut k = 1;
        while k < cp {
            let last = 2 * k == cp;
            let level = m.level();
            let (t, s) = if level >= floor + round {
                self.round_operands(ops, &m, k)?
            } else if level >= floor + 3 {
                let (t, s) = self.round_operands(ops, &m, k)?;
                let (t, s) = self.refresh_round(ops, refresher, &t, &s)?;
                if last {
                    (t, s)
                } else {
                    (t, self.lower_half(ops, &s)?)
                }
            } else {
                m = refresher.ensure(ops, &m, round, 1.0)?;
                self.round_operands(ops, &m, k)?
            };
            m = if last {
                let w = self.column_mask(first);
                let qt = ops.poly_weighted(&t, q, &w)?;
                let s = ops.mul_mask(&s, &format!("first/{alpha_m:e}"), &|| w.clone())?;
                ops.add(&s, &qt)?
            } else {
                ops.add(&s, &ops.poly(&t, q)?)?
            };
            k *= 2;
        }
        // A maximum without the exponential's levels is refreshed in the first slot and
        // masked again (the refresh leaves its error in the zero slots too).
        if m.level() < floor + exp_depth {
            let bound = (0.5 * alpha_m).max(1.0);
            m = refresher.ensure_level(ops, &m, floor + exp_depth + 1, bound)?;
            m = ops.mul_mask(&m, "first/1", &|| {
                self.column_mask(|j| if j == 0 { 1.0 } else { 0.0 })
            })?;
        }
        // Broadcast over the 2c' columns (right rotations stay in the row).
        let mut k = 1;
        while k < 2 * cp {
            m = ops.add(&m, &ops.rotate(&m, -(k as i64))?)?;
            k *= 2;
        }
        // 3.–5. y = α·(x − max − ln B) + β on the classes and their copies; every other
        //    column at y = α·u_out + β − α'·max with u_out = −r + R + 8, so that its u
        //    stays in [−r + 8 − R, −r + 8 + R] ⊂ [−r, −56], where exp(u) vanishes.
        let raw = match correction {
            Some(id) => refresher.collect(id)?,
            None => raw,
        };
        // The classes' copies in columns c' … c' + c − 1, as the maximum's input has them.
        let raw = ops.add(&raw, &ops.rotate(&raw, -(cp as i64))?)?;
        let shift = p.exp_shift();
        let u_out = -p.ext_r + p.r_max + 8.0;
        let class = |j: usize| j < c || (cp..cp + c).contains(&j);
        let a = ops.mul_mask(&raw, &format!("expin/a{c}/{alpha:e}"), &|| {
            self.column_mask(|j| if class(j) { alpha } else { 0.0 })
        })?;
        let a = ops.add_mask(
            &a,
            &format!("expin/b{c}/{alpha:e}/{beta:e}/{shift:e}"),
            &|| {
                self.column_mask(|j| {
                    if class(j) {
                        beta - alpha * shift
                    } else {
                        alpha * u_out + beta
                    }
                })
            },
        )?;
        let u = ops.sub(&a, &m)?;
        if u.level() < floor + exp_depth {
            return Err(TrainError::Config(format!(
                "ASoftmax's exponential needs level {}, its input is at {}",
                floor + exp_depth,
                u.level()
            )));
        }
        // exp(u − ln B) = p(y)^(2^k) ≤ 1: refreshed without a scaling level.
        let mut e = ops.poly(&u, &self.exp)?;
        for _ in 0..p.exp_squarings {
            e = refresher.ensure(ops, &e, 1, 1.0)?;
            e = ops.mul(&e, &e)?;
        }
        // 6. y = s/B in every column j < c' (the copies hold the classes, the padded
        //    columns ≈ 0); 1 added outside the classes keeps t = 1 − y in (−1, 0] there.
        let mut y = e.clone();
        let mut k = 1;
        while k < cp {
            y = ops.add(&y, &ops.rotate(&y, k as i64)?)?;
            k *= 2;
        }
        let y = ops.add_mask(&y, &format!("outside{c}"), &|| {
            self.column_mask(|j| if j >= c { 1.0 } else { 0.0 })
        })?;
        let mut t = ops.add_const(&ops.evaluator().neg(&y)?, 1.0)?;
        // 7.–8. Goldschmidt with the numerator folded in; refreshed as a pair (both in
        //    [−1, 1]) as late as leaves the remaining factors and the class mask above
        //    `p_level`.
        let room = refresher.output_level() - p_level - 1;
        let (mut num, mut left) = (e, p.inverse_iters);
        while left > 0 {
            let level = num.level().min(t.level());
            if level < p_level + 1 + left && (left <= room || level <= floor + 1) {
                let (nl, tl) = (ops.align(&num, level)?, ops.align(&t, level)?);
                (num, t) = if level > floor && refresher.pairs(num.slots()) {
                    refresher.refresh_pair(ops, &nl, &tl, 1.0)?
                } else {
                    (
                        refresher.refresh(ops, &nl, 1.0)?,
                        refresher.refresh(ops, &tl, 1.0)?,
                    )
                };
                continue;
            }
            num = ops.mul(&num, &ops.add_const(&t, 1.0)?)?;
            left -= 1;
            if left > 0 {
                t = ops.mul(&t, &t)?;
            }
        }
        ops.mul_mask(&num, &format!("classes{c}"), &|| {
            self.column_mask(|j| if j < c { 1.0 } else { 0.0 })
        })
    }
}
