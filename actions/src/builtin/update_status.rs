//! `update_status`: sets the entity's status; the engine emits `<entity>_status_changed`.

use serde::Deserialize;

use crate::{Action, ActionError, Effect, Outcome, StepContext, ValidationError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateStatusConfig {
    pub status: String,
}

/// Sets the entity's status. The engine applies the change and emits the follow-up events through
/// the same path as `POST /api/events`, so it can trigger further workflows.
pub struct UpdateStatusAction;

impl Action for UpdateStatusAction {
    type Config = UpdateStatusConfig;

    fn kind(&self) -> &'static str {
        "update_status"
    }

    fn description(&self) -> &'static str {
        "Set the entity's status; emits <entity>_status_changed and the trigger the status names"
    }

    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        let status = config.status.trim();
        if status.is_empty() {
            return Err(ValidationError::field("status", "must not be empty"));
        }
        if status.len() > 64 {
            return Err(ValidationError::field("status", "at most 64 characters"));
        }
        Ok(())
    }

    async fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        if ctx.entity_id.is_empty() {
            // A schedule tick's execution: there is no entity whose status could change (and
            // none is stood in for, so a real entity is never changed by a tick).
            return Err(ActionError::permanent(
                "update_status: this execution has no entity (a schedule tick started it), so there is no status to set",
            ));
        }
        let status = config.status.trim().to_owned();
        Ok(Outcome::summary(format!(
            "{} {} status set to {status}",
            ctx.entity_type, ctx.entity_id
        ))
        .with_effect(Effect::SetEntityStatus { status }))
    }
}
