//! `send_push` against a real push service on 127.0.0.1: the message is decrypted with the `ece`
//! crate and the subscription's own private key, and the VAPID token is verified from scratch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Map, Value, json};
use switchyard_actions::builtin::{BuiltinSettings, registry};
use switchyard_actions::vapid::{generate_keypair, public_key_for, validate_subscription};
use switchyard_actions::{
    ActionError, Effect, Outcome, PushSubscription, RecordKind, StepContext, TenantView,
};
use uuid::Uuid;

const SUBJECT: &str = "mailto:ops@shop.example";

/// One request as the push service saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct PushService {
    received: Arc<Mutex<Vec<Received>>>,
}

/// The answer depends on the path's first segment, so one service plays every push service.
async fn receive(
    State(service): State<PushService>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    service.received.lock().expect("lock").push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.starts_with("/gone/") {
        StatusCode::GONE.into_response()
    } else if path.starts_with("/busy/") {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "120")],
            "try later",
        )
            .into_response()
    } else if path.starts_with("/big/") {
        StatusCode::PAYLOAD_TOO_LARGE.into_response()
    } else {
        StatusCode::CREATED.into_response()
    }
}

/// Starts the push service on a free port; returns its origin and what it receives.
async fn push_service() -> (String, PushService) {
    let service = PushService::default();
    let app = Router::new().fallback(receive).with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, service)
}

/// What a browser keeps after subscribing: its private key and auth secret stay with it.
struct Browser {
    private_key: Vec<u8>,
    public_key: Vec<u8>,
    auth: [u8; 16],
    subscription: PushSubscription,
}

fn browser(endpoint: String) -> Browser {
    let secret = loop {
        let mut scalar = [0u8; 32];
        rand::fill(&mut scalar[..]);
        if let Ok(secret) = p256::SecretKey::from_slice(&scalar) {
            break secret;
        }
    };
    let public_key = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let mut auth = [0u8; 16];
    rand::fill(&mut auth[..]);
    Browser {
        private_key: secret.to_bytes().to_vec(),
        subscription: PushSubscription {
            endpoint,
            // Padded, as some browsers' JSON has it: the action must cope.
            p256dh: URL_SAFE.encode(&public_key),
            auth: URL_SAFE_NO_PAD.encode(auth),
        },
        public_key,
        auth,
    }
}

fn settings(private_key: Option<String>) -> BuiltinSettings {
    BuiltinSettings {
        allow_private_targets: true,
        vapid_private_key: private_key,
        vapid_subject: SUBJECT.to_owned(),
        ..BuiltinSettings::default()
    }
}

fn context(subscriptions: Vec<PushSubscription>) -> StepContext {
    StepContext {
        step_id: Uuid::now_v7(),
        execution_id: Uuid::now_v7(),
        workflow_id: Uuid::now_v7(),
        attempt: 1,
        entity_type: "Shipment".to_owned(),
        entity_id: "shp_1".to_owned(),
        entity: json!({"status": "shipped"}),
        event: json!({"trigger": "shipment_shipped"}),
        workflow: json!({"name": "Shipped push"}),
        tenant: TenantView {
            id: Uuid::now_v7(),
            name: "Shop".to_owned(),
            notification_email: None,
            push_subscriptions: subscriptions,
            ..TenantView::default()
        },
        template_limits: Default::default(),
    }
}

async fn run(
    settings: &BuiltinSettings,
    params: Value,
    ctx: &StepContext,
) -> Result<Outcome, ActionError> {
    let registry = registry(settings).expect("registry");
    let action = registry.get("send_push").expect("send_push registered");
    let params: Map<String, Value> = params.as_object().cloned().expect("object");
    action.execute(params, ctx).await
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the `Authorization: vapid t=<jwt>, k=<key>` header from first principles and returns the
/// JWT's claims.
fn verify_vapid(received: &Received, expected_public_key: &str) -> Value {
    let auth = header(received, "authorization").expect("authorization header");
    let rest = auth.strip_prefix("vapid ").expect("vapid scheme");
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (token, key) = (token.expect("t="), key.expect("k="));
    assert_eq!(
        key, expected_public_key,
        "k is the server's VAPID public key"
    );

    let mut pieces = token.split('.');
    let (header_b64, claims_b64, signature_b64) = (
        pieces.next().expect("header"),
        pieces.next().expect("claims"),
        pieces.next().expect("signature"),
    );
    assert!(pieces.next().is_none(), "a JWS has three parts");
    let jose: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).expect("b64")).expect("json");
    assert_eq!(jose["alg"], "ES256");

    let verifying_key =
        VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(key).expect("b64 key"))
            .expect("k is a P-256 point");
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature_b64).expect("b64 sig"))
        .expect("64-byte r||s signature");
    verifying_key
        .verify(format!("{header_b64}.{claims_b64}").as_bytes(), &signature)
        .expect("ES256 signature verifies with k");

    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).expect("b64")).expect("json")
}

fn decrypt(browser: &Browser, body: &[u8]) -> Value {
    let components =
        ece::EcKeyComponents::new(browser.private_key.clone(), browser.public_key.clone());
    let plaintext = ece::decrypt(&components, &browser.auth, body).expect("aes128gcm decrypts");
    serde_json::from_slice(&plaintext).expect("payload is JSON")
}

#[tokio::test]
async fn delivers_an_encrypted_message_with_a_valid_vapid_token() {
    let (origin, service) = push_service().await;
    let vapid = generate_keypair();
    let browser = browser(format!("{origin}/ok/sub-1"));
    let ctx = context(vec![browser.subscription.clone()]);

    let outcome = run(
        &settings(Some(vapid.private_key.clone())),
        json!({"title": "Shipped", "body": "Order {{ entity.status }}", "url": "/orders/1"}),
        &ctx,
    )
    .await
    .expect("delivered");
    assert_eq!(outcome.summary, "delivered to 1 of 1 push subscriptions");
    assert!(outcome.effects.is_empty());
    assert_eq!(outcome.output["subscriptions"][0]["status"], 201);
    assert_eq!(outcome.output["subscriptions"][0]["outcome"], "delivered");

    let received = service.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/ok/sub-1");
    assert_eq!(header(request, "content-encoding"), Some("aes128gcm"));
    assert_eq!(header(request, "ttl"), Some("86400"));
    assert_eq!(header(request, "urgency"), None);
    assert_eq!(header(request, "topic"), None);

    // Templates are rendered by the engine before a step runs, so the text arrives as given here.
    let payload = decrypt(&browser, &request.body);
    assert_eq!(
        payload,
        json!({"title": "Shipped", "body": "Order {{ entity.status }}", "url": "/orders/1",
               "stepId": ctx.step_id.to_string()})
    );

    let claims = verify_vapid(request, &vapid.public_key);
    assert_eq!(
        claims["aud"], origin,
        "aud is the push service's origin, port included"
    );
    assert_eq!(claims["sub"], SUBJECT);
    let exp = claims["exp"].as_i64().expect("exp");
    let now = chrono::Utc::now().timestamp();
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "exp {exp} within 24 h of {now}"
    );
}

#[tokio::test]
async fn ttl_urgency_and_topic_are_sent_to_every_subscription() {
    let (origin, service) = push_service().await;
    let vapid = generate_keypair();
    let first = browser(format!("{origin}/ok/a"));
    let second = browser(format!("{origin}/ok/b"));
    let ctx = context(vec![
        first.subscription.clone(),
        second.subscription.clone(),
    ]);

    let outcome = run(
        &settings(Some(vapid.private_key)),
        json!({"title": "Sale", "body": "Today only", "ttl": 600, "urgency": "high",
               "topic": "flash-sale_1"}),
        &ctx,
    )
    .await
    .expect("delivered");
    assert_eq!(outcome.summary, "delivered to 2 of 2 push subscriptions");

    let received = service.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2);
    for (request, browser) in received.iter().map(|r| {
        let b = if r.path == "/ok/a" { &first } else { &second };
        (r, b)
    }) {
        assert_eq!(header(request, "ttl"), Some("600"));
        assert_eq!(header(request, "urgency"), Some("high"));
        assert_eq!(header(request, "topic"), Some("flash-sale_1"));
        // Each message is encrypted for its own subscription only.
        assert_eq!(decrypt(browser, &request.body)["title"], "Sale");
    }
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_the_step_succeeds() {
    let (origin, _service) = push_service().await;
    let vapid = generate_keypair();
    let live = browser(format!("{origin}/ok/live"));
    let gone = browser(format!("{origin}/gone/old"));
    let big = browser(format!("{origin}/big/x"));
    let ctx = context(vec![
        live.subscription.clone(),
        gone.subscription.clone(),
        big.subscription.clone(),
    ]);

    let outcome = run(
        &settings(Some(vapid.private_key)),
        json!({"title": "t", "body": "b"}),
        &ctx,
    )
    .await
    .expect("gone and too-large subscriptions do not fail the step");
    assert_eq!(
        outcome.effects,
        vec![Effect::ForgetTenantRecord {
            kind: RecordKind::PushSubscription,
            key: gone.subscription.endpoint.clone()
        }]
    );
    assert_eq!(
        outcome.summary,
        "delivered to 1 of 3 push subscriptions, 1 gone, 1 rejected"
    );
    let outcomes: Vec<&Value> = outcome.output["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| &s["outcome"])
        .collect();
    assert_eq!(
        outcomes,
        [&json!("delivered"), &json!("gone"), &json!("rejected")]
    );
    assert_eq!(outcome.output["subscriptions"][1]["status"], 410);
    assert_eq!(outcome.output["subscriptions"][2]["status"], 413);
}

#[tokio::test]
async fn a_busy_push_service_makes_the_step_retryable_with_its_hint() {
    let (origin, _service) = push_service().await;
    let vapid = generate_keypair();
    let ok = browser(format!("{origin}/ok/1"));
    let busy = browser(format!("{origin}/busy/2"));
    let ctx = context(vec![ok.subscription.clone(), busy.subscription.clone()]);

    let err = run(
        &settings(Some(vapid.private_key)),
        json!({"title": "t", "body": "b"}),
        &ctx,
    )
    .await
    .expect_err("503 is retryable");
    match err {
        ActionError::Retryable { reason, after } => {
            assert_eq!(after, Some(Duration::from_secs(120)));
            assert!(reason.contains("503"), "{reason}");
        }
        other => panic!("expected Retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn private_push_services_are_refused_unless_allowed() {
    let vapid = generate_keypair();
    // Nothing listens there, and nothing is sent: the guard refuses before connecting.
    let target = browser("https://127.0.0.1:9/push".to_owned());
    let settings = BuiltinSettings {
        allow_private_targets: false,
        ..settings(Some(vapid.private_key))
    };
    let outcome = run(
        &settings,
        json!({"title": "t", "body": "b"}),
        &context(vec![target.subscription]),
    )
    .await
    .expect("a refused subscription is not retried");
    assert_eq!(outcome.output["subscriptions"][0]["outcome"], "blocked");
}

#[tokio::test]
async fn zero_subscriptions_is_a_success() {
    let vapid = generate_keypair();
    let outcome = run(
        &settings(Some(vapid.private_key)),
        json!({"title": "t", "body": "b"}),
        &context(Vec::new()),
    )
    .await
    .expect("nothing to do");
    assert_eq!(outcome.summary, "no push subscriptions");
}

#[tokio::test]
async fn without_a_vapid_key_the_action_exists_but_fails_clearly() {
    let registry = registry(&settings(None)).expect("registry without a VAPID key");
    let action = registry.get("send_push").expect("send_push registered");
    // The engine loads the tenant's subscriptions for this action because it asks for them.
    assert_eq!(action.needs(), &[RecordKind::PushSubscription]);
    let err = run(
        &settings(None),
        json!({"title": "t", "body": "b"}),
        &context(Vec::new()),
    )
    .await
    .expect_err("not configured");
    assert_eq!(
        err,
        ActionError::permanent(
            "push is not configured: set --vapid-private-key / VAPID_PRIVATE_KEY"
        )
    );
}

#[test]
fn a_malformed_vapid_key_fails_setup() {
    let err = registry(&settings(Some("c2hvcnQ".to_owned()))).expect_err("setup error");
    assert!(err.to_string().contains("VAPID_PRIVATE_KEY"), "{err}");
}

#[test]
fn generated_keys_round_trip() {
    let keys = generate_keypair();
    assert_eq!(
        public_key_for(&keys.private_key).expect("valid"),
        keys.public_key
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(&keys.private_key)
            .expect("b64")
            .len(),
        32
    );
    let public = URL_SAFE_NO_PAD.decode(&keys.public_key).expect("b64");
    assert_eq!((public.len(), public[0]), (65, 0x04));
}

#[test]
fn subscriptions_are_validated() {
    let good = browser("https://push.example.net/wpush/v2/abc".to_owned()).subscription;
    let check = |endpoint: &str, p256dh: &str, auth: &str, allow: bool| {
        validate_subscription(endpoint, p256dh, auth, allow)
            .err()
            .and_then(|e| e.field)
    };
    assert_eq!(check(&good.endpoint, &good.p256dh, &good.auth, false), None);

    let public = URL_SAFE.decode(&good.p256dh).expect("b64");
    let short = URL_SAFE_NO_PAD.encode(&public[..33]);
    assert_eq!(
        check(&good.endpoint, &short, &good.auth, false).as_deref(),
        Some("p256dh")
    );

    // 0x04 || x || y with y nudged off the curve.
    let mut off_curve = public.clone();
    off_curve[64] ^= 1;
    let off_curve = URL_SAFE_NO_PAD.encode(off_curve);
    let err = validate_subscription(&good.endpoint, &off_curve, &good.auth, false)
        .expect_err("off the curve");
    assert!(err.message.contains("curve"), "{}", err.message);

    let auth15 = URL_SAFE_NO_PAD.encode([7u8; 15]);
    assert_eq!(
        check(&good.endpoint, &good.p256dh, &auth15, false).as_deref(),
        Some("auth")
    );

    let http = "http://127.0.0.1:8080/push/1";
    assert_eq!(
        check(http, &good.p256dh, &good.auth, false).as_deref(),
        Some("endpoint")
    );
    assert_eq!(check(http, &good.p256dh, &good.auth, true), None);
    let long = format!("https://push.example.net/{}", "a".repeat(2048));
    assert_eq!(
        check(&long, &good.p256dh, &good.auth, false).as_deref(),
        Some("endpoint")
    );
}
