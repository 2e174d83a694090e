//! The TypeScript/JavaScript SDK (`userspace/typescript`), embedded in the kernel at compile
//! time and written at start, read-only, to `STATE_DIR/sdk/node`, which every agent's jail may
//! read:
//!
//! ```text
//! sdk/node/register.mjs             preloaded by every `node` in the jail (NODE_OPTIONS=--import=…)
//! sdk/node/hooks.mjs                its resolve hook: `agentos` → node_modules/agentos below
//! sdk/node/node_modules/agentos/    the package (package.json, src/*.js, src/*.d.ts)
//! ```
//!
//! An ES-module bare specifier (`import { connect } from 'agentos'`) does not honour
//! `NODE_PATH`, and an agent's script lies wherever its operator keeps it, outside any
//! `node_modules` tree of ours; a resolve hook preloaded through `NODE_OPTIONS` is how Node
//! lets a runtime provide a package. `NODE_PATH` names `node_modules` too, for `require`
//! where Node can `require` an ES module. So `node agent.mjs` in the jail imports the SDK
//! with no install and no host path opened for it, and always gets the SDK that matches this
//! kernel's ABI (Node ≥ 18.19, for `--import` and `module.register`).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every file of the SDK's directory, by path below it. A unit test checks it against the
/// source directory.
pub const FILES: &[(&str, &str)] = &[
    (
        "register.mjs",
        include_str!("../../userspace/typescript/jail/register.mjs"),
    ),
    (
        "hooks.mjs",
        include_str!("../../userspace/typescript/jail/hooks.mjs"),
    ),
    (
        "node_modules/agentos/package.json",
        include_str!("../../userspace/typescript/package.json"),
    ),
    (
        "node_modules/agentos/README.md",
        include_str!("../../userspace/typescript/README.md"),
    ),
    (
        "node_modules/agentos/src/abi.d.ts",
        include_str!("../../userspace/typescript/src/abi.d.ts"),
    ),
    (
        "node_modules/agentos/src/abi.js",
        include_str!("../../userspace/typescript/src/abi.js"),
    ),
    (
        "node_modules/agentos/src/client.d.ts",
        include_str!("../../userspace/typescript/src/client.d.ts"),
    ),
    (
        "node_modules/agentos/src/client.js",
        include_str!("../../userspace/typescript/src/client.js"),
    ),
    (
        "node_modules/agentos/src/errors.d.ts",
        include_str!("../../userspace/typescript/src/errors.d.ts"),
    ),
    (
        "node_modules/agentos/src/errors.js",
        include_str!("../../userspace/typescript/src/errors.js"),
    ),
    (
        "node_modules/agentos/src/frame.d.ts",
        include_str!("../../userspace/typescript/src/frame.d.ts"),
    ),
    (
        "node_modules/agentos/src/frame.js",
        include_str!("../../userspace/typescript/src/frame.js"),
    ),
    (
        "node_modules/agentos/src/index.d.ts",
        include_str!("../../userspace/typescript/src/index.d.ts"),
    ),
    (
        "node_modules/agentos/src/index.js",
        include_str!("../../userspace/typescript/src/index.js"),
    ),
    (
        "node_modules/agentos/src/postcard.d.ts",
        include_str!("../../userspace/typescript/src/postcard.d.ts"),
    ),
    (
        "node_modules/agentos/src/postcard.js",
        include_str!("../../userspace/typescript/src/postcard.js"),
    ),
];

/// Writes the SDK to `dir` (files 0444, dirs 0555), replacing an older copy.
pub fn install(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        make_writable(dir)?;
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let mut dirs: Vec<PathBuf> = vec![dir.to_path_buf()];
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent)?;
            }
            let mut p = parent.to_path_buf();
            while p != dir && !dirs.contains(&p) {
                dirs.push(p.clone());
                if !p.pop() {
                    break;
                }
            }
        }
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    }
    // Deepest first, so no directory is closed before its children are done.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555))?;
    }
    Ok(())
}

/// Makes an installed copy removable again (its directories are 0555).
fn make_writable(dir: &Path) -> io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// The environment that lets `node` in an agent's jail import the SDK installed in `dir`.
pub fn env(dir: &Path) -> [(String, String); 2] {
    let register = dir.join("register.mjs");
    [
        (
            "NODE_OPTIONS".into(),
            format!("--import={}", file_url(&register)),
        ),
        (
            "NODE_PATH".into(),
            dir.join("node_modules").display().to_string(),
        ),
    ]
}

/// A `file://` URL of an absolute path, percent-encoding everything but unreserved characters
/// and `/` (so a space, a quote or a `#` in the state dir cannot split `NODE_OPTIONS` or
/// end the URL).
fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_source_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../userspace/typescript");
        let listed = |sub: &str, prefix: &str| -> Vec<String> {
            std::fs::read_dir(root.join(sub))
                .unwrap()
                .map(|e| format!("{prefix}{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        };
        let mut on_disk = listed("jail", "");
        on_disk.extend(listed("src", "node_modules/agentos/src/"));
        on_disk.push("node_modules/agentos/package.json".into());
        on_disk.push("node_modules/agentos/README.md".into());
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "kernel/src/nodesdk.rs must embed every SDK file"
        );
    }

    #[test]
    fn install_is_read_only_and_repeatable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sdk/node");
        install(&dir).unwrap();
        install(&dir).unwrap();
        let f = dir.join("node_modules/agentos/src/abi.js");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o444
        );
        for d in [
            "",
            "node_modules",
            "node_modules/agentos",
            "node_modules/agentos/src",
        ] {
            let m = std::fs::metadata(dir.join(d)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o555, "{d}");
        }
        make_writable(&dir).unwrap();
    }

    #[test]
    fn the_preload_url_survives_odd_state_dirs() {
        let [(k, v), (pk, pv)] = env(Path::new("/st ate/#x/sdk/node"));
        assert_eq!(k, "NODE_OPTIONS");
        assert_eq!(v, "--import=file:///st%20ate/%23x/sdk/node/register.mjs");
        assert_eq!(
            (pk.as_str(), pv.as_str()),
            ("NODE_PATH", "/st ate/#x/sdk/node/node_modules")
        );
    }
}
