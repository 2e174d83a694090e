//! Every `fixtures/good/*.md` loads; every `fixtures/bad/*.md` fails with exactly the
//! message stored in `bad/<name>.expected`. `BLESS=1 cargo test` rewrites the expectations.

use std::fs;
use std::path::{Path, PathBuf};

use agentos_policy::Policy;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

fn shown_path(p: &Path) -> String {
    // Messages name the file relative to the fixtures dir so expectations are portable.
    let parent = p
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    format!("{parent}/{}", p.file_name().unwrap().to_string_lossy())
}

#[test]
fn good_fixtures_load() {
    let files = fixtures("good");
    assert!(files.len() >= 10, "only {} good fixtures", files.len());
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        if let Err(e) = Policy::parse(&shown_path(&f), &text) {
            panic!("{} should load:\n{e}", f.display());
        }
    }
}

#[test]
fn bad_fixtures_fail_with_expected_messages() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let files = fixtures("bad");
    assert!(files.len() >= 20, "only {} bad fixtures", files.len());
    let mut mismatches = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let err = match Policy::parse(&shown_path(&f), &text) {
            Ok(_) => panic!("{} should fail to load", f.display()),
            Err(e) => format!("{e}\n"),
        };
        let expected_path = f.with_extension("expected");
        if bless {
            fs::write(&expected_path, &err).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}; run with BLESS=1", expected_path.display()));
        if expected != err {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{err}",
                f.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_rule_knows_its_line() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/every-field.md");
    let p = Policy::parse("security.md", &fs::read_to_string(f).unwrap()).unwrap();
    let lines: Vec<(String, u32)> = p.rules().iter().map(|r| (r.id.clone(), r.line)).collect();
    assert_eq!(
        lines,
        vec![
            ("read-workspace".to_string(), 7),
            ("write-src".to_string(), 14),
            ("tools".to_string(), 25),
            ("github".to_string(), 32),
            ("talk-to-planner".to_string(), 38),
            ("no-secrets".to_string(), 44),
        ]
    );
    assert_eq!(
        p.rule_ref(1).unwrap().to_string(),
        "write-src (security.md:14)"
    );
}

#[test]
fn fenced_rule_lines_point_into_the_markdown() {
    let f =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/spec-examples-fenced.md");
    let p = Policy::parse("security.md", &fs::read_to_string(f).unwrap()).unwrap();
    let lines: Vec<u32> = p.rules().iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![23, 28, 33, 38, 42]);
}

#[test]
fn lint_fixtures_warn_exactly_as_expected() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for f in fixtures("lint") {
        let text = fs::read_to_string(&f).unwrap();
        let p = Policy::parse(&shown_path(&f), &text)
            .unwrap_or_else(|e| panic!("{} should load:\n{e}", f.display()));
        let got: String = p.lint().iter().map(|w| format!("{w}\n")).collect();
        let expected_path = f.with_extension("warnings");
        if bless {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}; run with BLESS=1", expected_path.display()));
        if expected != got {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                f.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Issue 4: every field of the schema appears in at least one good and one bad fixture.
#[test]
fn every_field_has_a_good_and_a_bad_fixture() {
    let read_all = |kind: &str| -> Vec<String> {
        fixtures(kind)
            .iter()
            .map(|f| fs::read_to_string(f).unwrap())
            .collect()
    };
    let (good, bad) = (read_all("good"), read_all("bad"));
    assert!(good.len() + bad.len() >= 30);
    let fields = [
        "kernel",
        "version",
        "mode",
        "signals",
        "policies",
        "name",
        "action",
        "effect",
        "requires_approval",
        "rate_limit",
        "constraints",
        "paths",
        "commands",
        "hosts",
        "peers",
        "max_bytes",
        "deny_patterns",
        "log",
        "dry_run",
        "observability",
        "metrics",
        "traces",
        "flight_recorder",
        "sandbox",
        "read_only",
        "limits",
        "address_space",
        "processes",
        "open_files",
        "cpu_seconds",
        "file_size",
        "wall_time_seconds",
        "cpu",
    ];
    for field in fields {
        let key = format!("{field}:");
        assert!(
            good.iter().any(|t| t.contains(&key)),
            "no good fixture uses `{field}`"
        );
        assert!(
            bad.iter().any(|t| t.contains(&key)),
            "no bad fixture uses `{field}`"
        );
    }
}
