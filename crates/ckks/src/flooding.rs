//! Noise flooding of decryptions, against key recovery from decrypted values (Li and
//! Micciancio, "On the security of homomorphic encryption on approximate numbers",
//! Eurocrypt 2021: a CKKS decryption `m + e` together with its ciphertext reveals `e`,
//! hence the secret key).
//!
//! Whoever decrypts a result it will reveal or act on adds fresh Gaussian noise of
//! standard deviation
//!
//! `σ = sqrt(12·τ) · 2^{s/2} · t`
//!
//! to every coefficient of the decrypted polynomial before decoding (Li, Micciancio,
//! Schultz and Sorrell, "Securing approximate homomorphic encryption using differential
//! privacy", Crypto 2022, Corollary 2 as corrected in OpenFHE's
//! `src/pke/examples/CKKS_NOISE_FLOODING.md`; the `NOISE_FLOODING_DECRYPT` mode of
//! OpenFHE's `ckksrns-pke.cpp`), where `s` is the statistical security in bits, `τ` the
//! number of decryptions of related ciphertexts the adversary may see, and `t` the
//! ciphertext's noise estimate.
//!
//! The noise estimate `t` is measured on the decrypted polynomial itself, as OpenFHE's
//! estimator does (`ckkspackedencoding.cpp`; argued accurate by Costache, Curtis, Hales,
//! Murphy, Ogilvie and Player, "On the precision loss in approximate homomorphic
//! encryption", SAC 2023): for a real-valued message the imaginary parts of the slots are
//! noise only; `t` is the largest coefficient of their polynomial `(m(X) − m(X^{-1}))/2`
//! (an infinity norm, more conservative than OpenFHE's standard deviation), at least 1,
//! rounded up to a power of two so that the flooding size reveals only the noise's
//! binary order of magnitude. OpenFHE takes `t` from a separate run under a throwaway
//! key instead; measuring it here costs nothing but is a heuristic: it assumes the real
//! part's noise is no larger than the imaginary part's, true for the circuits of this
//! workspace (real messages, no conjugation-asymmetric operations). **Messages must be
//! real**: a complex message's imaginary part would be taken for noise and discarded.
//!
//! Only the real parts are returned (the imaginary parts, pure noise, are dropped). The
//! price is precision: the flooded slots carry an error of standard deviation about
//! `sqrt(n)·σ/Δ` per slot (`n` slots), `log2(sqrt(12τ)) + s/2` bits above the estimate's
//! (about 16.8 bits for `s = 30`, `τ = 1`, OpenFHE's defaults).

use crate::ciphertext::Plaintext;
use crate::context::Context;
use crate::error::{CkksError, Result};
use he_math::{Backend, Csprng};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

/// The flooding policy: statistical security `s` (bits) against `τ` adversarial
/// decryption queries. The default is OpenFHE's (`s = 30`, `τ = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flooding {
    statistical_security: u32,
    queries: u64,
}

impl Default for Flooding {
    fn default() -> Self {
        Self {
            statistical_security: Self::DEFAULT_STATISTICAL_SECURITY,
            queries: 1,
        }
    }
}

impl Flooding {
    /// OpenFHE's default statistical security, in bits.
    pub const DEFAULT_STATISTICAL_SECURITY: u32 = 30;

    /// The largest statistical security accepted, in bits (beyond it the flooding
    /// exceeds any scale this crate supports).
    pub const MAX_STATISTICAL_SECURITY: u32 = 128;

    /// A policy of `statistical_security` bits against `queries` decryptions.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] unless `1 ≤ statistical_security ≤ 128` and
    /// `1 ≤ queries ≤ 2^40`.
    pub fn new(statistical_security: u32, queries: u64) -> Result<Self> {
        if !(1..=Self::MAX_STATISTICAL_SECURITY).contains(&statistical_security) {
            return Err(CkksError::InvalidValue(format!(
                "flooding statistical security {statistical_security} bits (1 ≤ s ≤ {})",
                Self::MAX_STATISTICAL_SECURITY
            )));
        }
        if !(1..=1u64 << 40).contains(&queries) {
            return Err(CkksError::InvalidValue(format!(
                "flooding against {queries} queries (1 ≤ τ ≤ 2^40)"
            )));
        }
        Ok(Self {
            statistical_security,
            queries,
        })
    }

    /// Statistical security `s`, in bits.
    pub fn statistical_security(&self) -> u32 {
        self.statistical_security
    }

    /// Decryption queries `τ` covered.
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// `log2(σ / t) = log2(sqrt(12τ)) + s/2`, in bits: how far the flooding noise lies
    /// above the noise estimate.
    pub fn log2_factor(&self) -> f64 {
        0.5 * (12.0 * self.queries as f64).log2() + f64::from(self.statistical_security) / 2.0
    }
}

/// What a flooded decoding measured and added (all `log2` values in bits, relative to
/// the message: coefficient units divided by the scale Δ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloodingReport {
    /// `log2(t/Δ)`: the noise estimate (after rounding up to a power of two).
    pub noise_log2: f64,
    /// `log2(σ/Δ)`: the standard deviation added to each coefficient.
    pub flooding_log2: f64,
    /// Standard deviation of the flooding noise in one slot's real part, `sqrt(n)·σ/Δ`
    /// for `n` slots (message units: a slot is a sum of `2n` flooded coefficients).
    pub slot_std: f64,
}

impl FloodingReport {
    /// The worse (larger) of two reports, entry by entry: the summary of decoding
    /// several ciphertexts.
    pub fn max(self, other: Self) -> Self {
        Self {
            noise_log2: self.noise_log2.max(other.noise_log2),
            flooding_log2: self.flooding_log2.max(other.flooding_log2),
            slot_std: self.slot_std.max(other.slot_std),
        }
    }
}

/// A flooded decoding: the real parts of the slots, and what was measured and added.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodedDecoding {
    /// The real parts of the `n` slots, flooded.
    pub values: Vec<f64>,
    /// The noise estimate and the flooding added.
    pub report: FloodingReport,
}

impl<B: Backend> Context<B> {
    /// Decodes a decrypted plaintext with noise flooding (module docs): measures the
    /// noise estimate `t` on the imaginary parts, adds `N(0, σ²)` with
    /// `σ = sqrt(12τ)·2^{s/2}·t` to each of the `2n` coefficients that carry the `n`
    /// slots (fresh CSPRNG), and returns the real parts. Messages must be real.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] if `2^8·σ` would reach `Q_ℓ/4` (the plaintext's level
    /// leaves no room for the flooding: decrypt at a higher level or lower `s`);
    /// backend errors.
    pub fn decode_flooded(
        &self,
        pt: &Plaintext<B>,
        flooding: &Flooding,
    ) -> Result<FloodedDecoding> {
        let _span =
            tracing::trace_span!("decode_flooded", level = pt.level, slots = pt.slots).entered();
        let mut coeffs = self.slot_coefficients(pt)?;
        let emb = self.embedding(pt.slots)?;
        let inv = 1.0 / pt.scale;
        let scaled: Vec<f64> = coeffs.iter().map(|c| c * inv).collect();
        let z = emb.decode(&scaled)?;
        // The polynomial of the imaginary parts, (m(X) − m(X^{-1}))/2, in message units.
        let imag: Vec<Complex64> = z.iter().map(|v| Complex64::new(0.0, v.im)).collect();
        let w = emb.encode(&imag)?;
        let t_raw = w.iter().fold(0f64, |m, v| m.max(v.abs())) * pt.scale;
        let t = t_raw.max(1.0).log2().ceil().exp2();
        let log2_sigma = t.log2() + flooding.log2_factor();
        let log2_q = self.params().log_q_at(pt.level);
        if log2_sigma + 8.0 > log2_q - 2.0 {
            return Err(CkksError::InvalidValue(format!(
                "flooding σ = 2^{log2_sigma:.1} does not fit level {} (Q = 2^{log2_q:.1})",
                pt.level
            )));
        }
        let sigma = log2_sigma.exp2();
        let noise = Csprng::from_entropy().normal(coeffs.len(), sigma)?;
        for (c, e) in coeffs.iter_mut().zip(&noise) {
            *c = (*c + e) * inv;
        }
        let values = emb.decode(&coeffs)?.iter().map(|v| v.re).collect();
        Ok(FloodedDecoding {
            values,
            report: FloodingReport {
                noise_log2: t.log2() - pt.scale.log2(),
                flooding_log2: log2_sigma - pt.scale.log2(),
                slot_std: (pt.slots as f64).sqrt() * sigma * inv,
            },
        })
    }
}
