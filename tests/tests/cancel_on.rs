//! `cancelOn` (CONTRACT §8) through the public API, on SQLite (embedded queue) and on PostgreSQL
//! with Redis: an event on a listed trigger cancels the workflow's queued and waiting executions
//! whose key equals the event's — with a key template (the abandoned cart), with the default
//! entity key, from an event a step emitted, never across tenants; and bad `cancelOn` bodies are
//! refused.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::receiver::Receiver;
use switchyard_tests::{Db, TestServer, WAIT, on_both_databases, send};

on_both_databases! {
    abandoned_cart_is_cancelled_by_the_order_for_the_same_email => abandoned_cart;
    the_default_key_is_the_entity => default_key_is_the_entity;
    an_event_a_step_emits_cancels_too => emitted_event_cancels;
    bad_cancel_on_is_refused => bad_cancel_on_is_refused;
    another_tenant_s_event_cancels_nothing => tenants_are_isolated;
}

/// Waits long enough for a 2 s delay to have ended and its webhook to have been posted.
const AFTER_DELAY: Duration = Duration::from_millis(3500);

async fn configure(server: &TestServer, key: &str, body: &Value) -> Value {
    server
        .post(key, "/api/workflows/configure", body)
        .await
        .assert_ok(201)
        .clone()
}

/// Customer updated → wait 2 s → webhook; cancelled by an order created for the same email.
fn abandoned_cart_workflow(url: &str) -> Value {
    json!({
        "name": "abandoned cart",
        "entityType": "Customer",
        "triggerId": "customer_updated",
        "actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": url}],
        // A Customer carries its email as `email`, an Order as `customer.email`.
        "cancelOn": [{"triggerId": "order_created", "key": "{{ entity.email or entity.customer.email }}"}]
    })
}

fn customer_updated(event_id: &str, customer: &str, email: &str) -> Value {
    json!({"entityType": "Customer", "trigger": "customer_updated", "entityId": customer,
           "eventId": event_id, "data": {"email": email, "cart": ["sku-1"]}})
}

fn order_event(trigger: &str, event_id: &str, order: &str, email: &str) -> Value {
    json!({"entityType": "Order", "trigger": trigger, "entityId": order, "eventId": event_id,
           "data": {"status": "pending", "customer": {"email": email}}})
}

async fn abandoned_cart(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let record = configure(&server, &key, &abandoned_cart_workflow(&receiver.url)).await;
    assert_eq!(
        record["cancelOn"],
        json!([{"triggerId": "order_created", "key": "{{ entity.email or entity.customer.email }}"}])
    );
    let shown = server
        .get(
            &key,
            &format!(
                "/api/workflows/configured/{}",
                record["guid"].as_str().expect("guid")
            ),
        )
        .await;
    assert_eq!(shown.assert_ok(200)["cancelOn"], record["cancelOn"]);

    for (event, customer, email) in [
        ("cu-ana", "cus_ana", "ana@example.com"),
        ("cu-bob", "cus_bob", "bob@example.com"),
    ] {
        server
            .post(
                &key,
                "/api/events",
                &customer_updated(event, customer, email),
            )
            .await
            .assert_ok(202);
    }
    let ana = server.execution_of(&key, "cu-ana").await;
    let bob = server.execution_of(&key, "cu-bob").await;
    server.execution_in(&key, &ana, "waiting").await;
    server.execution_in(&key, &bob, "waiting").await;

    // Ana orders: her cart reminder is cancelled; Bob's is not.
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_created", "oc-ana", "ord_1", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let cancelled = server.execution_in(&key, &ana, "cancelled").await;
    assert_eq!(cancelled["cancelReason"], "cancel_on:order_created");
    assert!(cancelled["finishedAt"].is_string());
    assert_eq!(cancelled["steps"][1]["status"], "cancelled");

    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        delivered[0].body["data"]["entity"]["email"],
        "bob@example.com"
    );
    let bob = server.execution_in(&key, &bob, "succeeded").await;
    assert_eq!(bob["cancelReason"], Value::Null);
    tokio::time::sleep(AFTER_DELAY).await;
    assert_eq!(receiver.count(), 1, "the cancelled reminder was delivered");
    let still = server.get(&key, &format!("/api/executions/{ana}")).await;
    assert_eq!(still.assert_ok(200)["status"], "cancelled");

    // An order whose email renders empty has no key and cancels nothing.
    server
        .post(
            &key,
            "/api/events",
            &customer_updated("cu-ana-2", "cus_ana", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let again = server.execution_of(&key, "cu-ana-2").await;
    server.execution_in(&key, &again, "waiting").await;
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_created", "oc-blank", "ord_2", ""),
        )
        .await
        .assert_ok(202);
    let done = server.execution_in(&key, &again, "succeeded").await;
    assert_eq!(done["cancelReason"], Value::Null);
    server.stop().await;
}

/// Order created → wait 2 s → webhook, cancelled by `order_paid` with the default key.
fn reminder_workflow(url: &str, cancel_on: Value) -> Value {
    json!({
        "name": "payment reminder",
        "entityType": "Order",
        "triggerId": "order_created",
        "actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": url}],
        "cancelOn": cancel_on
    })
}

async fn default_key_is_the_entity(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    // By guid, with the explicit "entity" key: shown back by code, with the key left out.
    let triggers = server.get(&key, "/api/workflows/triggers/Order").await;
    let guid = triggers
        .assert_ok(200)
        .as_array()
        .expect("triggers")
        .iter()
        .find(|t| t["code"] == "order_paid")
        .expect("order_paid")["guid"]
        .clone();
    let record = configure(
        &server,
        &key,
        &reminder_workflow(&receiver.url, json!([{"triggerId": guid, "key": "entity"}])),
    )
    .await;
    assert_eq!(record["cancelOn"], json!([{"triggerId": "order_paid"}]));

    for (event, order) in [("c-1", "ord_1"), ("c-2", "ord_2"), ("c-3", "ord_3")] {
        server
            .post(
                &key,
                "/api/events",
                &order_event("order_created", event, order, "ana@example.com"),
            )
            .await
            .assert_ok(202);
    }
    let one = server.execution_of(&key, "c-1").await;
    let two = server.execution_of(&key, "c-2").await;
    let three = server.execution_of(&key, "c-3").await;
    server.execution_in(&key, &one, "waiting").await;

    // Paid: same entity type and id → cancelled; the same email on another order is no match.
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_paid", "p-1", "ord_1", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let cancelled = server.execution_in(&key, &one, "cancelled").await;
    assert_eq!(cancelled["cancelReason"], "cancel_on:order_paid");

    // A manual cancel says so.
    server.execution_in(&key, &three, "waiting").await;
    let manual = server
        .post(&key, &format!("/api/executions/{three}/cancel"), &json!({}))
        .await;
    assert_eq!(manual.assert_ok(200)["cancelReason"], "manual");

    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        delivered[0].body["data"]["entity"]["customer"]["email"],
        "ana@example.com"
    );
    assert_eq!(delivered[0].body["data"]["event"]["entityId"], "ord_2");
    server.execution_in(&key, &two, "succeeded").await;
    tokio::time::sleep(AFTER_DELAY).await;
    assert_eq!(receiver.count(), 1, "a cancelled reminder was delivered");

    // A succeeded execution is not touched by a later matching event.
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_paid", "p-2", "ord_2", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.get(&key, &format!("/api/executions/{two}")).await;
    let after = after.assert_ok(200);
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["cancelReason"], Value::Null);

    // Without cancelOn any more (a new version), nothing is cancelled.
    let mut body = reminder_workflow(&receiver.url, json!([]));
    body["guid"] = record["guid"].clone();
    let updated = server.post(&key, "/api/workflows/configure", &body).await;
    assert_eq!(updated.assert_ok(200)["cancelOn"], json!([]));
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_created", "c-4", "ord_4", "x@example.com"),
        )
        .await
        .assert_ok(202);
    let four = server.execution_of(&key, "c-4").await;
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_paid", "p-4", "ord_4", "x@example.com"),
        )
        .await
        .assert_ok(202);
    server.execution_in(&key, &four, "succeeded").await;

    // Deleting the workflow cancels what it still has waiting, and says why.
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_created", "c-5", "ord_5", "x@example.com"),
        )
        .await
        .assert_ok(202);
    let five = server.execution_of(&key, "c-5").await;
    server.execution_in(&key, &five, "waiting").await;
    let guid = record["guid"].as_str().expect("guid");
    send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{guid}")))
            .bearer_auth(&key),
    )
    .await
    .assert_ok(200);
    let deleted = server.execution_in(&key, &five, "cancelled").await;
    assert_eq!(deleted["cancelReason"], "workflow_deleted");
    server.stop().await;
}

async fn emitted_event_cancels(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    // The reminder waits on order_created and is cancelled when the order is fulfilled...
    configure(
        &server,
        &key,
        &reminder_workflow(&receiver.url, json!([{"triggerId": "order_fulfilled"}])),
    )
    .await;
    // ...which a second workflow's update_status emits (matched by a worker, not at ingest).
    configure(
        &server,
        &key,
        &json!({"name": "fulfil", "entityType": "Order", "triggerId": "order_paid",
                "action": {"type": "update_status", "status": "fulfilled"}}),
    )
    .await;
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_created", "c-1", "ord_1", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let reminder = server.execution_of(&key, "c-1").await;
    server.execution_in(&key, &reminder, "waiting").await;
    server
        .post(
            &key,
            "/api/events",
            &order_event("order_paid", "p-1", "ord_1", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let cancelled = server.execution_in(&key, &reminder, "cancelled").await;
    assert_eq!(cancelled["cancelReason"], "cancel_on:order_fulfilled");
    tokio::time::sleep(AFTER_DELAY).await;
    assert_eq!(receiver.count(), 0, "the cancelled reminder was delivered");
    server.stop().await;
}

async fn bad_cancel_on_is_refused(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let url = "https://hooks.example.com/x";
    let too_many: Vec<Value> = (0..21)
        .map(|_| json!({"triggerId": "order_paid"}))
        .collect();
    for (cancel_on, field) in [
        (
            json!([{"triggerId": "order_teleported"}]),
            "cancelOn[0].triggerId",
        ),
        (
            json!([{"triggerId": "order_paid"}, {"triggerId": "order_created", "key": "{{ entity.email "}]),
            "cancelOn[1].key",
        ),
        (
            json!([{"triggerId": "order_paid"}, {"triggerId": "ORDER_PAID"}]),
            "cancelOn[1].triggerId",
        ),
        (json!(too_many), "cancelOn"),
        (json!([{"trigger": "order_paid"}]), ""),
        (json!({"triggerId": "order_paid"}), ""),
    ] {
        let reply = server
            .post(
                &key,
                "/api/workflows/configure",
                &reminder_workflow(url, cancel_on.clone()),
            )
            .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        if !field.is_empty() {
            let message = reply.body.to_string();
            assert!(message.contains(field), "{cancel_on}: {message}");
        }
    }
    let listed = server.get(&key, "/api/workflows/Order/configured").await;
    assert_eq!(listed.assert_ok(200).as_array().map(Vec::len), Some(0));

    // The OpenAPI document describes the field (schemathesis sends it).
    let doc = send(server.http.get(server.url("/api/openapi.json"))).await;
    let schemas = &doc.body["components"]["schemas"];
    assert!(
        schemas["CancelOn"]["properties"]["triggerId"].is_object(),
        "{schemas}"
    );
    assert!(schemas["WorkflowConfig"]["properties"]["cancelOn"].is_object());
    assert!(schemas["WorkflowRecord"]["properties"]["cancelOn"].is_object());
    server.stop().await;
}

async fn tenants_are_isolated(db: Db) {
    let server = TestServer::start(db).await;
    let (_, a) = server.tenant("Acme").await;
    let (_, b) = server.tenant("Bolt").await;
    let receiver = Receiver::start().await;
    configure(&server, &a, &abandoned_cart_workflow(&receiver.url)).await;
    // Tenant B has the same workflow, so its order_created looks for cancellations too.
    configure(&server, &b, &abandoned_cart_workflow(&receiver.url)).await;
    server
        .post(
            &a,
            "/api/events",
            &customer_updated("cu-1", "cus_ana", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let run = server.execution_of(&a, "cu-1").await;
    server.execution_in(&a, &run, "waiting").await;
    server
        .post(
            &b,
            "/api/events",
            &order_event("order_created", "oc-1", "ord_1", "ana@example.com"),
        )
        .await
        .assert_ok(202);
    let event = server.get(&b, "/api/events/oc-1").await;
    assert_eq!(event.assert_ok(200)["state"], "processed");
    let done = server.execution_in(&a, &run, "succeeded").await;
    assert_eq!(done["cancelReason"], Value::Null);
    assert_eq!(receiver.count(), 1);
    // B cannot see A's execution at all.
    let hidden = send(
        server
            .http
            .get(server.url(&format!("/api/executions/{run}")))
            .bearer_auth(&b),
    )
    .await;
    hidden.assert_error(404, "NOT_FOUND");
    server.stop().await;
}
