//! The conformance suite every [`Backend`] implementation must pass.
//!
//! Each check builds random polynomials on a small test ring, runs an operation on the
//! backend under test and compares with (a) the [`ReferenceBackend`], bit for bit, and
//! (b) the mathematical ground truth: schoolbook negacyclic products, exact big-integer
//! CRT arithmetic for rescale, basis conversion, ModUp and ModDown. Checks panic with a
//! message on failure (they are test support); call [`run_all`] from a `#[test]`.
//!
//! The test rings mix prime sizes (36 to 61 bits) so that both the IFMA kernels
//! (`q < 2^50`) and the 64-bit fallbacks run.

use crate::backend::{Backend, ReferenceBackend, UniformParts};
use crate::error::MathError;
use crate::expand::SeedExpander;
use crate::galois;
use crate::ntt::negacyclic_schoolbook;
use crate::poly::{Representation, RnsPoly};
use crate::primes::ntt_primes;
use crate::ring::RingContext;
use crate::sampling::Csprng;
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, Zero};
use std::sync::Arc;

/// A test ring of degree `n`: five "Q" moduli (36, 42, 50, 55, 60 bits, indices 0..5) and
/// two "P" moduli (61 and 45 bits, indices 5..7).
///
/// # Panics
/// If `n` is not a power of two in `[16, 2^13]`.
pub fn test_ring(n: usize) -> Arc<RingContext> {
    let mut qs = Vec::new();
    for bits in [36u32, 42, 50, 55, 60, 61, 45] {
        qs.push(ntt_primes(bits, n, 1, &qs).expect("test primes")[0]);
    }
    RingContext::new(n, &qs).expect("test ring")
}

/// Indices of the "Q" moduli of [`test_ring`].
pub const TEST_Q: [usize; 5] = [0, 1, 2, 3, 4];
/// Indices of the "P" (special) moduli of [`test_ring`].
pub const TEST_P: [usize; 2] = [5, 6];

fn random_poly(
    ctx: &RingContext,
    basis: &[usize],
    repr: Representation,
    rng: &mut Csprng,
) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx.n(), basis, repr);
    for (j, &bi) in basis.iter().enumerate() {
        rng.uniform_mod(ctx.modulus(bi), p.limb_mut(j));
    }
    p
}

/// `terms` groups of `parts` random NTT-form polynomials over `basis` (the ciphertext-like
/// left factors of the sums of products).
fn random_groups(
    ctx: &RingContext,
    basis: &[usize],
    terms: usize,
    parts: usize,
    rng: &mut Csprng,
) -> Vec<Vec<RnsPoly>> {
    (0..terms)
        .map(|_| {
            (0..parts)
                .map(|_| random_poly(ctx, basis, Representation::Ntt, rng))
                .collect()
        })
        .collect()
}

struct Pair<'a, B: Backend> {
    b: &'a B,
    r: &'a ReferenceBackend,
}

impl<B: Backend> Pair<'_, B> {
    fn up(&self, p: &RnsPoly) -> (B::Poly, RnsPoly) {
        (self.b.upload(p).expect("upload"), p.clone())
    }
    fn same(&self, what: &str, x: &B::Poly, y: &RnsPoly) {
        let got = self.b.download(x).expect("download");
        assert_eq!(
            &got,
            y,
            "{}: {what} differs from the reference backend",
            self.b.name()
        );
    }
}

/// Runs every check against `backend`, whose context must be [`test_ring`]`(n)` for some
/// `n` (possibly re-planned with another NTT engine).
///
/// # Panics
/// On the first failed check.
pub fn run_all<B: Backend>(backend: &B) {
    let reference = ReferenceBackend::new(backend.context()).expect("reference backend");
    let pair = Pair {
        b: backend,
        r: &reference,
    };
    let mut rng = Csprng::from_seed([42; 32]);
    check_ntt(&pair, &mut rng);
    check_pointwise(&pair, &mut rng);
    check_automorphism(&pair, &mut rng);
    check_basis_conversion(&pair, &mut rng);
    check_rescale(&pair, &mut rng);
    check_mod_up_down(&pair, &mut rng);
    check_mod_down_rescale(&pair, &mut rng);
    check_mod_raise(&pair, &mut rng);
    check_key_switch_inner_product(&pair, &mut rng);
    check_dot_parts(&pair, &mut rng);
    check_runs(&pair, &mut rng);
    check_errors(&pair, &mut rng);
}

fn check_ntt<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let all: Vec<usize> = (0..ctx.num_moduli()).collect();
    let a = random_poly(&ctx, &all, Representation::Coeff, rng);
    let c = random_poly(&ctx, &all, Representation::Coeff, rng);
    let (mut ab, mut ar) = p.up(&a);
    p.b.forward_ntt(&mut ab).unwrap();
    p.r.forward_ntt(&mut ar).unwrap();
    p.same("forward NTT", &ab, &ar);
    // product in the NTT domain equals the schoolbook negacyclic product
    let (mut cb, _) = p.up(&c);
    p.b.forward_ntt(&mut cb).unwrap();
    let mut prod = ab.clone();
    p.b.mul_assign(&mut prod, &cb).unwrap();
    p.b.inverse_ntt(&mut prod).unwrap();
    let prod = p.b.download(&prod).unwrap();
    for (j, &bi) in all.iter().enumerate() {
        let want = negacyclic_schoolbook(a.limb(j), c.limb(j), ctx.modulus(bi));
        assert_eq!(
            prod.limb(j),
            &want[..],
            "{}: NTT product vs schoolbook, limb {j}",
            p.b.name()
        );
    }
    p.b.inverse_ntt(&mut ab).unwrap();
    assert_eq!(
        p.b.download(&ab).unwrap(),
        a,
        "{}: NTT round trip",
        p.b.name()
    );
}

fn check_pointwise<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let basis = [0usize, 2, 3, 5];
    for repr in [Representation::Coeff, Representation::Ntt] {
        let a = random_poly(&ctx, &basis, repr, rng);
        let b = random_poly(&ctx, &basis, repr, rng);
        let c = random_poly(&ctx, &basis, repr, rng);
        let scalars: Vec<u64> = basis
            .iter()
            .map(|&i| rng.next_u64() % ctx.modulus(i).value())
            .collect();
        let (bb, _) = p.up(&b);
        let (cb, _) = p.up(&c);
        let run = |name: &str, fb: &dyn Fn(&mut B::Poly), fr: &dyn Fn(&mut RnsPoly)| {
            let (mut xb, mut xr) = p.up(&a);
            fb(&mut xb);
            fr(&mut xr);
            p.same(name, &xb, &xr);
        };
        run("add", &|x| p.b.add_assign(x, &bb).unwrap(), &|x| {
            p.r.add_assign(x, &b).unwrap()
        });
        run("sub", &|x| p.b.sub_assign(x, &bb).unwrap(), &|x| {
            p.r.sub_assign(x, &b).unwrap()
        });
        run("neg", &|x| p.b.neg_assign(x).unwrap(), &|x| {
            p.r.neg_assign(x).unwrap()
        });
        run(
            "scalar mul",
            &|x| p.b.scalar_mul_assign(x, &scalars).unwrap(),
            &|x| p.r.scalar_mul_assign(x, &scalars).unwrap(),
        );
        run(
            "scalar add",
            &|x| p.b.scalar_add_assign(x, &scalars).unwrap(),
            &|x| p.r.scalar_add_assign(x, &scalars).unwrap(),
        );
        run(
            "scalar mul-add",
            &|x| p.b.scalar_mul_add_assign(x, &bb, &scalars).unwrap(),
            &|x| p.r.scalar_mul_add_assign(x, &b, &scalars).unwrap(),
        );
        // The operand may have more limbs than the accumulator (a higher level).
        let wide = random_poly(&ctx, &[0, 1, 2, 3, 4, 5], repr, rng);
        let (wb, _) = p.up(&wide);
        run(
            "scalar mul-add from a wider operand",
            &|x| p.b.scalar_mul_add_assign(x, &wb, &scalars).unwrap(),
            &|x| p.r.scalar_mul_add_assign(x, &wide, &scalars).unwrap(),
        );
        // It may lack moduli whose scalar is zero (`P·a` added over `Q ∪ P`): those
        // limbs stay as they are.
        let sub = random_poly(&ctx, &[2, 5], repr, rng);
        let (sb, _) = p.up(&sub);
        let lifted: Vec<u64> = basis
            .iter()
            .zip(&scalars)
            .map(|(&bi, &s)| if sub.position(bi).is_some() { s } else { 0 })
            .collect();
        run(
            "scalar mul-add from a narrower operand",
            &|x| p.b.scalar_mul_add_assign(x, &sb, &lifted).unwrap(),
            &|x| p.r.scalar_mul_add_assign(x, &sub, &lifted).unwrap(),
        );
        let mut x = a.clone();
        p.r.scalar_mul_add_assign(&mut x, &sub, &lifted).unwrap();
        for (j, &bi) in basis.iter().enumerate() {
            let m = ctx.modulus(bi);
            match sub.position(bi) {
                Some(i) => {
                    for ((&got, &sk), &ak) in x.limb(j).iter().zip(sub.limb(i)).zip(a.limb(j)) {
                        assert_eq!(got, m.mul_add(sk, lifted[j], ak));
                    }
                }
                None => assert_eq!(x.limb(j), a.limb(j), "limb {j} outside the operand"),
            }
        }
        let mut x = a.clone();
        p.r.scalar_mul_add_assign(&mut x, &wide, &scalars).unwrap();
        for (j, &bi) in basis.iter().enumerate() {
            let m = ctx.modulus(bi);
            let w = wide.limb(wide.position(bi).unwrap());
            for ((&got, &wk), &ak) in x.limb(j).iter().zip(w).zip(a.limb(j)) {
                assert_eq!(got, m.mul_add(wk, scalars[j], ak));
            }
        }
        if repr == Representation::Ntt {
            run("mul", &|x| p.b.mul_assign(x, &bb).unwrap(), &|x| {
                p.r.mul_assign(x, &b).unwrap()
            });
            run("mul_new", &|x| *x = p.b.mul_new(x, &bb).unwrap(), &|x| {
                p.r.mul_assign(x, &b).unwrap()
            });
            run(
                "mul-add",
                &|x| p.b.mul_add_assign(x, &bb, &cb).unwrap(),
                &|x| p.r.mul_add_assign(x, &b, &c).unwrap(),
            );
        }
        // The reference itself against direct modular arithmetic.
        let mut x = a.clone();
        p.r.add_assign(&mut x, &b).unwrap();
        p.r.scalar_mul_assign(&mut x, &scalars).unwrap();
        for (j, &bi) in basis.iter().enumerate() {
            let m = ctx.modulus(bi);
            for k in 0..ctx.n() {
                assert_eq!(
                    x.limb(j)[k],
                    m.mul(m.add(a.limb(j)[k], b.limb(j)[k]), scalars[j])
                );
            }
        }
    }
}

fn check_automorphism<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let n = ctx.n();
    let basis = [1usize, 2, 4, 6];
    let a = random_poly(&ctx, &basis, Representation::Coeff, rng);
    for k in [
        5usize,
        galois::galois_element_for_rotation(-3, n),
        2 * n - 1,
        1,
    ] {
        // coefficient form, vs the reference
        let (ab, ar) = p.up(&a);
        let mut ob = p.b.zero(&basis, Representation::Coeff).unwrap();
        let mut or = p.r.zero(&basis, Representation::Coeff).unwrap();
        p.b.automorphism(&ab, k, &mut ob).unwrap();
        p.r.automorphism(&ar, k, &mut or).unwrap();
        p.same("automorphism (coefficients)", &ob, &or);
        let fresh = p.b.automorphism_new(&ab, k).unwrap();
        p.same("automorphism_new (coefficients)", &fresh, &or);
        // NTT form agrees with the coefficient form
        let mut an = ab.clone();
        p.b.forward_ntt(&mut an).unwrap();
        let mut on = p.b.zero(&basis, Representation::Ntt).unwrap();
        p.b.automorphism(&an, k, &mut on).unwrap();
        let mut fresh = p.b.automorphism_new(&an, k).unwrap();
        p.b.inverse_ntt(&mut on).unwrap();
        p.same("automorphism (NTT)", &on, &or);
        p.b.inverse_ntt(&mut fresh).unwrap();
        p.same("automorphism_new (NTT)", &fresh, &or);
    }
    // composition
    let (ab, _) = p.up(&a);
    let mut t1 = p.b.zero(&basis, Representation::Coeff).unwrap();
    let mut t2 = t1.clone();
    let mut t3 = t1.clone();
    p.b.automorphism(&ab, 5, &mut t1).unwrap();
    p.b.automorphism(&t1, 25, &mut t2).unwrap();
    p.b.automorphism(&ab, 125 % (2 * n), &mut t3).unwrap();
    assert_eq!(
        p.b.download(&t2).unwrap(),
        p.b.download(&t3).unwrap(),
        "automorphism composition"
    );
}

fn crt(ctx: &RingContext, poly: &RnsPoly) -> Vec<BigInt> {
    poly.to_bigint_centered(ctx).expect("CRT")
}

fn product(ctx: &RingContext, basis: &[usize]) -> BigInt {
    basis
        .iter()
        .fold(BigInt::one(), |acc, &i| acc * ctx.modulus(i).value())
}

fn check_basis_conversion<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let from = [0usize, 2, 4];
    let to = [1usize, 3, 5, 6];
    let a = random_poly(&ctx, &from, Representation::Coeff, rng);
    let (ab, ar) = p.up(&a);
    let ob = p.b.basis_convert(&ab, &to).unwrap();
    let or = p.r.basis_convert(&ar, &to).unwrap();
    p.same("basis conversion", &ob, &or);
    // x + u·B with 0 ≤ u < |from|, x ∈ [0, B)
    let bq = product(&ctx, &from);
    let xs = crt(&ctx, &a);
    let all: Vec<usize> = from
        .iter()
        .chain(&to)
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let rns_to = ctx.rns_basis(&to).unwrap();
    let to_prod = product(&ctx, &to);
    for (k, x) in xs.iter().enumerate() {
        let x = x.mod_floor(&bq);
        let res: Vec<u64> = or.limbs().map(|(_, l)| l[k]).collect();
        let y = BigInt::from(rns_to.reconstruct(&res).unwrap());
        let diff = (y - &x).mod_floor(&to_prod);
        let (u, r) = diff.div_rem(&bq);
        assert!(
            r.is_zero() && u < BigInt::from(from.len()),
            "basis conversion bound at {k} (all {all:?})"
        );
    }
}

fn check_rescale<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let basis = TEST_Q;
    let a = random_poly(&ctx, &basis, Representation::Coeff, rng);
    let ql = BigInt::from(ctx.modulus(basis[basis.len() - 1]).value());
    let lower = &basis[..basis.len() - 1];
    let q_lower = product(&ctx, lower);
    let want: Vec<BigInt> = crt(&ctx, &a)
        .iter()
        .map(|x| (x + (&ql >> 1usize)).div_floor(&ql).mod_floor(&q_lower))
        .collect();
    for repr in [Representation::Coeff, Representation::Ntt] {
        let (mut ab, mut ar) = p.up(&a);
        if repr == Representation::Ntt {
            p.b.forward_ntt(&mut ab).unwrap();
            p.r.forward_ntt(&mut ar).unwrap();
        }
        p.b.rescale(&mut ab).unwrap();
        p.r.rescale(&mut ar).unwrap();
        p.same("rescale", &ab, &ar);
        if repr == Representation::Ntt {
            p.r.inverse_ntt(&mut ar).unwrap();
        }
        let got: Vec<BigInt> = crt(&ctx, &ar)
            .iter()
            .map(|x| x.mod_floor(&q_lower))
            .collect();
        assert_eq!(got, want, "rescale is not round(x / q_last) ({repr:?})");
    }
}

fn check_mod_up_down<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let q = &TEST_Q[..4];
    let digit = [2usize, 3];
    let a = random_poly(&ctx, q, Representation::Ntt, rng);
    let (ab, ar) = p.up(&a);
    let ub = p.b.mod_up(&ab, &digit, &TEST_P).unwrap();
    let ur = p.r.mod_up(&ar, &digit, &TEST_P).unwrap();
    p.same("ModUp", &ub, &ur);
    // ModUp value ≡ [a]_D + u·D, 0 ≤ u < |D|
    let mut a_coeff = a.clone();
    p.r.inverse_ntt(&mut a_coeff).unwrap();
    let d_val: Vec<BigInt> = crt(&ctx, &a_coeff.select_limbs(&digit).unwrap());
    let dq = product(&ctx, &digit);
    let mut up = ur.clone();
    p.r.inverse_ntt(&mut up).unwrap();
    let up_basis = up.basis().to_vec();
    let up_prod = product(&ctx, &up_basis);
    for (k, y) in crt(&ctx, &up).iter().enumerate() {
        let diff = (y - d_val[k].mod_floor(&dq)).mod_floor(&up_prod);
        let (u, r) = diff.div_rem(&dq);
        assert!(
            r.is_zero() && u < BigInt::from(digit.len()),
            "ModUp bound at {k}"
        );
    }
    // ModDown: R = round(X/P), so |R·P − X| ≤ P/2 (+1 for float ties)
    let x = random_poly(&ctx, &up_basis, Representation::Ntt, rng);
    let (xb, xr) = p.up(&x);
    let db = p.b.mod_down(&xb, &TEST_P).unwrap();
    let dr = p.r.mod_down(&xr, &TEST_P).unwrap();
    p.same("ModDown", &db, &dr);
    let ob = p.b.mod_down_owned(xb.clone(), &TEST_P).unwrap();
    p.same("ModDown (owned input)", &ob, &dr);
    // Special moduli that do not end the basis (the owned path cannot truncate).
    let ob = p.b.mod_down_owned(xb.clone(), &[2]).unwrap();
    let or = p.r.mod_down(&xr, &[2]).unwrap();
    p.same("ModDown (owned input, inner special modulus)", &ob, &or);
    let mut xc = x.clone();
    p.r.inverse_ntt(&mut xc).unwrap();
    let mut rc = dr.clone();
    p.r.inverse_ntt(&mut rc).unwrap();
    let pp = product(&ctx, &TEST_P);
    let qq = product(&ctx, q);
    let qp = &qq * &pp;
    for (xk, rk) in crt(&ctx, &xc).iter().zip(crt(&ctx, &rc)) {
        assert_rounded("ModDown", &(rk * &pp - xk), &pp, &qp);
    }
}

/// `diff = R·D − X` of a division `R = round(X/D)` computed modulo `m`: its centred
/// representative is at most `D/2` (+1 for float ties).
fn assert_rounded(what: &str, diff: &BigInt, d: &BigInt, m: &BigInt) {
    let mut diff = diff.mod_floor(m);
    if diff > (m >> 1usize) {
        diff -= m;
    }
    let bound = (d >> 1usize) + BigInt::from(1);
    assert!(
        diff.abs() <= bound,
        "{what} error {} bits",
        diff.abs().bits()
    );
}

fn check_mod_down_rescale<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let q = &TEST_Q[..4];
    let qp: Vec<usize> = q.iter().chain(&TEST_P).copied().collect();
    let a = random_poly(&ctx, &qp, Representation::Ntt, rng);
    let b = random_poly(&ctx, q, Representation::Ntt, rng);
    let (ab, ar) = p.up(&a);
    let (bb, br) = p.up(&b);
    let ob = p.b.mod_down_rescale(&ab, bb, &TEST_P).unwrap();
    let or = p.r.mod_down_rescale(&ar, br, &TEST_P).unwrap();
    p.same("ModDown+rescale", &ob, &or);
    assert_eq!(or.basis(), &q[..3]);
    // R = round((A + P·B)/(P·q_3)): |R·P·q_3 − (A + P·B)| ≤ P·q_3/2 (+1 for float
    // ties), modulo Q_2·P·q_3 = Q·P.
    let coeff = |x: &RnsPoly| {
        let mut c = x.clone();
        p.r.inverse_ntt(&mut c).unwrap();
        crt(&ctx, &c)
    };
    let (xa, xb, xr) = (coeff(&a), coeff(&b), coeff(&or));
    let pp = product(&ctx, &TEST_P);
    let d = &pp * product(&ctx, &q[3..]);
    let all = product(&ctx, &qp);
    for k in 0..xa.len() {
        let x = &xa[k] + &pp * &xb[k];
        assert_rounded("ModDown+rescale", &(&xr[k] * &d - x), &d, &all);
    }
    // Bases that do not fit are refused.
    let (ab, _) = p.up(&a);
    let (bb, _) = p.up(&random_poly(&ctx, &q[..3], Representation::Ntt, rng));
    assert!(p.b.mod_down_rescale(&ab, bb, &TEST_P).is_err());
}

fn check_mod_raise<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let src = TEST_Q[0];
    let a = random_poly(&ctx, &[src], Representation::Ntt, rng);
    let (ab, ar) = p.up(&a);
    let target: Vec<usize> = TEST_Q.iter().chain(&TEST_P).copied().collect();
    let ub = p.b.mod_raise(&ab, &target).unwrap();
    let ur = p.r.mod_raise(&ar, &target).unwrap();
    p.same("ModRaise", &ub, &ur);
    // Ground truth: the centred residues lifted with `from_signed`.
    let mut ac = a.clone();
    p.r.inverse_ntt(&mut ac).unwrap();
    let q = ctx.modulus(src).value();
    let signed: Vec<i64> = ac
        .limb(0)
        .iter()
        .map(|&x| {
            if x > q / 2 {
                x as i64 - q as i64
            } else {
                x as i64
            }
        })
        .collect();
    let mut want = RnsPoly::from_signed(&ctx, &target, &signed).unwrap();
    p.r.forward_ntt(&mut want).unwrap();
    assert_eq!(ur, want, "ModRaise is not the centred lift");
    // Errors: more than one limb, a target without the source, coefficient form.
    let two = random_poly(&ctx, &TEST_Q[..2], Representation::Ntt, rng);
    assert!(p.b.mod_raise(&p.b.upload(&two).unwrap(), &target).is_err());
    assert!(p.b.mod_raise(&ab, &TEST_P).is_err());
    let mut coeff = ab.clone();
    p.b.inverse_ntt(&mut coeff).unwrap();
    assert!(p.b.mod_raise(&coeff, &target).is_err());
}

fn check_key_switch_inner_product<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let top: Vec<usize> = (0..ctx.num_moduli()).collect();
    let basis = [0usize, 1, 2, 5, 6];
    let digits: Vec<RnsPoly> = (0..3)
        .map(|_| random_poly(&ctx, &basis, Representation::Ntt, rng))
        .collect();
    let key_b: Vec<RnsPoly> = (0..3)
        .map(|_| random_poly(&ctx, &top, Representation::Ntt, rng))
        .collect();
    let key_a: Vec<RnsPoly> = (0..3)
        .map(|_| random_poly(&ctx, &top, Representation::Ntt, rng))
        .collect();
    let up = |v: &[RnsPoly]| -> Vec<B::Poly> { v.iter().map(|x| p.b.upload(x).unwrap()).collect() };
    let (db, kb, ka) = (up(&digits), up(&key_b), up(&key_a));
    let out_b =
        p.b.key_switch_inner_product(&db, &kb, UniformParts::Stored(&ka))
            .unwrap();
    let out_r =
        p.r.key_switch_inner_product(&digits, &key_b, UniformParts::Stored(&key_a))
            .unwrap();
    for (c, key) in [&key_b, &key_a].into_iter().enumerate() {
        p.same("key-switch inner product", &out_b[c], &out_r[c]);
        let mut want = RnsPoly::zero(ctx.n(), &basis, Representation::Ntt);
        for (d, k) in digits.iter().zip(key) {
            p.r.mul_add_assign(&mut want, d, &k.select_limbs(&basis).unwrap())
                .unwrap();
        }
        assert_eq!(out_r[c], want, "key-switch inner product vs mul-add");
    }
    // A seeded key's `a_j`, expanded on use, gives what the stored expansion gives.
    let seed = rng.seed_bytes();
    let expander = SeedExpander::new(&seed);
    let expanded: Vec<RnsPoly> = (0..3)
        .map(|d| {
            let mut a = RnsPoly::zero(ctx.n(), &top, Representation::Ntt);
            for (pos, &i) in top.iter().enumerate() {
                expander.fill(d, i, ctx.modulus(i), a.limb_mut(pos));
            }
            a
        })
        .collect();
    let seeded_b =
        p.b.key_switch_inner_product(&db, &kb, UniformParts::Seeded(&seed))
            .unwrap();
    let seeded_r =
        p.r.key_switch_inner_product(&digits, &key_b, UniformParts::Seeded(&seed))
            .unwrap();
    let stored_r =
        p.r.key_switch_inner_product(&digits, &key_b, UniformParts::Stored(&expanded))
            .unwrap();
    p.same(
        "seeded key-switch inner product",
        &seeded_b[1],
        &seeded_r[1],
    );
    assert_eq!(seeded_r[1], stored_r[1], "seeded vs stored expansion");
    assert_eq!(seeded_r[0], out_r[0], "b part unchanged by the seeding");
    // The seeded pass computes the b part beside the expanded a part.
    p.same(
        "seeded key-switch inner product, b part",
        &seeded_b[0],
        &out_r[0],
    );
    // Of the digits' images under an automorphism (a hoisted rotation's baby step): the
    // same as rotating the digits first, with stored and with seeded keys.
    for rot in [3i64, -1] {
        let k = galois::galois_element_for_rotation(rot, ctx.n());
        let rotated: Vec<RnsPoly> = digits
            .iter()
            .map(|d| p.r.automorphism_new(d, k).unwrap())
            .collect();
        for (what, got, want) in [
            (
                "stored",
                p.b.key_switch_inner_product_automorphism(&db, k, &kb, UniformParts::Stored(&ka)),
                p.r.key_switch_inner_product(&rotated, &key_b, UniformParts::Stored(&key_a)),
            ),
            (
                "seeded",
                p.b.key_switch_inner_product_automorphism(&db, k, &kb, UniformParts::Seeded(&seed)),
                p.r.key_switch_inner_product(&rotated, &key_b, UniformParts::Seeded(&seed)),
            ),
        ] {
            let (got, want) = (got.unwrap(), want.unwrap());
            p.same(
                &format!("{what} inner product of rotated digits, b"),
                &got[0],
                &want[0],
            );
            p.same(
                &format!("{what} inner product of rotated digits, a"),
                &got[1],
                &want[1],
            );
        }
    }
    assert!(
        p.b.key_switch_inner_product_automorphism(&db, 2, &kb, UniformParts::Stored(&ka))
            .is_err(),
        "an even Galois element is refused"
    );
}

/// [`Backend::dot_parts`] against the reference backend and against its definition
/// (one product and `T − 1` multiply-adds per part), for one term, a few, and more
/// terms than one kernel call takes; two and three parts; then its errors.
fn check_dot_parts<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let basis: Vec<usize> = (0..ctx.num_moduli()).collect();
    for (terms, parts) in [(1usize, 2usize), (3, 2), (3, 3), (40, 2)] {
        let xs = random_groups(&ctx, &basis, terms, parts, rng);
        let ys: Vec<RnsPoly> = (0..terms)
            .map(|_| random_poly(&ctx, &basis, Representation::Ntt, rng))
            .collect();
        let xb: Vec<Vec<B::Poly>> = xs
            .iter()
            .map(|g| g.iter().map(|x| p.up(x).0).collect())
            .collect();
        let yb: Vec<B::Poly> = ys.iter().map(|y| p.up(y).0).collect();
        let xb_refs: Vec<&[B::Poly]> = xb.iter().map(Vec::as_slice).collect();
        let yb_refs: Vec<&B::Poly> = yb.iter().collect();
        let xr_refs: Vec<&[RnsPoly]> = xs.iter().map(Vec::as_slice).collect();
        let yr_refs: Vec<&RnsPoly> = ys.iter().collect();
        let got = p.b.dot_parts(&xb_refs, &yb_refs).unwrap();
        let want = p.r.dot_parts(&xr_refs, &yr_refs).unwrap();
        assert_eq!(got.len(), parts);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            p.same(&format!("dot_parts, {terms} terms, part {k}"), g, w);
            let mut direct = p.r.mul_new(&xs[0][k], &ys[0]).unwrap();
            for t in 1..terms {
                p.r.mul_add_assign(&mut direct, &xs[t][k], &ys[t]).unwrap();
            }
            assert_eq!(w, &direct, "dot_parts against its definition");
        }
    }
    let a = random_poly(&ctx, &[0, 1], Representation::Ntt, rng);
    let narrow = random_poly(&ctx, &[0, 2], Representation::Ntt, rng);
    let coeff = random_poly(&ctx, &[0, 1], Representation::Coeff, rng);
    let (ab, _) = p.up(&a);
    let (nb, _) = p.up(&narrow);
    let (cb, _) = p.up(&coeff);
    let pair = [ab.clone(), ab.clone()];
    let single = [ab.clone()];
    assert!(matches!(
        p.b.dot_parts(&[], &[]),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(matches!(
        p.b.dot_parts(&[&pair[..]], &[&ab, &ab]),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(matches!(
        p.b.dot_parts(&[&pair[..], &single[..]], &[&ab, &ab]),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(matches!(
        p.b.dot_parts(&[&pair[..]], &[&nb]),
        Err(MathError::BasisMismatch(_))
    ));
    let coeffs = [cb.clone(), cb.clone()];
    assert!(matches!(
        p.b.dot_parts(&[&coeffs[..]], &[&cb]),
        Err(MathError::ReprMismatch { .. })
    ));
}

/// [`Backend::compress_runs`], [`Backend::expand_runs`] and [`Backend::dot_parts_runs`]:
/// a polynomial in `X^r` (coefficients zero off the multiples of `r`) in NTT form
/// compresses (its words repeat in aligned runs of `r`, the property the sparse-slot
/// diagonals rely on), expands back bit for bit, and sums of products with compressed
/// right factors equal [`Backend::dot_parts`] with the full ones, for one term, a few and
/// more than one kernel call takes, two and three parts; then the errors: a polynomial
/// not in `X^r`, a run that is not a power of two dividing `N`, coefficient form, an
/// uncompressed right factor.
fn check_runs<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let n = ctx.n();
    let basis: Vec<usize> = (0..ctx.num_moduli()).collect();
    let in_x_r = |run: usize, rng: &mut Csprng| {
        let mut y = random_poly(&ctx, &basis, Representation::Coeff, rng);
        for j in 0..basis.len() {
            for (i, w) in y.limb_mut(j).iter_mut().enumerate() {
                if i % run != 0 {
                    *w = 0;
                }
            }
        }
        p.r.forward_ntt(&mut y).unwrap();
        y
    };
    for (run, terms, parts) in [(2usize, 1usize, 2usize), (2, 40, 2), (4, 3, 3), (8, 3, 2)] {
        let xs = random_groups(&ctx, &basis, terms, parts, rng);
        let ys: Vec<RnsPoly> = (0..terms).map(|_| in_x_r(run, rng)).collect();
        let compressed: Vec<B::Poly> = ys
            .iter()
            .map(|y| p.b.compress_runs(&p.up(y).0, run).unwrap())
            .collect();
        for (c, y) in compressed.iter().zip(&ys) {
            let back = p.b.expand_runs(c, run).unwrap();
            p.same(&format!("expand_runs(compress_runs(y, {run}))"), &back, y);
        }
        let xb: Vec<Vec<B::Poly>> = xs
            .iter()
            .map(|g| g.iter().map(|x| p.up(x).0).collect())
            .collect();
        let xb_refs: Vec<&[B::Poly]> = xb.iter().map(Vec::as_slice).collect();
        let cb_refs: Vec<&B::Poly> = compressed.iter().collect();
        let got = p.b.dot_parts_runs(&xb_refs, &cb_refs, run).unwrap();
        let xr_refs: Vec<&[RnsPoly]> = xs.iter().map(Vec::as_slice).collect();
        let yr_refs: Vec<&RnsPoly> = ys.iter().collect();
        let want = p.r.dot_parts(&xr_refs, &yr_refs).unwrap();
        assert_eq!(got.len(), parts);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            p.same(
                &format!("dot_parts_runs, run {run}, {terms} terms, part {k}"),
                g,
                w,
            );
        }
    }
    let dense = p.up(&random_poly(&ctx, &basis, Representation::Ntt, rng)).0;
    assert!(
        matches!(
            p.b.compress_runs(&dense, 2),
            Err(MathError::InvalidArgument(_))
        ),
        "a polynomial not in X^2 does not compress"
    );
    let y = p.up(&in_x_r(2, rng)).0;
    for bad in [0, 3, 2 * n] {
        assert!(
            matches!(
                p.b.compress_runs(&y, bad),
                Err(MathError::InvalidArgument(_))
            ),
            "run {bad} refused"
        );
    }
    let coeff = p
        .up(&random_poly(&ctx, &basis, Representation::Coeff, rng))
        .0;
    assert!(matches!(
        p.b.compress_runs(&coeff, 2),
        Err(MathError::ReprMismatch { .. })
    ));
    let c = p.b.compress_runs(&y, 2).unwrap();
    assert!(matches!(
        p.b.expand_runs(&c, 4),
        Err(MathError::InvalidArgument(_))
    ));
    let x = [dense.clone(), dense.clone()];
    assert!(
        matches!(
            p.b.dot_parts_runs(&[&x[..]], &[&y], 2),
            Err(MathError::InvalidArgument(_))
        ),
        "an uncompressed right factor refused"
    );
    assert!(
        matches!(
            p.b.dot_parts_runs(&[&x[..]], &[&c], 4),
            Err(MathError::InvalidArgument(_))
        ),
        "a right factor compressed by another run refused"
    );
}

fn check_errors<B: Backend>(p: &Pair<'_, B>, rng: &mut Csprng) {
    let ctx = p.r.context().clone();
    let a = random_poly(&ctx, &[0, 1], Representation::Ntt, rng);
    let b = random_poly(&ctx, &[0, 2], Representation::Ntt, rng);
    let c = random_poly(&ctx, &[0, 1], Representation::Coeff, rng);
    let (mut ab, _) = p.up(&a);
    let (bb, _) = p.up(&b);
    let (cb, _) = p.up(&c);
    assert!(matches!(
        p.b.add_assign(&mut ab, &bb),
        Err(MathError::BasisMismatch(_))
    ));
    assert!(matches!(
        p.b.add_assign(&mut ab, &cb),
        Err(MathError::ReprMismatch { .. })
    ));
    let mut cc = cb.clone();
    assert!(matches!(
        p.b.mul_assign(&mut cc, &cb),
        Err(MathError::ReprMismatch { .. })
    ));
    assert!(matches!(
        p.b.mul_new(&cc, &cb),
        Err(MathError::ReprMismatch { .. })
    ));
    assert!(matches!(
        p.b.forward_ntt(&mut ab),
        Err(MathError::ReprMismatch { .. })
    ));
    let mut out = ab.clone();
    assert!(matches!(
        p.b.automorphism(&ab, 4, &mut out),
        Err(MathError::InvalidGaloisElement { .. })
    ));
    assert!(matches!(
        p.b.automorphism_new(&ab, 4),
        Err(MathError::InvalidGaloisElement { .. })
    ));
    assert!(matches!(
        p.b.scalar_mul_assign(&mut ab, &[1]),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(p.b.scalar_mul_assign(&mut ab, &[u64::MAX, 1]).is_err());
    let narrow = p.b.select_limbs(&ab, &[0]).unwrap();
    assert!(matches!(
        p.b.scalar_mul_add_assign(&mut ab, &narrow, &[1, 1]),
        Err(MathError::BasisMismatch(_))
    ));
    let mut bad = a.clone();
    bad.limb_mut(1)[3] = ctx.modulus(1).value();
    assert!(matches!(
        p.b.upload(&bad),
        Err(MathError::ResidueOutOfRange { .. })
    ));
    assert!(matches!(
        p.b.upload_owned(bad),
        Err(MathError::ResidueOutOfRange { .. })
    ));
    assert_eq!(
        p.b.download(&p.b.upload_owned(a.clone()).unwrap()).unwrap(),
        a
    );
    assert!(p.b.zero(&[1, 0], Representation::Coeff).is_err());
    assert!(p.b.zero(&[99], Representation::Coeff).is_err());
    let mut single = p.b.select_limbs(&ab, &[0]).unwrap();
    assert!(p.b.rescale(&mut single).is_err());
    assert!(
        p.b.basis_convert(&cb, &[1, 2]).is_err(),
        "intersecting bases must be refused"
    );
    assert!(
        p.b.mod_down(&ab, &[0, 1]).is_err(),
        "ModDown needs Q limbs left"
    );
    assert!(
        p.b.mod_down_owned(ab.clone(), &[0, 1]).is_err(),
        "ModDown (owned input) needs Q limbs left"
    );
    assert!(
        p.b.mod_down_owned(ab.clone(), &[7]).is_err(),
        "ModDown (owned input): special modulus outside the basis"
    );
    assert!(
        p.b.mod_up(&ab, &[3], &TEST_P).is_err(),
        "digit outside the basis"
    );
    assert!(
        p.b.key_switch_inner_product(&[ab.clone()], &[], UniformParts::Stored(&[]))
            .is_err()
    );
    assert!(
        p.b.key_switch_inner_product(&[ab.clone()], &[ab.clone()], UniformParts::Stored(&[]))
            .is_err(),
        "missing a_j"
    );
}
