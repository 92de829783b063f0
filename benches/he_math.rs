//! Criterion suite for the `he-math` layer: NTT engines, limb kernels and the Backend
//! RNS operations at N = 2^16. Run with `cargo bench -p hetal-benches --bench he_math`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use he_math::primes::ntt_primes;
use he_math::{
    Backend, CpuBackend, Csprng, Modulus, NttEngine, NttPlan, Representation, RingContext, RnsPoly,
    simd,
};
use std::hint::black_box;
use std::sync::Arc;

const LOG_N: u32 = 16;

fn ntt(c: &mut Criterion) {
    let n = 1usize << LOG_N;
    let mut g = c.benchmark_group("ntt_n65536");
    let mut rng = Csprng::from_seed([1; 32]);
    for engine in NttEngine::available()
        .into_iter()
        .filter(|e| *e != NttEngine::Reference)
    {
        for bits in [42u32, 50, 60] {
            let q = ntt_primes(bits, n, 1, &[]).unwrap()[0];
            let plan = NttPlan::with_engine(n, q, engine).unwrap();
            let mut a = vec![0u64; n];
            rng.uniform_mod(plan.modulus(), &mut a);
            g.bench_with_input(
                BenchmarkId::new(format!("forward/{}", engine.name()), bits),
                &bits,
                |b, _| b.iter(|| plan.forward(black_box(&mut a))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("inverse/{}", engine.name()), bits),
                &bits,
                |b, _| b.iter(|| plan.inverse(black_box(&mut a))),
            );
        }
    }
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let n = 1usize << LOG_N;
    let mut g = c.benchmark_group("limb_kernels_n65536");
    let mut rng = Csprng::from_seed([2; 32]);
    for bits in [42u32, 50, 60] {
        let m = Modulus::new(ntt_primes(bits, n, 1, &[]).unwrap()[0]).unwrap();
        let mut a = vec![0u64; n];
        let mut b = vec![0u64; n];
        rng.uniform_mod(&m, &mut a);
        rng.uniform_mod(&m, &mut b);
        g.bench_with_input(BenchmarkId::new("pointwise_mul", bits), &bits, |bn, _| {
            bn.iter(|| simd::mul_assign(&m, black_box(&mut a), &b))
        });
        g.bench_with_input(BenchmarkId::new("add", bits), &bits, |bn, _| {
            bn.iter(|| simd::add_assign(&m, black_box(&mut a), &b))
        });
        g.bench_with_input(BenchmarkId::new("scalar_mul", bits), &bits, |bn, _| {
            bn.iter(|| simd::scalar_mul_assign(&m, black_box(&mut a), 12345))
        });
        let acc0 = a.clone();
        g.bench_with_input(BenchmarkId::new("mul_add", bits), &bits, |bn, _| {
            let mut acc = acc0.clone();
            bn.iter(|| simd::mul_add_assign(&m, black_box(&mut acc), &a, &b))
        });
    }
    g.finish();
}

/// The sums of products of key switching: one output limb of the fast basis conversion
/// from 8 source limbs of 61 bits (ModDown's `P` → `q_i`), and the inner product of 4
/// digits, at 40, 50 and 61 bits of the output modulus.
fn sums_of_products(c: &mut Criterion) {
    let n = 1usize << LOG_N;
    let mut g = c.benchmark_group("sums_of_products_n65536");
    let mut rng = Csprng::from_seed([4; 32]);
    let src = Modulus::new(ntt_primes(61, n, 1, &[]).unwrap()[0]).unwrap();
    let terms = 8;
    let mut y = vec![0u64; terms * n];
    for limb in y.chunks_mut(n) {
        rng.uniform_mod(&src, limb);
    }
    for bits in [40u32, 50, 61] {
        let m = Modulus::new(ntt_primes(bits, n, 1, &[src.value()]).unwrap()[0]).unwrap();
        let mut row = vec![0u64; terms];
        rng.uniform_mod(&m, &mut row);
        let mut out = vec![0u64; n];
        g.bench_with_input(BenchmarkId::new("convert_limb_8", bits), &bits, |bn, _| {
            bn.iter(|| simd::basis_convert_limb(&m, &row, &y, src.value(), black_box(&mut out)))
        });
        let digits: Vec<Vec<u64>> = (0..8)
            .map(|_| {
                let mut v = vec![0u64; n];
                rng.uniform_mod(&m, &mut v);
                v
            })
            .collect();
        let (a, b) = digits.split_at(4);
        let a: Vec<&[u64]> = a.iter().map(Vec::as_slice).collect();
        let b: Vec<&[u64]> = b.iter().map(Vec::as_slice).collect();
        g.bench_with_input(BenchmarkId::new("dot_4", bits), &bits, |bn, _| {
            bn.iter(|| simd::dot_assign(&m, black_box(&mut out), &a, &b))
        });
    }
    g.finish();
}

/// A CKKS-shaped ring: 13 Q primes (58 + 12×42 bits) and 5 special primes of 60 bits.
fn ckks_ring() -> (Arc<RingContext>, Vec<usize>, Vec<usize>) {
    let n = 1usize << LOG_N;
    let mut qs = ntt_primes(58, n, 1, &[]).unwrap();
    qs.extend(ntt_primes(42, n, 12, &qs).unwrap());
    qs.extend(ntt_primes(60, n, 5, &qs).unwrap());
    let ctx = RingContext::new(n, &qs).unwrap();
    ((ctx), (0..13).collect(), (13..18).collect())
}

fn rns_ops(c: &mut Criterion) {
    let (ctx, q, p) = ckks_ring();
    let be = CpuBackend::new(&ctx).unwrap();
    let mut rng = Csprng::from_seed([3; 32]);
    let mut a = RnsPoly::zero(ctx.n(), &q, Representation::Ntt);
    for (j, &bi) in q.iter().enumerate() {
        rng.uniform_mod(ctx.modulus(bi), a.limb_mut(j));
    }
    let a = be.upload(&a).unwrap();
    let mut g = c.benchmark_group("cpu_backend_n65536_L12");
    g.sample_size(10);
    g.bench_function("forward_ntt_13_limbs", |b| {
        b.iter(|| {
            let mut x = a.clone();
            be.inverse_ntt(&mut x).unwrap();
            be.forward_ntt(&mut x).unwrap();
        })
    });
    g.bench_function("rescale_ntt", |b| {
        b.iter(|| {
            let mut x = a.clone();
            be.rescale(&mut x).unwrap();
        })
    });
    g.bench_function("mod_up_digit_3_limbs", |b| {
        b.iter(|| be.mod_up(&a, &q[0..3], &p).unwrap())
    });
    let up = be.mod_up(&a, &q[0..3], &p).unwrap();
    g.bench_function("mod_down", |b| b.iter(|| be.mod_down(&up, &p).unwrap()));
    g.bench_function("mod_down_owned", |b| {
        b.iter_batched(
            || up.clone(),
            |x| be.mod_down_owned(x, &p).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    // The NTT-form Galois permutation of a rotation by one slot, 13 limbs.
    g.bench_function("automorphism_new_13_limbs", |b| {
        b.iter(|| be.automorphism_new(&a, 5).unwrap())
    });
    // A BSGS inner sum: 8 ciphertexts (2 parts) times 8 plaintexts, 13 limbs.
    let xs: Vec<Vec<_>> = (0..8).map(|_| vec![a.clone(), a.clone()]).collect();
    let xs: Vec<&[_]> = xs.iter().map(Vec::as_slice).collect();
    let ys: Vec<_> = (0..8).map(|_| a.clone()).collect();
    let ys: Vec<_> = ys.iter().collect();
    g.bench_function("dot_parts_8_terms_2_parts", |b| {
        b.iter(|| be.dot_parts(&xs, &ys).unwrap())
    });
    g.finish();
}

criterion_group!(benches, ntt, kernels, sums_of_products, rns_ops);
criterion_main!(benches);
