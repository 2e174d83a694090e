//! Semantics of `decide`, one test per rule of DESIGN §5, plus property tests.

use super::*;
use agentos_syscalls::Signal;
use proptest::prelude::*;

const HEAD: &str = "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP]\npolicies:\n";

fn policy(rules: &str) -> Policy {
    Policy::parse("security.md", &format!("{HEAD}{rules}")).unwrap_or_else(|e| panic!("{e}"))
}

fn req<'a>(action: &'a str, resource: &'a str, access: Access) -> Request<'a> {
    Request {
        action,
        resource,
        access,
        bytes: 0,
        now_ms: 0,
    }
}

fn allowed(p: &Policy, action: &str, resource: &str, access: Access) -> bool {
    p.decide(&req(action, resource, access)).allowed
}

#[test]
fn no_rule_means_deny_with_default_reason() {
    let p = policy("  - {action: file_read, effect: allow}\n");
    let d = p.decide(&req("file_write", "/mem/x", Access::Write));
    assert!(!d.allowed);
    assert_eq!(d.rule, None);
    assert_eq!(
        d.reason,
        "no rule allows file_write on /mem/x (no allow rule for action `file_write`)"
    );
}

#[test]
fn default_deny_names_the_nearest_miss() {
    let p = policy(
        "  - name: write-src\n    action: file_write\n    effect: allow\n    constraints: {paths: [\"/workspace/src/**\"]}\n",
    );
    let d = p.decide(&req("file_write", "/mem/x", Access::Write));
    assert_eq!(
        d.reason,
        "no rule allows file_write on /mem/x; nearest: rule `write-src` (security.md:4): path not under /workspace/src/**"
    );
}

#[test]
fn allow_reports_rule_and_flags() {
    let p = policy(
        "  - name: w\n    action: file_write\n    effect: allow\n    requires_approval: true\n    rate_limit: 10/minute\n    constraints: {log: true, dry_run: true}\n",
    );
    let d = p.decide(&req("file_write", "/a", Access::Write));
    assert!(d.allowed);
    let r = d.rule.unwrap();
    assert_eq!(r.to_string(), "w (security.md:4)");
    assert!(d.requires_approval && d.log && d.dry_run);
    assert_eq!(
        d.rate_limit,
        Some((
            0,
            Rate {
                count: 10,
                period: Period::Minute
            }
        ))
    );
}

#[test]
fn deny_overrides_allow_in_any_order() {
    let allow = "  - {name: a, action: file_read, effect: allow}\n";
    let deny =
        "  - {name: d, action: file_read, effect: deny, constraints: {paths: [\"/secret/**\"]}}\n";
    for p in [
        policy(&format!("{allow}{deny}")),
        policy(&format!("{deny}{allow}")),
    ] {
        let d = p.decide(&req("file_read", "/secret/k", Access::Read));
        assert!(!d.allowed);
        assert_eq!(d.rule.unwrap().id, "d");
        assert_eq!(d.reason, "file_read on /secret/k is denied");
        assert!(allowed(&p, "file_read", "/public/k", Access::Read));
    }
}

#[test]
fn wildcard_action_matches_everything() {
    let p = policy("  - {action: \"*\", effect: allow, constraints: {log: true}}\n");
    assert!(allowed(&p, "send_email", "bob", Access::Write));
    let d = p.decide(&req("anything", "x", Access::Read));
    assert!(d.log);
    assert_eq!(d.rule.unwrap().id, "policies[0]");
}

#[test]
fn read_only_mode_admits_only_reads() {
    let p = policy("  - {action: database_query, effect: allow, mode: read_only}\n  - {action: file_read, effect: allow, mode: read_write}\n");
    assert!(allowed(&p, "database_query", "select", Access::Read));
    let d = p.decide(&req("database_query", "drop", Access::Write));
    assert!(!d.allowed);
    assert!(
        d.reason.contains("rule is read_only and the call writes"),
        "{}",
        d.reason
    );
    assert!(allowed(&p, "file_read", "/a", Access::Write));
}

#[test]
fn path_globs_respect_separators() {
    let p = policy("  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/*\"]}}\n  - {action: file_write, effect: allow, constraints: {paths: [\"/workspace/**\"]}}\n");
    assert!(allowed(&p, "file_read", "/workspace/a", Access::Read));
    assert!(!allowed(&p, "file_read", "/workspace/a/b", Access::Read));
    assert!(allowed(&p, "file_write", "/workspace/a/b", Access::Write));
    assert!(!allowed(&p, "file_write", "/workspacefoo/a", Access::Write));
}

#[test]
fn commands_match_the_program() {
    let p = policy("  - {action: code_execution, effect: allow, constraints: {commands: [git, \"/usr/bin/py*\"]}}\n");
    assert!(allowed(&p, "code_execution", "git status", Access::Write));
    assert!(allowed(
        &p,
        "code_execution",
        "/usr/bin/python3 -c 1",
        Access::Write
    ));
    assert!(!allowed(&p, "code_execution", "rm -rf /", Access::Write));
    assert!(!allowed(&p, "code_execution", "gitx", Access::Write));
    let d = p.decide(&req("code_execution", "   ", Access::Write));
    assert!(
        !d.allowed && d.reason.contains("no command given"),
        "{}",
        d.reason
    );
}

#[test]
fn hosts_match_exact_and_suffix() {
    let p = policy("  - {action: api_call, effect: allow, constraints: {hosts: [api.github.com, \"*.example.com\"]}}\n");
    assert!(allowed(
        &p,
        "api_call",
        "https://api.github.com/repos",
        Access::Read
    ));
    assert!(allowed(&p, "api_call", "API.GITHUB.COM", Access::Read));
    assert!(allowed(
        &p,
        "api_call",
        "https://a.b.example.com:8443/x",
        Access::Read
    ));
    assert!(!allowed(
        &p,
        "api_call",
        "https://example.com/",
        Access::Read
    ));
    assert!(!allowed(
        &p,
        "api_call",
        "https://evilexample.com/",
        Access::Read
    ));
    assert!(!allowed(
        &p,
        "api_call",
        "https://api.github.com.evil.io/",
        Access::Read
    ));
}

#[test]
fn unevaluable_deny_rule_denies() {
    let p = policy("  - {action: api_call, effect: allow}\n  - {name: no-evil, action: api_call, effect: deny, constraints: {hosts: [evil.io]}}\n");
    assert!(allowed(&p, "api_call", "https://good.io/", Access::Read));
    assert!(!allowed(&p, "api_call", "https://evil.io/", Access::Read));
    let d = p.decide(&req("api_call", "", Access::Read));
    assert!(!d.allowed);
    assert_eq!(d.rule.unwrap().id, "no-evil");
    assert!(
        d.reason.starts_with("cannot evaluate the rule"),
        "{}",
        d.reason
    );
}

#[test]
fn peers_are_listed_names() {
    let p =
        policy("  - {action: ipc_send, effect: allow, constraints: {peers: [planner, \"7\"]}}\n");
    assert!(allowed(&p, "ipc_send", "planner", Access::Write));
    assert!(allowed(&p, "ipc_send", "7", Access::Write));
    assert!(!allowed(&p, "ipc_send", "coder", Access::Write));
}

#[test]
fn max_bytes_bounds_allow_and_triggers_deny() {
    let p = policy("  - {action: file_write, effect: allow, constraints: {max_bytes: 1KiB}}\n");
    let mut r = req("file_write", "/a", Access::Write);
    r.bytes = 1024;
    assert!(p.decide(&r).allowed);
    r.bytes = 1025;
    let d = p.decide(&r);
    assert!(
        !d.allowed && d.reason.contains("1025 bytes is over max_bytes 1024"),
        "{}",
        d.reason
    );

    let p = policy("  - {action: file_write, effect: allow}\n  - {action: file_write, effect: deny, constraints: {max_bytes: 10}}\n");
    r.bytes = 10;
    assert!(p.decide(&r).allowed);
    r.bytes = 11;
    assert!(!p.decide(&r).allowed);
}

#[test]
fn deny_patterns_block_allow_and_trigger_deny() {
    let p = policy("  - {name: rd, action: file_read, effect: allow, constraints: {deny_patterns: ['\\.env$']}}\n");
    assert!(allowed(&p, "file_read", "/w/a.rs", Access::Read));
    let d = p.decide(&req("file_read", "/w/.env", Access::Read));
    assert!(!d.allowed);
    assert!(
        d.reason.contains("deny pattern `\\.env$` matches /w/.env"),
        "{}",
        d.reason
    );

    let p = policy("  - {action: file_read, effect: allow}\n  - {name: secrets, action: file_read, effect: deny, constraints: {deny_patterns: [secret]}}\n");
    assert!(allowed(&p, "file_read", "/w/a", Access::Read));
    let d = p.decide(&req("file_read", "/w/secret.txt", Access::Read));
    assert!(!d.allowed);
    assert_eq!(d.rule.unwrap().id, "secrets");
}

#[test]
fn flags_are_or_ed_and_strictest_rate_wins() {
    let p = policy("  - {action: \"*\", effect: allow, rate_limit: 1/second, constraints: {log: true}}\n  - {action: api_call, effect: allow, requires_approval: true, rate_limit: 100/hour}\n");
    let d = p.decide(&req("api_call", "x.io", Access::Read));
    assert!(d.allowed && d.log && d.requires_approval);
    assert_eq!(d.rule.unwrap().id, "policies[1]", "exact action beats *");
    assert_eq!(
        d.rate_limit,
        Some((
            1,
            Rate {
                count: 100,
                period: Period::Hour
            }
        ))
    );
}

#[test]
fn signals_non_maskable_always_allowed() {
    let p = policy("  []\n");
    assert!(p.signal_allowed(Signal::Kill));
    assert!(p.signal_allowed(Signal::Policy));
    assert!(p.signal_allowed(Signal::Trust));
    assert!(p.signal_allowed(Signal::Stop));
    assert!(!p.signal_allowed(Signal::Term));
    assert!(!p.signal_allowed(Signal::Usr1));
}

#[test]
fn digest_path_mode_sandbox() {
    let text = format!("{HEAD}  []\nsandbox:\n  read_only: [/opt/tools]\n  limits: {{address_space: 512MiB, processes: 64, file_size: 1000000, memory: 256MiB, scratch: 8MiB}}\n");
    let p = Policy::parse("x/security.md", &text).unwrap();
    assert_eq!(p.sandbox().limits.scratch, Some(8 << 20));
    assert_eq!(p.digest(), *blake3::hash(text.as_bytes()).as_bytes());
    assert_eq!(p.path(), "x/security.md");
    assert_eq!(p.mode(), Mode::Strict);
    assert_eq!(p.sandbox().read_only, vec!["/opt/tools".to_string()]);
    assert_eq!(p.sandbox().limits.address_space, Some(512 << 20));
    assert_eq!(p.sandbox().limits.processes, Some(64));
    assert_eq!(p.sandbox().limits.memory, Some(256 << 20));
    assert_eq!(p.sandbox().limits.open_files, None);
    assert_eq!(p.origin(), Origin::WholeFile);
}

#[test]
fn sandbox_cpu_is_a_quota_in_thousandths_of_a_cpu() {
    for (value, millis) in [("0.5", 500), ("2", 2000), ("0.01", 10), ("1.25", 1250)] {
        let text = format!("{HEAD}  []\nsandbox:\n  limits: {{cpu: {value}}}\n");
        let p = Policy::parse("x/security.md", &text).unwrap();
        assert_eq!(p.sandbox().limits.cpu_millis, Some(millis), "cpu: {value}");
    }
    let text = format!("{HEAD}  []\nsandbox:\n  limits: {{memory: 1GiB}}\n");
    let p = Policy::parse("x/security.md", &text).unwrap();
    assert_eq!(p.sandbox().limits.cpu_millis, None);
}

#[test]
fn policy_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn load_reads_a_file_and_reports_io_errors() {
    let e = Policy::load(std::path::Path::new("/nonexistent/security.md")).unwrap_err();
    assert!(matches!(e, PolicyError::Read { .. }));
    assert_eq!(e.line(), 0);
    assert_eq!(
        e.to_string(),
        "/nonexistent/security.md: cannot read the policy file"
    );
}

#[test]
fn error_accessors() {
    let e = Policy::parse(
        "s.md",
        "kernel: {version: \"1.0\", mode: strickt}\nsignals: []\npolicies: []\n",
    )
    .unwrap_err();
    assert_eq!((e.line(), e.column()), (1, 32));
    assert_eq!(
        e.message(),
        "invalid kernel.mode `strickt`: expected strict, permissive, or audit"
    );
    assert_eq!(e.help(), Some("did you mean `strict`?"));
}

fn arb_rule() -> impl Strategy<Value = String> {
    let action = prop::sample::select(vec!["file_read", "file_write", "*"]);
    let effect = prop::sample::select(vec!["allow", "deny"]);
    let mode = prop::sample::select(vec!["", ", mode: read_only", ", mode: read_write"]);
    let cons = prop::sample::select(vec![
        "",
        ", constraints: {paths: [\"/a/**\"]}",
        ", constraints: {paths: [\"/b/*\"]}",
        ", constraints: {max_bytes: 10}",
        ", constraints: {deny_patterns: [x]}",
        ", constraints: {hosts: [a.io]}",
    ]);
    (action, effect, mode, cons)
        .prop_map(|(a, e, m, c)| format!("  - {{action: \"{a}\", effect: {e}{m}{c}}}\n"))
}

fn arb_req() -> impl Strategy<Value = (String, String, bool, u64)> {
    (
        prop::sample::select(vec!["file_read", "file_write", "api_call"]),
        prop::sample::select(vec![
            "/a/x",
            "/a/b/x",
            "/b/x",
            "/b/x/y",
            "/c",
            "https://a.io/",
            "",
        ]),
        any::<bool>(),
        0u64..20,
    )
        .prop_map(|(a, r, w, b)| (a.to_string(), r.to_string(), w, b))
}

proptest! {
    #[test]
    fn deny_overrides_for_random_rule_sets(rules in prop::collection::vec(arb_rule(), 0..8), (action, resource, write, bytes) in arb_req()) {
        let p = policy(&if rules.is_empty() { "  []\n".to_string() } else { rules.concat() });
        let access = if write { Access::Write } else { Access::Read };
        let r = Request { action: &action, resource: &resource, access, bytes, now_ms: 0 };
        let d = p.decide(&r);
        // Re-check every deny rule on its own: if any single deny rule, alone with an
        // allow-all, denies this request, the full decision must deny.
        for rule in p.rules().iter().filter(|r| r.effect == Effect::Deny) {
            let alone = policy(&format!("  - {{action: \"*\", effect: allow}}\n{}", rules[rule.index]));
            if !alone.decide(&r).allowed {
                prop_assert!(!d.allowed, "deny rule {} matched but decision allowed", rule.id);
            }
        }
        // And an allowed decision always names an allow rule.
        if d.allowed {
            let id = d.rule.clone().map(|r| r.id);
            prop_assert!(p.rules().iter().any(|r| Some(&r.id) == id.as_ref() && r.effect == Effect::Allow));
        }
        // Order never matters.
        let mut rev = rules.clone();
        rev.reverse();
        let q = policy(&if rev.is_empty() { "  []\n".to_string() } else { rev.concat() });
        prop_assert_eq!(q.decide(&r).allowed, d.allowed);
    }

    #[test]
    fn decide_is_pure(rules in prop::collection::vec(arb_rule(), 0..8), (action, resource, write, bytes) in arb_req(), now in any::<u64>()) {
        let p = policy(&if rules.is_empty() { "  []\n".to_string() } else { rules.concat() });
        let access = if write { Access::Write } else { Access::Read };
        let r1 = Request { action: &action, resource: &resource, access, bytes, now_ms: now };
        let first = p.decide(&r1);
        let clone = p.clone();
        for _ in 0..3 {
            prop_assert_eq!(&clone.decide(&r1), &first);
        }
        let reparsed = policy(&if rules.is_empty() { "  []\n".to_string() } else { rules.concat() });
        prop_assert_eq!(reparsed.decide(&r1), first);
    }
}

/// Rules over a small set of overlapping path globs (with and without literal prefixes),
/// actions, modes and limits, so the index's buckets collide and miss in every way.
fn arb_indexed_rule() -> impl Strategy<Value = String> {
    let action = prop::sample::select(vec!["file_read", "file_write", "*", "api_call"]);
    let effect = prop::sample::select(vec!["allow", "allow", "deny"]);
    let mode = prop::sample::select(vec!["", ", mode: read_only"]);
    let glob = prop::sample::select(vec![
        "/a/**",
        "/a/*",
        "/a/b",
        "/a/b/**",
        "/a/b/*.rs",
        "/ab*",
        "/a*/b",
        "**/x",
        "*",
        "/**",
        "/",
        "/a/{b,c}/**",
        "/c/[xy]",
        "/a/b/c/**",
        "/c/**",
    ]);
    let paths = prop::collection::vec(glob, 0..3);
    let extra = prop::sample::select(vec![
        "",
        ", max_bytes: 10",
        ", deny_patterns: [x]",
        ", hosts: [a.io]",
        ", log: true",
    ]);
    let rate = prop::sample::select(vec!["", ", rate_limit: 5/second", ", rate_limit: 1/minute"]);
    (action, effect, mode, paths, extra, rate).prop_map(|(a, e, m, p, x, r)| {
        let r = if e == "deny" { "" } else { r };
        let paths = if p.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = p.iter().map(|g| format!("\"{g}\"")).collect();
            format!("paths: [{}]", quoted.join(", "))
        };
        let sep = if paths.is_empty() {
            x.trim_start_matches(", ")
        } else {
            x
        };
        format!("  - {{action: \"{a}\", effect: {e}{m}{r}, constraints: {{{paths}{sep}}}}}\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn indexed_decide_equals_the_plain_loop(
        rules in prop::collection::vec(arb_indexed_rule(), 0..24),
        action in prop::sample::select(vec!["file_read", "file_write", "api_call", "signal"]),
        resource in prop::sample::select(vec![
            "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/x", "/a/b/m.rs", "/a/c/x", "/ab", "/abc/b",
            "/a/b/c", "/a/b/c/d", "/c/x", "/c/z", "/x", "/q/r/x", "x", "", "https://a.io/a/b", "a/b",
        ]),
        write in any::<bool>(),
        bytes in 0u64..20,
    ) {
        let p = policy(&if rules.is_empty() { "  []\n".to_string() } else { rules.concat() });
        let access = if write { Access::Write } else { Access::Read };
        let r = Request { action, resource, access, bytes, now_ms: 0 };
        prop_assert_eq!(p.decide(&r), p.decide_unindexed(&r));
    }
}

proptest! {
    #[test]
    fn fast_globs_match_like_globset(
        glob in prop::sample::select(vec![
            "/a", "/a/b", "/a/**", "/a/b/**", "/**", "/a/*", "/*", "git", "/usr/bin/git",
            "/a.b/**", "/a b/*", "/a+(x)/*",
        ]),
        s in prop::sample::select(vec![
            "", "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/ab", "/a//b", "git", "gitx",
            "/usr/bin/git", "/a.b/x", "/axb/x", "/a b/c", "/a+(x)/y", "//",
        ]),
    ) {
        let fast = crate::engine::FastGlob::compile(glob).expect("a simple shape");
        let slow = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .expect("valid glob")
            .compile_matcher();
        prop_assert_eq!(fast.is_match(s), slow.is_match(s), "glob {} on {:?}", glob, s);
    }
}
