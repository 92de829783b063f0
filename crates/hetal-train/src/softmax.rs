//! ASoftmax, HETAL's row-wise softmax approximation (Lee et al., ICML 2023, §4.3, and
//! its public benchmark code `src/benchmark/softmax.py` in CryptoLabInc/HETAL), as a
//! parameter set shared by the float64 "simulated" evaluation here and the encrypted
//! evaluation, so a training run can be replayed exactly as the encrypted one computes
//! it, minus CKKS noise.
//!
//! Per row of `c` logits, padded to `c'` (a power of two):
//! 1. scale by `1/(2·R_max)` so pairwise differences lie in `[−1, 1]`; padded classes
//!    are set to `−1/2` (logit `−R_max`) so they never win the maximum;
//! 2. approximate the row maximum by `log2 c'` rounds of pairwise maxima against the
//!    row rotated by `2^j` (cyclically within the `c'` columns), [`RowMax`]:
//!    - [`RowMax::Relu`] (default): `max(a, b) = b + r(a − b)` with `r ≤ relu` a
//!      near-minimax polynomial of degree 126 on `[−1, 1]` ([`crate::relu`]), 7 levels;
//!    - [`RowMax::Sign`] (HETAL's): `max(a, b) = b + (a−b)·(1 + sign(a−b))/2`,
//!      `sign ≈ f^{∘d_f} ∘ g^{∘d_g}` with the comparison polynomials of Cheon–Kim–Kim
//!      (Asiacrypt 2020): `f(x) = (35x − 35x³ + 21x⁵ − 5x⁷)/16`,
//!      `g(x) = (4589x − 16577x³ + 25614x⁵ − 12860x⁷)/1024`, 10 levels for `g² f`;
//!
//!    as in HETAL's code (`approx_max_row` returns `ma[:, :1]`), the maximum computed
//!    in the row's **first** slot is shared by the whole row. Every class is then shifted
//!    by the same amount, which softmax ignores; per-slot maxima computed with a coarse
//!    sign disagree with each other and distort the result. Both never exceed the true
//!    maximum, so the row sum of step 6 is at least 1;
//! 3. subtract the maximum and undo the scaling: `u = x − max`, within `[−2R_max, δ]`
//!    (`δ` a few logits where the approximate maximum falls short of the true one,
//!    [`ASoftmaxParams::max_shortfall`]);
//! 4. with `n > 0` extension steps (HETAL's), domain extension (Cheon–Kim–Kim–Song,
//!    "Efficient homomorphic evaluation on large intervals", 2022):
//!    `u ← u − (4/27)·u³/(r²·L^{2i})` for `i = n−1 … 0` maps `[−r·L^n, r·L^n]` into
//!    `[−r, r]` and is close to the identity near 0; then `y = u/r`. With `n = 0` (the
//!    default), `y` is the affine image of `u ∈ [−r, exp_top]` in `[−1, 1]`
//!    ([`ASoftmaxParams::exp_input`], one level);
//! 5. `exp(u) = p(y)^{2^k}` with `p` the Chebyshev interpolant on `[−1, 1]` of
//!    `y ↦ exp(ρ(u(y))/2^k)`, followed by `k` squarings. `ρ` is the identity for
//!    [`ASoftmaxVariant::Normal`] and HETAL's correction of the extension's distortion
//!    near 0 for [`ASoftmaxVariant::Precise`]
//!    (`ρ(v) = v + (c/r²)·v³ − (c/r⁴)·v⁵`, `c = (4/27)·(L^{2n} − 1)/(L^{2n−2}(L² − 1))`,
//!    HETAL's `domain_extension(…, precise=True)`; the identity when `n = 0`); here it
//!    is folded into the interpolated function, so it costs no level;
//!    Without an extension the exponential's input is `u − ln B`
//!    ([`ASoftmaxParams::exp_shift`]): it computes `exp(u)/B` directly;
//! 6. zero the padded classes, sum the row (`log2 c'` rotations; every slot of the row
//!    gets the sum `s`, or `s/B` with the shift);
//! 7. `1/s` by Goldschmidt's iteration on `y = s/B` (`B` = `inverse_range`):
//!    `1/y ≈ Π_{i<k} (1 + (1−y)^{2^i})` (HETAL's `approx_inv`);
//! 8. multiply.
//!
//! # Defaults, and where they come from
//! | parameter | value | source |
//! |---|---|---|
//! | `r_max` | 128 | HETAL (paper §4.3, code `Rmax = (r/2)·L^n`) |
//! | `row_max` | relu, degree 126 | ours (HETAL: the sign composition) |
//! | `sign_g_iters`, `sign_f_iters` | 2, 1 | HETAL's code defaults (`--gi 2 --fi 1`), for [`RowMax::Sign`] |
//! | `ext_r`, `ext_n`, `exp_top` | 384, 0, 8 | ours (HETAL: `r = 8`, `n = 5`, `L = 2`, covering `r·L^n = 256 = 2R_max`) |
//! | `exp_degree`, `exp_squarings` | 31, 3 | ours (HETAL: a degree-8 Taylor-like polynomial of `exp(x/8)`, 3 squarings) |
//! | `inverse_range`, `inverse_iters` | 12, 7 | ours (HETAL's benchmark: `R = 100`, 16 iterations) |
//! | `variant` | normal | HETAL's "normal" (its "precise" correction is the identity without an extension) |
//!
//! Why ours (docs/results/softmax.md has the measurements):
//! - **The maximum.** HETAL's `g² f` spends 10 levels per round (three degree-7
//!   polynomials and the product by `a − b`). A relu polynomial of degree 126 spends 7
//!   and falls short by at most 0.57 logits per round (1.31 for `g² f`): 9 levels less
//!   for 7 classes.
//! - **No domain extension.** With `r = 8` the extension bends every `|u| ≳ 2` by several
//!   percent and folds the logits far below the maximum onto `≈ −6.5`
//!   (`exp = 1.5·10^-3` instead of 0): the error stays above `5·10^-3` for 7 classes on
//!   `[−128, 128]`. An earlier default (`r = 64`, `n = 2`, degree 7, 6 squarings) cost 13
//!   levels; a degree-31 interpolant of `exp(u/8)` on `[−384, 8]` (values in
//!   `[e^-48, e]`) and 3 squarings cost `1 + 5 + 3 = 9`, with an error below the
//!   inverse's. An interval with `exp_top` logits of room above 0 keeps the coefficients
//!   small, where `[−256, 256]` would need `e^{32}`-sized ones. The interval reaches 128
//!   logits below the `−2R_max` that the classes need so that the encrypted circuit can
//!   send the columns outside the classes there instead of masking them (the error is
//!   the same as on `[−256, 8]`: 1.409·10^-5 with either).
//! - **The inverse.** With the relu maximum the row sums stay below 8 for 7 classes and
//!   13 for 16 (29 with `g² f`), so `B = 12` keeps `y = s/B < 2`, and 7 iterations give
//!   `(1 − 1/12)^{128} ≈ 1.4·10^-5`; the encrypted circuit multiplies the numerator by
//!   the factors `1 + t^(2^i)` directly (no separate final product), refreshing the
//!   running product and the power of `t` together when it runs out of levels
//!   (`encrypted::EncryptedSoftmax`).
//!
//! Measured with `cargo xtask softmax-error --classes 7 --range 128 --samples 200000`
//! (docs/results/softmax.md): max error `1.4·10^-5` at depth 38 in the packed form, 40 otherwise (the earlier defaults:
//! `6.7·10^-5` at depth 54).
//!
//! Levels of the encrypted evaluation: see [`ASoftmaxParams::depth`].

use crate::error::{Result, TrainError};
use he_linalg::ckks::Polynomial;

/// Which exponential ASoftmax uses (see the module docs, step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ASoftmaxVariant {
    /// HETAL's "normal" ASoftmax: `exp` of the extended value.
    #[default]
    Normal,
    /// HETAL's "precise" ASoftmax: `exp` of the extended value after the correction of
    /// the extension's distortion near 0 (folded into the polynomial, no extra level).
    Precise,
}

impl ASoftmaxVariant {
    /// `"normal"` or `"precise"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Precise => "precise",
        }
    }
}

impl std::str::FromStr for ASoftmaxVariant {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "normal" => Ok(Self::Normal),
            "precise" => Ok(Self::Precise),
            other => Err(TrainError::Config(format!(
                "unknown ASoftmax variant {other:?} (normal, precise)"
            ))),
        }
    }
}

/// How step 2 approximates the pairwise maximum of a round (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum RowMax {
    /// HETAL's `max(a, b) = b + (a−b)·(1 + sign(a−b))/2`, `sign ≈ f^{∘d_f} ∘ g^{∘d_g}`
    /// ([`ASoftmaxParams::sign_g_iters`], [`ASoftmaxParams::sign_f_iters`]): `3(d_g + d_f)
    /// + 1` levels per round, never above the true maximum.
    Sign,
    /// `max(a, b) = b + r(a − b)` with `r ≤ relu` a near-minimax polynomial of this even
    /// degree on `[−1, 1]` ([`crate::relu::relu_polynomial`]): `⌈log2(degree + 1)⌉` levels
    /// per round, never above the true maximum.
    Relu {
        /// Degree of `r` (even, 2 to 254).
        degree: usize,
    },
}

impl Default for RowMax {
    /// `Relu { degree: 126 }`: 7 levels per round, at most 0.57 logits of shortfall per
    /// round at `R_max = 128` (HETAL's `g² f`: 10 levels, 1.31 logits). Degree 62 (6
    /// levels, 1.16 logits) falls short by a whole logit on almost every round (its error
    /// equioscillates over all of `[−1, 1]`, where the sign's is large only near its
    /// worst difference), and its row sums reach 33 for 7 classes and 98 for 16, beyond
    /// the inverse's range (`2B = 48`); degree 126 keeps them below 8 and 13
    /// (docs/results/softmax.md).
    fn default() -> Self {
        Self::Relu { degree: 126 }
    }
}

impl RowMax {
    /// `"sign"` or `"relu<degree>"`.
    pub fn name(self) -> String {
        match self {
            Self::Sign => "sign".into(),
            Self::Relu { degree } => format!("relu{degree}"),
        }
    }
}

/// Parameters of ASoftmax; the defaults and their sources are in the module docs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ASoftmaxParams {
    /// Logits are assumed to lie in `[−R_max, R_max]` (HETAL: 128).
    pub r_max: f64,
    /// How a round of the row maximum is computed (default: a relu polynomial of
    /// degree 126; HETAL: the sign composition). A configuration without this field gets
    /// the default.
    #[serde(default)]
    pub row_max: RowMax,
    /// Iterations of `g` in the sign approximation of [`RowMax::Sign`] (HETAL's code: 2).
    pub sign_g_iters: usize,
    /// Iterations of `f` in the sign approximation of [`RowMax::Sign`], at least 1
    /// (HETAL's code: 1).
    pub sign_f_iters: usize,
    /// Domain-extension target radius `r` (HETAL: 8), or without an extension the bottom
    /// `−r` of the exp polynomial's interval (here 384 = `2R_max + 128`; at least
    /// `2R_max + ln B`, and `2R_max + 64` for the packed circuit, [`Self::packed`]).
    pub ext_r: f64,
    /// Domain-extension ratio `L` (HETAL: 2).
    pub ext_l: f64,
    /// Domain-extension steps `n` (`r·L^n ≥ 2·R_max`; HETAL: 5). `0` (the default):
    /// no extension, `r ≥ 2·R_max`, and `p` covers `u ∈ [−r, exp_top]` directly.
    pub ext_n: usize,
    /// Without a domain extension (`ext_n = 0`), the top of the interval `[−r, exp_top]`
    /// (logits above the broadcast maximum) the exp polynomial covers: the maximum's
    /// shortfall ([`Self::max_shortfall`]) must stay below it. Ignored with an extension.
    #[serde(default = "default_exp_top")]
    pub exp_top: f64,
    /// Degree of the exp polynomial `p` on `[−1, 1]`.
    pub exp_degree: usize,
    /// Squarings `k` after the exp polynomial (`p(y(u))^{2^k} ≈ exp(u)`,
    /// [`Self::exp_input`]).
    pub exp_squarings: usize,
    /// The inverse works on `y = s/B` with `B` this range: row sums `s` up to `2B` are
    /// inverted (the sum exceeds `c` when the approximate maximum falls below the true
    /// one).
    pub inverse_range: f64,
    /// Goldschmidt iterations for the inverse (relative error `(1 − s/B)^{2^k}`; with
    /// `B = 12` and `k = 7` at most `1.4·10^-5` for row sums `s ≥ 1`). `k + 1` levels
    /// must follow one bootstrap (8; the default preset leaves 11).
    pub inverse_iters: usize,
    /// Normal (default) or precise exponential.
    #[serde(default)]
    pub variant: ASoftmaxVariant,
}

/// `exp_top`'s default: 8 logits, above the shortfall bound of either maximum for up to
/// 16 classes (`max_shortfall(16)`: 2.8 with the relu polynomial, 5.7 with the sign).
fn default_exp_top() -> f64 {
    8.0
}

impl Default for ASoftmaxParams {
    fn default() -> Self {
        Self {
            r_max: 128.0,
            row_max: RowMax::default(),
            sign_g_iters: 2,
            sign_f_iters: 1,
            ext_r: 384.0,
            ext_l: 2.0,
            ext_n: 0,
            exp_top: default_exp_top(),
            exp_degree: 31,
            exp_squarings: 3,
            inverse_range: 12.0,
            inverse_iters: 7,
            variant: ASoftmaxVariant::Normal,
        }
    }
}

/// `f` of Cheon–Kim–Kim (monomial coefficients, odd powers 1..7).
pub const SIGN_F: [f64; 8] = [
    0.0,
    35.0 / 16.0,
    0.0,
    -35.0 / 16.0,
    0.0,
    21.0 / 16.0,
    0.0,
    -5.0 / 16.0,
];
/// `g` of Cheon–Kim–Kim (monomial coefficients, odd powers 1..7).
pub const SIGN_G: [f64; 8] = [
    0.0,
    4589.0 / 1024.0,
    0.0,
    -16577.0 / 1024.0,
    0.0,
    25614.0 / 1024.0,
    0.0,
    -12860.0 / 1024.0,
];

fn horner(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &a| acc * x + a)
}

impl ASoftmaxParams {
    /// HETAL's own parameters (paper §4.3 and `src/benchmark/softmax.py`): `r = 8`,
    /// `n = 5`, 3 squarings after a degree-8 polynomial, `B = 100` with 16 iterations,
    /// with the given variant, and HETAL's sign composition for the maximum
    /// ([`RowMax::Sign`]). Deeper and less precise than the defaults here (see the
    /// module docs); kept to compare.
    pub fn hetal(variant: ASoftmaxVariant) -> Self {
        Self {
            ext_r: 8.0,
            ext_n: 5,
            exp_degree: 8,
            exp_squarings: 3,
            inverse_range: 100.0,
            inverse_iters: 16,
            variant,
            row_max: RowMax::Sign,
            ..Self::default()
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`TrainError::Config`] for non-positive ranges, a domain extension that does not
    /// cover `2·R_max`, no `f` iteration, or a zero degree.
    pub fn validate(&self) -> Result<()> {
        let covered = self.ext_r * self.ext_l.powi(self.ext_n as i32);
        let positive = self.r_max > 0.0
            && self.ext_r > 0.0
            && self.ext_l > 1.0
            && self.inverse_range > 0.0
            && self.inverse_range.is_finite()
            && covered.is_finite()
            && (self.ext_n > 0 || (self.exp_top > 0.0 && self.exp_top.is_finite()));
        if !positive {
            return Err(TrainError::Config(
                "ASoftmax ranges must be positive and finite (L > 1; exp_top without an extension)"
                    .into(),
            ));
        }
        if covered < 2.0 * self.r_max {
            return Err(TrainError::Config(format!(
                "domain extension covers ±{covered}, needs ±{}",
                2.0 * self.r_max
            )));
        }
        if self.ext_n == 0 && self.ext_r < 2.0 * self.r_max + self.exp_shift() {
            return Err(TrainError::Config(format!(
                "the exp polynomial's interval reaches {} logits below 0, needs 2R_max + \
                 ln B = {}",
                self.ext_r,
                2.0 * self.r_max + self.exp_shift()
            )));
        }
        if self.exp_degree == 0 || self.exp_degree > 255 || self.inverse_iters == 0 {
            return Err(TrainError::Config(
                "exp degree must be in 1..=255 and inverse iterations ≥ 1".into(),
            ));
        }
        match self.row_max {
            RowMax::Sign => {
                if self.sign_f_iters == 0 || self.sign_g_iters + self.sign_f_iters > 16 {
                    return Err(TrainError::Config(
                        "the sign needs 1 to 16 polynomials, at least one f".into(),
                    ));
                }
            }
            RowMax::Relu { .. } => {
                self.relu_part()?;
            }
        }
        if self.exp_squarings > 16 || self.inverse_iters > 32 || self.ext_n > 16 {
            return Err(TrainError::Config(
                "at most 16 squarings, 16 extension steps and 32 inverse iterations".into(),
            ));
        }
        Ok(())
    }

    /// The correction `ρ` of the variant (identity for [`ASoftmaxVariant::Normal`]).
    pub fn correct(&self, v: f64) -> f64 {
        match self.variant {
            ASoftmaxVariant::Normal => v,
            ASoftmaxVariant::Precise => {
                let (l, n, r) = (self.ext_l, self.ext_n as i32, self.ext_r);
                let c = (l.powi(2 * n) - 1.0) / (l.powi(2 * n - 2) * (l * l - 1.0)) * 4.0 / 27.0;
                v + c / (r * r) * v.powi(3) - c / r.powi(4) * v.powi(5)
            }
        }
    }

    /// The affine map `(α, β)` from the (extended) value `u` in logits to the exp
    /// polynomial's input `y = α·u + β ∈ [−1, 1]`: `(1/r, 0)` after a domain extension,
    /// `[−r, exp_top] → [−1, 1]` without one.
    pub fn exp_input(&self) -> (f64, f64) {
        if self.ext_n == 0 {
            let (a, b) = (-self.ext_r, self.exp_top);
            (2.0 / (b - a), -(a + b) / (b - a))
        } else {
            (1.0 / self.ext_r, 0.0)
        }
    }

    /// The shift `ln B` (`B` = `inverse_range`) subtracted from `u` before the exponential
    /// without a domain extension, so that it computes `exp(u − ln B) = exp(u)/B`: the
    /// division by `B` of step 7 costs nothing and every value the exponential and its
    /// squarings produce stays below 1 while the maximum's shortfall is below `ln B`
    /// (the encrypted circuit then refreshes them without a scaling level). 0 with an
    /// extension (HETAL's parameters divide in the class mask).
    pub fn exp_shift(&self) -> f64 {
        if self.ext_n == 0 {
            self.inverse_range.ln()
        } else {
            0.0
        }
    }

    /// Levels of step 4: 2 per domain-extension step, or 1 for the affine map of
    /// [`Self::exp_input`] without an extension (with one, the map folds into the steps'
    /// constants).
    pub fn extension_depth(&self) -> usize {
        if self.ext_n == 0 { 1 } else { 2 * self.ext_n }
    }

    /// The exp polynomial `p` on `[−1, 1]`: the Chebyshev interpolant of
    /// `y ↦ exp(ρ(u)/2^k)`, `u = (y − β)/α` ([`Self::exp_input`]; module docs, step 5).
    ///
    /// # Errors
    /// [`TrainError::Config`] if the interpolation fails.
    pub fn exp_polynomial(&self) -> Result<Polynomial> {
        let k = f64::from(1u32 << self.exp_squarings);
        let (alpha, beta) = self.exp_input();
        Polynomial::chebyshev_interpolant(
            |y| (self.correct((y - beta) / alpha) / k).exp(),
            -1.0,
            1.0,
            self.exp_degree,
        )
        .map_err(|e| TrainError::Config(format!("exp polynomial: {e}")))
    }

    /// The approximate sign on `[−1, 1]` of [`RowMax::Sign`].
    pub fn sign(&self, x: f64) -> f64 {
        let mut y = x;
        for _ in 0..self.sign_g_iters {
            y = horner(&SIGN_G, y);
        }
        for _ in 0..self.sign_f_iters {
            y = horner(&SIGN_F, y);
        }
        y
    }

    /// The domain-extension map.
    pub fn extend(&self, mut u: f64) -> f64 {
        for i in (0..self.ext_n).rev() {
            let d = self.ext_r * self.ext_r * self.ext_l.powi(2 * i as i32);
            u -= 4.0 / 27.0 * u * u * u / d;
        }
        u
    }

    /// Whether the encrypted circuit runs in its packed form for `padded_classes` (`c'`)
    /// columns (`encrypted::EncryptedSoftmax`'s module docs): the relu maximum, no domain
    /// extension, `2R_max` a power of two (the logits' refresh hands them back scaled by
    /// `1/(2R_max)`), a shortfall bound below [`Self::exp_shift`] (every value of the
    /// exponential stays below 1) and an interval that reaches at least `2R_max + 64`
    /// logits below 0 (columns outside the classes are sent there, to `exp ≈ 0`, instead
    /// of being masked). The float64 path computes the same values either way.
    ///
    /// # Errors
    /// As [`Self::max_shortfall`].
    pub fn packed(&self, padded_classes: usize) -> Result<bool> {
        let two_r = 2.0 * self.r_max;
        Ok(matches!(self.row_max, RowMax::Relu { .. })
            && self.ext_n == 0
            && two_r >= 1.0
            && two_r.log2().fract() == 0.0
            && self.ext_r >= two_r + 64.0
            && self.max_shortfall(padded_classes)? < self.exp_shift())
    }

    /// Multiplicative depth of the encrypted evaluation (levels consumed without
    /// bootstrapping), stage by stage as the encrypted circuit spends them: scaling 1;
    /// per max round the relu polynomial (`⌈log2(degree + 1)⌉`, [`RowMax::Relu`]) or the
    /// sign chain (each degree-7 polynomial 3 levels) and the product 1
    /// ([`RowMax::Sign`]); the first-slot mask of the last round 1; 2 per
    /// domain-extension step (the un-scaling by `2R_max` and the `1/r` of `p`'s input
    /// are folded into its constants), or 1 for the input map without an extension
    /// ([`Self::extension_depth`]); the exp polynomial and its squarings; the class
    /// mask 1; the inverse with the numerator folded in (`iterations` factors
    /// `1 + t^(2^i)`, one level each). Defaults: `1 + 3·7 + 1 + 1 + 5 + 3 + 1 + 7 = 40`
    /// for `c' = 8` (the defaults before the relu maximum and without the extension:
    /// `1 + 3·10 + 1 + 4 + 3 + 6 + 1 + 8 = 54`). In the packed form ([`Self::packed`])
    /// the first-slot mask rides in the last round's polynomial, the input map on the
    /// logits runs beside the maximum and the class mask comes last:
    /// `1 + 3·7 + 5 + 3 + 7 + 1 = 38` for the defaults.
    ///
    /// # Errors
    /// As [`Self::exp_polynomial`]; a relu degree out of range.
    pub fn depth(&self, padded_classes: usize) -> Result<usize> {
        self.depth_of_form(padded_classes, self.packed(padded_classes)?)
    }

    /// [`Self::depth`] of the packed form or of the other one (the folded encrypted
    /// circuit runs the other form whatever the parameters).
    pub(crate) fn depth_of_form(&self, padded_classes: usize, packed: bool) -> Result<usize> {
        let rounds = padded_classes.trailing_zeros() as usize;
        let poly_depth = |c: &[f64]| -> Result<usize> {
            Ok(Polynomial::monomial(c.to_vec())
                .map_err(|e| TrainError::Config(format!("sign polynomial: {e}")))?
                .depth())
        };
        let round = match self.row_max {
            RowMax::Sign => {
                poly_depth(&SIGN_G)? * self.sign_g_iters
                    + poly_depth(&SIGN_F)? * self.sign_f_iters
                    + 1
            }
            RowMax::Relu { .. } => self
                .relu_part()?
                .map_or(0, |q| crate::relu::round_depth(&q)),
        };
        if packed {
            return Ok(1
                + rounds * round
                + self.exp_polynomial()?.depth()
                + self.exp_squarings
                + self.inverse_iters
                + 1);
        }
        Ok(1 + rounds * round
            + usize::from(rounds > 0)
            + self.extension_depth()
            + self.exp_polynomial()?.depth()
            + self.exp_squarings
            + 1
            + self.inverse_iters)
    }

    /// Upper bound, in logits, on how far the shared row maximum of step 2 falls short
    /// of the true maximum, for `padded_classes` (`c'`) columns. Every round's output
    /// `b + step(a − b)` lies between its operands (neither method overshoots: `|sign| ≤ 1`
    /// on `[−1, 1]`, and the relu polynomial stays below relu), so every round sees
    /// differences in `[−1, 1]` and loses at most `max_{d ∈ [−1, 1]} relu(d) − step(d)` in
    /// scaled units; `log2 c'` rounds add up. The maximum is taken on a grid of
    /// `2^16 + 1` points, plus a margin of 1/8 logit per round (a numerical bound, not a
    /// proof). `c' = 8`, `R_max = 128`: `3 × 0.572 + 0.375 ≈ 2.09` logits for the
    /// default relu of degree 126, `3 × 1.306 + 0.375 ≈ 4.29` for HETAL's `g² f` (the
    /// largest shortfalls measured over 200 000 uniform rows: docs/results/softmax.md).
    /// The encrypted circuit scales its refreshes of the exponential by this bound.
    ///
    /// # Errors
    /// A relu degree out of range ([`crate::relu::relu_polynomial`]).
    pub fn max_shortfall(&self, padded_classes: usize) -> Result<f64> {
        const GRID: u32 = 1 << 16;
        let rounds = f64::from(padded_classes.max(1).trailing_zeros());
        let relu = self.relu_part()?;
        let per_round = (0..=GRID)
            .map(|i| {
                let d = 2.0 * f64::from(i) / f64::from(GRID) - 1.0;
                d.max(0.0) - self.round_step(relu.as_ref(), d)
            })
            .fold(0.0, f64::max);
        Ok(rounds * (per_round * 2.0 * self.r_max + 0.125))
    }

    /// The even part `q` of the relu polynomial of [`RowMax::Relu`]
    /// ([`crate::relu::relu_even_part`]), `None` for [`RowMax::Sign`]: what both the
    /// float64 and the encrypted round evaluate.
    ///
    /// # Errors
    /// A relu degree out of range.
    pub fn relu_part(&self) -> Result<Option<Polynomial>> {
        match self.row_max {
            RowMax::Sign => Ok(None),
            RowMax::Relu { degree } => crate::relu::relu_even_part(degree).map(Some),
        }
    }

    /// One round of the maximum as a function of `d = a − b`: `max(a, b) ≈ b + step(d)`,
    /// `step(d) = d·(1 + sign(d))/2` ([`RowMax::Sign`], `relu = None`) or the relu
    /// polynomial as the encrypted circuit evaluates it, `d/2 + q(2d² − 1)` with
    /// `relu` = [`Self::relu_part`].
    fn round_step(&self, relu: Option<&Polynomial>, d: f64) -> f64 {
        match relu {
            Some(q) => d / 2.0 + q.eval(2.0 * d * d - 1.0),
            None => d * (1.0 + self.sign(d)) / 2.0,
        }
    }

    /// The polynomials of the float64 evaluation, computed once: the exp polynomial and
    /// [`Self::relu_part`].
    ///
    /// # Errors
    /// As [`Self::exp_polynomial`] and [`Self::relu_part`].
    pub fn prepare(&self) -> Result<PreparedASoftmax> {
        Ok(PreparedASoftmax {
            params: self.clone(),
            exp: self.exp_polynomial()?,
            relu: self.relu_part()?,
        })
    }
}

/// ASoftmax with its polynomials prepared ([`ASoftmaxParams::prepare`]): the float64
/// "simulated" path, step by step as the encrypted circuit computes it.
#[derive(Debug, Clone)]
pub struct PreparedASoftmax {
    params: ASoftmaxParams,
    exp: Polynomial,
    /// The even part `q` of the relu polynomial ([`crate::relu::relu_even_part`]).
    relu: Option<Polynomial>,
}

impl PreparedASoftmax {
    /// The parameters.
    pub fn params(&self) -> &ASoftmaxParams {
        &self.params
    }

    /// The exp polynomial `p` on `[−1, 1]` ([`ASoftmaxParams::exp_polynomial`]).
    pub fn exp(&self) -> &Polynomial {
        &self.exp
    }

    /// One round of the maximum as a function of `d = a − b`: `max(a, b) ≈ b + step(d)`,
    /// `step(d) = d·(1 + sign(d))/2` ([`RowMax::Sign`]) or the relu polynomial
    /// ([`RowMax::Relu`]), evaluated as the encrypted circuit does: `d/2 + q(2d² − 1)`.
    pub fn round_step(&self, d: f64) -> f64 {
        self.params.round_step(self.relu.as_ref(), d)
    }

    /// The shared row maximum of step 2 on logits already scaled by `1/(2R_max)` and
    /// padded to `c'` columns: `log2 c'` pairwise rounds `m ← b + step(m − b)` against
    /// the cyclic rotation `b` of `m` by `2^j`, the first slot's value (module docs).
    pub fn approx_row_max(&self, scaled: &[f64]) -> f64 {
        let cp = scaled.len();
        let mut m = scaled.to_vec();
        let mut step = 1;
        while step < cp {
            let rot: Vec<f64> = (0..cp).map(|j| m[(j + step) % cp]).collect();
            m = m
                .iter()
                .zip(&rot)
                .map(|(&a, &b)| b + self.round_step(a - b))
                .collect();
            step *= 2;
        }
        m.first().copied().unwrap_or(0.0)
    }

    /// ASoftmax of one row of `c` logits in float64 (the simulated path), step by step
    /// as the encrypted circuit computes it. The row is padded to
    /// `c' = `[`he_linalg::padded_classes`]`(c)`.
    pub fn eval_row(&self, logits: &[f64]) -> Vec<f64> {
        let (p, exp) = (&self.params, &self.exp);
        let c = logits.len();
        let cp = he_linalg::padded_classes(c);
        let scale = 1.0 / (2.0 * p.r_max);
        // Padded classes enter the maximum as −R_max (a plaintext addition on the
        // encrypted side), so they never win it.
        let z: Vec<f64> = (0..cp)
            .map(|j| logits.get(j).map_or(-0.5, |&v| v * scale))
            .collect();
        let m0 = self.approx_row_max(&z);
        // e_j / B: the division by B folded into the exponential's input
        // (`exp_shift`) without an extension, else a separate factor.
        let shift = p.exp_shift();
        let divide = if shift == 0.0 { p.inverse_range } else { 1.0 };
        let (alpha, beta) = p.exp_input();
        let e: Vec<f64> = (0..c)
            .map(|j| {
                let u = p.extend((z[j] - m0) * 2.0 * p.r_max) - shift;
                let mut v = exp.eval(alpha * u + beta);
                for _ in 0..p.exp_squarings {
                    v *= v;
                }
                v / divide
            })
            .collect();
        // y = s/B.
        let y: f64 = e.iter().sum();
        let mut inv = 1.0;
        let mut t = 1.0 - y;
        for _ in 0..p.inverse_iters {
            inv *= 1.0 + t;
            t *= t;
        }
        e.iter().map(|v| v * inv).collect()
    }
}

/// Exact softmax of one row (float64, max-subtracted).
pub fn softmax_row(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
