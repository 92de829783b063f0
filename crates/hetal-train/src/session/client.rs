//! The client's training loop over a [`Transport`]: HETAL's protocol (Lee et al., ICML
//! 2023, §3 and Algorithm 1) with epochs of shuffled batches, validation after every
//! epoch, early stopping decided by the client, the best epoch chosen by the client
//! among the server's candidates without telling the server, and a checkpoint of the
//! client's side after every step so that a killed client resumes.

use super::server::SessionStatus;
use super::transport::Transport;
use crate::encrypted::messages::{from_bytes, to_bytes};
use crate::encrypted::{Client, SessionSetup, StepTimings};
use crate::error::{Result, TrainError};
use crate::store;
use crate::train::{EarlyStopping, EpochRecord, epoch_batches, rows_of};
use he_linalg::ckks::FloodingReport;
use he_linalg::{Backend, Matrix};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// The training data the client holds, preprocessed (`n × (d+1)` with the bias column).
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Training features and labels.
    pub train: (&'a Matrix, &'a [usize]),
    /// Validation features and labels.
    pub val: (&'a Matrix, &'a [usize]),
}

/// How long to train and where the client keeps its checkpoint.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Epochs at most.
    pub epochs: usize,
    /// Stop after this many steps (the partial epoch is validated as the last one).
    pub max_steps: Option<usize>,
    /// Seed of the batch order.
    pub seed: u64,
    /// The client's checkpoint file and what it is bound to (a SHA-256 of the secret
    /// key, parameters, configuration, data and seed: resuming with anything else is
    /// refused); `None`: no checkpoint.
    pub checkpoint: Option<(PathBuf, store::Binding)>,
    /// Resume from the checkpoint (it must exist).
    pub resume: bool,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The evaluation keys were generated and sent (`seconds` for both).
    Opened {
        /// The session id.
        id: String,
        /// Seconds of key generation and upload.
        seconds: f64,
    },
    /// Resumed from the checkpoint.
    Resumed(SessionStatus),
    /// A step finished.
    Step {
        /// Steps so far.
        steps: usize,
        /// The epoch it belongs to.
        epoch: usize,
        /// Its timings (server side).
        timings: StepTimings,
    },
    /// An epoch was validated.
    Epoch(EpochRecord),
    /// Validation logits fell outside ASoftmax's range `[−R_max, R_max]` (the
    /// softmax of training batches with such logits is meaningless; lower the learning
    /// rate or the weight bound).
    OutOfRange {
        /// The epoch.
        epoch: usize,
        /// How many logits.
        count: usize,
        /// The largest `|z|`.
        max_abs_logit: f64,
    },
}

impl Event {
    /// A one-line description for a progress log (the front ends print it).
    pub fn message(&self) -> String {
        match self {
            Self::Opened { id, seconds } => {
                format!("session {id}: keys generated and sent, server set up: {seconds:.1} s")
            }
            Self::Resumed(s) => format!("resumed session {} at step {}", s.id, s.steps),
            Self::Step {
                steps,
                epoch,
                timings,
            } => format!(
                "step {steps} (epoch {epoch}): {:.1} s, {} bootstraps",
                timings.total(),
                timings.bootstraps
            ),
            Self::Epoch(r) => format!(
                "epoch {}: validation loss {:.4}, accuracy {:.4}",
                r.epoch, r.val_loss, r.val_accuracy
            ),
            Self::OutOfRange {
                epoch,
                count,
                max_abs_logit,
            } => format!(
                "warning: epoch {epoch}: {count} validation logits outside ASoftmax's range \
                 (largest |z| = {max_abs_logit:.1}); lower the learning rate"
            ),
        }
    }
}

/// The client's checkpoint: where the loop stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClientState {
    session: String,
    epoch: usize,
    batch_in_epoch: usize,
    steps: usize,
    history: Vec<EpochRecord>,
    stopping: EarlyStopping,
    timings: StepTimings,
    validation_s: f64,
    stopped: bool,
}

const CLIENT_STATE_KIND: &[u8; 8] = b"HETALCS1";
/// Largest client checkpoint read back.
const MAX_CLIENT_STATE: u64 = 64 << 20;

/// What a finished loop returns.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    /// The session id.
    pub session: String,
    /// Steps in total (resumed ones included).
    pub steps: usize,
    /// Steps run by this call.
    pub steps_run: usize,
    /// Validation record of every epoch.
    pub history: Vec<EpochRecord>,
    /// The best epoch by validation loss (0: the initial model).
    pub best_epoch: usize,
    /// The best epoch's weights, decrypted (`c × (d+1)`).
    pub model: Matrix,
    /// The last iterate's weights, decrypted.
    pub last_w: Matrix,
    /// Summed step timings (server side).
    pub timings: StepTimings,
    /// Seconds of key generation and upload (0 when resumed without it).
    pub setup_s: f64,
    /// Seconds per validation (encrypted logits, decryption, decision).
    pub validation_s_per_epoch: f64,
    /// The server's final status (bootstraps).
    pub status: SessionStatus,
    /// The noise flooding of the validation decryptions made by this call (the worst
    /// epoch's report; `None` with flooding off or no validation).
    pub flooding: Option<FloodingReport>,
}

fn save_state(opts: &LoopOptions, st: &ClientState) -> Result<()> {
    if let Some((path, binding)) = &opts.checkpoint {
        let sealed = store::seal(CLIENT_STATE_KIND, binding, &to_bytes(st)?);
        store::write_atomic(path, &sealed)?;
    }
    Ok(())
}

fn load_state(opts: &LoopOptions) -> Result<ClientState> {
    let Some((path, binding)) = &opts.checkpoint else {
        return Err(TrainError::Config("resume needs a checkpoint file".into()));
    };
    let bytes = store::read_private(path, MAX_CLIENT_STATE)?;
    let payload = store::unseal(path, CLIENT_STATE_KIND, binding, &bytes)?;
    from_bytes(payload)
}

/// Runs HETAL's protocol as the client (see the module docs) and returns the decrypted
/// best model. `progress` sees every [`Event`].
///
/// On resume the client reattaches to its session; if the server applied one step more
/// than the checkpoint records (the client died before saving), that step is asked
/// again and answered from the server's record.
///
/// # Errors
/// [`TrainError::Message`] if the server's state is behind the client's checkpoint
/// (its state was lost); transport, encryption and checkpoint errors.
pub fn run<B: Backend>(
    client: &mut Client<B>,
    transport: &mut dyn Transport<B>,
    data: TrainData<'_>,
    opts: &LoopOptions,
    progress: &mut dyn FnMut(&Event),
) -> Result<LoopOutcome> {
    let (xt, yt) = data.train;
    let (xv, yv) = data.val;
    let batch = client.config().batch;
    let mut setup_s = 0.0;
    let mut st = if opts.resume {
        let st = load_state(opts)?;
        let status = transport.attach(&st.session, &mut || client.session_setup())?;
        if status.steps < st.steps || !status.started {
            return Err(TrainError::Message(format!(
                "the server's session {} has {} steps, the client's checkpoint {}: \
                 the server lost its state",
                st.session, status.steps, st.steps
            )));
        }
        if status.steps > st.steps + 1 {
            return Err(TrainError::Message(format!(
                "the server's session {} is {} steps ahead of the client's checkpoint",
                st.session,
                status.steps - st.steps
            )));
        }
        client.set_early_stopping(st.stopping.clone());
        progress(&Event::Resumed(status));
        st
    } else {
        let clock = Instant::now();
        let setup: SessionSetup<B> = client.session_setup()?;
        let id = transport.open(setup)?;
        transport.start(&client.initial_model()?)?;
        setup_s = clock.elapsed().as_secs_f64();
        progress(&Event::Opened {
            id: id.clone(),
            seconds: setup_s,
        });
        let st = ClientState {
            session: id,
            epoch: 1,
            batch_in_epoch: 0,
            steps: 0,
            history: Vec::new(),
            stopping: client.early_stopping().clone(),
            timings: StepTimings::default(),
            validation_s: 0.0,
            stopped: false,
        };
        save_state(opts, &st)?;
        st
    };
    if !transport.status()?.has_validation {
        transport.set_validation(&client.encrypt_features(xv)?)?;
    }
    let mut steps_run = 0;
    let mut flooding: Option<FloodingReport> = None;
    while st.epoch <= opts.epochs && !st.stopped {
        let epoch = st.epoch;
        let batches = epoch_batches(xt.rows(), batch, opts.seed, epoch);
        let mut truncated = false;
        for (bi, b) in batches.iter().enumerate().skip(st.batch_in_epoch) {
            if opts.max_steps.is_some_and(|m| st.steps >= m) {
                truncated = true;
                break;
            }
            let xb = rows_of(xt, b);
            let yb: Vec<usize> = b.iter().map(|&i| yt[i]).collect();
            let enc = client.encrypt_batch(&xb, &yb)?;
            let t = transport.step(st.steps, &enc)?;
            st.timings.accumulate(&t);
            st.steps += 1;
            steps_run += 1;
            st.batch_in_epoch = bi + 1;
            save_state(opts, &st)?;
            progress(&Event::Step {
                steps: st.steps,
                epoch,
                timings: t,
            });
        }
        // Validation: encrypted logits, decrypted and judged by the client.
        let clock = Instant::now();
        let z = transport.validation_logits()?;
        let v = client.validate(epoch, &z, yv)?;
        st.validation_s += clock.elapsed().as_secs_f64();
        if let Some(r) = v.flooding {
            flooding = Some(flooding.map_or(r, |f| f.max(r)));
        }
        if v.out_of_range > 0 {
            // Reported once, as an event: the front ends print every event.
            progress(&Event::OutOfRange {
                epoch,
                count: v.out_of_range,
                max_abs_logit: v.max_abs_logit,
            });
        }
        let feedback = v.feedback;
        let record = EpochRecord {
            epoch,
            steps: st.steps,
            train_loss: f64::NAN,
            val_loss: v.loss,
            val_accuracy: v.accuracy,
        };
        st.history.push(record.clone());
        let go_on = transport.end_epoch(epoch, feedback)?;
        st.stopped = !go_on || truncated || opts.max_steps.is_some_and(|m| st.steps >= m);
        st.epoch += 1;
        st.batch_in_epoch = 0;
        st.stopping = client.early_stopping().clone();
        save_state(opts, &st)?;
        progress(&Event::Epoch(record));
    }

    // The client decrypts every candidate and keeps the best epoch's: the server never
    // learns which.
    let best_epoch = client.best_epoch().unwrap_or(0);
    let (candidates, current) = transport.models()?;
    let last_w = client.decrypt_model(&current)?;
    let model = match candidates.iter().find(|m| m.epoch == best_epoch) {
        Some(m) => client.decrypt_model(m)?,
        None => last_w.clone(),
    };
    let status = transport.status()?;
    Ok(LoopOutcome {
        session: st.session,
        steps: st.steps,
        steps_run,
        best_epoch,
        model,
        last_w,
        timings: st.timings,
        setup_s,
        validation_s_per_epoch: st.validation_s / st.history.len().max(1) as f64,
        history: st.history,
        status,
        flooding,
    })
}
