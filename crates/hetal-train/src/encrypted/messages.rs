//! The messages between the client and the server of encrypted training, with their
//! byte forms (postcard; ciphertexts and keys through `ckks`'s validated serialization).
//! [`SessionSetup`] also has a streamed form for its gigabytes of evaluation keys.

use super::config::SessionConfig;
use crate::error::{Result, TrainError};
use crate::train::Decision;
use he_linalg::ckks::{
    BootstrappingConfig, Ciphertext, Context, EvaluationKeySet, KeyStorage, ParametersLiteral,
};
use he_linalg::{Backend, BlockLayout, EncryptedMatrix};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(crate) struct MatrixWire {
    layout: BlockLayout,
    cts: Vec<Vec<u8>>,
}

/// A [`MatrixWire`] serialized straight from the matrix: each ciphertext's bytes are
/// made when the serializer reaches it and dropped after, so a streamed state file
/// never holds more than one ciphertext's bytes. Same bytes as
/// `matrix_wire(ctx, m)` under postcard (a `Vec<u8>` and `serialize_bytes` are both a
/// varint length and the raw bytes there).
pub(crate) struct MatrixRef<'a, B: Backend> {
    pub(crate) ctx: &'a Context<B>,
    pub(crate) m: &'a EncryptedMatrix<B>,
}

struct CiphertextsRef<'a, B: Backend>(&'a Context<B>, &'a [Ciphertext<B>]);

impl<B: Backend> Serialize for CiphertextsRef<'_, B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.1.len()))?;
        for c in self.1 {
            let bytes = self.0.serialize_ciphertext(c).map_err(S::Error::custom)?;
            seq.serialize_element(&serde_bytes_ref(&bytes))?;
        }
        seq.end()
    }
}

/// Bytes serialized with `serialize_bytes` (postcard: varint length, raw bytes — as a
/// `Vec<u8>`), without a byte-by-byte sequence.
fn serde_bytes_ref(b: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(b)
}

impl<B: Backend> Serialize for MatrixRef<'_, B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MatrixWire", 2)?;
        st.serialize_field("layout", self.m.layout())?;
        st.serialize_field("cts", &CiphertextsRef(self.ctx, self.m.ciphertexts()))?;
        st.end()
    }
}

#[cfg(test)]
pub(crate) fn matrix_wire<B: Backend>(
    ctx: &Context<B>,
    m: &EncryptedMatrix<B>,
) -> Result<MatrixWire> {
    Ok(MatrixWire {
        layout: *m.layout(),
        cts: m
            .ciphertexts()
            .iter()
            .map(|c| ctx.serialize_ciphertext(c))
            .collect::<std::result::Result<_, _>>()?,
    })
}

pub(crate) fn matrix_from_wire<B: Backend>(
    ctx: &Context<B>,
    w: MatrixWire,
) -> Result<EncryptedMatrix<B>> {
    let cts = w
        .cts
        .iter()
        .map(|b| ctx.deserialize_ciphertext(b))
        .collect::<std::result::Result<Vec<Ciphertext<B>>, _>>()?;
    Ok(EncryptedMatrix::from_parts(w.layout, cts)?)
}

pub(crate) fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| TrainError::Message(e.to_string()))
}

/// Encodes `v` into `w` (postcard) without an intermediate buffer.
pub(crate) fn write_postcard<T: Serialize>(v: &T, w: &mut dyn std::io::Write) -> Result<()> {
    postcard::to_io(v, w).map_err(|e| TrainError::Message(e.to_string()))?;
    Ok(())
}

/// Decodes one `T`; trailing bytes are refused.
pub(crate) fn from_bytes<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T> {
    let (v, rest) = postcard::take_from_bytes(b).map_err(|e| TrainError::Message(e.to_string()))?;
    if !rest.is_empty() {
        return Err(TrainError::Message(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(v)
}

/// Client → server, once: parameters, session configuration and evaluation keys.
pub struct SessionSetup<B: Backend> {
    /// CKKS parameters.
    pub parameters: ParametersLiteral,
    /// Bootstrapping circuit.
    pub bootstrapping: BootstrappingConfig,
    /// Session configuration.
    pub config: SessionConfig,
    /// Evaluation keys (relinearization, Galois, encapsulation; never the secret key).
    pub keys: EvaluationKeySet<B>,
}

#[derive(Serialize, Deserialize)]
struct SetupWire {
    parameters: ParametersLiteral,
    bootstrapping: BootstrappingConfig,
    config: SessionConfig,
    keys: Vec<u8>,
}

impl<B: Backend> SessionSetup<B> {
    /// Serializes the message (the keys through `ckks`'s seeded key format).
    ///
    /// # Errors
    /// Serialization errors.
    pub fn to_bytes(&self, ctx: &Context<B>) -> Result<Vec<u8>> {
        to_bytes(&SetupWire {
            parameters: self.parameters.clone(),
            bootstrapping: self.bootstrapping.clone(),
            config: self.config.clone(),
            keys: ctx.serialize_evaluation_keys(&self.keys)?,
        })
    }

    /// Reads the message; `ctx` must be built from its parameters.
    ///
    /// # Errors
    /// [`TrainError::Message`] for malformed bytes or other parameters; key validation
    /// errors.
    pub fn from_bytes(ctx: &Context<B>, bytes: &[u8]) -> Result<Self> {
        let w: SetupWire = from_bytes(bytes)?;
        if &w.parameters != ctx.params().literal() {
            return Err(TrainError::Message(
                "setup for other CKKS parameters than the context's".into(),
            ));
        }
        Ok(Self {
            keys: ctx.deserialize_evaluation_keys(&w.keys)?,
            parameters: w.parameters,
            bootstrapping: w.bootstrapping,
            config: w.config,
        })
    }
}

/// Magic of the streamed [`SessionSetup`].
const SETUP_MAGIC: &[u8; 8] = b"HETALSS1";
/// Largest header frame of the streamed setup (parameters, circuit, configuration).
const MAX_SETUP_HEADER: u64 = 1 << 20;

/// The public part of a [`SessionSetup`]: what a server checks (and builds its context
/// from) before it reads gigabytes of keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupHeader {
    /// CKKS parameters.
    pub parameters: ParametersLiteral,
    /// Bootstrapping circuit.
    pub bootstrapping: BootstrappingConfig,
    /// Session configuration.
    pub config: SessionConfig,
}

impl SetupHeader {
    /// Reads the header of a streamed setup ([`SessionSetup::write_to`]); the keys follow
    /// in `r` ([`SessionSetup::read_keys`]).
    ///
    /// # Errors
    /// [`TrainError::Message`] for a bad magic, an oversized (> 1 MiB) or truncated
    /// header, undecodable bytes; [`TrainError::Config`] if the configuration is out of
    /// bounds ([`SessionConfig::validate`]).
    pub fn read_from<R: std::io::Read>(r: &mut R) -> Result<Self> {
        let io = |e: std::io::Error| TrainError::Message(format!("setup stream: {e}"));
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != SETUP_MAGIC {
            return Err(TrainError::Message(
                "not a session setup stream (bad magic)".into(),
            ));
        }
        let mut len = [0u8; 8];
        r.read_exact(&mut len).map_err(io)?;
        let len = u64::from_le_bytes(len);
        if len > MAX_SETUP_HEADER {
            return Err(TrainError::Message(format!(
                "setup header of {len} bytes (at most {MAX_SETUP_HEADER})"
            )));
        }
        let mut body = vec![0u8; len as usize];
        r.read_exact(&mut body).map_err(io)?;
        let h: Self = from_bytes(&body)?;
        h.config.validate()?;
        Ok(h)
    }
}

impl<B: Backend> SessionSetup<B> {
    /// Writes the streamed form to `w`: the magic `HETALSS1`, a `u64`-length-prefixed
    /// [`SetupHeader`], then the keys in `ckks`'s streamed key format (one key in memory
    /// at a time). Returns the bytes written.
    ///
    /// # Errors
    /// [`TrainError::Message`] when `w` fails; serialization errors.
    pub fn write_to<W: std::io::Write>(&self, ctx: &Context<B>, w: &mut W) -> Result<u64> {
        let io = |e: std::io::Error| TrainError::Message(format!("setup stream: {e}"));
        let header = to_bytes(&SetupHeader {
            parameters: self.parameters.clone(),
            bootstrapping: self.bootstrapping.clone(),
            config: self.config.clone(),
        })?;
        w.write_all(SETUP_MAGIC).map_err(io)?;
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&header).map_err(io)?;
        let keys = ctx.write_evaluation_keys(&self.keys, w)?;
        Ok(16 + header.len() as u64 + keys)
    }

    /// Reads the keys that follow a [`SetupHeader`] in `r`, keeping their uniform parts
    /// as `storage` says (a server with [`KeyStorage::Seeded`] expands only the
    /// relinearization key's); `ctx` must be built from `header.parameters`. The stream
    /// must end after the keys.
    ///
    /// # Errors
    /// [`TrainError::Message`] for a context of other parameters; key validation errors
    /// (`ckks`'s [`Context::read_evaluation_keys_with`]).
    pub fn read_keys<R: std::io::Read>(
        ctx: &Context<B>,
        header: SetupHeader,
        r: &mut R,
        storage: KeyStorage,
    ) -> Result<Self> {
        if &header.parameters != ctx.params().literal() {
            return Err(TrainError::Message(
                "setup for other CKKS parameters than the context's".into(),
            ));
        }
        Ok(Self {
            keys: ctx.read_evaluation_keys_with(r, storage)?,
            parameters: header.parameters,
            bootstrapping: header.bootstrapping,
            config: header.config,
        })
    }
}

macro_rules! matrix_message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident),* } $(, $(#[$xdoc:meta])* $extra:ident : $ty:ty)?) => {
        $(#[$doc])*
        pub struct $name<B: Backend> {
            $($(#[$fdoc])* pub $field: EncryptedMatrix<B>,)*
            $($(#[$xdoc])* pub $extra: $ty,)?
        }

        impl<B: Backend> $name<B> {
            /// Serializes the message (postcard; ciphertexts in `ckks`'s format).
            ///
            /// # Errors
            /// Serialization errors.
            pub fn to_bytes(&self, ctx: &Context<B>) -> Result<Vec<u8>> {
                let mut out = Vec::new();
                self.write_to(ctx, &mut out)?;
                Ok(out)
            }

            /// Writes [`Self::to_bytes`]'s bytes to `w`, one ciphertext's bytes in
            /// memory at a time.
            ///
            /// # Errors
            /// Serialization errors, a failing writer ([`TrainError::Message`]).
            pub fn write_to(&self, ctx: &Context<B>, w: &mut dyn std::io::Write) -> Result<()> {
                write_postcard(
                    &(
                        $(MatrixRef { ctx, m: &self.$field },)*
                        $(&self.$extra,)?
                    ),
                    w,
                )
            }

            /// Reads and validates the message.
            ///
            /// # Errors
            /// [`TrainError::Message`] for malformed bytes; ciphertext validation errors.
            #[allow(unused_parens)]
            pub fn from_bytes(ctx: &Context<B>, bytes: &[u8]) -> Result<Self> {
                let ($($field,)* $($extra,)?): ($(matrix_message!(@wire $field),)* $($ty,)?) =
                    from_bytes(bytes)?;
                Ok(Self {
                    $($field: matrix_from_wire(ctx, $field)?,)*
                    $($extra,)?
                })
            }
        }
    };
    (@wire $f:ident) => { MatrixWire };
}

matrix_message!(
    /// Client → server: one training batch, features `X` (`n×(d+1)`, plain block
    /// layout, `n ≤ batch`) and one-hot labels `Y` (`n×c`).
    EncryptedBatch {
        /// Features.
        x,
        /// One-hot labels.
        y
    },
    /// Rows `n` of the batch (public: the server divides the gradient by it).
    rows: usize
);

matrix_message!(
    /// Client → server: features to evaluate the model on (validation or test).
    EncryptedFeatures {
        /// Features (`n×(d+1)`, plain block layout with `s0` = batch).
        x
    }
);

matrix_message!(
    /// Server → client: logits `X·Wᵀ` (`n×c`).
    EncryptedLogits {
        /// Logits.
        z
    }
);

matrix_message!(
    /// Server ↔ client: a weight matrix `W` (`c×(d+1)`, vertically tiled) and the epoch
    /// it was taken after (0: initial).
    EncryptedModel {
        /// Weights.
        w
    },
    /// Epoch after which `w` was taken.
    epoch: usize
);

/// Client → server after each epoch's validation: the only thing the server learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochFeedback {
    /// Continue or stop.
    pub decision: Decision,
}

/// Wall-clock seconds of one encrypted step, split by stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimings {
    /// DiagABT and DiagATB (including their preparation rotations).
    pub matmul: f64,
    /// ASoftmax, bootstrapping excluded.
    pub softmax: f64,
    /// Bootstrapping (softmax and weight refresh).
    pub bootstrap: f64,
    /// Nesterov update and the weight refresh's masks and rotations.
    pub other: f64,
    /// Bootstraps in this step.
    pub bootstraps: usize,
}

impl StepTimings {
    /// Sum of the four parts.
    pub fn total(&self) -> f64 {
        self.matmul + self.softmax + self.bootstrap + self.other
    }

    /// Adds another step's timings.
    pub fn accumulate(&mut self, o: &StepTimings) {
        self.matmul += o.matmul;
        self.softmax += o.softmax;
        self.bootstrap += o.bootstrap;
        self.other += o.other;
        self.bootstraps += o.bootstraps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use he_linalg::ckks::{KeyGenerator, presets};
    use he_linalg::{Matrix, UnitShape};

    /// The streamed form of a matrix is byte for byte the materialized one, so files
    /// written either way read back the same.
    #[test]
    fn streamed_matrix_bytes_equal_the_materialized_ones() {
        let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
        let sk = KeyGenerator::new(&ctx).gen_secret_key().unwrap();
        let shape = UnitShape::new(16, 32).unwrap();
        let z = Matrix::from_fn(40, 50, |i, j| (i as f64 - j as f64) / 64.0);
        let layout = BlockLayout::new(40, 50, shape).unwrap();
        let m = EncryptedMatrix::encrypt(&ctx, &sk, &z, layout, 2).unwrap();
        assert!(m.ciphertexts().len() > 1);
        let streamed = to_bytes(&MatrixRef { ctx: &ctx, m: &m }).unwrap();
        assert_eq!(streamed, to_bytes(&matrix_wire(&ctx, &m).unwrap()).unwrap());
        let f = EncryptedFeatures { x: m };
        let back = EncryptedFeatures::from_bytes(&ctx, &f.to_bytes(&ctx).unwrap()).unwrap();
        assert_eq!(back.x.ciphertexts().len(), f.x.ciphertexts().len());
        // A failing writer is an error, not a panic.
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            f.write_to(&ctx, &mut Broken),
            Err(TrainError::Message(_))
        ));
    }
}
