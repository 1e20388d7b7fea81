//! `custom`: any system that can sign with Standard Webhooks. No store to verify against; the one
//! credential is the `whsec_…` secret (generated when absent) and each delivery is one event in
//! the `POST /api/events` shape.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use switchyard_actions::http::GuardedClient;
use switchyard_actions::sign::{generate_secret, secret_key, verify_standard};
use switchyard_schemas::EntityType;
use switchyard_schemas::event::EventIn;

use super::{
    CredentialField, Credentials, Emit, FieldError, InboundEvent, IntegrationSettings, Provider,
    Topic, TranslateError, Unauthorized, VerifyError, header,
};

pub struct Custom;

/// How far a delivery's `webhook-timestamp` may be from now, either way (Standard Webhooks).
const TOLERANCE: Duration = Duration::from_secs(5 * 60);

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "apiSecret",
    required: false,
    secret: true,
    description: "a Standard Webhooks secret (whsec_ + base64); generated when absent and shown \
                  once in the configure answer",
}];

const TOPICS: &[Topic] = &[
    Topic {
        topic: "Order",
        entity_type: EntityType::Order,
        triggers: &["any Order trigger"],
        note: "the body names its trigger, as for POST /api/events",
    },
    Topic {
        topic: "Shipment",
        entity_type: EntityType::Shipment,
        triggers: &["any Shipment trigger"],
        note: "",
    },
    Topic {
        topic: "Customer",
        entity_type: EntityType::Customer,
        triggers: &["any Customer trigger"],
        note: "",
    },
    Topic {
        topic: "Product",
        entity_type: EntityType::Product,
        triggers: &["any Product trigger"],
        note: "",
    },
];

#[async_trait]
impl Provider for Custom {
    fn code(&self) -> &'static str {
        "custom"
    }

    fn name(&self) -> &'static str {
        "Custom (Standard Webhooks)"
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        FIELDS
    }

    fn verification(&self) -> &'static str {
        "none: there is no store to ask"
    }

    fn inbound_signature(&self) -> &'static str {
        "Standard Webhooks: webhook-id, webhook-timestamp (±5 min), webhook-signature \
         v1,<base64 HMAC-SHA256(apiSecret key, \"id.timestamp.body\")>"
    }

    fn topics(&self) -> &'static [Topic] {
        TOPICS
    }

    fn complete(&self, credentials: &mut Credentials) -> Result<Vec<&'static str>, FieldError> {
        match &credentials.api_secret {
            Some(secret) => {
                let key =
                    secret_key(secret).map_err(|e| FieldError::new("apiSecret", e.to_string()))?;
                // Shorter keys are guessable; Svix and the Standard Webhooks libraries use 24–32.
                if key.len() < 16 {
                    return Err(FieldError::new(
                        "apiSecret",
                        "the secret must carry at least 16 bytes of key after whsec_",
                    ));
                }
                Ok(Vec::new())
            }
            None => {
                credentials.api_secret = Some(generate_secret());
                Ok(vec!["apiSecret"])
            }
        }
    }

    async fn verify(&self, _: &GuardedClient, _: &Credentials) -> Result<(), VerifyError> {
        Ok(())
    }

    fn authenticate_inbound(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
        now: i64,
    ) -> Result<(), Unauthorized> {
        let missing = |name: &str| Unauthorized(format!("missing {name} header"));
        let id = header(headers, "webhook-id").ok_or_else(|| missing("webhook-id"))?;
        let timestamp = header(headers, "webhook-timestamp")
            .ok_or_else(|| missing("webhook-timestamp"))?
            .parse::<i64>()
            .map_err(|_| Unauthorized("webhook-timestamp is not unix seconds".to_owned()))?;
        let signature =
            header(headers, "webhook-signature").ok_or_else(|| missing("webhook-signature"))?;
        let secret = credentials
            .api_secret
            .as_deref()
            .ok_or_else(|| Unauthorized("the integration has no secret".to_owned()))?;
        verify_standard(secret, id, timestamp, body, signature, now, TOLERANCE)
            .map_err(|e| Unauthorized(e.to_string()))
    }

    fn translate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        settings: &IntegrationSettings,
    ) -> Result<Vec<InboundEvent>, TranslateError> {
        let mut event: EventIn = serde_json::from_slice(body)
            .map_err(|e| TranslateError(format!("invalid event: {e}")))?;
        if !settings.imports(event.entity_type) {
            return Ok(Vec::new());
        }
        // The delivery's identity is the idempotency key, whatever the body says (CONTRACT §6).
        event.event_id = header(headers, "webhook-id").map(str::to_owned);
        Ok(vec![InboundEvent {
            event,
            emit: Emit::Always,
            // A custom sender states no source time: its events are never stale.
            source_modified_at: None,
        }])
    }
}
