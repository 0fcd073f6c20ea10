//! What an attacker would try first: files others can read, connections held open,
//! bodies that are not what they say.

use super::common::{Server, probe_status};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Every file a server puts in its data directory (the database with its WAL and shared
/// memory, the critical journal, the subject key store, the keys, the lock and address
/// files) is readable by its owner only, whatever the umask.
#[tokio::test]
async fn data_directory_files_are_private() {
    let (_dir, server) = Server::start_fresh();
    let (status, _) = server
        .post_json(&json!([
            {"type": "threat.sql.injection", "priority": "critical", "actor": {"user_id": "eve"}},
            {"type": "user.login", "actor": {"user_id": "ann", "ip": "10.0.0.1"}}
        ]))
        .await;
    assert_eq!(status, 202);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&server.dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // The test harness's own log, and the rule files (the public default pack).
        if name == "server.log" || !entry.file_type().unwrap().is_file() {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{name} is mode {mode:o}");
        seen.push(name);
    }
    for expected in [
        "evident.db",
        "evident.db-wal",
        "evident.db-shm",
        "critical.db",
        "critical.db-wal",
        "subject-keys.db",
        "subject-keys.db-wal",
        "admin.key",
        "master.key",
        "evident.lock",
        "evident.addr",
    ] {
        assert!(
            seen.iter().any(|n| n == expected),
            "{expected} not among {seen:?}"
        );
    }
}

/// Raises this process's open file limit to its hard limit, so it can hold `need`
/// sockets; the server started after it inherits the raised limit.
fn allow_open_files(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < need) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .expect("raise the open file limit");
    }
    let soft = getrlimit(Resource::Nofile).current;
    assert!(
        soft.is_none_or(|soft| soft >= need),
        "this test needs {need} open files; the hard limit is {:?}",
        limit.maximum
    );
}

/// Opens `n` TCP connections to `url` that never send a byte.
fn idle_connections(url: &str, n: usize) -> Vec<std::net::TcpStream> {
    let addr = url.strip_prefix("http://").unwrap();
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect()
}

/// Runs `request` and asserts it answered within two seconds.
async fn promptly<T>(what: &str, request: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within 10 s"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{what} took {:?}",
        started.elapsed()
    );
    answer
}

/// 2,000 connections that send nothing, no key needed, neither exhaust the server's
/// file descriptors nor lock clients out: health checks and keyed requests answer at
/// once, with the default connection cap and with a cap far below the flood.
#[tokio::test]
async fn idle_connection_flood_leaves_health_and_keyed_requests_answering() {
    allow_open_files(5_000);
    for cap in [None, Some("300")] {
        let dir = tempfile::tempdir().unwrap();
        let extra: Vec<&str> = cap.map_or(vec![], |cap| vec!["--max-connections", cap]);
        let server = Server::start_with(dir.path(), &extra);
        let held = idle_connections(&server.url, 2_000);
        let url = server.url.clone();
        let health = promptly("/healthz", async {
            tokio::task::spawn_blocking(move || probe_status(&url, "/healthz"))
                .await
                .unwrap()
        })
        .await;
        assert_eq!(health, Some(200), "cap {cap:?}");
        let (status, answer) = promptly(
            "POST with the admin key",
            server.post_json(&json!({"type": "user.login", "actor": {"user_id": "ann"}})),
        )
        .await;
        assert_eq!(status, 202, "cap {cap:?}: {answer}");
        let id = answer["ids"][0].as_str().unwrap().to_owned();
        let (status, event) = promptly(
            "GET with the admin key",
            server.get(Some(&server.key), &format!("/api/v1/events/{id}")),
        )
        .await;
        assert_eq!(status, 200, "cap {cap:?}: {event}");
        drop(held);
    }
}

/// A client trickling its request header, or sending nothing at all, is cut off after
/// the header timeout; a kept-alive connection after the idle timeout.
#[test]
fn slow_headers_and_idle_connections_are_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--header-timeout", "2", "--idle-timeout", "3"],
    );
    let addr = server.url.strip_prefix("http://").unwrap().to_owned();

    // Seconds until the server closes `stream` while `feed` runs between reads.
    let closed_after = |mut stream: std::net::TcpStream,
                        mut feed: Box<dyn FnMut(&mut std::net::TcpStream)>| {
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the connection is still open after 20 s"
            );
            match stream.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return started.elapsed(),
            }
            feed(&mut stream);
        }
    };

    // One header byte every 500 ms: the whole header would take over 20 s.
    let mut trickle = std::net::TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut last = Instant::now();
    let took = closed_after(
        trickle,
        Box::new(move |s| {
            if last.elapsed() >= Duration::from_millis(500) {
                s.write_all(b"X").ok();
                last = Instant::now();
            }
        }),
    );
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&took),
        "a trickled header was closed after {took:?}, expected about 2 s"
    );

    let silent = std::net::TcpStream::connect(&addr).unwrap();
    let took = closed_after(silent, Box::new(|_| {}));
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&took),
        "a silent connection was closed after {took:?}, expected about 2 s"
    );

    // A kept-alive connection: one request answered, then silence.
    let mut kept = std::net::TcpStream::connect(&addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let took = closed_after(kept, Box::new(|_| {}));
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&took),
        "an idle kept-alive connection was closed after {took:?}, expected about 3 s"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `Content-Encoding: gzip` bodies are decoded (the body limit applies to the decoded
/// size, so a gzip bomb gets 413); an encoding evident does not read gets 415 naming it.
#[tokio::test]
async fn gzip_bodies_are_decoded_within_the_limit_and_unknown_encodings_refused() {
    let (_dir, server) = Server::start_fresh();
    let http = reqwest::Client::new();
    let post = |encoding: &'static str, content_type: &'static str, body: Vec<u8>| {
        http.post(format!("{}/api/v1/events", server.url))
            .bearer_auth(&server.key)
            .header("content-type", content_type)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };

    let events = json!([
        {"type": "user.login", "actor": {"user_id": "ann"}},
        {"type": "station.operation", "target": {"station_id": "STN-A-01"}}
    ]);
    let resp = post(
        "gzip",
        "application/json",
        gzip(events.to_string().as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["stored"], 2, "{answer}");
    let id = answer["ids"][1].as_str().unwrap();
    let event = server.get_ok(&format!("/api/v1/events/{id}")).await;
    assert_eq!(event["type"], "station.operation");

    let ndjson = "{\"type\":\"a.b\"}\n{\"type\":\"c.d\"}\n";
    let resp = post("gzip", "application/x-ndjson", gzip(ndjson.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // 1 MiB limit on the test server: 40 MB of spaces compress to a few tens of KiB.
    let bomb = gzip(&vec![b' '; 40_000_000]);
    assert!(bomb.len() < 200_000);
    let resp = post("gzip", "application/json", bomb).await.unwrap();
    assert_eq!(resp.status(), 413);

    let resp = post("br", "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`br`"),
        "{answer}"
    );

    let resp = post("gzip", "application/json", b"{\"type\":\"a.b\"}".to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a body that is not gzip");
}

/// A key repeated in an event object is refused naming it and where (index, NDJSON
/// line), rather than the last value silently winning.
#[tokio::test]
async fn repeated_keys_are_refused_naming_key_and_place() {
    let (_dir, server) = Server::start_fresh();
    let k = Some(server.key.as_str());
    let (status, body) = server
        .post(
            k,
            Some("application/json"),
            r#"{"type":"user.login","actor":{"user_id":"ann","user_id":"root"}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["field"], "actor.user_id", "{body}");
    assert!(
        error["reason"]
            .as_str()
            .unwrap()
            .contains("duplicate key `user_id`"),
        "{body}"
    );

    let ndjson = "{\"type\":\"a.b\"}\n\n{\"type\":\"a.b\",\"type\":\"c.d\"}\n";
    let (status, body) = server.post(k, Some("application/x-ndjson"), ndjson).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["stored"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let error = &body["errors"][0];
    assert_eq!(
        (error["index"].as_u64(), error["line"].as_u64()),
        (Some(1), Some(3)),
        "{body}"
    );
    assert_eq!(error["field"], "type");
}
