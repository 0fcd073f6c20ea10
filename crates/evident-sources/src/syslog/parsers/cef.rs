//! ArcSight Common Event Format, as firewalls, IDS and OT security appliances send it:
//! `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|key=value key=value ...`.
//!
//! Header fields escape `|` and `\`; extension values escape `=`, `\`, and write line
//! breaks as `\n` / `\r`. A value runs until the next ` key=`.

use super::Parsed;
use serde_json::{Map, Value, json};

/// The message after `CEF:`.
pub fn parse(text: &str) -> Option<Parsed> {
    let (header, extension) = split_header(text, 7)?;
    let [
        version,
        vendor,
        product,
        device_version,
        signature,
        name,
        severity,
    ] = <[String; 7]>::try_from(header).ok()?;
    let extension = extension_pairs(&extension);
    let get = |key: &str| extension.get(key).and_then(Value::as_str);
    let level = severity_level(&severity);
    let action = get("act").or_else(|| get("deviceAction")).unwrap_or("");
    let mut parsed = classify(action, get("outcome"), level);
    parsed.severity = level.map(str::to_owned);
    if let Some(ip) = get("src").or_else(|| get("sourceAddress")) {
        parsed = parsed.ip(ip);
    }
    if let Some(user) = get("suser").or_else(|| get("sourceUserName")) {
        parsed = parsed.user(user);
    }
    for (key, name) in [
        ("dst", "ip"),
        ("dpt", "port"),
        ("dhost", "host"),
        ("duser", "user"),
        ("request", "url"),
    ] {
        if let Some(value) = get(key) {
            parsed = parsed.target(name, value);
        }
    }
    if let Some(rt) = get("rt").and_then(receipt_time) {
        parsed.time = Some(rt);
    }
    Some(parsed.data(
        "cef",
        json!({
            "version": version,
            "vendor": vendor,
            "product": product,
            "device_version": device_version,
            "signature_id": signature,
            "name": name,
            "severity": severity,
            "extension": extension,
        }),
    ))
}

/// Network denials and allowances by the device's action; anything else is an alert.
pub(super) fn classify(action: &str, outcome: Option<&str>, level: Option<&str>) -> Parsed {
    let action = action.to_ascii_lowercase();
    let denied = ["deny", "denied", "block", "drop", "reject", "prevent"];
    let allowed = ["allow", "accept", "permit", "pass"];
    let mut parsed = if denied.iter().any(|d| action.contains(d)) {
        Parsed::new("network.connection.denied")
            .category("network")
            .outcome("failure")
    } else if allowed.iter().any(|a| action.contains(a)) {
        Parsed::new("network.connection.allowed")
            .category("network")
            .outcome("success")
    } else {
        let parsed = Parsed::new("security.alert").category("threat");
        match outcome.map(str::to_ascii_lowercase).as_deref() {
            Some("success" | "succeeded") => parsed.outcome("success"),
            Some("failure" | "failed") => parsed.outcome("failure"),
            _ => parsed.outcome("unknown"),
        }
    };
    if !action.is_empty() {
        parsed = parsed.data("action", action);
    }
    if level.is_none() {
        parsed.severity = None;
    }
    parsed
}

/// CEF's severity (0–10, or Low / Medium / High / Very-High) on evident's scale.
fn severity_level(text: &str) -> Option<&'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "0" | "1" | "2" | "3" | "low" => Some("low"),
        "4" | "5" | "6" | "medium" => Some("medium"),
        "7" | "8" | "high" => Some("high"),
        "9" | "10" | "very-high" | "very high" => Some("critical"),
        _ => None,
    }
}

/// `rt` as milliseconds since the epoch (the usual form) in RFC 3339.
fn receipt_time(text: &str) -> Option<String> {
    let millis: i64 = text.trim().parse().ok()?;
    let time =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
    time.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The first `n` `|`-separated header fields (unescaped) and the rest of the text, or
/// `None` when there are fewer.
pub(super) fn split_header(text: &str, n: usize) -> Option<(Vec<String>, String)> {
    let mut fields = Vec::with_capacity(n);
    let mut current = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, next @ ('|' | '\\'))) => current.push(next),
                Some((_, next)) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == n {
                    return Some((fields, text[at + 1..].to_owned()));
                }
            }
            c => current.push(c),
        }
    }
    None
}

/// The extension's `key=value` pairs, unescaped.
fn extension_pairs(text: &str) -> Map<String, Value> {
    // Every unescaped `=` ends a key; the key starts after the last space before it.
    let bytes = text.as_bytes();
    let mut keys: Vec<(usize, usize)> = Vec::new(); // (key start, `=` position)
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                let start = text[..i].rfind(' ').map_or(0, |s| s + 1);
                let key = &text[start..i];
                if !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
                {
                    keys.push((start, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut out = Map::new();
    for (n, &(start, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(text.len(), |&(next, _)| next);
        let value = text[eq + 1..end].trim_end();
        out.insert(text[start..eq].to_owned(), Value::from(unescape(value)));
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
