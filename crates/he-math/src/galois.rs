//! Galois automorphisms `σ_k : X ↦ X^k` of `Z_q[X]/(X^N + 1)`, `k` odd in `[1, 2N)`.
//!
//! In the coefficient representation `σ_k` sends `a_i X^i` to `± a_i X^{ik mod N}` (sign
//! `-` when `ik mod 2N ≥ N`). In the NTT representation of [`crate::ntt`] (evaluations at
//! `ψ^{2·bitrev(j)+1}`), `σ_k(a)(x) = a(x^k)` only permutes the evaluation points, so it
//! is the index permutation returned by [`ntt_permutation`], the same for every prime.
//!
//! CKKS slot rotations use `k = 5^r mod 2N` and conjugation `k = 2N - 1`
//! (Cheon–Kim–Kim–Song, Asiacrypt 2017, §4; Lattigo `ring/automorphism.go`).

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use crate::ntt::bit_reverse;

/// Checks that `k` is an odd integer in `[1, 2N)`.
///
/// # Errors
/// [`MathError::InvalidGaloisElement`] otherwise.
pub fn check_galois_element(k: usize, n: usize) -> Result<()> {
    if k % 2 == 1 && k < 2 * n {
        Ok(())
    } else {
        Err(MathError::InvalidGaloisElement { k, n })
    }
}

/// Galois element `5^r mod 2N` of a left rotation by `r` slots (negative `r`: right
/// rotation) in a CKKS encoding with `N/2` slots.
pub fn galois_element_for_rotation(r: i64, n: usize) -> usize {
    let two_n = 2 * n as u64;
    let order = (n / 2) as i64; // the order of 5 in Z_{2N}^*
    let e = r.rem_euclid(order) as u64;
    let mut acc = 1u64;
    let mut base = 5u64;
    let mut e2 = e;
    while e2 > 0 {
        if e2 & 1 == 1 {
            acc = acc * base % two_n;
        }
        base = base * base % two_n;
        e2 >>= 1;
    }
    acc as usize
}

/// Galois element `2N - 1` of complex conjugation of the CKKS slots.
pub fn galois_element_conjugation(n: usize) -> usize {
    2 * n - 1
}

/// Composition `σ_a ∘ σ_b = σ_{ab mod 2N}`.
pub fn compose(a: usize, b: usize, n: usize) -> usize {
    (a * b) % (2 * n)
}

/// Inverse `k^{-1} mod 2N` of a Galois element.
///
/// # Errors
/// [`MathError::InvalidGaloisElement`] if `k` is not odd in `[1, 2N)`.
pub fn inverse(k: usize, n: usize) -> Result<usize> {
    check_galois_element(k, n)?;
    // The group has order N (power of two), so k^{N-1} = k^{-1}.
    let two_n = 2 * n;
    let (mut acc, mut base, mut e) = (1usize, k, n - 1);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * base % two_n;
        }
        base = base * base % two_n;
        e >>= 1;
    }
    Ok(acc)
}

/// Applies `σ_k` to one limb in the coefficient representation: `out = a(X^k)`.
///
/// # Errors
/// [`MathError::InvalidGaloisElement`] or [`MathError::LengthMismatch`].
pub fn automorphism_coeff(a: &[u64], k: usize, m: &Modulus, out: &mut [u64]) -> Result<()> {
    let n = a.len();
    check_galois_element(k, n)?;
    if out.len() != n {
        return Err(MathError::LengthMismatch {
            expected: n,
            got: out.len(),
        });
    }
    let mask = 2 * n - 1;
    let mut idx = 0usize;
    for &c in a {
        let j = idx & (n - 1);
        out[j] = if idx & n == 0 { c } else { m.neg(c) };
        idx = (idx + k) & mask;
    }
    Ok(())
}

/// Index permutation of `σ_k` in the NTT representation: `out[i] = in[perm[i]]`.
///
/// With `e_i = 2·bitrev(i) + 1`, `perm[i] = bitrev((k·e_i mod 2N − 1) / 2)`.
///
/// # Errors
/// [`MathError::InvalidGaloisElement`].
pub fn ntt_permutation(k: usize, n: usize) -> Result<Vec<u32>> {
    check_galois_element(k, n)?;
    let log_n = n.trailing_zeros();
    let mask = 2 * n - 1;
    Ok((0..n)
        .map(|i| {
            let e = 2 * bit_reverse(i, log_n) + 1;
            let ek = (e * k) & mask;
            bit_reverse((ek - 1) >> 1, log_n) as u32
        })
        .collect())
}

/// Applies a permutation from [`ntt_permutation`]: `out[i] = a[perm[i]]`. A block
/// permutation ([`is_block_permutation`], as every [`ntt_permutation`] is) moves whole
/// 8-word blocks with AVX-512 where the CPU has it; any other permutation is applied
/// word by word.
///
/// # Panics
/// If lengths differ (callers check them) or an index is out of range.
#[inline]
pub fn apply_permutation(a: &[u64], perm: &[u32], out: &mut [u64]) {
    assert!(a.len() == perm.len() && out.len() == perm.len());
    if is_block_permutation(perm) {
        crate::simd::permute_blocks(a, perm, out);
        return;
    }
    for (o, &p) in out.iter_mut().zip(perm) {
        *o = a[p as usize];
    }
}

/// Whether `perm` (length a multiple of 8) maps every aligned block of 8 output
/// positions into one aligned block of 8 input positions, all indices in range. The
/// permutations of [`ntt_permutation`] do: `perm(i) = br(k·br(i) + (k−1)/2 mod N)`,
/// and the low bits of `k·m + c` depend only on the low bits of `m`, which bit reversal
/// swaps with the high ones.
pub fn is_block_permutation(perm: &[u32]) -> bool {
    perm.len().is_multiple_of(8)
        && perm.chunks_exact(8).all(|b| {
            let base = b[0] >> 3;
            b.iter()
                .all(|&p| p >> 3 == base && (p as usize) < perm.len())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntt::NttPlan;
    use crate::primes::ntt_primes;
    use proptest::prelude::*;

    #[test]
    fn ntt_permutations_move_whole_blocks() {
        for log_n in [3u32, 10, 12] {
            let n = 1usize << log_n;
            let a: Vec<u64> = (0..n as u64).map(|i| i * 7919 + 3).collect();
            for k in [5, galois_element_for_rotation(-3, n), 2 * n - 1] {
                let perm = ntt_permutation(k, n).unwrap();
                assert!(is_block_permutation(&perm), "n {n}, k {k}");
                let want: Vec<u64> = perm.iter().map(|&p| a[p as usize]).collect();
                let mut out = vec![0; n];
                apply_permutation(&a, &perm, &mut out);
                assert_eq!(out, want);
                crate::simd::permute_blocks(&a, &perm, &mut out);
                assert_eq!(out, want);
            }
        }
        // Any other permutation is applied word by word.
        let perm: Vec<u32> = (0..16u32).map(|i| (i * 5) % 16).collect();
        assert!(!is_block_permutation(&perm));
        let a: Vec<u64> = (100..116).collect();
        let mut out = vec![0; 16];
        apply_permutation(&a, &perm, &mut out);
        assert!(out.iter().zip(&perm).all(|(&o, &p)| o == a[p as usize]));
        assert!(!is_block_permutation(&[0, 1, 2, 3, 4, 5, 6, 8]));
    }

    #[test]
    fn rotation_elements() {
        let n = 1 << 10;
        assert_eq!(galois_element_for_rotation(0, n), 1);
        assert_eq!(galois_element_for_rotation(1, n), 5);
        let r = galois_element_for_rotation(-1, n);
        assert_eq!(compose(r, 5, n), 1);
        assert_eq!(inverse(5, n).unwrap(), r);
        assert!(check_galois_element(4, n).is_err());
        assert!(check_galois_element(2 * n + 1, n).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn ntt_and_coeff_agree_and_compose(logn in 4u32..10, k1 in any::<usize>(), k2 in any::<usize>(), seed in any::<u64>()) {
            let n = 1usize << logn;
            let (k1, k2) = ((2 * (k1 % n) + 1), (2 * (k2 % n) + 1));
            let q = ntt_primes(50, n, 1, &[]).unwrap()[0];
            let plan = NttPlan::new(n, q).unwrap();
            let m = *plan.modulus();
            let a: Vec<u64> = (0..n as u64).map(|i| (i.wrapping_mul(seed | 1) ^ seed) % q).collect();
            // coefficient-domain σ_k1 then NTT == NTT then permutation
            let mut c = vec![0; n];
            automorphism_coeff(&a, k1, &m, &mut c).unwrap();
            plan.forward(&mut c);
            let mut an = a.clone();
            plan.forward(&mut an);
            let mut p = vec![0; n];
            apply_permutation(&an, &ntt_permutation(k1, n).unwrap(), &mut p);
            prop_assert_eq!(&p, &c);
            // σ_k2 ∘ σ_k1 = σ_{k1 k2}
            let mut t1 = vec![0; n];
            let mut t2 = vec![0; n];
            automorphism_coeff(&a, k1, &m, &mut t1).unwrap();
            automorphism_coeff(&t1, k2, &m, &mut t2).unwrap();
            let mut t3 = vec![0; n];
            automorphism_coeff(&a, compose(k1, k2, n), &m, &mut t3).unwrap();
            prop_assert_eq!(&t2, &t3);
            // σ_k ∘ σ_{k^{-1}} = id
            let mut t4 = vec![0; n];
            automorphism_coeff(&t1, inverse(k1, n).unwrap(), &m, &mut t4).unwrap();
            prop_assert_eq!(&t4, &a);
        }
    }
}
