//! What a person reads is safe to read (DESIGN §1 invariant 8), proven with real jailed agents:
//! a hostile agent parks approval requests whose paths are full of terminal tricks and longer
//! than the display bound, up to its per-agent bound; an honest agent parks one; the operator's
//! `agentctl approvals` (any page size) still shows the honest request, every line escaped,
//! and approving it works. Agent rows (`ps`, `inspect`, `wait`) and the recorder views escape
//! what the agent controls too.

use std::process::Output;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::operator_modes::{hostile_path, TRICKS};
use agentos_tests::{wait_until, write_policy, TestKernel};
use serde_json::Value;

const GATED: &str = "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/gated/**\"]\n";

/// Whether `c` would act on a terminal instead of being shown (the same classes agentctl
/// escapes: C0 but newline, DEL, C1, format and bidi controls).
fn acts_on_a_terminal(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Asserts that `out` (stdout and stderr) holds nothing a terminal would act on.
fn assert_safe(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = std::str::from_utf8(bytes)
            .unwrap_or_else(|e| panic!("{what}: {stream} is not UTF-8 ({e})"));
        if let Some(c) = text.chars().find(|c| acts_on_a_terminal(*c)) {
            panic!(
                "{what}: {stream} holds a raw U+{:04X}:\n{}",
                c as u32,
                text.escape_debug()
            );
        }
    }
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).escape_debug()
    );
    assert_safe(what, &out);
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `agentctl approvals --json [ARGS]`: the rows.
fn approvals(k: &TestKernel, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["approvals", "--json"];
    a.extend_from_slice(args);
    let v: Value = serde_json::from_str(&ok("approvals --json", k.ctl(&a))).expect("json");
    v.as_array().expect("a list").clone()
}

fn log(k: &TestKernel, id: u64) -> String {
    String::from_utf8_lossy(&k.ctl(&["logs", &id.to_string()]).stdout).into_owned()
}

#[test]
fn a_flood_of_hostile_approvals_neither_spoofs_nor_hides_an_honest_request() {
    flood_against(TestKernel::start());
}

#[test]
fn a_flood_of_hostile_approvals_is_handled_by_an_unprivileged_kernel_too() {
    flood_against(TestKernel::start_unprivileged());
}

fn flood_against(k: TestKernel) {
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    // The default bound is 16: the 17th request is refused at once.
    let hostile = k.spawn(&policy, &["op-approval-flood", "17"]);
    let busy = k.wait_for_line(hostile, "call ");
    assert!(busy.contains("refused Busy"), "{busy}");
    assert!(
        busy.contains("already has 16 calls waiting for approval"),
        "{busy}"
    );
    wait_until("16 hostile calls parked", || {
        approvals(&k, &["--agent", &hostile.to_string()]).len() == 16
    });
    let honest = k.spawn(&policy, &["write", "/mem/working/gated/report"]);
    wait_until("the honest call parked", || {
        approvals(&k, &["--agent", &honest.to_string()]).len() == 1
    });

    // The default page holds both agents; a page of 2 or 3 still shows the honest request.
    for args in [&[][..], &["--limit", "3"][..], &["--limit", "2"][..]] {
        let rows = approvals(&k, args);
        assert!(
            rows.iter().any(|r| r["agent"] == honest),
            "approvals {args:?} hides the honest agent: {rows:?}"
        );
    }
    let rows = approvals(&k, &[]);
    assert_eq!(rows.len(), 17);
    let honest_row = rows.iter().find(|r| r["agent"] == honest).unwrap();
    assert_eq!(honest_row["resource"], "/mem/working/gated/report");
    // Every hostile resource is cut to the display bound and says how long it was; the JSON
    // carries the agent's characters (escaped the JSON way).
    for r in rows.iter().filter(|r| r["agent"] == hostile) {
        let res = r["resource"].as_str().unwrap();
        assert!(res.len() < 600, "{}", res.len());
        assert!(res.contains("bytes)"), "{res:?}");
        assert!(res.contains('\u{202e}') && res.contains('\x1b'), "{res:?}");
    }

    // The table: every line escaped, the honest row present, a short page says what is
    // missing and how to list it.
    let table = ok("approvals", k.ctl(&["approvals"]));
    assert!(table.contains("/mem/working/gated/report"), "{table}");
    assert!(table.contains("\\x1b[2K\\rID 1"), "{table}");
    let short = ok("approvals --limit 3", k.ctl(&["approvals", "--limit", "3"]));
    assert!(short.contains("/mem/working/gated/report"), "{short}");
    assert!(
        short.contains(&format!("agent {hostile}: 2 shown of 16")),
        "{short}"
    );
    // A page too short for every agent names the one it leaves out.
    let one = ok("approvals --limit 1", k.ctl(&["approvals", "--limit", "1"]));
    assert!(
        one.contains(&format!(
            "agent {honest}: 0 shown of 1; the rest: agentctl approvals --agent {honest} --limit 1"
        )),
        "{one}"
    );
    // --json says the same on stderr, and stays one valid JSON document on stdout.
    let json_short = k.ctl(&["approvals", "--json", "--limit", "3"]);
    assert_safe("approvals --json --limit 3", &json_short);
    assert!(String::from_utf8_lossy(&json_short.stderr).contains("2 shown of 16"));
    // Paging one agent's calls with --after reaches every one of them.
    let first = approvals(&k, &["--agent", &hostile.to_string(), "--limit", "10"]);
    let last = first.last().unwrap()["id"].as_u64().unwrap().to_string();
    let rest = approvals(
        &k,
        &[
            "--agent",
            &hostile.to_string(),
            "--after",
            &last,
            "--limit",
            "10",
        ],
    );
    assert_eq!((first.len(), rest.len()), (10, 6));

    // The recorder's views of the same requests are escaped too.
    let show = ok("recorder show", k.ctl(&["recorder", "show"]));
    assert!(
        show.contains("requested: file_write /mem/working/gated/"),
        "{show}"
    );
    assert!(show.contains("\\x1b[2K\\rID 1 agent 1"), "{show}");
    ok(
        "recorder show --json",
        k.ctl(&["recorder", "show", "--json"]),
    );
    ok(
        "recorder tail",
        k.ctl(&["recorder", "tail", "--lines", "100"]),
    );
    ok("recorder export", k.ctl(&["recorder", "export"]));
    // The refusal beyond the bound is recorded, with its reason.
    let refused = k.records().into_iter().any(|r| {
        r.agent.map(|a| a.0) == Some(hostile)
            && matches!(&r.event, RecordEvent::Syscall { decision, result: Err(agentos_syscalls::Errno::Busy { .. }), .. } if !decision.allowed)
    });
    assert!(refused, "the Busy refusal is not recorded");
    // Only the listing is cut: the recorder keeps each parked request's whole resource.
    let full: Vec<String> = (0..17).map(hostile_path).collect();
    let recorded = k
        .records()
        .into_iter()
        .filter(|r| {
            matches!(&r.event, RecordEvent::ApprovalRequested { resource, .. } if full.contains(resource))
        })
        .count();
    assert_eq!(recorded, 16);

    // Approving the honest request performs it.
    let id = honest_row["id"].as_u64().unwrap().to_string();
    ok("approve", k.ctl(&["approve", &id]));
    wait_until("the honest write answered", || {
        log(&k, honest).contains("wrote 4")
    });
    assert_eq!(
        approvals(&k, &["--agent", &hostile.to_string()]).len(),
        16,
        "the hostile calls are still parked"
    );
}

/// Runs `agentctl ARGS` on a pseudo-terminal (`script`), returning what the terminal got.
fn on_a_terminal(k: &TestKernel, args: &[&str]) -> Vec<u8> {
    let mut cmd = format!(
        "{} --state-dir {}",
        k.agentctl.display(),
        k.state_dir.display()
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs agentctl on a pseudo-terminal");
    assert!(out.status.success(), "{cmd}: {out:?}");
    out.stdout
}

#[test]
fn logs_escape_the_agents_output_on_a_terminal_only() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "plain", "strict", &[], "");
    let id = k.spawn(&policy, &["op-print"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let raw = format!("begin\t{TRICKS}end\n");
    // Piped: the agent's bytes as they are (its output is its output).
    let piped = k.ctl(&["logs", &id.to_string()]);
    assert_eq!(String::from_utf8_lossy(&piped.stdout), raw);
    // On a terminal: escaped, but for newline and tab (the pty turns \n into \r\n).
    let tty = String::from_utf8(on_a_terminal(&k, &["logs", &id.to_string()])).unwrap();
    assert!(
        !tty.chars()
            .any(|c| acts_on_a_terminal(c) && c != '\r' && c != '\t'),
        "{}",
        tty.escape_debug()
    );
    assert!(
        tty.starts_with("begin\t\\x1b[2K\\rID 1"),
        "{}",
        tty.escape_debug()
    );
    assert!(tty.contains("\\u{202e}"), "{}", tty.escape_debug());
    // --raw: the bytes, even on a terminal.
    let forced = on_a_terminal(&k, &["logs", "--raw", &id.to_string()]);
    assert!(forced.windows(4).any(|w| w == b"\x1b[2K"), "{forced:?}");
}

#[test]
fn agent_rows_and_exit_reasons_are_escaped() {
    let k = TestKernel::start();
    // Strict: a write outside the policy ends the agent with SIGPOLICY, and the reason quotes
    // the agent's path.
    let policy = write_policy(&k.work, "strict", "strict", &[], "");
    let path = format!("/workspace/{TRICKS}");
    let name = "evil\u{1b}]0;owned\u{7}\u{202e}";
    let id: u64 = ok(
        "spawn",
        k.ctl(&[
            "spawn",
            "--name",
            name,
            "--policy",
            policy.to_str().unwrap(),
            "--",
            k.agent_bin.to_str().unwrap(),
            "write",
            &path,
            "\u{1b}[2J\u{2066}",
        ]),
    )
    .trim()
    .parse()
    .expect("id");
    let wait = k.ctl(&["wait", &id.to_string()]);
    assert_safe("wait", &wait);
    let said = String::from_utf8_lossy(&wait.stdout).into_owned();
    assert!(said.contains("killed by SIGPOLICY"), "{said}");
    let inspect = ok("inspect", k.ctl(&["inspect", &id.to_string()]));
    assert!(inspect.contains("\\x1b[2K\\r"), "{inspect}");
    assert!(
        inspect.contains("evil\\x1b]0;owned\\x07\\u{202e}"),
        "{inspect}"
    );
    let ps = ok("ps -a", k.ctl(&["ps", "-a"]));
    assert!(ps.contains("\\x1b[2J\\u{2066}"), "{ps}");
    // JSON keeps the values (escaped the JSON way) and is safe on a terminal.
    let v: Value = serde_json::from_str(&ok(
        "inspect --json",
        k.ctl(&["inspect", &id.to_string(), "--json"]),
    ))
    .unwrap();
    assert_eq!(v["name"], name);
    ok("ps -a --json", k.ctl(&["ps", "-a", "--json"]));
    // An error that quotes the exit reason is one escaped line and its hint: the agent's
    // newline cannot start a line of its own.
    let kill = k.ctl(&["kill", &id.to_string()]);
    assert_eq!(kill.status.code(), Some(1));
    assert_safe("kill", &kill);
    let err = String::from_utf8_lossy(&kill.stderr).into_owned();
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("has already ended"), "{err}");
    ok(
        "recorder show",
        k.ctl(&["recorder", "show", "--agent", &id.to_string()]),
    );
}
