//! Arbitrary query strings through the events, stats, findings and backtest parameter
//! parsers: they may
//! refuse a query, always as `invalid_parameter`, but must never panic.

#![no_main]

use evident_api::params::{
    backtest_range, event_query, finding_query, include_findings, stats_query,
};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = event_query(Some(raw), NOW) {
        assert_eq!(e.code(), "invalid_parameter", "event_query({raw:?}): {e}");
    }
    if let Err(e) = stats_query(Some(raw), NOW) {
        assert_eq!(e.code(), "invalid_parameter", "stats_query({raw:?}): {e}");
    }
    if let Err(e) = finding_query(Some(raw), NOW) {
        assert_eq!(e.code(), "invalid_parameter", "finding_query({raw:?}): {e}");
    }
    if let Err(e) = include_findings(Some(raw)) {
        assert_eq!(e.code(), "invalid_parameter", "include_findings({raw:?}): {e}");
    }
    if let Err(e) = backtest_range(Some(raw), NOW) {
        assert_eq!(e.code(), "invalid_parameter", "backtest_range({raw:?}): {e}");
    }
});
