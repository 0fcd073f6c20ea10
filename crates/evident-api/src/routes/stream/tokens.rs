//! Short-lived stream tokens: a browser cannot set an `Authorization` header on a
//! WebSocket or an `EventSource`, so it trades its key for a token to put in the URL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evident_store::ApiKey;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a token opens streams; a connection opened in time stays open.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Tokens held at most; past it, expired ones are dropped, then the oldest.
const CAPACITY: usize = 10_000;
/// What every token starts with, so one is told from a key in logs and URLs.
pub const TOKEN_PREFIX: &str = "est_";

/// The tokens handed out and the key each stands for.
#[derive(Default)]
pub struct StreamTokens {
    tokens: Mutex<HashMap<String, (ApiKey, Instant)>>,
}

impl StreamTokens {
    /// A new token for `key`, valid for [`TOKEN_TTL`].
    pub fn issue(&self, key: ApiKey) -> String {
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= CAPACITY {
            let now = Instant::now();
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= CAPACITY
                && let Some(oldest) = tokens
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(t, _)| t.clone())
            {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(token.clone(), (key, Instant::now() + TOKEN_TTL));
        token
    }

    /// The key `token` stands for, if it was issued and has not expired.
    pub fn key(&self, token: &str) -> Option<ApiKey> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(token)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(key, _)| key.clone())
    }
}
