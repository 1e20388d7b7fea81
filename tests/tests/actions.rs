//! The built-in actions end to end, through the real server and its public API, against real peers:
//! webhook signatures checked with the independent `standardwebhooks` crate, the SSRF guard of a
//! server without `--allow-private-targets`, endpoint health, templates, email through a real SMTP
//! server, Web Push decrypted with the `ece` crate, and `update_status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use mail_parser::MessageParser;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};
use switchyard_tests::receiver::{Answer, Received, Receiver};
use switchyard_tests::smtp::SmtpSink;
use switchyard_tests::{Db, TestServer, WAIT, eventually, on_both_databases};

on_both_databases! {
    webhook_secret_signs_deliveries_and_survives_updates => webhook_secret_signs_deliveries_and_survives_updates;
    event_id_header_is_per_delivered_step => event_id_header_is_per_delivered_step;
    a_gone_endpoint_is_disabled_until_its_workflow_is_saved => a_gone_endpoint_is_disabled_until_its_workflow_is_saved;
    a_hundred_failed_attempts_disable_an_endpoint => a_hundred_failed_attempts_disable_an_endpoint;
    email_reaches_the_customer_and_the_merchant => email_reaches_the_customer_and_the_merchant;
    push_is_encrypted_signed_and_prunes_gone_subscriptions => push_is_encrypted_signed_and_prunes_gone_subscriptions;
    update_status_changes_the_entity_and_emits_the_change => update_status_changes_the_entity_and_emits_the_change;
}

/// A configure body for an Order workflow with these steps.
fn workflow(name: &str, trigger: &str, actions: Value) -> Value {
    json!({"name": name, "entityType": "Order", "triggerId": trigger, "actions": actions})
}

/// Creates the workflow; returns its guid and the configure answer's data.
async fn create(server: &TestServer, key: &str, body: &Value) -> (String, Value) {
    let reply = server.post(key, "/api/workflows/configure", body).await;
    let data = reply.assert_ok(201).clone();
    let guid = data["guid"].as_str().expect("guid").to_owned();
    (guid, data)
}

fn order_event(trigger: &str, event_id: &str, entity_id: &str, data: Value) -> Value {
    json!({"entityType": "Order", "trigger": trigger, "entityId": entity_id,
           "eventId": event_id, "data": data})
}

async fn ingest(server: &TestServer, key: &str, event: &Value) {
    server.post(key, "/api/events", event).await.assert_ok(202);
}

/// The execution the event started, once it reached `status`.
async fn finished(server: &TestServer, key: &str, event_id: &str, status: &str) -> Value {
    let id = server.execution_of(key, event_id).await;
    server.execution_in(key, &id, status).await
}

fn attempts(execution: &Value) -> Vec<Value> {
    execution["steps"][0]["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {execution}"))
        .clone()
}

/// The error of the first step's last attempt.
fn last_error(execution: &Value) -> String {
    attempts(execution)
        .last()
        .and_then(|a| a["error"].as_str())
        .unwrap_or_else(|| panic!("no attempt error: {execution}"))
        .to_owned()
}

// --- webhook ---------------------------------------------------------------------------------

/// Checks a delivery with the `standardwebhooks` crate, over `body` (the delivery's own, or a
/// tampered copy).
fn verify_standard(
    secret: &str,
    delivery: &Received,
    body: &[u8],
) -> Result<(), standardwebhooks::WebhookError> {
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = HeaderValue::from_str(delivery.header(name)).expect("header value");
        headers.insert(name, value);
    }
    standardwebhooks::Webhook::new(secret)
        .expect("a Standard Webhooks secret")
        .verify(body, &headers)
}

/// Recomputes `X-Switchyard-Signature: t=<unix>,v1=<hex HMAC-SHA256(whole secret, "t.body")>`.
fn check_switchyard_signature(secret: &str, delivery: &Received) {
    let header = delivery.header("x-switchyard-signature");
    let (t, v1) = header
        .split_once(',')
        .unwrap_or_else(|| panic!("malformed X-Switchyard-Signature: {header}"));
    let t = t.strip_prefix("t=").expect("t=");
    let v1 = v1.strip_prefix("v1=").expect("v1=");
    assert_eq!(t, delivery.header("webhook-timestamp"));
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&delivery.raw);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "X-Switchyard-Signature does not verify");
}

async fn webhook_secret_signs_deliveries_and_survives_updates(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let body = workflow(
        "signed",
        "order_paid",
        json!([{"type": "webhook", "url": receiver.url}]),
    );

    // Generated at configure and shown once, in this answer only.
    let (guid, data) = create(&server, &key, &body).await;
    let secret = data["actions"][0]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("secret not revealed: {data}"))
        .to_owned();
    let encoded = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(STANDARD.decode(encoded).expect("base64").len(), 24);
    let masked = format!("****{}", &secret[secret.len() - 4..]);
    let read = server
        .get(&key, &format!("/api/workflows/configured/{guid}"))
        .await;
    assert_eq!(read.assert_ok(200)["actions"][0]["secret"], masked);
    let listed = server.get(&key, "/api/workflows/Order/configured").await;
    let listed = listed.assert_ok(200).as_array().expect("list").clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["actions"][0]["secret"], masked);

    let data = json!({"status": "paid", "total": 120.5});
    ingest(
        &server,
        &key,
        &order_event("order_paid", "sig-1", "ord_1", data.clone()),
    )
    .await;
    let delivery = receiver.wait_for(1, WAIT).await.remove(0);
    verify_standard(&secret, &delivery, &delivery.raw).expect("the delivery verifies");
    check_switchyard_signature(&secret, &delivery);
    let tampered = String::from_utf8(delivery.raw.clone())
        .expect("JSON")
        .replace("120.5", "1.5");
    assert_ne!(tampered.as_bytes(), delivery.raw.as_slice());
    assert!(verify_standard(&secret, &delivery, tampered.as_bytes()).is_err());
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(verify_standard(other, &delivery, &delivery.raw).is_err());

    // An update that leaves the secret out keeps it, and does not show it again.
    let mut update = body.clone();
    update["guid"] = json!(guid);
    update["name"] = json!("signed, renamed");
    let updated = server.post(&key, "/api/workflows/configure", &update).await;
    let updated = updated.assert_ok(200);
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["actions"][0]["secret"], masked);
    ingest(
        &server,
        &key,
        &order_event("order_paid", "sig-2", "ord_2", data.clone()),
    )
    .await;
    let delivery = receiver.wait_for(2, WAIT).await.remove(1);
    verify_standard(&secret, &delivery, &delivery.raw).expect("same secret after an update");
    check_switchyard_signature(&secret, &delivery);

    // A read-modify-write sends the masked value back: the secret is kept too.
    let record = server
        .get(&key, &format!("/api/workflows/configured/{guid}"))
        .await;
    let record = record.assert_ok(200).clone();
    let rewrite = json!({"guid": guid, "name": record["name"], "entityType": "Order",
                         "triggerId": record["triggerId"], "actions": record["actions"]});
    server
        .post(&key, "/api/workflows/configure", &rewrite)
        .await
        .assert_ok(200);
    ingest(
        &server,
        &key,
        &order_event("order_paid", "sig-3", "ord_3", data.clone()),
    )
    .await;
    let delivery = receiver.wait_for(3, WAIT).await.remove(2);
    verify_standard(&secret, &delivery, &delivery.raw).expect("same secret after a rewrite");

    // A secret given explicitly replaces it; it is not echoed back.
    let mut replace = body.clone();
    replace["guid"] = json!(guid);
    replace["actions"][0]["secret"] = json!(other);
    let replaced = server
        .post(&key, "/api/workflows/configure", &replace)
        .await;
    assert_eq!(
        replaced.assert_ok(200)["actions"][0]["secret"],
        format!("****{}", &other[other.len() - 4..])
    );
    ingest(
        &server,
        &key,
        &order_event("order_paid", "sig-4", "ord_4", data),
    )
    .await;
    let delivery = receiver.wait_for(4, WAIT).await.remove(3);
    verify_standard(other, &delivery, &delivery.raw).expect("the new secret signs");
    check_switchyard_signature(other, &delivery);
    assert!(verify_standard(&secret, &delivery, &delivery.raw).is_err());
    server.stop().await;
}

/// `X-Switchyard-Event-Id` is the receiver's idempotency key (seed 002): two workflows started by
/// one event make two deliveries with two keys, and a retried delivery keeps its key.
async fn event_id_header_is_per_delivered_step(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let (erp, crm) = (Receiver::start().await, Receiver::start().await);
    erp.script(&[Answer::Status(500)]);
    for (name, receiver) in [("to the ERP", &erp), ("to the CRM", &crm)] {
        let body = workflow(
            name,
            "order_paid",
            json!([{"type": "webhook", "url": receiver.url}]),
        );
        create(&server, &key, &body).await;
    }
    ingest(
        &server,
        &key,
        &order_event("order_paid", "paid-7", "ord_7", json!({"status": "paid"})),
    )
    .await;

    // The ERP answered 500 once: its step's second attempt carries the same key.
    let to_erp = erp.wait_for(2, WAIT).await;
    let to_crm = crm.wait_for(1, WAIT).await;
    let id = |d: &Received| d.header("x-switchyard-event-id").to_owned();
    assert!(!id(&to_erp[0]).is_empty(), "no X-Switchyard-Event-Id");
    assert_eq!(id(&to_erp[0]), id(&to_erp[1]), "a retry changed the key");
    assert_eq!(to_erp[0].body["data"]["execution"]["attempt"], 1);
    assert_eq!(to_erp[1].body["data"]["execution"]["attempt"], 2);
    // Two workflows, two steps, two keys: a receiver deduplicating on it keeps both.
    assert_ne!(id(&to_erp[0]), id(&to_crm[0]));
    for delivery in [&to_erp[0], &to_erp[1], &to_crm[0]] {
        // The step's key, the same as `webhook-id`…
        assert_eq!(id(delivery), delivery.header("webhook-id"));
        let step = delivery.body["data"]["execution"]["stepId"]
            .as_str()
            .expect("stepId")
            .replace('-', "");
        assert_eq!(id(delivery), format!("msg_{step}"));
        // …and the event's own key stays in the body for correlation.
        assert_eq!(delivery.body["data"]["event"]["id"], "paid-7");
        assert_eq!(delivery.header("x-switchyard-event-type"), "order_paid");
    }
    let event = eventually(&server, &key, "/api/events/paid-7", WAIT, |e| {
        e["executions"].as_array().is_some_and(|x| x.len() == 2)
    })
    .await;
    for execution in event["executions"].as_array().expect("executions") {
        let id = execution["id"].as_str().expect("execution id");
        server.execution_in(&key, id, "succeeded").await;
    }
    assert_eq!(erp.count(), 2);
    assert_eq!(crm.count(), 1);
    server.stop().await;
}

/// A server that refuses private targets: IP literals are refused when the workflow is saved,
/// names and rendered templates when the step runs, before any connection is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_without_the_flag() {
    let server = TestServer::start_with(Db::Sqlite, &["--allow-private-targets=false"]).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("receiver port")
        .to_owned();

    for url in [
        receiver.url.clone(),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let body = workflow(
            "private",
            "order_paid",
            json!([{"type": "webhook", "url": url}]),
        );
        let reply = server.post(&key, "/api/workflows/configure", &body).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not allowed"), "{url}: {message}");
    }

    // A name that resolves to loopback is only known to be private once resolved.
    let localhost = format!("http://localhost:{port}/hook");
    create(
        &server,
        &key,
        &workflow(
            "by name",
            "order_paid",
            json!([{"type": "webhook", "url": localhost}]),
        ),
    )
    .await;
    ingest(
        &server,
        &key,
        &order_event("order_paid", "ssrf-1", "ord_1", json!({})),
    )
    .await;
    let paused = finished(&server, &key, "ssrf-1", "paused").await;
    assert_eq!(paused["pauseReason"], "action_failed");
    assert_eq!(attempts(&paused).len(), 1, "refused at once: {paused}");
    let error = last_error(&paused);
    assert!(error.contains("not allowed"), "{error}");
    assert!(error.contains("localhost"), "{error}");

    // An IP literal that a template renders is checked before the request.
    create(
        &server,
        &key,
        &workflow(
            "templated",
            "order_created",
            json!([{"type": "webhook", "url": "http://{{ entity.host }}/hook"}]),
        ),
    )
    .await;
    let data = json!({"host": format!("127.0.0.1:{port}")});
    ingest(
        &server,
        &key,
        &order_event("order_created", "ssrf-2", "ord_2", data),
    )
    .await;
    let paused = finished(&server, &key, "ssrf-2", "paused").await;
    assert_eq!(attempts(&paused).len(), 1);
    let error = last_error(&paused);
    assert!(error.contains("not allowed"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");

    assert_eq!(receiver.count(), 0, "a refused target was reached");
    server.stop().await;
}

async fn a_gone_endpoint_is_disabled_until_its_workflow_is_saved(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(410));
    let body = workflow(
        "gone",
        "order_paid",
        json!([{"type": "webhook", "url": receiver.url}]),
    );
    let (guid, _) = create(&server, &key, &body).await;

    // A 410 fails the step at once, no retries.
    ingest(
        &server,
        &key,
        &order_event("order_paid", "gone-1", "ord_1", json!({})),
    )
    .await;
    let paused = finished(&server, &key, "gone-1", "paused").await;
    assert_eq!(attempts(&paused).len(), 1, "{paused}");
    assert!(last_error(&paused).contains("410"), "{paused}");
    assert_eq!(receiver.count(), 1);

    // The endpoint is now disabled: the next step fails without a request.
    ingest(
        &server,
        &key,
        &order_event("order_paid", "gone-2", "ord_2", json!({})),
    )
    .await;
    let paused = finished(&server, &key, "gone-2", "paused").await;
    assert_eq!(attempts(&paused).len(), 1, "{paused}");
    let error = last_error(&paused);
    assert!(error.contains("disabled"), "{error}");
    assert!(error.contains("410"), "the reason is given: {error}");
    assert_eq!(receiver.count(), 1, "a disabled endpoint was called");

    // Saving the workflow again re-enables it.
    receiver.answer_always(Answer::Ok);
    let mut update = body.clone();
    update["guid"] = json!(guid);
    server
        .post(&key, "/api/workflows/configure", &update)
        .await
        .assert_ok(200);
    ingest(
        &server,
        &key,
        &order_event("order_paid", "gone-3", "ord_3", json!({})),
    )
    .await;
    finished(&server, &key, "gone-3", "succeeded").await;
    assert_eq!(receiver.count(), 2);
    server.stop().await;
}

async fn a_hundred_failed_attempts_disable_an_endpoint(db: Db) {
    // Four attempts per execution, quickly: 25 executions make 100 failed attempts.
    let server = TestServer::start_with(db, &["--retry-schedule", "10ms,10ms,10ms"]).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500));
    let (guid, _) = create(
        &server,
        &key,
        &workflow(
            "failing",
            "order_paid",
            json!([{"type": "webhook", "url": receiver.url}]),
        ),
    )
    .await;

    for n in 0..25 {
        let event = order_event("order_paid", &format!("fail-{n}"), "ord_1", json!({}));
        ingest(&server, &key, &event).await;
    }
    let path = format!("/api/executions?workflowId={guid}&status=paused&limit=200");
    eventually(&server, &key, &path, Duration::from_secs(60), |list| {
        list.as_array().is_some_and(|l| l.len() == 25)
    })
    .await;
    assert_eq!(receiver.count(), 100);

    ingest(
        &server,
        &key,
        &order_event("order_paid", "fail-25", "ord_1", json!({})),
    )
    .await;
    let paused = finished(&server, &key, "fail-25", "paused").await;
    assert_eq!(attempts(&paused).len(), 1, "{paused}");
    let error = last_error(&paused);
    assert!(error.contains("disabled"), "{error}");
    assert!(error.contains("100 consecutive failed attempts"), "{error}");
    assert_eq!(receiver.count(), 100, "a disabled endpoint was called");
    server.stop().await;
}

// --- templates -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_per_step_and_their_errors_are_permanent() {
    let server = TestServer::start(Db::Sqlite).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;

    // A template that does not parse is refused when the workflow is saved.
    let broken = workflow(
        "broken",
        "order_paid",
        json!([{"type": "webhook", "url": receiver.url, "headers": {"X-Order": "{{ entity.number "}}]),
    );
    let reply = server.post(&key, "/api/workflows/configure", &broken).await;
    reply.assert_error(400, "VALIDATION_ERROR");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("template does not parse"), "{message}");

    // Entity and event fields rendered into a header.
    let headers = json!({"X-Order-Ref": "{{ entity.number }}/{{ entity.customer.email | upper }}",
                         "X-Trigger": "{{ event.trigger }}"});
    create(
        &server,
        &key,
        &workflow(
            "headers",
            "order_paid",
            json!([{"type": "webhook", "url": receiver.url, "headers": headers}]),
        ),
    )
    .await;
    let data = json!({"number": "1042", "customer": {"email": "ana@example.com"}});
    ingest(
        &server,
        &key,
        &order_event("order_paid", "tpl-1", "ord_1", data),
    )
    .await;
    let delivery = receiver.wait_for(1, WAIT).await.remove(0);
    assert_eq!(delivery.header("x-order-ref"), "1042/ANA@EXAMPLE.COM");
    assert_eq!(delivery.header("x-trigger"), "order_paid");

    // A template that parses but fails when rendered (an unknown filter is looked up at render
    // time): the step fails at once with the template's message.
    let url = format!(
        "{}?ref={{{{ entity.number | no_such_filter }}}}",
        receiver.url
    );
    create(
        &server,
        &key,
        &workflow(
            "render error",
            "order_created",
            json!([{"type": "webhook", "url": url}]),
        ),
    )
    .await;
    let data = json!({"number": "1043"});
    ingest(
        &server,
        &key,
        &order_event("order_created", "tpl-2", "ord_2", data),
    )
    .await;
    let paused = finished(&server, &key, "tpl-2", "paused").await;
    assert_eq!(paused["pauseReason"], "action_failed");
    assert_eq!(attempts(&paused).len(), 1, "{paused}");
    let error = last_error(&paused);
    assert!(error.contains("template error in url"), "{error}");
    assert!(error.contains("no_such_filter"), "{error}");
    assert_eq!(
        receiver.count(),
        1,
        "nothing was sent for the failed template"
    );
    server.stop().await;
}

// --- send_email ------------------------------------------------------------------------------

async fn email_reaches_the_customer_and_the_merchant(db: Db) {
    let smtp = SmtpSink::start();
    let smtp_url = smtp.url();
    let server = TestServer::start_with(
        db,
        &[
            "--smtp-url",
            &smtp_url,
            "--email-from",
            "Larkspur Goods <orders@larkspur.example>",
        ],
    )
    .await;
    let (tenant_id, key) = server.tenant("Larkspur").await;

    // Tenant settings: read, and refused when the address is not one.
    let settings = server.get(&key, "/api/tenant/settings").await;
    let settings = settings.assert_ok(200);
    assert_eq!(settings["tenantId"], tenant_id);
    assert_eq!(settings["notificationEmail"], Value::Null);
    for bad in [
        "not an address",
        "owner@",
        "owner@localhost",
        "a b@example.com",
        // Blank is not an address either (null clears it): found by schemathesis.
        "",
        "  ",
    ] {
        let reply = server
            .put(
                &key,
                "/api/tenant/settings",
                &json!({"notificationEmail": bad}),
            )
            .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.body["error"]["details"]["field"], "notificationEmail");
    }

    create(
        &server,
        &key,
        &workflow(
            "confirmation",
            "order_paid",
            json!([{"type": "send_email", "recipient": "customer", "template": "order_confirmation"}]),
        ),
    )
    .await;
    create(
        &server,
        &key,
        &workflow(
            "merchant alert",
            "order_created",
            json!([{"type": "send_email", "recipient": "merchant",
                    "subject": "New order {{ entity.number }}",
                    "body": "{{ entity.customer.email }} ordered for {{ entity.total }}."}]),
        ),
    )
    .await;

    // `recipient: customer` with a built-in template.
    let order = json!({"number": "1042", "status": "paid", "total": 87.0, "currency": "USD",
                       "customer": {"email": "dana@example.com", "firstName": "Dana"}});
    ingest(
        &server,
        &key,
        &order_event("order_paid", "mail-1", "1042", order),
    )
    .await;
    let done = finished(&server, &key, "mail-1", "succeeded").await;
    let step_id = done["steps"][0]["id"].as_str().expect("step id").to_owned();
    let messages = smtp.wait_for(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, "orders@larkspur.example");
    assert_eq!(messages[0].rcpt_to, ["dana@example.com"]);
    let message = MessageParser::default()
        .parse(&messages[0].data)
        .expect("a MIME message");
    assert_eq!(message.subject(), Some("Order 1042 confirmed"));
    // mail-parser drops the angle brackets of `<step id@From domain>`.
    assert_eq!(
        message.message_id(),
        Some(format!("{step_id}@larkspur.example").as_str())
    );
    let from = message.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("orders@larkspur.example"));
    let text = message.body_text(0).expect("text part");
    assert!(text.contains("Hi Dana"), "{text}");
    assert!(text.contains("Order total: 87.00 USD"), "{text}");
    assert!(
        message.body_html(0).is_some(),
        "the template has an HTML part"
    );
    let output = &attempts(&done)[0]["output"];
    assert_eq!(output["to"], "dana@example.com");

    // `recipient: merchant` without a notification address: the execution pauses, clearly.
    let order = json!({"number": "1043", "total": 12.5,
                       "customer": {"email": "eli@example.com"}});
    ingest(
        &server,
        &key,
        &order_event("order_created", "mail-2", "1043", order),
    )
    .await;
    let paused = finished(&server, &key, "mail-2", "paused").await;
    assert_eq!(attempts(&paused).len(), 1, "{paused}");
    let error = last_error(&paused);
    assert!(error.contains("no notification email address"), "{error}");
    assert_eq!(smtp.messages().len(), 1);

    // Set it, resume: the step reads the tenant's address when it runs.
    let saved = server
        .put(
            &key,
            "/api/tenant/settings",
            &json!({"notificationEmail": " owner@larkspur.example "}),
        )
        .await;
    assert_eq!(
        saved.assert_ok(200)["notificationEmail"],
        "owner@larkspur.example"
    );
    let read = server.get(&key, "/api/tenant/settings").await;
    assert_eq!(
        read.assert_ok(200)["notificationEmail"],
        "owner@larkspur.example"
    );
    let id = paused["id"].as_str().expect("execution id");
    server
        .get(
            &key,
            &format!("/api/workflows/resume-workflow?workflowId={id}"),
        )
        .await
        .assert_ok(200);
    server.execution_in(&key, id, "succeeded").await;
    let messages = smtp.wait_for(2, WAIT).await;
    assert_eq!(messages[1].rcpt_to, ["owner@larkspur.example"]);
    let message = MessageParser::default()
        .parse(&messages[1].data)
        .expect("a MIME message");
    assert_eq!(message.subject(), Some("New order 1043"));
    let text = message.body_text(0).expect("text part");
    assert!(text.contains("eli@example.com ordered for 12.5."), "{text}");

    // Clearing it is allowed.
    let cleared = server
        .put(
            &key,
            "/api/tenant/settings",
            &json!({"notificationEmail": null}),
        )
        .await;
    assert_eq!(cleared.assert_ok(200)["notificationEmail"], Value::Null);
    server.stop().await;
}

// --- send_push -------------------------------------------------------------------------------

/// One request as the test push service saw it.
#[derive(Debug, Clone)]
struct PushRequest {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl PushRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type PushLog = Arc<Mutex<Vec<PushRequest>>>;

/// A push service: `/gone/…` answers 410, anything else 201.
async fn push_receive(
    State(log): State<PushLog>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let gone = path.starts_with("/gone/");
    log.lock().expect("lock").push(PushRequest {
        path,
        headers,
        body: body.to_vec(),
    });
    if gone {
        StatusCode::GONE.into_response()
    } else {
        StatusCode::CREATED.into_response()
    }
}

async fn push_service() -> (String, PushLog) {
    let log = PushLog::default();
    let app = Router::new().fallback(push_receive).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, log)
}

async fn push_requests(log: &PushLog, n: usize) -> Vec<PushRequest> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = log.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the push service got {} of {n} requests",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a subscribed browser keeps: its private key and auth secret never leave it.
struct Browser {
    endpoint: String,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
    auth: [u8; 16],
}

impl Browser {
    fn new(endpoint: String) -> Browser {
        let secret = loop {
            let mut scalar = [0u8; 32];
            rand::fill(&mut scalar[..]);
            if let Ok(secret) = p256::SecretKey::from_slice(&scalar) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        rand::fill(&mut auth[..]);
        Browser {
            endpoint,
            public_key: secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            private_key: secret.to_bytes().to_vec(),
            auth,
        }
    }

    /// `PushSubscription.toJSON()`.
    fn subscription(&self) -> Value {
        json!({"endpoint": self.endpoint, "expirationTime": null,
               "keys": {"p256dh": URL_SAFE_NO_PAD.encode(&self.public_key),
                        "auth": URL_SAFE_NO_PAD.encode(self.auth)}})
    }

    fn decrypt(&self, body: &[u8]) -> Value {
        let keys = ece::EcKeyComponents::new(self.private_key.clone(), self.public_key.clone());
        let plain = ece::decrypt(&keys, &self.auth, body).expect("aes128gcm decrypts");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}

/// Checks `Authorization: vapid t=<JWT>, k=<public key>`: `k` is the server's key and the JWT's
/// ES256 signature verifies with it. Returns the claims.
fn vapid_claims(request: &PushRequest, public_key: &str) -> Value {
    let auth = request.header("authorization").expect("Authorization");
    let rest = auth.strip_prefix("vapid ").expect("the vapid scheme");
    let (mut token, mut k) = (None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(v) = part.strip_prefix("k=") {
            k = Some(v);
        }
    }
    let (token, k) = (token.expect("t="), k.expect("k="));
    assert_eq!(k, public_key, "k is the server's VAPID public key");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three parts");
    let key = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).expect("b64"))
        .expect("a P-256 point");
    let signature =
        Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).expect("b64")).expect("r||s");
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the ES256 signature verifies with k");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("claims")
}

async fn push_is_encrypted_signed_and_prunes_gone_subscriptions(db: Db) {
    // Without a VAPID key there is no public key to give out.
    let plain = TestServer::start(db).await;
    let (_, key) = plain.tenant("Acme").await;
    plain
        .get(&key, "/api/integrations/vapid-public-key")
        .await
        .assert_error(400, "CONFIGURATION_ERROR");
    plain.stop().await;

    let vapid = switchyard_actions::vapid::generate_keypair();
    let key_flag = format!("--vapid-private-key={}", vapid.private_key);
    let server = TestServer::start_with(
        db,
        &[&key_flag, "--vapid-subject", "mailto:ops@larkspur.example"],
    )
    .await;
    let (_, key) = server.tenant("Acme").await;
    let reply = server.get(&key, "/api/integrations/vapid-public-key").await;
    assert_eq!(reply.assert_ok(200)["publicKey"], vapid.public_key);

    let (origin, log) = push_service().await;
    let live = Browser::new(format!("{origin}/ok/sub-1"));
    let gone = Browser::new(format!("{origin}/gone/sub-2"));
    let save = "/api/integrations/save-vapid-subscription";

    // Validation: each bad part is named.
    let mut bad_point = live.subscription();
    bad_point["keys"]["p256dh"] = json!(URL_SAFE_NO_PAD.encode([4u8; 33]));
    let mut short_auth = live.subscription();
    short_auth["keys"]["auth"] = json!(URL_SAFE_NO_PAD.encode([7u8; 15]));
    for (body, field) in [(bad_point, "p256dh"), (short_auth, "auth")] {
        let reply = server.post(&key, save, &body).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            reply.body["error"]["details"]["field"], field,
            "{:?}",
            reply.body
        );
    }
    server
        .post(&key, save, &json!({"endpoint": live.endpoint}))
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let first = server.post(&key, save, &live.subscription()).await;
    assert_eq!(first.assert_ok(201)["created"], true);
    let again = server.post(&key, save, &live.subscription()).await;
    assert_eq!(again.assert_ok(200)["created"], false);
    server
        .post(&key, save, &gone.subscription())
        .await
        .assert_ok(201);

    create(
        &server,
        &key,
        &workflow(
            "shipped push",
            "order_paid",
            json!([{"type": "send_push", "title": "Order {{ entity.number }} paid",
                    "body": "Thanks, {{ entity.customer.firstName }}", "url": "/orders/{{ entity.number }}",
                    "ttl": 600}]),
        ),
    )
    .await;
    let order = json!({"number": "1042", "customer": {"firstName": "Dana"}});
    ingest(
        &server,
        &key,
        &order_event("order_paid", "push-1", "1042", order.clone()),
    )
    .await;
    let done = finished(&server, &key, "push-1", "succeeded").await;
    let summary = attempts(&done)[0]["output"]["summary"].clone();
    assert_eq!(
        summary, "delivered to 1 of 2 push subscriptions, 1 gone",
        "{done}"
    );
    let step_id = done["steps"][0]["id"].clone();

    let requests = push_requests(&log, 2).await;
    for (browser, request) in [&live, &gone].into_iter().map(|b| {
        let path = b.endpoint.trim_start_matches(&origin);
        let request = requests.iter().find(|r| r.path == path).expect("a request");
        (b, request)
    }) {
        assert_eq!(request.header("content-encoding"), Some("aes128gcm"));
        assert_eq!(request.header("ttl"), Some("600"));
        let payload = browser.decrypt(&request.body);
        assert_eq!(payload["title"], "Order 1042 paid");
        assert_eq!(payload["body"], "Thanks, Dana");
        assert_eq!(payload["url"], "/orders/1042");
        assert_eq!(payload["stepId"], step_id);
        let claims = vapid_claims(request, &vapid.public_key);
        assert_eq!(claims["aud"], origin);
        assert_eq!(claims["sub"], "mailto:ops@larkspur.example");
        let exp = claims["exp"].as_i64().expect("exp");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
    }

    // The 410 removed that subscription: the next push reaches only the live one.
    ingest(
        &server,
        &key,
        &order_event("order_paid", "push-2", "1042", order),
    )
    .await;
    let done = finished(&server, &key, "push-2", "succeeded").await;
    assert_eq!(
        attempts(&done)[0]["output"]["summary"],
        "delivered to 1 of 1 push subscriptions"
    );
    let requests = push_requests(&log, 3).await;
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].path, "/ok/sub-1");
    let gone_calls = requests
        .iter()
        .filter(|r| r.path.starts_with("/gone/"))
        .count();
    assert_eq!(gone_calls, 1, "a removed subscription was pushed to");
    server.stop().await;
}

// --- update_status ---------------------------------------------------------------------------

async fn update_status_changes_the_entity_and_emits_the_change(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    create(
        &server,
        &key,
        &workflow(
            "fulfil",
            "order_paid",
            json!([{"type": "update_status", "status": "fulfilled"}]),
        ),
    )
    .await;
    let data = json!({"status": "paid", "total": 10.0});
    ingest(
        &server,
        &key,
        &order_event("order_paid", "st-1", "ord_7", data),
    )
    .await;
    let done = finished(&server, &key, "st-1", "succeeded").await;

    let path = "/api/events?entityType=Order&trigger=order_status_changed";
    let changed = eventually(&server, &key, path, WAIT, |list| {
        list.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    let changed = &changed[0];
    assert_eq!(changed["entityId"], "ord_7");
    assert_eq!(changed["data"]["status"], "fulfilled");
    assert_eq!(changed["data"]["total"], 10.0);
    assert_eq!(changed["previous"]["status"], "paid");
    assert_eq!(changed["depth"], 1);
    let cause = server.get(&key, "/api/events/st-1").await;
    assert_eq!(changed["causationId"], cause.assert_ok(200)["id"]);
    assert_eq!(done["steps"][0]["status"], "succeeded");

    // The new status names a trigger of its own.
    let path = "/api/events?entityType=Order&trigger=order_fulfilled";
    let fulfilled = eventually(&server, &key, path, WAIT, |list| {
        list.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(fulfilled[0]["previous"]["status"], "paid");
    server.stop().await;
}
