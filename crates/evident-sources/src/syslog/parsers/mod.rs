//! Parsers that turn the text of a syslog message into a typed event: sshd, PAM, sudo
//! and su, the account tools (useradd, usermod, userdel, groupadd, passwd, ...), auditd
//! records, and CEF and LEEF (the formats of firewalls and OT security appliances).
//!
//! Each parser reads only what it is sure of and says nothing otherwise: a message no
//! parser knows stays a `log.syslog` event with its text searchable.

mod accounts;
mod auditd;
mod cef;
mod keyvalue;
mod leef;
mod pam;
mod sshd;
mod sudo;

use serde_json::{Map, Value};

/// What a parser made of one message: the canonical fields it could tell, and the rest
/// of what it read under `data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The event type, e.g. `auth.login.failure`.
    pub event_type: String,
    /// `authentication`, `authorization`, `network`, ... (else the taxonomy decides).
    pub category: Option<&'static str>,
    /// `success`, `failure` or `unknown` (else the type's last word decides).
    pub outcome: Option<&'static str>,
    /// A severity name or alias (else the message's syslog severity).
    pub severity: Option<String>,
    /// The user acting (`actor.user_id`).
    pub user: Option<String>,
    /// The address acting from (`actor.ip`).
    pub ip: Option<String>,
    /// What was acted on (`target.*`).
    pub target: Map<String, Value>,
    /// Everything else the parser read.
    pub data: Map<String, Value>,
    /// The event's own time, when the message carries one more exact than its header
    /// (auditd's serial time, CEF's `rt`): RFC 3339.
    pub time: Option<String>,
}

impl Parsed {
    fn new(event_type: &str) -> Self {
        Self {
            event_type: event_type.to_owned(),
            ..Self::default()
        }
    }

    fn category(mut self, category: &'static str) -> Self {
        self.category = Some(category);
        self
    }

    fn outcome(mut self, outcome: &'static str) -> Self {
        self.outcome = Some(outcome);
        self
    }

    fn severity(mut self, severity: &str) -> Self {
        self.severity = Some(severity.to_owned());
        self
    }

    fn user(mut self, user: &str) -> Self {
        if !user.is_empty() {
            self.user = Some(user.to_owned());
        }
        self
    }

    fn ip(mut self, ip: &str) -> Self {
        if ip.parse::<std::net::IpAddr>().is_ok() {
            self.ip = Some(ip.to_owned());
        }
        self
    }

    fn target(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.target.insert(key.to_owned(), value.into());
        self
    }

    fn data(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

/// The parser for a message from `app` (the syslog APP-NAME or 3164 tag) with this text,
/// if one knows it.
pub fn parse(app: Option<&str>, text: &str) -> Option<Parsed> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("CEF:") {
        return cef::parse(rest);
    }
    if let Some(rest) = text.strip_prefix("LEEF:") {
        return leef::parse(rest);
    }
    if text.starts_with("type=") && text.contains("msg=audit(") {
        return auditd::parse(text);
    }
    if text.starts_with("pam_") {
        return pam::parse(text);
    }
    match app.map(|a| a.rsplit('/').next().unwrap_or(a)) {
        Some("sshd" | "sshd-session") => sshd::parse(text),
        Some("sudo") => sudo::parse_sudo(text),
        Some("su") => sudo::parse_su(text),
        Some(
            "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "groupdel" | "passwd"
            | "chpasswd" | "gpasswd" | "chage" | "newusers",
        ) => accounts::parse(text),
        _ => None,
    }
}

/// `ip port N` at the start of `text`: the address and the port.
fn address_port(text: &str) -> Option<(&str, u16, &str)> {
    let (ip, rest) = text.split_once(" port ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let port = rest[..digits].parse().ok()?;
    Some((ip, port, &rest[digits..]))
}

#[cfg(test)]
mod tests;
