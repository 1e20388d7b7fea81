//! Schedule triggers end to end: cron ticks start executions of the workflow that owns the
//! schedule, two `serve` processes on one database fire each tick once, a tick missed during a
//! downtime is recorded as skipped, and toggle, update and delete apply from the next tick.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::receiver::Receiver;
use switchyard_tests::{Db, TestServer, WAIT, eventually, on_both_databases, send};

on_both_databases! {
    every_two_seconds_fires_for_its_own_workflow => every_two_seconds_fires_for_its_own_workflow;
    two_servers_fire_each_tick_once => two_servers_fire_each_tick_once;
    a_tick_missed_while_down_is_skipped_and_recorded => a_tick_missed_while_down_is_skipped_and_recorded;
    toggle_update_and_delete_apply_from_the_next_tick => toggle_update_and_delete_apply_from_the_next_tick;
    bad_schedules_are_refused_and_ticks_are_tenant_scoped => bad_schedules_are_refused_and_ticks_are_tenant_scoped;
    a_tick_shares_nothing_with_an_entity_called_schedule => a_tick_shares_nothing_with_an_entity_called_schedule;
}

fn schedule_body(cron: &str, url: &str) -> Value {
    json!({
        "name": format!("every {cron}"),
        "entityType": "Order",
        "triggerId": "order_schedule",
        "action": {"type": "webhook", "url": url},
        "schedule": {"cron": cron, "timezone": "Europe/Berlin"},
    })
}

async fn schedule_workflow(server: &TestServer, key: &str, cron: &str, url: &str) -> String {
    let reply = server
        .post(key, "/api/workflows/configure", &schedule_body(cron, url))
        .await;
    reply.assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

async fn ticks(server: &TestServer, key: &str, workflow: &str) -> Vec<Value> {
    let reply = server
        .get(
            key,
            &format!("/api/workflows/configured/{workflow}/ticks?limit=200"),
        )
        .await;
    reply.assert_ok(200).as_array().expect("ticks").clone()
}

fn with_status<'a>(ticks: &'a [Value], status: &str) -> Vec<&'a Value> {
    ticks.iter().filter(|t| t["status"] == status).collect()
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .to_utc()
}

/// Waits until the receiver's count stops moving (a tick in flight when a change was made may
/// still deliver), then checks that it stays put for a few more ticks.
async fn assert_no_more_deliveries(receiver: &Receiver, what: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = receiver.count();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        receiver.count(),
        settled,
        "deliveries continued after {what}"
    );
}

async fn every_two_seconds_fires_for_its_own_workflow(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = schedule_workflow(&server, &key, "*/2 * * * * *", &receiver.url).await;
    // Another workflow on the same trigger, with a yearly schedule: the ticks of the first must
    // not start it.
    let bystander = Receiver::start().await;
    let other = schedule_workflow(&server, &key, "0 0 0 1 1 *", &bystander.url).await;

    let delivered = receiver.wait_for(2, Duration::from_secs(7)).await;
    let mut seen = Vec::new();
    for delivery in &delivered[..2] {
        let body = &delivery.body;
        assert_eq!(body["type"], "order_schedule", "{body}");
        assert_eq!(body["data"]["entity"], json!({}), "{body}");
        assert_eq!(body["data"]["workflow"]["guid"], workflow, "{body}");
        let event = &body["data"]["event"];
        assert_eq!(event["trigger"], "order_schedule", "{event}");
        assert_eq!(event["entityType"], "Order", "{event}");
        // A tick is about no entity: the empty id, which no real entity can have.
        assert_eq!(event["entityId"], "", "{event}");
        assert_eq!(event["scheduledAt"], event["occurredAt"], "{event}");
        let at = time(&event["occurredAt"]);
        assert_eq!(at.timestamp() % 2, 0, "not a tick of */2: {at}");
        assert_eq!(at.timestamp_subsec_millis(), 0, "{at}");
        seen.push(at);
    }
    assert!(
        seen[0] < seen[1],
        "ticks out of order or repeated: {seen:?}"
    );

    // The ticks are listed, and each event started this workflow alone.
    let listed = ticks(&server, &key, &workflow).await;
    let fired = with_status(&listed, "fired");
    assert!(fired.len() >= 2, "{listed:?}");
    assert!(
        time(&fired[0]["tickAt"]) > time(&fired[1]["tickAt"]),
        "newest first"
    );
    let event_id = fired[1]["eventId"].as_str().expect("eventId");
    let event = eventually(
        &server,
        &key,
        &format!("/api/events/{event_id}"),
        WAIT,
        |e| e["state"] == "processed",
    )
    .await;
    let matched = event["outcome"]["matched"].as_array().expect("matched");
    assert_eq!(matched.len(), 1, "{event}");
    assert_eq!(matched[0]["workflowId"], workflow);
    assert_eq!(bystander.count(), 0);
    assert!(ticks(&server, &key, &other).await.is_empty());
    server.stop().await;
}

async fn two_servers_fire_each_tick_once(db: Db) {
    // Different pass intervals, so the two schedulers' passes drift against each other and
    // against the ticks: either may get to a tick first, and now and then both at once.
    let first = TestServer::start_with(db, &["--scheduler-interval", "230ms"]).await;
    let second = TestServer::start_on(first.db.share(), &["--scheduler-interval", "310ms"]).await;
    let (_, key) = first.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = schedule_workflow(&first, &key, "* * * * * *", &receiver.url).await;

    // Both schedulers run on every tick for at least 20 s.
    receiver.wait_for(21, Duration::from_secs(45)).await;
    second
        .post(
            &key,
            &format!("/api/workflows/configured/{workflow}/toggle"),
            &json!({}),
        )
        .await
        .assert_ok(200);
    assert_no_more_deliveries(&receiver, "the toggle").await;

    let delivered = receiver.received();
    let times: Vec<String> = delivered
        .iter()
        .map(|d| {
            d.body["data"]["event"]["occurredAt"]
                .as_str()
                .expect("occurredAt")
                .to_owned()
        })
        .collect();
    let distinct: HashSet<&String> = times.iter().collect();
    assert_eq!(distinct.len(), times.len(), "a tick fired twice: {times:?}");

    let listed = ticks(&first, &key, &workflow).await;
    let fired = with_status(&listed, "fired");
    let mut started = 0;
    for tick in &fired {
        let event_id = tick["eventId"].as_str().expect("eventId");
        let event = eventually(
            &first,
            &key,
            &format!("/api/events/{event_id}"),
            WAIT,
            |e| e["state"] == "processed",
        )
        .await;
        started += event["outcome"]["matched"]
            .as_array()
            .expect("matched")
            .len();
    }
    let executions = first
        .get(
            &key,
            &format!("/api/executions?workflowId={workflow}&limit=200"),
        )
        .await;
    let executions = executions.assert_ok(200).as_array().expect("list").len();
    eprintln!(
        "{db:?}: {} ticks fired, {} skipped, {started} started, {executions} executions, {} deliveries",
        fired.len(),
        with_status(&listed, "skipped").len(),
        delivered.len()
    );
    assert_eq!(executions, started, "executions vs ticks that matched");
    assert_eq!(delivered.len(), executions, "deliveries vs executions");
    // Only a tick claimed just before the toggle may have found the workflow off.
    assert!(
        fired.len() - started <= 1,
        "{} ticks fired, {started} started",
        fired.len()
    );
    // Every fired tick is a distinct second: no tick listed twice either.
    let fired_at: HashSet<String> = fired.iter().map(|t| t["tickAt"].to_string()).collect();
    assert_eq!(fired_at.len(), fired.len());
    second.stop().await;
    first.stop().await;
}

async fn a_tick_missed_while_down_is_skipped_and_recorded(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = schedule_workflow(&server, &key, "*/2 * * * * *", &receiver.url).await;
    receiver.wait_for(1, Duration::from_secs(7)).await;
    let db = server.stop_keep_db().await;
    let down_at = chrono::Utc::now();

    // Down for more than two periods: at least two ticks are missed. The one due when the
    // scheduler is back is less than a period late and fires; the older ones are skipped, as one
    // record, not fired in a burst.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let back_at = chrono::Utc::now();
    let server = TestServer::start_on(db, &[]).await;
    let listed = eventually(
        &server,
        &key,
        &format!("/api/workflows/configured/{workflow}/ticks"),
        WAIT,
        |ticks| {
            ticks.as_array().is_some_and(|t| {
                t.iter().any(|t| t["status"] == "skipped")
                    && t.iter()
                        .any(|t| t["status"] == "fired" && time(&t["tickAt"]) > down_at)
            })
        },
    )
    .await;
    let listed = listed.as_array().expect("ticks");
    let skipped = with_status(listed, "skipped");
    assert_eq!(skipped.len(), 1, "one record for the downtime: {listed:?}");
    let skipped_at = time(&skipped[0]["tickAt"]);
    assert!(
        skipped_at > down_at - chrono::Duration::seconds(2) && skipped_at < back_at,
        "skipped {skipped_at}, down {down_at}, back {back_at}"
    );
    let reason = skipped[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("missed"), "{reason}");
    assert!(skipped[0]["eventId"].is_null());
    // Nothing fired while down, and after it exactly one tick per period.
    let fired_after: Vec<_> = with_status(listed, "fired")
        .into_iter()
        .map(|t| time(&t["tickAt"]))
        .filter(|t| *t > skipped_at)
        .collect();
    assert!(!fired_after.is_empty());
    assert!(
        fired_after
            .iter()
            .all(|t| *t >= back_at - chrono::Duration::seconds(2)),
        "{fired_after:?} fired for the downtime (back at {back_at})"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.received();
    let times: HashSet<String> = delivered
        .iter()
        .map(|d| d.body["data"]["event"]["occurredAt"].to_string())
        .collect();
    assert_eq!(times.len(), delivered.len(), "a tick fired twice");
    server.stop().await;
}

async fn toggle_update_and_delete_apply_from_the_next_tick(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let workflow = schedule_workflow(&server, &key, "* * * * * *", &receiver.url).await;
    let toggle = format!("/api/workflows/configured/{workflow}/toggle");
    receiver.wait_for(2, Duration::from_secs(6)).await;

    server.post(&key, &toggle, &json!({})).await.assert_ok(200);
    assert_no_more_deliveries(&receiver, "toggle off").await;

    // On again: ticks resume, and the ticks of the time it was off are not owed.
    let before = receiver.count();
    server.post(&key, &toggle, &json!({})).await.assert_ok(200);
    receiver.wait_for(before + 2, Duration::from_secs(6)).await;
    let listed = ticks(&server, &key, &workflow).await;
    assert!(
        with_status(&listed, "skipped").is_empty(),
        "a disabled time is not a downtime: {listed:?}"
    );

    // A new cron applies from the next tick.
    let mut yearly = schedule_body("0 0 0 1 1 *", &receiver.url);
    yearly["guid"] = json!(workflow);
    server
        .post(&key, "/api/workflows/configure", &yearly)
        .await
        .assert_ok(200);
    assert_no_more_deliveries(&receiver, "the update to a yearly cron").await;
    let mut every_second = schedule_body("* * * * * *", &receiver.url);
    every_second["guid"] = json!(workflow);
    server
        .post(&key, "/api/workflows/configure", &every_second)
        .await
        .assert_ok(200);
    let before = receiver.count();
    receiver.wait_for(before + 2, Duration::from_secs(6)).await;
    let listed = ticks(&server, &key, &workflow).await;
    // Versions: 1 created, 2 and 3 the toggles, 4 and 5 the two updates.
    assert_eq!(listed[0]["workflowVersion"], 5, "{listed:?}");

    let deleted = send(
        server
            .http
            .delete(server.url(&format!("/api/workflows/configured/{workflow}")))
            .bearer_auth(&key),
    )
    .await;
    deleted.assert_ok(200);
    assert_no_more_deliveries(&receiver, "the delete").await;
    server
        .get(&key, &format!("/api/workflows/configured/{workflow}/ticks"))
        .await
        .assert_error(404, "NOT_FOUND");
    server.stop().await;
}

async fn bad_schedules_are_refused_and_ticks_are_tenant_scoped(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let (_, other_key) = server.tenant("Other").await;
    let receiver = Receiver::start().await;

    let reply = server
        .post(
            &key,
            "/api/workflows/configure",
            &schedule_body("every day at nine", &receiver.url),
        )
        .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["error"]["details"]["field"], "schedule");
    let mut bad_zone = schedule_body("0 0 9 * * *", &receiver.url);
    bad_zone["schedule"]["timezone"] = json!("Mars/Olympus_Mons");
    let reply = server
        .post(&key, "/api/workflows/configure", &bad_zone)
        .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    let mut no_schedule = schedule_body("0 0 9 * * *", &receiver.url);
    no_schedule
        .as_object_mut()
        .expect("object")
        .remove("schedule");
    let reply = server
        .post(&key, "/api/workflows/configure", &no_schedule)
        .await;
    reply.assert_error(400, "VALIDATION_ERROR");

    let workflow = schedule_workflow(&server, &key, "* * * * * *", &receiver.url).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let path = format!("/api/workflows/configured/{workflow}/ticks");
    server
        .get(&other_key, &path)
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(
            &key,
            &format!("/api/workflows/configured/{}/ticks", uuid::Uuid::new_v4()),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    server
        .get(&key, "/api/workflows/configured/nope/ticks")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, &format!("{path}?limit=0"))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let one = server.get(&key, &format!("{path}?limit=1")).await;
    assert_eq!(one.assert_ok(200).as_array().expect("list").len(), 1);
    server.stop().await;
}

/// No entity id is reserved (CONTRACT §8): a real Order whose id is `schedule` is neither seen by
/// a tick's run nor changed by its `update_status`.
async fn a_tick_shares_nothing_with_an_entity_called_schedule(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let real = json!({"status": "open", "note": "a real order"});
    server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_created", "entityId": "schedule",
                    "eventId": "real-1", "data": real}),
        )
        .await
        .assert_ok(202);

    let receiver = Receiver::start().await;
    let mut body = schedule_body("* * * * * *", &receiver.url);
    body["actions"] =
        json!([body["action"].clone(), {"type": "update_status", "status": "closed"}]);
    body.as_object_mut().expect("object").remove("action");
    let workflow = server
        .post(&key, "/api/workflows/configure", &body)
        .await
        .assert_ok(201)["guid"]
        .as_str()
        .expect("guid")
        .to_owned();

    // The tick's run sees `{}`, not the real order's data.
    let delivery = receiver.wait_for(1, WAIT).await.remove(0);
    assert_eq!(
        delivery.body["data"]["entity"],
        json!({}),
        "{}",
        delivery.body
    );
    assert_eq!(delivery.body["data"]["event"]["entityId"], "");

    // Its `update_status` has no entity to change: the step fails and says why.
    let paused = eventually(
        &server,
        &key,
        &format!("/api/executions?workflowId={workflow}&status=paused"),
        WAIT,
        |list| list.as_array().is_some_and(|l| !l.is_empty()),
    )
    .await;
    let execution = paused[0]["id"].as_str().expect("execution id");
    let execution = server.execution_in(&key, execution, "paused").await;
    assert_eq!(execution["entityId"], "");
    assert_eq!(execution["steps"][0]["status"], "succeeded");
    let error = execution["steps"][1]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {execution}"));
    assert!(error.contains("no entity"), "{error}");
    server
        .post(
            &key,
            &format!("/api/workflows/configured/{workflow}/toggle"),
            &json!({}),
        )
        .await
        .assert_ok(200);

    // The real order is as it was: the next event about it finds its data as `previous`.
    server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_paid", "entityId": "schedule",
                    "eventId": "real-2", "data": {"status": "paid"}}),
        )
        .await
        .assert_ok(202);
    let event = eventually(&server, &key, "/api/events/real-2", WAIT, |e| {
        e["state"] == "processed"
    })
    .await;
    assert_eq!(event["previous"], real, "{event}");
    // And no tick emitted a status change for it.
    let events = server.get(&key, "/api/events?limit=200").await;
    let events = events.assert_ok(200).as_array().expect("events").clone();
    assert!(
        events
            .iter()
            .all(|e| e["trigger"] != "order_status_changed"),
        "{events:?}"
    );
    server.stop().await;
}
