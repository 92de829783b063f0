//! [`MatrixEvaluator`]: the server-side matrix engine — a CKKS [`Evaluator`] plus a cache
//! of encoded masks, and the level/scale alignment every product needs.

use crate::error::{LinalgError, Result};
use ckks::he_math::Backend;
use ckks::{Ciphertext, Complex64, Evaluator, OpCounts, Plaintext};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Encrypted matrix products over one CKKS [`Evaluator`] (evaluation keys only: the
/// server side). Masks (0/1 and complex selection vectors) are encoded once per
/// (mask, level) and cached, so repeated products — every training step — pay no
/// encoding. Operation counts come from the evaluator ([`Self::op_counts`]).
pub struct MatrixEvaluator<B: Backend> {
    ev: Arc<Evaluator<B>>,
    masks: Mutex<MaskCache<B>>,
}

/// Encoded masks by (name, level).
type MaskCache<B> = HashMap<(String, usize), Arc<Plaintext<B>>>;

impl<B: Backend> std::fmt::Debug for MatrixEvaluator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixEvaluator")
            .field("evaluator", &self.ev)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> MatrixEvaluator<B> {
    /// A matrix evaluator over `ev`.
    pub fn new(ev: Arc<Evaluator<B>>) -> Self {
        Self {
            ev,
            masks: Mutex::new(HashMap::new()),
        }
    }

    /// The CKKS evaluator.
    pub fn evaluator(&self) -> &Arc<Evaluator<B>> {
        &self.ev
    }

    /// The evaluator's operation counters (see [`Evaluator::counting`] for one call).
    pub fn op_counts(&self) -> OpCounts {
        self.ev.op_counts()
    }

    /// Number of masks encoded so far (cache size).
    pub fn cached_masks(&self) -> usize {
        self.masks.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// The mask `name` at `level` (canonical scale), built by `f` on a cache miss. The
    /// one cache of encoded slot masks on the server side: the products here and the
    /// training's circuits (`hetal-train`'s `Ops`) share it, so the names form one
    /// namespace (this crate's carry a `/`-separated shape suffix, for example
    /// `atbdiag/1024x32/cp8/m0`).
    ///
    /// # Errors
    /// [`LinalgError::Layout`] if the cache's lock was poisoned; encoding errors (a level
    /// above the chain, more values than slots).
    pub fn mask(
        &self,
        name: String,
        level: usize,
        f: impl FnOnce() -> Vec<Complex64>,
    ) -> Result<Arc<Plaintext<B>>> {
        let key = (name, level);
        if let Some(p) = self
            .masks
            .lock()
            .map_err(|_| LinalgError::Layout("mask cache poisoned".into()))?
            .get(&key)
        {
            return Ok(p.clone());
        }
        let ctx = self.ev.context();
        let pt = Arc::new(ctx.encode_complex(&f(), level, ctx.params().scale_at(level)?)?);
        self.masks
            .lock()
            .map_err(|_| LinalgError::Layout("mask cache poisoned".into()))?
            .insert(key, pt.clone());
        Ok(pt)
    }

    /// `ct · mask`, rescaled (one level).
    pub(crate) fn mul_mask(
        &self,
        ct: &Ciphertext<B>,
        mask: &Plaintext<B>,
    ) -> Result<Ciphertext<B>> {
        Ok(self.ev.rescale_owned(self.ev.mul_plain(ct, mask)?)?)
    }

    /// Brings `ct` to `level` at that level's canonical scale: unchanged if already
    /// there, otherwise [`Evaluator::adjust`] (exact scale, one rescale).
    ///
    /// # Errors
    /// [`LinalgError::LevelTooLow`] if `ct.level() < level`; [`ckks::CkksError::ScaleMismatch`]
    /// if `ct` is at `level` with a non-canonical scale.
    pub fn align(&self, ct: &Ciphertext<B>, level: usize) -> Result<Ciphertext<B>> {
        Ok(self.align_cow(ct, level)?.into_owned())
    }

    /// [`Self::align`] without copying a ciphertext that is already aligned.
    pub(crate) fn align_cow<'a>(
        &self,
        ct: &'a Ciphertext<B>,
        level: usize,
    ) -> Result<Cow<'a, Ciphertext<B>>> {
        let params = self.ev.context().params();
        let target = params.scale_at(level)?;
        if ct.level() < level {
            return Err(LinalgError::LevelTooLow {
                needed: level,
                level: ct.level(),
            });
        }
        if ct.level() == level {
            if ct.scale() != target {
                return Err(ckks::CkksError::ScaleMismatch(ct.scale(), target).into());
            }
            return Ok(Cow::Borrowed(ct));
        }
        Ok(Cow::Owned(self.ev.adjust(ct, level, target)?))
    }

    /// `k·ct` at `level < ct.level()` and that level's canonical scale, the constant
    /// folded into the alignment ([`ckks::Evaluator::adjust_scaled`]): one rescale, the
    /// only error added after the scaling.
    ///
    /// # Errors
    /// [`LinalgError::LevelTooLow`] unless `ct` is above `level`; CKKS errors for a `k`
    /// too small to fold (`|k|·2^{bits of q}` below 2^20).
    pub(crate) fn align_scaled(
        &self,
        ct: &Ciphertext<B>,
        level: usize,
        k: f64,
    ) -> Result<Ciphertext<B>> {
        if ct.level() <= level {
            return Err(LinalgError::LevelTooLow {
                needed: level + 1,
                level: ct.level(),
            });
        }
        let target = self.ev.context().params().scale_at(level)?;
        Ok(self.ev.adjust_scaled(ct, level, target, k)?)
    }

    /// [`Self::align`] consuming `ct` (moved through when already aligned).
    pub(crate) fn align_owned(&self, ct: Ciphertext<B>, level: usize) -> Result<Ciphertext<B>> {
        match self.align_cow(&ct, level)? {
            Cow::Borrowed(_) => Ok(ct),
            Cow::Owned(c) => Ok(c),
        }
    }

    /// [`Self::align_cow`] on every ciphertext.
    pub(crate) fn align_all<'a>(
        &self,
        cts: &'a [Ciphertext<B>],
        level: usize,
    ) -> Result<Vec<Cow<'a, Ciphertext<B>>>> {
        cts.iter().map(|c| self.align_cow(c, level)).collect()
    }

    /// `Σ_k a_k · b_k` (tensor products summed before one relinearization), rescaled.
    pub(crate) fn dot(&self, pairs: &[(&Ciphertext<B>, &Ciphertext<B>)]) -> Result<Ciphertext<B>> {
        Ok(self.ev.relinearize_rescale_owned(self.tensor_sum(pairs)?)?)
    }

    /// `Σ_k a_k · b_k` relinearized but not rescaled (scale `a.scale·b.scale`, the
    /// operands' level): rotations and additions that follow add their key-switching
    /// noise at that product scale, where it is negligible, and one rescale at the end
    /// adds the only rounding (lazy rescaling).
    pub(crate) fn dot_unrescaled(
        &self,
        pairs: &[(&Ciphertext<B>, &Ciphertext<B>)],
    ) -> Result<Ciphertext<B>> {
        Ok(self.ev.relinearize_owned(self.tensor_sum(pairs)?)?)
    }

    /// `Σ_k a_k ⊗ b_k` (degree 2, not relinearized).
    fn tensor_sum(&self, pairs: &[(&Ciphertext<B>, &Ciphertext<B>)]) -> Result<Ciphertext<B>> {
        let ev = &self.ev;
        let mut acc: Option<Ciphertext<B>> = None;
        for (a, b) in pairs {
            let p = ev.mul(a, b)?;
            match &mut acc {
                None => acc = Some(p),
                Some(s) => ev.add_assign(s, &p)?,
            }
        }
        acc.ok_or_else(|| LinalgError::Shape("empty inner dimension".into()))
    }

    /// `acc += x` with `acc` initially empty.
    pub(crate) fn accumulate(
        &self,
        acc: &mut Option<Ciphertext<B>>,
        x: Ciphertext<B>,
    ) -> Result<()> {
        match acc {
            None => *acc = Some(x),
            Some(s) => self.ev.add_assign(s, &x)?,
        }
        Ok(())
    }
}

/// A real 0/1 (or scaled) slot vector as complex values.
pub(crate) fn real_mask(slots: usize, f: impl Fn(usize) -> f64) -> Vec<Complex64> {
    (0..slots).map(|i| Complex64::new(f(i), 0.0)).collect()
}
