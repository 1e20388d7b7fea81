//! Debounce (CONTRACT §8), on SQLite and on PostgreSQL + Redis, asserted from what a real receiver
//! saw: a burst of matching events with one key starts one execution, on the newest event,
//! `period` after the burst ends; the replaced events say `debounced`; `maxWait` bounds how long
//! a steady stream postpones a run; other keys are independent.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::receiver::{Received, Receiver};
use switchyard_tests::{Db, TestServer, on_both_databases};

on_both_databases! {
    a_burst_runs_once_on_its_newest_event => burst_runs_once;
    max_wait_bounds_a_steady_stream => max_wait_bounds;
    debounce_is_validated_and_shown_back => validated_and_shown;
}

const WAIT: Duration = Duration::from_secs(30);
/// Scheduling slack (the queue's poll, the sweeper, a loaded CI machine).
const SLACK: Duration = Duration::from_millis(900);

fn workflow(url: &str, debounce: Value) -> Value {
    json!({"name": "one email", "entityType": "Customer", "triggerId": "customer_updated",
        "action": {"type": "webhook", "url": url}, "debounce": debounce})
}

fn event(id: &str, entity: &str) -> Value {
    json!({"entityType": "Customer", "trigger": "customer_updated", "entityId": entity,
        "eventId": id, "data": {"email": format!("{entity}@example.com")}})
}

fn event_id(r: &Received) -> String {
    r.body["data"]["event"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn burst_runs_once(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    server
        .post(
            &key,
            "/api/workflows/configure",
            &workflow(&receiver.url, json!({"period": "1s"})),
        )
        .await
        .assert_ok(201);
    for id in ["c-1", "c-2", "c-3"] {
        server
            .post(&key, "/api/events", &event(id, "cus_A"))
            .await
            .assert_ok(202);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last_posted = Instant::now() - Duration::from_millis(200);
    server
        .post(&key, "/api/events", &event("d-1", "cus_B"))
        .await
        .assert_ok(202);

    let received = receiver.wait_for(2, WAIT).await;
    // Nothing more arrives: the replaced events started nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received_all = receiver.received();
    assert_eq!(
        received_all.len(),
        2,
        "{:?}",
        received_all.iter().map(event_id).collect::<Vec<_>>()
    );
    let a = received
        .iter()
        .find(|r| r.body["data"]["event"]["entityId"] == "cus_A")
        .expect("cus_A delivered once");
    assert_eq!(event_id(a), "c-3", "the newest event of the burst runs");
    let waited = a.at.duration_since(last_posted);
    assert!(
        waited + Duration::from_millis(50) >= Duration::from_secs(1),
        "ran {waited:?} after the burst's last event, before the period"
    );
    assert!(
        received.iter().any(|r| event_id(r) == "d-1"),
        "another key is debounced on its own"
    );

    for replaced in ["c-1", "c-2"] {
        let event = server
            .get(&key, &format!("/api/events/{replaced}"))
            .await
            .assert_ok(200)
            .clone();
        let refused = &event["outcome"]["refused"][0];
        assert_eq!(refused["reason"], "debounced", "{event}");
        assert_eq!(event["outcome"]["matched"], json!([]), "{event}");
        let execution = event["executions"][0]["id"].as_str().map(str::to_owned);
        if let Some(id) = execution {
            server.execution_in(&key, &id, "cancelled").await;
        }
    }
    server.stop().await;
}

async fn max_wait_bounds(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    server
        .post(
            &key,
            "/api/workflows/configure",
            &workflow(&receiver.url, json!({"period": "1s", "maxWait": "2s"})),
        )
        .await
        .assert_ok(201);
    // An event every 400 ms for 3.2 s: the period never ends while the stream lasts.
    let first = Instant::now();
    for n in 0..9 {
        server
            .post(&key, "/api/events", &event(&format!("s-{n}"), "cus_S"))
            .await
            .assert_ok(202);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let received = receiver.wait_for(1, WAIT).await;
    let after = received[0].at.duration_since(first);
    assert!(
        after + Duration::from_millis(50) >= Duration::from_secs(2)
            && after <= Duration::from_secs(2) + SLACK,
        "the first run came {after:?} after the first event; maxWait is 2s"
    );
    // The stream's end still runs, on its last event.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = receiver.received();
    assert!(
        (2..=3).contains(&all.len()),
        "{:?}",
        all.iter().map(event_id).collect::<Vec<_>>()
    );
    assert_eq!(all.last().map(event_id).as_deref(), Some("s-8"));
    server.stop().await;
}

async fn validated_and_shown(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let url = "http://127.0.0.1:9/hook";
    for (debounce, field) in [
        (json!({"period": "soon"}), "debounce.period"),
        (json!({"period": "0s"}), "debounce.period"),
        (
            json!({"period": "10m", "maxWait": "1m"}),
            "debounce.maxWait",
        ),
        (json!({"period": "10m", "key": "{% if %}"}), "debounce.key"),
    ] {
        let reply = server
            .post(&key, "/api/workflows/configure", &workflow(url, debounce))
            .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert!(reply.body.to_string().contains(field), "{}", reply.body);
    }
    let saved = server
        .post(
            &key,
            "/api/workflows/configure",
            &workflow(url, json!({"period": "10m", "maxWait": "1h"})),
        )
        .await;
    assert_eq!(
        saved.assert_ok(201)["debounce"],
        json!({"key": "entity", "period": "10m", "maxWait": "1h"})
    );
    server.stop().await;
}
