//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default address `serve` listens on and clients talk to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7600";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "evident-data";

/// evident: security event collection, detection and audit.
#[derive(Debug, Parser)]
#[command(name = "evident", version)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `evident_api=debug`); default from EVIDENT_LOG, else info.
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (embedded SQLite store in the data directory, or PostgreSQL).
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    Keys(KeysArgs),
    /// Send NDJSON events from a file or stdin.
    Send(SendArgs),
    /// Search stored events.
    Query(Box<QueryArgs>),
    /// Follow the live stream: events (and findings) as they commit.
    ///
    /// Reconnects by itself after a dropped connection, resuming after the last event it
    /// printed; Ctrl-C stops it.
    Tail(Box<TailArgs>),
    /// Tail log files and forward their lines to a server (syslog-style lines parsed).
    ///
    /// Follows rotation by rename and by truncation, resumes at its last offset after a
    /// restart, and keeps batches in a bounded spool while the server is unreachable.
    Agent(Box<AgentArgs>),
    /// List or replay events the store kept refusing (the dead-letter table).
    Dlq(DlqArgs),
    /// Measure durable ingest throughput and latency over HTTP, against the naive table.
    Bench(crate::bench::BenchArgs),
    /// Fill a store directly with the benchmark workload (for query benchmarks).
    BenchLoad(crate::bench::loader::LoadArgs),
    /// Time the query API's common filters against a loaded store.
    BenchQueries(crate::bench::queries::QueryBenchArgs),
    /// Time the detection stage (rules over the benchmark workload, one thread).
    BenchDetect(crate::bench::detect::DetectBenchArgs),
    /// Time from commit to finding through the detection stage (default rule pack).
    BenchFindings(crate::bench::findings::FindingsBenchArgs),
    /// Measure the live stream: what subscribers cost ingest, their delay after commit.
    ///
    /// Ingest with and without WebSocket subscribers taking every event, then the delay
    /// from commit to each subscriber at a steady rate.
    BenchStream(crate::bench::stream::StreamBenchArgs),
    /// Check Sigma rule files, or try rules on events.
    Rules(crate::rules::RulesArgs),
    /// Check the stored events against their signed checkpoints (tamper evidence).
    ///
    /// Walks the store (embedded, or PostgreSQL with --database-url) against its signed
    /// checkpoints; names the first event altered, removed, inserted or reordered (exit 1),
    /// or says what verified (exit 0).
    Verify(crate::verify::VerifyArgs),
    /// Check one event's inclusion proof offline, with the service's public key alone.
    ///
    /// The proof is what GET /api/v1/events/{id}/proof answers; exit 0 if it holds, 1 if
    /// not.
    VerifyProof(crate::verify_proof::VerifyProofArgs),
    /// Measure the seeds' PostgreSQL table loaded by COPY, batched and single INSERTs.
    BenchPgBaselines(crate::bench::peers::PeersArgs),
}

/// `evident serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is written to DATA_DIR/evident.addr).
    #[arg(long, default_value = DEFAULT_LISTEN, env = "EVIDENT_LISTEN")]
    pub listen: SocketAddr,
    /// Directory holding the database and keys.
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "EVIDENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Configuration file (YAML; see docs/evident.example.yaml). Without it, defaults apply.
    #[arg(long, env = "EVIDENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store events in PostgreSQL at this URL (postgres://user@host:port/db) instead of
    /// the embedded store; the data directory then holds only keys and the address file.
    #[arg(long, env = "EVIDENT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = evident_ingest::Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most events per request.
    #[arg(long, default_value_t = evident_ingest::Limits::default().max_events)]
    pub max_events: usize,
    /// Request bytes (MiB) taken in at once across all clients; past it, 429.
    #[arg(long, default_value_t = evident_api::inflight::DEFAULT_INFLIGHT_BYTES / (1024 * 1024))]
    pub max_inflight_mb: usize,
    /// Cap the database at this many MiB (commits then fail as on a full disk).
    #[arg(long)]
    pub max_db_size_mb: Option<u64>,
    /// Seconds a client may take to send a request body before it gets 400.
    #[arg(long, default_value_t = evident_api::BODY_TIMEOUT.as_secs())]
    pub body_timeout: u64,
    /// Seconds a client has to send a request's headers: from the accept for a new
    /// connection, from the first byte for the next request on a kept-alive one.
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Most connections open at once; past it new ones wait in the kernel's backlog.
    /// Default: the open file limit (raised to its hard limit at start) less 512 kept for
    /// the store and rule files.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds between signed checkpoints of the integrity log.
    #[arg(long, default_value_t = 5)]
    pub checkpoint_every: u64,
    /// Sigma rules to detect with: every .yml/.yaml file under this directory, reloaded
    /// when they change. Default: DATA_DIR/rules, created on first start with the
    /// default pack (the repository's rules/evident/).
    #[arg(long, env = "EVIDENT_RULES")]
    pub rules: Option<PathBuf>,
    /// Personal fields, comma-separated: encrypted at rest under a key per subject and
    /// replaced by pseudonyms (actor.user_id, actor.ip, actor.user_agent,
    /// actor.session_id, data.<path>). `none` turns personal data protection off.
    #[arg(
        long,
        env = "EVIDENT_PERSONAL_FIELDS",
        value_delimiter = ',',
        default_value = "actor.user_id,actor.ip,actor.user_agent"
    )]
    pub personal_fields: Vec<String>,
    /// File holding the master key that wraps the subjects' keys (32 bytes, base64);
    /// created on first start. Default: DATA_DIR/master.key.
    #[arg(long, env = "EVIDENT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (base64), in place of the file; set it in the environment,
    /// not on the command line, where other users can read it. Takes precedence over
    /// --master-key-file.
    #[arg(long, env = "EVIDENT_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The subjects' key store (a SQLite file). Default: DATA_DIR/subject-keys.db. Back
    /// it up apart from the events, with short retention: an erasure reaches a backup of
    /// the events at once, a backup of the key store only when it expires.
    #[arg(long, env = "EVIDENT_SUBJECT_KEYS")]
    pub subject_keys: Option<PathBuf>,
    /// Take syslog over UDP on this address (e.g. 0.0.0.0:514); overrides the config file.
    #[arg(long, env = "EVIDENT_SYSLOG_UDP")]
    pub syslog_udp: Option<SocketAddr>,
    /// Take syslog over TCP on this address (e.g. 0.0.0.0:601), octet-counted or one
    /// message per line; overrides the config file.
    #[arg(long, env = "EVIDENT_SYSLOG_TCP")]
    pub syslog_tcp: Option<SocketAddr>,
    /// Take syslog over TLS on this address (e.g. 0.0.0.0:6514); needs --syslog-tls-cert
    /// and --syslog-tls-key.
    #[arg(long, env = "EVIDENT_SYSLOG_TLS", requires_all = ["syslog_tls_cert", "syslog_tls_key"])]
    pub syslog_tls: Option<SocketAddr>,
    /// The syslog TLS certificate chain (PEM).
    #[arg(long, env = "EVIDENT_SYSLOG_TLS_CERT")]
    pub syslog_tls_cert: Option<PathBuf>,
    /// The syslog TLS private key (PEM).
    #[arg(long, env = "EVIDENT_SYSLOG_TLS_KEY")]
    pub syslog_tls_key: Option<PathBuf>,
}

/// `evident keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown once; only its hash is stored).
    Create {
        /// Data directory of the service.
        #[arg(long, default_value = DEFAULT_DATA_DIR, env = "EVIDENT_DATA_DIR")]
        data_dir: PathBuf,
        /// The service's PostgreSQL store, when it uses one.
        #[arg(long, env = "EVIDENT_DATABASE_URL")]
        database_url: Option<String>,
        /// What the key may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Limit the key to these facilities (repeat for several); default: all.
        #[arg(long = "facility")]
        facilities: Vec<String>,
        /// A note on who or what holds the key.
        #[arg(long)]
        label: Option<String>,
        /// Let the key read personal data in the clear (admin keys always may; other
        /// keys see pseudonyms).
        #[arg(long)]
        personal: bool,
    },
}

/// Key roles on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// May only send events.
    Ingest,
    /// May query events and statistics.
    Read,
    /// May do everything.
    Admin,
}

/// Where a client command finds the service and its key.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Service URL.
    #[arg(long, default_value = concat!("http://", "127.0.0.1:7600"), env = "EVIDENT_URL")]
    pub url: String,
    /// API key (or set EVIDENT_KEY); default: the admin key in --data-dir.
    #[arg(long, env = "EVIDENT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Data directory whose admin.key is used when no key is given.
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "EVIDENT_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// `evident dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// Dead-letter subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print dead letters as JSON lines, oldest first.
    List {
        /// Most to print (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send dead letters through the pipeline again (after fixing what refused them).
    Replay {
        /// Most to replay (1–1000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `evident send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// NDJSON file to send, or `-` for stdin.
    pub file: PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `evident query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Event type, exact or a prefix such as `auth.*`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Category.
    #[arg(long)]
    pub category: Option<String>,
    /// Exact severity.
    #[arg(long)]
    pub severity: Option<String>,
    /// This severity or worse.
    #[arg(long)]
    pub min_severity: Option<String>,
    /// Actor user id.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Actor address.
    #[arg(long)]
    pub source_ip: Option<String>,
    /// Agent id.
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Facility.
    #[arg(long)]
    pub facility: Option<String>,
    /// Correlation id.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Start: RFC 3339 or a duration back from now (24h).
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or a duration back from now.
    #[arg(long)]
    pub to: Option<String>,
    /// Condition on a data field, PATH=VALUE (repeatable), e.g. station_id=STN-A-01.
    #[arg(long = "data")]
    pub data: Vec<String>,
    /// Text the event's message (data.message) contains, e.g. "link down".
    #[arg(long)]
    pub text: Option<String>,
    /// Most events to print.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `evident tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Event type, exact or a prefix such as `auth.*` (repeatable: any of them).
    #[arg(long = "type")]
    pub event_type: Vec<String>,
    /// Category (repeatable).
    #[arg(long)]
    pub category: Vec<String>,
    /// This severity or worse.
    #[arg(long)]
    pub min_severity: Option<String>,
    /// Actor user id (repeatable).
    #[arg(long)]
    pub user: Vec<String>,
    /// Agent id (repeatable).
    #[arg(long)]
    pub agent: Vec<String>,
    /// Facility (repeatable).
    #[arg(long)]
    pub facility: Vec<String>,
    /// Actor address, or a network in CIDR notation (repeatable).
    #[arg(long)]
    pub source_ip: Vec<String>,
    /// Condition on a data field, PATH=VALUE (repeatable), e.g. station_id=STN-A-01.
    #[arg(long = "data")]
    pub data: Vec<String>,
    /// Leave findings out; print events only.
    #[arg(long)]
    pub no_findings: bool,
    /// Start after this commit sequence number (from the store) instead of now.
    #[arg(long)]
    pub since_seq: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `evident agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// A file to follow (repeatable), e.g. /var/log/auth.log.
    #[arg(long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Where the agent keeps its offsets and its spool.
    #[arg(long, default_value = "evident-agent", env = "EVIDENT_AGENT_STATE")]
    pub state_dir: PathBuf,
    /// Milliseconds between looks at the files.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// The spool's bound in MiB; when full, the agent stops reading until the server
    /// takes what waits.
    #[arg(long, default_value_t = 64)]
    pub spool_mb: u64,
    /// The facility of every event sent (default: none).
    #[arg(long)]
    pub facility: Option<String>,
    /// Read each file to its end once, send, and exit (instead of following).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How `query` prints events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    Json,
    /// An aligned table.
    Table,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_lists_every_subcommand_with_a_one_line_description() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let about = cli.get_about().map(ToString::to_string).unwrap_or_default();
        assert!(
            about.contains("security event collection"),
            "the top line says what evident is, not a partial list of commands: {about}"
        );
        let help = cli.clone().render_help().to_string();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            assert!(!sub.is_hide_set(), "`{name}` is hidden from --help");
            let line = sub.get_about().map(ToString::to_string).unwrap_or_default();
            assert!(!line.is_empty(), "`{name}` has no description");
            assert!(
                !line.contains('\n') && line.len() <= 90,
                "`{name}`'s description is longer than one line: {line}"
            );
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(name) && l.contains(&line)),
                "--help does not list `{name}`:\n{help}"
            );
        }
    }
}
