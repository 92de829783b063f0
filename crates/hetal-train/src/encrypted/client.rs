//! The data owner of encrypted training: secret key, encryption, decryption,
//! early-stopping decisions.

use super::config::SessionConfig;
use super::messages::{
    EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback, SessionSetup,
};
use crate::error::{Result, TrainError};
use crate::train::{EarlyStopping, SoftmaxKind, accuracy, cross_entropy, softmax_rows};
use he_linalg::ckks::{
    BootstrappingConfig, Context, Flooding, FloodingReport, KeyGenerator, KeyStorage, SecretKey,
};
use he_linalg::{Backend, BlockLayout, EncryptedMatrix, Matrix, UnitShape};
use std::sync::Arc;

/// The client's reading of one epoch's validation logits ([`Client::validate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// The decision sent to the server (all it learns).
    pub feedback: EpochFeedback,
    /// Validation cross-entropy (exact softmax of the decrypted logits).
    pub loss: f64,
    /// Validation accuracy (fraction).
    pub accuracy: f64,
    /// Whether the loss improved on the best so far.
    pub improved: bool,
    /// Logits outside ASoftmax's range `[−R_max, R_max]`: training batches with such
    /// logits get a meaningless softmax (the server cannot see this; the client can).
    pub out_of_range: usize,
    /// The largest `|z|` among the validation logits.
    pub max_abs_logit: f64,
    /// The noise flooding applied to the decrypted logits ([`Client::set_flooding`];
    /// `None`: none).
    pub flooding: Option<FloodingReport>,
}

/// The data owner: secret key, encryption, decryption, early-stopping decisions.
pub struct Client<B: Backend> {
    ctx: Arc<Context<B>>,
    sk: SecretKey<B>,
    bootstrapping: BootstrappingConfig,
    config: SessionConfig,
    shape: UnitShape,
    /// Level of the labels: the top user level.
    level: usize,
    /// The step plan: levels of the training features, of validation and test
    /// features, and of encrypted models.
    plan: super::StepPlan,
    stopping: EarlyStopping,
    flooding: Option<Flooding>,
}

impl<B: Backend> std::fmt::Debug for Client<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("sk", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Client<B> {
    /// Generates a secret key (CSPRNG); the evaluation keys come from
    /// [`Self::session_setup`].
    ///
    /// # Errors
    /// Configuration errors ([`SessionConfig::validate`], no unit shape fits);
    /// key generation errors.
    pub fn new(
        ctx: Arc<Context<B>>,
        bootstrapping: BootstrappingConfig,
        config: SessionConfig,
    ) -> Result<Self> {
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key()?;
        Self::with_secret_key(ctx, sk, bootstrapping, config)
    }

    /// As [`Self::new`] with an existing secret key (e.g. from the client's key cache).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_secret_key(
        ctx: Arc<Context<B>>,
        sk: SecretKey<B>,
        bootstrapping: BootstrappingConfig,
        config: SessionConfig,
    ) -> Result<Self> {
        config.validate()?;
        let params = ctx.params().clone();
        let shape = config.unit_shape(params.max_slots())?;
        // Fail early if the parameters cannot carry the circuit.
        config.key_request(&params, &bootstrapping)?;
        let level = params.max_user_level();
        // The levels the server's bootstrapper will refresh from and to.
        let (_, _, output) = bootstrapping.stage_levels(&params)?;
        let plan = super::StepPlan::new(output, bootstrapping.input_level())?;
        let stopping = EarlyStopping::new(config.patience);
        Ok(Self {
            ctx,
            sk,
            bootstrapping,
            config,
            shape,
            level,
            plan,
            stopping,
            flooding: Some(Flooding::default()),
        })
    }

    /// Generates the session's evaluation keys (bootstrapping, DiagABT, DiagATB,
    /// ASoftmax and weight-refresh rotations; never the secret key) and the message that
    /// carries them to the server. At N = 2^16 this takes tens of seconds and the keys
    /// take gigabytes: call it once, send it, drop it. The keys are made
    /// [`KeyStorage::Seeded`] (the client only sends them; the serialized form is the
    /// same); the server expands them or not ([`super::ServerOptions::keys`]).
    ///
    /// # Errors
    /// Key generation errors.
    pub fn session_setup(&self) -> Result<SessionSetup<B>> {
        let params = self.ctx.params().clone();
        let request = self.config.key_request(&params, &self.bootstrapping)?;
        let mut kg = KeyGenerator::new(&self.ctx).with_key_storage(KeyStorage::Seeded);
        let keys = kg.gen_evaluation_keys(&self.sk, &request)?;
        Ok(SessionSetup {
            parameters: params.literal().clone(),
            bootstrapping: self.bootstrapping.clone(),
            config: self.config.clone(),
            keys,
        })
    }

    /// The session configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The client's CKKS context.
    pub fn context(&self) -> &Arc<Context<B>> {
        &self.ctx
    }

    /// The secret key (to cache it; never send it).
    pub fn secret_key(&self) -> &SecretKey<B> {
        &self.sk
    }

    /// The step plan the client encrypts by (levels of features, labels and models).
    pub fn plan(&self) -> &super::StepPlan {
        &self.plan
    }

    /// The unit shape of every matrix of the session.
    pub fn unit_shape(&self) -> UnitShape {
        self.shape
    }

    fn encrypt(&self, m: &Matrix, level: usize) -> Result<EncryptedMatrix<B>> {
        let layout = BlockLayout::new(m.rows(), m.cols(), self.shape)?;
        Ok(EncryptedMatrix::encrypt(
            &self.ctx, &self.sk, m, layout, level,
        )?)
    }

    /// Encrypts a batch (`x`: `n×(d+1)` preprocessed features, `labels`: `n` class
    /// indices): the features at the step plan's [`super::StepPlan::x_level`] (7 on the
    /// presets that refresh from level 0), the one-hot labels at the top user level (`P − Y` keeps `P`'s level).
    ///
    /// # Errors
    /// [`TrainError::Config`] for `n` above the batch size or wrong widths.
    pub fn encrypt_batch(&self, x: &Matrix, labels: &[usize]) -> Result<EncryptedBatch<B>> {
        self.encrypt_batch_at(x, labels, self.plan.x_level)
    }

    /// [`Self::encrypt_batch`] with the features at `x_level` (another algorithm's
    /// plan, e.g. Chiang's `ChiangServer::X_MIN` above the floor).
    ///
    /// # Errors
    /// As [`Self::encrypt_batch`]; a level above the top user level.
    pub fn encrypt_batch_at(
        &self,
        x: &Matrix,
        labels: &[usize],
        x_level: usize,
    ) -> Result<EncryptedBatch<B>> {
        if x.rows() != labels.len()
            || x.rows() > self.config.batch
            || x.cols() != self.config.features
        {
            return Err(TrainError::Config(format!(
                "batch of {}×{} with {} labels (batch {}, features {})",
                x.rows(),
                x.cols(),
                labels.len(),
                self.config.batch,
                self.config.features
            )));
        }
        if labels.iter().any(|&l| l >= self.config.classes) {
            return Err(TrainError::Config("label out of range".into()));
        }
        let y = crate::data::one_hot(labels, self.config.classes);
        Ok(EncryptedBatch {
            x: self.encrypt(x, x_level)?,
            y: self.encrypt(&y, self.level)?,
            rows: x.rows(),
        })
    }

    /// Encrypts features for validation or inference, at the step plan's
    /// [`super::StepPlan::features_level`] (4 on the presets: DiagABT's depth and one).
    ///
    /// # Errors
    /// [`TrainError::Config`] for the wrong width.
    pub fn encrypt_features(&self, x: &Matrix) -> Result<EncryptedFeatures<B>> {
        if x.cols() != self.config.features {
            return Err(TrainError::Config(format!(
                "{} features, session has {}",
                x.cols(),
                self.config.features
            )));
        }
        Ok(EncryptedFeatures {
            x: self.encrypt(x, self.plan.features_level)?,
        })
    }

    /// The initial model `W = 0`, encrypted as [`Self::encrypt_model`] does.
    ///
    /// # Errors
    /// Encryption errors.
    pub fn initial_model(&self) -> Result<EncryptedModel<B>> {
        self.encrypt_model(&Matrix::zeros(self.config.classes, self.config.features), 0)
    }

    /// Encrypts a weight matrix `c×(d+1)`: the initial model, or a decrypted, chosen one
    /// sent back afresh for encrypted inference (the server does not learn which of its
    /// candidates it is). At the step plan's [`super::StepPlan::weights_level`] (5 on the
    /// presets), the level refreshed weights are rebuilt at: the first step then runs
    /// like every other, inference needs only DiagABT's depth below it, and the model's
    /// copies on the server (`W` and `V`, 41 ciphertexts each at DermaMNIST's shape)
    /// take half the memory they would at the top user level.
    ///
    /// # Errors
    /// [`TrainError::Config`] for the wrong shape; encryption errors.
    pub fn encrypt_model(&self, w: &Matrix, epoch: usize) -> Result<EncryptedModel<B>> {
        self.encrypt_model_at(w, epoch, self.plan.weights_level)
    }

    /// [`Self::encrypt_model`] at a chosen `level` (for circuits with another level plan,
    /// such as Chiang's training).
    ///
    /// # Errors
    /// [`TrainError::Config`] for the wrong shape or a level above the top user level;
    /// encryption errors.
    pub fn encrypt_model_at(
        &self,
        w: &Matrix,
        epoch: usize,
        level: usize,
    ) -> Result<EncryptedModel<B>> {
        if w.rows() != self.config.classes || w.cols() != self.config.features {
            return Err(TrainError::Config(format!(
                "model of {}×{} (session: {}×{})",
                w.rows(),
                w.cols(),
                self.config.classes,
                self.config.features
            )));
        }
        if level > self.level {
            return Err(TrainError::Config(format!(
                "model level {level} above the top user level {}",
                self.level
            )));
        }
        let layout = BlockLayout::vertical(w.rows(), w.cols(), self.shape)?;
        Ok(EncryptedModel {
            w: EncryptedMatrix::encrypt(&self.ctx, &self.sk, w, layout, level)?,
            epoch,
        })
    }

    /// Decrypts logits exactly (no flooding): for results that stay with the client, such
    /// as its own predictions. Use [`Self::decrypt_logits_flooded`] for anything it will
    /// reveal.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_logits(&self, z: &EncryptedLogits<B>) -> Result<Matrix> {
        Ok(z.z.decrypt(&self.ctx, &self.sk)?)
    }

    /// Decrypts logits with noise flooding ([`he_linalg::ckks::flooding`]): the
    /// matrix and the worst block's report.
    ///
    /// # Errors
    /// Decryption errors; no room for the flooding at the logits' level.
    pub fn decrypt_logits_flooded(
        &self,
        z: &EncryptedLogits<B>,
        flooding: &Flooding,
    ) -> Result<(Matrix, Option<FloodingReport>)> {
        Ok(z.z.decrypt_flooded(&self.ctx, &self.sk, flooding)?)
    }

    /// Decrypts a model exactly (no flooding): the trained model is the client's private
    /// output. Use [`Self::decrypt_model_flooded`] before publishing a model.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_model(&self, m: &EncryptedModel<B>) -> Result<Matrix> {
        Ok(m.w.decrypt(&self.ctx, &self.sk)?)
    }

    /// Decrypts a model with noise flooding: the weights and the worst block's report.
    /// The flooding lies `log2(sqrt(12τ)) + s/2` bits above the weights' noise estimate
    /// (19 bits for `s = 30`, `τ = 23`), which at N = 2^16 leaves the model useless
    /// (docs/security.md has the measured cost).
    ///
    /// # Errors
    /// Decryption errors; no room for the flooding at the model's level.
    pub fn decrypt_model_flooded(
        &self,
        m: &EncryptedModel<B>,
        flooding: &Flooding,
    ) -> Result<(Matrix, Option<FloodingReport>)> {
        Ok(m.w.decrypt_flooded(&self.ctx, &self.sk, flooding)?)
    }

    /// The flooding policy of the decryptions whose consequence the server sees (the
    /// validation logits behind each epoch's decision). Default: OpenFHE's
    /// (`s = 30` bits, `τ = 1` query); the front ends set `τ` to the epoch budget.
    pub fn flooding(&self) -> Option<Flooding> {
        self.flooding
    }

    /// Sets the flooding policy of [`Self::validate`]; `None` turns flooding off (the
    /// decrypted logits then reveal the ciphertexts' noise to whoever learns the
    /// decisions they drive, Li–Micciancio 2021).
    pub fn set_flooding(&mut self, flooding: Option<Flooding>) {
        self.flooding = flooding;
    }

    /// Decrypts an epoch's validation logits (flooded under [`Self::flooding`]),
    /// computes the validation loss (exact softmax cross-entropy) and accuracy, checks
    /// the logits against ASoftmax's range `[−R_max, R_max]`, and decides: the returned
    /// feedback is all the server learns.
    ///
    /// # Errors
    /// Decryption errors; no room for the flooding at the logits' level.
    pub fn validate(
        &mut self,
        epoch: usize,
        z: &EncryptedLogits<B>,
        labels: &[usize],
    ) -> Result<Validation> {
        let (z, flooding) = match &self.flooding {
            Some(f) => self.decrypt_logits_flooded(z, f)?,
            None => (self.decrypt_logits(z)?, None),
        };
        let p = softmax_rows(&z, SoftmaxKind::Exact, &self.config.softmax)?;
        let loss = cross_entropy(&p, labels);
        let accuracy = accuracy(&z, labels);
        let r_max = self.config.softmax.r_max;
        let used = &z.as_slice()[..labels.len().min(z.rows()) * z.cols()];
        let out_of_range = used.iter().filter(|v| v.abs() > r_max).count();
        let max_abs_logit = used.iter().fold(0f64, |m, v| m.max(v.abs()));
        let (improved, decision) = self.stopping.observe(epoch, loss);
        Ok(Validation {
            feedback: EpochFeedback { decision },
            loss,
            accuracy,
            improved,
            out_of_range,
            max_abs_logit,
            flooding,
        })
    }

    /// The best epoch so far (by validation loss).
    pub fn best_epoch(&self) -> Option<usize> {
        self.stopping.best_epoch()
    }

    /// The early-stopping state (to checkpoint it).
    pub fn early_stopping(&self) -> &EarlyStopping {
        &self.stopping
    }

    /// Restores the early-stopping state (from a checkpoint).
    pub fn set_early_stopping(&mut self, s: EarlyStopping) {
        self.stopping = s;
    }
}
