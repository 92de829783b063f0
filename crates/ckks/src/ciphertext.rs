//! [`Plaintext`] and [`Ciphertext`]: backend polynomials in NTT form with their level,
//! scale and slot count tracked exactly.

use he_math::Backend;

/// An encoded message: `m(X)` over `q_0 … q_level` in NTT form, carrying the scale Δ it
/// was encoded at and its slot count (a power of two `≤ N/2`).
pub struct Plaintext<B: Backend> {
    pub(crate) poly: B::Poly,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

impl<B: Backend> Clone for Plaintext<B> {
    fn clone(&self) -> Self {
        Self {
            poly: self.poly.clone(),
            level: self.level,
            scale: self.scale,
            slots: self.slots,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Plaintext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext")
            .field("level", &self.level)
            .field("log2_scale", &self.scale.log2())
            .field("slots", &self.slots)
            .finish()
    }
}

impl<B: Backend> Plaintext<B> {
    /// Level `ℓ`: the polynomial lives over `q_0 … q_ℓ`.
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale Δ (the message is `m ≈ Δ·z` in the canonical embedding).
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Number of complex slots.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// The backend polynomial (NTT form).
    pub fn poly(&self) -> &B::Poly {
        &self.poly
    }
}

/// An RLWE ciphertext `(c_0, c_1[, c_2])` decrypting to `Σ_i c_i·s^i ≈ m`, all parts over
/// `q_0 … q_level` in NTT form. Degree 2 (three parts) only between a multiplication and
/// its relinearization.
pub struct Ciphertext<B: Backend> {
    pub(crate) parts: Vec<B::Poly>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
}

impl<B: Backend> Clone for Ciphertext<B> {
    fn clone(&self) -> Self {
        Self {
            parts: self.parts.clone(),
            level: self.level,
            scale: self.scale,
            slots: self.slots,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Ciphertext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ciphertext")
            .field("degree", &self.degree())
            .field("level", &self.level)
            .field("log2_scale", &self.scale.log2())
            .field("slots", &self.slots)
            .finish()
    }
}

impl<B: Backend> Ciphertext<B> {
    /// Level `ℓ`: the parts live over `q_0 … q_ℓ`.
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale Δ of the encrypted message.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Number of complex slots.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Degree: number of parts minus one (1 normally, 2 before relinearization).
    pub fn degree(&self) -> usize {
        self.parts.len() - 1
    }
    /// The parts `c_0, c_1[, c_2]` (NTT form).
    pub fn parts(&self) -> &[B::Poly] {
        &self.parts
    }
}
