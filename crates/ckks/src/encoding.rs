//! Encoder: complex or real slot vectors ↔ [`Plaintext`]s through the canonical embedding
//! ([`crate::embedding`]), with exact integer rounding of the scaled coefficients.
//!
//! Encoding `z ∈ C^n` (`n` a power of two `≤ N/2`) at level `ℓ` and scale Δ: the special
//! inverse FFT gives the real polynomial `m(Y)` of degree `< 2n` with `m(ζ^{5^j}) = z_j`;
//! its coefficients, times Δ and rounded to the nearest integer, are placed at `X^{k·N/2n}`
//! and reduced modulo each `q_i`. A scaled coefficient `v` beyond 2^53 is an integer in
//! `f64` already and is converted exactly (mantissa · 2^exponent, reduced modulo `q_i`),
//! so no precision is lost to an intermediate `i64`/`i128`. Values with
//! `|v| ≥ Q_ℓ/2` would wrap around and are refused.
//!
//! Decoding reconstructs every coefficient's centred value modulo `Q_ℓ` with Garner's
//! algorithm in balanced mixed radix (digits `|v_i| ≤ (q_i−1)/2`, so the represented
//! integer is exactly the centred residue), evaluates it in `f64` (relative error
//! `2^-53`), divides by Δ and applies the special FFT (Lattigo `ckks/encoder.go`).

use crate::ciphertext::Plaintext;
use crate::context::Context;
use crate::error::{CkksError, Result};
use he_math::{Backend, Modulus, Representation, RnsPoly};
use num_complex::Complex64;

/// `dst[k·gap] = v_k mod m` for the integer-valued finite `f64`s `v_k` of `src`, exactly:
/// below `2^62` in magnitude by a rounded floating-point quotient and one correction
/// (`|v − k·q| ≤ q/2 + 1`, in `i64`; a loop the compiler vectorizes), beyond that by
/// [`f64_int_mod`]. What [`Context::plaintext_from_scaled`] does per limb: per coefficient
/// it costs a few instructions where a 128-bit Barrett reduction costs tens.
pub(crate) fn reduce_f64_into(m: &Modulus, src: &[f64], dst: &mut [u64], gap: usize) {
    const FAST: f64 = 4.6e18; // < 2^62
    let q = m.value() as i64;
    let inv = 1.0 / q as f64;
    for (k, &v) in src.iter().enumerate() {
        dst[k * gap] = if v.abs() < FAST {
            let quot = (v * inv).round() as i64;
            let r = (v as i64).wrapping_sub(quot.wrapping_mul(q));
            let r = if r < 0 { r + q } else { r };
            (if r >= q { r - q } else { r }) as u64
        } else {
            f64_int_mod(v, m)
        };
    }
}

/// Residue of the integer-valued finite `f64` `v` modulo `m`, exactly.
pub(crate) fn f64_int_mod(v: f64, m: &Modulus) -> u64 {
    if v.abs() < 9.2e18 {
        return m.reduce_i64(v as i64);
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075; // v = mant · 2^exp, exp ≥ 11 here
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let r = m.mul(m.reduce(mant), m.pow(2, exp as u64));
    if v < 0.0 { m.neg(r) } else { r }
}

impl<B: Backend> Context<B> {
    /// Encodes complex slots at `level` and `scale`; the slot count is `values.len()`.
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] unless the length is a power of two `≤ N/2`;
    /// [`CkksError::LevelOutOfRange`]; [`CkksError::InvalidValue`] for a non-finite or
    /// non-positive scale, a non-finite value, or a scaled coefficient `≥ Q_ℓ/2`.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext<B>> {
        let _span = tracing::trace_span!("encode", level, slots = values.len()).entered();
        let scaled = self.scaled_coefficients(values, level, scale)?;
        self.plaintext_from_scaled(&scaled, level, scale)
    }

    /// The scaled, rounded coefficients `round(Δ·m_k)` (`k < 2n`, `n = values.len()`
    /// slots) that [`Self::encode_complex`] reduces modulo each prime: integers held
    /// exactly in `f64` (the rounding happens there), checked below `Q_ℓ/2`.
    ///
    /// # Errors
    /// As [`Self::encode_complex`].
    pub(crate) fn scaled_coefficients(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Vec<f64>> {
        self.check_level(level)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CkksError::InvalidValue(format!("scale {scale}")));
        }
        if let Some(v) = values
            .iter()
            .find(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(CkksError::InvalidValue(format!("slot value {v}")));
        }
        let emb = self.embedding(values.len())?;
        let coeffs = emb.encode(values)?;
        let limit = (self.params().log_q_at(level) - 1.0).exp2();
        let scaled: Vec<f64> = coeffs.iter().map(|c| (c * scale).round()).collect();
        if let Some(v) = scaled.iter().find(|v| !(v.is_finite() && v.abs() < limit)) {
            return Err(CkksError::InvalidValue(format!(
                "scaled coefficient {v:e} is not below Q_ℓ/2 = 2^{:.1} at level {level}",
                limit.log2()
            )));
        }
        Ok(scaled)
    }

    /// The plaintext of [`Self::scaled_coefficients`]' output (`2n` coefficients for `n`
    /// slots) at `level` and `scale`: residues modulo each prime of the level, NTT form.
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] for a length that is not twice a power of two
    /// `≤ N/2`; backend errors.
    pub(crate) fn plaintext_from_scaled(
        &self,
        scaled: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext<B>> {
        let poly = self.poly_from_scaled(scaled, &self.params().q_basis(level))?;
        Ok(Plaintext {
            poly,
            level,
            scale,
            slots: scaled.len() / 2,
        })
    }

    /// The residues of [`Self::scaled_coefficients`]' output (`2n` coefficients for `n`
    /// slots) modulo each prime of `basis` (moduli-table indices: `Q_ℓ`, or `Q_ℓ ∪ P`
    /// for diagonals that double hoisting multiplies before ModDown), NTT form.
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] for a length that is not twice a power of two
    /// `≤ N/2`; backend errors (an index outside the moduli table).
    pub(crate) fn poly_from_scaled(&self, scaled: &[f64], basis: &[usize]) -> Result<B::Poly> {
        let n = self.params().n();
        let slots = scaled.len() / 2;
        if !slots.is_power_of_two() || 2 * slots > n {
            return Err(CkksError::InvalidSlots { slots, max: n / 2 });
        }
        let gap = n / (2 * slots);
        let ring = self.params().ring();
        let mut poly = RnsPoly::zero(n, basis, Representation::Coeff);
        for (j, &bi) in basis.iter().enumerate() {
            reduce_f64_into(ring.modulus(bi), scaled, poly.limb_mut(j), gap);
        }
        let mut poly = self.backend().upload_owned(poly)?;
        self.backend().forward_ntt(&mut poly)?;
        Ok(poly)
    }

    /// Encodes real slots (imaginary parts zero); see [`Self::encode_complex`].
    ///
    /// # Errors
    /// As [`Self::encode_complex`].
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext<B>> {
        let z: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode_complex(&z, level, scale)
    }

    /// Encodes real slots at `level` with that level's canonical scale
    /// ([`crate::params::Parameters::scale_at`]).
    ///
    /// # Errors
    /// As [`Self::encode_complex`].
    pub fn encode_at_level(&self, values: &[f64], level: usize) -> Result<Plaintext<B>> {
        self.encode(values, level, self.params().scale_at(level)?)
    }

    /// Decodes a plaintext into its complex slots.
    ///
    /// # Errors
    /// Backend errors only (a plaintext built by this crate is always decodable).
    pub fn decode_complex(&self, pt: &Plaintext<B>) -> Result<Vec<Complex64>> {
        let _span = tracing::trace_span!("decode", level = pt.level, slots = pt.slots).entered();
        let coeffs = self.slot_coefficients(pt)?;
        let inv = 1.0 / pt.scale;
        let scaled: Vec<f64> = coeffs.iter().map(|c| c * inv).collect();
        self.embedding(pt.slots)?.decode(&scaled)
    }

    /// Decodes the real parts of a plaintext's slots.
    ///
    /// # Errors
    /// As [`Self::decode_complex`].
    pub fn decode(&self, pt: &Plaintext<B>) -> Result<Vec<f64>> {
        Ok(self.decode_complex(pt)?.iter().map(|z| z.re).collect())
    }
}

impl<B: Backend> Context<B> {
    /// The centred values (integer units, as `f64`) of the `2n` coefficients that carry
    /// a plaintext's `n` slots (every `N/(2n)`-th).
    pub(crate) fn slot_coefficients(&self, pt: &Plaintext<B>) -> Result<Vec<f64>> {
        let mut p = pt.poly.clone();
        self.backend().inverse_ntt(&mut p)?;
        let host = self.backend().download(&p)?;
        let gap = self.params().n() / (2 * pt.slots);
        centered_coefficients_f64(self, &host, gap)
    }
}

/// Centred values (as `f64`) of the coefficients `0, gap, 2·gap, …` of a coefficient-form
/// host polynomial over `q_0 … q_ℓ`, by balanced-digit Garner reconstruction.
fn centered_coefficients_f64<B: Backend>(
    ctx: &Context<B>,
    p: &RnsPoly,
    gap: usize,
) -> Result<Vec<f64>> {
    let ring = ctx.params().ring();
    let basis = p.basis().to_vec();
    let l = basis.len();
    let moduli: Vec<Modulus> = basis.iter().map(|&b| *ring.modulus(b)).collect();
    // inv[i][j] = q_j^{-1} mod q_i (with Shoup companion), j < i.
    let inv: Vec<Vec<(u64, u64)>> = (0..l)
        .map(|i| (0..i).map(|j| ring.inv_mod(basis[i], basis[j])).collect())
        .collect();
    let count = p.n() / gap;
    let mut out = Vec::with_capacity(count);
    let mut digits = vec![0i64; l];
    for k in 0..count {
        let idx = k * gap;
        for i in 0..l {
            let qi = &moduli[i];
            let mut t = p.limb(i)[idx];
            for j in 0..i {
                t = qi.sub(t, qi.reduce_i64(digits[j]));
                t = qi.mul_shoup(t, inv[i][j].0, inv[i][j].1);
            }
            digits[i] = qi.center(t);
        }
        let mut acc = digits[l - 1] as f64;
        for i in (0..l - 1).rev() {
            acc = acc * moduli[i].value() as f64 + digits[i] as f64;
        }
        out.push(acc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_reduction_matches_the_exact_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for bits in [20u32, 40, 50, 52, 59, 61] {
            let m = Modulus::new(he_math::primes::ntt_primes(bits, 1 << 12, 1, &[]).unwrap()[0])
                .unwrap();
            let q = m.value() as f64;
            let mut src: Vec<f64> = (0..4000)
                .map(|i| {
                    let mag = 2f64.powi(rng.random_range(0..63));
                    let v = (rng.random_range(-1.0..1.0) * mag).round();
                    if i % 2 == 0 { v } else { -v }
                })
                .collect();
            // Boundaries: multiples of q and their neighbours, the fast path's limit.
            for k in [-3.0, -1.0, 0.0, 1.0, 2.0, 1e6] {
                for d in [-1.0, 0.0, 1.0] {
                    src.push(k * q + d);
                }
            }
            src.extend([4.6e18, -4.6e18, 4.6e18 - 1024.0, 9.3e18, -9.3e18, 3.0e30]);
            let mut fast = vec![0u64; src.len()];
            reduce_f64_into(&m, &src, &mut fast, 1);
            for (v, f) in src.iter().zip(&fast) {
                assert_eq!(*f, f64_int_mod(*v, &m), "{v:e} mod {}", m.value());
            }
        }
    }

    #[test]
    fn f64_int_mod_is_exact_beyond_2_53() {
        let m = Modulus::new((1u64 << 59) - 55).unwrap();
        let q = num_bigint::BigInt::from(m.value());
        for &v in &[
            3.0e19f64,
            -3.0e19,
            1.5e30,
            -(2f64.powi(100)),
            2f64.powi(53) + 2.0,
            -12345.0,
        ] {
            let big = num_bigint::BigInt::from(v as i128);
            let r = ((big % &q) + &q) % &q;
            assert_eq!(f64_int_mod(v, &m), u64::try_from(r).unwrap(), "v = {v:e}");
        }
    }
}
