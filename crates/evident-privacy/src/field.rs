//! Per-subject data keys and the encryption of one field value under them.
//!
//! A sealed value is the standard base64 of a 12-byte random nonce, the AES-256-GCM
//! ciphertext and its 16-byte tag. The associated data binds it to the subject's key id,
//! the event id and the field path, so it decrypts only in the place it was made for.

use crate::PrivacyError;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use uuid::Uuid;

/// Bytes of the random nonce in front of every ciphertext.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag after every ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Label in front of a field value's associated data.
const FIELD_LABEL: &[u8] = b"evident field v1";

/// A subject's 256-bit data key.
///
/// Its bytes are never printed (`Debug` shows `DataKey(..)`) and are overwritten with
/// zeros when it is dropped.
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

crate::secret::secret_bytes!(DataKey);

/// The associated data of a field value: a label, then the key id, the event id's 16
/// bytes and the field path, each preceded by its length as a 32-bit big-endian integer.
fn associated_data(key_id: &str, event_id: Uuid, field: &str) -> Vec<u8> {
    let parts: [&[u8]; 3] = [key_id.as_bytes(), event_id.as_bytes(), field.as_bytes()];
    let mut aad =
        Vec::with_capacity(FIELD_LABEL.len() + 12 + parts.iter().map(|p| p.len()).sum::<usize>());
    aad.extend_from_slice(FIELD_LABEL);
    for part in parts {
        // Key ids and field paths are far shorter than 4 GiB; a longer one saturates,
        // which still fails to match anything sealed with a different one.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// Encrypts `plaintext`, the value of `field` in event `event_id` of the subject whose key
/// id is `key_id`, under `key`; gives the standard base64 of nonce, ciphertext and tag.
pub fn seal_value(
    key: &DataKey,
    key_id: &str,
    event_id: Uuid,
    field: &str,
    plaintext: &[u8],
) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = associated_data(key_id, event_id, field);
    let sealed = key
        .cipher()
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // AES-GCM refuses only messages over 64 GiB, which no event field comes near.
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

/// Decrypts a value made by [`seal_value`] with the same key, key id, event id and field.
/// Anything else — text that is not base64, too short to hold a nonce and a tag, or any
/// change to the value or to what it is bound to — is [`PrivacyError::Open`].
pub fn open_value(
    key: &DataKey,
    key_id: &str,
    event_id: Uuid,
    field: &str,
    sealed: &str,
) -> Result<Vec<u8>, PrivacyError> {
    let fail = || PrivacyError::Open {
        field: field.to_string(),
    };
    let bytes = STANDARD.decode(sealed).map_err(|_| fail())?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(fail());
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
    let aad = associated_data(key_id, event_id, field);
    key.cipher()
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| fail())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        let sealed = seal_value(&key, "ps_k", id, "actor.ip", b"\"10.0.0.1\"");
        let raw = STANDARD.decode(&sealed).unwrap();
        assert_eq!(raw.len(), NONCE_LEN + 10 + TAG_LEN);
        assert_eq!(
            open_value(&key, "ps_k", id, "actor.ip", &sealed).unwrap(),
            b"\"10.0.0.1\""
        );
        // Fresh nonce each time: the same value seals differently.
        assert_ne!(
            sealed,
            seal_value(&key, "ps_k", id, "actor.ip", b"\"10.0.0.1\"")
        );
    }

    /// A value sealed by an independent AES-GCM implementation with the documented layout
    /// and associated data opens here: the stored format is what the module says.
    #[test]
    fn opens_a_known_answer() {
        let key = DataKey::from_bytes([0x42; 32]);
        let event_id = Uuid::parse_str("0194f1e2-0000-7000-8000-000000000001").unwrap();
        let key_id = "ps_q1mVb2xW0c3wKJ8rVxJbTQ";
        let sealed = "AAECAwQFBgcICQoLJ7/9tNJJ0LYR8Hn2DFKmGW6Pxg9fz9U=";
        assert_eq!(
            open_value(&key, key_id, event_id, "actor.user_id", sealed).unwrap(),
            b"\"alice\""
        );
    }

    #[test]
    fn associated_data_is_unambiguous() {
        let id = Uuid::nil();
        assert_ne!(
            associated_data("ab", id, "c"),
            associated_data("a", id, "bc")
        );
    }

    #[test]
    fn debug_does_not_show_the_bytes() {
        assert_eq!(format!("{:?}", DataKey::from_bytes([1; 32])), "DataKey(..)");
    }
}
