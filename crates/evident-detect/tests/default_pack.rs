//! The default rule pack (`rules/evident/` at the repository's root): every rule loads,
//! and each fires on the events of its scenario and not on their harmless neighbours.

use evident_detect::Detector;
use serde_json::{Value, json};
use std::path::Path;

fn pack() -> Detector {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/evident");
    let (detector, report) = Detector::from_dir(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.loaded >= 5, "{} rules", report.loaded);
    detector
}

fn titles(detector: &Detector, event: &Value) -> Vec<String> {
    detector
        .evaluate(event)
        .into_iter()
        .map(|m| m.title)
        .collect()
}

/// `title` fires on every event of `hits` and on none of `misses`.
fn check(title: &str, hits: &[Value], misses: &[Value]) {
    let detector = pack();
    for event in hits {
        assert!(
            titles(&detector, event).iter().any(|t| t == title),
            "{title} should fire on {event}"
        );
    }
    for event in misses {
        assert!(
            !titles(&detector, event).iter().any(|t| t == title),
            "{title} should not fire on {event}"
        );
    }
}

#[test]
fn privilege_and_role_changes() {
    check(
        "Privilege or role change",
        &[
            json!({"type": "permission.change", "actor": {"user_id": "admin"}, "data": {"role": "operator"}}),
            json!({"type": "role.granted", "actor": {"user_id": "admin"}}),
        ],
        &[
            json!({"type": "access.denied"}),
            json!({"type": "user.login"}),
        ],
    );
}

#[test]
fn sql_injection_attempts() {
    check(
        "SQL injection attempt in an API request",
        &[
            json!({"type": "api.request", "data": {"path": "/api/orders", "query": "id=1' OR '1'='1"}}),
            json!({"type": "api.request", "data": {"query": "q=x UNION SELECT password FROM users"}}),
            json!({"type": "threat.sql.injection", "data": {"field": "search"}}),
        ],
        &[
            json!({"type": "api.request", "data": {"path": "/api/orders", "query": "id=17&sort=asc"}}),
            // The pattern outside an API event (a quality note, say) is not an attack on the API.
            json!({"type": "quality.check", "data": {"query": "' or 1=1"}}),
        ],
    );
}

#[test]
fn path_traversal_attempts() {
    check(
        "Path traversal attempt in an API request",
        &[
            json!({"type": "api.request", "data": {"path": "/files/../../etc/passwd"}}),
            json!({"type": "http.request", "data": {"path": "/static/%2e%2e/%2e%2e/secret"}}),
            json!({"type": "api.request", "data": {"path": "/download", "query": "file=..\\..\\boot.ini"}}),
        ],
        &[json!({"type": "api.request", "data": {"path": "/files/report.pdf"}})],
    );
}

#[test]
fn safety_overrides() {
    check(
        "Equipment safety override",
        &[
            json!({"type": "safety.interlock.override", "data": {"station_id": "STN-A-01"}}),
            json!({"type": "safety.bypass", "data": {"station_id": "STN-A-02"}}),
            json!({"type": "equipment.status", "data": {"safety_override": true}}),
        ],
        &[
            json!({"type": "safety.inspection"}),
            json!({"type": "equipment.status", "data": {"safety_override": false}}),
        ],
    );
}

#[test]
fn control_setpoint_and_configuration_changes() {
    check(
        "Control system configuration or setpoint change",
        &[
            json!({"type": "plc.program.download", "data": {"plc": "PLC-7"}}),
            json!({"type": "equipment.setpoint.change", "data": {"from": 180, "to": 240}}),
            json!({"type": "config.change", "data": {"target": "line-3 setpoint table"}}),
        ],
        &[
            json!({"type": "plc.status", "data": {"plc": "PLC-7"}}),
            json!({"type": "config.change", "data": {"target": "mail relay"}}),
        ],
    );
}
