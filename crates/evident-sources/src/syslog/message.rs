//! One syslog message (RFC 5424 or RFC 3164, through syslog_loose) as a raw event in the
//! canonical shape, for admission to normalize and validate like any other.

use super::framing::Cut;
use super::networks::Networks;
use super::parsers::{self, Parsed};
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use time::OffsetDateTime;

/// The type of a message no parser knows: its text stays searchable in `data.message`.
pub const UNPARSED_TYPE: &str = "log.syslog";

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A TCP stream.
    Tcp,
    /// A TLS stream.
    Tls,
    /// A line of a file, read by `evident agent`.
    File,
}

impl Transport {
    /// Its name in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::File => "file",
        }
    }
}

/// One message as it was read, before it is parsed.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message bytes (without framing), at most the configured maximum.
    pub bytes: bytes::Bytes,
    /// Whether it was cut, and how.
    pub cut: Option<Cut>,
    /// The sender's address.
    pub peer: IpAddr,
    /// How it came.
    pub transport: Transport,
    /// Set when admission refused the event this message made (a JSON message that is
    /// not a valid event): the message is then kept as text, with this reason.
    pub refused: Option<String>,
}

/// The raw event for one received message, as of `now` (which resolves the year of RFC
/// 3164 timestamps: this year, or last year for a date more than a day ahead).
///
/// A message whose text is one JSON object is taken as an event in any shape evident
/// accepts over HTTP (applications that log their security events as JSON over syslog),
/// as it is. Any other message is parsed by the parsers, or kept as `log.syslog`.
pub fn to_event(
    message: &Received,
    networks: &Networks,
    now: OffsetDateTime,
) -> Map<String, Value> {
    let text = String::from_utf8_lossy(&message.bytes);
    let invalid_utf8 = matches!(text, std::borrow::Cow::Owned(_));
    let text = text.trim_start_matches('\u{feff}');
    let parsed = syslog_loose::parse_message_with_year(
        text,
        year_resolver(now),
        syslog_loose::Variant::Either,
    );
    let appname = parsed.appname.map(str::to_owned);
    let (app, body) = split_structured_formats(appname.as_deref(), parsed.msg, text);
    if message.refused.is_none()
        && let Some(object) = json_event(body)
    {
        return object;
    }
    let found = if message.refused.is_some() {
        None
    } else {
        parsers::parse(app, body)
    };

    let mut syslog = Map::new();
    if let Some(host) = parsed.hostname {
        syslog.insert("host".into(), json!(host));
    }
    if let Some(app) = app {
        syslog.insert("app".into(), json!(app));
    }
    if let Some(procid) = &parsed.procid {
        syslog.insert("procid".into(), json!(procid.to_string()));
    }
    if let Some(msgid) = parsed.msgid {
        syslog.insert("msgid".into(), json!(msgid));
    }
    if let Some(facility) = parsed.facility {
        syslog.insert("facility".into(), json!(facility.as_str()));
    }
    if let Some(severity) = parsed.severity {
        syslog.insert("severity".into(), json!(severity.as_str()));
    }
    if !parsed.structured_data.is_empty() {
        let mut elements = Map::new();
        for element in &parsed.structured_data {
            let params: Map<String, Value> = element
                .params()
                .map(|(k, v)| (k.to_string(), json!(v.to_string())))
                .collect();
            elements.insert(element.id.to_string(), Value::Object(params));
        }
        syslog.insert("structured_data".into(), Value::Object(elements));
    }
    syslog.insert("peer".into(), json!(message.peer.to_string()));
    syslog.insert("transport".into(), json!(message.transport.as_str()));
    if let Some(cut) = message.cut {
        syslog.insert("cut".into(), json!(cut.describe()));
    }
    if invalid_utf8 {
        syslog.insert("invalid_utf8".into(), json!(true));
    }
    if let Some(reason) = &message.refused {
        syslog.insert("refused".into(), json!(reason));
    }

    let Parsed {
        event_type,
        category,
        outcome,
        severity,
        user,
        ip,
        mut target,
        mut data,
        time,
    } = found.unwrap_or_else(|| Parsed {
        event_type: UNPARSED_TYPE.into(),
        category: Some("system"),
        ..Parsed::default()
    });
    data.insert("message".into(), json!(body));
    data.insert("syslog".into(), Value::Object(syslog));
    if let Some(host) = parsed.hostname
        && !target.contains_key("host")
    {
        target.insert("host".into(), json!(host));
    }

    let mut event = Map::new();
    event.insert("type".into(), json!(event_type));
    let time = time.or_else(|| parsed.timestamp.map(|t| t.to_rfc3339()));
    if let Some(time) = time {
        event.insert("time".into(), json!(time));
    }
    let severity = severity.or_else(|| parsed.severity.map(|s| s.as_str().to_owned()));
    if let Some(severity) = severity {
        event.insert("severity".into(), json!(severity));
    }
    if let Some(category) = category {
        event.insert("category".into(), json!(category));
    }
    if let Some(outcome) = outcome {
        event.insert("outcome".into(), json!(outcome));
    }
    event.insert("source".into(), json!(app.unwrap_or("syslog")));
    let mut actor = Map::new();
    if let Some(user) = user {
        actor.insert("user_id".into(), json!(user));
    }
    if let Some(ip) = ip {
        actor.insert("ip".into(), json!(ip));
    }
    if !actor.is_empty() {
        event.insert("actor".into(), Value::Object(actor));
    }
    if !target.is_empty() {
        event.insert("target".into(), Value::Object(target));
    }
    if let Some(facility) = networks.facility_of(message.peer) {
        event.insert("facility".into(), json!(facility));
    }
    event.insert("data".into(), Value::Object(data));
    event
}

/// The message's text as one JSON object, if that is what it is.
fn json_event(body: &str) -> Option<Map<String, Value>> {
    let trimmed = body.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return None;
    }
    match serde_json::from_str::<Value>(trimmed).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// CEF and LEEF messages read by a 3164 parser come out with `CEF` or `LEEF` as their
/// tag (`CEF:0|...` looks like `tag: message`): put the format back in front of the
/// message, and name no app. Otherwise the app and the message as parsed.
fn split_structured_formats<'a>(
    app: Option<&'a str>,
    msg: &'a str,
    text: &'a str,
) -> (Option<&'a str>, &'a str) {
    for format in ["CEF:", "LEEF:"] {
        if (app == Some(&format[..format.len() - 1]) || msg.starts_with(format))
            && let Some(at) = text.find(format)
        {
            return (None, &text[at..]);
        }
    }
    (app, msg)
}

/// The year for a timestamp without one: this year, unless that puts the date more than a
/// day ahead of `now` (a December message read in January), then last year.
fn year_resolver(now: OffsetDateTime) -> impl Fn(syslog_loose::IncompleteDate) -> i32 + Copy {
    move |(month, day, hour, minute, second): syslog_loose::IncompleteDate| {
        let year = now.year();
        let this_year = time::Month::try_from(month as u8)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(year, m, day as u8).ok())
            .and_then(|d| d.with_hms(hour as u8, minute as u8, second as u8).ok())
            .map(|d| d.assume_utc());
        match this_year {
            Some(t) if t > now + time::Duration::days(1) => year - 1,
            _ => year,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-07 06:30 UTC);

    fn event(text: &str) -> Map<String, Value> {
        let networks = Networks::new([("10.20.0.0/16", "plant-a")]).unwrap();
        let message = Received {
            bytes: bytes::Bytes::copy_from_slice(text.as_bytes()),
            cut: None,
            peer: "10.20.4.7".parse().unwrap(),
            transport: Transport::Tcp,
            refused: None,
        };
        to_event(&message, &networks, NOW)
    }

    #[test]
    fn a_bsd_sshd_line_becomes_a_typed_event_with_its_header() {
        let e = event(
            "<38>Dec  7 06:02:03 line3-gw sshd[20502]: Failed password for root from 203.0.113.9 port 40188 ssh2",
        );
        assert_eq!(e["type"], "auth.login.failure");
        assert_eq!(e["actor"]["user_id"], "root");
        assert_eq!(e["actor"]["ip"], "203.0.113.9");
        assert_eq!(e["target"]["host"], "line3-gw");
        assert_eq!(e["source"], "sshd");
        assert_eq!(e["facility"], "plant-a");
        assert_eq!(e["time"], "2026-12-07T06:02:03+00:00");
        let syslog = &e["data"]["syslog"];
        assert_eq!(syslog["facility"], "auth");
        assert_eq!(syslog["procid"], "20502");
        assert_eq!(syslog["peer"], "10.20.4.7");
    }

    #[test]
    fn a_december_line_read_in_january_is_last_years() {
        let networks = Networks::default();
        let message = Received {
            bytes: bytes::Bytes::from_static(b"<13>Dec 31 23:59:00 h app: x"),
            cut: None,
            peer: "10.0.0.1".parse().unwrap(),
            transport: Transport::Udp,
            refused: None,
        };
        let e = to_event(&message, &networks, datetime!(2027-01-01 00:01 UTC));
        assert_eq!(e["time"], "2026-12-31T23:59:00+00:00");
    }

    #[test]
    fn an_rfc5424_message_keeps_its_structured_data() {
        let e = event(
            r#"<86>1 2026-12-07T06:00:00.123Z gw sudo 4242 ID47 [origin ip="10.20.4.7"] alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"#,
        );
        assert_eq!(e["type"], "privilege.sudo.command");
        assert_eq!(e["data"]["syslog"]["msgid"], "ID47");
        assert_eq!(
            e["data"]["syslog"]["structured_data"]["origin"]["ip"],
            "10.20.4.7"
        );
        assert_eq!(e["time"], "2026-12-07T06:00:00.123+00:00");
    }

    #[test]
    fn cef_behind_a_bsd_header_is_found() {
        let e = event(
            "<134>Dec  7 06:00:00 fw01 CEF:0|Fortinet|FortiGate|7.2|13|deny|4|src=198.51.100.23 dst=10.20.4.10 act=deny",
        );
        assert_eq!(e["type"], "network.connection.denied");
        assert_eq!(e["actor"]["ip"], "198.51.100.23");
        assert_eq!(e["data"]["cef"]["vendor"], "Fortinet");
    }

    #[test]
    fn a_json_message_is_an_event_as_sent() {
        let e = event(
            r#"<134>1 2026-01-01T00:00:00Z bench app - - - {"eventType":"user.login","userId":"u1"}"#,
        );
        assert_eq!(e["eventType"], "user.login");
        assert_eq!(e.len(), 2, "taken as it is: {e:?}");
    }

    #[test]
    fn a_refused_json_message_is_kept_as_text_with_the_reason() {
        let networks = Networks::default();
        let message = Received {
            bytes: bytes::Bytes::from_static(br#"<13>Dec  7 06:00:00 h app: {"type":"BAD TYPE"}"#),
            cut: None,
            peer: "10.0.0.1".parse().unwrap(),
            transport: Transport::Tcp,
            refused: Some("type: not a type".into()),
        };
        let e = to_event(&message, &networks, NOW);
        assert_eq!(e["type"], UNPARSED_TYPE);
        assert_eq!(e["data"]["message"], r#"{"type":"BAD TYPE"}"#);
        assert_eq!(e["data"]["syslog"]["refused"], "type: not a type");
    }

    #[test]
    fn anything_else_is_a_searchable_log_event() {
        let e = event("<6>Dec  7 06:00:00 plc-gw kernel: eth0: link up");
        assert_eq!(e["type"], UNPARSED_TYPE);
        assert_eq!(e["category"], "system");
        assert_eq!(e["severity"], "info");
        assert_eq!(e["data"]["message"], "eth0: link up");
        let bare = event("no header at all");
        assert_eq!(bare["type"], UNPARSED_TYPE);
        assert_eq!(bare["source"], "syslog");
        assert_eq!(bare["data"]["message"], "no header at all");
    }

    #[test]
    fn every_event_made_passes_admission() {
        for line in [
            "<38>Dec  7 06:02:03 line3-gw sshd[20502]: Failed password for root from 203.0.113.9 port 40188 ssh2",
            "<134>Dec  7 06:00:00 fw01 CEF:0|Claroty|CTD|4.8|a1|Unauthorized download|9|src=10.20.9.44 rt=1765087900123",
            "<6>Dec  7 06:00:00 plc-gw kernel: eth0: link up",
            "garbage \u{fffd} bytes",
            "<13>1 - - - - - -",
        ] {
            let normalized = evident_ingest::normalize_items(
                vec![(None, Ok(event(line)))],
                &evident_ingest::Limits::default(),
                &evident_ingest::PriorityRules::default(),
                NOW,
            );
            assert!(
                normalized.rejected.is_empty(),
                "{line}: {:?}",
                normalized.rejected
            );
        }
    }
}
