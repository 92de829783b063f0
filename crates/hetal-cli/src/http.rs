//! The client's network transport: [`HttpTransport`], `hetal_train`'s [`Transport`]
//! over the routes of [`crate::serve`], HTTP/2 (reqwest, blocking): cleartext with
//! prior knowledge, or TLS (rustls with the ring provider) negotiated by ALPN.
//!
//! The evaluation keys are streamed: a thread writes the setup's streamed form into a
//! pipe and the request body reads from it, so no buffer holds the keys' gigabytes.
//! Every other request is retried on transport errors (no answer) for up to `retry` (the server
//! may be restarting; requests are idempotent on the server), and the bytes each way
//! are counted.

use he_linalg::CpuBackend;
use he_linalg::ckks::Context;
use hetal_train::encrypted::{
    EncryptedBatch, EncryptedFeatures, EncryptedLogits, EncryptedModel, EpochFeedback,
    SessionSetup, StepTimings,
};
use hetal_train::session::{SessionStatus, Transport};
use hetal_train::{Result, TrainError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// [`Transport`] over HTTP/2 to `hetal serve`.
pub struct HttpTransport {
    base: String,
    http: reqwest::blocking::Client,
    ctx: Arc<Context<CpuBackend>>,
    id: Option<String>,
    retry: Duration,
    sent: u64,
    received: u64,
}

fn transport(e: impl std::fmt::Display) -> TrainError {
    TrainError::Transport(e.to_string())
}

impl HttpTransport {
    /// A transport to the server at `base`: `http://host:port` (HTTP/2 by prior
    /// knowledge) or `https://host:port` (rustls, HTTP/2 by ALPN; the server's
    /// certificate must chain to `ca`, a PEM file, when given, else to the platform's
    /// roots). `retry` bounds how long a request is retried while the server cannot be
    /// reached.
    ///
    /// # Errors
    /// [`TrainError::Transport`] for another scheme, an unreadable `ca`, or an HTTP
    /// client that cannot be built.
    pub fn new(
        base: &str,
        ca: Option<&std::path::Path>,
        ctx: Arc<Context<CpuBackend>>,
        retry: Duration,
    ) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let mut b = reqwest::blocking::Client::builder()
            .http2_initial_stream_window_size(16 << 20)
            .http2_initial_connection_window_size(32 << 20)
            .timeout(None);
        if base.starts_with("https://") {
            if let Some(ca) = ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| transport(format!("reading {}: {e}", ca.display())))?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(transport)?;
                b = b.tls_certs_only([cert]);
            }
            b = b.https_only(true);
        } else if base.starts_with("http://") {
            if ca.is_some() {
                return Err(TrainError::Transport(format!(
                    "--ca given for the cleartext URL {base}"
                )));
            }
            b = b.http2_prior_knowledge();
        } else {
            return Err(TrainError::Transport(format!(
                "{base}: the server URL must start with http:// or https://"
            )));
        }
        let http = b.build().map_err(transport)?;
        Ok(Self {
            base,
            http,
            ctx,
            id: None,
            retry,
            sent: 0,
            received: 0,
        })
    }

    fn url(&self, path: &str) -> Result<String> {
        let id = self
            .id
            .as_ref()
            .ok_or_else(|| TrainError::Transport("no session opened".into()))?;
        Ok(format!("{}/v1/sessions/{id}{path}", self.base))
    }

    /// Sends a request (retried on connection errors) and returns the answer's body.
    fn call(&mut self, post: bool, path: &str, body: Vec<u8>, json: bool) -> Result<Vec<u8>> {
        let url = self.url(path)?;
        let clock = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let req = if post {
                self.http.post(&url).body(body.clone())
            } else {
                self.http.get(&url)
            };
            let req = if json {
                req.header("content-type", "application/json")
            } else {
                req.header("content-type", "application/octet-stream")
            };
            match req.send() {
                Ok(resp) => {
                    self.sent += body.len() as u64;
                    let status = resp.status();
                    let bytes = resp.bytes().map_err(transport)?;
                    self.received += bytes.len() as u64;
                    if !status.is_success() {
                        return Err(TrainError::Transport(format!(
                            "{url}: {status}: {}",
                            String::from_utf8_lossy(&bytes)
                        )));
                    }
                    return Ok(bytes.to_vec());
                }
                Err(e) if !e.is_builder() && clock.elapsed() < self.retry => {
                    tracing::warn!(error = %e, "server unreachable, retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(transport(format!("{url}: {e}"))),
            }
        }
    }

    fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(transport)
    }
}

impl Transport<CpuBackend> for HttpTransport {
    fn open(&mut self, setup: SessionSetup<CpuBackend>) -> Result<String> {
        let (reader, mut writer) = std::io::pipe().map_err(transport)?;
        let ctx = self.ctx.clone();
        let writer_thread = std::thread::spawn(move || setup.write_to(&ctx, &mut writer));
        let resp = self
            .http
            .post(format!("{}/v1/sessions", self.base))
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(reader))
            .send();
        let written = writer_thread
            .join()
            .map_err(|_| TrainError::Transport("the key writer panicked".into()))?;
        let resp = resp.map_err(|e| transport(format!("uploading the keys: {e}")))?;
        let status = resp.status();
        let bytes = resp.bytes().map_err(transport)?;
        if !status.is_success() {
            return Err(TrainError::Transport(format!(
                "the server refused the session: {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        self.sent += written?;
        self.received += bytes.len() as u64;
        let v: serde_json::Value = Self::json(&bytes)?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| TrainError::Transport("no session id in the answer".into()))?
            .to_string();
        self.id = Some(id.clone());
        Ok(id)
    }

    fn attach(
        &mut self,
        id: &str,
        _setup: &mut dyn FnMut() -> Result<SessionSetup<CpuBackend>>,
    ) -> Result<SessionStatus> {
        self.id = Some(id.to_string());
        self.status()
    }

    fn status(&mut self) -> Result<SessionStatus> {
        let b = self.call(false, "", Vec::new(), false)?;
        Self::json(&b)
    }

    fn start(&mut self, model: &EncryptedModel<CpuBackend>) -> Result<()> {
        let body = model.to_bytes(&self.ctx)?;
        self.call(true, "/start", body, false).map(drop)
    }

    fn step(&mut self, index: usize, batch: &EncryptedBatch<CpuBackend>) -> Result<StepTimings> {
        let body = batch.to_bytes(&self.ctx)?;
        let b = self.call(true, &format!("/steps/{index}"), body, false)?;
        Self::json(&b)
    }

    fn set_validation(&mut self, features: &EncryptedFeatures<CpuBackend>) -> Result<()> {
        let body = features.to_bytes(&self.ctx)?;
        self.call(true, "/validation", body, false).map(drop)
    }

    fn validation_logits(&mut self) -> Result<EncryptedLogits<CpuBackend>> {
        let b = self.call(true, "/validation/logits", Vec::new(), false)?;
        EncryptedLogits::from_bytes(&self.ctx, &b)
    }

    fn end_epoch(&mut self, epoch: usize, feedback: EpochFeedback) -> Result<bool> {
        let body = serde_json::to_vec(&feedback).map_err(transport)?;
        let b = self.call(true, &format!("/epochs/{epoch}"), body, true)?;
        let v: serde_json::Value = Self::json(&b)?;
        v["go_on"]
            .as_bool()
            .ok_or_else(|| TrainError::Transport("no decision in the answer".into()))
    }

    fn models(&mut self) -> Result<(Vec<EncryptedModel<CpuBackend>>, EncryptedModel<CpuBackend>)> {
        let b = self.call(false, "/models", Vec::new(), false)?;
        let (cands, current): (Vec<Vec<u8>>, Vec<u8>) =
            postcard::from_bytes(&b).map_err(transport)?;
        let cands = cands
            .iter()
            .map(|m| EncryptedModel::from_bytes(&self.ctx, m))
            .collect::<Result<Vec<_>>>()?;
        Ok((cands, EncryptedModel::from_bytes(&self.ctx, &current)?))
    }

    fn infer(
        &mut self,
        model: &EncryptedModel<CpuBackend>,
        features: &EncryptedFeatures<CpuBackend>,
    ) -> Result<EncryptedLogits<CpuBackend>> {
        let body =
            postcard::to_allocvec(&(model.to_bytes(&self.ctx)?, features.to_bytes(&self.ctx)?))
                .map_err(transport)?;
        let b = self.call(true, "/infer", body, false)?;
        EncryptedLogits::from_bytes(&self.ctx, &b)
    }

    fn traffic(&self) -> (u64, u64) {
        (self.sent, self.received)
    }
}
