//! Property tests of the RNS primitives through the backends: basis conversion
//! exactness bound, rescale exactness, ModUp/ModDown bounds, against big-integer CRT.

use he_math::primes::ntt_primes;
use he_math::{
    Backend, CpuBackend, Csprng, ReferenceBackend, Representation, RingContext, RnsPoly,
};
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::One;
use proptest::prelude::*;
use std::sync::Arc;

fn ring(bits: &[u32], n: usize) -> Arc<RingContext> {
    let mut qs: Vec<u64> = Vec::new();
    for &b in bits {
        qs.push(ntt_primes(b, n, 1, &qs).unwrap()[0]);
    }
    RingContext::new(n, &qs).unwrap()
}

fn random(ctx: &RingContext, basis: &[usize], seed: u64) -> RnsPoly {
    let mut rng = Csprng::from_seed([seed as u8; 32]);
    let mut p = RnsPoly::zero(ctx.n(), basis, Representation::Coeff);
    for (j, &bi) in basis.iter().enumerate() {
        rng.uniform_mod(ctx.modulus(bi), p.limb_mut(j));
    }
    p
}

fn prod(ctx: &RingContext, basis: &[usize]) -> BigInt {
    basis
        .iter()
        .fold(BigInt::one(), |a, &i| a * ctx.modulus(i).value())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// FastBConv(x) ≡ x + u·B with 0 ≤ u < |B|, for random prime sizes and split points.
    #[test]
    fn basis_conversion_exactness_bound(
        bits in proptest::collection::vec(20u32..=61, 2..9),
        split in 1usize..8,
        seed in any::<u64>(),
    ) {
        let k = bits.len();
        let split = split.min(k - 1);
        let ctx = ring(&bits, 16);
        let from: Vec<usize> = (0..split).collect();
        let to: Vec<usize> = (split..k).collect();
        let a = random(&ctx, &from, seed);
        let b_prod = prod(&ctx, &from);
        let cpu = CpuBackend::new(&ctx).unwrap();
        let reference = ReferenceBackend::new(&ctx).unwrap();
        let out = cpu.basis_convert(&a, &to).unwrap();
        prop_assert_eq!(&out, &reference.basis_convert(&a, &to).unwrap());
        let xs = a.to_bigint_centered(&ctx).unwrap();
        for (i, x) in xs.iter().enumerate() {
            // Some u in [0, |B|) must explain every target residue at once.
            let x = x.mod_floor(&b_prod);
            let ok = (0..split).any(|u| {
                let v = &x + BigInt::from(u) * &b_prod;
                out.limbs().all(|(bi, l)| v.mod_floor(&BigInt::from(ctx.modulus(bi).value())) == BigInt::from(l[i]))
            });
            prop_assert!(ok, "coefficient {} is not x + u·B with 0 ≤ u < {}", i, split);
        }
    }

    /// Rescale equals round(x / q_last) exactly, for random chains.
    #[test]
    fn rescale_is_exact_rounding(bits in proptest::collection::vec(20u32..=61, 2..7), seed in any::<u64>()) {
        let ctx = ring(&bits, 16);
        let basis: Vec<usize> = (0..bits.len()).collect();
        let a = random(&ctx, &basis, seed);
        let ql = BigInt::from(ctx.modulus(*basis.last().unwrap()).value());
        let lower = &basis[..basis.len() - 1];
        let ql_prod = prod(&ctx, lower);
        let cpu = CpuBackend::new(&ctx).unwrap();
        let mut x = a.clone();
        cpu.forward_ntt(&mut x).unwrap();
        cpu.rescale(&mut x).unwrap();
        cpu.inverse_ntt(&mut x).unwrap();
        let got = x.to_bigint_centered(&ctx).unwrap();
        for (g, v) in got.iter().zip(a.to_bigint_centered(&ctx).unwrap()) {
            let want = (v + (&ql >> 1usize)).div_floor(&ql).mod_floor(&ql_prod);
            prop_assert_eq!(g.mod_floor(&ql_prod), want);
        }
    }
}
