//! The Gaussian mechanism that the CryptoTL server may apply, under encryption, to what
//! it returns (Walch et al., "CryptoTL: Private, Efficient and Secure Transfer
//! Learning", 2022, combine their protocol with differential-privacy noise on the
//! returned outputs).
//!
//! Calibration is the *analytic* Gaussian mechanism (Balle and Wang, "Improving the
//! Gaussian Mechanism for Differential Privacy", ICML 2018, Theorem 8): the smallest
//! `σ` with
//! `Φ(Δ/(2σ) − εσ/Δ) − e^ε·Φ(−Δ/(2σ) − εσ/Δ) ≤ δ`, exact for every `ε > 0` (the classic
//! `σ = Δ·√(2 ln(1.25/δ))/ε` of Dwork and Roth holds only for `ε < 1` and is larger).
//!
//! What the guarantee covers is stated with the mechanism's user,
//! [`super::InferenceServer`]: one released output vector is `(ε, δ)`-indistinguishable
//! from any other whose noiseless value lies within L2 distance `Δ`; `k` released
//! vectors compose to `(kε, kδ)` (basic composition). Noise is drawn from a
//! ChaCha20 generator seeded by the operating system, in floating point (a
//! discrete Gaussian, Canonne–Kamath–Steinke 2020, would also close the
//! floating-point attacks of Mironov, CCS 2012; not done).

use crate::error::{Result, TrainError};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Largest `ε` accepted (`e^ε` stays far from overflow).
pub const MAX_EPSILON: f64 = 100.0;

/// A calibrated Gaussian mechanism: add `N(0, σ²)` to every coordinate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaussianMechanism {
    /// Privacy loss bound `ε` (> 0).
    pub epsilon: f64,
    /// Failure probability `δ` (in (0, 1)).
    pub delta: f64,
    /// The L2 sensitivity `Δ` the noise is calibrated to (output units).
    pub l2_sensitivity: f64,
    /// The noise's standard deviation (output units).
    pub sigma: f64,
}

/// `Φ`, the standard normal CDF.
fn normal_cdf(t: f64) -> f64 {
    0.5 * libm::erfc(-t / std::f64::consts::SQRT_2)
}

/// `δ(σ)` of the Gaussian mechanism with sensitivity `sens` at privacy loss `epsilon`
/// (Balle–Wang 2018, Theorem 8); decreasing in `σ`.
pub fn delta_for_sigma(epsilon: f64, sens: f64, sigma: f64) -> f64 {
    let a = sens / (2.0 * sigma);
    let b = epsilon * sigma / sens;
    (normal_cdf(a - b) - epsilon.exp() * normal_cdf(-a - b)).max(0.0)
}

impl GaussianMechanism {
    /// The smallest `σ` (to a relative 1e-12) giving `(epsilon, delta)` for L2
    /// sensitivity `l2_sensitivity`.
    ///
    /// # Errors
    /// [`TrainError::Config`] unless `0 < ε ≤ MAX_EPSILON`, `0 < δ < 1` and
    /// `0 < Δ < ∞`.
    pub fn calibrate(epsilon: f64, delta: f64, l2_sensitivity: f64) -> Result<Self> {
        if !(epsilon > 0.0 && epsilon <= MAX_EPSILON) {
            return Err(TrainError::Config(format!(
                "DP epsilon {epsilon} outside (0, {MAX_EPSILON}]"
            )));
        }
        if !(delta > 0.0 && delta < 1.0) {
            return Err(TrainError::Config(format!(
                "DP delta {delta} outside (0, 1)"
            )));
        }
        if !(l2_sensitivity > 0.0 && l2_sensitivity.is_finite()) {
            return Err(TrainError::Config(format!(
                "L2 sensitivity {l2_sensitivity} is not a positive finite number"
            )));
        }
        // Bracket σ in units of Δ, then bisect in log space.
        let f = |s: f64| delta_for_sigma(epsilon, 1.0, s);
        let (mut lo, mut hi) = (1e-6f64, 1.0f64);
        while f(hi) > delta {
            hi *= 2.0;
            if hi > 1e12 {
                return Err(TrainError::Config(format!(
                    "no σ below 1e12·Δ reaches δ = {delta} at ε = {epsilon}"
                )));
            }
        }
        while f(lo) <= delta {
            lo /= 2.0;
            if lo < 1e-300 {
                break;
            }
        }
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if f(mid) > delta {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi / lo - 1.0 < 1e-12 {
                break;
            }
        }
        Ok(Self {
            epsilon,
            delta,
            l2_sensitivity,
            sigma: hi * l2_sensitivity,
        })
    }

    /// `n` independent draws of `N(0, σ²)`.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                z * self.sigma
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `δ` as the hockey-stick divergence `∫ max(0, p(x) − e^ε q(x)) dx` between
    /// `N(0, σ²)` and `N(Δ, σ²)`, integrated numerically: an independent check of the
    /// closed form.
    fn hockey_stick(epsilon: f64, sens: f64, sigma: f64) -> f64 {
        let pdf = |x: f64, mu: f64| {
            (-(x - mu) * (x - mu) / (2.0 * sigma * sigma)).exp()
                / (sigma * (2.0 * std::f64::consts::PI).sqrt())
        };
        let (a, b) = (-12.0 * sigma, sens + 12.0 * sigma);
        let steps = 400_000;
        let h = (b - a) / steps as f64;
        (0..steps)
            .map(|i| {
                let x = a + (i as f64 + 0.5) * h;
                (pdf(x, 0.0) - epsilon.exp() * pdf(x, sens)).max(0.0) * h
            })
            .sum()
    }

    #[test]
    fn closed_form_matches_the_divergence() {
        for &(eps, sens, sigma) in &[(1.0, 1.0, 3.0), (0.5, 2.0, 4.0), (4.0, 1.0, 0.7)] {
            let closed = delta_for_sigma(eps, sens, sigma);
            let numeric = hockey_stick(eps, sens, sigma);
            assert!(
                (closed - numeric).abs() <= 1e-6 * closed.max(1e-12) + 1e-12,
                "ε {eps}, Δ {sens}, σ {sigma}: {closed:e} vs {numeric:e}"
            );
        }
    }

    #[test]
    fn calibration_is_tight_and_beats_the_classic_bound() {
        for &(eps, delta) in &[(0.5, 1e-5), (1.0, 1e-5), (2.0, 1e-6), (8.0, 1e-5)] {
            let m = GaussianMechanism::calibrate(eps, delta, 3.0).unwrap();
            assert!(delta_for_sigma(eps, 3.0, m.sigma) <= delta * (1.0 + 1e-9));
            assert!(delta_for_sigma(eps, 3.0, m.sigma * 0.999) > delta);
            if eps < 1.0 {
                let classic = 3.0 * (2.0 * (1.25f64 / delta).ln()).sqrt() / eps;
                assert!(m.sigma < classic, "ε {eps}: {} vs {classic}", m.sigma);
            }
        }
        // Balle–Wang's Figure 2 regime: ε = 1, δ = 1e-5 needs σ ≈ 3.73·Δ.
        let m = GaussianMechanism::calibrate(1.0, 1e-5, 1.0).unwrap();
        assert!((m.sigma - 3.73).abs() < 0.01, "{}", m.sigma);
    }

    #[test]
    fn bad_arguments_are_errors() {
        for (e, d, s) in [
            (0.0, 1e-5, 1.0),
            (-1.0, 1e-5, 1.0),
            (f64::NAN, 1e-5, 1.0),
            (1e3, 1e-5, 1.0),
            (1.0, 0.0, 1.0),
            (1.0, 1.0, 1.0),
            (1.0, 1e-5, 0.0),
            (1.0, 1e-5, f64::INFINITY),
        ] {
            assert!(
                GaussianMechanism::calibrate(e, d, s).is_err(),
                "{e} {d} {s}"
            );
        }
    }
}
