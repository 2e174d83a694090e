//! What each control request does: [`dispatch`] maps a [`ControlRequest`] to a [`Reply`] over
//! [`Operations`], the narrow set of kernel operations the control socket needs (implemented
//! by [`crate::Kernel`], and by a fake in the tests below).
//!
//! Guarantees:
//! - Every request kind is handled (an exhaustive match: a new kind is a compile error here).
//! - A refused operation is answered with [`ControlResponse::Error`] carrying the operation's
//!   [`ControlError`] unchanged: its kind is `agentctl`'s exit code.
//! - Every agent row answered (`ps`, `inspect`, `wait`) has its agent-controlled strings cut to
//!   [`display_bound`] ([`bounded_row`]); the approvals listing is bounded by the approvals
//!   queue itself (`crate::approvals`).
//!
//! Never: frame I/O here; the caller sends the reply ([`super::connection`]).

use agentos_syscalls::control::{
    display_bound, AgentInfo, AgentRef, ApprovalInfo, ApprovalPage, ApprovalQuery, ControlError,
    ControlRequest, ControlResponse, ExitStatus, KernelStatus, PolicySource, SpawnRequest,
};
use agentos_syscalls::{AgentId, Signal};

/// The kernel operations the control socket drives.
pub(crate) trait Operations {
    /// An agent's output: what is on disk, then a live feed.
    type Log: LogFeed;

    fn status(&self) -> KernelStatus;
    async fn spawn(&self, req: SpawnRequest) -> Result<AgentInfo, ControlError>;
    /// Spawns with `/mem/working` restored from checkpoint `checkpoint` (the latest when
    /// `None`) of agent `from`.
    async fn spawn_restored(
        &self,
        req: SpawnRequest,
        from: AgentId,
        checkpoint: Option<u64>,
    ) -> Result<AgentInfo, ControlError>;
    fn ps(&self) -> Vec<AgentInfo>;
    fn inspect(&self, r: &AgentRef) -> Result<AgentInfo, ControlError>;
    /// The agent's final row, once it has ended.
    async fn wait(&self, r: &AgentRef) -> Result<AgentInfo, ControlError>;
    async fn signal(
        &self,
        r: &AgentRef,
        signal: Signal,
        source: &str,
    ) -> Result<AgentId, ControlError>;
    fn follow_log(&self, r: &AgentRef) -> Result<Self::Log, ControlError>;
    fn approvals(&self) -> Vec<ApprovalInfo>;
    fn approvals_page(&self, q: &ApprovalQuery) -> ApprovalPage;
    fn decide(&self, id: u64, approved: bool, by: &str) -> Result<(), ControlError>;
    /// The agent and its policy digests before and after.
    fn reload_policy(
        &self,
        r: &AgentRef,
        source: &PolicySource,
        by: &str,
    ) -> Result<(AgentId, [u8; 32], [u8; 32]), ControlError>;
    /// Forgets the ended agents `refs` name (all or none); the ids forgotten.
    fn forget(&self, refs: &[AgentRef]) -> Result<Vec<AgentId>, ControlError>;
    /// Forgets every agent that ended more than `older_than_ms` ago (every ended one for
    /// `None`); the ids forgotten.
    fn prune(&self, older_than_ms: Option<u64>) -> Result<Vec<AgentId>, ControlError>;
    /// Asks the kernel to shut down (it does so after the answer is sent).
    fn request_shutdown(&self);
}

/// An agent's output as the `Logs` request streams it.
pub(crate) trait LogFeed {
    /// Everything written before the feed was opened.
    fn backlog(&mut self) -> std::io::Result<Vec<u8>>;
    /// The next chunk; `None` once the agent has ended and all of it was returned.
    async fn next(&mut self) -> Option<Vec<u8>>;
}

/// What to send for one request.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply<L> {
    /// This one frame (boxed: a status or agent row is large beside the other variants).
    Answer(Box<ControlResponse>),
    /// The log's chunks (only the backlog unless `follow`), then `LogEnd`.
    Log { feed: L, follow: bool },
    /// `ShuttingDown`, then [`Operations::request_shutdown`].
    Shutdown,
}

/// Performs `request` on behalf of `source` (`operator (uid N)`).
pub(crate) async fn dispatch<O: Operations>(
    ops: &O,
    request: ControlRequest,
    source: &str,
) -> Reply<O::Log> {
    let answer = match request {
        ControlRequest::Status => Ok(ControlResponse::Status(ops.status())),
        ControlRequest::Spawn(req) => ops.spawn(req).await.map(ControlResponse::Spawned),
        ControlRequest::SpawnRestored {
            spawn,
            from,
            checkpoint,
        } => ops
            .spawn_restored(spawn, from, checkpoint)
            .await
            .map(ControlResponse::Spawned),
        ControlRequest::Ps => Ok(ControlResponse::Agents(
            ops.ps().into_iter().map(bounded_row).collect(),
        )),
        ControlRequest::Inspect { agent } => ops.inspect(&agent).map(agent_row),
        ControlRequest::Wait { agent } => ops.wait(&agent).await.map(agent_row),
        ControlRequest::Signal { agent, signal } => ops
            .signal(&agent, signal, source)
            .await
            .map(|agent| ControlResponse::Signaled { agent, signal }),
        ControlRequest::Logs { agent, follow } => match ops.follow_log(&agent) {
            Ok(feed) => return Reply::Log { feed, follow },
            Err(e) => Err(e),
        },
        ControlRequest::Approvals => Ok(ControlResponse::Approvals(ops.approvals())),
        ControlRequest::ApprovalsPage(q) => {
            Ok(ControlResponse::ApprovalsPage(ops.approvals_page(&q)))
        }
        ControlRequest::Approve { id } => decide(ops, id, true, source),
        ControlRequest::Deny { id } => decide(ops, id, false, source),
        ControlRequest::ReloadPolicy { agent, policy } => reload(ops, &agent, &policy, source),
        ControlRequest::Forget { agents } => ops
            .forget(&agents)
            .map(|agents| ControlResponse::Forgotten { agents }),
        ControlRequest::Prune { older_than_ms } => ops
            .prune(older_than_ms)
            .map(|agents| ControlResponse::Forgotten { agents }),
        ControlRequest::Shutdown => return Reply::Shutdown,
    };
    Reply::Answer(Box::new(answer.unwrap_or_else(ControlResponse::Error)))
}

/// `Approve` and `Deny`.
fn decide<O: Operations>(
    ops: &O,
    id: u64,
    approved: bool,
    source: &str,
) -> Result<ControlResponse, ControlError> {
    ops.decide(id, approved, source)
        .map(|()| ControlResponse::Decided { id, approved })
}

fn reload<O: Operations>(
    ops: &O,
    agent: &AgentRef,
    policy: &PolicySource,
    source: &str,
) -> Result<ControlResponse, ControlError> {
    let (agent, old_digest, new_digest) = ops.reload_policy(agent, policy, source)?;
    Ok(ControlResponse::Reloaded {
        agent,
        old_digest,
        new_digest,
    })
}

fn agent_row(a: AgentInfo) -> ControlResponse {
    ControlResponse::Agent(bounded_row(a))
}

/// An agent row with the strings the agent can influence cut to [`display_bound`].
pub(crate) fn bounded_row(mut a: AgentInfo) -> AgentInfo {
    match &mut a.exit {
        Some(ExitStatus::Killed { reason, .. }) | Some(ExitStatus::SandboxFailed { reason }) => {
            *reason = display_bound(reason);
        }
        Some(ExitStatus::Code(_)) | Some(ExitStatus::PosixSignal(_)) | None => {}
    }
    a
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use agentos_syscalls::control::{
        AgentCounters, AgentState, ApprovalCount, ControlErrorKind, MAX_DISPLAY_BYTES,
    };

    use super::*;

    /// A log as a list: its backlog, then its live chunks.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct FakeLog {
        pub backlog: Result<Vec<u8>, String>,
        pub live: VecDeque<Vec<u8>>,
    }

    impl LogFeed for FakeLog {
        fn backlog(&mut self) -> std::io::Result<Vec<u8>> {
            self.backlog.clone().map_err(std::io::Error::other)
        }

        async fn next(&mut self) -> Option<Vec<u8>> {
            self.live.pop_front()
        }
    }

    /// The kernel as a table: every operation is logged in `calls`; every fallible one fails
    /// with `fail` when set, otherwise answers from the fields.
    struct Fake {
        calls: Mutex<Vec<String>>,
        fail: Option<ControlError>,
        rows: Vec<AgentInfo>,
        page: ApprovalPage,
        log: FakeLog,
    }

    impl Fake {
        fn new(rows: Vec<AgentInfo>) -> Fake {
            Fake {
                calls: Mutex::new(Vec::new()),
                fail: None,
                rows,
                page: page(),
                log: FakeLog {
                    backlog: Ok(b"before".to_vec()),
                    live: VecDeque::from([b"after".to_vec()]),
                },
            }
        }

        fn failing(kind: ControlErrorKind) -> Fake {
            Fake {
                fail: Some(error(kind)),
                ..Fake::new(vec![row(1, None)])
            }
        }

        fn call<T>(&self, what: String, ok: T) -> Result<T, ControlError> {
            self.calls.lock().unwrap().push(what);
            match &self.fail {
                Some(e) => Err(e.clone()),
                None => Ok(ok),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Operations for Fake {
        type Log = FakeLog;

        fn status(&self) -> KernelStatus {
            self.calls.lock().unwrap().push("status".into());
            status()
        }

        async fn spawn(&self, req: SpawnRequest) -> Result<AgentInfo, ControlError> {
            self.call(
                format!("spawn {}", req.program.display()),
                self.rows[0].clone(),
            )
        }

        async fn spawn_restored(
            &self,
            req: SpawnRequest,
            from: AgentId,
            checkpoint: Option<u64>,
        ) -> Result<AgentInfo, ControlError> {
            let what = format!(
                "spawn_restored {} from {from} at {checkpoint:?}",
                req.program.display()
            );
            self.call(what, self.rows[0].clone())
        }

        fn ps(&self) -> Vec<AgentInfo> {
            self.calls.lock().unwrap().push("ps".into());
            self.rows.clone()
        }

        fn inspect(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
            self.call(format!("inspect {r:?}"), self.rows[0].clone())
        }

        async fn wait(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
            self.call(format!("wait {r:?}"), self.rows[0].clone())
        }

        async fn signal(
            &self,
            r: &AgentRef,
            signal: Signal,
            source: &str,
        ) -> Result<AgentId, ControlError> {
            self.call(format!("signal {r:?} {signal:?} by {source}"), AgentId(7))
        }

        fn follow_log(&self, r: &AgentRef) -> Result<FakeLog, ControlError> {
            self.call(format!("follow_log {r:?}"), self.log.clone())
        }

        fn approvals(&self) -> Vec<ApprovalInfo> {
            self.calls.lock().unwrap().push("approvals".into());
            self.page.approvals.clone()
        }

        fn approvals_page(&self, q: &ApprovalQuery) -> ApprovalPage {
            self.calls
                .lock()
                .unwrap()
                .push(format!("approvals_page {q:?}"));
            self.page.clone()
        }

        fn decide(&self, id: u64, approved: bool, by: &str) -> Result<(), ControlError> {
            self.call(format!("decide {id} {approved} by {by}"), ())
        }

        fn reload_policy(
            &self,
            r: &AgentRef,
            source: &PolicySource,
            by: &str,
        ) -> Result<(AgentId, [u8; 32], [u8; 32]), ControlError> {
            let what = format!("reload_policy {r:?} {} by {by}", source.path);
            self.call(what, (AgentId(7), [1; 32], [2; 32]))
        }

        fn forget(&self, refs: &[AgentRef]) -> Result<Vec<AgentId>, ControlError> {
            self.call(format!("forget {refs:?}"), vec![AgentId(2)])
        }

        fn prune(&self, older_than_ms: Option<u64>) -> Result<Vec<AgentId>, ControlError> {
            self.call(
                format!("prune {older_than_ms:?}"),
                vec![AgentId(2), AgentId(5)],
            )
        }

        fn request_shutdown(&self) {
            self.calls.lock().unwrap().push("request_shutdown".into());
        }
    }

    const SOURCE: &str = "operator (uid 0)";

    fn error(kind: ControlErrorKind) -> ControlError {
        ControlError {
            kind,
            message: format!("refused as {kind:?}"),
            hint: "do something else".into(),
        }
    }

    fn row(id: u64, exit: Option<ExitStatus>) -> AgentInfo {
        AgentInfo {
            id: AgentId(id),
            name: Some(format!("agent-{id}")),
            state: if exit.is_some() {
                AgentState::Exited
            } else {
                AgentState::Running
            },
            pid: Some(100 + id as u32),
            program: "/bin/agent".into(),
            args: vec!["--flag".into()],
            started_ms: 1,
            first_syscall_us: Some(2),
            counters: AgentCounters::default(),
            exit,
            policy_path: "security.md".into(),
            policy_digest: [3; 32],
            log_path: PathBuf::from("/state/agents/1.log"),
            jail: None,
            usage: None,
            denials: Default::default(),
        }
    }

    fn status() -> KernelStatus {
        KernelStatus {
            pid: 1,
            uid: 0,
            version: "0.1.0".into(),
            abi: 2,
            state_dir: "/state".into(),
            recorder_dir: "/state/recorder".into(),
            started_ms: 5,
            agents_running: 1,
            agents_total: 2,
            sandbox: Vec::new(),
            log_path: Some("/state/kernel.log".into()),
            health: Vec::new(),
            metrics_url: None,
            otlp_endpoint: None,
        }
    }

    fn page() -> ApprovalPage {
        ApprovalPage {
            approvals: vec![ApprovalInfo {
                id: 12,
                agent: AgentId(3),
                action: "file_write".into(),
                resource: "/workspace/x".into(),
                age_ms: 9,
                rule: "w (security.md:4)".into(),
                agent_name: None,
                payload: None,
            }],
            agents: vec![ApprovalCount {
                agent: AgentId(3),
                shown: 1,
                matching: 4,
                last_shown: Some(12),
            }],
            more: 3,
        }
    }

    fn spawn_request(program: &str) -> SpawnRequest {
        SpawnRequest {
            name: None,
            policy: PolicySource {
                path: "security.md".into(),
                text: String::new(),
            },
            workspace: None,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            extra_read_only: Vec::new(),
        }
    }

    fn by_name() -> AgentRef {
        AgentRef::Name("builder".into())
    }

    fn answer(r: ControlResponse) -> Reply<FakeLog> {
        Reply::Answer(Box::new(r))
    }

    /// Every request kind with the reply and the operation calls it must make.
    fn every_request(fake: &Fake) -> Vec<(ControlRequest, Reply<FakeLog>, Vec<String>)> {
        let row = fake.rows[0].clone();
        let query = ApprovalQuery {
            limit: 2,
            after: Some(11),
            agent: Some(AgentId(3)),
        };
        vec![
            (
                ControlRequest::Status,
                answer(ControlResponse::Status(status())),
                vec!["status".into()],
            ),
            (
                ControlRequest::Spawn(spawn_request("/bin/a")),
                answer(ControlResponse::Spawned(row.clone())),
                vec!["spawn /bin/a".into()],
            ),
            (
                ControlRequest::SpawnRestored {
                    spawn: spawn_request("/bin/b"),
                    from: AgentId(4),
                    checkpoint: Some(2),
                },
                answer(ControlResponse::Spawned(row.clone())),
                vec!["spawn_restored /bin/b from 4 at Some(2)".into()],
            ),
            (
                ControlRequest::Ps,
                answer(ControlResponse::Agents(fake.rows.clone())),
                vec!["ps".into()],
            ),
            (
                ControlRequest::Inspect { agent: by_name() },
                answer(ControlResponse::Agent(row.clone())),
                vec![r#"inspect Name("builder")"#.into()],
            ),
            (
                ControlRequest::Wait {
                    agent: AgentRef::Id(AgentId(7)),
                },
                answer(ControlResponse::Agent(row.clone())),
                vec!["wait Id(AgentId(7))".into()],
            ),
            (
                ControlRequest::Signal {
                    agent: by_name(),
                    signal: Signal::Stop,
                },
                answer(ControlResponse::Signaled {
                    agent: AgentId(7),
                    signal: Signal::Stop,
                }),
                vec![format!(r#"signal Name("builder") Stop by {SOURCE}"#)],
            ),
            (
                ControlRequest::Logs {
                    agent: by_name(),
                    follow: true,
                },
                Reply::Log {
                    feed: fake.log.clone(),
                    follow: true,
                },
                vec![r#"follow_log Name("builder")"#.into()],
            ),
            (
                ControlRequest::Approvals,
                answer(ControlResponse::Approvals(page().approvals)),
                vec!["approvals".into()],
            ),
            (
                ControlRequest::ApprovalsPage(query.clone()),
                answer(ControlResponse::ApprovalsPage(page())),
                vec![format!("approvals_page {query:?}")],
            ),
            (
                ControlRequest::Approve { id: 12 },
                answer(ControlResponse::Decided {
                    id: 12,
                    approved: true,
                }),
                vec![format!("decide 12 true by {SOURCE}")],
            ),
            (
                ControlRequest::Deny { id: 13 },
                answer(ControlResponse::Decided {
                    id: 13,
                    approved: false,
                }),
                vec![format!("decide 13 false by {SOURCE}")],
            ),
            (
                ControlRequest::ReloadPolicy {
                    agent: by_name(),
                    policy: PolicySource {
                        path: "new.md".into(),
                        text: String::new(),
                    },
                },
                answer(ControlResponse::Reloaded {
                    agent: AgentId(7),
                    old_digest: [1; 32],
                    new_digest: [2; 32],
                }),
                vec![format!(
                    r#"reload_policy Name("builder") new.md by {SOURCE}"#
                )],
            ),
            (
                ControlRequest::Forget {
                    agents: vec![by_name(), AgentRef::Id(AgentId(2))],
                },
                answer(ControlResponse::Forgotten {
                    agents: vec![AgentId(2)],
                }),
                vec![r#"forget [Name("builder"), Id(AgentId(2))]"#.into()],
            ),
            (
                ControlRequest::Prune {
                    older_than_ms: Some(60_000),
                },
                answer(ControlResponse::Forgotten {
                    agents: vec![AgentId(2), AgentId(5)],
                }),
                vec!["prune Some(60000)".into()],
            ),
            // The shutdown itself is asked for by the connection, after the answer is sent.
            (ControlRequest::Shutdown, Reply::Shutdown, Vec::new()),
        ]
    }

    #[tokio::test]
    async fn every_request_kind_maps_to_its_answer_and_operation() {
        let template = Fake::new(vec![row(1, None), row(2, Some(ExitStatus::Code(0)))]);
        for (request, reply, calls) in every_request(&template) {
            let fake = Fake::new(template.rows.clone());
            let label = format!("{request:?}");
            assert_eq!(dispatch(&fake, request, SOURCE).await, reply, "{label}");
            assert_eq!(fake.calls(), calls, "{label}");
        }
    }

    #[tokio::test]
    async fn a_refused_operation_is_answered_with_its_error_and_exit_code() {
        let kinds = [
            (ControlErrorKind::Failed, 1),
            (ControlErrorKind::Usage, 2),
            (ControlErrorKind::Denied, 3),
            (ControlErrorKind::NotFound, 4),
        ];
        for (kind, code) in kinds {
            let fake = Fake::failing(kind);
            let mut fallible = 0;
            for (request, ok, _) in every_request(&fake) {
                let label = format!("{request:?}");
                let reply = dispatch(&fake, request, SOURCE).await;
                match ok {
                    // Infallible kinds answer as before.
                    Reply::Answer(ref r)
                        if matches!(
                            **r,
                            ControlResponse::Status(_)
                                | ControlResponse::Agents(_)
                                | ControlResponse::Approvals(_)
                                | ControlResponse::ApprovalsPage(_)
                        ) =>
                    {
                        assert_eq!(reply, ok, "{label}");
                    }
                    Reply::Shutdown => assert_eq!(reply, Reply::Shutdown),
                    Reply::Answer(_) | Reply::Log { .. } => {
                        fallible += 1;
                        let Reply::Answer(r) = reply else {
                            panic!("{label}: {reply:?}");
                        };
                        let ControlResponse::Error(e) = *r else {
                            panic!("{label}: {r:?}");
                        };
                        assert_eq!(e, error(kind), "{label}");
                        assert_eq!(e.kind.exit_code(), code);
                    }
                }
            }
            // Spawn, SpawnRestored, Inspect, Wait, Signal, Logs, Approve, Deny, ReloadPolicy,
            // Forget, Prune.
            assert_eq!(fallible, 11);
        }
    }

    #[tokio::test]
    async fn agent_controlled_exit_reasons_are_cut_in_every_row() {
        let long = "é".repeat(MAX_DISPLAY_BYTES); // 2 bytes each: over the bound
        let rows = vec![
            row(
                1,
                Some(ExitStatus::Killed {
                    signal: Signal::Trust,
                    reason: long.clone(),
                }),
            ),
            row(
                2,
                Some(ExitStatus::SandboxFailed {
                    reason: long.clone(),
                }),
            ),
            row(3, Some(ExitStatus::Code(3))),
            row(4, None),
        ];
        let cut = display_bound(&long);
        assert!(cut.len() < long.len() && cut.ends_with(&format!("…({} bytes)", long.len())));
        let mut expected = rows.clone();
        expected[0].exit = Some(ExitStatus::Killed {
            signal: Signal::Trust,
            reason: cut.clone(),
        });
        expected[1].exit = Some(ExitStatus::SandboxFailed { reason: cut });

        let fake = Fake::new(rows.clone());
        assert_eq!(
            dispatch(&fake, ControlRequest::Ps, SOURCE).await,
            answer(ControlResponse::Agents(expected.clone()))
        );
        for (i, want) in expected.iter().enumerate() {
            let fake = Fake::new(vec![rows[i].clone()]);
            for request in [
                ControlRequest::Inspect { agent: by_name() },
                ControlRequest::Wait { agent: by_name() },
            ] {
                assert_eq!(
                    dispatch(&fake, request, SOURCE).await,
                    answer(ControlResponse::Agent(want.clone()))
                );
            }
        }
    }

    #[tokio::test]
    async fn an_approvals_page_passes_its_cursor_through() {
        for query in [
            ApprovalQuery {
                limit: 0,
                after: None,
                agent: None,
            },
            ApprovalQuery {
                limit: 50,
                after: Some(12),
                agent: Some(AgentId(3)),
            },
        ] {
            let fake = Fake::new(vec![row(1, None)]);
            let reply = dispatch(&fake, ControlRequest::ApprovalsPage(query.clone()), SOURCE).await;
            assert_eq!(reply, answer(ControlResponse::ApprovalsPage(page())));
            assert_eq!(fake.calls(), vec![format!("approvals_page {query:?}")]);
        }
    }
}
