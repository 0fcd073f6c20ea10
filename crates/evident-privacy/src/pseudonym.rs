//! Keyed pseudonyms: equal values give equal pseudonyms, and without the master key a
//! pseudonym tells nothing about its value.

use crate::master::{MasterKey, PSEUDONYM_LABEL};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix every pseudonym starts with.
const PREFIX: &str = "ps_";
/// Base64url characters after the prefix: 16 bytes of HMAC output.
const ENCODED_LEN: usize = 22;

/// Computes pseudonyms under the pseudonym key derived from a master key.
#[derive(Clone)]
pub struct Pseudonyms {
    /// HMAC state already keyed; cloned for every value.
    keyed: Hmac<Sha256>,
}

impl Pseudonyms {
    /// The pseudonyms of `master`.
    pub fn new(master: &MasterKey) -> Self {
        let mut key = master.derive(PSEUDONYM_LABEL);
        let keyed =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes keys of any length");
        key.fill(0);
        std::hint::black_box(&key);
        Self { keyed }
    }

    /// The pseudonym of `value`: `ps_` followed by the base64url (unpadded) encoding of
    /// the first 16 bytes of HMAC-SHA256 of `value`, 25 characters in all.
    pub fn of(&self, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + ENCODED_LEN);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&digest[..16], &mut out);
        out
    }

    /// Whether `s` has the form of a pseudonym (`ps_` and 22 base64url characters).
    pub fn is_pseudonym(s: &str) -> bool {
        s.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.len() == ENCODED_LEN
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_distinct_and_well_formed() {
        let master = MasterKey::generate();
        let p = Pseudonyms::new(&master);
        let a = p.of("alice@example.com");
        assert_eq!(a.len(), 25);
        assert!(a.starts_with("ps_"));
        assert!(Pseudonyms::is_pseudonym(&a));
        assert_eq!(a, p.of("alice@example.com"));
        assert_eq!(a, Pseudonyms::new(&master).of("alice@example.com"));
        assert_ne!(a, p.of("bob@example.com"));
        assert_ne!(a, p.of("alice@example.com "));
        assert_ne!(
            a,
            Pseudonyms::new(&MasterKey::generate()).of("alice@example.com")
        );
        assert!(Pseudonyms::is_pseudonym(&p.of("")));
    }

    /// Computed independently: HMAC-SHA256(HMAC-SHA256(master, label), value), first 16
    /// bytes, base64url without padding.
    #[test]
    fn matches_a_known_answer() {
        let master =
            MasterKey::from_base64("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
        assert_eq!(
            Pseudonyms::new(&master).of("alice"),
            "ps__JyGdhhThjU6AV3MJFu1lw"
        );
    }

    #[test]
    fn is_pseudonym_rejects_other_shapes() {
        for s in [
            "",
            "ps_",
            "alice",
            "ps_AAAAAAAAAAAAAAAAAAAAA",
            "ps_AAAAAAAAAAAAAAAAAAAAAAA",
            "ps_AAAAAAAAAAAAAAAAAAAA+A",
            "ps_AAAAAAAAAAAAAAAAAAAA=A",
            "px_AAAAAAAAAAAAAAAAAAAAAA",
            "ps_AAAAAAAAAAAAAAAAAAAAé",
        ] {
            assert!(!Pseudonyms::is_pseudonym(s), "{s:?}");
        }
        assert!(Pseudonyms::is_pseudonym("ps_AAAAAAAAAAAAAAAAAAAA-_"));
    }
}
