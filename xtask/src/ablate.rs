//! `cargo xtask ablate --dataset NAME [--json]`: one table of the training choices on
//! one dataset (`hetal_train::ablation`): algorithm (HETAL / Chiang) × activation
//! (exact / the encrypted approximation) × early stopping (on / off), all in float64
//! with the encrypted circuits' approximations (the `simulated` mode), with test
//! accuracy, steps, epochs and, for the HETAL rows with ASoftmax, the encrypted time
//! projected from the per-step and per-epoch costs of a measured encrypted run
//! (`--encrypted-report`, by default `target/reproduce/<dataset>-encrypted/report.json`
//! when it exists), and for the Chiang rows with the cubic from a measured encrypted
//! Chiang run (`--chiang-report`, by default
//! `target/reproduce/<dataset>-chiang-encrypted/report.json`; per iteration, no
//! validation under encryption); or, with `--encrypted-steps N [--preset P]
//! [--encrypted-batch B]`, from bounded encrypted runs of both algorithms made by this
//! command (`reproduce --mode encrypted --max-steps N`). Also the ASoftmax variants' error
//! and depth (`softmax-error`'s float64 measurement) for the dataset's class count.
//! Writes `report.md`, `report.json` and `curves.png` (validation loss and accuracy per
//! epoch of every configuration) to `--out-dir` (default `target/ablate/<dataset>`).
//! With `--json` the last stdout line is `{"rows": [...], ...}`.

use hetal_train::ablation::{Activation, Row, configurations, run_configuration};
use hetal_train::{ASoftmaxParams, ASoftmaxVariant, Dataset, Preprocessor, dataset, store};
use serde_json::json;
use std::path::PathBuf;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Arguments of `ablate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset name from the registry (`dermamnist`, `facemask`, `snips`).
    #[arg(long, default_value = "dermamnist")]
    dataset: String,
    /// Directory with `features_*.npy` / `labels_*.npy`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Report of a measured encrypted `reproduce` run (its `per_step_s` and
    /// `encrypted.validation_s_per_epoch` project the encrypted time of each row).
    #[arg(long)]
    encrypted_report: Option<PathBuf>,
    /// Report of a measured encrypted `reproduce --algorithm chiang` run (its
    /// `per_step_s` projects the Chiang rows with the cubic).
    #[arg(long)]
    chiang_report: Option<PathBuf>,
    /// Measure the encrypted costs here instead of reading reports: a bounded encrypted
    /// `reproduce` run of this many steps for HETAL and as many iterations for Chiang
    /// (their reports go to `<out>/encrypted-hetal/` and `<out>/encrypted-chiang/`).
    #[arg(long, conflicts_with_all = ["encrypted_report", "chiang_report"])]
    encrypted_steps: Option<usize>,
    /// CKKS preset of the encrypted part (`n16`, or `insecure-n12` for smoke runs).
    #[arg(long, default_value = "n16", requires = "encrypted_steps")]
    preset: String,
    /// Batch size of the encrypted part (default: the dataset's).
    #[arg(long, requires = "encrypted_steps")]
    encrypted_batch: Option<usize>,
    /// Seed of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Print the report as one JSON object (last line).
    #[arg(long)]
    json: bool,
}

/// Per-step and per-epoch encrypted costs (seconds) read from a reproduce report (the
/// per-epoch cost is 0 for a run without validation under encryption).
fn encrypted_costs(path: &PathBuf) -> BoxResult<(f64, f64, String)> {
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let per_step = r["per_step_s"]
        .as_f64()
        .ok_or("report without per_step_s")?;
    let per_epoch = r["encrypted"]["validation_s_per_epoch"]
        .as_f64()
        .unwrap_or(0.0);
    Ok((
        per_step,
        per_epoch,
        r["command"].as_str().unwrap_or("?").to_string(),
    ))
}

/// The bounded encrypted part (`--encrypted-steps`): `reproduce --mode encrypted` for
/// each algorithm, through `reproduce`'s own argument parser; returns the two reports'
/// paths and command lines (HETAL, Chiang).
fn encrypted_part(
    args: &Args,
    steps: usize,
    out_dir: &std::path::Path,
) -> BoxResult<[(PathBuf, String); 2]> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        a: crate::reproduce::Args,
    }
    let mut paths = Vec::new();
    for alg in ["hetal", "chiang"] {
        let dir = out_dir.join(format!("encrypted-{alg}"));
        let mut argv: Vec<String> = [
            "reproduce",
            "--dataset",
            &args.dataset,
            "--algorithm",
            alg,
            "--mode",
            "encrypted",
            "--preset",
            &args.preset,
            "--seed",
            &args.seed.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        argv.extend(["--max-steps".into(), steps.to_string()]);
        argv.extend(["--out-dir".into(), dir.display().to_string()]);
        if let Some(b) = args.encrypted_batch {
            argv.extend(["--batch".into(), b.to_string()]);
        }
        if let Some(d) = &args.data_dir {
            argv.extend(["--data-dir".into(), d.display().to_string()]);
        }
        let command = format!("cargo xtask {}", argv[..].join(" "));
        eprintln!("encrypted part: {command}");
        let w = <Wrap as clap::Parser>::try_parse_from(&argv)?;
        crate::reproduce::run(&w.a)?;
        paths.push((dir.join("report.json"), command));
    }
    let chiang = paths.pop().ok_or("no Chiang report")?;
    let hetal = paths.pop().ok_or("no HETAL report")?;
    Ok([hetal, chiang])
}

/// Runs the ablation.
///
/// # Errors
/// Unknown dataset; unreadable data or report; training errors.
pub fn run(args: &Args) -> BoxResult<()> {
    let spec = dataset(&args.dataset)?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| Dataset::default_dir(&PathBuf::from("../shared/data"), spec));
    let ds = Dataset::load(&dir, spec.classes)?;
    let pre = Preprocessor::fit(&ds.train.x)?;
    let (xt, xv, xs) = (
        pre.apply(&ds.train.x),
        pre.apply(&ds.val.x),
        pre.apply(&ds.test.x),
    );
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/ablate/{}", spec.name)));
    std::fs::create_dir_all(&out_dir)?;
    let measured = match args.encrypted_steps {
        Some(steps) => Some(encrypted_part(args, steps, &out_dir)?),
        None => None,
    };
    let report_path = measured
        .as_ref()
        .map(|m| m[0].0.clone())
        .or_else(|| args.encrypted_report.clone())
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "target/reproduce/{}-encrypted/report.json",
                spec.name
            ))
        });
    let costs = if report_path.exists() {
        Some(encrypted_costs(&report_path)?)
    } else {
        None
    };
    let chiang_path = measured
        .as_ref()
        .map(|m| m[1].0.clone())
        .or_else(|| args.chiang_report.clone())
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "target/reproduce/{}-chiang-encrypted/report.json",
                spec.name
            ))
        });
    let chiang_costs = if chiang_path.exists() {
        Some(encrypted_costs(&chiang_path)?)
    } else {
        None
    };
    // A measured part names the reproduce command it ran (its report records ablate's).
    let (costs, chiang_costs) = match &measured {
        Some([h, c]) => (
            costs.map(|(s, e, _)| (s, e, h.1.clone())),
            chiang_costs.map(|(s, e, _)| (s, e, c.1.clone())),
        ),
        None => (costs, chiang_costs),
    };
    let mut rows: Vec<Row> = Vec::new();
    for cfg in configurations() {
        let r = run_configuration(
            cfg,
            (&xt, &ds.train.y),
            (&xv, &ds.val.y),
            (&xs, &ds.test.y),
            spec.classes,
            &spec.hyper,
            args.seed,
        )?;
        eprintln!(
            "{:<38} test {:.4}, {} steps, {} epochs ({:.1} s)",
            r.label, r.test_accuracy, r.steps, r.epochs, r.train_s
        );
        rows.push(r);
    }
    let majority = hetal_train::data::majority_rate(&ds.test.y, spec.classes);
    let mut softmax = Vec::new();
    for variant in [ASoftmaxVariant::Normal, ASoftmaxVariant::Precise] {
        let p = ASoftmaxParams {
            variant,
            ..ASoftmaxParams::default()
        };
        let (max, mean, depth) =
            crate::softmax_error::float64_error(&p, spec.classes, 128.0, 20_000, 0)?;
        softmax.push(json!({
            "variant": variant.name(), "depth": depth,
            "max_abs_err": max, "mean_abs_err": mean,
            "command": format!(
                "cargo xtask softmax-error --classes {} --range 128 --samples 20000 --variants {} --json",
                spec.classes, variant.name()),
        }));
    }
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let from = match (r.config.algorithm, r.config.activation) {
                (hetal_train::ablation::Algorithm::Hetal, Activation::ASoftmax(_)) => &costs,
                (hetal_train::ablation::Algorithm::Chiang, Activation::SigmoidPoly3) => {
                    &chiang_costs
                }
                _ => &None,
            };
            let projected = from
                .as_ref()
                .map(|(step, epoch, _)| (step * r.steps as f64 + epoch * r.epochs as f64) / 3600.0);
            json!({
                "label": r.label,
                "algorithm": r.config.algorithm.name(),
                "activation": r.config.activation.name(),
                "encryptable": r.config.activation.is_encryptable(),
                "early_stopping": r.config.early_stopping,
                "test_accuracy": r.test_accuracy,
                "steps": r.steps,
                "epochs": r.epochs,
                "best_epoch": r.best_epoch,
                "stopped_early": r.stopped_early,
                "activation_depth": r.activation_depth,
                "train_s": r.train_s,
                "projected_encrypted_h": projected,
            })
        })
        .collect();
    let png = out_dir.join("curves.png");
    let curves: Vec<(&str, &[hetal_train::train::EpochRecord])> = rows
        .iter()
        .map(|r| (r.label.as_str(), r.outcome.history.as_slice()))
        .collect();
    let drew = crate::plot::curves(&png, &format!("{}: ablation (float64)", spec.name), &curves)?;
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let report = json!({
        "dataset": spec.name,
        "extractor": spec.extractor,
        "hyper": spec.hyper,
        "majority_rate": majority,
        "seed": args.seed,
        "command": format!("cargo xtask {command}"),
        "encrypted_costs": costs.as_ref().map(|(s, e, c)| json!({
            "per_step_s": s, "validation_s_per_epoch": e, "from": c,
        })),
        "chiang_encrypted_costs": chiang_costs.as_ref().map(|(s, _, c)| json!({
            "per_step_s": s, "from": c,
        })),
        "softmax": softmax,
        "matmul": "docs/results/matmul.md (cargo xtask bench-matmul)",
        "rows": json_rows,
        "plot": if drew { png.display().to_string() } else { "not drawn: no TrueType font found".into() },
    });
    let md = markdown(&report);
    store::write_atomic(
        &out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    store::write_atomic(&out_dir.join("report.md"), md.as_bytes())?;
    if args.json {
        println!("{report}");
    } else {
        print!("{md}");
    }
    Ok(())
}

fn markdown(r: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value, d: usize| {
        v.as_f64().map_or("–".to_string(), |x| format!("{x:.d$}"))
    };
    let mut s = format!(
        "## {} ({})\n\nCommand: `{}`; HETAL hyper-parameters {}; majority-class rate on \
         the test split {}.\n\n",
        r["dataset"].as_str().unwrap_or("?"),
        r["extractor"].as_str().unwrap_or("?"),
        r["command"].as_str().unwrap_or("?"),
        r["hyper"],
        f(&r["majority_rate"], 4),
    );
    s.push_str(
        "| algorithm | activation | early stopping | test accuracy | steps | epochs | best \
         epoch | activation depth | projected encrypted (h) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in r["rows"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row["algorithm"].as_str().unwrap_or("?"),
            row["activation"].as_str().unwrap_or("?"),
            if row["early_stopping"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            f(&row["test_accuracy"], 4),
            row["steps"],
            row["epochs"],
            row["best_epoch"],
            row["activation_depth"]
                .as_u64()
                .map_or("–".into(), |d| d.to_string()),
            f(&row["projected_encrypted_h"], 1),
        ));
    }
    match r["encrypted_costs"].as_object() {
        Some(c) => s.push_str(&format!(
            "\nProjection (HETAL): {} s per step and {} s of validation per epoch, measured \
             by `{}`.\n",
            f(&c["per_step_s"], 1),
            f(&c["validation_s_per_epoch"], 1),
            c["from"].as_str().unwrap_or("?")
        )),
        None => s.push_str(
            "\nNo encrypted HETAL report found: no projection for HETAL (run `cargo xtask \
             reproduce --mode encrypted` first, pass `--encrypted-report`, or measure with \
             `--encrypted-steps`).\n",
        ),
    }
    match r["chiang_encrypted_costs"].as_object() {
        Some(c) => s.push_str(&format!(
            "Projection (Chiang, cubic): {} s per full-batch iteration, measured by `{}`.\n",
            f(&c["per_step_s"], 1),
            c["from"].as_str().unwrap_or("?")
        )),
        None => s.push_str(
            "No encrypted Chiang report found: no projection for Chiang (`cargo xtask \
             reproduce --algorithm chiang --mode encrypted`, `--chiang-report`, or \
             `--encrypted-steps`).\n",
        ),
    }
    s.push_str("\nASoftmax on uniform [−128, 128] logits of this class count (float64):\n\n| variant | depth | max abs error | mean abs error |\n|---|---|---|---|\n");
    for v in r["softmax"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            v["variant"].as_str().unwrap_or("?"),
            v["depth"],
            v["max_abs_err"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.2e}")),
            v["mean_abs_err"]
                .as_f64()
                .map_or("–".into(), |x| format!("{x:.2e}")),
        ));
    }
    s.push_str(&format!(
        "\nMatrix products: {}. Plot: {}.\n",
        r["matmul"].as_str().unwrap_or("?"),
        r["plot"]
    ));
    s
}
