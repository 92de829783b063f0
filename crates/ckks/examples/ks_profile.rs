//! Phase profile of hybrid key switching at the N = 2^16 preset, level 12: median times
//! of the backend steps (ModUp per digit, inner product, ModDown, automorphisms) and of a
//! whole rotation and mult+relin+rescale. Run:
//! `cargo run --release -p ckks --example ks_profile [rotate|mult]` (see
//! docs/results/ckks.md). `KS_PRESET=boot KS_LEVEL=20` profiles the bootstrapping preset
//! `n16_logqp1755_dense_boot` at level 20 instead (docs/results/bootstrap.md).

use ckks::he_math::Backend;
use ckks::{Context, presets};
use std::time::Instant;
#[global_allocator]
static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;
fn t<T>(name: &str, reps: usize, mut f: impl FnMut() -> T) -> T {
    let mut v = vec![];
    let mut o = None;
    for _ in 0..reps {
        let s = Instant::now();
        o = Some(f());
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    println!("{name:<30} {:8.3} ms", v[v.len() / 2]);
    o.unwrap()
}
fn main() {
    he_math::allocator::configure();
    let literal = match std::env::var("KS_PRESET").as_deref() {
        Ok("boot") => ckks::circuits::bootstrapping::presets::n16_logqp1755_dense_boot().0,
        _ => presets::n16_logqp1558_fgb_chain(),
    };
    let ctx = Context::new_cpu(literal).unwrap();
    let p = ctx.params().clone();
    let be = ctx.backend();
    let level: usize = std::env::var("KS_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let qb = p.q_basis(level);
    let pb = p.p_basis();
    let mut rng = ckks::he_math::Csprng::from_seed([1; 32]);
    let ring = p.ring();
    let mut host = ckks::he_math::RnsPoly::zero(p.n(), &qb, ckks::he_math::Representation::Ntt);
    for (j, &b) in qb.iter().enumerate() {
        rng.uniform_mod(ring.modulus(b), host.limb_mut(j));
    }
    let c = be.upload(&host).unwrap();
    let mut qp: Vec<usize> = qb.clone();
    qp.extend(&pb);
    let mut hk =
        ckks::he_math::RnsPoly::zero(p.n(), &p.qp_basis(), ckks::he_math::Representation::Ntt);
    for (j, &b) in p.qp_basis().iter().enumerate() {
        rng.uniform_mod(ring.modulus(b), hk.limb_mut(j));
    }
    let k = be.upload(&hk).unwrap();
    let key: Vec<_> = (0..p.digits_at(level)).map(|_| k.clone()).collect();
    let r = 30;
    t("clone 13", r, || c.clone());
    let mut o = c.clone();
    t("automorphism 13", r, || {
        be.automorphism(&c, 5, &mut o).unwrap()
    });
    let mut x = c.clone();
    t("intt 13", r, || {
        let mut y = x.clone();
        be.inverse_ntt(&mut y).unwrap();
        y
    });
    let d: Vec<_> = (0..p.digits_at(level))
        .map(|j| {
            t(&format!("mod_up digit {j}"), r, || {
                be.mod_up(&c, &p.digit_basis(j, level), &pb).unwrap()
            })
        })
        .collect();
    let [u0, _u1] = t("inner product", r, || {
        be.key_switch_inner_product(&d, &key, ckks::he_math::UniformParts::Stored(&key))
            .unwrap()
    });
    t("inner product, seeded a_j", r, || {
        be.key_switch_inner_product(&d, &key, ckks::he_math::UniformParts::Seeded(&[7; 32]))
            .unwrap()
    });
    t("mod_down", r, || be.mod_down(&u0, &pb).unwrap());
    let mut dd = d[0].clone();
    t("automorphism 19", r, || {
        be.automorphism(&d[0], 5, &mut dd).unwrap()
    });
    t("mul 13", r, || be.mul_assign(&mut x, &c).unwrap());
    t("rescale 13", r, || {
        let mut y = c.clone();
        be.rescale(&mut y).unwrap();
        y
    });
    let mut kg = ckks::KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg
        .gen_evaluation_keys(
            &sk,
            &ckks::EvaluationKeyRequest {
                relinearization: true,
                rotations: vec![1],
                conjugation: false,
                encapsulation: None,
                rotations_up_to: Vec::new(),
            },
        )
        .unwrap();
    let ev = ckks::Evaluator::new(&ctx, std::sync::Arc::new(keys));
    let x: Vec<f64> = (0..p.max_slots()).map(|i| (i % 7) as f64 / 7.0).collect();
    let ct = sk
        .encrypt(&ctx.encode_at_level(&x, level).unwrap())
        .unwrap();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let r2 = if mode.is_empty() { r } else { 200 };
    if mode != "mult" {
        t("eval.rotate", r2, || ev.rotate(&ct, 1).unwrap());
    }
    if mode != "rotate" {
        t("eval.mul_relin_rescale", r2, || {
            ev.mul_relin_rescale(&ct, &ct).unwrap()
        });
    }
}
