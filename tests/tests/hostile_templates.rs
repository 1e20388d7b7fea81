//! Hostile templates (CONTRACT §7) against the real server: every entry of the corpus, in the dry
//! run and saved in a workflow, is stopped by a bound — answered in the envelope (200 with the
//! step's error, or 400), or its step pauses with an error naming the limit — and the process
//! lives on to serve the next request. Memory and time are bounded by the renderer's limits
//! (actions/src/template); they are not asserted here, since tests make no timed assertions.

use serde_json::{Value, json};
use switchyard_tests::{Db, TestServer, on_both_databases};

on_both_databases! {
    hostile_templates_are_bounded => hostile_templates_are_bounded;
}

/// Templates that allocate or loop by their argument, each past `--max-rendered-bytes` or the fuel.
const CORPUS: &[&str] = &[
    "{{ [1]|batch(100000000000) }}",
    "{{ 'x'|indent(100000000000) }}",
    "{{ 'x' * 99999999 }}",
    "{{ entity.name * 99999999 }}",
    "{{ range(100000000)|list }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s=[1, 2, 3, 4]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{{ (entity.name * 200000)|join(entity.name * 200000) }}",
    "{{ '%s'|format(entity.name * 300000) }}",
    "{{ ('x' * 300000)|replace('x', 'yyyyyyyyyy') }}",
    "{{ ('x' * 200000) ~ ('y' * 200000) }}",
    "{{ range(10000)|tojson(indent=100000) }}",
    "{{ ('x' * 20000)|split('')|list|tojson }}",
    "{% for i in range(300) %}{{ 'x' * 1000 }}{% endfor %}",
];

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
    for (i, template) in CORPUS.iter().enumerate() {
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
    for (i, template) in CORPUS.iter().enumerate() {
        let reply = server
            .post(
                &key,
                "/api/workflows/configure",
                &workflow(&format!("saved {i}"), template),
            )
            .await;
        match reply.status {
            201 => saved.push(*template),
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
}
