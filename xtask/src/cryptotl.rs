//! `cargo xtask cryptotl-pretrain` and `cargo xtask cryptotl`: CryptoTL-style encrypted
//! inference through a server's frozen network (`hetal_train::cryptotl`).
//!
//! `cryptotl-pretrain --dataset snips [--out FILE]` trains the server's network in
//! plaintext on its share of the training split (`--client-fraction` of it is left to
//! the client and never used) and writes it to FILE (default
//! `target/cryptotl/<dataset>-network.bin`). `cryptotl --dataset snips` loads that file
//! (pre-training it first, with the defaults, if it does not exist), runs the encrypted
//! forward pass on the client's share, validation and test splits, and trains the
//! client's head on the decrypted outputs. With `--json` the last stdout line is the
//! report (`hetal_train::cryptotl::ExperimentReport`): `forward_s` (one ciphertext of
//! `examples_per_ciphertext` examples), `forward_per_sample_s`, `test_accuracy` (head
//! on decrypted outputs), `test_accuracy_plaintext_features` (head on the network's
//! float64 outputs), `test_accuracy_raw_features`, `majority_rate`, and `dp` (`ε`,
//! `δ`, sensitivity, `σ`) with `--dp-epsilon`.

use hetal_train::cryptotl::{
    DpConfig, ExperimentConfig, FrozenNetwork, InferencePreset, PretrainConfig, experiment,
    normalize_rows, pretrain, transfer_split,
};
use hetal_train::train::rows_of;
use hetal_train::{Dataset, DatasetSpec, HyperParams, dataset};
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Arguments of `cryptotl-pretrain`.
#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// Dataset name from the registry (`snips`, `dermamnist`, `facemask`).
    #[arg(long, default_value = "snips")]
    dataset: String,
    /// Directory with `features_*.npy` / `labels_*.npy`; default
    /// `../shared/data/<dataset>/<extractor>`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to write the network (default `target/cryptotl/<dataset>-network.bin`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Hidden width.
    #[arg(long, default_value_t = PretrainConfig::default().hidden)]
    hidden: usize,
    /// Output width (what the client receives per example).
    #[arg(long, default_value_t = PretrainConfig::default().outputs)]
    outputs: usize,
    /// Maximum pre-training epochs.
    #[arg(long, default_value_t = PretrainConfig::default().epochs)]
    epochs: usize,
    /// Fraction of the training split left to the client.
    #[arg(long, default_value_t = PretrainConfig::default().client_fraction)]
    client_fraction: f64,
    /// Seed of the split, initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a JSON report as the last line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cryptotl`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset name from the registry.
    #[arg(long, default_value = "snips")]
    dataset: String,
    /// Directory with `features_*.npy` / `labels_*.npy`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The server's network (default `target/cryptotl/<dataset>-network.bin`; trained
    /// with the defaults of `cryptotl-pretrain` if missing).
    #[arg(long)]
    network: Option<PathBuf>,
    /// CKKS preset: `n14` (128-bit secure) or `insecure-n12` (tests and smoke runs).
    #[arg(long, default_value = "n14")]
    preset: String,
    /// Add Gaussian noise to the server's answers for (ε, δ)-DP per returned example.
    #[arg(long)]
    dp_epsilon: Option<f64>,
    /// δ of the DP noise.
    #[arg(long, default_value_t = 1e-5)]
    dp_delta: f64,
    /// Use at most this many of the client's fine-tuning examples.
    #[arg(long)]
    max_client_samples: Option<usize>,
    /// Use at most this many validation and test examples each (smoke runs).
    #[arg(long)]
    max_eval_samples: Option<usize>,
    /// The client head's mini-batch size.
    #[arg(long, default_value_t = 128)]
    head_batch: usize,
    /// The client head's learning rate (Nesterov).
    #[arg(long, default_value_t = 0.5)]
    head_lr: f64,
    /// The client head's maximum epochs (early stopping with patience 3).
    #[arg(long, default_value_t = 40)]
    head_epochs: usize,
    /// Repetitions of the one-ciphertext latency measurement.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Print a JSON report as the last line.
    #[arg(long)]
    json: bool,
}

fn load(name: &str, dir: Option<&Path>) -> BoxResult<(&'static DatasetSpec, Dataset)> {
    let spec = dataset(name)?;
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Dataset::default_dir(&PathBuf::from("../shared/data"), spec));
    let ds = Dataset::load(&dir, spec.classes)?;
    Ok((spec, ds))
}

fn default_network(name: &str) -> PathBuf {
    PathBuf::from(format!("target/cryptotl/{name}-network.bin"))
}

/// Pre-trains and writes the network; returns it with the report as JSON.
fn pretrain_to(
    spec: &DatasetSpec,
    ds: &Dataset,
    cfg: &PretrainConfig,
    out: &Path,
) -> BoxResult<(FrozenNetwork, serde_json::Value)> {
    let (server_idx, client_idx) =
        transfer_split(ds.train.x.rows(), cfg.client_fraction, cfg.seed)?;
    let x = normalize_rows(&rows_of(&ds.train.x, &server_idx));
    let y: Vec<usize> = server_idx.iter().map(|&i| ds.train.y[i]).collect();
    let t = Instant::now();
    let (net, report) = pretrain(&x, &y, spec.classes, spec.name, cfg)?;
    let secs = t.elapsed().as_secs_f64();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    net.save(out)?;
    let json = serde_json::json!({
        "dataset": spec.name,
        "network": out.display().to_string(),
        "widths": [net.inputs(), net.hidden(), net.outputs()],
        "server_share": server_idx.len(),
        "client_share": client_idx.len(),
        "pretrain_s": secs,
        "output_norm_bound": net.output_norm_bound(1.0),
        "report": report,
    });
    eprintln!(
        "pre-trained {} → {} → {} on {} examples ({} held out) in {secs:.1} s: {} epochs, \
         held-out accuracy {:.4}; wrote {}",
        net.inputs(),
        net.hidden(),
        net.outputs(),
        report.train_samples,
        report.val_samples,
        report.epochs,
        report.val_accuracy,
        out.display()
    );
    Ok((net, json))
}

/// `cryptotl-pretrain`.
pub fn run_pretrain(args: &PretrainArgs) -> BoxResult<()> {
    let (spec, ds) = load(&args.dataset, args.data_dir.as_deref())?;
    let cfg = PretrainConfig {
        hidden: args.hidden,
        outputs: args.outputs,
        epochs: args.epochs,
        client_fraction: args.client_fraction,
        seed: args.seed,
        ..PretrainConfig::default()
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_network(spec.name));
    let (_, json) = pretrain_to(spec, &ds, &cfg, &out)?;
    if args.json {
        println!("{json}");
    }
    Ok(())
}

/// `cryptotl`.
pub fn run(args: &Args) -> BoxResult<()> {
    let (spec, ds) = load(&args.dataset, args.data_dir.as_deref())?;
    let path = args
        .network
        .clone()
        .unwrap_or_else(|| default_network(spec.name));
    let net = if path.exists() {
        FrozenNetwork::load(&path)?
    } else {
        eprintln!(
            "{} does not exist: pre-training it with the defaults",
            path.display()
        );
        pretrain_to(spec, &ds, &PretrainConfig::default(), &path)?.0
    };
    let preset = InferencePreset::from_name(&args.preset)?;
    let cfg = ExperimentConfig {
        preset,
        dp: args.dp_epsilon.map(|epsilon| DpConfig {
            epsilon,
            delta: args.dp_delta,
            input_norm: 1.0,
        }),
        head: HyperParams {
            batch: args.head_batch,
            learning_rate: args.head_lr,
            epochs: args.head_epochs,
            patience: 3,
        },
        max_client_samples: args.max_client_samples,
        max_eval_samples: args.max_eval_samples,
        seed: 0,
        latency_reps: args.reps,
    };
    let r = experiment::run(&ds, spec.name, &net, &cfg)?;
    println!(
        "CryptoTL on {} ({} preset, N = {}, log QP {:.0}): network {} → {} → {}, {} examples \
         per ciphertext",
        spec.name,
        r.preset,
        r.ring_degree,
        r.log_qp,
        r.widths.0,
        r.widths.1,
        r.widths.2,
        r.examples_per_ciphertext
    );
    println!(
        "examples: {} client fine-tuning, {} validation, {} test",
        r.samples.0, r.samples.1, r.samples.2
    );
    println!(
        "keygen {:.2} s ({:.1} MB of evaluation keys), server setup {:.2} s, encrypt {:.2} s, \
         decrypt {:.2} s",
        r.keygen_s,
        r.eval_key_bytes as f64 / 1e6,
        r.setup_s,
        r.encrypt_s,
        r.decrypt_s
    );
    println!(
        "forward: {:.3} s per ciphertext, {:.2} ms per example amortised, {:.1} s in all; \
         max |decrypted − float64| {:.2e} (output norm: bound R = {:.3e}, largest seen {:.3e})",
        r.forward_s,
        r.forward_per_sample_s * 1e3,
        r.forward_total_s,
        r.max_abs_output_diff,
        r.output_norm_bound,
        r.observed_max_output_norm
    );
    if let Some(m) = &r.dp {
        println!(
            "DP: (ε, δ) = ({}, {:e}) per returned example, L2 sensitivity {:.3e}, σ = {:.3e}",
            m.epsilon, m.delta, m.l2_sensitivity, m.sigma
        );
    }
    println!(
        "test accuracy: {:.4} on decrypted outputs, {:.4} on plaintext outputs, {:.4} on raw \
         features (majority class {:.4})",
        r.test_accuracy,
        r.test_accuracy_plaintext_features,
        r.test_accuracy_raw_features,
        r.majority_rate
    );
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["dataset"] = serde_json::json!(spec.name);
        v["network"] = serde_json::json!(path.display().to_string());
        println!("{v}");
    }
    Ok(())
}
