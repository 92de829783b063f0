//! `cargo xtask bench-bootstrap`: key generation, timing (per stage) and precision of the
//! CKKS bootstrapping on a bootstrappable preset, real inputs uniform in [-a, a]
//! (`--amplitude a`, default 1).
//!
//! One JSON object per slot count with `--json` (one line each): preset, slots, keygen
//! time and evaluation-key size, median bootstrap time over `--reps` timed runs after
//! `--warmup` untimed ones (default 1) and the per-stage split of the
//! median run, the process's CPU time per bootstrap (`cpu_user_s`, `cpu_sys_s`: the
//! system time holds the kernel's zeroing of freshly faulted pages and idle threads'
//! yielding) and minor page faults per bootstrap (`page_faults`), levels in/out, usable levels after a refresh, `log2` of
//! the maximum and mean slot error, and the process's peak resident memory (`VmHWM`). `--chain k`
//! additionally refreshes the same ciphertext `k` times in a row and reports, after each
//! refresh, the error against the original message and the error that refresh added
//! (against the previous decryption): a drift would show as growing added errors.
//! `--meta-log-gain k` times two-pass refreshes (Meta-BTS) instead of single ones.

use ckks::circuits::DiagonalStorage;
use ckks::circuits::bootstrapping::presets::BootstrapPreset;
use ckks::circuits::{BootstrapOrder, Bootstrapper, StageTimings};
use ckks::{Complex64, Context, Evaluator, KeyGenerator, KeyStorage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `bench-bootstrap`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object per slot count instead of a table.
    #[arg(long)]
    json: bool,
    /// Preset: `n16` (`n16_logqp1755_dense_boot`, N = 2^16, 128-bit per its secret's
    /// table; the training's), `n16-s2c` (`n16_logqp1732_dense_s2c`, SlotsToCoeffs
    /// first, full slots only), `n16-precise` (`n16_logqp1759_dense_precise`, Δ = 2^44,
    /// for two-pass refreshes with `--meta-log-gain`) or `insecure-n12` (tests); the
    /// names are `ckks::circuits::bootstrapping::presets::BootstrapPreset`'s.
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Slot counts to bootstrap (comma-separated); default: full slots N/2.
    #[arg(long, value_delimiter = ',')]
    slots: Vec<usize>,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Untimed refreshes before the timed ones: the first refreshes of a process fault in
    /// the memory the allocator then keeps and reuses (docs/results/bootstrap.md), which
    /// a server refreshing ciphertexts all session does once. `--warmup 0` times them.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Refresh one ciphertext this many times in a row and report the error after each.
    #[arg(long, default_value_t = 0)]
    chain: usize,
    /// Stage order (default: the preset's): `cts-first` (ModRaise, CoeffsToSlots,
    /// EvalMod, SlotsToCoeffs) or `s2c-first` (SlotsToCoeffs at the bottom first, as
    /// HEaaN and OpenFHE; full slots only).
    #[arg(long, value_enum)]
    order: Option<Order>,
    /// Inputs uniform in `[-a, a]`, `0 < a ≤ 1` (errors stay absolute): how the error
    /// scales with the message tells EvalMod's `sin(2πx)/2π ≈ x` distortion (cubic in
    /// the message) from noise (independent of it).
    #[arg(long, default_value_t = 1.0)]
    amplitude: f64,
    /// Where the CoeffsToSlots/SlotsToCoeffs diagonals live: `auto` (`extended` on
    /// sparse slots, `encoded` on full slots: `DiagonalStorage::Auto`), `encoded`
    /// plaintexts, `extended` over `Q ∪ P` (double hoisting: faster, more memory) or
    /// their `coefficients`, encoded when used (a twentieth of the memory). The JSON's
    /// `"diagonals"` names the storage used (`auto` resolved).
    #[arg(long, value_enum, default_value_t = DiagonalStorage::Auto)]
    diagonals: DiagonalStorage,
    /// How the evaluation keys keep their uniform parts `a_j`: `seeded` (the default:
    /// regenerated from their seed in each key switch, the relinearization key's kept:
    /// about half the keys' memory) or `expanded` (stored).
    #[arg(long, value_enum, default_value_t = KeyStorage::default())]
    keys: KeyStorage,
    /// EvalMod's polynomial degree (default: the preset's); an even degree `d` costs
    /// `⌈log2(d+1)⌉` levels, so the preset's bootstrapping primes fix how far it can go.
    #[arg(long)]
    eval_mod_degree: Option<usize>,
    /// EvalMod's number of double-angle steps (default: the preset's; each one level).
    #[arg(long)]
    double_angles: Option<u32>,
    /// Two-pass refreshes (Meta-BTS, `Bootstrapper::bootstrap_meta`) with the first
    /// pass's error amplified by `2^k` for the second, `1 ≤ k ≤ 20` (16 fits N = 2^16):
    /// every timed refresh and the chain run both passes and leave one level less.
    #[arg(long, value_name = "K")]
    meta_log_gain: Option<u32>,
    /// `s2c-first` order: SlotsToCoeffs shrinks the message by `2^-k` so that EvalMod's
    /// sine stays close to linear (default: the preset's;
    /// `BootstrappingConfig::s2c_shrink_log2`).
    #[arg(long, value_name = "K")]
    s2c_shrink_log2: Option<u32>,
}

/// `--order`: the stage order of `BootstrapOrder`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `BootstrapOrder::CoeffsToSlotsFirst`.
    CtsFirst,
    /// `BootstrapOrder::SlotsToCoeffsFirst`.
    S2cFirst,
}

/// The command-line name of an option's value (`--diagonals`, `--keys`), as the JSON
/// reports print it.
pub fn value_name<T: clap::ValueEnum + std::fmt::Debug>(v: T) -> String {
    v.to_possible_value()
        .map_or_else(|| format!("{v:?}"), |p| p.get_name().to_string())
}

fn errors(got: &[Complex64], want: &[Complex64]) -> (f64, f64) {
    let e: Vec<f64> = got.iter().zip(want).map(|(a, b)| (a - b).norm()).collect();
    let max = e.iter().copied().fold(0.0f64, f64::max);
    let mean = e.iter().sum::<f64>() / e.len() as f64;
    (max.log2(), mean.log2())
}

/// Runs the benchmark.
///
/// # Errors
/// Unknown preset, invalid slot count, or any scheme error.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let preset = BootstrapPreset::from_name(&args.preset)?;
    let name = preset.id();
    let (literal, mut config) = preset.parameters();
    if !(args.amplitude > 0.0 && args.amplitude <= 1.0) {
        return Err(format!("--amplitude {} is not in (0, 1]", args.amplitude).into());
    }
    if let Some(d) = args.eval_mod_degree {
        config.sine_degree = d;
    }
    if let Some(r) = args.double_angles {
        config.double_angle = r;
    }
    if let Some(k) = args.s2c_shrink_log2 {
        config.s2c_shrink_log2 = k;
    }
    match args.order {
        Some(Order::CtsFirst) => config.order = BootstrapOrder::CoeffsToSlotsFirst,
        Some(Order::S2cFirst) => config.order = BootstrapOrder::SlotsToCoeffsFirst,
        None => {}
    }
    let ctx = Context::new_cpu(literal)?;
    let params = ctx.params().clone();
    let slot_counts = if args.slots.is_empty() {
        vec![params.max_slots()]
    } else {
        args.slots.clone()
    };
    for &slots in &slot_counts {
        let clock = Instant::now();
        let mut kg = KeyGenerator::new(&ctx).with_key_storage(args.keys);
        let sk = kg.gen_secret_key()?;
        let request = config.key_request(&params, slots)?;
        let mut keys = kg.gen_evaluation_keys(&sk, &request)?;
        // As a server would keep them (seeded: the relinearization key expanded).
        keys.set_key_storage(&ctx, args.keys)?;
        let keygen_s = clock.elapsed().as_secs_f64();
        let keys_bytes = keys.memory_bytes(&params);
        let num_keys = keys.num_keys();
        let eval = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
        let clock = Instant::now();
        let bt = Bootstrapper::with_options(
            Arc::clone(&eval),
            config.clone(),
            slots,
            ckks::circuits::BootstrapperOptions {
                diagonals: args.diagonals,
                ..Default::default()
            },
        )?;
        let setup_s = clock.elapsed().as_secs_f64();

        let mut rng = StdRng::seed_from_u64(slots as u64);
        let z: Vec<Complex64> = (0..slots)
            .map(|_| Complex64::new(args.amplitude * rng.random_range(-1.0..1.0), 0.0))
            .collect();
        // The lowest level the order accepts: 0, or the SlotsToCoeffs levels.
        let level_in = bt.input_level();
        let scale_in = params.scale_at(level_in)?;
        let ct = sk.encrypt(&ctx.encode_complex(&z, level_in, scale_in)?)?;
        for _ in 0..args.warmup {
            match args.meta_log_gain {
                Some(g) => bt.bootstrap_meta(&ct, g)?,
                None => bt.bootstrap(&ct)?,
            };
        }
        let mut runs: Vec<(f64, StageTimings)> = Vec::new();
        let mut out = None;
        let (user0, sys0, faults0) = crate::cpu_usage();
        let counts0 = eval.op_counts();
        for _ in 0..args.reps.max(1) {
            let clock = Instant::now();
            let (o, t) = match args.meta_log_gain {
                Some(g) => bt.bootstrap_meta_timed(&ct, g)?,
                None => bt.bootstrap_timed(&ct)?,
            };
            runs.push((clock.elapsed().as_secs_f64(), t));
            out = Some(o);
        }
        let (user1, sys1, faults1) = crate::cpu_usage();
        // Every repetition runs the same circuit: the counts of one.
        let all = eval.op_counts() - counts0;
        let one = |c: u64| c / args.reps.max(1) as u64;
        let op_counts = json!({
            "key_switch": one(all.key_switch),
            "rot": one(all.rot),
            "conj": one(all.conj),
            "mult": one(all.mult),
            "cmult": one(all.cmult),
            "rescale": one(all.rescale),
        });
        let reps = args.reps.max(1) as f64;
        let (cpu_user_s, cpu_sys_s) = ((user1 - user0) / reps, (sys1 - sys0) / reps);
        let page_faults = (faults1 - faults0) as f64 / reps;
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (median_s, stages) = runs[runs.len() / 2];
        let out = out.expect("at least one run");
        let got = ctx.decode_complex(&sk.decrypt(&out)?)?;
        let (max_err, mean_err) = errors(&got, &z);
        // Chain: error against the original message after each refresh, and the error
        // each refresh adds (against the previous refresh's decryption).
        let mut chain = Vec::new();
        let mut chain_added = Vec::new();
        if args.chain > 0 {
            let mut c = ct.clone();
            let mut previous = z.clone();
            for _ in 0..args.chain {
                c = match args.meta_log_gain {
                    Some(g) => bt.bootstrap_meta(&c, g)?,
                    None => bt.bootstrap(&c)?,
                };
                let got = ctx.decode_complex(&sk.decrypt(&c)?)?;
                chain.push(errors(&got, &z).0);
                chain_added.push(errors(&got, &previous).0);
                previous = got;
            }
        }
        let level_out = match args.meta_log_gain {
            Some(_) => bt.meta_output_level(),
            None => bt.output_level(),
        };
        let report = json!({
            "preset": name,
            "slots": slots,
            "keygen_s": keygen_s,
            "keys_bytes": keys_bytes,
            "num_keys": num_keys,
            "setup_s": setup_s,
            "median_s": median_s,
            "reps": args.reps.max(1),
            "warmup": args.warmup,
            "cpu_user_s": cpu_user_s,
            "cpu_sys_s": cpu_sys_s,
            "page_faults": page_faults,
            "op_counts": op_counts,
            "stages_s": {
                "mod_raise": stages.mod_raise,
                "coeffs_to_slots": stages.coeffs_to_slots,
                "eval_mod": stages.eval_mod,
                "slots_to_coeffs": stages.slots_to_coeffs,
            },
            "order": value_name(match config.order {
                BootstrapOrder::CoeffsToSlotsFirst => Order::CtsFirst,
                BootstrapOrder::SlotsToCoeffsFirst => Order::S2cFirst,
            }),
            "meta_log_gain": args.meta_log_gain,
            "eval_mod": {
                "k": config.k,
                "degree": config.sine_degree,
                "double_angles": config.double_angle,
                "depth": config.eval_mod_depth()?,
                "approximation_log2": config.eval_mod_approximation_error()?.log2(),
            },
            "s2c_shrink_log2": config.s2c_shrink_log2,
            "diagonals": value_name(bt.diagonal_storage()),
            "keys": value_name(args.keys),
            "diagonal_bytes": bt.diagonal_bytes(),
            "level_in": level_in,
            "level_out": level_out,
            "usable_levels_after": level_out - level_in,
            "log2_max_err": max_err,
            "log2_mean_err": mean_err,
            "amplitude": args.amplitude,
            "chain_log2_max_err": chain,
            "chain_added_log2_max_err": chain_added,
            "failure_log2": config.failure_log2(&params, slots),
            "log_qp": params.log_qp(),
            "secret": ckks::security::secret_label(params.literal().secret),
            "log_qp_bound": params.log_qp_bound_128(),
            "encapsulation_log_q": config.encapsulation.map(|_| params.encapsulation_log_q()),
            "encapsulation_hamming_weight": config.encapsulation,
            "peak_rss_bytes": crate::peak_rss_bytes(),
            "threads": rayon::current_num_threads(),
            "machine": crate::machine_report(),
        });
        if args.json {
            println!("{report}");
        } else {
            println!(
                "{name}, {slots} slots: keygen {keygen_s:.1} s ({num_keys} keys, {:.2} GiB), setup {setup_s:.1} s",
                keys_bytes as f64 / (1u64 << 30) as f64
            );
            println!(
                "  bootstrap median {median_s:.2} s over {} (ModRaise {:.3}, CtS {:.2}, EvalMod {:.2}, StC {:.2}); level {level_in} -> {level_out}",
                args.reps.max(1),
                stages.mod_raise,
                stages.coeffs_to_slots,
                stages.eval_mod,
                stages.slots_to_coeffs
            );
            println!(
                "  CPU per bootstrap: user {cpu_user_s:.2} s, system {cpu_sys_s:.2} s, {page_faults:.0} page faults"
            );
            println!("  error: max 2^{max_err:.1}, mean 2^{mean_err:.1}");
            println!(
                "  log QP {:.1} (bound {:?} for a {} secret), encapsulation modulus {:.1} bits, failure 2^{:.1}",
                params.log_qp(),
                params.log_qp_bound_128(),
                ckks::security::secret_label(params.literal().secret),
                params.encapsulation_log_q(),
                config.failure_log2(&params, slots)
            );
            if !chain.is_empty() {
                println!("  chain (vs message): {chain:.1?}");
                println!("  chain (added per refresh): {chain_added:.1?}");
            }
        }
    }
    Ok(())
}
