//! What a tenant holds, for its quotas (CONTRACT §7: `--max-workflows`,
//! `--max-push-subscriptions`). Counted when something would be added; two requests racing for
//! the last slot may both pass, so a quota can be overrun by the concurrency of one tenant's
//! requests, never by more.

use uuid::Uuid;

use super::row::Columns;
use super::{Store, StoreError, StoreResult};

impl Store {
    /// The tenant's workflows that are not deleted (managed ones included).
    pub async fn count_workflows(&self, tenant_id: Uuid) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM workflows WHERE tenant_id = $1 AND deleted_at IS NULL",
        )
        .bind(tenant_id.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Columns::of(&row).get("n")
    }

    /// The tenant's push subscriptions, and whether `endpoint` is one of them (saving it again
    /// only refreshes its keys, so it needs no room).
    pub async fn count_push_subscriptions(
        &self,
        tenant_id: Uuid,
        endpoint: &str,
    ) -> StoreResult<(i64, bool)> {
        let count =
            sqlx::query("SELECT COUNT(*) AS n FROM push_subscriptions WHERE tenant_id = $1")
                .bind(tenant_id.to_string())
                .fetch_one(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?;
        let count = Columns::of(&count).get("n")?;
        let exists =
            sqlx::query("SELECT 1 FROM push_subscriptions WHERE tenant_id = $1 AND endpoint = $2")
                .bind(tenant_id.to_string())
                .bind(endpoint)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?
                .is_some();
        Ok((count, exists))
    }
}
