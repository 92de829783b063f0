//! ASoftmax, HETAL's row-wise softmax approximation (Lee et al., ICML 2023, §4.3), as
//! a parameter set shared by the float64 "simulated" evaluation here and the encrypted
//! evaluation, so a training run can be replayed exactly as the encrypted one computes
//! it, minus CKKS noise.
//!
//! Per row of `c` logits, padded to `c'` (a power of two):
//! 1. scale by `1/(2·R_max)` so pairwise differences lie in `[−1, 1]`; padded classes
//!    are set to `−1/2` (logit `−R_max`) so they never win the maximum;
//! 2. approximate the row maximum by `log2 c'` rounds of pairwise
//!    `max(a, b) = (a+b)/2 + (a−b)/2·sign(a−b)` against the row rotated by `2^j`
//!    (cyclically within the `c'` columns), `sign ≈ f^{∘d_f} ∘ g^{∘d_g}` with the
//!    comparison polynomials of Cheon–Kim–Kim (Asiacrypt 2020):
//!    `f(x) = (35x − 35x³ + 21x⁵ − 5x⁷)/16`,
//!    `g(x) = (4589x − 16577x³ + 25614x⁵ − 12860x⁷)/1024`;
//! 3. subtract the maximum and undo the scaling: `u = x − max ∈ [−2R_max, 0]`;
//! 4. domain extension (Cheon–Kim–Kim–Song, "Efficient homomorphic evaluation on large
//!    intervals", 2022): `u ← u − (4/27)·u³/(r²·L^{2i})` for `i = n−1 … 0` maps
//!    `[−r·L^n, r·L^n]` into `[−r, r]` and is close to the identity near 0
//!    (defaults `r = 8, L = 2, n = 5`, covering `2·R_max = 256`);
//! 5. `exp(u) = p(u/2^k)^{2^k}`: a Chebyshev interpolant `p ≈ exp` on `[−r/2^k, r/2^k]`
//!    followed by `k` squarings;
//! 6. zero the padded classes, sum the row (`log2 c'` rotations; every slot of the row
//!    gets the sum `s ∈ [1, c']`);
//! 7. `1/s` by Goldschmidt's iteration on `y = s/B ∈ (0, 2)` (`B` = `inverse_range`):
//!    `1/y = Π_i (1 + (1−y)^{2^i})`;
//! 8. multiply.
//!
//! The "precise" variant is not implemented (see the crate's README entry).

use crate::error::{Result, TrainError};
use he_linalg::ckks::Polynomial;

/// Parameters of ASoftmax; defaults are HETAL's values where the paper gives them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ASoftmaxParams {
    /// Logits are assumed to lie in `[−R_max, R_max]` (HETAL: 128).
    pub r_max: f64,
    /// Iterations of `g` in the sign approximation.
    pub sign_g_iters: usize,
    /// Iterations of `f` in the sign approximation.
    pub sign_f_iters: usize,
    /// Domain-extension target radius `r` (HETAL: 8).
    pub ext_r: f64,
    /// Domain-extension ratio `L` (HETAL: 2).
    pub ext_l: f64,
    /// Domain-extension steps `n` (HETAL: 5; `r·L^n ≥ 2·R_max`).
    pub ext_n: usize,
    /// Degree of the exp polynomial on `[−r/2^k, r/2^k]`.
    pub exp_degree: usize,
    /// Squarings `k` after the exp polynomial.
    pub exp_squarings: usize,
    /// The inverse works on `y = s/B ∈ (0, 2)` with `B` this range: row sums up to
    /// `2B` are inverted (the sum exceeds `c` when the approximate maximum falls below
    /// the true one).
    pub inverse_range: f64,
    /// Goldschmidt iterations for the inverse (relative error `(1 − s/B)^{2^k}`; with
    /// `B = 16` and `k = 8` at most `e^{-16}` for row sums `s ≥ 1`). `k + 1` levels
    /// must follow one bootstrap, so 8 is the most a 9-level budget allows.
    pub inverse_iters: usize,
}

impl Default for ASoftmaxParams {
    fn default() -> Self {
        Self {
            r_max: 128.0,
            sign_g_iters: 3,
            sign_f_iters: 2,
            ext_r: 8.0,
            ext_l: 2.0,
            ext_n: 5,
            exp_degree: 8,
            exp_squarings: 3,
            inverse_range: 16.0,
            inverse_iters: 8,
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
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`TrainError::Config`] for non-positive ranges, a domain extension that does not
    /// cover `2·R_max`, or a zero degree.
    pub fn validate(&self) -> Result<()> {
        let covered = self.ext_r * self.ext_l.powi(self.ext_n as i32);
        if !(self.r_max > 0.0 && self.ext_r > 0.0 && self.ext_l > 1.0 && self.inverse_range > 0.0) {
            return Err(TrainError::Config(
                "ASoftmax ranges must be positive (L > 1)".into(),
            ));
        }
        if covered < 2.0 * self.r_max {
            return Err(TrainError::Config(format!(
                "domain extension covers ±{covered}, needs ±{}",
                2.0 * self.r_max
            )));
        }
        if self.exp_degree == 0 || self.inverse_iters == 0 {
            return Err(TrainError::Config(
                "exp degree and inverse iterations must be ≥ 1".into(),
            ));
        }
        Ok(())
    }

    /// The exp polynomial `p ≈ exp` on `[−r/2^k, r/2^k]` (Chebyshev interpolant).
    ///
    /// # Errors
    /// [`TrainError::Config`] if the interpolation fails.
    pub fn exp_polynomial(&self) -> Result<Polynomial> {
        let h = self.ext_r / f64::from(1u32 << self.exp_squarings);
        Polynomial::chebyshev_interpolant(f64::exp, -h, h, self.exp_degree)
            .map_err(|e| TrainError::Config(format!("exp polynomial: {e}")))
    }

    /// The approximate sign on `[−1, 1]`.
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

    /// Multiplicative depth of the encrypted evaluation (levels consumed), counted
    /// step by step as in the module docs: scaling 1; per max round the sign
    /// (`4·(d_g + d_f)`) and the product 1; un-scaling 1; `2` per domain-extension
    /// step; the exp polynomial and its squarings; the class mask 1; the inverse
    /// (`1 + iterations`); the final product 1.
    ///
    /// # Errors
    /// As [`Self::exp_polynomial`].
    pub fn depth(&self, padded_classes: usize) -> Result<usize> {
        let rounds = padded_classes.trailing_zeros() as usize;
        // Degree-7 polynomials cost ⌈log2 8⌉ + 1 = 4 levels in `ckks`'s evaluator.
        let sign_depth = Polynomial::monomial(SIGN_G.to_vec())
            .map_err(|e| TrainError::Config(format!("sign polynomial: {e}")))?
            .depth();
        let max = rounds * (sign_depth * (self.sign_g_iters + self.sign_f_iters) + 1);
        Ok(1 + max
            + 1
            + 2 * self.ext_n
            + self.exp_polynomial()?.depth()
            + self.exp_squarings
            + 1
            + 1
            + self.inverse_iters
            + 1)
    }

    /// ASoftmax of one row of `c` logits in float64 (the simulated path). The row is
    /// padded with zero logits to `c' = `[`he_linalg::padded_classes`]`(c)`.
    ///
    /// # Errors
    /// As [`Self::exp_polynomial`].
    pub fn eval_row(&self, logits: &[f64], exp: &Polynomial) -> Vec<f64> {
        let c = logits.len();
        let cp = he_linalg::padded_classes(c);
        let scale = 1.0 / (2.0 * self.r_max);
        // Padded classes enter the maximum as −R_max (a plaintext addition on the
        // encrypted side), so they never win it.
        let z: Vec<f64> = (0..cp)
            .map(|j| logits.get(j).map_or(-0.5, |&v| v * scale))
            .collect();
        // Row maximum by log2(c') pairwise rounds against cyclic rotations.
        let mut m = z.clone();
        let mut step = 1;
        while step < cp {
            let rot: Vec<f64> = (0..cp).map(|j| m[(j + step) % cp]).collect();
            m = m
                .iter()
                .zip(&rot)
                .map(|(&a, &b)| 0.5 * (a + b) + 0.5 * (a - b) * self.sign(a - b))
                .collect();
            step *= 2;
        }
        let k = f64::from(1u32 << self.exp_squarings);
        let e: Vec<f64> = (0..cp)
            .map(|j| {
                if j >= c {
                    return 0.0;
                }
                let u = self.extend((z[j] - m[j]) * 2.0 * self.r_max);
                let mut v = exp.eval(u / k);
                for _ in 0..self.exp_squarings {
                    v *= v;
                }
                v
            })
            .collect();
        let s: f64 = e.iter().sum();
        let bound = self.inverse_range;
        let y = s / bound;
        let mut inv = 1.0;
        let mut t = 1.0 - y;
        for _ in 0..self.inverse_iters {
            inv *= 1.0 + t;
            t *= t;
        }
        e[..c].iter().map(|v| v * inv / bound).collect()
    }
}

/// Exact softmax of one row (float64, max-subtracted).
pub fn softmax_row(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
