//! API keys in the SQLite store.

use super::SqliteStore;
use crate::KeyStore;
use crate::error::StoreError;
use crate::keys::{ApiKey, Role, hash_secret, new_secret};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key_with(
        &self,
        role: Role,
        facilities: Option<Vec<String>>,
        label: Option<String>,
        personal: bool,
    ) -> Result<String, StoreError> {
        let personal = personal || role == Role::Admin;
        let secret = new_secret();
        let hash = hash_secret(&secret);
        let facilities =
            facilities.map(|f| serde_json::to_string(&f).unwrap_or_else(|_| "[]".into()));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.with_writer(move |w| {
            w.conn().execute(
                "INSERT INTO api_keys (hash, role, facilities, label, created_at, personal) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hash.as_slice(), role.as_str(), facilities, label, now, personal],
            )?;
            Ok(())
        })
        .await?;
        Ok(secret)
    }

    async fn find_key(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash_secret(secret);
        self.with_reader(move |c| {
            let row = c
                .prepare_cached("SELECT id, role, facilities, personal FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL")?
                .query_row(params![hash.as_slice()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?, r.get::<_, bool>(3)?)))
                .optional()?;
            let Some((id, role, facilities, personal)) = row else { return Ok(None) };
            let role = Role::parse(&role).ok_or_else(|| StoreError::Database(format!("key {id} has unknown role {role:?}")))?;
            let facilities = match facilities {
                Some(json) => Some(serde_json::from_str(&json).map_err(|e| StoreError::Database(format!("key {id} facilities: {e}")))?),
                None => None,
            };
            Ok(Some(ApiKey { id, role, facilities, personal: personal || role == Role::Admin }))
        })
        .await
    }

    async fn count_keys(&self) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
    }
}
