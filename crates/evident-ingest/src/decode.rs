//! Request body → one JSON object per event, with per-event errors for what is not.

use crate::error::{DecodeError, FieldError, Rejection};
use crate::limits::Limits;
use crate::strict::{self, Document, Duplicate};
use serde_json::{Map, Value};

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON event, or a JSON array of events.
    Json,
    /// One JSON event per line.
    Ndjson,
}

impl BodyFormat {
    /// The format a `Content-Type` header names; `None` (no header) sniffs the body:
    /// a body that parses as one JSON document is JSON, anything else NDJSON.
    pub fn from_content_type(content_type: Option<&str>, body: &[u8]) -> Result<Self, DecodeError> {
        let Some(ct) = content_type else {
            return Ok(
                if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                    Self::Json
                } else {
                    Self::Ndjson
                },
            );
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Ok(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Ok(Self::Ndjson),
            _ => Err(DecodeError::UnsupportedContentType(ct.to_owned())),
        }
    }
}

/// One event's raw object, or why it could not be read.
pub type RawItem = Result<Map<String, Value>, Rejection>;

/// Splits `body` into raw event objects, each with its body line (NDJSON only).
///
/// Whole-body problems (not JSON, no events, too many) are a [`DecodeError`]; a bad
/// element or line only rejects that event.
pub fn decode(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<(Option<usize>, RawItem)>, DecodeError> {
    let items: Vec<(Option<usize>, RawItem)> = match format {
        BodyFormat::Json => decode_json(body, limits)?
            .into_iter()
            .map(|item| (None, item))
            .collect(),
        BodyFormat::Ndjson => decode_ndjson(body, limits)?,
    };
    if items.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(items)
}

fn decode_json(body: &[u8], limits: &Limits) -> Result<Vec<RawItem>, DecodeError> {
    let document =
        strict::parse_document(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    match document {
        Document::Single(Value::Object(map), dup) => {
            Ok(vec![object_or_reject(Value::Object(map), dup, 0, None)])
        }
        Document::Array(items) => {
            if items.len() > limits.max_events {
                return Err(DecodeError::TooManyEvents {
                    count: items.len(),
                    limit: limits.max_events,
                });
            }
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(index, (v, dup))| object_or_reject(v, dup, index, None))
                .collect())
        }
        Document::Single(other, _) => Err(DecodeError::WrongShape(kind(&other))),
    }
}

fn decode_ndjson(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<(Option<usize>, RawItem)>, DecodeError> {
    let mut items = Vec::new();
    for (line_no, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let index = items.len();
        if index == limits.max_events {
            return Err(DecodeError::TooManyEvents {
                count: index + 1,
                limit: limits.max_events,
            });
        }
        let line_no = Some(line_no + 1);
        if line.len() > limits.max_event_bytes {
            let reason = format!(
                "line is {} bytes, over the {}-byte event limit",
                line.len(),
                limits.max_event_bytes
            );
            items.push((
                line_no,
                Err(reject(index, line_no, FieldError::new("", reason))),
            ));
            continue;
        }
        let item = match strict::parse_value(line) {
            Ok((v, dup)) => object_or_reject(v, dup, index, line_no),
            Err(e) => Err(reject(
                index,
                line_no,
                FieldError::new("", format!("line is not valid JSON: {e}")),
            )),
        };
        items.push((line_no, item));
    }
    Ok(items)
}

/// The event object, or its rejection: not an object, or an object repeating a key
/// (which the sender may have meant either way, so neither value is guessed).
fn object_or_reject(
    value: Value,
    dup: Option<Duplicate>,
    index: usize,
    line: Option<usize>,
) -> RawItem {
    match (value, dup) {
        (Value::Object(_), Some(dup)) => {
            let reason = format!(
                "duplicate key `{}`: a key may appear only once in an object",
                dup.key()
            );
            Err(reject(index, line, FieldError::new(dup.path(), reason)))
        }
        (Value::Object(map), None) => Ok(map),
        (other, _) => {
            let reason = format!("an event must be a JSON object, got {}", kind(&other));
            Err(reject(index, line, FieldError::new("", reason)))
        }
    }
}

fn reject(index: usize, line: Option<usize>, error: FieldError) -> Rejection {
    Rejection {
        index,
        line,
        errors: vec![error],
    }
}

/// The JSON kind of `v`, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks nesting depth and string sizes of one raw event, naming the first offending path.
pub fn check_bounds(map: &Map<String, Value>, limits: &Limits) -> Result<(), FieldError> {
    let mut path = Vec::new();
    walk_map(map, 1, limits, &mut path)
}

fn walk_map<'a>(
    map: &'a Map<String, Value>,
    depth: usize,
    limits: &Limits,
    path: &mut Vec<&'a str>,
) -> Result<(), FieldError> {
    for (key, value) in map {
        if key.len() > limits.max_string_bytes {
            return Err(FieldError::new(
                path.join("."),
                format!(
                    "object key of {} bytes exceeds the {}-byte limit",
                    key.len(),
                    limits.max_string_bytes
                ),
            ));
        }
        path.push(key);
        walk_value(value, depth, limits, path)?;
        path.pop();
    }
    Ok(())
}

fn walk_value<'a>(
    value: &'a Value,
    depth: usize,
    limits: &Limits,
    path: &mut Vec<&'a str>,
) -> Result<(), FieldError> {
    match value {
        Value::String(s) if s.len() > limits.max_string_bytes => Err(FieldError::new(
            path.join("."),
            format!(
                "string of {} bytes exceeds the {}-byte limit",
                s.len(),
                limits.max_string_bytes
            ),
        )),
        Value::Object(_) | Value::Array(_) if depth >= limits.max_depth => Err(FieldError::new(
            path.join("."),
            format!("nested deeper than {} levels", limits.max_depth),
        )),
        Value::Object(m) => walk_map(m, depth + 1, limits, path),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| walk_value(v, depth + 1, limits, path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_line_numbers() {
        let body = b"{\"type\":\"a.b\"}\n\n  \r\nnot json\n[1]\n";
        let items = decode(body, BodyFormat::Ndjson, &Limits::default()).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].0, Some(1));
        assert!(items[0].1.is_ok());
        let bad = items[1].1.as_ref().unwrap_err();
        assert_eq!((bad.index, bad.line, items[1].0), (1, Some(4), Some(4)));
        assert!(bad.errors[0].reason.contains("not valid JSON"));
        assert!(
            items[2].1.as_ref().unwrap_err().errors[0]
                .reason
                .contains("got an array")
        );
    }

    #[test]
    fn sniffing_without_content_type() {
        assert_eq!(
            BodyFormat::from_content_type(None, b"[{}]").unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            BodyFormat::from_content_type(None, b"{}\n{}").unwrap(),
            BodyFormat::Ndjson
        );
        assert!(BodyFormat::from_content_type(Some("text/plain"), b"{}").is_err());
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8"), b"").unwrap(),
            BodyFormat::Json
        );
    }

    #[test]
    fn too_many_events_is_refused_whole() {
        let limits = Limits {
            max_events: 2,
            ..Limits::default()
        };
        let err = decode(b"[{},{},{}]", BodyFormat::Json, &limits).unwrap_err();
        assert_eq!(err, DecodeError::TooManyEvents { count: 3, limit: 2 });
        assert!(decode(b"{}\n{}\n{}", BodyFormat::Ndjson, &limits).is_err());
    }

    #[test]
    fn bounds_name_the_offending_path() {
        let limits = Limits {
            max_depth: 3,
            max_string_bytes: 4,
            ..Limits::default()
        };
        let v: Value = serde_json::from_str(r#"{"data":{"a":"12345"}}"#).unwrap();
        let err = check_bounds(v.as_object().unwrap(), &limits).unwrap_err();
        assert_eq!(err.field, "data.a");
        let v: Value = serde_json::from_str(r#"{"data":{"a":{"b":{}}}}"#).unwrap();
        let err = check_bounds(v.as_object().unwrap(), &limits).unwrap_err();
        assert_eq!(err.field, "data.a.b");
    }
}
