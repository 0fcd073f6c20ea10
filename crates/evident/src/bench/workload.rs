//! The reference benchmark workload: the event mix of the project's reference generator
//! (types and their weights, severities per type, payload fields, 5,005 users, 192
//! stations, ~400–700 bytes per event), produced deterministically from a seed.

use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::Path;
use time::OffsetDateTime;
use time::macros::{datetime, format_description};

/// One workload event, in the columns of the seeds' `security_events` table.
#[derive(Debug, Clone)]
pub struct WorkEvent {
    /// Event id.
    pub id: String,
    /// Dotted type.
    pub event_type: String,
    /// Severity as the source wrote it.
    pub severity: String,
    /// RFC 3339 time.
    pub timestamp: String,
    /// Acting user.
    pub user_id: String,
    /// Client address.
    pub source_ip: String,
    /// Request id.
    pub correlation_id: String,
    /// Payload.
    pub data: Value,
    /// Emitting host and service.
    pub context: Value,
}

impl WorkEvent {
    /// The event in evident's canonical shape, as one JSON line.
    pub fn canonical_line(&self) -> String {
        json!({
            "id": self.id, "type": self.event_type, "severity": self.severity, "time": self.timestamp,
            "actor": {"user_id": self.user_id, "ip": self.source_ip}, "correlation_id": self.correlation_id,
            "data": self.data, "context": self.context,
        })
        .to_string()
    }
}

/// Mean gap between consecutive events' times (the clock advances 0.1–60 ms per event).
pub const MEAN_GAP: time::Duration = time::Duration::microseconds(30_050);

/// The event types and their share of the mix.
pub const TYPES: [(&str, f64); 10] = [
    ("user.login", 0.22),
    ("access.denied", 0.08),
    ("permission.change", 0.04),
    ("station.operation", 0.20),
    ("quality.check", 0.12),
    ("equipment.status", 0.12),
    ("data.access", 0.10),
    ("encryption.event", 0.04),
    ("config.change", 0.05),
    ("security.violation", 0.03),
];

fn severities(t: &str) -> &'static [&'static str] {
    match t {
        "user.login" => &["info", "info", "info", "warning"],
        "access.denied" => &["warning", "warning", "high"],
        "permission.change" | "config.change" => &["medium", "high"],
        "station.operation" => &["info", "info", "low"],
        "quality.check" | "data.access" => &["info", "low", "medium"],
        "equipment.status" => &["info", "low", "warning", "critical"],
        "encryption.event" => &["info", "medium", "high"],
        _ => &["high", "critical"],
    }
}

const ROLES: [&str; 7] = [
    "operator",
    "technician",
    "qa_inspector",
    "supervisor",
    "admin",
    "auditor",
    "maintenance",
];
const RESOURCES: [&str; 9] = [
    "/api/v1/panels",
    "/api/v1/stations",
    "/api/v1/recipes",
    "/api/v1/users",
    "/api/v1/audit",
    "/api/v1/quality/reports",
    "/api/v1/equipment",
    "/api/v1/config",
    "/api/v1/keys",
];
const UAS: [&str; 5] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0",
    "mes-client/4.2.1 (linux; amd64)",
    "python-requests/2.31.0",
    "curl/8.4.0",
];
const BASE: OffsetDateTime = datetime!(2024-06-01 00:00:00 UTC);

/// Which ids workload events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdKind {
    /// Random (v4) ids, as the reference generator writes them.
    V4,
    /// Time-ordered (v7) ids, as evident's own clients (`evident send`, the SDKs) generate them.
    V7,
}

/// A deterministic generator of workload events.
pub struct Generator {
    rng: StdRng,
    ids: IdKind,
    clock: OffsetDateTime,
    users: Vec<String>,
    stations: Vec<String>,
    hosts: Vec<String>,
}

impl Generator {
    /// A generator seeded with `seed` whose first event comes just after `start`.
    pub fn starting_at(seed: u64, ids: IdKind, start: OffsetDateTime) -> Self {
        Self {
            clock: start,
            ..Self::new(seed, ids)
        }
    }

    /// A generator seeded with `seed`.
    pub fn new(seed: u64, ids: IdKind) -> Self {
        let mut users: Vec<String> = (0..5000).map(|i| format!("user_{i:05}")).collect();
        users
            .extend(["admin", "svc_mes", "svc_backup", "operator_01", "qa_lead"].map(String::from));
        let stations = "ABCDEFGH"
            .chars()
            .flat_map(|l| (1..=24).map(move |i| format!("STN-{l}-{i:02}")))
            .collect();
        let hosts = (1..=12)
            .map(|i| format!("mes-node-{i:02}.plant1.local"))
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            ids,
            clock: BASE,
            users,
            stations,
            hosts,
        }
    }

    /// A v7 id for the current event time: what evident's clients generate.
    fn uuid_v7(&mut self) -> String {
        let millis = (self.clock.unix_timestamp_nanos() / 1_000_000) as u64;
        uuid::Builder::from_unix_timestamp_millis(millis, &self.rng.random())
            .into_uuid()
            .to_string()
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        items.choose(&mut self.rng).map_or("", String::as_str)
    }

    fn ip(&mut self) -> String {
        let r = &mut self.rng;
        match r.random::<f64>() {
            x if x < 0.6 => format!(
                "10.{}.{}.{}",
                r.random_range(0..=31),
                r.random_range(0..=255),
                r.random_range(1..=254)
            ),
            x if x < 0.9 => format!(
                "192.168.{}.{}",
                r.random_range(0..=20),
                r.random_range(1..=254)
            ),
            _ => format!(
                "{}.{}.{}.{}",
                r.random_range(11..=223),
                r.random_range(0..=255),
                r.random_range(0..=255),
                r.random_range(1..=254)
            ),
        }
    }

    fn panel(&mut self) -> String {
        format!(
            "PNL-{}-{:05}",
            self.rng.random_range(2024000..=2024999),
            self.rng.random_range(0..=99999)
        )
    }

    /// The next event.
    pub fn next_event(&mut self) -> WorkEvent {
        self.clock += time::Duration::microseconds(self.rng.random_range(100..=60000));
        let roll: f64 = self.rng.random();
        let mut acc = 0.0;
        let event_type = TYPES.iter().find(|(_, w)| {
            acc += w;
            roll < acc
        });
        let event_type = event_type
            .map_or("security.violation", |(t, _)| t)
            .to_owned();
        let severity = severities(&event_type)
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("info")
            .to_owned();
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let timestamp = self.clock.format(format).unwrap_or_default();
        let id = match self.ids {
            IdKind::V4 => self.uuid(),
            IdKind::V7 => self.uuid_v7(),
        };
        let users = std::mem::take(&mut self.users);
        let user_id = self.pick(&users).to_owned();
        let source_ip = self.ip();
        let correlation_id = self.uuid();
        let data = self.data_for(&event_type, &users);
        self.users = users;
        let hosts = std::mem::take(&mut self.hosts);
        let host = self.pick(&hosts).to_owned();
        self.hosts = hosts;
        let service = ["mes-api", "auth", "line-ctl", "qms"]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("mes-api");
        let context = json!({"host": host, "service": service, "session_id": self.uuid(), "env": "prod", "schema_version": 1});
        WorkEvent {
            id,
            event_type,
            severity,
            timestamp,
            user_id,
            source_ip,
            correlation_id,
            data,
            context,
        }
    }

    fn data_for(&mut self, t: &str, users: &[String]) -> Value {
        let stations = std::mem::take(&mut self.stations);
        let st = self.pick(&stations).to_owned();
        self.stations = stations;
        let user = |g: &mut Self| users.choose(&mut g.rng).cloned().unwrap_or_default();
        let resource = |g: &mut Self| {
            format!(
                "{}/{}",
                RESOURCES.choose(&mut g.rng).copied().unwrap_or(""),
                g.rng.random_range(1..=99999)
            )
        };
        let one = |g: &mut Self, xs: &[&'static str]| xs.choose(&mut g.rng).copied().unwrap_or("");
        let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
        match t {
            "user.login" => {
                let ok = self.rng.random::<f64>() < 0.85;
                let mut d = json!({"result": if ok {"success"} else {"failure"}, "method": one(self, &["password", "sso", "badge", "mfa"]),
                    "station_id": st, "user_agent": one(self, &UAS), "attempt": self.rng.random_range(1..=5), "mfa_used": self.rng.random::<f64>() < 0.6});
                if !ok {
                    d["failure_reason"] = one(
                        self,
                        &["bad_password", "locked_out", "unknown_user", "mfa_timeout"],
                    )
                    .into();
                }
                d
            }
            "access.denied" => {
                json!({"resource": resource(self), "action": one(self, &["read", "write", "delete", "execute"]),
                "required_role": one(self, &ROLES), "actual_role": one(self, &ROLES), "station_id": st,
                "policy_id": format!("POL-{:04}", self.rng.random_range(1..=400)), "reason": "insufficient_privileges"})
            }
            "permission.change" => {
                let mut perms = [
                    "read",
                    "write",
                    "approve",
                    "calibrate",
                    "override",
                    "export",
                ];
                perms.shuffle(&mut self.rng);
                json!({"target_user": user(self), "old_role": one(self, &ROLES), "new_role": one(self, &ROLES), "granted_by": user(self),
                    "ticket": format!("CHG-{}", self.rng.random_range(10000..=99999)), "permissions_added": &perms[..2], "station_id": st})
            }
            "station.operation" => {
                json!({"station_id": st, "panel_id": self.panel(), "operation": one(self, &["load", "solder", "inspect", "pick_place", "reflow", "unload"]),
                "recipe_id": format!("RCP-{:04}", self.rng.random_range(1..=800)), "cycle_time_ms": self.rng.random_range(800..=45000),
                "operator_id": user(self), "lot_id": format!("LOT-{}", self.rng.random_range(100000..=999999)), "result": one(self, &["ok", "ok", "ok", "rework"])})
            }
            "quality.check" => {
                json!({"station_id": st, "panel_id": self.panel(), "check_type": one(self, &["aoi", "xray", "ict", "functional", "visual"]),
                "passed": self.rng.random::<f64>() < 0.93, "defects": self.rng.random_range(0..=4), "measurements": {
                    "temp_c": round(self.rng.random_range(18.0..260.0), 2), "voltage_v": round(self.rng.random_range(3.1..12.4), 3),
                    "resistance_ohm": round(self.rng.random_range(0.1..1000.0), 2)}, "inspector_id": user(self)})
            }
            "equipment.status" => {
                let error_code = [None, None, Some("E101"), Some("E204"), Some("E999")]
                    .choose(&mut self.rng)
                    .copied()
                    .flatten();
                json!({"station_id": st, "equipment_id": format!("EQ-{:05}", self.rng.random_range(1..=2000)),
                "status": one(self, &["running", "idle", "fault", "maintenance", "offline"]), "uptime_s": self.rng.random_range(0..=10_000_000),
                "temperature_c": round(self.rng.random_range(20.0..95.0), 1),
                "firmware": format!("{}.{}.{}", self.rng.random_range(1..=9), self.rng.random_range(0..=20), self.rng.random_range(0..=99)),
                "error_code": error_code})
            }
            "data.access" => {
                json!({"resource": resource(self), "action": one(self, &["read", "export", "query"]), "records": self.rng.random_range(1..=50000),
                "bytes": self.rng.random_range(100..=50_000_000), "station_id": st, "query_id": self.uuid(),
                "classification": one(self, &["public", "internal", "confidential", "restricted"])})
            }
            "encryption.event" => {
                json!({"key_id": format!("kms-key-{:04}", self.rng.random_range(1..=300)), "operation": one(self, &["encrypt", "decrypt", "rotate", "sign", "verify"]),
                "algorithm": one(self, &["AES-256-GCM", "RSA-4096", "ECDSA-P256", "ChaCha20-Poly1305"]), "success": self.rng.random::<f64>() < 0.97,
                "station_id": st, "payload_bytes": self.rng.random_range(16..=1_048_576)})
            }
            "config.change" => {
                json!({"component": one(self, &["mes", "plc", "historian", "gateway", "scanner"]), "station_id": st,
                "key": one(self, &["max_temp", "conveyor_speed", "retry_limit", "tls_min_version", "log_level", "session_timeout"]),
                "old_value": self.rng.random_range(0..=1000).to_string(), "new_value": self.rng.random_range(0..=1000).to_string(),
                "change_ticket": format!("CHG-{}", self.rng.random_range(10000..=99999)), "approved_by": user(self)})
            }
            _ => {
                let n = self.rng.random_range(1..=3);
                let indicators: Vec<String> = (0..n).map(|_| self.ip()).collect();
                json!({"violation": one(self, &["brute_force", "usb_device_inserted", "unauthorized_firmware", "tamper_detected", "policy_bypass"]),
                    "station_id": st, "panel_id": self.panel(), "rule_id": format!("RULE-{:03}", self.rng.random_range(1..=120)),
                    "indicators": indicators, "blocked": self.rng.random::<f64>() < 0.7, "confidence": round(self.rng.random::<f64>(), 3)})
            }
        }
    }
}

/// Admits an NDJSON `body` of workload events as ingest would, refusing to go on if the
/// generator made an invalid one.
pub fn admit_ndjson(
    body: &str,
    max_events: usize,
) -> anyhow::Result<Vec<evident_model::EncodedEvent>> {
    let limits = evident_ingest::Limits {
        max_events,
        ..evident_ingest::Limits::default()
    };
    let admission = evident_ingest::admit_with(
        body.as_bytes(),
        evident_ingest::BodyFormat::Ndjson,
        &limits,
        &evident_ingest::PriorityRules::default(),
        OffsetDateTime::now_utc(),
    )?;
    anyhow::ensure!(
        admission.rejected.is_empty(),
        "the workload generator made invalid events: {:?}",
        admission.rejected.first()
    );
    Ok(admission.accepted.into_iter().map(|(_, e)| e).collect())
}

/// `n` events from the generator seeded with `seed`.
pub fn generate(n: usize, seed: u64, ids: IdKind) -> Vec<WorkEvent> {
    let mut g = Generator::new(seed, ids);
    (0..n).map(|_| g.next_event()).collect()
}

/// Events read from an NDJSON file in the reference generator's row format
/// (`id, event_type, severity, timestamp, user_id, source_ip, correlation_id, data, context`).
pub fn read_reference_file(path: &Path, limit: usize) -> anyhow::Result<Vec<WorkEvent>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines().take(limit) {
        let v: Value = serde_json::from_str(&line?).context("workload line is not JSON")?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        out.push(WorkEvent {
            id: s("id"),
            event_type: s("event_type"),
            severity: s("severity"),
            timestamp: s("timestamp"),
            user_id: s("user_id"),
            source_ip: s("source_ip"),
            correlation_id: s("correlation_id"),
            data: v["data"].clone(),
            context: v["context"].clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_is_deterministic_and_sized_like_the_reference() {
        let a = generate(2000, 42, IdKind::V4);
        let b = generate(2000, 42, IdKind::V4);
        assert_eq!(
            a.iter().map(WorkEvent::canonical_line).collect::<Vec<_>>(),
            b.iter().map(WorkEvent::canonical_line).collect::<Vec<_>>()
        );
        let avg = a.iter().map(|e| e.canonical_line().len()).sum::<usize>() / a.len();
        assert!(
            (400..=750).contains(&avg),
            "average event size {avg} B is outside the reference 400-700 B band"
        );
        let logins = a.iter().filter(|e| e.event_type == "user.login").count();
        assert!(
            (350..=530).contains(&logins),
            "user.login share {logins}/2000 is far from 22%"
        );
    }
}
