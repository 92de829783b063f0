//! BSGS split and hoisting of the homomorphic DFT's matrices, measured in one process:
//! each CoeffsToSlots matrix of the N = 2^16 bootstrapping preset
//! `n16_logqp1755_dense_boot` at its level (the top three), for full slots and for 2^13
//! slots, evaluated alternately with the split [`ckks::LinearTransform::baby_step`]
//! chooses and the spans half, twice and four times as wide, each with single hoisting
//! (diagonals over `Q_ℓ`, [`DiagonalStorage::Encoded`]) and with double hoisting (over
//! `Q_ℓ ∪ P`, [`DiagonalStorage::Extended`]). Alternating in one process keeps the ratios
//! meaningful on a host whose speed drifts; every variant's output is decrypted and
//! compared with the plaintext map (`log2` of the largest error). Run:
//! `cargo run --release -p ckks --example bsgs_split [reps] [matrices]` (`matrices`: how
//! many CoeffsToSlots matrices from the first, default 1; docs/results/bootstrap.md).

use ckks::circuits::bootstrapping::presets;
use ckks::circuits::{DiagonalStorage, LinearTransform, dft};
use ckks::{Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator};
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
    let reps: usize = std::env::args().nth(1).map_or(Ok(7), |s| s.parse())?;
    let matrices: usize = std::env::args().nth(2).map_or(Ok(1), |s| s.parse())?;
    let ctx = Context::new_cpu(presets::n16_logqp1755_dense_boot().0)?;
    let p = ctx.params().clone();
    for (slots, index) in [p.max_slots(), 1 << 13]
        .into_iter()
        .flat_map(|s| (0..matrices.min(3)).map(move |i| (s, i)))
    {
        let level = p.max_level() - index;
        let (s_in, s_out) = (p.scale_at(level)?, p.scale_at(level - 1)?);
        let mut m = dft::coeffs_to_slots_factors(slots, 3)?.remove(index);
        let work = if slots < p.max_slots() {
            2 * slots
        } else {
            slots
        };
        m = m.lifted(work)?;
        let chosen = m.baby_step();
        let splits: Vec<LinearTransform> = [chosen, chosen / 2, 2 * chosen, 4 * chosen]
            .into_iter()
            .filter(|&n1| n1 >= 1 && n1 <= work)
            .map(|n1| m.clone().with_baby_step(n1))
            .collect::<Result<_, _>>()?;
        let mut rotations: Vec<i64> = splits.iter().flat_map(LinearTransform::rotations).collect();
        rotations.sort_unstable();
        rotations.dedup();
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key()?;
        let req = EvaluationKeyRequest {
            relinearization: false,
            rotations,
            conjugation: false,
            encapsulation: None,
            rotations_up_to: Vec::new(),
        };
        let ev = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req)?));
        let x: Vec<Complex64> = (0..work)
            .map(|k| Complex64::new(((k * 37) % 101) as f64 / 101.0 - 0.5, 0.0))
            .collect();
        let want = m.apply(&x)?;
        let ct = sk.encrypt(&ctx.encode_complex(&x, level, s_in)?)?;
        let mut variants = Vec::new();
        for t in &splits {
            for storage in [DiagonalStorage::Encoded, DiagonalStorage::Extended] {
                variants.push((
                    t,
                    storage,
                    t.encode_with(&ctx, level, s_in, s_out, storage)?,
                ));
            }
        }
        let mut times = vec![Vec::new(); variants.len()];
        let mut errs = vec![0.0f64; variants.len()];
        for _ in 0..reps {
            for (i, (_, _, e)) in variants.iter().enumerate() {
                let t = Instant::now();
                let out = std::hint::black_box(ev.linear_transform(&ct, e)?);
                times[i].push(t.elapsed().as_secs_f64());
                let got = ctx.decode_complex(&sk.decrypt(&out)?)?;
                errs[i] = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).norm())
                    .fold(errs[i], f64::max);
            }
        }
        let base = median(times[0].clone());
        println!(
            "{slots} slots, CoeffsToSlots matrix {index}, {} diagonals, level {level}:",
            m.diagonals().len()
        );
        for (i, (t, storage, _)) in variants.iter().enumerate() {
            let n1 = t.baby_step();
            let r = t.rotations();
            let babies = r.iter().filter(|&&k| (k as usize) < n1).count();
            let med = median(times[i].clone());
            println!(
                "  n1 = {n1:3}: {babies:2} baby, {:2} giant, {storage:?}: {:7.1} ms, ratio {:.3}, \
                 max error 2^{:.1}",
                r.len() - babies,
                med * 1e3,
                med / base,
                errs[i].log2()
            );
        }
    }
    Ok(())
}
