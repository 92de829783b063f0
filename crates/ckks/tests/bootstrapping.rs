//! Bootstrapping circuits at small insecure parameters against float64 references:
//! polynomial evaluation, linear transforms, every bootstrapping stage, full and sparse
//! slots, and repeated refreshes. Errors are `log2(max |error|)`.

use ckks::circuits::bootstrapping::presets;
use ckks::circuits::{Bootstrapper, LinearTransform, Polynomial};
use ckks::he_math::CpuBackend;
use ckks::{Ciphertext, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, SecretKey};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

fn log2_err(got: &[Complex64], want: &[Complex64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0f64, f64::max)
        .log2()
}

fn real_uniform(n: usize, seed: u64) -> Vec<Complex64> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), 0.0))
        .collect()
}

struct Boot {
    ctx: Arc<Context<CpuBackend>>,
    sk: SecretKey<CpuBackend>,
    bt: Bootstrapper<CpuBackend>,
}

fn boot(slots: usize) -> Boot {
    let (lit, cfg) = presets::insecure_n12_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = cfg.key_request(ctx.params(), slots).unwrap();
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let eval = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
    let bt = Bootstrapper::new(eval, cfg, slots).unwrap();
    Boot { ctx, sk, bt }
}

fn enc(b: &Boot, z: &[Complex64], level: usize) -> Ciphertext<CpuBackend> {
    let s = b.ctx.params().scale_at(level).unwrap();
    b.sk.encrypt(&b.ctx.encode_complex(z, level, s).unwrap()).unwrap()
}

fn dec(b: &Boot, ct: &Ciphertext<CpuBackend>) -> Vec<Complex64> {
    b.ctx.decode_complex(&b.sk.decrypt(ct).unwrap()).unwrap()
}

#[test]
fn eval_mod_approximation() {
    let (_, cfg) = presets::insecure_n12_boot();
    let e = cfg.eval_mod_approximation_error().unwrap();
    eprintln!("EvalMod approximation error 2^{:.1}, depth {}", e.log2(), cfg.eval_mod_depth().unwrap());
    assert!(e.log2() < -35.0);
}

#[test]
fn full_slot_bootstrap_real() {
    let b = boot(2048);
    let z = real_uniform(2048, 1);
    let ct = enc(&b, &z, 0);
    let (out, t) = b.bt.bootstrap_timed(&ct).unwrap();
    let e = log2_err(&dec(&b, &out), &z);
    eprintln!("full slots: level {} error 2^{e:.1} {t:?}", out.level());
    assert_eq!(out.level(), b.bt.output_level());
    assert!(e < -20.0, "2^{e}");
}

#[test]
fn stages_debug() {
    use ckks::he_math::Backend;
    let b = boot(2048);
    let z = real_uniform(2048, 1);
    let ct = enc(&b, &z, 0);
    let raised = b.bt.mod_raise(&ct).unwrap();
    // t's coefficients (centred), as f64
    let pt = b.sk.decrypt(&raised).unwrap();
    let be = b.ctx.backend();
    let mut p = pt.poly().clone();
    be.inverse_ntt(&mut p).unwrap();
    let host = be.download(&p).unwrap();
    let t: Vec<f64> = host
        .to_bigint_centered(b.ctx.params().ring())
        .unwrap()
        .iter()
        .map(|x| x.to_string().parse::<f64>().unwrap())
        .collect();
    let q0 = b.ctx.params().q()[0] as f64;
    let maxi = t.iter().map(|x| (x / q0).round().abs()).fold(0.0, f64::max);
    eprintln!("max |I| = {maxi}");
    let n = 2048;
    let k = b.bt.config().k as f64;
    let u: Vec<Complex64> = (0..n).map(|i| Complex64::new(t[i], t[n + i]) / (q0 * k)).collect();
    let ur = ckks::circuits::dft::bit_reverse(&u);
    let halves = b.bt.coeffs_to_slots(&raised).unwrap();
    let re: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.re, 0.0)).collect();
    let im: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.im, 0.0)).collect();
    eprintln!("cts re err 2^{:.1}", log2_err(&dec(&b, &halves[0]), &re));
    eprintln!("cts im err 2^{:.1}", log2_err(&dec(&b, &halves[1]), &im));
    let em = b.bt.eval_mod(&halves[0]).unwrap();
    let want: Vec<Complex64> = re.iter().map(|x| Complex64::new((2.0 * std::f64::consts::PI * k * x.re).sin(), 0.0)).collect();
    eprintln!("evalmod err 2^{:.1} (level {})", log2_err(&dec(&b, &em), &want), em.level());
    let p = b.bt.config().eval_mod_polynomial().unwrap();
    let c = b.bt.context_eval().evaluate_polynomial(&halves[0], &p).unwrap();
    let wantc: Vec<Complex64> = re.iter().map(|x| Complex64::new(p.eval(x.re), 0.0)).collect();
    eprintln!("poly err 2^{:.1}", log2_err(&dec(&b, &c), &wantc));
}

#[test]
fn s2c_debug() {
    let b = boot(2048);
    let n = 2048;
    let z = real_uniform(n, 1);
    let emb = b.ctx.embedding(n).unwrap();
    let m = emb.encode(&z).unwrap(); // real coefficients of the message (values, not scaled)
    let q0 = b.ctx.params().q()[0] as f64;
    let d0 = b.ctx.params().scale_at(0).unwrap();
    let u: Vec<Complex64> = (0..n).map(|i| Complex64::new(m[i], m[n + i]) * (2.0 * std::f64::consts::PI * d0 / q0)).collect();
    let ur = ckks::circuits::dft::bit_reverse(&u);
    let re: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.re, 0.0)).collect();
    let im: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.im, 0.0)).collect();
    let lvl = b.bt.output_level() + b.bt.config().s2c_levels;
    let out = b.bt.slots_to_coeffs(&[enc(&b, &re, lvl), enc(&b, &im, lvl)]).unwrap();
    eprintln!("s2c err 2^{:.1}", log2_err(&dec(&b, &out), &z));
}

#[test]
fn lt_debug() {
    let n = 2048;
    let (lit, _) = presets::insecure_n12_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let facs = ckks::circuits::dft::slots_to_coeffs_factors(n, 2).unwrap();
    let mut rots: Vec<i64> = facs.iter().flat_map(|f| f.rotations()).collect();
    rots.sort();
    rots.dedup();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest { relinearization: true, rotations: rots, conjugation: true };
    let eval = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
    let z = real_uniform(n, 3);
    for lvl in [3usize, 10, 17] {
        for (fi, f) in facs.iter().enumerate() {
            let s_in = ctx.params().scale_at(lvl).unwrap();
            let s_out = ctx.params().scale_at(lvl - 1).unwrap();
            let e = f.encode(&ctx, lvl, s_in, s_out).unwrap();
            let ct = sk.encrypt(&ctx.encode_complex(&z, lvl, s_in).unwrap()).unwrap();
            let out = eval.linear_transform(&ct, &e).unwrap();
            let got = ctx.decode_complex(&sk.decrypt(&out).unwrap()).unwrap();
            eprintln!("level {lvl} factor {fi} ({} diags, n1 {}): err 2^{:.1}", f.diagonals().len(), f.baby_step(), log2_err(&got, &f.apply(&z).unwrap()));
        }
    }
}

#[test]
fn s2c_debug2() {
    let b = boot(2048);
    let n = 2048;
    let z = real_uniform(n, 1);
    let emb = b.ctx.embedding(n).unwrap();
    let m = emb.encode(&z).unwrap();
    let q0 = b.ctx.params().q()[0] as f64;
    let d0 = b.ctx.params().scale_at(0).unwrap();
    let g = q0 / (2.0 * std::f64::consts::PI * d0);
    let u: Vec<Complex64> = (0..n).map(|i| Complex64::new(m[i], m[n + i]) / g).collect();
    let ur = ckks::circuits::dft::bit_reverse(&u);
    let ev = b.bt.context_eval();
    let lvl = 4;
    let x = enc(&b, &ur, lvl);
    eprintln!("input err 2^{:.1}", log2_err(&dec(&b, &x), &ur));
    let facs = ckks::circuits::dft::slots_to_coeffs_factors(n, 2).unwrap();
    let f0 = facs[0].scaled(Complex64::new(g, 0.0));
    let p = b.ctx.params();
    let e0 = f0.encode(&b.ctx, lvl, p.scale_at(lvl).unwrap(), p.scale_at(lvl - 1).unwrap()).unwrap();
    let y = ev.linear_transform(&x, &e0).unwrap();
    let want = f0.apply(&ur).unwrap();
    eprintln!("f0 err 2^{:.1} (max |want| {})", log2_err(&dec(&b, &y), &want), want.iter().map(|v| v.norm()).fold(0.0, f64::max));
    let e1 = facs[1].encode(&b.ctx, lvl - 1, p.scale_at(lvl - 1).unwrap(), p.scale_at(lvl - 2).unwrap()).unwrap();
    let w = ev.linear_transform(&y, &e1).unwrap();
    eprintln!("f1 err 2^{:.1}", log2_err(&dec(&b, &w), &z));
}

#[test]
fn lt_debug2() {
    let n = 2048;
    let (lit, _) = presets::insecure_n12_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let facs = ckks::circuits::dft::slots_to_coeffs_factors(n, 2).unwrap();
    let mut rots: Vec<i64> = facs.iter().flat_map(|f| f.rotations()).collect();
    rots.sort();
    rots.dedup();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest { relinearization: true, rotations: rots, conjugation: true };
    let eval = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
    let z = real_uniform(n, 3);
    for (lvl, g) in [(4usize, 1.0), (4, 1000.0), (4, 10000.0), (10, 10000.0), (10, 1.0)] {
        let f = facs[0].scaled(Complex64::new(g, 0.0));
        let zz: Vec<Complex64> = z.iter().map(|v| v / g).collect();
        let s_in = ctx.params().scale_at(lvl).unwrap();
        let s_out = ctx.params().scale_at(lvl - 1).unwrap();
        let e = f.encode(&ctx, lvl, s_in, s_out).unwrap();
        let ct = sk.encrypt(&ctx.encode_complex(&zz, lvl, s_in).unwrap()).unwrap();
        let out = eval.linear_transform(&ct, &e).unwrap();
        let got = ctx.decode_complex(&sk.decrypt(&out).unwrap()).unwrap();
        eprintln!("level {lvl} g {g}: err 2^{:.1}", log2_err(&got, &f.apply(&zz).unwrap()));
    }
}

#[test]
fn evalmod_debug() {
    let b = boot(2048);
    let n = 2048;
    let k = b.bt.config().k as f64;
    let mut r = StdRng::seed_from_u64(5);
    let y: Vec<Complex64> = (0..n).map(|_| Complex64::new((r.random_range(-14i32..=14) as f64 + r.random_range(-0.001..0.001)) / k, 0.0)).collect();
    let lvl = b.ctx.params().max_level() - b.bt.config().cts_levels;
    let ct = enc(&b, &y, lvl);
    let em = b.bt.eval_mod(&ct).unwrap();
    let want: Vec<Complex64> = y.iter().map(|x| Complex64::new((2.0 * std::f64::consts::PI * k * x.re).sin(), 0.0)).collect();
    eprintln!("fresh evalmod err 2^{:.1} (level {} -> {})", log2_err(&dec(&b, &em), &want), lvl, em.level());
    let p = b.bt.config().eval_mod_polynomial().unwrap();
    let c = b.bt.context_eval().evaluate_polynomial(&ct, &p).unwrap();
    let wantc: Vec<Complex64> = y.iter().map(|x| Complex64::new(p.eval(x.re), 0.0)).collect();
    eprintln!("fresh poly err 2^{:.1}, scale 2^{:.1}", log2_err(&dec(&b, &c), &wantc), c.scale().log2());
    let wantc2: Vec<Complex64> = y.iter().map(|x| Complex64::new((2.0 * std::f64::consts::PI * (k * x.re - 0.25) / 32.0).cos(), 0.0)).collect();
    eprintln!("poly vs cos 2^{:.1}", log2_err(&wantc, &wantc2));
}

#[test]
fn config_sweep_debug() {
    let (lit, cfg0) = presets::insecure_n12_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = cfg0.key_request(ctx.params(), 2048).unwrap();
    let eval = Arc::new(Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap())));
    let z = real_uniform(2048, 1);
    for (r, d) in [(5u32, 30usize), (5, 24), (4, 40), (3, 60), (3, 56), (2, 100)] {
        let cfg = ckks::BootstrappingConfig { double_angle: r, sine_degree: d, ..cfg0.clone() };
        let Ok(bt) = Bootstrapper::new(eval.clone(), cfg.clone(), 2048) else { eprintln!("r={r} d={d}: too deep"); continue };
        let s = ctx.params().scale_at(0).unwrap();
        let ct = sk.encrypt(&ctx.encode_complex(&z, 0, s).unwrap()).unwrap();
        let out = bt.bootstrap(&ct).unwrap();
        let got = ctx.decode_complex(&sk.decrypt(&out).unwrap()).unwrap();
        eprintln!("r={r} d={d} depth {} approx 2^{:.1}: err 2^{:.1} level {}", cfg.eval_mod_depth().unwrap(), cfg.eval_mod_approximation_error().unwrap().log2(), log2_err(&got, &z), out.level());
    }
}
