//! Chiang's training on ciphertexts ([`crate::chiang`]: sigmoid as his cubic, the
//! quadratic gradient, his Nesterov form, full batch) with this project's block packing
//! and matrix products, HETAL's bootstrapping and compact weight refresh. The server
//! ([`ChiangServer`]) holds evaluation keys only; the client sends its batches, the
//! one-hot labels, and `B̄⁻¹` (the diagonal Hessian bound, computed from its features,
//! so encrypted) in the weights' layout.
//!
//! One iteration = one pass over every batch, then one update. Per batch: `Z = X·Vᵀ`
//! (DiagABT, 3 levels), `P = cubic(Z)` (2), `D = Y − P` masked to the batch's rows
//! and classes (1; the cubic is ½ on the padding, where DiagATB needs zeros), refreshed
//! to the top when it has fewer than [`ChiangServer::D_MIN`] levels above the refresh
//! floor ([`super::Refresher::floor`]; one bootstrap of
//! one ciphertext per batch of `s0` rows), `G += Dᵀ·X` (DiagATB, 3). Then `G̃ = G ⊙ B̄⁻¹` (1; `B̄⁻¹` is zero
//! on the padded class rows, which also clears what the padding's `P = ½` put there),
//! [`crate::chiang::chiang_update`] (2: `T`, then `W'`), and a compact refresh of
//! `V' = T` when it has fewer than [`ChiangServer::V_MIN`] levels above the floor. About
//! `batches + 1`
//! bootstraps per iteration.
//!
//! Not implemented: Chiang's "Volley Revolver" packing (the block packing serves both
//! algorithms here), validation and early stopping under encryption (his protocol runs
//! a fixed number of iterations).

use super::client::Client;
use super::messages::{EncryptedBatch, EncryptedModel, SessionSetup, StepTimings};
use super::ops::{BootstrapStats, Ops, Refresher};
use super::weights::WeightRefresh;
use crate::chiang::{SIGMOID_POLY3, chiang_update, inverse_hessian_bound, iteration_constants};
use crate::error::{Result, TrainError};
use he_linalg::ckks::{Context, Polynomial};
use he_linalg::{
    Backend, DIAG_ABT_DEPTH, DIAG_ATB_DEPTH_LHS, DIAG_ATB_DEPTH_RHS, DiagAtbVariant,
    EncryptedMatrix, Matrix, Packing,
};
use std::sync::Arc;
use std::time::Instant;

/// The training party of Chiang's algorithm (see the module docs): no secret key, no
/// decryption.
pub struct ChiangServer<B: Backend> {
    ops: Ops<B>,
    refresher: Refresher<B>,
    weights: WeightRefresh,
    cubic: Polynomial,
    inv_b: EncryptedMatrix<B>,
    w: EncryptedMatrix<B>,
    v: EncryptedMatrix<B>,
    grad: Option<EncryptedMatrix<B>>,
    rows: usize,
    iterations: usize,
    timings: StepTimings,
}

impl<B: Backend> std::fmt::Debug for ChiangServer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChiangServer")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ChiangServer<B> {
    /// Levels `D = Y − P` needs above the refresh floor: DiagATB's 3, `⊙ B̄⁻¹` 1, the
    /// update's 2, and the 3 the new `W'` keeps for DiagABT (9).
    pub const D_MIN: usize = DIAG_ATB_DEPTH_LHS + 1 + 2 + DIAG_ABT_DEPTH;
    /// Levels the batch's features `X` need above the refresh floor: DiagATB's
    /// right-hand 1, then as [`Self::D_MIN`] after DiagATB (7; HETAL's plan folds its
    /// step size into DiagATB and plans `X` from its own `StepPlan::x_level`).
    pub const X_MIN: usize = DIAG_ATB_DEPTH_RHS + 1 + 2 + DIAG_ABT_DEPTH;
    /// Levels `V` needs above the refresh floor at the start of an iteration: DiagABT's
    /// 3, the cubic's 2 and the mask's 1 (6), so that `D` arrives at the floor.
    pub const V_MIN: usize = DIAG_ABT_DEPTH + 3;
    /// Bound on `|Y − P|` for the bootstrap's message scaling (the cubic stays within
    /// `[−0.2, 1.2]` for `|z| ≤ 9.6`; 4 leaves room).
    pub const D_BOUND: f64 = 4.0;

    /// Builds the evaluator and bootstrapping circuit from the client's setup and
    /// starts from `start` (`W = V`), with `inv_b` the client's encrypted `B̄⁻¹` in the
    /// weights' layout.
    ///
    /// # Errors
    /// [`TrainError::Message`] for a context of other parameters or `inv_b` in another
    /// layout than the weights; [`TrainError::Config`] if a refresh provides fewer than
    /// [`Self::D_MIN`] levels; bootstrapping setup errors.
    pub fn new(
        ctx: Arc<Context<B>>,
        setup: SessionSetup<B>,
        inv_b: EncryptedMatrix<B>,
        start: EncryptedModel<B>,
    ) -> Result<Self> {
        if inv_b.layout() != start.w.layout() {
            return Err(TrainError::Message(
                "B̄⁻¹ must come in the weights' layout".into(),
            ));
        }
        let super::server::ServerParts {
            config,
            shape,
            ev,
            boot,
            ..
        } = super::server::server_parts(&ctx, setup, Default::default())?;
        if boot.output_level() - boot.input_level() < Self::D_MIN {
            return Err(TrainError::Config(format!(
                "bootstrapping refreshes from level {} to {}; Chiang's step needs {} levels",
                boot.input_level(),
                boot.output_level(),
                Self::D_MIN
            )));
        }
        let [c0, c1, c2, c3] = SIGMOID_POLY3;
        Ok(Self {
            ops: Ops::new(ev),
            refresher: Refresher::new(boot),
            weights: config.weight_refresh(shape)?,
            cubic: Polynomial::monomial(vec![c0, c1, c2, c3])?,
            inv_b,
            v: start.w.clone(),
            w: start.w,
            grad: None,
            rows: 0,
            iterations: 0,
            timings: StepTimings::default(),
        })
    }

    /// Adds one batch's gradient `(Y − P)ᵀ·X` at the current `V`.
    ///
    /// # Errors
    /// Layout mismatches, missing keys, CKKS errors.
    pub fn accumulate(&mut self, batch: &EncryptedBatch<B>) -> Result<()> {
        let boot0 = self.refresher.stats();
        let clock = Instant::now();
        let z = self.ops.matrix().diag_abt(&batch.x, &self.v)?;
        self.timings.matmul += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        // The cubic is ½ (or more) outside the batch's rows and classes, where DiagATB
        // expects zeros: mask `Y − P` to the valid block (as ASoftmax's class mask does).
        let ones = Matrix::from_fn(batch.rows, z.layout().cols(), |_, _| 1.0);
        let masks = z.layout().pack(&ones)?;
        let d_blocks = z
            .ciphertexts()
            .iter()
            .zip(batch.y.ciphertexts())
            .zip(&masks)
            .enumerate()
            .map(|(k, ((zc, yc), mask))| {
                let p = self.ops.poly(zc, &self.cubic)?;
                let d = self.ops.sub(yc, &p)?;
                let d =
                    self.ops
                        .mul_mask(&d, &format!("chiang-rows/{}/{k}", batch.rows), &|| {
                            mask.clone()
                        })?;
                self.refresher
                    .ensure(&self.ops, &d, Self::D_MIN, Self::D_BOUND)
            })
            .collect::<Result<Vec<_>>>()?;
        let d = EncryptedMatrix::from_parts(*z.layout(), d_blocks)?;
        let boot1 = self.refresher.stats();
        self.timings.softmax += clock.elapsed().as_secs_f64() - (boot1.seconds - boot0.seconds);
        let clock = Instant::now();
        let g = self
            .ops
            .matrix()
            .diag_atb_with(&d, &batch.x, DiagAtbVariant::RotLeft)?;
        self.grad = Some(match self.grad.take() {
            None => g,
            Some(acc) => {
                let sum = acc
                    .ciphertexts()
                    .iter()
                    .zip(g.ciphertexts())
                    .map(|(a, b)| self.ops.add(a, b))
                    .collect::<Result<Vec<_>>>()?;
                EncryptedMatrix::from_parts(*acc.layout(), sum)?
            }
        });
        self.rows += batch.rows;
        self.timings.matmul += clock.elapsed().as_secs_f64();
        self.note_bootstraps(boot0);
        Ok(())
    }

    fn note_bootstraps(&mut self, before: BootstrapStats) {
        let now = self.refresher.stats();
        self.timings.bootstrap += now.seconds - before.seconds;
        self.timings.bootstraps += now.count - before.count;
    }

    /// Ends the iteration: `G̃ = G ⊙ B̄⁻¹`, Chiang's update, refresh of `V'`. Returns the
    /// iteration's time split (accumulation included) and resets it.
    ///
    /// # Errors
    /// [`TrainError::Config`] if no batch was accumulated; CKKS errors.
    pub fn update(&mut self) -> Result<StepTimings> {
        let g = self
            .grad
            .take()
            .ok_or_else(|| TrainError::Config("an iteration without batches".into()))?;
        let boot0 = self.refresher.stats();
        let clock = Instant::now();
        let (step, eta) = iteration_constants(self.iterations, self.rows, true);
        let mut w_new = Vec::with_capacity(g.ciphertexts().len());
        let mut v_new = Vec::with_capacity(g.ciphertexts().len());
        for (((gc, bc), wc), vc) in g
            .ciphertexts()
            .iter()
            .zip(self.inv_b.ciphertexts())
            .zip(self.w.ciphertexts())
            .zip(self.v.ciphertexts())
        {
            let pre = self.ops.mul(gc, bc)?;
            let (wn, vn) = chiang_update(&self.ops, wc, vc, &pre, step, eta)?;
            w_new.push(wn);
            v_new.push(vn);
        }
        let layout = *g.layout();
        self.w = EncryptedMatrix::from_parts(layout, w_new)?;
        let mut v = EncryptedMatrix::from_parts(layout, v_new)?;
        if v.level() < self.refresher.floor() + Self::V_MIN {
            v = self.weights.refresh(
                &self.ops,
                &self.refresher,
                &v,
                self.refresher.output_level() - WeightRefresh::UNPACK_DEPTH,
            )?;
        }
        self.v = v;
        self.timings.other += clock.elapsed().as_secs_f64();
        self.note_bootstraps(boot0);
        let boot_s = self.refresher.stats().seconds - boot0.seconds;
        self.timings.other -= boot_s;
        self.iterations += 1;
        self.rows = 0;
        Ok(std::mem::take(&mut self.timings))
    }

    /// The current iterate `W`, for the client to decrypt.
    pub fn model(&self) -> EncryptedModel<B> {
        EncryptedModel {
            w: self.w.clone(),
            epoch: self.iterations,
        }
    }

    /// Iterations completed.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Bootstraps so far.
    pub fn bootstrap_stats(&self) -> BootstrapStats {
        self.refresher.stats()
    }
}

/// What [`run_in_process`] measured.
#[derive(Debug, Clone)]
pub struct ChiangRun {
    /// The decrypted weights after the last iteration (`c×(d+1)`).
    pub w: Matrix,
    /// Time split per iteration.
    pub timings: Vec<StepTimings>,
    /// Evaluation keys and bootstrapping circuit (seconds).
    pub setup_s: f64,
    /// Encrypting the batches, every iteration together (seconds).
    pub encrypt_s: f64,
}

/// Chiang's encrypted training with both roles in this process, exchanging only what
/// the protocol sends (setup, `B̄⁻¹`, initial model, batches; the model back): the
/// training split `(x, y)` (preprocessed, bias column included) in batches of the
/// session's size, the same every iteration, for `iterations` iterations.
///
/// # Errors
/// As the parts.
pub fn run_in_process<B: Backend>(
    client: &Client<B>,
    x: &Matrix,
    y: &[usize],
    iterations: usize,
    mut progress: impl FnMut(usize, &StepTimings),
) -> Result<ChiangRun> {
    let clock = Instant::now();
    let config = client.config().clone();
    let setup = client.session_setup()?;
    let inv = inverse_hessian_bound(x, crate::chiang::ChiangConfig::default().epsilon);
    // Chiang's plan takes its operands at the top user level (it refreshes V below
    // `V_MIN`), not at HETAL's `weights_level`.
    let top = client.context().params().max_user_level();
    let x_level = (client.plan().floor + ChiangServer::<B>::X_MIN).min(top);
    let inv_b = client
        .encrypt_model_at(
            &Matrix::from_fn(config.classes, config.features, |_, j| inv[j]),
            0,
            top,
        )?
        .w;
    let mut server = ChiangServer::new(
        Arc::clone(client.context()),
        setup,
        inv_b,
        client.encrypt_model_at(&Matrix::zeros(config.classes, config.features), 0, top)?,
    )?;
    let setup_s = clock.elapsed().as_secs_f64();
    let mut timings = Vec::new();
    let mut encrypt_s = 0.0;
    for t in 0..iterations {
        for start in (0..x.rows()).step_by(config.batch) {
            let idx: Vec<usize> = (start..(start + config.batch).min(x.rows())).collect();
            let clock = Instant::now();
            let batch = client.encrypt_batch_at(
                &crate::train::rows_of(x, &idx),
                &idx.iter().map(|&i| y[i]).collect::<Vec<_>>(),
                x_level,
            )?;
            encrypt_s += clock.elapsed().as_secs_f64();
            server.accumulate(&batch)?;
        }
        let step = server.update()?;
        progress(t + 1, &step);
        timings.push(step);
    }
    Ok(ChiangRun {
        w: client.decrypt_model(&server.model())?,
        timings,
        setup_s,
        encrypt_s,
    })
}
