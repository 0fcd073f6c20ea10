//! `evident agent` against a real server: rotation by rename and by truncation, a
//! restart that resumes at its offsets, and a server that is down and then up; every
//! line stored exactly once.

use crate::common::{BIN, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Appends lines `from..=to` ("<13>Dec  7 06:00:00 gw app: line N") to `path`.
fn append(path: &Path, from: u32, to: u32) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..=to {
        writeln!(file, "<13>Dec  7 06:00:00 gw app: line {n}").unwrap();
    }
}

fn agent(url: &str, key: &str, file: &Path, state: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args([
            "agent",
            "--url",
            url,
            "--key",
            key,
            "--poll-ms",
            "50",
            "--file",
        ])
        .arg(file)
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start evident agent")
}

fn terminate(child: &mut Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the agent stops cleanly on SIGTERM: {status}"
    );
}

/// Waits until exactly `n` lines are stored (more is a failure: a line stored twice).
async fn lines_stored(server: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = server.count_of_type("log.syslog").await;
        assert!(stored <= n, "{stored} lines stored, only {n} written");
        if stored == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} of {n} lines stored after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn duplicates(server: &Server) -> u64 {
    server.get_ok("/api/v1/stats/pipeline").await["duplicates"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_both_ways_and_a_restart_store_every_line_once() {
    let (_dir, server) = Server::start_fresh();
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log: PathBuf = logs.path().join("app.log");
    append(&log, 1, 100);
    let mut running = agent(&server.url, &server.key, &log, state.path(), &[]);
    lines_stored(&server, 100).await;

    // Rotation by rename: the writer still appends to the old file for a while, then a
    // new file takes the name.
    append(&log, 101, 150);
    let rotated = logs.path().join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, 151, 160);
    std::thread::sleep(Duration::from_millis(200));
    append(&log, 161, 200);
    lines_stored(&server, 200).await;

    // Rotation by truncation (copytruncate).
    std::fs::File::create(&log).unwrap();
    append(&log, 201, 230);
    lines_stored(&server, 230).await;
    terminate(&mut running);

    // Written while the agent was away: sent after the restart, nothing before again.
    append(&log, 231, 240);
    let before = duplicates(&server).await;
    let status = agent(&server.url, &server.key, &log, state.path(), &["--once"])
        .wait()
        .unwrap();
    assert!(status.success());
    lines_stored(&server, 240).await;
    assert_eq!(
        duplicates(&server).await,
        before,
        "the restart resumed at its offset: no line was sent again"
    );
    // Every line is there once, with where it came from.
    let page = server
        .get_ok("/api/v1/events?type=log.syslog&limit=1000")
        .await;
    let mut numbers: Vec<u32> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["data"]["syslog"]["transport"], "file");
            assert!(e["data"]["file"]["offset"].is_u64());
            e["data"]["message"]
                .as_str()
                .unwrap()
                .strip_prefix("line ")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=240).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_read_while_the_server_is_down_are_spooled_and_sent_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start_on(dir.path(), &listen, &[]);
    let (url, key) = (server.url.clone(), server.key.clone());
    assert!(server.terminate().success());

    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    append(&log, 1, 300);
    let mut running = agent(&url, &key, &log, state.path(), &[]);
    // Nobody answers: the batches go to the spool.
    let spool = state.path().join("spool");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&spool)
        .map(|d| d.filter_map(Result::ok).count())
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "nothing was spooled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = Server::start_on(dir.path(), &listen, &[]);
    append(&log, 301, 310);
    lines_stored(&server, 310).await;
    terminate(&mut running);
    let left = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .count();
    assert_eq!(left, 0, "the spool is empty once sent");
}
