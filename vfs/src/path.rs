//! Path normalization.

use agentos_syscalls::limits::{NAME_MAX, PATH_MAX};
use agentos_syscalls::Errno;

fn invalid(reason: &str) -> Errno {
    Errno::InvalidArgument {
        reason: reason.to_string(),
    }
}

/// Checks a path against [`PATH_MAX`] (its length as written) and [`NAME_MAX`] (each
/// component's), in one pass and without allocating: what [`normalize`] refuses first.
pub fn check_bounds(path: &str) -> Result<(), Errno> {
    if path.len() > PATH_MAX {
        return Err(invalid(&format!(
            "path of {} bytes is longer than PATH_MAX ({PATH_MAX} bytes); use a shorter path",
            path.len()
        )));
    }
    if let Some(comp) = path.split('/').find(|c| c.len() > NAME_MAX) {
        return Err(invalid(&format!(
            "a path component of {} bytes is longer than NAME_MAX ({NAME_MAX} bytes); use shorter names",
            comp.len()
        )));
    }
    Ok(())
}

/// Normalizes an absolute path: resolves `.` and `..` on component boundaries (`..` at the
/// root stays at the root), collapses repeated `/`, and drops any trailing `/` (except for
/// `/` itself). Rejects empty paths, relative paths and NUL bytes. Purely lexical: no
/// symlinks exist in the VFS namespace (host backends resolve beneath their root separately).
///
/// `/policyfoo` stays distinct from `/policy`; `/a/../b` is `/b`.
///
/// Bounded before any work (POSIX `ENAMETOOLONG`, answered `InvalidArgument` since the ABI
/// has no such errno): a path longer than [`PATH_MAX`] bytes, or with a component (even one a
/// later `..` removes) longer than [`NAME_MAX`] bytes, is refused. Linear in the path's length.
pub fn normalize(path: &str) -> Result<String, Errno> {
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    check_bounds(path)?;
    if path.contains('\0') {
        return Err(invalid("path contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(invalid(&format!("path `{path}` is not absolute")));
    }
    // Most paths an agent sends are normal already (`/mem/working/x`): copied as they are.
    if is_normal(path) {
        return Ok(path.to_string());
    }
    Ok(resolve_components(path))
}

/// Whether the absolute `path` is what [`normalize`] makes of it: `/`, or `/`-separated
/// components none of which is empty, `.` or `..` (so no repeated or trailing `/`).
fn is_normal(path: &str) -> bool {
    path == "/"
        || path.strip_prefix('/').is_some_and(|rest| {
            rest.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
        })
}

/// [`normalize`]'s work on an absolute path: components joined after `.` and `..` are
/// resolved and empty ones dropped.
fn resolve_components(path: &str) -> String {
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
        return "/".to_string();
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
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

    #[test]
    fn path_max_and_name_max_bound_every_path() {
        let name = "n".repeat(NAME_MAX);
        let long_ok = format!("/{}", vec![name.as_str(); 15].join("/"));
        assert!(long_ok.len() <= PATH_MAX);
        assert_eq!(normalize(&long_ok).unwrap(), long_ok);
        let at_max = format!("/{}b", "a/".repeat((PATH_MAX - 2) / 2));
        assert_eq!(at_max.len(), PATH_MAX);
        assert!(normalize(&at_max).is_ok());
        let over = format!("{at_max}b");
        let e = normalize(&over).unwrap_err();
        assert!(e.to_string().contains("PATH_MAX (4096 bytes)"), "{e}");
        // Refused even when `..` would shorten it: the bound is on what the agent sent.
        let climbing = format!("/x{}", "/..".repeat(PATH_MAX));
        assert!(normalize(&climbing).is_err());
        let e = normalize(&format!("/a/{}n/b", name)).unwrap_err();
        assert!(e.to_string().contains("NAME_MAX (255 bytes)"), "{e}");
        let e = normalize(&format!("/a/{}n/..", name)).unwrap_err();
        assert!(matches!(e, Errno::InvalidArgument { .. }), "{e:?}");
        assert!(normalize(&format!("/{name}")).is_ok());
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
        fn a_path_taken_as_normal_is_what_resolving_its_components_makes(p in arb_path()) {
            // The fast path returns a normal path unchanged: the full resolution must agree.
            let resolved = resolve_components(&p);
            prop_assert_eq!(is_normal(&p), resolved == p, "{} -> {}", p, resolved);
        }

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
