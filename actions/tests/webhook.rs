//! The webhook action against real HTTP receivers on loopback: signatures checked with the
//! independent `standardwebhooks` crate, retry decisions per status, the SSRF guard, the body cap
//! and the timeout.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use switchyard_actions::builtin::{BuiltinSettings, WebhookAction, WebhookConfig};
use switchyard_actions::http::{
    GuardedClient, KEPT_BODY_BYTES, MAX_BODY_BYTES, OutboundRequest, Url, is_public_ip,
};
use switchyard_actions::sign::generate_secret;
use switchyard_actions::{Action, ActionError, StepContext, TenantView};
use tokio::sync::Notify;
use uuid::Uuid;

const CHUNK: usize = 8 * 1024;

/// One request a receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A real HTTP server on an ephemeral loopback port that records what reaches it. The path picks
/// the answer: `/status/<code>`, `/endless`, anything else 200 "ok".
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Set when the body stream of `/endless` is dropped: the client went away.
    endless_dropped: Arc<AtomicBool>,
    endless_notify: Arc<Notify>,
}

impl Receiver {
    async fn start(bind: &str) -> (Self, SocketAddr) {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Sets the flag when the streaming body is dropped by the server, i.e. its client is gone.
struct DropFlag(Arc<AtomicBool>, Arc<Notify>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.notify_waiters();
        self.1.notify_one();
    }
}

async fn answer(State(receiver): State<Receiver>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    receiver.seen.lock().expect("lock").push(Seen {
        method: parts.method,
        path: path.clone(),
        headers: parts.headers,
        body,
    });
    if path == "/endless" {
        let flag = DropFlag(
            receiver.endless_dropped.clone(),
            receiver.endless_notify.clone(),
        );
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let stream = futures::stream::repeat(chunk).map(move |c| {
            let _alive = &flag;
            Ok::<_, Infallible>(c)
        });
        return Body::from_stream(stream).into_response();
    }
    let Some(code) = path.strip_prefix("/status/") else {
        return (StatusCode::OK, "ok").into_response();
    };
    let status = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, "boom").into_response();
    let headers = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert("retry-after", "7".parse().expect("value"));
    }
    if status.is_redirection() {
        headers.insert("location", "/target".parse().expect("value"));
    }
    response
}

fn ctx(step_id: Uuid, attempt: u32) -> StepContext {
    StepContext {
        step_id,
        execution_id: Uuid::new_v4(),
        workflow_id: Uuid::new_v4(),
        attempt,
        entity_type: "Order".to_owned(),
        entity_id: "ord_1001".to_owned(),
        entity: json!({"id": "ord_1001", "status": "paid", "total": 120.5}),
        event: json!({"id": "evt_42", "trigger": "order_paid", "occurredAt": "2026-01-01T00:00:00Z"}),
        workflow: json!({"guid": Uuid::new_v4(), "name": "Paid hook", "version": 1}),
        tenant: TenantView::default(),
        template_limits: Default::default(),
    }
}

fn open_client() -> GuardedClient {
    GuardedClient::new(true).expect("client")
}

fn config(url: String, secret: &str) -> WebhookConfig {
    WebhookConfig {
        url,
        headers: Some([("X-Shop".to_owned(), "demo".to_owned())].into()),
        secret: Some(secret.to_owned()),
    }
}

fn retryable(
    result: Result<switchyard_actions::Outcome, ActionError>,
) -> (String, Option<Duration>) {
    match result {
        Err(ActionError::Retryable { reason, after }) => (reason, after),
        other => panic!("expected Retryable, got {other:?}"),
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

#[tokio::test]
async fn delivery_is_signed_and_verifies_independently() {
    let (receiver, addr) = Receiver::start("127.0.0.1:0").await;
    let secret = generate_secret();
    let action = WebhookAction::new(open_client());
    let step = Uuid::new_v4();
    let outcome = action
        .execute(
            config(format!("http://{addr}/hook"), &secret),
            &ctx(step, 1),
        )
        .await
        .expect("delivered");
    assert_eq!(outcome.summary, "200 OK");
    assert_eq!(
        outcome.output,
        json!({"status": 200, "body": "ok", "truncated": false})
    );

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.path, "/hook");

    // Standard Webhooks, checked by the reference crate.
    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret");
    verifier
        .verify(&got.body, &got.headers)
        .expect("signature verifies");
    let mut tampered = got.body.to_vec();
    tampered.extend_from_slice(b" ");
    assert!(verifier.verify(&tampered, &got.headers).is_err());

    // X-Switchyard-Signature, recomputed: key = the whole secret string, message "t.body".
    let timestamp = header(got, "webhook-timestamp");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&got.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(got, "x-switchyard-signature"),
        format!("t={timestamp},v1={hex}")
    );

    assert_eq!(header(got, "webhook-id"), format!("msg_{}", step.simple()));
    assert_eq!(header(got, "content-type"), "application/json");
    assert!(header(got, "user-agent").starts_with("Switchyard-Webhooks/"));
    assert_eq!(header(got, "x-switchyard-event-type"), "order_paid");
    // One per delivered step, like `webhook-id`; the event's own key is in the body.
    assert_eq!(
        header(got, "x-switchyard-event-id"),
        format!("msg_{}", step.simple())
    );
    assert_eq!(header(got, "x-shop"), "demo");

    let body: Value = serde_json::from_slice(&got.body).expect("json body");
    assert_eq!(body["type"], "order_paid");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap_or("")).is_ok());
    assert_eq!(body["data"]["entity"]["id"], "ord_1001");
    assert_eq!(body["data"]["event"]["id"], "evt_42");
    assert_eq!(body["data"]["workflow"]["name"], "Paid hook");
    assert_eq!(body["data"]["execution"]["stepId"], json!(step));
    assert_eq!(body["data"]["execution"]["attempt"], 1);
}

#[tokio::test]
async fn every_attempt_of_a_step_keeps_its_id_and_is_signed_afresh() {
    let (receiver, addr) = Receiver::start("127.0.0.1:0").await;
    let secret = generate_secret();
    // The clock moves a minute between attempts, without sleeping.
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let action = WebhookAction::new(open_client()).with_clock(move || {
        Utc::now() + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst))
    });
    let step = Uuid::new_v4();
    let url = format!("http://{addr}/hook");
    action
        .execute(config(url.clone(), &secret), &ctx(step, 1))
        .await
        .expect("first attempt");
    offset.store(60, Ordering::SeqCst);
    action
        .execute(config(url, &secret), &ctx(step, 2))
        .await
        .expect("second attempt");

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(header(a, "webhook-id"), header(b, "webhook-id"));
    assert_eq!(
        header(a, "x-switchyard-event-id"),
        header(b, "x-switchyard-event-id")
    );
    assert_ne!(
        header(a, "webhook-timestamp"),
        header(b, "webhook-timestamp")
    );
    assert_ne!(
        header(a, "webhook-signature"),
        header(b, "webhook-signature")
    );
    assert_ne!(
        header(a, "x-switchyard-signature"),
        header(b, "x-switchyard-signature")
    );
    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret");
    for got in [a, b] {
        verifier.verify(&got.body, &got.headers).expect("verifies");
    }
}

#[tokio::test]
async fn failing_statuses_map_to_retry_decisions() {
    let (receiver, addr) = Receiver::start("127.0.0.1:0").await;
    let secret = generate_secret();
    let action = WebhookAction::new(open_client());
    let run = |path: &str| {
        let config = config(format!("http://{addr}{path}"), &secret);
        let action = &action;
        async move { action.execute(config, &ctx(Uuid::new_v4(), 1)).await }
    };

    let (reason, after) = retryable(run("/status/500").await);
    assert_eq!(reason, "HTTP 500 Internal Server Error: boom");
    assert_eq!(after, None);

    let (reason, after) = retryable(run("/status/503").await);
    assert!(
        reason.starts_with("HTTP 503 Service Unavailable"),
        "{reason}"
    );
    assert_eq!(after, Some(Duration::from_secs(7)));

    match run("/status/410").await {
        Err(ActionError::EndpointGone { reason }) => assert!(reason.contains("410"), "{reason}"),
        other => panic!("expected EndpointGone, got {other:?}"),
    }

    let (reason, _) = retryable(run("/status/302").await);
    assert!(reason.starts_with("HTTP 302 Found"), "{reason}");
    assert!(reason.contains("not followed"), "{reason}");
    // The redirect was not followed: its target never saw a request.
    assert!(receiver.seen().iter().all(|s| s.path != "/target"));

    // Nothing listens on a port just released: a refused connection is worth a retry.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let result = action
        .execute(
            config(format!("http://{closed_addr}/"), &secret),
            &ctx(Uuid::new_v4(), 1),
        )
        .await;
    assert_eq!(retryable(result).0, "connection refused");
}

#[tokio::test]
async fn private_targets_are_refused_before_any_request() {
    let (v4, v4_addr) = Receiver::start("127.0.0.1:0").await;
    let (v6, v6_addr) = Receiver::start("[::1]:0").await;
    let guarded = WebhookAction::new(GuardedClient::new(false).expect("client"));
    let secret = generate_secret();
    let port = v4_addr.port();
    let targets = [
        format!("http://127.0.0.1:{port}/hook"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest".to_owned(),
        format!("http://[::1]:{}/hook", v6_addr.port()),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        // A name, so the refusal happens on the addresses DNS returned.
        format!("http://localhost:{port}/hook"),
    ];
    for url in targets {
        let started = Instant::now();
        match guarded
            .execute(config(url.clone(), &secret), &ctx(Uuid::new_v4(), 1))
            .await
        {
            Err(ActionError::Permanent { reason }) => {
                assert!(reason.starts_with("target not allowed"), "{url}: {reason}")
            }
            other => panic!("{url}: expected Permanent, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{url} was slow");
    }
    assert!(v4.seen().is_empty(), "{:?}", v4.seen());
    assert!(v6.seen().is_empty(), "{:?}", v6.seen());

    // The same targets are reachable when the operator allows private targets.
    let open = WebhookAction::new(open_client());
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{}/hook", v6_addr.port()),
    ] {
        open.execute(config(url, &secret), &ctx(Uuid::new_v4(), 1))
            .await
            .expect("delivered");
    }
    assert_eq!(v4.seen().len() + v6.seen().len(), 2);
}

#[tokio::test]
async fn the_registry_carries_the_webhook_action() {
    let registry =
        switchyard_actions::builtin::registry(&BuiltinSettings::default()).expect("registry");
    let webhook = registry.get("webhook").expect("registered");
    assert_eq!(webhook.secret_params(), ["secret"]);
    let prepared = registry
        .prepare(
            "webhook",
            json!({"url": "https://example.com/hook"})
                .as_object()
                .expect("object"),
        )
        .expect("valid");
    assert_eq!(prepared.generated, ["secret"]);
    let error = registry
        .prepare(
            "webhook",
            json!({"url": "http://169.254.169.254/latest"})
                .as_object()
                .expect("object"),
        )
        .expect_err("metadata address");
    assert!(
        error.message.contains("target not allowed"),
        "{}",
        error.message
    );
}

#[test]
fn only_public_addresses_pass() {
    let table = [
        ("8.8.8.8", true),
        ("1.1.1.1", true),
        ("2606:4700:4700::1111", true),
        ("0.0.0.0", false),
        ("0.1.2.3", false),
        ("10.1.2.3", false),
        ("100.64.0.1", false),
        ("100.127.255.255", false),
        ("100.128.0.1", true),
        ("127.0.0.1", false),
        ("169.254.169.254", false),
        ("172.16.0.1", false),
        ("172.31.255.255", false),
        ("172.32.0.1", true),
        ("192.0.2.1", false),
        ("192.168.1.1", false),
        ("198.18.0.1", false),
        ("198.19.255.255", false),
        ("198.51.100.1", false),
        ("203.0.113.9", false),
        ("224.0.0.1", false),
        ("240.0.0.1", false),
        ("255.255.255.255", false),
        ("::", false),
        ("::1", false),
        ("::ffff:127.0.0.1", false),
        ("::ffff:10.0.0.1", false),
        ("::ffff:8.8.8.8", true),
        ("::127.0.0.1", false),
        ("64:ff9b::a9fe:a9fe", false),
        ("2002:c0a8:0101::1", false),
        ("fd00::1", false),
        ("fc00::1", false),
        ("fe80::1", false),
        ("ff02::1", false),
        ("2001:db8::1", false),
    ];
    for (text, public) in table {
        let ip: IpAddr = text.parse().expect("address");
        assert_eq!(is_public_ip(ip), public, "{text}");
    }
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    let (receiver, addr) = Receiver::start("127.0.0.1:0").await;
    let action = WebhookAction::new(open_client());
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        action.execute(
            config(format!("http://{addr}/endless"), &generate_secret()),
            &ctx(Uuid::new_v4(), 1),
        ),
    )
    .await
    .expect("returned promptly")
    .expect("2xx is success");
    assert_eq!(outcome.output["truncated"], true);
    assert_eq!(
        outcome.output["body"].as_str().map(str::len),
        Some(KEPT_BODY_BYTES)
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The client hung up after the cap: the receiver's body stream was dropped.
    let dropped = tokio::time::timeout(Duration::from_secs(5), async {
        while !receiver.endless_dropped.load(Ordering::SeqCst) {
            receiver.endless_notify.notified().await;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the receiver never saw the client go away");

    // Through the client directly: no more than the cap and the chunk that crossed it was read.
    let client = open_client();
    let url = Url::parse(&format!("http://{addr}/endless")).expect("url");
    let response = client
        .send(OutboundRequest::get(url))
        .await
        .expect("response");
    assert!(response.body.truncated);
    assert!(response.body.bytes_read >= MAX_BODY_BYTES);
    assert!(
        response.body.bytes_read <= MAX_BODY_BYTES + CHUNK,
        "read {} bytes",
        response.body.bytes_read
    );
}

#[tokio::test]
async fn a_silent_receiver_hits_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = GuardedClient::builder()
        .allow_private_targets(true)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let action = WebhookAction::new(client);
    let started = Instant::now();
    let result = action
        .execute(
            config(format!("http://{addr}/hook"), &generate_secret()),
            &ctx(Uuid::new_v4(), 1),
        )
        .await;
    assert_eq!(retryable(result).0, "timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(4));
}
