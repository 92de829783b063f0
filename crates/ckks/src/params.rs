//! CKKS parameters: a plain serialisable [`ParametersLiteral`] validated into
//! [`Parameters`] (primes generated, ring context built, canonical scales computed).
//!
//! Layout of the RNS moduli table of the ring context (indices used as bases by the
//! `Backend`): `q_0, q_1, …, q_U` (the *user chain*: base prime then scaling primes),
//! `q_{U+1}, …, q_L` (primes reserved for bootstrapping, consumed by CoeffsToSlots,
//! EvalMod and SlotsToCoeffs before a refreshed ciphertext lands at level `U`), then the
//! special primes `p_0, …, p_{k−1}` of hybrid key switching (Han–Ki, CT-RSA 2020). A
//! ciphertext at level `ℓ` lives over `q_0 … q_ℓ`.
//!
//! Key-switching digits: the `L + 1` primes of `Q` are cut into at most `dnum`
//! consecutive groups whose largest product is as small as possible (balanced by bits,
//! [`digit_partition`]). With primes of one size this is Lattigo's cut into groups of
//! `α = ⌈(L+1)/dnum⌉` primes (`rlwe/params.go`, `BaseRNSDecompositionVectorSize`); with
//! short user primes below long bootstrapping primes a digit holds more of the short
//! ones, so `P` only has to exceed the bits of the largest digit.

use crate::error::{CkksError, Result};
pub use crate::security::{SecurityLevel, he_standard_max_log_qp_128};
use he_math::RingContext;
use he_math::primes::{Direction, PrimeGenerator};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Distribution of the secret key's coefficients. Each has its own security bound
/// ([`crate::security::max_log_qp_128`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretDistribution {
    /// Coefficients uniform in `{−1, 0, 1}` (the HE Standard's assumption).
    UniformTernary,
    /// Exactly `hamming_weight` coefficients in `{−1, 1}`, the others zero: a dense
    /// fixed-weight secret for `h = N/2` (Lattigo's `H32768` sets), a sparse one for small
    /// `h` (HEaaN's FGb with `h = 192`).
    SparseTernary {
        /// Number of non-zero coefficients.
        hamming_weight: usize,
    },
}

/// The parameters as a plain literal: what a user writes or stores.
///
/// Validated into [`Parameters`] by [`Parameters::new`]. Bit sizes name the prime
/// sizes; the primes themselves are generated deterministically from them (so a literal
/// always yields the same primes): scaling primes whose size equals `log_scale` alternate
/// just below and just above `2^log_scale` (keeping `q_ℓ/Δ` close to 1), every other
/// prime is the largest unused NTT-friendly prime of its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParametersLiteral {
    /// `log2 N`, the ring degree (10 ..= 17).
    pub log_n: u32,
    /// Bit sizes of the user chain `q_0, q_1, …` (base prime first), 20 ..= 61 bits each.
    pub log_q: Vec<u32>,
    /// Bit sizes of the primes reserved for bootstrapping, on top of the user chain
    /// (empty for a preset without bootstrapping).
    pub log_q_boot: Vec<u32>,
    /// Bit sizes of the special primes `P` of hybrid key switching.
    pub log_p: Vec<u32>,
    /// Number of key-switching digits (gadget rank), `1 ..= L+1`.
    pub dnum: usize,
    /// Secret-key distribution.
    pub secret: SecretDistribution,
    /// Standard deviation of the discrete Gaussian error (3.2 in the HE Standard).
    pub sigma: f64,
    /// `log2 Δ`: the default scale at the top of the user chain.
    pub log_scale: u32,
    /// The security asked for: [`SecurityLevel::Classical128`] (the default when absent
    /// from serialized bytes) makes [`Parameters::new`] refuse parameters beyond their
    /// secret's bound; [`SecurityLevel::NotSet`] is for the `insecure_*` test presets.
    #[serde(default)]
    pub security: SecurityLevel,
}

/// Validated CKKS parameters with their primes and ring context.
#[derive(Debug)]
pub struct Parameters {
    literal: ParametersLiteral,
    ring: Arc<RingContext>,
    q: Vec<u64>,
    p: Vec<u64>,
    max_user_level: usize,
    /// First prime index of each key-switching digit.
    digit_starts: Vec<usize>,
    scales: Vec<f64>,
}

fn invalid(msg: impl Into<String>) -> CkksError {
    CkksError::InvalidParameters(msg.into())
}

impl Parameters {
    /// Validates a literal, generates its primes and builds the ring context.
    ///
    /// # Errors
    /// [`CkksError::InvalidParameters`] with the reason: `log_n` outside 10..=17, an empty
    /// chain or special basis, a prime size outside 20..=61 bits, `dnum` outside
    /// `1..=L+1`, `P` smaller than the largest digit (key-switching noise would swamp the
    /// message), `σ` not in `(0, 2^20]`, a Hamming weight outside `1..=N`, or
    /// `log_scale` outside `10..log q_0`; [`CkksError::Math`] if not enough primes exist;
    /// [`CkksError::InsecureParameters`] when the literal asks for
    /// [`SecurityLevel::Classical128`] and `log2(QP)` exceeds the bound of its secret
    /// distribution, or that distribution has no published bound
    /// ([`crate::security::check_128`]).
    pub fn new(literal: ParametersLiteral) -> Result<Self> {
        let l = &literal;
        if !(10..=17).contains(&l.log_n) {
            return Err(invalid(format!("log_n = {} is not in 10..=17", l.log_n)));
        }
        let n = 1usize << l.log_n;
        if l.log_q.is_empty() {
            return Err(invalid("the modulus chain log_q is empty"));
        }
        if l.log_p.is_empty() {
            return Err(invalid(
                "no special primes: hybrid key switching needs at least one",
            ));
        }
        for &b in l.log_q.iter().chain(&l.log_q_boot).chain(&l.log_p) {
            if !(20..=61).contains(&b) {
                return Err(invalid(format!("prime size {b} bits is not in 20..=61")));
            }
        }
        let num_q = l.log_q.len() + l.log_q_boot.len();
        if l.dnum == 0 || l.dnum > num_q {
            return Err(invalid(format!(
                "dnum = {} is not in 1..={num_q} (the number of Q primes)",
                l.dnum
            )));
        }
        if !(l.sigma > 0.0 && l.sigma <= (1u64 << 20) as f64) {
            return Err(invalid(format!("sigma = {} is not in (0, 2^20]", l.sigma)));
        }
        if let SecretDistribution::SparseTernary { hamming_weight } = l.secret
            && (hamming_weight == 0 || hamming_weight > n)
        {
            return Err(invalid(format!(
                "Hamming weight {hamming_weight} is not in 1..={n}"
            )));
        }
        if l.log_scale < 10 || l.log_scale >= l.log_q[0] {
            return Err(invalid(format!(
                "log_scale = {} must be at least 10 and below log q_0 = {}",
                l.log_scale, l.log_q[0]
            )));
        }

        // Deterministic prime generation, one generator per (size, direction).
        let mut gens: HashMap<(u32, bool), PrimeGenerator> = HashMap::new();
        let mut used: Vec<u64> = Vec::new();
        let mut draw = |bits: u32, alternating: bool| -> Result<u64> {
            let g = match gens.entry((bits, alternating)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let dir = if alternating {
                        Direction::Alternating
                    } else {
                        Direction::Down
                    };
                    v.insert(PrimeGenerator::new(bits, n, dir)?)
                }
            };
            for p in g.by_ref() {
                if !used.contains(&p) {
                    used.push(p);
                    return Ok(p);
                }
            }
            Err(he_math::MathError::NotEnoughPrimes {
                bits,
                two_n: 2 * n as u64,
                wanted: used.len() + 1,
                found: used.len(),
            }
            .into())
        };
        let mut q = Vec::with_capacity(num_q);
        for (i, &b) in l.log_q.iter().enumerate() {
            q.push(draw(b, i > 0 && b == l.log_scale)?);
        }
        for &b in &l.log_q_boot {
            q.push(draw(b, false)?);
        }
        let mut p = Vec::with_capacity(l.log_p.len());
        for &b in &l.log_p {
            p.push(draw(b, false)?);
        }

        let log2 = |v: &[u64]| v.iter().map(|&x| (x as f64).log2()).sum::<f64>();
        let digit_starts = digit_partition(&q, l.dnum);
        let max_digit = (0..digit_starts.len())
            .map(|j| {
                let hi = digit_starts.get(j + 1).copied().unwrap_or(num_q);
                log2(&q[digit_starts[j]..hi])
            })
            .fold(0.0, f64::max);
        if log2(&p) < max_digit {
            return Err(invalid(format!(
                "log2 P = {:.1} is below the largest key-switching digit ({max_digit:.1} bits): \
                 add special primes or raise dnum",
                log2(&p)
            )));
        }

        if l.security == SecurityLevel::Classical128 {
            let log_qp = log2(&q) + log2(&p);
            crate::security::check_128(l.log_n, l.secret, log_qp)?;
        }

        let moduli: Vec<u64> = q.iter().chain(&p).copied().collect();
        let ring = RingContext::new(n, &moduli)?;

        // Canonical scales (OpenFHE FLEXIBLEAUTO style): Δ_{ℓ−1} = Δ_ℓ² / q_ℓ on the
        // whole chain, so that the product of two ciphertexts at their level's canonical
        // scale lands, after rescaling, exactly at the canonical scale of the level
        // below. Above U, Δ_ℓ = sqrt(Δ_{ℓ−1}·q_ℓ) (tending to the bootstrapping primes'
        // size); Δ_L found that way, the chain is recomputed downwards in the same
        // floating-point operations as `Evaluator::rescale`, so Δ_U = 2^log_scale up to
        // a relative 2^-40.
        let max_user_level = l.log_q.len() - 1;
        let mut scales = vec![(l.log_scale as f64).exp2(); num_q];
        for lv in max_user_level + 1..num_q {
            scales[lv] = (scales[lv - 1] * q[lv] as f64).sqrt();
        }
        for lv in (1..num_q).rev() {
            scales[lv - 1] = scales[lv] * scales[lv] / q[lv] as f64;
        }
        Ok(Self {
            literal,
            ring,
            q,
            p,
            max_user_level,
            digit_starts,
            scales,
        })
    }

    /// The literal these parameters were built from.
    pub fn literal(&self) -> &ParametersLiteral {
        &self.literal
    }

    /// The ring context: moduli `q_0 … q_L, p_0 … p_{k−1}` (see the module docs).
    pub fn ring(&self) -> &Arc<RingContext> {
        &self.ring
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.ring.n()
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.literal.log_n
    }

    /// Maximum number of complex slots, N/2.
    pub fn max_slots(&self) -> usize {
        self.n() / 2
    }

    /// The primes of `Q`, `q_0` first.
    pub fn q(&self) -> &[u64] {
        &self.q
    }

    /// The special primes of `P`.
    pub fn p(&self) -> &[u64] {
        &self.p
    }

    /// `L`: the highest level (number of `Q` primes minus one).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    /// `U`: the highest level of the user chain (where a bootstrapped ciphertext lands;
    /// equal to [`Self::max_level`] without bootstrapping primes).
    pub fn max_user_level(&self) -> usize {
        self.max_user_level
    }

    /// Key-switching digits `dnum`.
    pub fn dnum(&self) -> usize {
        self.literal.dnum
    }

    /// The first prime index of each key-switching digit (ascending, starting at 0;
    /// at most `dnum` digits, see [`digit_partition`]).
    pub fn digit_starts(&self) -> &[usize] {
        &self.digit_starts
    }

    /// Number of digits a ciphertext at `level` is decomposed into: the digits that
    /// hold one of `q_0 … q_level`.
    pub fn digits_at(&self, level: usize) -> usize {
        self.digit_starts.iter().filter(|&&s| s <= level).count()
    }

    /// Moduli-table indices of `q_0 … q_level`.
    pub fn q_basis(&self, level: usize) -> Vec<usize> {
        (0..=level).collect()
    }

    /// Moduli-table indices of the special primes.
    pub fn p_basis(&self) -> Vec<usize> {
        (self.q.len()..self.q.len() + self.p.len()).collect()
    }

    /// The residues of the product of the primes `factors` modulo each prime of `basis`
    /// (moduli-table indices, checked by the ring): `P mod q_i` for the special primes,
    /// the factor of the gadget in key generation and of `P·x` over `Q ∪ P` in double
    /// hoisting. Zero on a prime of `basis` that is among `factors`.
    pub fn product_residues(&self, factors: &[usize], basis: &[usize]) -> Vec<u64> {
        let ring = self.ring();
        basis
            .iter()
            .map(|&i| {
                let m = ring.modulus(i);
                factors.iter().fold(1u64, |acc, &j| {
                    m.mul(acc, m.reduce(ring.modulus(j).value()))
                })
            })
            .collect()
    }

    /// Moduli-table indices of `q_0 … q_L, p_0 … p_{k−1}` (where keys live).
    pub fn qp_basis(&self) -> Vec<usize> {
        (0..self.q.len() + self.p.len()).collect()
    }

    /// Indices of digit `j` restricted to `q_0 … q_level`.
    pub fn digit_basis(&self, j: usize, level: usize) -> Vec<usize> {
        let Some(&lo) = self.digit_starts.get(j) else {
            return Vec::new();
        };
        let hi = self
            .digit_starts
            .get(j + 1)
            .copied()
            .unwrap_or(self.q.len())
            .min(level + 1);
        (lo..hi.max(lo)).collect()
    }

    /// The canonical scale `Δ_ℓ` of `level`: `Δ_{ℓ−1} = Δ_ℓ²/q_ℓ` along the whole chain,
    /// `Δ_U ≈ 2^log_scale` (see [`crate::evaluator`] on scale management; above `U` the
    /// scales grow towards the bootstrapping primes' size).
    ///
    /// # Errors
    /// [`CkksError::LevelOutOfRange`] above `L`.
    pub fn scale_at(&self, level: usize) -> Result<f64> {
        self.scales
            .get(level)
            .copied()
            .ok_or(CkksError::LevelOutOfRange {
                level,
                max: self.max_level(),
            })
    }

    /// Default scale `Δ = 2^log_scale`.
    pub fn default_scale(&self) -> f64 {
        (self.literal.log_scale as f64).exp2()
    }

    /// `log2(Q·P)` in bits.
    pub fn log_qp(&self) -> f64 {
        self.q
            .iter()
            .chain(&self.p)
            .map(|&x| (x as f64).log2())
            .sum()
    }

    /// `log2(Q_ℓ)` in bits.
    pub fn log_q_at(&self, level: usize) -> f64 {
        self.q[..=level.min(self.max_level())]
            .iter()
            .map(|&x| (x as f64).log2())
            .sum()
    }

    /// The 128-bit bound on `log2(QP)` that this secret distribution's table gives at this
    /// N ([`crate::security::max_log_qp_128`]), in bits; `None` where none is published.
    pub fn log_qp_bound_128(&self) -> Option<u32> {
        crate::security::max_log_qp_128(self.log_n(), self.literal.secret).map(|b| b.max_log_q)
    }

    /// Whether these parameters are 128-bit secure by [`crate::security::check_128`]: a
    /// bound exists for the secret distribution and `log2(QP)` is within it. (Always
    /// true for parameters built with [`SecurityLevel::Classical128`].)
    pub fn is_secure_128(&self) -> bool {
        crate::security::check_128(self.log_n(), self.literal.secret, self.log_qp()).is_ok()
    }

    /// `log2(q_0·p_0)` in bits: the modulus of the bootstrapping encapsulation key
    /// `s → s'` (see [`crate::security`]).
    pub fn encapsulation_log_q(&self) -> f64 {
        (self.q[0] as f64).log2() + (self.p[0] as f64).log2()
    }

    /// Moduli-table indices of the special basis of the encapsulation key `s → s'`: the
    /// first special prime `p_0` alone (Lattigo `circuits/ckks/bootstrapping/keys.go`).
    pub fn encapsulation_special_basis(&self) -> Vec<usize> {
        vec![self.q.len()]
    }
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Self) -> bool {
        self.literal == other.literal
    }
}

/// Parameter presets. Each constructor returns the literal; build it with
/// [`Parameters::new`].
pub mod presets {
    use super::{ParametersLiteral, SecretDistribution, SecurityLevel};

    /// N = 2^16 preset with HEaaN FGb's chain (the parameters HETAL ran on; Lee et al.,
    /// ICML 2023, §5) and a uniform ternary secret: base prime 58 bits, twelve ≈42-bit
    /// scaling primes (Δ = 2^42, user levels 0..=12), twelve 58-bit primes above them (FGb
    /// reserves them for bootstrapping; no bootstrapping circuit comes with this preset),
    /// six 50-bit special primes,
    /// dnum 5, σ = 3.2. `log2(QP) ≈ 1558`.
    ///
    /// Differences from FGb: a uniform ternary secret instead of FGb's Hamming weight 192
    /// (whose published bound, 1555 bits, this chain exceeds), and six 50-bit special
    /// primes instead of five 60-bit ones (same `log P ≈ 300`, but ≤ 50-bit limbs take the
    /// faster IFMA NTT and basis-conversion paths).
    ///
    /// Security: 128-bit by the HE Standard's table for a uniform ternary secret
    /// (`1558 ≤ 1772`), checked by [`super::Parameters::new`].
    pub fn n16_logqp1558_fgb_chain() -> ParametersLiteral {
        let mut log_q = vec![58];
        log_q.extend([42; 12]);
        ParametersLiteral {
            log_n: 16,
            log_q,
            log_q_boot: vec![58; 12],
            log_p: vec![50; 6],
            dnum: 5,
            secret: SecretDistribution::UniformTernary,
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::Classical128,
        }
    }

    /// N = 2^15 preset without bootstrapping: base prime 58 bits, thirteen ≈42-bit
    /// scaling primes (Δ = 2^42, depth 13), five 50-bit special primes, dnum 3, uniform
    /// ternary secret, σ = 3.2. `log2(QP) ≈ 854 ≤ 881`: 128-bit secure per the HE
    /// Standard (Table 1, uniform ternary secret).
    pub fn n15_logqp854_depth13() -> ParametersLiteral {
        let mut log_q = vec![58];
        log_q.extend([42; 13]);
        ParametersLiteral {
            log_n: 15,
            log_q,
            log_q_boot: vec![],
            log_p: vec![50; 5],
            dnum: 3,
            secret: SecretDistribution::UniformTernary,
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::Classical128,
        }
    }

    /// N = 2^14 preset for shallow circuits without bootstrapping (the encrypted forward
    /// pass of [CryptoTL]-style inference: dense layer, square, dense layer): base prime
    /// 58 bits, three ≈42-bit scaling primes (Δ = 2^42, depth 3), two 60-bit special
    /// primes, dnum 2 (digits of at most 100 bits under `log P ≈ 120`; with one special
    /// prime and dnum 4 rotations lost 4.5 bits, 2^-23.1 against 2^-27.7 here at level
    /// 3 in `cargo xtask bench-ckks --preset n14`), uniform ternary secret, σ = 3.2.
    /// `log2(QP) ≈ 304 ≤ 438`: 128-bit secure per the HE Standard (Table 1, uniform
    /// ternary secret), checked by [`super::Parameters::new`]. 8192 slots.
    ///
    /// [CryptoTL]: https://arxiv.org/abs/2205.11935
    pub fn n14_logqp304_depth3() -> ParametersLiteral {
        ParametersLiteral {
            log_n: 14,
            log_q: vec![58, 42, 42, 42],
            log_q_boot: vec![],
            log_p: vec![60, 60],
            dnum: 2,
            secret: SecretDistribution::UniformTernary,
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::Classical128,
        }
    }

    /// INSECURE test preset, N = 2^10: base prime 58 bits, three 42-bit scaling primes, two
    /// 60-bit special primes, dnum 2. Far above the HE Standard's bound for this N:
    /// for tests only.
    pub fn insecure_n10_depth3() -> ParametersLiteral {
        ParametersLiteral {
            log_n: 10,
            log_q: vec![58, 42, 42, 42],
            log_q_boot: vec![],
            log_p: vec![60, 60],
            dnum: 2,
            secret: SecretDistribution::UniformTernary,
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::NotSet,
        }
    }

    /// INSECURE test preset, N = 2^12: base prime 58 bits, six 42-bit scaling primes,
    /// three 50-bit special primes, dnum 3 (so levels use 1–3 digits), sparse secret
    /// h = 64. For tests only.
    pub fn insecure_n12_depth6() -> ParametersLiteral {
        let mut log_q = vec![58];
        log_q.extend([42; 6]);
        ParametersLiteral {
            log_n: 12,
            log_q,
            log_q_boot: vec![],
            log_p: vec![50; 3],
            dnum: 3,
            secret: SecretDistribution::SparseTernary { hamming_weight: 64 },
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::NotSet,
        }
    }

    /// INSECURE test preset, N = 2^13: base prime 58 bits, twelve 42-bit scaling primes
    /// (enough for a depth-10 chain), four 50-bit special primes, dnum 4. For tests only.
    pub fn insecure_n13_depth12() -> ParametersLiteral {
        let mut log_q = vec![58];
        log_q.extend([42; 12]);
        ParametersLiteral {
            log_n: 13,
            log_q,
            log_q_boot: vec![],
            log_p: vec![50; 4],
            dnum: 4,
            secret: SecretDistribution::UniformTernary,
            sigma: 3.2,
            log_scale: 42,
            security: SecurityLevel::NotSet,
        }
    }

    /// The element of `all` whose `name` is `wanted`; otherwise the names of `all`,
    /// comma-separated, for the caller's error message. The lookup of every preset table
    /// (`SchemePreset`, `BootstrapPreset`, and the application's).
    ///
    /// # Errors
    /// The list of known names when none matches.
    pub fn by_name<T: Copy>(
        all: &[T],
        name: impl Fn(T) -> &'static str,
        wanted: &str,
    ) -> std::result::Result<T, String> {
        all.iter()
            .copied()
            .find(|&p| name(p) == wanted)
            .ok_or_else(|| all.iter().map(|&p| name(p)).collect::<Vec<_>>().join(", "))
    }

    /// The scheme presets (no bootstrapping circuit) by name: the one place that maps
    /// the names used on command lines (`cargo xtask bench-ckks --preset NAME`,
    /// `bench-matmul`) to parameter sets. The bootstrappable ones have their own table,
    /// `crate::circuits::bootstrapping::presets::BootstrapPreset`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum SchemePreset {
        /// `n16`: [`n16_logqp1558_fgb_chain`].
        N16,
        /// `n15`: [`n15_logqp854_depth13`].
        N15,
        /// `n14`: [`n14_logqp304_depth3`].
        N14,
        /// `insecure-n10`: [`insecure_n10_depth3`] (tests only).
        InsecureN10,
        /// `insecure-n12`: [`insecure_n12_depth6`] (tests only).
        InsecureN12,
        /// `insecure-n13`: [`insecure_n13_depth12`] (tests only).
        InsecureN13,
    }

    impl SchemePreset {
        /// Every preset.
        pub const ALL: [Self; 6] = [
            Self::N16,
            Self::N15,
            Self::N14,
            Self::InsecureN10,
            Self::InsecureN12,
            Self::InsecureN13,
        ];

        /// The command-line name.
        pub fn name(self) -> &'static str {
            match self {
                Self::N16 => "n16",
                Self::N15 => "n15",
                Self::N14 => "n14",
                Self::InsecureN10 => "insecure-n10",
                Self::InsecureN12 => "insecure-n12",
                Self::InsecureN13 => "insecure-n13",
            }
        }

        /// The parameter set's own name (its function's), as reports print it.
        pub fn id(self) -> &'static str {
            match self {
                Self::N16 => "n16_logqp1558_fgb_chain",
                Self::N15 => "n15_logqp854_depth13",
                Self::N14 => "n14_logqp304_depth3",
                Self::InsecureN10 => "insecure_n10_depth3",
                Self::InsecureN12 => "insecure_n12_depth6",
                Self::InsecureN13 => "insecure_n13_depth12",
            }
        }

        /// The preset of a command-line name.
        ///
        /// # Errors
        /// [`crate::CkksError::InvalidParameters`] naming the known presets.
        pub fn from_name(name: &str) -> crate::Result<Self> {
            by_name(&Self::ALL, Self::name, name).map_err(|known| {
                crate::CkksError::InvalidParameters(format!("unknown preset {name:?} ({known})"))
            })
        }

        /// The parameters.
        pub fn parameters(self) -> ParametersLiteral {
            match self {
                Self::N16 => n16_logqp1558_fgb_chain(),
                Self::N15 => n15_logqp854_depth13(),
                Self::N14 => n14_logqp304_depth3(),
                Self::InsecureN10 => insecure_n10_depth3(),
                Self::InsecureN12 => insecure_n12_depth6(),
                Self::InsecureN13 => insecure_n13_depth12(),
            }
        }
    }
}

/// The cut of `Q`'s primes `q` into at most `dnum` consecutive key-switching digits that
/// minimizes the bits of the largest digit, returned as each digit's first prime index.
/// A greedy fill from `q_0` finds the fewest digits under a bound (and so decides whether
/// the bound is reachable); a bisection over the bound (100 steps between the largest
/// prime and the whole of `Q`, `O(100·(L+1))`) finds the smallest reachable one. For
/// primes of equal size this gives Lattigo's groups of `⌈(L+1)/dnum⌉` primes.
pub fn digit_partition(q: &[u64], dnum: usize) -> Vec<usize> {
    let bits: Vec<f64> = q.iter().map(|&x| (x as f64).log2()).collect();
    let greedy = |bound: f64| {
        let mut starts = vec![0];
        let mut sum = 0.0;
        for (i, &b) in bits.iter().enumerate() {
            if sum + b > bound && i > starts[starts.len() - 1] {
                starts.push(i);
                sum = 0.0;
            }
            sum += b;
        }
        starts
    };
    let dnum = dnum.max(1);
    let (mut lo, mut hi) = (
        bits.iter().copied().fold(0.0, f64::max),
        bits.iter().sum::<f64>() + 1.0,
    );
    if greedy(lo).len() <= dnum {
        return greedy(lo);
    }
    // Invariant: greedy(lo) needs more than dnum digits, greedy(hi) at most dnum.
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if greedy(mid).len() <= dnum {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    greedy(hi)
}

#[cfg(test)]
mod tests {
    use super::digit_partition;
    use super::presets::SchemePreset;

    #[test]
    fn scheme_preset_names_round_trip() {
        for p in SchemePreset::ALL {
            assert_eq!(SchemePreset::from_name(p.name()).unwrap(), p);
            assert!(super::Parameters::new(p.parameters()).is_ok(), "{}", p.id());
        }
        let err = SchemePreset::from_name("n17").unwrap_err().to_string();
        assert!(err.contains("insecure-n13"), "{err}");
    }

    /// The largest digit's bits of a partition given by its starts.
    fn max_bits(q: &[u64], starts: &[usize]) -> f64 {
        let bits = |r: &[u64]| r.iter().map(|&x| (x as f64).log2()).sum::<f64>();
        (0..starts.len())
            .map(|j| bits(&q[starts[j]..starts.get(j + 1).copied().unwrap_or(q.len())]))
            .fold(0.0, f64::max)
    }

    #[test]
    fn equal_primes_give_lattigo_groups() {
        let q = vec![1u64 << 50; 23];
        assert_eq!(digit_partition(&q, 4), vec![0, 6, 12, 18]);
        assert_eq!(digit_partition(&q, 1), vec![0]);
        assert_eq!(digit_partition(&q, 23), (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn short_user_primes_share_digits() {
        // q_0 50 bits, 11 × 40, 14 × 61: four digits of at most 6 × 61 = 366 bits,
        // where groups of ⌈26/4⌉ = 7 primes would need 7 × 61 = 427.
        let mut q = vec![1u64 << 50];
        q.extend([1u64 << 40; 11]);
        q.extend([1u64 << 61; 14]);
        let starts = digit_partition(&q, 4);
        assert_eq!(starts.len(), 4);
        assert!((max_bits(&q, &starts) - 366.0).abs() < 1e-9);
    }

    #[test]
    fn optimal_against_exhaustive_search() {
        // Every cut of 8 primes of mixed sizes into at most 3 digits.
        let q: Vec<u64> = [45u32, 61, 40, 40, 58, 61, 50, 42]
            .iter()
            .map(|&b| 1u64 << b)
            .collect();
        let n = q.len();
        let mut best = f64::INFINITY;
        for a in 1..n {
            for b in a..=n {
                let starts: Vec<usize> = [0, a, b].into_iter().filter(|&s| s < n).collect();
                let mut s = starts.clone();
                s.dedup();
                best = best.min(max_bits(&q, &s));
            }
        }
        let got = digit_partition(&q, 3);
        assert!(got.len() <= 3);
        assert!((max_bits(&q, &got) - best).abs() < 1e-9);
    }
}
