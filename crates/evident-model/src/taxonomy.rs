//! The event taxonomy: categories, outcomes, and the defaults derived from an event's type.

use crate::level::Severity;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest event type name, in bytes.
pub const MAX_TYPE_LEN: usize = 128;

/// Whether `name` is a well-formed event type: dot-separated non-empty segments of
/// lowercase letters, digits, `_` and `-`, at most [`MAX_TYPE_LEN`] bytes (`auth.login.failure`).
pub fn is_type_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TYPE_LEN
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// The category of an event, from the fixed taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Logins, logouts, MFA, sessions.
    Authentication,
    /// Access decisions and permission changes.
    Authorization,
    /// Station operations, quality checks, equipment, maintenance.
    Manufacturing,
    /// Data access, exports, encryption, compliance actions.
    Data,
    /// Configuration changes, system errors, the service's own events.
    System,
    /// Network traffic and connections.
    Network,
    /// File system activity.
    File,
    /// Process execution.
    Process,
    /// Registry modification.
    Registry,
    /// API calls.
    Api,
    /// Attacks and violations: injection, brute force, tampering.
    Threat,
    /// Anything else.
    Custom,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 12] = [
        Self::Authentication,
        Self::Authorization,
        Self::Manufacturing,
        Self::Data,
        Self::System,
        Self::Network,
        Self::File,
        Self::Process,
        Self::Registry,
        Self::Api,
        Self::Threat,
        Self::Custom,
    ];

    /// The canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Manufacturing => "manufacturing",
            Self::Data => "data",
            Self::System => "system",
            Self::Network => "network",
            Self::File => "file",
            Self::Process => "process",
            Self::Registry => "registry",
            Self::Api => "api",
            Self::Threat => "threat",
            Self::Custom => "custom",
        }
    }

    /// Parses a canonical name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|c| c.as_str() == lower)
    }

    /// The category a dotted type belongs to when the sender names none.
    ///
    /// Decided by the first segment (and for a few seed types, the whole name):
    /// `auth.*`, `user.login`, `user.logout`, `session.*`, `mfa.*` → authentication;
    /// `access.*`, `permission.*`, `authz.*`, `role.*` → authorization; `station.*`,
    /// `quality.*`, `equipment.*`, `maintenance.*`, `production.*`, `safety.*` →
    /// manufacturing; `data.*`, `encryption.*`, `compliance.*`, `privacy.*` → data;
    /// `config.*`, `system.*` → system; `security.*`, `threat.*`, `attack.*` → threat;
    /// `network.*`, `file.*`, `process.*`, `registry.*`, `api.*` → their own; else custom.
    pub fn for_type(event_type: &str) -> Self {
        let head = event_type.split('.').next().unwrap_or_default();
        match head {
            "auth" | "authentication" | "session" | "mfa" | "login" | "logout" => {
                Self::Authentication
            }
            "user" if event_type.starts_with("user.log") => Self::Authentication,
            "user" => Self::Authorization,
            "access" | "permission" | "authz" | "authorization" | "role" => Self::Authorization,
            "station" | "quality" | "equipment" | "maintenance" | "production" | "safety"
            | "plc" => Self::Manufacturing,
            "data" | "encryption" | "compliance" | "privacy" | "gdpr" => Self::Data,
            "config" | "configuration" | "system" | "service" => Self::System,
            "security" | "threat" | "attack" | "intrusion" | "malware" => Self::Threat,
            "network" | "net" | "firewall" => Self::Network,
            "file" => Self::File,
            "process" => Self::Process,
            "registry" => Self::Registry,
            "api" | "http" => Self::Api,
            _ => Self::Custom,
        }
    }

    /// Compliance controls an event of this category evidences by default
    /// (IEC 62443-3-3 system requirements, NIST CSF 2.0 categories, GDPR articles).
    pub fn compliance_controls(self) -> &'static [&'static str] {
        match self {
            Self::Authentication => &["iec62443:sr1.1", "nist-csf:pr.aa"],
            Self::Authorization => &["iec62443:sr2.1", "nist-csf:pr.aa"],
            Self::Manufacturing => &["iec62443:sr2.8"],
            Self::Data => &["iec62443:sr4.1", "nist-csf:pr.ds", "gdpr:art32"],
            Self::System => &["iec62443:sr7.6", "nist-csf:pr.ps"],
            Self::Network => &["iec62443:sr5.1", "nist-csf:de.cm"],
            Self::File | Self::Process | Self::Registry => &["iec62443:sr3.4", "nist-csf:de.cm"],
            Self::Api => &["nist-csf:de.cm"],
            Self::Threat => &["iec62443:sr6.2", "nist-csf:de.cm"],
            Self::Custom => &[],
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the action an event records succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action succeeded.
    Success,
    /// The action failed or was refused.
    Failure,
    /// Not known or not applicable.
    Unknown,
}

impl Outcome {
    /// The canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a name or alias (case-insensitive): `ok`, `succeeded`, `allowed`, `pass`,
    /// `passed` → success; `fail`, `failed`, `denied`, `error`, `blocked`, `rejected` → failure.
    pub fn parse_alias(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "success" | "succeeded" | "ok" | "allowed" | "allow" | "pass" | "passed"
            | "granted" => Self::Success,
            "failure" | "fail" | "failed" | "denied" | "deny" | "error" | "blocked"
            | "rejected" => Self::Failure,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }

    /// The outcome a type's last segment states, e.g. `auth.login.failure` or `access.denied`.
    pub fn for_type(event_type: &str) -> Option<Self> {
        let last = event_type.rsplit('.').next()?;
        match Self::parse_alias(last)? {
            Self::Unknown => None,
            known => Some(known),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity an event of this type gets when the sender names none
/// (the collector seed's `determineSeverity`, on evident's scale).
pub fn default_severity(event_type: &str) -> Severity {
    match event_type {
        "permission.change" | "access.denied" | "compliance.action" => Severity::Medium,
        "security.violation" | "system.error" => Severity::High,
        _ => Severity::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_types_fall_in_their_categories() {
        assert_eq!(Category::for_type("user.login"), Category::Authentication);
        assert_eq!(
            Category::for_type("auth.login.failure"),
            Category::Authentication
        );
        assert_eq!(Category::for_type("access.denied"), Category::Authorization);
        assert_eq!(
            Category::for_type("station.operation"),
            Category::Manufacturing
        );
        assert_eq!(Category::for_type("encryption.event"), Category::Data);
        assert_eq!(Category::for_type("config.change"), Category::System);
        assert_eq!(Category::for_type("security.violation"), Category::Threat);
        assert_eq!(Category::for_type("threat.sql.injection"), Category::Threat);
        assert_eq!(Category::for_type("widget.spun"), Category::Custom);
    }

    #[test]
    fn outcome_follows_the_last_segment() {
        assert_eq!(
            Outcome::for_type("auth.login.failure"),
            Some(Outcome::Failure)
        );
        assert_eq!(Outcome::for_type("access.denied"), Some(Outcome::Failure));
        assert_eq!(
            Outcome::for_type("auth.login.success"),
            Some(Outcome::Success)
        );
        assert_eq!(Outcome::for_type("user.login"), None);
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
    }
}
