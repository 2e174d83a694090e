//! The flight recorder on real logs written by real agents through a real kernel: every kind
//! of tampering is detected by `agentctl recorder verify` at the right record, and a kernel
//! SIGKILLed at random moments loses no answered syscall (in `always` durability not even to
//! a power cut; in the default `batch`, where the kernel answers a cheap call on the
//! connection's own task, not to the kernel's death).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agentos_kernel::recorder::format::{
    decode_record, parse_frame, segment_name, HEADER_LEN, TYPE_RECORD, VERSION,
};
use agentos_kernel::recorder::{Record, RecordEvent};
use agentos_syscalls::Syscall;
use agentos_tests::{write_policy, TestKernel};
use serde_json::Value;

/// One frame of a segment file.
#[derive(Debug)]
struct Frame {
    offset: usize,
    len: usize,
    record: Option<Record>,
}

fn frames(path: &Path) -> Vec<Frame> {
    let b = std::fs::read(path).unwrap();
    let mut off = HEADER_LEN;
    let mut out = Vec::new();
    while off < b.len() {
        let f = parse_frame(&b[off..], VERSION).unwrap();
        let record = (f.ty == TYPE_RECORD).then(|| decode_record(VERSION, &f).unwrap());
        out.push(Frame {
            offset: off,
            len: f.len,
            record,
        });
        off += f.len;
    }
    out
}

/// A log with three segments (three kernel runs), each with agents' syscalls, sealed.
fn real_log() -> (TestKernel, u64) {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "rec", "strict", &[], "");
    for round in 0..3 {
        if round > 0 {
            k.restart(&[]);
        }
        for _ in 0..2 {
            let id = k.spawn(&policy, &["echo"]);
            assert_eq!(k.wait(id)["exit"]["code"], 0);
        }
        k.ctl_ok(&["kernel", "stop"]);
    }
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
    let records = v["records"].as_u64().unwrap();
    (k, records)
}

/// A copy of the kernel's recorder under a fresh state dir.
struct Copy {
    _root: tempfile::TempDir,
    state: PathBuf,
}

impl Copy {
    fn of(k: &TestKernel) -> Copy {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let dir = state.join("recorder");
        std::fs::create_dir_all(&dir).unwrap();
        // The files (segments, key, HEAD, checkpoint); not `tile/`, which `verify` does not
        // read (suite::tlog tampers with tiles).
        for e in std::fs::read_dir(k.recorder_dir()).unwrap().flatten() {
            if e.path().is_dir() {
                continue;
            }
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        Copy { _root: root, state }
    }

    fn seg(&self, n: u32) -> PathBuf {
        self.state.join("recorder").join(segment_name(n))
    }

    fn edit(&self, n: u32, f: impl FnOnce(&mut Vec<u8>)) {
        let mut b = std::fs::read(self.seg(n)).unwrap();
        f(&mut b);
        std::fs::write(self.seg(n), b).unwrap();
    }

    fn verify(&self, k: &TestKernel) -> (i32, Value) {
        let out = Command::new(&k.agentctl)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["recorder", "verify", "--json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), v)
    }
}

/// Asserts verify exits with `code` and names record `seq`.
fn assert_detected(k: &TestKernel, c: &Copy, code: i32, seq: u64, what: &str) {
    let (got, v) = c.verify(k);
    assert_eq!(got, code, "{what}: {v:#}");
    assert_eq!(v["problem"]["seq"].as_u64(), Some(seq), "{what}: {v:#}");
}

/// The first `write` syscall record in segment 2 and its frame index.
fn a_write(frames: &[Frame]) -> (usize, u64) {
    frames
        .iter()
        .enumerate()
        .find_map(|(i, f)| match &f.record {
            Some(Record {
                seq,
                event:
                    RecordEvent::Syscall {
                        call: Syscall::Write { .. },
                        ..
                    },
                ..
            }) => Some((i, *seq)),
            _ => None,
        })
        .unwrap()
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

#[test]
fn recorder_every_kind_of_tampering_is_detected_at_the_right_record() {
    let (k, total) = real_log();
    let fr = frames(&k.recorder_dir().join(segment_name(2)));
    let (i, seq) = a_write(&fr);
    let Frame { offset, len, .. } = fr[i];

    // A byte of a payload (the written path).
    let c = Copy::of(&k);
    c.edit(2, |b| {
        let at = offset + find(&b[offset..offset + len], b"/mem/working") + 6;
        b[at] ^= 0x20;
    });
    assert_detected(&k, &c, 1, seq, "flipped payload byte");

    // A byte of the decision (its rule name).
    let c = Copy::of(&k);
    c.edit(2, |b| {
        let at = offset + find(&b[offset..offset + len], b"working-rw") + 2;
        b[at] ^= 0x01;
    });
    assert_detected(&k, &c, 1, seq, "flipped decision byte");

    // A byte of the chain hash.
    let c = Copy::of(&k);
    c.edit(2, |b| b[offset + len - 4 - 10] ^= 0x80);
    assert_detected(&k, &c, 1, seq, "flipped chain byte");

    // A record deleted in the middle.
    let c = Copy::of(&k);
    c.edit(2, |b| {
        b.drain(offset..offset + len);
    });
    assert_detected(&k, &c, 1, seq, "deleted record");

    // Two records reordered.
    let c = Copy::of(&k);
    c.edit(2, |b| {
        let next = &fr[i + 1];
        let mut swapped = b[next.offset..next.offset + next.len].to_vec();
        swapped.extend_from_slice(&b[offset..offset + len]);
        b.splice(offset..next.offset + next.len, swapped);
    });
    assert_detected(&k, &c, 1, seq, "reordered records");

    // The last three records (and the shutdown checkpoint) cut off: shorter than HEAD.
    let c = Copy::of(&k);
    let last = frames(&c.seg(3));
    let cut = last
        .iter()
        .filter(|f| f.record.is_some())
        .nth_back(2)
        .unwrap();
    let cut_seq = cut.record.as_ref().unwrap().seq;
    assert_eq!(cut_seq, total - 3);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(c.seg(3))
        .unwrap();
    f.set_len(cut.offset as u64).unwrap();
    assert_detected(&k, &c, 2, cut_seq, "deleted last records");

    // A whole segment deleted: in the middle (tampering), at the end (truncation).
    let first_of_2 = fr.iter().find_map(|f| f.record.as_ref()).unwrap().seq;
    let c = Copy::of(&k);
    std::fs::remove_file(c.seg(2)).unwrap();
    assert_detected(&k, &c, 1, first_of_2, "deleted middle segment");
    let first_of_3 = last.iter().find_map(|f| f.record.as_ref()).unwrap().seq;
    let c = Copy::of(&k);
    std::fs::remove_file(c.seg(3)).unwrap();
    assert_detected(&k, &c, 2, first_of_3, "deleted last segment");

    // The key replaced by another one.
    let c = Copy::of(&k);
    let dir = c.state.join("recorder");
    std::fs::remove_file(dir.join("key")).unwrap();
    std::fs::remove_file(dir.join("key.pub")).unwrap();
    agentos_kernel::recorder::key::load_or_create(&dir).unwrap();
    let (code, v) = c.verify(&k);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["problem"]["seq"].as_u64(), Some(0), "{v:#}");
    assert!(
        v["problem"]["what"].as_str().unwrap().contains("key"),
        "{v:#}"
    );

    // The untouched copy still verifies.
    assert_eq!(Copy::of(&k).verify(&k).0, 0);
}

#[test]
fn recorder_show_tail_and_export_read_the_log() {
    let (k, total) = real_log();
    let out = k.ctl_ok(&["recorder", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, total);
    assert_eq!(lines[0]["seq"], 0);
    assert!(lines[0]["event"]["KernelStart"].is_object(), "{}", lines[0]);
    let agent = lines.iter().find_map(|l| l["agent"].as_u64()).unwrap();
    let shown = k.ctl_ok(&[
        "recorder",
        "show",
        "--agent",
        &agent.to_string(),
        "--since",
        "1",
        "--json",
    ]);
    assert!(shown.lines().count() >= 2);
    for l in shown.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["agent"].as_u64(), Some(agent));
    }
    // --since takes durations and RFC 3339 times as well as sequence numbers.
    let count = |args: &[&str]| {
        k.ctl_ok(&[&["recorder"][..], args].concat())
            .lines()
            .count() as u64
    };
    assert_eq!(count(&["show", "--since", "1h", "--json"]), total);
    assert_eq!(
        count(&["show", "--since", "2000-01-01T00:00:00Z", "--json"]),
        total
    );
    assert_eq!(
        count(&["show", "--since", "2999-01-01T00:00:00+02:00", "--json"]),
        0
    );
    assert_eq!(count(&["tail", "--since", "2999-01-01", "--json"]), 0);
    assert_eq!(
        count(&["tail", "-n", "1000", "--since", "10m", "--json"]),
        total
    );
    assert_eq!(
        count(&["show", "--since", &(total - 2).to_string(), "--json"]),
        2
    );
    let bad = k.ctl(&["recorder", "show", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    let tail = k.ctl_ok(&["recorder", "tail", "-n", "3", "--json"]);
    let seqs: Vec<u64> = tail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [total - 3, total - 2, total - 1]);
}

/// A tiny deterministic generator for kill points.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn recorder_survives_sigkill_in_always_mode_without_losing_an_answered_syscall() {
    sigkill_rounds(&["--durability", "always"], 20);
}

/// The default durability (`batch`), whose appends are written on the kernel's own thread:
/// a working-memory `Write` is judged, performed, recorded and answered on the connection's
/// task without a wait, and its record is in the log file before its answer leaves, so a
/// SIGKILL of the kernel at any moment loses none the agent saw answered.
#[test]
fn recorder_survives_sigkill_in_batch_mode_without_losing_an_answered_syscall() {
    sigkill_rounds(&["--durability", "batch"], 5);
}

fn sigkill_rounds(flags: &[&str], rounds: usize) {
    let k = TestKernel::start_with(false, flags);
    let policy = write_policy(&k.work, "spin", "strict", &[], "");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut answered_total = 0usize;
    for round in 0..rounds {
        if round > 0 {
            k.restart(flags);
            // The previous round's agent: every counter value it saw answered is recorded.
        }
        let id = k.spawn(&policy, &["spin", "print"]);
        std::thread::sleep(Duration::from_millis(20 + rng.below(120)));
        k.kill_kernel();
        let output = std::fs::read_to_string(
            k.state_dir
                .join("agents")
                .join(id.to_string())
                .join("output.log"),
        )
        .unwrap_or_default();
        let answered: Vec<u64> = output
            .lines()
            .filter_map(|l| l.strip_prefix("n ")?.parse().ok())
            .collect();
        let recorded: std::collections::BTreeSet<u64> = k
            .records()
            .into_iter()
            .filter(|r| r.agent.map(|a| a.0) == Some(id))
            .filter_map(|r| match r.event {
                RecordEvent::Syscall {
                    call: Syscall::Write { data, .. },
                    result: Ok(_),
                    ..
                } => Some(u64::from_le_bytes(data.try_into().ok()?)),
                _ => None,
            })
            .collect();
        for n in &answered {
            assert!(
                recorded.contains(n),
                "round {round} (seed {seed}): counter {n} was answered but is not in the log"
            );
        }
        eprintln!(
            "round {round}: {} answered, {} recorded",
            answered.len(),
            recorded.len()
        );
        answered_total += answered.len();
    }
    k.restart(flags);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "seed {seed}: {v:#}");
    assert!(answered_total > 0, "no agent ever got an answer");
    // Every restart found the log whole (or recovered a torn tail, recorded as such), in
    // both modes: in `batch` a kernel killed before its first checkpoint's HEAD was written
    // leaves a checkpoint no HEAD names, which the next open publishes before it can add a
    // second (never read as a deleted HEAD).
    let records = k.records();
    let broken: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.event, RecordEvent::RecorderBroken { .. }))
        .collect();
    assert!(broken.is_empty(), "seed {seed}: {broken:#?}");
    let starts = records
        .iter()
        .filter(|r| matches!(r.event, RecordEvent::KernelStart { .. }))
        .count();
    assert_eq!(starts, rounds + 1);
}

#[test]
fn replay_what_if_lists_every_decision_another_policy_changes() {
    let (k, _) = real_log();
    let writes = k
        .records()
        .iter()
        .filter(|r| {
            matches!(
                &r.event,
                RecordEvent::Syscall {
                    call: Syscall::Write { .. },
                    ..
                }
            )
        })
        .count();
    assert!(writes > 0);
    // The same policy without the write rule: every recorded write would be denied.
    let no_writes = k.work.join("no-writes.md");
    let text = std::fs::read_to_string(k.work.join("rec.md"))
        .unwrap()
        .replace(
            "action: file_write\n    effect: allow",
            "action: file_write\n    effect: deny",
        );
    std::fs::write(&no_writes, text).unwrap();
    let out = k.ctl_ok(&[
        "replay",
        "what-if",
        "--policy",
        no_writes.to_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["counts"]["allow → deny"].as_u64(),
        Some(writes as u64),
        "{v:#}"
    );
    assert_eq!(v["changes"].as_array().unwrap().len(), writes, "{v:#}");
    assert_eq!(v["changes"][0]["syscall"], "write");
    // A tampered log is refused.
    let c = Copy::of(&k);
    c.edit(2, |b| {
        let at = HEADER_LEN + 20;
        b[at] ^= 1;
    });
    let out = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&c.state)
        .args(["replay", "what-if", "--policy", no_writes.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
}
