//! Encryption (secret-key and public-key) and decryption (Cheon–Kim–Kim–Song, Asiacrypt
//! 2017, §3.4; Lattigo `rlwe/encryptor.go`, `rlwe/decryptor.go`).
//!
//! - Secret key: `(c_0, c_1) = (−a·s + e + m, a)`, `a` expanded from a fresh public
//!   seed (so the ciphertext also has a compact seeded form, see
//!   [`crate::serialization`]).
//! - Public key `(b, a)`: `(c_0, c_1) = (u·b + e_0 + m, u·a + e_1)` with `u` uniform
//!   ternary.
//! - Decryption: `m' = Σ_i c_i·s^i`.
//!
//! Every call draws its randomness from a new ChaCha20 CSPRNG seeded by the OS.

use crate::ciphertext::{Ciphertext, Plaintext};
use crate::error::{CkksError, Result};
use crate::keys::{PublicKey, SecretKey, Wiped, sample_gaussian, sample_ternary, sample_uniform};
use crate::params::SecretDistribution;
use he_math::{Backend, Csprng};
use std::sync::Arc;

/// Refuses a polynomial whose basis is not `q_0 … q_level` of its object's level.
fn check_basis<B: Backend>(be: &B, p: &B::Poly, basis: &[usize], what: &str) -> Result<()> {
    if be.basis(p) != basis {
        return Err(CkksError::ParameterMismatch(format!(
            "{what} basis does not match its level"
        )));
    }
    Ok(())
}

impl<B: Backend> SecretKey<B> {
    /// Encrypts `pt` under the secret key, at the plaintext's level, scale and slot count.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`]; backend errors.
    pub fn encrypt(&self, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        let mut rng = Csprng::from_entropy();
        self.encrypt_with_seed(pt, rng.seed_bytes(), &mut rng)
    }

    /// Secret-key encryption with `c_1` expanded from the public `seed`.
    pub(crate) fn encrypt_with_seed(
        &self,
        pt: &Plaintext<B>,
        seed: [u8; 32],
        rng: &mut Csprng,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("encrypt_sk", level = pt.level).entered();
        let ctx = &self.ctx;
        let be = ctx.backend();
        let basis = ctx.params().q_basis(pt.level);
        check_basis(be, &pt.poly, &basis, "plaintext")?;
        let a = sample_uniform(ctx, &mut Csprng::from_seed(seed), &basis)?;
        let mut c0 = sample_gaussian(ctx, rng, &basis)?;
        let mut t = Wiped::new(be, a.clone());
        be.mul_assign(&mut t, &Wiped::new(be, self.restricted(&basis)?))?;
        be.sub_assign(&mut c0, &t)?;
        be.add_assign(&mut c0, &pt.poly)?;
        Ok(Ciphertext {
            parts: vec![c0, a],
            level: pt.level,
            scale: pt.scale,
            slots: pt.slots,
        })
    }

    /// Decrypts `ct` (any degree) to a plaintext at its level, scale and slot count.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`] if the parts are not over `q_0 … q_level`;
    /// backend errors.
    pub fn decrypt(&self, ct: &Ciphertext<B>) -> Result<Plaintext<B>> {
        let _span = tracing::trace_span!("decrypt", level = ct.level).entered();
        let be = self.ctx.backend();
        let basis = self.ctx.params().q_basis(ct.level);
        for p in &ct.parts {
            check_basis(be, p, &basis, "ciphertext")?;
        }
        let s = Wiped::new(be, self.restricted(&basis)?);
        // Horner: ((c_d·s + c_{d−1})·s + …)·s + c_0.
        let mut acc = ct.parts[ct.parts.len() - 1].clone();
        for part in ct.parts[..ct.parts.len() - 1].iter().rev() {
            be.mul_assign(&mut acc, &s)?;
            be.add_assign(&mut acc, part)?;
        }
        Ok(Plaintext {
            poly: acc,
            level: ct.level,
            scale: ct.scale,
            slots: ct.slots,
        })
    }
}

impl<B: Backend> PublicKey<B> {
    /// Encrypts `pt` under the public key, at the plaintext's level, scale and slot count.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`]; backend errors.
    pub fn encrypt(&self, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("encrypt_pk", level = pt.level).entered();
        let ctx: &Arc<_> = &self.ctx;
        let be = ctx.backend();
        let basis = ctx.params().q_basis(pt.level);
        check_basis(be, &pt.poly, &basis, "plaintext")?;
        let mut rng = Csprng::from_entropy();
        let u = Wiped::new(
            be,
            sample_ternary(ctx, &mut rng, &basis, SecretDistribution::UniformTernary)?,
        );
        let mut c0 = sample_gaussian(ctx, &mut rng, &basis)?;
        let mut c1 = sample_gaussian(ctx, &mut rng, &basis)?;
        be.mul_add_assign(&mut c0, &u, &be.select_limbs(&self.b, &basis)?)?;
        be.mul_add_assign(&mut c1, &u, &be.select_limbs(&self.a, &basis)?)?;
        be.add_assign(&mut c0, &pt.poly)?;
        Ok(Ciphertext {
            parts: vec![c0, c1],
            level: pt.level,
            scale: pt.scale,
            slots: pt.slots,
        })
    }
}
