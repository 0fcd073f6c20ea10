//! The Sigma language as evident runs it: each field modifier, value form and condition
//! form, and each correlation type with its window edges and grouping, on evident's
//! events (field names through the mapping, nested `data.*` paths).

use evident_detect::Detector;
use serde_json::{Value, json};

/// A rule with `detection` (YAML, indented by four) on evident's events.
fn rule(detection: &str) -> Detector {
    let yaml = format!(
        "title: Under test\nid: under-test\nlogsource: {{product: evident}}\ndetection:\n{detection}\nlevel: low\n"
    );
    let (detector, report) = Detector::from_yaml("t.yml", &yaml);
    assert!(report.problems.is_empty(), "{yaml}\n{:?}", report.problems);
    assert_eq!(report.loaded, 1, "{yaml}");
    detector
}

/// `detection` fires on each of `hits` and none of `misses`.
fn check(detection: &str, hits: &[Value], misses: &[Value]) {
    let detector = rule(detection);
    for event in hits {
        assert_eq!(
            detector.evaluate(event).len(),
            1,
            "should fire:\n{detection}\non {event}"
        );
    }
    for event in misses {
        assert!(
            detector.evaluate(event).is_empty(),
            "should not fire:\n{detection}\non {event}"
        );
    }
}

fn data(v: Value) -> Value {
    json!({"type": "x.y", "data": v})
}

#[test]
fn string_modifiers() {
    check(
        "    s:\n        data.path|contains: '/admin'\n    condition: s",
        &[data(json!({"path": "/x/ADMIN/y"}))],
        &[data(json!({"path": "/adm/in"})), data(json!({}))],
    );
    check(
        "    s:\n        data.path|startswith: '/api'\n    condition: s",
        &[data(json!({"path": "/API/v1"}))],
        &[data(json!({"path": "/x/api"}))],
    );
    check(
        "    s:\n        data.file|endswith: '.exe'\n    condition: s",
        &[data(json!({"file": "C:\\tools\\Run.EXE"}))],
        &[data(json!({"file": "run.exe.txt"}))],
    );
    check(
        "    s:\n        data.cmd|contains|all:\n            - 'net'\n            - 'user'\n    condition: s",
        &[data(json!({"cmd": "net user /add"}))],
        &[data(json!({"cmd": "net view"}))],
    );
    check(
        "    s:\n        data.cmd|re: '^ping -n [0-9]+ '\n    condition: s",
        &[data(json!({"cmd": "ping -n 30 10.0.0.1"}))],
        &[
            data(json!({"cmd": "xping -n 30 x"})),
            data(json!({"cmd": "ping -n x "})),
        ],
    );
    check(
        "    s:\n        data.name|cased: 'Admin'\n    condition: s",
        &[data(json!({"name": "Admin"}))],
        &[data(json!({"name": "admin"}))],
    );
    check(
        "    s:\n        data.cmd|windash|contains: ' -exec '\n    condition: s",
        &[
            data(json!({"cmd": "tool -exec x"})),
            data(json!({"cmd": "tool /exec x"})),
        ],
        &[data(json!({"cmd": "tool exec x"}))],
    );
}

#[test]
fn encoding_modifiers() {
    // base64 of the whole value, and of a substring at any offset.
    check(
        "    s:\n        data.blob|base64: 'secret'\n    condition: s",
        &[data(json!({"blob": "c2VjcmV0"}))],
        &[data(json!({"blob": "secret"}))],
    );
    check(
        "    s:\n        data.blob|base64offset|contains: 'http://'\n    condition: s",
        &[
            data(json!({"blob": "aHR0cDovL2V2aWwuZXhhbXBsZQ=="})),
            data(json!({"blob": "eGh0dHA6Ly9ldmls"})),
        ],
        &[data(json!({"blob": "http://evil"}))],
    );
}

#[test]
fn numeric_network_and_presence_modifiers() {
    check(
        "    s:\n        data.temp|gt: 90\n    condition: s",
        &[data(json!({"temp": 90.5})), data(json!({"temp": 120}))],
        &[data(json!({"temp": 90})), data(json!({"temp": 3}))],
    );
    check(
        "    s:\n        data.temp|gte: 90\n    t:\n        data.temp|lte: 100\n    condition: s and t",
        &[data(json!({"temp": 90})), data(json!({"temp": 100}))],
        &[data(json!({"temp": 89.9})), data(json!({"temp": 100.1}))],
    );
    check(
        "    s:\n        data.retries|lt: 3\n    condition: s",
        &[data(json!({"retries": 2}))],
        &[data(json!({"retries": 3}))],
    );
    check(
        "    s:\n        src_ip|cidr: '10.1.0.0/16'\n    condition: s",
        &[json!({"type": "x", "actor": {"ip": "10.1.200.3"}})],
        &[json!({"type": "x", "actor": {"ip": "10.2.0.1"}})],
    );
    check(
        "    s:\n        data.token|exists: true\n    condition: s",
        &[data(json!({"token": "t"}))],
        &[data(json!({"other": 1}))],
    );
    check(
        "    s:\n        data.token|exists: false\n    condition: s",
        &[data(json!({"other": 1}))],
        &[data(json!({"token": "t"}))],
    );
    check(
        "    s:\n        data.approved_by|fieldref: data.changed_by\n    condition: s",
        &[data(json!({"approved_by": "kim", "changed_by": "kim"}))],
        &[data(json!({"approved_by": "lee", "changed_by": "kim"}))],
    );
}

#[test]
fn values_lists_wildcards_null_and_empty() {
    // A list is any of its values.
    check(
        "    s:\n        type:\n            - 'auth.login.failure'\n            - 'auth.mfa.failure'\n    condition: s",
        &[json!({"type": "auth.mfa.failure"})],
        &[json!({"type": "auth.login.success"})],
    );
    // Wildcards: * any run, ? one character, \\* a literal star.
    check(
        "    s:\n        data.path: '/api/*/export?'\n    condition: s",
        &[data(json!({"path": "/api/v2/orders/export1"}))],
        &[data(json!({"path": "/api/v2/export"}))],
    );
    check(
        "    s:\n        data.glob: 'a\\*b'\n    condition: s",
        &[data(json!({"glob": "a*b"}))],
        &[data(json!({"glob": "axxb"}))],
    );
    // null is absent or null; '' is the empty string.
    check(
        "    s:\n        data.error_code: null\n    condition: s",
        &[data(json!({"error_code": null})), data(json!({}))],
        &[data(json!({"error_code": "E1"}))],
    );
    check(
        "    s:\n        data.reason: ''\n    condition: s",
        &[data(json!({"reason": ""}))],
        &[data(json!({"reason": "x"}))],
    );
    // Keywords: a bare list matches any string value of the event.
    check(
        "    keywords:\n        - 'mimikatz'\n        - 'sekurlsa'\n    condition: keywords",
        &[data(json!({"cmd": "run mimikatz.exe"}))],
        &[data(json!({"cmd": "run notepad"}))],
    );
    // Nested paths and mapped names reach the same fields.
    check(
        "    s:\n        User: 'root'\n        data.station.line: 3\n    condition: s",
        &[json!({"type": "x", "actor": {"user_id": "root"}, "data": {"station": {"line": 3}}})],
        &[json!({"type": "x", "actor": {"user_id": "root"}, "data": {"station": {"line": 4}}})],
    );
}

#[test]
fn condition_forms() {
    let sels = "    sel_a:\n        data.a: 1\n    sel_b:\n        data.b: 1\n    filter:\n        data.f: 1\n";
    let a = data(json!({"a": 1}));
    let b = data(json!({"b": 1}));
    let ab = data(json!({"a": 1, "b": 1}));
    let af = data(json!({"a": 1, "f": 1}));
    let none = data(json!({"z": 1}));
    let cond = |c: &str| format!("{sels}    condition: {c}");
    check(
        &cond("sel_a and sel_b"),
        std::slice::from_ref(&ab),
        &[a.clone(), b.clone()],
    );
    check(
        &cond("sel_a or sel_b"),
        &[a.clone(), b.clone()],
        std::slice::from_ref(&none),
    );
    check(
        &cond("sel_a and not filter"),
        std::slice::from_ref(&a),
        std::slice::from_ref(&af),
    );
    check(
        &cond("(sel_a or sel_b) and not filter"),
        &[a.clone(), b.clone()],
        &[af.clone(), none.clone()],
    );
    check(
        &cond("1 of sel_*"),
        &[a.clone(), b.clone()],
        std::slice::from_ref(&none),
    );
    check(
        &cond("all of sel_*"),
        std::slice::from_ref(&ab),
        std::slice::from_ref(&a),
    );
    check(
        &cond("1 of them"),
        &[a.clone(), af.clone()],
        std::slice::from_ref(&none),
    );
    check(
        &cond("all of them"),
        &[data(json!({"a": 1, "b": 1, "f": 1}))],
        std::slice::from_ref(&ab),
    );
    check(&cond("not 1 of sel_*"), &[none], &[a, b]);
}

/// Feeds `(event, seconds)` in order into `yaml`'s rules; the indexes where `title` fired.
fn fired(yaml: &str, title: &str, events: &[(Value, i64)]) -> Vec<usize> {
    let (mut detector, report) = Detector::from_yaml("c.yml", yaml);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    events
        .iter()
        .enumerate()
        .filter(|(_, (event, at))| {
            detector
                .process(event, 1_780_000_000 + at)
                .iter()
                .any(|m| m.title == title)
        })
        .map(|(i, _)| i)
        .collect()
}

const BASES: &str = "title: Login failed\nname: failed\nlogsource: {product: evident}\ndetection:\n  s:\n    type: auth.login.failure\n  condition: s\n---\ntitle: Login ok\nname: ok\nlogsource: {product: evident}\ndetection:\n  s:\n    type: auth.login.success\n  condition: s\n---\n";

fn login(kind: &str, user: &str, ip: &str) -> Value {
    json!({"type": format!("auth.login.{kind}"), "actor": {"user_id": user, "ip": ip}})
}

#[test]
fn event_count_window_edges_and_groups() {
    let yaml = format!(
        "{BASES}title: Three\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [actor.user_id]\n  timespan: 60s\n  condition: {{gte: 3}}\n"
    );
    let f = |user: &str| login("failure", user, "10.0.0.1");
    // Three within exactly 60 s fire; three spread over 61 s do not.
    assert_eq!(
        fired(&yaml, "Three", &[(f("a"), 0), (f("a"), 30), (f("a"), 60)]),
        vec![2]
    );
    assert_eq!(
        fired(&yaml, "Three", &[(f("a"), 0), (f("a"), 30), (f("a"), 61)]),
        Vec::<usize>::new()
    );
    // Groups count apart; successes do not count.
    let mixed = [
        (f("a"), 0),
        (f("b"), 1),
        (login("success", "a", "10.0.0.1"), 2),
        (f("a"), 3),
        (f("b"), 4),
        (f("b"), 5),
    ];
    assert_eq!(fired(&yaml, "Three", &mixed), vec![5]);
}

#[test]
fn value_count_counts_distinct_values_per_group() {
    let yaml = format!(
        "{BASES}title: Spray\ncorrelation:\n  type: value_count\n  rules: [failed]\n  group-by: [actor.ip]\n  timespan: 10m\n  condition: {{gte: 3, field: actor.user_id}}\n"
    );
    let events = [
        (login("failure", "u1", "203.0.113.1"), 0),
        (login("failure", "u1", "203.0.113.1"), 10),
        (login("failure", "u2", "203.0.113.1"), 20),
        (login("failure", "u3", "198.51.100.7"), 30),
        (login("failure", "u3", "203.0.113.1"), 40),
    ];
    assert_eq!(fired(&yaml, "Spray", &events), vec![4]);
}

#[test]
fn temporal_needs_every_rule_within_the_timespan_in_any_order() {
    let yaml = format!(
        "{BASES}title: Fail and succeed\ncorrelation:\n  type: temporal\n  rules: [failed, ok]\n  group-by: [actor.user_id]\n  timespan: 5m\n"
    );
    let title = "Fail and succeed";
    assert_eq!(
        fired(
            &yaml,
            title,
            &[
                (login("success", "a", "x"), 0),
                (login("failure", "a", "x"), 100)
            ]
        ),
        vec![1],
        "either order"
    );
    assert!(
        fired(
            &yaml,
            title,
            &[
                (login("failure", "a", "x"), 0),
                (login("success", "b", "x"), 10)
            ]
        )
        .is_empty(),
        "different users"
    );
    assert!(
        fired(
            &yaml,
            title,
            &[
                (login("failure", "a", "x"), 0),
                (login("success", "a", "x"), 301)
            ]
        )
        .is_empty(),
        "too far apart"
    );
}

#[test]
fn temporal_ordered_needs_the_rules_in_order() {
    let yaml = format!(
        "{BASES}title: Fail then succeed\ncorrelation:\n  type: temporal_ordered\n  rules: [failed, ok]\n  group-by: [actor.user_id]\n  timespan: 5m\n"
    );
    let title = "Fail then succeed";
    assert_eq!(
        fired(
            &yaml,
            title,
            &[
                (login("failure", "a", "x"), 0),
                (login("success", "a", "x"), 60)
            ]
        ),
        vec![1]
    );
    assert!(
        fired(
            &yaml,
            title,
            &[
                (login("success", "a", "x"), 0),
                (login("failure", "a", "x"), 60)
            ]
        )
        .is_empty(),
        "success first is not the pattern"
    );
}
