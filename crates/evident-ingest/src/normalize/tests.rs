use super::*;
use crate::priorities::PriorityRules;
use evident_model::{Category, Outcome, Priority, Severity};
use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-08-28 13:30:00 UTC);

fn norm(v: Value) -> Result<Event, Vec<FieldError>> {
    normalize(
        v.as_object().cloned().expect("test input is an object"),
        NOW,
    )
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn collector_seed_shape() {
    let e = norm(json!({
        "id": "6f1c1d4e-8a51-4a8e-9f3e-1c2d3e4f5a6b",
        "eventType": "user.login",
        "eventData": {"userId": "user123", "action": "login", "success": true, "method": "password"},
        "context": {"correlationId": "req-456", "sessionId": "sess-789", "userAgent": "Mozilla/5.0", "timestamp": "2025-08-28T13:29:00Z", "source": "auth-service"},
        "metadata": {"severity": "warn", "source": "auth-service", "version": "1.0.0"},
        "timestamp": "2025-08-28T13:29:00.250Z",
        "correlationId": "req-456",
        "userId": "user123",
        "sourceIp": "192.168.1.100",
        "severity": "warn"
    }))
    .unwrap();
    assert_eq!(e.event_type, "user.login");
    assert_eq!(e.category, Category::Authentication);
    assert_eq!(e.severity, Severity::Medium);
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.actor.user_id.as_deref(), Some("user123"));
    assert_eq!(e.actor.ip.as_deref(), Some("192.168.1.100"));
    assert_eq!(e.actor.session_id.as_deref(), Some("sess-789"));
    assert_eq!(e.actor.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(e.correlation_id.as_deref(), Some("req-456"));
    assert_eq!(e.source.as_deref(), Some("auth-service"));
    assert_eq!(e.time, datetime!(2025-08-28 13:29:00.25 UTC));
    assert_eq!(e.data["method"], "password");
    assert_eq!(e.context["metadata"]["version"], "1.0.0");
    assert!(e.compliance.contains(&"iec62443:sr1.1".to_owned()));
}

#[test]
fn collector_row_form_from_the_reference_workload() {
    let e = norm(json!({
        "id": "0b7c7c0e-2a3f-4b4c-8d5e-6f708192a3b4", "event_type": "access.denied", "severity": "warning",
        "timestamp": "2024-06-01T00:00:00.012345Z", "user_id": "user_00042", "source_ip": "10.1.2.3",
        "correlation_id": "c-1", "data": {"resource": "/api/v1/keys/7", "station_id": "STN-A-01"},
        "context": {"host": "mes-node-01.plant1.local", "service": "auth", "session_id": "s-1"}
    }))
    .unwrap();
    assert_eq!(
        (e.category, e.severity, e.outcome),
        (Category::Authorization, Severity::Medium, Outcome::Failure)
    );
    assert_eq!(e.actor.session_id.as_deref(), Some("s-1"));
    assert_eq!(e.target["station_id"], "STN-A-01");
    assert_eq!(e.time, datetime!(2024-06-01 00:00:00.012345 UTC));
}

#[test]
fn opmas_seed_shape() {
    let e = norm(json!({
        "id": "3d6f0a52-9a0e-4c62-b1d4-0e8f2b6c1a11", "agent_id": "agent-7", "type": "NETWORK",
        "data": {"src_ip": "10.0.0.5", "dst_port": 502, "severity": "HIGH"},
        "timestamp": "2025-08-28T12:00:00.123456"
    }))
    .unwrap();
    assert_eq!(e.event_type, "network.event");
    assert_eq!(e.category, Category::Network);
    assert_eq!(e.agent_id.as_deref(), Some("agent-7"));
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.actor.ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(e.time, datetime!(2025-08-28 12:00:00.123456 UTC));
}

#[test]
fn batched_seed_shape() {
    let e = norm(json!({
        "type": "THREAT_SQL_INJECTION", "source": "API",
        "details": {"userId": "user456", "ipAddress": "192.168.1.2", "queryAttempt": "SELECT * FROM users WHERE username = 'admin' --", "targetEndpoint": "/api/users"},
        "priority": "CRITICAL"
    }))
    .unwrap();
    assert_eq!(e.event_type, "threat.sql.injection");
    assert_eq!(e.category, Category::Threat);
    assert_eq!(
        (e.priority, e.severity),
        (Priority::Critical, Severity::Critical)
    );
    assert_eq!(e.source.as_deref(), Some("api"));
    assert_eq!(e.actor.user_id.as_deref(), Some("user456"));
    assert_eq!(e.actor.ip.as_deref(), Some("192.168.1.2"));
    assert_eq!(e.time, NOW, "no time given: the receipt time");
    assert_eq!(e.id.get_version_num(), 7, "server-assigned ids are v7");

    let login = norm(json!({"type": "AUTH_LOGIN_FAILURE", "source": "web", "details": {"username": "bob"}, "priority": "HIGH"})).unwrap();
    assert_eq!(
        (login.event_type.as_str(), login.outcome),
        ("auth.login.failure", Outcome::Failure)
    );
    assert_eq!(login.actor.user_id.as_deref(), Some("bob"));
}

/// Category, outcome, user and address of a normalized event, as detection rules see them.
fn login_view(e: &Event) -> (Category, Outcome, Option<&str>, Option<&str>) {
    (
        e.category,
        e.outcome,
        e.actor.user_id.as_deref(),
        e.actor.ip.as_deref(),
    )
}

const FAILED_BOB: (Category, Outcome, Option<&str>, Option<&str>) = (
    Category::Authentication,
    Outcome::Failure,
    Some("bob"),
    Some("10.1.2.3"),
);

#[test]
fn a_failed_login_is_an_authentication_failure_in_every_seed_shape() {
    // The collector: `user.login` with `success: false`, user and address at the top
    // (from the emitter's context) or only in eventData (where its login handler reads them).
    let collector = norm(json!({
        "id": "6f1c1d4e-8a51-4a8e-9f3e-1c2d3e4f5a60", "eventType": "user.login",
        "eventData": {"userId": "bob", "action": "login", "success": false, "reason": "bad password"},
        "context": {"correlationId": "req-1", "source": "auth-service"},
        "metadata": {"severity": "warn", "source": "auth-service", "version": "1.0.0"},
        "timestamp": "2025-08-28T13:29:00.250Z", "userId": "bob", "sourceIp": "10.1.2.3", "severity": "warn"
    }))
    .unwrap();
    assert_eq!(collector.event_type, "user.login");
    assert_eq!(login_view(&collector), FAILED_BOB);
    let in_data = norm(json!({
        "eventType": "user.login",
        "eventData": {"userId": "bob", "sourceIp": "10.1.2.3", "success": false}
    }))
    .unwrap();
    assert_eq!(login_view(&in_data), FAILED_BOB);
    let row = norm(json!({"event_type": "user.login", "user_id": "bob", "source_ip": "10.1.2.3", "data": {"success": false}})).unwrap();
    assert_eq!(login_view(&row), FAILED_BOB);

    // OPMAS `AUTH`: the spec gives no data fields, so each way an agent may state the
    // result: a success flag, a result or status word, a result inside the action.
    for data in [
        json!({"user": "bob", "src_ip": "10.1.2.3", "action": "login", "status": "failed"}),
        json!({"username": "bob", "source_ip": "10.1.2.3", "result": "FAILURE"}),
        json!({"user_id": "bob", "client_ip": "10.1.2.3", "success": false}),
        json!({"user": "bob", "src_ip": "10.1.2.3", "success": "false"}),
        json!({"user": "bob", "src_ip": "10.1.2.3", "action": "login_failed"}),
        json!({"user": "bob", "src_ip": "10.1.2.3", "action": "login", "result": "AUTH_DENIED"}),
        json!({"user": "bob", "src_ip": "10.1.2.3", "action": "failed-login", "severity": "MEDIUM"}),
    ] {
        let e = norm(json!({"id": "3d6f0a52-9a0e-4c62-b1d4-0e8f2b6c1a12", "agent_id": "sshd-watch", "type": "AUTH", "data": data, "timestamp": "2025-08-28T12:00:00"}))
            .unwrap();
        assert_eq!(e.event_type, "auth.event");
        assert_eq!(login_view(&e), FAILED_BOB, "{data}");
    }

    // The batched service: its own type name says it.
    let batched = norm(json!({"type": "AUTH_LOGIN_FAILURE", "source": "WEB", "details": {"username": "bob", "ipAddress": "10.1.2.3", "userAgent": "Example Browser/1.0", "reason": "bad password"}, "priority": "MEDIUM"})).unwrap();
    assert_eq!(login_view(&batched), FAILED_BOB);

    let canonical =
        norm(json!({"type": "auth.login.failure", "actor": {"user_id": "bob", "ip": "10.1.2.3"}}))
            .unwrap();
    assert_eq!(login_view(&canonical), FAILED_BOB);
}

#[test]
fn opmas_auth_results_and_access_decisions() {
    let opmas = |data: Value| {
        norm(json!({"id": "3d6f0a52-9a0e-4c62-b1d4-0e8f2b6c1a13", "agent_id": "a-1", "type": "AUTH", "data": data}))
            .unwrap()
    };
    let ok = opmas(json!({"user": "bob", "action": "login", "status": "success"}));
    assert_eq!(
        (ok.category, ok.outcome),
        (Category::Authentication, Outcome::Success)
    );
    let ok = opmas(json!({"user": "bob", "action": "login_succeeded"}));
    assert_eq!(ok.outcome, Outcome::Success);
    let unknown = opmas(json!({"user": "bob", "action": "login"}));
    assert_eq!(unknown.outcome, Outcome::Unknown, "no result stated");

    // "Authentication or authorization event": an access decision is authorization.
    let denied = opmas(
        json!({"user": "bob", "action": "access_check", "resource": "/recipes/7", "result": "denied"}),
    );
    assert_eq!(
        (denied.category, denied.outcome),
        (Category::Authorization, Outcome::Failure)
    );
    let authorize = opmas(json!({"user": "bob", "action": "authorize", "success": false}));
    assert_eq!(authorize.category, Category::Authorization);
    let remote_login =
        opmas(json!({"user": "bob", "action": "remote_access_login", "success": false}));
    assert_eq!(
        remote_login.category,
        Category::Authentication,
        "a login, whatever else it names"
    );
}

#[test]
fn only_result_words_inside_actions_and_statuses_set_the_outcome() {
    let outcome = |data: Value| {
        norm(json!({"type": "widget.event", "data": data}))
            .unwrap()
            .outcome
    };
    // Verbs and subjects are not results.
    assert_eq!(
        outcome(json!({"action": "add_deny_rule"})),
        Outcome::Unknown
    );
    assert_eq!(outcome(json!({"action": "fail_over"})), Outcome::Unknown);
    assert_eq!(outcome(json!({"action": "error_report"})), Outcome::Unknown);
    assert_eq!(outcome(json!({"status": "running"})), Outcome::Unknown);
    // A whole alias, as before, and a result word inside.
    assert_eq!(outcome(json!({"status": "error"})), Outcome::Failure);
    assert_eq!(outcome(json!({"status": "CHECK_FAILED"})), Outcome::Failure);
    assert_eq!(outcome(json!({"result": "unsuccessful"})), Outcome::Failure);
    assert_eq!(outcome(json!({"success": "TRUE"})), Outcome::Success);
    assert_eq!(outcome(json!({"success": "maybe"})), Outcome::Unknown);
    // The flag wins over the words; the type's own result wins over both.
    assert_eq!(
        outcome(json!({"success": true, "action": "login_failed"})),
        Outcome::Success
    );
    assert_eq!(
        norm(json!({"type": "auth.login.failure", "data": {"status": "ok"}}))
            .unwrap()
            .outcome,
        Outcome::Failure
    );
}

#[test]
fn canonical_shape_keeps_every_field() {
    let e = norm(json!({
        "id": "018f9d2e-0000-7000-8000-000000000001", "time": "2025-08-28T13:00:00Z", "type": "station.operation",
        "category": "manufacturing", "severity": "low", "priority": "high", "outcome": "success",
        "source": "line-ctl", "agent_id": "plc-3", "actor": {"user_id": 42, "ip": "::ffff:10.0.0.1"},
        "target": {"station_id": "STN-B-02"}, "facility": "plant-1", "correlation_id": "wf-9",
        "data": {"cycle_time_ms": 812}, "tags": ["line-b"], "compliance": ["custom:ctl-1"]
    }))
    .unwrap();
    assert_eq!(e.priority, Priority::High);
    assert_eq!(e.actor.user_id.as_deref(), Some("42"));
    assert_eq!(e.actor.ip.as_deref(), Some("::ffff:10.0.0.1"));
    assert_eq!(e.facility.as_deref(), Some("plant-1"));
    assert_eq!(e.compliance, vec!["custom:ctl-1", "iec62443:sr2.8"]);
}

#[test]
fn every_broken_rule_is_named() {
    let errors = norm(json!({
        "type": "Login Failed", "severity": "banana", "actor": {"ip": "999.1.1.1", "shoe": 1},
        "time": "2999-01-01T00:00:00Z", "data": [1], "colour": "red", "received_at": "x"
    }))
    .unwrap_err();
    let f = fields(&errors);
    for expected in [
        "severity",
        "actor.shoe",
        "data",
        "colour",
        "received_at",
        "type",
        "time",
        "actor.ip",
    ] {
        assert!(f.contains(&expected), "no error for {expected}: {errors:?}");
    }
    assert!(
        norm(json!({"severity": "info"})).unwrap_err()[0]
            .reason
            .contains("required")
    );
}

fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "LOG",
            "AUTH_LOGIN_FAILURE",
            "user.login",
            "high",
            "10.0.0.1",
            "2024-06-01T00:00:00Z"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "type",
            "time",
            "timestamp",
            "severity",
            "priority",
            "outcome",
            "category",
            "source",
            "agent_id",
            "actor",
            "user_id",
            "ip",
            "target",
            "facility",
            "data",
            "context",
            "tags",
            "eventType",
            "eventData",
            "metadata",
            "userId",
            "sourceIp",
            "details",
            "event_type",
            "source_ip",
            "correlationId",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any JSON object either normalizes into a valid event that encodes stably, or is refused
    /// with at least one named reason; nothing panics.
    #[test]
    fn any_object_is_normalized_or_refused_with_reasons(fields in prop::collection::btree_map(key(), arb_json(3), 0..10)) {
        let raw: Map<String, Value> = fields.into_iter().collect();
        match normalize(raw.clone(), NOW) {
            Ok(event) => {
                let bytes = evident_model::canonical_bytes(&event);
                let back: Event = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(evident_model::canonical_bytes(&back), bytes);
                prop_assert!(event.time <= NOW + MAX_FUTURE_SKEW);
                prop_assert_eq!(normalize(raw, NOW).map(|e| e.event_type), Ok(event.event_type), "normalization is deterministic");
            }
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }

    /// Valid canonical events keep what was sent.
    #[test]
    fn valid_canonical_events_round_trip(
        t in "[a-z][a-z0-9_]{0,8}(\\.[a-z0-9_]{1,8}){0,3}",
        sev in prop::sample::select(Severity::ALL.to_vec()),
        user in "[A-Za-z0-9_@.-]{1,40}",
        ip in any::<std::net::IpAddr>(),
        data in prop::collection::btree_map("[a-z]{1,5}", arb_json(2), 0..5),
    ) {
        let data: Map<String, Value> = data.into_iter().collect();
        let e = norm(json!({"type": t, "severity": sev.as_str(), "actor": {"user_id": user, "ip": ip.to_string()}, "data": data})).unwrap();
        prop_assert_eq!(&e.event_type, &t);
        prop_assert_eq!(e.severity, sev);
        prop_assert_eq!(e.actor.user_id.as_deref(), Some(user.as_str()));
        prop_assert_eq!(e.actor.ip, Some(ip.to_string()));
        prop_assert_eq!(e.data, data);
    }
}

/// Found by fuzzing: integers beyond u64 parse as floats, and without correctly rounded
/// float parsing the stored bytes did not survive decode-then-encode unchanged.
#[test]
fn regression_huge_integer_survives_decode_then_encode() {
    let e = norm(json!({"type": "process.start", "data": {"pid": serde_json::from_str::<Value>("424222222222222222222222222222222222222222222222222").unwrap()}})).unwrap();
    let bytes = evident_model::canonical_bytes(&e);
    let back: Event = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(evident_model::canonical_bytes(&back), bytes);
    for text in [
        "0.1",
        "1e-300",
        "1.7976931348623157e308",
        "5e-324",
        "123456789012345678901234567890.5",
    ] {
        let v: Value = serde_json::from_str(text).unwrap();
        let again: Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(v.to_string(), again.to_string(), "{text}");
    }
}

#[test]
fn configured_type_priorities_apply_unless_the_event_names_one() {
    let rules = PriorityRules::new([
        ("auth.login.failure".to_owned(), Priority::High),
        ("threat.*".to_owned(), Priority::Critical),
    ]);
    let n = |v: Value| normalize_with(v.as_object().cloned().unwrap(), NOW, &rules).unwrap();
    assert_eq!(
        n(json!({"type": "auth.login.failure"})).priority,
        Priority::High
    );
    assert_eq!(
        n(json!({"type": "threat.sql.injection", "severity": "low"})).priority,
        Priority::Critical
    );
    assert_eq!(
        n(json!({"type": "threat.sql.injection", "priority": "low"})).priority,
        Priority::Low,
        "the event's own priority wins"
    );
    assert_eq!(
        n(json!({"type": "user.login", "severity": "high"})).priority,
        Priority::High,
        "else from severity"
    );
}

#[test]
fn clients_cannot_forge_the_services_own_records() {
    let forged = [
        json!({"type": "privacy.subject.erased", "data": {"subject": "ps_x"}}),
        json!({"type": "evident.dedup.summary", "data": {"folded": 999}}),
        json!({"type": "system.ingest.refused"}),
        json!({"type": "station.operation", "source": "Evident"}),
        json!({"eventType": "evident.finding.status", "eventData": {}}),
        json!({"type": "AUTH_LOGIN_FAILURE", "source": "evident", "details": {}}),
    ];
    for event in forged {
        let errors = norm(event.clone()).expect_err(&event.to_string());
        assert!(
            errors.iter().any(|e| e.reason.contains("reserved")),
            "{event}: {errors:?}"
        );
    }
    let marked = norm(json!({"type": "station.operation", "service_record": true}))
        .expect_err("a client cannot mark its event as the service's");
    assert_eq!(fields(&marked), ["service_record"]);
    let fine = norm(json!({"type": "system.config.change", "source": "evident-agent"})).unwrap();
    assert!(!fine.service_record);
}
