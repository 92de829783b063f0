//! Level-aware ciphertext arithmetic for the training circuits: every result sits at
//! the canonical scale `Δ_ℓ` of its level ([`ckks::Parameters::scale_at`]), operands
//! at different levels are brought down with [`Evaluator::adjust`], and a
//! [`Refresher`] bootstraps whatever runs out of levels, counting and timing every
//! bootstrap.

use crate::error::{Result, TrainError};
use he_linalg::ckks::{self, Bootstrapper, Ciphertext, Complex64, Evaluator, Plaintext};
use he_linalg::{Backend, MatrixEvaluator};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Bootstrap count and time, accumulated by a [`Refresher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BootstrapStats {
    /// Bootstraps run.
    pub count: usize,
    /// Of which sparse-slot ones (ASoftmax's folded blocks).
    pub sparse: usize,
    /// Wall-clock seconds spent in them.
    pub seconds: f64,
}

/// Canonical-scale arithmetic on one evaluator, with encoded slot masks (keyed by a
/// caller-chosen name and the level) from the matrix evaluator's cache
/// ([`MatrixEvaluator::mask`]).
pub struct Ops<B: Backend> {
    ev: Arc<Evaluator<B>>,
    mev: MatrixEvaluator<B>,
}

impl<B: Backend> std::fmt::Debug for Ops<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").finish_non_exhaustive()
    }
}

impl<B: Backend> Ops<B> {
    /// Wraps an evaluator (server side: evaluation keys only).
    pub fn new(ev: Arc<Evaluator<B>>) -> Self {
        Self {
            mev: MatrixEvaluator::new(ev.clone()),
            ev,
        }
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Arc<Evaluator<B>> {
        &self.ev
    }

    /// The matrix evaluator on the same evaluator (DiagABT, DiagATB).
    pub fn matrix(&self) -> &MatrixEvaluator<B> {
        &self.mev
    }

    /// `ct` brought to `level ≤ ct.level` at that level's canonical scale
    /// ([`MatrixEvaluator::align`]).
    ///
    /// # Errors
    /// [`TrainError::Linalg`] for `level > ct.level` or a non-canonical scale at
    /// `level`.
    pub fn align(&self, ct: &Ciphertext<B>, level: usize) -> Result<Ciphertext<B>> {
        Ok(self.mev.align(ct, level)?)
    }

    fn pair(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        let l = a.level().min(b.level());
        Ok((self.align(a, l)?, self.align(b, l)?))
    }

    /// `a + b` at the lower of the two levels.
    ///
    /// # Errors
    /// CKKS errors (slot counts).
    pub fn add(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let (a, b) = self.pair(a, b)?;
        Ok(self.ev.add(&a, &b)?)
    }

    /// `a − b` at the lower of the two levels.
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn sub(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let (a, b) = self.pair(a, b)?;
        Ok(self.ev.sub(&a, &b)?)
    }

    /// `a · b`, relinearized and rescaled: one level below the lower operand.
    ///
    /// # Errors
    /// [`ckks::CkksError::LevelTooLow`] when an operand is at level 0.
    pub fn mul(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let (a, b) = self.pair(a, b)?;
        Ok(self.ev.mul_relin_rescale(&a, &b)?)
    }

    /// `a · c` for a real constant, rescaled (one level).
    ///
    /// # Errors
    /// As [`Self::mul`].
    pub fn mul_const(&self, a: &Ciphertext<B>, c: f64) -> Result<Ciphertext<B>> {
        self.check_canonical(a)?;
        Ok(self.ev.rescale_owned(self.ev.mul_const(a, c)?)?)
    }

    /// `a + c` for a real constant (no level).
    ///
    /// # Errors
    /// CKKS errors.
    pub fn add_const(&self, a: &Ciphertext<B>, c: f64) -> Result<Ciphertext<B>> {
        Ok(self.ev.add_const(a, c)?)
    }

    /// Rotation left by `k` slots (negative: right).
    ///
    /// # Errors
    /// [`ckks::CkksError::MissingGaloisKey`].
    pub fn rotate(&self, a: &Ciphertext<B>, k: i64) -> Result<Ciphertext<B>> {
        Ok(self.ev.rotate(a, k)?)
    }

    fn mask(
        &self,
        name: &str,
        level: usize,
        values: &dyn Fn() -> Vec<f64>,
    ) -> Result<Arc<Plaintext<B>>> {
        // The matrix evaluator's cache (one cache per server); real slots as complex
        // values encode to the same plaintext as `Context::encode_at_level`.
        Ok(self.mev.mask(name.to_owned(), level, || {
            values()
                .into_iter()
                .map(|x| Complex64::new(x, 0.0))
                .collect()
        })?)
    }

    /// Errors unless `a` is at its level's canonical scale (no copy).
    fn check_canonical(&self, a: &Ciphertext<B>) -> Result<()> {
        let s = self.ev.context().params().scale_at(a.level())?;
        if a.scale() != s {
            return Err(ckks::CkksError::ScaleMismatch(a.scale(), s).into());
        }
        Ok(())
    }

    /// The mask `name` encoded for `a`'s level, after checking `a`'s scale.
    fn mask_for(
        &self,
        a: &Ciphertext<B>,
        name: &str,
        values: &dyn Fn() -> Vec<f64>,
    ) -> Result<Arc<Plaintext<B>>> {
        self.check_canonical(a)?;
        self.mask(name, a.level(), values)
    }

    /// `a ⊙ v` for a slot vector `v` (cached under `name`), rescaled (one level).
    ///
    /// # Errors
    /// As [`Self::mul`].
    pub fn mul_mask(
        &self,
        a: &Ciphertext<B>,
        name: &str,
        values: &dyn Fn() -> Vec<f64>,
    ) -> Result<Ciphertext<B>> {
        let pt = self.mask_for(a, name, values)?;
        Ok(self.ev.rescale_owned(self.ev.mul_plain(a, &pt)?)?)
    }

    /// `a + v` for a slot vector `v` (cached under `name`; no level).
    ///
    /// # Errors
    /// CKKS errors.
    pub fn add_mask(
        &self,
        a: &Ciphertext<B>,
        name: &str,
        values: &dyn Fn() -> Vec<f64>,
    ) -> Result<Ciphertext<B>> {
        let pt = self.mask_for(a, name, values)?;
        Ok(self.ev.add_plain(a, &pt)?)
    }

    /// Evaluates a polynomial (canonical output scale).
    ///
    /// # Errors
    /// [`ckks::CkksError::LevelTooLow`] below the polynomial's depth.
    pub fn poly(&self, a: &Ciphertext<B>, p: &ckks::Polynomial) -> Result<Ciphertext<B>> {
        Ok(self.ev.evaluate_polynomial(a, p)?)
    }

    /// `w ⊙ p(a)` for slot weights `w`, at the polynomial's depth
    /// ([`ckks::Evaluator::evaluate_polynomial_weighted`]).
    ///
    /// # Errors
    /// As [`Self::poly`]; a weight vector of the wrong length.
    pub fn poly_weighted(
        &self,
        a: &Ciphertext<B>,
        p: &ckks::Polynomial,
        weights: &[f64],
    ) -> Result<Ciphertext<B>> {
        Ok(self.ev.evaluate_polynomial_weighted(a, p, weights)?)
    }
}

fn poisoned<T>(_: T) -> TrainError {
    TrainError::Config("a lock was poisoned by a panicking thread".into())
}

/// Bootstraps ciphertexts that have run out of levels (the server's own decision),
/// counting and timing each bootstrap: full-slot ciphertexts with the main
/// bootstrapper, sparse ones with the bootstrapper for their slot count
/// ([`Self::with_sparse`]).
pub struct Refresher<B: Backend> {
    boot: Arc<Bootstrapper<B>>,
    sparse: Vec<Arc<Bootstrapper<B>>>,
    stats: Mutex<BootstrapStats>,
    passengers: Mutex<Passengers<B>>,
}

/// Ciphertexts boarded with [`Refresher::board`] and [`Refresher::board_correction`]:
/// those waiting for a ride, and each boarding's state by boarding index.
struct Passengers<B: Backend> {
    waiting: VecDeque<Rider<B>>,
    done: Vec<Seat<B>>,
    /// Boardings of [`Refresher::board_correction`], which only
    /// [`Refresher::collect`] hands back.
    owned: Vec<usize>,
}

/// Where a boarding stands.
enum Seat<B: Backend> {
    /// A ride or a correction is pending.
    Riding,
    /// Refreshed (and corrected where a correction found its ride).
    Back(Ciphertext<B>),
    /// Taken by [`Refresher::collect`]; [`Refresher::alight`] skips it.
    Collected,
}

impl<B: Backend> Default for Passengers<B> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            done: Vec::new(),
            owned: Vec::new(),
        }
    }
}

/// A passenger waiting for a ride.
struct Rider<B: Backend> {
    /// Boarding index.
    id: usize,
    /// What rides: the boarded ciphertext, or its first refresh's error scaled by
    /// `2^gain_bits`.
    ct: Ciphertext<B>,
    bound: f64,
    /// For a correction: the first refresh, which the correction improves.
    first: Option<Ciphertext<B>>,
    /// For a correction: `log2` of the factor its error was scaled by (the refreshed
    /// correction is divided by it, one level when not 0).
    gain_bits: u32,
}

/// `log2` of the factor a passenger's refresh error is scaled by before it rides again
/// as a correction ([`Refresher::board`]), for a passenger bounded by 1. The error of one
/// refresh is at most `2^-19.5` per slot at N = 2^16 (docs/results/bootstrap.md), twice
/// that in a pair: scaled by `2^12` it stays below `2^-6.5`, far inside the `[−1, 1]` a
/// bootstrap takes. A passenger with a larger bound rides scaled by `1/M` (`M` the pair
/// factor, [`Refresher::refresh_pair`]), so its error is `M/2` times larger and its gain
/// that much smaller ([`correction_gain_bits`]).
pub const CORRECTION_BITS: u32 = 12;

/// `log2` of the gain of the correction of a passenger bounded by `bound`:
/// [`CORRECTION_BITS`] less `log2(M/2)`, with `M` the smallest power of two
/// `≥ 2·max(bound, 1)` that scales it in a pair, so that the scaled error stays below
/// `2^-6.5` whatever the bound (at least 1 bit of gain).
pub fn correction_gain_bits(bound: f64) -> u32 {
    let m = (2.0 * bound.max(1.0)).log2().ceil();
    // `m ≥ 1`; a bound beyond 2^11 keeps one bit of gain.
    CORRECTION_BITS.saturating_sub(m as u32 - 1).max(1)
}

/// The bound a correction rides with (`2^-5`, four times the largest scaled error
/// above): small enough that its host keeps the scaling of a lone refresh when that
/// is at least 2 ([`Refresher::refresh_pair`]'s factors).
const CORRECTION_BOUND: f64 = 1.0 / 32.0;

impl<B: Backend> std::fmt::Debug for Refresher<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Refresher<B> {
    /// Wraps a bootstrapper.
    pub fn new(boot: Arc<Bootstrapper<B>>) -> Self {
        Self {
            boot,
            sparse: Vec::new(),
            stats: Mutex::new(BootstrapStats::default()),
            passengers: Mutex::new(Passengers::default()),
        }
    }

    /// Adds a bootstrapper for ciphertexts of its (sparse) slot count.
    ///
    /// # Errors
    /// [`TrainError::Config`] if its output or input level differs from the main one's
    /// (the step plans with one refresh level and one floor).
    pub fn with_sparse(mut self, boot: Arc<Bootstrapper<B>>) -> Result<Self> {
        if boot.output_level() != self.boot.output_level()
            || boot.input_level() != self.boot.input_level()
        {
            return Err(TrainError::Config(format!(
                "sparse bootstrapping refreshes from level {} to {}, full-slot from {} to {}",
                boot.input_level(),
                boot.output_level(),
                self.boot.input_level(),
                self.boot.output_level()
            )));
        }
        self.sparse.push(boot);
        Ok(self)
    }

    /// The level a refreshed ciphertext lands at.
    pub fn output_level(&self) -> usize {
        self.boot.output_level()
    }

    /// The floor: the level a ciphertext is refreshed from (`Bootstrapper::input_level`:
    /// 0, or 3 with SlotsToCoeffs first at N = 2^16). A ciphertext that will be
    /// refreshed must not go below it; one that is only decrypted may.
    pub fn floor(&self) -> usize {
        self.boot.input_level()
    }

    /// Levels a refresh provides: [`Self::output_level`] − [`Self::floor`].
    pub fn budget(&self) -> usize {
        self.output_level() - self.floor()
    }

    fn bootstrapper(&self, slots: usize) -> Result<&Bootstrapper<B>> {
        if slots == self.boot.slots() {
            return Ok(&self.boot);
        }
        self.sparse
            .iter()
            .find(|b| b.slots() == slots)
            .map(|b| &**b)
            .ok_or_else(|| {
                TrainError::Config(format!("no bootstrapper for {slots}-slot ciphertexts"))
            })
    }

    /// Bootstraps so far.
    pub fn stats(&self) -> BootstrapStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Bootstraps `ct`, whose slots are bounded by `bound` in absolute value: above 1
    /// the message is first scaled by `1/M` (`M` the next power of two, one level, so
    /// the input needs a level above the [`Self::floor`]) and multiplied back by the
    /// integer `M` afterwards,
    /// which keeps EvalMod's sine in its accurate range (its error grows with the
    /// cube of the message) at the price of `M` times the bootstrapping error.
    ///
    /// A full-slot `ct` above the floor takes the first waiting passenger
    /// ([`Self::board`]) along in its imaginary half: one bootstrap for both, at the price
    /// of one bit of `ct`'s precision for a passenger of its own size (it is scaled by
    /// `1/(2M)` instead of `1/M`) and none for a correction when `M ≥ 2`.
    ///
    /// # Errors
    /// [`ckks::CkksError::LevelTooLow`] below the floor, or for `bound > 1` at it;
    /// bootstrapping errors.
    pub fn refresh(&self, ops: &Ops<B>, ct: &Ciphertext<B>, bound: f64) -> Result<Ciphertext<B>> {
        self.refresh_impl(ops, ct, bound, None)
    }

    /// [`Self::refresh`] that returns `ct/m` instead of `ct`, for a power of two `m ≥ 2·bound`
    /// (`ct` bounded by `bound`): the scaling by `1/m` that the bootstrap needs anyway
    /// becomes the result's, so a caller that wants the message scaled by `1/m` saves the
    /// level a constant multiplication after the refresh would cost (ASoftmax's logits,
    /// scaled by `1/(2R_max)`); `ct` itself is `m` times it, an integer multiplication.
    /// Takes a waiting passenger along as [`Self::refresh`] does (`ct` scaled by
    /// `1/(2m)` in the pair, the passenger by its own factor).
    ///
    /// # Errors
    /// [`TrainError::Config`] unless `m` is a power of two with `m ≥ 2·bound`; as
    /// [`Self::refresh`].
    pub fn refresh_scaled(
        &self,
        ops: &Ops<B>,
        ct: &Ciphertext<B>,
        bound: f64,
        m: f64,
    ) -> Result<Ciphertext<B>> {
        if !(m >= 1.0 && m.log2().fract() == 0.0 && m >= 2.0 * bound) {
            return Err(TrainError::Config(format!(
                "a scaled refresh divides by a power of two at least twice the bound \
                 ({bound}); got {m}"
            )));
        }
        self.refresh_impl(ops, ct, bound, Some(m))
    }

    fn refresh_impl(
        &self,
        ops: &Ops<B>,
        ct: &Ciphertext<B>,
        bound: f64,
        divide: Option<f64>,
    ) -> Result<Ciphertext<B>> {
        tracing::trace!(target: "hetal_train::refresh", level = ct.level(), bound, "refresh");
        if ct.level() > self.floor() && self.pairs(ct.slots()) {
            let next = self
                .passengers
                .lock()
                .map_err(poisoned)?
                .waiting
                .pop_front();
            if let Some(rider) = next {
                tracing::debug!(
                    target: "hetal_train::refresh",
                    level = ct.level(),
                    correction = rider.first.is_some(),
                    "bootstrap (with a passenger)"
                );
                let (out, back) =
                    self.pair_bootstrap_with(ops, (ct, bound), (&rider.ct, rider.bound), divide)?;
                self.arrive(ops, rider, back)?;
                return Ok(out);
            }
        }
        let clock = Instant::now();
        let boot = self.bootstrapper(ct.slots())?;
        let out = if let Some(m) = divide {
            boot.bootstrap(&ops.mul_const(ct, 1.0 / m)?)?
        } else if bound > 1.0 {
            let m = bound.log2().ceil().exp2();
            let scaled = ops.mul_const(ct, 1.0 / m)?;
            let b = boot.bootstrap(&scaled)?;
            ops.evaluator().mul_integer(&b, m as i64)?
        } else {
            boot.bootstrap(ct)?
        };
        self.record(clock, ct.slots() != self.boot.slots())?;
        Ok(out)
    }

    /// Whether [`Self::refresh_pair`] takes ciphertexts of `slots` slots (full-slot ones).
    pub fn pairs(&self, slots: usize) -> bool {
        slots == self.boot.slots()
    }

    /// Bootstraps two real-valued ciphertexts with one full-slot bootstrap: `a + i·b`
    /// scaled by `1/M` (one level: both must be at level ≥ 1, same level and scale) is
    /// refreshed (both above the floor), and its conjugate separates the parts, `a = (z + z̄)·M/2` and
    /// `b = −i·(z − z̄)·M/2` (one conjugation, `M/2` an integer; no level). `M` is the
    /// smallest power of two ≥ `2·max(bound, 1)`, with `bound` bounding both messages in
    /// absolute value, so the packed slots stay in `[−1, 1]`. A full-slot bootstrap refreshes the
    /// real and imaginary parts together (its CoeffsToSlots splits them anyway), so the
    /// second ciphertext comes at the price of three conjugations (one separates the
    /// parts; one per input keeps only its real part, since a ciphertext that went
    /// through a circuit carries an imaginary error as large as its real one, which would
    /// otherwise land in the other part: measured, a passenger 4–6 bits worse); each part
    /// carries `M` times the bootstrapping error. Counted as one bootstrap.
    ///
    /// # Errors
    /// [`TrainError::Config`] for ciphertexts at different levels or scales, at the
    /// floor, or not full-slot; bootstrapping errors (the conjugation key is one that full-slot
    /// bootstrapping needs anyway).
    pub fn refresh_pair(
        &self,
        ops: &Ops<B>,
        a: &Ciphertext<B>,
        b: &Ciphertext<B>,
        bound: f64,
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        if a.level() != b.level() || a.scale() != b.scale() {
            return Err(TrainError::Config(format!(
                "a pair refresh takes two ciphertexts at one level and scale (levels {} and {})",
                a.level(),
                b.level()
            )));
        }
        tracing::debug!(
            target: "hetal_train::refresh",
            level = a.level(),
            bound,
            "bootstrap (pair)"
        );
        self.pair_bootstrap(ops, (a, bound), (b, bound))
    }

    /// The pair refresh of [`Self::refresh_pair`] with a bound per part, after aligning
    /// both to the lower level: `M_b` the smallest power of two ≥ `2·max(bound_b, 1)` (at
    /// least 2: `M_b/2` is the integer that restores `b`),
    /// `M_a` the smallest power of two ≥ 2 with `bound_a/M_a + bound_b/M_b ≤ 1` (equal
    /// bounds give [`Self::refresh_pair`]'s `M`; a small `b` leaves `a` the factor of a
    /// lone refresh once that is ≥ 2, so a correction rides at no cost in precision to
    /// a host bounded above 1). The parts are scaled apart, in the same level.
    fn pair_bootstrap(
        &self,
        ops: &Ops<B>,
        a: (&Ciphertext<B>, f64),
        b: (&Ciphertext<B>, f64),
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        self.pair_bootstrap_with(ops, a, b, None)
    }

    /// [`Self::pair_bootstrap`]; with `a_divide = Some(m)`, `a`'s factor is `2m` and its
    /// part comes back as `a/m` (`z + z̄`, not multiplied back).
    fn pair_bootstrap_with(
        &self,
        ops: &Ops<B>,
        (a, bound_a): (&Ciphertext<B>, f64),
        (b, bound_b): (&Ciphertext<B>, f64),
        a_divide: Option<f64>,
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        let level = a.level().min(b.level());
        if level <= self.floor() || a.slots() != self.boot.slots() || b.slots() != self.boot.slots()
        {
            return Err(TrainError::Config(format!(
                "a pair refresh takes two full-slot ciphertexts above level {} (levels {} and {})",
                self.floor(),
                a.level(),
                b.level()
            )));
        }
        let clock = Instant::now();
        let ev = ops.evaluator();
        // b's factor as for a pair of equals; a's the smallest power of two ≥ 2 that keeps
        // |Re| + |Im| ≤ 1 (for a small b, such as a correction, the one a lone refresh
        // of a would use when that is ≥ 2).
        let mb = (2.0 * bound_b.max(1.0)).log2().ceil().exp2();
        let room = 1.0 - bound_b / mb;
        let ma = match a_divide {
            Some(m) if bound_a / (2.0 * m) <= room => 2.0 * m,
            Some(m) => {
                return Err(TrainError::Config(format!(
                    "a pair refresh cannot scale a part bounded by {bound_a} by 1/{m} \
                     beside one bounded by {bound_b}"
                )));
            }
            None => (bound_a / room).max(2.0).log2().ceil().exp2(),
        };
        // Real parts only: a ciphertext that went through a circuit carries an imaginary
        // error as large as its real one, which would land in the other part. `x + x̄` is
        // twice the real part; the 1/2 joins the scaling.
        let real = |x: &Ciphertext<B>, m: f64| -> Result<Ciphertext<B>> {
            let x = ops.align(x, level)?;
            ops.mul_const(&ev.add(&x, &ev.conjugate(&x)?)?, 0.5 / m)
        };
        let (a, b) = (real(a, ma)?, real(b, mb)?);
        let z = self.boot.bootstrap(&ev.add(&a, &ev.mul_by_i(&b)?)?)?;
        let conj = ev.conjugate(&z)?;
        let re = match a_divide {
            Some(_) => ev.add(&z, &conj)?,
            None => ev.mul_integer(&ev.add(&z, &conj)?, (ma / 2.0) as i64)?,
        };
        let im = ev.mul_integer(
            &ev.neg(&ev.mul_by_i(&ev.sub(&z, &conj)?)?)?,
            (mb / 2.0) as i64,
        )?;
        self.record(clock, false)?;
        Ok((re, im))
    }

    /// Boards `ct` (full-slot, above the floor, slots bounded by `bound`) for a ride: the
    /// next [`Self::refresh`] of a full-slot ciphertext above the floor refreshes it in the
    /// same bootstrap, in its imaginary half, and [`Self::alight`] hands it back. A
    /// caller boards what it will need refreshed after a stretch of work that
    /// bootstraps anyway (the weights during ASoftmax), and the ride is free.
    ///
    /// A passenger back from its ride boards again as a correction (Bae et al.,
    /// "META-BTS", CCS 2022, §3): its refresh error `e = x' − x`, computed at `x`'s
    /// level, scaled by `2^g` (`g` = [`correction_gain_bits`]`(bound)`, 12 for a bound
    /// of 1; an integer multiplication, no level), rides with the next refresh, and
    /// `x'' = x' − ê·2^-g` (one level) carries that refresh's error divided by `2^g`
    /// instead of `x'`'s. A correction that finds no
    /// ride before [`Self::alight`] is dropped (`x'` is handed back): it never costs a
    /// bootstrap of its own.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a sparse ciphertext or one at or below the floor.
    pub fn board(&self, ct: Ciphertext<B>, bound: f64) -> Result<()> {
        self.enqueue(ct, bound, None).map(|_| ())
    }

    /// Books a seat for `ct` (a passenger, or with `first` the caller's own correction,
    /// which goes to the front of the queue and only [`Self::collect`] hands back).
    fn enqueue(
        &self,
        ct: Ciphertext<B>,
        bound: f64,
        first: Option<Ciphertext<B>>,
    ) -> Result<usize> {
        if ct.level() <= self.floor() || !self.pairs(ct.slots()) {
            return Err(TrainError::Config(format!(
                "a passenger is a full-slot ciphertext above level {} ({} slots, level {})",
                self.floor(),
                ct.slots(),
                ct.level()
            )));
        }
        let mut p = self.passengers.lock().map_err(poisoned)?;
        let id = p.done.len();
        p.done.push(Seat::Riding);
        let own = first.is_some();
        // 0: the caller's own correction is not scaled; a passenger's first ride does
        // not read it (`arrive` gives its correction the gain for its bound).
        let rider = Rider {
            id,
            ct,
            bound,
            first,
            gain_bits: 0,
        };
        if own {
            p.owned.push(id);
            p.waiting.push_front(rider);
        } else {
            p.waiting.push_back(rider);
        }
        Ok(id)
    }

    /// Boards the correction of a refresh the caller made itself (Bae et al.,
    /// "META-BTS", CCS 2022, §3, as for [`Self::board`]'s second ride): `first` is
    /// the refreshed ciphertext and `error = first − exact`, computed by the caller at a
    /// level above the floor, bounded by `bound`. It rides in the imaginary half of the
    /// **next** full-slot refresh above the floor, ahead of waiting passengers (the
    /// caller needs it back within its own circuit), and [`Self::collect`] returns
    /// `first − refresh(error)`: no level (the error is not scaled), and the refresh
    /// error of `first` replaced by that of the correction's ride, whose host scales it
    /// by 2 where `first`'s own refresh scaled by the message's bound.
    ///
    /// Returns the boarding index for [`Self::collect`].
    ///
    /// # Errors
    /// [`TrainError::Config`] for a sparse `error` or one at or below the floor.
    pub fn board_correction(
        &self,
        first: Ciphertext<B>,
        error: Ciphertext<B>,
        bound: f64,
    ) -> Result<usize> {
        self.enqueue(error, bound, Some(first))
    }

    /// Takes back the ciphertext boarded under `id` by [`Self::board_correction`]: the
    /// corrected one if its correction has had its ride, else the uncorrected first
    /// refresh (the correction is dropped). [`Self::alight`] no longer returns it.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an unknown or already collected index.
    pub fn collect(&self, id: usize) -> Result<Ciphertext<B>> {
        let mut p = self.passengers.lock().map_err(poisoned)?;
        let seat = p
            .done
            .get_mut(id)
            .map(|s| std::mem::replace(s, Seat::Collected))
            .ok_or_else(|| TrainError::Config(format!("no passenger {id}")))?;
        match seat {
            Seat::Back(ct) => Ok(ct),
            Seat::Collected => Err(TrainError::Config(format!(
                "passenger {id} collected twice"
            ))),
            Seat::Riding => {
                let pos = p
                    .waiting
                    .iter()
                    .position(|r| r.id == id)
                    .ok_or_else(|| TrainError::Config(format!("passenger {id} is lost")))?;
                p.waiting
                    .remove(pos)
                    .and_then(|r| r.first)
                    .ok_or_else(|| TrainError::Config(format!("passenger {id} has no refresh")))
            }
        }
    }

    /// Drops every passenger boarded since the last [`Self::alight`] (a step that failed
    /// halfway leaves its own behind).
    ///
    /// # Errors
    /// [`TrainError::Config`] for a poisoned lock.
    pub fn discard_passengers(&self) -> Result<()> {
        *self.passengers.lock().map_err(poisoned)? = Passengers::default();
        Ok(())
    }

    /// A rider is back with its refresh `back`: a first ride boards its correction
    /// (or, with no level left for it, is done), a correction completes the passenger.
    fn arrive(&self, ops: &Ops<B>, rider: Rider<B>, back: Ciphertext<B>) -> Result<()> {
        let ev = ops.evaluator();
        let (done, next) = match rider.first {
            None => {
                let gain_bits = correction_gain_bits(rider.bound);
                let e = ops.sub(&ops.align(&back, rider.ct.level())?, &rider.ct)?;
                let e = ev.mul_integer(&e, 1i64 << gain_bits)?;
                if e.level() <= self.floor() {
                    (Some(back), None)
                } else {
                    let next = Rider {
                        id: rider.id,
                        ct: e,
                        bound: CORRECTION_BOUND,
                        first: Some(back),
                        gain_bits,
                    };
                    (None, Some(next))
                }
            }
            Some(first) => {
                let fixed = if rider.gain_bits == 0 {
                    ops.sub(&first, &back)?
                } else {
                    let fix = ops.mul_const(&back, -f64::from(rider.gain_bits).exp2().recip())?;
                    ops.add(&first, &fix)?
                };
                (Some(fixed), None)
            }
        };
        let mut p = self.passengers.lock().map_err(poisoned)?;
        let slot = p
            .done
            .get_mut(rider.id)
            .ok_or_else(|| TrainError::Config("passengers were taken during a ride".into()))?;
        if let (Some(ct), Seat::Riding) = (done, &*slot) {
            *slot = Seat::Back(ct);
        }
        if let Some(next) = next {
            p.waiting.push_back(next);
        }
        Ok(())
    }

    /// Every ciphertext boarded with [`Self::board`] since the last call, refreshed, in
    /// boarding order: those that found no ride are bootstrapped now, two at a time as a
    /// pair (a pending correction rides along with one for free, and is otherwise
    /// dropped). Boardings of [`Self::board_correction`] are not returned (uncollected
    /// ones are dropped).
    ///
    /// # Errors
    /// As [`Self::refresh_pair`] and [`Self::refresh`].
    pub fn alight(&self, ops: &Ops<B>) -> Result<Vec<Ciphertext<B>>> {
        let riders = std::mem::take(&mut self.passengers.lock().map_err(poisoned)?.waiting);
        let (mut fresh, mut corrections): (VecDeque<_>, VecDeque<_>) =
            riders.into_iter().partition(|r| r.first.is_none());
        while let Some(a) = fresh.pop_front() {
            match fresh.pop_front().or_else(|| corrections.pop_front()) {
                Some(b) => {
                    tracing::debug!(target: "hetal_train::refresh", "bootstrap (two passengers)");
                    let (ra, rb) = self.pair_bootstrap(ops, (&a.ct, a.bound), (&b.ct, b.bound))?;
                    self.arrive(ops, a, ra)?;
                    self.arrive(ops, b, rb)?;
                }
                None => {
                    tracing::debug!(target: "hetal_train::refresh", "bootstrap (a passenger alone)");
                    let back = self.refresh(ops, &a.ct, a.bound)?;
                    self.arrive(ops, a, back)?;
                }
            }
            // Corrections boarded by these arrivals wait with the others.
            corrections.extend(std::mem::take(
                &mut self.passengers.lock().map_err(poisoned)?.waiting,
            ));
        }
        let mut p = std::mem::take(&mut *self.passengers.lock().map_err(poisoned)?);
        for r in corrections {
            if let (Some(slot), Some(first)) = (p.done.get_mut(r.id), r.first) {
                *slot = Seat::Back(first);
            }
        }
        let owned = std::mem::take(&mut p.owned);
        p.done
            .into_iter()
            .enumerate()
            .filter(|(id, _)| !owned.contains(id))
            .filter_map(|(_, seat)| match seat {
                Seat::Back(ct) => Some(Ok(ct)),
                Seat::Collected => None,
                Seat::Riding => Some(Err(TrainError::Config("a passenger was lost".into()))),
            })
            .collect()
    }

    /// Counts one bootstrap started at `clock`.
    fn record(&self, clock: Instant, sparse: bool) -> Result<()> {
        let mut s = self.stats.lock().map_err(poisoned)?;
        s.count += 1;
        s.sparse += usize::from(sparse);
        s.seconds += clock.elapsed().as_secs_f64();
        Ok(())
    }

    /// `ct` itself if it has at least `levels` levels above the [`Self::floor`] (so that
    /// what consumes them can still be refreshed), else [`Self::refresh`]ed.
    ///
    /// # Errors
    /// [`TrainError::Config`] if even a refreshed ciphertext would have fewer levels;
    /// as [`Self::refresh`].
    pub fn ensure(
        &self,
        ops: &Ops<B>,
        ct: &Ciphertext<B>,
        levels: usize,
        bound: f64,
    ) -> Result<Ciphertext<B>> {
        self.ensure_level(ops, ct, self.floor() + levels, bound)
    }

    /// `ct` itself if it is at `level` or above, else [`Self::refresh`]ed (the step
    /// plan's absolute levels, [`super::StepPlan`]).
    ///
    /// # Errors
    /// As [`Self::ensure`].
    pub fn ensure_level(
        &self,
        ops: &Ops<B>,
        ct: &Ciphertext<B>,
        level: usize,
        bound: f64,
    ) -> Result<Ciphertext<B>> {
        if ct.level() >= level {
            return Ok(ct.clone());
        }
        if self.output_level() < level {
            return Err(TrainError::Config(format!(
                "a step needs level {level}; bootstrapping only provides {}",
                self.output_level()
            )));
        }
        // The levels left unused by this refresh (the waste a better plan would save).
        tracing::debug!(
            target: "hetal_train::refresh",
            level = ct.level(),
            need = level,
            bound,
            "bootstrap"
        );
        self.refresh(ops, ct, bound)
    }
}

impl<B: Backend> crate::train::UpdateArith<Ciphertext<B>> for Ops<B> {
    fn sub(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        Ops::sub(self, a, b)
    }
    fn add(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        Ops::add(self, a, b)
    }
    fn scale(&self, a: &Ciphertext<B>, c: f64) -> Result<Ciphertext<B>> {
        self.mul_const(a, c)
    }
}

#[cfg(test)]
mod tests {
    use super::{CORRECTION_BITS, correction_gain_bits};

    /// The gain keeps `2^gain · (pair factor) · 2^-19.5` at `2^-6.5` for every bound.
    #[test]
    fn correction_gain_shrinks_with_the_pair_factor() {
        assert_eq!(correction_gain_bits(1.0), CORRECTION_BITS);
        assert_eq!(correction_gain_bits(1.0 / 32.0), CORRECTION_BITS);
        // The weights' compacts: M = 16 rides with the factor 32, 16 times a bound of 1.
        assert_eq!(correction_gain_bits(16.0), CORRECTION_BITS - 4);
        assert_eq!(correction_gain_bits(9.0), CORRECTION_BITS - 4);
        assert_eq!(correction_gain_bits(1e9), 1);
    }
}
