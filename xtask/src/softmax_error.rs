//! `cargo xtask softmax-error --classes c --range R --samples n
//! [--variants normal,precise,sign-max,hetal-normal,hetal-precise] [--encrypted] [--json]`: the
//! error of ASoftmax (HETAL, §4.3) against exact softmax on rows of `c` logits drawn
//! uniformly from `[−R, R]` — the float64 evaluation of the circuit on `n` rows for each
//! variant, and with `--encrypted` the CKKS evaluation (with bootstrapping) of the first
//! variant on `--encrypted-rows` of them.
//!
//! Variants: `normal` is `hetal_train::ASoftmaxParams::default()`, `precise` the same
//! with HETAL's precise exponential (the identity without a domain extension, so the
//! same numbers), `sign-max` the same with HETAL's sign composition for the row maximum
//! (`RowMax::Sign`) instead of the relu polynomial and the inverse's range of the
//! defaults before it (`B = 24`, 8 iterations: the sign's row sums reach 29); `hetal-precise`
//! and `hetal-normal` are HETAL's own parameters (`ASoftmaxParams::hetal`).
//!
//! Prints `{"classes", "range", "samples", "variant", "max_abs_err", "mean_abs_err",
//! "depth", "variants": [{"variant", "row_max", "max_abs_err", "mean_abs_err", "depth"},
//! …]}`: the
//! maximum and the mean over rows of the per-row maximum absolute error, and the
//! circuit's multiplicative depth, top level for the first variant; `--encrypted` adds
//! `encrypted` (the same errors of the decrypted CKKS result, against exact softmax and
//! against the float64 circuit, bootstraps and seconds; `max_abs_class_mean_err_vs_simulated`,
//! the largest over classes of the error's mean over the rows: the part of the error
//! that a training step's gradient sums over the batch instead of averaging out, since
//! the bias column of `G = (P − Y)ᵀ·X` is that mean times the step size).
//!
//! `--logits` picks the rows: `uniform` (each logit uniform in `[−R, R]`), `zeros`
//! (every logit 0, as in a training run's first step, whose weights are 0) or
//! `repeated` (one uniform row repeated: a batch whose rows agree).

use he_linalg::ckks::{Bootstrapper, Context, KeyGenerator};
use he_linalg::{BlockLayout, EncryptedMatrix, Evaluator, Matrix, UnitShape, padded_classes};
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::encrypted::{EncryptedSoftmax, Ops};
use hetal_train::{ASoftmaxParams, ASoftmaxVariant, RowMax, softmax_row};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `softmax-error`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Classes `c` per row.
    #[arg(long, default_value_t = 7)]
    classes: usize,
    /// Logits are uniform in `[−R, R]`.
    #[arg(long, default_value_t = 64.0)]
    range: f64,
    /// Rows evaluated in float64.
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Variants to measure (comma-separated); the first one also runs with
    /// `--encrypted` and fills the top-level fields.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "normal,precise,sign-max,hetal-normal,hetal-precise"
    )]
    variants: Vec<Variant>,
    /// Also run rows through CKKS.
    #[arg(long)]
    encrypted: bool,
    /// Rows run through CKKS with `--encrypted`.
    #[arg(long, default_value_t = 2048)]
    encrypted_rows: usize,
    /// With `--encrypted`: the block layout of a training batch of this size (HETAL's
    /// unit shape, as `reproduce` uses; e.g. 1024 at N = 2^16 gives rows of 32 columns,
    /// where ASoftmax folds into sparse slots) instead of the densest rows of `2c'`.
    #[arg(long)]
    encrypted_batch: Option<usize>,
    /// With `--encrypted`: fold the blocks into half the slots so that ASoftmax's
    /// bootstraps are sparse (`EncryptedSoftmax::folded`; needs rows of `≥ 4c'` columns,
    /// e.g. `--encrypted-batch 1024` at N = 2^16 for 7 classes).
    #[arg(long, requires = "encrypted")]
    fold: bool,
    /// With `--encrypted`: the level the logits are encrypted at (default: the top user
    /// level). A training step's logits come out of DiagABT one level above the refresh
    /// floor (`StepPlan::v_min` − 3), e.g. 1 on the N = 2^16 preset.
    #[arg(long, requires = "encrypted")]
    encrypted_level: Option<usize>,
    /// CKKS preset for `--encrypted`: `n16` or `insecure-n12`.
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Seed of the logits.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How the rows of logits are drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    logits: Logits,
    /// Print JSON (one line).
    #[arg(long)]
    json: bool,
}

/// How `softmax-error` draws its rows of logits.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Every logit uniform in `[−R, R]`.
    Uniform,
    /// Every logit 0 (a training run's first step).
    Zeros,
    /// One uniform row, repeated.
    Repeated,
}

/// An ASoftmax parameter set to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The defaults (normal exponential).
    Normal,
    /// The defaults with HETAL's precise exponential.
    Precise,
    /// The defaults with HETAL's sign composition for the row maximum (and `B = 24`, 8
    /// iterations).
    SignMax,
    /// HETAL's parameters, precise exponential.
    HetalPrecise,
    /// HETAL's parameters, normal exponential.
    HetalNormal,
}

impl Variant {
    fn params(self) -> ASoftmaxParams {
        match self {
            Self::Normal => ASoftmaxParams::default(),
            Self::Precise => ASoftmaxParams {
                variant: ASoftmaxVariant::Precise,
                ..ASoftmaxParams::default()
            },
            // The sign's row sums reach 29 (docs/results/softmax.md): the inverse's
            // range of the defaults before the relu maximum.
            Self::SignMax => ASoftmaxParams {
                row_max: RowMax::Sign,
                inverse_range: 24.0,
                inverse_iters: 8,
                ..ASoftmaxParams::default()
            },
            Self::HetalPrecise => ASoftmaxParams::hetal(ASoftmaxVariant::Precise),
            Self::HetalNormal => ASoftmaxParams::hetal(ASoftmaxVariant::Normal),
        }
    }
}

/// The name clap gives `v` on the command line (what the JSON reports).
fn value_name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

fn row_errors(got: &Matrix, reference: impl Fn(usize) -> Vec<f64>, rows: usize) -> (f64, f64) {
    let mut max = 0f64;
    let mut sum = 0.0;
    for i in 0..rows {
        let r = reference(i);
        let e = (0..r.len()).fold(0f64, |m, j| m.max((got.get(i, j) - r[j]).abs()));
        max = max.max(e);
        sum += e;
    }
    (max, sum / rows.max(1) as f64)
}

/// `samples × classes` logits uniform in `[−range, range]` (ChaCha20 seeded by `seed`).
fn sample_logits(classes: usize, range: f64, samples: usize, seed: u64) -> Matrix {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    Matrix::from_fn(samples, classes, |_, _| rng.random_range(-range..=range))
}

/// The rows `kind` asks for (see the module docs).
fn draw_logits(kind: Logits, classes: usize, range: f64, samples: usize, seed: u64) -> Matrix {
    match kind {
        Logits::Uniform => sample_logits(classes, range, samples, seed),
        Logits::Zeros => Matrix::zeros(samples, classes),
        Logits::Repeated => {
            let row = sample_logits(classes, range, 1, seed);
            Matrix::from_fn(samples, classes, |_, j| row.get(0, j))
        }
    }
}

/// The largest over columns of `|mean_i (got − want)_ij|` over the first `rows` rows.
fn max_column_mean_error(got: &Matrix, want: &Matrix, rows: usize) -> f64 {
    (0..want.cols())
        .map(|j| {
            let s: f64 = (0..rows).map(|i| got.get(i, j) - want.get(i, j)).sum();
            (s / rows.max(1) as f64).abs()
        })
        .fold(0.0, f64::max)
}

/// ASoftmax's float64 circuit on every row of `z`.
fn simulate(p: &ASoftmaxParams, z: &Matrix) -> Result<Matrix, Box<dyn std::error::Error>> {
    p.validate()?;
    let prepared = p.prepare()?;
    Ok(Matrix::from_rows(
        &(0..z.rows())
            .map(|i| prepared.eval_row(z.row(i)))
            .collect::<Vec<_>>(),
    )?)
}

/// The float64 circuit's largest and mean per-row max error against the exact softmax,
/// and its depth, for `classes` classes on uniform `[−range, range]` logits (the
/// measurement of `softmax-error`, shared with `ablate`).
///
/// # Errors
/// Invalid parameters.
pub(crate) fn float64_error(
    p: &ASoftmaxParams,
    classes: usize,
    range: f64,
    samples: usize,
    seed: u64,
) -> Result<(f64, f64, usize), Box<dyn std::error::Error>> {
    let z = sample_logits(classes, range, samples, seed);
    let sim = simulate(p, &z)?;
    let (max, mean) = row_errors(&sim, |i| softmax_row(z.row(i)), z.rows());
    Ok((max, mean, p.depth(padded_classes(classes))?))
}

/// Runs the measurement.
///
/// # Errors
/// Invalid arguments; CKKS errors.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.classes < 2 || args.range.is_nan() || args.range <= 0.0 || args.samples == 0 {
        return Err("need --classes ≥ 2, --range > 0, --samples ≥ 1".into());
    }
    let first = *args.variants.first().ok_or("--variants is empty")?;
    let params = first.params();
    if args.range > params.r_max {
        return Err(format!("--range {} exceeds R_max = {}", args.range, params.r_max).into());
    }
    let z = draw_logits(
        args.logits,
        args.classes,
        args.range,
        args.samples,
        args.seed,
    );
    let cp = padded_classes(args.classes);
    let mut variants = Vec::new();
    // The first variant's float64 result is kept: `--encrypted` compares against it.
    let mut first_sim = None;
    for v in &args.variants {
        let p = v.params();
        let sim = simulate(&p, &z)?;
        let (max, mean) = row_errors(&sim, |i| softmax_row(z.row(i)), z.rows());
        variants.push(json!({
            "variant": value_name(*v),
            "row_max": p.row_max.name(),
            "max_abs_err": max,
            "mean_abs_err": mean,
            "depth": p.depth(cp)?,
        }));
        first_sim.get_or_insert(sim);
    }
    let sim = first_sim.ok_or("--variants is empty")?;
    let mut report = json!({
        "classes": args.classes,
        "range": args.range,
        "samples": args.samples,
        "logits": value_name(args.logits),
        "variant": value_name(first),
        "max_abs_err": variants[0]["max_abs_err"],
        "mean_abs_err": variants[0]["mean_abs_err"],
        "depth": variants[0]["depth"],
        "variants": variants,
    });
    if args.encrypted {
        let (lit, boot_cfg) = TrainPreset::from_name(&args.preset)?.parameters();
        let ctx = Context::new_cpu(lit)?;
        let slots = ctx.params().max_slots();
        let shape = match args.encrypted_batch {
            Some(b) => UnitShape::hetal(b, args.classes, slots)?,
            None => UnitShape::new(slots / (2 * cp), 2 * cp)?,
        };
        let mut sm = EncryptedSoftmax::new(&params, args.classes, shape.s1, slots)?;
        if args.fold {
            sm = sm.folded()?;
        }
        let clock = Instant::now();
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key()?;
        let req = sm.key_request(ctx.params(), &boot_cfg)?;
        let keys = Arc::new(kg.gen_evaluation_keys(&sk, &req)?);
        let ev = Arc::new(Evaluator::new(&ctx, keys));
        let boot = Arc::new(Bootstrapper::new(ev.clone(), boot_cfg.clone(), slots)?);
        let refresher = sm.refresher(&ev, &boot_cfg, boot)?;
        let setup_s = clock.elapsed().as_secs_f64();
        let ops = Ops::new(ev);
        let rows = args.encrypted_rows.min(args.samples).min(shape.s0);
        let sub = Matrix::from_fn(rows, args.classes, |i, j| z.get(i, j));
        let layout = BlockLayout::new(rows, args.classes, shape)?;
        let top = ctx.params().max_user_level();
        let level = args.encrypted_level.unwrap_or(top);
        if level > top {
            return Err(
                format!("--encrypted-level {level} is above the top user level {top}").into(),
            );
        }
        let enc = EncryptedMatrix::encrypt(&ctx, &sk, &sub, layout, level)?;
        let clock = Instant::now();
        let out = sm.evaluate(&ops, &refresher, &enc, 0)?;
        let eval_s = clock.elapsed().as_secs_f64();
        let got = out.decrypt(&ctx, &sk)?;
        let (emax, emean) = row_errors(&got, |i| softmax_row(z.row(i)), rows);
        let (smax, smean) = row_errors(&got, |i| sim.row(i).to_vec(), rows);
        let class_mean = max_column_mean_error(&got, &sim, rows);
        report.as_object_mut().ok_or("report")?.insert(
            "encrypted".into(),
            json!({
                "preset": args.preset,
                "variant": value_name(first),
                "rows": rows,
                "logits_level": level,
                "ciphertexts": enc.ciphertexts().len(),
                "unit_shape": [shape.s0, shape.s1],
                "sparse_slots": sm.sparse_slots(),
                "sparse_bootstraps": refresher.stats().sparse,
                "max_abs_err": emax,
                "mean_abs_err": emean,
                "max_abs_err_vs_simulated": smax,
                "mean_abs_err_vs_simulated": smean,
                "max_abs_class_mean_err_vs_simulated": class_mean,
                "bootstraps": refresher.stats().count,
                "bootstrap_s": refresher.stats().seconds,
                "eval_s": eval_s,
                "setup_s": setup_s,
            }),
        );
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
