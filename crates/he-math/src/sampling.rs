//! Sampling from a cryptographically secure PRNG: uniform residues, ternary secrets and
//! the discrete Gaussian errors of RLWE.
//!
//! The generator is ChaCha20 (`rand_chacha`), seeded from the operating system
//! ([`Csprng::from_entropy`]). A fixed seed ([`Csprng::from_seed`]) is for tests,
//! reproducible benchmarks and seeded compact ciphertexts/keys (where the seed only
//! expands public uniform randomness); never use a fixed seed for secrets.
//! Distributions follow the HE Standard (Albrecht et al., 2018, §2): σ = 3.2 with the
//! tail cut at 6σ, ternary secrets uniform or with fixed Hamming weight `h`.

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

/// Standard deviation of RLWE errors recommended by the HE Standard.
pub const DEFAULT_SIGMA: f64 = 3.2;

/// Tail cut of the discrete Gaussian, in standard deviations.
pub const GAUSSIAN_TAIL_SIGMAS: f64 = 6.0;

/// A ChaCha20 CSPRNG.
pub struct Csprng(ChaCha20Rng);

impl std::fmt::Debug for Csprng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csprng(ChaCha20, state hidden)")
    }
}

impl Csprng {
    /// A generator seeded from the operating system's entropy source.
    pub fn from_entropy() -> Self {
        Self(ChaCha20Rng::from_os_rng())
    }

    /// A generator with a fixed 32-byte seed: deterministic output. For tests and for
    /// expanding public seeds only.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// 32 fresh random bytes (e.g. a public seed for the uniform part of a ciphertext).
    pub fn seed_bytes(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.0.fill_bytes(&mut s);
        s
    }

    /// A uniform 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Fills `out` with residues uniform in `[0, q)`, without bias (rejection sampling on
    /// the smallest power-of-two range above `q`).
    pub fn uniform_mod(&mut self, m: &Modulus, out: &mut [u64]) {
        let q = m.value();
        let mask = u64::MAX >> (q - 1).leading_zeros();
        for o in out.iter_mut() {
            *o = loop {
                let x = self.0.next_u64() & mask;
                if x < q {
                    break x;
                }
            };
        }
    }

    /// A uniform integer in `[0, bound)`, without bias.
    fn below(&mut self, bound: u64) -> u64 {
        self.0.random_range(0..bound)
    }

    /// `n` coefficients uniform in `{-1, 0, 1}`.
    pub fn ternary_uniform(&mut self, n: usize) -> Zeroizing<Vec<i64>> {
        Zeroizing::new((0..n).map(|_| self.below(3) as i64 - 1).collect())
    }

    /// `n` ternary coefficients with exactly `h` non-zero entries, each ±1 with equal
    /// probability, at uniformly random positions (partial Fisher–Yates shuffle).
    ///
    /// # Errors
    /// [`MathError::InvalidArgument`] if `h > n`.
    pub fn ternary_hamming(&mut self, n: usize, h: usize) -> Result<Zeroizing<Vec<i64>>> {
        if h > n {
            return Err(MathError::InvalidArgument(format!(
                "Hamming weight {h} exceeds length {n}"
            )));
        }
        let mut idx: Zeroizing<Vec<usize>> = Zeroizing::new((0..n).collect());
        let mut out = Zeroizing::new(vec![0i64; n]);
        for i in 0..h {
            let j = i + self.below((n - i) as u64) as usize;
            idx.swap(i, j);
            out[idx[i]] = if self.0.next_u32() & 1 == 0 { 1 } else { -1 };
        }
        Ok(out)
    }

    /// `n` samples of the discrete Gaussian of standard deviation `sigma` centred at 0,
    /// cut at `±ceil(6σ)`, by rejection sampling (accept `x` with probability
    /// `exp(-x²/2σ²)`).
    ///
    /// # Errors
    /// [`MathError::InvalidArgument`] unless `0 < sigma ≤ 2^20`.
    pub fn gaussian(&mut self, n: usize, sigma: f64) -> Result<Vec<i64>> {
        if !(sigma > 0.0 && sigma <= (1u64 << 20) as f64) {
            return Err(MathError::InvalidArgument(format!(
                "Gaussian σ = {sigma} out of range"
            )));
        }
        let bound = (GAUSSIAN_TAIL_SIGMAS * sigma).ceil() as i64;
        let denom = 2.0 * sigma * sigma;
        Ok((0..n)
            .map(|_| {
                loop {
                    let x = self.below(2 * bound as u64 + 1) as i64 - bound;
                    let u = (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                    if u < (-((x * x) as f64) / denom).exp() {
                        break x;
                    }
                }
            })
            .collect())
    }

    /// `n` samples of the continuous Gaussian `N(0, sigma²)` as `f64` (Box–Muller on
    /// 53-bit uniforms from the CSPRNG). For noise flooding of decrypted values
    /// (`ckks::flooding`), where `sigma` is far beyond [`Self::gaussian`]'s range and the
    /// output is real-valued anyway.
    ///
    /// # Errors
    /// [`MathError::InvalidArgument`] unless `sigma` is finite and `> 0`.
    pub fn normal(&mut self, n: usize, sigma: f64) -> Result<Vec<f64>> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(MathError::InvalidArgument(format!(
                "normal σ = {sigma} out of range"
            )));
        }
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // u1 ∈ (0, 1] so that ln(u1) is finite; u2 ∈ [0, 1).
            let u1 = ((self.0.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
            let u2 = (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let r = sigma * (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            out.push(r * c);
            out.push(r * s);
        }
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic() {
        let mut a = Csprng::from_seed([7; 32]);
        let mut b = Csprng::from_seed([7; 32]);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut c = Csprng::from_entropy();
        let mut d = Csprng::from_entropy();
        assert_ne!(c.seed_bytes(), d.seed_bytes());
    }

    #[test]
    fn uniform_is_in_range_and_unbiased() {
        let m = Modulus::new(12_289).unwrap();
        let mut r = Csprng::from_seed([1; 32]);
        let mut v = vec![0u64; 1 << 16];
        r.uniform_mod(&m, &mut v);
        assert!(v.iter().all(|&x| x < 12_289));
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        // mean of U[0,q) is (q-1)/2, std of the mean ≈ q/sqrt(12·2^16) ≈ 13.9
        assert!((mean - 6144.0).abs() < 80.0, "mean {mean}");
    }

    #[test]
    fn normal_has_its_moments() {
        let mut r = Csprng::from_seed([3; 32]);
        let sigma = 2f64.powi(40);
        let v = r.normal(100_001, sigma).unwrap();
        assert_eq!(v.len(), 100_001);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        // std of the mean σ/316; of the variance estimate ≈ σ²·sqrt(2/n) ≈ 0.45 %.
        assert!(mean.abs() < 5.0 * sigma / 316.0, "mean {mean:e}");
        assert!(
            (var.sqrt() / sigma - 1.0).abs() < 0.015,
            "std {:e}",
            var.sqrt()
        );
        let tail = v.iter().filter(|x| x.abs() > 3.0 * sigma).count() as f64 / v.len() as f64;
        assert!((tail - 0.0027).abs() < 0.001, "P(|x| > 3σ) = {tail}");
        assert!(r.normal(4, 0.0).is_err());
        assert!(r.normal(4, f64::NAN).is_err());
        assert!(r.normal(4, f64::INFINITY).is_err());
    }

    #[test]
    fn ternary_hamming_weight() {
        let mut r = Csprng::from_seed([2; 32]);
        let s = r.ternary_hamming(1 << 12, 192).unwrap();
        assert_eq!(s.iter().filter(|&&x| x != 0).count(), 192);
        assert!(s.iter().all(|&x| (-1..=1).contains(&x)));
        let plus = s.iter().filter(|&&x| x == 1).count();
        assert!((50..=142).contains(&plus));
        assert!(r.ternary_hamming(10, 11).is_err());
        let u = r.ternary_uniform(30_000);
        for v in -1..=1 {
            let c = u.iter().filter(|&&x| x == v).count();
            assert!((9_400..=10_600).contains(&c), "{v}: {c}");
        }
    }

    #[test]
    fn gaussian_moments_and_tail() {
        let mut r = Csprng::from_seed([3; 32]);
        let g = r.gaussian(1 << 17, DEFAULT_SIGMA).unwrap();
        let n = g.len() as f64;
        let mean = g.iter().sum::<i64>() as f64 / n;
        let var = g.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(
            (var.sqrt() - DEFAULT_SIGMA).abs() < 0.05,
            "sigma {}",
            var.sqrt()
        );
        assert!(g.iter().all(|&x| x.abs() <= 20));
        assert!(r.gaussian(4, 0.0).is_err());
    }
}
