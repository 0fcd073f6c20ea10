//! Linux audit records (`type=USER_AUTH msg=audit(1701950000.123:456): ...`), as
//! audisp-syslog forwards them or as they stand in audit.log: logins and authentications
//! (USER_AUTH, USER_LOGIN), commands run through sudo (USER_CMD), programs executed
//! (EXECVE) and changes to the audit configuration (CONFIG_CHANGE).

use super::Parsed;
use super::keyvalue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `auid` and `uid` of nobody: no login user.
const UNSET_ID: &str = "4294967295";

/// An audit record.
pub fn parse(text: &str) -> Option<Parsed> {
    let record_type = text.strip_prefix("type=")?.split_whitespace().next()?;
    let stamp_start = text.find("msg=audit(")? + "msg=audit(".len();
    let stamp_end = stamp_start + text[stamp_start..].find(')')?;
    let (time, serial) = text[stamp_start..stamp_end].split_once(':')?;
    let body = text[stamp_end + 1..].trim_start_matches(':');
    let mut fields = BTreeMap::new();
    let mut nested = None;
    for (key, value, quoted) in keyvalue::marked(body) {
        if key == "msg" {
            // The user-space records nest their own fields in msg='...'.
            nested = Some(value);
        } else {
            let value = decoded(&key, value, quoted);
            fields.insert(key, value);
        }
    }
    if let Some(inner) = nested {
        for (key, value, quoted) in keyvalue::marked(&inner) {
            let value = decoded(&key, value, quoted);
            fields.insert(key, value);
        }
    }
    let mut parsed = match record_type {
        "USER_AUTH" | "USER_LOGIN" => {
            let event_type = if record_type == "USER_AUTH" {
                "audit.user_auth"
            } else {
                "audit.user_login"
            };
            let failed = fields.get("res").is_some_and(|r| r.starts_with("fail"));
            let mut parsed = Parsed::new(event_type)
                .category("authentication")
                .outcome(if failed { "failure" } else { "success" });
            if failed {
                parsed = parsed.severity("medium");
            }
            if let Some(user) = fields.get("acct").or_else(|| fields.get("id")) {
                parsed = parsed.user(user);
            }
            if let Some(addr) = fields.get("addr").filter(|a| *a != "?") {
                parsed = parsed.ip(addr);
            }
            parsed
        }
        "USER_CMD" => {
            let mut parsed = Parsed::new("audit.user_cmd")
                .category("process")
                .outcome(outcome(&fields));
            if let Some(cmd) = fields.get("cmd") {
                parsed = parsed.data("command", cmd.as_str());
            }
            parsed
        }
        "EXECVE" => {
            let argc: usize = fields.get("argc").and_then(|a| a.parse().ok()).unwrap_or(0);
            let args: Vec<String> = (0..argc.min(64))
                .filter_map(|i| fields.get(&format!("a{i}")).cloned())
                .collect();
            Parsed::new("audit.execve")
                .category("process")
                .outcome("success")
                .data("command", args.join(" "))
                .data("args", args)
        }
        "CONFIG_CHANGE" => Parsed::new("config.audit.change")
            .category("system")
            .outcome(outcome(&fields))
            .severity("high"),
        other => Parsed::new(&format!("audit.{}", other.to_ascii_lowercase())).category("system"),
    };
    if parsed.user.is_none()
        && let Some(auid) = fields.get("auid").filter(|a| *a != UNSET_ID)
    {
        parsed = parsed.user(auid);
    }
    if let Some(time) = epoch_to_rfc3339(time) {
        parsed.time = Some(time);
    }
    let mut audit = Map::new();
    audit.insert("type".into(), Value::from(record_type));
    audit.insert("serial".into(), Value::from(serial));
    for (key, value) in &fields {
        audit.insert(key.clone(), Value::from(value.as_str()));
    }
    Some(parsed.data("audit", audit))
}

fn outcome(fields: &BTreeMap<String, String>) -> &'static str {
    match fields.get("res").map(String::as_str) {
        Some("success" | "1" | "yes") => "success",
        Some(r) if r.starts_with("fail") || r == "0" || r == "no" => "failure",
        _ => "unknown",
    }
}

/// auditd quotes a plain text value and writes one with spaces or quotes as hex,
/// unquoted: an unquoted text field of hex digits that decodes to text is decoded.
/// (Numbers are never quoted, so only the text fields are tried.)
fn decoded(key: &str, value: String, quoted: bool) -> String {
    let text_field = matches!(key, "cmd" | "proctitle" | "acct" | "exe" | "cwd" | "comm")
        || (key.starts_with('a') && key[1..].bytes().all(|b| b.is_ascii_digit()) && key.len() > 1);
    if quoted || !text_field {
        value
    } else {
        unhex(&value)
    }
}

/// `value` decoded from hex when it is hex digits of whole bytes that make UTF-8 text
/// (NULs, as between proctitle's arguments, become spaces); as it is otherwise.
fn unhex(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() < 2 || !bytes.len().is_multiple_of(2) || !bytes.iter().all(u8::is_ascii_hexdigit)
    {
        return value.to_owned();
    }
    let decoded: Option<Vec<u8>> = bytes
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    decoded
        .and_then(|d| String::from_utf8(d).ok())
        .filter(|s| s.chars().all(|c| !c.is_control() || c == '\0'))
        .map(|s| s.replace('\0', " "))
        .unwrap_or_else(|| value.to_owned())
}

/// `1701950000.123` (seconds since the epoch) as RFC 3339.
fn epoch_to_rfc3339(text: &str) -> Option<String> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().ok()?;
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let time = time::OffsetDateTime::from_unix_timestamp(secs).ok()?
        + time::Duration::milliseconds(millis);
    time.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
