//! `cargo xtask bench-ckks`: timings and precision of the CKKS operations on one preset.
//!
//! Every operation runs `--warmup` times untimed (the first runs of a process pay for the
//! first touch of memory the allocator maps; a steady computation does not), then is
//! timed `--reps` times (median reported) at each level of `--levels`
//! (default: the top level `L`, the top user level `U` and `U/2`), and its output is
//! decrypted and compared with a float64 reference on uniform inputs in [-1, 1]
//! (`log2_max_err`, the base-2 log of the largest slot error).

use ckks::he_math::CpuBackend;
use ckks::{
    Ciphertext, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, SecretKey,
    presets,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `bench-ckks`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Preset: `n16` (the FGb-like N = 2^16 preset), `n15`, `n14` (depth 3, for
    /// CryptoTL's forward pass), the insecure test presets `insecure-n10`,
    /// `insecure-n12`, `insecure-n13` (`ckks::presets::SchemePreset`), or `NAME-boot`,
    /// the chain of the bootstrapping preset `NAME` (`n16-boot`: the training's).
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Repetitions per operation (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed runs of each operation before the timed ones: the first runs of a process
    /// fault in the memory its outputs get (kernel page clearing), which a computation in
    /// its steady state reuses. `--warmup 0` times them too.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Levels to measure at (comma-separated); default `L, U, U/2`.
    #[arg(long, value_delimiter = ',')]
    levels: Vec<usize>,
    /// How the evaluation keys keep their uniform parts: `seeded` (the default:
    /// regenerated in each key switch; the relinearization key stays expanded, so
    /// `rotate`, `conjugate` and `hoisted_rotate_8` show the difference) or `expanded`.
    #[arg(long, value_enum, default_value_t = ckks::KeyStorage::default())]
    keys: ckks::KeyStorage,
}

/// The parameters of `--preset`: a scheme preset (`ckks::presets::SchemePreset`), or
/// `NAME-boot` for the chain of the bootstrapping preset `NAME`
/// (`BootstrapPreset`), with the parameter set's own name.
fn preset(name: &str) -> Result<(&'static str, ckks::ParametersLiteral), ckks::CkksError> {
    use ckks::circuits::bootstrapping::presets::BootstrapPreset;
    if let Some(boot) = name.strip_suffix("-boot") {
        let p = BootstrapPreset::from_name(boot)?;
        return Ok((p.id(), p.parameters().0));
    }
    let p = presets::SchemePreset::from_name(name)?;
    Ok((p.id(), p.parameters()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>((warmup, reps): (usize, usize), mut f: impl FnMut() -> T) -> (f64, T) {
    for _ in 0..warmup {
        drop(f());
    }
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    (median(times), last.expect("at least one repetition"))
}

fn log2_err(got: &[Complex64], want: &[Complex64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0f64, f64::max)
        .log2()
}

struct Bench {
    ctx: Arc<Context<CpuBackend>>,
    sk: SecretKey<CpuBackend>,
    eval: Evaluator<CpuBackend>,
    /// Untimed then timed repetitions.
    reps: (usize, usize),
}

impl Bench {
    fn decrypt(&self, ct: &Ciphertext<CpuBackend>) -> Vec<Complex64> {
        let pt = self.sk.decrypt(ct).expect("decrypt");
        self.ctx.decode_complex(&pt).expect("decode")
    }

    fn entry(&self, level: usize, secs: f64, err: f64) -> Value {
        json!({"level": level, "limbs": level + 1, "median_s": secs, "log2_max_err": err})
    }
}

/// Runs the benchmark.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let (name, literal) = preset(&args.preset)?;
    let ctx = Context::new_cpu(literal)?;
    let p = ctx.params().clone();
    let levels: Vec<usize> = if args.levels.is_empty() {
        let mut l = vec![p.max_level(), p.max_user_level(), p.max_user_level() / 2];
        l.dedup();
        l
    } else {
        args.levels.clone()
    };
    if let Some(&bad) = levels.iter().find(|&&l| l == 0 || l > p.max_level()) {
        return Err(format!("level {bad} is not in 1..={}", p.max_level()).into());
    }
    let slots = p.max_slots();
    let hoisted: Vec<i64> = (1..=8).collect();

    let t0 = Instant::now();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key()?;
    let pk = kg.gen_public_key(&sk)?;
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: hoisted.clone(),
        conjugation: true,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let mut keys = kg.gen_evaluation_keys(&sk, &req)?;
    keys.set_key_storage(&ctx, args.keys)?;
    let keygen_s = t0.elapsed().as_secs_f64();
    let b = Bench {
        eval: Evaluator::new(&ctx, Arc::new(keys)),
        ctx: ctx.clone(),
        sk,
        reps: (args.warmup, args.reps),
    };

    let mut rng = StdRng::seed_from_u64(2023);
    let mut uniform = || -> Vec<f64> { (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let mut ops: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for &level in &levels {
        let scale = p.scale_at(level)?;
        let (x, y) = (uniform(), uniform());
        let zx: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        let zy: Vec<Complex64> = y.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        let (t, pt) = time(b.reps, || ctx.encode(&x, level, scale).expect("encode"));
        let dec = ctx.decode_complex(&pt)?;
        ops.entry("encode")
            .or_default()
            .push(b.entry(level, t, log2_err(&dec, &zx)));
        let (t, cx) = time(b.reps, || b.sk.encrypt(&pt).expect("encrypt"));
        let err = log2_err(&b.decrypt(&cx), &zx);
        ops.entry("encrypt")
            .or_default()
            .push(b.entry(level, t, err));
        let (t, cpk) = time(b.reps, || pk.encrypt(&pt).expect("encrypt"));
        let err = log2_err(&b.decrypt(&cpk), &zx);
        ops.entry("encrypt_pk")
            .or_default()
            .push(b.entry(level, t, err));
        let (t, dpt) = time(b.reps, || b.sk.decrypt(&cx).expect("decrypt"));
        let err = log2_err(&ctx.decode_complex(&dpt)?, &zx);
        ops.entry("decrypt")
            .or_default()
            .push(b.entry(level, t, err));
        let (t, _) = time(b.reps, || ctx.decode_complex(&dpt).expect("decode"));
        ops.entry("decode")
            .or_default()
            .push(b.entry(level, t, err));
        let cy = b.sk.encrypt(&ctx.encode(&y, level, scale)?)?;

        let want: Vec<Complex64> = zx.iter().zip(&zy).map(|(a, c)| a + c).collect();
        let (t, r) = time(b.reps, || b.eval.add(&cx, &cy).expect("add"));
        let err = log2_err(&b.decrypt(&r), &want);
        ops.entry("add").or_default().push(b.entry(level, t, err));

        let c = 0.7312;
        let want: Vec<Complex64> = zx.iter().map(|a| a * c).collect();
        let (t, r) = time(b.reps, || b.eval.mul_const(&cx, c).expect("cmult"));
        let err = log2_err(&b.decrypt(&b.eval.rescale(&r)?), &want);
        ops.entry("cmult").or_default().push(b.entry(level, t, err));

        let want: Vec<Complex64> = zx.iter().zip(&zy).map(|(a, c)| a * c).collect();
        let (t, r) = time(b.reps, || b.eval.mul_relin_rescale(&cx, &cy).expect("mult"));
        let err = log2_err(&b.decrypt(&r), &want);
        ops.entry("mult").or_default().push(b.entry(level, t, err));

        let m = b.eval.mul_relin(&cx, &cy)?;
        let (t, r) = time(b.reps, || b.eval.rescale(&m).expect("rescale"));
        let err = log2_err(&b.decrypt(&r), &want);
        ops.entry("rescale")
            .or_default()
            .push(b.entry(level, t, err));

        let rot = |k: i64| -> Vec<Complex64> {
            (0..slots)
                .map(|j| zx[(j as i64 + k).rem_euclid(slots as i64) as usize])
                .collect()
        };
        let (t, r) = time(b.reps, || b.eval.rotate(&cx, 1).expect("rotate"));
        let err = log2_err(&b.decrypt(&r), &rot(1));
        ops.entry("rotate")
            .or_default()
            .push(b.entry(level, t, err));

        let (t, r) = time(b.reps, || b.eval.conjugate(&cx).expect("conjugate"));
        let want: Vec<Complex64> = zx.iter().map(|a| a.conj()).collect();
        let err = log2_err(&b.decrypt(&r), &want);
        ops.entry("conjugate")
            .or_default()
            .push(b.entry(level, t, err));

        let (t, rs) = time(b.reps, || {
            b.eval.rotate_hoisted(&cx, &hoisted).expect("hoisted")
        });
        let err = rs
            .iter()
            .zip(&hoisted)
            .map(|(r, &k)| log2_err(&b.decrypt(r), &rot(k)))
            .fold(f64::NEG_INFINITY, f64::max);
        ops.entry("hoisted_rotate_8")
            .or_default()
            .push(b.entry(level, t, err));
    }

    let out = json!({
        "preset": name,
        "n": p.n(),
        "log_qp": p.log_qp(),
        "dnum": p.dnum(),
        "threads": rayon_threads(),
        "machine": crate::machine_report(),
        "reps": args.reps,
        "warmup": args.warmup,
        "keygen_s": keygen_s,
        "keygen_keys": format!("sk, pk, relin, {} rotations, conjugation", hoisted.len()),
        "keys": crate::bench_bootstrap::value_name(args.keys),
        "ops": ops,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "preset {name}: N = {}, log QP = {:.0}, dnum = {}, keygen {:.2} s",
            p.n(),
            p.log_qp(),
            p.dnum(),
            keygen_s
        );
        println!(
            "{:<18} {:>5} {:>5} {:>12} {:>12}",
            "op", "level", "limbs", "median", "log2 err"
        );
        for (op, entries) in out["ops"].as_object().expect("object") {
            for e in entries.as_array().expect("array") {
                println!(
                    "{:<18} {:>5} {:>5} {:>9.3} ms {:>12.1}",
                    op,
                    e["level"],
                    e["limbs"],
                    e["median_s"].as_f64().unwrap_or(f64::NAN) * 1e3,
                    e["log2_max_err"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
