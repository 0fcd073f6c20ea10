//! Syslog over a byte stream (TCP, TLS): where one message ends and the next begins.
//!
//! Two framings are in use (RFC 6587): octet counting, `LEN SP MSG` (what RFC 5425 asks
//! of TLS, and what rsyslog and syslog-ng send when told to), and a newline after each
//! message (what `logger` and most appliances send). They are told apart message by
//! message by the first byte: a message itself begins with `<`, a count with a digit.
//!
//! Nothing a sender writes makes the framer hold more than `max` bytes of one message:
//! a longer message is cut at `max` and marked, the rest of it skipped as it arrives.

use bytes::{Buf, Bytes, BytesMut};

/// Longest octet count read: ten digits is already over any sane message.
const MAX_COUNT_DIGITS: usize = 10;

/// One message taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message, without its count or its line ending; at most `max` bytes.
    pub bytes: Bytes,
    /// The message was longer than `max` and was cut: how long it was, where known
    /// (an octet count says; a newline-ended message is only known to be longer).
    pub cut: Option<Cut>,
}

/// How a message was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Longer than the limit; its octet count gave its length.
    Counted(usize),
    /// Longer than the limit, newline-framed: the rest was skipped up to its newline.
    Line,
    /// The stream closed inside the message.
    Unfinished,
}

impl Cut {
    /// How the stored event says it was cut (`data.syslog.cut`).
    pub fn describe(self) -> String {
        match self {
            Self::Counted(len) => format!("too long ({len} bytes)"),
            Self::Line => "too long".to_owned(),
            Self::Unfinished => "unfinished".to_owned(),
        }
    }
}

/// Splits a byte stream into syslog messages.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
    /// Bytes of a cut octet-counted message still to skip.
    skip: usize,
    /// Skipping the rest of a cut newline-framed message, up to its newline.
    skip_line: bool,
}

impl Framer {
    /// A framer keeping at most `max` bytes of any one message.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(max.min(64 * 1024)),
            max: max.max(1),
            skip: 0,
            skip_line: false,
        }
    }

    /// Takes in bytes read from the stream.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        if self.skip_line {
            match memchr(b'\n', data) {
                Some(end) => {
                    self.skip_line = false;
                    data = &data[end + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if the bytes taken in hold one. Call until `None`, then
    /// push more.
    pub fn next_frame(&mut self) -> Option<Frame> {
        // `push` skips the rest of a cut message before buffering: what is buffered
        // here is whole messages' bytes.
        let start = self
            .buf
            .iter()
            .position(|b| !matches!(b, b'\n' | b'\r' | b' ' | b'\t' | 0));
        match start {
            None => {
                self.buf.clear();
                return None;
            }
            Some(start) => self.buf.advance(start),
        }
        if self.buf[0].is_ascii_digit() {
            match self.counted() {
                Counted::Frame(frame) => return Some(frame),
                Counted::NeedMore => return None,
                Counted::NotACount => {}
            }
        }
        self.line()
    }

    /// At the end of the stream: whatever is left, as a last message (a newline-framed
    /// sender may leave its last line without one; a counted message cut short is kept
    /// as far as it came, marked unfinished).
    pub fn finish(&mut self) -> Option<Frame> {
        if self.skip > 0 || self.skip_line {
            self.buf.clear();
            return None;
        }
        let rest = self.buf.split();
        let text = trim(&rest);
        if text.is_empty() {
            return None;
        }
        if let Some((digits, _)) = count_prefix(text)
            && let Some(len) = digits
        {
            let body = &text[text.iter().position(|b| *b == b' ').map_or(0, |i| i + 1)..];
            let kept = body.len().min(self.max).min(len);
            return Some(Frame {
                bytes: Bytes::copy_from_slice(&body[..kept]),
                cut: Some(Cut::Unfinished),
            });
        }
        let kept = text.len().min(self.max);
        Some(Frame {
            bytes: Bytes::copy_from_slice(&text[..kept]),
            cut: (text.len() > self.max).then_some(Cut::Line),
        })
    }

    fn counted(&mut self) -> Counted {
        let Some((digits, header)) = count_prefix(&self.buf) else {
            return if self.buf.len() <= MAX_COUNT_DIGITS && self.buf.iter().all(u8::is_ascii_digit)
            {
                Counted::NeedMore
            } else {
                Counted::NotACount
            };
        };
        let Some(len) = digits else {
            return Counted::NotACount;
        };
        if len <= self.max {
            if self.buf.len() < header + len {
                return Counted::NeedMore;
            }
            self.buf.advance(header);
            let bytes = self.buf.split_to(len).freeze();
            return Counted::Frame(Frame {
                bytes: trim_end(bytes),
                cut: None,
            });
        }
        // Too long: keep the first `max` bytes once they are here, skip the rest.
        if self.buf.len() < header + self.max {
            return Counted::NeedMore;
        }
        self.buf.advance(header);
        let bytes = self.buf.split_to(self.max).freeze();
        let rest = len - self.max;
        let here = rest.min(self.buf.len());
        self.buf.advance(here);
        self.skip = rest - here;
        Counted::Frame(Frame {
            bytes,
            cut: Some(Cut::Counted(len)),
        })
    }

    fn line(&mut self) -> Option<Frame> {
        match memchr(b'\n', &self.buf) {
            Some(end) if end <= self.max => {
                let line = self.buf.split_to(end + 1).freeze();
                Some(Frame {
                    bytes: trim_end(line.slice(..end)),
                    cut: None,
                })
            }
            Some(end) => {
                let line = self.buf.split_to(end + 1).freeze();
                Some(Frame {
                    bytes: line.slice(..self.max),
                    cut: Some(Cut::Line),
                })
            }
            None if self.buf.len() > self.max => {
                let kept = self.buf.split_to(self.max).freeze();
                self.buf.clear();
                self.skip_line = true;
                Some(Frame {
                    bytes: kept,
                    cut: Some(Cut::Line),
                })
            }
            None => None,
        }
    }
}

enum Counted {
    Frame(Frame),
    NeedMore,
    NotACount,
}

/// `Some((Some(len), header_len))` when `buf` starts with digits and a space;
/// `Some((None, _))` when the digits are too many; `None` when no space follows the
/// digits yet (or a non-digit does).
fn count_prefix(buf: &[u8]) -> Option<(Option<usize>, usize)> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || buf.get(digits) != Some(&b' ') {
        return None;
    }
    if digits > MAX_COUNT_DIGITS {
        return Some((None, digits + 1));
    }
    let len = std::str::from_utf8(&buf[..digits]).ok()?.parse().ok();
    Some((len, digits + 1))
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\n' | b'\r' | b' ' | b'\t' | 0))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

fn trim_end(bytes: Bytes) -> Bytes {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    bytes.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            while let Some(frame) = framer.next_frame() {
                out.push(frame);
            }
        }
        out.extend(framer.finish());
        out
    }

    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
            .collect()
    }

    #[test]
    fn newline_and_octet_counted_messages_mix_on_one_stream() {
        let out = frames(
            100,
            &[b"<13>one\r\n15 <13>two\nwith nl<13>three\n\n\n<13>four"],
        );
        assert_eq!(
            texts(&out),
            vec!["<13>one", "<13>two\nwith nl", "<13>three", "<13>four"]
        );
        assert!(out.iter().all(|f| f.cut.is_none()));
    }

    #[test]
    fn a_message_split_across_reads_is_put_together() {
        let out = frames(100, &[b"2", b"0 <13>twenty bytes lo", b"ng<13>next\n"]);
        assert_eq!(texts(&out), vec!["<13>twenty bytes lon", "g<13>next"]);
    }

    #[test]
    fn a_long_line_is_cut_and_the_rest_skipped_up_to_its_newline() {
        let mut long = vec![b'a'; 50];
        long.extend_from_slice(b"\n<13>after\n");
        let out = frames(10, &[&long[..20], &long[20..]]);
        assert_eq!(texts(&out), vec!["aaaaaaaaaa", "<13>after"]);
        assert_eq!(out[0].cut, Some(Cut::Line));
        assert_eq!(out[1].cut, None);
    }

    #[test]
    fn a_long_counted_message_is_cut_and_its_count_skipped() {
        let mut data = b"30 ".to_vec();
        data.extend(vec![b'x'; 30]);
        data.extend_from_slice(b"5 <13>y");
        let out = frames(10, &[&data[..15], &data[15..25], &data[25..]]);
        assert_eq!(texts(&out), vec!["xxxxxxxxxx", "<13>y"]);
        assert_eq!(out[0].cut, Some(Cut::Counted(30)));
    }

    #[test]
    fn a_stream_closed_inside_a_counted_message_keeps_what_came_marked() {
        let out = frames(100, &[b"30 <13>only part"]);
        assert_eq!(texts(&out), vec!["<13>only part"]);
        assert_eq!(out[0].cut, Some(Cut::Unfinished));
    }

    #[test]
    fn too_many_digits_are_read_as_a_line() {
        let out = frames(100, &[b"99999999999999 <13>odd\n"]);
        assert_eq!(texts(&out), vec!["99999999999999 <13>odd"]);
    }

    proptest! {
        /// However the stream is cut into reads, the same messages come out, in order.
        #[test]
        fn reads_split_anywhere_give_the_same_messages(
            messages in proptest::collection::vec("<1[0-9]>[a-z ]{1,30}", 1..20),
            counted in proptest::collection::vec(any::<bool>(), 20),
            cuts in proptest::collection::vec(1usize..40, 1..50),
        ) {
            let mut stream = Vec::new();
            for (message, counted) in messages.iter().zip(&counted) {
                if *counted {
                    stream.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
                } else {
                    stream.extend_from_slice(format!("{message}\n").as_bytes());
                }
            }
            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (head, tail) = rest.split_at((*cut).min(rest.len()));
                chunks.push(head);
                rest = tail;
            }
            let out = frames(1000, &chunks);
            let expected: Vec<String> = messages.clone();
            prop_assert_eq!(texts(&out), expected);
        }

        /// No input makes a message over the limit or panics.
        #[test]
        fn nothing_comes_out_over_the_limit(data in proptest::collection::vec(any::<u8>(), 0..400), step in 1usize..30) {
            let chunks: Vec<&[u8]> = data.chunks(step).collect();
            for frame in frames(16, &chunks) {
                prop_assert!(frame.bytes.len() <= 16);
            }
        }
    }
}
