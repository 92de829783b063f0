//! `cargo xtask reproduce --dataset dermamnist`: HETAL's training protocol on real
//! extracted features, in three modes: `plain` (float64, exact softmax), `simulated`
//! (float64, ASoftmax with the encrypted run's exact schedule) and `encrypted`
//! (client/server over CKKS with bootstrapping, `hetal_train::encrypted`).
//!
//! Every run also replays `plain` and `simulated` with the same settings (seconds), so
//! the report compares the three. `--algorithm chiang` trains with Chiang's sigmoid and
//! quadratic gradient instead (`hetal_train::chiang`; encrypted:
//! `hetal_train::encrypted::chiang`, both roles in this process, `--max-steps`
//! full-batch iterations, no validation under encryption, the decrypted weights tested
//! in plaintext). The encrypted mode is `hetal_train::session::run`
//! over the in-process transport (the same loop as `hetal train` over HTTP): the
//! client's checkpoint after every step in `<out>/checkpoint.bin` and the server's
//! session state in `<out>/server/` (both replaced atomically, sealed with a SHA-256;
//! the client's is bound to the secret key, parameters, configuration, dataset and
//! seed: `hetal_train::store`). With `--key-cache DIR` the client's secret key is kept
//! in `DIR/secret_key.bin` (written once, owner-only, sealed for the parameters; a
//! symlink or a group/other-readable file is refused; evaluation keys are regenerated
//! from it), which `--resume` needs. `keygen_s` in the report is the secret key's time,
//! `setup_s` the evaluation keys' and the server's setup.
//!
//! With `--json` the last stdout line is the report: `test_accuracy` (fraction, of the
//! mode that ran), `mode`, `steps`, `epochs`, `total_s`, `per_step_s`, `peak_rss_bytes`
//! (the process's peak resident memory, `null` off Linux), plus the other modes'
//! accuracies, the time split, the bootstrap count and `bootstraps_per_step` (training
//! steps only), `plain.peak_abs_weight` and `simulated.peak_abs_weight` (the largest
//! `|W|` or `|V|` entry over the float64 runs' steps, which the encrypted run's weight
//! bound `M = 16` must cover), and for a truncated encrypted run the projected full-run time and
//! `max_abs_w_diff` (`|W_encrypted − W_simulated|`), and `encrypted.flooding`: the
//! noise flooding of the validation decryptions (`--flooding-bits`, default 30;
//! `--flooding-queries`, default the epoch budget; `null` when off) and what flooding
//! the chosen model the same way would cost (`published_model`: its test accuracy and
//! largest weight change; the reported accuracy is the exact model's).
//! `encrypted.num_eval_keys` and `encrypted.eval_keys_bytes` give the server's
//! evaluation keys (count, bytes in memory).
//! The markdown report, the JSON and `curves.png` (validation loss and accuracy per
//! epoch of every mode that ran) go to `--out-dir`; an encrypted HETAL run also writes
//! the chosen model there (`model/weights.npy`, `model/model.json`, as `hetal train`:
//! `hetal predict --model` reads it; `encrypted.model` in the JSON).

use he_linalg::Matrix;
use he_linalg::ckks::Context;
use he_linalg::ckks::KeyStorage;
use he_linalg::ckks::circuits::DiagonalStorage;
use hetal_train::chiang::{ChiangConfig, SigmoidKind, train_chiang};
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::encrypted::{BootstrapStats, Client, ServerOptions, SessionConfig, StepTimings};
use hetal_train::model::SavedModel;
use hetal_train::session::{self, Event, InProcess, LoopOptions, TrainData, Transport as _};
use hetal_train::softmax::ASoftmaxParams;
use hetal_train::train::{EpochRecord, SoftmaxKind, TrainOutcome, accuracy, train_float};
use hetal_train::{Dataset, DatasetSpec, HyperParams, Preprocessor, dataset, store};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `reproduce`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset name from the registry (`dermamnist`, `facemask`, `snips`).
    #[arg(long, default_value = "dermamnist")]
    dataset: String,
    /// Directory with `features_*.npy` / `labels_*.npy`; default
    /// `../shared/data/<dataset>/<extractor>`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `plain`, `simulated` or `encrypted`.
    #[arg(long, default_value = "encrypted")]
    mode: String,
    /// Training algorithm: HETAL's softmax + Nesterov, or Chiang's sigmoid +
    /// quadratic gradient (as in Chiang's code, a fixed number of full-batch iterations,
    /// the epoch count or `--max-steps`, without early stopping).
    #[arg(long, value_enum, default_value_t = Algorithm::Hetal)]
    algorithm: Algorithm,
    /// Backend of the encrypted mode (`cpu`; `cuda` once it exists).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// CKKS preset of the encrypted mode: `n16` (N = 2^16, 128-bit secure) or
    /// `insecure-n12` (tests and CI smoke runs only).
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Where the server's bootstrapping circuit keeps its DFT diagonals (encrypted
    /// mode): `auto` (`encoded` on the training's full slots), `encoded`, `extended` (over `Q ∪ P`, double hoisting: 1.3 GB more at
    /// N = 2^16, 1–8 % less time per bootstrap with two threads) or `coefficients`
    /// (encoded when used: 3.1 GB less, a quarter to a third more time per bootstrap;
    /// docs/results/bootstrap.md).
    #[arg(long, value_enum, default_value_t = ServerOptions::default().bootstrapper.diagonals)]
    diagonals: DiagonalStorage,
    /// How the server keeps its evaluation keys' uniform parts (encrypted mode):
    /// `seeded` (regenerated in each key switch, but for the relinearization key's:
    /// about 3 GB less at N = 2^16, 1 % more time per step) or `expanded`
    /// (docs/results/dermamnist.md).
    #[arg(long, value_enum, default_value_t = ServerOptions::default().keys)]
    keys: KeyStorage,
    /// Override the batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the learning rate (the registry holds HETAL's per-dataset values).
    #[arg(long)]
    lr: Option<f64>,
    /// Stop after this many steps (the partial epoch is validated as the last one).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Seed of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (report, JSON, checkpoint); default
    /// `target/reproduce/<dataset>-<mode>`.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Keep the client's secret key in this directory (reused when present).
    #[arg(long)]
    key_cache: Option<PathBuf>,
    /// Resume an encrypted run from `<out>/checkpoint.bin` (needs `--key-cache`).
    #[arg(long)]
    resume: bool,
    /// Noise flooding of the validation decryptions behind each epoch's decision
    /// (`ckks::flooding`): statistical security in bits, 0 to turn it off.
    #[arg(long, default_value_t = he_linalg::ckks::Flooding::DEFAULT_STATISTICAL_SECURITY)]
    flooding_bits: u32,
    /// Decryption queries the flooding covers (default: the epoch budget).
    #[arg(long)]
    flooding_queries: Option<u64>,
    /// Print the report as one JSON object (last line).
    #[arg(long)]
    json: bool,
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The training algorithm of a run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HETAL (`hetal_train::train`): softmax (ASoftmax when simulated), Nesterov, batches.
    Hetal,
    /// Chiang (`hetal_train::chiang`): sigmoid (degree-3 polynomial when simulated),
    /// quadratic gradient, full batch.
    Chiang,
}

impl Algorithm {
    /// The name (`hetal_train::ablation::Algorithm` owns them).
    fn name(self) -> &'static str {
        match self {
            Self::Hetal => hetal_train::ablation::Algorithm::Hetal.name(),
            Self::Chiang => hetal_train::ablation::Algorithm::Chiang.name(),
        }
    }
}

struct Prepared {
    spec: &'static DatasetSpec,
    hyper: HyperParams,
    pre: Preprocessor,
    xt: Matrix,
    xv: Matrix,
    xs: Matrix,
    ds: Dataset,
}

fn prepare(args: &Args) -> BoxResult<Prepared> {
    let spec = dataset(&args.dataset)?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| Dataset::default_dir(&PathBuf::from("../shared/data"), spec));
    let mut hyper = spec.hyper;
    if let Some(b) = args.batch {
        hyper.batch = b;
    }
    if let Some(e) = args.epochs {
        hyper.epochs = e;
    }
    if let Some(lr) = args.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("--lr {lr}: needs a positive finite learning rate").into());
        }
        hyper.learning_rate = lr;
    }
    let ds = Dataset::load(&dir, spec.classes)?;
    let pre = Preprocessor::fit(&ds.train.x)?;
    Ok(Prepared {
        spec,
        hyper,
        pre,
        xt: pre.apply(&ds.train.x),
        xv: pre.apply(&ds.val.x),
        xs: pre.apply(&ds.test.x),
        ds,
    })
}

fn float_run(
    p: &Prepared,
    algorithm: Algorithm,
    kind: SoftmaxKind,
    seed: u64,
    max_steps: Option<usize>,
) -> BoxResult<(TrainOutcome, f64, f64)> {
    let clock = Instant::now();
    let out = match algorithm {
        Algorithm::Hetal => train_float(
            (&p.xt, &p.ds.train.y),
            (&p.xv, &p.ds.val.y),
            p.spec.classes,
            &p.hyper,
            kind,
            &ASoftmaxParams::default(),
            seed,
            max_steps,
        )?,
        Algorithm::Chiang => train_chiang(
            (&p.xt, &p.ds.train.y),
            (&p.xv, &p.ds.val.y),
            p.spec.classes,
            // Chiang's protocol: a fixed number of full-batch iterations, no early
            // stopping (`cargo xtask ablate` shows both).
            &ChiangConfig {
                iterations: p.hyper.epochs,
                patience: None,
                ..ChiangConfig::default()
            },
            match kind {
                SoftmaxKind::Exact => SigmoidKind::Exact,
                SoftmaxKind::Approximate => SigmoidKind::Poly3,
            },
            max_steps,
        )?,
    };
    let secs = clock.elapsed().as_secs_f64();
    let acc = accuracy(&p.xs.matmul_bt(&out.w)?, &p.ds.test.y);
    Ok((out, acc, secs))
}

/// Runs the protocol.
///
/// # Errors
/// Unknown dataset, mode, preset or backend; unreadable data; training errors.
pub fn run(args: &Args) -> BoxResult<()> {
    if !["plain", "simulated", "encrypted"].contains(&args.mode.as_str()) {
        return Err(format!("unknown mode {:?} (plain, simulated, encrypted)", args.mode).into());
    }
    if args.backend != "cpu" {
        return Err(format!(
            "backend {:?} is not available (cpu only: the CUDA backend is not implemented)",
            args.backend
        )
        .into());
    }
    let clock = Instant::now();
    let alg = args.algorithm;
    let p = prepare(args)?;
    let out_dir = args.out_dir.clone().unwrap_or_else(|| match alg {
        Algorithm::Hetal => {
            PathBuf::from(format!("target/reproduce/{}-{}", p.spec.name, args.mode))
        }
        Algorithm::Chiang => PathBuf::from(format!(
            "target/reproduce/{}-{}-{}",
            p.spec.name,
            alg.name(),
            args.mode
        )),
    });
    std::fs::create_dir_all(&out_dir)?;
    if alg == Algorithm::Chiang
        && args.mode == "encrypted"
        && (args.resume || args.key_cache.is_some())
    {
        return Err(
            "--algorithm chiang --mode encrypted runs in one go: no --key-cache or --resume".into(),
        );
    }
    let (plain, plain_acc, plain_s) =
        float_run(&p, alg, SoftmaxKind::Exact, args.seed, args.max_steps)?;
    let (sim, sim_acc, sim_s) =
        float_run(&p, alg, SoftmaxKind::Approximate, args.seed, args.max_steps)?;
    let mut report = json!({
        "dataset": p.spec.name,
        "extractor": p.spec.extractor,
        "mode": args.mode,
        "algorithm": alg.name(),
        "backend": if args.mode == "encrypted" { "cpu" } else { "cpu (float64)" },
        "machine": machine(),
        "hyper": p.hyper,
        "asoftmax": ASoftmaxParams::default(),
        "seed": args.seed,
        "max_steps": args.max_steps,
        "plain": { "test_accuracy": plain_acc, "steps": plain.steps, "epochs": plain.epochs,
                   "best_epoch": plain.best_epoch, "train_s": plain_s,
                   "peak_abs_weight": plain.peak_abs_weight },
        "simulated": { "test_accuracy": sim_acc, "steps": sim.steps, "epochs": sim.epochs,
                       "best_epoch": sim.best_epoch, "train_s": sim_s,
                       "peak_abs_weight": sim.peak_abs_weight },
    });
    let (acc, steps, epochs, best, history, per_step) = match args.mode.as_str() {
        "plain" => (
            plain_acc,
            plain.steps,
            plain.epochs,
            plain.best_epoch,
            plain.history.clone(),
            plain_s / plain.steps.max(1) as f64,
        ),
        "simulated" => (
            sim_acc,
            sim.steps,
            sim.epochs,
            sim.best_epoch,
            sim.history.clone(),
            sim_s / sim.steps.max(1) as f64,
        ),
        _ if alg == Algorithm::Chiang => {
            let e = chiang_encrypted_run(args, &p, &sim)?;
            let obj = report.as_object_mut().ok_or("report")?;
            obj.insert("preset".into(), json!(e.preset));
            obj.insert("bootstraps_per_step".into(), json!(e.bootstraps_per_step));
            obj.insert("max_abs_w_diff".into(), json!(e.max_abs_w_diff));
            obj.insert("time_split_s".into(), json!(e.timings));
            obj.insert(
                "encrypted".into(),
                json!({
                    "test_accuracy": e.test_accuracy,
                    "steps": e.steps, "epochs": e.steps, "best_epoch": e.steps,
                    "keygen_s": e.keygen_s, "setup_s": e.setup_s, "encrypt_s": e.encrypt_s,
                    "time_split_s": e.timings,
                    "max_abs_w_diff": e.max_abs_w_diff, "w_diff_at_step": e.steps,
                    "test": "decrypted weights on the plaintext test features",
                }),
            );
            (
                e.test_accuracy,
                e.steps,
                e.steps,
                e.steps,
                Vec::new(),
                e.per_step_s,
            )
        }
        _ => {
            let e = encrypted_run(args, &p, &out_dir, &sim)?;
            // Projection of the full protocol from the measured costs.
            let full = if args.max_steps.is_some() {
                float_run(&p, alg, SoftmaxKind::Approximate, args.seed, None)?.0
            } else {
                sim.clone()
            };
            let per_step = e.timings.total() / e.steps_run.max(1) as f64;
            let projected = e.setup_s
                + per_step * full.steps as f64
                + e.validation_s_per_epoch * full.epochs as f64
                + e.test_s;
            let obj = report.as_object_mut().ok_or("report")?;
            obj.insert("preset".into(), json!(e.preset));
            obj.insert(
                "diagonals".into(),
                json!(crate::bench_bootstrap::value_name(e.diagonals)),
            );
            obj.insert(
                "keys".into(),
                json!(crate::bench_bootstrap::value_name(args.keys)),
            );
            obj.insert(
                "encrypted".into(),
                json!({
                    "test_accuracy": e.test_accuracy,
                    "steps": e.steps, "epochs": e.history.len(), "best_epoch": e.best_epoch,
                    "keygen_s": e.keygen_s, "setup_s": e.setup_s,
                    "time_split_s": e.timings, "bootstrap": e.boot,
                    "validation_s_per_epoch": e.validation_s_per_epoch, "test_s": e.test_s,
                    "max_abs_w_diff": e.max_abs_w_diff, "w_diff_at_step": e.steps,
                    "flooding": e.flooding,
                    "model": e.model_dir.display().to_string(),
                    "num_eval_keys": e.num_keys, "eval_keys_bytes": e.keys_bytes,
                }),
            );
            obj.insert("bootstraps".into(), json!(e.boot.count));
            obj.insert(
                "bootstraps_per_step".into(),
                json!(e.timings.bootstraps as f64 / e.steps_run.max(1) as f64),
            );
            obj.insert("time_split_s".into(), json!(e.timings));
            obj.insert("max_abs_w_diff".into(), json!(e.max_abs_w_diff));
            obj.insert(
                "full_protocol".into(),
                json!({
                    "steps": full.steps, "epochs": full.epochs,
                    "projected_s": projected,
                    "projected_h": projected / 3600.0,
                }),
            );
            (
                e.test_accuracy,
                e.steps,
                e.history.len(),
                e.best_epoch,
                e.history,
                per_step,
            )
        }
    };
    let obj = report.as_object_mut().ok_or("report")?;
    obj.insert("test_accuracy".into(), json!(acc));
    obj.insert("steps".into(), json!(steps));
    obj.insert("epochs".into(), json!(epochs));
    obj.insert("best_epoch".into(), json!(best));
    obj.insert("total_s".into(), json!(clock.elapsed().as_secs_f64()));
    obj.insert("per_step_s".into(), json!(per_step));
    obj.insert("peak_rss_bytes".into(), json!(crate::peak_rss_bytes()));
    obj.insert("machine".into(), crate::machine_report());
    obj.insert("history".into(), json!(history));
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    obj.insert("command".into(), json!(format!("cargo xtask {command}")));
    let mut curves: Vec<(&str, &[EpochRecord])> = vec![
        ("plain", plain.history.as_slice()),
        ("simulated", sim.history.as_slice()),
    ];
    if args.mode == "encrypted" {
        curves.push(("encrypted", history.as_slice()));
    }
    let png = out_dir.join("curves.png");
    let title = format!("{} ({}), mode {}", p.spec.name, p.spec.extractor, args.mode);
    let drew = crate::plot::curves(&png, &title, &curves)?;
    report.as_object_mut().ok_or("report")?.insert(
        "plot".into(),
        json!(if drew {
            png.display().to_string()
        } else {
            "not drawn: no TrueType font found".into()
        }),
    );
    store::write_atomic(
        &out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    store::write_atomic(&out_dir.join("report.md"), markdown(&report).as_bytes())?;
    if args.json {
        println!("{report}");
    } else {
        print!("{}", markdown(&report));
        println!("(report written to {})", out_dir.display());
    }
    Ok(())
}

fn machine() -> String {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    format!(
        "{} {}, {threads} hardware threads",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The report as markdown.
fn markdown(r: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.4}"));
    let mut s = String::new();
    s.push_str(&format!(
        "# {} ({}) — {}, mode {}\n\nCommand: `{}`\n\nMachine: {}; backend {}; preset {}\n\n",
        r["dataset"].as_str().unwrap_or("?"),
        r["extractor"].as_str().unwrap_or("?"),
        r["algorithm"].as_str().unwrap_or("hetal"),
        r["mode"].as_str().unwrap_or("?"),
        r["command"].as_str().unwrap_or("?"),
        r["machine"].as_str().unwrap_or("?"),
        r["backend"].as_str().unwrap_or("?"),
        r["preset"].as_str().unwrap_or("–"),
    ));
    s.push_str(&format!(
        "Hyper-parameters: {}; max steps {}; seed {}\n\n",
        r["hyper"], r["max_steps"], r["seed"]
    ));
    s.push_str("| mode | test accuracy | steps | epochs | best epoch |\n|---|---|---|---|---|\n");
    for m in ["plain", "simulated", "encrypted"] {
        if r[m].is_object() {
            s.push_str(&format!(
                "| {m} | {} | {} | {} | {} |\n",
                f(&r[m]["test_accuracy"]),
                r[m]["steps"],
                r[m]["epochs"],
                r[m]["best_epoch"]
            ));
        }
    }
    s.push_str(&format!(
        "\nTotal {:.1} s, {:.2} s per step.\n",
        r["total_s"].as_f64().unwrap_or(0.0),
        r["per_step_s"].as_f64().unwrap_or(0.0)
    ));
    if r["encrypted"].is_object() && !r["encrypted"]["bootstrap"].is_object() {
        // Chiang's encrypted run: no validation, no encrypted inference.
        let e = &r["encrypted"];
        s.push_str(&format!(
            "\nEncrypted (Chiang): key generation {:.1} s, setup {:.1} s, {:.2} bootstraps per \
             iteration; the decrypted weights are tested in plaintext. Largest \
             |W_encrypted − W_simulated| after step {}: {:.3e}.\n",
            e["keygen_s"].as_f64().unwrap_or(0.0),
            e["setup_s"].as_f64().unwrap_or(0.0),
            r["bootstraps_per_step"].as_f64().unwrap_or(0.0),
            e["w_diff_at_step"],
            e["max_abs_w_diff"].as_f64().unwrap_or(f64::NAN)
        ));
    } else if r["encrypted"].is_object() {
        let e = &r["encrypted"];
        let t = &e["time_split_s"];
        s.push_str(&format!(
            "\nEncrypted: key generation {:.1} s, server setup {:.1} s; training time split \
             (s): matmul {:.1}, softmax {:.1}, bootstrapping {:.1}, other {:.1}; {} bootstraps \
             ({:.1} s); validation {:.1} s per epoch; test inference {:.1} s.\n",
            e["keygen_s"].as_f64().unwrap_or(0.0),
            e["setup_s"].as_f64().unwrap_or(0.0),
            t["matmul"].as_f64().unwrap_or(0.0),
            t["softmax"].as_f64().unwrap_or(0.0),
            t["bootstrap"].as_f64().unwrap_or(0.0),
            t["other"].as_f64().unwrap_or(0.0),
            e["bootstrap"]["count"],
            e["bootstrap"]["seconds"].as_f64().unwrap_or(0.0),
            e["validation_s_per_epoch"].as_f64().unwrap_or(0.0),
            e["test_s"].as_f64().unwrap_or(0.0),
        ));
        s.push_str(&format!(
            "Largest |W_encrypted − W_simulated| after step {}: {:.3e}.\n",
            e["w_diff_at_step"],
            e["max_abs_w_diff"].as_f64().unwrap_or(f64::NAN)
        ));
        let fl = &e["flooding"];
        if fl.is_object() {
            let v = &fl["validation"];
            let m = &fl["published_model"];
            s.push_str(&format!(
                "Validation decryptions flooded (s = {} bits, τ = {}): noise estimate 2^{:.1}, \
                 added σ per slot {:.3e}. The chosen model flooded the same way (as for \
                 publishing it): test accuracy {:.4}, largest weight change {:.3e}.\n",
                fl["statistical_security_bits"],
                fl["queries"],
                v["noise_log2"].as_f64().unwrap_or(f64::NAN),
                v["slot_std"].as_f64().unwrap_or(f64::NAN),
                m["test_accuracy"].as_f64().unwrap_or(f64::NAN),
                m["max_abs_w_diff_to_exact"].as_f64().unwrap_or(f64::NAN),
            ));
        } else {
            s.push_str("Validation decryptions not flooded (`--flooding-bits 0`).\n");
        }
        let full = &r["full_protocol"];
        s.push_str(&format!(
            "Full protocol ({} steps, {} epochs): projected {:.1} h on this machine.\n",
            full["steps"],
            full["epochs"],
            full["projected_h"].as_f64().unwrap_or(0.0)
        ));
    }
    s.push_str(&format!(
        "\nPlot (validation loss and accuracy per epoch): {}\n",
        r["plot"]
    ));
    if let Some(h) = r["history"].as_array() {
        s.push_str("\n| epoch | steps | val loss | val accuracy |\n|---|---|---|---|\n");
        for e in h {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                e["epoch"],
                e["steps"],
                f(&e["val_loss"]),
                f(&e["val_accuracy"])
            ));
        }
    }
    s
}

/// What Chiang's encrypted run measured.
struct ChiangOutcome {
    preset: String,
    test_accuracy: f64,
    steps: usize,
    per_step_s: f64,
    bootstraps_per_step: f64,
    timings: Vec<StepTimings>,
    keygen_s: f64,
    setup_s: f64,
    encrypt_s: f64,
    max_abs_w_diff: f64,
}

/// Chiang's encrypted training (`hetal_train::encrypted::chiang::run_in_process`):
/// `--max-steps` full-batch iterations (default: the epoch count), the decrypted
/// weights tested on the plaintext test features and compared with the simulated run.
fn chiang_encrypted_run(args: &Args, p: &Prepared, sim: &TrainOutcome) -> BoxResult<ChiangOutcome> {
    let preset = TrainPreset::from_name(&args.preset)?;
    let (lit, boot_cfg) = preset.parameters();
    let config = SessionConfig::from_hyper(p.spec.classes, p.xt.cols(), &p.hyper);
    let ctx = Context::new_cpu(lit)?;
    let clock = Instant::now();
    let client = Client::new(ctx, boot_cfg, config)?;
    let keygen_s = clock.elapsed().as_secs_f64();
    let iterations = args.max_steps.unwrap_or(p.hyper.epochs);
    let run = hetal_train::encrypted::chiang::run_in_process(
        &client,
        &p.xt,
        &p.ds.train.y,
        iterations,
        |t, s| {
            eprintln!(
                "iteration {t}: {:.1} s (matmul {:.1}, bootstrap {:.1}), {} bootstraps",
                s.total(),
                s.matmul,
                s.bootstrap,
                s.bootstraps
            )
        },
    )?;
    let steps = run.timings.len();
    let total: f64 = run.timings.iter().map(StepTimings::total).sum();
    let boots: usize = run.timings.iter().map(|t| t.bootstraps).sum();
    Ok(ChiangOutcome {
        preset: preset.name().into(),
        test_accuracy: accuracy(&p.xs.matmul_bt(&run.w)?, &p.ds.test.y),
        steps,
        per_step_s: total / steps.max(1) as f64,
        bootstraps_per_step: boots as f64 / steps.max(1) as f64,
        timings: run.timings,
        keygen_s,
        setup_s: run.setup_s,
        encrypt_s: run.encrypt_s,
        max_abs_w_diff: if sim.steps == steps {
            run.w.max_abs_diff(&sim.last_w)?
        } else {
            f64::NAN
        },
    })
}

struct EncryptedOutcome {
    preset: String,
    /// `--diagonals` resolved for the training's full slots.
    diagonals: DiagonalStorage,
    test_accuracy: f64,
    steps: usize,
    steps_run: usize,
    best_epoch: usize,
    history: Vec<EpochRecord>,
    timings: StepTimings,
    boot: BootstrapStats,
    keygen_s: f64,
    setup_s: f64,
    validation_s_per_epoch: f64,
    test_s: f64,
    max_abs_w_diff: f64,
    flooding: serde_json::Value,
    model_dir: PathBuf,
    num_keys: usize,
    keys_bytes: usize,
}

/// The encrypted run: `hetal_train::session::run` over the in-process transport, the
/// server's state in `<out>/server/`, the client's checkpoint in `<out>/checkpoint.bin`.
fn encrypted_run(
    args: &Args,
    p: &Prepared,
    out_dir: &Path,
    sim: &TrainOutcome,
) -> BoxResult<EncryptedOutcome> {
    let preset = TrainPreset::from_name(&args.preset)?;
    let (lit, boot_cfg) = preset.parameters();
    if args.resume && args.key_cache.is_none() {
        return Err(
            "--resume needs --key-cache (the checkpoint is encrypted under that key)".into(),
        );
    }
    let hyper = p.hyper;
    let config = SessionConfig::from_hyper(p.spec.classes, p.xt.cols(), &hyper);
    let ctx = Context::new_cpu(lit)?;
    let clock = Instant::now();
    let cached = match &args.key_cache {
        Some(dir) => session::load_secret_key(&ctx, dir)?,
        None => None,
    };
    let fresh = cached.is_none();
    let mut client = match cached {
        Some(sk) => Client::with_secret_key(ctx.clone(), sk, boot_cfg, config)?,
        None => Client::new(ctx.clone(), boot_cfg, config)?,
    };
    if let Some(dir) = &args.key_cache
        && fresh
    {
        session::store_secret_key(&ctx, client.secret_key(), dir)?;
    }
    let flooding =
        session::flooding_policy(args.flooding_bits, args.flooding_queries, hyper.epochs)?;
    client.set_flooding(flooding);
    let binding = session::checkpoint_binding(&client, p.spec.name, args.seed)?;
    let keygen_s = clock.elapsed().as_secs_f64();

    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let mut transport = InProcess::with_options(
        ctx.clone(),
        Some(server_dir.clone()),
        ServerOptions {
            bootstrapper: he_linalg::ckks::circuits::BootstrapperOptions {
                diagonals: args.diagonals,
                ..Default::default()
            },
            keys: args.keys,
        },
    );
    let opts = LoopOptions {
        epochs: hyper.epochs,
        max_steps: args.max_steps,
        seed: args.seed,
        checkpoint: Some((out_dir.join("checkpoint.bin"), binding)),
        resume: args.resume,
    };
    let planned = args.max_steps.unwrap_or(sim.steps.max(1));
    let bar = indicatif::ProgressBar::new(planned as u64);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} step {pos}/{len} [{elapsed_precise}, ETA {eta_precise}] {msg}",
    )?);
    let mut setup_s = 0.0;
    let mut progress = |e: &Event| {
        match e {
            Event::Opened { seconds, .. } => {
                setup_s = *seconds;
                // The setup's temporaries (key generation, the keys' bytes, the circuit's
                // encoding) are freed now; give them back before the steps.
                he_math::allocator::release_freed();
            }
            Event::Resumed(s) => {
                bar.set_position(s.steps as u64);
                he_math::allocator::release_freed();
            }
            Event::Step { steps, .. } => {
                bar.set_position(*steps as u64);
                bar.set_message(e.message());
                if !bar.is_hidden() {
                    return;
                }
            }
            _ => {}
        }
        if bar.is_hidden() {
            eprintln!("{}", e.message());
        } else {
            bar.println(e.message());
        }
    };
    let data = TrainData {
        train: (&p.xt, &p.ds.train.y),
        val: (&p.xv, &p.ds.val.y),
    };
    let out = session::run(&mut client, &mut transport, data, &opts, &mut progress)?;
    bar.finish_and_clear();
    let (num_keys, keys_bytes) = transport
        .server_session()
        .map_or((0, 0), |s| s.evaluation_keys_size());
    // What publishing the chosen model with flooding would cost: the same candidate
    // decrypted under the same policy, tested in plaintext.
    let published = match flooding {
        Some(f) => {
            let (candidates, current) = transport.models()?;
            let m = candidates
                .iter()
                .find(|m| m.epoch == out.best_epoch)
                .unwrap_or(&current);
            let (w, r) = client.decrypt_model_flooded(m, &f)?;
            json!({
                "test_accuracy": accuracy(&p.xs.matmul_bt(&w)?, &p.ds.test.y),
                "max_abs_w_diff_to_exact": w.max_abs_diff(&out.model)?,
                "report": r,
            })
        }
        None => serde_json::Value::Null,
    };
    let flooding_json = match flooding {
        Some(f) => json!({
            "statistical_security_bits": f.statistical_security(),
            "queries": f.queries(),
            "validation": out.flooding,
            "published_model": published,
        }),
        None => serde_json::Value::Null,
    };
    let _ = std::fs::remove_file(out_dir.join("checkpoint.bin"));
    let _ = std::fs::remove_dir_all(&server_dir);

    // Encrypted test inference with the chosen model, encrypted afresh (the server
    // cannot tell which of its candidates it is).
    let clock = Instant::now();
    let model = client.encrypt_model(&out.model, out.best_epoch)?;
    let test = client.encrypt_features(&p.xs)?;
    let z = client.decrypt_logits(&transport.infer(&model, &test)?)?;
    let test_accuracy = accuracy(&z, &p.ds.test.y);
    let test_s = clock.elapsed().as_secs_f64();
    // The run's output: the chosen model, as `hetal train` writes it.
    let mut saved = SavedModel::new(
        out.model.clone(),
        p.pre,
        p.spec.name,
        "encrypted",
        Some(preset.name()),
        out.best_epoch,
        out.steps,
    )?;
    // Measured by encrypted inference with the re-encrypted model.
    saved.meta.accuracies.insert("test".into(), test_accuracy);
    let model_dir = out_dir.join("model");
    saved.save(&model_dir)?;
    let max_abs_w_diff = if sim.steps == out.steps {
        out.last_w.max_abs_diff(&sim.last_w)?
    } else {
        f64::NAN
    };
    Ok(EncryptedOutcome {
        preset: preset.name().into(),
        diagonals: args
            .diagonals
            .resolve(ctx.params().max_slots(), ctx.params().n()),
        test_accuracy,
        steps: out.steps,
        steps_run: out.steps_run,
        best_epoch: out.best_epoch,
        history: out.history,
        timings: out.timings,
        boot: out.status.bootstrap,
        keygen_s,
        setup_s,
        validation_s_per_epoch: out.validation_s_per_epoch,
        test_s,
        max_abs_w_diff,
        flooding: flooding_json,
        model_dir,
        num_keys,
        keys_bytes,
    })
}
