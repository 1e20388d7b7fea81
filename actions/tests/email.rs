//! `send_email` end to end: through the built-in registry to a real SMTP server (mailin-embedded)
//! listening on 127.0.0.1:0 inside the test, which records envelopes and raw messages.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use mail_parser::MessageParser;
use mailin_embedded::{Handler, Response, Server, response};
use serde_json::{Map, Value, json};
use switchyard_actions::builtin::{self, BuiltinSettings};
use switchyard_actions::{ActionError, ActionRegistry, Outcome, StepContext, TenantView};
use uuid::Uuid;

const FROM: &str = "Larkspur Goods <orders@larkspur.example>";

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

/// The server's session handler; mailin clones it per connection, so `current` is per session
/// while `inbox` is shared with the test.
#[derive(Clone)]
struct Sink {
    inbox: Arc<Mutex<Vec<Received>>>,
    /// Answer every RCPT with this instead of 250.
    rcpt_reply: Option<(u16, &'static str)>,
    current: Received,
}

impl Handler for Sink {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.current = Received {
            mail_from: from.to_owned(),
            ..Received::default()
        };
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Some((code, text)) = self.rcpt_reply {
            return Response::custom(code, text.to_owned());
        }
        self.current.rcpt_to.push(to.to_owned());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = std::mem::take(&mut self.current);
        self.inbox.lock().expect("inbox").push(message);
        response::OK
    }
}

/// Starts a real SMTP server on a free loopback port. Its thread lives until the test process
/// exits (mailin has no shutdown); it holds nothing but the socket.
fn smtp_server(rcpt_reply: Option<(u16, &'static str)>) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::new(Sink {
        inbox: Arc::clone(&inbox),
        rcpt_reply,
        current: Received::default(),
    });
    server.with_name("sink.test").with_tcp_listener(listener);
    std::thread::spawn(move || {
        // The error type is not `Send`: report it here, where the test's output shows it.
        if let Err(e) = server.serve() {
            eprintln!("SMTP test server stopped: {e}");
        }
    });
    (addr, inbox)
}

fn email_registry(smtp_url: Option<String>) -> ActionRegistry {
    builtin::registry(&BuiltinSettings {
        smtp_url,
        email_from: FROM.to_owned(),
        ..BuiltinSettings::default()
    })
    .expect("built-in registry")
}

fn step(entity_type: &str, entity: Value) -> StepContext {
    StepContext {
        step_id: Uuid::now_v7(),
        execution_id: Uuid::now_v7(),
        workflow_id: Uuid::now_v7(),
        attempt: 1,
        entity_type: entity_type.to_owned(),
        entity_id: "1042".to_owned(),
        entity,
        event: json!({"trigger": "order_paid"}),
        workflow: json!({"name": "Order confirmation", "version": 1}),
        tenant: TenantView {
            name: "Larkspur Goods".to_owned(),
            notification_email: Some("owner@larkspur.example".to_owned()),
            ..TenantView::default()
        },
        template_limits: Default::default(),
    }
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().expect("object").clone()
}

async fn send(
    registry: &ActionRegistry,
    params: Value,
    ctx: &StepContext,
) -> Result<Outcome, ActionError> {
    let action = registry.get("send_email").expect("send_email registered");
    action.execute(self::params(params), ctx).await
}

fn inbox(inbox: &Arc<Mutex<Vec<Received>>>) -> Vec<Received> {
    inbox.lock().expect("inbox").clone()
}

fn permanent_reason(result: Result<Outcome, ActionError>) -> String {
    match result {
        Err(ActionError::Permanent { reason }) => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn order() -> Value {
    json!({"status": "paid", "total": 87.0, "currency": "USD",
           "customer": {"email": "dana@example.com", "firstName": "<b>Dana</b>"}})
}

#[tokio::test]
async fn order_confirmation_reaches_the_customer_with_a_stable_message_id() {
    let (addr, received) = smtp_server(None);
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    let mut ctx = step("Order", order());
    let params = json!({"recipient": "customer", "template": "order_confirmation"});

    let outcome = send(&registry, params.clone(), &ctx).await.expect("sent");
    let message_id = format!("<{}@larkspur.example>", ctx.step_id);
    assert_eq!(outcome.summary, "sent to dana@example.com");
    assert_eq!(outcome.output["to"], "dana@example.com");
    assert_eq!(outcome.output["messageId"], message_id.as_str());
    let reply = outcome.output["smtp"].as_str().expect("smtp reply");
    assert!(reply.starts_with("250"), "{reply}");

    // A retry of the same step is a new delivery with the same identity.
    ctx.attempt = 2;
    send(&registry, params, &ctx).await.expect("sent again");

    let messages = inbox(&received);
    assert_eq!(messages.len(), 2);
    let mut ids = Vec::new();
    for received in &messages {
        assert_eq!(received.mail_from, "orders@larkspur.example");
        assert_eq!(received.rcpt_to, ["dana@example.com"]);
        let message = MessageParser::default()
            .parse(&received.data)
            .expect("a MIME message");
        let from = message.from().and_then(|a| a.first()).expect("From");
        assert_eq!(from.address(), Some("orders@larkspur.example"));
        assert_eq!(from.name(), Some("Larkspur Goods"));
        let to = message.to().and_then(|a| a.first()).expect("To");
        assert_eq!(to.address(), Some("dana@example.com"));
        assert_eq!(message.subject(), Some("Order 1042 confirmed"));
        assert!(message.date().is_some(), "Date header");
        assert_eq!(
            message.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        ids.push(message.message_id().expect("Message-ID").to_owned());

        assert!(
            message
                .header_raw("Content-Type")
                .is_some_and(|c| c.trim().starts_with("multipart/alternative")),
            "{:?}",
            message.header_raw("Content-Type")
        );
        let text = message.body_text(0).expect("text part");
        assert!(text.contains("Hi <b>Dana</b>,"), "{text}");
        assert!(text.contains("order 1042"), "{text}");
        assert!(text.contains("Order total: 87.00 USD"), "{text}");
        let html = message.body_html(0).expect("html part");
        assert!(html.contains("Hi &lt;b&gt;Dana&lt;&#x2f;b&gt;,"), "{html}");
        assert!(html.contains("<strong>87.00 USD</strong>"), "{html}");
    }
    // mail-parser drops the angle brackets.
    assert_eq!(ids, [&message_id[1..message_id.len() - 1]; 2]);
}

#[tokio::test]
async fn a_customer_entity_is_mailed_at_its_own_address_with_the_steps_own_text() {
    let (addr, received) = smtp_server(None);
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    let ctx = step(
        "Customer",
        json!({"email": "ana@example.com", "firstName": "Ana"}),
    );
    let params = json!({"recipient": "customer", "subject": "Welcome, Ana",
                        "body": "Thanks for signing up."});
    let outcome = send(&registry, params, &ctx).await.expect("sent");
    assert_eq!(outcome.summary, "sent to ana@example.com");

    let messages = inbox(&received);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["ana@example.com"]);
    let message = MessageParser::default()
        .parse(&messages[0].data)
        .expect("a MIME message");
    assert_eq!(message.subject(), Some("Welcome, Ana"));
    assert!(
        message
            .header_raw("Content-Type")
            .is_some_and(|c| c.trim().starts_with("text/plain")),
        "no HTML part was asked for"
    );
    assert_eq!(
        message.body_text(0).as_deref().map(str::trim_end),
        Some("Thanks for signing up.")
    );
}

#[tokio::test]
async fn merchant_recipient_uses_the_tenants_notification_address() {
    let (addr, received) = smtp_server(None);
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    let params = json!({"recipient": "merchant", "template": "order_cancelled"});

    let ctx = step("Order", order());
    let outcome = send(&registry, params.clone(), &ctx).await.expect("sent");
    assert_eq!(outcome.summary, "sent to owner@larkspur.example");
    let messages = inbox(&received);
    assert_eq!(messages[0].rcpt_to, ["owner@larkspur.example"]);
    let message = MessageParser::default()
        .parse(&messages[0].data)
        .expect("a MIME message");
    assert_eq!(message.subject(), Some("Order 1042 has been cancelled"));

    let mut ctx = step("Order", order());
    ctx.tenant.notification_email = None;
    let reason = permanent_reason(send(&registry, params, &ctx).await);
    assert!(reason.contains("no notification email address"), "{reason}");
    assert_eq!(inbox(&received).len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn bad_or_missing_addresses_fail_permanently_without_sending() {
    let (addr, received) = smtp_server(None);
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    let template = "order_confirmation";

    // An address template that rendered to garbage.
    let ctx = step("Order", order());
    let reason = permanent_reason(
        send(
            &registry,
            json!({"recipient": "dana at example", "template": template}),
            &ctx,
        )
        .await,
    );
    assert!(
        reason.contains("`dana at example` is not a valid email address"),
        "{reason}"
    );

    let ctx = step("Order", json!({"total": 5, "customer": null}));
    let reason = permanent_reason(
        send(
            &registry,
            json!({"recipient": "customer", "template": template}),
            &ctx,
        )
        .await,
    );
    assert_eq!(reason, "the entity has no customer email (customer.email)");

    let ctx = step("Customer", json!({"firstName": "Ana"}));
    let reason = permanent_reason(
        send(
            &registry,
            json!({"recipient": "customer", "template": template}),
            &ctx,
        )
        .await,
    );
    assert_eq!(reason, "the entity has no customer email (email)");

    let ctx = step("Order", json!({"customer": {"email": "dana@"}}));
    let reason = permanent_reason(
        send(
            &registry,
            json!({"recipient": "customer", "template": template}),
            &ctx,
        )
        .await,
    );
    assert!(
        reason.contains("customer email (customer.email)"),
        "{reason}"
    );

    assert!(inbox(&received).is_empty());
}

#[tokio::test]
async fn a_deferral_is_retryable_and_a_refusal_is_permanent() {
    let params = json!({"recipient": "customer", "template": "order_confirmation"});

    let (addr, _) = smtp_server(Some((450, "4.2.1 Mailbox busy, try again later")));
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    match send(&registry, params.clone(), &step("Order", order())).await {
        Err(ActionError::Retryable {
            reason,
            after: None,
        }) => {
            assert!(reason.contains("450"), "{reason}");
            assert!(reason.contains("Mailbox busy"), "{reason}");
        }
        other => panic!("expected a retryable failure, got {other:?}"),
    }

    let (addr, _) = smtp_server(Some((550, "5.1.1 No such user")));
    let registry = email_registry(Some(format!("smtp+plain://{addr}")));
    let reason = permanent_reason(send(&registry, params, &step("Order", order())).await);
    assert!(reason.contains("550"), "{reason}");
    assert!(reason.contains("No such user"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_server_is_retryable() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let registry = email_registry(Some(format!("smtp+plain://127.0.0.1:{port}")));
    let params = json!({"recipient": "customer", "template": "order_confirmation"});
    match send(&registry, params, &step("Order", order())).await {
        Err(ActionError::Retryable { .. }) => {}
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[tokio::test]
async fn smtp_url_reaches_a_server_without_starttls_in_plain_text() {
    // `smtp://` upgrades when STARTTLS is offered; this server offers none, so it sends as is.
    let (addr, received) = smtp_server(None);
    let registry = email_registry(Some(format!("smtp://{addr}")));
    let params = json!({"recipient": "customer", "template": "shipping_confirmation"});
    let ctx = step(
        "Shipment",
        json!({"orderId": "1042", "trackingNumber": "1Z999AA10123456784",
               "trackingCompany": "UPS",
               "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
               "customer": {"email": "dana@example.com"}}),
    );
    send(&registry, params, &ctx).await.expect("sent");
    let messages = inbox(&received);
    let message = MessageParser::default()
        .parse(&messages[0].data)
        .expect("a MIME message");
    assert_eq!(message.subject(), Some("Your order 1042 is on its way"));
    let text = message.body_text(0).expect("text");
    assert!(
        text.contains("Tracking number: 1Z999AA10123456784"),
        "{text}"
    );
    assert!(
        text.contains("https://www.ups.com/track?tracknum=1Z999AA10123456784"),
        "{text}"
    );
}

#[tokio::test]
async fn without_an_smtp_url_steps_validate_but_fail_at_run_time() {
    let registry = email_registry(None);
    let params = params(json!({"recipient": "customer", "template": "order_confirmation"}));
    registry
        .prepare("send_email", &params)
        .expect("a workflow with an email step still saves");
    let action = registry.get("send_email").expect("registered");
    let reason = permanent_reason(action.execute(params, &step("Order", order())).await);
    assert_eq!(reason, "email is not configured: set --smtp-url / SMTP_URL");
}

#[test]
fn malformed_settings_fail_start_up() {
    let err = builtin::registry(&BuiltinSettings {
        smtp_url: Some("smtp://user:hunter2@mail.example.com/relay?x=1".to_owned()),
        ..BuiltinSettings::default()
    })
    .expect_err("bad URL");
    assert!(err.to_string().contains("--smtp-url"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let err = builtin::registry(&BuiltinSettings {
        email_from: "Switchyard <no-reply>".to_owned(),
        ..BuiltinSettings::default()
    })
    .expect_err("bad From");
    assert!(err.to_string().contains("--email-from"), "{err}");

    // The documented default is usable, and building needs no Tokio runtime.
    builtin::registry(&BuiltinSettings {
        smtp_url: Some("smtp+plain://localhost".to_owned()),
        ..BuiltinSettings::default()
    })
    .expect("defaults");
}

#[test]
fn registry_validation_lists_the_built_in_templates() {
    let registry = email_registry(None);
    let err = registry
        .prepare(
            "send_email",
            &params(json!({"recipient": "customer", "template": "welcome"})),
        )
        .expect_err("unknown template");
    assert_eq!(err.field.as_deref(), Some("template"));
    for name in builtin::email::TEMPLATE_NAMES {
        assert!(err.message.contains(name), "{}", err.message);
    }
}
