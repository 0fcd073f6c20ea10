//! The two five-level scales of an event: severity (how bad) and priority (how urgent).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! five_levels {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            /// Routine information.
            Info,
            /// Worth recording, rarely worth a look.
            Low,
            /// Worth a look.
            Medium,
            /// Needs attention soon.
            High,
            /// Needs attention now.
            Critical,
        }

        impl $name {
            /// Every level, least to most.
            pub const ALL: [$name; 5] = [Self::Info, Self::Low, Self::Medium, Self::High, Self::Critical];

            /// The canonical lowercase name.
            pub fn as_str(self) -> &'static str {
                match self {
                    Self::Info => "info",
                    Self::Low => "low",
                    Self::Medium => "medium",
                    Self::High => "high",
                    Self::Critical => "critical",
                }
            }

            /// Rank from 0 (info) to 4 (critical); what the stores index and compare.
            pub fn rank(self) -> u8 {
                self as u8
            }

            /// The level of a rank produced by [`Self::rank`].
            pub fn from_rank(rank: u8) -> Option<Self> {
                Self::ALL.get(usize::from(rank)).copied()
            }

            /// Parses a name or one of the aliases the seeds and syslog use
            /// (case-insensitive): `fatal`, `emergency`, `alert`, `crit` → critical;
            /// `error`, `err` → high; `warn`, `warning` → medium; `notice` → low;
            /// `informational`, `debug`, `trace` → info; syslog levels `0`–`7`.
            pub fn parse_alias(s: &str) -> Option<Self> {
                let lower = s.trim().to_ascii_lowercase();
                Some(match lower.as_str() {
                    "critical" | "crit" | "fatal" | "emergency" | "emerg" | "alert" | "0" | "1" | "2" => Self::Critical,
                    "high" | "error" | "err" | "3" => Self::High,
                    "medium" | "warn" | "warning" | "moderate" | "4" => Self::Medium,
                    "low" | "notice" | "5" => Self::Low,
                    "info" | "informational" | "information" | "debug" | "trace" | "6" | "7" => Self::Info,
                    _ => return None,
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownLevel;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_alias(s).ok_or_else(|| UnknownLevel(s.to_owned()))
            }
        }
    };
}

five_levels!(
    /// How bad an event is, on one five-level scale.
    Severity
);
five_levels!(
    /// How urgently an event must be committed and handed on; decides batching and shedding.
    Priority
);

impl From<Severity> for Priority {
    fn from(s: Severity) -> Self {
        Priority::ALL[usize::from(s.rank())]
    }
}

impl From<Priority> for Severity {
    fn from(p: Priority) -> Self {
        Severity::ALL[usize::from(p.rank())]
    }
}

/// A level name that is neither a canonical name nor a known alias.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level `{0}`; expected critical, high, medium, low or info (or an alias such as error, warning, notice, debug)"
)]
pub struct UnknownLevel(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_land_on_the_five_levels() {
        assert_eq!(Severity::parse_alias("WARN"), Some(Severity::Medium));
        assert_eq!(Severity::parse_alias("error"), Some(Severity::High));
        assert_eq!(Severity::parse_alias("fatal"), Some(Severity::Critical));
        assert_eq!(Severity::parse_alias("notice"), Some(Severity::Low));
        assert_eq!(Severity::parse_alias("debug"), Some(Severity::Info));
        assert_eq!(Severity::parse_alias("3"), Some(Severity::High));
        assert_eq!(Severity::parse_alias("banana"), None);
    }

    #[test]
    fn ranks_round_trip_and_order() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_rank(s.rank()), Some(s));
        }
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::from_rank(5), None);
    }
}
