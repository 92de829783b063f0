//! `cargo xtask reproduce --dataset dermamnist`: HETAL's training protocol on real
//! extracted features. Modes implemented so far: `plain` (float64, exact softmax) and
//! `simulated` (float64, ASoftmax with the encrypted run's schedule). The encrypted
//! mode is not implemented yet (see the README's Status).
//!
//! With `--json` the last stdout line is the report: `test_accuracy` (fraction),
//! `mode`, `steps`, `epochs`, `best_epoch`, `total_s`, `per_step_s`, the
//! hyper-parameters and the per-epoch history.

use hetal_train::softmax::ASoftmaxParams;
use hetal_train::train::{SoftmaxKind, accuracy, train_float};
use hetal_train::{Dataset, Preprocessor, dataset};
use serde_json::json;
use std::path::PathBuf;
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
    /// `plain` or `simulated`.
    #[arg(long, default_value = "simulated")]
    mode: String,
    /// Override the batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Seed of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as one JSON object (last line).
    #[arg(long)]
    json: bool,
}

/// Runs the protocol.
///
/// # Errors
/// Unknown dataset or mode, unreadable data, training errors.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let spec = dataset(&args.dataset)?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| Dataset::default_dir(&PathBuf::from("../shared/data"), spec));
    let kind = match args.mode.as_str() {
        "plain" => SoftmaxKind::Exact,
        "simulated" => SoftmaxKind::Approximate,
        "encrypted" => {
            return Err("--mode encrypted is not implemented yet (see README Status)".into());
        }
        m => return Err(format!("unknown mode {m:?} (plain, simulated)").into()),
    };
    let mut hyper = spec.hyper;
    if let Some(b) = args.batch {
        hyper.batch = b;
    }
    if let Some(e) = args.epochs {
        hyper.epochs = e;
    }
    let clock = Instant::now();
    let ds = Dataset::load(&dir, spec.classes)?;
    let pre = Preprocessor::fit(&ds.train.x)?;
    let (xt, xv, xs) = (
        pre.apply(&ds.train.x),
        pre.apply(&ds.val.x),
        pre.apply(&ds.test.x),
    );
    let params = ASoftmaxParams::default();
    let train_clock = Instant::now();
    let out = train_float(
        (&xt, &ds.train.y),
        (&xv, &ds.val.y),
        spec.classes,
        &hyper,
        kind,
        &params,
        args.seed,
        args.max_steps,
    )?;
    let train_s = train_clock.elapsed().as_secs_f64();
    let test_accuracy = accuracy(&xs.matmul_bt(&out.w)?, &ds.test.y);
    let report = json!({
        "dataset": spec.name,
        "extractor": spec.extractor,
        "mode": args.mode,
        "backend": "cpu (float64)",
        "hyper": hyper,
        "asoftmax": params,
        "seed": args.seed,
        "test_accuracy": test_accuracy,
        "steps": out.steps,
        "epochs": out.epochs,
        "best_epoch": out.best_epoch,
        "stopped_early": out.stopped_early,
        "total_s": clock.elapsed().as_secs_f64(),
        "per_step_s": train_s / out.steps.max(1) as f64,
        "history": out.history,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} ({}), mode {}: test accuracy {:.4} after {} steps / {} epochs (best epoch {}), {:.1} s",
            spec.name,
            spec.extractor,
            args.mode,
            test_accuracy,
            out.steps,
            out.epochs,
            out.best_epoch,
            clock.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
