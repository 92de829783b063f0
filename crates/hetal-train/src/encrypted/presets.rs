//! Parameter sets for encrypted training: CKKS parameters with a bootstrapping circuit
//! that leaves at least the 9 levels per refresh HETAL's budget assumes (ASoftmax's
//! inverse needs 9 consecutive levels). The level budget is the one documented by
//! `ckks`'s preset, and the step plan reads it from the bootstrapper ([`super::plan`]).

use he_linalg::ckks::circuits::BootstrapOrder;
use he_linalg::ckks::circuits::bootstrapping::presets as boot;
use he_linalg::ckks::{BootstrappingConfig, ParametersLiteral};

/// N = 2^16, 128-bit secure (checked when the parameters are built): `ckks`'s
/// `n16_logqp1755_dense_boot` — dense main secret (h = N/2, HE Standard bound 1772 ≥
/// log QP 1755), sparse-secret encapsulation over `q_0·p_0`, 11 user levels at Δ = 2^40
/// after each bootstrap (refreshed from level 0), 32768 slots.
///
/// Not the SlotsToCoeffs-first `n16_logqp1732_dense_s2c`, although its refresh is more
/// precise and a little faster and leaves 12 levels: it refreshes from level 3, so the
/// whole step runs three levels higher, and the matrix products, on 3 more limbs and
/// partly past the first key-switching digit, took about 1.5 times as long (63.8
/// against 42.0 s per step on DermaMNIST, the latter in a slower hour;
/// docs/results/dermamnist.md).
pub fn n16_train() -> (ParametersLiteral, BootstrappingConfig) {
    boot::n16_logqp1755_dense_boot()
}

/// INSECURE (N = 2^12 with log QP ≈ 1579; tests only): the N = 2^16 preset's
/// structure on a small ring — `q_0` 52 bits, 9 user primes of 42 bits, the
/// bootstrapping circuit of `ckks`'s `insecure_n12_boot` (2 + 8 + 2 levels), 7 special
/// primes of 61 bits, dnum 4, dense secret (h = N/2). A refreshed ciphertext has 9
/// levels, the fewest a step plans with (the N = 2^16 preset has 11): the smaller chain
/// keeps the tests fast, and the tighter budget exercises more refreshes.
pub fn insecure_n12_train() -> (ParametersLiteral, BootstrappingConfig) {
    let (mut lit, cfg) = boot::insecure_n12_boot();
    let mut log_q = vec![52];
    log_q.extend([42; 9]);
    lit.log_q = log_q;
    lit.log_p = vec![61; 7];
    lit.dnum = 4;
    (lit, cfg)
}

/// INSECURE (N = 2^12 with log QP ≈ 1551; tests only): [`insecure_n12_train`] with its
/// SlotsToCoeffs run first, at the bottom of the user chain (the structure of `ckks`'s
/// `n16_logqp1732_dense_s2c`): 11 user primes of 42 bits, EvalMod and CoeffsToSlots on
/// 8 + 2 primes of 61 bits, the message shrunk by `2^-4` in SlotsToCoeffs. A refresh
/// takes its input at level 2 and lands at level 11: 9 levels, counted from the refresh
/// floor 2 ([`super::StepPlan`]).
pub fn insecure_n12_s2c_train() -> (ParametersLiteral, BootstrappingConfig) {
    let (mut lit, cfg) = insecure_n12_train();
    let mut log_q = vec![52];
    log_q.extend([42; 11]);
    lit.log_q = log_q;
    lit.log_q_boot = vec![61; 10];
    (
        lit,
        BootstrappingConfig {
            order: BootstrapOrder::SlotsToCoeffsFirst,
            s2c_shrink_log2: 4,
            ..cfg
        },
    )
}

/// The training presets by name: the one place that maps the names used on command
/// lines (`n16`, `insecure-n12`) to parameter sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainPreset {
    /// [`n16_train`].
    N16,
    /// [`insecure_n12_train`] (tests and smoke runs only).
    InsecureN12,
}

impl TrainPreset {
    /// Every preset.
    pub const ALL: [Self; 2] = [Self::N16, Self::InsecureN12];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::N16 => "n16",
            Self::InsecureN12 => "insecure-n12",
        }
    }

    /// The preset of a command-line name.
    ///
    /// # Errors
    /// [`crate::TrainError::Config`] naming the known presets.
    pub fn from_name(name: &str) -> crate::Result<Self> {
        he_linalg::ckks::presets::by_name(&Self::ALL, Self::name, name).map_err(|known| {
            crate::TrainError::Config(format!("unknown preset {name:?} ({known})"))
        })
    }

    /// CKKS parameters and bootstrapping circuit.
    pub fn parameters(self) -> (ParametersLiteral, BootstrappingConfig) {
        match self {
            Self::N16 => n16_train(),
            Self::InsecureN12 => insecure_n12_train(),
        }
    }

    /// Whether the preset is insecure (a server refuses it unless told otherwise).
    pub fn is_insecure(self) -> bool {
        matches!(self, Self::InsecureN12)
    }
}
