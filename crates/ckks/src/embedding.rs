//! The CKKS canonical embedding restricted to the orbit of 5: the map between a real
//! polynomial `m(Y) ∈ R[Y]/(Y^{2n} + 1)` and its `n` complex slots
//! `z_j = m(ζ^{5^j})`, `ζ = exp(2πi / 4n)`, `j = 0 … n−1`.
//!
//! With full slots `n = N/2` and `Y = X`; with sparse slots (`n < N/2`) the message lives
//! in the subring `Y = X^{N/2n}` (Cheon–Han–Kim–Kim–Song, Eurocrypt 2018, §4.2). The other
//! `n` roots `ζ^{−5^j}` carry the conjugates, so a real `m` is determined by `z`.
//!
//! # Algorithm
//! Writing `u_k = m_k + i·m_{n+k}` (`k < n`), and using `ζ^{n·5^j} = i` (as `5^j ≡ 1 mod 4`),
//! `z_j = Σ_k u_k ζ^{k·5^j}`. With the twist `w_k = u_k ζ^k` this is
//! `z_j = Σ_k w_k ω^{k·(5^j − 1)/4}`, `ω = ζ^4 = exp(2πi/n)`: a standard size-`n` DFT read at
//! index `(5^j − 1)/4 mod n`, a bijection of `{0 … n−1}` since the `n` values `5^j mod 4n`
//! are exactly the residues `≡ 1 mod 4`. Decoding is therefore twist → radix-2 FFT →
//! permutation, and encoding the exact inverse, `O(n log n)` either way. This is the
//! "special FFT" of the CKKS papers (Lattigo `ckks/encoder.go`, `SpecialFFT`), factored
//! through an ordinary FFT.

use crate::error::{CkksError, Result};
use num_complex::Complex64;
use std::f64::consts::PI;

/// Precomputed tables of the canonical embedding for `n` slots.
#[derive(Debug, Clone)]
pub struct CanonicalEmbedding {
    slots: usize,
    /// `ζ^k`, `k < n`.
    twist: Vec<Complex64>,
    /// `exp(−2πi·k/n)`, `k < n/2` (forward FFT roots).
    roots: Vec<Complex64>,
    /// `perm[j] = (5^j − 1)/4 mod n`.
    perm: Vec<usize>,
}

impl CanonicalEmbedding {
    /// Tables for `slots` slots (a power of two, at most `max_slots` = N/2).
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] otherwise.
    pub fn new(slots: usize, max_slots: usize) -> Result<Self> {
        if !slots.is_power_of_two() || slots > max_slots {
            return Err(CkksError::InvalidSlots {
                slots,
                max: max_slots,
            });
        }
        let m = 4 * slots;
        let twist = (0..slots)
            .map(|k| Complex64::from_polar(1.0, 2.0 * PI * k as f64 / m as f64))
            .collect();
        let roots = (0..slots / 2)
            .map(|k| Complex64::from_polar(1.0, -2.0 * PI * k as f64 / slots as f64))
            .collect();
        let mut perm = Vec::with_capacity(slots);
        let mut g = 1usize;
        for _ in 0..slots {
            perm.push(((g - 1) / 4) % slots);
            g = g * 5 % m;
        }
        Ok(Self {
            slots,
            twist,
            roots,
            perm,
        })
    }

    /// Number of slots `n`.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slots of a real polynomial: `coeffs` has `2n` entries `m_0 … m_{2n−1}` (the
    /// coefficients of `Y^k`); returns `z_j = m(ζ^{5^j})`.
    ///
    /// # Errors
    /// [`CkksError::LengthMismatch`] unless `coeffs.len() == 2n`.
    pub fn decode(&self, coeffs: &[f64]) -> Result<Vec<Complex64>> {
        let n = self.slots;
        if coeffs.len() != 2 * n {
            return Err(CkksError::LengthMismatch {
                expected: 2 * n,
                got: coeffs.len(),
            });
        }
        let mut w: Vec<Complex64> = (0..n)
            .map(|k| Complex64::new(coeffs[k], coeffs[n + k]) * self.twist[k])
            .collect();
        // The DFT here is Σ_k w_k ω^{+k t}: conjugate in, conjugate out around the
        // forward (ω^{−kt}) FFT.
        w.iter_mut().for_each(|x| *x = x.conj());
        self.fft(&mut w);
        Ok(self.perm.iter().map(|&t| w[t].conj()).collect())
    }

    /// The real polynomial (its `2n` coefficients) whose slots are `slots`; exact inverse
    /// of [`Self::decode`] up to floating-point rounding.
    ///
    /// # Errors
    /// [`CkksError::LengthMismatch`] unless `slots.len() == n`.
    pub fn encode(&self, slots: &[Complex64]) -> Result<Vec<f64>> {
        let n = self.slots;
        if slots.len() != n {
            return Err(CkksError::LengthMismatch {
                expected: n,
                got: slots.len(),
            });
        }
        // Inverse of w ↦ Σ_k w_k ω^{kt}: w_k = (1/n) Σ_t W_t ω^{−kt}, a forward FFT.
        let mut big_w = vec![Complex64::new(0.0, 0.0); n];
        for (j, &t) in self.perm.iter().enumerate() {
            big_w[t] = slots[j];
        }
        self.fft(&mut big_w);
        let scale = 1.0 / n as f64;
        let mut out = vec![0.0; 2 * n];
        for k in 0..n {
            let u = big_w[k] * scale * self.twist[k].conj();
            out[k] = u.re;
            out[n + k] = u.im;
        }
        Ok(out)
    }

    /// In-place radix-2 decimation-in-time FFT, `X_t = Σ_k x_k exp(−2πi·kt/n)`.
    fn fft(&self, a: &mut [Complex64]) {
        let n = a.len();
        if n <= 1 {
            return;
        }
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if i < j {
                a.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..len / 2 {
                    let w = self.roots[k * step];
                    let u = a[start + k];
                    let v = a[start + k + len / 2] * w;
                    a[start + k] = u + v;
                    a[start + k + len / 2] = u - v;
                }
            }
            len <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct O(n²) evaluation of m(ζ^{5^j}).
    fn naive_decode(coeffs: &[f64], n: usize) -> Vec<Complex64> {
        let m = 4 * n;
        let mut g = 1usize;
        (0..n)
            .map(|_| {
                let root = g;
                g = g * 5 % m;
                coeffs
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| {
                        Complex64::from_polar(c, 2.0 * PI * ((k * root) % m) as f64 / m as f64)
                    })
                    .sum()
            })
            .collect()
    }

    fn log2_max_err(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
            .log2()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn matches_direct_evaluation_and_round_trips(log_n in 0u32..10, seed in any::<u64>()) {
            let n = 1usize << log_n;
            let emb = CanonicalEmbedding::new(n, 1 << 15).unwrap();
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0 };
            let coeffs: Vec<f64> = (0..2 * n).map(|_| next()).collect();
            let fast = emb.decode(&coeffs).unwrap();
            let slow = naive_decode(&coeffs, n);
            // float64 reference: the two agree to about 2^-40 at these sizes
            prop_assert!(log2_max_err(&fast, &slow) < -40.0);
            let back = emb.encode(&fast).unwrap();
            let err = back.iter().zip(&coeffs).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            prop_assert!(err < 2f64.powi(-45), "round trip error 2^{}", err.log2());
            // encode then decode returns the slots
            let z: Vec<Complex64> = (0..n).map(|_| Complex64::new(next(), next())).collect();
            let z2 = emb.decode(&emb.encode(&z).unwrap()).unwrap();
            prop_assert!(log2_max_err(&z, &z2) < -45.0);
        }
    }

    #[test]
    fn real_slots_give_conjugation_symmetry() {
        // A polynomial with real slots is invariant under Y -> Y^{-1} (conjugation).
        let emb = CanonicalEmbedding::new(8, 8).unwrap();
        let z: Vec<Complex64> = (0..8)
            .map(|j| Complex64::new(j as f64 - 3.5, 0.0))
            .collect();
        let m = emb.encode(&z).unwrap();
        // m(Y^{-1}) = m_0 − Σ_{k≥1} m_k Y^{2n−k}: so m_{2n−k} = −m_k for real slots.
        for k in 1..16 {
            assert!((m[16 - k] + m[k]).abs() < 1e-12, "k = {k}");
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            CanonicalEmbedding::new(3, 8),
            Err(CkksError::InvalidSlots { .. })
        ));
        assert!(matches!(
            CanonicalEmbedding::new(16, 8),
            Err(CkksError::InvalidSlots { .. })
        ));
        let emb = CanonicalEmbedding::new(4, 8).unwrap();
        assert!(matches!(
            emb.decode(&[0.0; 7]),
            Err(CkksError::LengthMismatch { .. })
        ));
        assert!(matches!(
            emb.encode(&[Complex64::new(0.0, 0.0); 3]),
            Err(CkksError::LengthMismatch { .. })
        ));
    }
}
