//! The trigger catalog entry as the API shows it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::EntityType;

/// One trigger of the catalog (`GET /api/workflows/triggers/{entityType}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    /// Stable on every deployment: UUID v5 of the code.
    pub guid: Uuid,
    pub name: String,
    pub code: String,
    pub description: String,
    pub entity_type: EntityType,
    /// True for `<entity>_schedule`: such a workflow needs a `schedule`.
    pub scheduled: bool,
}
