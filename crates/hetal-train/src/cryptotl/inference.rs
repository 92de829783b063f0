//! CryptoTL's encrypted forward pass (Walch et al., 2022): the client encrypts its
//! (normalised) features, the server runs its frozen network on the ciphertexts with
//! plaintext weights and returns the encrypted outputs, optionally with Gaussian noise
//! added under encryption; the client decrypts them.
//!
//! Packing: a batch `X` (`n × d`) travels as `Xᵀ` (`d × n`) in HETAL's block layout
//! with unit shape `(s0, s1)`, `s0` the next power of two of the widest layer: one
//! ciphertext holds `s1 = slots/s0` examples, one per column. The first layer is
//! GAZELLE's hybrid product ([`he_linalg::MatrixEvaluator::plain_matmul_hybrid`]: `h'`
//! diagonals and `log2(s0/h')` folds, `h'` the hidden width rounded up to a power of
//! two), the square one multiplication, the second layer the plain diagonal product
//! (its output rows past `outputs` are zero, so nothing but `f(x)` leaves the server).
//! Three levels ([`FrozenNetwork::DEPTH`]); all weights are encoded once, when the
//! server starts.

use super::dp::GaussianMechanism;
use super::network::FrozenNetwork;
use super::pretrain::normalize_rows;
use crate::error::{Result, TrainError};
use he_linalg::keys::{self, KeyRequirements};
use he_linalg::{
    Backend, BlockLayout, Context, EncodedPlainMatmul, EncryptedMatrix, Evaluator, Matrix,
    MatrixEvaluator, ParametersLiteral, Plaintext, SecretKey, UnitShape, presets,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::{Arc, Mutex};

/// The CKKS presets of encrypted inference by command-line name: the one place that
/// maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InferencePreset {
    /// `n14`: `ckks`'s `n14_logqp304_depth3` (N = 2^14, 8192 slots, depth 3, 128-bit
    /// secure for its uniform ternary secret by the HE Standard's table).
    N14,
    /// `insecure-n12`: `ckks`'s `insecure_n12_depth6` (N = 2^12; tests and smoke runs).
    InsecureN12,
}

impl InferencePreset {
    /// Every preset.
    pub const ALL: [Self; 2] = [Self::N14, Self::InsecureN12];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::N14 => "n14",
            Self::InsecureN12 => "insecure-n12",
        }
    }

    /// The preset of a command-line name.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the known presets.
    pub fn from_name(name: &str) -> Result<Self> {
        presets::by_name(&Self::ALL, Self::name, name).map_err(|known| {
            TrainError::Config(format!("unknown inference preset {name:?} ({known})"))
        })
    }

    /// The CKKS parameters.
    pub fn parameters(self) -> ParametersLiteral {
        match self {
            Self::N14 => presets::n14_logqp304_depth3(),
            Self::InsecureN12 => presets::insecure_n12_depth6(),
        }
    }
}

/// The unit shape for a network of these widths on `slots` slots: `s0` the next power
/// of two of the widest layer, `s1 = slots/s0` examples per ciphertext.
///
/// # Errors
/// [`TrainError::Config`] if the widest layer does not fit one ciphertext's slots.
pub fn unit_shape(net: &FrozenNetwork, slots: usize) -> Result<UnitShape> {
    let s0 = net
        .inputs()
        .max(net.hidden())
        .max(net.outputs())
        .next_power_of_two();
    if s0 > slots {
        return Err(TrainError::Config(format!(
            "a layer of width {s0} does not fit {slots} slots"
        )));
    }
    Ok(UnitShape::new(s0, slots / s0)?)
}

/// The rotation keys the server needs: they depend only on the widths (hidden and
/// output), not on the weights, so the client learns nothing of the weights from them.
///
/// # Errors
/// Shape errors.
pub fn key_requirements(net: &FrozenNetwork, shape: UnitShape) -> Result<KeyRequirements> {
    let dense = Matrix::from_fn(net.outputs(), net.hidden(), |_, _| 1.0);
    let second = keys::linear_transform_keys(&he_linalg::plain::matmul_transform(&dense, shape)?);
    Ok(keys::plain_matmul_hybrid_keys(net.hidden(), shape)?.union(&second))
}

/// The client's side: encrypts features, decrypts outputs. Holds the secret key.
pub struct InferenceClient<B: Backend> {
    ctx: Arc<Context<B>>,
    sk: SecretKey<B>,
    shape: UnitShape,
    inputs: usize,
    outputs: usize,
}

impl<B: Backend> InferenceClient<B> {
    /// A client for a network of `inputs` features and `outputs` outputs whose server
    /// uses unit shape `shape` (the widths and shape are public).
    ///
    /// # Errors
    /// [`TrainError::Config`] if the parameters have fewer than
    /// [`FrozenNetwork::DEPTH`] levels, or the shape does not fit the parameters.
    pub fn new(
        ctx: &Arc<Context<B>>,
        sk: SecretKey<B>,
        shape: UnitShape,
        inputs: usize,
        outputs: usize,
    ) -> Result<Self> {
        if ctx.params().max_level() < FrozenNetwork::DEPTH {
            return Err(TrainError::Config(format!(
                "encrypted inference needs {} levels, the parameters have {}",
                FrozenNetwork::DEPTH,
                ctx.params().max_level()
            )));
        }
        if shape.slots() > ctx.params().max_slots() || inputs > shape.s0 || outputs > shape.s0 {
            return Err(TrainError::Config(format!(
                "unit shape {shape:?} for {inputs} inputs and {outputs} outputs on {} slots",
                ctx.params().max_slots()
            )));
        }
        Ok(Self {
            ctx: Arc::clone(ctx),
            sk,
            shape,
            inputs,
            outputs,
        })
    }

    /// Normalises the rows of `x` (`n × inputs`) to unit L2 norm, packs `Xᵀ` and
    /// encrypts it at level [`FrozenNetwork::DEPTH`] with the secret key.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a column count other than `inputs` or no rows; CKKS
    /// errors.
    pub fn encrypt(&self, x: &Matrix) -> Result<EncryptedMatrix<B>> {
        if x.cols() != self.inputs || x.rows() == 0 {
            return Err(TrainError::Config(format!(
                "{}×{} features for a network of {} inputs",
                x.rows(),
                x.cols(),
                self.inputs
            )));
        }
        let xt = normalize_rows(x).transpose();
        let layout = BlockLayout::new(self.inputs, x.rows(), self.shape)?;
        Ok(EncryptedMatrix::encrypt(
            &self.ctx,
            &self.sk,
            &xt,
            layout,
            FrozenNetwork::DEPTH,
        )?)
    }

    /// The secret key (it never leaves the client).
    pub fn secret_key(&self) -> &SecretKey<B> {
        &self.sk
    }

    /// Decrypts the server's answer (`outputs × n` packed) into `n × outputs`.
    ///
    /// # Errors
    /// [`TrainError::Message`] for an answer of another shape; CKKS errors.
    pub fn decrypt(&self, y: &EncryptedMatrix<B>) -> Result<Matrix> {
        let l = y.layout();
        if l.rows() != self.outputs || l.unit_shape() != self.shape {
            return Err(TrainError::Message(format!(
                "answer of {}×{} in {:?}, expected {} rows in {:?}",
                l.rows(),
                l.cols(),
                l.unit_shape(),
                self.outputs,
                self.shape
            )));
        }
        Ok(y.decrypt(&self.ctx, &self.sk)?.transpose())
    }
}

/// Differential privacy of the server's answers: `(ε, δ)` per returned example, for
/// inputs of L2 norm at most `input_norm` (the client normalises to 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DpConfig {
    /// `ε` per returned example.
    pub epsilon: f64,
    /// `δ` per returned example.
    pub delta: f64,
    /// The input norm the sensitivity is computed for.
    pub input_norm: f64,
}

/// The server's side: the frozen network encoded for the encrypted forward pass, with
/// evaluation keys only (it cannot decrypt).
pub struct InferenceServer<B: Backend> {
    me: MatrixEvaluator<B>,
    shape: UnitShape,
    inputs: usize,
    hidden: usize,
    outputs: usize,
    first: EncodedPlainMatmul<B>,
    bias1: Plaintext<B>,
    second: EncodedPlainMatmul<B>,
    bias2: Plaintext<B>,
    dp: Option<GaussianMechanism>,
    output_scale: f64,
    rng: Mutex<ChaCha20Rng>,
}

/// Smallest factor [`InferenceServer`] scales its answers by to fit level 0's range;
/// below it the CKKS error (about 2^-28 absolute) would approach the outputs' size.
pub const MIN_OUTPUT_SCALE: f64 = 1.0 / 65536.0;

impl<B: Backend> std::fmt::Debug for InferenceServer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceServer")
            .field("shape", &self.shape)
            .field("widths", &(self.inputs, self.hidden, self.outputs))
            .field("dp", &self.dp)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> InferenceServer<B> {
    /// Encodes `net` for inputs at level [`FrozenNetwork::DEPTH`] (canonical scale) on
    /// `ev`'s parameters, and calibrates the Gaussian mechanism when `dp` is given: L2
    /// sensitivity `2·R`, `R` the network's certified output bound for inputs of norm
    /// `input_norm` ([`FrozenNetwork::output_norm_bound`]), so one returned vector does
    /// not tell its noiseless value from any other value the network can produce.
    ///
    /// The guarantee assumes inputs of norm at most `input_norm`; under encryption the
    /// server cannot check that (a client that scales its inputs up learns more), so it
    /// holds against a semi-honest client.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an invalid network, too few levels, or outputs (with
    /// 8σ of noise) that would need scaling below [`MIN_OUTPUT_SCALE`] to fit the range
    /// level 0 decrypts ([`Self::output_scale`]); DP calibration errors; CKKS errors.
    pub fn new(ev: Arc<Evaluator<B>>, net: &FrozenNetwork, dp: Option<DpConfig>) -> Result<Self> {
        net.validate()?;
        let ctx = Arc::clone(ev.context());
        let params = ctx.params();
        let top = FrozenNetwork::DEPTH;
        if params.max_level() < top {
            return Err(TrainError::Config(format!(
                "encrypted inference needs {top} levels, the parameters have {}",
                params.max_level()
            )));
        }
        let shape = unit_shape(net, params.max_slots())?;
        let bound = net.output_norm_bound(dp.map_or(1.0, |d| d.input_norm));
        let dp = dp
            .map(|d| GaussianMechanism::calibrate(d.epsilon, d.delta, 2.0 * bound))
            .transpose()?;
        // Answers must stay within what level 0 decrypts; scale the second layer down by
        // a power of two if the outputs and 8σ of noise could leave that range.
        let range = params.q()[0] as f64 / (4.0 * params.scale_at(0)?);
        let worst = bound + dp.map_or(0.0, |m| 8.0 * m.sigma);
        let output_scale = if worst > range {
            (range / worst).log2().floor().exp2()
        } else {
            1.0
        };
        if output_scale < MIN_OUTPUT_SCALE {
            return Err(TrainError::Config(format!(
                "outputs up to {worst:.3e} (certified bound {bound:.3e}{}) would need scaling \
                 by {output_scale:e} to fit the range {range:.3e} that level 0 decrypts",
                dp.map_or(String::new(), |m| format!(" + 8σ, σ = {:.3e}", m.sigma))
            )));
        }
        let w2 = Matrix::from_fn(net.w2.rows(), net.w2.cols(), |i, j| {
            net.w2.get(i, j) * output_scale
        });
        let me = MatrixEvaluator::new(ev);
        let first = me.encode_plain_matmul(&net.w1, shape, true, top, params.scale_at(top)?)?;
        let period = first.replication_period().unwrap_or(shape.s0);
        let UnitShape { s0, s1 } = shape;
        let b1: Vec<f64> = (0..s0 * s1)
            .map(|v| net.b1.get((v / s1) % period).copied().unwrap_or(0.0))
            .collect();
        let bias1 = ctx.encode(&b1, top - 1, params.scale_at(top - 1)?)?;
        let second =
            me.encode_plain_matmul(&w2, shape, false, top - 2, params.scale_at(top - 2)?)?;
        let b2: Vec<f64> = (0..s0 * s1)
            .map(|v| net.b2.get(v / s1).map_or(0.0, |b| b * output_scale))
            .collect();
        let bias2 = ctx.encode(&b2, top - 3, params.scale_at(top - 3)?)?;
        Ok(Self {
            me,
            shape,
            inputs: net.inputs(),
            hidden: net.hidden(),
            outputs: net.outputs(),
            first,
            bias1,
            second,
            bias2,
            dp,
            output_scale,
            rng: Mutex::new(ChaCha20Rng::from_os_rng()),
        })
    }

    /// The unit shape inputs must use.
    pub fn unit_shape(&self) -> UnitShape {
        self.shape
    }

    /// The calibrated mechanism, if DP noise is added (`σ` and the sensitivity in the
    /// network's output units, before [`Self::output_scale`]).
    pub fn dp(&self) -> Option<&GaussianMechanism> {
        self.dp.as_ref()
    }

    /// The factor (a power of two, ≤ 1) the answers are scaled by: the client decrypts
    /// `output_scale·(f(x) + noise)`. It is 1 unless the certified output bound plus 8σ
    /// of noise exceeds the range level 0 decrypts (`q_0/(4Δ_0)`, 2^14 for `n14`);
    /// scaling changes neither the DP guarantee nor what a scale-invariant head learns.
    pub fn output_scale(&self) -> f64 {
        self.output_scale
    }

    /// `f(X)` under encryption: `X` is `Xᵀ` (`inputs × n`) at level
    /// [`FrozenNetwork::DEPTH`] and canonical scale; the answer is `f(X)ᵀ`
    /// (`outputs × n`, times [`Self::output_scale`]) at level 0, with `N(0, σ²)` added to every output slot of every
    /// column (including unused ones, which a client could otherwise fill) when DP is
    /// on.
    ///
    /// # Errors
    /// [`TrainError::Message`] for another row count or unit shape; linear-algebra and
    /// CKKS errors for another level or scale, or missing keys.
    pub fn forward(&self, x: &EncryptedMatrix<B>) -> Result<EncryptedMatrix<B>> {
        let l = x.layout();
        if l.rows() != self.inputs || l.unit_shape() != self.shape {
            return Err(TrainError::Message(format!(
                "input of {}×{} in {:?}, expected {} rows in {:?}",
                l.rows(),
                l.cols(),
                l.unit_shape(),
                self.inputs,
                self.shape
            )));
        }
        let ev = self.me.evaluator();
        let h = self.me.apply_plain_matmul(&self.first, x)?;
        let (hl, cts) = h.into_parts();
        let act = cts
            .into_iter()
            .map(|c| {
                let c = ev.add_plain(&c, &self.bias1)?;
                ev.mul_relin_rescale(&c, &c)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let a = EncryptedMatrix::from_parts(
            BlockLayout::new(self.hidden, hl.cols(), self.shape)?,
            act,
        )?;
        let z = self.me.apply_plain_matmul(&self.second, &a)?;
        let (zl, cts) = z.into_parts();
        let out = cts
            .into_iter()
            .map(|c| {
                let c = ev.add_plain(&c, &self.bias2)?;
                match &self.dp {
                    Some(m) => Ok(ev.add_plain(&c, &self.noise(m, &c)?)?),
                    None => Ok(c),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncryptedMatrix::from_parts(zl, out)?)
    }

    /// Fresh noise for the output rows of one answer ciphertext, encoded at its level
    /// and scale.
    fn noise(&self, m: &GaussianMechanism, c: &he_linalg::Ciphertext<B>) -> Result<Plaintext<B>> {
        let UnitShape { s0, s1 } = self.shape;
        let draws = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| TrainError::Config("noise generator poisoned".into()))?;
            m.sample(self.outputs * s1, &mut *rng)
        };
        let draws: Vec<f64> = draws.iter().map(|d| d * self.output_scale).collect();
        let mut v = vec![0.0; s0 * s1];
        v[..self.outputs * s1].copy_from_slice(&draws);
        Ok(self
            .me
            .evaluator()
            .context()
            .encode(&v, c.level(), c.scale())?)
    }
}
