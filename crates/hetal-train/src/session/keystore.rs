//! The client's secret key on disk and what its files are bound to.
//!
//! `dir/secret_key.bin` is written once, owner-only, atomically, sealed for the CKKS
//! parameters ([`crate::store`]); a symlink or a group/other-readable file is refused
//! when read. Checkpoints are bound to the secret key's SHA-256, the parameters, the
//! session configuration, the data and the seed ([`checkpoint_binding`]).

use crate::encrypted::Client;
use crate::error::Result;
use crate::store;
use he_linalg::Backend;
use he_linalg::ckks::{Context, SecretKey};
use std::path::Path;
use std::sync::Arc;

const SECRET_KEY_KIND: &[u8; 8] = b"HETALSK1";
/// Largest secret-key file read back (a secret key at N = 2^16 is a few MB).
const MAX_SECRET_KEY_BYTES: u64 = 256 << 20;
/// The file name in the key directory.
pub const SECRET_KEY_FILE: &str = "secret_key.bin";

fn params_bytes<B: Backend>(ctx: &Context<B>) -> Result<Vec<u8>> {
    Ok(ctx.params().to_bytes()?)
}

fn secret_key_binding<B: Backend>(ctx: &Context<B>) -> Result<store::Binding> {
    Ok(store::Binding::new(&[
        ("purpose", b"secret-key"),
        ("CKKS parameters", &params_bytes(ctx)?),
    ]))
}

/// The secret key in `dir/secret_key.bin`, if the file exists.
///
/// # Errors
/// [`crate::TrainError::Store`] for an unsafe, corrupted or other-parameters file;
/// key validation errors.
pub fn load_secret_key<B: Backend>(
    ctx: &Arc<Context<B>>,
    dir: &Path,
) -> Result<Option<SecretKey<B>>> {
    let path = dir.join(SECRET_KEY_FILE);
    // A dangling symlink is not "absent": `read_private` refuses it.
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let sealed = store::read_private(&path, MAX_SECRET_KEY_BYTES)?;
    let bytes = store::unseal(&path, SECRET_KEY_KIND, &secret_key_binding(ctx)?, &sealed)?;
    Ok(Some(SecretKey::from_bytes(ctx, bytes)?))
}

/// Writes the secret key to `dir/secret_key.bin` (created owner-only; `dir` is
/// created); the plaintext and sealed copies are wiped after.
///
/// # Errors
/// I/O errors.
pub fn store_secret_key<B: Backend>(ctx: &Context<B>, sk: &SecretKey<B>, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| crate::TrainError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let bytes = zeroize::Zeroizing::new(sk.to_bytes()?);
    let sealed = zeroize::Zeroizing::new(store::seal(
        SECRET_KEY_KIND,
        &secret_key_binding(ctx)?,
        &bytes,
    ));
    store::write_atomic(&dir.join(SECRET_KEY_FILE), &sealed)
}

/// What a client checkpoint is bound to: the secret key (its SHA-256), the parameters,
/// the session configuration, a name of the data and the batch-order seed; resuming
/// with another of any is refused with a message naming the parts that differ.
///
/// # Errors
/// Serialization errors.
pub fn checkpoint_binding<B: Backend>(
    client: &Client<B>,
    data: &str,
    seed: u64,
) -> Result<store::Binding> {
    // Binding keeps only each part's SHA-256.
    let key = zeroize::Zeroizing::new(client.secret_key().to_bytes()?);
    let cfg = postcard::to_allocvec(client.config())
        .map_err(|e| crate::TrainError::Message(e.to_string()))?;
    Ok(store::Binding::new(&[
        ("purpose", b"checkpoint"),
        ("secret key", &key),
        ("CKKS parameters", &params_bytes(client.context())?),
        ("session configuration", &cfg),
        ("dataset", data.as_bytes()),
        ("seed", &seed.to_le_bytes()),
    ]))
}
