//! Primality testing and generation of NTT-friendly primes `q ≡ 1 (mod 2N)`.
//!
//! Generation follows the deterministic search of Lattigo (`ring/primes.go`,
//! `NTTFriendlyPrimesGenerator`): walk from `2^bits` in steps of `2N`, downwards,
//! upwards, or alternating, and keep the primes. The order is fully deterministic.

use crate::error::{MathError, Result};
use crate::modulus::MAX_MODULUS_BITS;

/// Deterministic Miller–Rabin test, exact for every 64-bit integer
/// (bases 2..37, Jaeschke 1993 / Sorenson–Webster 2015).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const SMALL: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for p in SMALL {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, a);
            }
            a = mulmod(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for a in SMALL {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// Direction in which [`PrimeGenerator`] walks away from `2^bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Primes below `2^bits`, largest first: every prime has exactly `bits` bits.
    Down,
    /// Primes above `2^bits`, smallest first (they have `bits + 1` bits).
    Up,
    /// Alternately the next prime below and the next prime above `2^bits`, so the
    /// primes stay as close to `2^bits` as possible (useful for CKKS scaling primes,
    /// whose ratio to Δ = 2^bits should be close to 1).
    Alternating,
}

/// Deterministic generator of distinct NTT-friendly primes `q ≡ 1 (mod 2N)` near `2^bits`.
#[derive(Debug, Clone)]
pub struct PrimeGenerator {
    two_n: u64,
    bits: u32,
    next_down: Option<u64>,
    next_up: Option<u64>,
    direction: Direction,
    turn_up: bool,
}

impl PrimeGenerator {
    /// Creates a generator of primes `q ≡ 1 (mod 2N)` near `2^bits`.
    ///
    /// # Errors
    /// [`MathError::PrimeBitsOutOfRange`] unless `10 ≤ bits ≤ 61` (`60` for [`Direction::Up`]
    /// and [`Direction::Alternating`], whose upward primes have `bits + 1` bits), and
    /// [`MathError::InvalidRingDegree`] unless `N` is a power of two with `2N < 2^bits`.
    pub fn new(bits: u32, n: usize, direction: Direction) -> Result<Self> {
        let max = if direction == Direction::Down {
            MAX_MODULUS_BITS
        } else {
            MAX_MODULUS_BITS - 1
        };
        if !(10..=max).contains(&bits) {
            return Err(MathError::PrimeBitsOutOfRange(bits));
        }
        if !n.is_power_of_two() || (2 * n as u64) >= (1u64 << (bits - 1)) {
            return Err(MathError::InvalidRingDegree(n));
        }
        let two_n = 2 * n as u64;
        let base = 1u64 << bits;
        Ok(Self {
            two_n,
            bits,
            next_down: Some(base - two_n + 1),
            next_up: Some(base + two_n + 1),
            direction,
            turn_up: false,
        })
    }

    fn step_down(&mut self) -> Option<u64> {
        let lower = 1u64 << (self.bits - 1);
        while let Some(c) = self.next_down {
            self.next_down = c.checked_sub(self.two_n).filter(|&x| x > lower);
            if is_prime(c) {
                return Some(c);
            }
        }
        None
    }

    fn step_up(&mut self) -> Option<u64> {
        let upper = 1u64 << (self.bits + 1);
        while let Some(c) = self.next_up {
            self.next_up = Some(c + self.two_n).filter(|&x| x < upper);
            if is_prime(c) {
                return Some(c);
            }
        }
        None
    }

    /// Bits of the target `2^bits`.
    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl Iterator for PrimeGenerator {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        match self.direction {
            Direction::Down => self.step_down(),
            Direction::Up => self.step_up(),
            Direction::Alternating => {
                self.turn_up = !self.turn_up;
                if self.turn_up {
                    self.step_down().or_else(|| self.step_up())
                } else {
                    self.step_up().or_else(|| self.step_down())
                }
            }
        }
    }
}

/// The `count` largest NTT-friendly primes of exactly `bits` bits for ring degree `n`
/// (`q ≡ 1 mod 2n`), in decreasing order, skipping any prime in `exclude`.
///
/// # Errors
/// As [`PrimeGenerator::new`], and [`MathError::NotEnoughPrimes`] if fewer than
/// `count` such primes exist.
pub fn ntt_primes(bits: u32, n: usize, count: usize, exclude: &[u64]) -> Result<Vec<u64>> {
    let primes: Vec<u64> = PrimeGenerator::new(bits, n, Direction::Down)?
        .filter(|p| !exclude.contains(p))
        .take(count)
        .collect();
    if primes.len() < count {
        return Err(MathError::NotEnoughPrimes {
            bits,
            two_n: 2 * n as u64,
            wanted: count,
            found: primes.len(),
        });
    }
    Ok(primes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miller_rabin_small() {
        let sieve: Vec<u64> = (0..2000)
            .filter(|&n| n >= 2 && (2..n).all(|d| n % d != 0))
            .collect();
        let mr: Vec<u64> = (0..2000).filter(|&n| is_prime(n)).collect();
        assert_eq!(sieve, mr);
        // Strong pseudoprimes to several bases and a known large prime.
        assert!(!is_prime(3_215_031_751));
        assert!(!is_prime(3_825_123_056_546_413_051));
        assert!(is_prime((1u64 << 61) - 1));
    }

    #[test]
    fn primes_are_ntt_friendly_distinct_and_sized() {
        for &(bits, logn) in &[(42u32, 16u32), (50, 16), (60, 16), (30, 10)] {
            let n = 1usize << logn;
            let ps = ntt_primes(bits, n, 8, &[]).unwrap();
            for w in ps.windows(2) {
                assert!(w[0] > w[1]);
            }
            for &p in &ps {
                assert!(is_prime(p));
                assert_eq!(p % (2 * n as u64), 1);
                assert_eq!(64 - p.leading_zeros(), bits);
            }
            let skip = ntt_primes(bits, n, 3, &ps[..2]).unwrap();
            assert_eq!(skip[0], ps[2]);
        }
    }

    #[test]
    fn alternating_is_deterministic_and_close() {
        let a: Vec<u64> = PrimeGenerator::new(42, 1 << 16, Direction::Alternating)
            .unwrap()
            .take(6)
            .collect();
        let b: Vec<u64> = PrimeGenerator::new(42, 1 << 16, Direction::Alternating)
            .unwrap()
            .take(6)
            .collect();
        assert_eq!(a, b);
        assert!(a[0] < (1 << 42) && a[1] > (1 << 42));
        let mut s = a.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            ntt_primes(9, 16, 1, &[]),
            Err(MathError::PrimeBitsOutOfRange(9))
        ));
        assert!(matches!(
            ntt_primes(62, 16, 1, &[]),
            Err(MathError::PrimeBitsOutOfRange(62))
        ));
        assert!(matches!(
            ntt_primes(20, 1 << 19, 1, &[]),
            Err(MathError::InvalidRingDegree(_))
        ));
        assert!(matches!(
            ntt_primes(20, 1 << 10, 10_000, &[]),
            Err(MathError::NotEnoughPrimes { .. })
        ));
    }
}
