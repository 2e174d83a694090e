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

/// The key id of public key bytes (`blake3(bytes)[..8]`, as [`key_id`]).
pub fn key_id_of(public: &[u8; 32]) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&blake3::hash(public).as_bytes()[..8]);
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

/// The signing key in `dir/key`, if there is one (never created here).
pub fn load(dir: &Path) -> Result<Option<SigningKey>, RecorderError> {
    Ok(read32(&dir.join(KEY_FILE))?.map(|s| SigningKey::from_bytes(&s)))
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

/// The older public keys of a log whose key was rotated, oldest first (hex, one a line).
pub const HISTORY_FILE: &str = "key.history";

/// The public keys in `dir/key.history` (none when it is missing). Candidates only: the
/// verifier trusts one once the log's signed announcements lead from it to `key.pub`.
pub fn load_history(dir: &Path) -> Result<Vec<VerifyingKey>, RecorderError> {
    let path = dir.join(HISTORY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RecorderError::Key { path, source }),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            hex::decode(l.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or_else(|| RecorderError::KeyFormat { path: path.clone() })
        })
        .collect()
}

/// The next key of a rotation, written to `key.new` (0600) before it is announced.
pub const NEW_KEY_FILE: &str = "key.new";

/// Creates a new key in `dir/key.new` (replacing an unannounced one).
pub fn create_next(dir: &Path) -> Result<SigningKey, RecorderError> {
    let secret = random_bytes::<32>()?;
    write_new(&dir.join(NEW_KEY_FILE), &secret, 0o600)?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Makes the announced key `dir/key.new` the key: the old public key appended to
/// `key.history`, `key.pub` replaced, then `key.new` renamed over `key`.
pub fn commit_next(dir: &Path, old: &VerifyingKey) -> Result<SigningKey, RecorderError> {
    let new_path = dir.join(NEW_KEY_FILE);
    let secret = read32(&new_path)?.ok_or_else(|| RecorderError::Key {
        path: new_path.clone(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let next = SigningKey::from_bytes(&secret);
    let history = dir.join(HISTORY_FILE);
    let known = load_history(dir)?;
    if !known.contains(old) {
        let err = |source| RecorderError::Key {
            path: history.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&history)
            .map_err(err)?;
        f.write_all(format!("{}\n", hex::encode(old.as_bytes())).as_bytes())
            .map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    write_new(&dir.join(PUB_FILE), next.verifying_key().as_bytes(), 0o644)?;
    std::fs::rename(&new_path, dir.join(KEY_FILE)).map_err(|source| RecorderError::Key {
        path: new_path.clone(),
        source,
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(next)
}
