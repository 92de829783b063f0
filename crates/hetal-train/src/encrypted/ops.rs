//! Level-aware ciphertext arithmetic for the training circuits: every result sits at
//! the canonical scale `Δ_ℓ` of its level ([`ckks::Parameters::scale_at`]), operands
//! at different levels are brought down with [`Evaluator::adjust`], and a
//! [`Refresher`] bootstraps whatever runs out of levels, counting and timing every
//! bootstrap.

use crate::error::{Result, TrainError};
use he_linalg::ckks::{self, Bootstrapper, Ciphertext, Evaluator, Plaintext};
use he_linalg::{Backend, MatrixEvaluator};
use std::collections::HashMap;
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

/// Encoded masks by (name, level).
type MaskCache<B> = Mutex<HashMap<(String, usize), Arc<Plaintext<B>>>>;

/// Canonical-scale arithmetic on one evaluator, with a cache of encoded slot masks
/// (keyed by a caller-chosen name and the level).
pub struct Ops<B: Backend> {
    ev: Arc<Evaluator<B>>,
    mev: MatrixEvaluator<B>,
    masks: MaskCache<B>,
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
            masks: Mutex::new(HashMap::new()),
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
        let key = (name.to_owned(), level);
        if let Some(p) = self.masks.lock().map_err(poisoned)?.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.ev.context().encode_at_level(&values(), level)?);
        self.masks.lock().map_err(poisoned)?.insert(key, p.clone());
        Ok(p)
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
}

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
        }
    }

    /// Adds a bootstrapper for ciphertexts of its (sparse) slot count.
    ///
    /// # Errors
    /// [`TrainError::Config`] if its output level differs from the main one's (the step
    /// plans with one refresh level).
    pub fn with_sparse(mut self, boot: Arc<Bootstrapper<B>>) -> Result<Self> {
        if boot.output_level() != self.boot.output_level() {
            return Err(TrainError::Config(format!(
                "sparse bootstrapping lands at level {}, full-slot at {}",
                boot.output_level(),
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
    /// the input needs level ≥ 1) and multiplied back by the integer `M` afterwards,
    /// which keeps EvalMod's sine in its accurate range (its error grows with the
    /// cube of the message) at the price of `M` times the bootstrapping error.
    ///
    /// # Errors
    /// [`ckks::CkksError::LevelTooLow`] for `bound > 1` at level 0; bootstrapping errors.
    pub fn refresh(&self, ops: &Ops<B>, ct: &Ciphertext<B>, bound: f64) -> Result<Ciphertext<B>> {
        tracing::trace!(target: "hetal_train::refresh", level = ct.level(), bound, "refresh");
        let clock = Instant::now();
        let boot = self.bootstrapper(ct.slots())?;
        let out = if bound > 1.0 {
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
    /// refreshed, and its conjugate separates the parts, `a = (z + z̄)·M/2` and
    /// `b = −i·(z − z̄)·M/2` (one conjugation, `M/2` an integer; no level). `M` is the
    /// smallest power of two ≥ `2·bound`, with `bound` bounding both messages in absolute
    /// value, so the packed slots stay in `[−1, 1]`. A full-slot bootstrap refreshes the
    /// real and imaginary parts together (its CoeffsToSlots splits them anyway), so the
    /// second ciphertext comes at the price of a conjugation; each part carries `M/2`
    /// times the bootstrapping error. Counted as one bootstrap.
    ///
    /// # Errors
    /// [`TrainError::Config`] for ciphertexts at different levels or scales, at level 0,
    /// or not full-slot; bootstrapping errors (the conjugation key is one that full-slot
    /// bootstrapping needs anyway).
    pub fn refresh_pair(
        &self,
        ops: &Ops<B>,
        a: &Ciphertext<B>,
        b: &Ciphertext<B>,
        bound: f64,
    ) -> Result<(Ciphertext<B>, Ciphertext<B>)> {
        if a.level() != b.level()
            || a.scale() != b.scale()
            || a.level() == 0
            || a.slots() != self.boot.slots()
            || b.slots() != self.boot.slots()
        {
            return Err(TrainError::Config(format!(
                "a pair refresh takes two full-slot ciphertexts at one level ≥ 1 and scale \
                 (levels {} and {})",
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
        let clock = Instant::now();
        let ev = ops.evaluator();
        let m = (2.0 * bound.max(0.5)).log2().ceil().exp2();
        let packed = ops.mul_const(&ev.add(a, &ev.mul_by_i(b)?)?, 1.0 / m)?;
        let z = self.boot.bootstrap(&packed)?;
        let conj = ev.conjugate(&z)?;
        let half = (m / 2.0) as i64;
        let re = ev.mul_integer(&ev.add(&z, &conj)?, half)?;
        let im = ev.mul_integer(&ev.neg(&ev.mul_by_i(&ev.sub(&z, &conj)?)?)?, half)?;
        self.record(clock, false)?;
        Ok((re, im))
    }

    /// Counts one bootstrap started at `clock`.
    fn record(&self, clock: Instant, sparse: bool) -> Result<()> {
        let mut s = self.stats.lock().map_err(poisoned)?;
        s.count += 1;
        s.sparse += usize::from(sparse);
        s.seconds += clock.elapsed().as_secs_f64();
        Ok(())
    }

    /// `ct` itself if it has at least `levels` levels, else [`Self::refresh`]ed.
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
        if ct.level() >= levels {
            return Ok(ct.clone());
        }
        if self.output_level() < levels {
            return Err(TrainError::Config(format!(
                "a step needs {levels} levels; bootstrapping only provides {}",
                self.output_level()
            )));
        }
        // The levels left unused by this refresh (the waste a better plan would save).
        tracing::debug!(
            target: "hetal_train::refresh",
            level = ct.level(),
            need = levels,
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
