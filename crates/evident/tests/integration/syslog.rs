//! Syslog into a real server: `logger` (util-linux) over UDP and TCP, crafted input over
//! raw sockets, TLS through `openssl s_client`, and rsyslog forwarding (real clients
//! evident did not write); then the stored events, the findings and the counters.

use crate::common::{Server, sent_events};
use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOGGER: &str = "/usr/bin/logger";

/// The syslog addresses the server wrote to DATA_DIR/syslog.addr (`udp ADDR` lines).
fn syslog_addr(dir: &Path, transport: &str) -> SocketAddr {
    let text = std::fs::read_to_string(dir.join("syslog.addr")).expect("syslog.addr");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{transport} ")))
        .unwrap_or_else(|| panic!("no {transport} in syslog.addr: {text}"))
        .parse()
        .unwrap()
}

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--syslog-udp", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start_with(dir.path(), &args);
    (dir, server)
}

/// Runs `logger` with `args`, asserting it succeeded.
fn logger(args: &[&str]) {
    assert!(
        Path::new(LOGGER).try_exists().unwrap_or(false),
        "the syslog tests need util-linux's logger"
    );
    let status = Command::new(LOGGER).args(args).status().unwrap();
    assert!(status.success(), "logger {args:?}");
}

/// Waits until `path` lists at least `n` sent events; returns them.
async fn events(server: &Server, path: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = server.get_ok(path).await;
        let found: Vec<Value> = sent_events(&page).cloned().collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} of {n} events after 20 s: {:?}",
            found.len(),
            found.iter().map(summary).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An event's type, source and the start of its message, for failure messages.
fn summary(event: &Value) -> String {
    let message: String = event["data"]["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    format!("{} {} {message:?}", event["type"], event["source"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_logs_sent_by_logger_become_typed_events_and_fire_the_brute_force_rule() {
    let (dir, server) = start(&[]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let udp = syslog_addr(dir.path(), "udp");
    let (host, tcp_port, udp_port) = (
        tcp.ip().to_string(),
        tcp.port().to_string(),
        udp.port().to_string(),
    );
    for port in [40_022, 40_023, 40_024] {
        let text = format!("Failed password for root from 203.0.113.9 port {port} ssh2");
        logger(&[
            "--server",
            &host,
            "--port",
            &tcp_port,
            "--tcp",
            "--rfc3164",
            "-t",
            "sshd",
            "-p",
            "auth.info",
            &text,
        ]);
    }
    for port in [40_025, 40_026] {
        let text = format!("Failed password for root from 203.0.113.9 port {port} ssh2");
        logger(&[
            "--server",
            &host,
            "--port",
            &udp_port,
            "--udp",
            "--rfc5424",
            "-t",
            "sshd",
            "-p",
            "authpriv.notice",
            &text,
        ]);
    }
    logger(&[
        "--server",
        &host,
        "--port",
        &tcp_port,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-t",
        "sshd",
        "Accepted publickey for mes-deploy from 10.20.0.15 port 51234 ssh2",
    ]);
    logger(&[
        "--server",
        &host,
        "--port",
        &tcp_port,
        "--tcp",
        "-t",
        "kernel",
        "eth0: link up, 1000Mbps",
    ]);

    let failures = events(&server, "/api/v1/events?type=auth.login.failure", 5).await;
    for event in &failures {
        assert_eq!(event["category"], "authentication");
        assert_eq!(event["outcome"], "failure");
        assert_eq!(event["actor"]["user_id"], "root", "{event}");
        assert_eq!(event["actor"]["ip"], "203.0.113.9", "{event}");
        assert_eq!(event["source"], "sshd");
        assert_eq!(event["data"]["syslog"]["peer"], "127.0.0.1");
    }
    let transports: std::collections::BTreeSet<&str> = failures
        .iter()
        .map(|e| e["data"]["syslog"]["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["tcp", "udp"].into());
    let accepted = events(&server, "/api/v1/events?type=auth.login.success", 1).await;
    assert_eq!(accepted[0]["actor"]["user_id"], "mes-deploy");
    let unparsed = events(&server, "/api/v1/events?type=log.syslog", 1).await;
    assert_eq!(unparsed[0]["data"]["message"], "eth0: link up, 1000Mbps");
    assert_eq!(unparsed[0]["data"]["syslog"]["app"], "kernel");

    // Five failed logins for root from one address in five minutes: the default
    // brute-force rules fire.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = server.get_ok("/api/v1/findings?limit=100").await;
        let titles: Vec<&str> = page["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["rule_title"].as_str().or(f["title"].as_str()))
            .collect();
        if titles.iter().any(|t| t.contains("five failed logins")) {
            break;
        }
        assert!(Instant::now() < deadline, "no brute-force finding: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_input_is_stored_marked_and_never_takes_the_listener_down() {
    let (dir, server) = start(&[]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let mut stream = TcpStream::connect(tcp).unwrap();
    // A 1 MiB line, cut and marked; invalid UTF-8; an octet count with too many digits
    // (read as a line with no header); then a good message; then a partial frame left
    // open.
    let mut huge = b"<13>Dec  7 06:00:00 gw app: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    huge.push(b'\n');
    stream.write_all(&huge).unwrap();
    stream
        .write_all(b"<13>Dec  7 06:00:01 gw app: bad \xff\xfe bytes\n")
        .unwrap();
    stream
        .write_all(b"99999999999999 <13>Dec  7 06:00:02 gw app: odd count\n")
        .unwrap();
    stream
        .write_all(b"<13>Dec  7 06:00:03 gw app: still listening\n")
        .unwrap();
    stream.write_all(b"30 <13>Dec  7 06:00:04 gw app:").unwrap();
    stream.flush().unwrap();
    drop(stream);

    let stored = events(&server, "/api/v1/events?limit=100", 5).await;
    let message = |needle: &str| {
        stored
            .iter()
            .find(|e| {
                e["data"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no message with {needle:?} in {:?}",
                    stored.iter().map(summary).collect::<Vec<_>>()
                )
            })
    };
    let cut = stored
        .iter()
        .find(|e| e["data"]["syslog"]["cut"].is_string())
        .expect("the long line is stored, cut");
    assert!(cut["data"]["message"].as_str().unwrap().len() < 40 * 1024);
    let bad = message("bad ");
    assert_eq!(bad["data"]["syslog"]["invalid_utf8"], true);
    assert!(
        bad["data"]["message"]
            .as_str()
            .unwrap()
            .contains('\u{fffd}')
    );
    message("odd count");
    message("still listening");
    let partial = stored
        .iter()
        .find(|e| e["data"]["syslog"]["cut"] == "unfinished")
        .expect("the partial frame is kept, marked unfinished");
    assert!(partial["data"]["message"].is_string());

    // The listener still takes new connections.
    let mut again = TcpStream::connect(tcp).unwrap();
    again
        .write_all(b"<13>Dec  7 06:00:05 gw app: after all that\n")
        .unwrap();
    drop(again);
    events(&server, "/api/v1/events?limit=100", 6).await;
    // And UDP garbage is a log event too.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"\x00\x01\x02 not syslog at all",
        syslog_addr(dir.path(), "udp"),
    )
    .unwrap();
    let all = events(&server, "/api/v1/events?limit=100", 7).await;
    assert!(all.iter().any(|e| {
        e["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not syslog at all"))
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facilities_come_from_the_sender_network_map() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(
        &config,
        "version: 1\nsyslog:\n  tcp: 127.0.0.1:0\n  networks:\n    127.0.0.0/8: plant-a\n    10.0.0.0/8: group\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let tcp = syslog_addr(dir.path(), "tcp");
    logger(&[
        "--server",
        &tcp.ip().to_string(),
        "--port",
        &tcp.port().to_string(),
        "--tcp",
        "-t",
        "sudo",
        " operator1 : TTY=pts/0 ; PWD=/home/operator1 ; USER=root ; COMMAND=/usr/bin/id",
    ]);
    let stored = events(&server, "/api/v1/events?facility=plant-a", 1).await;
    assert_eq!(stored[0]["type"], "privilege.sudo.command");
    assert_eq!(stored[0]["target"]["user"], "root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_network_in_the_config_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    std::fs::write(
        &config,
        "version: 1\nsyslog:\n  networks:\n    10.0.0.0/33: x\n",
    )
    .unwrap();
    let out = Command::new(crate::common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10.0.0.0/33"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pam_lines_beside_sshd_failures_are_not_counted_twice() {
    let (dir, server) = start(&[]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let mut stream = TcpStream::connect(tcp).unwrap();
    let guess = |user: &str, port: u16| {
        format!(
            "<38>Dec  7 06:02:0{} gw sshd[2050{}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.4  user={user}\n<38>Dec  7 06:02:0{} gw sshd[2050{}]: Failed password for {user} from 198.51.100.4 port {port} ssh2\n",
            port % 10,
            port % 10,
            port % 10,
            port % 10
        )
    };
    // Three guesses, each logged twice (PAM and sshd): three failed logins, under the
    // brute-force rules' five.
    for port in 40_001..=40_003 {
        stream
            .write_all(guess("plc-admin", port).as_bytes())
            .unwrap();
    }
    stream.flush().unwrap();
    events(&server, "/api/v1/events?type=auth.pam.failure", 3).await;
    events(&server, "/api/v1/events?type=auth.login.failure", 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let page = server.get_ok("/api/v1/findings?limit=100").await;
    assert_eq!(page["findings"].as_array().unwrap().len(), 0, "{page}");
    // Two more guesses make five: now it fires.
    for port in 40_004..=40_005 {
        stream
            .write_all(guess("plc-admin", port).as_bytes())
            .unwrap();
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.get_ok("/api/v1/findings?limit=100").await["findings"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "five guesses opened no finding");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
