//! Whole bootstraps with the DFT diagonals kept each way ([`DiagonalStorage`]), measured
//! in one process: one key set, one [`Bootstrapper`] per storage, bootstraps alternating
//! between them so that the ratios survive a host whose speed drifts. Prints the median
//! time and stage split of each (the first round, which faults in fresh memory, is left
//! out), its largest error against the input, and its diagonals' bytes. Preset
//! `n16_logqp1755_dense_boot`. Run:
//! `cargo run --release -p ckks --example diagonal_storage [slots] [rounds] [storages]`
//! with storages a comma-separated list of `encoded`, `extended`, `coefficients`
//! (default: `8192 6 encoded,extended`; docs/results/bootstrap.md).

use ckks::circuits::bootstrapping::presets;
use ckks::circuits::{Bootstrapper, BootstrapperOptions, DiagonalStorage};
use ckks::{Complex64, Context, Evaluator, KeyGenerator, KeyStorage};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    he_math::allocator::configure();
    let mut args = std::env::args().skip(1);
    let slots: usize = args.next().map_or(Ok(8192), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(6), |s| s.parse())?;
    let storages = args
        .next()
        .unwrap_or_else(|| "encoded,extended".into())
        .split(',')
        .map(|s| match s {
            "encoded" => Ok(DiagonalStorage::Encoded),
            "extended" => Ok(DiagonalStorage::Extended),
            "coefficients" => Ok(DiagonalStorage::Coefficients),
            other => Err(format!("unknown storage {other:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (literal, config) = presets::n16_logqp1755_dense_boot();
    let ctx = Context::new_cpu(literal)?;
    let params = ctx.params().clone();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key()?;
    let mut keys = kg.gen_evaluation_keys(&sk, &config.key_request(&params, slots)?)?;
    keys.set_key_storage(&ctx, KeyStorage::Seeded)?;
    let eval = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
    let bts = storages
        .iter()
        .map(|&diagonals| {
            let options = BootstrapperOptions {
                diagonals,
                ..Default::default()
            };
            Bootstrapper::with_options(eval.clone(), config.clone(), slots, options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let z: Vec<Complex64> = (0..slots)
        .map(|k| Complex64::new(((k * 37) % 101) as f64 / 50.0 - 1.0, 0.0))
        .collect();
    let ct = sk.encrypt(&ctx.encode_complex(&z, 0, params.scale_at(0)?)?)?;
    let mut times = vec![Vec::new(); bts.len()];
    let mut stages = vec![Vec::new(); bts.len()];
    let mut errs = vec![0.0f64; bts.len()];
    for round in 0..rounds.max(2) {
        for (i, bt) in bts.iter().enumerate() {
            let clock = Instant::now();
            let (out, s) = bt.bootstrap_timed(&ct)?;
            let t = clock.elapsed().as_secs_f64();
            let got = ctx.decode_complex(&sk.decrypt(&out)?)?;
            let e = got.iter().zip(&z).map(|(a, b)| (a - b).norm());
            errs[i] = e.fold(errs[i], f64::max);
            if round > 0 {
                times[i].push(t);
                stages[i].push([
                    s.mod_raise,
                    s.coeffs_to_slots,
                    s.eval_mod,
                    s.slots_to_coeffs,
                ]);
            }
        }
    }
    let base = median(times[0].clone());
    println!("{slots} slots, {} rounds", rounds.max(2) - 1);
    for (i, storage) in storages.iter().enumerate() {
        let m = median(times[i].clone());
        let st: Vec<f64> = (0..4)
            .map(|k| median(stages[i].iter().map(|s| s[k]).collect()))
            .collect();
        println!(
            "  {storage:?}: median {m:.3} s, ratio {:.3} (ModRaise {:.2}, CtS {:.2}, EvalMod \
             {:.2}, StC {:.2} s), max error 2^{:.2}, diagonals {:.2} GB",
            m / base,
            st[0],
            st[1],
            st[2],
            st[3],
            errs[i].log2(),
            bts[i].diagonal_bytes() as f64 / 1e9
        );
    }
    Ok(())
}
