//! The configuration file (`--config evident.yaml`): a versioned schema that rejects
//! unknown keys, turned into the validated settings each stage takes.

use anyhow::{Context, bail};
use evident_api::routes::stream::session::StreamSettings;
use evident_ingest::PriorityRules;
use evident_model::{Category, Priority};
use evident_pipeline::PipelineConfig;
use evident_store::RetentionPolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Schema version; 1.
    version: u32,
    #[serde(default)]
    pipeline: PipelineSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    stream: StreamSection,
    #[serde(default)]
    syslog: SyslogSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogSection {
    /// UDP address to listen on.
    udp: Option<std::net::SocketAddr>,
    /// TCP address to listen on.
    tcp: Option<std::net::SocketAddr>,
    /// TLS listener.
    tls: Option<SyslogTlsSection>,
    /// Sender network (CIDR) → facility.
    #[serde(default)]
    networks: BTreeMap<String, String>,
    /// Longest message kept, in bytes; longer ones are cut and marked.
    max_message_bytes: Option<usize>,
    /// TCP and TLS connections open at once at most.
    max_connections: Option<usize>,
    /// UDP datagrams waiting for admission at most; more are dropped and counted.
    udp_queue: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogTlsSection {
    listen: std::net::SocketAddr,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamSection {
    /// Seconds between heartbeats.
    heartbeat_secs: Option<u64>,
    /// Messages queued for one subscriber before it counts as too slow.
    client_buffer: Option<usize>,
    /// Seconds a subscriber may stay too slow before it is closed.
    send_timeout_secs: Option<u64>,
    /// Messages the fan-out ring holds.
    ring: Option<usize>,
    /// Subscribers connected at once at most.
    max_subscribers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    /// `postgres://...`; absent means the embedded SQLite store in the data directory.
    database_url: Option<String>,
    #[serde(default)]
    retention: RetentionSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    /// Category name → days.
    #[serde(default)]
    categories: BTreeMap<String, u32>,
    /// Type prefix (ending in `.`) → days; wins over the category.
    #[serde(default)]
    types: BTreeMap<String, u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    capacity_events: Option<usize>,
    capacity_bytes: Option<usize>,
    max_commit_events: Option<usize>,
    #[serde(default)]
    priorities: BTreeMap<String, KnobsSection>,
    #[serde(default)]
    type_priorities: BTreeMap<String, String>,
    #[serde(default)]
    dedup: DedupSection,
    #[serde(default)]
    refusals: RefusalsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusalsSection {
    window_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DedupSection {
    window_secs: Option<u64>,
    #[serde(default)]
    fingerprints: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnobsSection {
    max_batch: Option<usize>,
    max_wait_ms: Option<u64>,
    share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    #[serde(default)]
    require_key: bool,
}

/// The syslog section, checked: networks are CIDR, sizes positive and within what an
/// event may hold.
fn syslog(section: SyslogSection) -> anyhow::Result<evident_sources::syslog::SyslogConfig> {
    let defaults = evident_sources::syslog::SyslogConfig::default();
    let networks = evident_sources::syslog::Networks::new(
        section
            .networks
            .iter()
            .map(|(net, facility)| (net.as_str(), facility.as_str())),
    )
    .map_err(|e| anyhow::anyhow!("syslog.networks: {e}"))?;
    let max_message_bytes = positive(
        "syslog.max_message_bytes",
        section.max_message_bytes,
        defaults.max_message_bytes,
    )?;
    let most = evident_ingest::Limits::default().max_string_bytes;
    if max_message_bytes > most {
        bail!("syslog.max_message_bytes must be at most {most} (the longest text an event holds)");
    }
    Ok(evident_sources::syslog::SyslogConfig {
        udp: section.udp,
        tcp: section.tcp,
        tls: section.tls.map(|t| evident_sources::syslog::TlsListen {
            addr: t.listen,
            cert: t.cert,
            key: t.key,
        }),
        networks,
        max_message_bytes,
        max_connections: positive(
            "syslog.max_connections",
            section.max_connections,
            defaults.max_connections,
        )?,
        udp_queue: positive("syslog.udp_queue", section.udp_queue, defaults.udp_queue)?,
        ..defaults
    })
}

/// The retention section, checked: known categories, type prefixes ending in a dot.
fn retention(section: RetentionSection) -> anyhow::Result<RetentionPolicy> {
    let mut categories = Vec::new();
    for (name, days) in section.categories {
        let Some(category) = Category::parse(&name) else {
            bail!(
                "storage.retention.categories: `{name}` is not a category ({})",
                Category::ALL.map(Category::as_str).join(", ")
            );
        };
        categories.push((category, days));
    }
    for prefix in section.types.keys() {
        if !prefix.ends_with('.') {
            bail!(
                "storage.retention.types: `{prefix}` must be a type prefix ending in a dot, such as `debug.`"
            );
        }
    }
    RetentionPolicy::with_overrides(categories, section.types)
        .map_err(|e| anyhow::anyhow!("storage.retention: {e}"))
}

/// Validated settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Queues and batching.
    pub pipeline: PipelineConfig,
    /// Per-type priorities.
    pub priorities: PriorityRules,
    /// Whether `/metrics` needs a read key.
    pub metrics_require_key: bool,
    /// PostgreSQL URL from the file (the command line's `--database-url` wins).
    pub database_url: Option<String>,
    /// How long events are kept.
    pub retention: RetentionPolicy,
    /// The live stream's sessions.
    pub stream: StreamSettings,
    /// Messages the live stream's fan-out ring holds.
    pub stream_ring: usize,
    /// The syslog listeners (none unless configured here or on the command line).
    pub syslog: evident_sources::syslog::SyslogConfig,
}

impl Config {
    /// Reads and validates `path`; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            None => "version: 1".to_owned(),
        };
        Self::parse(&text).with_context(|| match path {
            Some(path) => format!("invalid configuration in {}", path.display()),
            None => "invalid default configuration".to_owned(),
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let file: ConfigFile = serde_saphyr::from_str(text)?;
        if file.version != 1 {
            bail!(
                "version {} is not supported; this evident reads version 1",
                file.version
            );
        }
        let mut pipeline = PipelineConfig::default();
        let p = file.pipeline;
        pipeline.capacity_events = positive(
            "pipeline.capacity_events",
            p.capacity_events,
            pipeline.capacity_events,
        )?;
        pipeline.capacity_bytes = positive(
            "pipeline.capacity_bytes",
            p.capacity_bytes,
            pipeline.capacity_bytes,
        )?;
        pipeline.max_commit_events = positive(
            "pipeline.max_commit_events",
            p.max_commit_events,
            pipeline.max_commit_events,
        )?;
        for (name, knobs) in p.priorities {
            let priority = priority(&format!("pipeline.priorities.{name}"), &name)?;
            let rank = usize::from(priority.rank());
            let path = format!("pipeline.priorities.{name}");
            pipeline.knobs[rank].max_batch = positive(
                &format!("{path}.max_batch"),
                knobs.max_batch,
                pipeline.knobs[rank].max_batch,
            )?;
            if let Some(ms) = knobs.max_wait_ms {
                pipeline.knobs[rank].max_wait = Duration::from_millis(ms);
            }
            if let Some(share) = knobs.share {
                if !(share > 0.0 && share <= 1.0) {
                    bail!("{path}.share must be above 0 and at most 1, got {share}");
                }
                pipeline.share[rank] = share;
            }
        }
        if let Some(secs) = p.refusals.window_secs {
            if secs == 0 {
                bail!("pipeline.refusals.window_secs must be at least 1");
            }
            pipeline.refusal_window = Duration::from_secs(secs);
        }
        if let Some(secs) = p.dedup.window_secs {
            pipeline.dedup.window = Duration::from_secs(secs);
        }
        for (event_type, fields) in p.dedup.fingerprints {
            check_pattern("pipeline.dedup.fingerprints", &event_type)?;
            if fields.is_empty() {
                bail!("pipeline.dedup.fingerprints.{event_type}: name at least one field");
            }
            for field in &fields {
                let known = [
                    "id",
                    "type",
                    "category",
                    "severity",
                    "priority",
                    "outcome",
                    "source",
                    "agent_id",
                    "facility",
                    "correlation_id",
                    "actor",
                    "target",
                    "data",
                    "context",
                    "tags",
                ];
                if !known.contains(&field.split('.').next().unwrap_or_default()) {
                    bail!(
                        "pipeline.dedup.fingerprints.{event_type}: `{field}` is not an event field (type, source, actor.user_id, data.<path>, ...)"
                    );
                }
            }
            pipeline.dedup.fingerprints.insert(event_type, fields);
        }
        let mut rules = Vec::new();
        for (pattern, level) in p.type_priorities {
            check_pattern("pipeline.type_priorities", &pattern)?;
            rules.push((
                pattern.clone(),
                priority(&format!("pipeline.type_priorities.{pattern}"), &level)?,
            ));
        }
        let s = file.stream;
        let defaults = StreamSettings::default();
        let stream = StreamSettings {
            heartbeat: Duration::from_secs(positive_secs(
                "stream.heartbeat_secs",
                s.heartbeat_secs,
                defaults.heartbeat,
            )?),
            client_buffer: positive(
                "stream.client_buffer",
                s.client_buffer,
                defaults.client_buffer,
            )?,
            send_timeout: Duration::from_secs(positive_secs(
                "stream.send_timeout_secs",
                s.send_timeout_secs,
                defaults.send_timeout,
            )?),
            max_subscribers: positive(
                "stream.max_subscribers",
                s.max_subscribers,
                defaults.max_subscribers,
            )?,
        };
        let syslog = syslog(file.syslog)?;
        Ok(Config {
            syslog,
            stream,
            stream_ring: positive("stream.ring", s.ring, evident_stream::live::DEFAULT_BUFFER)?,
            pipeline,
            priorities: PriorityRules::new(rules),
            metrics_require_key: file.metrics.require_key,
            database_url: file.storage.database_url,
            retention: retention(file.storage.retention)?,
        })
    }
}

fn positive_secs(path: &str, value: Option<u64>, default: Duration) -> anyhow::Result<u64> {
    match value {
        Some(0) => bail!("{path} must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(default.as_secs().max(1)),
    }
}

fn positive(path: &str, value: Option<usize>, default: usize) -> anyhow::Result<usize> {
    match value {
        Some(0) => bail!("{path} must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

fn priority(path: &str, name: &str) -> anyhow::Result<Priority> {
    match Priority::ALL.into_iter().find(|p| p.as_str() == name) {
        Some(p) => Ok(p),
        None => bail!("{path}: `{name}` is not a priority (critical, high, medium, low, info)"),
    }
}

fn check_pattern(path: &str, pattern: &str) -> anyhow::Result<()> {
    if !evident_model::is_type_name(pattern.strip_suffix(".*").unwrap_or(pattern)) {
        bail!("{path}: `{pattern}` is not an event type or a prefix like auth.*");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_take_up_to_8000_events_unless_the_file_says_otherwise() {
        let plain = Config::parse("version: 1").unwrap();
        assert_eq!(plain.pipeline.max_commit_events, 8_000);
        assert_eq!(plain.pipeline.knobs(Priority::Info).max_batch, 8_000);
        let named = "version: 1\nstorage:\n  database_url: postgres://h/db\n";
        assert_eq!(
            Config::parse(named).unwrap().pipeline.max_commit_events,
            8_000
        );
        let set = "version: 1\npipeline:\n  max_commit_events: 300\n";
        assert_eq!(Config::parse(set).unwrap().pipeline.max_commit_events, 300);
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../docs/evident.example.yaml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.pipeline.knobs(Priority::Critical).max_batch, 1);
        assert_eq!(
            c.pipeline.knobs(Priority::Info).max_wait,
            Duration::from_secs(30)
        );
        assert_eq!(
            c.priorities.priority_for("threat.sql.injection"),
            Some(Priority::Critical)
        );
        assert_eq!(c.database_url, None);
        assert_eq!(c.retention.classes(), vec![30, 365, 730, 2557]);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("version: 2", "version 2"),
            (
                "version: 1\npipeline: {capacity_evnts: 5}",
                "capacity_evnts",
            ),
            (
                "version: 1\npipeline: {priorities: {urgent: {max_batch: 5}}}",
                "urgent",
            ),
            (
                "version: 1\npipeline: {priorities: {low: {share: 1.5}}}",
                "share",
            ),
            (
                "version: 1\npipeline: {max_commit_events: 0}",
                "max_commit_events",
            ),
            (
                "version: 1\npipeline: {type_priorities: {\"Auth Login\": high}}",
                "Auth Login",
            ),
            (
                "version: 1\npipeline: {type_priorities: {auth.login: extreme}}",
                "extreme",
            ),
            (
                "version: 1\nstorage: {retention: {categories: {securty: 10}}}",
                "securty",
            ),
            (
                "version: 1\nstorage: {retention: {types: {debug: 10}}}",
                "ending in a dot",
            ),
            (
                "version: 1\nstorage: {retention: {categories: {data: 0}}}",
                "0 days",
            ),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
