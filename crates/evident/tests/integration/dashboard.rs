//! The web dashboard in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) against a real server. `scripts/test.sh` installs both when missing.
//! Screenshots of each page go to the cargo target's temporary directory
//! (`dashboard-screenshots/`).

use crate::common::Server;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and a browser session on it; both end when dropped.
struct Browser {
    driver: Child,
    client: Client,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

impl Browser {
    async fn start() -> Browser {
        assert!(
            [CHROMIUM, CHROMEDRIVER]
                .iter()
                .all(|p| Path::new(p).try_exists().unwrap_or(false)),
            "the dashboard tests need Debian's chromium and chromium-driver: run scripts/browser-up.sh (scripts/test.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .arg("--verbose")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let capabilities: serde_json::Map<String, Value> = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                    // Exact heap figures and a collector to call, for the memory benchmark.
                    "--enable-precise-memory-info", "--js-flags=--expose-gc",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        })
        .as_object()
        .unwrap()
        .clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Browser {
            driver,
            client,
            log,
            _profile: profile,
        }
    }

    /// Opens `server`'s dashboard and signs in with its admin key; returns once the
    /// live tail is connected.
    async fn sign_in(&self, server: &Server) {
        self.client.goto(&format!("{}/", server.url)).await.unwrap();
        self.client
            .find(Locator::Css("#key"))
            .await
            .unwrap()
            .send_keys(&server.key)
            .await
            .unwrap();
        self.click("#signin button").await;
        self.text_until("#tail-status", |t| t.starts_with("live"))
            .await;
    }

    /// Waits for the element at `css` and returns its text.
    async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until the element at `css` has a text for which `ok` holds.
    async fn text_until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && ok(&text)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed what was wanted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn present(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Console errors, uncaught exceptions and failed loads the page logged, as
    /// chromedriver's verbose log records the browser's DevTools events.
    fn console_errors(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut errors = Vec::new();
        // Entries start with "[<time>][LEVEL]: "; an event's JSON body follows its header.
        for entry in log.split("\n[").skip(1) {
            let Some((header, body)) = entry.split_once('{') else {
                continue;
            };
            let body: Value = serde_json::from_str(&format!("{{{body}")).unwrap_or_default();
            let failed = if header.contains("Event: Runtime.consoleAPICalled") {
                body["type"] == "error"
            } else if header.contains("Event: Runtime.exceptionThrown") {
                true
            } else if header.contains("Event: Log.entryAdded") {
                body["entry"]["level"] == "error"
            } else {
                false
            };
            if failed {
                errors.push(body.to_string());
            }
        }
        errors
    }
}

fn event(kind: &str, severity: &str, extra: Value) -> Value {
    let mut e = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": kind,
        "severity": severity,
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
        e.extend(extra);
    }
    e
}

async fn post(server: &Server, events: Vec<Value>) {
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
}

fn id(e: &Value) -> &str {
    e["id"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_watches_filters_acknowledges_and_reads_the_overview() {
    let (_dir, server) = Server::start_fresh();
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("{}/", server.url)).await.unwrap();

    // A wrong key is refused with a clear word; the right one signs in.
    c.find(Locator::Css("#key"))
        .await
        .unwrap()
        .send_keys("evk_wrong")
        .await
        .unwrap();
    browser.click("#signin button").await;
    let refused = browser.text_until("#signin-error", |t| !t.is_empty()).await;
    assert!(refused.contains("not valid"), "{refused}");
    browser.screenshot("signin-refused").await;
    let key = c.find(Locator::Css("#key")).await.unwrap();
    key.clear().await.unwrap();
    key.send_keys(&server.key).await.unwrap();
    browser.click("#signin button").await;
    browser
        .text_until("#tail-status", |t| t.starts_with("live"))
        .await;

    // An event posted through the API appears in the live tail.
    let first = event(
        "dashboard.first",
        "high",
        json!({"data": {"station": "STN-7"}}),
    );
    post(&server, vec![first.clone()]).await;
    let row = browser.text(&format!("tr[data-id='{}']", id(&first))).await;
    assert!(
        row.contains("dashboard.first") && row.contains("high"),
        "{row}"
    );
    browser.screenshot("live-tail").await;

    // A severity filter hides what it should.
    let select = c
        .find(Locator::Css("#tail-filters select[name=min_severity]"))
        .await
        .unwrap();
    select.select_by_value("critical").await.unwrap();
    browser.click("#tail-filters button[type=submit]").await;
    browser
        .text_until("#tail-status", |t| t.starts_with("live"))
        .await;
    let hidden = event("dashboard.second", "high", json!({}));
    let shown = event("dashboard.second", "critical", json!({}));
    post(&server, vec![hidden.clone()]).await;
    post(&server, vec![shown.clone()]).await;
    browser.text(&format!("tr[data-id='{}']", id(&shown))).await;
    assert!(
        !browser
            .present(&format!("tr[data-id='{}']", id(&hidden)))
            .await,
        "the high event is filtered out"
    );

    // Five failed logins make a finding; it is acknowledged, and shows who did it.
    let failures: Vec<Value> = (0..5)
        .map(|i| {
            event(
                "auth.login.failure",
                "warning",
                json!({"outcome": "failure", "actor": {"user_id": "mallory", "ip": format!("10.3.3.{i}")}}),
            )
        })
        .collect();
    post(&server, failures).await;
    c.goto(&format!("{}/#/findings", server.url)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !browser.present("#findings-rows tr").await {
        assert!(Instant::now() < deadline, "no finding listed");
        browser.click("#findings-filters button").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    browser.click("#findings-rows tr").await;
    c.find(Locator::Css("#finding-action input[name=by]"))
        .await
        .unwrap()
        .send_keys("operator ann")
        .await
        .unwrap();
    browser
        .click("#finding-action button[data-status=acknowledged]")
        .await;
    let by = browser
        .text_until(".fact-changed-by", |t| t.contains("operator ann"))
        .await;
    assert!(by.contains("operator ann"), "{by}");
    assert_eq!(browser.text(".fact-status").await, "acknowledged");
    browser.screenshot("findings").await;

    // The overview counts what was posted.
    c.goto(&format!("{}/#/overview", server.url)).await.unwrap();
    let first_count = browser
        .text_until(
            "#chart-types [data-key='dashboard.first'] .bar-count",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(first_count, "1");
    let second_count = browser
        .text("#chart-types [data-key='dashboard.second'] .bar-count")
        .await;
    assert_eq!(second_count, "2");
    let failures = browser
        .text("#chart-types [data-key='auth.login.failure'] .bar-count")
        .await;
    assert_eq!(failures, "5");
    // The series stacks each bucket by severity: the one critical event posted shows.
    let mut critical = 0u64;
    for rect in c
        .find_all(Locator::Css("#chart-series rect[data-severity=critical]"))
        .await
        .unwrap()
    {
        critical += rect
            .attr("data-count")
            .await
            .unwrap()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(critical, 1, "one critical event was posted");
    browser.screenshot("overview").await;

    // Back on the live tail, the repository's sample (every seed shape) streams in.
    c.goto(&format!("{}/#/tail", server.url)).await.unwrap();
    let select = c
        .find(Locator::Css("#tail-filters select[name=min_severity]"))
        .await
        .unwrap();
    select.select_by_value("").await.unwrap();
    browser.click("#tail-filters button[type=submit]").await;
    browser
        .text_until("#tail-status", |t| t.starts_with("live"))
        .await;
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson"),
    )
    .unwrap();
    let (status, answer) = server
        .post(Some(&server.key), Some("application/x-ndjson"), sample)
        .await;
    assert_eq!(status, 202, "{answer}");
    let stored = answer["stored"].as_u64().unwrap() as usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while c
        .find_all(Locator::Css("#tail-rows tr"))
        .await
        .unwrap()
        .len()
        < stored
    {
        assert!(
            Instant::now() < deadline,
            "the sample did not reach the tail"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot("live-tail-sample").await;

    // An event's detail: its JSON, and its inclusion proof checked in the page against
    // the signed checkpoint (the next checkpoint comes within 5 s of a commit).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&format!("{}/#/events/{}", server.url, id(&first)))
            .await
            .unwrap();
        c.refresh().await.unwrap();
        let verdict = browser
            .text_until("#event-proof", |t| t != "checking…" && !t.is_empty())
            .await;
        if verdict.starts_with("verified") {
            break;
        }
        assert!(
            !verdict.starts_with("does not verify"),
            "the page rejects a good proof: {verdict}"
        );
        assert!(Instant::now() < deadline, "no proof within 30 s: {verdict}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let json = browser.text("#event-json").await;
    assert!(
        json.contains(id(&first)) && json.contains("STN-7"),
        "{json}"
    );
    browser.screenshot("event-detail").await;

    // Rules: the brute-force rule is listed with its firing.
    c.goto(&format!("{}/#/rules", server.url)).await.unwrap();
    let rules = browser
        .text_until("#rules-status", |t| t.contains("rules loaded"))
        .await;
    assert!(rules.starts_with(char::is_numeric), "{rules}");
    let fired = browser
        .text_until("#rules-rows", |t| t.contains("Brute force"))
        .await;
    assert!(fired.contains("enabled"), "{fired}");
    browser.screenshot("rules").await;

    // Health: the service is ready, the pipeline counts what was stored, the log verifies.
    c.goto(&format!("{}/#/health", server.url)).await.unwrap();
    assert_eq!(
        browser.text_until(".fact-ready", |t| !t.is_empty()).await,
        "yes"
    );
    let stored: u64 = browser
        .text_until(".fact-stored", |t| !t.is_empty())
        .await
        .parse()
        .unwrap();
    assert!(stored >= 9, "the page counts {stored} stored events");
    browser.click("#verify-run").await;
    let verified = browser
        .text_until("#health-verify", |t| {
            t.starts_with("verified") || t.starts_with("problem") || t.starts_with("nothing")
        })
        .await;
    assert!(
        verified.starts_with("verified") && !verified.contains(": 0 events"),
        "the event's proof verified, so the walk covers it: {verified}"
    );
    browser.screenshot("health").await;

    // The wrong key tried at sign-in was answered 401, and a proof asked for before the
    // next checkpoint 409: the browser logs both as failed loads. Anything else is a fault.
    let errors: Vec<String> = browser
        .console_errors()
        .into_iter()
        .filter(|e| !(e.contains("status of 401") && e.contains("/api/v1/findings?limit=1")))
        .filter(|e| !(e.contains("status of 409") && e.contains("/proof")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // The same check fails once the stored event is altered: one byte of its body.
    let mut server = server;
    assert!(server.terminate().success());
    let conn = rusqlite::Connection::open(server.dir.join("evident.db")).unwrap();
    let altered_rows = conn
        .execute(
            "UPDATE events SET body = replace(body, 'STN-7', 'STN-8') WHERE id = ?1",
            [uuid::Uuid::parse_str(id(&first))
                .unwrap()
                .as_bytes()
                .to_vec()],
        )
        .unwrap();
    assert_eq!(altered_rows, 1);
    drop(conn);
    let altered = Server::start(&server.dir);
    browser.sign_in(&altered).await;
    c.goto(&format!("{}/#/events/{}", altered.url, id(&first)))
        .await
        .unwrap();
    let verdict = browser
        .text_until("#event-proof", |t| t != "checking…" && !t.is_empty())
        .await;
    assert!(
        verdict.starts_with("does not verify"),
        "an altered event must not verify: {verdict}"
    );
    browser.screenshot("event-altered").await;
}

/// The benchmark behind `scripts/bench-dashboard.sh` (ignored in the test run): the
/// live tail open for 60 s while 1,000 events a second arrive; prints the page's
/// JavaScript heap at the start and the end, and the rows it holds. A page that keeps
/// what it shows bounded ends where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-dashboard.sh"]
async fn bench_the_live_tail_memory_under_a_steady_flow() {
    let seconds: u64 = 60;
    let (_dir, server) = Server::start_fresh();
    let browser = Browser::start().await;
    let c = &browser.client;
    browser.sign_in(&server).await;
    let heap = || async {
        let used = c
            .execute(
                "if (window.gc) { window.gc(); } return performance.memory.usedJSHeapSize;",
                vec![],
            )
            .await
            .unwrap();
        used.as_f64().unwrap() / 1_048_576.0
    };
    // Warm up for a few seconds, then measure from there.
    let send_for = |secs: u64| {
        let server = &server;
        async move {
            let mut next = tokio::time::Instant::now();
            for _ in 0..secs * 10 {
                let batch: Vec<Value> = (0..100)
                    .map(|i| {
                        event(
                            "bench.tail",
                            ["info", "low", "medium", "high"][i % 4],
                            json!({"data": {"n": i}}),
                        )
                    })
                    .collect();
                post(server, batch).await;
                next += Duration::from_millis(100);
                tokio::time::sleep_until(next).await;
            }
        }
    };
    send_for(5).await;
    let start = heap().await;
    send_for(seconds).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = heap().await;
    let rows = c
        .find_all(Locator::Css("#tail-rows tr"))
        .await
        .unwrap()
        .len();
    let status = browser.text("#tail-status").await;
    println!(
        "dashboard live tail, 1,000 events/s for {seconds} s: JS heap {start:.1} MiB after warm-up, {end:.1} MiB at the end ({:+.1} MiB); {rows} rows shown; status: {status}",
        end - start
    );
}
