//! A polynomial `r ≈ relu` on `[−1, 1]` that never exceeds it, for ASoftmax's pairwise
//! maximum `max(a, b) = b + relu(a − b)` ([`crate::softmax::RowMax::Relu`]).
//!
//! `relu(x) = (x + |x|)/2`, so `r(x) = (x + p(x))/2` with `p` an even polynomial close
//! to `|x|` in the uniform norm:
//!
//! 1. `p = Σ_{k ≤ d/2} c_k T_{2k}(x)` is fitted to `|x|` on `[−1−μ, 1+μ]`, `μ = 10^-3`
//!    (a margin for differences that pass `±1` by rounding), by Lawson's algorithm (iteratively
//!    reweighted least squares whose weights grow with the residual, which converges to
//!    the best uniform approximation on the sample points; C. L. Lawson, "Contributions to
//!    the theory of linear least maximum approximation", PhD thesis, UCLA, 1961; see also
//!    Cheney, *Introduction to Approximation Theory*, ch. 2). Samples `x_j = (1+μ)cos θ_j`,
//!    `θ_j` uniform in `[0, π/2]` (dense near the kink at 0 and at the ends, like
//!    Chebyshev points). The basis is Chebyshev on `[−1, 1]`, so the encrypted evaluation
//!    spends no level on an affine map.
//! 2. `c_0` is lowered by the largest `p(x) − |x|` on a finer grid (`2^16` points), so
//!    that `p ≤ |x|` (numerically) and therefore `r ≤ relu`: the approximate maximum never exceeds the
//!    true one (the row sum of the exponentials stays `≥ 1`, which the inverse's range
//!    relies on), and since the fitted `p` is near `|x|` from above at 0, also
//!    `p ≥ −|x|` up to `~10^-4`: `b + r(a − b)` lies between `a` and `b` (up to that), so
//!    every round's differences stay within `[−1−μ, 1+μ]`, where `r` was fitted.
//!
//! Degree 126 (depth 7, the default): `|x| − p(x) ∈ [0, 4.5·10^-3]`, so a round falls
//! short of the true maximum by at most `2.2·10^-3` (0.57 logits at `R_max = 128`), where
//! HETAL's sign composition `g² f` needs 10 levels for 1.31 logits; degree 62 (depth 6)
//! twice that (docs/results/softmax.md).
//!
//! The fit is deterministic (float64, fixed sample points and iteration count) and
//! cached per degree, so the simulated and the encrypted paths evaluate the same
//! coefficients; both evaluate `r` as `x/2 + q(2x² − 1)` ([`relu_even_part`]).

use crate::error::{Result, TrainError};
use he_linalg::ckks::Polynomial;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Sample points of the fit on `[0, 1+μ]`.
const FIT_POINTS: usize = 1024;
/// Lawson iterations (the uniform error settles within 0.5 % after about 30 here).
const FIT_ITERS: usize = 50;
/// Points of the grid the shift is measured on.
const CHECK_POINTS: usize = 1 << 16;
/// How far beyond `[−1, 1]` the fit holds (`μ`): the differences a round sees pass `±1`
/// by the round's dip below its smaller operand (`~10^-5`) and by CKKS noise, and a
/// polynomial's error grows fast outside its interval.
const MARGIN: f64 = 1e-3;
/// The largest degree accepted (depth 8).
pub const MAX_RELU_DEGREE: usize = 254;

/// `r ≈ relu` on `[−1, 1]` of even `degree` in the Chebyshev basis on `[−1, 1]`, with
/// `r ≤ relu` on a grid of `2^16` points (module docs). Depth `⌈log2(degree + 1)⌉`.
///
/// # Errors
/// [`TrainError::Config`] for an odd degree or one outside `2..=254`.
pub fn relu_polynomial(degree: usize) -> Result<Arc<Polynomial>> {
    if !(2..=MAX_RELU_DEGREE).contains(&degree) || !degree.is_multiple_of(2) {
        return Err(TrainError::Config(format!(
            "the relu polynomial's degree must be even and in 2..={MAX_RELU_DEGREE} (got {degree})"
        )));
    }
    static CACHE: OnceLock<Mutex<BTreeMap<usize, Arc<Polynomial>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(p) = cache.lock().map_err(poisoned)?.get(&degree) {
        return Ok(p.clone());
    }
    let half = abs_even_fit(degree / 2)?;
    // r = (x + p)/2: T_1 carries x/2, T_{2k} carries c_k/2.
    let mut coeffs = vec![0.0; degree + 1];
    for (k, c) in half.iter().enumerate() {
        coeffs[2 * k] = c / 2.0;
    }
    coeffs[1] = 0.5;
    let poly = Arc::new(
        Polynomial::chebyshev(coeffs, -1.0, 1.0)
            .map_err(|e| TrainError::Config(format!("relu polynomial: {e}")))?,
    );
    cache.lock().map_err(poisoned)?.insert(degree, poly.clone());
    Ok(poly)
}

/// The even part of [`relu_polynomial`] as a polynomial in `t = T_2(x) = 2x² − 1`:
/// `r(x) = x/2 + q(T_2(x))` with `q = Σ_k c_{2k} T_k(t)` of degree `degree/2` on
/// `[−1, 1]`, since `T_{2k} = T_k ∘ T_2`. The encrypted round evaluates `r` this way:
/// one squaring, then a polynomial of half the degree (the same depth, fewer products).
///
/// # Errors
/// As [`relu_polynomial`].
pub fn relu_even_part(degree: usize) -> Result<Polynomial> {
    let r = relu_polynomial(degree)?;
    let coeffs: Vec<f64> = r.coeffs().iter().step_by(2).copied().collect();
    Polynomial::chebyshev(coeffs, -1.0, 1.0)
        .map_err(|e| TrainError::Config(format!("relu polynomial: {e}")))
}

/// Levels of one encrypted round `x/2 + q(2x² − 1)` with the even part `q` of
/// [`relu_even_part`]: the square (1) and `q` (`⌈log2(degree + 1)⌉` in all).
pub fn round_depth(even_part: &Polynomial) -> usize {
    1 + even_part.depth()
}

fn poisoned<T>(_: T) -> TrainError {
    TrainError::Config("the relu polynomial cache was poisoned by a panicking thread".into())
}

/// `T_0(x), T_2(x), …, T_{2k}(x)` by the three-term recurrence (also for `|x| > 1`).
fn even_chebyshev(x: f64, k: usize, out: &mut [f64]) {
    let (mut prev, mut cur) = (1.0, x); // T_0, T_1
    out[0] = 1.0;
    for n in 1..=2 * k {
        if n % 2 == 0 {
            out[n / 2] = cur;
        }
        let next = 2.0 * x * cur - prev;
        prev = cur;
        cur = next;
    }
}

/// Coefficients `c_0 … c_k` of `p(x) = Σ c_i T_{2i}(x) ≈ |x|` on `[−1−μ, 1+μ]`
/// (`μ` = [`MARGIN`]), lowered so that `p ≤ |x|` on the check grid (module docs).
fn abs_even_fit(k: usize) -> Result<Vec<f64>> {
    let n = k + 1;
    let end = 1.0 + MARGIN;
    let step = std::f64::consts::FRAC_PI_2 / (FIT_POINTS - 1) as f64;
    let xs: Vec<f64> = (0..FIT_POINTS)
        .map(|j| end * (j as f64 * step).cos())
        .collect();
    // Basis values row by row: FIT_POINTS × n.
    let mut basis = vec![0.0; FIT_POINTS * n];
    for (row, &x) in basis.chunks_exact_mut(n).zip(&xs) {
        even_chebyshev(x, k, row);
    }
    let mut weights = vec![1.0 / FIT_POINTS as f64; FIT_POINTS];
    let mut coeffs = vec![0.0; n];
    for _ in 0..FIT_ITERS {
        // Normal equations of the weighted least squares: (Bᵀ W B) c = Bᵀ W f.
        let mut gram = vec![0.0; n * n];
        let mut rhs = vec![0.0; n];
        for (j, row) in basis.chunks_exact(n).enumerate() {
            let w = weights[j];
            for a in 0..n {
                let wa = w * row[a];
                rhs[a] += wa * xs[j];
                for b in a..n {
                    gram[a * n + b] += wa * row[b];
                }
            }
        }
        for a in 0..n {
            for b in 0..a {
                gram[a * n + b] = gram[b * n + a];
            }
        }
        coeffs = solve(gram, rhs, n)?;
        let mut total = 0.0;
        for (j, row) in basis.chunks_exact(n).enumerate() {
            let fit: f64 = row.iter().zip(&coeffs).map(|(b, c)| b * c).sum();
            weights[j] *= (fit - xs[j]).abs();
            total += weights[j];
        }
        if total <= 0.0 || !total.is_finite() {
            break; // an exact fit (cannot happen for |x|, but never divide by 0)
        }
        weights.iter_mut().for_each(|w| *w /= total);
    }
    let mut row = vec![0.0; n];
    let mut over = f64::NEG_INFINITY;
    for j in 0..=CHECK_POINTS {
        let x = end * j as f64 / CHECK_POINTS as f64;
        even_chebyshev(x, k, &mut row);
        let p: f64 = row.iter().zip(&coeffs).map(|(b, c)| b * c).sum();
        over = over.max(p - x);
    }
    coeffs[0] -= over;
    Ok(coeffs)
}

/// Gaussian elimination with partial pivoting of the `n × n` system `a·x = b`
/// (row-major `a`).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Result<Vec<f64>> {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[pivot * n + col].abs() < 1e-300 || !a[pivot * n + col].is_finite() {
            return Err(TrainError::Config(
                "the relu fit's least-squares system is singular".into(),
            ));
        }
        if pivot != col {
            for j in 0..n {
                a.swap(col * n + j, pivot * n + j);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            if f != 0.0 {
                for j in col..n {
                    a[row * n + j] -= f * a[col * n + j];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|j| a[row * n + j] * x[j]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `relu − r` on a grid finer than the fit's, over `[−1−μ, 1+μ]`: never negative
    /// (beyond rounding) and within the documented bounds; `r` at most `10^-4` below
    /// `min(0, x)`.
    #[test]
    fn relu_fit_stays_below_relu() {
        let mut shorts = Vec::new();
        for (degree, depth, bound) in [(62, 6, 4.6e-3), (126, 7, 2.3e-3)] {
            let r = relu_polynomial(degree).unwrap();
            assert_eq!(r.depth(), depth);
            let (mut short, mut over, mut outside) = (0.0f64, f64::NEG_INFINITY, 0.0f64);
            let end = 1.0 + MARGIN;
            for j in 0..=200_000 {
                let x = end * (-1.0 + 2.0 * f64::from(j) / 200_000.0);
                let (v, relu) = (r.eval(x), x.max(0.0));
                short = short.max(relu - v);
                over = over.max(v - relu);
                outside = outside.max(x.min(0.0) - v);
            }
            eprintln!(
                "degree {degree}: shortfall {short:.3e}, overshoot {over:.3e}, below min {outside:.3e}"
            );
            assert!(short < bound, "degree {degree}: shortfall {short}");
            assert!(over < 1e-9, "degree {degree}: overshoot {over}");
            assert!(
                outside < 1e-4,
                "degree {degree}: below min(0, x) by {outside}"
            );
            shorts.push(short);
        }
        // Twice the degree, about half the error; the cache gives the same polynomial.
        assert!(shorts[1] < shorts[0] / 1.8, "{shorts:?}");
        assert!(Arc::ptr_eq(
            &relu_polynomial(126).unwrap(),
            &relu_polynomial(126).unwrap()
        ));
    }

    /// `x/2 + q(2x² − 1)` is `r(x)`, in one depth less for `q`.
    #[test]
    fn even_part_recomposes_the_polynomial() {
        let r = relu_polynomial(126).unwrap();
        let q = relu_even_part(126).unwrap();
        assert_eq!((q.degree(), q.depth(), round_depth(&q)), (63, 6, r.depth()));
        for j in 0..=2000 {
            let x = -1.0 + f64::from(j) / 1000.0;
            let v = x / 2.0 + q.eval(2.0 * x * x - 1.0);
            assert!(
                (v - r.eval(x)).abs() < 1e-12,
                "x = {x}: {v} vs {}",
                r.eval(x)
            );
        }
    }

    #[test]
    fn relu_degree_is_checked() {
        for d in [0, 1, 63, 256] {
            assert!(relu_polynomial(d).is_err(), "degree {d}");
        }
    }
}
