//! Call validation: every agent-controlled size of a call is checked against its bound
//! ([`agentos_syscalls::limits`]) before any other work starts — before the trust check, the
//! policy, approvals, the tools and the tree see it. One exhaustive match over [`Syscall`],
//! so a new syscall cannot be served without deciding its bounds here.
//!
//! Guarantees: [`call`] is linear in the call's size, allocates nothing on success, reads no
//! state and no clock. A refused call is answered with the returned [`Errno`] and recorded like
//! any refused call (decision `builtin`, rule `limits`, not a violation: no SIGPOLICY).
//!
//! | field | bound | answer over it |
//! |---|---|---|
//! | every path (`Read`, `Write`, `Open`, `List`, `Stat`, `Unlink`, both of `Rename`'s, `Exec`'s `cwd`) | PATH_MAX 4096, NAME_MAX 255 | `InvalidArgument` (names the limit) |
//! | `Exec` argv | ≤ 4096 arguments; each ≤ 128 KiB; ≤ 2 MiB together (+1 per argument) | `InvalidArgument` (count), `TooLarge` (bytes) |
//! | `Call` action / `CheckPolicy` action | ≤ 255 bytes | `InvalidArgument` |
//! | `Call` params_json | ≤ 1 MiB | `TooLarge` |
//! | `CheckPolicy` resource | ≤ 4096 bytes (and a path's bounds for `file_read`/`file_write`) | `InvalidArgument` |
//!
//! Where it runs: in the syscall server before anything else looks at a call (so `CheckPolicy`
//! too), and in `server::judge::classify`, so the judge and the what-if replay of a recording see a
//! call bounded before they classify it. A re-run (`agentctl replay run`) performs nothing: it
//! answers from the recording (which holds the original refusal) after a linear comparison.
//!
//! Not checked here, because something else bounds them before they cost anything: `Write`,
//! `WriteFd` data and `Exec` stdin (the frame limit, and the quota before a byte is kept);
//! `Send` payloads (the frame limit, then the target inbox's byte limit, `TooLarge`);
//! `ReadFd`/`Read` lengths (the answer chunk limit, `TooLarge`).

use agentos_syscalls::limits::{
    ACTION_MAX, ARGV_MAX_COUNT, ARG_MAX, ARG_STRLEN_MAX, PARAMS_JSON_MAX, RESOURCE_MAX,
};
use agentos_syscalls::{Errno, Syscall};

fn invalid(reason: String) -> Errno {
    Errno::InvalidArgument { reason }
}

fn too_large(size: usize, limit: usize) -> Errno {
    Errno::TooLarge {
        size: size as u64,
        limit: limit as u64,
    }
}

fn action(what: &str, a: &str) -> Result<(), Errno> {
    if a.len() > ACTION_MAX {
        return Err(invalid(format!(
            "{what} action of {} bytes is longer than {ACTION_MAX} bytes; policy actions are short names",
            a.len()
        )));
    }
    Ok(())
}

fn argv(args: &[String]) -> Result<(), Errno> {
    if args.len() > ARGV_MAX_COUNT {
        // The decoder keeps ARGV_MAX_COUNT + 1 arguments of a longer argv (it skips the rest).
        return Err(invalid(format!(
            "argv has more than {ARGV_MAX_COUNT} arguments; pass long inputs on stdin or in a file"
        )));
    }
    let mut total = 0usize;
    for a in args {
        if a.len() > ARG_STRLEN_MAX {
            return Err(too_large(a.len(), ARG_STRLEN_MAX));
        }
        total += a.len() + 1;
    }
    if total > ARG_MAX {
        return Err(too_large(total, ARG_MAX));
    }
    Ok(())
}

/// Checks every agent-controlled size of `call` against its bound (see the module docs).
pub(crate) fn call(call: &Syscall) -> Result<(), Errno> {
    let path = agentos_vfs::check_bounds;
    match call {
        Syscall::Read { path: p, .. }
        | Syscall::Write { path: p, .. }
        | Syscall::Open { path: p, .. }
        | Syscall::List { path: p }
        | Syscall::Stat { path: p }
        | Syscall::Unlink { path: p } => path(p),
        Syscall::Rename { from, to } => {
            path(from)?;
            path(to)
        }
        Syscall::Exec { argv: a, cwd, .. } => {
            argv(a)?;
            cwd.as_deref().map_or(Ok(()), path)
        }
        Syscall::Call {
            action: a,
            params_json,
        } => {
            action("a Call's", a)?;
            if params_json.len() > PARAMS_JSON_MAX {
                return Err(too_large(params_json.len(), PARAMS_JSON_MAX));
            }
            Ok(())
        }
        Syscall::CheckPolicy {
            action: a,
            resource,
        } => {
            action("a CheckPolicy", a)?;
            if resource.len() > RESOURCE_MAX {
                return Err(invalid(format!(
                    "CheckPolicy resource of {} bytes is longer than {RESOURCE_MAX} bytes",
                    resource.len()
                )));
            }
            if matches!(a.as_str(), "file_read" | "file_write") {
                path(resource)?;
            }
            Ok(())
        }
        Syscall::Send { .. }
        | Syscall::WriteFd { .. }
        | Syscall::Close { .. }
        | Syscall::ReadFd { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::ListTools => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_syscalls::limits::{NAME_MAX, PATH_MAX};
    use agentos_syscalls::WriteMode;

    fn exec(argv: Vec<String>) -> Syscall {
        Syscall::Exec {
            argv,
            stdin: Vec::new(),
            cwd: None,
            timeout_ms: None,
        }
    }

    fn kind(r: Result<(), Errno>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn paths_are_bounded_in_every_file_call() {
        let long = format!("/mem/working/{}", "a/".repeat(PATH_MAX / 2));
        let name = format!("/mem/working/{}", "n".repeat(NAME_MAX + 1));
        for p in [&long, &name] {
            let calls = [
                Syscall::Read {
                    path: p.clone(),
                    offset: 0,
                    len: None,
                },
                Syscall::Write {
                    path: p.clone(),
                    data: Vec::new(),
                    mode: WriteMode::Truncate,
                },
                Syscall::List { path: p.clone() },
                Syscall::Stat { path: p.clone() },
                Syscall::Unlink { path: p.clone() },
                Syscall::Rename {
                    from: p.clone(),
                    to: "/mem/working/x".into(),
                },
                Syscall::Rename {
                    from: "/mem/working/x".into(),
                    to: p.clone(),
                },
                Syscall::Exec {
                    argv: vec!["ls".into()],
                    stdin: Vec::new(),
                    cwd: Some(p.clone()),
                    timeout_ms: None,
                },
                Syscall::CheckPolicy {
                    action: "file_write".into(),
                    resource: p.clone(),
                },
            ];
            for c in calls {
                assert_eq!(kind(call(&c)), "InvalidArgument", "{}", c.name());
            }
        }
        assert_eq!(
            kind(call(&Syscall::Stat {
                path: "/mem/working/x".into()
            })),
            "ok"
        );
    }

    #[test]
    fn argv_count_bytes_and_each_argument() {
        assert_eq!(kind(call(&exec(vec![String::new(); ARGV_MAX_COUNT]))), "ok");
        let e = call(&exec(vec![String::new(); ARGV_MAX_COUNT + 1])).unwrap_err();
        assert!(e.to_string().contains("more than 4096 arguments"), "{e}");
        assert_eq!(
            call(&exec(vec!["x".repeat(ARG_STRLEN_MAX + 1)])),
            Err(Errno::TooLarge {
                size: ARG_STRLEN_MAX as u64 + 1,
                limit: ARG_STRLEN_MAX as u64
            })
        );
        let sixteen = vec!["y".repeat(ARG_STRLEN_MAX); 16];
        assert_eq!(
            call(&exec(sixteen)),
            Err(Errno::TooLarge {
                size: 16 * (ARG_STRLEN_MAX as u64 + 1),
                limit: ARG_MAX as u64
            })
        );
        assert_eq!(
            kind(call(&exec(vec!["y".repeat(ARG_STRLEN_MAX); 15]))),
            "ok"
        );
    }

    #[test]
    fn strings_of_call_and_check_policy() {
        let c = |action: String, params_json: String| Syscall::Call {
            action,
            params_json,
        };
        assert_eq!(kind(call(&c("api_call".into(), "{}".into()))), "ok");
        assert_eq!(
            kind(call(&c("a".repeat(ACTION_MAX + 1), "{}".into()))),
            "InvalidArgument"
        );
        assert_eq!(
            kind(call(&c("api_call".into(), " ".repeat(PARAMS_JSON_MAX + 1)))),
            "TooLarge"
        );
        let cp = |action: String, resource: String| Syscall::CheckPolicy { action, resource };
        assert_eq!(
            kind(call(&cp("a".repeat(1 << 20), "r".into()))),
            "InvalidArgument"
        );
        assert_eq!(
            kind(call(&cp("api_call".into(), "r".repeat(RESOURCE_MAX + 1)))),
            "InvalidArgument"
        );
        assert_eq!(
            kind(call(&cp("api_call".into(), "r".repeat(RESOURCE_MAX)))),
            "ok"
        );
    }
}
