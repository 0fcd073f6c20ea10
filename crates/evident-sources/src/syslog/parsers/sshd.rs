//! OpenSSH's sshd: logins accepted and failed, invalid users, disconnects, connections
//! closed before authentication, attempts exceeded, and break-in warnings.
//!
//! One password guess makes one `auth.login.failure` (sshd's own "Failed password"
//! line); the "Invalid user" notice before it and PAM's line beside it are not counted
//! again, so the brute-force rules count guesses, not lines.

use super::{Parsed, address_port};

/// A line sshd wrote.
pub fn parse(text: &str) -> Option<Parsed> {
    if let Some(rest) = text.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (user, ip, port) = user_from(rest)?;
        return Some(
            Parsed::new("auth.login.success")
                .category("authentication")
                .outcome("success")
                .user(user)
                .ip(ip)
                .data("method", method)
                .data("port", port),
        );
    }
    if let Some(rest) = text.strip_prefix("Failed ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (invalid, rest) = strip_invalid(rest);
        let (user, ip, port) = user_from(rest)?;
        return Some(
            Parsed::new("auth.login.failure")
                .category("authentication")
                .outcome("failure")
                .severity("medium")
                .user(user)
                .ip(ip)
                .data("method", method)
                .data("port", port)
                .data("invalid_user", invalid),
        );
    }
    if let Some(rest) = text.strip_prefix("Invalid user ") {
        let (user, ip, port) = user_from(rest)?;
        // A notice: the failure itself is logged next (or the connection closes).
        return Some(
            Parsed::new("auth.user.invalid")
                .category("authentication")
                .outcome("unknown")
                .severity("low")
                .user(user)
                .ip(ip)
                .data("port", port),
        );
    }
    if let Some(rest) = text
        .strip_prefix("Disconnected from ")
        .or_else(|| text.strip_prefix("Connection closed by "))
        .or_else(|| text.strip_prefix("Connection reset by "))
        .or_else(|| text.strip_prefix("Disconnecting "))
    {
        return Some(closed(rest));
    }
    if let Some(rest) = text.strip_prefix("Received disconnect from ") {
        let (ip, port, rest) = address_port(rest)?;
        let reason = rest.trim_start_matches(':').trim();
        return Some(
            Parsed::new(if text.contains("[preauth]") {
                "auth.session.preauth_close"
            } else {
                "auth.session.disconnect"
            })
            .category("authentication")
            .outcome(if text.contains("[preauth]") {
                "unknown"
            } else {
                "success"
            })
            .ip(ip)
            .data("port", port)
            .data("reason", reason.trim_end_matches("[preauth]").trim()),
        );
    }
    if let Some(rest) = text
        .strip_prefix("error: maximum authentication attempts exceeded for ")
        .or_else(|| text.strip_prefix("maximum authentication attempts exceeded for "))
    {
        let (invalid, rest) = strip_invalid(rest);
        let (user, ip, port) = user_from(rest)?;
        // Each attempt was already logged as a failure.
        return Some(
            Parsed::new("auth.login.attempts_exceeded")
                .category("authentication")
                .outcome("unknown")
                .severity("medium")
                .user(user)
                .ip(ip)
                .data("port", port)
                .data("invalid_user", invalid),
        );
    }
    if text.contains("POSSIBLE BREAK-IN ATTEMPT") {
        let ip = bracketed_ip(text).or_else(|| {
            text.strip_prefix("Address ")
                .and_then(|r| r.split_whitespace().next())
        });
        let mut parsed = Parsed::new("threat.ssh.breakin_attempt")
            .category("threat")
            .outcome("unknown")
            .severity("medium");
        if let Some(ip) = ip {
            parsed = parsed.ip(ip);
        }
        return Some(parsed);
    }
    None
}

/// `invalid user ` before a user name, if there.
fn strip_invalid(text: &str) -> (bool, &str) {
    match text.strip_prefix("invalid user ") {
        Some(rest) => (true, rest),
        None => (false, text),
    }
}

/// `USER from IP port N...`: the user (which may hold spaces: an attacker picks it), the
/// address and the port.
fn user_from(text: &str) -> Option<(&str, &str, u16)> {
    let at = text.rfind(" from ")?;
    let (ip, port, _) = address_port(&text[at + " from ".len()..])?;
    Some((&text[..at], ip, port))
}

/// After "Disconnected from " or "Connection closed by ": `[user U |authenticating user
/// U |invalid user U ]IP port N[ [preauth]]`.
fn closed(rest: &str) -> Parsed {
    let preauth = rest.contains("[preauth]");
    let (user, rest) = ["authenticating user ", "invalid user ", "user "]
        .iter()
        .find_map(|prefix| rest.strip_prefix(prefix))
        .and_then(|r| {
            // The user name ends at the last space before the address.
            let port_at = r.rfind(" port ")?;
            let ip_at = r[..port_at].rfind(' ')?;
            Some((Some(&r[..ip_at]), &r[ip_at + 1..]))
        })
        .unwrap_or((None, rest));
    let mut parsed = Parsed::new(if preauth {
        "auth.session.preauth_close"
    } else {
        "auth.session.disconnect"
    })
    .category("authentication")
    .outcome(if preauth { "unknown" } else { "success" });
    if let Some(user) = user {
        parsed = parsed.user(user);
    }
    if let Some((ip, port, _)) = address_port(rest) {
        parsed = parsed.ip(ip).data("port", port);
    }
    parsed
}

/// The address in `[...]`, as in "getaddrinfo for host [1.2.3.4] failed".
fn bracketed_ip(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(&text[start..end])
}
