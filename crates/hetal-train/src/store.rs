//! State on disk that survives crashes and is checked when read: checkpoints and the
//! client's secret-key cache.
//!
//! - [`write_atomic`]: the bytes go to a temporary file in the target's directory
//!   (owner-only permissions on Unix, as `tempfile` creates it), are flushed to disk,
//!   and replace the target by one `rename`; the directory is synced after. A kill or a
//!   full disk at any moment leaves either the old file or the new one, never a torn
//!   one, and a symlink at the target is replaced, not followed.
//! - [`seal`] / [`unseal`]: an envelope `magic (8) ‖ version (4) ‖ binding (32) ‖ length
//!   (8) ‖ SHA-256 (32) ‖ body`, the body being the binding's manifest (its named parts'
//!   SHA-256s: count (1), then per part name length (1) ‖ name ‖ digest (32)) followed by
//!   the payload. The digest covers the kind, the binding and the body, so a flipped
//!   bit, a truncated or extended file, or a file of another kind is refused; a file
//!   bound to something else (another key, seed, dataset or configuration: the caller's
//!   [`Binding`]) is refused with a message that names the parts that differ.
//! - [`write_sealed_atomic`]: [`seal`] and [`write_atomic`] in one pass for payloads too
//!   large to hold twice (the server's state): the payload is streamed into the
//!   temporary file while it is hashed, and the length and digest are written into the
//!   header last. The bytes on disk are exactly [`seal`]'s.
//! - [`read_private`]: refuses a symlink, a non-regular file, a file readable by group or
//!   others (Unix), and files larger than a caller-given bound.

use crate::error::{Result, TrainError};
use sha2::{Digest, Sha256};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Envelope format version.
const VERSION: u32 = 2;
/// Bytes before the body (manifest and payload).
const HEADER: usize = 8 + 4 + 32 + 8 + 32;

fn err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Store {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// SHA-256 of the concatenation of `parts`, each prefixed by its length (so that
/// different splits of the same bytes differ).
pub fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Most parts a [`Binding`] holds.
pub const MAX_BINDING_PARTS: usize = 16;
/// Longest part name, bytes.
pub const MAX_PART_NAME: usize = 64;

/// What a sealed file is bound to: named parts (e.g. "secret key", "seed"), each kept as
/// its SHA-256. The file records the part digests, so [`unseal`] can say which parts
/// differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    parts: Vec<(String, [u8; 32])>,
}

impl Binding {
    /// A binding of `(name, bytes)` parts (at most [`MAX_BINDING_PARTS`], names of at
    /// most [`MAX_PART_NAME`] bytes: the callers are this crate's, so a violation is a
    /// programming error and panics).
    pub fn new(parts: &[(&str, &[u8])]) -> Self {
        assert!(parts.len() <= MAX_BINDING_PARTS, "too many binding parts");
        Self {
            parts: parts
                .iter()
                .map(|(name, bytes)| {
                    assert!(name.len() <= MAX_PART_NAME, "binding part name too long");
                    ((*name).to_string(), hash_parts(&[bytes]))
                })
                .collect(),
        }
    }

    /// The digest written in the header: a SHA-256 over the names and part digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut flat: Vec<&[u8]> = Vec::with_capacity(2 * self.parts.len());
        for (name, d) in &self.parts {
            flat.push(name.as_bytes());
            flat.push(d);
        }
        hash_parts(&flat)
    }

    fn manifest(&self) -> Vec<u8> {
        let mut out = vec![self.parts.len() as u8];
        for (name, d) in &self.parts {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(d);
        }
        out
    }

    /// Parses a manifest at the start of `body`: the parts and the rest.
    fn parse_manifest(body: &[u8]) -> Option<(Self, &[u8])> {
        let (&count, mut rest) = body.split_first()?;
        if usize::from(count) > MAX_BINDING_PARTS {
            return None;
        }
        let mut parts = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (&len, r) = rest.split_first()?;
            let len = usize::from(len);
            if len > MAX_PART_NAME || r.len() < len + 32 {
                return None;
            }
            let name = std::str::from_utf8(&r[..len]).ok()?.to_string();
            let d: [u8; 32] = r[len..len + 32].try_into().ok()?;
            parts.push((name, d));
            rest = &r[len + 32..];
        }
        Some((Self { parts }, rest))
    }

    /// The names of the parts that differ between `self` (expected) and `other` (found),
    /// parts present in only one of them included.
    fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, d) in &self.parts {
            match other.parts.iter().find(|(n, _)| n == name) {
                Some((_, e)) if e == d => {}
                Some(_) => out.push(name.clone()),
                None => out.push(format!("{name} (not recorded in the file)")),
            }
        }
        for (name, _) in &other.parts {
            if !self.parts.iter().any(|(n, _)| n == name) {
                out.push(format!("{name} (not expected)"));
            }
        }
        out
    }
}

fn digest(kind: &[u8; 8], binding: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(kind);
    h.update(binding);
    h.update(body);
    h.finalize().into()
}

/// The envelope of `payload` (see the module docs); `kind` names what it holds.
pub fn seal(kind: &[u8; 8], binding: &Binding, payload: &[u8]) -> Vec<u8> {
    // One buffer: the body (manifest and payload) is written in place and digested
    // there (the server's state is hundreds of MB).
    let manifest = binding.manifest();
    let body_len = manifest.len() + payload.len();
    let b = binding.digest();
    let mut out = Vec::with_capacity(HEADER + body_len);
    out.extend_from_slice(kind);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&b);
    out.extend_from_slice(&(body_len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(&manifest);
    out.extend_from_slice(payload);
    let d = digest(kind, &b, &out[HEADER..]);
    out[HEADER - 32..HEADER].copy_from_slice(&d);
    out
}

/// The payload of an envelope written by [`seal`] with the same `kind` and `binding`.
///
/// # Errors
/// [`TrainError::Store`] (naming `path`, used in messages only) for another kind or
/// version, a length that does not match the bytes (truncated or trailing data), a
/// digest mismatch (corruption), a malformed manifest, or another binding (the message
/// names the parts that differ).
pub fn unseal<'a>(
    path: &Path,
    kind: &[u8; 8],
    binding: &Binding,
    bytes: &'a [u8],
) -> Result<&'a [u8]> {
    if bytes.len() < HEADER || &bytes[..8] != kind {
        return Err(err(
            path,
            format!("not a {} file", String::from_utf8_lossy(kind)),
        ));
    }
    let word = |r: std::ops::Range<usize>| bytes[r].to_vec();
    let version = u32::from_le_bytes(word(8..12).try_into().map_err(|_| err(path, "header"))?);
    if version != VERSION {
        return Err(err(
            path,
            format!("format version {version}, expected {VERSION}"),
        ));
    }
    let len = u64::from_le_bytes(word(44..52).try_into().map_err(|_| err(path, "header"))?);
    if len != (bytes.len() - HEADER) as u64 {
        return Err(err(
            path,
            format!(
                "header says {len} body bytes, the file has {}",
                bytes.len() - HEADER
            ),
        ));
    }
    let body = &bytes[HEADER..];
    let stored_binding: [u8; 32] = bytes[12..44].try_into().map_err(|_| err(path, "header"))?;
    if digest(kind, &stored_binding, body)[..] != bytes[52..84] {
        return Err(err(path, "checksum mismatch: the file is corrupted"));
    }
    let Some((found, payload)) = Binding::parse_manifest(body) else {
        return Err(err(path, "malformed binding manifest"));
    };
    if found.digest() != stored_binding {
        return Err(err(path, "the binding manifest does not match the header"));
    }
    if stored_binding != binding.digest() {
        let what = binding.differences(&found);
        return Err(err(
            path,
            format!(
                "written for another run: {} differ{}",
                if what.is_empty() {
                    "the part order".to_string()
                } else {
                    what.join(", ")
                },
                if what.len() == 1 { "s" } else { "" }
            ),
        ));
    }
    Ok(payload)
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Replaces `path` atomically with the envelope of the payload that `payload` writes
/// (the bytes [`seal`] would produce for it, see the module docs), without holding the
/// payload in memory: it goes through a buffered, hashing writer into the temporary
/// file, and the header's length and digest are filled in at the end.
///
/// # Errors
/// [`TrainError::Io`] for any file-system failure, and `payload`'s own errors; the
/// target is then unchanged.
pub fn write_sealed_atomic(
    path: &Path,
    kind: &[u8; 8],
    binding: &Binding,
    payload: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    let b = binding.digest();
    let (len, d) = {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        file.write_all(kind).map_err(io(path))?;
        file.write_all(&VERSION.to_le_bytes()).map_err(io(path))?;
        file.write_all(&b).map_err(io(path))?;
        file.write_all(&[0; 8 + 32]).map_err(io(path))?;
        let mut hasher = Sha256::new();
        hasher.update(kind);
        hasher.update(b);
        let mut body = Hashing {
            inner: file,
            hasher,
            len: 0,
        };
        body.write_all(&binding.manifest()).map_err(io(path))?;
        payload(&mut body)?;
        body.flush().map_err(io(path))?;
        let d: [u8; 32] = body.hasher.finalize().into();
        (body.len, d)
    };
    let f = tmp.as_file_mut();
    f.seek(SeekFrom::Start((HEADER - 40) as u64))
        .map_err(io(path))?;
    f.write_all(&len.to_le_bytes()).map_err(io(path))?;
    f.write_all(&d).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically (see the module docs); creates the parent
/// directory if needed.
///
/// # Errors
/// [`TrainError::Io`] for any file-system failure; the target is then unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        // Make the rename itself durable; failure here leaves a valid file either way.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a file that holds a secret: a regular file (not a symlink) of at most
/// `max_len` bytes, not readable by group or others on Unix.
///
/// # Errors
/// [`TrainError::Io`] if it cannot be read; [`TrainError::Store`] for a symlink, a
/// non-regular file, permissions wider than `0o600`, or more than `max_len` bytes.
pub fn read_private(path: &Path, max_len: u64) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !meta.file_type().is_file() {
        return Err(err(path, "not a regular file (symlinks are refused)"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(
                path,
                format!("permissions {mode:o} let others read a secret; expected 600"),
            ));
        }
    }
    if meta.len() > max_len {
        return Err(err(
            path,
            format!("{} bytes, more than the {max_len} expected", meta.len()),
        ));
    }
    Ok(zeroize::Zeroizing::new(
        std::fs::read(path).map_err(io(path))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_every_corruption() {
        let b = Binding::new(&[("purpose", b"session"), ("seed", b"42")]);
        let sealed = seal(b"HETALCK1", &b, b"payload bytes");
        let p = Path::new("x");
        assert_eq!(
            unseal(p, b"HETALCK1", &b, &sealed).unwrap(),
            b"payload bytes"
        );
        // Every single-bit flip is refused.
        for i in 0..sealed.len() {
            let mut c = sealed.clone();
            c[i] ^= 1;
            assert!(unseal(p, b"HETALCK1", &b, &c).is_err(), "bit flip at {i}");
        }
        // Truncation, trailing bytes, another kind, another binding.
        assert!(unseal(p, b"HETALCK1", &b, &sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(unseal(p, b"HETALCK1", &b, &longer).is_err());
        assert!(unseal(p, b"HETALSK1", &b, &sealed).is_err());
        assert!(unseal(p, b"HETALCK1", &b, &[]).is_err());
        // Another binding: the message names what differs.
        let other = Binding::new(&[("purpose", b"session"), ("seed", b"43")]);
        let e = unseal(p, b"HETALCK1", &other, &sealed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed differs") && !e.contains("purpose"), "{e}");
        let more = Binding::new(&[("purpose", b"x"), ("seed", b"42"), ("data", b"d")]);
        let e = unseal(p, b"HETALCK1", &more, &sealed)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("purpose, data (not recorded in the file) differ"),
            "{e}"
        );
        // Length-prefixed parts: different splits give different bindings.
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
    }

    #[test]
    fn atomic_write_replaces_and_private_read_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Only the target is left in the directory (no temporary files).
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(&*read_private(&p, 10).unwrap(), b"two");
            assert!(read_private(&p, 2).is_err(), "size bound");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_private(&p, 10).is_err(), "group/other-readable");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&p, &link).unwrap();
            assert!(read_private(&link, 10).is_err(), "symlink");
            // Writing through the link's name replaces the link, not its target.
            write_atomic(&link, b"three").unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"two");
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_file()
            );
        }
        assert!(read_private(&dir.path().join("missing"), 10).is_err());
    }

    #[test]
    fn streamed_seal_writes_seals_bytes_and_a_failing_payload_leaves_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.bin");
        let b = Binding::new(&[("purpose", b"server-session"), ("id", b"s1")]);
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        write_sealed_atomic(&p, b"HETALSV2", &b, |w| {
            for chunk in payload.chunks(4097) {
                w.write_all(chunk).map_err(io(Path::new("x")))?;
            }
            Ok(())
        })
        .unwrap();
        let on_disk = std::fs::read(&p).unwrap();
        assert_eq!(on_disk, seal(b"HETALSV2", &b, &payload));
        assert_eq!(unseal(&p, b"HETALSV2", &b, &on_disk).unwrap(), &payload[..]);
        // A payload that fails half-way: error, the old file stays, no temporary left.
        let e = write_sealed_atomic(&p, b"HETALSV2", &b, |w| {
            w.write_all(b"partial").map_err(io(Path::new("x")))?;
            Err(TrainError::Message("serializer failed".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("serializer failed"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), on_disk);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
