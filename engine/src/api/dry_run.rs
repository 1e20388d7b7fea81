//! `POST /api/workflows/test`: try a workflow against an event, or replay its conditions over the
//! tenant's stored events. Nothing is sent and nothing is stored.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_schemas::event::EventIn;
use switchyard_triggers::WorkflowConditions;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{EventFacts, EventView};
use crate::store::WorkflowSpec;

/// A backtest answers with what it evaluated by this wall time (CONTRACT §7).
pub const BACKTEST_WALL_TIME: Duration = Duration::from_secs(5);
/// Events a backtest reads at a time (and at most `store::PAGE_BUDGET_CHARS` of their stored
/// JSON, so memory stays bounded).
const BACKTEST_PAGE: u32 = 100;

pub struct DryRun<'a> {
    pub state: &'a AppState,
    pub tenant_id: Uuid,
    pub spec: &'a WorkflowSpec,
}

impl DryRun<'_> {
    fn conditions(&self) -> Result<WorkflowConditions, ApiError> {
        let condition = match &self.spec.condition {
            Some(source) => Some(self.state.conditions.compile(source).map_err(|e| {
                ApiError::field("condition", format!("condition does not compile: {e}"))
            })?),
            None => None,
        };
        Ok(WorkflowConditions {
            conditions: self.spec.conditions.clone(),
            condition,
        })
    }

    /// Whether `event` would match, each condition's result, and the actions rendered.
    pub async fn try_event(&self, event: EventIn) -> Result<Value, ApiError> {
        let trigger = switchyard_triggers::resolve(event.entity_type, &event.trigger)
            .map_err(|e| ApiError::field("trigger", e.to_string()))?;
        let stored = self
            .state
            .store
            .entity(self.tenant_id, event.entity_type.as_str(), &event.entity_id)
            .await?;
        // As ingestion would store it: the sender's previous data, else the entity store's.
        let previous = event.previous.map(Value::Object).or(stored);
        let view = EventView::new(
            &EventFacts {
                key: event.event_id.as_deref().unwrap_or("dry-run"),
                trigger: trigger.code,
                entity_type: event.entity_type.as_str(),
                entity_id: &event.entity_id,
                occurred_at: event.occurred_at.unwrap_or_else(chrono::Utc::now),
                previous: previous.as_ref(),
                depth: 0,
                causation_id: None,
            },
            Value::Object(event.data),
        );
        let input = view.conditions(self.tenant_id);
        let report = switchyard_triggers::matching::evaluate(
            &self.state.conditions,
            &self.conditions()?,
            &input,
        );
        let trigger_matches =
            trigger.code == self.spec.trigger && event.entity_type == self.spec.entity_type;
        let scope = view.template_scope(json!({"name": self.spec.name}));
        // Rendering is bounded but may take tens of milliseconds: off the runtime's threads.
        let steps: Vec<_> = self
            .spec
            .actions
            .iter()
            .map(|step| {
                let action = self.state.actions.get(&step.kind);
                let secrets = action.map(|a| a.secret_params()).unwrap_or_default();
                let html = action.map(|a| a.html_params()).unwrap_or_default();
                (step.kind.clone(), step.params.clone(), secrets, html)
            })
            .collect();
        let limits = switchyard_actions::template::TemplateLimits {
            max_rendered_bytes: self.state.settings.max_rendered_bytes,
        };
        let actions: Vec<Value> = tokio::task::spawn_blocking(move || {
            steps
                .into_iter()
                .map(|(kind, params, secrets, html)| {
                    match switchyard_actions::template::render_params(
                        &params, &scope, secrets, html, &limits,
                    ) {
                        Ok(mut params) => {
                            for &secret in secrets {
                                if params.contains_key(secret) {
                                    params.insert(
                                        secret.to_owned(),
                                        Value::String("****".to_owned()),
                                    );
                                }
                            }
                            json!({"type": kind, "params": params})
                        }
                        Err(e) => json!({"type": kind, "error": format!("template error in {e}")}),
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::validation(format!("the templates could not be rendered: {e}")))?;
        Ok(json!({
            "matched": report.matched && trigger_matches,
            "triggerMatches": trigger_matches,
            "conditions": report.conditions,
            "script": report.script,
            "actions": actions,
        }))
    }

    /// Replays the conditions over the last `limit` stored events of the workflow's trigger.
    /// Events are read in pages bounded in count and size, each condition runs in the tenant's
    /// matching lane under the per-event budget, and the whole replay stops after
    /// [`BACKTEST_WALL_TIME`], answering what it evaluated with `"truncated": true`.
    pub async fn backtest(&self, limit: u32) -> Result<Value, ApiError> {
        let conditions = self.conditions()?;
        let deadline = Instant::now() + BACKTEST_WALL_TIME;
        let matcher = &self.state.executor.matcher;
        let filter = Some((self.spec.entity_type.as_str(), self.spec.trigger.as_str()));
        let mut evaluated: u32 = 0;
        let mut matched = 0;
        let mut over_budget = 0;
        let mut matched_samples = Vec::new();
        let mut unmatched_samples = Vec::new();
        let mut before = None;
        let mut truncated = false;
        'pages: while evaluated < limit {
            let page = (limit - evaluated).min(BACKTEST_PAGE);
            let (events, _) = self
                .state
                .store
                .list_events_within(
                    self.tenant_id,
                    filter,
                    before,
                    page,
                    crate::store::PAGE_BUDGET_CHARS,
                )
                .await?;
            let Some(last) = events.last() else {
                break;
            };
            before = Some(last.id);
            for event in &events {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    truncated = true;
                    break 'pages;
                }
                let evaluation = matcher.evaluate_in_lane(
                    self.tenant_id,
                    crate::executor::event_view(event).conditions(self.tenant_id),
                    vec![conditions.clone()],
                );
                let Ok(reports) = tokio::time::timeout(left, evaluation).await else {
                    truncated = true;
                    break 'pages;
                };
                let reports = reports.map_err(|e| {
                    tracing::error!(error = %e, "backtest evaluation failed");
                    ApiError::internal()
                })?;
                evaluated += 1;
                let Some(Some(report)) = reports.into_iter().next() else {
                    over_budget += 1;
                    if unmatched_samples.len() < 5 {
                        unmatched_samples.push(json!({
                            "eventId": event.event_key, "entityId": event.entity_id,
                            "occurredAt": event.occurred_at, "reason": crate::executor::matching::BUDGET_EXCEEDED,
                        }));
                    }
                    continue;
                };
                let sample = json!({
                    "eventId": event.event_key, "entityId": event.entity_id, "occurredAt": event.occurred_at,
                    "conditions": report.conditions, "script": report.script,
                });
                if report.matched {
                    matched += 1;
                    if matched_samples.len() < 10 {
                        matched_samples.push(sample);
                    }
                } else if unmatched_samples.len() < 5 {
                    unmatched_samples.push(sample);
                }
            }
        }
        Ok(json!({
            "evaluated": evaluated,
            "matched": matched,
            "budgetExceeded": over_budget,
            "truncated": truncated,
            "samples": {"matched": matched_samples, "notMatched": unmatched_samples},
        }))
    }
}
