//! Golden byte vectors for every type that crosses a socket. A future SDK in another language
//! must produce and accept exactly these bytes. Rewrite with `BLESS=1 cargo test -p agentos-syscalls`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a failed test

use std::collections::BTreeSet;
use std::path::PathBuf;

use agentos_syscalls::control::*;
use agentos_syscalls::*;
use serde::Serialize;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every vector `check` produced in this run, for [`no_stray_golden_files`].
static CHECKED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

fn check<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    value: &T,
) {
    CHECKED.lock().unwrap().insert(name.to_string());
    let bytes = frame::encode(value).unwrap();
    let path = golden_dir().join(format!("{name}.hex"));
    let hex_now = hex::encode(&bytes);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, format!("{hex_now}\n")).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no golden vector {} (run with BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        stored.trim(),
        hex_now,
        "{name}: bytes changed; an ABI change needs BLESS=1 and an ABI_CHANGES.md entry"
    );
    let decoded: T = frame::decode(&bytes[frame::HEADER_LEN..]).unwrap();
    assert_eq!(&decoded, value, "{name}: does not round-trip");
}

fn sample_syscalls() -> Vec<Syscall> {
    vec![
        Syscall::Read {
            path: "/mem/working/notes.txt".into(),
            offset: 0,
            len: Some(4096),
        },
        Syscall::Write {
            path: "/mem/working/a".into(),
            data: b"hi".to_vec(),
            mode: WriteMode::Append,
        },
        Syscall::Open {
            path: "/workspace/x".into(),
            mode: OpenMode::Write(WriteMode::CreateNew),
        },
        Syscall::Close { fd: 3 },
        Syscall::List {
            path: "/mem/working".into(),
        },
        Syscall::Stat {
            path: "/policy/security.md".into(),
        },
        Syscall::Unlink {
            path: "/mem/working/a".into(),
        },
        Syscall::Exec {
            argv: vec!["/bin/echo".into(), "hi".into()],
            stdin: vec![],
            cwd: Some("/workspace".into()),
            timeout_ms: Some(1000),
        },
        Syscall::Call {
            action: "api_call".into(),
            params_json: r#"{"url":"http://127.0.0.1/"}"#.into(),
        },
        Syscall::Send {
            to: AgentId(2),
            payload: b"ping".to_vec(),
        },
        Syscall::Recv { timeout_ms: None },
        Syscall::Signal {
            target: AgentId(2),
            signal: Signal::Stop,
        },
        Syscall::CheckPolicy {
            action: "file_write".into(),
            resource: "/workspace/src/main.rs".into(),
        },
        Syscall::Checkpoint,
        Syscall::Exit { code: 0 },
        Syscall::ReadFd { fd: 4, len: 65536 },
        Syscall::WriteFd {
            fd: 4,
            data: vec![0, 255],
        },
        Syscall::Rename {
            from: "/workspace/a.txt".into(),
            to: "/workspace/b.txt".into(),
        },
        Syscall::ListTools,
    ]
}

#[test]
fn every_syscall_has_a_golden_vector() {
    let samples = sample_syscalls();
    let ordinals: BTreeSet<usize> = samples.iter().map(Syscall::ordinal).collect();
    assert_eq!(
        ordinals,
        (0..SYSCALL_COUNT).collect(),
        "a Syscall variant has no golden sample"
    );
    for call in samples {
        let name = format!("syscall_{}", call.name());
        check(&name, &AgentFrame::Request(Request { id: 7, call }));
    }
}

#[test]
fn a_traced_request_carries_the_w3c_trace_context_as_bytes() {
    let trace =
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    assert_eq!(
        trace.traceparent(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    check(
        "traced_request",
        &AgentFrame::TracedRequest {
            request: Request {
                id: 9,
                call: Syscall::Checkpoint,
            },
            trace,
        },
    );
}

fn sample_replies() -> Vec<(&'static str, Result<Reply, Errno>)> {
    let stat = FileStat {
        kind: FileKind::File,
        size: 2,
        modified_ms: 1_700_000_000_000,
        read_only: false,
    };
    vec![
        ("done", Ok(Reply::Done)),
        ("data", Ok(Reply::Data(b"hello".to_vec()))),
        ("written", Ok(Reply::Written { bytes: 5 })),
        ("opened", Ok(Reply::Opened { fd: 4 })),
        (
            "entries",
            Ok(Reply::Entries(vec![DirEntry {
                name: "a".into(),
                kind: FileKind::Directory,
                size: 0,
            }])),
        ),
        ("stat", Ok(Reply::Stat(stat))),
        (
            "exec",
            Ok(Reply::Exec(ExecOutput {
                status: 0,
                stdout: b"hi\n".to_vec(),
                stderr: vec![],
                duration_ms: 3,
                truncated: false,
                timed_out: false,
            })),
        ),
        (
            "call_result",
            Ok(Reply::CallResult {
                result_json: "{}".into(),
            }),
        ),
        (
            "message",
            Ok(Reply::Message(Message {
                from: AgentId(1),
                seq: 9,
                payload: b"x".to_vec(),
            })),
        ),
        (
            "decision",
            Ok(Reply::Decision(Decision {
                allowed: false,
                rule: "deny-etc (security.md:14)".into(),
                reason: "path under /etc".into(),
            })),
        ),
        ("checkpoint", Ok(Reply::Checkpoint { number: 1 })),
        (
            "tools",
            Ok(Reply::Tools(vec![ToolInfo {
                server: "everything".into(),
                name: "echo".into(),
                description: "Echoes back the input".into(),
                input_schema_json: r#"{"type":"object"}"#.into(),
            }])),
        ),
        (
            "err_permission_denied",
            Err(Errno::PermissionDenied {
                rule: "r (s.md:3)".into(),
                reason: "no".into(),
            }),
        ),
        (
            "err_not_found",
            Err(Errno::NotFound {
                what: "/mem/working/x".into(),
            }),
        ),
        (
            "err_invalid_argument",
            Err(Errno::InvalidArgument {
                reason: "empty path".into(),
            }),
        ),
        (
            "err_rate_limited",
            Err(Errno::RateLimited {
                retry_after_ms: 200,
            }),
        ),
        ("err_approval_denied", Err(Errno::ApprovalDenied)),
        ("err_approval_timeout", Err(Errno::ApprovalTimeout)),
        (
            "err_quota_exceeded",
            Err(Errno::QuotaExceeded {
                what: "bytes".into(),
            }),
        ),
        (
            "err_too_large",
            Err(Errno::TooLarge {
                size: 20,
                limit: 10,
            }),
        ),
        (
            "err_protocol_violation",
            Err(Errno::ProtocolViolation {
                reason: "bad frame".into(),
            }),
        ),
        (
            "err_unsupported",
            Err(Errno::Unsupported {
                what: "exec".into(),
            }),
        ),
        (
            "err_internal",
            Err(Errno::Internal {
                reason: "io".into(),
            }),
        ),
        (
            "err_busy",
            Err(Errno::Busy {
                what: "inbox".into(),
            }),
        ),
        ("err_bad_descriptor", Err(Errno::BadDescriptor { fd: 9 })),
        (
            "err_is_directory",
            Err(Errno::IsDirectory {
                path: "/mem".into(),
            }),
        ),
        (
            "err_not_directory",
            Err(Errno::NotDirectory {
                path: "/mem/a/b".into(),
            }),
        ),
        (
            "err_already_exists",
            Err(Errno::AlreadyExists {
                path: "/mem/a".into(),
            }),
        ),
        ("err_timed_out", Err(Errno::TimedOut { after_ms: 5 })),
        (
            "err_interrupted",
            Err(Errno::Interrupted {
                reason: "SIGTERM".into(),
            }),
        ),
    ]
}

#[test]
fn every_reply_and_errno_has_a_golden_vector() {
    for (name, result) in sample_replies() {
        check(
            &format!("response_{name}"),
            &KernelFrame::Response(Response { id: 7, result }),
        );
    }
}

#[test]
fn handshake_events_and_reports() {
    check(
        "hello",
        &AgentFrame::Hello(Hello {
            abi: ABI_VERSION,
            sdk: "agentos-rust/0.1.0".into(),
        }),
    );
    check(
        "welcome",
        &KernelFrame::Welcome(Welcome {
            abi: ABI_VERSION,
            agent_id: AgentId(1),
            limits: Limits {
                max_frame: frame::DEFAULT_MAX_FRAME,
                max_in_flight: 64,
            },
            policy_digest: [0xab; 32],
        }),
    );
    check(
        "refused",
        &KernelFrame::Refused(Errno::ProtocolViolation {
            reason: "abi 9 is not 1".into(),
        }),
    );
    for sig in signal::ALL_SIGNALS {
        check(
            &format!("event_{}", sig.name().to_lowercase()),
            &KernelFrame::Event(Event::Signal {
                signal: sig,
                reason: "operator".into(),
            }),
        );
    }
    check(
        "jail_report",
        &AgentFrame::JailReport(JailReport {
            layers: vec![
                Layer {
                    name: "landlock".into(),
                    status: LayerStatus::Active {
                        detail: "abi 6".into(),
                    },
                },
                Layer {
                    name: "cgroup".into(),
                    status: LayerStatus::Missing {
                        detail: "not delegated".into(),
                    },
                },
                Layer {
                    name: "seccomp".into(),
                    status: LayerStatus::Partial { detail: "x".into() },
                },
            ],
        }),
    );
    check("sandbox_listener", &AgentFrame::SandboxListener);
    check("egress_listener", &AgentFrame::EgressListener);
    check("tool_exit", &AgentFrame::ToolExit { status: -137 });
}

fn sample_info() -> AgentInfo {
    AgentInfo {
        id: AgentId(3),
        name: Some("builder".into()),
        state: AgentState::Exited,
        pid: Some(4242),
        program: "/usr/bin/python3".into(),
        args: vec!["agent.py".into()],
        started_ms: 1_700_000_000_000,
        first_syscall_us: Some(2500),
        counters: AgentCounters {
            syscalls: 10,
            allowed: 9,
            denied: 1,
            signals: 1,
            parked: 1,
            violations: 2,
            sandbox_denied: 3,
            awaiting_approval: 1,
        },
        exit: Some(ExitStatus::Killed {
            signal: Signal::Policy,
            reason: "rule x".into(),
        }),
        policy_path: "/p/.agents/security.md".into(),
        policy_digest: [1; 32],
        log_path: "/s/agents/3/output.log".into(),
        jail: None,
        usage: Some(AgentUsage {
            memory_bytes: 512 << 20,
            pids: 7,
        }),
        denials: DenialSummary {
            top: vec![
                Denial {
                    kind: DenialKind::Allowed,
                    action: "file_write".into(),
                    resource: "/etc/x".into(),
                    rule: String::new(),
                    reason: "no rule allows file_write (permissive)".into(),
                    count: 2,
                },
                Denial {
                    kind: DenialKind::Sandbox,
                    action: "socket".into(),
                    resource: "socket(AF_INET, SOCK_DGRAM)".into(),
                    rule: "sandbox: no network".into(),
                    reason: "seccomp".into(),
                    count: 1,
                },
                Denial {
                    kind: DenialKind::Refused,
                    action: "file_read".into(),
                    resource: "/w/x".into(),
                    rule: "r (p.md:3)".into(),
                    reason: "dry_run".into(),
                    count: 1,
                },
            ],
            total: 4,
        },
    }
}

#[test]
fn control_protocol() {
    let spawn = SpawnRequest {
        name: Some("builder".into()),
        policy: PolicySource {
            path: "/p/.agents/security.md".into(),
            text: "kernel: {}".into(),
        },
        workspace: Some("/w".into()),
        program: "/usr/bin/python3".into(),
        args: vec!["agent.py".into()],
        env: vec![("K".into(), "V".into())],
        extra_read_only: vec!["/p/agents".into()],
    };
    let requests = vec![
        ("status", ControlRequest::Status),
        ("spawn", ControlRequest::Spawn(spawn.clone())),
        ("ps", ControlRequest::Ps),
        (
            "wait",
            ControlRequest::Wait {
                agent: AgentRef::Id(AgentId(3)),
            },
        ),
        (
            "signal",
            ControlRequest::Signal {
                agent: AgentRef::Name("builder".into()),
                signal: Signal::Term,
            },
        ),
        (
            "logs",
            ControlRequest::Logs {
                agent: AgentRef::Id(AgentId(3)),
                follow: true,
            },
        ),
        ("shutdown", ControlRequest::Shutdown),
        (
            "inspect",
            ControlRequest::Inspect {
                agent: AgentRef::Id(AgentId(3)),
            },
        ),
        ("approvals", ControlRequest::Approvals),
        ("approve", ControlRequest::Approve { id: 12 }),
        ("deny", ControlRequest::Deny { id: 13 }),
        (
            "reload_policy",
            ControlRequest::ReloadPolicy {
                agent: AgentRef::Name("builder".into()),
                policy: PolicySource {
                    path: "/p/.agents/security.md".into(),
                    text: "kernel: {}".into(),
                },
            },
        ),
        (
            "spawn_restored",
            ControlRequest::SpawnRestored {
                spawn,
                from: AgentId(3),
                checkpoint: Some(2),
            },
        ),
        (
            "approvals_page",
            ControlRequest::ApprovalsPage(ApprovalQuery {
                limit: 50,
                after: Some(12),
                agent: Some(AgentId(3)),
            }),
        ),
        (
            "forget",
            ControlRequest::Forget {
                agents: vec![AgentRef::Id(AgentId(3)), AgentRef::Name("builder".into())],
            },
        ),
        (
            "prune",
            ControlRequest::Prune {
                older_than_ms: Some(3_600_000),
            },
        ),
    ];
    for (name, req) in requests {
        check(&format!("control_req_{name}"), &req);
    }
    let status = KernelStatus {
        pid: 1,
        uid: 0,
        version: "0.1.0".into(),
        abi: ABI_VERSION,
        state_dir: "/s".into(),
        recorder_dir: "/s/recorder".into(),
        started_ms: 1,
        agents_running: 1,
        agents_total: 2,
        sandbox: vec![Layer {
            name: "seccomp".into(),
            status: LayerStatus::Active {
                detail: String::new(),
            },
        }],
        log_path: Some("/s/kernel.log".into()),
        health: vec!["flight recorder: the disk is full".into()],
        metrics_url: Some("http://127.0.0.1:9464/metrics".into()),
        otlp_endpoint: None,
    };
    let statuses = [
        ExitStatus::Code(3),
        ExitStatus::PosixSignal(11),
        ExitStatus::Killed {
            signal: Signal::Kill,
            reason: String::new(),
        },
        ExitStatus::SandboxFailed {
            reason: "landlock missing".into(),
        },
    ];
    let mut responses = vec![
        ("status", ControlResponse::Status(status)),
        ("spawned", ControlResponse::Spawned(sample_info())),
        ("agents", ControlResponse::Agents(vec![sample_info()])),
        (
            "signaled",
            ControlResponse::Signaled {
                agent: AgentId(3),
                signal: Signal::Stop,
            },
        ),
        ("log_chunk", ControlResponse::LogChunk(b"out\n".to_vec())),
        ("log_end", ControlResponse::LogEnd),
        ("shutting_down", ControlResponse::ShuttingDown),
        (
            "error",
            ControlResponse::Error(ControlError {
                kind: ControlErrorKind::NotFound,
                message: "no agent 9".into(),
                hint: "agentctl ps".into(),
            }),
        ),
        (
            "approvals",
            ControlResponse::Approvals(vec![ApprovalInfo {
                id: 12,
                agent: AgentId(3),
                action: "file_write".into(),
                resource: "/mem/working/gated/x".into(),
                age_ms: 1500,
                rule: "gated (/p/.agents/security.md:14)".into(),
                agent_name: None,
                payload: None,
            }]),
        ),
        (
            "decided",
            ControlResponse::Decided {
                id: 12,
                approved: true,
            },
        ),
        (
            "reloaded",
            ControlResponse::Reloaded {
                agent: AgentId(3),
                old_digest: [1; 32],
                new_digest: [2; 32],
            },
        ),
        (
            "approvals_page",
            ControlResponse::ApprovalsPage(ApprovalPage {
                approvals: vec![ApprovalInfo {
                    id: 12,
                    agent: AgentId(3),
                    action: "file_write".into(),
                    resource: "/mem/working/gated/x".into(),
                    age_ms: 1500,
                    rule: "gated (/p/.agents/security.md:14)".into(),
                    agent_name: Some("builder".into()),
                    payload: Some(PayloadPreview {
                        bytes: 5,
                        head: b"a\x1bb\n".to_vec(),
                        blake3: [7; 32],
                    }),
                }],
                agents: vec![ApprovalCount {
                    agent: AgentId(3),
                    shown: 1,
                    matching: 4,
                    last_shown: Some(12),
                }],
                more: 3,
            }),
        ),
        (
            "forgotten",
            ControlResponse::Forgotten {
                agents: vec![AgentId(3), AgentId(4)],
            },
        ),
    ];
    let mut awaiting = sample_info();
    awaiting.state = AgentState::AwaitingApproval;
    awaiting.exit = None;
    responses.push(("agent_4", ControlResponse::Agent(awaiting)));
    for (i, exit) in statuses.into_iter().enumerate() {
        let mut info = sample_info();
        info.exit = Some(exit);
        info.state = [
            AgentState::Starting,
            AgentState::Running,
            AgentState::Stopped,
            AgentState::Exited,
        ][i];
        responses.push((
            ["agent_0", "agent_1", "agent_2", "agent_3"][i],
            ControlResponse::Agent(info),
        ));
    }
    for (name, resp) in responses {
        check(&format!("control_resp_{name}"), &resp);
    }
}

/// Every `.hex` file in the golden dir is produced by a test above: no stray vector that no
/// type backs (the Python SDK's golden test reads every file in this dir, so both sides stay
/// in lockstep).
#[test]
fn no_stray_golden_files() {
    every_syscall_has_a_golden_vector();
    every_reply_and_errno_has_a_golden_vector();
    handshake_events_and_reports();
    control_protocol();
    let checked = CHECKED.lock().unwrap().clone();
    let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let stray: Vec<&String> = on_disk.difference(&checked).collect();
    assert!(
        stray.is_empty(),
        "golden vectors no test produces (delete them or add their sample): {stray:?}"
    );
}
