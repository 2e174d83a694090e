//! Tree operations on a fake kernel: a temp workspace dir, a temp persistent store, a
//! [`RecordingAudit`], an agent's parts built by hand. No launcher, recorder or spawner.

use std::path::PathBuf;
use std::sync::Mutex;

use agentos_syscalls::{AgentId, DirEntry, Errno, FileKind, OpenMode, WriteMode};
use agentos_vfs::{MemFs, Store, MOUNTS};

use super::*;
use crate::audit::tests::RecordingAudit;
use crate::ipc::{Inbox, InboxLimits};
use crate::policy::PolicySlot;
use crate::recorder::RecordEvent;

const ID: AgentId = AgentId(7);
const POLICY: &str = "kernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies: []\n";

/// One agent's tree over temp dirs.
struct Fake {
    dir: tempfile::TempDir,
    limits: TreeLimits,
    store: Store,
    audit: RecordingAudit,
    tree: AgentTree,
    working: Mutex<MemFs>,
    policy: PolicySlot,
    inbox: Inbox,
}

impl Fake {
    /// A fake with a quota of `bytes` and `files` across the writable tree.
    fn new(quota: (u64, u64)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::create_dir_all(dir.path().join("agents/7")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), "host secret").unwrap();
        let store = Store::open(&dir.path().join("memory.redb")).unwrap();
        let (namespace, ephemeral) = namespace_of(None, ID);
        let root = crate::sys::open_workspace_root(&dir.path().join("ws")).unwrap();
        let tree = AgentTree::new(
            namespace,
            ephemeral,
            Some(root),
            (0, 0),
            quota,
            dir.path().join("agents/7/checkpoints"),
        );
        Fake {
            limits: TreeLimits {
                max_frame: 1 << 20,
                max_fds: 4,
                checkpoint_bytes: 1 << 20,
            },
            store,
            audit: RecordingAudit::default(),
            tree,
            working: Mutex::new(MemFs::new(quota.0, quota.1)),
            policy: PolicySlot::new(agentos_policy::Policy::parse("security.md", POLICY).unwrap()),
            inbox: Inbox::new(InboxLimits::default()),
            dir,
        }
    }

    fn ctx(&self) -> TreeCtx<'_> {
        TreeCtx {
            limits: self.limits,
            memory: &self.store,
            audit: &self.audit,
        }
    }

    fn me(&self) -> Owner<'_> {
        Owner {
            id: ID,
            started_ms: 1,
            tree: &self.tree,
            working: &self.working,
            policy: &self.policy,
            inbox: &self.inbox,
        }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn write(&self, path: &str, data: &str) -> Result<u64, Errno> {
        write(
            &self.ctx(),
            self.me(),
            path,
            data.as_bytes(),
            WriteMode::Truncate,
        )
    }

    fn read(&self, path: &str) -> Result<String, Errno> {
        read(&self.ctx(), self.me(), path, 0, None).map(|d| String::from_utf8(d).unwrap())
    }

    fn names(&self, path: &str) -> Result<Vec<String>, Errno> {
        list(&self.ctx(), self.me(), path).map(|v| v.into_iter().map(|e| e.name).collect())
    }

    fn usage(&self) -> (u64, u64) {
        *lock(&self.tree.usage)
    }
}

fn not_found(what: &str) -> Errno {
    Errno::NotFound { what: what.into() }
}

#[test]
fn files_round_trip_on_the_workspace_and_in_memory() {
    let f = Fake::new((1 << 20, 100));
    for path in [
        "/workspace/a/b/note.txt",
        "/mem/working/notes/x",
        "/mem/episodic/day1",
        "/mem/semantic/fact",
    ] {
        assert_eq!(f.write(path, "hello"), Ok(5), "{path}");
        assert_eq!(f.read(path).as_deref(), Ok("hello"), "{path}");
        let st = stat(&f.ctx(), f.me(), path).unwrap();
        assert_eq!((st.kind, st.size, st.read_only), (FileKind::File, 5, false));
        // Append, then a partial read.
        write(&f.ctx(), f.me(), path, b"!", WriteMode::Append).unwrap();
        assert_eq!(read(&f.ctx(), f.me(), path, 4, Some(2)), Ok(b"o!".to_vec()));
        assert!(
            matches!(
                write(&f.ctx(), f.me(), path, b"x", WriteMode::CreateNew),
                Err(Errno::AlreadyExists { .. })
            ),
            "{path}"
        );
    }
    // The workspace file is on the host, its parents made.
    assert_eq!(
        std::fs::read_to_string(f.ws().join("a/b/note.txt")).unwrap(),
        "hello!"
    );
    assert_eq!(f.names("/workspace").unwrap(), ["a"]);
    assert_eq!(
        list(&f.ctx(), f.me(), "/workspace/a/b").unwrap(),
        [DirEntry {
            name: "note.txt".into(),
            kind: FileKind::File,
            size: 6
        }]
    );
    assert_eq!(f.names("/mem/working").unwrap(), ["notes"]);
    assert_eq!(f.names("/mem/episodic").unwrap(), ["day1"]);
    assert_eq!(f.names("/").unwrap().len(), MOUNTS[0].1.len());
    // Own-tree aliases reach the same files.
    assert_eq!(
        f.read("/agent/7/mem/working/notes/x").as_deref(),
        Ok("hello!")
    );
    // Unlink everywhere; the files are gone.
    for path in [
        "/workspace/a/b/note.txt",
        "/mem/working/notes/x",
        "/mem/episodic/day1",
        "/mem/semantic/fact",
    ] {
        assert_eq!(unlink(&f.ctx(), f.me(), path), Ok(()), "{path}");
        assert!(f.read(path).is_err(), "{path}");
    }
    assert!(!f.ws().join("a/b/note.txt").exists());
    assert_eq!(f.read("/workspace/nope"), Err(not_found("/workspace/nope")));
    // What memory held is freed again; a workspace unlink refunds nothing (a host file
    // may predate the agent, and deleting it must not buy quota): the 6 bytes and 1 file
    // of note.txt stay charged.
    assert_eq!(f.usage(), (6, 1));
}

#[test]
fn the_policy_and_inbox_views_are_read_only() {
    let f = Fake::new((1 << 20, 100));
    assert_eq!(f.read("/policy/security.md").as_deref(), Ok(POLICY));
    assert_eq!(f.names("/policy").unwrap(), ["digest", "security.md"]);
    assert_eq!(f.names("/ipc/inbox").unwrap(), Vec::<String>::new());
    for path in ["/policy/security.md", "/state/checkpoints/1/x"] {
        assert!(
            matches!(f.write(path, "x"), Err(Errno::PermissionDenied { ref rule, .. }) if rule == "read-only mount"),
            "{path}"
        );
    }
    assert!(matches!(
        unlink(&f.ctx(), f.me(), "/ipc/inbox/x"),
        Err(Errno::PermissionDenied { .. })
    ));
    assert!(matches!(
        f.write("/nowhere/x", "x"),
        Err(Errno::NotFound { .. })
    ));
}

#[test]
fn descriptors_stream_and_are_bounded() {
    let mut f = Fake::new((1 << 20, 100));
    f.limits.max_fds = 2;
    let ctx = f.ctx();
    let w = open(
        &ctx,
        f.me(),
        "/workspace/log",
        OpenMode::Write(WriteMode::Truncate),
    )
    .unwrap();
    assert_eq!(w, 3);
    assert_eq!(write_fd(&ctx, f.me(), w, b"abc"), Ok(3));
    assert_eq!(write_fd(&ctx, f.me(), w, b"def"), Ok(3));
    assert_eq!(
        read_fd(&ctx, f.me(), w, 10),
        Err(Errno::BadDescriptor { fd: w })
    );
    let m = open(
        &ctx,
        f.me(),
        "/mem/working/m",
        OpenMode::Write(WriteMode::Truncate),
    )
    .unwrap();
    assert_eq!(write_fd(&ctx, f.me(), m, b"12"), Ok(2));
    // The third is over the limit.
    assert!(matches!(
        open(&ctx, f.me(), "/workspace/log", OpenMode::Read),
        Err(Errno::Busy { .. })
    ));
    assert_eq!(close(f.me(), w), Ok(()));
    assert_eq!(close(f.me(), w), Err(Errno::BadDescriptor { fd: w }));
    let r = open(&ctx, f.me(), "/workspace/log", OpenMode::Read).unwrap();
    assert_eq!(read_fd(&ctx, f.me(), r, 4), Ok(b"abcd".to_vec()));
    assert_eq!(read_fd(&ctx, f.me(), r, 4), Ok(b"ef".to_vec()));
    assert_eq!(read_fd(&ctx, f.me(), r, 4), Ok(Vec::new()));
    assert_eq!(
        write_fd(&ctx, f.me(), r, b"x"),
        Err(Errno::BadDescriptor { fd: r })
    );
    assert!(fd_on_host(f.me(), r));
    assert!(!fd_on_host(f.me(), m));
    f.tree.close_all();
    assert_eq!(close(f.me(), m), Err(Errno::BadDescriptor { fd: m }));
    assert!(matches!(
        open(&ctx, f.me(), "/workspace", OpenMode::Read),
        Err(Errno::IsDirectory { .. })
    ));
}

#[test]
fn the_quota_refuses_a_write_before_anything_changes() {
    let f = Fake::new((200, 3));
    let cost = |p: &str, n: u64| n + MemFs::entry_cost(p);
    assert_eq!(f.write("/mem/working/a", &"x".repeat(40)), Ok(40));
    assert_eq!(f.usage(), (cost("/a", 40), 1));
    // Over the byte quota: refused in every writable mount, nothing written.
    for path in ["/mem/working/b", "/workspace/b", "/mem/episodic/b"] {
        assert!(
            matches!(
                f.write(path, &"y".repeat(120)),
                Err(Errno::QuotaExceeded { .. })
            ),
            "{path}"
        );
        assert!(f.read(path).is_err(), "{path}");
    }
    assert!(!f.ws().join("b").exists());
    assert_eq!(f.usage(), (cost("/a", 40), 1));
    // A descriptor's growth is charged too.
    let fd = open(
        &f.ctx(),
        f.me(),
        "/workspace/c",
        OpenMode::Write(WriteMode::Truncate),
    )
    .unwrap();
    assert!(matches!(
        write_fd(&f.ctx(), f.me(), fd, &[0; 120]),
        Err(Errno::QuotaExceeded { .. })
    ));
    assert_eq!(std::fs::metadata(f.ws().join("c")).unwrap().len(), 0);
    assert_eq!(write_fd(&f.ctx(), f.me(), fd, &[0; 10]), Ok(10));
    // The file quota: 3 files (a, c, d), a fourth is refused.
    assert_eq!(f.write("/workspace/d", "1"), Ok(1));
    assert!(matches!(
        f.write("/mem/semantic/e", "1"),
        Err(Errno::QuotaExceeded { .. })
    ));
    // Unlinking frees quota.
    assert_eq!(unlink(&f.ctx(), f.me(), "/mem/working/a"), Ok(()));
    assert_eq!(f.write("/mem/semantic/e", "1"), Ok(1));
}

#[test]
fn a_fifo_in_the_workspace_is_refused_without_being_opened() {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let f = Fake::new((1 << 20, 100));
    mknodat(
        CWD,
        f.ws().join("pipe"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::write(f.ws().join("plain"), "p").unwrap();
    let refused = Errno::Unsupported {
        what: "/workspace/pipe is a FIFO; the kernel serves only regular files and directories from the workspace".into(),
    };
    // A blocking open of a FIFO without a writer would hang this test.
    assert_eq!(f.read("/workspace/pipe"), Err(refused.clone()));
    assert_eq!(f.write("/workspace/pipe", "x"), Err(refused.clone()));
    for mode in [OpenMode::Read, OpenMode::Write(WriteMode::Append)] {
        assert_eq!(
            open(&f.ctx(), f.me(), "/workspace/pipe", mode),
            Err(refused.clone())
        );
    }
    assert_eq!(f.names("/workspace").unwrap(), ["plain"]);
    // Unlink opens nothing: it removes it.
    assert_eq!(unlink(&f.ctx(), f.me(), "/workspace/pipe"), Ok(()));
    assert!(!f.ws().join("pipe").exists());
}

#[test]
fn paths_leaving_the_workspace_or_the_agents_tree_are_refused() {
    let f = Fake::new((1 << 20, 100));
    let outside = f.dir.path().join("outside");
    std::os::unix::fs::symlink(&outside, f.ws().join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside", f.ws().join("rel")).unwrap();
    for path in ["/workspace/abs/secret", "/workspace/rel/secret"] {
        assert!(
            matches!(f.read(path), Err(Errno::PermissionDenied { ref rule, .. }) if rule == "workspace"),
            "{path}"
        );
        assert!(
            matches!(f.write(path, "pwned"), Err(Errno::PermissionDenied { .. })),
            "{path}"
        );
        assert!(
            matches!(
                unlink(&f.ctx(), f.me(), path),
                Err(Errno::PermissionDenied { .. })
            ),
            "{path}"
        );
        assert!(
            matches!(
                f.write(&format!("{path}-dir/new"), "x"),
                Err(Errno::PermissionDenied { .. })
            ),
            "{path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "host secret"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    // `..` is normalized within the agent's tree: it never reaches the host.
    assert_eq!(
        f.read("/workspace/../../outside/secret"),
        Err(not_found("/outside/secret"))
    );
    // Another agent's tree is refused as a trust matter.
    assert!(matches!(
        f.read("/agent/8/mem/working/x"),
        Err(Errno::PermissionDenied { ref rule, .. }) if rule == "trust"
    ));
    assert!(foreign_tree(f.me(), "/agent/8/workspace/x").is_some());
    assert!(foreign_tree(f.me(), "/agent/7/workspace/x").is_none());
    assert!(path_on_host(f.me(), "/workspace/x"));
    assert!(!path_on_host(f.me(), "/mem/working/x"));
}

#[test]
fn a_checkpoint_is_recorded_readable_and_restorable_within_its_budget() {
    let mut f = Fake::new((1 << 20, 100));
    f.write("/mem/working/a", "alpha").unwrap();
    f.write("/mem/working/d/b", "beta").unwrap();
    assert_eq!(checkpoint(&f.ctx(), f.me(), "test"), Ok(1));
    assert_eq!(
        f.audit.taken(),
        [(
            Some(ID),
            RecordEvent::MemoryCheckpoint {
                number: 1,
                files: 2,
                bytes: 9,
                trigger: "test".into()
            }
        )]
    );
    // Served read-only under /state/checkpoints.
    assert_eq!(f.names("/state/checkpoints").unwrap(), ["1"]);
    assert_eq!(f.read("/state/checkpoints/1/d/b").as_deref(), Ok("beta"));
    assert!(
        stat(&f.ctx(), f.me(), "/state/checkpoints/1/a")
            .unwrap()
            .read_only
    );
    // Restorable by a later agent from the agents dir.
    let agents = f.dir.path().join("agents");
    let cp = find_checkpoint(&agents, ID, None).unwrap();
    assert_eq!((cp.version, cp.agent, cp.number), (1, 7, 1));
    let restored = MemFs::restore(cp.files, 1 << 20, 100).unwrap();
    assert_eq!(restored.read("/a", 0, None), Ok(b"alpha".to_vec()));
    assert_eq!(
        find_checkpoint(&agents, ID, Some(2)).map(|c| c.number),
        Err(not_found(&format!(
            "checkpoint 2 ({})",
            agents.join("7/checkpoints/2").display()
        )))
    );
    assert!(matches!(
        find_checkpoint(&agents, AgentId(9), None),
        Err(Errno::NotFound { .. })
    ));
    // Over the budget: refused, nothing written, nothing recorded.
    f.limits.checkpoint_bytes = 4096;
    assert!(matches!(
        checkpoint(&f.ctx(), f.me(), "test"),
        Err(Errno::QuotaExceeded { .. })
    ));
    assert_eq!(f.names("/state/checkpoints").unwrap(), ["1"]);
    assert_eq!(f.audit.taken().len(), 1);
}

#[test]
fn an_unnamed_agents_persistent_memory_ends_with_it() {
    let f = Fake::new((1 << 20, 100));
    f.write("/mem/episodic/e", "keep?").unwrap();
    let fd = open(
        &f.ctx(),
        f.me(),
        "/mem/working/w",
        OpenMode::Write(WriteMode::Truncate),
    )
    .unwrap();
    assert_eq!(f.store.usage("agent:7").unwrap().1, 1);
    agent_ended(&f.ctx(), f.me());
    assert_eq!(f.store.usage("agent:7").unwrap(), (0, 0));
    assert_eq!(close(f.me(), fd), Err(Errno::BadDescriptor { fd }));
}

#[test]
fn a_rename_moves_a_file_within_each_writable_mount() {
    let f = Fake::new((1 << 20, 100));
    let mv = |a: &str, b: &str| rename(&f.ctx(), f.me(), a, b);
    for (a, b) in [
        ("/mem/working/a", "/mem/working/d/b"),
        ("/mem/episodic/a", "/mem/episodic/b"),
        ("/workspace/a", "/workspace/new/dir/b"),
    ] {
        f.write(a, "moved").unwrap();
        mv(a, b).unwrap();
        assert_eq!(f.read(b).unwrap(), "moved", "{a} -> {b}");
        assert!(matches!(f.read(a), Err(Errno::NotFound { .. })), "{a}");
    }
    assert_eq!(
        std::fs::read_to_string(f.ws().join("new/dir/b")).unwrap(),
        "moved"
    );
    // Replacing a file frees it from the quota.
    f.write("/mem/working/old", "0123456789").unwrap();
    f.write("/mem/working/new", "x").unwrap();
    let before = f.usage();
    mv("/mem/working/new", "/mem/working/old").unwrap();
    let freed = 10 + MemFs::entry_cost("/old");
    assert_eq!(f.usage(), (before.0 - freed, before.1 - 1));
    assert_eq!(f.read("/mem/working/old").unwrap(), "x");
}

#[test]
fn a_rename_across_mounts_or_into_a_read_only_mount_changes_nothing() {
    let f = Fake::new((1 << 20, 100));
    f.write("/mem/working/w", "w").unwrap();
    f.write("/workspace/a", "a").unwrap();
    let mv = |a: &str, b: &str| rename(&f.ctx(), f.me(), a, b);
    assert!(matches!(
        mv("/mem/working/w", "/workspace/w"),
        Err(Errno::Unsupported { ref what }) if what.contains("/mem/working to /workspace")
    ));
    for (a, b) in [
        ("/workspace/a", "/policy/security.md"),
        ("/policy/security.md", "/workspace/p"),
        ("/workspace/a", "/state/checkpoints/1"),
        ("/workspace/a", "/ipc/inbox/x"),
    ] {
        assert!(
            matches!(mv(a, b), Err(Errno::PermissionDenied { .. })),
            "{a} -> {b}"
        );
    }
    assert!(matches!(
        mv("/workspace/a", "/workspace"),
        Err(Errno::InvalidArgument { .. })
    ));
    assert_eq!(f.read("/mem/working/w").unwrap(), "w");
    assert_eq!(f.read("/workspace/a").unwrap(), "a");
    assert!(!f.ws().join("w").exists() && !f.ws().join("p").exists());
}

#[test]
fn a_longer_name_past_the_quota_is_refused_before_anything_moves() {
    let short = MemFs::entry_cost("/a") + 1;
    let f = Fake::new((short, 10));
    f.write("/mem/working/a", "x").unwrap();
    let long = format!("/mem/working/{}", "n".repeat(64));
    assert!(matches!(
        rename(&f.ctx(), f.me(), "/mem/working/a", &long),
        Err(Errno::QuotaExceeded { .. })
    ));
    assert_eq!(f.read("/mem/working/a").unwrap(), "x");
    assert_eq!(f.usage(), (short, 1));
}
