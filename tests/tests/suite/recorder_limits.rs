//! The flight recorder defends itself, driven by real jailed agents: a frame-sized field
//! never makes the log unverifiable, an agent over its share of the recorder is ended, and a
//! full disk under the state dir refuses calls (never performs them unrecorded) until the
//! recorder resumes by itself, recording the gap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::Syscall;
use agentos_tests::{is_root, wait_until, write_policy, TestKernel};
use serde_json::Value;

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

#[test]
fn a_frame_sized_exec_argument_and_mib_long_check_policy_strings_keep_the_log_verifiable() {
    big_fields(TestKernel::start());
}

#[test]
fn big_fields_keep_the_log_verifiable_with_an_unprivileged_kernel() {
    big_fields(TestKernel::start_unprivileged());
}

fn big_fields(k: TestKernel) {
    let policy = write_policy(&k.work, "big", "permissive", &[], "");
    let id = k.spawn(&policy, &["rec-big"]);
    k.wait_for_line(id, "big done");
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let other = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(other)["exit"]["code"], 0);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
    // The big calls are in the log, summarized; the other agent's records follow them.
    let records = k.records();
    let exec = records
        .iter()
        .find_map(|r| match &r.event {
            RecordEvent::Syscall {
                call: Syscall::Exec { argv, .. },
                ..
            } if r.agent.map(|a| a.0) == Some(id) => Some(argv.clone()),
            _ => None,
        })
        .expect("the exec record");
    assert_eq!(exec[0], "/bin/true");
    assert!(
        exec[1].len() < 4096 && exec[1].contains("bytes, blake3 "),
        "{}",
        exec[1].len()
    );
    let check = records.iter().any(|r| {
        matches!(&r.event, RecordEvent::Syscall { call: Syscall::CheckPolicy { resource, .. }, .. }
            if r.agent.map(|a| a.0) == Some(id) && resource.contains("bytes, blake3 "))
    });
    assert!(check, "the check_policy record");
    let out = k.ctl_ok(&["recorder", "show", "--agent", &other.to_string(), "--json"]);
    let shown: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        shown.len() >= 3,
        "the later agent's records are shown: {out}"
    );
}

const SHARE: u64 = 2 << 20;

#[test]
fn an_agent_over_its_recorder_share_is_ended_and_the_log_grows_by_at_most_the_share() {
    share(false);
}

#[test]
fn the_recorder_share_holds_with_an_unprivileged_kernel() {
    share(true);
}

fn share(unprivileged: bool) {
    let k = TestKernel::start_with(
        unprivileged,
        &["--recorder-share-bytes", &SHARE.to_string()],
    );
    let policy = write_policy(&k.work, "flood", "strict", &[], "");
    let before = dir_bytes(&k.recorder_dir());
    let id = k.spawn(&policy, &["rec-flood", "4000"]);
    let end = k.wait(id);
    assert_eq!(
        (&end["exit"]["kind"], &end["exit"]["signal"]),
        (&Value::from("killed"), &Value::from("SIGKILL")),
        "{end:#}"
    );
    let event = k.limit_event_before_exit(id, "recorder_bytes", &["syscall"]);
    assert!(
        matches!(&event, RecordEvent::SandboxLimit { limit, used, detail, .. }
            if *limit == SHARE && *used > SHARE && detail.contains("--recorder-share-bytes")),
        "{event:?}"
    );
    let grown = dir_bytes(&k.recorder_dir()) - before;
    assert!(
        grown <= SHARE + (256 << 10),
        "the recorder grew by {grown} bytes"
    );
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
}

/// A tmpfs mounted over a stopped kernel's state dir; lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `unprivileged`: owned by uid/gid 65534 (the unprivileged test kernel's).
    fn over(dir: &Path, bytes: u64, unprivileged: bool) -> Tmpfs {
        let owner = if unprivileged {
            ",uid=65534,gid=65534"
        } else {
            ""
        };
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700{owner}"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs over {}", dir.display());
        Tmpfs(dir.into())
    }

    /// Fills the filesystem to the last byte; then frees `leave` bytes of it.
    fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.0.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_low_then_full_disk_refuses_calls_and_spawns_and_the_recorder_resumes_by_itself() {
    disk(false);
}

#[test]
fn a_full_disk_is_survived_by_an_unprivileged_kernel() {
    disk(true);
}

fn disk(unprivileged: bool) {
    assert!(
        is_root(),
        "this test mounts a tmpfs for the state dir: run it as root (CI does)"
    );
    let k = TestKernel::start_with(unprivileged, &[]);
    k.ctl_ok(&["kernel", "stop"]);
    // Over the recorder dir only: the kernel's log and the agent's output stay readable.
    let fs = Tmpfs::over(&k.recorder_dir(), 64 << 20, unprivileged);
    let min_free = (16u64 << 20).to_string();
    let mut start = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&k.agentctl);
        c
    } else {
        Command::new(&k.agentctl)
    };
    let out = start
        .arg("--state-dir")
        .arg(&k.state_dir)
        .args(["kernel", "start", "--min-free-bytes", &min_free])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kernel restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy = write_policy(&k.work, "poll", "strict", &[], "");
    let id = k.spawn(&policy, &["rec-poll"]);
    k.wait_for_line(id, "answer 1 ok");
    // Low disk: calls are refused with QuotaExceeded naming the watermark, and recorded.
    let low = fs.fill("filler-low", 4 << 20);
    let line = k.wait_for_line(id, "answer 2 ");
    assert!(
        line.contains("err QuotaExceeded") && line.contains("low-disk watermark of 16777216"),
        "{line}"
    );
    let out = k.ctl(&[
        "spawn",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        k.agent_bin.to_str().unwrap(),
        "echo",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("low-disk watermark"),
        "{err}"
    );
    // `kernel status` says why the kernel cannot work, as `/healthz` does.
    let status: serde_json::Value =
        serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).unwrap();
    assert_eq!(status["healthy"], false, "{status:#}");
    assert!(
        status["health"][0]
            .as_str()
            .is_some_and(|h| h.starts_with("flight recorder:") && h.contains("watermark")),
        "{status:#}"
    );
    // Full disk: the recorder cannot write; calls go on being refused, now unrecorded and
    // unperformed.
    let full = fs.fill("filler-full", 0);
    let line = k.wait_for_line(id, "answer 3 ");
    assert!(line.contains("err Internal"), "{line}");
    wait_until("the kernel to log the failure", || {
        std::fs::read_to_string(k.state_dir.join("kernel.log"))
            .is_ok_and(|l| l.contains("flight recorder cannot write"))
    });
    // Space returns: no restart, no operator: the recorder resumes and calls are served.
    std::fs::remove_file(&full).unwrap();
    std::fs::remove_file(&low).unwrap();
    // (A rollback can free a page for a gap record before the disk fills again, so the
    // answers in between may alternate: wait for the first `ok` after `answer 3`.)
    let served_again = || {
        let log = k.ctl_ok(&["logs", &id.to_string()]);
        log.lines()
            .skip_while(|l| !l.starts_with("answer 3 "))
            .any(|l| l.starts_with("answer ") && l.ends_with(" ok"))
    };
    let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("calls served again", served_again)
    }));
    if resumed.is_err() {
        let log = std::fs::read_to_string(k.state_dir.join("kernel.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "calls were not served again; the agent's log:\n{}\nthe kernel's log ends:\n{}",
            k.ctl_ok(&["logs", &id.to_string()]),
            tail.join("\n")
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).unwrap();
    assert_eq!(
        status["healthy"], true,
        "healthy again once space returns: {status:#}"
    );
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
    let records = k.records();
    let refused = records
        .iter()
        .filter(|r| {
            matches!(&r.event, RecordEvent::Syscall { result: Err(agentos_syscalls::Errno::QuotaExceeded { what }), .. }
                if what.contains("low-disk watermark"))
        })
        .count();
    assert!(refused > 0, "the refused calls are recorded");
    assert!(
        records.iter().any(
            |r| matches!(&r.event, RecordEvent::RecorderResumed { refused, .. } if *refused > 0)
        ),
        "the gap is recorded"
    );
    drop(k);
    drop(fs);
}
