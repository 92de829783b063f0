//! CKKS bootstrapping: ModRaise → CoeffsToSlots → EvalMod → SlotsToCoeffs
//! (Cheon–Han–Kim–Kim–Song, Eurocrypt 2018; Han–Ki, CT-RSA 2020; Bossuat et al.,
//! Eurocrypt 2021; Lattigo `he/hefloat/bootstrapping`).
//!
//! # The circuit
//! A ciphertext at level 0 decrypts to `m(X) mod q_0`. [`Bootstrapper::mod_raise`] lifts
//! its centred residues to the whole chain `Q_L`, where it decrypts to
//! `t = m + q_0·I(X)` with `|I| < K` (for a sparse ternary secret of Hamming weight `h`,
//! each `I_k` is a sum of `h` terms uniform in `(−½, ½)`, standard deviation `√(h/12)`).
//! With fewer than `N/2` slots the trace over the Galois elements `5^{n·2^i}` then
//! projects `t` onto the slots' subring. [`Bootstrapper::coeffs_to_slots`] evaluates the
//! inverse special FFT ([`super::dft`]) so the slots hold the coefficients
//! `y = t/(q_0 K') ∈ [−1, 1]`, `K' = K + ¼` (bit-reversed; real and imaginary halves in
//! two ciphertexts at full slots, side by side in `2n` slots otherwise). [`Bootstrapper::eval_mod`]
//! evaluates `sin(2πK' y)/2π ≈ (t mod q_0)/q_0 = m/q_0`: the even Chebyshev interpolant of
//! `cos(2πK'u/2^r)` at `u = y − 1/(4K')`, that is `cos(2π(K'y − ¼)/2^r)`, followed by `r`
//! double-angle steps `c ↦ 2c² − 1`.
//! [`Bootstrapper::slots_to_coeffs`] applies the special FFT, with the factor
//! `q_0/(2π Δ_0)` folded into its first matrix, and returns the message at level
//! `L − depth` and that level's canonical scale.
//!
//! # Precision and failure
//! The sine replaces `x mod 1` with a relative error `(2πx)²/6`: for a coefficient of
//! size `c·Δ_0`, `x = c·Δ_0/q_0`, so the ratio `q_0/Δ_0` (2^10 in the N = 2^16 preset)
//! keeps it below `2^-17.3·c²`; coefficients of typical messages are far smaller than the
//! slots (about `2^-8` of them at N = 2^16). EvalMod's own noise reaches the slots
//! multiplied by about `√N·q_0/(2πΔ_0)` (SlotsToCoeffs sums independent coefficient
//! errors), which is why the ratio is not larger. The
//! bootstrapping fails (the output is garbage in some slots) when some `|t/q_0| ≥ K`;
//! [`BootstrappingConfig::failure_log2`] gives that probability.

use super::dft;
use super::linear_transform::{DiagonalStorage, EncodedLinearTransform, LinearTransform};
use super::polynomial::Polynomial;
use crate::ciphertext::Ciphertext;
use crate::error::{CkksError, Result};
use crate::evaluator::Evaluator;
use crate::keys::EvaluationKeyRequest;
use crate::params::{Parameters, SecretDistribution};
use he_math::{Backend, galois};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::sync::Arc;

/// The order of the bootstrapping stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootstrapOrder {
    /// ModRaise → CoeffsToSlots → EvalMod → SlotsToCoeffs (Lattigo, Cheon et al. 2018):
    /// input at level 0, output at `L − depth`.
    #[default]
    CoeffsToSlotsFirst,
    /// SlotsToCoeffs → ModRaise → CoeffsToSlots → EvalMod (OpenFHE's and HEaaN's order,
    /// Chen–Chillotti–Song, Eurocrypt 2019): SlotsToCoeffs runs at the bottom of the
    /// user chain (input at level ≥ `s2c_levels`), on `s2c_levels + 1` limbs at most;
    /// the message is already in the slots after EvalMod, whose output scale carries the
    /// factor `q_0/(2πΔ_0)` (and [`BootstrappingConfig::s2c_shrink_log2`]), so the output
    /// is at `L − cts_levels − eval_mod_depth` at its canonical scale. Full slots only.
    SlotsToCoeffsFirst,
}

/// The shape of the bootstrapping circuit (levels per stage, EvalMod approximation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrappingConfig {
    /// Levels (= merged FFT groups) of CoeffsToSlots.
    pub cts_levels: usize,
    /// Levels of SlotsToCoeffs.
    pub s2c_levels: usize,
    /// EvalMod range: the polynomial is accurate for `|t/q_0| < K`.
    pub k: u32,
    /// Number `r` of double-angle steps.
    pub double_angle: u32,
    /// Degree of the Chebyshev interpolant of the scaled cosine.
    pub sine_degree: usize,
    /// Sparse-secret encapsulation (Bossuat–Troncoso-Pastoriza–Hubaux, ACNS 2022): the
    /// Hamming weight of the ephemeral secret `s'` the level-0 ciphertext is switched to
    /// before ModRaise (and back after it), which shrinks `I` and so `K`. `None`: ModRaise
    /// under the secret key itself.
    pub encapsulation: Option<usize>,
    /// The order of the stages.
    #[serde(default)]
    pub order: BootstrapOrder,
    /// [`BootstrapOrder::SlotsToCoeffsFirst`] only: SlotsToCoeffs multiplies the message
    /// by `2^-k`, and the output's scale gives the factor back. In that order the slot
    /// values themselves become the coefficients EvalMod reduces, so `x = t/q_0` is as
    /// large as `m·Δ_0/q_0` and `sin(2πx)/2π` deviates from `x` by `(2πx)³/6`, a relative
    /// `(2πx)²/6` (2^-17.3 for `|m| = 1` at `q_0/Δ_0 = 2^10`); shrinking by `2^-k` divides
    /// that by `2^2k` and multiplies EvalMod's noise, which this order does not spread
    /// over the `N` coefficients as the other order's SlotsToCoeffs does, by `2^k`.
    /// Ignored in the other order.
    #[serde(default)]
    pub s2c_shrink_log2: u32,
}

impl BootstrappingConfig {
    /// The range `K' = K + ¼` that CoeffsToSlots divides by: its outputs are
    /// `y = t/(q_0 K')`, so the shifted input `u = y − 1/(4K')` of the even EvalMod
    /// polynomial stays in `[−1, 1]` for every `|t/q_0| ≤ K`.
    pub fn eval_mod_range(&self) -> f64 {
        self.k as f64 + 0.25
    }

    /// The EvalMod polynomial: the Chebyshev interpolant on `[−1, 1]` of the even
    /// function `cos(2πK'u/2^r)`, evaluated at `u = y − 1/(4K')`, which is
    /// `cos(2π(K'y − ¼)/2^r)` (Han–Ki, CT-RSA 2020, with the shift of Lattigo's
    /// `circuits/ckks/mod1`). The odd coefficients, zero in exact arithmetic (the nodes
    /// are symmetric), are set to exactly zero, so the evaluator skips them (degree 60:
    /// 14 products and 31 leaf terms; a non-even interpolant of `cos(2π(Ky − ¼)/2^r)`
    /// takes 16 and 61).
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for `K = 0` or degree 0.
    pub fn eval_mod_polynomial(&self) -> Result<Polynomial> {
        if self.k == 0 || self.sine_degree == 0 {
            return Err(CkksError::InvalidValue(
                "EvalMod needs K ≥ 1 and a positive degree".into(),
            ));
        }
        let k = self.eval_mod_range();
        let r = (self.double_angle as f64).exp2();
        let p = Polynomial::chebyshev_interpolant(
            |u| (2.0 * PI * k * u / r).cos(),
            -1.0,
            1.0,
            self.sine_degree,
        )?;
        let even = p
            .coeffs()
            .iter()
            .enumerate()
            .map(|(i, &c)| if i % 2 == 1 { 0.0 } else { c })
            .collect();
        Polynomial::chebyshev(even, -1.0, 1.0)
    }

    /// The level a ciphertext is refreshed from ([`Bootstrapper::input_level`]): 0, or
    /// `s2c_levels` in the [`BootstrapOrder::SlotsToCoeffsFirst`] order.
    pub fn input_level(&self) -> usize {
        match self.order {
            BootstrapOrder::CoeffsToSlotsFirst => 0,
            BootstrapOrder::SlotsToCoeffsFirst => self.s2c_levels,
        }
    }

    /// [`BootstrapOrder::SlotsToCoeffsFirst`]: the factor `g = 2πΔ_0·2^-k/q_0`
    /// ([`Self::s2c_shrink_log2`] = `k`) by which EvalMod's output differs from the
    /// message; that output is read at the scale `Δ_out/g`.
    ///
    /// # Errors
    /// [`CkksError::LevelOutOfRange`] if the chain has no level 0 scale (never for
    /// built parameters).
    pub fn s2c_output_factor(&self, params: &Parameters) -> Result<f64> {
        let shrink = (-f64::from(self.s2c_shrink_log2)).exp2();
        Ok(2.0 * PI * params.scale_at(0)? * shrink / params.q()[0] as f64)
    }

    /// Levels consumed by EvalMod.
    ///
    /// # Errors
    /// As [`Self::eval_mod_polynomial`].
    pub fn eval_mod_depth(&self) -> Result<usize> {
        Ok(self.eval_mod_polynomial()?.depth() + self.double_angle as usize)
    }

    /// Levels consumed by the whole bootstrapping.
    ///
    /// # Errors
    /// As [`Self::eval_mod_polynomial`].
    pub fn depth(&self) -> Result<usize> {
        Ok(self.cts_levels + self.eval_mod_depth()? + self.s2c_levels)
    }

    /// Maximum absolute error of the EvalMod polynomial followed by the double angles
    /// against `sin(2πx)` on `x ∈ [−K, K]` (float64, sampled on a fine grid).
    ///
    /// # Errors
    /// As [`Self::eval_mod_polynomial`].
    pub fn eval_mod_approximation_error(&self) -> Result<f64> {
        let p = self.eval_mod_polynomial()?;
        let k = self.eval_mod_range();
        let steps = 200_000;
        let mut worst = 0.0f64;
        for i in 0..=steps {
            // x = t/q_0 over [−K, K], y = x/K' as CoeffsToSlots delivers it.
            let x = self.k as f64 * (-1.0 + 2.0 * i as f64 / steps as f64);
            let mut c = p.eval(x / k - 0.25 / k);
            for _ in 0..self.double_angle {
                c = 2.0 * c * c - 1.0;
            }
            worst = worst.max((c - (2.0 * PI * x).sin()).abs());
        }
        Ok(worst)
    }

    /// `log2` of the probability that one bootstrapping of a ciphertext with `slots`
    /// slots fails, for the secret distribution of `params` (Bossuat et al., ACNS 2022,
    /// §4; Lattigo reports the same quantity, 2^-138.7 for its h = 32 sets).
    ///
    /// After ModRaise each coefficient decrypts to `t = c_0 + Σ_j ±c_{1,j}` with `h`
    /// non-zero terms of the secret: `t/q_0` is a sum `S` of `h + 1` terms modelled as
    /// independent and uniform in `(−½, ½)`; EvalMod is exact only for `|S| < K`, so a
    /// coefficient fails with probability `P(|S| ≥ K) = 2·F(n/2 − K)`, `F` the
    /// Irwin–Hall CDF of `n = h + 1` terms, computed exactly with big integers for
    /// `n ≤ 1024` (for larger `n`, the sub-Gaussian bound `2·exp(−K²·6/n)`, variance
    /// proxy `1/12` per term). The union bound over the `2·slots` coefficients that
    /// matter gives the result. A uniform ternary secret without encapsulation counts as
    /// `h = N` (an upper bound). `−∞` when `K > n/2` (failure impossible).
    pub fn failure_log2(&self, params: &Parameters, slots: usize) -> f64 {
        let h = match (self.encapsulation, params.literal().secret) {
            (Some(h), _) => h,
            (None, SecretDistribution::SparseTernary { hamming_weight }) => hamming_weight,
            (None, SecretDistribution::UniformTernary) => params.n(),
        };
        let union = ((2 * slots) as f64).log2();
        1.0 + sum_of_uniforms_tail_log2(h + 1, self.k) + union
    }

    /// The rotations (left, in slot units of the full `N/2` group) the bootstrapping of
    /// `slots`-slot ciphertexts performs.
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] unless `slots` is a power of two in `[2, N/2]`.
    pub fn rotations(&self, params: &Parameters, slots: usize) -> Result<Vec<i64>> {
        let (cts, s2c) = self.factors(params, slots)?;
        let mut r: Vec<i64> = cts
            .iter()
            .chain(&s2c)
            .flat_map(LinearTransform::rotations)
            .collect();
        r.extend(trace_rotations(params, slots));
        r.sort_unstable();
        r.dedup();
        Ok(r)
    }

    /// The level at which each CoeffsToSlots matrix and each SlotsToCoeffs matrix is
    /// applied (in the order they are applied), and the output level. CoeffsToSlots
    /// starts at `L`; in the [`BootstrapOrder::CoeffsToSlotsFirst`] order
    /// SlotsToCoeffs starts right below EvalMod, in the other order at `s2c_levels`.
    ///
    /// # Errors
    /// [`CkksError::InvalidParameters`] when the chain is too short for the circuit; as
    /// [`Self::eval_mod_polynomial`].
    pub fn stage_levels(&self, params: &Parameters) -> Result<(Vec<usize>, Vec<usize>, usize)> {
        let top = params.max_level();
        let depth = self.depth()?;
        if top < depth + 1 {
            return Err(CkksError::InvalidParameters(format!(
                "bootstrapping needs {depth} levels above the output, the chain has {top}"
            )));
        }
        let cts: Vec<usize> = (0..self.cts_levels).map(|i| top - i).collect();
        let below_eval_mod = top - self.cts_levels - self.eval_mod_depth()?;
        Ok(match self.order {
            BootstrapOrder::CoeffsToSlotsFirst => {
                let s2c = (0..self.s2c_levels).map(|i| below_eval_mod - i).collect();
                (cts, s2c, below_eval_mod - self.s2c_levels)
            }
            BootstrapOrder::SlotsToCoeffsFirst => {
                if below_eval_mod < self.s2c_levels {
                    return Err(CkksError::InvalidParameters(format!(
                        "SlotsToCoeffs-first bootstrapping lands at level {below_eval_mod}, \
                         below its input level {}",
                        self.s2c_levels
                    )));
                }
                let s2c = (0..self.s2c_levels).map(|i| self.s2c_levels - i).collect();
                (cts, s2c, below_eval_mod)
            }
        })
    }

    /// The evaluation keys the bootstrapping needs, to be merged with the application's
    /// own request ([`EvaluationKeyRequest::merge`]): relinearization, conjugation, the
    /// trace rotations at the top level, and every CoeffsToSlots and SlotsToCoeffs
    /// rotation only up to the highest level where a matrix that uses it runs
    /// ([`EvaluationKeyRequest::rotations_up_to`]). The merged FFT factors of both
    /// transforms share most rotations, so most keys stay at (or near) the top: at
    /// `n16_logqp1755_dense_boot` full slots the 42 keys take 5.67 GB instead of 5.85.
    ///
    /// # Errors
    /// As [`Self::rotations`] and [`Self::stage_levels`].
    pub fn key_request(&self, params: &Parameters, slots: usize) -> Result<EvaluationKeyRequest> {
        let (cts, s2c) = self.factors(params, slots)?;
        let (cts_levels, s2c_levels, _) = self.stage_levels(params)?;
        let mut rotations_up_to = Vec::new();
        for (m, &l) in cts
            .iter()
            .zip(&cts_levels)
            .chain(s2c.iter().zip(&s2c_levels))
        {
            rotations_up_to.extend(m.rotations().into_iter().map(|r| (r, l)));
        }
        rotations_up_to.sort_unstable();
        rotations_up_to.dedup();
        Ok(EvaluationKeyRequest {
            relinearization: true,
            rotations: trace_rotations(params, slots),
            conjugation: true,
            encapsulation: self.encapsulation,
            rotations_up_to,
        })
    }

    /// The CoeffsToSlots and SlotsToCoeffs matrices (before scaling) on the slot count
    /// the circuit works with: `slots` at full slots, `2·slots` otherwise (the real and
    /// imaginary halves side by side).
    fn factors(
        &self,
        params: &Parameters,
        slots: usize,
    ) -> Result<(Vec<LinearTransform>, Vec<LinearTransform>)> {
        let max = params.max_slots();
        if !slots.is_power_of_two() || slots < 2 || slots > max {
            return Err(CkksError::InvalidSlots { slots, max });
        }
        let mut cts = dft::coeffs_to_slots_factors(slots, self.cts_levels)?;
        let mut s2c = dft::slots_to_coeffs_factors(slots, self.s2c_levels)?;
        if slots < max {
            let n2 = 2 * slots;
            cts = cts
                .iter()
                .map(|m| m.lifted(n2))
                .collect::<Result<Vec<_>>>()?;
            s2c = s2c
                .iter()
                .map(|m| m.lifted(n2))
                .collect::<Result<Vec<_>>>()?;
            // Last CtS matrix: rows k ≥ n multiplied by −i, so the 2n slots hold
            // [w; −i·w] and w + conj(w) = [Re w; Im w].
            let rows: Vec<Complex64> = (0..n2)
                .map(|k| {
                    if k < slots {
                        Complex64::new(1.0, 0.0)
                    } else {
                        Complex64::new(0.0, -1.0)
                    }
                })
                .collect();
            let last = cts.len() - 1;
            cts[last] = cts[last].row_scaled(&rows)?;
            // First S2C matrix preceded by the merge y ↦ y_lo + i·y_hi (n-periodic).
            let mut d0 = vec![Complex64::new(1.0, 0.0); n2];
            let mut dn = vec![Complex64::new(0.0, 1.0); n2];
            for k in slots..n2 {
                d0[k] = Complex64::new(0.0, 1.0);
                dn[k] = Complex64::new(1.0, 0.0);
            }
            let merge = LinearTransform::new(n2, [(0, d0), (slots, dn)].into_iter().collect())?;
            s2c[0] = s2c[0].compose(&merge)?;
        }
        Ok((cts, s2c))
    }
}

/// `log2 P(S ≥ k)` for `S` the sum of `n` independent uniforms on `(−½, ½)`: the
/// Irwin–Hall CDF at `n/2 − k`, exact (big-integer alternating sum) for `n ≤ 1024`, the
/// sub-Gaussian (Hoeffding-type) bound `exp(−6k²/n)` above.
fn sum_of_uniforms_tail_log2(n: usize, k: u32) -> f64 {
    use num_bigint::{BigInt, BigUint};
    let k = k as usize;
    if 2 * k >= n {
        return f64::NEG_INFINITY;
    }
    if n > 1024 {
        return -6.0 * (k * k) as f64 / n as f64 * std::f64::consts::LOG2_E;
    }
    // F(x) = (1/n!) Σ_{j ≤ ⌊x⌋} (−1)^j C(n, j) (x − j)^n with x = a/2, a = n − 2k:
    // (x − j)^n = (a − 2j)^n / 2^n.
    let a = (n - 2 * k) as i64;
    let mut sum = BigInt::from(0);
    let mut binom = BigInt::from(1);
    let mut j = 0i64;
    while 2 * j <= a {
        let term = &binom * BigInt::from(a - 2 * j).pow(n as u32);
        if j % 2 == 0 {
            sum += term;
        } else {
            sum -= term;
        }
        binom = binom * BigInt::from(n as i64 - j) / BigInt::from(j + 1);
        j += 1;
    }
    let factorial: BigUint = (1..=n as u64).map(BigUint::from).product();
    let Some(sum) = sum.to_biguint() else {
        return f64::NEG_INFINITY;
    };
    big_log2(&sum) - n as f64 - big_log2(&factorial)
}

/// `log2` of a positive big integer (−∞ for zero).
fn big_log2(x: &num_bigint::BigUint) -> f64 {
    let bits = x.bits();
    if bits == 0 {
        return f64::NEG_INFINITY;
    }
    let shift = bits.saturating_sub(60);
    let top: u64 = (x >> shift).try_into().unwrap_or(u64::MAX);
    (top as f64).log2() + shift as f64
}

/// Rotations of the sparse-slot trace: `n, 2n, …, N/4` (none at full slots).
fn trace_rotations(params: &Parameters, slots: usize) -> Vec<i64> {
    let mut r = Vec::new();
    let mut s = slots;
    while s < params.max_slots() {
        r.push(s as i64);
        s *= 2;
    }
    r
}

/// Timings of one [`Bootstrapper::bootstrap_timed`] call, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// ModRaise (and the sparse-slot trace).
    pub mod_raise: f64,
    /// CoeffsToSlots (with the real/imaginary split).
    pub coeffs_to_slots: f64,
    /// EvalMod (both halves at full slots).
    pub eval_mod: f64,
    /// SlotsToCoeffs (with the recombination).
    pub slots_to_coeffs: f64,
}

/// The server-side bootstrapping of ciphertexts with a fixed slot count: the encoded
/// CoeffsToSlots/SlotsToCoeffs matrices and the EvalMod polynomial. Holds evaluation keys
/// only (through its [`Evaluator`]).
pub struct Bootstrapper<B: Backend> {
    eval: Arc<Evaluator<B>>,
    config: BootstrappingConfig,
    slots: usize,
    /// The slot count the circuit runs on (`slots`, or `2·slots` when sparse).
    work_slots: usize,
    cts: Vec<EncodedLinearTransform<B>>,
    s2c: Vec<EncodedLinearTransform<B>>,
    sine: Polynomial,
    /// Scale label given to the ModRaised ciphertext (see [`Self::mod_raise`]).
    raised_scale: f64,
    /// SlotsToCoeffs-first order: the scale EvalMod's polynomial lands on, chosen so that
    /// after the double angles the output reads `g·m` at the scale `Δ_out/g`, `g` the
    /// factor [`Self::recombine`] gives back. `None`: canonical scales.
    eval_mod_scale: Option<f64>,
    output_level: usize,
    /// The options it was built with ([`Self::options`]).
    options: BootstrapperOptions,
}

impl<B: Backend> std::fmt::Debug for Bootstrapper<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrapper")
            .field("config", &self.config)
            .field("slots", &self.slots)
            .finish()
    }
}

/// The largest failure probability per bootstrap (log2,
/// [`BootstrappingConfig::failure_log2`]) that [`Bootstrapper::new`] accepts.
pub const DEFAULT_MAX_FAILURE_LOG2: f64 = -40.0;

/// Choices of the party that bootstraps, which do not change the result's meaning
/// ([`Bootstrapper::with_options`]); unlike [`BootstrappingConfig`], nothing a client
/// has to agree with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapperOptions {
    /// Largest accepted failure probability per bootstrap, log2
    /// ([`DEFAULT_MAX_FAILURE_LOG2`]).
    pub max_failure_log2: f64,
    /// Where the DFT matrices' diagonals live ([`DiagonalStorage::Auto`], the default:
    /// double hoisting on sparse slots, encoded diagonals on full slots;
    /// [`DiagonalStorage::Extended`]: double hoisting, 1–8 % faster at N = 2^16 with
    /// two threads, not with one, for 3.2 → 4.6 GB of diagonals at full slots;
    /// [`DiagonalStorage::Coefficients`]: 3.2 → 0.17 GB, one NTT per limb and diagonal
    /// each bootstrap; docs/results/bootstrap.md). The matrices work on `2·slots` slots
    /// when `slots < N/2` (the real and imaginary halves side by side), so `Auto`
    /// chooses by that count.
    pub diagonals: DiagonalStorage,
}

impl Default for BootstrapperOptions {
    fn default() -> Self {
        Self {
            max_failure_log2: DEFAULT_MAX_FAILURE_LOG2,
            diagonals: DiagonalStorage::default(),
        }
    }
}

impl<B: Backend> Bootstrapper<B> {
    /// Encodes the bootstrapping circuit for `slots`-slot ciphertexts. The evaluator's
    /// key set must contain [`BootstrappingConfig::key_request`]'s keys (checked when a
    /// key is used). Refuses a circuit whose failure probability per bootstrap exceeds
    /// 2^-40 ([`DEFAULT_MAX_FAILURE_LOG2`]; another bound:
    /// [`Self::with_failure_bound`]).
    ///
    /// # Errors
    /// [`CkksError::InvalidParameters`] if the chain has fewer than `depth + 1` levels
    /// above level 0, `q_0/Δ_0 < 2^8`, or the failure probability is above the bound;
    /// as [`BootstrappingConfig::rotations`].
    pub fn new(eval: Arc<Evaluator<B>>, config: BootstrappingConfig, slots: usize) -> Result<Self> {
        Self::with_failure_bound(eval, config, slots, DEFAULT_MAX_FAILURE_LOG2)
    }

    /// As [`Self::new`] with the largest accepted failure probability per bootstrap
    /// given as `max_failure_log2` (log2; `f64::INFINITY` accepts any).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_failure_bound(
        eval: Arc<Evaluator<B>>,
        config: BootstrappingConfig,
        slots: usize,
        max_failure_log2: f64,
    ) -> Result<Self> {
        Self::with_options(
            eval,
            config,
            slots,
            BootstrapperOptions {
                max_failure_log2,
                ..BootstrapperOptions::default()
            },
        )
    }

    /// As [`Self::new`] with the server-side choices of `options` (failure bound, where
    /// the CoeffsToSlots and SlotsToCoeffs diagonals live).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_options(
        eval: Arc<Evaluator<B>>,
        config: BootstrappingConfig,
        slots: usize,
        options: BootstrapperOptions,
    ) -> Result<Self> {
        let BootstrapperOptions {
            max_failure_log2,
            diagonals,
        } = options;
        let _span = tracing::info_span!("bootstrapper_new", slots).entered();
        let ctx = eval.context().clone();
        let params = ctx.params().clone();
        let failure = config.failure_log2(&params, slots);
        if failure > max_failure_log2 {
            return Err(CkksError::InvalidParameters(format!(
                "failure probability per bootstrap 2^{failure:.1} is above the bound \
                 2^{max_failure_log2:.1} (raise K or use sparse-secret encapsulation)"
            )));
        }
        let (cts_at, s2c_at, output_level) = config.stage_levels(&params)?;
        let q0 = params.q()[0] as f64;
        let delta0 = params.scale_at(0)?;
        if q0 / delta0 < 256.0 {
            return Err(CkksError::InvalidParameters(format!(
                "q_0/Δ_0 = 2^{:.1} is too small for EvalMod (need ≥ 2^8)",
                (q0 / delta0).log2()
            )));
        }
        if let Some(h) = config.encapsulation
            && eval
                .keys()
                .encapsulation_keys()
                .is_none_or(|e| e.hamming_weight() != h)
        {
            return Err(CkksError::MissingEncapsulationKeys(h));
        }
        let (cts_m, s2c_m) = config.factors(&params, slots)?;
        let work_slots = cts_m[0].slots();
        let sparse_factor = (params.max_slots() / slots) as f64;
        // ModRaised slots decode (at this label) to t/(2 q_0 K') after the trace's
        // factor N/2n, so the CtS output y + conj(y) is t/(q_0 K').
        let raised_scale = 2.0 * q0 * config.eval_mod_range() * sparse_factor;
        // Every CoeffsToSlots level outputs at EvalMod's input scale, not at its own
        // level's canonical scale: the message is only `Δ_0/(q_0 K')` of the slot
        // values here, so each rescale's rounding must stay far below the values. With
        // CoeffsToSlots primes smaller than EvalMod's, the canonical scales of the top
        // levels fall towards those primes (2^51 for 50-bit primes under 61-bit EvalMod
        // primes: 3.5 bits of precision lost, docs/results/bootstrap.md); the diagonals'
        // scales `out·q_ℓ/in` absorb the difference.
        let cts_out = params.scale_at(cts_at.last().map_or(0, |&l| l - 1))?;
        let mut scale = raised_scale;
        let mut cts = Vec::new();
        for (m, &level) in cts_m.iter().zip(&cts_at) {
            cts.push(m.encode_with(&ctx, level, scale, cts_out, diagonals)?);
            scale = cts_out;
        }
        let sine = config.eval_mod_polynomial()?;
        let mut s2c = Vec::new();
        let mut eval_mod_scale = None;
        match config.order {
            BootstrapOrder::CoeffsToSlotsFirst => {
                let g = q0 / (2.0 * PI * delta0);
                for (i, (m, &level)) in s2c_m.iter().zip(&s2c_at).enumerate() {
                    let (inp, out) = (params.scale_at(level)?, params.scale_at(level - 1)?);
                    let m = if i == 0 {
                        m.scaled(Complex64::new(g, 0.0))
                    } else {
                        m.clone()
                    };
                    s2c.push(m.encode_with(&ctx, level, inp, out, diagonals)?);
                }
            }
            BootstrapOrder::SlotsToCoeffsFirst => {
                if slots != params.max_slots() {
                    return Err(CkksError::InvalidSlots {
                        slots,
                        max: params.max_slots(),
                    });
                }
                // SlotsToCoeffs at the bottom: levels s … 1, canonical scales; the first
                // matrix shrinks the message by 2^-k.
                let shrink = (-f64::from(config.s2c_shrink_log2)).exp2();
                for (i, (m, &level)) in s2c_m.iter().zip(&s2c_at).enumerate() {
                    let (inp, out) = (params.scale_at(level)?, params.scale_at(level - 1)?);
                    let m = if i == 0 {
                        m.scaled(Complex64::new(shrink, 0.0))
                    } else {
                        m.clone()
                    };
                    s2c.push(m.encode_with(&ctx, level, inp, out, diagonals)?);
                }
                // EvalMod's result reads g·m, g = 2πΔ_0·2^-k/q_0: it must end at the
                // scale Δ_out/g. Each double angle squares and rescales by the prime
                // below it, so its input scale is √(S·q); the polynomial lands there.
                let mut s = params.scale_at(output_level)? / config.s2c_output_factor(&params)?;
                for i in 1..=config.double_angle as usize {
                    s = (s * params.q()[output_level + i] as f64).sqrt();
                }
                eval_mod_scale = Some(s);
            }
        }
        Ok(Self {
            eval,
            config,
            slots,
            work_slots,
            cts,
            s2c,
            sine,
            raised_scale,
            eval_mod_scale,
            output_level,
            options,
        })
    }

    /// The options it was built with ([`Self::with_options`]; [`Self::new`]: the
    /// defaults), as given ([`Self::diagonal_storage`] names the storage `Auto`
    /// resolved to): another bootstrapper of the same party, for another slot count,
    /// is built with them.
    pub fn options(&self) -> BootstrapperOptions {
        self.options
    }

    /// How the CoeffsToSlots and SlotsToCoeffs diagonals are kept
    /// ([`BootstrapperOptions::diagonals`] resolved: never [`DiagonalStorage::Auto`]).
    pub fn diagonal_storage(&self) -> DiagonalStorage {
        let n = self.eval.context().params().n();
        self.options.diagonals.resolve(self.work_slots, n)
    }

    /// Bytes the CoeffsToSlots and SlotsToCoeffs diagonals take in memory.
    pub fn diagonal_bytes(&self) -> usize {
        self.cts
            .iter()
            .chain(&self.s2c)
            .map(EncodedLinearTransform::diagonal_bytes)
            .sum()
    }

    /// The evaluator.
    pub fn context_eval(&self) -> &Arc<Evaluator<B>> {
        &self.eval
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrappingConfig {
        &self.config
    }

    /// The slot count this bootstrapper refreshes.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The level a ciphertext is refreshed from (a higher one is brought down first): 0,
    /// or `s2c_levels` in the [`BootstrapOrder::SlotsToCoeffsFirst`] order. An
    /// application has `output_level − input_level` levels per refresh.
    pub fn input_level(&self) -> usize {
        self.config.input_level()
    }

    /// The level of a refreshed ciphertext: `L − cts_levels − eval_mod_depth`, and
    /// `s2c_levels` below that in the CoeffsToSlots-first order.
    pub fn output_level(&self) -> usize {
        self.output_level
    }

    /// ModRaise: `ct` at level 0 (or any level, then first brought to level 0's canonical
    /// scale) is lifted, centred, to `q_0 … q_L`; with sparse slots the trace over
    /// `5^{n·2^i}` follows. The result decrypts to `t = m + q_0·I` (times `N/2n`) and
    /// carries the scale label `2 q_0 K'·N/2n` (`K'` =
    /// [`BootstrappingConfig::eval_mod_range`]), so its slots read `t`'s slots over
    /// `2 q_0 K'` (the input CoeffsToSlots expects).
    ///
    /// # Errors
    /// [`CkksError::ScaleMismatch`] for a level-0 input not at `Δ_0`;
    /// [`CkksError::SlotsMismatch`] for another slot count; [`CkksError::DegreeTooHigh`].
    pub fn mod_raise(&self, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("mod_raise").entered();
        let ev = &self.eval;
        let ctx = ev.context();
        let params = ctx.params();
        if ct.slots != self.slots {
            return Err(CkksError::SlotsMismatch(ct.slots, self.slots));
        }
        if ct.degree() != 1 {
            return Err(CkksError::DegreeTooHigh(ct.degree()));
        }
        let delta0 = params.scale_at(0)?;
        let ct0 = if ct.level > 0 {
            ev.adjust(ct, 0, delta0)?
        } else {
            ct.clone()
        };
        if ct0.scale != delta0 {
            return Err(CkksError::ScaleMismatch(ct0.scale, delta0));
        }
        let be = ctx.backend();
        let encapsulation = ev.keys().encapsulation_keys();
        let ct0 = match encapsulation {
            Some(e) if self.config.encapsulation.is_some() => {
                // Switch to the sparse s' at level 0 (key over q_0·p_0 only).
                let [k0, k1] = ev.key_switch_over(
                    &ct0.parts[1],
                    0,
                    &e.to_sparse,
                    &params.encapsulation_special_basis(),
                )?;
                let mut c0 = ct0.parts[0].clone();
                be.add_assign(&mut c0, &k0)?;
                Ciphertext {
                    parts: vec![c0, k1],
                    ..ct0
                }
            }
            _ => ct0,
        };
        let top = params.max_level();
        let basis = params.q_basis(top);
        let mut parts = Vec::with_capacity(2);
        for p in &ct0.parts {
            // ModRaise of the level-0 part in the backend (no host round trip).
            let low = be.select_limbs(p, &[0])?;
            parts.push(be.mod_raise(&low, &basis)?);
        }
        if let (Some(e), Some(_)) = (encapsulation, self.config.encapsulation) {
            // Back from s' to s over the whole chain.
            let [k0, k1] = ev.key_switch(&parts[1], top, &e.from_sparse)?;
            be.add_assign(&mut parts[0], &k0)?;
            parts[1] = k1;
        }
        let mut out = Ciphertext {
            parts,
            level: top,
            scale: self.raised_scale,
            slots: self.slots,
        };
        let n = params.n();
        for r in trace_rotations(params, self.slots) {
            let e = galois::galois_element_for_rotation(r, n);
            let rot = ev.automorphism(&out, e, Some(r))?;
            ev.add_assign(&mut out, &rot)?;
        }
        Ok(out)
    }

    /// CoeffsToSlots: the inverse special FFT. Returns the real and the imaginary halves
    /// of the (bit-reversed) coefficient vector over `q_0 K'`, in `[−1, 1]`: two
    /// ciphertexts at full slots, one with `2n` slots (`[Re; Im]`) otherwise. Consumes
    /// `cts_levels` levels.
    ///
    /// # Errors
    /// [`CkksError::LevelMismatch`]/[`CkksError::ScaleMismatch`] unless `ct` comes from
    /// [`Self::mod_raise`]; [`CkksError::MissingGaloisKey`].
    pub fn coeffs_to_slots(&self, ct: &Ciphertext<B>) -> Result<Vec<Ciphertext<B>>> {
        let _span = tracing::debug_span!("coeffs_to_slots").entered();
        let ev = &self.eval;
        let mut x = ct.clone();
        x.slots = self.work_slots;
        for m in &self.cts {
            x = ev.linear_transform(&x, m)?;
        }
        let conj = ev.conjugate(&x)?;
        let re = ev.add(&x, &conj)?;
        if self.work_slots == self.slots {
            // −i·(w − conj w) = 2·Im(w)
            let im = ev.neg(&ev.mul_by_i(&ev.sub(&x, &conj)?)?)?;
            Ok(vec![re, im])
        } else {
            Ok(vec![re])
        }
    }

    /// EvalMod: `sin(2πK' y)` on one output of [`Self::coeffs_to_slots`] (the constant
    /// `−1/(4K')` added, the even polynomial, the double angles), that is
    /// `≈ 2π m/q_0` per coefficient (the factor `q_0/(2πΔ_0)` is applied by
    /// SlotsToCoeffs, or in the other order by the output's scale, which EvalMod then
    /// lands on exactly). Consumes [`BootstrappingConfig::eval_mod_depth`] levels.
    ///
    /// # Errors
    /// Errors of the polynomial evaluation and multiplications.
    pub fn eval_mod(&self, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("eval_mod").entered();
        let ev = &self.eval;
        let params = ev.context().params();
        let shift = -0.25 / self.config.eval_mod_range();
        let x = ev.add_const(ct, shift)?;
        let mut c = match self.eval_mod_scale {
            Some(s) => ev.evaluate_polynomial_to_scale(&x, &self.sine, s)?,
            None => ev.evaluate_polynomial(&x, &self.sine)?,
        };
        for _ in 0..self.config.double_angle {
            let mut sq = ev.mul_relin_rescale(&c, &c)?;
            if self.eval_mod_scale.is_none() {
                // Canonical scales: S_ℓ²/q_ℓ is S_{ℓ−1} up to float rounding.
                sq.scale = params.scale_at(sq.level)?;
            }
            c = ev.mul_integer_owned(sq, 2)?;
            ev.add_const_assign(&mut c, -1.0)?;
        }
        Ok(c)
    }

    /// SlotsToCoeffs: recombines the EvalMod outputs (`re + i·im` at full slots) and
    /// applies the special FFT; the result holds the message at level
    /// [`Self::output_level`] and its canonical scale. Consumes `s2c_levels` levels.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for the wrong number of inputs; level/scale errors as
    /// [`Evaluator::linear_transform`].
    pub fn slots_to_coeffs(&self, parts: &[Ciphertext<B>]) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("slots_to_coeffs").entered();
        let ev = &self.eval;
        if self.config.order == BootstrapOrder::SlotsToCoeffsFirst {
            let [ct] = parts else {
                return Err(CkksError::InvalidValue(format!(
                    "SlotsToCoeffs-first takes one ciphertext, got {}",
                    parts.len()
                )));
            };
            let params = ev.context().params();
            let s = self.config.s2c_levels;
            let mut x = if ct.level == s && ct.scale == params.scale_at(s)? {
                ct.clone()
            } else {
                ev.adjust(ct, s, params.scale_at(s)?)?
            };
            for m in &self.s2c {
                x = ev.linear_transform(&x, m)?;
            }
            return Ok(x);
        }
        let want = if self.work_slots == self.slots { 2 } else { 1 };
        if parts.len() != want {
            return Err(CkksError::InvalidValue(format!(
                "SlotsToCoeffs takes {want} ciphertexts here, got {}",
                parts.len()
            )));
        }
        let mut x = if want == 2 {
            ev.add(&parts[0], &ev.mul_by_i(&parts[1])?)?
        } else {
            parts[0].clone()
        };
        for m in &self.s2c {
            x = ev.linear_transform(&x, m)?;
        }
        x.slots = self.slots;
        Ok(x)
    }

    /// SlotsToCoeffs-first order, last step: `re + i·im` of the EvalMod outputs holds
    /// `g = 2πΔ_0·2^-k/q_0` times the message at the scale `Δ_out/g`
    /// ([`BootstrappingConfig::s2c_shrink_log2`] = `k`), that is the message at the
    /// canonical scale of [`Self::output_level`]: the label is set to it, no level spent.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] unless two halves are given;
    /// [`CkksError::ScaleMismatch`] if they are not at the scale EvalMod lands on.
    pub fn recombine(&self, halves: &[Ciphertext<B>]) -> Result<Ciphertext<B>> {
        let ev = &self.eval;
        let [re, im] = halves else {
            return Err(CkksError::InvalidValue(format!(
                "recombination takes two halves, got {}",
                halves.len()
            )));
        };
        let params = ev.context().params();
        let mut x = ev.add(re, &ev.mul_by_i(im)?)?;
        let want = params.scale_at(self.output_level)?;
        let read = x.scale * self.config.s2c_output_factor(params)?;
        // Equal up to the float rounding of the square roots in `with_options`.
        if x.level != self.output_level || ((read - want) / want).abs() > 1e-9 {
            return Err(CkksError::ScaleMismatch(read, want));
        }
        x.scale = want;
        Ok(x)
    }

    /// The whole bootstrapping: a ciphertext at any level (brought to level 0 first;
    /// in the SlotsToCoeffs-first order, to level `s2c_levels`) refreshed to
    /// [`Self::output_level`].
    ///
    /// # Errors
    /// As the four stages.
    pub fn bootstrap(&self, ct: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        Ok(self.bootstrap_timed(ct)?.0)
    }

    /// [`Self::bootstrap`] with the wall-clock time of each stage.
    ///
    /// # Errors
    /// As [`Self::bootstrap`].
    pub fn bootstrap_timed(&self, ct: &Ciphertext<B>) -> Result<(Ciphertext<B>, StageTimings)> {
        let _span = tracing::info_span!("bootstrap", slots = self.slots).entered();
        fn timed<T>(acc: &mut f64, f: impl FnOnce() -> Result<T>) -> Result<T> {
            let clock = std::time::Instant::now();
            let out = f();
            *acc += clock.elapsed().as_secs_f64();
            out
        }
        let mut t = StageTimings::default();
        let s2c_first = self.config.order == BootstrapOrder::SlotsToCoeffsFirst;
        let coeffs;
        let input = if s2c_first {
            coeffs = timed(&mut t.slots_to_coeffs, || {
                self.slots_to_coeffs(std::slice::from_ref(ct))
            })?;
            &coeffs
        } else {
            ct
        };
        let raised = timed(&mut t.mod_raise, || self.mod_raise(input))?;
        let halves = timed(&mut t.coeffs_to_slots, || self.coeffs_to_slots(&raised))?;
        let reduced = timed(&mut t.eval_mod, || {
            halves
                .iter()
                .map(|h| self.eval_mod(h))
                .collect::<Result<Vec<_>>>()
        })?;
        let out = if s2c_first {
            timed(&mut t.eval_mod, || self.recombine(&reduced))?
        } else {
            timed(&mut t.slots_to_coeffs, || self.slots_to_coeffs(&reduced))?
        };
        self.eval.note(crate::evaluator::Op::Bootstrap, 1);
        Ok((out, t))
    }

    /// The level a two-pass refresh ([`Self::bootstrap_meta`]) leaves: one below
    /// [`Self::output_level`].
    pub fn meta_output_level(&self) -> usize {
        self.output_level.saturating_sub(1)
    }

    /// Two-pass bootstrapping, Meta-BTS (Bae, Cheon, Cho, Kim, Kim, "META-BTS:
    /// Bootstrapping Precision Beyond the Limit", CCS 2022, §3; Lattigo's bootstrapping
    /// `IterationsParameters`): `c_1 = BTS(ct)` carries the first pass's error `e_1`;
    /// `d = c_1 − ct` at the bootstrapper's input level measures it exactly (bringing `c_1`
    /// down is exact up to one rescale's rounding), `2^log_gain·d` is refreshed by a
    /// second pass, whose own error `e_2` is relative to that larger message, and
    /// `c_1 − BTS(2^log_gain·d)·2^-log_gain` leaves `e_2·2^-log_gain` plus the rounding of
    /// the three rescales that bring `c_1` (to the input level for `d`, and to the output
    /// level) and the correction down (under a dense secret at N = 2^16 and Δ = 2^40
    /// that rounding is most of what remains, docs/results/bootstrap.md). Twice the time
    /// of [`Self::bootstrap`], and one level: the result is at
    /// [`Self::meta_output_level`] and its canonical scale.
    ///
    /// `log_gain` must keep `2^log_gain·|e_1|` well inside the message range `[−1, 1]`
    /// the circuit is built for (at N = 2^16 the first pass errs by up to 2^-19.5,
    /// docs/results/bootstrap.md: [`DEFAULT_META_LOG_GAIN`] = 16 leaves 2^-3.5), and
    /// the final rescaling constant `≈ Δ/2^log_gain` at least 2^20 (so at most 20 with
    /// 40-bit scales).
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for `log_gain` outside `1..=20` or an output level
    /// below 1; as [`Self::bootstrap`]; [`CkksError::InvalidValue`] from
    /// [`Evaluator::adjust`] if the gain leaves too coarse a rescaling constant.
    pub fn bootstrap_meta(&self, ct: &Ciphertext<B>, log_gain: u32) -> Result<Ciphertext<B>> {
        Ok(self.bootstrap_meta_timed(ct, log_gain)?.0)
    }

    /// [`Self::bootstrap_meta`] with the stage times of both passes summed.
    ///
    /// # Errors
    /// As [`Self::bootstrap_meta`].
    pub fn bootstrap_meta_timed(
        &self,
        ct: &Ciphertext<B>,
        log_gain: u32,
    ) -> Result<(Ciphertext<B>, StageTimings)> {
        let _span = tracing::info_span!("bootstrap_meta", slots = self.slots, log_gain).entered();
        if !(1..=20).contains(&log_gain) {
            return Err(CkksError::InvalidValue(format!(
                "Meta-BTS gain 2^{log_gain} is outside 2^1 … 2^20"
            )));
        }
        if self.output_level < 1 {
            return Err(CkksError::InvalidValue(
                "Meta-BTS needs a refresh that leaves at least one level".into(),
            ));
        }
        let ev = &self.eval;
        let params = ev.context().params();
        // The input at the level and scale the first pass reads it at.
        let level_in = self.input_level();
        let scale_in = params.scale_at(level_in)?;
        let input = if ct.level == level_in && ct.scale == scale_in {
            ct.clone()
        } else {
            ev.adjust(ct, level_in, scale_in)?
        };
        let (c1, mut t) = self.bootstrap_timed(&input)?;
        // d = c_1 − input: the first pass's error, amplified by 2^log_gain.
        let d = ev.sub(&ev.adjust(&c1, level_in, scale_in)?, &input)?;
        let d = ev.mul_integer_owned(d, 1i64 << log_gain)?;
        let (mut c2, t2) = self.bootstrap_timed(&d)?;
        t.mod_raise += t2.mod_raise;
        t.coeffs_to_slots += t2.coeffs_to_slots;
        t.eval_mod += t2.eval_mod;
        t.slots_to_coeffs += t2.slots_to_coeffs;
        // Read c_2 as e_1 (its scale label times 2^log_gain); both to one level lower.
        c2.scale *= f64::from(1u32 << log_gain);
        let level = self.meta_output_level();
        let scale = params.scale_at(level)?;
        let out = ev.sub(
            &ev.adjust(&c1, level, scale)?,
            &ev.adjust(&c2, level, scale)?,
        )?;
        Ok((out, t))
    }
}

/// A gain (log2) for [`Bootstrapper::bootstrap_meta`] that fits the N = 2^16 presets: the
/// first pass's error there (at most 2^-19.5) times 2^16 stays below 2^-3 (the value of
/// docs/results/bootstrap.md's `bench-bootstrap --meta-log-gain 16` runs).
pub const DEFAULT_META_LOG_GAIN: u32 = 16;

/// Bootstrappable parameter sets: a [`crate::ParametersLiteral`] whose chain has room for
/// the circuit, and the [`BootstrappingConfig`] that fits it.
pub mod presets {
    use super::{BootstrapOrder, BootstrappingConfig};
    use crate::params::{ParametersLiteral, SecretDistribution};
    use crate::security::SecurityLevel;

    /// The EvalMod and DFT shape shared by the presets: CoeffsToSlots and SlotsToCoeffs in
    /// 3 levels each; sparse-secret encapsulation to an ephemeral secret of Hamming weight
    /// 32, so `K = 16` bounds `|I|` (failure probability per full-slot bootstrap at
    /// N = 2^16 about 2^-139, see [`BootstrappingConfig::failure_log2`]); a degree-60
    /// Chebyshev interpolant of the scaled cosine and 2 double-angle steps (EvalMod depth
    /// 8).
    pub fn standard_config() -> BootstrappingConfig {
        BootstrappingConfig {
            cts_levels: 3,
            s2c_levels: 3,
            k: 16,
            double_angle: 2,
            sine_degree: 60,
            encapsulation: Some(32),
            order: BootstrapOrder::CoeffsToSlotsFirst,
            s2c_shrink_log2: 0,
        }
    }

    /// The default bootstrappable N = 2^16 preset: a dense main secret (exactly N/2 = 32768
    /// non-zero ±1 coefficients, as Lattigo's `N16QP1767H32768H32`) with sparse-secret
    /// encapsulation (h = 32) for ModRaise.
    ///
    /// Level budget (what applications plan with): a refreshed ciphertext lands at level
    /// 11 with Δ = 2^40, so **11 usable levels** (multiplications) before the next
    /// bootstrap; bootstrapping takes its input at level 0 (any level is brought there).
    /// [`n16_logqp1732_dense_s2c`] refreshes more precisely, but from level 3;
    /// [`n16_logqp1759_dense_precise`] (Δ = 2^44, one level fewer) meets 2^-24 in two
    /// passes.
    ///
    /// Modulus chain, from level 0 up: `q_0` 50 bits (message ratio `q_0/Δ_0 = 2^10`, see
    /// below); 11 user primes of ≈40 bits; 14 bootstrapping primes, consumed from the
    /// top: CoeffsToSlots 3, EvalMod 8 and SlotsToCoeffs 3 primes, all of 61 bits (the
    /// precision of EvalMod grows by one bit per bit of its primes, see below). Special
    /// primes `p_0` 61 bits then 7 × 50 bits (`log P ≈ 411`), dnum 4 with digits balanced
    /// by bits ([`crate::params::digit_partition`]: the user primes share digits, the
    /// largest digit is 6 bootstrapping primes ≈ 366 bits). `L = 25`,
    /// `log2(QP) ≈ 1755`. All user primes, `q_0` and the special primes but `p_0` are
    /// below 2^50, where the IFMA kernels are fastest.
    ///
    /// It replaced `n16_logqp1695_dense_boot` (`q_0` 52 bits, 9 user primes of 42 bits,
    /// digits of 6 primes): two more levels per refresh at the same message ratio, for
    /// 60 more bits of `Q`.
    ///
    /// The ratio `q_0/Δ_0` trades two errors: the sine's error on large coefficients
    /// (relative `(2π Δ_0/q_0)²/6`, it hits messages with a large constant term) against
    /// the noise of EvalMod's output, which SlotsToCoeffs carries into every slot
    /// multiplied by about `√N·q_0/(2πΔ_0)`. Measured at N = 2^16 with 60-bit EvalMod
    /// primes (`docs/results/bootstrap.md`): 2^10 gives max errors 2^-18.8 (uniform in
    /// [−1, 1]) and 2^-16.9 (constant 1), 2^12 gives 2^-16.7 (uniform); the 61-bit
    /// primes add about one bit.
    ///
    /// Security (checked when the parameters are built, [`crate::security`]): the main
    /// secret has weight N/2, covered by the HE Standard's table, `1755 ≤ 1772`. The
    /// encapsulation key `s → s'` lives over `q_0·p_0` (111 bits), within the 121 bits of
    /// the published h = 32 sets (Bossuat et al., ACNS 2022).
    pub fn n16_logqp1755_dense_boot() -> (ParametersLiteral, BootstrappingConfig) {
        let mut log_q = vec![50];
        log_q.extend([40; 11]);
        let log_q_boot = vec![61; 14];
        let mut log_p = vec![61];
        log_p.extend([50; 7]);
        (
            ParametersLiteral {
                log_n: 16,
                log_q,
                log_q_boot,
                log_p,
                dnum: 4,
                secret: SecretDistribution::SparseTernary {
                    hamming_weight: 1 << 15,
                },
                sigma: 3.2,
                log_scale: 40,
                security: SecurityLevel::Classical128,
            },
            standard_config(),
        )
    }

    /// A bootstrappable N = 2^16 preset, SlotsToCoeffs first: the secret, encapsulation,
    /// special primes and EvalMod/CoeffsToSlots primes of [`n16_logqp1755_dense_boot`],
    /// with SlotsToCoeffs moved to the bottom of the chain
    /// ([`BootstrapOrder::SlotsToCoeffsFirst`], as HEaaN and OpenFHE order it), so the
    /// three 61-bit primes it needed at the top become four more 40-bit user primes.
    /// Full slots only.
    ///
    /// Against the default preset it refreshes about 2 bits more precisely and a little
    /// faster and leaves one more level, but an application runs three levels higher
    /// (everything it will refresh stays at or above level 3): each operation on more
    /// limbs, and from level 8 up on two key-switching digits instead of one. For HETAL's
    /// training step that made the matrix products about 1.5 times as slow, more than
    /// the refresh saved (docs/results/dermamnist.md), so the training keeps the default.
    ///
    /// Level budget (what applications plan with): a refreshed ciphertext lands at level
    /// 15 with Δ = 2^40 and is refreshed again from level 3 (SlotsToCoeffs' input; a
    /// ciphertext above it is brought down first): **12 usable levels** per refresh
    /// (the other order's preset: 11, from level 11 down to 0). Levels 2, 1 and 0 remain
    /// usable for a result that is decrypted rather than refreshed.
    ///
    /// Modulus chain, from level 0 up: `q_0` 50 bits, 15 user primes of ≈40 bits, 11
    /// bootstrapping primes of 61 bits consumed from the top (CoeffsToSlots 3, EvalMod 8);
    /// `p_0` 61 bits then 7 × 50 bits, dnum 4 with digits balanced by bits. `L = 26`,
    /// `log2(QP) ≈ 1732`. SlotsToCoeffs runs on 4, 3 and 2 limbs instead of 15, 14 and 13,
    /// and its diagonals and keys shrink with them.
    ///
    /// Precision: in this order the slot values themselves become the coefficients that
    /// EvalMod reduces, so SlotsToCoeffs shrinks them by `2^-4`
    /// ([`BootstrappingConfig::s2c_shrink_log2`]) to keep the sine's cubic distortion
    /// (2^-25.3 for `|m| = 1`) below the noise; EvalMod's noise reaches each slot once
    /// instead of summed over the N coefficients, which is where the gain over the other
    /// order comes from (docs/results/bootstrap.md).
    ///
    /// Security: as [`n16_logqp1755_dense_boot`] (dense h = N/2 main secret, HE
    /// Standard bound 1772 ≥ log QP; encapsulation key over `q_0·p_0`, 111 bits).
    pub fn n16_logqp1732_dense_s2c() -> (ParametersLiteral, BootstrappingConfig) {
        let (mut lit, cfg) = n16_logqp1755_dense_boot();
        let mut log_q = vec![50];
        log_q.extend([40; 15]);
        lit.log_q = log_q;
        lit.log_q_boot = vec![61; 11];
        (
            lit,
            BootstrappingConfig {
                order: BootstrapOrder::SlotsToCoeffsFirst,
                s2c_shrink_log2: 4,
                ..cfg
            },
        )
    }

    /// A precision-first bootstrappable N = 2^16 preset: the circuit, secret,
    /// encapsulation, special primes and bootstrapping primes of
    /// [`n16_logqp1755_dense_boot`], with the user chain moved to a 44-bit scale: `q_0`
    /// 54 bits (the same message ratio `q_0/Δ_0 = 2^10`) and 10 user primes of ≈44 bits
    /// (the default has `q_0` 50 bits and 11 × 40). Meant to be refreshed in two passes
    /// ([`Bootstrapper::bootstrap_meta`](super::Bootstrapper::bootstrap_meta)).
    ///
    /// Why: a single pass errs by the same ≈ 2^-19.5 on either preset (EvalMod's noise
    /// relative to the message depends on the ratio, not on Δ). A two-pass refresh
    /// removes that error and leaves the rounding of the rescales that bring the result
    /// to its output scale (`√(N(1+h)/12)/Δ` in RMS under the dense secret,
    /// docs/results/bootstrap.md); at Δ = 2^44 that rounding is 16 times smaller against
    /// the message than at 2^40.
    ///
    /// Level budget (what applications plan with): a two-pass refresh lands at level 9
    /// with Δ = 2^44, so **9 usable levels**; a single pass lands at level 10. Input at
    /// level 0. The larger scale leaves `q_0/Δ = 2^10` of headroom at level 0, as the
    /// default preset does.
    ///
    /// Modulus chain, from level 0 up: `q_0` 54 bits, 10 user primes of ≈44 bits, 14
    /// bootstrapping primes of 61 bits (SlotsToCoeffs 3, EvalMod 8, CoeffsToSlots 3);
    /// `p_0` 61 bits then 7 × 50 bits, dnum 4 with digits balanced by bits. `L = 24`,
    /// `log2(QP) ≈ 1759`. `q_0` is above 2^50 and runs on the wide (64-bit) kernels.
    ///
    /// Security: dense h = N/2 main secret, HE Standard bound `1759 ≤ 1772`; the
    /// encapsulation key lives over `q_0·p_0`, 115 bits, within the 121 bits of the
    /// published h = 32 sets (Bossuat et al., ACNS 2022).
    pub fn n16_logqp1759_dense_precise() -> (ParametersLiteral, BootstrappingConfig) {
        let (mut lit, cfg) = n16_logqp1755_dense_boot();
        let mut log_q = vec![54];
        log_q.extend([44; 10]);
        lit.log_q = log_q;
        lit.log_scale = 44;
        (lit, cfg)
    }

    /// The bootstrappable presets by name: the one place that maps the names used on
    /// command lines (`cargo xtask bench-bootstrap --preset NAME`) to parameter sets.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum BootstrapPreset {
        /// `n16`: [`n16_logqp1755_dense_boot`], the default (the training's circuit).
        N16,
        /// `n16-s2c`: [`n16_logqp1732_dense_s2c`], SlotsToCoeffs first, full slots only.
        N16S2c,
        /// `n16-precise`: [`n16_logqp1759_dense_precise`], Δ = 2^44, for two-pass
        /// refreshes.
        N16Precise,
        /// `insecure-n12`: [`insecure_n12_boot`] (tests and smoke runs only).
        InsecureN12,
    }

    impl BootstrapPreset {
        /// Every preset.
        pub const ALL: [Self; 4] = [Self::N16, Self::N16S2c, Self::N16Precise, Self::InsecureN12];

        /// The command-line name.
        pub fn name(self) -> &'static str {
            match self {
                Self::N16 => "n16",
                Self::N16S2c => "n16-s2c",
                Self::N16Precise => "n16-precise",
                Self::InsecureN12 => "insecure-n12",
            }
        }

        /// The parameter set's own name (its function's), as reports print it.
        pub fn id(self) -> &'static str {
            match self {
                Self::N16 => "n16_logqp1755_dense_boot",
                Self::N16S2c => "n16_logqp1732_dense_s2c",
                Self::N16Precise => "n16_logqp1759_dense_precise",
                Self::InsecureN12 => "insecure_n12_boot",
            }
        }

        /// The preset of a command-line name.
        ///
        /// # Errors
        /// [`crate::CkksError::InvalidParameters`] naming the known presets.
        pub fn from_name(name: &str) -> crate::Result<Self> {
            crate::presets::by_name(&Self::ALL, Self::name, name).map_err(|known| {
                crate::CkksError::InvalidParameters(format!(
                    "unknown bootstrapping preset {name:?} ({known})"
                ))
            })
        }

        /// CKKS parameters and bootstrapping circuit.
        pub fn parameters(self) -> (ParametersLiteral, BootstrappingConfig) {
            match self {
                Self::N16 => n16_logqp1755_dense_boot(),
                Self::N16S2c => n16_logqp1732_dense_s2c(),
                Self::N16Precise => n16_logqp1759_dense_precise(),
                Self::InsecureN12 => insecure_n12_boot(),
            }
        }
    }

    /// INSECURE (N = 2^12 with log QP ≈ 1224; tests only): the N = 2^16 preset's circuit
    /// on a small ring, 2 user levels above `q_0`, SlotsToCoeffs and CoeffsToSlots in 2
    /// levels each, same EvalMod, encapsulation and main-secret density (h = N/2).
    pub fn insecure_n12_boot() -> (ParametersLiteral, BootstrappingConfig) {
        let log_q_boot = vec![61; 12];
        (
            ParametersLiteral {
                log_n: 12,
                log_q: vec![52, 42, 42],
                log_q_boot,
                log_p: vec![61; 6],
                dnum: 3,
                secret: SecretDistribution::SparseTernary {
                    hamming_weight: 1 << 11,
                },
                sigma: 3.2,
                log_scale: 42,
                security: SecurityLevel::NotSet,
            },
            BootstrappingConfig {
                cts_levels: 2,
                s2c_levels: 2,
                ..standard_config()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::presets::BootstrapPreset;
    use super::sum_of_uniforms_tail_log2;
    use crate::security::SecurityLevel;

    #[test]
    fn preset_names_round_trip() {
        for p in BootstrapPreset::ALL {
            assert_eq!(BootstrapPreset::from_name(p.name()).unwrap(), p);
            // Secure presets claim 128 bits; the insecure ones are named so.
            let secure = p.parameters().0.security == SecurityLevel::Classical128;
            assert_eq!(secure, !p.name().starts_with("insecure"), "{}", p.name());
            assert_eq!(secure, !p.id().starts_with("insecure"), "{}", p.id());
        }
        let err = BootstrapPreset::from_name("n17").unwrap_err().to_string();
        assert!(err.contains("n16-precise"), "{err}");
    }

    #[test]
    fn irwin_hall_tail() {
        // n = 2: P(U1 + U2 ≥ ½) = P(V ≤ ½) for V ~ IH(2) → (½)²/2 = 1/8.
        assert!((sum_of_uniforms_tail_log2(2, 0) - (-1.0)).abs() < 1e-12); // P(S ≥ 0) = ½
        assert!((sum_of_uniforms_tail_log2(3, 1) - (0.125f64 / 6.0).log2()).abs() < 1e-9);
        // n = 33, k = 16: (½)^33 / 33!.
        let want = -33.0 - (1..=33).map(|i| (i as f64).log2()).sum::<f64>();
        assert!((sum_of_uniforms_tail_log2(33, 16) - want).abs() < 1e-9);
        assert_eq!(sum_of_uniforms_tail_log2(33, 17), f64::NEG_INFINITY);
        // Monotone in k.
        let t: Vec<f64> = (8..17).map(|k| sum_of_uniforms_tail_log2(33, k)).collect();
        assert!(t.windows(2).all(|w| w[1] < w[0]));
    }
}
