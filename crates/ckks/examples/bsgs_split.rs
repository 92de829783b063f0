//! BSGS split of the homomorphic DFT's matrices, measured in one process: the first
//! CoeffsToSlots matrix (32 diagonals) of the N = 2^16 bootstrapping preset
//! `n16_logqp1755_dense_boot` at its top level, evaluated alternately with the split
//! [`ckks::LinearTransform::baby_step`] chooses (fewest rotations, on a tie the fewest
//! babies: 3 baby and 7 giant steps) and the one with twice the baby-step span (7 baby
//! and 3 giant steps), for full slots and for 2^13 slots. Alternating in one process
//! keeps the ratio meaningful on a host whose speed drifts. Run:
//! `cargo run --release -p ckks --example bsgs_split [reps]` (docs/results/bootstrap.md).

use ckks::circuits::bootstrapping::presets;
use ckks::circuits::{LinearTransform, dft};
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
    let ctx = Context::new_cpu(presets::n16_logqp1755_dense_boot().0)?;
    let p = ctx.params().clone();
    let level = p.max_level();
    let (s_in, s_out) = (p.scale_at(level)?, p.scale_at(level - 1)?);
    for slots in [p.max_slots(), 1 << 13] {
        let mut m = dft::coeffs_to_slots_factors(slots, 3)?.remove(0);
        let work = if slots < p.max_slots() {
            2 * slots
        } else {
            slots
        };
        m = m.lifted(work)?;
        // The span the transform chooses (fewest rotations) and the one above it, which
        // trades giant steps for baby steps (32 diagonals: 3 + 7 against 7 + 3).
        let chosen = m.baby_step();
        let splits = [
            m.clone().with_baby_step(chosen)?,
            m.clone().with_baby_step(2 * chosen)?,
        ];
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
            .map(|k| Complex64::new(((k * 37) % 101) as f64 / 101.0, 0.0))
            .collect();
        let ct = sk.encrypt(&ctx.encode_complex(&x, level, s_in)?)?;
        let enc: Vec<_> = splits
            .iter()
            .map(|t| t.encode(&ctx, level, s_in, s_out))
            .collect::<Result<_, _>>()?;
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (i, e) in enc.iter().enumerate() {
                let t = Instant::now();
                std::hint::black_box(ev.linear_transform(&ct, e)?);
                times[i].push(t.elapsed().as_secs_f64());
            }
        }
        let [a, b] = times.map(median);
        let desc = |t: &LinearTransform| {
            let n1 = t.baby_step();
            let r = t.rotations();
            let babies = r.iter().filter(|&&k| (k as usize) < n1).count();
            format!("n1 = {n1}: {babies} baby, {} giant", r.len() - babies)
        };
        println!(
            "{slots} slots, {} diagonals, level {level}: chosen ({}) {:.1} ms, more babies \
             ({}) {:.1} ms, ratio {:.3}",
            m.diagonals().len(),
            desc(&splits[0]),
            a * 1e3,
            desc(&splits[1]),
            b * 1e3,
            b / a
        );
    }
    Ok(())
}
