//! Key-based authorization: the [`Caller`] extractor and the role → permission table.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use evident_store::keys::hash_secret;
use evident_store::{ApiKey, Role, Scope};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What an endpoint needs a key to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Send events.
    Ingest,
    /// Query events and statistics.
    Read,
    /// Administer the service (dead letters, keys).
    Admin,
}

impl Permission {
    fn action(self) -> &'static str {
        match self {
            Permission::Ingest => "send events",
            Permission::Read => "read events",
            Permission::Admin => "administer the service",
        }
    }
}

/// Whether `role` grants `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    matches!(
        (role, permission),
        (Role::Admin, _) | (Role::Ingest, Permission::Ingest) | (Role::Read, Permission::Read)
    )
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key it presented.
    pub key: ApiKey,
}

impl Caller {
    /// Succeeds when the caller's role grants `permission`, else 403.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if allows(self.key.role, permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.key.role.as_str(),
                action: permission.action(),
            })
        }
    }

    /// The facilities the caller may see.
    pub fn scope(&self) -> Scope {
        self.key.facilities.clone()
    }
}

impl Caller {
    /// The caller named by the `Authorization` header in `headers`: 401 without one, or
    /// when it names no valid key.
    pub async fn from_headers(
        headers: &axum::http::HeaderMap,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let header = headers.get(AUTHORIZATION).ok_or(ApiError::MissingKey)?;
        let text = header.to_str().map_err(|_| ApiError::InvalidKey)?;
        let secret = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::MissingKey)?;
        let key = state
            .key_cache
            .lookup(secret, state)
            .await?
            .ok_or(ApiError::InvalidKey)?;
        Ok(Caller { key })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Caller::from_headers(&parts.headers, state).await
    }
}

impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// `None` without an `Authorization` header; a header that names no valid key is still an error.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            return Ok(None);
        }
        <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Recently seen valid keys, so a request does not cost a database lookup.
/// Entries expire after [`KeyCache::TTL`]; unknown keys are never cached.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyCache {
    /// How long a key is trusted without asking the store again.
    pub const TTL: Duration = Duration::from_secs(5);
    /// Most cached keys; the cache is emptied when full.
    const CAPACITY: usize = 10_000;

    async fn lookup(&self, secret: &str, state: &AppState) -> Result<Option<ApiKey>, ApiError> {
        let hash = hash_secret(secret);
        if let Some(key) = self.cached(&hash) {
            return Ok(Some(key));
        }
        let found = state.keys.find_key(secret).await?;
        if let Some(key) = &found {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(hash, (key.clone(), Instant::now()));
        }
        Ok(found)
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(k, _)| k.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        assert!(allows(Role::Admin, Permission::Ingest) && allows(Role::Admin, Permission::Read));
        assert!(
            allows(Role::Ingest, Permission::Ingest) && !allows(Role::Ingest, Permission::Read)
        );
        assert!(allows(Role::Read, Permission::Read) && !allows(Role::Read, Permission::Ingest));
        assert!(allows(Role::Admin, Permission::Admin));
        assert!(!allows(Role::Read, Permission::Admin) && !allows(Role::Ingest, Permission::Admin));
    }
}
