//! Bulk `POST /api/executions/resume` and `POST /api/executions/cancel` (CONTRACT §8) through the
//! public API, on SQLite (embedded queue) and on PostgreSQL with Redis: a receiver that fails
//! pauses runs, a bulk resume delivers them all, filters by workflow and time window, tenants are
//! isolated, cancel leaves paused runs cancelled, a call is bounded by `--max-bulk-executions`,
//! and bad bodies are 400 with nothing changed.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::receiver::{Answer, Receiver};
use switchyard_tests::{Db, TestServer, WAIT, on_both_databases, send};

on_both_databases! {
    bulk_resume_delivers_every_paused_run => bulk_resume_delivers_every_paused_run;
    filters_by_workflow_and_time_window => filters_by_workflow_and_time_window;
    tenants_are_isolated => tenants_are_isolated;
    bulk_cancel_cancels_paused_runs => bulk_cancel_cancels_paused_runs;
    calls_are_bounded => calls_are_bounded;
    bad_bodies_are_refused_and_change_nothing => bad_bodies_are_refused_and_change_nothing;
}

/// A step that fails once pauses its execution at once: no retries.
const NO_RETRIES: &[&str] = &["--retry-schedule", "none"];

async fn webhook_workflow(server: &TestServer, key: &str, trigger: &str, url: &str) -> String {
    let body = json!({
        "name": format!("notify {trigger}"),
        "entityType": "Order",
        "triggerId": trigger,
        "action": {"type": "webhook", "url": url},
    });
    server
        .post(key, "/api/workflows/configure", &body)
        .await
        .assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

/// Sends an event for `ord_<n>` with `trigger` and returns its execution once it is paused.
async fn paused_run(server: &TestServer, key: &str, trigger: &str, n: &str) -> Value {
    let event_id = format!("{trigger}-{n}");
    server
        .post(
            key,
            "/api/events",
            &json!({
                "entityType": "Order", "trigger": trigger, "entityId": format!("ord_{n}"),
                "eventId": event_id, "data": {"status": "paid", "total": 10}
            }),
        )
        .await
        .assert_ok(202);
    let id = server.execution_of(key, &event_id).await;
    let paused = server.execution_in(key, &id, "paused").await;
    assert_eq!(paused["pauseReason"], "action_failed", "{paused}");
    paused
}

fn id_of(execution: &Value) -> String {
    execution["id"].as_str().expect("execution id").to_owned()
}

async fn status_of(server: &TestServer, key: &str, id: &str) -> String {
    let reply = server.get(key, &format!("/api/executions/{id}")).await;
    reply.assert_ok(200)["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// `{"count": …, "more": …}` of a bulk call that must succeed.
async fn bulk(server: &TestServer, key: &str, op: &str, body: Value) -> (u64, bool) {
    let reply = server
        .post(key, &format!("/api/executions/{op}"), &body)
        .await;
    let data = reply.assert_ok(200);
    (
        data["count"].as_u64().expect("count"),
        data["more"].as_bool().expect("more"),
    )
}

async fn bulk_resume_delivers_every_paused_run(db: Db) {
    let server = TestServer::start_with(db, NO_RETRIES).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server, &key, "order_paid", &receiver.url).await;

    receiver.answer_always(Answer::Status(500));
    const N: usize = 5;
    let mut ids = Vec::new();
    for n in 0..N {
        ids.push(id_of(
            &paused_run(&server, &key, "order_paid", &n.to_string()).await,
        ));
    }
    assert_eq!(receiver.count(), N, "one failed attempt each");

    receiver.answer_always(Answer::Ok);
    assert_eq!(
        bulk(&server, &key, "resume", json!({})).await,
        (N as u64, false)
    );
    for id in &ids {
        let done = server.execution_in(&key, id, "succeeded").await;
        assert_eq!(done["steps"][0]["status"], "succeeded");
        assert_eq!(
            done["steps"][0]["attempts"]
                .as_array()
                .expect("attempts")
                .len(),
            2
        );
    }
    // Each run was delivered once more, every order among the new deliveries.
    let received = receiver.wait_for(2 * N, WAIT).await;
    assert_eq!(received.len(), 2 * N);
    for n in 0..N {
        let order = format!("\"ord_{n}\"");
        assert!(
            received[N..]
                .iter()
                .any(|r| String::from_utf8_lossy(&r.raw).contains(&order)),
            "ord_{n} was not delivered again"
        );
    }
    // Nothing is paused any more: a second call resumes nothing and sends nothing.
    assert_eq!(bulk(&server, &key, "resume", json!({})).await, (0, false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 2 * N);
    server.stop().await;
}

async fn filters_by_workflow_and_time_window(db: Db) {
    let server = TestServer::start_with(db, NO_RETRIES).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500));
    let paid = webhook_workflow(&server, &key, "order_paid", &receiver.url).await;
    webhook_workflow(&server, &key, "order_created", &receiver.url).await;

    let paid_runs = [
        paused_run(&server, &key, "order_paid", "1").await,
        paused_run(&server, &key, "order_paid", "2").await,
    ];
    let created_runs = [
        paused_run(&server, &key, "order_created", "3").await,
        paused_run(&server, &key, "order_created", "4").await,
    ];
    receiver.answer_always(Answer::Ok);

    // By workflow: only order_paid's runs.
    let body = json!({"workflowId": paid, "status": "paused"});
    assert_eq!(bulk(&server, &key, "resume", body).await, (2, false));
    for run in &paid_runs {
        server.execution_in(&key, &id_of(run), "succeeded").await;
    }
    for run in &created_runs {
        assert_eq!(status_of(&server, &key, &id_of(run)).await, "paused");
    }

    // By time window (on the execution's createdAt, both ends inclusive).
    let [third, fourth] = &created_runs;
    let until = third["createdAt"].as_str().expect("createdAt");
    let since = fourth["createdAt"].as_str().expect("createdAt");
    assert!(since > until, "runs created in order: {since} {until}");
    let window = json!({"since": "2000-01-01T00:00:00Z", "until": until});
    assert_eq!(bulk(&server, &key, "resume", window).await, (1, false));
    server.execution_in(&key, &id_of(third), "succeeded").await;
    assert_eq!(status_of(&server, &key, &id_of(fourth)).await, "paused");

    // A window in the future matches nothing; one starting at the last run takes it.
    let future = json!({"since": "2999-01-01T00:00:00+02:00"});
    assert_eq!(bulk(&server, &key, "cancel", future).await, (0, false));
    assert_eq!(
        bulk(&server, &key, "resume", json!({"since": since})).await,
        (1, false)
    );
    server.execution_in(&key, &id_of(fourth), "succeeded").await;
    server.stop().await;
}

async fn tenants_are_isolated(db: Db) {
    let server = TestServer::start_with(db, NO_RETRIES).await;
    let (_, key_a) = server.tenant("A").await;
    let (_, key_b) = server.tenant("B").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500));
    let workflow_a = webhook_workflow(&server, &key_a, "order_paid", &receiver.url).await;
    let runs = [
        id_of(&paused_run(&server, &key_a, "order_paid", "1").await),
        id_of(&paused_run(&server, &key_a, "order_paid", "2").await),
    ];
    receiver.answer_always(Answer::Ok);

    // B sees none of A's executions, even naming A's workflow.
    assert_eq!(bulk(&server, &key_b, "resume", json!({})).await, (0, false));
    assert_eq!(bulk(&server, &key_b, "cancel", json!({})).await, (0, false));
    let named = json!({"workflowId": workflow_a});
    assert_eq!(
        bulk(&server, &key_b, "cancel", named.clone()).await,
        (0, false)
    );
    assert_eq!(bulk(&server, &key_b, "resume", named).await, (0, false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &runs {
        assert_eq!(status_of(&server, &key_a, id).await, "paused");
    }
    assert_eq!(receiver.count(), 2, "nothing was delivered again");

    // A's own call acts on them.
    assert_eq!(bulk(&server, &key_a, "cancel", json!({})).await, (2, false));
    for id in &runs {
        assert_eq!(status_of(&server, &key_a, id).await, "cancelled");
    }
    server.stop().await;
}

async fn bulk_cancel_cancels_paused_runs(db: Db) {
    let server = TestServer::start_with(db, NO_RETRIES).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server, &key, "order_paid", &receiver.url).await;

    // One run succeeds; two pause.
    server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_paid", "entityId": "ord_ok",
                "eventId": "ok", "data": {"status": "paid"}}),
        )
        .await
        .assert_ok(202);
    let succeeded = server.execution_of(&key, "ok").await;
    server.execution_in(&key, &succeeded, "succeeded").await;
    receiver.answer_always(Answer::Status(500));
    let runs = [
        id_of(&paused_run(&server, &key, "order_paid", "1").await),
        id_of(&paused_run(&server, &key, "order_paid", "2").await),
    ];

    let body = json!({"status": "paused"});
    assert_eq!(bulk(&server, &key, "cancel", body).await, (2, false));
    for id in &runs {
        let reply = server.get(&key, &format!("/api/executions/{id}")).await;
        let execution = reply.assert_ok(200);
        assert_eq!(execution["status"], "cancelled", "{execution}");
        assert!(execution["finishedAt"].is_string(), "{execution}");
    }
    // A finished execution is left alone; a cancelled one is neither cancelled again nor resumed.
    assert_eq!(status_of(&server, &key, &succeeded).await, "succeeded");
    assert_eq!(bulk(&server, &key, "cancel", json!({})).await, (0, false));
    receiver.answer_always(Answer::Ok);
    let before = receiver.count();
    assert_eq!(bulk(&server, &key, "resume", json!({})).await, (0, false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), before);
    server.stop().await;
}

async fn calls_are_bounded(db: Db) {
    let mut extra = NO_RETRIES.to_vec();
    extra.extend(["--max-bulk-executions", "3"]);
    let server = TestServer::start_with(db, &extra).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500));
    webhook_workflow(&server, &key, "order_paid", &receiver.url).await;
    let mut runs = Vec::new();
    for n in 0..5 {
        runs.push(id_of(
            &paused_run(&server, &key, "order_paid", &n.to_string()).await,
        ));
    }
    receiver.answer_always(Answer::Ok);

    // Resume: 3 of 4 (the oldest), then the last one.
    assert_eq!(
        bulk(
            &server,
            &key,
            "cancel",
            json!({"until": "2000-01-01T00:00:00Z"})
        )
        .await,
        (0, false)
    );
    let fourth = server
        .get(&key, &format!("/api/executions/{}", runs[3]))
        .await;
    let first_four = json!({"until": fourth.assert_ok(200)["createdAt"]});
    assert_eq!(
        bulk(&server, &key, "resume", first_four.clone()).await,
        (3, true)
    );
    for id in &runs[..3] {
        server.execution_in(&key, id, "succeeded").await;
    }
    assert_eq!(status_of(&server, &key, &runs[3]).await, "paused");
    assert_eq!(bulk(&server, &key, "resume", first_four).await, (1, false));
    server.execution_in(&key, &runs[3], "succeeded").await;

    // Cancel: 3 more paused runs join the fifth; 3 per call, oldest first.
    receiver.answer_always(Answer::Status(500));
    for n in 5..8 {
        runs.push(id_of(
            &paused_run(&server, &key, "order_paid", &n.to_string()).await,
        ));
    }
    assert_eq!(bulk(&server, &key, "cancel", json!({})).await, (3, true));
    for id in &runs[4..7] {
        assert_eq!(status_of(&server, &key, id).await, "cancelled");
    }
    assert_eq!(status_of(&server, &key, &runs[7]).await, "paused");
    assert_eq!(bulk(&server, &key, "cancel", json!({})).await, (1, false));
    assert_eq!(status_of(&server, &key, &runs[7]).await, "cancelled");
    assert_eq!(bulk(&server, &key, "cancel", json!({})).await, (0, false));
    server.stop().await;
}

async fn bad_bodies_are_refused_and_change_nothing(db: Db) {
    let server = TestServer::start_with(db, NO_RETRIES).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500));
    webhook_workflow(&server, &key, "order_paid", &receiver.url).await;
    let run = id_of(&paused_run(&server, &key, "order_paid", "1").await);
    receiver.answer_always(Answer::Ok);

    for op in ["resume", "cancel"] {
        for body in [
            json!({"status": "bogus"}),
            json!({"since": "yesterday"}),
            json!({"until": "2026-13-01T00:00:00Z"}),
            json!({"since": 1700000000}),
            json!({"workflowId": "not-a-uuid"}),
            json!({"workflow": "0190d8c4-9b1e-7c3a-8f00-5a1b2c3d4e5f"}),
            json!({"status": "paused", "limit": 5}),
            json!(["paused"]),
        ] {
            let reply = server
                .post(&key, &format!("/api/executions/{op}"), &body)
                .await;
            reply.assert_error(400, "VALIDATION_ERROR");
        }
    }
    // Well-formed filters that can match nothing the call acts on answer count 0, like an
    // unknown workflow: a status resume or cancel cannot act on, an empty time window.
    for (op, body) in [
        ("resume", json!({"status": "queued"})),
        ("resume", json!({"status": "running"})),
        ("resume", json!({"status": "waiting"})),
        ("resume", json!({"status": "succeeded"})),
        ("resume", json!({"status": "cancelled"})),
        ("cancel", json!({"status": "succeeded"})),
        ("cancel", json!({"status": "cancelled"})),
        (
            "resume",
            json!({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        ),
        (
            "cancel",
            json!({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        ),
    ] {
        assert_eq!(bulk(&server, &key, op, body).await, (0, false), "{op}");
    }
    // The bulk routes are POST only; an execution id is not taken for `resume` or `cancel`.
    for op in ["resume", "cancel"] {
        let reply = server.get(&key, &format!("/api/executions/{op}")).await;
        reply.assert_error(405, "METHOD_NOT_ALLOWED");
    }
    // The OpenAPI document lists both routes with their body.
    let doc = send(server.http.get(server.url("/api/openapi.json"))).await;
    for op in ["resume", "cancel"] {
        let post = &doc.body["paths"][format!("/api/executions/{op}")]["post"];
        assert!(post["requestBody"].is_object(), "{op}: {post}");
        assert!(post["responses"]["200"].is_object(), "{op}: {post}");
    }
    let body = &doc.body["components"]["schemas"]["BulkRequest"]["properties"];
    for field in ["workflowId", "status", "since", "until"] {
        assert!(body[field].is_object(), "BulkRequest lacks {field}: {body}");
    }
    // A well-formed filter naming an unknown workflow matches nothing.
    let unknown = json!({"workflowId": uuid::Uuid::now_v7()});
    assert_eq!(bulk(&server, &key, "cancel", unknown).await, (0, false));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&server, &key, &run).await, "paused");
    assert_eq!(receiver.count(), 1, "nothing was resumed");
    server.stop().await;
}
