//! IBM QRadar's Log Event Extended Format:
//! `LEEF:1.0|Vendor|Product|Version|EventID|key=value<TAB>key=value ...`, and LEEF 2.0,
//! which names its own delimiter in a sixth header field (a character, or its code as
//! `x5E` / `0x5E`).

use super::Parsed;
use super::cef::{classify, split_header};
use serde_json::{Map, Value, json};

/// The message after `LEEF:`.
pub fn parse(text: &str) -> Option<Parsed> {
    let (version, _) = text.split_once('|')?;
    let two = version.trim().starts_with('2');
    let (header, rest) = split_header(text, if two { 6 } else { 5 })?;
    let delimiter = if two {
        delimiter(&header[5]).unwrap_or('\t')
    } else {
        '\t'
    };
    let mut attributes = Map::new();
    for pair in rest.split(delimiter) {
        if let Some((key, value)) = pair.split_once('=') {
            let key = key.trim();
            if !key.is_empty() {
                attributes.insert(key.to_owned(), Value::from(value.trim()));
            }
        }
    }
    let get = |key: &str| attributes.get(key).and_then(Value::as_str);
    let level = get("sev").and_then(severity_level);
    let action = get("action").or_else(|| get("act")).unwrap_or("");
    let mut parsed = classify(action, get("outcome"), level);
    parsed.severity = level.map(str::to_owned);
    if let Some(ip) = get("src") {
        parsed = parsed.ip(ip);
    }
    if let Some(user) = get("usrName").or_else(|| get("accountName")) {
        parsed = parsed.user(user);
    }
    for (key, name) in [("dst", "ip"), ("dstPort", "port"), ("resource", "resource")] {
        if let Some(value) = get(key) {
            parsed = parsed.target(name, value);
        }
    }
    Some(parsed.data(
        "leef",
        json!({
            "version": header[0],
            "vendor": header[1],
            "product": header[2],
            "product_version": header[3],
            "event_id": header[4],
            "attributes": attributes,
        }),
    ))
}

/// LEEF 2.0's delimiter field: one character, or its code in hex.
fn delimiter(field: &str) -> Option<char> {
    let field = field.trim();
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("x"))
        .or_else(|| field.strip_prefix("X"));
    match hex {
        Some(code) if !code.is_empty() => {
            u32::from_str_radix(code, 16).ok().and_then(char::from_u32)
        }
        _ => field.chars().next(),
    }
}

/// LEEF's `sev` (1–10) on evident's scale.
fn severity_level(text: &str) -> Option<&'static str> {
    match text.trim().parse::<u8>().ok()? {
        0..=3 => Some("low"),
        4..=6 => Some("medium"),
        7..=8 => Some("high"),
        _ => Some("critical"),
    }
}
