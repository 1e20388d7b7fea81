//! Hostile templates (CONTRACT §7) against the real server: every entry of the corpus, in the dry
//! run and saved in a workflow, is stopped by a bound — answered in the envelope (200 with the
//! step's error, or 400), or its step pauses with an error naming the limit — and the process
//! lives on to serve the next request. Memory and time are bounded by the renderer's limits
//! (actions/src/template): the process's peak RSS is asserted (well below what one unbounded
//! template takes); time is not, since tests make no timed assertions (the `hostile` benchmark
//! prints both).

use serde_json::{Value, json};
use switchyard_tests::{Db, TestServer, on_both_databases};

on_both_databases! {
    hostile_templates_are_bounded => hostile_templates_are_bounded;
}

/// Templates that allocate or loop by their argument, each past `--max-rendered-bytes` or the fuel,
/// one per line (shared with the `hostile` benchmark, which measures their memory and time).
const CORPUS: &str = include_str!("../fixtures/hostile-templates.txt");

fn workflow(name: &str, template: &str) -> Value {
    json!({"name": name, "entityType": "Order", "triggerId": "order_created",
           "action": {"type": "webhook", "url": "https://hooks.example.com/in",
                      "headers": {"X-Hostile": template}}})
}

fn event(id: &str) -> Value {
    json!({"entityType": "Order", "trigger": "order_created", "entityId": id,
           "data": {"name": "abcdefghij", "total": 1}})
}

/// An error that names a bound, not a crash or an unrelated failure.
fn names_a_bound(text: &str) -> bool {
    let text = text.to_lowercase();
    ["limit", "fuel", "recursion", "too large", "too many"]
        .iter()
        .any(|w| text.contains(w))
}

async fn still_alive(server: &TestServer, key: &str) {
    server
        .get(key, "/api/workflows/order/configured")
        .await
        .assert_ok(200);
}

async fn hostile_templates_are_bounded(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("hostile").await;

    // The dry run: 200 with the step's error, or 400; never 5xx; the process lives.
    for (i, template) in CORPUS.lines().enumerate() {
        let reply = server
            .post(
                &key,
                "/api/workflows/test",
                &json!({"workflow": workflow(&format!("dry {i}"), template), "event": event("o1")}),
            )
            .await;
        match reply.status {
            200 => {
                let error = reply.body["data"]["actions"][0]["error"]
                    .as_str()
                    .unwrap_or_else(|| {
                        panic!("{template}: rendered without error: {}", reply.body)
                    });
                assert!(names_a_bound(error), "{template}: {error}");
            }
            400 => reply.assert_error(400, "VALIDATION_ERROR"),
            other => panic!("{template}: dry run answered {other}: {}", reply.body),
        }
        still_alive(&server, &key).await;
    }

    // Saved workflows: refused at save (400), or the step pauses with an error naming the bound.
    let mut saved = Vec::new();
    for (i, template) in CORPUS.lines().enumerate() {
        let reply = server
            .post(
                &key,
                "/api/workflows/configure",
                &workflow(&format!("saved {i}"), template),
            )
            .await;
        match reply.status {
            201 => saved.push(template),
            400 => reply.assert_error(400, "VALIDATION_ERROR"),
            other => panic!("{template}: configure answered {other}: {}", reply.body),
        }
    }
    assert!(
        !saved.is_empty(),
        "every hostile template was refused at save"
    );
    let posted = server.post(&key, "/api/events", &event("o2")).await;
    let event_id = posted.assert_ok(202)["eventId"]
        .as_str()
        .expect("event id")
        .to_owned();
    let record = switchyard_tests::eventually(
        &server,
        &key,
        &format!("/api/events/{event_id}"),
        switchyard_tests::WAIT,
        |data| {
            data["executions"]
                .as_array()
                .is_some_and(|e| e.len() == saved.len())
        },
    )
    .await;
    for execution in record["executions"].as_array().expect("executions") {
        let id = execution["id"].as_str().expect("execution id");
        let paused = server.execution_in(&key, id, "paused").await;
        assert_eq!(paused["pauseReason"], "action_failed", "{paused}");
        let error = paused["steps"][0]["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(
            error.contains("template") && names_a_bound(error),
            "{error}"
        );
    }
    still_alive(&server, &key).await;
    server.stop().await;
    // The server ran in this process (nextest runs each test in its own): its peak memory over
    // the whole corpus stays far below what one unbounded template would take (the first one
    // asked for 2.4 TB; a string repeated 99,999,999 times is ~1 GB).
    let peak = peak_rss_mib();
    assert!(peak < 512.0, "peak RSS {peak:.0} MiB");
}

/// This process's peak resident set size (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}
