//! The server side of a training session: a [`Server`] plus what a client may ask again
//! after a crash (the last step's timings, the epochs already ended), the encrypted
//! validation features, and its state on disk.
//!
//! Every request is idempotent, so a client that lost an answer (its process or the
//! connection died) repeats it: a step names its index, and the step the server has
//! already applied is answered from the record instead of being applied twice; an epoch
//! already ended is not recorded again. With a state directory the session writes
//! `state.bin` after every change (atomically, sealed and bound to the session id:
//! [`crate::store`]) and `validation.bin` once, so a restarted server continues where
//! it stopped.

use crate::encrypted::ServerOptions;
use crate::encrypted::messages::to_bytes;
use crate::encrypted::{
    BootstrapStats, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback, Server,
    SessionSetup, StepTimings,
};
use crate::encrypted::{EncryptedBatch, SessionConfig};
use crate::error::{Result, TrainError};
use crate::store;
use he_linalg::Backend;
use he_linalg::ckks::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a client can ask about a session (public).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session's id.
    pub id: String,
    /// Whether the initial model was received.
    pub started: bool,
    /// Training steps applied.
    pub steps: usize,
    /// The last epoch ended ([`ServerSession::end_epoch`]), 0 before the first.
    pub last_epoch: usize,
    /// Whether the validation features were received.
    pub has_validation: bool,
    /// Bootstraps so far, and their seconds.
    pub bootstrap: BootstrapStats,
}

/// Kind tags of the server's files ([`crate::store`]). The state file's payload is a
/// [`StateHead`] followed by the [`Server::write_checkpoint`] bytes when started (the
/// `V1` layout held them inside the head, built in memory).
const STATE_KIND: &[u8; 8] = b"HETALSV2";
const VALIDATION_KIND: &[u8; 8] = b"HETALSF1";
/// Largest state or validation file read back.
const MAX_STATE_BYTES: u64 = 64 << 30;

#[derive(Serialize, Deserialize)]
struct StateHead {
    /// Whether the server's checkpoint follows.
    started: bool,
    last_step: Option<StepTimings>,
    last_epoch: usize,
}

/// One training session on the server: see the module docs.
pub struct ServerSession<B: Backend> {
    id: String,
    ctx: Arc<Context<B>>,
    server: Server<B>,
    started: bool,
    validation: Option<EncryptedFeatures<B>>,
    last_step: Option<StepTimings>,
    last_epoch: usize,
    dir: Option<PathBuf>,
}

impl<B: Backend> std::fmt::Debug for ServerSession<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ServerSession<B> {
    /// Builds the session's [`Server`] from the client's setup; with `dir`, restores the
    /// state found there (a restarted server) and persists every change to it.
    ///
    /// # Errors
    /// As [`Server::new`]; [`TrainError::Store`] for a state file that is corrupted or
    /// belongs to another session; I/O errors.
    pub fn new(
        id: &str,
        ctx: Arc<Context<B>>,
        setup: SessionSetup<B>,
        dir: Option<PathBuf>,
    ) -> Result<Self> {
        Self::with_options(id, ctx, setup, dir, ServerOptions::default())
    }

    /// As [`Self::new`] with the server's own choices ([`Server::with_options`]).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_options(
        id: &str,
        ctx: Arc<Context<B>>,
        setup: SessionSetup<B>,
        dir: Option<PathBuf>,
        options: ServerOptions,
    ) -> Result<Self> {
        let server = Server::with_options(ctx.clone(), setup, options)?;
        let mut s = Self {
            id: id.to_string(),
            ctx,
            server,
            started: false,
            validation: None,
            last_step: None,
            last_epoch: 0,
            dir,
        };
        s.load()?;
        Ok(s)
    }

    fn binding(&self) -> store::Binding {
        store::Binding::new(&[
            ("purpose", b"server-session"),
            ("session id", self.id.as_bytes()),
        ])
    }

    fn load(&mut self) -> Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let state = dir.join("state.bin");
        if state.exists() {
            let bytes = read_bounded(&state)?;
            let payload = store::unseal(&state, STATE_KIND, &self.binding(), &bytes)?;
            let (f, rest): (StateHead, &[u8]) = postcard::take_from_bytes(payload)
                .map_err(|e| TrainError::Message(format!("state file: {e}")))?;
            if f.started {
                self.server.restore(rest)?;
                self.started = true;
            } else if !rest.is_empty() {
                return Err(TrainError::Message(format!(
                    "state file: {} bytes after the head of a session not started",
                    rest.len()
                )));
            }
            self.last_step = f.last_step;
            self.last_epoch = f.last_epoch;
        }
        let val = dir.join("validation.bin");
        if val.exists() {
            let bytes = read_bounded(&val)?;
            let payload = store::unseal(&val, VALIDATION_KIND, &self.binding(), &bytes)?;
            self.validation = Some(EncryptedFeatures::from_bytes(&self.ctx, payload)?);
        }
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let head = StateHead {
            started: self.started,
            last_step: self.last_step,
            last_epoch: self.last_epoch,
        };
        // Streamed: the state is never built in memory (it is hundreds of MB).
        let path = dir.join("state.bin");
        store::write_sealed_atomic(&path, STATE_KIND, &self.binding(), |w| {
            w.write_all(&to_bytes(&head)?)
                .map_err(|source| TrainError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            if self.started {
                self.server.write_checkpoint(w)?;
            }
            Ok(())
        })
    }

    /// The session's CKKS context (to decode the client's messages).
    pub fn context(&self) -> &Arc<Context<B>> {
        &self.ctx
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session configuration.
    pub fn config(&self) -> &SessionConfig {
        self.server.config()
    }

    /// The evaluation keys' number and size in memory, bytes
    /// ([`Server::evaluation_keys_size`]).
    pub fn evaluation_keys_size(&self) -> (usize, usize) {
        self.server.evaluation_keys_size()
    }

    /// Where the session stands.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            id: self.id.clone(),
            started: self.started,
            steps: self.server.steps(),
            last_epoch: self.last_epoch,
            has_validation: self.validation.is_some(),
            bootstrap: self.server.bootstrap_stats(),
        }
    }

    /// Starts training from the client's initial model; a second start is ignored (the
    /// session keeps its state).
    ///
    /// # Errors
    /// Persistence errors.
    pub fn start(&mut self, model: EncryptedModel<B>) -> Result<()> {
        if !self.started {
            self.server.start(model);
            self.started = true;
            self.persist()?;
        }
        Ok(())
    }

    /// Applies step `index` (0-based) on `batch` if the session has applied exactly
    /// `index` steps; answers the recorded timings if `index` is the step applied last.
    ///
    /// # Errors
    /// [`TrainError::Message`] for any other index (the client and the server disagree
    /// on where training stands); as [`Server::train_step`]; persistence errors.
    pub fn step(&mut self, index: usize, batch: &EncryptedBatch<B>) -> Result<StepTimings> {
        let steps = self.server.steps();
        if index + 1 == steps
            && let Some(t) = self.last_step
        {
            return Ok(t);
        }
        if index != steps {
            return Err(TrainError::Message(format!(
                "step {index} asked, the session has applied {steps}"
            )));
        }
        let t = self.server.train_step(batch)?;
        self.last_step = Some(t);
        self.persist()?;
        Ok(t)
    }

    /// Keeps the encrypted validation features (sent once per session).
    ///
    /// # Errors
    /// [`TrainError::Config`] for features of the wrong width; persistence errors.
    pub fn set_validation(&mut self, features: EncryptedFeatures<B>) -> Result<()> {
        if features.x.layout().cols() != self.config().features {
            return Err(TrainError::Config(format!(
                "validation features have {} columns, the session {}",
                features.x.layout().cols(),
                self.config().features
            )));
        }
        if let Some(dir) = &self.dir {
            store::write_sealed_atomic(
                &dir.join("validation.bin"),
                VALIDATION_KIND,
                &self.binding(),
                |w| features.write_to(&self.ctx, w),
            )?;
        }
        self.validation = Some(features);
        Ok(())
    }

    /// Encrypted logits of the current iterate on the validation features.
    ///
    /// # Errors
    /// [`TrainError::Config`] without validation features; as [`Server::logits`].
    pub fn validation_logits(&mut self) -> Result<EncryptedLogits<B>> {
        let Some(val) = &self.validation else {
            return Err(TrainError::Config("no validation features received".into()));
        };
        self.server.logits(val)
    }

    /// Ends `epoch` (once: an epoch already ended only returns the decision) and
    /// returns whether training goes on.
    ///
    /// # Errors
    /// [`TrainError::Message`] for an epoch before the last one ended; as
    /// [`Server::end_epoch`]; persistence errors.
    pub fn end_epoch(&mut self, epoch: usize, feedback: EpochFeedback) -> Result<bool> {
        if epoch < self.last_epoch {
            return Err(TrainError::Message(format!(
                "epoch {epoch} ended after epoch {}",
                self.last_epoch
            )));
        }
        if epoch == self.last_epoch {
            return Ok(feedback.decision == crate::train::Decision::Continue);
        }
        let go_on = self.server.end_epoch(epoch, feedback)?;
        self.last_epoch = epoch;
        self.persist()?;
        Ok(go_on)
    }

    /// The last `patience + 1` epochs' weights and the current iterate (epoch of the
    /// last ended epoch), all encrypted: the client decrypts them and picks the best
    /// without telling the server.
    ///
    /// # Errors
    /// [`TrainError::Config`] before [`Self::start`].
    pub fn models(&self) -> Result<(Vec<EncryptedModel<B>>, EncryptedModel<B>)> {
        Ok((self.server.candidate_models(), self.server.current_model()?))
    }

    /// Encrypted logits of a client-supplied model on client-supplied features.
    ///
    /// # Errors
    /// As [`Server::infer`].
    pub fn infer(
        &self,
        model: &EncryptedModel<B>,
        features: &EncryptedFeatures<B>,
    ) -> Result<EncryptedLogits<B>> {
        self.server.infer(model, features)
    }

    /// The state directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let io = |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_STATE_BYTES {
        return Err(TrainError::Store {
            path: path.display().to_string(),
            reason: format!("{len} bytes (at most {MAX_STATE_BYTES})"),
        });
    }
    std::fs::read(path).map_err(io)
}
