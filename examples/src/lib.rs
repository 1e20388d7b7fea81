//! An integrator's custom action: `slack_message` posts a line of text to a Slack-style incoming
//! webhook. It is registered beside the built-ins the same way they are, and runs in a server
//! built by this crate (`src/bin/custom_server.rs`).
//!
//! ```json
//! {"type": "slack_message",
//!  "webhookUrl": "https://hooks.slack.com/services/T000/B000/XXXX",
//!  "text": "Order {{ entity.number }} paid: {{ entity.total }} {{ entity.currency }}"}
//! ```
//!
//! [`metered`] is the other extension point: a worker wrapped in the integrator's own tower layer
//! (`src/bin/metered_worker.rs` runs it).

pub mod metered;

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use switchyard::{App, Settings};
use switchyard_actions::http::{
    GuardedClient, HeaderMap, HeaderValue, OutboundRequest, SendError, StatusCode, Url,
};
use switchyard_actions::{
    Action, ActionError, ActionRegistry, Outcome, StepContext, ValidationError,
};

/// Slack truncates longer messages; refusing them says so instead.
pub const MAX_TEXT_CHARS: usize = 4000;
/// How much of the peer's answer goes into a failure reason.
const REASON_CHARS: usize = 200;
/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The step's parameters, as the workflow spec gives them (strings already rendered).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackMessageConfig {
    /// The incoming-webhook URL Slack gave the workspace.
    pub webhook_url: String,
    /// The message; a MiniJinja template over `entity`, `event` and `workflow`.
    pub text: String,
}

/// Posts `{"text": …}` to an incoming webhook through the engine's guarded HTTP client, so the
/// operator's SSRF policy (`--allow-private-targets`) applies to it like to every built-in.
pub struct SlackMessageAction {
    client: GuardedClient,
}

impl SlackMessageAction {
    pub fn new(client: GuardedClient) -> Self {
        Self { client }
    }
}

impl Action for SlackMessageAction {
    type Config = SlackMessageConfig;

    fn kind(&self) -> &'static str {
        "slack_message"
    }

    fn description(&self) -> &'static str {
        "Post a message to a Slack-style incoming webhook"
    }

    /// Pure checks, run when a workflow is saved and again on the rendered parameters.
    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        let url = Url::parse(config.webhook_url.trim())
            .map_err(|e| ValidationError::field("webhookUrl", format!("not a valid URL: {e}")))?;
        // Shape and IP-literal checks only: names are checked after DNS, when the step runs.
        self.client
            .check_url(&url)
            .map_err(|e| ValidationError::field("webhookUrl", e.to_string()))?;
        if url.scheme() != "https" && !self.client.allows_private_targets() {
            return Err(ValidationError::field("webhookUrl", "must be an https URL"));
        }
        let text = config.text.trim();
        if text.is_empty() {
            return Err(ValidationError::field("text", "must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ValidationError::field(
                "text",
                format!("at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        Ok(())
    }

    /// The URL gets the engine's per-tenant endpoint health: disabled after a 410 or after 100
    /// consecutive failures, enabled again when a workflow using it is saved.
    fn endpoint(&self, config: &Self::Config) -> Option<String> {
        Some(config.webhook_url.trim().to_owned())
    }

    async fn execute(
        &self,
        config: Self::Config,
        _ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let url = Url::parse(config.webhook_url.trim())
            .map_err(|e| ActionError::permanent(format!("webhookUrl: {e}")))?;
        let body = serde_json::to_vec(&json!({ "text": config.text.trim() }))
            .map_err(|e| ActionError::permanent(format!("serializing the message: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let request = OutboundRequest::post(url, body).with_headers(headers);

        let response = self.client.send(request).await.map_err(|e| match e {
            // The operator's policy refused the target: retrying will not change that.
            SendError::Blocked(reason) => ActionError::permanent(reason.to_string()),
            other => ActionError::retryable(other.to_string()),
        })?;
        let status = response.status;
        // Slack answers `ok`, or a short error code (`invalid_payload`, `channel_is_archived`).
        let reply: String = response
            .body
            .kept
            .trim()
            .chars()
            .take(REASON_CHARS)
            .collect();
        if status.is_success() {
            return Ok(Outcome {
                summary: format!("posted ({})", status.as_u16()),
                output: json!({"status": status.as_u16(), "reply": reply}),
                effects: Vec::new(),
            });
        }
        let reason = format!("HTTP {}: {reply}", status.as_u16());
        Err(match status {
            // The channel is archived or the webhook revoked for good.
            StatusCode::GONE => ActionError::EndpointGone { reason },
            StatusCode::TOO_MANY_REQUESTS => ActionError::Retryable {
                after: response
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
                reason,
            },
            s if s.is_server_error() => ActionError::retryable(reason),
            // 400 `invalid_payload`, 403 `invalid_token`, 404 `channel_not_found`: a retry fails
            // the same way; the execution pauses for someone to fix the workflow.
            _ => ActionError::permanent(reason),
        })
    }
}

/// The built-in actions configured from `settings`, plus `slack_message`.
pub fn registry(settings: &Settings) -> anyhow::Result<ActionRegistry> {
    let mut registry = switchyard::server::builtin_actions(settings)?;
    let client = GuardedClient::new(settings.allow_private_targets)?;
    registry.register(SlackMessageAction::new(client));
    Ok(registry)
}

/// A Switchyard process that can run `slack_message` steps: connected, migrated, ready to serve.
pub async fn build_app(settings: Settings) -> anyhow::Result<App> {
    let actions = registry(&settings)?;
    App::build_with(settings, actions).await
}
