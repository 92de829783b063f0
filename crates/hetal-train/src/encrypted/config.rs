//! The session configuration both parties agree on before training (public): sizes,
//! learning rate, patience, ASoftmax parameters, and the keys and unit shape they imply.

use super::softmax::EncryptedSoftmax;
use super::weights::WeightRefresh;
use crate::error::{Result, TrainError};
use crate::softmax::ASoftmaxParams;
use he_linalg::ckks::{BootstrappingConfig, EvaluationKeyRequest};
use he_linalg::{UnitShape, padded_classes};
use serde::{Deserialize, Serialize};

/// What both parties agree on before training (public).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Classes `c`.
    pub classes: usize,
    /// Features per sample, bias column included (`d + 1`).
    pub features: usize,
    /// Rows per batch (HETAL: 1024 for DermaMNIST); also the unit shape's `s0`.
    pub batch: usize,
    /// Learning rate `η`.
    pub learning_rate: f64,
    /// Early-stopping patience in epochs (the server keeps the last `patience + 1`
    /// epochs' weights so the best one is among them).
    pub patience: usize,
    /// ASoftmax parameters.
    pub softmax: ASoftmaxParams,
    /// Bound on `|W|` and `|V|` entries used to scale them into `[−1, 1]` for
    /// bootstrapping (rounded up to a power of two).
    pub weight_bound: f64,
}

impl SessionConfig {
    /// Most classes a session accepts (a softmax over more rows than this is not what
    /// the block packing is for, and it bounds the server's work per message).
    pub const MAX_CLASSES: usize = 1024;
    /// Most features (bias included) and most rows per batch a session accepts.
    pub const MAX_DIM: usize = 1 << 20;
    /// Longest early-stopping patience a session accepts (the server keeps `patience + 1`
    /// encrypted models).
    pub const MAX_PATIENCE: usize = 64;

    /// Bound on the weights' entries both front ends train with ([`Self::weight_bound`]).
    pub const DEFAULT_WEIGHT_BOUND: f64 = 16.0;

    /// The configuration of a run: `classes`, `features` (bias included) and the
    /// hyper-parameters, with the default ASoftmax parameters and
    /// [`Self::DEFAULT_WEIGHT_BOUND`].
    pub fn from_hyper(classes: usize, features: usize, hyper: &crate::HyperParams) -> Self {
        Self {
            classes,
            features,
            batch: hyper.batch,
            learning_rate: hyper.learning_rate,
            patience: hyper.patience,
            softmax: ASoftmaxParams::default(),
            weight_bound: Self::DEFAULT_WEIGHT_BOUND,
        }
    }

    /// Checks every field against the bounds above: `2 ≤ classes ≤ MAX_CLASSES`,
    /// `1 ≤ features, batch ≤ MAX_DIM`, a positive finite learning rate, `patience ≤
    /// MAX_PATIENCE`, valid ASoftmax parameters, a weight bound in `(0, 2^20]`. The
    /// server runs it on what the client sends before it builds anything.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the first field out of bounds.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(TrainError::Config(what));
        if !(2..=Self::MAX_CLASSES).contains(&self.classes) {
            return bad(format!(
                "classes = {} (2..={})",
                self.classes,
                Self::MAX_CLASSES
            ));
        }
        if !(1..=Self::MAX_DIM).contains(&self.features)
            || !(1..=Self::MAX_DIM).contains(&self.batch)
        {
            return bad(format!(
                "features = {}, batch = {} (1..={} each)",
                self.features,
                self.batch,
                Self::MAX_DIM
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!("learning rate {}", self.learning_rate));
        }
        if self.patience > Self::MAX_PATIENCE {
            return bad(format!(
                "patience {} (at most {})",
                self.patience,
                Self::MAX_PATIENCE
            ));
        }
        if !(self.weight_bound.is_finite()
            && self.weight_bound > 0.0
            && self.weight_bound <= f64::from(1u32 << 20))
        {
            return bad(format!("weight bound {}", self.weight_bound));
        }
        self.softmax.validate()
    }

    /// HETAL's unit shape for this batch size and class count on `slots` slots.
    ///
    /// # Errors
    /// [`TrainError::Linalg`] if no unit shape fits.
    pub fn unit_shape(&self, slots: usize) -> Result<UnitShape> {
        let shape = UnitShape::hetal(self.batch, self.classes, slots)?;
        if shape.s0 < self.batch {
            return Err(TrainError::Config(format!(
                "batch {} does not fit one row block of {slots} slots",
                self.batch
            )));
        }
        Ok(shape)
    }

    pub(crate) fn weight_refresh(&self, shape: UnitShape) -> Result<WeightRefresh> {
        WeightRefresh::new(
            padded_classes(self.classes),
            shape.s0,
            shape.s1,
            self.weight_bound,
        )
    }

    /// The evaluation keys a training session needs: bootstrapping's, DiagABT's,
    /// DiagATB's (RotLeft), ASoftmax's and the weight refresh's rotations; the last four
    /// only up to the top user level (nothing in a step runs above it), so their keys
    /// have `digits_at(U)` digits over `U + 1 + |P|` limbs instead of the top level's.
    ///
    /// # Errors
    /// As [`Self::unit_shape`]; bootstrapping configuration errors.
    pub fn key_request(
        &self,
        params: &he_linalg::Parameters,
        boot: &BootstrappingConfig,
    ) -> Result<EvaluationKeyRequest> {
        let slots = params.max_slots();
        let shape = self.unit_shape(slots)?;
        let softmax = EncryptedSoftmax::new(&self.softmax, self.classes, shape.s1, slots)?;
        let blocks = self.features.div_ceil(shape.s1);
        let linalg = he_linalg::keys::diag_abt_keys(shape, self.classes)
            .union(&he_linalg::keys::diag_atb_keys(shape, self.classes))
            .union(&self.weight_refresh(shape)?.keys(blocks));
        let mut req = softmax.key_request(params, boot)?;
        linalg.add_up_to(&mut req, params.max_user_level());
        Ok(req)
    }
}
