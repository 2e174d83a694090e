//! Path normalization.

use agentos_syscalls::Errno;

fn invalid(reason: &str) -> Errno {
    Errno::InvalidArgument {
        reason: reason.to_string(),
    }
}

/// Normalizes an absolute path: resolves `.` and `..` on component boundaries (`..` at the
/// root stays at the root), collapses repeated `/`, and drops any trailing `/` (except for
/// `/` itself). Rejects empty paths, relative paths and NUL bytes. Purely lexical: no
/// symlinks exist in the VFS namespace (host backends resolve beneath their root separately).
///
/// `/policyfoo` stays distinct from `/policy`; `/a/../b` is `/b`.
pub fn normalize(path: &str) -> Result<String, Errno> {
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    if path.contains('\0') {
        return Err(invalid("path contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(invalid(&format!("path `{path}` is not absolute")));
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok("/".to_string());
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let ok = |p: &str| normalize(p).unwrap();
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("/a//b/"), "/a/b");
        assert_eq!(ok("/a/./b/."), "/a/b");
        assert_eq!(ok("/a/../b"), "/b");
        assert_eq!(ok("/../../x"), "/x");
        assert_eq!(ok("/.."), "/");
        assert_eq!(ok("/a/..b/c.."), "/a/..b/c..");
        assert_eq!(ok("/policyfoo"), "/policyfoo");
        assert_ne!(ok("/policyfoo"), ok("/policy"));
        assert_eq!(ok("/mem/working/../../policy"), "/policy");
        assert!(normalize("").is_err());
        assert!(normalize("a/b").is_err());
        assert!(normalize("./a").is_err());
        assert!(normalize("/a\0b").is_err());
    }

    fn arb_path() -> impl Strategy<Value = String> {
        let comp = prop_oneof![
            Just("".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("...".to_string()),
            "[a-z.]{1,4}",
        ];
        prop::collection::vec(comp, 0..8).prop_map(|c| format!("/{}", c.join("/")))
    }

    proptest! {
        #[test]
        fn normalized_paths_are_canonical(p in arb_path()) {
            let n = normalize(&p).unwrap();
            prop_assert!(n.starts_with('/'));
            prop_assert_eq!(normalize(&n).unwrap(), n.clone(), "idempotent");
            prop_assert!(!n.contains("//"));
            prop_assert!(n == "/" || !n.ends_with('/'));
            for c in n.split('/').skip(1) {
                prop_assert!(c != "." && c != ".." && (n == "/" || !c.is_empty()), "{n}");
            }
        }

        #[test]
        fn paths_under_a_stay_under_a(rest in arb_path()) {
            let p = format!("/a{rest}");
            let n = normalize(&p).unwrap();
            let climbs = p.split('/').any(|c| c == "..");
            if !climbs {
                prop_assert!(n == "/a" || n.starts_with("/a/"), "{p} -> {n}");
            }
        }
    }
}
