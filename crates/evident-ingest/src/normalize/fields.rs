//! Taking typed fields out of a raw JSON object, recording errors under the sender's names.

use crate::decode::kind;
use crate::error::FieldError;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A raw JSON object being taken apart; every taken key is removed, so whatever is
/// left at the end is a field the shape does not know.
pub(crate) struct Fields<'e> {
    map: Map<String, Value>,
    prefix: String,
    errors: &'e mut Vec<FieldError>,
}

impl<'e> Fields<'e> {
    /// The top-level object of an event.
    pub(crate) fn root(map: Map<String, Value>, errors: &'e mut Vec<FieldError>) -> Self {
        Self {
            map,
            prefix: String::new(),
            errors,
        }
    }

    /// The full path of `key` inside this object.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Records an error against `key`.
    pub(crate) fn error(&mut self, key: &str, reason: impl Into<String>) {
        let field = self.path(key);
        self.errors.push(FieldError::new(field, reason));
    }

    /// The first of `keys` present (and not null), removed together with the others.
    pub(crate) fn take(&mut self, keys: &[&str]) -> Option<(String, Value)> {
        let mut found = None;
        for key in keys {
            if let Some(v) = self.map.remove(*key)
                && found.is_none()
                && !v.is_null()
            {
                found = Some(((*key).to_owned(), v));
            }
        }
        found
    }

    /// A string field (first of `keys`).
    pub(crate) fn string(&mut self, keys: &[&str]) -> Option<String> {
        match self.take(keys)? {
            (_, Value::String(s)) => Some(s),
            (key, other) => {
                self.error(&key, format!("must be a string, got {}", kind(&other)));
                None
            }
        }
    }

    /// An identifier: a string, or an integer taken as its decimal text.
    pub(crate) fn ident(&mut self, keys: &[&str]) -> Option<String> {
        match self.take(keys)? {
            (_, Value::String(s)) => Some(s),
            (_, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            (key, other) => {
                self.error(
                    &key,
                    format!("must be a string or an integer, got {}", kind(&other)),
                );
                None
            }
        }
    }

    /// An object field (first of `keys`).
    pub(crate) fn object(&mut self, keys: &[&str]) -> Option<Map<String, Value>> {
        match self.take(keys)? {
            (_, Value::Object(m)) => Some(m),
            (key, other) => {
                self.error(&key, format!("must be a JSON object, got {}", kind(&other)));
                None
            }
        }
    }

    /// A nested object, taken apart with the same error list.
    pub(crate) fn nested(&mut self, key: &str) -> Option<Fields<'_>> {
        let map = self.object(&[key])?;
        let prefix = self.path(key);
        Some(Fields {
            map,
            prefix,
            errors: self.errors,
        })
    }

    /// A list of strings.
    pub(crate) fn strings(&mut self, key: &str) -> Vec<String> {
        let Some((key, value)) = self.take(&[key]) else {
            return Vec::new();
        };
        match value {
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .into_iter()
                .filter_map(|v| {
                    if let Value::String(s) = v {
                        Some(s)
                    } else {
                        None
                    }
                })
                .collect(),
            other => {
                self.error(
                    &key,
                    format!("must be an array of strings, got {}", kind(&other)),
                );
                Vec::new()
            }
        }
    }

    /// A string parsed by `parse`; `what` describes the accepted values for the error.
    pub(crate) fn parsed<T>(
        &mut self,
        keys: &[&str],
        parse: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Option<T> {
        let (key, value) = self.take(keys)?;
        let parsed = match &value {
            Value::String(s) => parse(s),
            Value::Number(n) => parse(&n.to_string()),
            _ => None,
        };
        if parsed.is_none() {
            self.error(&key, format!("{} is not {what}", describe(&value)));
        }
        parsed
    }

    /// An event time: RFC 3339 text (a missing offset means UTC), or a Unix time number
    /// (seconds; values of 10^11 and above are taken as milliseconds).
    pub(crate) fn time(&mut self, keys: &[&str]) -> Option<OffsetDateTime> {
        let (key, value) = self.take(keys)?;
        let parsed = match &value {
            Value::String(s) => parse_time_text(s),
            Value::Number(n) => n.as_f64().and_then(unix_number),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                &key,
                format!(
                    "{} is not a time; use RFC 3339 (2024-06-01T12:00:00Z) or Unix seconds",
                    describe(&value)
                ),
            );
        }
        parsed
    }

    /// Errors for every key nobody took.
    pub(crate) fn reject_unknown(self, hint: &str) {
        let Fields {
            map,
            prefix,
            errors,
        } = self;
        for key in map.keys() {
            let field = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            errors.push(FieldError::new(field, format!("unknown field{hint}")));
        }
    }
}

/// `value` quoted briefly for an error message.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() <= 64 => format!("{s:?}"),
        Value::String(_) => "the string".to_owned(),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

fn parse_time_text(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    // Python's isoformat() of a naive UTC time, and "YYYY-MM-DD HH:MM:SS": UTC.
    let with_t = s.replacen(' ', "T", 1);
    OffsetDateTime::parse(&format!("{with_t}Z"), &Rfc3339).ok()
}

fn unix_number(n: f64) -> Option<OffsetDateTime> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let seconds = if n >= 1e11 { n / 1000.0 } else { n };
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_in_the_shapes_senders_use() {
        assert_eq!(
            parse_time_text("2024-06-01T00:00:00.5Z"),
            Some(datetime!(2024-06-01 00:00:00.5 UTC))
        );
        assert_eq!(
            parse_time_text("2024-06-01T02:00:00+02:00"),
            Some(datetime!(2024-06-01 00:00:00 UTC))
        );
        assert_eq!(
            parse_time_text("2024-06-01T00:00:00.123456"),
            Some(datetime!(2024-06-01 00:00:00.123456 UTC))
        );
        assert_eq!(
            parse_time_text("2024-06-01 00:00:00"),
            Some(datetime!(2024-06-01 00:00:00 UTC))
        );
        assert_eq!(parse_time_text("yesterday"), None);
        assert_eq!(
            unix_number(1_717_200_000.0),
            Some(datetime!(2024-06-01 00:00:00 UTC))
        );
        assert_eq!(
            unix_number(1_717_200_000_000.0),
            Some(datetime!(2024-06-01 00:00:00 UTC))
        );
        assert_eq!(unix_number(-1.0), None);
    }
}
