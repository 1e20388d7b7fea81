//! Store integrations end to end, on SQLite and on PostgreSQL + Redis: configuring against a fake
//! store (credential checks, conflicts, secrets never shown nor stored in plain text), inbound
//! webhooks with the shared fixtures' real bodies and signatures (events, derived transitions,
//! redeliveries, tampering, the WooCommerce ping), disable/remove, tenant scoping, and
//! `rotate-master-key`.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use switchyard::{App, Roles};
use switchyard_tests::receiver::Receiver;
use switchyard_tests::{Db, Reply, TestDb, TestServer, WAIT, eventually, on_both_databases, send};

on_both_databases! {
    configure_verifies_and_hides_credentials => configure_verifies_and_hides_credentials;
    shopify_webhooks_become_events => shopify_webhooks_become_events;
    woocommerce_webhooks_become_events => woocommerce_webhooks_become_events;
    custom_webhooks_are_standard_webhooks => custom_webhooks_are_standard_webhooks;
    integrations_are_tenant_scoped => integrations_are_tenant_scoped;
    rotate_master_key_reencrypts_every_secret => rotate_master_key_reencrypts_every_secret;
    replayed_bodies_with_fresh_delivery_ids_start_nothing => replayed_bodies_with_fresh_delivery_ids_start_nothing;
    store_urls_must_be_https => store_urls_must_be_https;
    configuring_a_disabled_store_again_enables_it => configuring_a_disabled_store_again_enables_it;
    stale_shopify_deliveries_change_and_start_nothing => stale_shopify_deliveries_change_and_start_nothing;
    stale_woocommerce_deliveries_change_and_start_nothing => stale_woocommerce_deliveries_change_and_start_nothing;
}

/// Test credentials. The two secrets are the fixtures' (tests/fixtures/*/HEADERS.md), so their
/// precomputed signatures verify.
const SHOPIFY_TOKEN: &str = "shpat_fixture_access_token_0001";
const SHOPIFY_SECRET: &str = "shpss_fixture_not_a_real_secret_0001";
const WC_KEY: &str = "ck_fixture_consumer_key_0001";
const WC_SECRET: &str = "wc-fixture-secret-not-real";

// ---------------------------------------------------------------------------------------------
// A fake store answering the credential checks as Shopify and WooCommerce do.

async fn shop_json(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
    if headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        == Some(SHOPIFY_TOKEN)
    {
        (
            StatusCode::OK,
            axum::Json(json!({"shop": {
                "id": 548380009_u64, "name": "Larkspur Goods (test)", "currency": "USD",
                "myshopify_domain": "larkspur-goods-test.myshopify.com"
            }})),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
            })),
        )
    }
}

async fn system_status(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
    // base64("ck_fixture_consumer_key_0001:wc-fixture-secret-not-real")
    let expected = format!("Basic {}", basic(WC_KEY, WC_SECRET));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
        (
            StatusCode::OK,
            axum::Json(json!({
                "environment": {"version": "10.2.1", "home_url": "https://fixture-store.example.com"},
                "database": {}, "active_plugins": [], "theme": {}, "settings": {"currency": "EUR"},
                "security": {}, "pages": []
            })),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "code": "woocommerce_rest_authentication_error",
                "message": "Consumer secret is invalid.", "data": {"status": 401}
            })),
        )
    }
}

/// Base64 of `user:password`, written out here so the test does not share the engine's encoder.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Starts a fake store on 127.0.0.1:0; returns its base URL.
async fn fake_store() -> String {
    let app = Router::new()
        .route("/admin/api/2024-10/shop.json", get(shop_json))
        .route("/wp-json/wc/v3/system_status", get(system_status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake store");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A URL nothing listens on: bound, then released.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers.

/// The store fixtures copied into `tests/fixtures/` (their README says where they come from).
fn fixture(path: &str) -> Vec<u8> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("fixture {}: {e}", file.display()))
}

async fn configure(server: &TestServer, key: &str, body: Value) -> Reply {
    server
        .post(key, "/api/integrations/provider/configure", &body)
        .await
}

fn shopify_body(store: &str) -> Value {
    json!({
        "providerId": "shopify", "providerType": "ecommerce",
        "credentials": {"apiKey": SHOPIFY_TOKEN, "apiSecret": SHOPIFY_SECRET, "storeUrl": store},
        "settings": {"autoImportOrders": true, "syncProducts": true, "pushTracking": true}
    })
}

fn woocommerce_body(store: &str) -> Value {
    json!({
        "providerId": "woocommerce", "providerType": "ecommerce",
        "credentials": {"apiKey": WC_KEY, "apiSecret": WC_SECRET, "storeUrl": store}
    })
}

/// POSTs a store delivery: raw bytes, the given headers, no bearer key.
async fn deliver(
    server: &TestServer,
    guid: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = server
        .http
        .post(server.url(&format!("/api/integrations/inbound/{guid}")))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

async fn shopify_delivery(
    server: &TestServer,
    guid: &str,
    file: &str,
    topic: &str,
    signature: &str,
    webhook_id: &str,
) -> Reply {
    deliver(
        server,
        guid,
        &[
            ("x-shopify-topic", topic),
            ("x-shopify-hmac-sha256", signature),
            ("x-shopify-shop-domain", "larkspur-goods-test.myshopify.com"),
            ("x-shopify-api-version", "2026-07"),
            ("x-shopify-webhook-id", webhook_id),
            ("x-shopify-triggered-at", "2026-05-14T14:21:08.412907Z"),
        ],
        fixture(file),
    )
    .await
}

async fn wc_delivery(
    server: &TestServer,
    guid: &str,
    file: &str,
    topic: &str,
    signature: &str,
    delivery_id: &str,
) -> Reply {
    deliver(
        server,
        guid,
        &[
            ("x-wc-webhook-source", "https://fixture-store.example.com/"),
            ("x-wc-webhook-topic", topic),
            ("x-wc-webhook-signature", signature),
            ("x-wc-webhook-id", "16"),
            ("x-wc-webhook-delivery-id", delivery_id),
        ],
        fixture(file),
    )
    .await
}

/// The `(eventId, duplicate)` pairs of an inbound answer.
fn ingested(reply: &Reply) -> Vec<(String, bool)> {
    reply.assert_ok(200)["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events list: {:?}", reply.body))
        .iter()
        .map(|e| {
            (
                e["eventId"].as_str().expect("eventId").to_owned(),
                e["duplicate"].as_bool().expect("duplicate"),
            )
        })
        .collect()
}

async fn processed_event(server: &TestServer, key: &str, event_id: &str) -> Value {
    eventually(server, key, &format!("/api/events/{event_id}"), WAIT, |e| {
        e["state"] == "processed"
    })
    .await
}

async fn webhook_workflow(
    server: &TestServer,
    key: &str,
    entity: &str,
    trigger: &str,
    url: &str,
) -> String {
    let reply = server
        .post(
            key,
            "/api/workflows/configure",
            &json!({
                "name": format!("notify {trigger}"), "entityType": entity, "triggerId": trigger,
                "action": {"type": "webhook", "url": url}
            }),
        )
        .await;
    reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

async fn event_count(server: &TestServer, key: &str) -> usize {
    server
        .get(key, "/api/events?limit=200")
        .await
        .assert_ok(200)
        .as_array()
        .map_or(0, Vec::len)
}

/// Asserts no secret is stored in plain text: the SQLite file and its WAL, or the Postgres rows.
async fn assert_not_at_rest(db: &TestDb, secrets: &[&str]) {
    match db.kind {
        Db::Sqlite => {
            let dir = db.sqlite_dir().expect("sqlite dir");
            for name in ["switchyard.db", "switchyard.db-wal"] {
                let Ok(bytes) = std::fs::read(dir.join(name)) else {
                    continue;
                };
                for secret in secrets {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{name} contains a plain-text secret"
                    );
                }
            }
        }
        Db::Postgres => {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("connect to the test schema");
            let rows = sqlx::query("SELECT credentials, settings, store_url FROM integrations")
                .fetch_all(&mut conn)
                .await
                .expect("read integrations");
            assert!(!rows.is_empty());
            for row in rows {
                let credentials: String = row.get(0);
                assert!(credentials.starts_with("enc:v2:"), "{credentials}");
                let settings: String = row.get(1);
                let store: Option<String> = row.get(2);
                for secret in secrets {
                    assert!(!credentials.contains(secret) && !settings.contains(secret));
                    assert!(!store.as_deref().unwrap_or_default().contains(secret));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

async fn configure_verifies_and_hides_credentials(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;

    let catalog = server.get(&key, "/api/integrations/providers").await;
    let catalog = catalog.assert_ok(200).as_array().expect("list").clone();
    let codes: Vec<_> = catalog.iter().map(|p| p["code"].clone()).collect();
    assert_eq!(
        codes,
        [json!("shopify"), json!("woocommerce"), json!("custom")]
    );
    assert!(catalog.iter().all(|p| p["providerType"] == "ecommerce"));
    let shopify_id = catalog[0]["providerId"]
        .as_str()
        .expect("providerId")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&shopify_id).is_ok());
    let required: Vec<_> = catalog[0]["credentials"]
        .as_array()
        .expect("fields")
        .iter()
        .filter(|f| f["required"] == true)
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(required, ["storeUrl", "apiKey", "apiSecret"]);

    // Shopify by its stable id, WooCommerce and custom by code.
    let mut body = shopify_body(&store);
    body["providerId"] = json!(shopify_id);
    let reply = configure(&server, &key, body).await;
    let shopify = reply.assert_ok(201).clone();
    let shopify_guid = shopify["guid"].as_str().expect("guid").to_owned();
    assert_eq!(shopify["provider"], "shopify");
    assert_eq!(shopify["status"], "active");
    assert!(shopify["connectedAt"].is_string());
    assert_eq!(
        shopify["inboundUrl"],
        server.url(&format!("/api/integrations/inbound/{shopify_guid}"))
    );
    assert!(
        shopify.get("apiSecret").is_none(),
        "only generated secrets are shown"
    );

    let woo = configure(&server, &key, woocommerce_body(&store)).await;
    assert_eq!(woo.assert_ok(201)["provider"], "woocommerce");

    let custom = configure(
        &server,
        &key,
        json!({"providerId": "custom", "providerType": "ecommerce"}),
    )
    .await;
    let custom_secret = custom.assert_ok(201)["apiSecret"]
        .as_str()
        .expect("generated secret")
        .to_owned();
    assert!(custom_secret.starts_with("whsec_"));

    // The store refuses the token.
    let mut wrong = shopify_body(&store);
    wrong["credentials"]["apiKey"] = json!("shpat_wrong");
    let reply = configure(&server, &key, wrong).await;
    reply.assert_error(400, "CONFIGURATION_ERROR");
    assert_eq!(reply.body["error"]["message"], "Invalid credentials");
    let mut wrong = woocommerce_body(&store);
    wrong["credentials"]["apiSecret"] = json!("cs_wrong");
    configure(&server, &key, wrong)
        .await
        .assert_error(400, "CONFIGURATION_ERROR");

    // Nothing answers.
    let reply = configure(&server, &key, shopify_body(&closed_port_url().await)).await;
    reply.assert_error(400, "CONFIGURATION_ERROR");
    let message = reply.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("could not be reached"), "{message}");

    // A second active integration of the same store, however its URL is spelled.
    configure(&server, &key, shopify_body(&store))
        .await
        .assert_error(409, "CONFLICT");
    configure(&server, &key, shopify_body(&format!("{store}/")))
        .await
        .assert_error(409, "CONFLICT");

    // Bad input is a validation error, never a 500.
    for body in [
        json!({"providerId": "magento", "credentials": {}}),
        json!({"providerId": "shopify", "credentials": {"apiKey": SHOPIFY_TOKEN, "apiSecret": "x"}}),
        json!({"providerId": "shopify", "providerType": "crm", "credentials": {}}),
        json!({"providerId": "custom", "credentials": {"storeUrl": store}}),
        json!({"providerId": "custom", "credentials": {"apiSecret": "not-a-whsec"}}),
        json!({"providerId": "shopify", "credentials": {"apiKey": 5}}),
        json!({"providerId": "shopify", "credentials": {"apiKey": "k", "apiSecret": "s", "storeUrl": "ftp://x"}}),
        json!({"providerId": "custom", "settings": {"autoImportOrders": "yes"}}),
        json!({"providerId": "custom", "surprise": 1}),
    ] {
        configure(&server, &key, body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    let reply = send(
        server
            .http
            .post(server.url("/api/integrations/provider/configure"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");

    // Listed without secrets: at most the last 4 characters of the key.
    let listed = server.get(&key, "/api/integrations").await;
    let data = listed.assert_ok(200).as_array().expect("list").clone();
    assert_eq!(data.len(), 3);
    assert_eq!(listed.body["cursor"], Value::Null);
    let text = listed.body.to_string();
    for secret in [
        SHOPIFY_TOKEN,
        SHOPIFY_SECRET,
        WC_KEY,
        WC_SECRET,
        custom_secret.as_str(),
    ] {
        assert!(!text.contains(secret), "the list shows a secret");
    }
    let listed_shopify = data
        .iter()
        .find(|i| i["guid"] == shopify_guid.as_str())
        .expect("shopify listed");
    assert_eq!(listed_shopify["apiKeyLast4"], "0001");
    assert_eq!(listed_shopify["storeUrl"], store.as_str());
    assert_eq!(listed_shopify["settings"]["autoImportOrders"], true);
    assert_eq!(listed_shopify["providerId"], shopify_id.as_str());

    assert_not_at_rest(
        &server.db,
        &[
            SHOPIFY_TOKEN,
            SHOPIFY_SECRET,
            WC_KEY,
            WC_SECRET,
            &custom_secret,
        ],
    )
    .await;

    // Configuring a disabled integration's store again enables that integration again.
    let disabled = server
        .get(
            &key,
            &format!("/api/integrations/provider/disable/{shopify_guid}"),
        )
        .await;
    assert_eq!(disabled.assert_ok(200)["status"], "disabled");
    let again = configure(&server, &key, shopify_body(&store)).await;
    assert_eq!(again.assert_ok(200)["guid"], shopify_guid.as_str());

    server.stop().await;
}

async fn shopify_webhooks_become_events(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;
    let receiver = Receiver::start().await;
    let reply = configure(&server, &key, shopify_body(&store)).await;
    let guid = reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    let order_workflow =
        webhook_workflow(&server, &key, "Order", "order_created", &receiver.url).await;
    webhook_workflow(
        &server,
        &key,
        "Product",
        "product_out_of_stock",
        &receiver.url,
    )
    .await;

    // orders/create with the fixture's real signature.
    let create_sig = "32wsQXpa2Tnu+AdWZakEDEVYn14a79UDzLXtYnMvh1I=";
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-create-1",
    )
    .await;
    assert_eq!(
        ingested(&reply),
        [("shopify:wh-create-1".to_owned(), false)]
    );
    let event = processed_event(&server, &key, "shopify:wh-create-1").await;
    assert_eq!(event["trigger"], "order_created");
    assert_eq!(event["entityType"], "Order");
    assert_eq!(event["entityId"], "6203417390172");
    let data = &event["data"];
    assert_eq!(data["status"], "pending");
    assert_eq!(data["total"], 87.0);
    assert_eq!(data["currency"], "USD");
    assert_eq!(data["customer"]["email"], "dana.placeholder@example.com");
    assert_eq!(data["customer"]["firstName"], "Dana");
    assert_eq!(data["provider"], "shopify");
    assert_eq!(data["providerId"], "6203417390172");
    assert_eq!(data["raw"]["id"], 6203417390172_u64);
    assert_eq!(event["executions"].as_array().map(Vec::len), Some(1));
    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(delivered[0].body["type"], "order_created");
    assert_eq!(delivered[0].body["data"]["entity"]["total"], 87.0);

    // Tampered, unsigned, or signed with something else: 401 and nothing ingested.
    let before = event_count(&server, &key).await;
    let tampered = String::from_utf8(fixture("shopify/orders-create.json"))
        .expect("utf8")
        .replace("\"87.00\"", "\"1.00\"");
    let reply = deliver(
        &server,
        &guid,
        &[
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-hmac-sha256", create_sig),
            ("x-shopify-webhook-id", "wh-tampered"),
        ],
        tampered.into_bytes(),
    )
    .await;
    reply.assert_error(401, "UNAUTHORIZED");
    let reply = deliver(
        &server,
        &guid,
        &[
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", "wh-unsigned"),
        ],
        fixture("shopify/orders-create.json"),
    )
    .await;
    reply.assert_error(401, "UNAUTHORIZED");
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        "bm9wZQ==",
        "wh-x",
    )
    .await;
    reply.assert_error(401, "UNAUTHORIZED");
    assert_eq!(event_count(&server, &key).await, before);

    // A redelivery: 200, duplicate, no second execution.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-create-1",
    )
    .await;
    assert_eq!(ingested(&reply), [("shopify:wh-create-1".to_owned(), true)]);
    let executions = server
        .get(
            &key,
            &format!("/api/executions?workflowId={order_workflow}"),
        )
        .await;
    assert_eq!(executions.assert_ok(200).as_array().map(Vec::len), Some(1));
    assert_eq!(event_count(&server, &key).await, before);

    // orders/paid: order_paid, and order_status_changed because the stored status was pending.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-paid.json",
        "orders/paid",
        "XUtI837AzD2whxTd74ic3m+qCWZYXzQV2kd7l5A+9f4=",
        "wh-paid-1",
    )
    .await;
    assert_eq!(
        ingested(&reply),
        [
            ("shopify:wh-paid-1".to_owned(), false),
            ("shopify:wh-paid-1:order_status_changed".to_owned(), false)
        ]
    );
    let changed = processed_event(&server, &key, "shopify:wh-paid-1:order_status_changed").await;
    assert_eq!(changed["trigger"], "order_status_changed");
    assert_eq!(changed["data"]["status"], "paid");
    assert_eq!(changed["previous"]["status"], "pending");
    let paid = processed_event(&server, &key, "shopify:wh-paid-1").await;
    assert_eq!(paid["trigger"], "order_paid");
    assert_eq!(paid["previous"]["status"], "pending");

    // orders/cancelled: another order, first seen cancelled.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-cancelled.json",
        "orders/cancelled",
        "KQzuDd2Opbz1gjQIhonrE0gfmIjkq7TGxbg6G63+OrU=",
        "wh-cancel-1",
    )
    .await;
    assert_eq!(ingested(&reply).len(), 2);
    let cancelled = processed_event(&server, &key, "shopify:wh-cancel-1").await;
    assert_eq!(cancelled["trigger"], "order_cancelled");
    assert_eq!(cancelled["data"]["status"], "cancelled");

    // products/update: in stock, then the transition to out of stock, then out of stock again.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/products-update.json",
        "products/update",
        "BN9LEFWjsH7VXsOCrJznYeClfTWbAi8mtc1LWkXrqOg=",
        "wh-prod-1",
    )
    .await;
    assert_eq!(ingested(&reply), [("shopify:wh-prod-1".to_owned(), false)]);
    let oos_sig = "XKu0cR9GkzPXR59Xul6GQUpg+SoH1Fv0TW5/Ewpx86A=";
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/products-update-out-of-stock.json",
        "products/update",
        oos_sig,
        "wh-oos-1",
    )
    .await;
    assert_eq!(
        ingested(&reply),
        [
            ("shopify:wh-oos-1".to_owned(), false),
            ("shopify:wh-oos-1:product_out_of_stock".to_owned(), false)
        ]
    );
    let oos = processed_event(&server, &key, "shopify:wh-oos-1:product_out_of_stock").await;
    assert_eq!(oos["entityType"], "Product");
    assert_eq!(oos["data"]["inStock"], false);
    assert_eq!(oos["previous"]["inStock"], true);
    let delivered = receiver.wait_for(2, WAIT).await;
    assert_eq!(delivered[1].body["type"], "product_out_of_stock");
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/products-update-out-of-stock.json",
        "products/update",
        oos_sig,
        "wh-oos-2",
    )
    .await;
    // The same body under a fresh delivery id is a replay (CONTRACT §7): nothing ingested, the
    // first delivery's events named as duplicates.
    assert_eq!(reply.body["data"]["duplicate"], true, "{:?}", reply.body);
    assert_eq!(
        ingested(&reply),
        [
            ("shopify:wh-oos-1".to_owned(), true),
            ("shopify:wh-oos-1:product_out_of_stock".to_owned(), true)
        ]
    );

    // fulfillments/create and customers/create.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/fulfillments-create.json",
        "fulfillments/create",
        "xh2toYEhNpp5AGuMcd/cGWOSED+yP5fDxMBD59fC0co=",
        "wh-ful-1",
    )
    .await;
    assert_eq!(ingested(&reply).len(), 1);
    let shipment = processed_event(&server, &key, "shopify:wh-ful-1").await;
    assert_eq!(shipment["trigger"], "shipment_created");
    assert_eq!(shipment["entityId"], "5712345678940");
    assert_eq!(shipment["data"]["orderId"], "6203417390172");
    assert_eq!(shipment["data"]["trackingNumber"], "1Z999AA10123456784");
    assert_eq!(shipment["data"]["status"], "success");
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/customers-create.json",
        "customers/create",
        "1Kqirw+/VHx4mdzoBGpqMKZmQH35otsPaoz6tdlmlSo=",
        "wh-cust-1",
    )
    .await;
    assert_eq!(ingested(&reply).len(), 1);
    let customer = processed_event(&server, &key, "shopify:wh-cust-1").await;
    assert_eq!(customer["trigger"], "customer_created");
    assert_eq!(customer["data"]["email"], "dana.placeholder@example.com");

    // A topic without a trigger is acknowledged (the fixtures' 8-byte test vector).
    let reply = deliver(
        &server,
        &guid,
        &[
            ("x-shopify-topic", "app/uninstalled"),
            (
                "x-shopify-hmac-sha256",
                "rjGqK0tMmcZtFCHNYEECXehU26vu6CNKVp8abLnA8JI=",
            ),
        ],
        b"{\"id\":1}".to_vec(),
    )
    .await;
    assert!(ingested(&reply).is_empty());

    // The out-of-stock repeat started nothing: no event of its own, still one delivery per
    // workflow.
    server
        .get(&key, "/api/events/shopify:wh-oos-2")
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(receiver.count(), 2);

    // Disabled: 409. Removed: 404, and gone from the list.
    let reply = server
        .get(&key, &format!("/api/integrations/provider/disable/{guid}"))
        .await;
    assert_eq!(reply.assert_ok(200)["status"], "disabled");
    let reply = server
        .post(
            &key,
            &format!("/api/integrations/provider/disable/{guid}"),
            &json!({}),
        )
        .await;
    assert_eq!(reply.assert_ok(200)["guid"], guid.as_str());
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-late",
    )
    .await;
    reply.assert_error(409, "CONFLICT");
    let listed = server.get(&key, "/api/integrations").await;
    assert_eq!(listed.assert_ok(200)[0]["status"], "disabled");
    let remove = format!("/api/integrations/providers/ecommerce/remove/{guid}");
    let reply = send(server.http.delete(server.url(&remove)).bearer_auth(&key)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({"success": true}));
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-later",
    )
    .await;
    reply.assert_error(404, "NOT_FOUND");
    send(server.http.delete(server.url(&remove)).bearer_auth(&key))
        .await
        .assert_error(404, "NOT_FOUND");
    let listed = server.get(&key, "/api/integrations").await;
    assert_eq!(listed.assert_ok(200).as_array().map(Vec::len), Some(0));

    server.stop().await;
}

async fn woocommerce_webhooks_become_events(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;
    let receiver = Receiver::start().await;
    let reply = configure(&server, &key, woocommerce_body(&store)).await;
    let guid = reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    webhook_workflow(
        &server,
        &key,
        "Order",
        "order_status_changed",
        &receiver.url,
    )
    .await;

    // The activation ping: unsigned, form-encoded, answered 200 with nothing ingested.
    let reply = send(
        server
            .http
            .post(server.url(&format!("/api/integrations/inbound/{guid}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("webhook_id=16"),
    )
    .await;
    assert!(ingested(&reply).is_empty());
    // Anything else unsigned is refused.
    let reply = deliver(
        &server,
        &guid,
        &[("x-wc-webhook-topic", "order.created")],
        fixture("woocommerce/order-created.json"),
    )
    .await;
    reply.assert_error(401, "UNAUTHORIZED");

    // order.created exactly as WooCommerce puts it on the wire (PHP escapes), signed over those bytes.
    let wire_sig = "Pr2gic2N2HAF/IjqGaixilKIgKf4UBHw1SAPEdwpKiQ=";
    let reply = wc_delivery(
        &server,
        &guid,
        "woocommerce/wire/order-created.wire.json",
        "order.created",
        wire_sig,
        "4a8d4394fa7b1c883747ad86babf922b",
    )
    .await;
    let id = "woocommerce:16:4a8d4394fa7b1c883747ad86babf922b:10452";
    assert_eq!(ingested(&reply), [(id.to_owned(), false)]);
    let created = processed_event(&server, &key, id).await;
    assert_eq!(created["trigger"], "order_created");
    assert_eq!(created["entityId"], "10452");
    assert_eq!(created["data"]["status"], "on-hold");
    assert_eq!(created["data"]["total"], 87.0);
    assert_eq!(created["data"]["currency"], "EUR");
    assert_eq!(
        created["data"]["customer"]["email"],
        "dana.placeholder@example.com"
    );
    assert_eq!(created["data"]["paidAt"], Value::Null);
    // The same document re-serialized no longer matches the signature.
    let reparsed: Value =
        serde_json::from_slice(&fixture("woocommerce/wire/order-created.wire.json")).expect("json");
    let reply = deliver(
        &server,
        &guid,
        &[
            ("x-wc-webhook-topic", "order.created"),
            ("x-wc-webhook-signature", wire_sig),
        ],
        serde_json::to_vec(&reparsed).expect("json"),
    )
    .await;
    reply.assert_error(401, "UNAUTHORIZED");

    // order.updated with a new status and a payment: order_status_changed and order_paid.
    let updated_sig = "w52iZ3tiOTGafYkkmZmgCvQxTixb2NPnVA6a0RERZsw=";
    let reply = wc_delivery(
        &server,
        &guid,
        "woocommerce/order-updated.json",
        "order.updated",
        updated_sig,
        "d1",
    )
    .await;
    assert_eq!(
        ingested(&reply),
        [
            ("woocommerce:16:d1:10452".to_owned(), false),
            ("woocommerce:16:d1:10452:order_paid".to_owned(), false)
        ]
    );
    let changed = processed_event(&server, &key, "woocommerce:16:d1:10452").await;
    assert_eq!(changed["trigger"], "order_status_changed");
    assert_eq!(changed["data"]["status"], "processing");
    assert_eq!(changed["previous"]["status"], "on-hold");
    let paid = processed_event(&server, &key, "woocommerce:16:d1:10452:order_paid").await;
    assert_eq!(paid["trigger"], "order_paid");
    assert_eq!(paid["data"]["paidAt"], "2026-05-15T07:02:33Z");
    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(delivered[0].body["type"], "order_status_changed");
    // The same body again, under a fresh delivery id or the first one: a replay (CONTRACT §7),
    // answered 200 with the first delivery's events as duplicates; nothing ingested.
    let events = event_count(&server, &key).await;
    for delivery in ["d2", "d1"] {
        let reply = wc_delivery(
            &server,
            &guid,
            "woocommerce/order-updated.json",
            "order.updated",
            updated_sig,
            delivery,
        )
        .await;
        assert_eq!(reply.body["data"]["duplicate"], true, "{:?}", reply.body);
        assert!(ingested(&reply).iter().all(|(_, duplicate)| *duplicate));
    }
    assert_eq!(event_count(&server, &key).await, events);

    // Products: in stock, then out of stock (the transition), and the customer.
    let reply = wc_delivery(
        &server,
        &guid,
        "woocommerce/product-updated.json",
        "product.updated",
        "AOhTFAodGhJmZYapCrwf5sP3KjXLKBexkxZKVT9Nkgk=",
        "p1",
    )
    .await;
    assert_eq!(ingested(&reply).len(), 1);
    let reply = wc_delivery(
        &server,
        &guid,
        "woocommerce/product-updated-out-of-stock.json",
        "product.updated",
        "/zF35Jhg31Ww3466kmPvgK+QidJiy6ky51BSV9ak58Y=",
        "p2",
    )
    .await;
    let events = ingested(&reply);
    assert_eq!(events.len(), 2);
    let oos = processed_event(&server, &key, &events[1].0).await;
    assert_eq!(oos["trigger"], "product_out_of_stock");
    assert_eq!(oos["entityId"], "2205");
    assert_eq!(oos["data"]["stockStatus"], "outofstock");
    let reply = wc_delivery(
        &server,
        &guid,
        "woocommerce/customer-created.json",
        "customer.created",
        "70NbWkc99oXMREo/7ujK0Ai5ah9y9xbTFJEHTobS4t8=",
        "c1",
    )
    .await;
    let events = ingested(&reply);
    let customer = processed_event(&server, &key, &events[0].0).await;
    assert_eq!(customer["trigger"], "customer_created");
    assert_eq!(customer["entityId"], "57");
    assert_eq!(customer["data"]["email"], "dana.placeholder@example.com");

    processed_event(&server, &key, "woocommerce:16:d1:10452:order_paid").await;
    assert_eq!(receiver.count(), 1, "only the status change had a workflow");
    server.stop().await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn signed(
    server: &TestServer,
    guid: &str,
    secret: &str,
    id: &str,
    at: i64,
    body: &[u8],
) -> Reply {
    let signature =
        switchyard_actions::sign::standard_signature(secret, id, at, body).expect("sign");
    let at = at.to_string();
    deliver(
        server,
        guid,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &at),
            ("webhook-signature", &signature),
        ],
        body.to_vec(),
    )
    .await
}

async fn custom_webhooks_are_standard_webhooks(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let reply = configure(
        &server,
        &key,
        json!({"providerId": "custom", "settings": {"syncProducts": false}}),
    )
    .await;
    let data = reply.assert_ok(201);
    let guid = data["guid"].as_str().expect("guid").to_owned();
    let secret = data["apiSecret"].as_str().expect("apiSecret").to_owned();
    webhook_workflow(&server, &key, "Order", "order_paid", &receiver.url).await;

    let body = serde_json::to_vec(&json!({
        "entityType": "Order", "trigger": "order_paid", "entityId": "ord_7",
        "data": {"status": "paid", "total": 42.5}, "previous": {"status": "pending"}
    }))
    .expect("json");
    let reply = signed(&server, &guid, &secret, "msg_1", now(), &body).await;
    assert_eq!(ingested(&reply), [("msg_1".to_owned(), false)]);
    let event = processed_event(&server, &key, "msg_1").await;
    assert_eq!(event["entityId"], "ord_7");
    assert_eq!(
        event["previous"]["status"], "pending",
        "the sender's previous is kept"
    );
    receiver.wait_for(1, WAIT).await;

    // Stale, wrongly signed, or unsigned: 401.
    signed(&server, &guid, &secret, "msg_2", now() - 600, &body)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    signed(&server, &guid, other, "msg_3", now(), &body)
        .await
        .assert_error(401, "UNAUTHORIZED");
    deliver(&server, &guid, &[("webhook-id", "msg_4")], body.clone())
        .await
        .assert_error(401, "UNAUTHORIZED");

    // A redelivery.
    let reply = signed(&server, &guid, &secret, "msg_1", now(), &body).await;
    assert_eq!(ingested(&reply), [("msg_1".to_owned(), true)]);

    // syncProducts off: product events are acknowledged and ignored.
    let product = serde_json::to_vec(&json!({
        "entityType": "Product", "trigger": "product_updated", "entityId": "p_1", "data": {}
    }))
    .expect("json");
    let reply = signed(&server, &guid, &secret, "msg_5", now(), &product).await;
    assert!(ingested(&reply).is_empty());

    // Signed but not an event: 400, never 500.
    for bad in [
        br#"{"entityType": "Order", "trigger": "no_such_trigger", "entityId": "x"}"#.to_vec(),
        br#"{"entityType": "Order", "trigger": "order_schedule", "entityId": "x"}"#.to_vec(),
        b"[1, 2".to_vec(),
    ] {
        signed(&server, &guid, &secret, "msg_bad", now(), &bad)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }

    // A merchant-chosen secret is taken and not echoed.
    let reply = configure(
        &server,
        &key,
        json!({"providerId": "custom", "credentials": {"apiSecret": other}}),
    )
    .await;
    assert!(reply.assert_ok(201).get("apiSecret").is_none());

    assert_eq!(receiver.count(), 1);
    server.stop().await;
}

async fn integrations_are_tenant_scoped(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key_a) = server.tenant("A").await;
    let (_, key_b) = server.tenant("B").await;
    let reply = configure(&server, &key_a, json!({"providerId": "custom"})).await;
    let guid = reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();

    server
        .get(
            &key_b,
            &format!("/api/integrations/provider/disable/{guid}"),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    let remove = format!("/api/integrations/providers/ecommerce/remove/{guid}");
    send(server.http.delete(server.url(&remove)).bearer_auth(&key_b))
        .await
        .assert_error(404, "NOT_FOUND");
    let listed = server.get(&key_b, "/api/integrations").await;
    assert_eq!(listed.assert_ok(200).as_array().map(Vec::len), Some(0));
    let listed = server.get(&key_a, "/api/integrations").await;
    assert_eq!(listed.assert_ok(200)[0]["status"], "active");

    // Unknown ids, malformed ids, missing keys.
    let unknown = uuid::Uuid::new_v4();
    server
        .get(
            &key_a,
            &format!("/api/integrations/provider/disable/{unknown}"),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key_a, "/api/integrations/provider/disable/not-a-uuid")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    deliver(&server, &unknown.to_string(), &[], b"{}".to_vec())
        .await
        .assert_error(404, "NOT_FOUND");
    deliver(&server, &guid, &[], vec![b' '; 1024 * 1024 + 1])
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    deliver(&server, "not-a-uuid", &[], b"{}".to_vec())
        .await
        .assert_error(404, "NOT_FOUND");
    send(server.http.get(server.url("/api/integrations")))
        .await
        .assert_error(401, "UNAUTHORIZED");
    send(
        server
            .http
            .get(server.url("/api/integrations/providers"))
            .bearer_auth("sk_nope"),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    let openapi = send(server.http.get(server.url("/api/openapi.json"))).await;
    let paths = &openapi.body["paths"];
    for path in [
        "/api/integrations",
        "/api/integrations/providers",
        "/api/integrations/provider/configure",
        "/api/integrations/provider/disable/{id}",
        "/api/integrations/providers/ecommerce/remove/{id}",
        "/api/integrations/inbound/{integrationGuid}",
    ] {
        assert!(
            paths.get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    server.stop().await;
}

/// A server on an existing database (the rotation test restarts on the same one).
struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn run(settings: switchyard::Settings) -> Running {
    let app = App::build(settings).await.expect("server builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let roles = Roles {
        api: true,
        workers: true,
        scheduler: true,
    };
    let task = tokio::spawn(app.serve(Some(listener), roles, async move {
        let _ = stopped.await;
    }));
    Running { base, stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(20), self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("server did not stop cleanly: {other:?}"),
        }
    }
}

async fn rotate_master_key_reencrypts_every_secret(db: Db) {
    const NEW_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let test_db = TestDb::new(db).await.expect("test database");
    let settings = switchyard_tests::settings(&test_db, &[]);
    let http = reqwest::Client::new();
    let store = fake_store().await;
    let receiver = Receiver::start().await;

    let server = run(settings.clone()).await;
    let answer = switchyard::cli::tenant(
        &settings,
        switchyard::config::TenantCommand::Create {
            name: "Acme".to_owned(),
        },
    )
    .await
    .expect("tenant");
    let key = answer["apiKey"].as_str().expect("apiKey").to_owned();
    let reply = send(
        http.post(format!(
            "{}/api/integrations/provider/configure",
            server.base
        ))
        .bearer_auth(&key)
        .json(&woocommerce_body(&store)),
    )
    .await;
    let guid = reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    let reply = send(
        http.post(format!("{}/api/workflows/configure", server.base))
            .bearer_auth(&key)
            .json(&json!({
                "name": "n", "entityType": "Order", "triggerId": "order_created",
                "action": {"type": "webhook", "url": receiver.url}
            })),
    )
    .await;
    reply.assert_ok(201);
    server.stop().await;

    // The key the database was written under, to show it no longer opens it.
    let old_key = match db {
        Db::Sqlite => {
            std::fs::read_to_string(test_db.sqlite_dir().expect("dir").join("master.key"))
                .expect("generated key file")
        }
        Db::Postgres => switchyard_tests::TEST_MASTER_KEY.to_owned(),
    };
    let answer = switchyard::cli::rotate_master_key(&settings, NEW_KEY)
        .await
        .expect("rotation");
    assert_eq!(answer["rotated"], 2, "{answer}");
    assert_eq!(answer["integrations"], 1);
    assert_eq!(answer["workflowSecrets"], 1);

    let mut old_settings = settings.clone();
    old_settings.master_key = Some(old_key.trim().to_owned());
    assert!(
        App::build(old_settings).await.is_err(),
        "the old key must be refused"
    );
    let mut new_settings = settings.clone();
    if db == Db::Postgres {
        new_settings.master_key = Some(NEW_KEY.to_owned());
    } else {
        let file = std::fs::read_to_string(test_db.sqlite_dir().expect("dir").join("master.key"))
            .expect("key file");
        assert_eq!(
            file.trim(),
            NEW_KEY,
            "the generated key file holds the new key"
        );
    }

    // Under the new key the credentials still check signatures and the webhook secret still signs.
    let server = run(new_settings).await;
    let reply = send(
        http.post(format!("{}/api/integrations/inbound/{guid}", server.base))
            .header("x-wc-webhook-topic", "order.created")
            .header(
                "x-wc-webhook-signature",
                "Pr2gic2N2HAF/IjqGaixilKIgKf4UBHw1SAPEdwpKiQ=",
            )
            .header("x-wc-webhook-id", "16")
            .header("x-wc-webhook-delivery-id", "r1")
            .body(fixture("woocommerce/wire/order-created.wire.json")),
    )
    .await;
    assert_eq!(
        reply.assert_ok(200)["events"].as_array().map(Vec::len),
        Some(1)
    );
    let delivered = receiver.wait_for(1, WAIT).await;
    assert!(delivered[0].header("webhook-signature").starts_with("v1,"));
    server.stop().await;
    test_db.cleanup().await;
}

/// A captured delivery replayed under a fresh `X-Shopify-Webhook-Id` (the signature covers only
/// the body) is recognised by its topic and body: 200, `duplicate: true`, nothing started. The
/// same body under another topic is another delivery.
async fn replayed_bodies_with_fresh_delivery_ids_start_nothing(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;
    let receiver = Receiver::start().await;
    let guid = configure(&server, &key, shopify_body(&store))
        .await
        .assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    let workflow = webhook_workflow(&server, &key, "Order", "order_created", &receiver.url).await;
    let create_sig = "32wsQXpa2Tnu+AdWZakEDEVYn14a79UDzLXtYnMvh1I=";
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-original",
    )
    .await;
    assert_eq!(reply.body["data"]["duplicate"], false, "{:?}", reply.body);
    assert_eq!(
        ingested(&reply),
        [("shopify:wh-original".to_owned(), false)]
    );
    processed_event(&server, &key, "shopify:wh-original").await;
    receiver.wait_for(1, WAIT).await;
    let events = event_count(&server, &key).await;

    for fresh in ["wh-replay-1", "wh-replay-2"] {
        let reply = shopify_delivery(
            &server,
            &guid,
            "shopify/orders-create.json",
            "orders/create",
            create_sig,
            fresh,
        )
        .await;
        assert_eq!(reply.body["data"]["duplicate"], true, "{:?}", reply.body);
        // The answer names the event the first delivery stored.
        assert_eq!(ingested(&reply), [("shopify:wh-original".to_owned(), true)]);
    }
    assert_eq!(event_count(&server, &key).await, events, "no event stored");
    let executions = server
        .get(&key, &format!("/api/executions?workflowId={workflow}"))
        .await;
    assert_eq!(executions.assert_ok(200).as_array().map(Vec::len), Some(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1, "the replay delivered nothing");

    // The digest covers the topic: the same signed body under another topic is not a replay
    // (orders/updated of an order already stored changes nothing, so no event, but no duplicate).
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/updated",
        create_sig,
        "wh-other-topic",
    )
    .await;
    assert_eq!(reply.body["data"]["duplicate"], false, "{:?}", reply.body);
    server.stop().await;
}

/// Store credentials travel with every call to the store: `http://` store URLs are refused unless
/// the operator allows private targets (as the other tests' servers do, for their local fakes).
async fn store_urls_must_be_https(db: Db) {
    let server = TestServer::start_with(db, &["--allow-private-targets=false"]).await;
    let (_, key) = server.tenant("Acme").await;
    for body in [
        shopify_body("http://shop.example.com"),
        woocommerce_body("http://shop.example.com/"),
    ] {
        let reply = configure(&server, &key, body).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            reply.body["error"]["details"]["field"],
            "credentials.storeUrl"
        );
        let message = reply.body["error"]["message"].as_str().expect("message");
        assert!(message.contains("https"), "{message}");
    }
    // A name that does not resolve and one that resolves privately get one and the same answer,
    // so configure errors cannot be used to probe internal DNS names.
    let unresolvable = configure(&server, &key, shopify_body("https://no-such-host.invalid")).await;
    unresolvable.assert_error(400, "CONFIGURATION_ERROR");
    let private = configure(&server, &key, shopify_body("https://localhost")).await;
    private.assert_error(400, "CONFIGURATION_ERROR");
    let text = |reply: &Reply, host: &str| {
        reply.body["error"]["message"]
            .as_str()
            .expect("message")
            .replace(host, "HOST")
    };
    assert_eq!(
        text(&unresolvable, "no-such-host.invalid"),
        text(&private, "localhost")
    );
    let list = server.get(&key, "/api/integrations").await;
    assert_eq!(list.assert_ok(200).as_array().map(Vec::len), Some(0));
    server.stop().await;
}

/// A disabled integration's store configured again: the same integration (guid, inbound URL) is
/// enabled again, once the credentials are verified again; a second store row never appears.
async fn configuring_a_disabled_store_again_enables_it(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;
    let receiver = Receiver::start().await;
    let first = configure(&server, &key, shopify_body(&store)).await;
    let first = first.assert_ok(201).clone();
    let guid = first["guid"].as_str().expect("guid").to_owned();
    webhook_workflow(&server, &key, "Order", "order_created", &receiver.url).await;
    let create_sig = "32wsQXpa2Tnu+AdWZakEDEVYn14a79UDzLXtYnMvh1I=";

    server
        .get(&key, &format!("/api/integrations/provider/disable/{guid}"))
        .await
        .assert_ok(200);
    let refused = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-while-disabled",
    )
    .await;
    refused.assert_error(409, "CONFLICT");

    // Credentials are verified again: rejected ones leave it disabled.
    let mut wrong = shopify_body(&store);
    wrong["credentials"]["apiKey"] = json!("shpat_revoked_token_0000");
    configure(&server, &key, wrong)
        .await
        .assert_error(400, "CONFIGURATION_ERROR");
    let listed = server.get(&key, "/api/integrations").await;
    assert_eq!(listed.assert_ok(200)[0]["status"], "disabled");

    // Good ones: the same integration, active, with the new settings.
    let mut body = shopify_body(&store);
    body["settings"]["syncProducts"] = json!(false);
    let again = configure(&server, &key, body).await;
    let again = again.assert_ok(200);
    assert_eq!(again["guid"], guid.as_str());
    assert_eq!(again["inboundUrl"], first["inboundUrl"]);
    assert_eq!(again["status"], "active");
    let listed = server.get(&key, "/api/integrations").await;
    let listed = listed.assert_ok(200).as_array().expect("list").clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["guid"], guid.as_str());
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["disabledAt"], Value::Null);
    assert_eq!(listed[0]["settings"]["syncProducts"], false);
    assert_eq!(listed[0]["apiKeyLast4"], "0001");

    // The store's webhooks, still pointing at the old URL, are taken again and start workflows.
    let reply = shopify_delivery(
        &server,
        &guid,
        "shopify/orders-create.json",
        "orders/create",
        create_sig,
        "wh-after-enable",
    )
    .await;
    assert_eq!(
        ingested(&reply),
        [("shopify:wh-after-enable".to_owned(), false)]
    );
    processed_event(&server, &key, "shopify:wh-after-enable").await;
    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(delivered[0].body["type"], "order_created");

    // It is active now: configuring it once more is the usual conflict.
    configure(&server, &key, shopify_body(&store))
        .await
        .assert_error(409, "CONFLICT");
    assert_not_at_rest(&server.db, &[SHOPIFY_TOKEN, SHOPIFY_SECRET]).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Stale deliveries (CONTRACT §8): stores deliver out of order; a delivery older than the version
// of its entity already stored changes nothing and starts nothing.

/// base64 HMAC-SHA256 of the body: how Shopify and WooCommerce both sign deliveries.
fn store_signature(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A fixture with some fields replaced, as the bytes a store would send.
fn variant(file: &str, fields: &[(&str, Value)]) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture(file)).expect("fixture json");
    for (name, value) in fields {
        body[*name] = value.clone();
    }
    serde_json::to_vec(&body).expect("json")
}

/// Which provider a stale-delivery test drives, and how it delivers an order version.
#[derive(Clone, Copy)]
enum Store {
    Shopify,
    WooCommerce,
}

impl Store {
    fn configure_body(self, url: &str) -> Value {
        match self {
            Store::Shopify => shopify_body(url),
            Store::WooCommerce => woocommerce_body(url),
        }
    }

    /// The order `id` at modification time `modified` (the store's own format) with `status`,
    /// as an order-created delivery; returns the answer's `data` and the event id.
    async fn deliver_order(
        self,
        server: &TestServer,
        guid: &str,
        delivery: &str,
        id: u64,
        modified: &str,
        status: &str,
    ) -> (Value, String) {
        let reply = match self {
            Store::Shopify => {
                let body = variant(
                    "shopify/orders-create.json",
                    &[
                        ("id", json!(id)),
                        ("updated_at", json!(modified)),
                        ("financial_status", json!(status)),
                    ],
                );
                let signature = store_signature(SHOPIFY_SECRET, &body);
                deliver(
                    server,
                    guid,
                    &[
                        ("x-shopify-topic", "orders/create"),
                        ("x-shopify-hmac-sha256", &signature),
                        ("x-shopify-shop-domain", "larkspur-goods-test.myshopify.com"),
                        ("x-shopify-webhook-id", delivery),
                        // The delivery's own time says nothing about the order's version.
                        ("x-shopify-triggered-at", "2026-05-14T14:21:08.412907Z"),
                    ],
                    body,
                )
                .await
            }
            Store::WooCommerce => {
                let body = variant(
                    "woocommerce/order-created.json",
                    &[
                        ("id", json!(id)),
                        ("date_modified_gmt", json!(modified)),
                        ("status", json!(status)),
                    ],
                );
                let signature = store_signature(WC_SECRET, &body);
                deliver(
                    server,
                    guid,
                    &[
                        ("x-wc-webhook-source", "https://fixture-store.example.com/"),
                        ("x-wc-webhook-topic", "order.created"),
                        ("x-wc-webhook-signature", &signature),
                        ("x-wc-webhook-id", "16"),
                        ("x-wc-webhook-delivery-id", delivery),
                    ],
                    body,
                )
                .await
            }
        };
        let data = reply.assert_ok(200).clone();
        let events = data["events"].as_array().expect("events");
        assert_eq!(events.len(), 1, "{data:?}");
        let event_id = events[0]["eventId"].as_str().expect("eventId").to_owned();
        (data, event_id)
    }

    /// Modification times of one order, oldest first, in the store's format (Shopify: with an
    /// offset; WooCommerce: UTC without one).
    fn times(self) -> [&'static str; 3] {
        match self {
            Store::Shopify => [
                "2026-05-15T09:02:33-04:00",
                "2026-05-15T09:02:34-04:00",
                "2026-05-15T15:10:00+02:00", // 13:10 UTC: the offsets count
            ],
            Store::WooCommerce => [
                "2026-05-15T07:02:33",
                "2026-05-15T07:02:34",
                "2026-05-15T13:00:00",
            ],
        }
    }
}

async fn stale_shopify_deliveries_change_and_start_nothing(db: Db) {
    stale_deliveries(db, Store::Shopify).await;
}

async fn stale_woocommerce_deliveries_change_and_start_nothing(db: Db) {
    stale_deliveries(db, Store::WooCommerce).await;
}

async fn stale_deliveries(db: Db, provider: Store) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let store = fake_store().await;
    let receiver = Receiver::start().await;
    let guid = configure(&server, &key, provider.configure_body(&store))
        .await
        .assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    let workflow = webhook_workflow(&server, &key, "Order", "order_created", &receiver.url).await;
    let [older, newer, newest] = provider.times();

    // The newer version arrives first: it runs.
    let (answer, first) = provider
        .deliver_order(&server, &guid, "d-newer", 7001, newer, "paid")
        .await;
    assert_eq!(answer["stale"], false, "{answer:?}");
    assert_eq!(answer["events"][0]["stale"], false, "{answer:?}");
    let event = processed_event(&server, &key, &first).await;
    assert_eq!(event["executions"].as_array().map(Vec::len), Some(1));
    receiver.wait_for(1, WAIT).await;

    // Then the older one: stored, but it starts nothing and says why.
    let (answer, second) = provider
        .deliver_order(&server, &guid, "d-older", 7001, older, "pending")
        .await;
    assert_eq!(answer["stale"], true, "{answer:?}");
    assert_eq!(answer["duplicate"], false, "{answer:?}");
    assert_eq!(answer["events"][0]["stale"], true, "{answer:?}");
    let event = processed_event(&server, &key, &second).await;
    assert_eq!(event["outcome"]["reason"], "stale", "{event:?}");
    assert_eq!(event["outcome"]["matched"], json!([]), "{event:?}");
    let refused = event["outcome"]["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 1, "{event:?}");
    assert_eq!(refused[0]["workflowId"], workflow.as_str());
    assert_eq!(refused[0]["reason"], "stale");
    assert_eq!(event["executions"], json!([]), "{event:?}");
    let executions = server
        .get(&key, &format!("/api/executions?workflowId={workflow}"))
        .await;
    assert_eq!(executions.assert_ok(200).as_array().map(Vec::len), Some(1));

    // The entity still holds the newer version: the next delivery's `previous` is it.
    let (answer, third) = provider
        .deliver_order(&server, &guid, "d-newest", 7001, newest, "refunded")
        .await;
    assert_eq!(answer["stale"], false, "{answer:?}");
    let event = processed_event(&server, &key, &third).await;
    assert_eq!(event["previous"]["status"], "paid", "{event:?}");
    assert_eq!(event["executions"].as_array().map(Vec::len), Some(1));
    receiver.wait_for(2, WAIT).await;

    // The same versions the other way round, for another order: both run.
    let (answer, fourth) = provider
        .deliver_order(&server, &guid, "d-2-older", 7002, older, "pending")
        .await;
    assert_eq!(answer["stale"], false, "{answer:?}");
    let (answer, fifth) = provider
        .deliver_order(&server, &guid, "d-2-newer", 7002, newer, "paid")
        .await;
    assert_eq!(answer["stale"], false, "{answer:?}");
    for id in [&fourth, &fifth] {
        let event = processed_event(&server, &key, id).await;
        assert_eq!(event["executions"].as_array().map(Vec::len), Some(1));
        assert!(event["outcome"].get("reason").is_none(), "{event:?}");
    }
    let event = processed_event(&server, &key, &fifth).await;
    assert_eq!(event["previous"]["status"], "pending", "{event:?}");
    receiver.wait_for(4, WAIT).await;

    // An event posted through the API has no source time: never stale, whatever is stored.
    let reply = server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_created", "entityId": "7001",
                    "eventId": "api-1", "data": {"status": "api"}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let event = processed_event(&server, &key, "api-1").await;
    assert_eq!(event["executions"].as_array().map(Vec::len), Some(1));
    // … and it leaves the stored source time as it was: the older version is still stale.
    let (answer, sixth) = provider
        .deliver_order(&server, &guid, "d-older-again", 7001, newer, "pending")
        .await;
    assert_eq!(answer["stale"], true, "{answer:?}");
    let event = processed_event(&server, &key, &sixth).await;
    assert_eq!(event["previous"]["status"], "api", "{event:?}");
    receiver.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 5, "stale deliveries delivered nothing");
    server.stop().await;
}
