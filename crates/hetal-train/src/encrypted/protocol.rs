//! The two roles of encrypted fine-tuning (HETAL, Lee et al., ICML 2023, §3, Fig. 1)
//! and the messages between them.
//!
//! - [`Client`]: holds the secret key; generates the evaluation keys, encrypts batches
//!   of features and one-hot labels, decrypts validation logits to decide whether
//!   training goes on, decrypts the trained model.
//! - [`Server`]: built from a [`SessionSetup`] (evaluation keys only — the type has no
//!   secret key and no decryption method); trains `W` on ciphertexts with DiagABT,
//!   encrypted ASoftmax, DiagATB and Nesterov's update, bootstrapping by itself.
//!
//! Every message has `to_bytes`/`from_bytes` (postcard; ciphertexts and keys through
//! `ckks`'s validated serialization), so the two can run in different processes.
//!
//! One step on a batch `(X, Y)` of `n` rows, `V` the Nesterov look-ahead:
//! `Z = X·Vᵀ` (DiagABT), `P = ASoftmax(Z)`, `G = (P − Y)ᵀ·X` (DiagATB, RotLeft),
//! `W' = V − (η/n)·G`, `V' = W' + γ_t·(W' − W)`; `V'` is refreshed compactly
//! ([`WeightRefresh`]) when it has fewer than [`StepPlan::v_min`] levels (DiagABT's 3
//! and one for the softmax's input scaling); the thresholds come from the
//! [`StepPlan`]. `P` comes out of ASoftmax at a level that depends on where its
//! bootstraps fell, so levels differ from step to step; every operation aligns its
//! operands to the lower one.

use super::ops::{BootstrapStats, Ops, Refresher};
use super::plan::StepPlan;
use super::softmax::EncryptedSoftmax;
use super::weights::WeightRefresh;
use crate::error::{Result, TrainError};
use crate::softmax::ASoftmaxParams;
use crate::train::{
    Decision, EarlyStopping, SoftmaxKind, accuracy, cross_entropy, nesterov_gamma, softmax_rows,
};
use he_linalg::ckks::{
    Bootstrapper, BootstrappingConfig, Ciphertext, Context, EvaluationKeyRequest, EvaluationKeySet,
    Evaluator, KeyGenerator, ParametersLiteral, SecretKey,
};
use he_linalg::{
    Backend, BlockLayout, DiagAtbVariant, EncryptedMatrix, Matrix, UnitShape, padded_classes,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

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

    fn weight_refresh(&self, shape: UnitShape) -> Result<WeightRefresh> {
        WeightRefresh::new(
            padded_classes(self.classes),
            shape.s0,
            shape.s1,
            self.weight_bound,
        )
    }

    /// The evaluation keys a training session needs: bootstrapping's, DiagABT's,
    /// DiagATB's (RotLeft), ASoftmax's and the weight refresh's rotations.
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
            .union(&softmax.keys())
            .union(&self.weight_refresh(shape)?.keys(blocks));
        let mut req = boot.key_request(params, slots)?;
        let extra = linalg.to_request();
        req.relinearization = true;
        req.conjugation |= extra.conjugation;
        req.rotations.extend(extra.rotations);
        req.rotations.sort_unstable();
        req.rotations.dedup();
        Ok(req)
    }
}

#[derive(Serialize, Deserialize)]
struct MatrixWire {
    layout: BlockLayout,
    cts: Vec<Vec<u8>>,
}

fn matrix_wire<B: Backend>(ctx: &Context<B>, m: &EncryptedMatrix<B>) -> Result<MatrixWire> {
    Ok(MatrixWire {
        layout: *m.layout(),
        cts: m
            .ciphertexts()
            .iter()
            .map(|c| ctx.serialize_ciphertext(c))
            .collect::<std::result::Result<_, _>>()?,
    })
}

fn matrix_from_wire<B: Backend>(ctx: &Context<B>, w: MatrixWire) -> Result<EncryptedMatrix<B>> {
    let cts = w
        .cts
        .iter()
        .map(|b| ctx.deserialize_ciphertext(b))
        .collect::<std::result::Result<Vec<Ciphertext<B>>, _>>()?;
    Ok(EncryptedMatrix::from_parts(w.layout, cts)?)
}

fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| TrainError::Message(e.to_string()))
}

fn from_bytes<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| TrainError::Message(e.to_string()))
}

/// Client → server, once: parameters, session configuration and evaluation keys.
pub struct SessionSetup<B: Backend> {
    /// CKKS parameters.
    pub parameters: ParametersLiteral,
    /// Bootstrapping circuit.
    pub bootstrapping: BootstrappingConfig,
    /// Session configuration.
    pub config: SessionConfig,
    /// Evaluation keys (relinearization, Galois, encapsulation; never the secret key).
    pub keys: EvaluationKeySet<B>,
}

#[derive(Serialize, Deserialize)]
struct SetupWire {
    parameters: ParametersLiteral,
    bootstrapping: BootstrappingConfig,
    config: SessionConfig,
    keys: Vec<u8>,
}

impl<B: Backend> SessionSetup<B> {
    /// Serializes the message (the keys through `ckks`'s seeded key format).
    ///
    /// # Errors
    /// Serialization errors.
    pub fn to_bytes(&self, ctx: &Context<B>) -> Result<Vec<u8>> {
        to_bytes(&SetupWire {
            parameters: self.parameters.clone(),
            bootstrapping: self.bootstrapping.clone(),
            config: self.config.clone(),
            keys: ctx.serialize_evaluation_keys(&self.keys)?,
        })
    }

    /// Reads the message; `ctx` must be built from its parameters.
    ///
    /// # Errors
    /// [`TrainError::Message`] for malformed bytes or other parameters; key validation
    /// errors.
    pub fn from_bytes(ctx: &Context<B>, bytes: &[u8]) -> Result<Self> {
        let w: SetupWire = from_bytes(bytes)?;
        if &w.parameters != ctx.params().literal() {
            return Err(TrainError::Message(
                "setup for other CKKS parameters than the context's".into(),
            ));
        }
        Ok(Self {
            keys: ctx.deserialize_evaluation_keys(&w.keys)?,
            parameters: w.parameters,
            bootstrapping: w.bootstrapping,
            config: w.config,
        })
    }
}

macro_rules! matrix_message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident),* } $(, $(#[$xdoc:meta])* $extra:ident : $ty:ty)?) => {
        $(#[$doc])*
        pub struct $name<B: Backend> {
            $($(#[$fdoc])* pub $field: EncryptedMatrix<B>,)*
            $($(#[$xdoc])* pub $extra: $ty,)?
        }

        impl<B: Backend> $name<B> {
            /// Serializes the message (postcard; ciphertexts in `ckks`'s format).
            ///
            /// # Errors
            /// Serialization errors.
            pub fn to_bytes(&self, ctx: &Context<B>) -> Result<Vec<u8>> {
                to_bytes(&(
                    $(matrix_wire(ctx, &self.$field)?,)*
                    $(&self.$extra,)?
                ))
            }

            /// Reads and validates the message.
            ///
            /// # Errors
            /// [`TrainError::Message`] for malformed bytes; ciphertext validation errors.
            #[allow(unused_parens)]
            pub fn from_bytes(ctx: &Context<B>, bytes: &[u8]) -> Result<Self> {
                let ($($field,)* $($extra,)?): ($(matrix_message!(@wire $field),)* $($ty,)?) =
                    from_bytes(bytes)?;
                Ok(Self {
                    $($field: matrix_from_wire(ctx, $field)?,)*
                    $($extra,)?
                })
            }
        }
    };
    (@wire $f:ident) => { MatrixWire };
}

matrix_message!(
    /// Client → server: one training batch, features `X` (`n×(d+1)`, plain block
    /// layout, `n ≤ batch`) and one-hot labels `Y` (`n×c`).
    EncryptedBatch {
        /// Features.
        x,
        /// One-hot labels.
        y
    },
    /// Rows `n` of the batch (public: the server divides the gradient by it).
    rows: usize
);

matrix_message!(
    /// Client → server: features to evaluate the model on (validation or test).
    EncryptedFeatures {
        /// Features (`n×(d+1)`, plain block layout with `s0` = batch).
        x
    }
);

matrix_message!(
    /// Server → client: logits `X·Wᵀ` (`n×c`).
    EncryptedLogits {
        /// Logits.
        z
    }
);

matrix_message!(
    /// Server ↔ client: a weight matrix `W` (`c×(d+1)`, vertically tiled) and the epoch
    /// it was taken after (0: initial).
    EncryptedModel {
        /// Weights.
        w
    },
    /// Epoch after which `w` was taken.
    epoch: usize
);

/// Client → server after each epoch's validation: the only thing the server learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochFeedback {
    /// Continue or stop.
    pub decision: Decision,
}

/// Wall-clock seconds of one encrypted step, split by stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimings {
    /// DiagABT and DiagATB (including their preparation rotations).
    pub matmul: f64,
    /// ASoftmax, bootstrapping excluded.
    pub softmax: f64,
    /// Bootstrapping (softmax and weight refresh).
    pub bootstrap: f64,
    /// Nesterov update and the weight refresh's masks and rotations.
    pub other: f64,
    /// Bootstraps in this step.
    pub bootstraps: usize,
}

impl StepTimings {
    /// Sum of the four parts.
    pub fn total(&self) -> f64 {
        self.matmul + self.softmax + self.bootstrap + self.other
    }

    /// Adds another step's timings.
    pub fn accumulate(&mut self, o: &StepTimings) {
        self.matmul += o.matmul;
        self.softmax += o.softmax;
        self.bootstrap += o.bootstrap;
        self.other += o.other;
        self.bootstraps += o.bootstraps;
    }
}

/// The data owner: secret key, encryption, decryption, early-stopping decisions.
pub struct Client<B: Backend> {
    ctx: Arc<Context<B>>,
    sk: SecretKey<B>,
    config: SessionConfig,
    shape: UnitShape,
    level: usize,
    stopping: EarlyStopping,
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
    /// Generates a secret key (CSPRNG) and the session's evaluation keys.
    ///
    /// # Errors
    /// Configuration errors (no unit shape fits, parameters without the bootstrapping
    /// levels); key generation errors.
    pub fn new(
        ctx: Arc<Context<B>>,
        bootstrapping: BootstrappingConfig,
        config: SessionConfig,
    ) -> Result<(Self, SessionSetup<B>)> {
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key()?;
        Self::with_secret_key(ctx, sk, bootstrapping, config)
    }

    /// As [`Self::new`] with an existing secret key (e.g. from the client's key cache);
    /// fresh evaluation keys are generated for it.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_secret_key(
        ctx: Arc<Context<B>>,
        sk: SecretKey<B>,
        bootstrapping: BootstrappingConfig,
        config: SessionConfig,
    ) -> Result<(Self, SessionSetup<B>)> {
        config.validate()?;
        let params = ctx.params().clone();
        let shape = config.unit_shape(params.max_slots())?;
        let request = config.key_request(&params, &bootstrapping)?;
        let mut kg = KeyGenerator::new(&ctx);
        let keys = kg.gen_evaluation_keys(&sk, &request)?;
        let level = params.max_user_level();
        let setup = SessionSetup {
            parameters: params.literal().clone(),
            bootstrapping,
            config: config.clone(),
            keys,
        };
        let stopping = EarlyStopping::new(config.patience);
        Ok((
            Self {
                ctx,
                sk,
                config,
                shape,
                level,
                stopping,
            },
            setup,
        ))
    }

    /// The secret key (to cache it; never send it).
    pub fn secret_key(&self) -> &SecretKey<B> {
        &self.sk
    }

    /// The unit shape of every matrix of the session.
    pub fn unit_shape(&self) -> UnitShape {
        self.shape
    }

    fn encrypt(&self, m: &Matrix) -> Result<EncryptedMatrix<B>> {
        let layout = BlockLayout::new(m.rows(), m.cols(), self.shape)?;
        Ok(EncryptedMatrix::encrypt(
            &self.ctx, &self.sk, m, layout, self.level,
        )?)
    }

    /// Encrypts a batch (`x`: `n×(d+1)` preprocessed features, `labels`: `n` class
    /// indices) at the top user level.
    ///
    /// # Errors
    /// [`TrainError::Config`] for `n` above the batch size or wrong widths.
    pub fn encrypt_batch(&self, x: &Matrix, labels: &[usize]) -> Result<EncryptedBatch<B>> {
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
            x: self.encrypt(x)?,
            y: self.encrypt(&y)?,
            rows: x.rows(),
        })
    }

    /// Encrypts features for validation or inference.
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
            x: self.encrypt(x)?,
        })
    }

    /// The initial model `W = 0`, encrypted.
    ///
    /// # Errors
    /// Encryption errors.
    pub fn initial_model(&self) -> Result<EncryptedModel<B>> {
        let c = self.config.classes;
        let w = Matrix::zeros(c, self.config.features);
        let layout = BlockLayout::vertical(c, self.config.features, self.shape)?;
        Ok(EncryptedModel {
            w: EncryptedMatrix::encrypt(&self.ctx, &self.sk, &w, layout, self.level)?,
            epoch: 0,
        })
    }

    /// Decrypts logits.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_logits(&self, z: &EncryptedLogits<B>) -> Result<Matrix> {
        Ok(z.z.decrypt(&self.ctx, &self.sk)?)
    }

    /// Decrypts a model.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn decrypt_model(&self, m: &EncryptedModel<B>) -> Result<Matrix> {
        Ok(m.w.decrypt(&self.ctx, &self.sk)?)
    }

    /// Decrypts an epoch's validation logits, computes the validation loss (exact
    /// softmax cross-entropy) and accuracy, and decides: the returned feedback is all
    /// the server learns. Returns `(feedback, loss, accuracy, improved)`.
    ///
    /// # Errors
    /// Decryption errors.
    pub fn validate(
        &mut self,
        epoch: usize,
        z: &EncryptedLogits<B>,
        labels: &[usize],
    ) -> Result<(EpochFeedback, f64, f64, bool)> {
        let z = self.decrypt_logits(z)?;
        let p = softmax_rows(&z, SoftmaxKind::Exact, &self.config.softmax)?;
        let loss = cross_entropy(&p, labels);
        let acc = accuracy(&z, labels);
        let (improved, decision) = self.stopping.observe(epoch, loss);
        Ok((EpochFeedback { decision }, loss, acc, improved))
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

/// The server's training state: iterate `W`, look-ahead `V`, Nesterov's `λ`, and the
/// last `patience + 1` epochs' weights.
struct ServerState<B: Backend> {
    w: EncryptedMatrix<B>,
    v: EncryptedMatrix<B>,
    lambda: f64,
    steps: usize,
    kept: VecDeque<(usize, EncryptedMatrix<B>)>,
}

#[derive(Serialize, Deserialize)]
struct StateWire {
    w: MatrixWire,
    v: MatrixWire,
    lambda: f64,
    steps: usize,
    kept: Vec<(usize, MatrixWire)>,
    boot: BootstrapStats,
}

/// The party that trains: evaluation keys only. There is no secret key in this type
/// and no method that decrypts; every result goes back to the client encrypted.
///
/// ```compile_fail,E0599
/// # // A server cannot decrypt: there is no `decrypt` on it (E0599: no such method).
/// fn f<B: he_linalg::Backend>(s: &hetal_train::encrypted::Server<B>) { s.decrypt(); }
/// ```
///
/// (The same signature with a method the server has compiles:)
///
/// ```
/// fn f<B: he_linalg::Backend>(s: &hetal_train::encrypted::Server<B>) -> usize { s.steps() }
/// ```
pub struct Server<B: Backend> {
    ctx: Arc<Context<B>>,
    config: SessionConfig,
    ops: Ops<B>,
    refresher: Refresher<B>,
    softmax: EncryptedSoftmax,
    weights: WeightRefresh,
    plan: StepPlan,
    state: Option<ServerState<B>>,
}

impl<B: Backend> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Server<B> {
    /// Builds the evaluator and the bootstrapping circuit from the client's setup;
    /// `ctx` is the server's own context for `setup.parameters`.
    ///
    /// # Errors
    /// [`TrainError::Message`] for a context of other parameters; bootstrapping setup
    /// errors (too few levels).
    pub fn new(ctx: Arc<Context<B>>, setup: SessionSetup<B>) -> Result<Self> {
        if &setup.parameters != ctx.params().literal() {
            return Err(TrainError::Message(
                "setup for other CKKS parameters than the server's context".into(),
            ));
        }
        let config = setup.config;
        config.validate()?;
        let slots = ctx.params().max_slots();
        let shape = config.unit_shape(slots)?;
        let ev = Arc::new(Evaluator::new(&ctx, Arc::new(setup.keys)));
        let boot = Arc::new(Bootstrapper::new(ev.clone(), setup.bootstrapping, slots)?);
        let softmax = EncryptedSoftmax::new(&config.softmax, config.classes, shape.s1, slots)?;
        let plan = StepPlan::new(boot.output_level())?;
        Ok(Self {
            plan,
            weights: config.weight_refresh(shape)?,
            ops: Ops::new(ev),
            refresher: Refresher::new(boot),
            softmax,
            config,
            ctx,
            state: None,
        })
    }

    /// Bootstraps so far.
    pub fn bootstrap_stats(&self) -> BootstrapStats {
        self.refresher.stats()
    }

    /// Starts from the client's initial model (`W = V`).
    pub fn start(&mut self, model: EncryptedModel<B>) {
        self.state = Some(ServerState {
            v: model.w.clone(),
            w: model.w,
            lambda: 1.0,
            steps: 0,
            kept: VecDeque::new(),
        });
    }

    fn state(&mut self) -> Result<&mut ServerState<B>> {
        self.state
            .as_mut()
            .ok_or_else(|| TrainError::Config("server not started (no initial model)".into()))
    }

    /// Steps trained so far.
    pub fn steps(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.steps)
    }

    /// One Nesterov step on an encrypted batch (see the module docs).
    ///
    /// # Errors
    /// Layout mismatches, missing keys, CKKS errors.
    pub fn train_step(&mut self, batch: &EncryptedBatch<B>) -> Result<StepTimings> {
        let _span = tracing::info_span!("train_step", rows = batch.rows).entered();
        if batch.rows == 0 {
            return Err(TrainError::Config("empty batch".into()));
        }
        let mut t = StepTimings::default();
        let boot0 = self.refresher.stats();
        let clock = Instant::now();
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("server not started (no initial model)".into()))?;
        // Steps leave V at ≥ v_min; a restored state from elsewhere may not be.
        let v = self.usable_weights(&st.v, self.plan.v_min)?;
        let z = self.ops.matrix().diag_abt(&batch.x, &v)?;
        t.matmul += clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let p = self.softmax.evaluate(&self.ops, &self.refresher, &z)?;
        let p_blocks = p
            .ciphertexts()
            .iter()
            .zip(batch.y.ciphertexts())
            .map(|(pc, yc)| {
                let pc = self
                    .refresher
                    .ensure(&self.ops, pc, self.plan.softmax_out, 1.0)?;
                self.ops.sub(&pc, yc)
            })
            .collect::<Result<Vec<_>>>()?;
        let d = EncryptedMatrix::from_parts(*p.layout(), p_blocks)?;
        let boot1 = self.refresher.stats();
        t.softmax += clock.elapsed().as_secs_f64() - (boot1.seconds - boot0.seconds);

        let clock = Instant::now();
        let g = self
            .ops
            .matrix()
            .diag_atb_with(&d, &batch.x, DiagAtbVariant::RotLeft)?;
        t.matmul += clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let lr = self.config.learning_rate / batch.rows as f64;
        let (gamma, next) = nesterov_gamma(self.state()?.lambda);
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("no state".into()))?;
        let mut w_new = Vec::with_capacity(g.ciphertexts().len());
        let mut v_new = Vec::with_capacity(g.ciphertexts().len());
        for ((gc, vc), wc) in g
            .ciphertexts()
            .iter()
            .zip(st.v.ciphertexts())
            .zip(st.w.ciphertexts())
        {
            let wn = self.ops.sub(vc, &self.ops.mul_const(gc, lr)?)?;
            let mom = self.ops.mul_const(&self.ops.sub(&wn, wc)?, gamma)?;
            v_new.push(self.ops.add(&wn, &mom)?);
            w_new.push(wn);
        }
        let layout = *g.layout();
        let w_new = EncryptedMatrix::from_parts(layout, w_new)?;
        let mut v_new = EncryptedMatrix::from_parts(layout, v_new)?;
        if v_new.level() < self.plan.v_min {
            v_new = self.weights.refresh(&self.ops, &self.refresher, &v_new)?;
        }
        let boot2 = self.refresher.stats();
        t.other += clock.elapsed().as_secs_f64() - (boot2.seconds - boot1.seconds);
        t.bootstrap = boot2.seconds - boot0.seconds;
        t.bootstraps = boot2.count - boot0.count;
        let st = self.state()?;
        st.w = w_new;
        st.v = v_new;
        st.lambda = next;
        st.steps += 1;
        Ok(t)
    }

    /// `w` itself if it has `levels` levels, else a refreshed copy.
    fn usable_weights<'a>(
        &self,
        w: &'a EncryptedMatrix<B>,
        levels: usize,
    ) -> Result<Cow<'a, EncryptedMatrix<B>>> {
        if w.level() >= levels {
            Ok(Cow::Borrowed(w))
        } else {
            Ok(Cow::Owned(self.weights.refresh(
                &self.ops,
                &self.refresher,
                w,
            )?))
        }
    }

    /// Encrypted logits `X·Wᵀ` of the current iterate `W` (validation).
    ///
    /// # Errors
    /// As [`Self::train_step`].
    pub fn logits(&mut self, features: &EncryptedFeatures<B>) -> Result<EncryptedLogits<B>> {
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("server not started".into()))?;
        let w = self.usable_weights(&st.w, self.plan.w_min)?;
        Ok(EncryptedLogits {
            z: self.ops.matrix().diag_abt(&features.x, &w)?,
        })
    }

    /// Encrypted logits of a model (inference with the trained weights).
    ///
    /// # Errors
    /// As [`Self::train_step`].
    pub fn infer(
        &self,
        model: &EncryptedModel<B>,
        features: &EncryptedFeatures<B>,
    ) -> Result<EncryptedLogits<B>> {
        let w = self.usable_weights(&model.w, self.plan.w_min)?;
        Ok(EncryptedLogits {
            z: self.ops.matrix().diag_abt(&features.x, &w)?,
        })
    }

    /// Records the end of `epoch` (keeps its `W` among the last `patience + 1`) and
    /// returns whether training goes on.
    ///
    /// # Errors
    /// [`TrainError::Config`] before [`Self::start`].
    pub fn end_epoch(&mut self, epoch: usize, feedback: EpochFeedback) -> Result<bool> {
        let keep = self.config.patience + 1;
        let st = self.state()?;
        st.kept.push_back((epoch, st.w.clone()));
        while st.kept.len() > keep {
            st.kept.pop_front();
        }
        Ok(feedback.decision == Decision::Continue)
    }

    /// The current iterate `W` (e.g. for a truncated run).
    ///
    /// # Errors
    /// [`TrainError::Config`] before [`Self::start`].
    pub fn current_model(&self) -> Result<EncryptedModel<B>> {
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("server not started".into()))?;
        Ok(EncryptedModel {
            w: st.w.clone(),
            epoch: st.kept.back().map_or(0, |k| k.0),
        })
    }

    /// The weights of the last `patience + 1` epochs, oldest first: the best epoch's
    /// is among them, and the client picks it without telling the server which.
    pub fn candidate_models(&self) -> Vec<EncryptedModel<B>> {
        self.state.as_ref().map_or_else(Vec::new, |s| {
            s.kept
                .iter()
                .map(|(e, w)| EncryptedModel {
                    w: (*w).clone(),
                    epoch: *e,
                })
                .collect()
        })
    }

    /// Serializes the training state (checkpoint).
    ///
    /// # Errors
    /// [`TrainError::Config`] before [`Self::start`]; serialization errors.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("server not started".into()))?;
        to_bytes(&StateWire {
            w: matrix_wire(&self.ctx, &st.w)?,
            v: matrix_wire(&self.ctx, &st.v)?,
            lambda: st.lambda,
            steps: st.steps,
            kept: st
                .kept
                .iter()
                .map(|(e, w)| Ok((*e, matrix_wire(&self.ctx, w)?)))
                .collect::<Result<_>>()?,
            boot: self.refresher.stats(),
        })
    }

    /// Restores a [`Self::checkpoint`].
    ///
    /// # Errors
    /// [`TrainError::Message`] for malformed bytes; ciphertext validation errors.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let s: StateWire = from_bytes(bytes)?;
        self.state = Some(ServerState {
            w: matrix_from_wire(&self.ctx, s.w)?,
            v: matrix_from_wire(&self.ctx, s.v)?,
            lambda: s.lambda,
            steps: s.steps,
            kept: s
                .kept
                .into_iter()
                .map(|(e, w)| Ok((e, matrix_from_wire(&self.ctx, w)?)))
                .collect::<Result<_>>()?,
        });
        Ok(())
    }
}
