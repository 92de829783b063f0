//! `cargo xtask bench-ntt`: medians of repeated single-limb transforms at N = 2^16.

use clap::Args as ClapArgs;
use he_math::primes::ntt_primes;
use he_math::{Csprng, Modulus, NttEngine, NttPlan, simd};
use serde::Serialize;
use std::time::Instant;

/// Options of `bench-ntt`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// log2 of the ring degree N.
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 101)]
    reps: usize,
    /// Also time the scalar reference NTT of this crate.
    #[arg(long)]
    with_reference: bool,
}

#[derive(Serialize)]
struct Row {
    engine: &'static str,
    bits: u32,
    modulus: u64,
    forward_us: f64,
    inverse_us: f64,
    pointwise_mul_us: f64,
}

#[derive(Serialize)]
struct Report {
    n: usize,
    reps: usize,
    ifma: bool,
    pointwise_kernel: &'static str,
    results: Vec<Row>,
}

fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..reps.div_ceil(10).max(3) {
        f();
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2] * 10.0).round() / 10.0
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// If a plan cannot be built for the requested size.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let n = 1usize << args.log_n;
    let mut engines: Vec<NttEngine> = NttEngine::available()
        .into_iter()
        .filter(|e| *e != NttEngine::Reference)
        .collect();
    if args.with_reference {
        engines.push(NttEngine::Reference);
    }
    let mut rng = Csprng::from_seed([9; 32]);
    let mut results = Vec::new();
    for engine in engines {
        for bits in [42u32, 50, 60] {
            let q = ntt_primes(bits, n, 1, &[])?[0];
            let plan = NttPlan::with_engine(n, q, engine)?;
            let m = Modulus::new(q)?;
            let mut a = vec![0u64; n];
            let mut b = vec![0u64; n];
            rng.uniform_mod(&m, &mut a);
            rng.uniform_mod(&m, &mut b);
            let forward_us = median_us(args.reps, || plan.forward(std::hint::black_box(&mut a)));
            let inverse_us = median_us(args.reps, || plan.inverse(std::hint::black_box(&mut a)));
            let pointwise_mul_us = median_us(args.reps, || {
                simd::mul_assign(&m, std::hint::black_box(&mut a), &b)
            });
            results.push(Row {
                engine: engine.name(),
                bits,
                modulus: q,
                forward_us,
                inverse_us,
                pointwise_mul_us,
            });
        }
    }
    let report = Report {
        n,
        reps: args.reps,
        ifma: simd::has_ifma(),
        pointwise_kernel: if simd::has_ifma() {
            "avx512-ifma (q < 2^50), scalar Barrett otherwise"
        } else {
            "scalar Barrett"
        },
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "N = {n}, median of {} runs, one limb, microseconds",
            args.reps
        );
        println!(
            "{:<14} {:>5} {:>11} {:>11} {:>13}",
            "engine", "bits", "forward", "inverse", "pointwise mul"
        );
        for r in &report.results {
            println!(
                "{:<14} {:>5} {:>11.1} {:>11.1} {:>13.1}",
                r.engine, r.bits, r.forward_us, r.inverse_us, r.pointwise_mul_us
            );
        }
    }
    Ok(())
}
