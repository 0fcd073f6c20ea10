//! `evident serve`: wires store → commit stage → detection stage → HTTP API, and shuts
//! down cleanly (the detection stage finishes what was committed before it stops).

use crate::cli::ServeArgs;
use crate::config::Config;
use anyhow::Context;
use evident_api::{AppState, router};
use evident_detect::DetectionHandle;
use evident_detect::library::Library;
use evident_ingest::Limits;
use evident_pipeline::Pipeline;
use evident_sources::{Ingestor, IngestorConfig};
use evident_store::{
    EventStore, FindingStore, KeyStore, PgStore, Role, SignedLog, SqliteStore, spawn_maintenance,
};
use evident_stream::CommittedLog;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// File in the data directory holding the first admin key.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// File in the data directory holding the address the server listens on.
pub const ADDR_FILE: &str = "evident.addr";
/// File in the data directory naming the syslog listeners' addresses, one
/// `TRANSPORT ADDRESS` line each (written only when syslog is on).
pub const SYSLOG_ADDR_FILE: &str = "syslog.addr";

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Room for connections beside the store and rule files; the cap below keeps some.
    let open_files = crate::http::raise_open_file_limit();
    let config = Config::load(args.config.as_deref())?;
    let Stores {
        events: store,
        keys,
        findings,
        committed,
        log,
        maintenance,
    } = open_store(&args, &config).await?;
    ensure_admin_key(keys.as_ref(), &args.data_dir).await?;
    let signer = Arc::new(crate::verify::load_or_create_key(&args.data_dir)?);
    let integrity_log: Arc<dyn evident_store::IntegrityLog> = log.clone();
    let (checkpoint_task, stop_checkpoints) = sign_checkpoints(
        log,
        signer.clone(),
        std::time::Duration::from_secs(args.checkpoint_every.max(1)),
    );
    let (library, detector) = open_rules(args.rules.as_deref(), &args.data_dir)?;
    let privacy = crate::privacy::open(&args)?;
    let (pipeline, commit_task) = Pipeline::start(store.clone(), config.pipeline.clone());
    let (detection, detection_task) = evident_detect::stage::start(
        findings.clone(),
        committed.clone(),
        detector,
        pipeline.commits(),
        evident_detect::StageConfig::default(),
    );
    let rules_watch = watch_rules(library.clone(), detection.clone());
    // The live stream starts where the store stands; a subscriber who wants older events
    // asks for them by sequence number. The hub learns it too, so lags read true at once.
    let last_seq = committed
        .last_seq()
        .await
        .context("cannot read the newest committed event")?;
    pipeline
        .commits()
        .record(last_seq, std::time::Instant::now());
    let (live, live_task) = evident_stream::Live::start(
        evident_stream::Follower::new(
            "live stream",
            pipeline.commits(),
            committed.clone(),
            last_seq,
        ),
        config.stream_ring,
    );
    let findings_feed = tokio::spawn(evident_api::routes::stream::publish_findings(
        detection.findings_changed(),
        findings.clone(),
        store.clone(),
        privacy.clone(),
        live.clone(),
    ));
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_events: args.max_events,
        ..Limits::default()
    };
    let ingestor = ingestor(&pipeline, privacy.clone(), limits, &config);
    let mut state = AppState::new(store.clone(), keys, pipeline.clone(), ingestor);
    state.privacy = privacy;
    state.body_timeout = std::time::Duration::from_secs(args.body_timeout.max(1));
    state.metrics_require_key = config.metrics_require_key;
    state.findings = Some(findings);
    state.stream = Some(evident_api::routes::stream::StreamState::new(
        live.clone(),
        committed,
        config.stream,
    ));
    state.integrity_key = Some(signer.public_key());
    state.integrity_log = Some(integrity_log);
    state.rules = Some(evident_api::routes::rules::RulesState { library, detection });
    state.inflight =
        evident_api::inflight::InflightBudget::new(args.max_inflight_mb.max(1) * 1024 * 1024);
    state.metrics = Some(
        evident_api::routes::metrics::install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot start metrics: {e}"))?,
    );
    let ingestor = state.ingestor.clone();
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    write_atomically(
        &args.data_dir.join(ADDR_FILE),
        addr.to_string().as_bytes(),
        0o600,
    )
    .context("cannot write the address file")?;
    let syslog = start_syslog(&args, config.syslog.clone(), ingestor).await?;
    tracing::info!(%addr, data_dir = %args.data_dir.display(), "evident listening");
    println!(
        "evident listening on http://{addr} (data in {})",
        args.data_dir.display()
    );
    let connections = crate::http::ConnLimits {
        header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        max_connections: args
            .max_connections
            .unwrap_or_else(|| crate::http::default_max_connections(open_files))
            .max(1),
    };
    tracing::info!(
        max_connections = connections.max_connections,
        open_files,
        header_timeout_s = connections.header_timeout.as_secs(),
        idle_timeout_s = connections.idle_timeout.as_secs(),
        "connection limits"
    );
    // Open streams end first: the server waits for every response in progress, and a
    // subscriber's never ends by itself.
    let stopping = async move {
        shutdown_signal().await;
        live.close_subscribers();
    };
    crate::http::serve(listener, app, connections, stopping).await;
    if let Some(syslog) = syslog {
        // Every syslog message already read is queued before the pipeline closes.
        syslog.stop().await;
    }
    tracing::info!("stopped taking requests; committing what is queued");
    pipeline.close();
    commit_task.await.context("commit stage failed")?;
    detection_task.await.context("detection stage failed")?;
    live_task.await.context("live stream failed")?;
    findings_feed.abort();
    // A last checkpoint covers everything committed before the stop.
    stop_checkpoints.notify_one();
    checkpoint_task.await.context("checkpoint task failed")?;
    maintenance.abort();
    rules_watch.abort();
    tracing::info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Starts the syslog listeners the command line or the configuration asks for (the
/// command line wins), and writes where they listen to DATA_DIR/syslog.addr.
async fn start_syslog(
    args: &ServeArgs,
    mut config: evident_sources::syslog::SyslogConfig,
    ingestor: Ingestor,
) -> anyhow::Result<Option<evident_sources::syslog::Listeners>> {
    config.udp = args.syslog_udp.or(config.udp);
    config.tcp = args.syslog_tcp.or(config.tcp);
    if let (Some(addr), Some(cert), Some(key)) =
        (args.syslog_tls, &args.syslog_tls_cert, &args.syslog_tls_key)
    {
        config.tls = Some(evident_sources::syslog::TlsListen {
            addr,
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let file = args.data_dir.join(SYSLOG_ADDR_FILE);
    if !config.any() {
        std::fs::remove_file(&file).ok();
        return Ok(None);
    }
    let listeners = evident_sources::syslog::Listeners::start(config, ingestor).await?;
    let bound = listeners.bound();
    let mut lines = String::new();
    for (transport, addr) in [("udp", bound.udp), ("tcp", bound.tcp), ("tls", bound.tls)] {
        if let Some(addr) = addr {
            lines.push_str(&format!("{transport} {addr}\n"));
            println!("evident taking syslog over {transport} on {addr}");
        }
    }
    write_atomically(&file, lines.as_bytes(), 0o600)
        .context("cannot write the syslog address file")?;
    Ok(Some(listeners))
}

/// The one way in for every source: admission with the configured limits and
/// priorities, sealing personal data when protection is on, then the pipeline.
fn ingestor(
    pipeline: &Pipeline,
    privacy: Option<Arc<evident_privacy::Privacy>>,
    limits: Limits,
    config: &Config,
) -> Ingestor {
    let transforms: Vec<Arc<dyn evident_sources::Transform>> = privacy
        .map(|p| Arc::new(evident_sources::ingestor::Sealing(p)) as _)
        .into_iter()
        .collect();
    let config = IngestorConfig {
        limits,
        priorities: Arc::new(config.priorities.clone()),
        ..IngestorConfig::default()
    };
    Ingestor::new(Arc::new(pipeline.clone()), transforms, config)
}

/// The rules directory: `dir`, or `DATA_DIR/rules`, created with the built-in default
/// pack on first start. Rules that cannot load are reported and left out; the others run.
fn open_rules(
    dir: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(Arc<Library>, evident_detect::Detector)> {
    let dir = match dir {
        Some(dir) => {
            anyhow::ensure!(
                dir.is_dir(),
                "the rules directory {} does not exist",
                dir.display()
            );
            dir.to_owned()
        }
        None => {
            let dir = data_dir.join(RULES_DIR);
            if Library::seed_default_pack(&dir)? {
                println!("wrote the default rule pack to {}", dir.display());
            }
            dir
        }
    };
    let (library, detector) = Library::open(&dir)?;
    report_rules(&library.report(), &dir);
    Ok((Arc::new(library), detector))
}

fn report_rules(report: &evident_detect::LoadReport, dir: &Path) {
    for problem in &report.problems {
        tracing::warn!(%problem, "rule not loaded");
    }
    println!(
        "detecting with {} rules and {} correlations from {}{}",
        report.loaded,
        report.correlations,
        dir.display(),
        match report.problems.len() {
            0 => String::new(),
            n => format!(" ({n} could not load; see the log or run `evident rules check`)"),
        }
    );
}

/// Reloads the rules whenever their files change.
fn watch_rules(library: Arc<Library>, detection: DetectionHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RULES_POLL);
        loop {
            tick.tick().await;
            let lib = library.clone();
            match tokio::task::spawn_blocking(move || lib.reload_if_changed()).await {
                Ok(Ok(Some((detector, report)))) => {
                    report_rules(&report, library.dir());
                    detection.replace_rules(detector);
                }
                Ok(Ok(None)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "rules not reloaded"),
                Err(error) => tracing::error!(%error, "rules reload task failed"),
            }
        }
    })
}

/// Signs a checkpoint of the integrity log every `every` (when something was committed
/// since the last one), and once more when `stop` is notified, then ends.
fn sign_checkpoints(
    store: Arc<dyn SignedLog>,
    signer: Arc<evident_integrity::Signer>,
    every: std::time::Duration,
) -> (tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let origin = format!(
        "evident {}",
        evident_integrity::key_id(&signer.public_key())
    );
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                () = stopped.notified() => true,
            };
            if let Err(error) = store.sign_checkpoint(signer.clone(), origin.clone()).await {
                tracing::warn!(%error, "checkpoint not signed; retrying at the next tick");
            }
            if last {
                break;
            }
        }
    });
    (task, stop)
}

/// The rules directory inside the data directory, when `--rules` is not given.
pub const RULES_DIR: &str = "rules";
/// How often the rules directory is checked for changed files.
const RULES_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The stores the service runs on, and the task that enforces retention.
struct Stores {
    events: Arc<dyn EventStore>,
    keys: Arc<dyn KeyStore>,
    findings: Arc<dyn FindingStore>,
    /// The same store, as the committed stream's log that followers read back.
    committed: Arc<dyn CommittedLog>,
    /// The same store, as the integrity log the service signs.
    log: Arc<dyn SignedLog>,
    maintenance: tokio::task::JoinHandle<()>,
}

/// The event, key and findings store: PostgreSQL when a database URL is given (command
/// line first, then the config file), else the embedded store in the data directory; and
/// the task that enforces retention (and, on PostgreSQL, creates partitions ahead).
async fn open_store(args: &ServeArgs, config: &Config) -> anyhow::Result<Stores> {
    match args.database_url.as_ref().or(config.database_url.as_ref()) {
        Some(url) => {
            if args.max_db_size_mb.is_some() {
                anyhow::bail!(
                    "--max-db-size-mb applies to the embedded store only; size PostgreSQL with its own quotas"
                );
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&args.data_dir)
                .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
            let store = PgStore::connect(url, config.retention.clone())
                .await
                .with_context(|| format!("cannot open the PostgreSQL store at {}", redact(url)))?;
            let store = Arc::new(store);
            Ok(Stores {
                maintenance: spawn_maintenance(store.clone(), MAINTENANCE_EVERY),
                events: store.clone(),
                keys: store.clone(),
                findings: store.clone(),
                committed: store.clone(),
                log: store,
            })
        }
        None => {
            let store =
                SqliteStore::open_exclusive(&args.data_dir).context("cannot open the store")?;
            if let Some(mb) = args.max_db_size_mb {
                store
                    .limit_size(mb * 1024 * 1024)
                    .context("cannot cap the database size")?;
            }
            store.set_retention(config.retention.clone());
            let store = Arc::new(store);
            Ok(Stores {
                maintenance: spawn_maintenance(store.clone(), MAINTENANCE_EVERY),
                events: store.clone(),
                keys: store.clone(),
                findings: store.clone(),
                committed: store.clone(),
                log: store,
            })
        }
    }
}

/// How often retention is enforced (and PostgreSQL partitions created ahead).
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// On a store with no keys, creates an admin key and writes it to `DIR/admin.key` (0600).
async fn ensure_admin_key(store: &dyn KeyStore, data_dir: &Path) -> anyhow::Result<()> {
    if store.count_keys().await? > 0 {
        return Ok(());
    }
    let secret = store
        .create_key(Role::Admin, None, Some("created on first start".into()))
        .await?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    println!(
        "created an admin API key; it is in {} (readable by you only)",
        path.display()
    );
    Ok(())
}

/// Writes `bytes` to `path` so a reader sees the old file or the whole new one, never a
/// part; a new file gets `mode` (before the umask).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::remove_file(&tmp).ok();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
