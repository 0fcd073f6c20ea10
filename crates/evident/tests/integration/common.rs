//! A real `evident serve` process on 127.0.0.1 and a small HTTP client for it.

use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_evident");

/// A server child process; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub key: String,
    pub dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts a server on a fresh temporary directory.
    pub fn start_fresh() -> (tempfile::TempDir, Server) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        (dir, server)
    }

    /// Starts `evident serve` on `dir` and a free port; returns once /readyz answers 200.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// [`Server::start`] with extra `serve` arguments.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(dir, "127.0.0.1:0", extra)
    }

    /// [`Server::start_with`] on the address `listen` (to come back on the same port).
    pub fn start_on(dir: &Path, listen: &str, extra: &[&str]) -> Server {
        std::fs::remove_file(dir.join("evident.addr")).ok();
        let child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra)
            .args([
                "--max-body-bytes",
                "1048576",
                "--max-events",
                "2000",
                "--body-timeout",
                "1",
            ])
            .env("EVIDENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(dir.join("server.log"))
                    .expect("open server.log"),
            )
            .spawn()
            .expect("start evident serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(dir.join("evident.addr")) {
                break a;
            }
            assert!(
                Instant::now() < deadline,
                "server did not write its address; its log:\n{}",
                server_log(dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let key = std::fs::read_to_string(dir.join("admin.key"))
            .unwrap()
            .trim()
            .to_owned();
        let server = Server {
            child,
            url: format!("http://{}", addr.trim()),
            key,
            dir: dir.to_owned(),
            http: reqwest::Client::new(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while probe_status(&self.url, "/readyz") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "server never became ready; its log:\n{}",
                server_log(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    /// A new key with `role` made by `evident keys create` on the server's directory.
    pub fn create_key(&self, role: &str) -> String {
        self.create_key_with(role, &[])
    }

    /// [`Server::create_key`] with extra `keys create` arguments.
    pub fn create_key_with(&self, role: &str, extra: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(["keys", "create", "--role", role, "--data-dir"])
            .arg(&self.dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// POSTs `body` to `/api/v1/events?ack=none` with the admin key.
    pub async fn post_queued(&self, body: String) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/events?ack=none", self.url))
            .bearer_auth(&self.key)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs `body` with `content_type` using `key`.
    pub async fn post(
        &self,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/events", self.url))
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a JSON value to `path` with the admin key.
    pub async fn post_to(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a JSON value with the admin key.
    pub async fn post_json(&self, body: &Value) -> (StatusCode, Value) {
        self.post(Some(&self.key), Some("application/json"), body.to_string())
            .await
    }

    /// The pseudonym the server gives `value` in personal fields (from the master key in
    /// its data directory), as a reader without the personal-data permission sees it.
    pub fn pseudonym(&self, value: &str) -> String {
        let master = evident_privacy::MasterKey::load_or_create(&self.dir.join("master.key"))
            .expect("the server's master key");
        evident_privacy::Pseudonyms::new(&master).of(value)
    }

    /// A group key `field=value` as the server stores it and as readers without the
    /// personal-data permission (and backtests) see it: personal fields (here the
    /// actor's user id and address) by pseudonym. Admin keys see findings in the clear.
    pub fn group_key(&self, key: &str) -> String {
        match key.split_once('=') {
            Some((field @ ("actor.user_id" | "actor.ip"), value)) => {
                format!("{field}={}", self.pseudonym(value))
            }
            _ => key.to_owned(),
        }
    }

    /// The published public key checkpoints are signed with (base64).
    pub async fn public_key(&self) -> String {
        self.get_ok("/api/v1/integrity/key").await["public_key"]
            .as_str()
            .expect("a public key")
            .to_owned()
    }

    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs `path` (with query) using `key`.
    pub async fn get(&self, key: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Events stored of `event_type` in the last 30 days, counted through the stats API.
    pub async fn count_of_type(&self, event_type: &str) -> u64 {
        let stats = self
            .get_ok("/api/v1/stats?from=30d&group_by=type&interval=1d")
            .await;
        stats["groups"]
            .as_array()
            .expect("stats groups")
            .iter()
            .filter(|g| g["type"] == event_type)
            .map(|g| g["count"].as_u64().expect("a count"))
            .sum()
    }

    /// GETs with the admin key, asserting 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(Some(&self.key), path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the server in `dir` logged (appended across restarts of the same directory).
pub fn server_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// The status of a plain blocking GET, for waiting on start-up outside any runtime.
pub fn probe_status(base: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The ids an ingest answer gives its events, in request order.
/// The events of a page of `GET /api/v1/events` that clients sent, leaving out the
/// service's own records (deduplication summaries, the log's records of side tables).
pub fn sent_events(page: &Value) -> impl Iterator<Item = &Value> {
    page["events"]
        .as_array()
        .expect("a page of events")
        .iter()
        .filter(|e| e["service_record"] != true)
}

pub fn stored_ids(answer: &Value) -> Vec<String> {
    answer["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect()
}
