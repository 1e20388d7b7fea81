//! WooCommerce: credentials checked with `GET /wp-json/wc/v3/system_status` (basic auth),
//! webhooks signed with `X-WC-Webhook-Signature`, the unsigned activation ping acknowledged.

use async_trait::async_trait;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use switchyard_actions::http::{GuardedClient, HeaderValue, OutboundRequest};
use switchyard_schemas::EntityType;

use super::{
    CredentialField, Credentials, Emit, InboundEvent, IntegrationSettings, Provider, Topic,
    TranslateError, Unauthorized, VerifyError, delivery_events, header, hmac_base64_matches,
    id_text, json_object, money, probe, store_endpoint, text, timestamp, timestamp_value,
};

pub struct WooCommerce;

const CODE: &str = "woocommerce";

const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "storeUrl",
        required: true,
        secret: false,
        description: "the WordPress site's address, e.g. https://shop.example.com",
    },
    CredentialField {
        name: "apiKey",
        required: true,
        secret: true,
        description: "a REST API consumer key (ck_…) with read access",
    },
    CredentialField {
        name: "apiSecret",
        required: true,
        secret: true,
        description: "its consumer secret (cs_…); also the webhooks' secret unless webhookSecret \
                      is given",
    },
    CredentialField {
        name: "webhookSecret",
        required: false,
        secret: true,
        description: "the Secret field of the store's webhooks, when it is not apiSecret",
    },
];

const TOPICS: &[Topic] = &[
    Topic {
        topic: "order.created",
        entity_type: EntityType::Order,
        triggers: &["order_created"],
        note: "",
    },
    Topic {
        topic: "order.updated",
        entity_type: EntityType::Order,
        triggers: &["order_status_changed", "order_paid", "order_cancelled"],
        note: "order_status_changed only when status differs from the stored one; order_paid \
               when date_paid_gmt goes from null to set; order_cancelled when status becomes \
               cancelled. A save that changes none of these ingests nothing",
    },
    Topic {
        topic: "product.created",
        entity_type: EntityType::Product,
        triggers: &["product_created"],
        note: "",
    },
    Topic {
        topic: "product.updated",
        entity_type: EntityType::Product,
        triggers: &["product_updated", "product_out_of_stock"],
        note: "product_out_of_stock when stock_status becomes outofstock",
    },
    Topic {
        topic: "customer.created",
        entity_type: EntityType::Customer,
        triggers: &["customer_created"],
        note: "",
    },
    Topic {
        topic: "customer.updated",
        entity_type: EntityType::Customer,
        triggers: &["customer_updated"],
        note: "",
    },
];

#[async_trait]
impl Provider for WooCommerce {
    fn code(&self) -> &'static str {
        CODE
    }

    fn takes_tracking(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "WooCommerce"
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        FIELDS
    }

    fn verification(&self) -> &'static str {
        "GET {storeUrl}/wp-json/wc/v3/system_status with basic auth apiKey:apiSecret"
    }

    fn inbound_signature(&self) -> &'static str {
        "X-WC-Webhook-Signature: base64 HMAC-SHA256(webhookSecret or apiSecret, raw body); the \
         unsigned activation ping (body webhook_id=<n>) is answered 200"
    }

    fn topics(&self) -> &'static [Topic] {
        TOPICS
    }

    async fn verify(
        &self,
        client: &GuardedClient,
        credentials: &Credentials,
    ) -> Result<(), VerifyError> {
        let url = store_endpoint(credentials, "/wp-json/wc/v3/system_status")?;
        let basic = STANDARD.encode(format!(
            "{}:{}",
            credentials.api_key.as_deref().unwrap_or_default(),
            credentials.api_secret.as_deref().unwrap_or_default()
        ));
        let authorization = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| VerifyError::Rejected { status: 401 })?;
        let mut headers = HeaderMap::new();
        headers.insert("authorization", authorization);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        match probe(client, OutboundRequest::get(url).with_headers(headers)).await {
            Err(VerifyError::Unexpected(reason)) if reason.contains(" 404 ") => {
                Err(VerifyError::Unexpected(format!(
                    "{reason}: is WooCommerce installed, with its REST API reachable under /wp-json?"
                )))
            }
            other => other.map(|_| ()),
        }
    }

    /// WooCommerce's ping on activation carries no `X-WC-Webhook-*` header and no signature; any
    /// answer but 200 keeps the merchant from activating the webhook.
    fn is_unsigned_ping(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        if header(headers, "x-wc-webhook-signature").is_some()
            || header(headers, "x-wc-webhook-topic").is_some()
        {
            return false;
        }
        let body = String::from_utf8_lossy(body);
        body.trim()
            .strip_prefix("webhook_id=")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    }

    fn authenticate_inbound(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
        _now: i64,
    ) -> Result<(), Unauthorized> {
        let signature = header(headers, "x-wc-webhook-signature")
            .ok_or_else(|| Unauthorized("missing X-WC-Webhook-Signature header".to_owned()))?;
        let matched = [&credentials.webhook_secret, &credentials.api_secret]
            .into_iter()
            .flatten()
            .any(|secret| hmac_base64_matches(secret.as_bytes(), body, signature));
        if matched {
            Ok(())
        } else {
            Err(Unauthorized(
                "X-WC-Webhook-Signature does not match the body".to_owned(),
            ))
        }
    }

    fn delivery_topic<'a>(&self, headers: &'a HeaderMap) -> &'a str {
        header(headers, "x-wc-webhook-topic").unwrap_or_default()
    }

    fn translate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        settings: &IntegrationSettings,
    ) -> Result<Vec<InboundEvent>, TranslateError> {
        let topic = header(headers, "x-wc-webhook-topic")
            .ok_or_else(|| TranslateError("missing X-WC-Webhook-Topic header".to_owned()))?;
        let Some(mapping) = TOPICS.iter().find(|t| t.topic == topic) else {
            return Ok(Vec::new());
        };
        if !settings.imports(mapping.entity_type) {
            return Ok(Vec::new());
        }
        let body = json_object(body)?;
        let id = id_text(body.get("id"))
            .ok_or_else(|| TranslateError("the body has no integer `id`".to_owned()))?;
        // The delivery id is a hash of the webhook id and the current second, so the resource id
        // is part of the key (CONTRACT §6).
        let delivery = match (
            header(headers, "x-wc-webhook-id"),
            header(headers, "x-wc-webhook-delivery-id"),
        ) {
            (Some(webhook), Some(delivery)) => format!("{CODE}:{webhook}:{delivery}:{id}"),
            _ => format!(
                "{CODE}:{topic}:{id}:{}",
                body.get("date_modified_gmt")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
        };
        let occurred_at = timestamp(body.get("date_modified_gmt"));
        let (data, triggers): (Map<String, Value>, Vec<(&str, Emit)>) = match topic {
            "order.created" => (order(&body, &id), vec![("order_created", Emit::Always)]),
            "order.updated" => {
                let data = order(&body, &id);
                let mut triggers = vec![("order_status_changed", Emit::WhenChanged("status"))];
                if !data.get("paidAt").is_none_or(Value::is_null) {
                    triggers.push(("order_paid", Emit::WhenChanged("paidAt")));
                }
                if data.get("status") == Some(&json!("cancelled")) {
                    triggers.push(("order_cancelled", Emit::WhenChanged("status")));
                }
                (data, triggers)
            }
            "product.created" => (product(&body, &id), vec![("product_created", Emit::Always)]),
            "product.updated" => {
                let data = product(&body, &id);
                let mut triggers = vec![("product_updated", Emit::Always)];
                if data.get("inStock") == Some(&Value::Bool(false)) {
                    triggers.push(("product_out_of_stock", Emit::WhenChanged("inStock")));
                }
                (data, triggers)
            }
            "customer.created" => (
                customer(&body, &id),
                vec![("customer_created", Emit::Always)],
            ),
            "customer.updated" => (
                customer(&body, &id),
                vec![("customer_updated", Emit::Always)],
            ),
            _ => return Ok(Vec::new()),
        };
        Ok(delivery_events(
            &delivery,
            mapping.entity_type,
            &id,
            data,
            occurred_at,
            // UTC without an offset (`timestamp` reads it so).
            timestamp(body.get("date_modified_gmt")),
            &triggers,
        ))
    }
}

fn with_source(
    mut data: Map<String, Value>,
    id: &str,
    body: &Map<String, Value>,
) -> Map<String, Value> {
    data.insert("provider".into(), json!(CODE));
    data.insert("providerId".into(), json!(id));
    data.insert("raw".into(), Value::Object(body.clone()));
    data
}

fn order(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let billing = body.get("billing").filter(|b| b.is_object());
    let mut data = Map::new();
    data.insert("status".into(), text(body.get("status")));
    data.insert("total".into(), money(body.get("total")));
    data.insert("currency".into(), text(body.get("currency")));
    data.insert(
        "customer".into(),
        json!({
            "email": text(billing.and_then(|b| b.get("email"))),
            "firstName": text(billing.and_then(|b| b.get("first_name"))),
            "lastName": text(billing.and_then(|b| b.get("last_name"))),
        }),
    );
    data.insert("orderNumber".into(), text(body.get("number")));
    // The `_gmt` twins are UTC; the plain `date_*` fields are site-local without an offset.
    data.insert("paidAt".into(), timestamp_value(body.get("date_paid_gmt")));
    data.insert(
        "paymentMethod".into(),
        text(body.get("payment_method_title")),
    );
    data.insert(
        "updatedAt".into(),
        timestamp_value(body.get("date_modified_gmt")),
    );
    with_source(data, id, body)
}

fn product(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let stock_status = text(body.get("stock_status"));
    let mut data = Map::new();
    data.insert("status".into(), text(body.get("status")));
    data.insert("title".into(), text(body.get("name")));
    data.insert("sku".into(), text(body.get("sku")));
    data.insert(
        "inStock".into(),
        Value::Bool(stock_status.as_str() != Some("outofstock")),
    );
    data.insert("stockStatus".into(), stock_status);
    data.insert(
        "inventoryQuantity".into(),
        body.get("stock_quantity")
            .and_then(Value::as_i64)
            .map_or(Value::Null, |q| json!(q)),
    );
    data.insert("price".into(), money(body.get("price")));
    data.insert(
        "updatedAt".into(),
        timestamp_value(body.get("date_modified_gmt")),
    );
    with_source(data, id, body)
}

/// WooCommerce customers have no status; `role` is the nearest thing and is kept as is.
fn customer(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("email".into(), text(body.get("email")));
    data.insert("firstName".into(), text(body.get("first_name")));
    data.insert("lastName".into(), text(body.get("last_name")));
    data.insert("role".into(), text(body.get("role")));
    data.insert(
        "updatedAt".into(),
        timestamp_value(body.get("date_modified_gmt")),
    );
    with_source(data, id, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(topic: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-wc-webhook-topic",
            HeaderValue::from_str(topic).expect("header"),
        );
        h.insert("x-wc-webhook-id", HeaderValue::from_static("16"));
        h.insert("x-wc-webhook-delivery-id", HeaderValue::from_static("abc"));
        h
    }

    #[test]
    fn the_ping_is_recognized_and_nothing_else_is() {
        assert!(WooCommerce.is_unsigned_ping(&HeaderMap::new(), b"webhook_id=16"));
        assert!(!WooCommerce.is_unsigned_ping(&HeaderMap::new(), b"webhook_id="));
        assert!(!WooCommerce.is_unsigned_ping(&HeaderMap::new(), b"{\"id\":1}"));
        assert!(!WooCommerce.is_unsigned_ping(&headers("order.created"), b"webhook_id=16"));
    }

    #[test]
    fn order_updates_emit_only_transitions() {
        let body = br#"{"id": 10452, "status": "cancelled", "total": "87.00", "currency": "EUR",
            "billing": {"email": "d@example.com"}, "date_paid_gmt": null,
            "date_modified_gmt": "2026-05-15T07:02:33"}"#;
        let events = WooCommerce
            .translate(
                &headers("order.updated"),
                body,
                &IntegrationSettings::default(),
            )
            .expect("translates");
        let triggers: Vec<_> = events.iter().map(|e| e.event.trigger.as_str()).collect();
        assert_eq!(triggers, ["order_status_changed", "order_cancelled"]);
        assert_eq!(
            events[0].event.event_id.as_deref(),
            Some("woocommerce:16:abc:10452")
        );
        assert_eq!(events[0].event.data["total"], 87.0);
        assert_eq!(events[0].event.data["updatedAt"], "2026-05-15T07:02:33Z");
        assert!(events.iter().all(|e| e.emit != Emit::Always));
    }
}
