//! The service on PostgreSQL: the API over a scratch database on the local server, and a
//! restart of a PostgreSQL server of the test's own under load.

use crate::common::Server;
use evident_store::testsuite::ScratchPostgres;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_api_works_the_same_on_postgres() {
    let db = ScratchPostgres::create().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--database-url", &db.url]);
    let body: String = (0..30)
        .map(|i| {
            json!({"type": if i % 3 == 0 { "auth.login.failure" } else { "station.operation" },
                   "severity": if i % 10 == 0 { "high" } else { "info" },
                   "actor": {"user_id": format!("u{}", i % 4)},
                   "data": {"station_id": format!("STN-{}", i % 5), "n": i}})
            .to_string()
                + "\n"
        })
        .collect();
    let (status, ack) = server
        .post(Some(&server.key), Some("application/x-ndjson"), body)
        .await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["stored"], 30);
    let id = ack["ids"][7].as_str().unwrap().to_owned();
    let one = server.get_ok(&format!("/api/v1/events/{id}")).await;
    assert_eq!(one["data"]["n"], 7);
    let count = |v: &Value| v["events"].as_array().unwrap().len();
    let by_type = server
        .get_ok("/api/v1/events?type=auth.login.failure")
        .await;
    assert_eq!(count(&by_type), 10);
    let by_user = server.get_ok("/api/v1/events?user_id=u1&limit=100").await;
    assert_eq!(count(&by_user), 8);
    let by_data = server
        .get_ok("/api/v1/events?data.station_id=STN-2&limit=100")
        .await;
    assert_eq!(count(&by_data), 6);
    let by_number = server.get_ok("/api/v1/events?data.n=12").await;
    assert_eq!(count(&by_number), 1);
    let high = server.get_ok("/api/v1/events?severity=high").await;
    assert_eq!(count(&high), 3);
    let mut seen = Vec::new();
    let mut next = "/api/v1/events?limit=7".to_owned();
    loop {
        let page = server.get_ok(&next).await;
        seen.extend(
            super::common::sent_events(&page).map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("/api/v1/events?limit=7&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30, "pages cover every event once");
}

/// A PostgreSQL server of the test's own, in a temporary directory, on a free port.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL's program directory (`pg_config --bindir`).
    bindir: PathBuf,
    /// Whether the test runs as root (then PostgreSQL runs as the `postgres` user).
    as_root: bool,
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let as_root = run_output(Command::new("id").arg("-u")).trim() == "0";
        if as_root {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bindir = PathBuf::from(run_output(Command::new("pg_config").arg("--bindir")).trim());
        let pg = Self {
            dir,
            port,
            bindir,
            as_root,
        };
        let mut initdb = pg.command("initdb");
        initdb
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(pg.data());
        run_output(&mut initdb);
        pg.up();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let mut start = self.command("pg_ctl");
        start
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .arg("start");
        run_output(&mut start);
    }

    /// Stops the server in `mode`, waiting until it is down: `immediate` is a crash (no
    /// checkpoint, no goodbye), `fast` a clean shutdown.
    fn stop(&self, mode: &str) {
        let mut stop = self.command("pg_ctl");
        stop.args(["-w", "-m", mode, "-D"])
            .arg(self.data())
            .arg("stop");
        run_output(&mut stop);
    }

    /// Sends `signal` (`STOP`, `CONT`) to the postmaster.
    fn signal(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim().to_owned();
        run_output(Command::new("kill").args([&format!("-{signal}"), &pid]));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop");
        stop.output().ok();
    }
}

fn run_output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One fault of recipe R2 and how long PostgreSQL stays away.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `pg_ctl stop -m immediate`, started again after this long.
    Crash(Duration),
    /// `pg_ctl stop -m fast`, started again after this long.
    Stop(Duration),
    /// The postmaster stopped with SIGSTOP for this long, then SIGCONT.
    Freeze(Duration),
}

/// The resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Recipe R2 (../RELIABILITY.md): a steady 2,000 events/s while PostgreSQL is crashed ten
/// times (`-m immediate`, 2–10 s down), stopped cleanly three times, frozen for 30 s
/// (SIGSTOP of the postmaster) and kept down for 120 s. Every acknowledged event is
/// stored exactly once; while it is away, ingest answers 503/429 with Retry-After and
/// no request hangs; after each return ingest resumes within 10 s; memory stays within
/// the configured buffers plus 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashes_stops_and_outages_lose_and_duplicate_nothing() {
    let mut faults: Vec<Fault> = (0..10u64)
        .map(|i| Fault::Crash(Duration::from_secs(2 + (i * 7) % 9)))
        .collect();
    faults.extend([Fault::Stop(Duration::from_secs(3)); 3]);
    faults.push(Fault::Freeze(Duration::from_secs(30)));
    faults.push(Fault::Crash(Duration::from_secs(120)));
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start_with(
        dir.path(),
        &["--database-url", &pg.url()],
    ));
    let acked: Arc<Mutex<HashMap<String, ()>>> = Arc::default();
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    // Four clients, each 20 events every 40 ms: 2,000 events/s in all.
    for client in 0..4 {
        let (server, acked, refusals, slowest, stop) = (
            server.clone(),
            acked.clone(),
            refusals.clone(),
            slowest.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(40));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                // Client-side ids make a retried batch safe: it is stored once.
                let ids: Vec<String> = (0..20).map(|_| uuid::Uuid::now_v7().to_string()).collect();
                // Each event differs in its data, so deduplication folds none of them.
                let body: String = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        json!({"id": id, "type": "station.operation", "data": {"client": client, "n": n, "i": i}})
                            .to_string()
                            + "\n"
                    })
                    .collect();
                n += 1;
                loop {
                    let sent = Instant::now();
                    let (status, ack) = server
                        .post(Some(&server.key), Some("application/x-ndjson"), body.clone())
                        .await;
                    {
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = (*slowest).max(sent.elapsed());
                    }
                    if status == 202 {
                        let mut acked = acked.lock().unwrap();
                        for id in &ids {
                            acked.insert(id.clone(), ());
                        }
                        break;
                    }
                    assert!(
                        status == 503 || status == 429,
                        "while PostgreSQL is away ingest backs off with 503/429, got {status}: {ack}"
                    );
                    refusals.lock().unwrap().push(status.as_u16());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    // Memory, sampled throughout.
    let peak_rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (peak, stop, pid) = (peak_rss.clone(), stop.clone(), server.pid());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let acks = || acked.lock().unwrap().len();
    let mut slowest_recovery = Duration::ZERO;
    for fault in faults {
        // Load flows before each fault.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = acks();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(acks() > before, "load was flowing before {fault:?}");
        match fault {
            Fault::Crash(away) | Fault::Stop(away) => {
                let mode = if matches!(fault, Fault::Crash(_)) {
                    "immediate"
                } else {
                    "fast"
                };
                tokio::task::block_in_place(|| pg.stop(mode));
                // While it is down, readiness fails.
                let deadline = Instant::now() + Duration::from_secs(30);
                while crate::common::probe_status(&server.url, "/readyz") != Some(503) {
                    assert!(
                        Instant::now() < deadline,
                        "/readyz kept answering 200 with PostgreSQL down"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(away).await;
                tokio::task::block_in_place(|| pg.up());
            }
            Fault::Freeze(away) => {
                tokio::task::block_in_place(|| pg.signal("STOP"));
                tokio::time::sleep(away).await;
                tokio::task::block_in_place(|| pg.signal("CONT"));
            }
        }
        // PostgreSQL accepts connections again: ingest resumes within 10 s.
        let back = Instant::now();
        let resumed_from = acks();
        while acks() < resumed_from + 100 {
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "ingest did not resume within 10 s after {fault:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest_recovery = slowest_recovery.max(back.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    sampler.await.unwrap();
    // Every acknowledged id is stored exactly once.
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut next = "/api/v1/events?limit=1000".to_owned();
    loop {
        let page = server.get_ok(&next).await;
        for e in page["events"].as_array().unwrap() {
            *stored
                .entry(e["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("/api/v1/events?limit=1000&cursor={c}"),
            None => break,
        }
    }
    // Every commit extended the integrity log in the same transaction: it comes through
    // the faults whole.
    let walked = server.get_ok("/api/v1/integrity/verify").await;
    assert_eq!(walked["ok"], true, "{walked}");
    assert!(walked["verified_events"].as_u64() > Some(0), "{walked}");
    let acked = acked.lock().unwrap();
    let missing = acked.keys().filter(|id| !stored.contains_key(*id)).count();
    let doubled = stored.values().filter(|n| **n > 1).count();
    assert_eq!(missing, 0, "acknowledged events missing after the faults");
    assert_eq!(doubled, 0, "events stored twice");
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_secs(30),
        "a request waited {slowest:?}: requests must be answered, not left hanging\n{}",
        crate::common::server_log(dir.path())
    );
    let buffers = evident_pipeline::PipelineConfig::default().capacity_bytes
        + evident_api::inflight::DEFAULT_INFLIGHT_BYTES;
    let peak = peak_rss.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak as usize <= buffers + 64 * 1024 * 1024,
        "peak RSS {} MiB over the buffers' {} MiB + 64 MiB",
        peak >> 20,
        buffers >> 20
    );
    eprintln!(
        "{} events acknowledged, {} refusals; slowest request {slowest:?}, slowest recovery {slowest_recovery:?}, peak RSS {} MiB",
        acked.len(),
        refusals.lock().unwrap().len(),
        peak >> 20
    );
}
