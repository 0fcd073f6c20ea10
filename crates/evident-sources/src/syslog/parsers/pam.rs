//! PAM modules' lines (`pam_unix(sshd:auth): ...`): authentication failures, sessions
//! opened and closed, passwords changed, accounts locked.
//!
//! sshd logs every failed guess itself; PAM's failure line for sshd is kept as
//! `auth.pam.failure` with `data.pam.service` = `sshd`, which the default rules do not
//! count a second time.

use super::Parsed;
use super::keyvalue;
use serde_json::json;

/// A line a PAM module wrote.
pub fn parse(text: &str) -> Option<Parsed> {
    let open = text.find('(')?;
    let close = open + text[open..].find("):")?;
    let module = &text[..open];
    let (service, kind) = text[open + 1..close]
        .split_once(':')
        .unwrap_or((&text[open + 1..close], ""));
    let message = text[close + 2..].trim();
    let pam = json!({"module": module, "service": service, "type": kind});
    let parsed = if let Some(fields) = message.strip_prefix("authentication failure;") {
        let fields = keyvalue::pairs(fields);
        let mut parsed = Parsed::new("auth.pam.failure")
            .category("authentication")
            .outcome("failure")
            .severity("medium");
        if let Some(user) = fields.get("user") {
            parsed = parsed.user(user);
        }
        if let Some(rhost) = fields.get("rhost") {
            parsed = parsed.ip(rhost).target("remote_host", rhost.as_str());
        }
        if let Some(ruser) = fields.get("ruser").filter(|r| !r.is_empty()) {
            parsed = parsed.data("remote_user", ruser.as_str());
        }
        parsed
    } else if let Some(rest) = message.strip_prefix("session opened for user ") {
        let (user, by) = session_user(rest);
        let mut parsed = Parsed::new("auth.session.open")
            .category("authentication")
            .outcome("success")
            .user(user);
        if let Some(by) = by {
            parsed = parsed.data("by", by);
        }
        parsed
    } else if let Some(rest) = message.strip_prefix("session closed for user ") {
        let (user, _) = session_user(rest);
        Parsed::new("auth.session.close")
            .category("authentication")
            .outcome("success")
            .user(user)
    } else if let Some(user) = message.strip_prefix("password changed for ") {
        Parsed::new("user.password.change")
            .category("authentication")
            .outcome("success")
            .target("user", user.trim())
    } else if message.contains("user unknown") {
        Parsed::new("auth.pam.user_unknown")
            .category("authentication")
            .outcome("unknown")
            .severity("low")
    } else if message.contains("account temporarily locked") || message.contains("Account locked") {
        let user = message
            .split_once("for user ")
            .map(|(_, r)| r.split_whitespace().next().unwrap_or(""));
        let mut parsed = Parsed::new("auth.account.locked")
            .category("authentication")
            .outcome("unknown")
            .severity("high");
        if let Some(user) = user {
            parsed = parsed.user(user).target("user", user);
        }
        parsed
    } else {
        return None;
    };
    Some(parsed.data("pam", pam))
}

/// `alice(uid=1000) by (uid=0)` or `root by alice(uid=1000)`: the user, and who opened
/// the session for them.
fn session_user(text: &str) -> (&str, Option<&str>) {
    let (user, by) = match text.split_once(" by ") {
        Some((user, by)) => (user, Some(by)),
        None => (text, None),
    };
    let by = by.map(strip_uid).filter(|b| !b.is_empty());
    (strip_uid(user), by)
}

/// `alice(uid=1000)` → `alice`.
fn strip_uid(text: &str) -> &str {
    text.split('(').next().unwrap_or(text).trim()
}
