//! `push_tracking`: sends a shipment's tracking number, company and URL back to the store it
//! belongs to (CONTRACT §8, managed workflows): Shopify's fulfillment `update_tracking`, or a
//! WooCommerce order note. The store's credentials come from the tenant's integrations
//! ([`RecordKind::StoreConnection`]), never from the step's parameters.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::webhook::{retry_after, status_line};
use crate::http::{
    GuardedClient, HeaderMap, HeaderValue, Method, OutboundRequest, StatusCode, Url,
};
use crate::{Action, ActionError, Outcome, RecordKind, StepContext, StoreConnection};

/// The Shopify Admin API version the contract names.
const SHOPIFY_API: &str = "2024-10";
/// Body text quoted in a failure reason.
const REASON_BODY_CHARS: usize = 200;
/// How much of an order's notes is read when looking for a note an earlier attempt wrote.
const NOTES_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTrackingConfig {
    /// The guid of the store integration to push to.
    pub integration: Uuid,
}

/// Sends tracking back to the store through the guarded client.
pub struct PushTrackingAction {
    client: GuardedClient,
}

impl PushTrackingAction {
    pub fn new(client: GuardedClient) -> Self {
        Self { client }
    }
}

/// What is pushed, read from the shipment.
#[derive(Debug)]
struct Tracking {
    number: String,
    company: Option<String>,
    url: Option<String>,
}

impl Tracking {
    fn of(entity: &Value) -> Result<Self, ActionError> {
        let number = text(entity.get("trackingNumber")).ok_or_else(|| {
            ActionError::permanent(
                "push_tracking: the shipment has no trackingNumber, so there is nothing to send",
            )
        })?;
        Ok(Self {
            number,
            company: text(entity.get("trackingCompany")),
            url: text(entity.get("trackingUrl")),
        })
    }
}

/// A non-empty string (numbers are taken as their decimal text: store ids are integers).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A store resource id as it may appear in a URL path: digits only.
fn resource_id(what: &str, value: Option<String>) -> Result<String, ActionError> {
    match value {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        Some(id) => Err(ActionError::permanent(format!(
            "push_tracking: the {what} `{}` is not a store id (digits only)",
            id.chars().take(64).collect::<String>()
        ))),
        None => Err(ActionError::permanent(format!(
            "push_tracking: the shipment does not say its {what}"
        ))),
    }
}

impl Action for PushTrackingAction {
    type Config = PushTrackingConfig;

    fn kind(&self) -> &'static str {
        "push_tracking"
    }

    fn description(&self) -> &'static str {
        "Send the shipment's tracking number, company and URL back to its store (Shopify \
         fulfillment tracking, WooCommerce order note)"
    }

    fn needs(&self) -> &'static [RecordKind] {
        &[RecordKind::StoreConnection]
    }

    async fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let store = ctx
            .tenant
            .store_connections
            .iter()
            .find(|c| c.guid == config.integration)
            .ok_or_else(|| {
                ActionError::permanent(format!(
                    "push_tracking: integration {} no longer exists",
                    config.integration
                ))
            })?;
        if !store.active {
            // Disabling the integration switches its managed workflow off, so this is a step
            // that was already running: retried, it runs once the integration is enabled again.
            return Err(ActionError::retryable(format!(
                "push_tracking: integration {} is disabled",
                store.guid
            )));
        }
        let tracking = Tracking::of(&ctx.entity)?;
        match store.provider.as_str() {
            "shopify" => self.shopify(store, &tracking, ctx).await,
            "woocommerce" => self.woocommerce(store, &tracking, ctx).await,
            other => Err(ActionError::permanent(format!(
                "push_tracking: the `{other}` provider has no store to send tracking to"
            ))),
        }
    }
}

impl PushTrackingAction {
    /// `POST /admin/api/2024-10/fulfillments/{id}/update_tracking.json`: setting the same
    /// tracking twice leaves the fulfillment as once, so a repeated attempt is harmless.
    async fn shopify(
        &self,
        store: &StoreConnection,
        tracking: &Tracking,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let fulfillment = resource_id(
            "fulfillment id",
            text(ctx.entity.get("fulfillmentId")).or_else(|| Some(ctx.entity_id.clone())),
        )?;
        let url = store_url(
            store,
            &format!("/admin/api/{SHOPIFY_API}/fulfillments/{fulfillment}/update_tracking.json"),
        )?;
        let token = credential(store, store.api_key.as_deref(), "access token")?;
        let body = json!({"fulfillment": {
            "notify_customer": false,
            "tracking_info": {
                "number": tracking.number,
                "company": tracking.company,
                "url": tracking.url,
            },
        }});
        let mut headers = json_headers();
        headers.insert("x-shopify-access-token", header(token)?);
        let request =
            OutboundRequest::post(url, body.to_string().into_bytes()).with_headers(headers);
        let response = self.send(request).await?;
        Ok(Outcome {
            summary: format!(
                "tracking {} sent to Shopify fulfillment {fulfillment}: {}",
                tracking.number,
                status_line(response.status)
            ),
            output: json!({"provider": "shopify", "fulfillmentId": fulfillment, "status": response.status.as_u16()}),
            effects: Vec::new(),
        })
    }

    /// `POST /wp-json/wc/v3/orders/{id}/notes`. A note is not idempotent, so it carries the
    /// step's id and a retry first looks for a note with it among the order's notes.
    async fn woocommerce(
        &self,
        store: &StoreConnection,
        tracking: &Tracking,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let order = resource_id("order id (orderId)", text(ctx.entity.get("orderId")))?;
        let url = store_url(store, &format!("/wp-json/wc/v3/orders/{order}/notes"))?;
        let key = credential(store, store.api_key.as_deref(), "consumer key")?;
        let secret = credential(store, store.api_secret.as_deref(), "consumer secret")?;
        let mut headers = json_headers();
        let auth = format!("Basic {}", STANDARD.encode(format!("{key}:{secret}")));
        headers.insert("authorization", header(&auth)?);
        let reference = format!("ref {}", ctx.step_id);

        if ctx.attempt > 1 {
            let existing =
                OutboundRequest::new(Method::GET, url.clone()).with_headers(headers.clone());
            let response = self
                .client
                .send_capped(existing, NOTES_BYTES, NOTES_BYTES)
                .await?;
            check(&response.status, &response.headers, &response.body.kept)?;
            if response.body.kept.contains(&reference) {
                return Ok(Outcome {
                    summary: format!(
                        "tracking {} already noted on WooCommerce order {order}",
                        tracking.number
                    ),
                    output: json!({"provider": "woocommerce", "orderId": order, "alreadySent": true}),
                    effects: Vec::new(),
                });
            }
        }

        let mut note = match &tracking.company {
            Some(company) => format!(
                "Shipped with {company}, tracking number {}",
                tracking.number
            ),
            None => format!("Shipped, tracking number {}", tracking.number),
        };
        if let Some(link) = &tracking.url {
            note.push_str(&format!(": {link}"));
        }
        note.push_str(&format!(" ({reference})"));
        let body = json!({"note": note, "customer_note": false});
        let request =
            OutboundRequest::post(url, body.to_string().into_bytes()).with_headers(headers);
        let response = self.send(request).await?;
        Ok(Outcome {
            summary: format!(
                "tracking {} noted on WooCommerce order {order}: {}",
                tracking.number,
                status_line(response.status)
            ),
            output: json!({"provider": "woocommerce", "orderId": order, "status": response.status.as_u16()}),
            effects: Vec::new(),
        })
    }

    /// Sends and sorts the answer: 2xx is done; 408, 429 and 5xx are worth another attempt
    /// (honouring `Retry-After`); any other answer will not change by itself.
    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<crate::http::CappedResponse, ActionError> {
        let response = self.client.send(request).await?;
        check(&response.status, &response.headers, &response.body.kept)?;
        Ok(response)
    }
}

fn check(status: &StatusCode, headers: &HeaderMap, body: &str) -> Result<(), ActionError> {
    if status.is_success() {
        return Ok(());
    }
    let mut reason = format!("the store answered {}", status_line(*status));
    let quoted: String = body.chars().take(REASON_BODY_CHARS).collect();
    if !quoted.trim().is_empty() {
        reason.push_str(": ");
        reason.push_str(quoted.trim());
    }
    Err(match *status {
        s if s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS
            || s.is_server_error() =>
        {
            ActionError::Retryable {
                reason,
                after: retry_after(headers, Utc::now()),
            }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ActionError::permanent(format!(
            "{reason} (the integration's credentials were refused: configure the store again)"
        )),
        _ => ActionError::permanent(reason),
    })
}

fn store_url(store: &StoreConnection, path: &str) -> Result<Url, ActionError> {
    let base = store.store_url.as_deref().ok_or_else(|| {
        ActionError::permanent(format!(
            "push_tracking: integration {} has no store URL",
            store.guid
        ))
    })?;
    Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| ActionError::permanent(format!("push_tracking: store URL: {e}")))
}

fn credential<'a>(
    store: &StoreConnection,
    value: Option<&'a str>,
    what: &str,
) -> Result<&'a str, ActionError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        ActionError::permanent(format!(
            "push_tracking: integration {} has no {what}",
            store.guid
        ))
    })
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers
}

fn header(value: &str) -> Result<HeaderValue, ActionError> {
    HeaderValue::from_str(value).map_err(|_| {
        ActionError::permanent("push_tracking: a credential holds characters a header cannot carry")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_needs_a_number_and_takes_numbers_as_text() {
        let tracking = Tracking::of(&json!({"trackingNumber": 1234, "trackingCompany": "UPS"}))
            .expect("tracking");
        assert_eq!(tracking.number, "1234");
        assert_eq!(tracking.company.as_deref(), Some("UPS"));
        assert_eq!(tracking.url, None);
        let missing = Tracking::of(&json!({"trackingNumber": "  "})).expect_err("no number");
        assert!(
            matches!(missing, ActionError::Permanent { .. }),
            "{missing:?}"
        );
    }

    #[test]
    fn store_ids_are_digits_only() {
        assert_eq!(
            resource_id("order id", Some("5213".to_owned())).expect("id"),
            "5213"
        );
        for bad in ["../admin", "12/34", "", "1e3"] {
            assert!(
                resource_id("order id", Some(bad.to_owned())).is_err(),
                "{bad}"
            );
        }
        assert!(resource_id("order id", None).is_err());
    }

    #[test]
    fn answers_sort_into_retry_or_give_up() {
        let headers = HeaderMap::new();
        for retry in [408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(retry).expect("status");
            assert!(
                matches!(
                    check(&status, &headers, ""),
                    Err(ActionError::Retryable { .. })
                ),
                "{retry}"
            );
        }
        for permanent in [400, 401, 403, 404, 422] {
            let status = StatusCode::from_u16(permanent).expect("status");
            assert!(
                matches!(
                    check(&status, &headers, "nope"),
                    Err(ActionError::Permanent { .. })
                ),
                "{permanent}"
            );
        }
        assert!(check(&StatusCode::CREATED, &headers, "").is_ok());
    }
}
