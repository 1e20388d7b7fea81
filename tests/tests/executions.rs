//! The execution engine through the public API, on SQLite (embedded queue) and on PostgreSQL with
//! Redis: events in, matching, executions and steps, retries, pause, toggle, resume, cancel,
//! delays, chains, versions, dry runs — against a real HTTP receiver.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::receiver::{Answer, Receiver};
use switchyard_tests::{Db, TestServer, WAIT, eventually, on_both_databases, send};

on_both_databases! {
    event_runs_a_webhook_once => event_runs_a_webhook_once;
    conditions_decide_and_are_recorded => conditions_decide_and_are_recorded;
    retries_then_pause_then_resume => retries_then_pause_then_resume;
    toggle_pauses_and_resumes_in_flight_executions => toggle_pauses_and_resumes_in_flight_executions;
    cancel_stops_an_execution => cancel_stops_an_execution;
    chains_stop_before_a_loop => chains_stop_before_a_loop;
    executions_finish_on_their_version => executions_finish_on_their_version;
    dry_run_and_backtest_send_nothing => dry_run_and_backtest_send_nothing;
    events_and_executions_are_tenant_scoped => events_and_executions_are_tenant_scoped;
    bad_events_are_refused => bad_events_are_refused;
}

async fn webhook_workflow(
    server: &TestServer,
    key: &str,
    trigger: &str,
    url: &str,
    extra: Value,
) -> String {
    let mut body = json!({
        "name": format!("notify {trigger}"),
        "entityType": "Order",
        "triggerId": trigger,
        "action": {"type": "webhook", "url": url},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
        if extra.contains_key("actions") {
            body.remove("action");
        }
    }
    let reply = server.post(key, "/api/workflows/configure", &body).await;
    reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

fn order_event(event_id: &str, status: &str, total: f64) -> Value {
    json!({
        "entityType": "Order", "trigger": "order_paid", "entityId": "ord_1001", "eventId": event_id,
        "data": {"status": status, "total": total, "customer": {"email": "ana@example.com", "country": "DE"}},
        "previous": {"status": "pending"}
    })
}

async fn event_runs_a_webhook_once(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = webhook_workflow(&server, &key, "order_paid", &receiver.url, json!({})).await;

    let accepted = server
        .post(&key, "/api/events", &order_event("evt-1", "paid", 120.5))
        .await;
    let data = accepted.assert_ok(202);
    assert_eq!(data["eventId"], "evt-1");
    assert_eq!(data["duplicate"], false);

    let delivered = receiver.wait_for(1, WAIT).await;
    let body = &delivered[0].body;
    assert_eq!(body["type"], "order_paid");
    assert_eq!(body["data"]["entity"]["total"], 120.5);
    assert_eq!(body["data"]["workflow"]["guid"], workflow);
    assert!(delivered[0].header("webhook-id").starts_with("msg_"));
    assert_eq!(delivered[0].header("x-switchyard-event-type"), "order_paid");
    // The delivery's idempotency key is the step's, like `webhook-id`; the event's is in the body.
    assert_eq!(
        delivered[0].header("x-switchyard-event-id"),
        delivered[0].header("webhook-id")
    );
    assert_eq!(body["data"]["event"]["id"], "evt-1");

    let execution_id = server.execution_of(&key, "evt-1").await;
    let execution = server.execution_in(&key, &execution_id, "succeeded").await;
    assert_eq!(execution["workflowId"], workflow);
    assert_eq!(execution["workflowVersion"], 1);
    let step = &execution["steps"][0];
    assert_eq!(step["actionType"], "webhook");
    assert_eq!(step["status"], "succeeded");
    let attempts = step["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["outcome"], "succeeded");
    assert!(attempts[0]["startedAt"].is_string() && attempts[0]["endedAt"].is_string());

    let event = server.get(&key, "/api/events/evt-1").await;
    let event = event.assert_ok(200);
    assert_eq!(event["outcome"]["matched"][0]["workflowId"], workflow);
    assert_eq!(event["previous"]["status"], "pending");

    // The same eventId again starts nothing.
    let again = server
        .post(&key, "/api/events", &order_event("evt-1", "paid", 120.5))
        .await;
    assert_eq!(again.assert_ok(202)["duplicate"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "a duplicate event was delivered");
    let listed = server
        .get(&key, &format!("/api/executions?workflowId={workflow}"))
        .await;
    assert_eq!(listed.assert_ok(200).as_array().expect("list").len(), 1);
    server.stop().await;
}

async fn conditions_decide_and_are_recorded(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let extra = json!({
        "conditions": {"status": "paid", "customer.country": "DE"},
        "condition": "entity.total > 100 && event.previous.status != \"paid\""
    });
    webhook_workflow(&server, &key, "order_paid", &receiver.url, extra).await;
    let script_error = json!({"condition": "entity.total / entity.missing.deeper > 1"});
    webhook_workflow(&server, &key, "order_paid", &receiver.url, script_error).await;

    server
        .post(&key, "/api/events", &order_event("small", "paid", 50.0))
        .await
        .assert_ok(202);
    let event = eventually(&server, &key, "/api/events/small", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    assert_eq!(event["outcome"]["matched"], json!([]));
    let not_matched = event["outcome"]["notMatched"]
        .as_array()
        .expect("notMatched");
    assert_eq!(not_matched.len(), 2);
    let by_script = not_matched
        .iter()
        .find(|n| n["script"]["result"] == false)
        .expect("script false");
    assert!(
        by_script["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .all(|c| c["holds"] == true)
    );
    let errored = not_matched
        .iter()
        .find(|n| n["script"]["error"].is_string())
        .expect("script error recorded");
    assert!(
        errored["script"]["error"]
            .as_str()
            .expect("error")
            .contains("condition"),
        "{errored}"
    );

    server
        .post(&key, "/api/events", &order_event("big", "paid", 150.0))
        .await
        .assert_ok(202);
    receiver.wait_for(1, WAIT).await;
    let event = eventually(&server, &key, "/api/events/big", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    assert_eq!(
        event["outcome"]["matched"]
            .as_array()
            .expect("matched")
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    server.stop().await;
}

async fn retries_then_pause_then_resume(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = webhook_workflow(&server, &key, "order_paid", &receiver.url, json!({})).await;

    // Two failures, then success: within the retry schedule (3 retries).
    receiver.script(&[Answer::Status(500), Answer::Status(503)]);
    server
        .post(&key, "/api/events", &order_event("flaky", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "flaky").await;
    let execution = server.execution_in(&key, &id, "succeeded").await;
    let attempts = execution["steps"][0]["attempts"]
        .as_array()
        .expect("attempts")
        .clone();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "retry");
    assert!(
        attempts[0]["error"]
            .as_str()
            .expect("error")
            .contains("500"),
        "{attempts:?}"
    );
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "webhook-id must be stable across attempts: {ids:?}"
    );

    // Always failing: the schedule is spent and the execution pauses.
    receiver.answer_always(Answer::Status(500));
    server
        .post(&key, "/api/events", &order_event("down", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "down").await;
    let paused = server.execution_in(&key, &id, "paused").await;
    assert_eq!(paused["pauseReason"], "action_failed");
    assert_eq!(
        paused["steps"][0]["attempts"]
            .as_array()
            .expect("attempts")
            .len(),
        4
    );
    assert_eq!(paused["steps"][0]["status"], "failed");

    // Resuming something that is not paused is a conflict.
    let succeeded_one = server.execution_of(&key, "flaky").await;
    server
        .get(
            &key,
            &format!("/api/workflows/resume-workflow?workflowId={succeeded_one}"),
        )
        .await
        .assert_error(409, "CONFLICT");

    // Fixed: resume re-runs the failed step and the execution succeeds.
    receiver.answer_always(Answer::Ok);
    let before = receiver.count();
    let resumed = server
        .get(
            &key,
            &format!("/api/workflows/resume-workflow?workflowId={id}"),
        )
        .await;
    assert_eq!(resumed.assert_ok(200)["resumed"][0], id);
    let done = server.execution_in(&key, &id, "succeeded").await;
    assert_eq!(
        done["steps"][0]["attempts"]
            .as_array()
            .expect("attempts")
            .len(),
        5
    );
    assert_eq!(receiver.count(), before + 1);

    // Resuming by workflow guid with nothing paused is a conflict too; an unknown id is 404.
    send(
        server
            .http
            .post(server.url(&format!(
                "/api/workflows/resume-workflow?workflowId={workflow}"
            )))
            .bearer_auth(&key),
    )
    .await
    .assert_error(409, "CONFLICT");
    server
        .get(
            &key,
            &format!(
                "/api/workflows/resume-workflow?workflowId={}",
                uuid::Uuid::now_v7()
            ),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key, "/api/workflows/resume-workflow")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server.stop().await;
}

async fn toggle_pauses_and_resumes_in_flight_executions(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let steps = json!({"actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": receiver.url}]});
    let workflow = webhook_workflow(&server, &key, "order_paid", &receiver.url, steps).await;

    server
        .post(&key, "/api/events", &order_event("slow", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "slow").await;
    let waiting = server.execution_in(&key, &id, "waiting").await;
    assert_eq!(waiting["steps"][0]["status"], "succeeded");
    assert_eq!(waiting["steps"][1]["status"], "queued");

    let off = server
        .get(
            &key,
            &format!("/api/workflows/configured/{workflow}/toggle"),
        )
        .await;
    assert_eq!(off.assert_ok(200)["isActive"], false);
    let paused = server.execution_in(&key, &id, "paused").await;
    assert_eq!(paused["pauseReason"], "workflow_disabled");
    assert_eq!(receiver.count(), 0);

    // While off, new events match nothing.
    server
        .post(&key, "/api/events", &order_event("while-off", "paid", 10.0))
        .await
        .assert_ok(202);
    let event = eventually(&server, &key, "/api/events/while-off", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    assert_eq!(event["executions"], json!([]));

    let on = server
        .get(
            &key,
            &format!("/api/workflows/configured/{workflow}/toggle"),
        )
        .await;
    assert_eq!(on.assert_ok(200)["isActive"], true);
    server.execution_in(&key, &id, "succeeded").await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    server.stop().await;
}

async fn cancel_stops_an_execution(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let steps = json!({"actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": receiver.url}]});
    let workflow = webhook_workflow(&server, &key, "order_paid", &receiver.url, steps).await;
    server
        .post(&key, "/api/events", &order_event("c1", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "c1").await;
    server.execution_in(&key, &id, "waiting").await;
    let cancelled = server
        .post(&key, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.assert_ok(200)["status"], "cancelled");
    server
        .post(&key, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await
        .assert_error(409, "CONFLICT");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.count(), 0, "a cancelled execution went on");
    let after = server.get(&key, &format!("/api/executions/{id}")).await;
    assert_eq!(after.assert_ok(200)["status"], "cancelled");

    // Deleting a workflow cancels its in-flight executions.
    server
        .post(&key, "/api/events", &order_event("c2", "paid", 10.0))
        .await
        .assert_ok(202);
    let id2 = server.execution_of(&key, "c2").await;
    server.execution_in(&key, &id2, "waiting").await;
    send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{workflow}")))
            .bearer_auth(&key),
    )
    .await
    .assert_ok(200);
    server.execution_in(&key, &id2, "cancelled").await;
    server.stop().await;
}

async fn chains_stop_before_a_loop(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    // A: order_paid → status "fulfilled" (emits order_status_changed and order_fulfilled).
    // B: order_status_changed → status "paid" (emits order_status_changed and order_paid),
    //    which would start A again for the same order: refused.
    let a = server
        .post(
            &key,
            "/api/workflows/configure",
            &json!({
        "name": "A", "entityType": "Order", "triggerId": "order_paid",
        "action": {"type": "update_status", "status": "fulfilled"}}),
        )
        .await
        .assert_ok(201)["guid"]
        .clone();
    let b = server
        .post(
            &key,
            "/api/workflows/configure",
            &json!({
        "name": "B", "entityType": "Order", "triggerId": "order_status_changed",
        "conditions": {"status": "fulfilled"},
        "action": {"type": "update_status", "status": "paid"}}),
        )
        .await
        .assert_ok(201)["guid"]
        .clone();

    server
        .post(&key, "/api/events", &order_event("loop-1", "paid", 10.0))
        .await
        .assert_ok(202);
    // Wait until the chain settles: A ran once, B ran once, A's second start was refused.
    let deadline = std::time::Instant::now() + WAIT;
    let refused = loop {
        let events = server.get(&key, "/api/events?limit=50").await;
        let events = events.assert_ok(200).as_array().expect("events").clone();
        let refused: Vec<Value> = events
            .iter()
            .filter_map(|e| e["outcome"]["refused"].as_array())
            .flatten()
            .cloned()
            .collect();
        if !refused.is_empty() {
            break refused;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no refused match recorded: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused[0]["workflowId"], a);
    assert!(
        refused[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("already ran"),
        "{refused:?}"
    );
    let runs_of_a = server
        .get(
            &key,
            &format!("/api/executions?workflowId={}", a.as_str().expect("a")),
        )
        .await;
    assert_eq!(runs_of_a.assert_ok(200).as_array().expect("list").len(), 1);
    let runs_of_b = server
        .get(
            &key,
            &format!("/api/executions?workflowId={}", b.as_str().expect("b")),
        )
        .await;
    assert_eq!(runs_of_b.assert_ok(200).as_array().expect("list").len(), 1);

    // Emitted events carry their cause and depth.
    let events = server
        .get(&key, "/api/events?entityType=Order&trigger=order_fulfilled")
        .await;
    let fulfilled = events.assert_ok(200)[0].clone();
    assert_eq!(fulfilled["depth"], 1);
    assert!(fulfilled["causationId"].is_string());
    assert_eq!(fulfilled["previous"]["status"], "paid");
    assert_eq!(fulfilled["data"]["status"], "fulfilled");
    server.stop().await;
}

async fn executions_finish_on_their_version(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    let steps = json!({"actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": old.url}]});
    let workflow = webhook_workflow(&server, &key, "order_paid", &old.url, steps).await;
    server
        .post(&key, "/api/events", &order_event("v1", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "v1").await;
    server.execution_in(&key, &id, "waiting").await;

    let update = json!({"guid": workflow, "name": "v2", "entityType": "Order", "triggerId": "order_paid",
        "actions": [{"type": "delay", "duration": "2s"}, {"type": "webhook", "url": new.url}]});
    assert_eq!(
        server
            .post(&key, "/api/workflows/configure", &update)
            .await
            .assert_ok(200)["version"],
        2
    );
    let done = server.execution_in(&key, &id, "succeeded").await;
    assert_eq!(done["workflowVersion"], 1);
    assert_eq!(old.count(), 1);
    assert_eq!(new.count(), 0);
    server.stop().await;
}

async fn dry_run_and_backtest_send_nothing(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = json!({"name": "dry", "entityType": "Order", "triggerId": "order_paid",
        "conditions": {"status": "paid"}, "condition": "entity.total > 100",
        "action": {"type": "webhook", "url": receiver.url, "headers": {"X-Order": "{{ entity.id }}-{{ entity.total }}"}}});
    let mut event = order_event("dry-1", "paid", 150.0);
    event["data"]["id"] = json!("ord_1001");
    let answer = server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"workflow": workflow, "event": event}),
        )
        .await;
    let data = answer.assert_ok(200);
    assert_eq!(data["matched"], true);
    assert_eq!(data["conditions"][0]["holds"], true);
    assert_eq!(data["script"]["result"], true);
    assert_eq!(
        data["actions"][0]["params"]["headers"]["X-Order"],
        "ord_1001-150.0"
    );
    assert_eq!(data["actions"][0]["params"]["secret"], "****");

    event["data"]["total"] = json!(50);
    let answer = server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"workflow": workflow, "event": event}),
        )
        .await;
    assert_eq!(answer.assert_ok(200)["matched"], false);

    // Backtest over stored events of the trigger (no workflow listens, so nothing runs).
    for (i, total) in [150.0, 50.0, 300.0].iter().enumerate() {
        server
            .post(
                &key,
                "/api/events",
                &order_event(&format!("bt-{i}"), "paid", *total),
            )
            .await
            .assert_ok(202);
    }
    let guid = server
        .post(
            &key,
            "/api/workflows/configure",
            &json!({"name": "bt", "entityType": "Order",
        "triggerId": "order_paid", "isActive": false, "condition": "entity.total > 100",
        "action": {"type": "webhook", "url": receiver.url}}),
        )
        .await
        .assert_ok(201)["guid"]
        .clone();
    let backtest = server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"guid": guid, "backtest": {"limit": 500}}),
        )
        .await;
    let data = backtest.assert_ok(200);
    assert_eq!(data["evaluated"], 3);
    assert_eq!(data["matched"], 2);
    assert_eq!(
        data["samples"]["matched"]
            .as_array()
            .expect("samples")
            .len(),
        2
    );

    server
        .post(&key, "/api/workflows/test", &json!({"guid": guid}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"guid": guid, "backtest": {"limit": 0}}),
        )
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"guid": uuid::Uuid::now_v7(), "backtest": {}}),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 0, "a dry run sent something");
    server.stop().await;
}

async fn events_and_executions_are_tenant_scoped(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key_a) = server.tenant("A").await;
    let (_, key_b) = server.tenant("B").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server, &key_a, "order_paid", &receiver.url, json!({})).await;
    server
        .post(&key_a, "/api/events", &order_event("iso-1", "paid", 10.0))
        .await
        .assert_ok(202);
    let id = server.execution_of(&key_a, "iso-1").await;
    server.execution_in(&key_a, &id, "succeeded").await;

    server
        .get(&key_b, "/api/events/iso-1")
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key_b, &format!("/api/executions/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .post(&key_b, &format!("/api/executions/{id}/cancel"), &json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(
            &key_b,
            &format!("/api/workflows/resume-workflow?workflowId={id}"),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(
        server.get(&key_b, "/api/executions").await.assert_ok(200),
        &json!([])
    );
    assert_eq!(
        server.get(&key_b, "/api/events").await.assert_ok(200),
        &json!([])
    );
    // Tenant B's event with the same eventId is its own.
    let b = server
        .post(&key_b, "/api/events", &order_event("iso-1", "paid", 10.0))
        .await;
    assert_eq!(b.assert_ok(202)["duplicate"], false);
    server.stop().await;
}

async fn bad_events_are_refused(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let cases = [
        json!({"entityType": "Invoice", "trigger": "order_paid", "entityId": "x"}),
        json!({"entityType": "Order", "trigger": "shipment_delivered", "entityId": "x"}),
        json!({"entityType": "Order", "trigger": "order_schedule", "entityId": "x"}),
        json!({"entityType": "Order", "trigger": "order_paid", "entityId": ""}),
        json!({"entityType": "Order", "trigger": "order_paid"}),
        json!({"entityType": "Order", "trigger": "order_paid", "entityId": "x", "data": [1]}),
        json!({"entityType": "Order", "trigger": "order_paid", "entityId": "x", "occurredAt": "yesterday"}),
        json!({"entityType": "Order", "trigger": "order_paid", "entityId": "x", "extra": 1}),
    ];
    for body in cases {
        server
            .post(&key, "/api/events", &body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    assert_eq!(
        server.get(&key, "/api/events").await.assert_ok(200),
        &json!([])
    );
    server
        .get(&key, "/api/executions?status=weird")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, "/api/executions?workflowId=nope")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, "/api/executions/nope")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, &format!("/api/executions/{}", uuid::Uuid::now_v7()))
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key, "/api/events/unknown-event")
        .await
        .assert_error(404, "NOT_FOUND");
    server.stop().await;
}
