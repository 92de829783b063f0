//! Linear transformations of the slot vector as data: a map from diagonal index to
//! diagonal, `M·x = Σ_d diag_d ⊙ rot(x, d)` (`rot(x, d)_k = x_{k+d mod n}`, Halevi–Shoup,
//! Crypto 2014), encoded at a chosen level and scale and evaluated with baby-step
//! giant-step and hoisted baby-step rotations (Bossuat et al., Eurocrypt 2021, §4;
//! Lattigo `he/linear_transformation.go`).
//!
//! BSGS: with a baby-step span `n1`, each index is `d = g + b` (`g` a multiple of `n1`,
//! `0 ≤ b < n1`) and `M·x = Σ_g rot(Σ_b rot(diag_{g+b}, −g) ⊙ rot(x, b), g)`: the baby
//! rotations `rot(x, b)` share one decomposition, the pre-rotated diagonals are encoded
//! once, and each giant step costs one rotation. `n1` is the power of two minimizing the
//! distinct rotations weighted by their cost ([`LinearTransform::baby_step`]).
//! [`LinearTransform::rotations`] names the rotations (and so the Galois elements) the
//! evaluation needs, for key generation. Diagonals kept over `Q ∪ P`
//! ([`DiagonalStorage::Extended`]) are evaluated with double hoisting.

use crate::ciphertext::Ciphertext;
use crate::context::Context;
use crate::error::{CkksError, Result};
use crate::evaluator::{Evaluator, Op};
use he_math::Backend;
use he_math::galois;
use num_complex::Complex64;
use std::collections::{BTreeMap, BTreeSet};

/// The cost of a giant step in units of a baby step, as [`LinearTransform::baby_step`]
/// weighs a split.
pub const GIANT_STEP_WEIGHT: usize = 2;

/// Where an [`EncodedLinearTransform`] keeps its pre-rotated diagonals.
///
/// A diagonal encoded at level `ℓ` is `ℓ + 1` limbs of `N` words (13 MiB at N = 2^16 and
/// 26 limbs) on full slots: the CoeffsToSlots and SlotsToCoeffs matrices of the
/// N = 2^16 bootstrapping preset take 3.2 GB that way at full slots
/// (`Bootstrapper::diagonal_bytes`). On `n < N/2` slots a plaintext is a polynomial in
/// `X^r`, `r = N/(2n)`, whose NTT words repeat in runs of `r`: the NTT-form storages
/// keep one word per run ([`Backend::compress_runs`]), `1/r` of the memory. The
/// scaled, rounded coefficients the encoder reduces modulo each prime are integers held
/// exactly in `f64` (the encoder rounds there), one word per coefficient: the same
/// plaintext comes back bit for bit from them at the cost of one reduction pass and one
/// NTT per limb each time it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum DiagonalStorage {
    /// [`Self::Extended`] on sparse slots (`n < N/2`, diagonals compressed by
    /// `N/(2n) ≥ 2`), [`Self::Encoded`] on full slots ([`Self::resolve`]): double
    /// hoisting where its memory is at most that of single hoisting on full slots. At
    /// N = 2^16 the 2^13-slot bootstrap (16384 work slots, runs of 2) takes 2.79 s and
    /// 5.6 GB peak that way against 2.93 s and 5.1 GB with encoded diagonals; on full
    /// slots double hoisting would take the peak from about 7.7 to 9.4 GB
    /// (docs/results/bootstrap.md).
    #[default]
    Auto,
    /// Encoded plaintexts (NTT form over `Q_ℓ`, every limb of the level), single
    /// hoisting.
    Encoded,
    /// The scaled coefficients (`2n` words for `n` slots), encoded when used: `1/(ℓ+1)`
    /// of the memory on full slots, one NTT per limb per diagonal and use.
    Coefficients,
    /// Encoded over `Q_ℓ ∪ P` (the special primes too), double hoisting: the fastest
    /// with two threads (N = 2^16 bootstraps 1–8 % faster, none with one; see
    /// docs/results/bootstrap.md), `(ℓ+1+|P|)/(ℓ+1)` of [`Self::Encoded`]'s memory.
    /// The baby steps stay over `Q_ℓ ∪ P` without their two ModDowns each and the inner
    /// sums run there ([`Evaluator::linear_transform`]). The result differs from the
    /// other storages' within the noise (other roundings), not bit for bit.
    Extended,
}

impl DiagonalStorage {
    /// The storage a transform on `slots` slots of a ring of degree `n` uses: itself,
    /// except [`Self::Auto`], which becomes [`Self::Extended`] for `slots < n/2` and
    /// [`Self::Encoded`] otherwise.
    pub fn resolve(self, slots: usize, n: usize) -> Self {
        match self {
            Self::Auto if 2 * slots < n => Self::Extended,
            Self::Auto => Self::Encoded,
            other => other,
        }
    }
}

/// One pre-rotated diagonal as kept by an [`EncodedLinearTransform`].
enum StoredDiagonal<B: Backend> {
    /// NTT form over `Q_ℓ` ([`DiagonalStorage::Encoded`]) or `Q_ℓ ∪ P`
    /// ([`DiagonalStorage::Extended`]), compressed by the transform's run
    /// ([`Backend::compress_runs`]); its number of limbs.
    Ntt(B::Poly, usize),
    /// The scaled coefficients ([`DiagonalStorage::Coefficients`]).
    Coefficients(Vec<f64>),
}

/// A linear map on `n` complex slots stored by diagonals (index in `0..n`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearTransform {
    slots: usize,
    diagonals: BTreeMap<usize, Vec<Complex64>>,
    /// Baby-step span fixed by [`Self::with_baby_step`]; `None`: by rotation count.
    baby_step: Option<usize>,
}

fn rotate_vec(v: &[Complex64], d: usize) -> Vec<Complex64> {
    let n = v.len();
    (0..n).map(|k| v[(k + d) % n]).collect()
}

impl LinearTransform {
    /// A transform on `slots` slots from its diagonals (`diag_d[k] = M[k][(k+d) mod n]`).
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] unless `slots` is a power of two;
    /// [`CkksError::InvalidValue`] for an index `≥ slots`, a diagonal of the wrong length
    /// or a non-finite entry.
    pub fn new(slots: usize, diagonals: BTreeMap<usize, Vec<Complex64>>) -> Result<Self> {
        if !slots.is_power_of_two() {
            return Err(CkksError::InvalidSlots {
                slots,
                max: usize::MAX,
            });
        }
        for (&d, v) in &diagonals {
            if d >= slots || v.len() != slots {
                return Err(CkksError::InvalidValue(format!(
                    "diagonal {d} of length {} for {slots} slots",
                    v.len()
                )));
            }
            if v.iter().any(|z| !(z.re.is_finite() && z.im.is_finite())) {
                return Err(CkksError::InvalidValue(format!(
                    "non-finite entry in diagonal {d}"
                )));
            }
        }
        Ok(Self {
            slots,
            diagonals,
            baby_step: None,
        })
    }

    /// The transform of a dense `n × n` matrix (row-major), zero diagonals dropped.
    ///
    /// # Errors
    /// As [`Self::new`]; [`CkksError::LengthMismatch`] for a non-square matrix.
    pub fn from_dense(matrix: &[Vec<Complex64>]) -> Result<Self> {
        let n = matrix.len();
        if let Some(row) = matrix.iter().find(|r| r.len() != n) {
            return Err(CkksError::LengthMismatch {
                expected: n,
                got: row.len(),
            });
        }
        let mut diags = BTreeMap::new();
        for d in 0..n {
            let v: Vec<Complex64> = (0..n).map(|k| matrix[k][(k + d) % n]).collect();
            if v.iter().any(|z| z.norm() != 0.0) {
                diags.insert(d, v);
            }
        }
        Self::new(n, diags)
    }

    /// Number of slots `n`.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The diagonals.
    pub fn diagonals(&self) -> &BTreeMap<usize, Vec<Complex64>> {
        &self.diagonals
    }

    /// `M·x` in float64 (the plaintext reference).
    ///
    /// # Errors
    /// [`CkksError::LengthMismatch`] unless `x` has `n` entries.
    pub fn apply(&self, x: &[Complex64]) -> Result<Vec<Complex64>> {
        if x.len() != self.slots {
            return Err(CkksError::LengthMismatch {
                expected: self.slots,
                got: x.len(),
            });
        }
        let n = self.slots;
        let mut out = vec![Complex64::new(0.0, 0.0); n];
        for (&d, diag) in &self.diagonals {
            for k in 0..n {
                out[k] += diag[k] * x[(k + d) % n];
            }
        }
        Ok(out)
    }

    /// The composition `self ∘ other` (`other` applied first):
    /// `diag_{a+b} += α_a ⊙ rot(β_b, a)`.
    ///
    /// # Errors
    /// [`CkksError::SlotsMismatch`] for different slot counts.
    pub fn compose(&self, other: &Self) -> Result<Self> {
        if self.slots != other.slots {
            return Err(CkksError::SlotsMismatch(self.slots, other.slots));
        }
        let n = self.slots;
        let mut out: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (&a, alpha) in &self.diagonals {
            for (&b, beta) in &other.diagonals {
                let e = out
                    .entry((a + b) % n)
                    .or_insert_with(|| vec![Complex64::new(0.0, 0.0); n]);
                for k in 0..n {
                    e[k] += alpha[k] * beta[(k + a) % n];
                }
            }
        }
        Self::new(n, out)
    }

    /// `c·M`.
    pub fn scaled(&self, c: Complex64) -> Self {
        let diagonals = self
            .diagonals
            .iter()
            .map(|(&d, v)| (d, v.iter().map(|&z| z * c).collect()))
            .collect();
        Self {
            slots: self.slots,
            diagonals,
            baby_step: self.baby_step,
        }
    }

    /// Row `k` multiplied by `row_factor[k]`: `diag(row_factor)·M`.
    ///
    /// # Errors
    /// [`CkksError::LengthMismatch`] unless `row_factor` has `n` entries.
    pub fn row_scaled(&self, row_factor: &[Complex64]) -> Result<Self> {
        if row_factor.len() != self.slots {
            return Err(CkksError::LengthMismatch {
                expected: self.slots,
                got: row_factor.len(),
            });
        }
        let diagonals = self
            .diagonals
            .iter()
            .map(|(&d, v)| (d, v.iter().zip(row_factor).map(|(a, b)| a * b).collect()))
            .collect();
        Ok(Self {
            slots: self.slots,
            diagonals,
            baby_step: self.baby_step,
        })
    }

    /// The same map on `2n` slots acting on an `n`-periodic vector (the layout of a
    /// sparse ciphertext viewed with twice its slots): `diag'_d[k] = diag_d[k mod n]`.
    pub fn lifted(&self, slots: usize) -> Result<Self> {
        if !slots.is_power_of_two() || slots < self.slots {
            return Err(CkksError::InvalidSlots {
                slots,
                max: usize::MAX,
            });
        }
        let n = self.slots;
        let diagonals = self
            .diagonals
            .iter()
            .map(|(&d, v)| (d, (0..slots).map(|k| v[k % n]).collect()))
            .collect();
        Ok(Self {
            slots,
            diagonals,
            baby_step: None,
        })
    }

    /// The same transform evaluated with the baby-step span `n1` instead of the one
    /// [`Self::baby_step`] chooses (as Lattigo's `LogBSGSRatio` fixes it); for comparing
    /// splits. The rotations, and so the keys, follow the span. [`Self::scaled`] and
    /// [`Self::row_scaled`] keep it (same diagonals); [`Self::compose`] and
    /// [`Self::lifted`] make a new transform that chooses its own.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] unless `n1` is a power of two in `1..=slots`.
    pub fn with_baby_step(mut self, n1: usize) -> Result<Self> {
        if !n1.is_power_of_two() || n1 > self.slots {
            return Err(CkksError::InvalidValue(format!(
                "baby-step span {n1} on {} slots",
                self.slots
            )));
        }
        self.baby_step = Some(n1);
        Ok(self)
    }

    /// The baby-step span `n1` (a power of two) minimizing the cost `babies +
    /// GIANT_STEP_WEIGHT · giants` of the distinct non-zero rotations, the smallest such
    /// span on a tie, unless [`Self::with_baby_step`] fixed it. A giant step costs about
    /// twice a baby step: the babies share one decomposition, each giant decomposes its
    /// own inner sum, and with double hoisting ([`DiagonalStorage::Extended`]) a baby
    /// skips its ModDowns while a giant gains one. On the first CoeffsToSlots matrix of
    /// the N = 2^16 bootstrapping preset (32 diagonals) this picks 7 baby and 3 giant
    /// steps where the rotation count tied with 3 and 7: that matrix alone took 0.79–0.97
    /// of the time with single hoisting and 0.74–0.90 with double hoisting, a whole
    /// bootstrap with single hoisting 0.98–1.01 (`cargo run --release -p ckks --example
    /// bsgs_split`; docs/results/bootstrap.md). The rotations, and so the keys, follow
    /// the span.
    pub fn baby_step(&self) -> usize {
        if let Some(n1) = self.baby_step {
            return n1;
        }
        let mut best = (usize::MAX, 1);
        let mut n1 = 1;
        while n1 <= self.slots {
            let (b, g) = self.split(n1);
            let cost = b.len() + GIANT_STEP_WEIGHT * g.len();
            if cost < best.0 {
                best = (cost, n1);
            }
            n1 *= 2;
        }
        best.1
    }

    /// Distinct non-zero baby and giant rotations for span `n1`.
    fn split(&self, n1: usize) -> (BTreeSet<usize>, BTreeSet<usize>) {
        let mut babies = BTreeSet::new();
        let mut giants = BTreeSet::new();
        for &d in self.diagonals.keys() {
            let b = d % n1;
            if b != 0 {
                babies.insert(b);
            }
            if d - b != 0 {
                giants.insert(d - b);
            }
        }
        (babies, giants)
    }

    /// The left rotations (in `1..n`) [`Evaluator::linear_transform`] performs; their
    /// Galois keys must be in the evaluation-key set.
    pub fn rotations(&self) -> Vec<i64> {
        let (b, g) = self.split(self.baby_step());
        let set: BTreeSet<usize> = b.union(&g).copied().collect();
        set.into_iter().map(|r| r as i64).collect()
    }

    /// Encodes the pre-rotated diagonals for a ciphertext at `level` and scale
    /// `input_scale`, so that the output (after the one rescale) has scale exactly
    /// `output_scale` at level `level − 1`: plaintexts at scale
    /// `output_scale · q_level / input_scale`.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] at level 0; [`CkksError::InvalidSlots`] for more slots
    /// than `N/2`; encoding errors.
    pub fn encode<B: Backend>(
        &self,
        ctx: &Context<B>,
        level: usize,
        input_scale: f64,
        output_scale: f64,
    ) -> Result<EncodedLinearTransform<B>> {
        self.encode_with(
            ctx,
            level,
            input_scale,
            output_scale,
            DiagonalStorage::Encoded,
        )
    }

    /// [`Self::encode`] with the diagonals kept as `storage` says.
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_with<B: Backend>(
        &self,
        ctx: &Context<B>,
        level: usize,
        input_scale: f64,
        output_scale: f64,
        storage: DiagonalStorage,
    ) -> Result<EncodedLinearTransform<B>> {
        let storage = storage.resolve(self.slots, ctx.params().n());
        let _span = tracing::debug_span!(
            "encode_linear_transform",
            level,
            diagonals = self.diagonals.len()
        )
        .entered();
        if level == 0 {
            return Err(CkksError::LevelTooLow {
                needed: 1,
                level: 0,
            });
        }
        let q_level = ctx.params().q()[level] as f64;
        let pt_scale = output_scale * q_level / input_scale;
        let q = ctx.params().q_basis(level);
        let mut qp = q.clone();
        qp.extend(ctx.params().p_basis());
        // A plaintext on `slots` slots is a polynomial in X^(N/2·slots): its NTT words
        // repeat in runs that long, kept once each.
        let run = (ctx.params().n() / (2 * self.slots)).max(1);
        let n1 = self.baby_step();
        let mut giants: BTreeMap<usize, Vec<(usize, StoredDiagonal<B>)>> = BTreeMap::new();
        for (&d, diag) in &self.diagonals {
            let b = d % n1;
            let g = d - b;
            let rotated = rotate_vec(diag, (self.slots - g % self.slots) % self.slots);
            let scaled = ctx.scaled_coefficients(&rotated, level, pt_scale)?;
            let ntt = |basis: &[usize]| -> Result<StoredDiagonal<B>> {
                let full = ctx.poly_from_scaled(&scaled, basis)?;
                Ok(StoredDiagonal::Ntt(
                    ctx.backend().compress_runs(&full, run)?,
                    basis.len(),
                ))
            };
            let stored = match storage {
                DiagonalStorage::Extended => ntt(&qp)?,
                DiagonalStorage::Coefficients => StoredDiagonal::Coefficients(scaled),
                // `resolve` leaves no `Auto`.
                DiagonalStorage::Encoded | DiagonalStorage::Auto => ntt(&q)?,
            };
            giants.entry(g).or_default().push((b, stored));
        }
        Ok(EncodedLinearTransform {
            slots: self.slots,
            level,
            input_scale,
            output_scale,
            plaintext_scale: pt_scale,
            n: ctx.params().n(),
            run,
            giants,
            storage,
        })
    }
}

/// A [`LinearTransform`] encoded for one input level and scale.
pub struct EncodedLinearTransform<B: Backend> {
    slots: usize,
    level: usize,
    input_scale: f64,
    output_scale: f64,
    /// Scale of the diagonals' plaintexts.
    plaintext_scale: f64,
    /// Ring degree.
    n: usize,
    /// Words per run of the compressed NTT-form diagonals, `N/(2·slots)`.
    run: usize,
    /// giant step → (baby step, pre-rotated diagonal).
    giants: BTreeMap<usize, Vec<(usize, StoredDiagonal<B>)>>,
    /// How the diagonals are kept (never [`DiagonalStorage::Auto`]);
    /// [`DiagonalStorage::Extended`] is evaluated with double hoisting.
    storage: DiagonalStorage,
}

impl<B: Backend> std::fmt::Debug for EncodedLinearTransform<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedLinearTransform")
            .field("slots", &self.slots)
            .field("level", &self.level)
            .field("giants", &self.giants.len())
            .field(
                "diagonals",
                &self.giants.values().map(Vec::len).sum::<usize>(),
            )
            .finish()
    }
}

impl<B: Backend> EncodedLinearTransform<B> {
    /// The input level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The slot count.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// How the diagonals are kept: the storage [`LinearTransform::encode_with`] was given,
    /// [`DiagonalStorage::Auto`] resolved ([`DiagonalStorage::resolve`]).
    pub fn storage(&self) -> DiagonalStorage {
        self.storage
    }

    /// The scale an input ciphertext must have.
    pub fn input_scale(&self) -> f64 {
        self.input_scale
    }

    /// The scale of the output (at level `level − 1`).
    pub fn output_scale(&self) -> f64 {
        self.output_scale
    }

    /// Bytes the diagonals take in memory (words of 8 bytes).
    pub fn diagonal_bytes(&self) -> usize {
        self.giants
            .values()
            .flatten()
            .map(|(_, d)| match d {
                StoredDiagonal::Ntt(_, limbs) => limbs * self.n / self.run * 8,
                StoredDiagonal::Coefficients(c) => c.len() * 8,
            })
            .sum()
    }
}

impl<B: Backend> Evaluator<B> {
    /// `M·ct` by BSGS with hoisted baby steps and hoisted giant steps, one rescale:
    /// level `ℓ − 1`, scale `lt.output_scale()`. Diagonals kept over `Q_ℓ ∪ P`
    /// ([`DiagonalStorage::Extended`]) are evaluated with double hoisting instead (see
    /// that variant); what follows describes the other storages.
    ///
    /// The baby rotations share one decomposition of `c_1` ([`Self::rotate_hoisted`]).
    /// Each giant step's inner sum is rotated with a lazy key switch (ModUp and inner
    /// product, no ModDown): the switched parts are summed over `Q_ℓ ∪ P`, the rotated
    /// `c_0` parts over `Q_ℓ`, and one ModDown fused with the rescale
    /// ([`he_math::Backend::mod_down_rescale`]) divides the sum by `P·q_ℓ` at the end
    /// (Bossuat et al., Eurocrypt 2021, §4.3; Lattigo
    /// `he/linear_transformation_evaluator.go`, `MultiplyByDiagMatrixBSGS`). This saves
    /// one ModDown per giant step and the separate rescale; the rounding happens once.
    ///
    /// # Errors
    /// [`CkksError::LevelMismatch`], [`CkksError::ScaleMismatch`] or
    /// [`CkksError::SlotsMismatch`] unless `ct` matches the encoding;
    /// [`CkksError::MissingGaloisKey`].
    pub fn linear_transform(
        &self,
        ct: &Ciphertext<B>,
        lt: &EncodedLinearTransform<B>,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("linear_transform", level = ct.level).entered();
        if ct.level != lt.level {
            return Err(CkksError::LevelMismatch(ct.level, lt.level));
        }
        if ct.scale != lt.input_scale {
            return Err(CkksError::ScaleMismatch(ct.scale, lt.input_scale));
        }
        if ct.slots != lt.slots {
            return Err(CkksError::SlotsMismatch(ct.slots, lt.slots));
        }
        if ct.parts.len() != 2 {
            return Err(CkksError::DegreeTooHigh(ct.parts.len() - 1));
        }
        let n = self.context().params().n();
        let level = ct.level;
        // Every giant step's key first, so that a missing key fails before any work.
        let mut giant_keys = BTreeMap::new();
        for &g in lt.giants.keys() {
            if g % lt.slots != 0 {
                let e = galois::galois_element_for_rotation(g as i64, n);
                giant_keys.insert(
                    g,
                    (e, &self.keys().galois_key_at(e, Some(g as i64), level)?.key),
                );
            }
        }
        let babies: BTreeSet<usize> = lt
            .giants
            .values()
            .flat_map(|v| v.iter().map(|(b, _)| *b))
            .collect();
        if lt.storage == DiagonalStorage::Extended {
            return self.linear_transform_double_hoisted(ct, lt, &babies, &giant_keys);
        }
        let amounts: Vec<i64> = babies.iter().map(|&b| b as i64).collect();
        let rotated = self.rotate_hoisted(ct, &amounts)?;
        let baby: BTreeMap<usize, Ciphertext<B>> = babies.into_iter().zip(rotated).collect();

        let be = self.be();
        let p_basis = self.context().params().p_basis();
        // Σ over giant steps: switched parts over Q_ℓ ∪ P (`lazy`), the rest over Q_ℓ.
        let mut lazy: Option<[B::Poly; 2]> = None;
        let mut plain: Option<Ciphertext<B>> = None;
        for (&g, terms) in &lt.giants {
            // NTT-form diagonals: one pass over all of them (`dot_parts_runs`). Diagonals
            // kept as coefficients are encoded one at a time (their point is memory).
            let mut xs: Vec<&[B::Poly]> = Vec::with_capacity(terms.len());
            let mut ys: Vec<&B::Poly> = Vec::with_capacity(terms.len());
            for (b, diag) in terms {
                if let StoredDiagonal::Ntt(d, _) = diag {
                    xs.push(&baby[b].parts);
                    ys.push(d);
                }
            }
            let mut inner = if xs.is_empty() {
                None
            } else {
                self.note(Op::CMult, xs.len() as u64);
                Some(Ciphertext {
                    parts: be.dot_parts_runs(&xs, &ys, lt.run)?,
                    level,
                    scale: ct.scale * lt.plaintext_scale,
                    slots: ct.slots,
                })
            };
            for (b, diag) in terms {
                if let StoredDiagonal::Coefficients(c) = diag {
                    let pt = self
                        .context()
                        .plaintext_from_scaled(c, level, lt.plaintext_scale)?;
                    self.mul_plain_accumulate(&mut inner, &baby[b], &pt)?;
                }
            }
            let Some(mut inner) = inner else { continue };
            let Some(&(e, key)) = giant_keys.get(&g) else {
                // g = 0: no rotation.
                match &mut plain {
                    None => plain = Some(inner),
                    Some(p) => self.add_assign(p, &inner)?,
                }
                continue;
            };
            self.note(Op::Rot, 1);
            // σ(c_1) into a fresh buffer, decomposed; σ(c_0) into c_1's buffer.
            let mut c1 = be.automorphism_new(&inner.parts[1], e)?;
            let dec = self.decompose(&c1, level)?;
            let [u0, u1] = self.key_switch_lazy(&dec.digits, level, key)?;
            drop(dec);
            be.automorphism(&inner.parts[0], e, &mut c1)?;
            inner.parts[0] = c1;
            inner.parts.truncate(1);
            match &mut lazy {
                None => lazy = Some([u0, u1]),
                Some([a0, a1]) => {
                    be.add_assign(a0, &u0)?;
                    be.add_assign(a1, &u1)?;
                }
            }
            match &mut plain {
                None => {
                    let c1 = be.zero(be.basis(&inner.parts[0]), be.repr(&inner.parts[0]))?;
                    inner.parts.push(c1);
                    plain = Some(inner);
                }
                Some(p) => be.add_assign(&mut p.parts[0], &inner.parts[0])?,
            }
        }
        let plain = match plain {
            Some(p) => p,
            None => self.mul_integer(ct, 0)?,
        };
        let mut out = match lazy {
            // (lazy + P·plain) / (P·q_ℓ), rounded: ModDown and rescale in one division.
            Some([a0, a1]) => {
                self.note(Op::Rescale, 1);
                let [b0, b1]: [B::Poly; 2] = plain
                    .parts
                    .try_into()
                    .map_err(|_| CkksError::DegreeTooHigh(2))?;
                Ciphertext {
                    parts: vec![
                        be.mod_down_rescale(&a0, b0, &p_basis)?,
                        be.mod_down_rescale(&a1, b1, &p_basis)?,
                    ],
                    level: level - 1,
                    scale: plain.scale,
                    slots: plain.slots,
                }
            }
            None => self.rescale_owned(plain)?,
        };
        out.scale = lt.output_scale;
        Ok(out)
    }

    /// [`Self::linear_transform`] with double hoisting (Bossuat et al., Eurocrypt 2021,
    /// §4.3, Algorithm 6; Lattigo `he/linear_transformation_evaluator.go`), for diagonals
    /// kept over `Q_ℓ ∪ P` ([`DiagonalStorage::Extended`]). The baby steps are the lazy
    /// key switches of the shared decomposition, `(u_0 + P·σ_b(c_0), u_1)` over
    /// `Q_ℓ ∪ P`, with no ModDown (the unrotated input enters as `P·ct`); the inner sums
    /// run over `Q_ℓ ∪ P`; a giant step brings only its inner sum's `c_1` down to `Q_ℓ`
    /// (one ModDown) to decompose and switch it lazily, its `c_0` stays over `Q_ℓ ∪ P`;
    /// one fused ModDown and rescale divides the total by `P·q_ℓ`. Against
    /// single hoisting: two ModDowns fewer per baby step, one more per giant step, inner
    /// sums over `|P|` more limbs.
    fn linear_transform_double_hoisted(
        &self,
        ct: &Ciphertext<B>,
        lt: &EncodedLinearTransform<B>,
        babies: &BTreeSet<usize>,
        giant_keys: &BTreeMap<usize, (usize, &crate::keys::SwitchingKey<B>)>,
    ) -> Result<Ciphertext<B>> {
        let be = self.be();
        let params = self.context().params();
        let level = ct.level;
        let n = params.n();
        let p_basis = params.p_basis();
        let q_basis = params.q_basis(level);
        let dec = self.decompose(&ct.parts[1], level)?;
        let Some(first) = dec.digits.first() else {
            return Err(CkksError::InvalidParameters(
                "no key-switching digit".into(),
            ));
        };
        let qp = be.basis(first).to_vec();
        let repr = be.repr(first);
        // `P mod q_i` on Q_ℓ and 0 on P: `scalar_mul_add_assign` with these adds `P·x`
        // (x over Q_ℓ) to a polynomial over Q_ℓ ∪ P.
        let lift = params.product_residues(&p_basis, &qp);
        let lifted = |x: &B::Poly| -> Result<B::Poly> {
            let mut z = be.zero(&qp, repr)?;
            be.scalar_mul_add_assign(&mut z, x, &lift)?;
            Ok(z)
        };
        let mut baby: BTreeMap<usize, [B::Poly; 2]> = BTreeMap::new();
        for &b in babies {
            if b % lt.slots == 0 {
                baby.insert(b, [lifted(&ct.parts[0])?, lifted(&ct.parts[1])?]);
                continue;
            }
            let e = galois::galois_element_for_rotation(b as i64, n);
            let key = &self.keys().galois_key_at(e, Some(b as i64), level)?.key;
            self.note(Op::Rot, 1);
            let [mut u0, u1] = self.key_switch_lazy_automorphism(&dec.digits, e, level, key)?;
            let c0 = be.automorphism_new(&ct.parts[0], e)?;
            be.scalar_mul_add_assign(&mut u0, &c0, &lift)?;
            baby.insert(b, [u0, u1]);
        }
        drop(dec);

        // Σ over giant steps, over Q_ℓ ∪ P.
        let mut acc: Option<[B::Poly; 2]> = None;
        for (&g, terms) in &lt.giants {
            let mut xs: Vec<&[B::Poly]> = Vec::with_capacity(terms.len());
            let mut ys: Vec<&B::Poly> = Vec::with_capacity(terms.len());
            for (b, diag) in terms {
                let StoredDiagonal::Ntt(d, _) = diag else {
                    return Err(CkksError::InvalidValue(
                        "a double-hoisted transform holds only extended diagonals".into(),
                    ));
                };
                xs.push(&baby[b]);
                ys.push(d);
            }
            self.note(Op::CMult, terms.len() as u64);
            let [i0, i1]: [B::Poly; 2] = be
                .dot_parts_runs(&xs, &ys, lt.run)?
                .try_into()
                .map_err(|_| CkksError::DegreeTooHigh(2))?;
            let term = match giant_keys.get(&g) {
                // g = 0: no rotation.
                None => [i0, i1],
                Some(&(e, key)) => {
                    self.note(Op::Rot, 1);
                    let c1 = be.mod_down_owned(i1, &p_basis)?;
                    let c1 = be.automorphism_new(&c1, e)?;
                    let dec = self.decompose(&c1, level)?;
                    drop(c1);
                    let [mut u0, u1] = self.key_switch_lazy(&dec.digits, level, key)?;
                    drop(dec);
                    let r0 = be.automorphism_new(&i0, e)?;
                    be.add_assign(&mut u0, &r0)?;
                    [u0, u1]
                }
            };
            match &mut acc {
                None => acc = Some(term),
                Some([a0, a1]) => {
                    be.add_assign(a0, &term[0])?;
                    be.add_assign(a1, &term[1])?;
                }
            }
        }
        let Some([a0, a1]) = acc else {
            let zero = self.mul_integer(ct, 0)?;
            let mut out = self.rescale_owned(zero)?;
            out.scale = lt.output_scale;
            return Ok(out);
        };
        // acc / (P·q_ℓ), rounded: ModDown and rescale in one division.
        self.note(Op::Rescale, 1);
        let zero = be.zero(&q_basis, repr)?;
        Ok(Ciphertext {
            parts: vec![
                be.mod_down_rescale(&a0, zero.clone(), &p_basis)?,
                be.mod_down_rescale(&a1, zero, &p_basis)?,
            ],
            level: level - 1,
            scale: lt.output_scale,
            slots: ct.slots,
        })
    }
}
