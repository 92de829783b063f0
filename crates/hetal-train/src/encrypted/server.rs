//! The party that trains in encrypted fine-tuning (HETAL, Lee et al., ICML 2023, §3,
//! Fig. 1): [`Server`], built from a [`SessionSetup`] (evaluation keys only — the type
//! has no secret key and no decryption method), trains `W` on ciphertexts with DiagABT,
//! encrypted ASoftmax, DiagATB and Nesterov's update, bootstrapping by itself. The
//! other role is [`super::Client`]; what they exchange is in [`super::messages`].
//!
//! One step on a batch `(X, Y)` of `n` rows, `V` the Nesterov look-ahead:
//! `Z = X·Vᵀ` (DiagABT), `P = ASoftmax(Z)`, `G = (P − Y)ᵀ·X` (DiagATB, RotLeft),
//! `W' = V − (η/n)·G`, `V' = W' + γ_t·(W' − W)`. `V` is refreshed compactly
//! ([`WeightRefresh`]) as a passenger of one of ASoftmax's bootstraps when the step would
//! leave `V'` below [`StepPlan::v_min`] (DiagABT's 3 levels and one for the softmax's
//! input scaling), and `V'` alone at the end of a step if it falls below all the same;
//! the levels come from the [`StepPlan`]. `P` comes out of ASoftmax at a level that
//! depends on where its bootstraps fell, so levels differ from step to step; every
//! operation aligns its operands to the lower one.

use super::config::SessionConfig;
use super::messages::{
    EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback, MatrixRef,
    MatrixWire, SessionSetup, StepTimings, from_bytes, matrix_from_wire, write_postcard,
};
use super::ops::{BootstrapStats, Ops, Refresher};
use super::plan::StepPlan;
use super::softmax::EncryptedSoftmax;
use super::weights::WeightRefresh;
use crate::error::{Result, TrainError};
use crate::train::{Decision, nesterov_gamma, nesterov_update_scaled};
use he_linalg::ckks::KeyStorage;
use he_linalg::ckks::circuits::BootstrapperOptions;
use he_linalg::ckks::{Bootstrapper, BootstrappingConfig, Ciphertext, Context, Evaluator};
use he_linalg::{Backend, DiagAtbVariant, EncryptedMatrix};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

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

/// [`StateWire`]'s byte form written from the live state (field for field the same
/// bytes), one ciphertext at a time.
#[derive(Serialize)]
#[serde(bound = "")]
struct StateRef<'a, B: Backend> {
    w: MatrixRef<'a, B>,
    v: MatrixRef<'a, B>,
    lambda: f64,
    steps: usize,
    kept: Vec<(usize, MatrixRef<'a, B>)>,
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

/// The server's own memory and speed choices: nothing a client has to agree with, and
/// nothing that changes a result beyond the noise (the bootstraps and key switches give
/// the same bits either way, but for `DiagonalStorage::Extended`, whose double hoisting
/// rounds differently). The defaults are the training's policy (the command lines take
/// theirs from here).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerOptions {
    /// The bootstrapping circuit's choices (default: `DiagonalStorage::Auto`, which is
    /// `DiagonalStorage::Encoded` on the training's full slots;
    /// `DiagonalStorage::Coefficients`: 3.2 → 0.17 GB of DFT diagonals at N = 2^16, one
    /// NTT per limb and diagonal each bootstrap, 17–29 % more time per step;
    /// `DiagonalStorage::Extended`: double hoisting, 3.2 → 4.6 GB, each bootstrap 1–8 %
    /// faster with two threads).
    pub bootstrapper: BootstrapperOptions,
    /// How the evaluation keys keep their uniform parts (default
    /// [`KeyStorage::Seeded`]: each key switch regenerates the `a_j` it reads; in the
    /// README's run the keys take 3.05 GB instead of 5.97 GB, and a step 118.9 s against
    /// 117.7 s, within this machine's noise; docs/results/dermamnist.md).
    pub keys: KeyStorage,
}

/// What every training server builds from a client's setup: the validated
/// configuration, its unit shape, the evaluator over the setup's keys and the
/// bootstrapping circuit (shared by [`Server`] and [`super::ChiangServer`]).
pub(crate) struct ServerParts<B: Backend> {
    pub(crate) config: SessionConfig,
    pub(crate) shape: he_linalg::UnitShape,
    pub(crate) ev: Arc<Evaluator<B>>,
    pub(crate) boot: Arc<Bootstrapper<B>>,
    pub(crate) bootstrapping: BootstrappingConfig,
}

/// Builds [`ServerParts`] (see its docs).
///
/// # Errors
/// [`TrainError::Message`] for a context of other parameters; configuration and
/// bootstrapping setup errors.
pub(crate) fn server_parts<B: Backend>(
    ctx: &Arc<Context<B>>,
    mut setup: SessionSetup<B>,
    options: ServerOptions,
) -> Result<ServerParts<B>> {
    if &setup.parameters != ctx.params().literal() {
        return Err(TrainError::Message(
            "setup for other CKKS parameters than the server's context".into(),
        ));
    }
    let config = setup.config;
    config.validate()?;
    let slots = ctx.params().max_slots();
    let shape = config.unit_shape(slots)?;
    setup.keys.set_key_storage(ctx, options.keys)?;
    let ev = Arc::new(Evaluator::new(ctx, Arc::new(setup.keys)));
    let boot = Arc::new(Bootstrapper::with_options(
        ev.clone(),
        setup.bootstrapping.clone(),
        slots,
        options.bootstrapper,
    )?);
    Ok(ServerParts {
        config,
        shape,
        ev,
        boot,
        bootstrapping: setup.bootstrapping,
    })
}

impl<B: Backend> Server<B> {
    /// Builds the evaluator and the bootstrapping circuit from the client's setup;
    /// `ctx` is the server's own context for `setup.parameters`.
    ///
    /// # Errors
    /// [`TrainError::Message`] for a context of other parameters; bootstrapping setup
    /// errors (too few levels).
    pub fn new(ctx: Arc<Context<B>>, setup: SessionSetup<B>) -> Result<Self> {
        Self::with_options(ctx, setup, ServerOptions::default())
    }

    /// As [`Self::new`], with the server's own memory and speed choices
    /// ([`ServerOptions`]).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_options(
        ctx: Arc<Context<B>>,
        setup: SessionSetup<B>,
        options: ServerOptions,
    ) -> Result<Self> {
        let ServerParts {
            config,
            shape,
            ev,
            boot,
            bootstrapping,
        } = server_parts(&ctx, setup, options)?;
        let slots = ctx.params().max_slots();
        let softmax = EncryptedSoftmax::new(&config.softmax, config.classes, shape.s1, slots)?;
        let plan = StepPlan::new(boot.output_level(), boot.input_level())?;
        let refresher = softmax.refresher(&ev, &bootstrapping, boot)?;
        Ok(Self {
            plan,
            weights: config.weight_refresh(shape)?,
            ops: Ops::new(ev),
            refresher,
            softmax,
            config,
            ctx,
            state: None,
        })
    }

    /// The session configuration the server was built with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The evaluation keys the server holds: their number and their size in memory,
    /// bytes (`ckks`'s `EvaluationKeySet::memory_bytes`).
    pub fn evaluation_keys_size(&self) -> (usize, usize) {
        let keys = self.ops.evaluator().keys();
        (keys.num_keys(), keys.memory_bytes(self.ctx.params()))
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

        // V rides along in ASoftmax's bootstraps when the update would leave V' too low.
        let clock = Instant::now();
        let refresh_v = self.plan.refresh_weights(v.level());
        self.refresher.discard_passengers()?;
        // The bound the compacts ride with, which the rebuild below needs back.
        let v_bound = if refresh_v {
            let (compacts, bound) = self.weights.pack(&self.ops, &v, self.refresher.floor())?;
            for c in compacts {
                self.refresher.board(c, bound)?;
            }
            bound
        } else {
            1.0
        };
        t.other += clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let p = self
            .softmax
            .evaluate(&self.ops, &self.refresher, &z, self.plan.softmax_out)?;
        let p_blocks = p
            .ciphertexts()
            .iter()
            .zip(batch.y.ciphertexts())
            .map(|(pc, yc)| {
                let pc = self
                    .refresher
                    .ensure_level(&self.ops, pc, self.plan.softmax_out, 1.0)?;
                self.ops.sub(&pc, yc)
            })
            .collect::<Result<Vec<_>>>()?;
        tracing::debug!(
            target: "hetal_train::step",
            v = v.level(),
            z = z.level(),
            p = p.level(),
            "levels before DiagATB"
        );
        let d = EncryptedMatrix::from_parts(*p.layout(), p_blocks)?;
        let boot1 = self.refresher.stats();
        t.softmax += clock.elapsed().as_secs_f64() - (boot1.seconds - boot0.seconds);

        // G scaled by the step size η/n inside DiagATB (no level; see StepPlan).
        let clock = Instant::now();
        let lr = self.config.learning_rate / batch.rows as f64;
        let g = self
            .ops
            .matrix()
            .diag_atb_scaled(&d, &batch.x, DiagAtbVariant::RotLeft, lr)?;
        t.matmul += clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let v = if refresh_v {
            let compacts = self.refresher.alight(&self.ops)?;
            Cow::Owned(self.weights.unpack(
                &self.ops,
                *v.layout(),
                &compacts,
                self.plan.weights_level,
                v_bound,
            )?)
        } else {
            v
        };
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("no state".into()))?;
        let (gamma, next) = nesterov_gamma(st.lambda);
        let layout = *g.layout();
        // G and a rebuilt V are consumed block by block: each block is freed once its
        // update is done, so the loop never holds five copies of the weights.
        let (_, g_blocks) = g.into_parts();
        let v_blocks: Vec<Cow<'_, Ciphertext<B>>> = match v {
            Cow::Owned(m) => m.into_parts().1.into_iter().map(Cow::Owned).collect(),
            Cow::Borrowed(m) => m.ciphertexts().iter().map(Cow::Borrowed).collect(),
        };
        let mut w_new = Vec::with_capacity(g_blocks.len());
        let mut v_new = Vec::with_capacity(g_blocks.len());
        for ((gc, vc), wc) in g_blocks.into_iter().zip(v_blocks).zip(st.w.ciphertexts()) {
            let (wn, vn) = nesterov_update_scaled(&self.ops, wc, &vc, &gc, gamma)?;
            v_new.push(vn);
            w_new.push(wn);
        }
        let w_new = EncryptedMatrix::from_parts(layout, w_new)?;
        let mut v_new = EncryptedMatrix::from_parts(layout, v_new)?;
        tracing::debug!(
            target: "hetal_train::step",
            w = w_new.level(),
            v = v_new.level(),
            "levels after the update"
        );
        if v_new.level() < self.plan.v_min {
            v_new = self.weights.refresh(
                &self.ops,
                &self.refresher,
                &v_new,
                self.plan.weights_level,
            )?;
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
                self.plan.weights_level.max(levels),
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
        let mut out = Vec::new();
        self.write_checkpoint(&mut out)?;
        Ok(out)
    }

    /// Writes [`Self::checkpoint`]'s bytes to `w` without building them in memory: each
    /// ciphertext is serialized when its turn comes (the state is hundreds of MB at
    /// N = 2^16; holding it, and copies of it, raised the server's peak memory).
    ///
    /// # Errors
    /// As [`Self::checkpoint`]; [`TrainError::Message`] for a failing writer.
    pub fn write_checkpoint(&self, w: &mut dyn std::io::Write) -> Result<()> {
        let st = self
            .state
            .as_ref()
            .ok_or_else(|| TrainError::Config("server not started".into()))?;
        let m = |m| MatrixRef { ctx: &self.ctx, m };
        let state = StateRef {
            w: m(&st.w),
            v: m(&st.v),
            lambda: st.lambda,
            steps: st.steps,
            kept: st.kept.iter().map(|(e, w)| (*e, m(w))).collect(),
            boot: self.refresher.stats(),
        };
        write_postcard(&state, w)
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
