//! The kernel's checkpoint signing key: `recorder/key` (32 secret bytes, mode 0600), created on
//! first start, and `recorder/key.pub` beside it. The key id is `blake3(public key)[..8]`.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::RecorderError;

/// The secret key file in the recorder dir.
pub const KEY_FILE: &str = "key";
/// The public key file in the recorder dir.
pub const PUB_FILE: &str = "key.pub";

/// `blake3(public key)[..8]`.
pub fn key_id(public: &VerifyingKey) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&blake3::hash(public.as_bytes()).as_bytes()[..8]);
    id
}

/// `n` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RecorderError> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| RecorderError::Key {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    Ok(b)
}

fn read32(path: &Path) -> Result<Option<[u8; 32]>, RecorderError> {
    match std::fs::read(path) {
        Ok(b) => b
            .try_into()
            .map(Some)
            .map_err(|_| RecorderError::KeyFormat { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RecorderError::Key {
            path: path.into(),
            source,
        }),
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RecorderError> {
    let err = |source| RecorderError::Key {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Loads the signing key from `dir`, creating it (and `key.pub`) on first start.
pub fn load_or_create(dir: &Path) -> Result<SigningKey, RecorderError> {
    let path = dir.join(KEY_FILE);
    let key = match read32(&path)? {
        Some(secret) => SigningKey::from_bytes(&secret),
        None => {
            let secret = random_bytes::<32>()?;
            write_new(&path, &secret, 0o600)?;
            SigningKey::from_bytes(&secret)
        }
    };
    let public = key.verifying_key();
    let pub_path = dir.join(PUB_FILE);
    if read32(&pub_path)?.as_ref() != Some(public.as_bytes()) {
        write_new(&pub_path, public.as_bytes(), 0o644)?;
    }
    Ok(key)
}

/// The public key in `dir/key.pub`, if there is one.
pub fn load_public(dir: &Path) -> Result<Option<VerifyingKey>, RecorderError> {
    let path = dir.join(PUB_FILE);
    match read32(&path)? {
        Some(b) => VerifyingKey::from_bytes(&b)
            .map(Some)
            .map_err(|_| RecorderError::KeyFormat { path }),
        None => Ok(None),
    }
}
