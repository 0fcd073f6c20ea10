//! Arbitrary bytes through the syslog stream framer, cut into reads at arbitrary
//! points: it must never panic, never hand out a message over its limit, and never hold
//! more than the limit (plus one read) of any message.

#![no_main]

use evident_sources::syslog::framing::Framer;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(split % 17) + 1;
    let mut framer = Framer::new(MAX);
    for chunk in bytes.chunks(step) {
        framer.push(chunk);
        while let Some(frame) = framer.next_frame() {
            assert!(frame.bytes.len() <= MAX, "a message over the limit");
        }
    }
    if let Some(frame) = framer.finish() {
        assert!(frame.bytes.len() <= MAX, "a last message over the limit");
    }
});
