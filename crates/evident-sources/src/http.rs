//! HTTP as a source: a request body (JSON, NDJSON, optionally gzip) as raw input, and
//! the answer a [`Report`] makes. The HTTP layer itself (routing, keys, headers) stays in
//! evident-api; what an ingest request means lives here.

use crate::ingestor::{RawInput, Report, Verdict};
use bytes::Bytes;
use evident_ingest::decode::RawItem;
use evident_ingest::{BodyFormat, DecodeError, Limits, Rejection};
use evident_pipeline::EventOutcome;
use serde::Serialize;
use std::io::Read;

/// How a request body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As sent (no header, or `identity`).
    None,
    /// `gzip` (or `x-gzip`).
    Gzip,
}

impl Compression {
    /// The compression a `Content-Encoding` value names; the error names the value
    /// evident does not read.
    pub fn from_header(value: Option<&str>) -> Result<Self, String> {
        let Some(text) = value.map(str::trim) else {
            return Ok(Self::None);
        };
        match text.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Self::None),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            _ => Err(format!(
                "Content-Encoding `{text}` is not supported; send the body as is or gzip-compressed"
            )),
        }
    }

    /// `body` decompressed, refused once it would exceed `limit` bytes (reading stops
    /// there, so a small bomb costs no more than the limit).
    pub fn decode(self, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
        match self {
            Self::None => Ok(body),
            Self::Gzip => {
                let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
                let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
                flate2::read::MultiGzDecoder::new(&body[..])
                    .take(cap)
                    .read_to_end(&mut decoded)
                    .map_err(|e| DecodeError::InvalidCompression(format!("not valid gzip: {e}")))?;
                if decoded.len() > limit {
                    return Err(DecodeError::TooLarge { limit });
                }
                Ok(Bytes::from(decoded))
            }
        }
    }
}

/// A request body as it arrived.
pub struct HttpBody {
    /// The bytes, as sent.
    pub bytes: Bytes,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Content-Encoding`.
    pub compression: Compression,
}

impl RawInput for HttpBody {
    fn weight(&self) -> usize {
        match self.compression {
            Compression::None => self.bytes.len(),
            // It may decode to the body limit: never on an async worker.
            Compression::Gzip => usize::MAX,
        }
    }

    fn decode(self, limits: &Limits) -> Result<Vec<(Option<usize>, RawItem)>, DecodeError> {
        let body = self.compression.decode(self.bytes, limits.max_body_bytes)?;
        let format = BodyFormat::from_content_type(self.content_type.as_deref(), &body)?;
        evident_ingest::decode::decode(&body, format, limits)
    }
}

/// One broken rule of one refused event, as the client sees it.
#[derive(Debug, Serialize)]
pub struct EventError {
    /// Position of the event in the request (0-based).
    pub index: usize,
    /// Body line of the event (NDJSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Field path as sent; empty for the event as a whole.
    pub field: String,
    /// The rule it broke.
    pub reason: String,
}

/// An event folded by deduplication into an earlier, stored event.
#[derive(Debug, Serialize)]
pub struct Folded {
    /// Position in the request.
    pub index: usize,
    /// The folded event's id.
    pub id: uuid::Uuid,
    /// The stored event it was folded into (the summary event will count it there).
    pub into: uuid::Uuid,
}

/// The body of the answer to an ingest request.
#[derive(Debug, Default, Serialize)]
pub struct IngestResponse {
    /// Events taken: committed (stored, already stored, or dead-lettered), or with
    /// `?ack=none` queued.
    pub accepted: usize,
    /// Of those, events newly stored.
    pub stored: usize,
    /// Of those, events whose id was already stored (retries): stored once, not again.
    pub duplicates: usize,
    /// Of those, events the store kept refusing, kept in the dead-letter table.
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_lettered: usize,
    /// Of those, events queued but not yet committed (`?ack=none` only).
    #[serde(skip_serializing_if = "is_zero")]
    pub queued: usize,
    /// Of those, repeats within the deduplication window, each folded into a stored event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Folded>,
    /// Events refused: invalid, or over their priority's queue share (retry those).
    pub rejected: usize,
    /// One entry per event in request order: its id when accepted, null when refused.
    pub ids: Vec<Option<uuid::Uuid>>,
    /// Every broken rule of every refused event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Seconds a client is asked to wait before retrying refused events.
pub const RETRY_AFTER_SECS: &str = "1";

/// The answer an ingest request gets.
#[derive(Debug)]
pub struct Answer {
    /// 202 when every valid event was taken; 400 when none was valid; 429 when some
    /// were refused for overload; 503 when some could not be committed.
    pub status: u16,
    /// The JSON body: the counts, the ids, the errors, and `error` unless 202.
    pub body: serde_json::Value,
    /// `Retry-After`, for 429 and 503.
    pub retry_after: Option<&'static str>,
}

/// What an ingest request is answered, from what became of its events.
pub fn answer(report: Report) -> Answer {
    let verdict = report.verdict();
    let counts = report.counts();
    let mut response = IngestResponse {
        accepted: counts.accepted(),
        stored: counts.stored,
        duplicates: counts.duplicates,
        dead_lettered: counts.dead_lettered,
        queued: counts.queued,
        rejected: counts.invalid + counts.overloaded,
        ids: vec![None; report.total],
        errors: flatten(&report.rejected),
        ..IngestResponse::default()
    };
    for taken in &report.taken {
        match &taken.outcome {
            EventOutcome::Overloaded => response.errors.push(EventError {
                index: taken.index,
                line: report.lines.get(taken.index).copied(),
                field: String::new(),
                reason: "overloaded: the queue for this event's priority is full; retry later"
                    .into(),
            }),
            EventOutcome::Folded(into) => response.folded.push(Folded {
                index: taken.index,
                id: taken.id,
                into: *into,
            }),
            _ => {}
        }
        if !matches!(taken.outcome, EventOutcome::Overloaded) {
            response.ids[taken.index] = Some(taken.id);
        }
    }
    response.errors.sort_by_key(|e| e.index);
    let (status, error) = match &verdict {
        Verdict::Accepted => (202, None),
        Verdict::NoValidEvent => (
            400,
            Some((
                "no_valid_events",
                format!(
                    "none of the {} events in the request is valid; see `errors`",
                    response.rejected
                ),
            )),
        ),
        Verdict::Overloaded => (
            429,
            Some((
                "overloaded",
                "some events were refused because the service is overloaded; retry them after Retry-After".into(),
            )),
        ),
        Verdict::Failed(reason) => {
            tracing::warn!(%reason, "ingest not fully committed");
            (
                503,
                Some((
                    "unavailable",
                    "the store could not commit every event; retry the request (ids make retries safe)".into(),
                )),
            )
        }
    };
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    if let Some((code, message)) = error {
        body["error"] = serde_json::json!({"code": code, "message": message});
    }
    Answer {
        status,
        body,
        retry_after: matches!(verdict, Verdict::Overloaded | Verdict::Failed(_))
            .then_some(RETRY_AFTER_SECS),
    }
}

fn flatten(rejected: &[Rejection]) -> Vec<EventError> {
    rejected
        .iter()
        .flat_map(|r| {
            r.errors.iter().map(|e| EventError {
                index: r.index,
                line: r.line,
                field: e.field.clone(),
                reason: e.reason.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn gzip_is_decoded_within_the_limit() {
        let compression = Compression::from_header(Some("GZIP")).unwrap();
        let body = compression
            .decode(gzip(b"{\"type\":\"a.b\"}"), 100)
            .unwrap();
        assert_eq!(&body[..], b"{\"type\":\"a.b\"}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        assert_eq!(
            Compression::Gzip.decode(bomb, 1000),
            Err(DecodeError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn unknown_encodings_and_broken_gzip_are_named() {
        let error = Compression::from_header(Some("br")).unwrap_err();
        assert!(error.contains("`br`"), "{error}");
        assert!(matches!(
            Compression::Gzip.decode(Bytes::from_static(b"not gzip"), 100),
            Err(DecodeError::InvalidCompression(_))
        ));
        assert_eq!(Compression::from_header(None), Ok(Compression::None));
        assert_eq!(
            Compression::from_header(Some("identity")),
            Ok(Compression::None)
        );
    }
}
