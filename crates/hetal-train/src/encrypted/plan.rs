//! The level plan of one encrypted training step: the one place that says at which
//! level each intermediate of HETAL's step (Lee et al., ICML 2023, Algorithm 1) must
//! arrive, derived from the depths of the matrix products (`he-linalg`'s
//! [`DIAG_ABT_DEPTH`], [`DIAG_ATB_DEPTH_LHS`]) and the levels a bootstrap leaves and
//! takes (read from the bootstrapper, not assumed).
//!
//! Levels are counted from the refresh floor `f`, the level a bootstrap takes its input
//! at (0, or 3 when SlotsToCoeffs runs first as in the default N = 2^16 preset): every
//! ciphertext that will be refreshed stays at or above it, so the weights' and the
//! logits' levels below are `f` plus what the module docs give for `f = 0`. Only
//! results the client decrypts (validation and test logits) go below it.
//!
//! A step, with `Z = X·Vᵀ`, `P = ASoftmax(Z)`, `G = (P − Y)ᵀ·X`:
//! `V` (≥ [`StepPlan::v_min`]) → DiagABT (3) → `Z` → ASoftmax (scaling by `1/(2R)` 1,
//! in the packed circuit inside the logits' refresh; then its own plan, see
//! [`crate::encrypted::EncryptedSoftmax`]) → `P` at [`StepPlan::softmax_out`] or above
//! → DiagATB (3 from `P − Y`, 1 from `X`, with the step size
//! `η/n` folded into `X`'s alignment to the product's level:
//! `he_linalg::MatrixEvaluator::diag_atb_scaled`) → `(η/n)·G` at
//! [`StepPlan::g_level`] → `W' = V − (η/n)·G` (no level) at ≥ [`StepPlan::w_min`]
//! (validation runs DiagABT on it) → `V' = W' + γ(W' − W)` (1).
//!
//! `V'` is one level below the lowest of `V`, `W` and `(η/n)·G`, so the weights lose a
//! level every step and must be refreshed. When `V` enters a step below
//! [`StepPlan::weights_level`] ([`StepPlan::refresh_weights`]), its compact form rides in
//! the imaginary half of one of ASoftmax's bootstraps ([`super::Refresher::board`]) and
//! is rebuilt at `weights_level` before the update: no bootstrap of its own. A `V'`
//! below `v_min` all the same (a `W` or a `G` too low) is refreshed alone at the end of
//! the step.
//!
//! The client encrypts the features `X` at [`StepPlan::x_level`], one level above the
//! product in DiagATB, not at the top: the step size is applied as the last scaling
//! before the product's own rescale (in `X`'s alignment), where its noise is not
//! multiplied by a sum over the batch, and `Z`'s level is capped by `V`'s, which a step
//! leaves near `v_min`, so levels of `X` above `x_level` would only cost memory and
//! time.

use super::weights::WeightRefresh;
use crate::error::{Result, TrainError};
use he_linalg::{DIAG_ABT_DEPTH, DIAG_ATB_DEPTH_LHS, DIAG_ATB_DEPTH_RHS};

/// Levels of one training step (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPlan {
    /// Level a bootstrap leaves (the preset's budget).
    pub refresh_level: usize,
    /// Level a bootstrap takes its input at (`f`): the floor of every ciphertext that
    /// will be refreshed.
    pub floor: usize,
    /// Level the weights `V` need at the start of a step: DiagABT's depth plus the one
    /// level ASoftmax spends scaling the logits by `1/(2·R_max)` (the scaling of their
    /// refresh in the packed circuit), above the floor (`f + 4`).
    pub v_min: usize,
    /// Level the softmax output `P` is brought to before `P − Y`: DiagATB's depth from
    /// its left operand above `g_level` (`f + 8`).
    pub softmax_out: usize,
    /// Level of `(η/n)·G`: high enough that `W' = V − (η/n)·G` (the update's constant
    /// rides in DiagATB) and `V' = W' + γ(W' − W)` land `V'` at `v_min` when `V` and `W`
    /// are at least this high (`f + 5`).
    pub g_level: usize,
    /// Level the kept weights `W` need: DiagABT's depth (3) for validation and
    /// inference, above the floor (`f + 3`) so that `V' = W' + γ(W' − W)` can still be
    /// refreshed.
    pub w_min: usize,
    /// Level the client encrypts the training features `X` at: one above DiagATB's
    /// product, which sits [`DIAG_ATB_DEPTH_RHS`] above `g_level`, so that the step size
    /// rides in `X`'s alignment to it, the last scaling before the product's rescale
    /// (`f + 7`).
    pub x_level: usize,
    /// Level refreshed weights are rebuilt at: `v_min + 1`, so that `V'` lands at
    /// `v_min` when `W` and `(η/n)·G` are at least this high (`f + 5`); rebuilding higher
    /// would only make the rebuild's rotations run on more limbs. The client encrypts
    /// models (the initial one, and chosen ones sent back for inference) at this level
    /// too.
    pub weights_level: usize,
    /// Level the client encrypts validation and test features at: DiagABT's depth and
    /// one more (4), whatever the floor: their logits are decrypted, never refreshed;
    /// higher levels would only cost memory (the product runs at the lower operand's
    /// level).
    pub features_level: usize,
}

impl StepPlan {
    /// Levels of the Nesterov update after `G`: none, `η/n` is folded into DiagATB
    /// (`he_linalg::MatrixEvaluator::diag_atb_scaled`, in `X`'s alignment) and
    /// `W' = V − (η/n)·G` is a subtraction.
    pub const UPDATE_DEPTH: usize = 0;
    /// Levels of Nesterov's combination `V' = W' + γ(W' − W)` (1).
    pub const MOMENTUM_DEPTH: usize = 1;

    /// The plan for a bootstrapper that refreshes from `floor` to `refresh_level`
    /// (`Bootstrapper::input_level`, `Bootstrapper::output_level`).
    ///
    /// # Errors
    /// [`TrainError::Config`] if a refreshed ciphertext cannot reach the levels the step
    /// needs.
    pub fn new(refresh_level: usize, floor: usize) -> Result<Self> {
        let w_min = floor + DIAG_ABT_DEPTH;
        let v_min = floor + DIAG_ABT_DEPTH + 1;
        let g_level = v_min + Self::MOMENTUM_DEPTH + Self::UPDATE_DEPTH;
        let plan = Self {
            refresh_level,
            floor,
            v_min,
            softmax_out: g_level + DIAG_ATB_DEPTH_LHS,
            g_level,
            w_min,
            x_level: g_level + DIAG_ATB_DEPTH_RHS + 1,
            weights_level: v_min + Self::MOMENTUM_DEPTH,
            features_level: (DIAG_ABT_DEPTH + 1).min(refresh_level),
        };
        let need = plan
            .softmax_out
            .max(plan.weights_level + WeightRefresh::UNPACK_DEPTH);
        if refresh_level < need {
            return Err(TrainError::Config(format!(
                "bootstrapping lands at level {refresh_level} (from {floor}); a training \
                 step needs {need}"
            )));
        }
        Ok(plan)
    }

    /// Whether weights `V` at `v_level` entering a step are refreshed during it: `V'`
    /// would otherwise fall below `v_min`.
    pub fn refresh_weights(&self, v_level: usize) -> bool {
        v_level < self.v_min + Self::MOMENTUM_DEPTH
    }
}

#[cfg(test)]
mod tests {
    use super::StepPlan;

    #[test]
    fn levels_of_a_step() {
        let p = StepPlan::new(9, 0).unwrap();
        assert_eq!((p.v_min, p.softmax_out, p.w_min, p.x_level), (4, 8, 3, 7));
        assert_eq!((p.g_level, p.weights_level, p.features_level), (5, 5, 4));
        // V at v_min would leave V' below it: refreshed in the step; one above is not.
        assert!(p.refresh_weights(4) && !p.refresh_weights(5));
        // P − Y at softmax_out and X one above the product (two below P) give G at
        // g_level, which keeps W' at v_min + 1 and V' at v_min.
        use he_linalg::{DIAG_ATB_DEPTH_LHS, DIAG_ATB_DEPTH_RHS};
        let product = p.softmax_out - (DIAG_ATB_DEPTH_LHS - DIAG_ATB_DEPTH_RHS);
        assert_eq!(p.x_level, product + 1);
        assert_eq!(product - DIAG_ATB_DEPTH_RHS, p.g_level);
        assert_eq!(
            p.g_level - StepPlan::UPDATE_DEPTH - StepPlan::MOMENTUM_DEPTH,
            p.v_min
        );
        // V' = W' + γ(W' − W) and the refresh mask fit below W' at w_min.
        assert!(p.w_min >= 2);
        assert!(StepPlan::new(7, 0).is_err());
        // SlotsToCoeffs first (default N = 2^16 preset): everything that is refreshed
        // moves up by the floor; the decrypted validation logits do not.
        let f = StepPlan::new(15, 3).unwrap();
        assert_eq!((f.v_min, f.softmax_out, f.w_min, f.x_level), (7, 11, 6, 10));
        assert_eq!((f.g_level, f.weights_level, f.features_level), (8, 8, 4));
        assert!(f.refresh_weights(7) && !f.refresh_weights(8));
        assert!(StepPlan::new(9, 3).is_err());
    }
}
