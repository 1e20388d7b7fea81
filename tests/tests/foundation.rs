//! The foundation through the public HTTP API, on SQLite and on PostgreSQL: auth, envelope,
//! trigger catalog, workflow CRUD with versions and ETags, validation, pagination, isolation.

use serde_json::{Value, json};
use switchyard_tests::{Db, Reply, TestServer, on_both_databases, send};

on_both_databases! {
    operational_endpoints_answer => operational_endpoints_answer;
    auth_is_required_and_checked => auth_is_required_and_checked;
    trigger_catalog_is_stable => trigger_catalog_is_stable;
    workflow_lifecycle_with_versions_and_etags => workflow_lifecycle_with_versions_and_etags;
    a_toggle_moves_the_version_and_the_etag => a_toggle_moves_the_version_and_the_etag;
    an_update_without_is_active_keeps_the_state => an_update_without_is_active_keeps_the_state;
    bad_input_is_refused_and_changes_nothing => bad_input_is_refused_and_changes_nothing;
    pagination_reaches_the_end => pagination_reaches_the_end;
    tenants_are_isolated => tenants_are_isolated;
    rate_limit_answers_429_with_retry_after => rate_limit_answers_429_with_retry_after;
}

fn delivery_workflow() -> Value {
    json!({
        "name": "Customer Delivery Notification",
        "entityType": "Shipment",
        "triggerId": "shipment_delivered",
        "action": {"type": "update_status", "status": "closed"},
        "conditions": {"status": "delivered"}
    })
}

async fn configured_count(server: &TestServer, key: &str, entity: &str) -> usize {
    let reply = server
        .get(
            key,
            &format!("/api/workflows/{entity}/configured?limit=200"),
        )
        .await;
    reply.assert_ok(200).as_array().map(Vec::len).unwrap_or(0)
}

async fn operational_endpoints_answer(db: Db) {
    let server = TestServer::start(db).await;
    let health = send(server.http.get(server.url("/healthz"))).await;
    assert_eq!(health.assert_ok(200)["status"], "ok");
    let ready = send(server.http.get(server.url("/readyz"))).await;
    assert_eq!(ready.assert_ok(200)["status"], "ready");

    // A request id is generated when absent and echoed when sent.
    assert!(ready.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let echoed = send(
        server
            .http
            .get(server.url("/healthz"))
            .header("x-request-id", "req-abc-123"),
    )
    .await;
    assert_eq!(echoed.header("x-request-id"), Some("req-abc-123"));

    let doc = send(server.http.get(server.url("/api/openapi.json"))).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc.body["openapi"]
    );
    let paths = doc.body["paths"].as_object().expect("paths");
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/workflows/triggers/{entityType}",
        "/api/workflows/{entityType}/configured",
        "/api/workflows/configure",
        "/api/workflows/configured/{guid}",
        "/api/workflows/configured/{guid}/toggle",
    ] {
        assert!(
            paths.contains_key(path),
            "OpenAPI lacks {path}: {:?}",
            paths.keys()
        );
    }
    assert!(
        paths["/api/workflows/configured/{guid}/toggle"]
            .get("post")
            .is_some()
    );

    // Unknown routes and methods answer in the envelope too.
    send(server.http.get(server.url("/api/nothing-here")))
        .await
        .assert_error(404, "NOT_FOUND");
    send(server.http.put(server.url("/api/workflows/configure")))
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");

    let metrics = send(server.http.get(server.url("/metrics"))).await;
    let text = metrics.body.as_str().expect("text");
    assert!(text.contains("switchyard_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    server.stop().await;
}

async fn auth_is_required_and_checked(db: Db) {
    let server = TestServer::start(db).await;
    let (tenant, key) = server.tenant("Acme").await;
    let path = server.url("/api/workflows/Order/configured");

    send(server.http.get(&path))
        .await
        .assert_error(401, "UNAUTHORIZED");
    send(server.http.get(&path).bearer_auth("not-a-key"))
        .await
        .assert_error(403, "FORBIDDEN");
    let unknown = format!("sk_{}", "A".repeat(43));
    send(server.http.get(&path).bearer_auth(&unknown))
        .await
        .assert_error(403, "FORBIDDEN");
    send(
        server
            .http
            .get(&path)
            .header("authorization", format!("Basic {key}")),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    send(server.http.get(&path).bearer_auth(&key))
        .await
        .assert_ok(200);

    // A second key works; once revoked, it is refused while the first still works.
    let settings = switchyard_tests::settings(&server.db, &[]);
    let second = switchyard::cli::key(
        &settings,
        switchyard::config::KeyCommand::Create {
            tenant: tenant.clone(),
        },
    )
    .await
    .expect("key create");
    let second_key = second["apiKey"].as_str().expect("apiKey").to_owned();
    send(server.http.get(&path).bearer_auth(&second_key))
        .await
        .assert_ok(200);
    switchyard::cli::key(
        &settings,
        switchyard::config::KeyCommand::Revoke {
            key_id: second["keyId"].as_str().expect("keyId").to_owned(),
        },
    )
    .await
    .expect("revoke");
    send(server.http.get(&path).bearer_auth(&second_key))
        .await
        .assert_error(403, "FORBIDDEN");
    send(server.http.get(&path).bearer_auth(&key))
        .await
        .assert_ok(200);
    server.stop().await;
}

async fn trigger_catalog_is_stable(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let reply = server.get(&key, "/api/workflows/triggers/order").await;
    assert_eq!(reply.body["cursor"], Value::Null);
    let triggers = reply.assert_ok(200).as_array().expect("list").clone();
    let codes: Vec<&str> = triggers.iter().filter_map(|t| t["code"].as_str()).collect();
    for code in [
        "order_created",
        "order_status_changed",
        "order_paid",
        "order_cancelled",
        "order_fulfilled",
        "order_schedule",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    for t in &triggers {
        assert!(t["name"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(t["description"].as_str().is_some_and(|n| !n.is_empty()));
    }
    // Guids are UUID v5 of the code: the same on every deployment, hence on this one twice.
    let again = server.get(&key, "/api/workflows/triggers/ORDER").await;
    assert_eq!(again.assert_ok(200), &Value::Array(triggers.clone()));
    let paid = triggers
        .iter()
        .find(|t| t["code"] == "order_paid")
        .expect("order_paid");
    let guid = paid["guid"].as_str().expect("guid");
    assert_eq!(
        uuid::Uuid::parse_str(guid).expect("uuid").get_version_num(),
        5
    );

    for (entity, code) in [
        ("Shipment", "shipment_delivered"),
        ("Customer", "customer_created"),
        ("Product", "product_out_of_stock"),
    ] {
        let list = server
            .get(&key, &format!("/api/workflows/triggers/{entity}"))
            .await;
        assert!(
            list.assert_ok(200)
                .as_array()
                .expect("list")
                .iter()
                .any(|t| t["code"] == code),
            "{entity}"
        );
    }
    server
        .get(&key, "/api/workflows/triggers/Invoice")
        .await
        .assert_error(400, "VALIDATION_ERROR");

    // A workflow may name its trigger by guid.
    let mut body = json!({
        "name": "Paid", "entityType": "Order", "triggerId": guid,
        "action": {"type": "update_status", "status": "processing"}
    });
    let created = server.post(&key, "/api/workflows/configure", &body).await;
    assert_eq!(created.assert_ok(201)["trigger"], "order_paid");
    assert_eq!(created.body["data"]["triggerId"], guid);
    body["triggerId"] = json!(guid.to_uppercase());
    server
        .post(&key, "/api/workflows/configure", &body)
        .await
        .assert_ok(201);
    server.stop().await;
}

async fn workflow_lifecycle_with_versions_and_etags(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;

    let created = server
        .post(&key, "/api/workflows/configure", &delivery_workflow())
        .await;
    let record = created.assert_ok(201).clone();
    let guid = record["guid"].as_str().expect("guid").to_owned();
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(
        created.header("location"),
        Some(format!("/api/workflows/configured/{guid}").as_str())
    );
    assert_eq!(record["name"], "Customer Delivery Notification");
    assert_eq!(record["entityType"], "Shipment");
    assert_eq!(record["trigger"], "shipment_delivered");
    assert_eq!(record["action"], "update_status");
    assert_eq!(record["isActive"], true);
    assert_eq!(record["isManaged"], false);
    assert_eq!(record["version"], 1);
    assert_eq!(record["actions"][0]["status"], "closed");
    assert_eq!(record["conditions"]["status"], "delivered");
    assert_eq!(
        uuid::Uuid::parse_str(&guid)
            .expect("uuid")
            .get_version_num(),
        7
    );

    let one = server
        .get(&key, &format!("/api/workflows/configured/{guid}"))
        .await;
    assert_eq!(one.assert_ok(200), &record);
    assert_eq!(one.header("etag"), Some("\"1\""));

    let listed = server.get(&key, "/api/workflows/shipment/configured").await;
    assert_eq!(listed.assert_ok(200).as_array().expect("list").len(), 1);
    assert_eq!(listed.body["cursor"], Value::Null);
    assert_eq!(configured_count(&server, &key, "Order").await, 0);

    // Update with the current ETag: a new version.
    let mut update = delivery_workflow();
    update["guid"] = json!(guid);
    update["name"] = json!("Delivered: close it");
    update["condition"] = json!("entity.total > 100");
    let updated = send(
        server
            .http
            .post(server.url("/api/workflows/configure"))
            .bearer_auth(&key)
            .header("if-match", "\"1\"")
            .json(&update),
    )
    .await;
    assert_eq!(updated.assert_ok(200)["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.body["data"]["condition"], "entity.total > 100");
    assert_eq!(updated.body["data"]["createdAt"], record["createdAt"]);

    // A stale ETag is a conflict and changes nothing.
    update["name"] = json!("Stale write");
    let stale = send(
        server
            .http
            .post(server.url("/api/workflows/configure"))
            .bearer_auth(&key)
            .header("if-match", "\"1\"")
            .json(&update),
    )
    .await;
    stale.assert_error(409, "CONFLICT");
    let now = server
        .get(&key, &format!("/api/workflows/configured/{guid}"))
        .await;
    assert_eq!(now.assert_ok(200)["name"], "Delivered: close it");

    // Without If-Match the update applies (seed-001 clients do not send it).
    let blind = server.post(&key, "/api/workflows/configure", &update).await;
    assert_eq!(blind.assert_ok(200)["version"], 3);
    assert_eq!(blind.body["data"]["name"], "Stale write");

    // Toggle off by GET, on by POST.
    let off = server
        .get(&key, &format!("/api/workflows/configured/{guid}/toggle"))
        .await;
    assert_eq!(
        off.assert_ok(200),
        &json!({"guid": guid, "isActive": false})
    );
    let on = send(
        server
            .http
            .post(server.url(&format!("/api/workflows/configured/{guid}/toggle")))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(on.assert_ok(200)["isActive"], true);

    // An update naming a guid that does not exist is 404.
    let mut ghost = delivery_workflow();
    ghost["guid"] = json!(uuid::Uuid::now_v7());
    server
        .post(&key, "/api/workflows/configure", &ghost)
        .await
        .assert_error(404, "NOT_FOUND");

    // Delete, then it is gone for every verb.
    let deleted = send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{guid}")))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body, json!({"success": true}));
    server
        .get(&key, &format!("/api/workflows/configured/{guid}"))
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key, &format!("/api/workflows/configured/{guid}/toggle"))
        .await
        .assert_error(404, "NOT_FOUND");
    send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{guid}")))
            .bearer_auth(&key),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    assert_eq!(configured_count(&server, &key, "Shipment").await, 0);
    server.stop().await;
}

/// `POST /api/workflows/configure` with an `If-Match` header.
async fn configure_if_match(server: &TestServer, key: &str, body: &Value, etag: &str) -> Reply {
    send(
        server
            .http
            .post(server.url("/api/workflows/configure"))
            .bearer_auth(key)
            .header("if-match", etag)
            .json(body),
    )
    .await
}

/// Toggles a workflow by GET (as in seed 001) or POST, with an optional `If-Match`.
async fn toggle(
    server: &TestServer,
    key: &str,
    guid: &str,
    post: bool,
    etag: Option<&str>,
) -> Reply {
    let url = server.url(&format!("/api/workflows/configured/{guid}/toggle"));
    let mut request = if post {
        server.http.post(url)
    } else {
        server.http.get(url)
    };
    request = request.bearer_auth(key);
    if let Some(etag) = etag {
        request = request.header("if-match", etag);
    }
    send(request).await
}

async fn a_toggle_moves_the_version_and_the_etag(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let created = server
        .post(&key, "/api/workflows/configure", &delivery_workflow())
        .await;
    let guid = created.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    assert_eq!(created.header("etag"), Some("\"1\""));
    let one = format!("/api/workflows/configured/{guid}");

    // Off: a new version, and the ETag of the answer says so; a read agrees.
    let off = toggle(&server, &key, &guid, false, None).await;
    assert_eq!(
        off.assert_ok(200),
        &json!({"guid": guid, "isActive": false})
    );
    assert_eq!(off.header("etag"), Some("\"2\""));
    let read = server.get(&key, &one).await;
    assert_eq!(read.assert_ok(200)["version"], 2);
    assert_eq!(read.body["data"]["isActive"], false);
    assert_eq!(read.header("etag"), Some("\"2\""));
    // The spec is unchanged by the toggle.
    assert_eq!(read.body["data"]["name"], created.body["data"]["name"]);
    assert_eq!(
        read.body["data"]["actions"],
        created.body["data"]["actions"]
    );

    // A client that read version 1 before the toggle gets the conflict, and changes nothing.
    let mut update = delivery_workflow();
    update["guid"] = json!(guid);
    update["name"] = json!("Written over a toggle");
    let stale = configure_if_match(&server, &key, &update, "\"1\"").await;
    stale.assert_error(409, "CONFLICT");
    assert_eq!(stale.body["error"]["details"]["currentVersion"], 2);
    let read = server.get(&key, &one).await;
    assert_eq!(read.assert_ok(200)["version"], 2);
    assert_eq!(read.body["data"]["name"], "Customer Delivery Notification");

    // Toggle honours If-Match too: a stale one is a conflict and leaves the workflow off.
    toggle(&server, &key, &guid, true, Some("\"1\""))
        .await
        .assert_error(409, "CONFLICT");
    let read = server.get(&key, &one).await;
    assert_eq!(read.assert_ok(200)["isActive"], false);
    assert_eq!(read.body["data"]["version"], 2);

    // The current one applies: on again, version 3, and an update based on it goes through.
    let on = toggle(&server, &key, &guid, true, Some("\"2\"")).await;
    assert_eq!(on.assert_ok(200)["isActive"], true);
    assert_eq!(on.header("etag"), Some("\"3\""));
    let updated = configure_if_match(&server, &key, &update, "\"3\"").await;
    assert_eq!(updated.assert_ok(200)["version"], 4);
    assert_eq!(updated.header("etag"), Some("\"4\""));
    assert_eq!(updated.body["data"]["isActive"], true);
    server.stop().await;
}

async fn an_update_without_is_active_keeps_the_state(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let created = server
        .post(&key, "/api/workflows/configure", &delivery_workflow())
        .await;
    let guid = created.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();
    assert_eq!(created.body["data"]["isActive"], true);
    let one = format!("/api/workflows/configured/{guid}");
    let mut update = delivery_workflow();
    update["guid"] = json!(guid);

    // Disabled, then updated without `isActive` (seed 001's body has none): it stays disabled.
    assert_eq!(
        toggle(&server, &key, &guid, false, None)
            .await
            .assert_ok(200)["isActive"],
        false
    );
    update["name"] = json!("Renamed while off");
    let updated = server.post(&key, "/api/workflows/configure", &update).await;
    assert_eq!(updated.assert_ok(200)["isActive"], false);
    let read = server.get(&key, &one).await;
    assert_eq!(read.assert_ok(200)["isActive"], false);
    assert_eq!(read.body["data"]["name"], "Renamed while off");
    // …and so it matches nothing: an event for it starts no execution.
    let event = json!({"entityType": "Shipment", "trigger": "shipment_delivered",
        "entityId": "shp_1", "eventId": "while-off", "data": {"status": "delivered"}});
    server
        .post(&key, "/api/events", &event)
        .await
        .assert_ok(202);
    let processed = switchyard_tests::eventually(
        &server,
        &key,
        "/api/events/while-off",
        switchyard_tests::WAIT,
        |e| e["state"] == "processed",
    )
    .await;
    assert_eq!(processed["executions"], json!([]), "{processed}");

    // Given explicitly, `isActive` applies; left out again, the enabled state is kept too.
    update["isActive"] = json!(true);
    let on = server.post(&key, "/api/workflows/configure", &update).await;
    assert_eq!(on.assert_ok(200)["isActive"], true);
    update.as_object_mut().expect("object").remove("isActive");
    update["name"] = json!("Renamed while on");
    let kept = server.post(&key, "/api/workflows/configure", &update).await;
    assert_eq!(kept.assert_ok(200)["isActive"], true);
    update["isActive"] = json!(false);
    let off = server.post(&key, "/api/workflows/configure", &update).await;
    assert_eq!(off.assert_ok(200)["isActive"], false);
    assert_eq!(
        server.get(&key, &one).await.assert_ok(200)["isActive"],
        false
    );

    // A new workflow without `isActive` is active.
    let fresh = server
        .post(&key, "/api/workflows/configure", &delivery_workflow())
        .await;
    assert_eq!(fresh.assert_ok(201)["isActive"], true);
    server.stop().await;
}

async fn bad_input_is_refused_and_changes_nothing(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let url = server.url("/api/workflows/configure");

    let raw = |body: &str| {
        server
            .http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let malformed = send(raw("{\"name\": ")).await;
    malformed.assert_error(400, "VALIDATION_ERROR");
    send(raw("[]")).await.assert_error(400, "VALIDATION_ERROR");
    send(server.http.post(&url).bearer_auth(&key).body("name=x"))
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let cases: Vec<(&str, Value)> = vec![
        (
            "wrong type",
            json!({"name": 5, "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "unknown field",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "x"}, "colour": "red"}),
        ),
        (
            "unknown entity",
            json!({"name": "x", "entityType": "Invoice", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "unknown trigger",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_teleported", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "trigger of another entity",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "order_paid", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "unknown action",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "send_fax"}}),
        ),
        (
            "missing action field",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status"}}),
        ),
        (
            "no action",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered"}),
        ),
        (
            "both action and actions",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "x"}, "actions": [{"type": "delay", "duration": "1h"}]}),
        ),
        (
            "bad delay",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "actions": [{"type": "delay", "duration": "whenever"}]}),
        ),
        (
            "empty name",
            json!({"name": "  ", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "bad template",
            json!({"name": "x", "entityType": "Shipment", "triggerId": "shipment_delivered", "action": {"type": "update_status", "status": "{{ entity.status "}}),
        ),
        (
            "schedule missing",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_schedule", "action": {"type": "update_status", "status": "x"}}),
        ),
        (
            "schedule not allowed",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_paid", "action": {"type": "update_status", "status": "x"}, "schedule": {"cron": "0 0 9 * * *"}}),
        ),
        (
            "bad cron",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_schedule", "action": {"type": "update_status", "status": "x"}, "schedule": {"cron": "every day"}}),
        ),
        (
            "bad zone",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_schedule", "action": {"type": "update_status", "status": "x"}, "schedule": {"cron": "0 0 9 * * *", "timezone": "Mars/Olympus"}}),
        ),
        (
            "bad conditions",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_paid", "action": {"type": "update_status", "status": "x"}, "conditions": {"": 1}}),
        ),
        (
            "conditions not a map",
            json!({"name": "x", "entityType": "Order", "triggerId": "order_paid", "action": {"type": "update_status", "status": "x"}, "conditions": [1]}),
        ),
    ];
    for (what, body) in cases {
        let reply = server.post(&key, "/api/workflows/configure", &body).await;
        assert_eq!(reply.status, 400, "{what}: {:?}", reply.body);
        reply.assert_error(400, "VALIDATION_ERROR");
    }

    // A condition that does not compile: Rhai's message with its position.
    let bad_rhai = json!({"name": "x", "entityType": "Order", "triggerId": "order_paid",
        "action": {"type": "update_status", "status": "x"}, "condition": "entity.total >"});
    let reply = server
        .post(&key, "/api/workflows/configure", &bad_rhai)
        .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["error"]["details"]["field"], "condition");
    assert!(
        reply.body["error"]["details"]["line"].is_number(),
        "{:?}",
        reply.body
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("line"),
        "{:?}",
        reply.body
    );

    // Unknown variables and eval are refused by the sandbox at compile time.
    for source in ["secrets.key == 1", "eval(\"1\") == 1"] {
        let mut body = bad_rhai.clone();
        body["condition"] = json!(source);
        server
            .post(&key, "/api/workflows/configure", &body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }

    // A script that never ends is stopped by the sandbox's limits, and refused.
    for source in ["loop { } ; true", "let x = 0; while true { x += 1; } x > 1"] {
        let mut body = bad_rhai.clone();
        body["condition"] = json!(source);
        let started = std::time::Instant::now();
        let reply = server.post(&key, "/api/workflows/configure", &body).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "sandbox did not stop `{source}` quickly"
        );
    }

    // A body over 1 MiB.
    let huge = json!({"name": "x".repeat(1_100_000), "entityType": "Order", "triggerId": "order_paid", "action": {"type": "update_status", "status": "x"}});
    server
        .post(&key, "/api/workflows/configure", &huge)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // Bad path and query parameters.
    server
        .get(&key, "/api/workflows/configured/not-a-uuid")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, "/api/workflows/Order/configured?managed=maybe")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let send_if_match = send(
        server
            .http
            .post(&url)
            .bearer_auth(&key)
            .header("if-match", "yesterday")
            .json(&delivery_workflow()),
    )
    .await;
    send_if_match.assert_error(400, "VALIDATION_ERROR");

    for entity in ["Order", "Shipment", "Customer", "Product"] {
        assert_eq!(
            configured_count(&server, &key, entity).await,
            0,
            "{entity}: bad input changed something"
        );
    }
    server.stop().await;
}

async fn pagination_reaches_the_end(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let mut body = delivery_workflow();
        body["name"] = json!(format!("wf {i}"));
        created.push(
            server
                .post(&key, "/api/workflows/configure", &body)
                .await
                .assert_ok(201)["guid"]
                .clone(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/workflows/Shipment/configured?limit=3&cursor={c}"),
            None => "/api/workflows/Shipment/configured?limit=3".to_owned(),
        };
        let reply = server.get(&key, &path).await;
        let items = reply.assert_ok(200).as_array().expect("list").clone();
        pages += 1;
        seen.extend(items.iter().map(|w| w["guid"].clone()));
        match reply.body["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every workflow once, in creation order");

    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
    ] {
        server
            .get(&key, &format!("/api/workflows/Shipment/configured?{bad}"))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    server.stop().await;
}

async fn tenants_are_isolated(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key_a) = server.tenant("A").await;
    let (_, key_b) = server.tenant("B").await;
    let created = server
        .post(&key_a, "/api/workflows/configure", &delivery_workflow())
        .await;
    let guid = created.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();

    server
        .get(&key_b, &format!("/api/workflows/configured/{guid}"))
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key_b, &format!("/api/workflows/configured/{guid}/toggle"))
        .await
        .assert_error(404, "NOT_FOUND");
    send(
        server
            .http
            .post(server.url(&format!("/api/workflows/configured/{guid}/toggle")))
            .bearer_auth(&key_b),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{guid}")))
            .bearer_auth(&key_b),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let mut hijack = delivery_workflow();
    hijack["guid"] = json!(guid);
    hijack["name"] = json!("hijacked");
    server
        .post(&key_b, "/api/workflows/configure", &hijack)
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(configured_count(&server, &key_b, "Shipment").await, 0);

    // A's workflow is untouched by all of that.
    let mine = server
        .get(&key_a, &format!("/api/workflows/configured/{guid}"))
        .await;
    let data = mine.assert_ok(200);
    assert_eq!(data["name"], "Customer Delivery Notification");
    assert_eq!(data["isActive"], true);
    assert_eq!(data["version"], 1);
    server.stop().await;
}

async fn rate_limit_answers_429_with_retry_after(db: Db) {
    let server = TestServer::start_with(db, &["--rate-limit", "1"]).await;
    let (_, key) = server.tenant("Acme").await;
    let (_, other) = server.tenant("Other").await;
    let path = "/api/workflows/triggers/Order";
    // A bucket of 2 at 1/s: the third request in a row is refused.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let reply = server.get(&key, path).await;
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    limited.assert_error(429, "RATE_LIMITED");
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another tenant has its own bucket.
    server.get(&other, path).await.assert_ok(200);
    server.stop().await;
}
