//! `hetal train`: the client process. Loads and preprocesses the data, generates (or,
//! with `--resume`, reloads) the secret key, runs `hetal_train::session::run` against
//! the server over [`HttpTransport`], and writes the decrypted best model to `--out`
//! (`weights.npy`, `model.json`: `hetal_train::model`). The client's secret key and
//! checkpoint live in `--out/client/` (owner-only, sealed). The validation decryptions
//! behind each epoch's decision are noise-flooded (`--flooding-bits`, default 30; the
//! report's `flooding` says what was added).

use crate::http::HttpTransport;
use anyhow::Context as _;
use he_linalg::ckks::Context;
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::encrypted::{Client, SessionConfig};
use hetal_train::model::SavedModel;
use hetal_train::session::{self, Event, LoopOptions, TrainData, Transport as _};
use hetal_train::train::accuracy;
use hetal_train::{Dataset, HyperParams, Preprocessor, dataset};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The CKKS preset (names from `hetal_train`'s `TrainPreset`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PresetArg {
    /// N = 2^16, 128-bit secure for its dense secret.
    N16,
    /// INSECURE N = 2^12, tests and smoke runs only.
    InsecureN12,
}

impl From<PresetArg> for TrainPreset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::N16 => TrainPreset::N16,
            PresetArg::InsecureN12 => TrainPreset::InsecureN12,
        }
    }
}

/// `--out/client/session.json`: the server-side session of a trained model.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SessionLink {
    /// The session id on the server.
    pub session: String,
    /// The preset name.
    pub preset: String,
    /// The session configuration (unit shape, sizes).
    pub config: SessionConfig,
}

/// The file name of [`SessionLink`] in `--out/client/`.
pub const SESSION_LINK_FILE: &str = "session.json";

/// Arguments of `hetal train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server, `http://HOST:PORT` or `https://HOST:PORT`.
    #[arg(long)]
    server: String,
    /// PEM certificate (authority) the `https://` server's certificate must chain to.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A registered dataset (`dermamnist`, `facemask`, `snips`): its hyper-parameters,
    /// and its files under `--data-root` unless `--data-dir` is given.
    #[arg(long, required_unless_present = "data_dir")]
    dataset: Option<String>,
    /// A directory with `features_{train,val,test}.npy` and `labels_*.npy` (validation
    /// and test optional: a validation split is carved from train when missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Root of the registered datasets.
    #[arg(long, default_value = "../shared/data")]
    data_root: PathBuf,
    /// CKKS preset.
    #[arg(long, value_enum, default_value = "n16")]
    preset: PresetArg,
    /// Rows per batch (default: the dataset's, else 1024 or the training rows).
    #[arg(long)]
    batch: Option<usize>,
    /// Epochs at most (default: the dataset's, else 10).
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Learning rate (default: the dataset's, else 0.5).
    #[arg(long)]
    lr: Option<f64>,
    /// Early-stopping patience in epochs (default: the dataset's, else 3).
    #[arg(long)]
    patience: Option<usize>,
    /// Seed of the batch order (and of the carved validation split).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory: the model, the report, and `client/` (secret key, checkpoint).
    #[arg(long)]
    out: PathBuf,
    /// Continue a killed run from `--out/client/`.
    #[arg(long)]
    resume: bool,
    /// Noise flooding of the validation decryptions behind each epoch's decision (the
    /// server sees the decisions): statistical security in bits, 0 to turn it off.
    #[arg(long, default_value_t = hetal_train::encrypted::Flooding::DEFAULT_STATISTICAL_SECURITY)]
    flooding_bits: u32,
    /// Decryption queries the flooding covers (default: the epoch budget).
    #[arg(long)]
    flooding_queries: Option<u64>,
    /// How long to retry while the server cannot be reached, seconds.
    #[arg(long, default_value_t = 600)]
    retry_secs: u64,
    /// Print the report as one JSON object (last stdout line).
    #[arg(long)]
    json: bool,
}

/// Runs the client.
///
/// # Errors
/// Data, key, transport and training errors, with context.
#[allow(clippy::too_many_lines)]
pub fn run(args: &Args) -> anyhow::Result<()> {
    let clock = Instant::now();
    let (name, ds, mut hyper) = match (&args.dataset, &args.data_dir) {
        (Some(n), dir) => {
            let spec = dataset(n)?;
            let dir = dir
                .clone()
                .unwrap_or_else(|| Dataset::default_dir(&args.data_root, spec));
            let ds = Dataset::load(&dir, spec.classes)
                .with_context(|| format!("loading {n} from {}", dir.display()))?;
            (spec.name.to_string(), ds, spec.hyper)
        }
        (None, Some(dir)) => {
            let ds = Dataset::load_dir(dir, 0.1, args.seed)
                .with_context(|| format!("loading {}", dir.display()))?;
            let hyper = HyperParams {
                batch: ds.train.y.len().min(1024),
                learning_rate: 0.5,
                epochs: 10,
                patience: 3,
            };
            (dir.display().to_string(), ds, hyper)
        }
        (None, None) => anyhow::bail!("give --dataset or --data-dir"),
    };
    if let Some(b) = args.batch {
        hyper.batch = b;
    }
    if let Some(e) = args.epochs {
        hyper.epochs = e;
    }
    if let Some(p) = args.patience {
        hyper.patience = p;
    }
    if let Some(lr) = args.lr {
        anyhow::ensure!(
            lr.is_finite() && lr > 0.0,
            "--lr {lr}: needs a positive rate"
        );
        hyper.learning_rate = lr;
    }
    let pre = Preprocessor::fit(&ds.train.x)?;
    let (xt, xv, xs) = (
        pre.apply(&ds.train.x),
        pre.apply(&ds.val.x),
        pre.apply(&ds.test.x),
    );
    let preset = TrainPreset::from(args.preset);
    let (lit, boot) = preset.parameters();
    let config = SessionConfig::from_hyper(ds.classes, xt.cols(), &hyper);
    let ctx = Context::new_cpu(lit)?;
    let key_dir = args.out.join("client");
    let cached = session::load_secret_key(&ctx, &key_dir)?;
    anyhow::ensure!(
        !args.resume || cached.is_some(),
        "--resume: no secret key in {}",
        key_dir.display()
    );
    let mut client = match cached {
        Some(sk) if args.resume => Client::with_secret_key(ctx.clone(), sk, boot, config)?,
        _ => {
            let c = Client::new(ctx.clone(), boot, config)?;
            // A new run replaces an old key (its checkpoint is then refused).
            let _ = std::fs::remove_file(key_dir.join(session::keystore::SECRET_KEY_FILE));
            session::store_secret_key(&ctx, c.secret_key(), &key_dir)?;
            c
        }
    };
    client.set_flooding(session::flooding_policy(
        args.flooding_bits,
        args.flooding_queries,
        hyper.epochs,
    )?);
    let binding = session::checkpoint_binding(&client, &name, args.seed)?;
    let mut transport = HttpTransport::new(
        &args.server,
        args.ca.as_deref(),
        ctx.clone(),
        Duration::from_secs(args.retry_secs),
    )?;
    let opts = LoopOptions {
        epochs: hyper.epochs,
        max_steps: args.max_steps,
        seed: args.seed,
        checkpoint: Some((key_dir.join("checkpoint.bin"), binding)),
        resume: args.resume,
    };
    let mut progress = |e: &Event| {
        if matches!(e, Event::Opened { .. } | Event::Resumed(_)) {
            // The keys were generated and sent: their temporaries go back to the kernel.
            he_math::allocator::release_freed();
        }
        eprintln!("{}", e.message());
    };
    let train_clock = Instant::now();
    let data = TrainData {
        train: (&xt, &ds.train.y),
        val: (&xv, &ds.val.y),
    };
    let out = session::run(&mut client, &mut transport, data, &opts, &mut progress)
        .context("training")?;
    let train_s = train_clock.elapsed().as_secs_f64();

    let mut model = SavedModel::new(
        out.model.clone(),
        pre,
        &name,
        "encrypted",
        Some(preset.name()),
        out.best_epoch,
        out.steps,
    )?;
    let val_acc = accuracy(&xv.matmul_bt(&out.model)?, &ds.val.y);
    model.meta.accuracies.insert("validation".into(), val_acc);
    let test_acc = if ds.test.y.is_empty() {
        None
    } else {
        let a = accuracy(&xs.matmul_bt(&out.model)?, &ds.test.y);
        model.meta.accuracies.insert("test".into(), a);
        Some(a)
    };
    model.save(&args.out)?;
    // What `hetal predict --server` needs to reach this session again.
    let link = SessionLink {
        session: out.session.clone(),
        preset: preset.name().into(),
        config: client.config().clone(),
    };
    hetal_train::store::write_atomic(
        &key_dir.join(SESSION_LINK_FILE),
        &serde_json::to_vec_pretty(&link)?,
    )?;
    let (sent, received) = transport.traffic();
    let majority = {
        let mut counts = vec![0usize; ds.classes];
        for &y in &ds.test.y {
            counts[y] += 1;
        }
        counts
            .iter()
            .max()
            .map(|&m| m as f64 / ds.test.y.len().max(1) as f64)
    };
    let report = json!({
        "test_accuracy": test_acc,
        "test_majority_rate": majority,
        "validation_accuracy": val_acc,
        "mode": "encrypted",
        "preset": preset.name(),
        "dataset": name,
        "session": out.session,
        "steps": out.steps,
        "steps_run": out.steps_run,
        "epochs": out.history.len(),
        "best_epoch": out.best_epoch,
        "total_s": clock.elapsed().as_secs_f64(),
        "train_s": train_s,
        "setup_s": out.setup_s,
        "per_step_s": out.timings.total() / out.steps.max(1) as f64,
        "time_split_s": out.timings,
        "bootstraps": out.status.bootstrap.count,
        "bytes_sent": sent,
        "bytes_received": received,
        "peak_rss_bytes": session::peak_rss_bytes(),
        "machine": session::machine_report(),
        "flooding": client.flooding().map(|f| json!({
            "statistical_security_bits": f.statistical_security(),
            "queries": f.queries(),
            "validation": out.flooding,
        })),
        "history": out.history,
        "model": args.out.display().to_string(),
    });
    hetal_train::store::write_atomic(
        &args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    if args.json {
        println!("{report}");
    } else {
        eprintln!(
            "model written to {} (best epoch {}, test accuracy {}, majority rate {})",
            args.out.display(),
            out.best_epoch,
            test_acc.map_or("–".into(), |a| format!("{a:.4}")),
            majority.map_or("–".into(), |a| format!("{a:.4}")),
        );
    }
    Ok(())
}
