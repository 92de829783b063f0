//! Security bounds on `log2(QP)`, one table per secret distribution, and the check that
//! [`crate::Parameters::new`] runs on every literal that asks for 128-bit security.
//!
//! A bound is claimed only where a published estimate covers the ring degree *and* the
//! secret distribution:
//!
//! | secret | source | `log2 QP` bound |
//! |---|---|---|
//! | uniform ternary, or exactly `N/2` non-zero ±1 | HE Standard (Albrecht et al., 2018, Table 1, classical 128 bits; the `2^16` row as extended in OpenFHE `core/lib/lattice/stdlatticeparms.cpp` and Lattigo) | 27, 54, 109, 218, 438, 881, 1772 for `N = 2^10 … 2^16` |
//! | exactly 192 non-zero ±1 | Cheon–Son–Yhee, "Practical FHE parameters against lattice attacks" (2021), as used by HEaaN's FGb (1555) and Lattigo's `N15QP768H192H32` | 1555 for `N = 2^16`, 768 for `N = 2^15` |
//! | anything else | — | none: not claimed |
//!
//! The dense fixed-weight secret `h = N/2` is covered by the HE Standard's table as in
//! Lattigo's dense bootstrapping sets (`N16QP1767H32768H32`, Bossuat et al., ACNS 2022).
//!
//! The ephemeral sparse secret of bootstrapping's encapsulation (Bossuat–Troncoso-Pastoriza–
//! Hubaux, "Bootstrapping for approximate homomorphic encryption with negligible
//! failure-probability by using sparse-secret encapsulation", ACNS 2022) appears only in
//! the key `s → s'`, an RLWE instance with secret `s'` over the modulus `q_0·p_0`. Its
//! bound ([`encapsulation_max_log_q`]) is the largest `q_0·p_0` of that paper's 128-bit
//! parameter sets (Lattigo `circuits/ckks/bootstrapping/default_parameters.go`): 121 bits
//! for `h = 32`, `N = 2^16` (`q_0` 60 + `p_0` 61 bits), 84 bits for `h = 32`, `N = 2^15`.

use crate::error::{CkksError, Result};
use crate::params::SecretDistribution;
use serde::{Deserialize, Serialize};

/// The security a parameter literal asks for (as OpenFHE's `SecurityLevel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SecurityLevel {
    /// 128-bit classical security: [`crate::Parameters::new`] refuses a literal whose
    /// `log2(QP)` exceeds its secret's bound ([`max_log_qp_128`]) or whose secret has no
    /// published bound.
    #[default]
    Classical128,
    /// No security claimed (the `insecure_*` test presets): the check is skipped.
    NotSet,
}

/// Where a bound comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoundSource {
    /// The HE Standard's table (uniform ternary or `h = N/2` secret).
    HeStandard,
    /// Published sparse-secret sets with `h = 192` (HEaaN FGb, Lattigo; Cheon–Son–Yhee).
    SparseH192,
    /// Sparse-secret encapsulation sets with `h = 32` (Bossuat et al., ACNS 2022).
    EncapsulationH32,
}

/// A bound on `log2` of a modulus for 128-bit classical security, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityBound {
    /// Largest `log2` of the modulus, in bits.
    pub max_log_q: u32,
    /// The table it comes from.
    pub source: BoundSource,
}

/// The HE Standard's 128-bit bound on `log2(QP)` for a uniform ternary secret and
/// σ = 3.2, per ring degree (`N = 2^10 … 2^16`; see the module table).
pub fn he_standard_max_log_qp_128(log_n: u32) -> Option<u32> {
    match log_n {
        10 => Some(27),
        11 => Some(54),
        12 => Some(109),
        13 => Some(218),
        14 => Some(438),
        15 => Some(881),
        16 => Some(1772),
        _ => None,
    }
}

/// The 128-bit bound on `log2(QP)` for ring degree `2^log_n` and the secret `secret`, or
/// `None` where no published estimate covers that combination (see the module table).
pub fn max_log_qp_128(log_n: u32, secret: SecretDistribution) -> Option<SecurityBound> {
    let n = 1usize.checked_shl(log_n)?;
    let standard = || {
        he_standard_max_log_qp_128(log_n).map(|b| SecurityBound {
            max_log_q: b,
            source: BoundSource::HeStandard,
        })
    };
    match secret {
        SecretDistribution::UniformTernary => standard(),
        SecretDistribution::SparseTernary { hamming_weight } if hamming_weight == n / 2 => {
            standard()
        }
        SecretDistribution::SparseTernary {
            hamming_weight: 192,
        } => {
            let b = match log_n {
                16 => 1555,
                15 => 768,
                _ => return None,
            };
            Some(SecurityBound {
                max_log_q: b,
                source: BoundSource::SparseH192,
            })
        }
        SecretDistribution::SparseTernary { .. } => None,
    }
}

/// The 128-bit bound on `log2(q_0·p_0)`, the modulus of the encapsulation key `s → s'`,
/// for an ephemeral secret of Hamming weight `hamming_weight` (only `h = 32` at
/// `N = 2^15, 2^16` is published; see the module docs).
pub fn encapsulation_max_log_q(log_n: u32, hamming_weight: usize) -> Option<SecurityBound> {
    let b = match (log_n, hamming_weight) {
        (16, 32) => 121,
        (15, 32) => 84,
        _ => return None,
    };
    Some(SecurityBound {
        max_log_q: b,
        source: BoundSource::EncapsulationH32,
    })
}

/// A short name of a secret distribution: `"ternary"` or `"hamming:<h>"` (as printed by
/// the benchmarks).
pub fn secret_label(secret: SecretDistribution) -> String {
    match secret {
        SecretDistribution::UniformTernary => "ternary".into(),
        SecretDistribution::SparseTernary { hamming_weight } => format!("hamming:{hamming_weight}"),
    }
}

/// Checks `log2(QP) = log_qp` against the bound of `secret` at `2^log_n`.
///
/// # Errors
/// [`CkksError::InsecureParameters`] when no bound is published for the combination or
/// `log_qp` exceeds it.
pub fn check_128(log_n: u32, secret: SecretDistribution, log_qp: f64) -> Result<SecurityBound> {
    let what = format!(
        "log2(QP) for N = 2^{log_n} with a {} secret",
        secret_label(secret)
    );
    within(max_log_qp_128(log_n, secret), log_qp, &what)
}

/// Checks the encapsulation modulus `log2(q_0·p_0) = log_q` for an ephemeral secret of
/// weight `hamming_weight` at `2^log_n`.
///
/// # Errors
/// [`CkksError::InsecureParameters`] when no bound is published or `log_q` exceeds it.
pub fn check_encapsulation_128(
    log_n: u32,
    hamming_weight: usize,
    log_q: f64,
) -> Result<SecurityBound> {
    let what = format!(
        "log2(q_0·p_0) of an encapsulation secret of Hamming weight {hamming_weight} at \
         N = 2^{log_n}"
    );
    within(encapsulation_max_log_q(log_n, hamming_weight), log_q, &what)
}

/// `log_q` against `bound`; `what` names the modulus in the error.
fn within(bound: Option<SecurityBound>, log_q: f64, what: &str) -> Result<SecurityBound> {
    let Some(bound) = bound else {
        return Err(CkksError::InsecureParameters(format!(
            "no published 128-bit bound on {what} (set security: NotSet for test parameters)"
        )));
    };
    if log_q > bound.max_log_q as f64 {
        return Err(CkksError::InsecureParameters(format!(
            "{what} = {log_q:.1} exceeds the 128-bit bound {} ({:?})",
            bound.max_log_q, bound.source
        )));
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let t = SecretDistribution::UniformTernary;
        assert_eq!(max_log_qp_128(16, t).unwrap().max_log_q, 1772);
        let dense = SecretDistribution::SparseTernary {
            hamming_weight: 1 << 15,
        };
        assert_eq!(max_log_qp_128(16, dense).unwrap().max_log_q, 1772);
        let h192 = SecretDistribution::SparseTernary {
            hamming_weight: 192,
        };
        assert_eq!(max_log_qp_128(16, h192).unwrap().max_log_q, 1555);
        assert_eq!(max_log_qp_128(15, h192).unwrap().max_log_q, 768);
        assert!(max_log_qp_128(14, h192).is_none());
        // Weights without a published estimate are not claimed.
        let h64 = SecretDistribution::SparseTernary { hamming_weight: 64 };
        assert!(max_log_qp_128(16, h64).is_none());
        assert!(max_log_qp_128(17, t).is_none());
        assert!(check_128(16, h192, 1555.5).is_err());
        assert!(check_128(16, h192, 1554.9).is_ok());
        assert!(check_128(16, t, 1772.1).is_err());
        assert!(check_encapsulation_128(16, 32, 119.0).is_ok());
        assert!(check_encapsulation_128(16, 32, 454.0).is_err());
        assert!(check_encapsulation_128(16, 64, 100.0).is_err());
    }
}
