//! Per-tenant bounds on matching (CONTRACT §7) through the public API: the matching budget, the
//! causal chain's execution limit, workflow and push subscription quotas, backtest wall time and
//! the size of event and workflow listings and of an execution's view.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchyard_tests::{Db, TestServer, WAIT, eventually, on_both_databases};

on_both_databases! {
    slow_conditions_spend_the_budget => slow_conditions_spend_the_budget;
    fan_out_stops_at_the_chain_limit => fan_out_stops_at_the_chain_limit;
    quotas_refuse_the_next_workflow_and_subscription => quotas_refuse_the_next_workflow_and_subscription;
    backtest_stops_at_its_wall_time => backtest_stops_at_its_wall_time;
    event_listing_pages_are_bounded_by_size => event_listing_pages_are_bounded_by_size;
    workflow_listing_pages_are_bounded_by_size => workflow_listing_pages_are_bounded_by_size;
    an_execution_shows_its_latest_attempts => an_execution_shows_its_latest_attempts;
    a_quiet_tenant_is_served_while_another_floods => a_quiet_tenant_is_served_while_another_floods;
}

/// Spins until its deadline when the entity says `slow: 1` (and passes the save-time trial, which
/// runs on an empty entity).
const SLOW: &str =
    r#"if entity.slow == 1 { let s = ""; s.pad(60000, 'x'); loop { s.to_upper(); } } true"#;

async fn configure(server: &TestServer, key: &str, body: Value) -> String {
    server
        .post(key, "/api/workflows/configure", &body)
        .await
        .assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

fn slow_workflow(name: &str) -> Value {
    json!({"name": name, "entityType": "Order", "triggerId": "order_paid", "condition": SLOW,
           "action": {"type": "update_status", "status": "seen"}})
}

fn paid(event_id: &str, slow: i64) -> Value {
    json!({"entityType": "Order", "trigger": "order_paid", "entityId": format!("ord_{event_id}"),
           "eventId": event_id, "data": {"status": "paid", "slow": slow}})
}

async fn slow_conditions_spend_the_budget(db: Db) {
    let server = TestServer::start_with(db, &["--match-budget", "120ms"]).await;
    let (_, key) = server.tenant("Noisy").await;
    for i in 0..8 {
        configure(&server, &key, slow_workflow(&format!("slow {i}"))).await;
    }
    let started = Instant::now();
    server
        .post(&key, "/api/events", &paid("evt-slow", 1))
        .await
        .assert_ok(202);
    // 8 conditions of up to 50 ms each would take 400 ms; the budget ends matching at 120 ms.
    assert!(started.elapsed() < Duration::from_secs(2));
    let event = eventually(&server, &key, "/api/events/evt-slow", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    let outcome = &event["outcome"];
    let over: Vec<&Value> = outcome["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .filter(|r| r["reason"] == "budget_exceeded")
        .collect();
    let evaluated = outcome["notMatched"].as_array().expect("notMatched").len();
    assert!(!over.is_empty(), "no workflow over budget: {outcome}");
    assert_eq!(evaluated + over.len(), 8, "{outcome}");
    assert!(
        over[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("120ms")),
        "{outcome}"
    );
    assert!(outcome["matched"].as_array().expect("matched").is_empty());
    // The same workflows match an event whose conditions are quick.
    server
        .post(&key, "/api/events", &paid("evt-quick", 0))
        .await
        .assert_ok(202);
    let event = eventually(&server, &key, "/api/events/evt-quick", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    assert_eq!(
        event["outcome"]["matched"].as_array().map(Vec::len),
        Some(8)
    );
    server.stop().await;
}

/// Every execution of the tenant (all pages).
async fn all_executions(server: &TestServer, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/executions?limit=200".to_owned();
    loop {
        let reply = server.get(key, &path).await;
        out.extend(
            reply
                .assert_ok(200)
                .as_array()
                .expect("list")
                .iter()
                .cloned(),
        );
        match reply.body["cursor"].as_str() {
            Some(cursor) => path = format!("/api/executions?limit=200&cursor={cursor}"),
            None => return out,
        }
    }
}

/// Every event of the tenant (all pages).
async fn all_events(server: &TestServer, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/events?limit=200".to_owned();
    loop {
        let reply = server.get(key, &path).await;
        out.extend(
            reply
                .assert_ok(200)
                .as_array()
                .expect("list")
                .iter()
                .cloned(),
        );
        match reply.body["cursor"].as_str() {
            Some(cursor) => path = format!("/api/events?limit=200&cursor={cursor}"),
            None => return out,
        }
    }
}

async fn fan_out_stops_at_the_chain_limit(db: Db) {
    let server = TestServer::start_with(db, &["--max-chain-executions", "20"]).await;
    let (_, key) = server.tenant("Fan").await;
    // Six unconditioned workflows, each setting its own status: without a limit one event
    // starts about 1,956 executions (every order of the six, the loop guard stopping repeats).
    for status in ["a", "b", "c", "d", "e", "f"] {
        configure(
            &server,
            &key,
            json!({"name": format!("to {status}"), "entityType": "Order",
                   "triggerId": "order_status_changed",
                   "action": {"type": "update_status", "status": status}}),
        )
        .await;
    }
    server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_status_changed", "entityId": "ord_1",
                    "eventId": "root", "data": {"status": "new"}}),
        )
        .await
        .assert_ok(202);
    // Settled: no event left pending and every execution finished.
    let deadline = Instant::now() + WAIT;
    let (executions, events) = loop {
        let executions = all_executions(&server, &key).await;
        let events = all_events(&server, &key).await;
        let settled = events.iter().all(|e| e["state"] == "processed")
            && executions.iter().all(|e| e["status"] == "succeeded");
        if settled && executions.len() >= 20 {
            // Still 20 a moment later: nothing more starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            break (all_executions(&server, &key).await, events);
        }
        assert!(
            Instant::now() < deadline,
            "{} executions, {} events",
            executions.len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(executions.len(), 20);
    let limited: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["outcome"]["refused"].as_array())
        .flatten()
        .filter(|r| r["reason"] == "chain_limit")
        .collect();
    assert!(!limited.is_empty(), "no chain_limit reported");
    assert!(
        limited[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("20 executions"))
    );
    server.stop().await;
}

fn subscription(n: u8) -> Value {
    let point = p256::SecretKey::from_slice(&[n.max(1); 32])
        .expect("a valid scalar")
        .public_key();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, false);
    json!({"endpoint": format!("https://push.example.com/sub-{n}"), "expirationTime": null,
           "keys": {"p256dh": URL_SAFE_NO_PAD.encode(point.as_bytes()),
                    "auth": URL_SAFE_NO_PAD.encode([n; 16])}})
}

async fn quotas_refuse_the_next_workflow_and_subscription(db: Db) {
    let server = TestServer::start_with(
        db,
        &["--max-workflows", "2", "--max-push-subscriptions", "1"],
    )
    .await;
    let (_, key) = server.tenant("Small").await;
    let (_, other) = server.tenant("Other").await;
    let first = configure(&server, &key, slow_workflow("one")).await;
    configure(&server, &key, slow_workflow("two")).await;
    let refused = server
        .post(&key, "/api/workflows/configure", &slow_workflow("three"))
        .await;
    refused.assert_error(403, "QUOTA_EXCEEDED");
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("--max-workflows") && message.contains('2'),
        "{message}"
    );
    // Updating a workflow needs no room; another tenant has its own quota.
    let mut update = slow_workflow("one, renamed");
    update["guid"] = json!(first);
    server
        .post(&key, "/api/workflows/configure", &update)
        .await
        .assert_ok(200);
    configure(&server, &other, slow_workflow("theirs")).await;
    // Deleting one makes room again.
    let deleted = switchyard_tests::send(
        reqwest::Client::new()
            .delete(server.url(&format!("/api/workflows/configured/{first}")))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    configure(&server, &key, slow_workflow("three")).await;

    let save = "/api/integrations/save-vapid-subscription";
    server
        .post(&key, save, &subscription(1))
        .await
        .assert_ok(201);
    // The same endpoint again only refreshes its keys.
    server
        .post(&key, save, &subscription(1))
        .await
        .assert_ok(200);
    let refused = server.post(&key, save, &subscription(2)).await;
    refused.assert_error(403, "QUOTA_EXCEEDED");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--max-push-subscriptions")),
        "{:?}",
        refused.body
    );
    server
        .post(&other, save, &subscription(2))
        .await
        .assert_ok(201);
    server.stop().await;
}

async fn backtest_stops_at_its_wall_time(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Backtest").await;
    // 150 stored events; no workflow yet, so storing them costs nothing.
    for i in 0..150 {
        server
            .post(&key, "/api/events", &paid(&format!("bt-{i}"), 1))
            .await
            .assert_ok(202);
    }
    let mut workflow = slow_workflow("slow");
    let started = Instant::now();
    let answer = server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"workflow": workflow.clone(), "backtest": {"limit": 500}}),
        )
        .await;
    let took = started.elapsed();
    let data = answer.assert_ok(200);
    // 150 conditions of 50 ms each would take 7.5 s.
    assert_eq!(data["truncated"], true, "{data}");
    let evaluated = data["evaluated"].as_u64().expect("evaluated");
    assert!(evaluated > 0 && evaluated < 150, "{data}");
    assert!(took < Duration::from_secs(7), "{took:?}");
    // A quick condition replays every event and says it was not cut short.
    workflow["condition"] = json!("entity.slow == 1");
    let data = server
        .post(
            &key,
            "/api/workflows/test",
            &json!({"workflow": workflow, "backtest": {"limit": 500}}),
        )
        .await;
    let data = data.assert_ok(200);
    assert_eq!(data["truncated"], false, "{data}");
    assert_eq!(data["evaluated"], 150, "{data}");
    assert_eq!(data["matched"], 150, "{data}");
    server.stop().await;
}

async fn event_listing_pages_are_bounded_by_size(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Bulky").await;
    let blob = "x".repeat(700 * 1024);
    for i in 0..8 {
        server
            .post(
                &key,
                "/api/events",
                &json!({"entityType": "Order", "trigger": "order_paid", "entityId": format!("ord_{i}"),
                        "eventId": format!("big-{i}"), "data": {"blob": blob}}),
            )
            .await
            .assert_ok(202);
    }
    let first = server.get(&key, "/api/events?limit=200").await;
    let page = first.assert_ok(200).as_array().expect("list").len();
    assert!(
        (1..8).contains(&page),
        "a page of {page} events of 700 KiB each"
    );
    assert!(first.body["cursor"].is_string());
    // Following the cursors gives every event exactly once, each with its full data.
    let events = all_events(&server, &key).await;
    let ids: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["eventId"].as_str())
        .collect();
    assert_eq!(events.len(), 8);
    assert_eq!(ids.len(), 8);
    assert!(events.iter().all(|e| e["data"]["blob"] == blob.as_str()));
    server.stop().await;
}

async fn workflow_listing_pages_are_bounded_by_size(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Bulky").await;
    // Each spec carries a 700 KiB condition value (under the 1 MiB body limit).
    let blob = "x".repeat(700 * 1024);
    let mut saved = HashSet::new();
    for i in 0..8 {
        saved.insert(
            configure(
                &server,
                &key,
                json!({"name": format!("bulky {i}"), "entityType": "Order", "triggerId": "order_paid",
                       "conditions": {"blob": blob},
                       "action": {"type": "update_status", "status": "seen"}}),
            )
            .await,
        );
    }
    let first = server
        .get(&key, "/api/workflows/order/configured?limit=200")
        .await;
    let page = first.assert_ok(200).as_array().expect("list").len();
    assert!(
        (1..8).contains(&page),
        "a page of {page} workflows of 700 KiB each"
    );
    // Following the cursors gives every workflow exactly once, each whole.
    let mut seen = Vec::new();
    let mut path = "/api/workflows/order/configured?limit=200".to_owned();
    loop {
        let reply = server.get(&key, &path).await;
        for workflow in reply.assert_ok(200).as_array().expect("list") {
            assert_eq!(workflow["conditions"]["blob"], blob.as_str());
            seen.push(workflow["guid"].as_str().expect("guid").to_owned());
        }
        match reply.body["cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/workflows/order/configured?limit=200&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), saved);
    server.stop().await;
}

async fn an_execution_shows_its_latest_attempts(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Stubborn").await;
    // The header's template fails at run time, so every attempt pauses the execution at once.
    configure(
        &server,
        &key,
        json!({"name": "stubborn", "entityType": "Order", "triggerId": "order_paid",
               "action": {"type": "webhook", "url": "https://hooks.example.com/in",
                          "headers": {"X-Big": "{{ entity.name * 99999999 }}"}}}),
    )
    .await;
    server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_paid", "entityId": "ord_1",
                    "eventId": "stubborn-1", "data": {"name": "abc"}}),
        )
        .await
        .assert_ok(202);
    let id = server.execution_of(&key, "stubborn-1").await;
    server.execution_in(&key, &id, "paused").await;
    // Resumed again and again: every attempt is kept, the view shows the latest 100.
    for _ in 0..104 {
        server
            .get(
                &key,
                &format!("/api/workflows/resume-workflow?workflowId={id}"),
            )
            .await
            .assert_ok(200);
        server.execution_in(&key, &id, "paused").await;
    }
    let execution = server.execution_in(&key, &id, "paused").await;
    let step = &execution["steps"][0];
    assert_eq!(step["attemptCount"], 105, "{step}");
    let attempts = step["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 100);
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(numbers, (6..=105).collect::<Vec<_>>());
    // The listing shows the same view.
    let listed = server.get(&key, "/api/executions?limit=10").await;
    let listed = &listed.assert_ok(200)[0]["steps"][0];
    assert_eq!(listed["attempts"].as_array().map(Vec::len), Some(100));
    server.stop().await;
}

async fn a_quiet_tenant_is_served_while_another_floods(db: Db) {
    let server = TestServer::start(db).await;
    let (_, noisy) = server.tenant("Noisy").await;
    let (_, quiet) = server.tenant("Quiet").await;
    for i in 0..10 {
        configure(&server, &noisy, slow_workflow(&format!("slow {i}"))).await;
    }
    configure(
        &server,
        &quiet,
        json!({"name": "mark", "entityType": "Order", "triggerId": "order_paid",
               "condition": "entity.slow == 0", "action": {"type": "update_status", "status": "seen"}}),
    )
    .await;
    // The noisy tenant floods from four connections: each event spends the whole budget.
    let flood: Vec<_> = (0..4)
        .map(|c| {
            let (url, key) = (server.url("/api/events"), noisy.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..10 {
                    let _ = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&paid(&format!("flood-{c}-{i}"), 1))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .post(&quiet, "/api/events", &paid("quiet-1", 0))
        .await
        .assert_ok(202);
    let execution = server.execution_of(&quiet, "quiet-1").await;
    server.execution_in(&quiet, &execution, "succeeded").await;
    let noisy_flood = all_events(&server, &noisy).await;
    assert!(
        noisy_flood.len() < 40,
        "the flood was over before the quiet tenant's event was served"
    );
    for task in flood {
        let _ = task.await;
    }
    server.stop().await;
}
