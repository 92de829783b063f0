//! Timing of `he_math::expand`: one limb of 2^16 residues, filled whole and in chunks of
//! 1024, for 61- and 41-bit moduli (docs/results/bootstrap.md). Run:
//! `cargo run --release -p he-math --example expand_speed`.
use he_math::Modulus;
use he_math::expand::SeedExpander;
use std::time::Instant;
fn main() {
    for q in [
        he_math::primes::ntt_primes(61, 1 << 16, 1, &[]).unwrap()[0],
        (1u64 << 60) + (1 << 17) + 1,
        (1u64 << 40) + (3 << 17) + 1,
    ] {
        let m = Modulus::new(q).unwrap();
        println!("q = {q} ({} bits)", 64 - q.leading_zeros());
        let ex = SeedExpander::new(&[5; 32]);
        let mut out = vec![0u64; 1 << 16];
        for chunk in [65536usize, 1024] {
            let reps = 200;
            let t = Instant::now();
            for r in 0..reps {
                let mut s = ex.stream(r, 3, &m);
                for c in out.chunks_mut(chunk) {
                    s.fill(c);
                }
            }
            println!(
                "chunk {chunk}: {:.3} ms per limb",
                t.elapsed().as_secs_f64() * 1e3 / reps as f64
            );
        }
    }
}
