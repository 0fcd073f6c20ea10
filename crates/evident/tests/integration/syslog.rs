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
    // Its text is searchable.
    let found = server.get_ok("/api/v1/events?q=LINK%20UP").await;
    assert_eq!(found["events"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["events"][0]["id"], unparsed[0]["id"]);

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

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_to_evident_octet_counted_over_tcp_and_over_udp() {
    let rsyslogd = "/usr/sbin/rsyslogd";
    assert!(
        Path::new(rsyslogd).try_exists().unwrap_or(false),
        "the syslog tests need rsyslog: run scripts/syslog-up.sh (scripts/test.sh does)"
    );
    let (dir, server) = start(&[]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let udp = syslog_addr(dir.path(), "udp");
    let work = tempfile::tempdir().unwrap();
    let input = free_port();
    let config = format!(
        r#"global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{input}" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp")
}}
"#,
        work = work.path().display(),
        tcp = tcp.port(),
        udp = udp.port(),
    );
    let conf = work.path().join("rsyslog.conf");
    std::fs::write(&conf, config).unwrap();
    let mut daemon = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", input)).is_err() {
        assert!(Instant::now() < deadline, "rsyslog did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &input.to_string(),
        "--tcp",
        "-t",
        "sshd",
        "-p",
        "auth.info",
        "Failed password for invalid user scada from 198.51.100.77 port 50311 ssh2",
    ]);
    // Each message arrives twice, over TCP and over UDP, each stored.
    let stored = events(&server, "/api/v1/events?type=auth.login.failure", 2).await;
    daemon.kill().ok();
    daemon.wait().ok();
    let transports: std::collections::BTreeSet<&str> = stored
        .iter()
        .map(|e| e["data"]["syslog"]["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["tcp", "udp"].into());
    for event in &stored {
        assert_eq!(event["actor"]["user_id"], "scada");
        assert_eq!(event["actor"]["ip"], "198.51.100.77");
        assert_eq!(event["data"]["invalid_user"], true);
        assert_eq!(event["source"], "sshd");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_from_openssl_s_client_is_stored() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (scripts/syslog-up.sh installs it)");
    assert!(made.success());
    let port = free_port();
    let tls_addr = format!("127.0.0.1:{port}");
    let (dir, server) = start(&[
        "--syslog-tls",
        &tls_addr,
        "--syslog-tls-cert",
        cert.to_str().unwrap(),
        "--syslog-tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(syslog_addr(dir.path(), "tls").port(), port);
    let message = "<38>1 2026-12-07T06:00:00Z hmi-3 sshd 77 - - Accepted password for operator2 from 10.20.4.31 port 60211 ssh2";
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &tls_addr, "-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // RFC 5425: octet-counted.
    client
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{} {message}", message.len()).as_bytes())
        .unwrap();
    let stored = events(&server, "/api/v1/events?type=auth.login.success", 1).await;
    client.kill().ok();
    client.wait().ok();
    assert_eq!(stored[0]["data"]["syslog"]["transport"], "tls");
    assert_eq!(stored[0]["actor"]["user_id"], "operator2");
    assert_eq!(stored[0]["target"]["host"], "hmi-3");
}

#[test]
fn a_missing_tls_key_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(crate::common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--syslog-tls",
            "127.0.0.1:0",
            "--syslog-tls-cert",
            "/nonexistent/cert.pem",
            "--syslog-tls-key",
            "/nonexistent/key.pem",
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}

/// `count` newline-framed sshd failures for `user`, as one buffer.
fn burst(user: &str, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        out.extend_from_slice(
            format!("<38>Dec  7 06:00:00 gw sshd[{i}]: Failed password for {user} from 10.9.{}.{} port {} ssh2\n", i / 250, i % 250, 1000 + i % 60000)
                .as_bytes(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_slows_the_sender_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    // A queue of 500 events: 20,000 sent at once cannot fit.
    std::fs::write(
        &config,
        "version: 1\npipeline:\n  capacity_events: 500\nsyslog:\n  tcp: 127.0.0.1:0\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let data = burst("line-op", 20_000);
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(tcp).unwrap();
        stream.write_all(&data).unwrap();
    });
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = server.count_of_type("auth.login.failure").await;
        if n == 20_000 {
            break;
        }
        assert!(n < 20_000, "more stored than sent: {n}");
        assert!(Instant::now() < deadline, "{n} of 20000 stored after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("evident_syslog_retried_total"))
        .unwrap_or_else(|| panic!("no retry counter in /metrics"));
    assert!(
        !retried.ends_with(" 0"),
        "the queue never filled: {retried}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_queues_and_commits_what_senders_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--syslog-tcp", "127.0.0.1:0"]);
    let tcp = syslog_addr(dir.path(), "tcp");
    let mut stream = TcpStream::connect(tcp).unwrap();
    stream.write_all(&burst("night-shift", 10_000)).unwrap();
    stream.flush().unwrap();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    drop(stream);
    let server = Server::start(dir.path());
    assert_eq!(server.count_of_type("auth.login.failure").await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_drops_past_a_full_queue_are_counted_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evident.yaml");
    // Room for two datagrams: a burst must overflow it.
    std::fs::write(
        &config,
        "version: 1\nsyslog:\n  udp: 127.0.0.1:0\n  udp_queue: 2\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    let udp = syslog_addr(dir.path(), "udp");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..20_000 {
        socket
            .send_to(
                format!("<13>Dec  7 06:00:00 gw app: burst {n}").as_bytes(),
                udp,
            )
            .ok();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str, label: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains("transport=\"udp\"")
                    && l.contains(label)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    let dropped = counter("evident_syslog_dropped_total", "reason=\"queue_full\"");
    let received = counter("evident_syslog_messages_total", "outcome=\"received\"");
    assert!(dropped > 0, "a full queue drops, and says so");
    let stored = server.count_of_type("log.syslog").await;
    assert_eq!(
        stored + dropped,
        received,
        "every datagram read is stored or counted as dropped"
    );
}
