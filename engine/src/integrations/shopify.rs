//! Shopify: credentials checked with `GET /admin/api/2024-10/shop.json`, webhooks signed with
//! `X-Shopify-Hmac-Sha256`, topics mapped as `tests/fixtures/README.md` suggests.

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use switchyard_actions::http::{GuardedClient, HeaderValue, OutboundRequest};
use switchyard_schemas::EntityType;

use super::{
    CredentialField, Credentials, Emit, InboundEvent, IntegrationSettings, Provider, Topic,
    TranslateError, Unauthorized, VerifyError, delivery_events, first_text, header,
    hmac_base64_matches, id_text, json_object, money, probe, store_endpoint, text, timestamp,
    timestamp_value,
};

pub struct Shopify;

const CODE: &str = "shopify";

const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "storeUrl",
        required: true,
        secret: false,
        description: "the shop's address, https://<shop>.myshopify.com",
    },
    CredentialField {
        name: "apiKey",
        required: true,
        secret: true,
        description: "an Admin API access token (shpat_…), sent as X-Shopify-Access-Token",
    },
    CredentialField {
        name: "apiSecret",
        required: true,
        secret: true,
        description: "the app's API secret key, which signs its webhooks",
    },
    CredentialField {
        name: "webhookSecret",
        required: false,
        secret: true,
        description: "the signing key shown under Settings → Notifications → Webhooks, for \
                      webhooks created in the shop admin (they are not signed with apiSecret)",
    },
];

const TOPICS: &[Topic] = &[
    Topic {
        topic: "orders/create",
        entity_type: EntityType::Order,
        triggers: &["order_created"],
        note: "status is financial_status",
    },
    Topic {
        topic: "orders/paid",
        entity_type: EntityType::Order,
        triggers: &["order_paid", "order_status_changed"],
        note: "order_status_changed when the stored status differed",
    },
    Topic {
        topic: "orders/cancelled",
        entity_type: EntityType::Order,
        triggers: &["order_cancelled", "order_status_changed"],
        note: "status becomes \"cancelled\"; order_status_changed when the stored status differed",
    },
    Topic {
        topic: "orders/updated",
        entity_type: EntityType::Order,
        triggers: &["order_status_changed"],
        note: "only when financial_status differs from the stored status",
    },
    Topic {
        topic: "fulfillments/create",
        entity_type: EntityType::Shipment,
        triggers: &["shipment_created"],
        note: "status is shipment_status, else status; carries orderId and tracking",
    },
    Topic {
        topic: "products/create",
        entity_type: EntityType::Product,
        triggers: &["product_created"],
        note: "",
    },
    Topic {
        topic: "products/update",
        entity_type: EntityType::Product,
        triggers: &["product_updated", "product_out_of_stock"],
        note: "product_out_of_stock on the transition to every variant at ≤ 0 (variants that \
               allow overselling count as in stock)",
    },
    Topic {
        topic: "customers/create",
        entity_type: EntityType::Customer,
        triggers: &["customer_created"],
        note: "status is state",
    },
    Topic {
        topic: "customers/update",
        entity_type: EntityType::Customer,
        triggers: &["customer_updated"],
        note: "",
    },
];

#[async_trait]
impl Provider for Shopify {
    fn code(&self) -> &'static str {
        CODE
    }

    fn takes_tracking(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "Shopify"
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        FIELDS
    }

    fn verification(&self) -> &'static str {
        "GET {storeUrl}/admin/api/2024-10/shop.json with X-Shopify-Access-Token: apiKey"
    }

    fn inbound_signature(&self) -> &'static str {
        "X-Shopify-Hmac-Sha256: base64 HMAC-SHA256(apiSecret or webhookSecret, raw body)"
    }

    fn topics(&self) -> &'static [Topic] {
        TOPICS
    }

    async fn verify(
        &self,
        client: &GuardedClient,
        credentials: &Credentials,
    ) -> Result<(), VerifyError> {
        let url = store_endpoint(credentials, "/admin/api/2024-10/shop.json")?;
        let token = HeaderValue::from_str(credentials.api_key.as_deref().unwrap_or_default())
            .map_err(|_| VerifyError::Rejected { status: 401 })?;
        let mut headers = HeaderMap::new();
        headers.insert("x-shopify-access-token", token);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let response = probe(client, OutboundRequest::get(url).with_headers(headers)).await?;
        // A 200 from something that is not a Shopify admin API (a storefront, a proxy's page)
        // must not pass as verified.
        let shop = serde_json::from_str::<Value>(&response.body.kept)
            .ok()
            .is_some_and(|v| v.get("shop").is_some_and(Value::is_object));
        if shop || response.body.truncated {
            Ok(())
        } else {
            Err(VerifyError::Unexpected(
                "the store answered 200 but not with a Shopify shop: is storeUrl the \
                 <shop>.myshopify.com address?"
                    .to_owned(),
            ))
        }
    }

    fn authenticate_inbound(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
        _now: i64,
    ) -> Result<(), Unauthorized> {
        let signature = header(headers, "x-shopify-hmac-sha256")
            .ok_or_else(|| Unauthorized("missing X-Shopify-Hmac-Sha256 header".to_owned()))?;
        if body.is_empty() {
            return Err(Unauthorized("empty body".to_owned()));
        }
        let matched = [&credentials.api_secret, &credentials.webhook_secret]
            .into_iter()
            .flatten()
            .any(|secret| hmac_base64_matches(secret.as_bytes(), body, signature));
        if matched {
            Ok(())
        } else {
            Err(Unauthorized(
                "X-Shopify-Hmac-Sha256 does not match the body".to_owned(),
            ))
        }
    }

    fn delivery_topic<'a>(&self, headers: &'a HeaderMap) -> &'a str {
        header(headers, "x-shopify-topic").unwrap_or_default()
    }

    fn translate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        settings: &IntegrationSettings,
    ) -> Result<Vec<InboundEvent>, TranslateError> {
        let topic = header(headers, "x-shopify-topic")
            .ok_or_else(|| TranslateError("missing X-Shopify-Topic header".to_owned()))?;
        let Some(mapping) = TOPICS.iter().find(|t| t.topic == topic) else {
            // Topics the engine has no trigger for are acknowledged, so Shopify keeps delivering.
            return Ok(Vec::new());
        };
        if !settings.imports(mapping.entity_type) {
            return Ok(Vec::new());
        }
        let body = json_object(body)?;
        let id = id_text(body.get("id"))
            .ok_or_else(|| TranslateError("the body has no integer `id`".to_owned()))?;
        let delivery = match header(headers, "x-shopify-webhook-id") {
            Some(webhook) => format!("{CODE}:{webhook}"),
            None => format!(
                "{CODE}:{topic}:{id}:{}",
                body.get("updated_at")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
        };
        let occurred_at = timestamp(
            header(headers, "x-shopify-triggered-at")
                .map(|t| Value::String(t.to_owned()))
                .as_ref(),
        )
        .or_else(|| timestamp(body.get("updated_at")));
        let changed = Emit::WhenChanged("status");
        let (data, triggers): (Map<String, Value>, Vec<(&str, Emit)>) = match topic {
            "orders/create" => (
                order(&body, &id, false),
                vec![("order_created", Emit::Always)],
            ),
            "orders/paid" => (
                order(&body, &id, false),
                vec![
                    ("order_paid", Emit::Always),
                    ("order_status_changed", changed),
                ],
            ),
            "orders/cancelled" => (
                order(&body, &id, true),
                vec![
                    ("order_cancelled", Emit::Always),
                    ("order_status_changed", changed),
                ],
            ),
            "orders/updated" => (
                order(&body, &id, false),
                vec![("order_status_changed", changed)],
            ),
            "fulfillments/create" => (
                fulfillment(&body, &id),
                vec![("shipment_created", Emit::Always)],
            ),
            "products/create" => (product(&body, &id), vec![("product_created", Emit::Always)]),
            "products/update" => {
                let data = product(&body, &id);
                let mut triggers = vec![("product_updated", Emit::Always)];
                if data.get("inStock") == Some(&Value::Bool(false)) {
                    triggers.push(("product_out_of_stock", Emit::WhenChanged("inStock")));
                }
                (data, triggers)
            }
            "customers/create" => (
                customer(&body, &id),
                vec![("customer_created", Emit::Always)],
            ),
            "customers/update" => (
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
            // The order's (product's, …) own modification time, not the delivery's.
            timestamp(body.get("updated_at")),
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

/// Shopify orders have no single status: the financial status stands for it, and a cancelled
/// order is `cancelled` whatever its payment state.
fn order(body: &Map<String, Value>, id: &str, cancelled: bool) -> Map<String, Value> {
    let customer = body.get("customer").filter(|c| c.is_object());
    let billing = body.get("billing_address").filter(|c| c.is_object());
    let status = if cancelled {
        json!("cancelled")
    } else {
        text(body.get("financial_status"))
    };
    let mut data = Map::new();
    data.insert("status".into(), status);
    data.insert("total".into(), money(body.get("total_price")));
    data.insert("currency".into(), text(body.get("currency")));
    data.insert(
        "customer".into(),
        json!({
            "email": first_text([
                body.get("email"),
                body.get("contact_email"),
                customer.and_then(|c| c.get("email")),
            ]),
            "firstName": first_text([
                customer.and_then(|c| c.get("first_name")),
                billing.and_then(|b| b.get("first_name")),
            ]),
            "lastName": first_text([
                customer.and_then(|c| c.get("last_name")),
                billing.and_then(|b| b.get("last_name")),
            ]),
        }),
    );
    data.insert("orderNumber".into(), text(body.get("name")));
    data.insert("financialStatus".into(), text(body.get("financial_status")));
    data.insert(
        "fulfillmentStatus".into(),
        text(body.get("fulfillment_status")),
    );
    if cancelled {
        data.insert("cancelReason".into(), text(body.get("cancel_reason")));
        data.insert(
            "cancelledAt".into(),
            timestamp_value(body.get("cancelled_at")),
        );
    }
    data.insert("updatedAt".into(), timestamp_value(body.get("updated_at")));
    with_source(data, id, body)
}

fn fulfillment(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let email = text(body.get("email"));
    let mut data = Map::new();
    data.insert(
        "status".into(),
        first_text([body.get("shipment_status"), body.get("status")]),
    );
    data.insert("customer".into(), json!({ "email": email }));
    data.insert(
        "orderId".into(),
        id_text(body.get("order_id")).map_or(Value::Null, Value::String),
    );
    data.insert("trackingNumber".into(), text(body.get("tracking_number")));
    data.insert("trackingCompany".into(), text(body.get("tracking_company")));
    data.insert("trackingUrl".into(), text(body.get("tracking_url")));
    data.insert("updatedAt".into(), timestamp_value(body.get("updated_at")));
    with_source(data, id, body)
}

/// In stock while any variant has stock or may be oversold (`inventory_policy: continue`); a
/// product without variants is taken as in stock, since nothing says otherwise.
fn product(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let variants = body
        .get("variants")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let quantity = |v: &Value| {
        v.get("inventory_quantity")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let in_stock = variants.is_empty()
        || variants.iter().any(|v| {
            quantity(v) > 0 || v.get("inventory_policy").and_then(Value::as_str) == Some("continue")
        });
    let total: i64 = variants.iter().map(quantity).sum();
    let mut data = Map::new();
    data.insert("status".into(), text(body.get("status")));
    data.insert("title".into(), text(body.get("title")));
    data.insert("handle".into(), text(body.get("handle")));
    data.insert("inStock".into(), Value::Bool(in_stock));
    data.insert("inventoryQuantity".into(), json!(total));
    data.insert(
        "price".into(),
        money(variants.first().and_then(|v| v.get("price"))),
    );
    data.insert("updatedAt".into(), timestamp_value(body.get("updated_at")));
    with_source(data, id, body)
}

fn customer(body: &Map<String, Value>, id: &str) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("status".into(), text(body.get("state")));
    data.insert("email".into(), text(body.get("email")));
    data.insert("firstName".into(), text(body.get("first_name")));
    data.insert("lastName".into(), text(body.get("last_name")));
    data.insert("updatedAt".into(), timestamp_value(body.get("updated_at")));
    with_source(data, id, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(topic: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-shopify-topic",
            HeaderValue::from_str(topic).expect("header"),
        );
        h.insert("x-shopify-webhook-id", HeaderValue::from_static("wh-1"));
        h
    }

    #[test]
    fn orders_normalize_with_exact_ids() {
        let body =
            br#"{"id": 820982911946154508, "financial_status": "pending", "total_price": "87.00",
            "currency": "USD", "email": "", "contact_email": "a@example.com", "customer": null}"#;
        let events = Shopify
            .translate(
                &headers("orders/create"),
                body,
                &IntegrationSettings::default(),
            )
            .expect("translates");
        assert_eq!(events.len(), 1);
        let event = &events[0].event;
        assert_eq!(event.entity_id, "820982911946154508");
        assert_eq!(event.event_id.as_deref(), Some("shopify:wh-1"));
        assert_eq!(event.data["providerId"], "820982911946154508");
        assert_eq!(event.data["total"], 87.0);
        assert_eq!(event.data["customer"]["email"], "a@example.com");
        assert_eq!(event.data["status"], "pending");
    }

    #[test]
    fn settings_gate_topics_and_unknown_topics_are_ignored() {
        let settings = IntegrationSettings {
            auto_import_orders: false,
            ..IntegrationSettings::default()
        };
        let none = Shopify
            .translate(&headers("orders/create"), b"not even json", &settings)
            .expect("ignored");
        assert!(none.is_empty());
        let none = Shopify
            .translate(
                &headers("app/uninstalled"),
                b"{}",
                &IntegrationSettings::default(),
            )
            .expect("ignored");
        assert!(none.is_empty());
    }

    #[test]
    fn out_of_stock_is_a_conditional_second_event() {
        let body = br#"{"id": 1, "status": "active", "variants": [
            {"inventory_quantity": 0, "inventory_policy": "deny"},
            {"inventory_quantity": -1, "inventory_policy": "deny"}]}"#;
        let events = Shopify
            .translate(
                &headers("products/update"),
                body,
                &IntegrationSettings::default(),
            )
            .expect("translates");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].event.trigger, "product_out_of_stock");
        assert_eq!(events[1].emit, Emit::WhenChanged("inStock"));
        assert_eq!(
            events[1].event.event_id.as_deref(),
            Some("shopify:wh-1:product_out_of_stock")
        );
    }
}
