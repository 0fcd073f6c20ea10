//! Arbitrary text as a rule file: the loader reports whatever it cannot load, naming the
//! file, and never panics; whatever loads can run on events without panicking.

#![no_main]

use evident_detect::Detector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mut detector, report) = Detector::from_yaml("fuzz.yml", text);
    for problem in &report.problems {
        assert_eq!(problem.file.to_str(), Some("fuzz.yml"), "{problem}");
        assert!(!problem.reason.is_empty());
    }
    let event = serde_json::json!({
        "id": "0194f1e2-0000-7000-8000-000000000000", "type": "auth.login.failure",
        "time": "2026-03-01T10:00:00Z", "actor": {"user_id": "admin", "ip": "10.0.0.1"},
        "data": {"station_id": "ST-1", "passed": false, "query": "' or '1'='1"},
    });
    for at in 0..3 {
        detector.process(&event, 1_780_000_000 + at);
    }
    detector.evaluate(&event);
    let saved = detector.save_state();
    detector.restore_state(&saved).expect("a rule set reads its own state back");
});
