//! Word-size modular arithmetic: [`Modulus`] with Barrett and Shoup multiplication.
//!
//! Follows the standard constructions used by SEAL (`util/uintarithsmallmod.h`) and
//! Lattigo (`ring/modular_reduction.go`): Barrett reduction with the 128-bit constant
//! `floor(2^128 / q)`, and Shoup's multiplication by a fixed operand `w` with the
//! precomputed `w' = floor(w · 2^64 / q)` (Shoup, NTL; Harvey, "Faster arithmetic for
//! number-theoretic transforms", J. Symb. Comp. 2014).
//!
//! Supported moduli: `2 ≤ q < 2^61`, so that lazy values in `[0, 4q)` fit in 63 bits.

use crate::error::{MathError, Result};
use serde::{Deserialize, Serialize};

/// Largest supported modulus size in bits.
pub const MAX_MODULUS_BITS: u32 = 61;

/// A word-size modulus `q` (`2 ≤ q < 2^61`) with precomputed reduction constants.
///
/// All "fully reduced" operations take inputs in `[0, q)` and return outputs in `[0, q)`.
/// The `*_lazy` operations return values in `[0, 2q)` and are meant for hot loops that
/// reduce once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Modulus {
    q: u64,
    bits: u32,
    /// `floor(2^128 / q)` as (low word, high word).
    ratio: [u64; 2],
    /// `floor((2^(bits+63) − 1) / q)`, the one-word constant of [`Self::reduce_product`].
    mu: u64,
}

impl TryFrom<u64> for Modulus {
    type Error = MathError;
    fn try_from(q: u64) -> Result<Self> {
        Self::new(q)
    }
}

impl From<Modulus> for u64 {
    fn from(m: Modulus) -> u64 {
        m.q
    }
}

impl Modulus {
    /// Creates a modulus.
    ///
    /// # Errors
    /// [`MathError::ModulusOutOfRange`] unless `2 ≤ q < 2^61`.
    pub fn new(q: u64) -> Result<Self> {
        if !(2..(1u64 << MAX_MODULUS_BITS)).contains(&q) {
            return Err(MathError::ModulusOutOfRange(q));
        }
        let ratio = u128::MAX / q as u128 + u128::from(u128::MAX % q as u128 == q as u128 - 1);
        let bits = 64 - q.leading_zeros();
        // q ≥ 2^(bits−1), so the quotient is below 2^64.
        let mu = (((1u128 << (bits + 63)) - 1) / q as u128) as u64;
        Ok(Self {
            q,
            bits,
            ratio: [ratio as u64, (ratio >> 64) as u64],
            mu,
        })
    }

    /// The modulus value `q`.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.q
    }

    /// Size of `q` in bits (`ceil(log2(q + 1))`).
    #[inline(always)]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// `floor(2^128 / q)` as (low word, high word), the Barrett constant.
    #[inline(always)]
    pub fn barrett_ratio(&self) -> [u64; 2] {
        self.ratio
    }

    /// `(a + b) mod q` for `a, b < q`.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        debug_assert!(a < self.q && b < self.q);
        let s = a + b;
        if s >= self.q { s - self.q } else { s }
    }

    /// `(a - b) mod q` for `a, b < q`.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        debug_assert!(a < self.q && b < self.q);
        if a >= b { a - b } else { a + self.q - b }
    }

    /// `(-a) mod q` for `a < q`.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        debug_assert!(a < self.q);
        if a == 0 { 0 } else { self.q - a }
    }

    /// Barrett reduction of a 128-bit value `x < 2^128 ` to `[0, q)`.
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let r = self.reduce_u128_lazy(x);
        if r >= self.q { r - self.q } else { r }
    }

    /// Barrett reduction of a 128-bit value to `[0, 2q)`.
    ///
    /// The quotient estimate `floor(x · floor(2^128/q) / 2^128)` is at most one below
    /// `floor(x / q)`, so one correction suffices for the full reduction.
    #[inline(always)]
    pub fn reduce_u128_lazy(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        let [r0, r1] = self.ratio;
        let c = ((x0 as u128 * r0 as u128) >> 64) as u64;
        let t = x0 as u128 * r1 as u128 + c as u128;
        let t2 = x1 as u128 * r0 as u128 + (t as u64) as u128;
        let carry = (t >> 64) + (t2 >> 64);
        let qest = (x1 as u128 * r1 as u128 + carry) as u64;
        x0.wrapping_sub(qest.wrapping_mul(self.q))
    }

    /// `x mod q` for `x < 2^(bits + 63)` by Barrett reduction with a one-word constant:
    /// the quotient estimate `floor(t · μ / 2^64)`, `t = floor(x / 2^(bits−1))` (below
    /// 2^64), `μ = floor((2^(bits+63) − 1) / q)`, is at most 3 below `floor(x / q)`, so
    /// two branch-free conditional subtractions (of `2q`, then `q`) finish. Two word
    /// products instead of the five of [`Self::reduce_u128`] (Barrett, Crypto 1986; the
    /// same shifted estimate as the IFMA kernels of `crate::simd`).
    ///
    /// The bound covers `a·b + c` for `a, b, c < q` (the scalar pointwise products of
    /// `crate::simd`), and a sum of up to `2^(63 − bits)` products of residues plus one
    /// residue. For one reduction per long sum [`Self::reduce_u128`] measured faster (its
    /// single correction is predictable; docs/results/ckks.md).
    #[inline(always)]
    pub fn reduce_product(&self, x: u128) -> u64 {
        debug_assert!(x >> (self.bits + 63) == 0, "reduce_product input too large");
        let t = (x >> (self.bits - 1)) as u64;
        let qe = ((t as u128 * self.mu as u128) >> 64) as u64;
        let r = (x as u64).wrapping_sub(qe.wrapping_mul(self.q));
        // Branch-free: the estimate's deficit (0 to 3) is data-dependent, so a branch
        // would be mispredicted; `min` with the wrapped difference compiles to cmov.
        let r = r.min(r.wrapping_sub(self.q << 1));
        r.min(r.wrapping_sub(self.q))
    }

    /// `x mod q` for any 64-bit `x`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        if x < self.q {
            x
        } else {
            self.reduce_u128(x as u128)
        }
    }

    /// Reduces a signed integer to `[0, q)`.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 { self.neg(r) } else { r }
    }

    /// Reduces a signed 128-bit integer to `[0, q)`.
    #[inline]
    pub fn reduce_i128(&self, x: i128) -> u64 {
        let r = self.reduce_u128(x.unsigned_abs());
        if x < 0 { self.neg(r) } else { r }
    }

    /// Centred representative of `a ∈ [0, q)` in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.q / 2 {
            a as i64 - self.q as i64
        } else {
            a as i64
        }
    }

    /// `(a · b) mod q` by Barrett reduction, for `a, b < 2^64` with `a · b < 2^128`.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `(a · b) mod q` in `[0, 2q)` (lazy Barrett).
    #[inline(always)]
    pub fn mul_lazy(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128_lazy(a as u128 * b as u128)
    }

    /// `(a · b + c) mod q` for `a, b, c < q`.
    #[inline(always)]
    pub fn mul_add(&self, a: u64, b: u64, c: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128 + c as u128)
    }

    /// Shoup precomputation `w' = floor(w · 2^64 / q)` for a fixed operand `w < q`.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        debug_assert!(w < self.q);
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `(a · w) mod q` in `[0, 2q)` with Shoup's method, for any `a < 2^64`, `w < q`
    /// and `w_shoup = self.shoup(w)`.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let qhat = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(self.q))
    }

    /// `(a · w) mod q` in `[0, q)` with Shoup's method (see [`Self::mul_shoup_lazy`]).
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.q { r - self.q } else { r }
    }

    /// Brings a lazy value in `[0, 2q)` to `[0, q)`.
    #[inline(always)]
    pub fn reduce_once(&self, a: u64) -> u64 {
        debug_assert!(a < 2 * self.q);
        if a >= self.q { a - self.q } else { a }
    }

    /// `a^e mod q` by square-and-multiply.
    pub fn pow(&self, a: u64, mut e: u64) -> u64 {
        let mut base = self.reduce(a);
        let mut acc = 1 % self.q;
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        acc
    }

    /// `a^{-1} mod q` by the extended Euclidean algorithm.
    ///
    /// # Errors
    /// [`MathError::NotInvertible`] if `gcd(a, q) ≠ 1`.
    pub fn inv(&self, a: u64) -> Result<u64> {
        let a = self.reduce(a);
        let (mut r0, mut r1) = (self.q as i128, a as i128);
        let (mut t0, mut t1) = (0i128, 1i128);
        while r1 != 0 {
            let qt = r0 / r1;
            (r0, r1) = (r1, r0 - qt * r1);
            (t0, t1) = (t1, t0 - qt * t1);
        }
        if r0 != 1 {
            return Err(MathError::NotInvertible {
                value: a,
                q: self.q,
            });
        }
        Ok(self.reduce_i128(t0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn modulus_strategy() -> impl Strategy<Value = Modulus> {
        (2u64..(1u64 << 61)).prop_map(|q| Modulus::new(q).unwrap())
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(Modulus::new(0).is_err());
        assert!(Modulus::new(1).is_err());
        assert!(Modulus::new(1 << 61).is_err());
        assert!(Modulus::new((1 << 61) - 1).is_ok());
    }

    #[test]
    fn one_word_barrett_at_the_edges() {
        // Powers of two (the largest μ), the smallest modulus, the largest, and primes of
        // the presets' sizes, at the largest input the bound allows and at q² − 1.
        for q in [
            2u64,
            3,
            1 << 40,
            (1 << 60) + 1,
            (1 << 61) - 1,
            1_152_921_504_606_584_833,
        ] {
            let m = Modulus::new(q).unwrap();
            let top = 1u128 << (m.bits() + 63);
            for x in [
                0,
                1,
                q as u128,
                top - 1,
                top - q as u128,
                (q as u128 - 1).pow(2),
            ] {
                assert_eq!(
                    m.reduce_product(x) as u128,
                    x % q as u128,
                    "q = {q}, x = {x}"
                );
            }
        }
    }

    #[test]
    fn not_invertible_is_error() {
        let m = Modulus::new(12).unwrap();
        assert!(matches!(m.inv(4), Err(MathError::NotInvertible { .. })));
        assert_eq!(m.inv(5).unwrap(), 5);
    }

    proptest! {
        #[test]
        fn barrett_matches_u128(m in modulus_strategy(), x in any::<u128>()) {
            prop_assert_eq!(m.reduce_u128(x) as u128, x % m.value() as u128);
        }

        #[test]
        fn one_word_barrett_matches_u128(m in modulus_strategy(), x in any::<u128>(), a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let q = m.value();
            let top = 1u128 << (m.bits() + 63);
            let x = x % top;
            prop_assert_eq!(m.reduce_product(x) as u128, x % q as u128);
            prop_assert_eq!(m.reduce_product(top - 1) as u128, (top - 1) % q as u128);
            let (a, b, c) = (a % q, b % q, c % q);
            prop_assert_eq!(m.reduce_product(a as u128 * b as u128 + c as u128), m.mul_add(a, b, c));
        }

        #[test]
        fn ring_laws(m in modulus_strategy(), a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let q = m.value();
            let (a, b, c) = (a % q, b % q, c % q);
            prop_assert_eq!(m.add(a, b), m.add(b, a));
            prop_assert_eq!(m.mul(a, b), m.mul(b, a));
            prop_assert_eq!(m.mul(m.mul(a, b), c), m.mul(a, m.mul(b, c)));
            prop_assert_eq!(m.add(m.add(a, b), c), m.add(a, m.add(b, c)));
            prop_assert_eq!(m.mul(a, m.add(b, c)), m.add(m.mul(a, b), m.mul(a, c)));
            prop_assert_eq!(m.sub(m.add(a, b), b), a);
            prop_assert_eq!(m.add(a, m.neg(a)), 0);
            prop_assert_eq!(m.mul_add(a, b, c), m.add(m.mul(a, b), c));
            prop_assert_eq!(m.mul(a, b) as u128, (a as u128 * b as u128) % q as u128);
        }

        #[test]
        fn shoup_matches_barrett(m in modulus_strategy(), a in any::<u64>(), w in any::<u64>()) {
            let w = w % m.value();
            let ws = m.shoup(w);
            let lazy = m.mul_shoup_lazy(a, w, ws);
            prop_assert!(lazy < 2 * m.value());
            prop_assert_eq!(m.mul_shoup(a, w, ws), m.mul(m.reduce(a), w));
        }

        #[test]
        fn inverse_and_pow(m in modulus_strategy(), a in any::<u64>(), e in 0u64..1000) {
            let a = m.reduce(a);
            if let Ok(ai) = m.inv(a) {
                prop_assert_eq!(m.mul(a, ai), 1 % m.value());
            }
            let mut acc = 1 % m.value();
            for _ in 0..e { acc = m.mul(acc, a); }
            prop_assert_eq!(m.pow(a, e), acc);
        }

        #[test]
        fn signed_reduction(m in modulus_strategy(), x in any::<i64>()) {
            let r = m.reduce_i64(x);
            prop_assert_eq!(r as i128, (x as i128).rem_euclid(m.value() as i128));
            let c = m.center(r);
            prop_assert!(2 * (c.unsigned_abs() as u128) <= m.value() as u128);
            prop_assert_eq!(m.reduce_i64(c), r);
        }
    }
}
