//! `network` and `ports`: an agent's connections through its egress proxy, judged on
//! `HOST:PORT`.

use std::net::IpAddr;

use crate::tests_tools::policy;
use crate::{Access, Policy, Request, WarningKind};

fn decide(p: &Policy, resource: &str) -> crate::Decision {
    p.decide(&Request {
        action: "network",
        resource,
        access: Access::Write,
        bytes: 0,
        now_ms: 0,
    })
}

const RULES: &str = "  - name: apis
    action: network
    effect: allow
    constraints:
      hosts: [\"*.example.com\", \"127.0.0.2\", \"[::1]\"]
      ports: [443, \"8000-8100\"]
  - name: no-admin
    action: network
    effect: deny
    constraints:
      hosts: [\"admin.example.com\"]
";

#[test]
fn a_connection_is_judged_on_its_host_and_its_port() {
    let p = policy(RULES).unwrap();
    let d = decide(&p, "api.example.com:443");
    assert!(d.allowed, "{}", d.reason);
    assert_eq!(d.rule.unwrap().id, "apis");
    assert!(decide(&p, "api.example.com:8100").allowed);
    assert!(decide(&p, "[::1]:8000").allowed);
    // A port outside `ports`: default deny, and explain says which port.
    let d = decide(&p, "api.example.com:80");
    assert!(!d.allowed);
    let e = p.explain(&Request {
        action: "network",
        resource: "api.example.com:80",
        access: Access::Write,
        bytes: 0,
        now_ms: 0,
    });
    let why = format!("{e:?}");
    assert!(why.contains("port 80 not in 443, 8000-8100"), "{why}");
    // No port at all: the rule cannot be evaluated and never allows.
    assert!(!decide(&p, "api.example.com").allowed);
    // Another host, and a deny rule that names one.
    assert!(!decide(&p, "example.org:443").allowed);
    let d = decide(&p, "admin.example.com:443");
    assert_eq!(d.rule.unwrap().id, "no-admin");
}

#[test]
fn ports_belong_to_network_rules_and_must_be_ports() {
    let e = policy("  - {name: x, action: api_call, effect: allow, constraints: {ports: [443]}}\n")
        .unwrap_err();
    assert!(e.contains("`ports` applies only to `network` rules"), "{e}");
    for bad in ["[0]", "[65536]", "[\"9-3\"]", "[\"http\"]", "[]", "{a: 1}"] {
        let e = policy(&format!(
            "  - {{name: x, action: network, effect: allow, constraints: {{ports: {bad}}}}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("t.md:"), "{bad}: {e}");
        assert!(e.contains("port"), "{bad}: {e}");
    }
    let p = policy("  - {name: x, action: network, effect: allow, constraints: {ports: 8080}}\n")
        .unwrap();
    assert_eq!(p.rules()[0].constraints.ports, vec![(8080, 8080)]);
    assert!(crate::is_known_action("network"));
}

#[test]
fn an_address_is_named_only_literally_by_an_allow_rule() {
    let p = policy(RULES).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(p.names_address(ip("127.0.0.2")));
    assert!(p.names_address(ip("::1")));
    assert!(!p.names_address(ip("127.0.0.1")));
    // A glob or `*` never names an address.
    let star =
        policy("  - {name: all, action: network, effect: allow, constraints: {hosts: [\"*\"]}}\n")
            .unwrap();
    assert!(!star.names_address(ip("127.0.0.1")));
    // A deny rule naming it does not let it through.
    let deny = policy(
        "  - {name: d, action: network, effect: deny, constraints: {hosts: [\"10.0.0.1\"]}}\n",
    )
    .unwrap();
    assert!(!deny.names_address(ip("10.0.0.1")));
    assert!(p.names_action("network"));
    assert!(!policy("  - {name: all, action: \"*\", effect: allow}\n")
        .unwrap()
        .names_action("network"));
}

#[test]
fn lint_warns_about_a_network_rule_for_every_host() {
    let every = |rules: &str| -> usize {
        policy(rules)
            .unwrap()
            .lint()
            .into_iter()
            .filter(|w| w.kind == WarningKind::EveryHost)
            .count()
    };
    assert_eq!(
        every("  - {name: all, action: network, effect: allow}\n"),
        1
    );
    assert_eq!(
        every("  - {name: all, action: network, effect: allow, constraints: {hosts: [\"*\"]}}\n"),
        1
    );
    assert_eq!(every(RULES), 0);
    assert_eq!(
        every("  - {name: none, action: network, effect: deny}\n"),
        0
    );
}

#[test]
fn port_of_reads_host_port_resources() {
    use crate::engine::port_of;
    assert_eq!(port_of("api.example.com:443"), Some(443));
    assert_eq!(port_of("[::1]:8080"), Some(8080));
    assert_eq!(port_of("::1"), None);
    assert_eq!(port_of("api.example.com"), None);
    assert_eq!(port_of("h:99999"), None);
}
