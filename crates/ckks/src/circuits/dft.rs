//! The homomorphic DFT of CKKS bootstrapping: the special FFT of the canonical embedding
//! (coefficients → slots) and its inverse, factored into `log2 n` sparse butterfly stages
//! and grouped into a few [`LinearTransform`]s, one per level (Cheon–Han–Kim–Kim–Song,
//! SAC 2018 §4; Han–Ki, CT-RSA 2020 §3; Lattigo `ckks/homomorphic_DFT.go`).
//!
//! With `u_k = m_k + i·m_{n+k}` (`k < n`) the slots are `z_j = Σ_k u_k ζ_j^k`,
//! `ζ_j = exp(2πi·5^j/4n)`. The special FFT computes `z = B_n ⋯ B_4 B_2 · R·u` with `R` the
//! bit-reversal permutation and `B_len` the butterflies of span `len/2`:
//! `(a, b) ↦ (a + t_j b, a − t_j b)`, `t_j = exp(2πi·(5^j mod 4·len)/(4·len))`. Each
//! `B_len` has the three diagonals `0, ±len/2`. SlotsToCoeffs applies the stages to a
//! bit-reversed input, CoeffsToSlots their inverses (`(a, b) ↦ ((a+b)/2, (a−b)·t̄_j/2)`)
//! and leaves its output bit-reversed: EvalMod works slot-wise, so the permutation `R`
//! is never evaluated.

use super::linear_transform::LinearTransform;
use crate::error::{CkksError, Result};
use num_complex::Complex64;
use std::collections::BTreeMap;
use std::f64::consts::PI;

fn twiddle(j: usize, len: usize) -> Complex64 {
    let lenq = 4 * len;
    let mut g = 1usize;
    for _ in 0..j {
        g = g * 5 % lenq;
    }
    Complex64::from_polar(1.0, 2.0 * PI * g as f64 / lenq as f64)
}

fn add_to(diags: &mut BTreeMap<usize, Vec<Complex64>>, n: usize, d: usize, k: usize, v: Complex64) {
    diags
        .entry(d % n)
        .or_insert_with(|| vec![Complex64::new(0.0, 0.0); n])[k] += v;
}

/// The butterfly stage `B_len` of the special FFT on `n` slots (`len` a power of two in
/// `2..=n`), or its inverse.
///
/// # Errors
/// [`CkksError::InvalidValue`] for an invalid `len`.
pub fn fft_stage(n: usize, len: usize, inverse: bool) -> Result<LinearTransform> {
    if !n.is_power_of_two() || !len.is_power_of_two() || len < 2 || len > n {
        return Err(CkksError::InvalidValue(format!(
            "FFT stage of span {len} on {n} slots"
        )));
    }
    let h = len / 2;
    let one = Complex64::new(1.0, 0.0);
    let half = Complex64::new(0.5, 0.0);
    let tw: Vec<Complex64> = (0..h).map(|j| twiddle(j, len)).collect();
    let mut diags = BTreeMap::new();
    for start in (0..n).step_by(len) {
        for (j, &t) in tw.iter().enumerate() {
            let (a, b) = (start + j, start + j + h);
            if inverse {
                // x_a = (y_a + y_b)/2, x_b = (y_a − y_b)·conj(t)/2
                add_to(&mut diags, n, 0, a, half);
                add_to(&mut diags, n, h, a, half);
                add_to(&mut diags, n, 0, b, -t.conj() * 0.5);
                add_to(&mut diags, n, n - h, b, t.conj() * 0.5);
            } else {
                // y_a = x_a + t·x_b, y_b = x_a − t·x_b
                add_to(&mut diags, n, 0, a, one);
                add_to(&mut diags, n, h, a, t);
                add_to(&mut diags, n, n - h, b, one);
                add_to(&mut diags, n, 0, b, -t);
            }
        }
    }
    LinearTransform::new(n, diags)
}

/// Splits the `log2 n` stages into `groups` consecutive runs, as even as possible, the
/// longer runs first. Both factorizations give the longer runs to the largest spans: a
/// run of `k` stages has up to `2^(k+1) − 1` diagonals, but the run that holds the span
/// `n/2` only `2^k` (its offsets `±n/2` coincide modulo `n`), so an extra stage costs
/// least there (13 stages in 3 runs: 32 + 31 + 31 diagonals with the 5-stage run at the
/// top, 63 + 31 + 16 with it at the bottom).
fn group_sizes(stages: usize, groups: usize) -> Vec<usize> {
    let g = groups.min(stages).max(1);
    (0..g)
        .map(|i| stages / g + usize::from(i < stages % g))
        .collect()
}

/// SlotsToCoeffs as `groups` transforms, applied in order: their product maps the
/// bit-reversed `u` to the slots `z` (see the module docs). Stages are merged from the
/// smallest span up, the longer runs last (`group_sizes`).
///
/// # Errors
/// [`CkksError::InvalidValue`] unless `n ≥ 2` is a power of two and `groups ≥ 1`.
pub fn slots_to_coeffs_factors(n: usize, groups: usize) -> Result<Vec<LinearTransform>> {
    check(n, groups)?;
    let log_n = n.trailing_zeros() as usize;
    let mut out = Vec::new();
    let mut len = 2;
    for size in group_sizes(log_n, groups).into_iter().rev() {
        let mut m = fft_stage(n, len, false)?;
        len *= 2;
        for _ in 1..size {
            m = fft_stage(n, len, false)?.compose(&m)?;
            len *= 2;
        }
        out.push(m);
    }
    Ok(out)
}

/// CoeffsToSlots as `groups` transforms, applied in order: their product maps the slots
/// `z` to the bit-reversed `u` (the inverse of [`slots_to_coeffs_factors`]'s product).
/// Stages are merged from the largest span down.
///
/// # Errors
/// As [`slots_to_coeffs_factors`].
pub fn coeffs_to_slots_factors(n: usize, groups: usize) -> Result<Vec<LinearTransform>> {
    check(n, groups)?;
    let log_n = n.trailing_zeros() as usize;
    let mut out = Vec::new();
    let mut len = n;
    for size in group_sizes(log_n, groups) {
        let mut m = fft_stage(n, len, true)?;
        len /= 2;
        for _ in 1..size {
            m = fft_stage(n, len, true)?.compose(&m)?;
            len /= 2;
        }
        out.push(m);
    }
    Ok(out)
}

fn check(n: usize, groups: usize) -> Result<()> {
    if !n.is_power_of_two() || n < 2 || groups == 0 {
        return Err(CkksError::InvalidValue(format!(
            "homomorphic DFT on {n} slots in {groups} levels"
        )));
    }
    Ok(())
}

/// The bit-reversal permutation of `v` (length a power of two).
pub fn bit_reverse(v: &[Complex64]) -> Vec<Complex64> {
    let n = v.len();
    let bits = n.trailing_zeros();
    (0..n)
        .map(|i| {
            if n == 1 {
                v[0]
            } else {
                v[i.reverse_bits() >> (usize::BITS - bits)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::CanonicalEmbedding;

    fn err(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
            .log2()
    }

    #[test]
    fn factors_match_the_embedding() {
        for (log_n, groups) in [(1, 1), (3, 2), (6, 3), (8, 3), (9, 4)] {
            let n = 1usize << log_n;
            let emb = CanonicalEmbedding::new(n, n).unwrap();
            let coeffs: Vec<f64> = (0..2 * n)
                .map(|i| ((i * 7919 + 13) % 101) as f64 / 50.0 - 1.0)
                .collect();
            let z = emb.decode(&coeffs).unwrap();
            let u: Vec<Complex64> = (0..n)
                .map(|k| Complex64::new(coeffs[k], coeffs[n + k]))
                .collect();
            let mut x = bit_reverse(&u);
            for m in slots_to_coeffs_factors(n, groups).unwrap() {
                x = m.apply(&x).unwrap();
            }
            assert!(err(&x, &z) < -40.0, "S2C n={n}: 2^{}", err(&x, &z));
            let mut y = z.clone();
            for m in coeffs_to_slots_factors(n, groups).unwrap() {
                y = m.apply(&y).unwrap();
            }
            let want = bit_reverse(&u);
            assert!(err(&y, &want) < -40.0, "CtS n={n}: 2^{}", err(&y, &want));
        }
    }

    #[test]
    fn merged_stages_have_few_diagonals() {
        // 10 stages in runs of 4, 3, 3, the longest at the largest spans: 2^4 diagonals
        // there (the offsets ±n/2 coincide), at most 2^(k+1) − 1 elsewhere.
        let count = |f: Vec<LinearTransform>| -> Vec<usize> {
            f.iter().map(|m| m.diagonals().len()).collect()
        };
        assert_eq!(
            count(coeffs_to_slots_factors(1 << 10, 3).unwrap()),
            [16, 15, 15]
        );
        assert_eq!(
            count(slots_to_coeffs_factors(1 << 10, 3).unwrap()),
            [15, 15, 16]
        );
        // 13 stages: 5 + 4 + 4.
        assert_eq!(
            count(coeffs_to_slots_factors(1 << 13, 3).unwrap()),
            [32, 31, 31]
        );
        assert_eq!(
            count(slots_to_coeffs_factors(1 << 13, 3).unwrap()),
            [31, 31, 32]
        );
    }
}
