//! How the client reaches the server: the [`Transport`] trait (one method per request
//! of the protocol, typed messages) and [`InProcess`], the transport that holds the
//! [`ServerSession`] itself (tests, `cargo xtask reproduce`). The network transport is
//! `hetal-cli`'s HTTP client.

use super::server::{ServerSession, SessionStatus};
use crate::encrypted::ServerOptions;
use crate::encrypted::{
    EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback,
    SessionSetup, StepTimings,
};
use crate::error::{Result, TrainError};
use he_linalg::Backend;
use he_linalg::ckks::Context;
use std::path::PathBuf;
use std::sync::Arc;

/// The requests a training client sends to a server. Every request is idempotent on
/// the server ([`ServerSession`]), so a client may repeat one whose answer it lost.
pub trait Transport<B: Backend> {
    /// Creates a session from the client's setup (evaluation keys; gigabytes at
    /// N = 2^16, streamed by network transports) and returns its id.
    ///
    /// # Errors
    /// Transport errors; the server's refusal (configuration out of bounds, parameters
    /// it does not accept, malformed keys).
    fn open(&mut self, setup: SessionSetup<B>) -> Result<String>;

    /// Reattaches to the session `id` after a restart of the client. A transport that
    /// keeps no server of its own (in-process) rebuilds it from `setup`, which it calls
    /// only then.
    ///
    /// # Errors
    /// Unknown session; transport errors.
    fn attach(
        &mut self,
        id: &str,
        setup: &mut dyn FnMut() -> Result<SessionSetup<B>>,
    ) -> Result<SessionStatus>;

    /// Where the session stands.
    ///
    /// # Errors
    /// Transport errors.
    fn status(&mut self) -> Result<SessionStatus>;

    /// Sends the initial model.
    ///
    /// # Errors
    /// Transport errors.
    fn start(&mut self, model: &EncryptedModel<B>) -> Result<()>;

    /// Step `index` (0-based) on an encrypted batch.
    ///
    /// # Errors
    /// As [`ServerSession::step`]; transport errors.
    fn step(&mut self, index: usize, batch: &EncryptedBatch<B>) -> Result<StepTimings>;

    /// Sends the encrypted validation features (once).
    ///
    /// # Errors
    /// Transport errors.
    fn set_validation(&mut self, features: &EncryptedFeatures<B>) -> Result<()>;

    /// Encrypted validation logits of the current iterate.
    ///
    /// # Errors
    /// Transport errors.
    fn validation_logits(&mut self) -> Result<EncryptedLogits<B>>;

    /// Ends an epoch with the client's decision; returns whether training goes on.
    ///
    /// # Errors
    /// Transport errors.
    fn end_epoch(&mut self, epoch: usize, feedback: EpochFeedback) -> Result<bool>;

    /// The candidate models (last `patience + 1` epochs) and the current iterate.
    ///
    /// # Errors
    /// Transport errors.
    fn models(&mut self) -> Result<(Vec<EncryptedModel<B>>, EncryptedModel<B>)>;

    /// Encrypted inference: logits of `model` on `features`.
    ///
    /// # Errors
    /// Transport errors.
    fn infer(
        &mut self,
        model: &EncryptedModel<B>,
        features: &EncryptedFeatures<B>,
    ) -> Result<EncryptedLogits<B>>;

    /// Bytes sent and received so far (0 for transports that move no bytes).
    fn traffic(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// The server in the client's process: no bytes move, messages are passed as values.
/// With a state directory, the server's session persists there (`--resume` of
/// `cargo xtask reproduce`).
pub struct InProcess<B: Backend> {
    ctx: Arc<Context<B>>,
    dir: Option<PathBuf>,
    options: ServerOptions,
    session: Option<ServerSession<B>>,
}

impl<B: Backend> std::fmt::Debug for InProcess<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> InProcess<B> {
    /// A transport whose server uses the context `ctx` and keeps its state in `dir`.
    pub fn new(ctx: Arc<Context<B>>, dir: Option<PathBuf>) -> Self {
        Self::with_options(ctx, dir, ServerOptions::default())
    }

    /// As [`Self::new`], the server built with `options`
    /// ([`crate::encrypted::Server::with_options`]).
    pub fn with_options(
        ctx: Arc<Context<B>>,
        dir: Option<PathBuf>,
        options: ServerOptions,
    ) -> Self {
        Self {
            ctx,
            dir,
            options,
            session: None,
        }
    }

    fn session(&mut self) -> Result<&mut ServerSession<B>> {
        self.session
            .as_mut()
            .ok_or_else(|| TrainError::Message("no session opened".into()))
    }

    /// The server's session (e.g. for its bootstrap statistics).
    pub fn server_session(&self) -> Option<&ServerSession<B>> {
        self.session.as_ref()
    }
}

impl<B: Backend> Transport<B> for InProcess<B> {
    fn open(&mut self, setup: SessionSetup<B>) -> Result<String> {
        let id = "in-process".to_string();
        if let Some(dir) = &self.dir {
            // A fresh session: an earlier one's state must not be picked up.
            for f in ["state.bin", "validation.bin"] {
                let p = dir.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|source| TrainError::Io {
                        path: p.display().to_string(),
                        source,
                    })?;
                }
            }
        }
        self.session = Some(ServerSession::with_options(
            &id,
            self.ctx.clone(),
            setup,
            self.dir.clone(),
            self.options,
        )?);
        Ok(id)
    }

    fn attach(
        &mut self,
        id: &str,
        setup: &mut dyn FnMut() -> Result<SessionSetup<B>>,
    ) -> Result<SessionStatus> {
        if self.session.as_ref().is_none_or(|s| s.id() != id) {
            self.session = Some(ServerSession::with_options(
                id,
                self.ctx.clone(),
                setup()?,
                self.dir.clone(),
                self.options,
            )?);
        }
        self.status()
    }

    fn status(&mut self) -> Result<SessionStatus> {
        Ok(self.session()?.status())
    }

    fn start(&mut self, model: &EncryptedModel<B>) -> Result<()> {
        let model = EncryptedModel {
            w: model.w.clone(),
            epoch: model.epoch,
        };
        self.session()?.start(model)
    }

    fn step(&mut self, index: usize, batch: &EncryptedBatch<B>) -> Result<StepTimings> {
        self.session()?.step(index, batch)
    }

    fn set_validation(&mut self, features: &EncryptedFeatures<B>) -> Result<()> {
        let f = EncryptedFeatures {
            x: features.x.clone(),
        };
        self.session()?.set_validation(f)
    }

    fn validation_logits(&mut self) -> Result<EncryptedLogits<B>> {
        self.session()?.validation_logits()
    }

    fn end_epoch(&mut self, epoch: usize, feedback: EpochFeedback) -> Result<bool> {
        self.session()?.end_epoch(epoch, feedback)
    }

    fn models(&mut self) -> Result<(Vec<EncryptedModel<B>>, EncryptedModel<B>)> {
        self.session()?.models()
    }

    fn infer(
        &mut self,
        model: &EncryptedModel<B>,
        features: &EncryptedFeatures<B>,
    ) -> Result<EncryptedLogits<B>> {
        self.session()?.infer(model, features)
    }
}
