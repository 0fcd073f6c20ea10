//! `evident rules check` and `evident rules test`, as a user runs them.

use super::common::BIN;
use std::process::{Command, Output};

const RULE: &str = r#"title: Failed admin login
id: 0f5c3a1e-1111-4a2b-9c3d-000000000001
logsource: {product: evident}
detection:
  selection:
    type: auth.login.failure
    User|startswith: adm
  condition: selection
level: high
"#;

fn evident(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn rules_test_prints_matches_and_exits_like_grep() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("rule.yml");
    std::fs::write(&rule, RULE).unwrap();
    let events = dir.path().join("events.ndjson");
    // A seed shape (the batched service's) is normalized as ingest does.
    std::fs::write(
        &events,
        [
            r#"{"id":"7d0c6c4e-0000-4000-8000-000000000001","type":"auth.login.failure","actor":{"user_id":"bob"}}"#,
            r#"{"id":"7d0c6c4e-0000-4000-8000-000000000002","type":"auth.login.failure","actor":{"user_id":"admin"}}"#,
            "",
            r#"{"type":"AUTH_LOGIN_FAILURE","source":"web","details":{"userId":"administrator"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let run_test = || {
        evident(&[
            "rules",
            "test",
            rule.to_str().unwrap(),
            events.to_str().unwrap(),
        ])
    };
    let out = run_test();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["rule_id"], "0f5c3a1e-1111-4a2b-9c3d-000000000001");
    assert_eq!(lines[0]["event_index"], 1);
    assert_eq!(lines[0]["event_id"], "7d0c6c4e-0000-4000-8000-000000000002");
    assert_eq!(lines[1]["event_index"], 2);

    std::fs::write(
        &events,
        r#"{"type":"auth.login.success","actor":{"user_id":"admin"}}"#,
    )
    .unwrap();
    let out = run_test();
    assert_eq!(out.status.code(), Some(1), "nothing fired");
    assert!(out.stdout.is_empty());

    std::fs::write(&events, "{\"type\":\n").unwrap();
    let out = run_test();
    assert_eq!(out.status.code(), Some(2), "bad input is an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events.ndjson:1: not JSON"), "{stderr}");
}

#[test]
fn rules_check_names_each_rule_that_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yml"), RULE).unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::fs::write(
        dir.path().join("more/bad.yml"),
        "title: Bad\nlogsource: {product: evident}\ndetection:\n  sel:\n    type|frobnicate: x\n  condition: sel\n",
    )
    .unwrap();
    let out = evident(&["rules", "check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.yml:5: "),
        "names the file and line: {stdout}"
    );
    assert!(stdout.contains("frobnicate"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 files: 1 detection rules loaded"),
        "{stderr}"
    );
    std::fs::remove_file(dir.path().join("more/bad.yml")).unwrap();
    let out = evident(&["rules", "check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
}
