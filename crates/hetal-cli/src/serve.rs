//! `hetal serve`: the training server over HTTP/2 (cleartext, prior knowledge; HTTP/1.1
//! is accepted too).
//!
//! Routes (binary bodies are the postcard messages of `hetal_train::encrypted`, JSON
//! where noted):
//!
//! | route | body → answer |
//! |---|---|
//! | `POST /v1/sessions` | streamed `SessionSetup` → JSON `{id, bytes}` |
//! | `GET /v1/sessions/{id}` | → JSON `SessionStatus` |
//! | `POST /v1/sessions/{id}/start` | `EncryptedModel` → empty |
//! | `POST /v1/sessions/{id}/steps/{index}` | `EncryptedBatch` → JSON `StepTimings` |
//! | `POST /v1/sessions/{id}/validation` | `EncryptedFeatures` → empty |
//! | `POST /v1/sessions/{id}/validation/logits` | empty → `EncryptedLogits` |
//! | `POST /v1/sessions/{id}/epochs/{epoch}` | JSON `EpochFeedback` → JSON `{go_on}` |
//! | `GET /v1/sessions/{id}/models` | → postcard `(candidates, current)` model bytes |
//! | `POST /v1/sessions/{id}/infer` | postcard `(model, features)` bytes → `EncryptedLogits` |
//!
//! Each session lives in `STATE_DIR/<id>/`: `setup.bin` (the evaluation keys as
//! received), `state.bin` and `validation.bin` (`hetal_train::session::ServerSession`).
//! A session not in memory (after a restart) is loaded from there on its next request;
//! loading one unloads the others that no request is using (one N = 2^16 session takes
//! about 15 GB).
//! Bounds: the setup upload is cut at `--max-setup-bytes`, every other body at
//! `--max-message-bytes`; only the parameter sets of the training presets are accepted
//! (the insecure one with `--allow-insecure`); ids are 32 hex digits from the OS CSPRNG.

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use he_linalg::CpuBackend;
use he_linalg::ckks::circuits::{BootstrapperOptions, DiagonalStorage};
use he_linalg::ckks::{Context, KeyStorage};
use hetal_train::TrainError;
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::encrypted::{
    EncryptedBatch, EncryptedFeatures, EncryptedModel, EpochFeedback, ServerOptions, SessionSetup,
    SetupHeader,
};
use hetal_train::session::ServerSession;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Arguments of `hetal serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: String,
    /// Directory of the sessions' keys and state (created).
    #[arg(long)]
    state_dir: PathBuf,
    /// Accept the insecure test preset (`insecure-n12`).
    #[arg(long)]
    allow_insecure: bool,
    /// Largest evaluation-key upload, bytes.
    #[arg(long, default_value_t = 32 << 30)]
    max_setup_bytes: u64,
    /// Largest other request body, bytes.
    #[arg(long, default_value_t = 4 << 30)]
    max_message_bytes: usize,
    /// Serve TLS (rustls, HTTP/2 by ALPN) with this PEM certificate chain.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where each session's bootstrapping circuit keeps its DFT diagonals: `auto`
    /// (`encoded` on the training's full slots, `extended` on sparse ones), `encoded`,
    /// `extended` (over `Q ∪ P`, double hoisting: 1.3 GB more at N = 2^16, 1–8 % less
    /// time per bootstrap with two threads) or `coefficients` (encoded when used: 3.1 GB
    /// less per N = 2^16 session, a quarter to a third more time per bootstrap;
    /// docs/results/bootstrap.md).
    #[arg(long, value_enum, default_value_t = ServerOptions::default().bootstrapper.diagonals)]
    diagonals: DiagonalStorage,
    /// How each session keeps its evaluation keys' uniform parts: `seeded` (each key
    /// switch regenerates what it reads; only the relinearization key's are expanded:
    /// about 3 GB less per N = 2^16 session, 1 % more time per step) or `expanded`
    /// (docs/results/dermamnist.md).
    #[arg(long, value_enum, default_value_t = ServerOptions::default().keys)]
    keys: KeyStorage,
}

type Slot = Arc<Mutex<Option<ServerSession<CpuBackend>>>>;

struct App {
    dir: PathBuf,
    allow_insecure: bool,
    max_setup_bytes: u64,
    options: ServerOptions,
    sessions: Mutex<HashMap<String, Slot>>,
}

/// An error answer: status and a one-line message.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<TrainError> for ApiError {
    fn from(e: TrainError) -> Self {
        let status = match &e {
            TrainError::Io { .. } | TrainError::Store { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        tracing::warn!(error = %e, "request refused");
        Self(status, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

type ApiResult<T> = Result<T, ApiError>;

impl App {
    fn session_dir(&self, id: &str) -> ApiResult<PathBuf> {
        if id.len() != 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no session {id:?}"),
            ));
        }
        Ok(self.dir.join(id))
    }

    fn slot(&self, id: &str) -> ApiResult<Slot> {
        self.session_dir(id)?;
        let mut map = self.sessions.lock().map_err(internal)?;
        Ok(map.entry(id.to_string()).or_default().clone())
    }

    /// Unloads every other session that no request is using (their state is on disk;
    /// the next request reloads it): at N = 2^16 a loaded session takes about 15 GB, so
    /// the server keeps one in memory.
    fn evict_others(&self, id: &str) -> ApiResult<()> {
        let map = self.sessions.lock().map_err(internal)?;
        for (other, slot) in map.iter() {
            if other != id
                && let Ok(mut g) = slot.try_lock()
                && g.take().is_some()
            {
                tracing::info!(session = %other, "session unloaded");
            }
        }
        Ok(())
    }

    /// The preset whose parameters and circuit the header carries, if it is accepted.
    fn accepted(&self, h: &SetupHeader) -> ApiResult<TrainPreset> {
        let preset = TrainPreset::ALL
            .into_iter()
            .find(|p| {
                let (lit, boot) = p.parameters();
                lit == h.parameters && boot == h.bootstrapping
            })
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "parameters are not those of a training preset".into(),
                )
            })?;
        if preset.is_insecure() && !self.allow_insecure {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "preset {} is insecure; the server accepts it only with --allow-insecure",
                    preset.name()
                ),
            ));
        }
        Ok(preset)
    }

    /// Builds a session from `dir/setup.bin` (its state, if any, is restored).
    fn load(&self, id: &str) -> ApiResult<ServerSession<CpuBackend>> {
        let dir = self.session_dir(id)?;
        let path = dir.join("setup.bin");
        if !path.exists() {
            return Err(ApiError(StatusCode::NOT_FOUND, format!("no session {id}")));
        }
        let clock = std::time::Instant::now();
        let file = std::fs::File::open(&path).map_err(internal)?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        let header = SetupHeader::read_from(&mut r)?;
        let preset = self.accepted(&header)?;
        let ctx = Context::new_cpu(header.parameters.clone()).map_err(TrainError::from)?;
        let setup = SessionSetup::read_keys(&ctx, header, &mut r, self.options.keys)?;
        let keys = setup.keys.num_keys();
        let s = ServerSession::with_options(id, ctx, setup, Some(dir), self.options)?;
        // Reading the keys and encoding the circuit freed large buffers: return them.
        he_math::allocator::release_freed();
        tracing::info!(
            session = id,
            preset = preset.name(),
            keys,
            steps = s.status().steps,
            seconds = clock.elapsed().as_secs_f64(),
            "session loaded"
        );
        Ok(s)
    }

    /// Runs `f` on the session `id` (loaded from disk if needed) on a blocking thread.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        id: String,
        f: impl FnOnce(&mut ServerSession<CpuBackend>) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let slot = app.slot(&id)?;
            let mut guard = slot.lock().map_err(internal)?;
            if guard.is_none() {
                app.evict_others(&id)?;
                match app.load(&id) {
                    Ok(loaded) => *guard = Some(loaded),
                    Err(e) => {
                        drop(guard);
                        app.sessions.lock().map_err(internal)?.remove(&id);
                        return Err(e);
                    }
                }
            }
            let s = guard.as_mut().ok_or_else(|| internal("session vanished"))?;
            f(s)
        })
        .await
        .map_err(internal)?
    }
}

fn new_id() -> ApiResult<String> {
    use rand::TryRngCore as _;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(internal)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

async fn open(State(app): State<Arc<App>>, body: Body) -> ApiResult<impl IntoResponse> {
    let id = new_id()?;
    let dir = app.dir.join(&id);
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let part = dir.join("setup.bin.part");
    let received = async {
        // Batched writes: the body arrives in HTTP/2 frames of a few KiB, and every
        // `tokio::fs` write is a round trip to the blocking pool.
        let file = tokio::fs::File::create(&part).await.map_err(internal)?;
        let mut f = tokio::io::BufWriter::with_capacity(8 << 20, file);
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
            total += chunk.len() as u64;
            if total > app.max_setup_bytes {
                return Err(ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("setup larger than {} bytes", app.max_setup_bytes),
                ));
            }
            f.write_all(&chunk).await.map_err(internal)?;
        }
        f.flush().await.map_err(internal)?;
        f.get_ref().sync_all().await.map_err(internal)?;
        tokio::fs::rename(&part, dir.join("setup.bin"))
            .await
            .map_err(internal)?;
        Ok(total)
    }
    .await;
    let loaded = match received {
        Ok(total) => {
            tracing::info!(session = %id, bytes = total, "setup received");
            let (app2, id2) = (app.clone(), id.clone());
            tokio::task::spawn_blocking(move || {
                app2.evict_others(&id2)?;
                app2.load(&id2)
            })
            .await
            .map_err(internal)
            .and_then(|r| r.map(|s| (s, total)))
        }
        Err(e) => Err(e),
    };
    match loaded {
        Ok((s, total)) => {
            *app.slot(&id)?.lock().map_err(internal)? = Some(s);
            Ok(axum::Json(serde_json::json!({ "id": id, "bytes": total })))
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            Err(e)
        }
    }
}

async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    let s = app.with(id, |s| Ok(s.status())).await?;
    Ok(axum::Json(s).into_response())
}

async fn start(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    app.with(id, move |s| {
        let m = EncryptedModel::from_bytes(s.context(), &body)?;
        Ok(s.start(m)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn step(
    State(app): State<Arc<App>>,
    Path((id, index)): Path<(String, usize)>,
    body: Bytes,
) -> ApiResult<Response> {
    let t = app
        .with(id.clone(), move |s| {
            let b = EncryptedBatch::from_bytes(s.context(), &body)?;
            Ok(s.step(index, &b)?)
        })
        .await?;
    tracing::info!(session = %id, step = index + 1, seconds = t.total(), bootstraps = t.bootstraps, "step");
    Ok(axum::Json(t).into_response())
}

async fn validation(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    app.with(id, move |s| {
        let f = EncryptedFeatures::from_bytes(s.context(), &body)?;
        Ok(s.set_validation(f)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn validation_logits(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Vec<u8>> {
    app.with(id, |s| {
        let z = s.validation_logits()?;
        Ok(z.to_bytes(s.context())?)
    })
    .await
}

async fn end_epoch(
    State(app): State<Arc<App>>,
    Path((id, epoch)): Path<(String, usize)>,
    axum::Json(fb): axum::Json<EpochFeedback>,
) -> ApiResult<Response> {
    let go_on = app.with(id, move |s| Ok(s.end_epoch(epoch, fb)?)).await?;
    Ok(axum::Json(serde_json::json!({ "go_on": go_on })).into_response())
}

async fn models(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Vec<u8>> {
    app.with(id, |s| {
        let (cands, current) = s.models()?;
        let ctx = s.context().clone();
        let cands = cands
            .iter()
            .map(|m| m.to_bytes(&ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let current = current.to_bytes(&ctx)?;
        postcard::to_allocvec(&(cands, current)).map_err(internal)
    })
    .await
}

async fn infer(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Vec<u8>> {
    app.with(id, move |s| {
        let (m, f): (Vec<u8>, Vec<u8>) = postcard::from_bytes(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
        let ctx = s.context().clone();
        let m = EncryptedModel::from_bytes(&ctx, &m)?;
        let f = EncryptedFeatures::from_bytes(&ctx, &f)?;
        Ok(s.infer(&m, &f)?.to_bytes(&ctx)?)
    })
    .await
}

/// HTTP/2 windows of 16 MiB per stream and 32 MiB per connection (hyper's defaults
/// throttle an upload of gigabytes of keys to tens of MB/s).
fn tune(b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    b.http2()
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(32 << 20)
        .max_frame_size(1 << 20);
}

/// Runs the server until Ctrl-C.
///
/// # Errors
/// The state directory cannot be created; the address cannot be bound.
pub fn run(args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let app = Arc::new(App {
        dir: args.state_dir.clone(),
        allow_insecure: args.allow_insecure,
        max_setup_bytes: args.max_setup_bytes,
        options: ServerOptions {
            bootstrapper: BootstrapperOptions {
                diagonals: args.diagonals,
                ..Default::default()
            },
            keys: args.keys,
        },
        sessions: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route(
            "/v1/sessions",
            post(open).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/sessions/{id}", get(status))
        .route("/v1/sessions/{id}/start", post(start))
        .route("/v1/sessions/{id}/steps/{index}", post(step))
        .route("/v1/sessions/{id}/validation", post(validation))
        .route(
            "/v1/sessions/{id}/validation/logits",
            post(validation_logits),
        )
        .route("/v1/sessions/{id}/epochs/{epoch}", post(end_epoch))
        .route("/v1/sessions/{id}/models", get(models))
        .route("/v1/sessions/{id}/infer", post(infer))
        .layer(DefaultBodyLimit::max(args.max_message_bytes))
        .with_state(app);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = std::net::TcpListener::bind(&args.listen)
            .with_context(|| format!("binding {}", args.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tls = args.tls_cert.is_some();
        tracing::info!(%addr, tls, state_dir = %args.state_dir.display(), "listening");
        // The bound address on stdout, for scripts that asked for port 0.
        println!("listening on {addr}");
        let handle = axum_server::Handle::new();
        let stop = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        let service = router.into_make_service();
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| format!("reading {} and {}", cert.display(), key.display()))?;
            let mut server = axum_server::from_tcp_rustls(listener, config)?;
            tune(server.http_builder());
            server
                .handle(handle)
                .serve(service)
                .await
                .context("serving")
        } else {
            let mut server = axum_server::from_tcp(listener)?;
            tune(server.http_builder());
            server
                .handle(handle)
                .serve(service)
                .await
                .context("serving")
        }
    })
}
