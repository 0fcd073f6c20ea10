//! The shadow tools' lines: users and groups created, changed and deleted, group
//! membership (a privilege change when the group grants one), passwords changed.

use super::Parsed;

/// Groups whose members may act as root.
const ADMIN_GROUPS: &[&str] = &["sudo", "wheel", "admin", "root", "adm"];

/// A line useradd, usermod, userdel, groupadd, groupdel, groupmod, passwd, chpasswd,
/// gpasswd or chage wrote.
pub fn parse(text: &str) -> Option<Parsed> {
    if let Some(rest) = text.strip_prefix("new user: ") {
        let fields = comma_fields(rest);
        let name = field(&fields, "name")?;
        let mut parsed = change("user.account.create").target("user", name);
        for (key, value) in &fields {
            if *key != "name" {
                parsed = parsed.data(&key.to_ascii_lowercase(), *value);
            }
        }
        return Some(parsed);
    }
    if let Some(rest) = text
        .strip_prefix("new group: ")
        .or_else(|| text.strip_prefix("group added to /etc/group: "))
        .or_else(|| text.strip_prefix("group added to /etc/gshadow: "))
    {
        let fields = comma_fields(rest);
        let name = field(&fields, "name")?;
        let mut parsed = change("user.group.create").target("group", name);
        if let Some(gid) = field(&fields, "GID") {
            parsed = parsed.data("gid", gid);
        }
        return Some(parsed);
    }
    if let Some(rest) = text.strip_prefix("add '") {
        // add 'bob' to group 'sudo' / add 'bob' to shadow group 'sudo'
        let (user, rest) = rest.split_once('\'')?;
        let group = quoted(rest.split_once("group ")?.1)?;
        return Some(membership("user.role.add", user, group));
    }
    if let Some(rest) = text.strip_prefix("delete '") {
        // delete 'bob' from group 'sudo' (gpasswd -d)
        let (user, rest) = rest.split_once('\'')?;
        let group = quoted(rest.split_once("group ")?.1)?;
        return Some(membership("user.role.remove", user, group));
    }
    if let Some(rest) = text.strip_prefix("delete user ") {
        return Some(change("user.account.delete").target("user", quoted(rest)?));
    }
    if let Some(rest) = text.strip_prefix("removed group ") {
        return Some(change("user.group.delete").target("group", quoted(rest)?));
    }
    if let Some(rest) = text.strip_prefix("group ")
        && rest.contains(" removed")
    {
        return Some(change("user.group.delete").target("group", quoted(rest)?));
    }
    if let Some(rest) = text.strip_prefix("lock user ") {
        return Some(change("user.account.lock").target("user", quoted(rest)?));
    }
    if let Some(rest) = text.strip_prefix("unlock user ") {
        return Some(change("user.account.unlock").target("user", quoted(rest)?));
    }
    if let Some(rest) = text.strip_prefix("change user ") {
        let user = quoted(rest)?;
        let what = rest
            .splitn(3, '\'')
            .nth(2)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        let event_type = if what == "password" {
            "user.password.change"
        } else {
            "user.account.change"
        };
        return Some(
            change(event_type)
                .target("user", user)
                .data("changed", what),
        );
    }
    if let Some(rest) = text.strip_prefix("password for ") {
        // password for 'bob' changed by 'root'
        let user = quoted(rest)?;
        let by = rest.split_once(" by ").and_then(|(_, b)| quoted(b));
        let mut parsed = change("user.password.change").target("user", user);
        if let Some(by) = by {
            parsed = parsed.user(by);
        }
        return Some(parsed);
    }
    None
}

/// An account change that succeeded (the tools log only what they did).
fn change(event_type: &str) -> Parsed {
    Parsed::new(event_type)
        .category("authorization")
        .outcome("success")
        .severity("medium")
}

fn membership(event_type: &str, user: &str, group: &str) -> Parsed {
    let mut parsed = change(event_type)
        .target("user", user)
        .target("group", group);
    if ADMIN_GROUPS.contains(&group) {
        parsed = parsed.severity("high").data("admin_group", true);
    }
    parsed
}

/// `name=bob, UID=1001, ...` as pairs.
fn comma_fields(text: &str) -> Vec<(&str, &str)> {
    text.split(", ")
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn field<'a>(fields: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// The first `'quoted'` word of `text` (or its first word when nothing is quoted).
fn quoted(text: &str) -> Option<&str> {
    let text = text.trim_start();
    match text.strip_prefix('\'') {
        Some(inner) => inner.split_once('\'').map(|(q, _)| q),
        None => text.split_whitespace().next(),
    }
}
