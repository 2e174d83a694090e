//! Every record fits [`MAX_RECORD`]: the one function that bounds an event before it is
//! encoded.
//!
//! An agent controls many strings that end up in records: paths, `Exec` argv elements and
//! cwd, `Call`/`CheckPolicy` action and resource strings, the decision's `rule` and `reason`
//! (which quote them), `Errno` texts, protocol-violation reasons, sandbox targets, spawn
//! arguments, directory listings. A frame may be 16 MiB, so without a bound one call could
//! make a record the verifier refuses (and hide every later record). [`bound`] walks every
//! field of every [`RecordEvent`] variant (exhaustive matches: a new variant or field is a
//! compile error here) and:
//!
//! - leaves the byte payloads that go to blobs ([`super::blob`]: `Write` data, `Exec` stdin,
//!   stdout and stderr, `Send`/`Recv` payloads, `Call` params and result JSON) as they are —
//!   the writer moves each one over [`super::blob::BLOB_THRESHOLD`] out of the record;
//! - keeps a string of up to [`FIELD_MAX`] bytes whole (PATH_MAX fits) and summarizes a
//!   longer one as its first [`HEAD_KEPT`] bytes followed by `…[N bytes, blake3 <hex>]`
//!   (the digest is of the whole string, so a copy of it can be matched);
//! - keeps the elements of a list while their bytes stay within [`LIST_MAX`] (each element
//!   counted with [`ELEMENT_COST`] bytes of overhead, so a million empty strings are bounded
//!   too) and replaces the rest by one summary element `…[K more, N bytes, blake3 <hex>]`.
//!
//! A bounded event encodes to well under [`MAX_RECORD`] (the test
//! `every_record_type_at_its_maximum_sizes_verifies` writes each variant with fields at the
//! frame limit). The writer still refuses any body over [`MAX_RECORD`] (an error to the
//! appender, nothing written) as the last line of defence.
//!
//! What is not kept: the middle and tail of a summarized string. A what-if replay of a
//! summarized call therefore sees the summary, not the original; such strings are over every
//! kernel limit (PATH_MAX, the argument budget) and are refused before they are performed.

use std::path::PathBuf;

use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{
    DirEntry, Errno, FileKind, JailReport, LayerStatus, Reply, Syscall, ToolInfo,
};

use super::format::{DecisionRecord, RecordEvent};

pub use super::format::MAX_RECORD;

/// The longest string field kept whole.
pub const FIELD_MAX: usize = 4096;

/// Bytes of a summarized string's head kept in the record.
pub const HEAD_KEPT: usize = 256;

/// The bytes of a list's elements kept in the record; the rest is summarized.
pub const LIST_MAX: usize = 64 << 10;

/// Bytes each list element is counted with beyond its own.
pub const ELEMENT_COST: usize = 16;

/// `None` when `s` is at most [`FIELD_MAX`] bytes (kept whole), else its summary: head,
/// length and blake3 digest of the whole.
pub fn summarize(s: &str) -> Option<String> {
    if s.len() <= FIELD_MAX {
        return None;
    }
    let mut head = HEAD_KEPT.min(s.len());
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    Some(format!(
        "{}…[{} bytes, blake3 {}]",
        &s[..head],
        s.len(),
        blake3::hash(s.as_bytes()).to_hex()
    ))
}

fn string(s: &mut String) {
    if let Some(short) = summarize(s) {
        *s = short;
    }
}

fn opt_string(s: &mut Option<String>) {
    if let Some(s) = s {
        string(s);
    }
}

fn path(p: &mut PathBuf) {
    let s = p.to_string_lossy();
    if s.len() > FIELD_MAX {
        if let Some(short) = summarize(&s) {
            *p = PathBuf::from(short);
        }
    }
}

/// Keeps the first elements of `v` within [`LIST_MAX`] (each bounded by `each`, costed by
/// `cost`); the rest become one element made by `summary(count, bytes, digest)`.
fn list<T>(
    v: &mut Vec<T>,
    mut each: impl FnMut(&mut T),
    cost: impl Fn(&T) -> usize,
    digest: impl Fn(&T, &mut blake3::Hasher),
    summary: impl FnOnce(String) -> T,
) {
    let mut used = 0usize;
    let mut keep = v.len();
    for (i, x) in v.iter().enumerate() {
        used = used.saturating_add(cost(x).saturating_add(ELEMENT_COST));
        if used > LIST_MAX {
            keep = i;
            break;
        }
    }
    if keep < v.len() {
        let rest = v.split_off(keep);
        let mut h = blake3::Hasher::new();
        let mut bytes = 0usize;
        for x in &rest {
            bytes = bytes.saturating_add(cost(x));
            digest(x, &mut h);
        }
        v.push(summary(format!(
            "…[{} more, {bytes} bytes, blake3 {}]",
            rest.len(),
            h.finalize().to_hex()
        )));
    }
    for x in v.iter_mut() {
        each(x);
    }
}

fn strings(v: &mut Vec<String>) {
    list(
        v,
        string,
        String::len,
        |s, h| {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        },
        |s| s,
    );
}

fn paths(v: &mut Vec<PathBuf>) {
    list(
        v,
        path,
        |p| p.as_os_str().len(),
        |p, h| {
            h.update(&(p.as_os_str().len() as u64).to_le_bytes());
            h.update(p.as_os_str().as_encoded_bytes());
        },
        PathBuf::from,
    );
}

fn decision(d: &mut DecisionRecord) {
    let DecisionRecord {
        allowed: _,
        policy_allowed: _,
        rule,
        reason,
        violation: _,
        mode,
    } = d;
    string(rule);
    string(reason);
    string(mode);
}

fn errno(e: &mut Errno) {
    match e {
        Errno::PermissionDenied { rule, reason } => {
            string(rule);
            string(reason);
        }
        Errno::NotFound { what }
        | Errno::QuotaExceeded { what }
        | Errno::Unsupported { what }
        | Errno::Busy { what } => string(what),
        Errno::InvalidArgument { reason }
        | Errno::ProtocolViolation { reason }
        | Errno::Internal { reason }
        | Errno::Interrupted { reason } => string(reason),
        Errno::IsDirectory { path }
        | Errno::NotDirectory { path }
        | Errno::AlreadyExists { path } => string(path),
        Errno::RateLimited { .. }
        | Errno::ApprovalDenied
        | Errno::ApprovalTimeout
        | Errno::TooLarge { .. }
        | Errno::BadDescriptor { .. }
        | Errno::TimedOut { .. } => {}
    }
}

/// Bounds a call's strings; its byte payloads are left for the blobs.
fn call(c: &mut Syscall) {
    match c {
        Syscall::Read { path, .. }
        | Syscall::Write { path, .. }
        | Syscall::Open { path, .. }
        | Syscall::List { path }
        | Syscall::Stat { path }
        | Syscall::Unlink { path } => string(path),
        Syscall::Exec {
            argv,
            stdin: _,
            cwd,
            timeout_ms: _,
        } => {
            strings(argv);
            opt_string(cwd);
        }
        // `params_json` is a blob payload.
        Syscall::Call {
            action,
            params_json: _,
        } => string(action),
        Syscall::CheckPolicy { action, resource } => {
            string(action);
            string(resource);
        }
        Syscall::Rename { from, to } => {
            string(from);
            string(to);
        }
        Syscall::Close { .. }
        | Syscall::Send { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::ReadFd { .. }
        | Syscall::WriteFd { .. }
        | Syscall::ListTools => {}
    }
}

fn result(r: &mut Result<Reply, Errno>) {
    match r {
        Err(e) => errno(e),
        Ok(Reply::Entries(entries)) => list(
            entries,
            |e| string(&mut e.name),
            |e| e.name.len(),
            |e, h| {
                h.update(&(e.name.len() as u64).to_le_bytes());
                h.update(e.name.as_bytes());
                h.update(&e.size.to_le_bytes());
            },
            |name| DirEntry {
                name,
                kind: FileKind::File,
                size: 0,
            },
        ),
        Ok(Reply::Decision(d)) => {
            string(&mut d.rule);
            string(&mut d.reason);
        }
        Ok(Reply::Tools(tools)) => list(
            tools,
            |t| {
                string(&mut t.server);
                string(&mut t.name);
                string(&mut t.description);
                string(&mut t.input_schema_json);
            },
            |t| t.server.len() + t.name.len() + t.description.len() + t.input_schema_json.len(),
            |t, h| {
                for s in [&t.server, &t.name, &t.description, &t.input_schema_json] {
                    h.update(&(s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            },
            |name| ToolInfo {
                server: String::new(),
                name,
                description: String::new(),
                input_schema_json: String::new(),
            },
        ),
        // Payloads (data, stdout, stderr, message, result JSON) go to blobs.
        Ok(
            Reply::Done
            | Reply::Data(_)
            | Reply::Written { .. }
            | Reply::Opened { .. }
            | Reply::Stat(_)
            | Reply::Exec(_)
            | Reply::CallResult { .. }
            | Reply::Message(_)
            | Reply::Checkpoint { .. },
        ) => {}
    }
}

fn jail(r: &mut JailReport) {
    list(
        &mut r.layers,
        |l| {
            string(&mut l.name);
            match &mut l.status {
                LayerStatus::Active { detail }
                | LayerStatus::Partial { detail }
                | LayerStatus::Missing { detail } => string(detail),
            }
        },
        |l| l.name.len() + layer_detail(&l.status).len(),
        |l, h| {
            h.update(l.name.as_bytes());
            h.update(layer_detail(&l.status).as_bytes());
        },
        |name| agentos_syscalls::Layer {
            name,
            status: LayerStatus::Missing {
                detail: String::new(),
            },
        },
    );
}

fn layer_detail(s: &LayerStatus) -> &str {
    match s {
        LayerStatus::Active { detail }
        | LayerStatus::Partial { detail }
        | LayerStatus::Missing { detail } => detail,
    }
}

/// Bytes of agent-sent data a syscall record carries in its call and its reply: what
/// bounding, hashing and blob-writing it costs is linear in this. Cheap (lengths only), so a
/// caller can decide where to do that work before doing it.
pub fn weight(event: &RecordEvent) -> usize {
    let (call, result) = match event {
        RecordEvent::Syscall { call, result, .. }
        | RecordEvent::SyscallBlobs { call, result, .. } => (call, result),
        // No payload an agent sends: what they carry is bounded where they are made.
        RecordEvent::KernelStart { .. }
        | RecordEvent::KernelStop { .. }
        | RecordEvent::Spawn { .. }
        | RecordEvent::SpawnRefused { .. }
        | RecordEvent::Sandbox(_)
        | RecordEvent::Handshake { .. }
        | RecordEvent::Signal { .. }
        | RecordEvent::ProtocolViolation { .. }
        | RecordEvent::Exit { .. }
        | RecordEvent::SandboxDenied { .. }
        | RecordEvent::SandboxCapabilities { .. }
        | RecordEvent::ApprovalRequested { .. }
        | RecordEvent::ApprovalDecided { .. }
        | RecordEvent::PolicyReloaded { .. }
        | RecordEvent::ReadOnlyGranted { .. }
        | RecordEvent::Recovery { .. }
        | RecordEvent::RecorderBroken { .. }
        | RecordEvent::MemoryCheckpoint { .. }
        | RecordEvent::MemoryRestored { .. }
        | RecordEvent::SandboxAccess { .. }
        | RecordEvent::SandboxFlood { .. }
        | RecordEvent::SandboxLimit { .. }
        | RecordEvent::RecorderResumed { .. }
        | RecordEvent::HookFailed { .. }
        | RecordEvent::McpServerExited { .. }
        | RecordEvent::Egress { .. }
        | RecordEvent::EgressClosed { .. }
        | RecordEvent::WitnessCosigned { .. }
        | RecordEvent::WitnessFailed { .. }
        | RecordEvent::KeyRotated { .. } => return 0,
    };
    let call = match call {
        Syscall::Read { path, .. }
        | Syscall::Open { path, .. }
        | Syscall::List { path }
        | Syscall::Stat { path }
        | Syscall::Unlink { path } => path.len(),
        Syscall::Write { path, data, .. } => path.len() + data.len(),
        Syscall::WriteFd { data, .. } => data.len(),
        Syscall::Exec {
            argv, stdin, cwd, ..
        } => {
            argv.iter().map(String::len).sum::<usize>()
                + stdin.len()
                + cwd.as_ref().map_or(0, String::len)
        }
        Syscall::Call {
            action,
            params_json,
        } => action.len() + params_json.len(),
        Syscall::Send { payload, .. } => payload.len(),
        Syscall::CheckPolicy { action, resource } => action.len() + resource.len(),
        Syscall::Rename { from, to } => from.len() + to.len(),
        Syscall::Close { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::ReadFd { .. }
        | Syscall::ListTools => 0,
    };
    let reply = match result {
        Ok(Reply::Data(d)) => d.len(),
        Ok(Reply::Exec(e)) => e.stdout.len() + e.stderr.len(),
        Ok(Reply::Message(m)) => m.payload.len(),
        Ok(Reply::CallResult { result_json }) => result_json.len(),
        Ok(Reply::Entries(e)) => e.iter().map(|d| d.name.len() + 16).sum(),
        Ok(Reply::Tools(t)) => t
            .iter()
            .map(|t| {
                t.server.len() + t.name.len() + t.description.len() + t.input_schema_json.len()
            })
            .sum(),
        Ok(
            Reply::Done
            | Reply::Written { .. }
            | Reply::Opened { .. }
            | Reply::Stat(_)
            | Reply::Decision(_)
            | Reply::Checkpoint { .. },
        )
        | Err(_) => 0,
    };
    call + reply
}

/// Bounds every agent-controlled field of `event` (see the module header). Byte payloads
/// that go to blobs are left whole.
pub fn bound(event: &mut RecordEvent) {
    match event {
        RecordEvent::KernelStart {
            pid: _,
            uid: _,
            version,
            state_dir,
        } => {
            string(version);
            path(state_dir);
        }
        RecordEvent::KernelStop { reason }
        | RecordEvent::ProtocolViolation { reason }
        | RecordEvent::RecorderResumed { what: reason, .. } => string(reason),
        RecordEvent::HookFailed { event, why } => {
            string(event);
            string(why);
        }
        RecordEvent::McpServerExited { server, why, .. } => {
            string(server);
            string(why);
        }
        RecordEvent::Egress {
            conn: _,
            method,
            target,
            address,
            decision: d,
            result,
        } => {
            string(method);
            string(target);
            string(address);
            decision(d);
            if let Err(e) = result {
                errno(e);
            }
        }
        RecordEvent::EgressClosed { why, .. } => string(why),
        RecordEvent::WitnessCosigned { witness, .. } => string(witness),
        RecordEvent::WitnessFailed { witness, why, .. } => {
            string(witness);
            string(why);
        }
        // Fixed size: two keys and a signature.
        RecordEvent::KeyRotated { .. } => {}
        RecordEvent::Spawn {
            name,
            program,
            args,
            policy_path,
            policy_digest: _,
            launcher_pid: _,
        } => {
            opt_string(name);
            string(program);
            strings(args);
            string(policy_path);
        }
        RecordEvent::SpawnRefused { program, reason } => {
            string(program);
            string(reason);
        }
        RecordEvent::Sandbox(report) => jail(report),
        RecordEvent::Handshake { sdk, abi: _ } => string(sdk),
        RecordEvent::Syscall {
            id: _,
            call: c,
            decision: d,
            result: r,
            duration_us: _,
        }
        | RecordEvent::SyscallBlobs {
            id: _,
            call: c,
            decision: d,
            result: r,
            duration_us: _,
            blobs: _,
        } => {
            call(c);
            decision(d);
            result(r);
        }
        RecordEvent::Signal {
            signal: _,
            source,
            reason,
            delivered: _,
        } => {
            string(source);
            string(reason);
        }
        RecordEvent::Exit { status } => match status {
            ExitStatus::Killed { signal: _, reason } | ExitStatus::SandboxFailed { reason } => {
                string(reason)
            }
            ExitStatus::Code(_) | ExitStatus::PosixSignal(_) => {}
        },
        RecordEvent::SandboxDenied { syscall, .. } => string(syscall),
        RecordEvent::SandboxCapabilities {
            layers,
            allow_degraded: _,
        } => {
            let mut report = JailReport {
                layers: std::mem::take(layers),
            };
            jail(&mut report);
            *layers = report.layers;
        }
        RecordEvent::ApprovalRequested {
            approval: _,
            request: _,
            action,
            resource,
            rule,
        } => {
            string(action);
            string(resource);
            string(rule);
        }
        RecordEvent::ApprovalDecided { outcome, by, .. } => {
            string(outcome);
            string(by);
        }
        RecordEvent::PolicyReloaded { path: p, .. } => string(p),
        RecordEvent::ReadOnlyGranted { paths: ps } => paths(ps),
        RecordEvent::Recovery { .. } | RecordEvent::MemoryRestored { .. } => {}
        RecordEvent::RecorderBroken { what, .. } => string(what),
        RecordEvent::MemoryCheckpoint { trigger, .. } => string(trigger),
        RecordEvent::SandboxAccess {
            syscall,
            target,
            why,
        } => {
            string(syscall);
            string(target);
            string(why);
        }
        RecordEvent::SandboxFlood { syscall, .. } => string(syscall),
        RecordEvent::SandboxLimit {
            resource,
            limit: _,
            used: _,
            by,
            detail,
        } => {
            string(resource);
            string(by);
            string(detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::format::RecordBodyRef;
    use agentos_syscalls::{AgentId, ExecOutput, Syscall};

    /// The encoded body of `event` as the writer makes it (bounded, payloads to blobs).
    fn body_len(mut event: RecordEvent) -> usize {
        bound(&mut event);
        let (event, _) = blob::extract(event);
        postcard::to_stdvec(&RecordBodyRef {
            agent: &Some(AgentId(1)),
            event: &event,
        })
        .unwrap()
        .len()
    }

    #[test]
    fn short_strings_are_kept_and_long_ones_summarized_by_length_and_digest() {
        assert_eq!(summarize(&"a".repeat(FIELD_MAX)), None);
        let long = format!("é{}", "b".repeat(FIELD_MAX));
        let s = summarize(&long).unwrap();
        assert!(s.starts_with("éb"), "{s}");
        assert!(
            s.ends_with(&format!(
                "…[{} bytes, blake3 {}]",
                long.len(),
                blake3::hash(long.as_bytes()).to_hex()
            )),
            "{s}"
        );
        assert!(s.len() < HEAD_KEPT + 100);
        let mut argv = vec![String::new(); 1 << 20];
        strings(&mut argv);
        assert_eq!(argv.len(), LIST_MAX / ELEMENT_COST + 1);
        assert!(argv.last().unwrap().starts_with("…[1044480 more, 0 bytes"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the sizes of an agent's strings, the record's body fits.
        #[test]
        fn any_sizes_fit_the_record_limit(
            a in 0usize..(3 << 20),
            b in 0usize..(3 << 20),
            n in 0usize..200_000,
            each in 0usize..64,
        ) {
            let call = Syscall::CheckPolicy { action: "x".repeat(a), resource: "y".repeat(b) };
            let exec = Syscall::Exec {
                argv: vec!["z".repeat(each); n],
                stdin: vec![1; a],
                cwd: Some("c".repeat(b)),
                timeout_ms: None,
            };
            for call in [call, exec] {
                let event = RecordEvent::Syscall {
                    id: 1,
                    call,
                    decision: DecisionRecord {
                        allowed: false,
                        policy_allowed: false,
                        rule: "r".repeat(b),
                        reason: "q".repeat(a),
                        violation: true,
                        mode: "strict".into(),
                    },
                    result: Err(Errno::PermissionDenied { rule: "r".repeat(a), reason: "s".repeat(b) }),
                    duration_us: 0,
                };
                let len = body_len(event);
                proptest::prop_assert!(len <= MAX_RECORD as usize / 4, "{len}");
            }
        }
    }

    #[test]
    fn an_exec_result_keeps_its_payloads_for_the_blobs() {
        let out = ExecOutput {
            status: 0,
            stdout: vec![7; 5000],
            stderr: Vec::new(),
            duration_ms: 1,
            truncated: false,
            timed_out: false,
        };
        let mut e = RecordEvent::Syscall {
            id: 1,
            call: Syscall::Checkpoint,
            decision: DecisionRecord {
                allowed: true,
                policy_allowed: true,
                rule: String::new(),
                reason: String::new(),
                violation: false,
                mode: "builtin".into(),
            },
            result: Ok(Reply::Exec(out.clone())),
            duration_us: 0,
        };
        bound(&mut e);
        assert!(matches!(e, RecordEvent::Syscall { result: Ok(Reply::Exec(o)), .. } if o == out));
    }
}
