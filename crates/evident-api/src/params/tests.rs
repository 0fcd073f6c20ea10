use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);

#[test]
fn event_parameters() {
    let q = event_query(Some("type=auth.*&min_severity=warn&limit=5&data.station_id=STN-A-01&from=24h&source_ip=10.0.0.1"), NOW).unwrap();
    assert_eq!(q.event_type, Some(TypeFilter::Prefix("auth.".into())));
    assert_eq!(q.min_severity, Some(Severity::Medium));
    assert_eq!(q.limit, 5);
    assert_eq!(q.data[0].path, vec!["station_id"]);
    assert_eq!(q.from, Some(unix_micros(NOW - Duration::hours(24))));
    assert_eq!(
        event_query(Some("type=user.login"), NOW)
            .unwrap()
            .event_type,
        Some(TypeFilter::Exact("user.login".into()))
    );
}

#[test]
fn bad_parameters_are_named() {
    for (query, needle) in [
        ("colour=red", "unknown parameter `colour`"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("severity=banana", "severity"),
        ("type=Auth Login", "type"),
        ("type=auth.*.x", "type"),
        ("from=yesterday", "from"),
        ("cursor=zzz", "cursor"),
        ("data.a..b=1", "data.a..b"),
        ("data.a'b=1", "data.a'b"),
        ("source_ip=nope", "source_ip"),
        ("limit=1&limit=2", "more than once"),
        ("from=1h&to=2h", "before"),
    ] {
        let err = event_query(Some(query), NOW).unwrap_err().to_string();
        assert!(err.contains(needle), "{query}: {err}");
    }
}

#[test]
fn stats_defaults_and_limits() {
    let q = stats_query(None, NOW).unwrap();
    assert_eq!(q.group_by, vec![GroupField::Type, GroupField::Severity]);
    assert_eq!(q.to - q.from, 24 * 3_600_000_000);
    assert!(
        stats_query(Some("interval=1s&from=30d"), NOW)
            .unwrap_err()
            .to_string()
            .contains("buckets")
    );
    assert!(stats_query(Some("group_by=type,colour"), NOW).is_err());
    assert!(stats_query(Some("group_by=type,type"), NOW).is_err());
    assert_eq!(
        stats_query(Some("group_by="), NOW).unwrap().group_by,
        vec![]
    );
}

#[test]
fn backtest_ranges() {
    let (from, to) = backtest_range(None, NOW).unwrap();
    assert_eq!(to - from, 24 * 3_600_000_000);
    let (from, _) = backtest_range(Some("from=2024-12-31T00:00:00Z"), NOW).unwrap();
    assert_eq!(from, unix_micros(NOW - Duration::days(1)));
    assert!(backtest_range(Some("from=1h&to=2h"), NOW).is_err());
    assert!(
        backtest_range(Some("limit=5"), NOW)
            .unwrap_err()
            .to_string()
            .contains("limit")
    );
}

#[test]
fn finding_parameters() {
    let q = finding_query(
        Some("status=acknowledged&rule_id=r-1&min_severity=high&from=7d&limit=20&facility=plant-1"),
        NOW,
    )
    .unwrap();
    assert_eq!(q.status, Some(evident_store::FindingStatus::Acknowledged));
    assert_eq!(q.rule_id.as_deref(), Some("r-1"));
    assert_eq!(q.min_severity, Some(Severity::High));
    assert_eq!(q.from, Some(unix_micros(NOW - Duration::days(7))));
    assert_eq!((q.limit, q.facility.as_deref()), (20, Some("plant-1")));
    assert_eq!(finding_query(None, NOW).unwrap().limit, DEFAULT_LIMIT);
    let cursor = evident_store::FindingCursor(9).encode();
    assert_eq!(
        finding_query(Some(&format!("cursor={cursor}")), NOW)
            .unwrap()
            .cursor,
        Some(evident_store::FindingCursor(9))
    );
    for (query, needle) in [
        ("status=closed", "closed"),
        ("type=auth.*", "unknown parameter `type`"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
        ("from=2h&to=3h", "before"),
        ("rule_id=", "rule_id"),
    ] {
        let err = finding_query(Some(query), NOW).unwrap_err().to_string();
        assert!(err.contains(needle), "{query}: {err}");
    }
    assert!(include_findings(Some("include=findings")).unwrap());
    assert!(!include_findings(None).unwrap());
    assert!(
        include_findings(Some("include=proof"))
            .unwrap_err()
            .to_string()
            .contains("proof")
    );
    assert!(include_findings(Some("expand=1")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any query string either parses or is refused with an invalid_parameter error; never a panic.
    #[test]
    fn arbitrary_query_strings(raw in "[a-z_.=&%*0-9:TZ+-]{0,80}") {
        for result in [
            event_query(Some(&raw), NOW).map(|_| ()),
            stats_query(Some(&raw), NOW).map(|_| ()),
            finding_query(Some(&raw), NOW).map(|_| ()),
            include_findings(Some(&raw)).map(|_| ()),
            backtest_range(Some(&raw), NOW).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.code(), "invalid_parameter");
            }
        }
    }

    /// Valid limits and durations round-trip.
    #[test]
    fn limits_and_durations(n in 1usize..=MAX_LIMIT, hours in 1i64..10_000) {
        prop_assert_eq!(event_query(Some(&format!("limit={n}")), NOW).unwrap().limit, n);
        let q = event_query(Some(&format!("from={hours}h")), NOW).unwrap();
        prop_assert_eq!(q.from, Some(unix_micros(NOW - Duration::hours(hours))));
    }
}
