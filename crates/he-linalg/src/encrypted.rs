//! Matrices as lists of ciphertexts (or encoded plaintexts) under a [`Packing`].

use crate::error::{LinalgError, Result};
use crate::layout::{BlockLayout, Packing};
use crate::matrix::Matrix;
use ckks::he_math::Backend;
use ckks::{Ciphertext, Context, Flooding, FloodingReport, Plaintext, PublicKey, SecretKey};
use std::sync::Arc;

/// Who can encrypt: the client's [`SecretKey`] (symmetric encryption, smaller fresh
/// noise) or anyone's [`PublicKey`].
pub trait MatrixEncryptor<B: Backend> {
    /// Encrypts one encoded block.
    ///
    /// # Errors
    /// CKKS errors (mismatched parameters).
    fn encrypt_block(&self, pt: &Plaintext<B>) -> Result<Ciphertext<B>>;
}

impl<B: Backend> MatrixEncryptor<B> for SecretKey<B> {
    fn encrypt_block(&self, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        Ok(self.encrypt(pt)?)
    }
}

impl<B: Backend> MatrixEncryptor<B> for PublicKey<B> {
    fn encrypt_block(&self, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        Ok(self.encrypt(pt)?)
    }
}

/// A matrix encrypted under a packing: one ciphertext per slot vector of the packing,
/// all at the same level and scale.
#[derive(Debug)]
pub struct Packed<P, B: Backend> {
    packing: P,
    cts: Vec<Ciphertext<B>>,
}

// Manual impl: a derive would require `B: Clone` although only the ciphertexts are
// cloned.
impl<P: Clone, B: Backend> Clone for Packed<P, B> {
    fn clone(&self) -> Self {
        Self {
            packing: self.packing.clone(),
            cts: self.cts.clone(),
        }
    }
}

/// A matrix in HETAL's block layout ([`BlockLayout`]), encrypted.
pub type EncryptedMatrix<B> = Packed<BlockLayout, B>;

fn check_slots<B: Backend>(ctx: &Context<B>, slots: usize) -> Result<()> {
    let max = ctx.params().max_slots();
    if !slots.is_power_of_two() || slots > max {
        return Err(LinalgError::Layout(format!(
            "packing uses {slots} slots; the parameters offer powers of two up to {max}"
        )));
    }
    Ok(())
}

impl<P: Packing + Clone, B: Backend> Packed<P, B> {
    /// Packs, encodes at `level` (its canonical scale) and encrypts `m`.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] if `m` does not fit the packing; [`LinalgError::Layout`]
    /// if the packing's slot count exceeds `N/2`; CKKS errors (level out of range,
    /// values too large for the modulus).
    pub fn encrypt(
        ctx: &Arc<Context<B>>,
        encryptor: &impl MatrixEncryptor<B>,
        m: &Matrix,
        packing: P,
        level: usize,
    ) -> Result<Self> {
        let _span =
            tracing::debug_span!("encrypt_matrix", rows = m.rows(), cols = m.cols()).entered();
        check_slots(ctx, packing.slots())?;
        let cts = packing
            .pack(m)?
            .iter()
            .map(|v| encryptor.encrypt_block(&ctx.encode_at_level(v, level)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { packing, cts })
    }

    /// Wraps ciphertexts (e.g. received from the other party) under a packing.
    ///
    /// # Errors
    /// [`LinalgError::Layout`] for the wrong count or slot count, or ciphertexts at
    /// different levels or scales.
    pub fn from_parts(packing: P, cts: Vec<Ciphertext<B>>) -> Result<Self> {
        if cts.len() != packing.num_ciphertexts() {
            return Err(LinalgError::Layout(format!(
                "{} ciphertexts for a packing of {}",
                cts.len(),
                packing.num_ciphertexts()
            )));
        }
        if let Some(first) = cts.first() {
            for c in &cts {
                if c.slots() != packing.slots() {
                    return Err(LinalgError::Layout(format!(
                        "ciphertext with {} slots in a packing of {}",
                        c.slots(),
                        packing.slots()
                    )));
                }
                if c.level() != first.level() || c.scale() != first.scale() {
                    return Err(LinalgError::Layout(format!(
                        "blocks at different levels/scales ({}, 2^{:.3}) vs ({}, 2^{:.3})",
                        c.level(),
                        c.scale().log2(),
                        first.level(),
                        first.scale().log2()
                    )));
                }
            }
        }
        Ok(Self { packing, cts })
    }

    /// Decrypts and unpacks (client side).
    ///
    /// # Errors
    /// CKKS errors (wrong key parameters).
    pub fn decrypt(&self, ctx: &Arc<Context<B>>, sk: &SecretKey<B>) -> Result<Matrix> {
        let slots = self
            .cts
            .iter()
            .map(|c| Ok(ctx.decode(&sk.decrypt(c)?)?))
            .collect::<Result<Vec<_>>>()?;
        self.packing.unpack(&slots)
    }

    /// Decrypts with noise flooding and unpacks (client side, for results it will reveal
    /// or act on; [`ckks::flooding`]): every block is decoded by
    /// [`Context::decode_flooded`]. Returns the matrix and the worst block's report
    /// (`None` for an empty matrix). Messages are real, as everywhere in this crate.
    ///
    /// # Errors
    /// CKKS errors (wrong key parameters; no room for the flooding at this level).
    pub fn decrypt_flooded(
        &self,
        ctx: &Arc<Context<B>>,
        sk: &SecretKey<B>,
        flooding: &Flooding,
    ) -> Result<(Matrix, Option<FloodingReport>)> {
        let mut report: Option<FloodingReport> = None;
        let mut slots = Vec::with_capacity(self.cts.len());
        for c in &self.cts {
            let d = ctx.decode_flooded(&sk.decrypt(c)?, flooding)?;
            report = Some(report.map_or(d.report, |r| r.max(d.report)));
            slots.push(d.values);
        }
        Ok((self.packing.unpack(&slots)?, report))
    }

    /// The packing.
    pub fn packing(&self) -> &P {
        &self.packing
    }

    /// The ciphertexts, in the packing's order.
    pub fn ciphertexts(&self) -> &[Ciphertext<B>] {
        &self.cts
    }

    /// Packing and ciphertexts.
    pub fn into_parts(self) -> (P, Vec<Ciphertext<B>>) {
        (self.packing, self.cts)
    }

    /// The level of every block.
    pub fn level(&self) -> usize {
        self.cts.first().map_or(0, Ciphertext::level)
    }

    /// The scale of every block.
    pub fn scale(&self) -> f64 {
        self.cts.first().map_or(1.0, Ciphertext::scale)
    }
}

impl<B: Backend> EncryptedMatrix<B> {
    /// The block layout.
    pub fn layout(&self) -> &BlockLayout {
        &self.packing
    }

    /// Block `(bi, bj)`.
    pub fn block(&self, bi: usize, bj: usize) -> &Ciphertext<B> {
        &self.cts[bi * self.packing.col_blocks() + bj]
    }
}

/// A matrix in a packing, encoded but not encrypted: for plaintext × ciphertext work and
/// for the simulated (noise-free) training path.
#[derive(Debug, Clone)]
pub struct PackedPlain<P, B: Backend> {
    packing: P,
    pts: Vec<Plaintext<B>>,
}

/// A matrix in HETAL's block layout, encoded.
pub type PlainBlockMatrix<B> = PackedPlain<BlockLayout, B>;

impl<P: Packing + Clone, B: Backend> PackedPlain<P, B> {
    /// Packs and encodes `m` at `level` (its canonical scale).
    ///
    /// # Errors
    /// As [`Packed::encrypt`].
    pub fn encode(ctx: &Arc<Context<B>>, m: &Matrix, packing: P, level: usize) -> Result<Self> {
        check_slots(ctx, packing.slots())?;
        let pts = packing
            .pack(m)?
            .iter()
            .map(|v| Ok(ctx.encode_at_level(v, level)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { packing, pts })
    }

    /// Decodes and unpacks.
    ///
    /// # Errors
    /// CKKS errors.
    pub fn decode(&self, ctx: &Arc<Context<B>>) -> Result<Matrix> {
        let slots = self
            .pts
            .iter()
            .map(|p| Ok(ctx.decode(p)?))
            .collect::<Result<Vec<_>>>()?;
        self.packing.unpack(&slots)
    }

    /// The packing.
    pub fn packing(&self) -> &P {
        &self.packing
    }

    /// The plaintexts, in the packing's order.
    pub fn plaintexts(&self) -> &[Plaintext<B>] {
        &self.pts
    }

    /// Encrypts every block (client side).
    ///
    /// # Errors
    /// CKKS errors.
    pub fn encrypt(&self, encryptor: &impl MatrixEncryptor<B>) -> Result<Packed<P, B>> {
        let cts = self
            .pts
            .iter()
            .map(|p| encryptor.encrypt_block(p))
            .collect::<Result<Vec<_>>>()?;
        Packed::from_parts(self.packing.clone(), cts)
    }
}
