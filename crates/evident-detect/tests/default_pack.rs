//! The default rule pack (`rules/evident/` at the repository's root): every rule loads,
//! and each fires on the events of its scenario and not on their harmless neighbours.
//!
//! Events go through normalization first, as in the service: rules see what is stored
//! (category, outcome, actor filled in), whichever input shape the sender used.

use evident_detect::Detector;
use serde_json::{Value, json};
use std::path::Path;
use time::macros::datetime;

/// `raw`, in any accepted input shape, as the service stores it and detection reads it:
/// normalized and encoded. (The service also seals personal fields, putting pseudonyms
/// in their place; rules group by those as they do by the values.)
fn stored(raw: &Value) -> Value {
    let map = raw.as_object().cloned().expect("an event is an object");
    let event = evident_ingest::normalize::normalize(map, datetime!(2026-06-01 00:00:00 UTC))
        .unwrap_or_else(|errors| panic!("{raw} is refused: {errors:?}"));
    serde_json::from_slice(&evident_model::canonical_bytes(&event)).unwrap()
}

fn pack() -> Detector {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/evident");
    let (detector, report) = Detector::from_dir(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.loaded >= 5, "{} rules", report.loaded);
    detector
}

fn titles(detector: &Detector, event: &Value) -> Vec<String> {
    detector
        .evaluate(&stored(event))
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

/// Feeds failed logins `(user, address, seconds after t0)` in order; returns, for each,
/// the titles of what fired.
fn failures(events: &[(&str, &str, i64)]) -> Vec<Vec<String>> {
    let mut detector = pack();
    let t0 = 1_780_000_000;
    events
        .iter()
        .map(|(user, ip, at)| {
            let event = json!({"type": "auth.login.failure", "actor": {"user_id": user, "ip": ip}});
            detector
                .process(&stored(&event), t0 + at)
                .into_iter()
                .map(|m| m.title)
                .collect()
        })
        .collect()
}

fn fired_at(results: &[Vec<String>], prefix: &str) -> Vec<usize> {
    results
        .iter()
        .enumerate()
        .filter(|(_, titles)| titles.iter().any(|t| t.starts_with(prefix)))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn five_failures_in_five_minutes_for_one_user() {
    // Alice fails five times within four minutes from five addresses; Bob four times.
    let mut events: Vec<(&str, &str, i64)> = Vec::new();
    let addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    for (i, ip) in addresses.iter().enumerate() {
        events.push(("alice", ip, i as i64 * 60));
        if i < 4 {
            events.push(("bob", ip, i as i64 * 60 + 1));
        }
    }
    let results = failures(&events);
    let per_user = fired_at(
        &results,
        "Brute force - five failed logins in five minutes for one user",
    );
    assert_eq!(
        per_user,
        vec![events.len() - 1],
        "alice's fifth, and only it"
    );
}

#[test]
fn five_failures_from_one_address_and_spraying_across_accounts() {
    let results = failures(&[
        ("u1", "203.0.113.9", 0),
        ("u2", "203.0.113.9", 30),
        ("u3", "203.0.113.9", 60),
        ("u1", "203.0.113.9", 90),
        ("u2", "203.0.113.9", 120),
    ]);
    assert_eq!(
        fired_at(
            &results,
            "Brute force - five failed logins in five minutes from one address"
        ),
        vec![4]
    );
    assert!(
        fired_at(&results, "Password spraying").contains(&2),
        "the third account from one address: {results:?}"
    );
    // Three accounts from three addresses is no spraying; neither is one account failing
    // three times twenty minutes apart.
    let quiet = failures(&[
        ("u1", "198.51.100.1", 0),
        ("u2", "198.51.100.2", 10),
        ("u3", "198.51.100.3", 20),
    ]);
    assert!(
        fired_at(&quiet, "Password spraying").is_empty(),
        "{quiet:?}"
    );
}

const PER_USER: &str = "Brute force - five failed logins in five minutes for one user";
const PER_ADDRESS: &str = "Brute force - five failed logins in five minutes from one address";

/// One failed login by `user` from `ip` in each input shape, as its sender writes it:
/// `(shape, event)`.
fn failed_login_in_every_shape(user: &str, ip: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "collector",
            json!({"eventType": "user.login",
                   "eventData": {"userId": user, "action": "login", "success": false, "reason": "bad password"},
                   "context": {"source": "auth-service"},
                   "metadata": {"severity": "warn", "source": "auth-service", "version": "1.0.0"},
                   "userId": user, "sourceIp": ip, "severity": "warn"}),
        ),
        (
            "opmas",
            json!({"id": uuid::Uuid::new_v4().to_string(), "agent_id": "sshd-watch", "type": "AUTH",
                   "data": {"user": user, "src_ip": ip, "action": "login", "status": "failed"},
                   "timestamp": "2026-03-04T09:59:00"}),
        ),
        (
            "batched",
            json!({"type": "AUTH_LOGIN_FAILURE", "source": "WEB",
                   "details": {"username": user, "ipAddress": ip, "reason": "bad password"},
                   "priority": "MEDIUM"}),
        ),
        (
            "canonical",
            json!({"type": "auth.login.failure", "actor": {"user_id": user, "ip": ip}}),
        ),
    ]
}

#[test]
fn brute_force_is_found_in_every_seed_shape() {
    for (shape, event) in failed_login_in_every_shape("mallory", "203.0.113.66") {
        // Six failed logins within a minute: the fifth completes both counts.
        let events: Vec<(Value, i64)> = (0..6).map(|i| (event.clone(), i * 10)).collect();
        let results = sequence(&events);
        assert_eq!(
            fired_at(&results, PER_USER),
            vec![4, 5],
            "{shape}: {results:?}"
        );
        assert_eq!(
            fired_at(&results, PER_ADDRESS),
            vec![4, 5],
            "{shape}: {results:?}"
        );
    }
}

/// Whether `event`, five times within a minute for one user, makes a brute-force finding:
/// whether the pack counts it as a failed login.
fn counts_as_failed_login(event: &Value) -> bool {
    let events: Vec<(Value, i64)> = (0..5).map(|i| (event.clone(), i)).collect();
    !fired_at(&sequence(&events), PER_USER).is_empty()
}

#[test]
fn failed_logins_are_authentication_failures_whatever_their_type() {
    let user = json!({"user_id": "bob", "ip": "10.0.0.1"});
    for event in [
        json!({"type": "auth.login.failure", "actor": user}),
        json!({"type": "user.login.failure", "actor": user}),
        json!({"type": "user.login", "actor": user, "data": {"success": false}}),
        json!({"type": "login.attempt", "outcome": "failure", "actor": user}),
        json!({"type": "auth.password.check", "category": "authentication", "outcome": "failed", "actor": user}),
        json!({"type": "sso.callback", "category": "authentication", "outcome": "failure", "actor": user}),
        // A failed second factor is a guess too.
        json!({"type": "mfa.verify.failure", "actor": user}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "result": "FAILURE"}}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "action": "login_failed"}}),
        json!({"type": "AUTH_LOGIN_FAILURE", "source": "API", "details": {"userId": "bob"}}),
    ] {
        assert!(counts_as_failed_login(&event), "should count: {event}");
    }
    for event in [
        json!({"type": "user.login", "actor": user, "data": {"success": true}}),
        json!({"type": "user.login", "actor": user}),
        json!({"type": "auth.login.success", "actor": user}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "status": "success"}}),
        // Not logins: a logout, enrolling or setting up a factor, registering.
        json!({"type": "user.logout", "actor": user, "data": {"success": false}}),
        json!({"type": "auth.logout.failure", "actor": user}),
        json!({"type": "mfa.enrollment.failure", "actor": user}),
        json!({"type": "AUTH_MFA_SETUP_FAILURE", "source": "WEB", "details": {"userId": "bob"}}),
        json!({"type": "auth.register.failure", "actor": user}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "action": "mfa_enroll", "success": false}}),
        // Access decisions are authorization, counted by the access-denied rules instead.
        json!({"type": "access.denied", "actor": user}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "action": "access_check", "result": "denied"}}),
        // A failure of something else.
        json!({"type": "encryption.event", "actor": user, "data": {"success": false}}),
    ] {
        assert!(!counts_as_failed_login(&event), "should not count: {event}");
    }
}

/// Whether `event`, ten times within a minute for one user, makes an access-denied burst.
fn counts_as_access_denial(event: &Value) -> bool {
    let events: Vec<(Value, i64)> = (0..10).map(|i| (event.clone(), i)).collect();
    !fired_at(&sequence(&events), "Access-denied burst").is_empty()
}

#[test]
fn access_denials_are_authorization_failures_and_forbidden_requests() {
    let user = json!({"user_id": "bob"});
    for event in [
        json!({"type": "access.denied", "actor": user}),
        json!({"eventType": "access.denied", "userId": "bob", "eventData": {"resource": "/api/v1/keys/7"}}),
        json!({"type": "ACCESS_DENIED", "source": "API", "details": {"userId": "bob"}}),
        json!({"type": "authz.policy.denied", "actor": user}),
        json!({"type": "permission.check", "outcome": "failure", "actor": user}),
        json!({"agent_id": "a-1", "type": "AUTH", "data": {"user": "bob", "action": "access_check", "result": "denied"}}),
        // The collector's request middleware: api.access with the response status.
        json!({"eventType": "api.access", "userId": "bob",
               "eventData": {"endpoint": "/api/recipes/7", "method": "GET", "statusCode": 403, "sourceIp": "10.0.0.1"}}),
    ] {
        assert!(counts_as_access_denial(&event), "should count: {event}");
    }
    for event in [
        json!({"type": "access.granted", "actor": user}),
        json!({"eventType": "api.access", "userId": "bob", "eventData": {"endpoint": "/api/recipes/7", "statusCode": 200}}),
        json!({"eventType": "api.access", "userId": "bob", "eventData": {"endpoint": "/api/recipes/8", "statusCode": 404}}),
        // A change that failed is not a denial.
        json!({"type": "permission.change", "actor": user, "data": {"success": false}}),
        json!({"type": "role.assign.failure", "actor": user}),
        // A failed login is authentication, counted by the brute-force rules instead.
        json!({"type": "auth.login.failure", "actor": user}),
    ] {
        assert!(
            !counts_as_access_denial(&event),
            "should not count: {event}"
        );
    }
}

#[test]
fn the_collectors_quality_equipment_and_request_fields() {
    check(
        "Equipment fault or error code",
        &[
            json!({"eventType": "equipment.status", "eventData": {"stationId": "STN-A-01", "equipmentStatus": "error"}}),
        ],
        &[
            json!({"eventType": "equipment.status", "eventData": {"stationId": "STN-A-01", "equipmentStatus": "running"}}),
        ],
    );
    check(
        "Path traversal attempt in an API request",
        &[
            json!({"eventType": "api.access", "eventData": {"endpoint": "/files/../../etc/passwd", "method": "GET", "statusCode": 404}}),
        ],
        &[
            json!({"eventType": "api.access", "eventData": {"endpoint": "/files/report.pdf", "method": "GET", "statusCode": 200}}),
        ],
    );
    check(
        "SQL injection attempt in an API request",
        &[
            json!({"eventType": "api.access", "eventData": {"endpoint": "/api/orders/1' OR '1'='1", "statusCode": 500}}),
        ],
        &[
            json!({"eventType": "api.access", "eventData": {"endpoint": "/api/orders/1", "statusCode": 200}}),
        ],
    );
    // The collector's quality check: qualityStatus fail counts as a failed check.
    let failed = |status: &str| json!({"eventType": "quality.check", "eventData": {"station_id": "ST-9", "panelId": "P-1", "qualityStatus": status}});
    // Two hours of one failure per ten minutes; then eight passes, or eight failures,
    // within ten minutes.
    let history: Vec<(Value, i64)> = (0..12).map(|b| (failed("fail"), b * 600)).collect();
    let then = |status: &str| {
        let mut events = history.clone();
        events.extend((0..8).map(|k| (failed(status), 7200 + k * 30)));
        sequence(&events)
    };
    let quiet = then("pass");
    assert!(
        fired_at(&quiet, "Quality-check failure spike").is_empty(),
        "passes are no failures: {quiet:?}"
    );
    let spike = then("fail");
    assert_eq!(
        fired_at(&spike, "Quality-check failure spike"),
        vec![12 + 4],
        "the fifth failure of the burst: {spike:?}"
    );
}

#[test]
fn administrative_changes_outside_working_hours() {
    check(
        "Administrative change outside working hours",
        &[
            json!({"type": "permission.change", "time": "2026-03-04T22:15:00Z"}),
            json!({"type": "config.change", "time": "2026-03-04T05:59:59Z"}),
            // Saturday afternoon.
            json!({"type": "role.granted", "time": "2026-03-07T14:00:00Z"}),
        ],
        &[
            // Wednesday, working hours; and the edges of them.
            json!({"type": "permission.change", "time": "2026-03-04T10:00:00Z"}),
            json!({"type": "config.change", "time": "2026-03-04T06:00:00Z"}),
            json!({"type": "config.change", "time": "2026-03-04T19:59:59Z"}),
            // Not an administrative change.
            json!({"type": "station.operation", "time": "2026-03-04T23:00:00Z"}),
        ],
    );
}

#[test]
fn equipment_faults_and_error_codes() {
    check(
        "Equipment fault or error code",
        &[
            json!({"type": "equipment.status", "data": {"status": "fault", "error_code": null}}),
            json!({"type": "equipment.status", "data": {"status": "running", "error_code": "E204"}}),
        ],
        &[
            json!({"type": "equipment.status", "data": {"status": "running", "error_code": null}}),
            json!({"type": "equipment.status", "data": {"status": "idle"}}),
            json!({"type": "station.operation", "data": {"status": "fault"}}),
        ],
    );
}

#[test]
fn encryption_failures() {
    check(
        "Encryption or key operation failed",
        &[
            json!({"type": "encryption.event", "data": {"operation": "decrypt", "success": false}}),
            json!({"type": "crypto.sign.failure", "outcome": "failure"}),
        ],
        &[
            json!({"type": "encryption.event", "data": {"operation": "decrypt", "success": true}}),
            json!({"type": "data.access", "data": {"success": false}}),
        ],
    );
}

#[test]
fn mass_data_export_in_one_request() {
    check(
        "Mass data export in one request",
        &[json!({"type": "data.access", "actor": {"user_id": "eve"},
                 "data": {"action": "export", "records": 25000, "classification": "restricted"}})],
        &[
            json!({"type": "data.access", "data": {"action": "export", "records": 9999, "classification": "restricted"}}),
            json!({"type": "data.access", "data": {"action": "export", "records": 50000, "classification": "public"}}),
            json!({"type": "data.access", "data": {"action": "read", "records": 50000, "classification": "restricted"}}),
        ],
    );
}

/// Feeds `events` (each at `t0 + seconds`) in order; the titles that fired for each.
fn sequence(events: &[(Value, i64)]) -> Vec<Vec<String>> {
    let mut detector = pack();
    let t0 = 1_780_000_000;
    events
        .iter()
        .map(|(event, at)| {
            detector
                .process(&stored(event), t0 + at)
                .into_iter()
                .map(|m| m.title)
                .collect()
        })
        .collect()
}

#[test]
fn access_denied_bursts_and_many_exports() {
    let denied = |user: &str| json!({"type": "access.denied", "actor": {"user_id": user}});
    // Ten denials for one user within 45 s fire on the tenth; nine for another do not,
    // nor ten spread over two minutes.
    let mut events: Vec<(Value, i64)> = (0..10).map(|i| (denied("mallory"), i * 5)).collect();
    events.extend((0..9).map(|i| (denied("oscar"), i * 5)));
    events.extend((0..10).map(|i| (denied("slow"), 100 + i * 13)));
    let results = sequence(&events);
    assert_eq!(
        fired_at(&results, "Access-denied burst"),
        vec![9],
        "{results:?}"
    );

    let export = |user: &str| {
        json!({"type": "data.access", "actor": {"user_id": user},
               "data": {"action": "export", "records": 10, "classification": "internal"}})
    };
    let mut events: Vec<(Value, i64)> = (0..20).map(|i| (export("eve"), i * 25)).collect();
    events.extend((0..19).map(|i| (export("frank"), i * 25)));
    let results = sequence(&events);
    assert_eq!(
        fired_at(&results, "Mass data export - twenty exports"),
        vec![19],
        "{results:?}"
    );
}

#[test]
fn quality_check_failure_spike_at_one_station() {
    let failed = |station: &str| json!({"type": "quality.check", "data": {"station_id": station, "passed": false}});
    let passed = json!({"type": "quality.check", "data": {"station_id": "ST-1", "passed": true}});
    let mut events: Vec<(Value, i64)> = Vec::new();
    // Two hours of one failure per ten minutes at ST-1 and ST-2, with passes between.
    for bucket in 0..12 {
        let t = bucket * 600;
        events.push((failed("ST-1"), t));
        events.push((failed("ST-2"), t + 1));
        events.push((passed.clone(), t + 2));
    }
    // Then eight failures within ten minutes at ST-1; ST-2 stays as it was; thirty
    // passes at ST-1 are no failures.
    let spike_start = events.len();
    for k in 0..8 {
        events.push((failed("ST-1"), 7200 + k * 30));
    }
    events.push((failed("ST-2"), 7201));
    for k in 0..30 {
        events.push((passed.clone(), 7300 + k));
    }
    let results = sequence(&events);
    let fired = fired_at(&results, "Quality-check failure spike");
    assert_eq!(
        fired,
        vec![spike_start + 4],
        "the fifth failure of the burst: {results:?}"
    );
    assert!(
        fired_at(&results, "Failed quality check").is_empty(),
        "the counted rule does not report itself"
    );
}
