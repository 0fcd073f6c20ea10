use super::*;

/// `(app, text)` of a 3164 line as it stands in auth.log: `MMM dd HH:MM:SS host app[pid]: text`.
fn split_line(line: &str) -> (&str, &str) {
    let rest = &line[16..];
    let (_, rest) = rest.split_once(' ').unwrap();
    let (tag, text) = rest.split_once(": ").unwrap();
    (tag.split('[').next().unwrap(), text)
}

fn auth_log() -> Vec<(String, Option<Parsed>)> {
    include_str!("../../../tests/fixtures/auth.log")
        .lines()
        .map(|line| {
            let (app, text) = split_line(line);
            (line.to_owned(), parse(Some(app), text))
        })
        .collect()
}

fn types(parsed: &[(String, Option<Parsed>)]) -> Vec<&str> {
    parsed
        .iter()
        .map(|(_, p)| p.as_ref().map_or("-", |p| p.event_type.as_str()))
        .collect()
}

#[test]
fn every_line_of_a_real_auth_log_gets_its_type() {
    let parsed = auth_log();
    assert_eq!(
        types(&parsed),
        vec![
            "auth.user.invalid",
            "auth.pam.user_unknown",
            "auth.pam.failure",
            "auth.login.failure",
            "auth.session.preauth_close",
            "auth.pam.failure",
            "auth.login.failure",
            "auth.login.attempts_exceeded",
            "auth.session.preauth_close",
            "auth.login.success",
            "auth.session.open",
            "auth.session.disconnect",
            "auth.session.disconnect",
            "auth.session.close",
            "auth.login.success",
            "threat.ssh.breakin_attempt",
            "auth.session.preauth_close",
            "privilege.sudo.command",
            "auth.session.open",
            "privilege.sudo.auth_failure",
            "privilege.sudo.denied",
            "privilege.su.failure",
            "privilege.su",
            "user.group.create",
            "user.account.create",
            "user.role.add",
            "user.role.add",
            "user.password.change",
            "user.account.lock",
            "user.account.delete",
            "user.group.delete",
            "user.group.create",
            "auth.session.open",
            "-",
        ]
    );
}

#[test]
fn sshd_failures_carry_the_user_and_the_address() {
    let parsed = auth_log();
    let failure = parsed[6].1.clone().unwrap();
    assert_eq!(failure.user.as_deref(), Some("root"));
    assert_eq!(failure.ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(failure.outcome, Some("failure"));
    assert_eq!(failure.data["port"], 40188);
    assert_eq!(failure.data["method"], "password");
    let invalid = parsed[3].1.clone().unwrap();
    assert_eq!(invalid.user.as_deref(), Some("admin"));
    assert_eq!(invalid.data["invalid_user"], true);
    let accepted = parsed[9].1.clone().unwrap();
    assert_eq!(accepted.user.as_deref(), Some("mes-deploy"));
    assert_eq!(accepted.data["method"], "publickey");
    assert_eq!(accepted.outcome, Some("success"));
}

#[test]
fn one_password_guess_is_one_failure_not_three() {
    // sshd's "Invalid user" notice and PAM's failure line stand beside the guess itself:
    // only sshd's "Failed ..." line is an auth.login.failure.
    let failures = auth_log()
        .into_iter()
        .filter_map(|(_, p)| p)
        .filter(|p| p.event_type == "auth.login.failure")
        .count();
    assert_eq!(failures, 2);
}

#[test]
fn an_attacker_chosen_user_name_with_spaces_is_kept_whole() {
    let parsed = parse(
        Some("sshd"),
        "Failed password for invalid user a b from c from 192.0.2.1 port 22 ssh2",
    )
    .unwrap();
    assert_eq!(parsed.user.as_deref(), Some("a b from c"));
    assert_eq!(parsed.ip.as_deref(), Some("192.0.2.1"));
}

#[test]
fn sudo_and_su_name_who_became_whom() {
    let parsed = auth_log();
    let sudo = parsed[17].1.clone().unwrap();
    assert_eq!(sudo.user.as_deref(), Some("operator1"));
    assert_eq!(sudo.target["user"], "root");
    assert_eq!(sudo.data["command"], "/usr/bin/systemctl restart mes-agent");
    let refused = parsed[19].1.clone().unwrap();
    assert_eq!(refused.outcome, Some("failure"));
    assert_eq!(refused.data["attempts"], 3);
    let denied = parsed[20].1.clone().unwrap();
    assert_eq!(denied.user.as_deref(), Some("guest"));
    assert_eq!(denied.category, Some("authorization"));
    let su = parsed[21].1.clone().unwrap();
    assert_eq!(
        (su.user.as_deref(), su.target["user"].as_str()),
        (Some("operator1"), Some("root"))
    );
}

#[test]
fn joining_an_admin_group_is_a_high_privilege_change() {
    let parsed = auth_log();
    let add = parsed[25].1.clone().unwrap();
    assert_eq!(add.target["user"], "contractor");
    assert_eq!(add.target["group"], "sudo");
    assert_eq!(add.severity.as_deref(), Some("high"));
    let created = parsed[24].1.clone().unwrap();
    assert_eq!(created.target["user"], "contractor");
    assert_eq!(created.data["uid"], "1005");
}

fn audit_log() -> Vec<Parsed> {
    include_str!("../../../tests/fixtures/audit.log")
        .lines()
        .map(|line| parse(Some("audispd"), line).unwrap_or_else(|| panic!("{line}")))
        .collect()
}

#[test]
fn audit_records_are_typed_and_their_hex_decoded() {
    let parsed = audit_log();
    let kinds: Vec<&str> = parsed.iter().map(|p| p.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "audit.user_auth",
            "audit.user_login",
            "audit.user_cmd",
            "audit.execve",
            "audit.execve",
            "config.audit.change"
        ]
    );
    assert_eq!(parsed[0].outcome, Some("failure"));
    assert_eq!(parsed[0].user.as_deref(), Some("root"));
    assert_eq!(parsed[0].ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(parsed[0].time.as_deref(), Some("2025-12-07T06:01:16.412Z"));
    assert_eq!(parsed[1].user.as_deref(), Some("1001"));
    assert_eq!(parsed[2].data["command"], "systemctl restart mes-agent");
    assert_eq!(parsed[3].data["command"], "systemctl restart mes-agent");
    assert_eq!(parsed[4].data["command"], "cat /etc/shadow copy");
    assert_eq!(parsed[5].outcome, Some("success"));
    assert_eq!(parsed[5].data["audit"]["key"], "identity");
    // Numbers are never taken for hex text.
    assert_eq!(parsed[2].data["audit"]["pid"], "20990");
}

fn lines(text: &str, prefix: &str) -> Vec<Parsed> {
    text.lines()
        .map(|line| parse(None, line).unwrap_or_else(|| panic!("{prefix}: {line}")))
        .collect()
}

#[test]
fn cef_from_firewalls_and_ot_monitors_is_mapped() {
    let parsed = lines(include_str!("../../../tests/fixtures/cef.log"), "CEF");
    let fortigate = &parsed[0];
    assert_eq!(fortigate.event_type, "network.connection.denied");
    assert_eq!(fortigate.ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(fortigate.target["ip"], "10.20.4.10");
    assert_eq!(fortigate.target["port"], "502");
    assert_eq!(fortigate.severity.as_deref(), Some("medium"));
    assert_eq!(
        fortigate.data["cef"]["extension"]["msg"],
        "Modbus from outside the cell"
    );
    let claroty = &parsed[1];
    assert_eq!(claroty.event_type, "security.alert");
    assert_eq!(claroty.severity.as_deref(), Some("critical"));
    assert_eq!(claroty.user.as_deref(), Some("eng-laptop7"));
    assert_eq!(claroty.time.as_deref(), Some("2025-12-07T06:11:40.123Z"));
    assert_eq!(claroty.data["cef"]["extension"]["cat"], "Policy Violation");
    let nozomi = &parsed[2];
    assert_eq!(nozomi.severity.as_deref(), Some("critical"));
    assert_eq!(
        nozomi.data["cef"]["extension"]["msg"],
        "Detected Trojan.Agent with a=b escaped and a \\ backslash"
    );
    assert_eq!(parsed[3].event_type, "network.connection.denied");
    let escaped = &parsed[4];
    assert_eq!(escaped.data["cef"]["vendor"], "Pipe|Vendor");
    assert_eq!(escaped.data["cef"]["name"], "Name with | pipe");
    assert_eq!(escaped.event_type, "network.connection.allowed");
}

#[test]
fn leef_one_and_two_are_mapped() {
    let parsed = lines(include_str!("../../../tests/fixtures/leef.log"), "LEEF");
    assert_eq!(parsed[0].event_type, "network.connection.denied");
    assert_eq!(parsed[0].ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(parsed[0].target["port"], "502");
    assert_eq!(parsed[0].user, None, "an empty usrName is no user");
    assert_eq!(parsed[1].event_type, "security.alert");
    assert_eq!(parsed[1].user.as_deref(), Some("eng-laptop7"));
    assert_eq!(parsed[1].severity.as_deref(), Some("high"));
    assert_eq!(parsed[1].target["resource"], "PLC-Line3");
}

#[test]
fn what_no_parser_knows_is_left_alone() {
    assert_eq!(
        parse(Some("systemd"), "Started Session 4 of user alice."),
        None
    );
    assert_eq!(
        parse(Some("sshd"), "Server listening on 0.0.0.0 port 22."),
        None
    );
    assert_eq!(parse(None, "CEF:0|too|few"), None);
    assert_eq!(parse(Some("sudo"), "no separator here"), None);
}

proptest::proptest! {
    /// No text makes a parser panic, whatever app it claims to come from.
    #[test]
    fn no_text_makes_a_parser_panic(
        app in proptest::sample::select(vec!["sshd", "sudo", "su", "useradd", "usermod", "passwd", "x"]),
        text in "\\PC{0,200}",
    ) {
        let _ = parse(Some(app), &text);
        let _ = parse(Some(app), &format!("pam_unix({text}"));
        let _ = parse(None, &format!("CEF:{text}"));
        let _ = parse(None, &format!("LEEF:{text}"));
        let _ = parse(None, &format!("type=X msg=audit({text}"));
    }

    /// Pieces of real lines put together at random still never panic.
    #[test]
    fn spliced_real_lines_never_panic(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "Failed ", "password ", "for ", "invalid user ", " from ", "1.2.3.4", " port ",
            "22", " ssh2", "Accepted ", "Connection closed by ", "[preauth]", " : ", " ; ",
            "USER=", "COMMAND=", "(to ", ") ", " by ", "'", "add '", "group ", "=", "\\",
            "|", "msg=audit(", "1.5:2): ", "argc=", "a0=", "\"", "sev=", "x5E", "\t",
        ]), 0..30),
        app in proptest::sample::select(vec!["sshd", "sudo", "su", "usermod", "audispd"]),
    ) {
        let text: String = pieces.concat();
        let _ = parse(Some(app), &text);
        let _ = parse(None, &format!("CEF:0|{text}"));
        let _ = parse(None, &format!("LEEF:2.0|{text}"));
        let _ = parse(None, &format!("type=EXECVE {text}"));
        let _ = parse(Some("sshd"), &format!("pam_unix(sshd:auth): {text}"));
    }
}
