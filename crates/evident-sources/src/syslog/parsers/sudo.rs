//! sudo and su: commands run as another user, and the attempts refused.

use super::Parsed;

/// A line sudo wrote: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`,
/// or the same with a reason first (`3 incorrect password attempts ; TTY=...`,
/// `user NOT in sudoers ; ...`, `command not allowed ; ...`).
pub fn parse_sudo(text: &str) -> Option<Parsed> {
    let (user, rest) = text.split_once(" : ")?;
    let user = user.trim();
    let mut fields = Vec::new();
    let mut reason = None;
    for part in rest.split(" ; ") {
        match part.split_once('=') {
            Some((key, value)) if key.chars().all(|c| c.is_ascii_uppercase()) => {
                fields.push((key, value.trim()));
            }
            _ if reason.is_none() && fields.is_empty() => reason = Some(part.trim()),
            _ => {}
        }
    }
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let command = field("COMMAND")?;
    let mut parsed = match reason {
        None => Parsed::new("privilege.sudo.command")
            .category("authorization")
            .outcome("success"),
        Some(reason) if reason.contains("incorrect password") => {
            let attempts: Option<u64> = reason
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
            let mut parsed = Parsed::new("privilege.sudo.auth_failure")
                .category("authorization")
                .outcome("failure")
                .severity("medium");
            if let Some(n) = attempts {
                parsed = parsed.data("attempts", n);
            }
            parsed.data("reason", reason)
        }
        Some(reason) => Parsed::new("privilege.sudo.denied")
            .category("authorization")
            .outcome("failure")
            .severity("high")
            .data("reason", reason),
    };
    parsed = parsed.user(user).data("command", command);
    if let Some(target) = field("USER") {
        parsed = parsed.target("user", target);
    }
    for (key, name) in [("TTY", "tty"), ("PWD", "cwd")] {
        if let Some(value) = field(key) {
            parsed = parsed.data(name, value);
        }
    }
    Some(parsed)
}

/// A line su wrote: `Successful su for root by alice`, `FAILED su for root by alice`,
/// `FAILED SU (to root) alice on pts/0`, `(to root) alice on pts/0`.
pub fn parse_su(text: &str) -> Option<Parsed> {
    let (failed, user, target, tty) = if let Some(rest) = text
        .strip_prefix("Successful su for ")
        .map(|r| (false, r))
        .or_else(|| text.strip_prefix("FAILED su for ").map(|r| (true, r)))
    {
        let (failed, rest) = rest;
        let (target, user) = rest.split_once(" by ")?;
        (failed, user.trim(), target.trim(), None)
    } else {
        let (failed, rest) = match text.strip_prefix("FAILED SU ") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let rest = rest.strip_prefix("(to ")?;
        let (target, rest) = rest.split_once(") ")?;
        let (user, tty) = rest.split_once(" on ").unwrap_or((rest, ""));
        (failed, user.trim(), target.trim(), Some(tty.trim()))
    };
    let mut parsed = if failed {
        Parsed::new("privilege.su.failure")
            .category("authorization")
            .outcome("failure")
            .severity("medium")
    } else {
        Parsed::new("privilege.su")
            .category("authorization")
            .outcome("success")
    };
    parsed = parsed.user(user).target("user", target);
    if let Some(tty) = tty.filter(|t| !t.is_empty()) {
        parsed = parsed.data("tty", tty);
    }
    Some(parsed)
}
