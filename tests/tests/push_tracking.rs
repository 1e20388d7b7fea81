//! `settings.pushTracking` (CONTRACT §8) through the public API, on SQLite and on PostgreSQL +
//! Redis, against fake Shopify and WooCommerce stores that record every call: the managed workflow
//! an integration installs (read-only through the API, switched with its integration, deleted
//! with it), Shopify's fulfillment `update_tracking` (a 503 retried), WooCommerce's order note
//! written once even when the store's first answer is lost, refusals that pause, and shipments of
//! other stores or without a tracking number left alone.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_tests::{Db, TestServer, WAIT, eventually, on_both_databases};

on_both_databases! {
    shopify_tracking_reaches_the_fulfillment => shopify_tracking;
    woocommerce_tracking_is_one_order_note => woocommerce_tracking;
    the_managed_workflow_follows_its_integration => follows_its_integration;
}

const SHOPIFY_TOKEN: &str = "shpat_fixture_access_token_0001";
const SHOPIFY_SECRET: &str = "shpss_fixture_not_a_real_secret_0001";
const WC_KEY: &str = "ck_fixture_consumer_key_0001";
const WC_SECRET: &str = "wc-fixture-secret-not-real";
/// `Basic base64("ck_fixture_consumer_key_0001:wc-fixture-secret-not-real")`.
const WC_AUTH: &str =
    "Basic Y2tfZml4dHVyZV9jb25zdW1lcl9rZXlfMDAwMTp3Yy1maXh0dXJlLXNlY3JldC1ub3QtcmVhbA==";

/// One call a fake store received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// What the fake store recorded and how it is told to misbehave.
#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    /// WooCommerce notes per order, as stored.
    notes: Arc<Mutex<Vec<(String, String)>>>,
    /// Answers to give (in order) before behaving: 503 for Shopify; for WooCommerce, a note is
    /// stored and then 502 answered (the answer lost on the way back).
    failures: Arc<Mutex<Vec<u16>>>,
}

impl Fake {
    fn record(&self, method: &str, path: String, headers: HeaderMap, body: Value) {
        self.calls.lock().expect("calls").push(Call {
            method: method.to_owned(),
            path,
            headers,
            body,
        });
    }

    fn calls_to(&self, fragment: &str) -> Vec<Call> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|c| c.path.contains(fragment))
            .cloned()
            .collect()
    }

    fn next_failure(&self) -> Option<u16> {
        let mut failures = self.failures.lock().expect("failures");
        (!failures.is_empty()).then(|| failures.remove(0))
    }
}

async fn shop_json(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
    if header(&headers, "x-shopify-access-token") == Some(SHOPIFY_TOKEN) {
        (
            StatusCode::OK,
            axum::Json(json!({"shop": {"id": 548380009_u64, "name": "Larkspur Goods (test)"}})),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"errors": "[API] Invalid API key or access token"})),
        )
    }
}

async fn system_status(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
    if header(&headers, "authorization") == Some(WC_AUTH) {
        (
            StatusCode::OK,
            axum::Json(json!({"environment": {"version": "10.2.1"}})),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "woocommerce_rest_authentication_error"})),
        )
    }
}

/// `POST /admin/api/2024-10/fulfillments/{id}/update_tracking.json` as Shopify answers it.
async fn update_tracking(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    fake.record(
        "POST",
        format!("/admin/api/2024-10/fulfillments/{id}/update_tracking.json"),
        headers.clone(),
        body.clone(),
    );
    if header(&headers, "x-shopify-access-token") != Some(SHOPIFY_TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"errors": "invalid token"})),
        );
    }
    if let Some(status) = fake.next_failure() {
        let status = StatusCode::from_u16(status).expect("status");
        return (status, axum::Json(json!({"errors": "try again"})));
    }
    if id == "404404" {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errors": "Not Found"})),
        );
    }
    let info = &body["fulfillment"]["tracking_info"];
    (
        StatusCode::OK,
        axum::Json(json!({"fulfillment": {
            "id": id.parse::<u64>().unwrap_or_default(),
            "tracking_number": info["number"], "tracking_company": info["company"],
            "tracking_url": info["url"], "status": "success"
        }})),
    )
}

/// `GET|POST /wp-json/wc/v3/orders/{id}/notes` as WooCommerce answers them.
async fn order_notes(
    State(fake): State<Fake>,
    Path(order): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.record(
        method.as_str(),
        format!("/wp-json/wc/v3/orders/{order}/notes"),
        headers.clone(),
        body.clone(),
    );
    if header(&headers, "authorization") != Some(WC_AUTH) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "woocommerce_rest_authentication_error"})),
        );
    }
    if method == axum::http::Method::GET {
        let notes: Vec<Value> = fake
            .notes
            .lock()
            .expect("notes")
            .iter()
            .filter(|(o, _)| *o == order)
            .enumerate()
            .map(|(i, (_, note))| json!({"id": i + 1, "note": note, "customer_note": false}))
            .collect();
        return (StatusCode::OK, axum::Json(Value::Array(notes)));
    }
    let note = body["note"].as_str().unwrap_or_default().to_owned();
    fake.notes
        .lock()
        .expect("notes")
        .push((order.clone(), note.clone()));
    if let Some(status) = fake.next_failure() {
        let status = StatusCode::from_u16(status).expect("status");
        return (status, axum::Json(json!({"message": "Bad Gateway"})));
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": 281, "note": note, "customer_note": false})),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Starts a fake store on 127.0.0.1:0; returns it and its base URL.
async fn fake_store() -> (Fake, String) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/admin/api/2024-10/shop.json", get(shop_json))
        .route(
            "/admin/api/2024-10/fulfillments/{id}/update_tracking.json",
            post(update_tracking),
        )
        .route("/wp-json/wc/v3/system_status", get(system_status))
        .route(
            "/wp-json/wc/v3/orders/{order}/notes",
            get(order_notes).post(order_notes),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake store");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, format!("http://{addr}"))
}

fn shopify_body(store: &str, push_tracking: bool) -> Value {
    json!({
        "providerId": "shopify", "providerType": "ecommerce",
        "credentials": {"apiKey": SHOPIFY_TOKEN, "apiSecret": SHOPIFY_SECRET, "storeUrl": store},
        "settings": {"pushTracking": push_tracking}
    })
}

fn woocommerce_body(store: &str) -> Value {
    json!({
        "providerId": "woocommerce", "providerType": "ecommerce",
        "credentials": {"apiKey": WC_KEY, "apiSecret": WC_SECRET, "storeUrl": store},
        "settings": {"pushTracking": true}
    })
}

async fn configure(server: &TestServer, key: &str, body: Value, status: u16) -> String {
    let reply = server
        .post(key, "/api/integrations/provider/configure", &body)
        .await;
    reply.assert_ok(status)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

/// The tenant's Shipment workflows, managed ones included.
async fn managed(server: &TestServer, key: &str) -> Vec<Value> {
    server
        .get(key, "/api/workflows/Shipment/configured?managed=true")
        .await
        .assert_ok(200)
        .as_array()
        .expect("list")
        .iter()
        .filter(|w| w["isManaged"] == true)
        .cloned()
        .collect()
}

/// Posts a `shipment_shipped` event (a carrier or ERP reporting the shipment).
async fn shipped(server: &TestServer, key: &str, event_id: &str, entity_id: &str, data: Value) {
    server
        .post(
            key,
            "/api/events",
            &json!({"entityType": "Shipment", "trigger": "shipment_shipped",
                    "entityId": entity_id, "eventId": event_id, "data": data}),
        )
        .await
        .assert_ok(202);
}

/// The executions the event started (empty when it matched nothing), once it was processed.
async fn executions_of(server: &TestServer, key: &str, event_id: &str) -> Vec<String> {
    let event = eventually(server, key, &format!("/api/events/{event_id}"), WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    event["executions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn shopify_tracking(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Larkspur").await;
    let (fake, store) = fake_store().await;
    let guid = configure(&server, &key, shopify_body(&store, true), 201).await;

    // One managed workflow, listed only with ?managed=true, naming its integration.
    let workflows = managed(&server, &key).await;
    assert_eq!(workflows.len(), 1, "{workflows:?}");
    let workflow = &workflows[0];
    assert_eq!(workflow["integrationGuid"], guid.as_str());
    assert_eq!(workflow["trigger"], "shipment_shipped");
    assert_eq!(workflow["isActive"], true);
    assert_eq!(workflow["actions"][0]["type"], "push_tracking");
    let plain = server.get(&key, "/api/workflows/Shipment/configured").await;
    assert_eq!(plain.assert_ok(200).as_array().map(Vec::len), Some(0));

    // Read-only through the API: change, toggle and delete are conflicts, and change nothing.
    let id = workflow["guid"].as_str().expect("guid").to_owned();
    let changed = json!({"guid": id, "name": "mine now", "entityType": "Shipment",
        "triggerId": "shipment_shipped", "action": {"type": "webhook", "url": "https://example.com/x"}});
    server
        .post(&key, "/api/workflows/configure", &changed)
        .await
        .assert_error(409, "CONFLICT");
    server
        .get(&key, &format!("/api/workflows/configured/{id}/toggle"))
        .await
        .assert_error(409, "CONFLICT");
    let deleted = server
        .http
        .delete(server.url(&format!("/api/workflows/configured/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 409);
    let after = &managed(&server, &key).await[0];
    assert_eq!(after["version"], workflow["version"]);
    assert_eq!(after["isActive"], true);

    // A shipment of this store: the store's first answer is a 503, the retry lands.
    fake.failures.lock().expect("failures").push(503);
    shipped(
        &server,
        &key,
        "ship-1",
        "4711",
        json!({"status": "in_transit", "orderId": "5213", "trackingNumber": "1Z999AA10123456784",
               "trackingCompany": "UPS", "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
               "integrationGuid": guid}),
    )
    .await;
    let runs = executions_of(&server, &key, "ship-1").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let done = server.execution_in(&key, &runs[0], "succeeded").await;
    let attempts = done["steps"][0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    let calls = fake.calls_to("/fulfillments/4711/update_tracking.json");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let call = &calls[1];
    assert_eq!(call.method, "POST");
    assert_eq!(
        header(&call.headers, "x-shopify-access-token"),
        Some(SHOPIFY_TOKEN)
    );
    assert_eq!(
        call.body,
        json!({"fulfillment": {"notify_customer": false, "tracking_info": {
            "number": "1Z999AA10123456784", "company": "UPS",
            "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}}})
    );

    // Another store's shipment, and one without a tracking number: nothing runs.
    shipped(
        &server,
        &key,
        "ship-other",
        "4712",
        json!({"trackingNumber": "1Z2", "integrationGuid": "0193a9e4-0000-7000-8000-000000000000"}),
    )
    .await;
    shipped(
        &server,
        &key,
        "ship-untracked",
        "4713",
        json!({"integrationGuid": guid}),
    )
    .await;
    assert!(executions_of(&server, &key, "ship-other").await.is_empty());
    assert!(
        executions_of(&server, &key, "ship-untracked")
            .await
            .is_empty()
    );

    // A fulfillment the store does not know: refused for good, the execution pauses.
    shipped(
        &server,
        &key,
        "ship-unknown",
        "404404",
        json!({"trackingNumber": "1Z3", "integrationGuid": guid}),
    )
    .await;
    let runs = executions_of(&server, &key, "ship-unknown").await;
    let paused = server.execution_in(&key, &runs[0], "paused").await;
    let error = paused["steps"][0]["attempts"][0]["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(error.contains("404"), "{error}");
    assert_eq!(fake.calls_to("update_tracking").len(), 3);
    server.stop().await;
}

async fn woocommerce_tracking(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Fixture Store").await;
    let (fake, store) = fake_store().await;
    let guid = configure(&server, &key, woocommerce_body(&store), 201).await;
    assert_eq!(managed(&server, &key).await.len(), 1);

    // The store keeps the note but its answer is lost (502): the retry finds the note and does
    // not write a second one.
    fake.failures.lock().expect("failures").push(502);
    shipped(
        &server,
        &key,
        "wc-ship-1",
        "shp-5213-1",
        json!({"orderId": 5213, "trackingNumber": "1Z999AA10123456784", "trackingCompany": "UPS",
               "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
               "integrationGuid": guid}),
    )
    .await;
    let runs = executions_of(&server, &key, "wc-ship-1").await;
    assert_eq!(runs.len(), 1);
    let done = server.execution_in(&key, &runs[0], "succeeded").await;
    let notes = fake.notes.lock().expect("notes").clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (order, note) = &notes[0];
    assert_eq!(order, "5213");
    for part in [
        "UPS",
        "1Z999AA10123456784",
        "https://www.ups.com/track?tracknum=1Z999AA10123456784",
    ] {
        assert!(note.contains(part), "{note}");
    }
    let posts: Vec<Call> = fake
        .calls_to("/orders/5213/notes")
        .into_iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(header(&posts[0].headers, "authorization"), Some(WC_AUTH));
    assert_eq!(posts[0].body["customer_note"], false);
    let attempts = done["steps"][0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");

    // A shipment that does not say its order: refused for good.
    shipped(
        &server,
        &key,
        "wc-ship-2",
        "shp-x",
        json!({"trackingNumber": "1Z4", "integrationGuid": guid}),
    )
    .await;
    let runs = executions_of(&server, &key, "wc-ship-2").await;
    let paused = server.execution_in(&key, &runs[0], "paused").await;
    let error = paused["steps"][0]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("orderId"), "{paused}");
    server.stop().await;
}

async fn follows_its_integration(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Larkspur").await;
    let (fake, store) = fake_store().await;
    let shipment = |guid: &str| json!({"trackingNumber": "1Z5", "trackingCompany": "DHL", "integrationGuid": guid});

    // Without pushTracking (its default is off): no managed workflow.
    let mut body = shopify_body(&store, false);
    body["settings"] = json!({});
    let guid = configure(&server, &key, body, 201).await;
    assert!(managed(&server, &key).await.is_empty());

    // Disabled, then configured again with pushTracking: installed, on.
    server
        .get(&key, &format!("/api/integrations/provider/disable/{guid}"))
        .await
        .assert_ok(200);
    assert_eq!(
        configure(&server, &key, shopify_body(&store, true), 200).await,
        guid
    );
    let installed = managed(&server, &key).await;
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0]["isActive"], true);

    // Disabling the integration switches the workflow off: a shipment then starts nothing.
    server
        .get(&key, &format!("/api/integrations/provider/disable/{guid}"))
        .await
        .assert_ok(200);
    let off = managed(&server, &key).await;
    assert_eq!(off[0]["isActive"], false);
    assert_eq!(off[0]["guid"], installed[0]["guid"]);
    shipped(&server, &key, "while-off", "5001", shipment(&guid)).await;
    assert!(executions_of(&server, &key, "while-off").await.is_empty());

    // Enabled again: on again, and shipments reach the store.
    assert_eq!(
        configure(&server, &key, shopify_body(&store, true), 200).await,
        guid
    );
    let on = managed(&server, &key).await;
    assert_eq!(on.len(), 1);
    assert_eq!(on[0]["guid"], installed[0]["guid"]);
    assert_eq!(on[0]["isActive"], true);
    shipped(&server, &key, "while-on", "5002", shipment(&guid)).await;
    let runs = executions_of(&server, &key, "while-on").await;
    server.execution_in(&key, &runs[0], "succeeded").await;
    assert_eq!(
        fake.calls_to("/fulfillments/5002/update_tracking.json")
            .len(),
        1
    );
    assert!(fake.calls_to("/fulfillments/5001/").is_empty());

    // Removing the integration deletes its workflow; a later shipment starts nothing.
    let removed = server
        .http
        .delete(server.url(&format!(
            "/api/integrations/providers/ecommerce/remove/{guid}"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status().as_u16(), 200);
    assert!(managed(&server, &key).await.is_empty());
    shipped(&server, &key, "after-remove", "5003", shipment(&guid)).await;
    assert!(
        executions_of(&server, &key, "after-remove")
            .await
            .is_empty()
    );

    // Another tenant cannot see, change or remove this tenant's managed workflows.
    let guid = configure(&server, &key, shopify_body(&store, true), 201).await;
    let (_, other) = server.tenant("Other").await;
    assert!(managed(&server, &other).await.is_empty());
    let id = managed(&server, &key).await[0]["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    server
        .get(&other, &format!("/api/workflows/configured/{id}/toggle"))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(
        managed(&server, &key).await[0]["integrationGuid"],
        guid.as_str()
    );
    server.stop().await;
}
