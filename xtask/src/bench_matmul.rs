//! `cargo xtask bench-matmul`: DiagABT/DiagATB (HETAL, ICML 2023) against the
//! baselines (ColMajor/RowMajor, Crockett 2020; Jin et al. 2020) on HETAL's five
//! shapes (Table 2): `A·Bᵀ` with `A ∈ R^{a×b}`, `B ∈ R^{c×b}` and `Aᵀ·B` with
//! `A ∈ R^{a×c}`, `B ∈ R^{a×b}`, inputs uniform in [0, 1), encrypted at the top user
//! level, unit shape `(a, slots/a)`.
//!
//! Times are medians of `--reps` runs; operation counts come from the evaluator's
//! counters; depth is input level − output level; errors are `log2` of the largest
//! absolute error against the float64 product. With `--quick` (the PRotUp variant runs
//! once), the baselines run on truncated problems and their time and counts are
//! extrapolated: ColMajor and RowMajor on `c_sub = 2` classes, scaled by `c/c_sub`
//! (their work is a sum of identical per-class parts); Jin's `Aᵀ·B` on 2 classes × 8
//! columns, scaled by `c·b/16` (identical per output entry); Jin's `A·Bᵀ` (one
//! ciphertext per column of `A` and per entry of `B`, too many to hold at `b = 769`) on
//! 2 classes and 64 and 128 columns, by the line through the two runs (its work is
//! affine in `b`). Such entries carry `"extrapolated"` with the truncated sizes.
//!
//! `--json` prints one JSON object; otherwise a markdown table. Unless `--no-doc`,
//! the table, the machine and the command are written to `docs/results/matmul.md`.

use he_linalg::baselines::{BaselineMatrix, BaselinePacking};
use he_linalg::keys;
use he_linalg::{
    AbtWeights, AtbLhs, BlockLayout, Context, CpuBackend, EncryptedMatrix, Evaluator, KeyGenerator,
    Matrix, MatrixEvaluator, OpCounts, ParametersLiteral, SecretKey, UnitShape, padded_classes,
    presets,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `bench-matmul`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object instead of a markdown table.
    #[arg(long)]
    json: bool,
    /// Preset (`ckks::presets::SchemePreset`'s names): `n16` (N = 2^16, 128-bit per its
    /// secret's table, top user level 12) or `insecure-n13` (smoke tests); the
    /// shallower ones stop with an error where a product needs more levels.
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Shapes `AxBxC` (comma-separated); default: HETAL's five.
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Timed repetitions of DiagABT/DiagATB and untruncated baselines (median).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Run long baselines on truncated problems and extrapolate (see module docs).
    #[arg(long)]
    quick: bool,
    /// Do not write docs/results/matmul.md.
    #[arg(long)]
    no_doc: bool,
}

const HETAL_SHAPES: [(usize, usize, usize); 5] = [
    (128, 128, 4),
    (256, 256, 8),
    (512, 769, 4),
    (1024, 769, 8),
    (2048, 769, 16),
];

/// The parameters of `--preset` (`ckks::presets::SchemePreset`) and their own name.
fn preset(name: &str) -> Result<(&'static str, ParametersLiteral), ckks::CkksError> {
    let p = presets::SchemePreset::from_name(name)?;
    Ok((p.id(), p.parameters()))
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split('x')
        .map(|t| t.parse().map_err(|_| format!("bad shape {s:?}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [a, b, c] => Ok((a, b, c)),
        _ => Err(format!("shape {s:?} is not AxBxC")),
    }
}

/// One measured run: seconds, counts, depth, log2 error.
struct Run {
    secs: f64,
    counts: OpCounts,
    depth: usize,
    log2_err: f64,
}

struct Bench {
    ctx: Arc<Context<CpuBackend>>,
    sk: SecretKey<CpuBackend>,
    me: MatrixEvaluator<CpuBackend>,
    level: usize,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl Bench {
    fn enc_block(&self, m: &Matrix, l: BlockLayout) -> Res<EncryptedMatrix<CpuBackend>> {
        Ok(EncryptedMatrix::encrypt(
            &self.ctx, &self.sk, m, l, self.level,
        )?)
    }

    fn enc_base(&self, m: &Matrix, p: BaselinePacking) -> Res<BaselineMatrix<CpuBackend>> {
        Ok(BaselineMatrix::encrypt(
            &self.ctx, &self.sk, m, p, self.level,
        )?)
    }
}

/// Times `$op` (an expression returning `Result<Packed<_, _>>`) `$reps` times: the
/// median time and the counts of the last run; decryption and the error against
/// `$want` happen after the clock stops.
macro_rules! timed {
    ($bench:expr, $reps:expr, $want:expr, $op:expr) => {{
        let bench: &Bench = $bench;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..$reps.max(1) {
            let before = bench.me.op_counts();
            let clock = Instant::now();
            let out = $op?;
            let secs = clock.elapsed().as_secs_f64();
            let counts = bench.me.op_counts() - before;
            times.push(secs);
            last = Some((out, counts));
        }
        let (out, counts) = last.expect("at least one repetition");
        times.sort_by(f64::total_cmp);
        let got = out.decrypt(&bench.ctx, &bench.sk)?;
        Run {
            secs: times[times.len() / 2],
            counts,
            depth: bench.level - out.level(),
            log2_err: got.max_abs_diff($want)?.log2(),
        }
    }};
}

fn counts_json(c: &OpCounts, scale: f64) -> Value {
    let s = |x: u64| (x as f64 * scale).round() as u64;
    json!({
        "cmult": s(c.cmult),
        "mult": s(c.mult),
        "rot": s(c.rot),
        "conj": s(c.conj),
        "key_switch": s(c.key_switch),
        "rescale": s(c.rescale),
    })
}

fn run_json(r: &Run, reps: usize) -> Value {
    let mut v = counts_json(&r.counts, 1.0);
    let o = v.as_object_mut().expect("object");
    o.insert("median_s".into(), json!(r.secs));
    o.insert("reps".into(), json!(reps));
    o.insert("depth".into(), json!(r.depth));
    o.insert("log2_max_err".into(), json!(r.log2_err));
    o.insert("extrapolated".into(), Value::Null);
    v
}

/// The truncated-run extrapolation: `run(c_sub, b)` on two column counts.
fn extrapolate(
    c: usize,
    b: usize,
    c_sub: usize,
    b1: usize,
    b2: usize,
    mut run: impl FnMut(usize, usize) -> Res<Run>,
) -> Res<Value> {
    let r1 = run(c_sub, b1)?;
    let r2 = run(c_sub, b2)?;
    let fc = c as f64 / c_sub as f64;
    let t = (b - b1) as f64 / (b2 - b1) as f64;
    let lin = |x1: f64, x2: f64| fc * (x1 + (x2 - x1) * t);
    let cnt =
        |f: fn(&OpCounts) -> u64| lin(f(&r1.counts) as f64, f(&r2.counts) as f64).round() as u64;
    Ok(json!({
        "median_s": lin(r1.secs, r2.secs),
        "reps": 1,
        "cmult": cnt(|c| c.cmult),
        "mult": cnt(|c| c.mult),
        "rot": cnt(|c| c.rot),
        "conj": cnt(|c| c.conj),
        "key_switch": cnt(|c| c.key_switch),
        "rescale": cnt(|c| c.rescale),
        "depth": r2.depth,
        "log2_max_err": r1.log2_err.max(r2.log2_err),
        "extrapolated": {"classes": c_sub, "cols": [b1, b2], "measured_s": [r1.secs, r2.secs]},
    }))
}

/// A run on `c_sub` of `c` classes (all `b` columns), scaled by `c/c_sub`.
fn scaled_by_classes(r: &Run, c: usize, c_sub: usize, b: usize) -> Value {
    let f = c as f64 / c_sub as f64;
    let mut v = counts_json(&r.counts, f);
    let o = v.as_object_mut().expect("object");
    o.insert("median_s".into(), json!(r.secs * f));
    o.insert("reps".into(), json!(1));
    o.insert("depth".into(), json!(r.depth));
    o.insert("log2_max_err".into(), json!(r.log2_err));
    o.insert(
        "extrapolated".into(),
        json!({"classes": c_sub, "cols": [b], "measured_s": [r.secs]}),
    );
    v
}

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| rng.random::<f64>())
}

#[allow(clippy::too_many_lines)]
fn bench_shape(
    literal: &ParametersLiteral,
    (a, b, c): (usize, usize, usize),
    args: &Args,
    rng: &mut StdRng,
) -> Res<Value> {
    let ctx = Context::new_cpu(literal.clone())?;
    let slots = ctx.params().max_slots();
    if !a.is_power_of_two() || a > slots {
        return Err(format!("a = {a} must be a power of two ≤ {slots}").into());
    }
    let shape = UnitShape::new(a, slots / a)?;
    let n = slots;
    let req = keys::diag_abt_keys(shape, c)
        .union(&keys::diag_atb_keys(shape, c))
        .union(&keys::diag_atb_prot_up_keys(shape, c))
        .union(&keys::col_major_keys(shape))
        .union(&keys::row_major_keys(shape))
        .union(&keys::jin_atb_keys(n));
    let clock = Instant::now();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key()?;
    let ek = kg.gen_evaluation_keys(&sk, &req.to_request())?;
    let keygen_s = clock.elapsed().as_secs_f64();
    let level = ctx.params().max_user_level();
    let me = MatrixEvaluator::new(Arc::new(Evaluator::new(&ctx, Arc::new(ek))));
    let bench = Bench { ctx, sk, me, level };
    let bench = &bench;
    let reps = args.reps;
    let mut algs = BTreeMap::new();
    eprintln!(
        "shape ({a}, {b}, {c}): unit shape ({}, {}), keygen {keygen_s:.1} s",
        shape.s0, shape.s1
    );

    // ---- A·Bᵀ ----
    let (ma, mb) = (random(a, b, rng), random(c, b, rng));
    let want = ma.matmul_bt(&mb)?;
    {
        let ea = bench.enc_block(&ma, BlockLayout::new(a, b, shape)?)?;
        let ew = AbtWeights::encrypt(&bench.ctx, &bench.sk, &mb, shape, level)?;
        let r = timed!(bench, reps, &want, bench.me.diag_abt_prepared(&ea, &ew));
        eprintln!("  DiagABT {:.2} s", r.secs);
        algs.insert("DiagABT", run_json(&r, reps));
        let eb = bench.enc_block(&mb, BlockLayout::vertical(c, b, shape)?)?;
        let r = timed!(bench, reps, &want, bench.me.diag_abt(&ea, &eb));
        eprintln!("  DiagABT_server_prep {:.2} s", r.secs);
        algs.insert("DiagABT_server_prep", run_json(&r, reps));
    }
    let col_major = |cs: usize, bs: usize| -> Res<Run> {
        let (sa, sb) = (ma.top_left(a, bs)?, mb.top_left(cs, bs)?);
        let w = sa.matmul_bt(&sb)?;
        let ea = bench.enc_base(
            &sa,
            BaselinePacking::ColumnMajor {
                rows: a,
                cols: bs,
                shape,
            },
        )?;
        let eb = bench.enc_base(
            &sb,
            BaselinePacking::SegmentReplicated {
                rows: cs,
                cols: bs,
                shape,
            },
        )?;
        Ok(timed!(
            bench,
            if cs < c || bs < b { 1 } else { reps },
            &w,
            bench.me.col_major_abt(&ea, &eb)
        ))
    };
    let jin_abt = |cs: usize, bs: usize| -> Res<Run> {
        let (sa, sb) = (ma.top_left(a, bs)?, mb.top_left(cs, bs)?);
        let w = sa.matmul_bt(&sb)?;
        let ea = bench.enc_base(
            &sa,
            BaselinePacking::Columns {
                rows: a,
                cols: bs,
                chunk: n,
                slots: n,
            },
        )?;
        let eb = bench.enc_base(
            &sb,
            BaselinePacking::ReplicatedEntries {
                rows: cs,
                cols: bs,
                slots: n,
            },
        )?;
        Ok(timed!(
            bench,
            if cs < c || bs < b { 1 } else { reps },
            &w,
            bench.me.jin_abt(&ea, &eb)
        ))
    };
    // --quick: ColMajor is truncated in classes only (its cost is exactly linear in c,
    // and nearly flat in b); Jin's A·Bᵀ (one ciphertext per column of A and per entry
    // of B) also in columns, with a line through two column counts.
    let c_sub = c.min(2);
    let v = if args.quick && c > c_sub {
        scaled_by_classes(&col_major(c_sub, b)?, c, c_sub, b)
    } else {
        run_json(&col_major(c, b)?, reps)
    };
    eprintln!(
        "  ColMajor {:.2} s",
        v["median_s"].as_f64().unwrap_or(f64::NAN)
    );
    algs.insert("ColMajor", v);
    let v = if args.quick && b > 128 {
        extrapolate(c, b, c_sub, 64, 128, &jin_abt)?
    } else if args.quick && c > c_sub {
        scaled_by_classes(&jin_abt(c_sub, b)?, c, c_sub, b)
    } else {
        run_json(&jin_abt(c, b)?, reps)
    };
    eprintln!(
        "  JinABT {:.2} s",
        v["median_s"].as_f64().unwrap_or(f64::NAN)
    );
    algs.insert("JinABT", v);

    // ---- Aᵀ·B ----
    let (ma, mb) = (random(a, c, rng), random(a, b, rng));
    let want = ma.matmul_at(&mb)?;
    {
        let ea = bench.enc_block(&ma, BlockLayout::new(a, c, shape)?)?;
        let eb = bench.enc_block(&mb, BlockLayout::new(a, b, shape)?)?;
        let lhs = AtbLhs::encrypt(&bench.ctx, &bench.sk, &ma, shape, level)?;
        let r = timed!(bench, reps, &want, bench.me.diag_atb_prepared(&lhs, &eb));
        eprintln!("  DiagATB {:.2} s", r.secs);
        algs.insert("DiagATB", run_json(&r, reps));
        let r = timed!(bench, reps, &want, bench.me.diag_atb(&ea, &eb));
        eprintln!("  DiagATB_server_prep {:.2} s", r.secs);
        algs.insert("DiagATB_server_prep", run_json(&r, reps));
        let pr = if args.quick { 1 } else { reps };
        let r = timed!(bench, pr, &want, bench.me.diag_atb_prot_up(&ea, &eb));
        eprintln!("  DiagATB_PRotUp {:.2} s", r.secs);
        algs.insert("DiagATB_PRotUp", run_json(&r, pr));
    }
    let row_major = |cs: usize, bs: usize| -> Res<Run> {
        let (sa, sb) = (ma.top_left(a, cs)?, mb.top_left(a, bs)?);
        let w = sa.matmul_at(&sb)?;
        let ea = bench.enc_base(
            &sa,
            BaselinePacking::ColumnReplicated {
                rows: a,
                cols: cs,
                shape,
            },
        )?;
        let eb = bench.enc_block(&sb, BlockLayout::new(a, bs, shape)?)?;
        Ok(timed!(
            bench,
            if cs < c || bs < b { 1 } else { reps },
            &w,
            bench.me.row_major_atb(&ea, &eb)
        ))
    };
    let jin_atb = |cs: usize, bs: usize| -> Res<Run> {
        let (sa, sb) = (ma.top_left(a, cs)?, mb.top_left(a, bs)?);
        let w = sa.matmul_at(&sb)?;
        let ea = bench.enc_base(
            &sa,
            BaselinePacking::Columns {
                rows: a,
                cols: cs,
                chunk: n,
                slots: n,
            },
        )?;
        let eb = bench.enc_base(
            &sb,
            BaselinePacking::Columns {
                rows: a,
                cols: bs,
                chunk: n,
                slots: n,
            },
        )?;
        Ok(timed!(
            bench,
            if cs < c || bs < b { 1 } else { reps },
            &w,
            bench.me.jin_atb(&ea, &eb)
        ))
    };
    // --quick: RowMajor truncated in classes (exactly linear); Jin's Aᵀ·B in classes
    // and columns (every output entry costs the same: one product summed over all
    // slots), scaled by c·b / (c_sub·b_sub).
    let v = if args.quick && c > c_sub {
        scaled_by_classes(&row_major(c_sub, b)?, c, c_sub, b)
    } else {
        run_json(&row_major(c, b)?, reps)
    };
    eprintln!(
        "  RowMajor {:.2} s",
        v["median_s"].as_f64().unwrap_or(f64::NAN)
    );
    algs.insert("RowMajor", v);
    let b_sub = b.min(8);
    let v = if args.quick && (c > c_sub || b > b_sub) {
        let r = jin_atb(c_sub, b_sub)?;
        let mut v = scaled_by_classes(&r, c * b, c_sub * b_sub, b_sub);
        v["extrapolated"] = json!({"classes": c_sub, "cols": [b_sub], "measured_s": [r.secs]});
        v
    } else {
        run_json(&jin_atb(c, b)?, reps)
    };
    eprintln!(
        "  JinATB {:.2} s",
        v["median_s"].as_f64().unwrap_or(f64::NAN)
    );
    algs.insert("JinATB", v);
    let t = |k: &str| algs[k]["median_s"].as_f64().unwrap_or(f64::NAN);
    let abt_wins = t("DiagABT") < t("ColMajor") && t("DiagABT") < t("JinABT");
    let atb_wins = t("DiagATB") < t("RowMajor") && t("DiagATB") < t("JinATB");
    let abt_prep_wins =
        t("DiagABT_server_prep") < t("ColMajor") && t("DiagABT_server_prep") < t("JinABT");
    let atb_prep_wins =
        t("DiagATB_server_prep") < t("RowMajor") && t("DiagATB_server_prep") < t("JinATB");
    Ok(json!({
        "a": a, "b": b, "c": c, "s0": shape.s0, "s1": shape.s1,
        "padded_classes": padded_classes(c),
        "keygen_s": keygen_s,
        "galois_keys": req.rotations.len() + usize::from(req.conjugation),
        "diag_abt_fastest": abt_wins,
        "diag_atb_fastest": atb_wins,
        "diag_abt_server_prep_fastest": abt_prep_wins,
        "diag_atb_server_prep_fastest": atb_prep_wins,
        "algorithms": algs,
    }))
}

fn markdown(report: &Value) -> String {
    let mut s = String::new();
    s.push_str("| shape (a, b, c) | unit shape | DiagABT | DiagABT (server prep) | ColMajor | JinABT | DiagATB | DiagATB (server prep) | DiagATB_PRotUp | RowMajor | JinATB |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let names = [
        "DiagABT",
        "DiagABT_server_prep",
        "ColMajor",
        "JinABT",
        "DiagATB",
        "DiagATB_server_prep",
        "DiagATB_PRotUp",
        "RowMajor",
        "JinATB",
    ];
    for sh in report["shapes"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| ({}, {}, {}) | ({}, {}) |",
            sh["a"], sh["b"], sh["c"], sh["s0"], sh["s1"]
        ));
        for n in names {
            let v = &sh["algorithms"][n];
            let star = if v["extrapolated"].is_null() { "" } else { "*" };
            s.push_str(&format!(
                " {:.2} s{star} |",
                v["median_s"].as_f64().unwrap_or(f64::NAN)
            ));
        }
        s.push('\n');
    }
    s.push_str("\n`*` extrapolated from truncated runs (see the JSON's `extrapolated`).\n\n");
    s.push_str(
        "| shape | algorithm | Mult | CMult | Rot | conj | key switches | depth | log2 max err |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for sh in report["shapes"].as_array().into_iter().flatten() {
        for n in names {
            let v = &sh["algorithms"][n];
            s.push_str(&format!(
                "| ({}, {}, {}) | {n} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
                sh["a"],
                sh["b"],
                sh["c"],
                v["mult"],
                v["cmult"],
                v["rot"],
                v["conj"],
                v["key_switch"],
                v["depth"],
                v["log2_max_err"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    s
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{model}, {threads} hardware threads")
}

/// Runs the benchmark.
///
/// # Errors
/// Unknown preset, bad shapes, scheme errors, or an unwritable doc file.
pub fn run(args: &Args) -> Res<()> {
    let (name, literal) = preset(&args.preset)?;
    let shapes: Vec<(usize, usize, usize)> = if args.shapes.is_empty() {
        HETAL_SHAPES.to_vec()
    } else {
        args.shapes
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_, _>>()?
    };
    let mut rng = StdRng::seed_from_u64(2023);
    let mut out = Vec::new();
    for &sh in &shapes {
        out.push(bench_shape(&literal, sh, args, &mut rng)?);
    }
    let ctx = Context::<CpuBackend>::new_cpu(literal)?;
    let command = format!(
        "cargo xtask {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let report = json!({
        "preset": name,
        "slots": ctx.params().max_slots(),
        "level": ctx.params().max_user_level(),
        "machine": machine(),
        "command": command,
        "quick": args.quick,
        "shapes": out,
    });
    let table = markdown(&report);
    if !args.no_doc {
        let doc = format!(
            "# Encrypted matrix multiplication: DiagABT/DiagATB vs baselines\n\n\
             What: HETAL's five shapes (Table 2), `A·Bᵀ` (`A` a×b, `B` c×b) and `Aᵀ·B` (`A` a×c, `B` a×b), \
             inputs uniform in [0, 1), encrypted at level {} of `{}` ({} slots), unit shape (a, slots/a), \
             CPU-SIMD backend. Median wall-clock seconds; operation counts from the evaluator's counters; \
             depth = levels consumed; error = log2 of the largest absolute error against float64.\n\n\
             Where: {}.\n\nCommand:\n\n```sh\n{}\n```\n\n{}\n\nRaw JSON: `{} --json`.\n",
            report["level"],
            name,
            report["slots"],
            report["machine"].as_str().unwrap_or(""),
            command,
            table,
            command
        );
        std::fs::write("docs/results/matmul.md", doc)?;
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{table}");
    }
    Ok(())
}
