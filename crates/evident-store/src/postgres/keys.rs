//! API keys in the PostgreSQL store.

use super::PgStore;
use crate::KeyStore;
use crate::error::StoreError;
use crate::keys::{ApiKey, Role, hash_secret, new_secret};
use async_trait::async_trait;

#[async_trait]
impl KeyStore for PgStore {
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
        let facilities = facilities.map(serde_json::Value::from);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.client()
            .await?
            .execute(
                "INSERT INTO api_keys (hash, role, facilities, label, created_at, personal) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&hash.as_slice(), &role.as_str(), &facilities, &label, &now, &personal],
            )
            .await?;
        Ok(secret)
    }

    async fn find_key(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash_secret(secret);
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, role, facilities, personal FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
                &[&hash.as_slice()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.get(0);
        let role: String = row.get(1);
        let role = Role::parse(&role)
            .ok_or_else(|| StoreError::Database(format!("key {id} has unknown role {role:?}")))?;
        let facilities = match row.get::<_, Option<serde_json::Value>>(2) {
            Some(json) => Some(
                serde_json::from_value(json)
                    .map_err(|e| StoreError::Database(format!("key {id} facilities: {e}")))?,
            ),
            None => None,
        };
        let personal: bool = row.get(3);
        Ok(Some(ApiKey {
            id,
            role,
            facilities,
            personal: personal || role == Role::Admin,
        }))
    }

    async fn count_keys(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL",
                &[],
            )
            .await?
            .get(0);
        Ok(n as u64)
    }
}
