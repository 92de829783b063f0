//! Serialization with serde + postcard, validated on load.
//!
//! Every encoding starts with a format version and a fingerprint of the parameters (ring
//! degree and moduli), so bytes made under other parameters are refused. Loading checks
//! everything a malicious or corrupted input could get wrong before any arithmetic runs:
//! levels against `L`, slot counts, scales, number of parts and key digits, limb lengths,
//! Galois elements, and that every residue is below its modulus (through
//! [`he_math::Backend::upload`]). Failures are [`CkksError::Malformed`] or
//! [`CkksError::ParameterMismatch`], never a panic.
//!
//! Compact seeded forms: a fresh secret-key ciphertext (from
//! [`SecretKey::encrypt_compact`]) stores `c_0` and the 32-byte seed of `c_1` (half the
//! size); switching keys always store the `b_j` and the seed of the `a_j`, which loading
//! expands or not ([`KeyStorage`]).

use crate::ciphertext::{Ciphertext, Plaintext};
use crate::context::Context;
use crate::error::{CkksError, Result};
use crate::keys::{
    EncapsulationKeys, EvaluationKeySet, GaloisKey, KeyStorage, PublicKey, RelinearizationKey,
    SecretKey, SwitchingKey, sample_uniform,
};
use crate::params::{Parameters, ParametersLiteral};
use he_math::{Backend, Csprng, Representation, RnsPoly};
use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// Version of the encodings below; bumped on any incompatible change (4: switching
/// keys' `a_j` expanded limb by limb, `he_math::expand`).
pub const FORMAT_VERSION: u16 = 4;

fn malformed(msg: impl std::fmt::Display) -> CkksError {
    CkksError::Malformed(msg.to_string())
}

fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(malformed)
}

/// Decodes `bytes` as one `T`; trailing bytes are refused (a flipped length or a
/// concatenated second message must not pass as the first).
fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    let (v, rest): (T, _) = postcard::take_from_bytes(bytes).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(v)
}

/// FNV-1a over the ring degree and the moduli: identifies a parameter set.
fn fingerprint(params: &Parameters) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(params.n() as u64);
    for m in params.ring().moduli() {
        eat(m.value());
    }
    h
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u16,
    fingerprint: u64,
}

impl Header {
    fn new(params: &Parameters) -> Self {
        Self {
            version: FORMAT_VERSION,
            fingerprint: fingerprint(params),
        }
    }
    fn check(&self, params: &Parameters) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(malformed(format!(
                "format version {} (expected {FORMAT_VERSION})",
                self.version
            )));
        }
        if self.fingerprint != fingerprint(params) {
            return Err(CkksError::ParameterMismatch(
                "the data was made under other parameters".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Meta {
    level: u32,
    scale: f64,
    slots: u32,
}

#[derive(Serialize, Deserialize)]
enum CiphertextWire {
    Full {
        header: Header,
        meta: Meta,
        parts: Vec<Vec<u64>>,
    },
    Seeded {
        header: Header,
        meta: Meta,
        seed: [u8; 32],
        c0: Vec<u64>,
    },
}

#[derive(Serialize, Deserialize)]
struct PlaintextWire {
    header: Header,
    meta: Meta,
    poly: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct SwitchingKeyWire {
    /// The highest level the key serves (its polynomials have `level + 1` limbs of `Q`).
    level: u32,
    seed: [u8; 32],
    b: Vec<Vec<u64>>,
}

#[derive(Serialize, Deserialize)]
struct EvaluationKeysWire {
    header: Header,
    relin: Option<SwitchingKeyWire>,
    galois: Vec<(u64, SwitchingKeyWire)>,
    /// Hamming weight, `s → s'` key (level 0), `s' → s` key.
    encapsulation: Option<(u64, SwitchingKeyWire, SwitchingKeyWire)>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyWire {
    header: Header,
    b: Vec<u64>,
    a: Vec<u64>,
}

/// The secret key's encoding: header, then the residues as a postcard sequence
/// (decoded by hand in [`SecretKey::from_bytes`]).
#[derive(Serialize)]
struct SecretKeyWireRef<'a> {
    header: Header,
    s: &'a [u64],
}

impl Parameters {
    /// The parameter literal as postcard bytes.
    ///
    /// # Errors
    /// Serialization errors only.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        to_bytes(self.literal())
    }

    /// Parameters from [`Self::to_bytes`] output, validated like [`Parameters::new`].
    ///
    /// # Errors
    /// [`CkksError::Malformed`] for undecodable bytes; as [`Parameters::new`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Parameters::new(from_bytes::<ParametersLiteral>(bytes)?)
    }
}

impl<B: Backend> Context<B> {
    fn download_data(&self, p: &B::Poly) -> Result<Vec<u64>> {
        Ok(self.backend().download(p)?.data().to_vec())
    }

    /// Validates `data` as an NTT-form polynomial over `basis` and uploads it.
    fn upload_data(&self, basis: &[usize], data: Vec<u64>) -> Result<B::Poly> {
        let n = self.params().n();
        let host = RnsPoly::from_data(n, basis, Representation::Ntt, data).map_err(|_| {
            malformed(format!(
                "polynomial data length is not {} limbs × N",
                basis.len()
            ))
        })?;
        self.backend().upload_owned(host).map_err(malformed)
    }

    fn check_meta(&self, meta: &Meta) -> Result<(usize, f64, usize)> {
        let level = meta.level as usize;
        if level > self.params().max_level() {
            return Err(malformed(format!(
                "level {level} above the maximum {}",
                self.params().max_level()
            )));
        }
        let slots = meta.slots as usize;
        if !slots.is_power_of_two() || slots > self.params().max_slots() {
            return Err(malformed(format!("slot count {slots}")));
        }
        if !(meta.scale.is_finite() && meta.scale >= 1.0) {
            return Err(malformed(format!("scale {}", meta.scale)));
        }
        Ok((level, meta.scale, slots))
    }

    fn meta(level: usize, scale: f64, slots: usize) -> Meta {
        Meta {
            level: level as u32,
            scale,
            slots: slots as u32,
        }
    }

    /// A ciphertext as bytes (all parts, NTT form).
    ///
    /// # Errors
    /// Backend errors.
    pub fn serialize_ciphertext(&self, ct: &Ciphertext<B>) -> Result<Vec<u8>> {
        let parts = ct
            .parts
            .iter()
            .map(|p| self.download_data(p))
            .collect::<Result<Vec<_>>>()?;
        to_bytes(&CiphertextWire::Full {
            header: Header::new(self.params()),
            meta: Self::meta(ct.level, ct.scale, ct.slots),
            parts,
        })
    }

    /// A ciphertext from [`Self::serialize_ciphertext`] or
    /// [`SecretKey::encrypt_compact`] bytes, validated.
    ///
    /// # Errors
    /// [`CkksError::Malformed`], [`CkksError::ParameterMismatch`].
    pub fn deserialize_ciphertext(&self, bytes: &[u8]) -> Result<Ciphertext<B>> {
        match from_bytes::<CiphertextWire>(bytes)? {
            CiphertextWire::Full {
                header,
                meta,
                parts,
            } => {
                header.check(self.params())?;
                let (level, scale, slots) = self.check_meta(&meta)?;
                if !(2..=3).contains(&parts.len()) {
                    return Err(malformed(format!("ciphertext with {} parts", parts.len())));
                }
                let basis = self.params().q_basis(level);
                let parts = parts
                    .into_iter()
                    .map(|d| self.upload_data(&basis, d))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Ciphertext {
                    parts,
                    level,
                    scale,
                    slots,
                })
            }
            CiphertextWire::Seeded {
                header,
                meta,
                seed,
                c0,
            } => {
                header.check(self.params())?;
                let (level, scale, slots) = self.check_meta(&meta)?;
                let basis = self.params().q_basis(level);
                let c0 = self.upload_data(&basis, c0)?;
                let c1 = sample_uniform(self, &mut Csprng::from_seed(seed), &basis)?;
                Ok(Ciphertext {
                    parts: vec![c0, c1],
                    level,
                    scale,
                    slots,
                })
            }
        }
    }

    /// A plaintext as bytes.
    ///
    /// # Errors
    /// Backend errors.
    pub fn serialize_plaintext(&self, pt: &Plaintext<B>) -> Result<Vec<u8>> {
        to_bytes(&PlaintextWire {
            header: Header::new(self.params()),
            meta: Self::meta(pt.level, pt.scale, pt.slots),
            poly: self.download_data(&pt.poly)?,
        })
    }

    /// A plaintext from [`Self::serialize_plaintext`] bytes, validated.
    ///
    /// # Errors
    /// [`CkksError::Malformed`], [`CkksError::ParameterMismatch`].
    pub fn deserialize_plaintext(&self, bytes: &[u8]) -> Result<Plaintext<B>> {
        let w: PlaintextWire = from_bytes(bytes)?;
        w.header.check(self.params())?;
        let (level, scale, slots) = self.check_meta(&w.meta)?;
        let poly = self.upload_data(&self.params().q_basis(level), w.poly)?;
        Ok(Plaintext {
            poly,
            level,
            scale,
            slots,
        })
    }

    fn switching_key_wire(&self, k: &SwitchingKey<B>) -> Result<SwitchingKeyWire> {
        Ok(SwitchingKeyWire {
            level: u32::try_from(k.level).map_err(malformed)?,
            seed: k.seed,
            b: k.b
                .iter()
                .map(|b| self.download_data(b))
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// A switching key with the special primes `P`, at the level the wire gives
    /// (checked against `L`).
    fn switching_key_from_wire(
        &self,
        w: SwitchingKeyWire,
        storage: KeyStorage,
    ) -> Result<SwitchingKey<B>> {
        let level = w.level as usize;
        if level > self.params().max_level() {
            return Err(malformed(format!(
                "switching key at level {level} above the maximum {}",
                self.params().max_level()
            )));
        }
        self.switching_key_from_wire_over(w, level, &self.params().p_basis(), storage)
    }

    /// A switching key usable up to `level` with the special primes `special`
    /// (polynomials over `q_0 … q_level ∪ special`); the wire must say `level`. The
    /// `a_j` are expanded from the seed or not, as `storage` says.
    fn switching_key_from_wire_over(
        &self,
        w: SwitchingKeyWire,
        level: usize,
        special: &[usize],
        storage: KeyStorage,
    ) -> Result<SwitchingKey<B>> {
        let params = self.params();
        if w.level as usize != level {
            return Err(malformed(format!(
                "switching key at level {} where level {level} is expected",
                w.level
            )));
        }
        let expected = params.digits_at(level);
        if w.b.len() != expected {
            return Err(malformed(format!(
                "switching key with {} digits (expected {expected})",
                w.b.len()
            )));
        }
        let qp: Vec<usize> = params
            .q_basis(level)
            .into_iter()
            .chain(special.iter().copied())
            .collect();
        let b =
            w.b.into_iter()
                .map(|b| self.upload_data(&qp, b))
                .collect::<Result<Vec<_>>>()?;
        let mut key = SwitchingKey {
            b,
            a: Vec::new(),
            seed: w.seed,
            level,
        };
        key.set_storage(self, storage)?;
        Ok(key)
    }

    /// An evaluation-key set as bytes (compact: the `a_j` are stored as their seed).
    ///
    /// # Errors
    /// Backend errors.
    pub fn serialize_evaluation_keys(&self, keys: &EvaluationKeySet<B>) -> Result<Vec<u8>> {
        let relin = keys
            .relin
            .as_ref()
            .map(|r| self.switching_key_wire(&r.0))
            .transpose()?;
        let galois = keys
            .galois
            .values()
            .map(|g| Ok((g.element as u64, self.switching_key_wire(&g.key)?)))
            .collect::<Result<Vec<_>>>()?;
        let encapsulation = keys
            .encapsulation
            .as_ref()
            .map(|e| {
                Ok::<_, CkksError>((
                    e.hamming_weight as u64,
                    self.switching_key_wire(&e.to_sparse)?,
                    self.switching_key_wire(&e.from_sparse)?,
                ))
            })
            .transpose()?;
        to_bytes(&EvaluationKeysWire {
            header: Header::new(self.params()),
            relin,
            galois,
            encapsulation,
        })
    }

    /// An evaluation-key set from [`Self::serialize_evaluation_keys`] bytes, validated
    /// (digit counts, limb lengths, residues, Galois elements odd, below 2N and distinct),
    /// kept as [`KeyStorage::default`] says (seeded).
    ///
    /// # Errors
    /// [`CkksError::Malformed`], [`CkksError::ParameterMismatch`].
    pub fn deserialize_evaluation_keys(&self, bytes: &[u8]) -> Result<EvaluationKeySet<B>> {
        self.deserialize_evaluation_keys_with(bytes, KeyStorage::default())
    }

    /// [`Self::deserialize_evaluation_keys`] keeping the keys' `a_j` as `storage` says
    /// ([`KeyStorage::Seeded`]: never expanded but for the relinearization key's,
    /// about half the memory).
    ///
    /// # Errors
    /// As [`Self::deserialize_evaluation_keys`].
    pub fn deserialize_evaluation_keys_with(
        &self,
        bytes: &[u8],
        storage: KeyStorage,
    ) -> Result<EvaluationKeySet<B>> {
        let w: EvaluationKeysWire = from_bytes(bytes)?;
        w.header.check(self.params())?;
        let mut set = EvaluationKeySet::default();
        if let Some(r) = w.relin {
            self.insert_key(&mut set, KeyFrame::Relin(r), storage)?;
        }
        for (element, k) in w.galois {
            self.insert_key(&mut set, KeyFrame::Galois(element, k), storage)?;
        }
        if let Some((h, to, from)) = w.encapsulation {
            self.insert_key(&mut set, KeyFrame::Encapsulation(h, to, from), storage)?;
        }
        Ok(set)
    }

    /// Validates one key and adds it to `set` (a second relinearization or
    /// encapsulation key, a repeated or trivial Galois element are refused).
    fn insert_key(
        &self,
        set: &mut EvaluationKeySet<B>,
        frame: KeyFrame,
        storage: KeyStorage,
    ) -> Result<()> {
        match frame {
            KeyFrame::Relin(r) => {
                if set.relin.is_some() {
                    return Err(malformed("two relinearization keys"));
                }
                set.relin = Some(RelinearizationKey(
                    self.switching_key_from_wire(r, storage.for_relinearization())?,
                ));
            }
            KeyFrame::Galois(element, k) => {
                let element = usize::try_from(element).map_err(malformed)?;
                he_math::galois::check_galois_element(element, self.params().n())
                    .map_err(malformed)?;
                if element == 1 || set.galois.contains_key(&element) {
                    return Err(malformed(format!(
                        "Galois element {element} repeated or trivial"
                    )));
                }
                let key = self.switching_key_from_wire(k, storage)?;
                set.galois.insert(element, GaloisKey { element, key });
            }
            KeyFrame::Encapsulation(h, to, from) => {
                let h = usize::try_from(h).map_err(malformed)?;
                if h == 0 || h > self.params().n() {
                    return Err(malformed(format!("encapsulation Hamming weight {h}")));
                }
                if set.encapsulation.is_some() {
                    return Err(malformed("two encapsulation key pairs"));
                }
                set.encapsulation = Some(EncapsulationKeys {
                    to_sparse: self.switching_key_from_wire_over(
                        to,
                        0,
                        &self.params().encapsulation_special_basis(),
                        storage,
                    )?,
                    from_sparse: self.switching_key_from_wire(from, storage)?,
                    hamming_weight: h,
                });
            }
            KeyFrame::End => return Err(malformed("end marker inside the key set")),
        }
        Ok(())
    }

    /// Largest frame of the streamed key format under these parameters: two switching
    /// keys at the top level (the encapsulation pair) at 10 bytes per residue (postcard's
    /// longest varint), plus framing.
    fn max_key_frame_bytes(&self) -> u64 {
        let p = self.params();
        let limbs = (p.max_level() + 1 + p.p_basis().len()) as u64;
        let digits = p.digits_at(p.max_level()) as u64;
        2 * (digits * (limbs * p.n() as u64 * 10 + 16) + 64) + 64
    }

    /// Writes an evaluation-key set to `w` one key at a time (the streamed form of
    /// [`Self::serialize_evaluation_keys`]: no buffer holds more than one key, so keys
    /// of several GB at N = 2^16 go to a file or a socket without a copy of the set).
    /// Format: the 8-byte magic `CKKSEVKS`, then frames of a little-endian `u64`
    /// length and a postcard body: the header (version, parameter fingerprint), one
    /// frame per key (seeded as in the byte form), an end frame. Returns the bytes
    /// written.
    ///
    /// # Errors
    /// [`CkksError::Io`] when `w` fails; backend errors.
    pub fn write_evaluation_keys<W: std::io::Write>(
        &self,
        keys: &EvaluationKeySet<B>,
        w: &mut W,
    ) -> Result<u64> {
        let io = |e: std::io::Error| CkksError::Io(e.to_string());
        let mut written = KEY_STREAM_MAGIC.len() as u64;
        w.write_all(KEY_STREAM_MAGIC).map_err(io)?;
        let mut frame = |bytes: Vec<u8>, w: &mut W| -> Result<()> {
            w.write_all(&(bytes.len() as u64).to_le_bytes())
                .map_err(io)?;
            w.write_all(&bytes).map_err(io)?;
            written += 8 + bytes.len() as u64;
            Ok(())
        };
        frame(to_bytes(&Header::new(self.params()))?, w)?;
        if let Some(r) = &keys.relin {
            frame(
                to_bytes(&KeyFrame::Relin(self.switching_key_wire(&r.0)?))?,
                w,
            )?;
        }
        for g in keys.galois.values() {
            let f = KeyFrame::Galois(g.element as u64, self.switching_key_wire(&g.key)?);
            frame(to_bytes(&f)?, w)?;
        }
        if let Some(e) = &keys.encapsulation {
            let f = KeyFrame::Encapsulation(
                e.hamming_weight as u64,
                self.switching_key_wire(&e.to_sparse)?,
                self.switching_key_wire(&e.from_sparse)?,
            );
            frame(to_bytes(&f)?, w)?;
        }
        frame(to_bytes(&KeyFrame::End)?, w)?;
        w.flush().map_err(io)?;
        Ok(written)
    }

    /// Reads a key set written by [`Self::write_evaluation_keys`], validating each key as
    /// [`Self::deserialize_evaluation_keys`] does. A frame longer than two top-level
    /// switching keys is refused before anything is allocated, and a frame's buffer grows
    /// only as its bytes arrive, so a forged length cannot make it allocate more than
    /// the stream holds. The stream must end right after the end frame. Keys are kept as
    /// [`KeyStorage::default`] says (seeded).
    ///
    /// # Errors
    /// [`CkksError::Malformed`] (bad magic, oversized or truncated frame, invalid key,
    /// bytes after the end frame), [`CkksError::ParameterMismatch`], [`CkksError::Io`].
    pub fn read_evaluation_keys<R: std::io::Read>(&self, r: &mut R) -> Result<EvaluationKeySet<B>> {
        self.read_evaluation_keys_with(r, KeyStorage::default())
    }

    /// [`Self::read_evaluation_keys`] keeping the keys' `a_j` as `storage` says
    /// ([`KeyStorage::Seeded`]: never expanded but for the relinearization key's,
    /// about half the memory).
    ///
    /// # Errors
    /// As [`Self::read_evaluation_keys`].
    pub fn read_evaluation_keys_with<R: std::io::Read>(
        &self,
        r: &mut R,
        storage: KeyStorage,
    ) -> Result<EvaluationKeySet<B>> {
        let mut magic = [0u8; 8];
        read_exact_or_malformed(r, &mut magic, "magic")?;
        if &magic != KEY_STREAM_MAGIC {
            return Err(malformed("not a streamed evaluation-key set (bad magic)"));
        }
        let max = self.max_key_frame_bytes();
        let header: Header = from_bytes(&read_frame(r, 64)?)?;
        header.check(self.params())?;
        let mut set = EvaluationKeySet::default();
        loop {
            let body = read_frame(r, max)?;
            match from_bytes::<KeyFrame>(&body)? {
                KeyFrame::End => break,
                frame => self.insert_key(&mut set, frame, storage)?,
            }
        }
        let mut probe = [0u8; 1];
        match r.read(&mut probe) {
            Ok(0) => Ok(set),
            Ok(_) => Err(malformed("bytes after the end of the key set")),
            Err(e) => Err(CkksError::Io(e.to_string())),
        }
    }
}

/// Magic of the streamed evaluation-key format ([`Context::write_evaluation_keys`]).
const KEY_STREAM_MAGIC: &[u8; 8] = b"CKKSEVKS";

/// One frame of the streamed evaluation-key format.
#[derive(Serialize, Deserialize)]
enum KeyFrame {
    Relin(SwitchingKeyWire),
    Galois(u64, SwitchingKeyWire),
    /// Hamming weight, `s → s'` key (level 0), `s' → s` key.
    Encapsulation(u64, SwitchingKeyWire, SwitchingKeyWire),
    End,
}

fn read_exact_or_malformed<R: std::io::Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            malformed(format!("stream ends inside the {what}"))
        } else {
            CkksError::Io(e.to_string())
        }
    })
}

/// Reads one `u64`-length-prefixed frame of at most `max` bytes; the buffer grows with
/// the bytes actually read.
fn read_frame<R: std::io::Read>(r: &mut R, max: u64) -> Result<Vec<u8>> {
    let mut len = [0u8; 8];
    read_exact_or_malformed(r, &mut len, "frame length")?;
    let len = u64::from_le_bytes(len);
    if len > max {
        return Err(malformed(format!(
            "frame of {len} bytes (at most {max} under these parameters)"
        )));
    }
    let mut body = Vec::with_capacity(len.min(1 << 20) as usize);
    let got = std::io::Read::by_ref(r)
        .take(len)
        .read_to_end(&mut body)
        .map_err(|e| CkksError::Io(e.to_string()))?;
    if got as u64 != len {
        return Err(malformed(format!("frame truncated: {got} of {len} bytes")));
    }
    Ok(body)
}

impl<B: Backend> PublicKey<B> {
    /// The public key as bytes.
    ///
    /// # Errors
    /// Backend errors.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        to_bytes(&PublicKeyWire {
            header: Header::new(self.ctx.params()),
            b: self.ctx.download_data(&self.b)?,
            a: self.ctx.download_data(&self.a)?,
        })
    }

    /// A public key from [`Self::to_bytes`] output, validated.
    ///
    /// # Errors
    /// [`CkksError::Malformed`], [`CkksError::ParameterMismatch`].
    pub fn from_bytes(ctx: &Arc<Context<B>>, bytes: &[u8]) -> Result<Self> {
        let w: PublicKeyWire = from_bytes(bytes)?;
        w.header.check(ctx.params())?;
        let basis = ctx.params().q_basis(ctx.params().max_level());
        Ok(Self {
            ctx: ctx.clone(),
            b: ctx.upload_data(&basis, w.b)?,
            a: ctx.upload_data(&basis, w.a)?,
        })
    }
}

impl<B: Backend> SecretKey<B> {
    /// Secret-key encryption straight to the compact seeded byte form (`c_0` plus the
    /// seed of `c_1`): about half the size of [`Context::serialize_ciphertext`].
    ///
    /// # Errors
    /// As [`SecretKey::encrypt`].
    pub fn encrypt_compact(&self, pt: &Plaintext<B>) -> Result<Vec<u8>> {
        let mut rng = Csprng::from_entropy();
        let seed = rng.seed_bytes();
        let ct = self.encrypt_with_seed(pt, seed, &mut rng)?;
        to_bytes(&CiphertextWire::Seeded {
            header: Header::new(self.ctx.params()),
            meta: Context::<B>::meta(ct.level, ct.scale, ct.slots),
            seed,
            c0: self.ctx.download_data(&ct.parts[0])?,
        })
    }

    /// The secret key as bytes, for the client's own storage only (never send it). The
    /// returned buffer is zeroized on drop.
    ///
    /// # Errors
    /// Backend errors.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut host = self.ctx.backend().download(&self.s)?;
        // Serialized straight from the downloaded buffer into one buffer sized up front
        // (a postcard varint takes at most 10 bytes per u64), so no copy and no
        // reallocation leaves key material behind; the downloaded buffer is wiped, the
        // output is wiped on drop.
        let bound = 32 + 10 * host.data().len();
        let mut out = Zeroizing::new(vec![0u8; bound]);
        let used = postcard::to_slice(
            &SecretKeyWireRef {
                header: Header::new(self.ctx.params()),
                s: host.data(),
            },
            &mut out[..],
        )
        .map(|b| b.len());
        host.data_mut().zeroize();
        out.truncate(used.map_err(malformed)?);
        Ok(out)
    }

    /// A secret key from [`Self::to_bytes`] output, validated (length, residues).
    ///
    /// # Errors
    /// [`CkksError::Malformed`], [`CkksError::ParameterMismatch`].
    pub fn from_bytes(ctx: &Arc<Context<B>>, bytes: &[u8]) -> Result<Self> {
        // Decoded by hand (the postcard layout of `SecretKeyWireRef`: header, length,
        // varints) into one buffer of the expected size, so a growing vector leaves no
        // copies of key material behind and a forged length allocates nothing.
        let (header, rest): (Header, _) = postcard::take_from_bytes(bytes).map_err(malformed)?;
        header.check(ctx.params())?;
        let basis = ctx.params().qp_basis();
        let expected = ctx.params().n() * basis.len();
        let (len, mut rest): (usize, _) = postcard::take_from_bytes(rest).map_err(malformed)?;
        if len != expected {
            return Err(malformed("secret key length"));
        }
        let mut data = Zeroizing::new(Vec::with_capacity(expected));
        for _ in 0..expected {
            let (v, r): (u64, _) = postcard::take_from_bytes(rest).map_err(malformed)?;
            data.push(v);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        let mut host = RnsPoly::from_data(
            ctx.params().n(),
            &basis,
            Representation::Ntt,
            std::mem::take(&mut *data),
        )
        .map_err(|_| malformed("secret key length"))?;
        let up = ctx.backend().upload(&host).map_err(malformed);
        host.data_mut().zeroize();
        Ok(Self {
            ctx: ctx.clone(),
            s: up?,
        })
    }
}
