//! The Python SDK (`userspace/python/agentos`), embedded in the kernel at compile time and
//! written at start to a read-only directory that every agent's jail may read and that is on
//! its `PYTHONPATH`: a `python3 agent.py` agent can `import agentos` with no host path opened
//! up for it, and always gets the SDK that matches this kernel's ABI.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file of the package, by name. A unit test checks it against the source directory.
pub const FILES: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../userspace/python/agentos/__init__.py"),
    ),
    (
        "_calls.py",
        include_str!("../../userspace/python/agentos/_calls.py"),
    ),
    (
        "_postcard.py",
        include_str!("../../userspace/python/agentos/_postcard.py"),
    ),
    (
        "_wire.py",
        include_str!("../../userspace/python/agentos/_wire.py"),
    ),
    (
        "abi.py",
        include_str!("../../userspace/python/agentos/abi.py"),
    ),
    (
        "aio.py",
        include_str!("../../userspace/python/agentos/aio.py"),
    ),
    (
        "client.py",
        include_str!("../../userspace/python/agentos/client.py"),
    ),
    (
        "errors.py",
        include_str!("../../userspace/python/agentos/errors.py"),
    ),
    (
        "frame.py",
        include_str!("../../userspace/python/agentos/frame.py"),
    ),
    (
        "py.typed",
        include_str!("../../userspace/python/agentos/py.typed"),
    ),
];

/// Writes the package to `dir/agentos/` (files 0444, dirs 0555), replacing an older copy.
pub fn install(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let pkg = dir.join("agentos");
    if pkg.exists() {
        std::fs::set_permissions(&pkg, std::fs::Permissions::from_mode(0o700))?;
        std::fs::remove_dir_all(&pkg)?;
    }
    std::fs::create_dir(&pkg)?;
    for (name, text) in FILES {
        let path = pkg.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    }
    std::fs::set_permissions(&pkg, std::fs::Permissions::from_mode(0o555))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_source_file_is_embedded() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../userspace/python/agentos");
        let mut on_disk: Vec<String> = std::fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py") || n == "py.typed")
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            embedded, on_disk,
            "kernel/src/pysdk.rs must embed every SDK file"
        );
    }

    #[test]
    fn install_is_read_only_and_repeatable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sdk/python");
        install(&dir).unwrap();
        install(&dir).unwrap();
        let f = dir.join("agentos/abi.py");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let d = std::fs::metadata(dir.join("agentos")).unwrap();
        assert_eq!(d.permissions().mode() & 0o777, 0o555);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
