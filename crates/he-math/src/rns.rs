//! Residue number system (RNS) bases: decomposition of big integers into residues and
//! reconstruction by the Chinese remainder theorem (CRT), with `num-bigint`.
//!
//! This is the exact, slow path (used by encoders for values beyond 2^64, by tests
//! and by decryption debugging). The fast, approximate basis conversion used inside
//! homomorphic operations lives in [`crate::basis_conv`].

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};

/// An RNS basis `Q = q_0 · … · q_{k-1}` of pairwise distinct primes, with CRT constants.
#[derive(Debug, Clone)]
pub struct RnsBasis {
    moduli: Vec<Modulus>,
    product: BigUint,
    half_product: BigUint,
    /// `Q / q_i`.
    punctured: Vec<BigUint>,
    /// `(Q / q_i)^{-1} mod q_i`.
    punctured_inv: Vec<u64>,
}

impl RnsBasis {
    /// Creates a basis from distinct primes (any order).
    ///
    /// # Errors
    /// [`MathError::DuplicateModulus`] if a modulus repeats, [`MathError::NotInvertible`]
    /// if two moduli share a factor, and [`MathError::InvalidArgument`] if `moduli` is empty.
    pub fn new(moduli: &[Modulus]) -> Result<Self> {
        if moduli.is_empty() {
            return Err(MathError::InvalidArgument("empty RNS basis".into()));
        }
        for (i, a) in moduli.iter().enumerate() {
            if moduli[..i].iter().any(|b| b.value() == a.value()) {
                return Err(MathError::DuplicateModulus(a.value()));
            }
        }
        let product = moduli.iter().fold(BigUint::one(), |acc, m| acc * m.value());
        let mut punctured = Vec::with_capacity(moduli.len());
        let mut punctured_inv = Vec::with_capacity(moduli.len());
        for m in moduli {
            let p = &product / m.value();
            let r = (&p % m.value())
                .to_u64_digits()
                .first()
                .copied()
                .unwrap_or(0);
            punctured_inv.push(m.inv(r)?);
            punctured.push(p);
        }
        let half_product = &product >> 1;
        Ok(Self {
            moduli: moduli.to_vec(),
            product,
            half_product,
            punctured,
            punctured_inv,
        })
    }

    /// The moduli, in the order given at construction.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// Number of moduli (RNS limbs).
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    /// Always false: a basis has at least one modulus.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The product `Q` of the moduli.
    pub fn product(&self) -> &BigUint {
        &self.product
    }

    /// `log2(Q)` in bits (floating point).
    pub fn log2_product(&self) -> f64 {
        self.moduli.iter().map(|m| (m.value() as f64).log2()).sum()
    }

    /// Residues `x mod q_i` of a signed big integer (any size; reduced mod `Q` implicitly).
    pub fn decompose(&self, x: &BigInt) -> Vec<u64> {
        let (sign, mag) = (x.sign(), x.magnitude());
        self.moduli
            .iter()
            .map(|m| {
                let r = (mag % m.value())
                    .to_u64_digits()
                    .first()
                    .copied()
                    .unwrap_or(0);
                if sign == Sign::Minus { m.neg(r) } else { r }
            })
            .collect()
    }

    /// Residues of an unsigned big integer.
    pub fn decompose_unsigned(&self, x: &BigUint) -> Vec<u64> {
        self.decompose(&BigInt::from(x.clone()))
    }

    /// CRT reconstruction: the unique `x ∈ [0, Q)` with `x ≡ residues[i] (mod q_i)`.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] if the number of residues is not the basis size and
    /// [`MathError::ResidueOutOfRange`] if a residue is not below its modulus.
    pub fn reconstruct(&self, residues: &[u64]) -> Result<BigUint> {
        if residues.len() != self.len() {
            return Err(MathError::LengthMismatch {
                expected: self.len(),
                got: residues.len(),
            });
        }
        let mut acc = BigUint::zero();
        for (i, (&r, m)) in residues.iter().zip(&self.moduli).enumerate() {
            if r >= m.value() {
                return Err(MathError::ResidueOutOfRange {
                    value: r,
                    q: m.value(),
                });
            }
            let t = m.mul(r, self.punctured_inv[i]);
            acc += &self.punctured[i] * t;
        }
        Ok(acc % &self.product)
    }

    /// CRT reconstruction to the centred representative in `(-Q/2, Q/2]`.
    ///
    /// # Errors
    /// As [`Self::reconstruct`].
    pub fn reconstruct_centered(&self, residues: &[u64]) -> Result<BigInt> {
        let x = self.reconstruct(residues)?;
        Ok(if x > self.half_product {
            BigInt::from(x) - BigInt::from(self.product.clone())
        } else {
            BigInt::from(x)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primes::ntt_primes;
    use proptest::prelude::*;

    fn basis() -> RnsBasis {
        let mut ps = ntt_primes(60, 1 << 12, 3, &[]).unwrap();
        ps.extend(ntt_primes(42, 1 << 12, 2, &[]).unwrap());
        RnsBasis::new(
            &ps.iter()
                .map(|&p| Modulus::new(p).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn rejects_duplicates_and_bad_residues() {
        let m = Modulus::new(97).unwrap();
        assert!(matches!(
            RnsBasis::new(&[m, m]),
            Err(MathError::DuplicateModulus(97))
        ));
        let b = basis();
        assert!(b.reconstruct(&[0, 0]).is_err());
        let mut r = vec![0; b.len()];
        r[1] = b.moduli()[1].value();
        assert!(matches!(
            b.reconstruct(&r),
            Err(MathError::ResidueOutOfRange { .. })
        ));
    }

    proptest! {
        #[test]
        fn crt_round_trip(words in proptest::collection::vec(any::<u64>(), 4), neg in any::<bool>()) {
            let b = basis();
            let mag = BigUint::from_slice(&words.iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]).collect::<Vec<_>>())
                % &b.half_product;
            let x = if neg { -BigInt::from(mag) } else { BigInt::from(mag) };
            let res = b.decompose(&x);
            for (r, m) in res.iter().zip(b.moduli()) { prop_assert!(*r < m.value()); }
            prop_assert_eq!(b.reconstruct_centered(&res).unwrap(), x);
        }
    }
}
