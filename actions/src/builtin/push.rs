//! `send_push`: a Web Push notification to every push subscription the tenant saved.
//!
//! Each message is encrypted for its subscription with aes128gcm (RFC 8291) and carries a VAPID
//! token (RFC 8292) signed with the operator's key; both are built by the `web-push` crate, whose
//! own HTTP clients are left out: the request goes through the [`GuardedClient`] like every other
//! call to a URL that came from outside (push endpoints are sent in by browsers, via the tenant).
//!
//! One step covers all of the tenant's subscriptions. A subscription the push service calls gone
//! (404/410) is handed back as [`Effect::ForgetTenantRecord`]; a 413 or another 4xx fails that
//! subscription only; a 429, a 5xx or a network failure on any subscription makes the whole step
//! retryable. Push services deduplicate nothing, so a retry sends again to the subscriptions that
//! did get the message the first time; the payload's `stepId` is the same on every attempt, and a
//! service worker that uses it as the notification `tag` shows the repeat as one notification.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use web_push::{
    ContentEncoding, SubscriptionInfo, Urgency, VapidSignatureBuilder, WebPushMessageBuilder,
};

use crate::builtin::{BuiltinSettings, SetupError};
use crate::http::{GuardedClient, HeaderMap, HeaderName, HeaderValue, OutboundRequest, SendError};
use crate::{
    Action, ActionError, Effect, Outcome, PushSubscription, RecordKind, StepContext,
    ValidationError, vapid,
};

/// TTL when the step gives none: a day, after which a notification about an order is stale.
pub const DEFAULT_TTL: u32 = 86_400;
/// RFC 8030 leaves the maximum to the push service; 28 days is what the big ones keep.
pub const MAX_TTL: u32 = 2_419_200;
/// The largest plaintext the `web-push` crate encrypts (what Google's and Mozilla's services take).
pub const MAX_PAYLOAD_BYTES: usize = 3052;
/// VAPID tokens are signed for this long (RFC 8292 allows at most 24 h).
const TOKEN_LIFETIME_HOURS: u64 = 12;
/// Subscriptions sent to at once within one step.
const PARALLEL_SENDS: usize = 8;
/// A `Retry-After` longer than this is taken as this: a push service cannot park a step for months.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Endpoints are capability URLs: only their start is kept on the attempt record.
const SHOWN_ENDPOINT_CHARS: usize = 48;
/// How much of a push service's error answer is kept.
const SHOWN_ERROR_CHARS: usize = 200;

const URGENCIES: [&str; 4] = ["very-low", "low", "normal", "high"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub title: String,
    pub body: String,
    /// Opened when the notification is clicked (the service worker decides what to do with it).
    pub url: Option<String>,
    /// Seconds the push service keeps the message for an offline browser (default 86400).
    pub ttl: Option<u32>,
    /// `very-low`, `low`, `normal` or `high` (RFC 8030 §5.3).
    pub urgency: Option<String>,
    /// Replaces a still-undelivered message with the same topic (RFC 8030 §5.4).
    pub topic: Option<String>,
}

/// Sends a Web Push notification to every push subscription of the tenant.
pub struct PushAction {
    /// `None` when the operator set no VAPID key: the action exists, so workflows using it can be
    /// saved, but its steps fail with a message saying what to configure.
    private_key: Option<String>,
    subject: String,
    client: GuardedClient,
}

impl PushAction {
    /// Reads the VAPID key from the settings: a malformed key is a setup error, so a bad deployment
    /// fails at start rather than at the first push.
    pub fn new(settings: &BuiltinSettings, client: GuardedClient) -> Result<Self, SetupError> {
        let private_key = match settings.vapid_private_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(key) => {
                let secret = vapid::parse_private_key(key).map_err(|e| {
                    SetupError(format!("--vapid-private-key / VAPID_PRIVATE_KEY: {e}"))
                })?;
                Some(vapid::canonical_private_key(&secret))
            }
        };
        Ok(Self {
            private_key,
            subject: settings.vapid_subject.clone(),
            client,
        })
    }

    /// Encrypts, signs and sends the message to one subscription; never fails as a whole, the
    /// result says how it went.
    async fn deliver(
        &self,
        private_key: &str,
        subscription: &PushSubscription,
        payload: &[u8],
        config: &PushConfig,
    ) -> Delivery {
        let request = match self.build_request(private_key, subscription, payload, config) {
            Ok(request) => request,
            Err(reason) => return Delivery::failed(subscription, Verdict::Invalid, reason),
        };
        match self.client.send(request).await {
            Ok(response) => {
                let status = response.status.as_u16();
                let verdict = match status {
                    200..=299 => Verdict::Delivered,
                    404 | 410 => Verdict::Gone,
                    429 | 500..=599 => Verdict::Retry {
                        after: response
                            .headers
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, Utc::now())),
                    },
                    // 413 (too large), 400, and 401/403 (the subscription was made for another
                    // VAPID key) fail the same way every time.
                    _ => Verdict::Rejected,
                };
                let error = (!matches!(verdict, Verdict::Delivered)).then(|| {
                    let text = response.body.kept.trim();
                    let reason = response.status.canonical_reason().unwrap_or("");
                    if text.is_empty() {
                        format!("{status} {reason}")
                    } else {
                        format!("{status} {reason}: {}", shorten(text, SHOWN_ERROR_CHARS))
                    }
                });
                Delivery {
                    endpoint: subscription.endpoint.clone(),
                    status: Some(status),
                    verdict,
                    error,
                }
            }
            Err(SendError::Blocked(e)) => {
                Delivery::failed(subscription, Verdict::Blocked, e.to_string())
            }
            Err(e) => Delivery::failed(subscription, Verdict::Retry { after: None }, e.to_string()),
        }
    }

    fn build_request(
        &self,
        private_key: &str,
        subscription: &PushSubscription,
        payload: &[u8],
        config: &PushConfig,
    ) -> Result<OutboundRequest, String> {
        let url = url::Url::parse(&subscription.endpoint)
            .map_err(|e| format!("endpoint is not a URL: {e}"))?;
        if url.scheme() != "https" && !self.client.allows_private_targets() {
            return Err("endpoint is not an https URL".to_owned());
        }
        // `web-push` reads keys as unpadded base64url only; browsers and libraries differ.
        let info = SubscriptionInfo::new(
            subscription.endpoint.clone(),
            canonical_b64url(&subscription.p256dh).ok_or("p256dh is not base64url")?,
            canonical_b64url(&subscription.auth).ok_or("auth is not base64url")?,
        );

        let mut signature = VapidSignatureBuilder::from_base64(private_key, &info)
            .map_err(|e| format!("VAPID key: {e}"))?;
        // `web-push` would derive `aud` from scheme and host only; RFC 8292 wants the origin,
        // port included, which differs for a push service on a non-default port.
        signature.add_claim("aud", url.origin().ascii_serialization());
        signature.add_claim("sub", self.subject.as_str());
        let exp = Utc::now().timestamp().unsigned_abs() + TOKEN_LIFETIME_HOURS * 3600;
        signature.add_claim("exp", exp);
        let signature = signature
            .build()
            .map_err(|e| format!("signing the VAPID token: {e}"))?;

        let mut builder = WebPushMessageBuilder::new(&info);
        builder.set_ttl(config.ttl.unwrap_or(DEFAULT_TTL));
        if let Some(urgency) = config.urgency.as_deref().map(parse_urgency) {
            builder.set_urgency(urgency.ok_or("invalid urgency")?);
        }
        if let Some(topic) = &config.topic {
            builder.set_topic(topic.clone());
        }
        builder.set_vapid_signature(signature);
        // Always with a payload: `web-push` attaches the VAPID header only to encrypted messages.
        builder.set_payload(ContentEncoding::Aes128Gcm, payload);
        let message = builder
            .build()
            .map_err(|e| format!("building the message: {e}"))?;

        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| -> Result<(), String> {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
            headers.insert(name, value);
            Ok(())
        };
        put("ttl", &message.ttl.to_string())?;
        if let Some(urgency) = message.urgency {
            put("urgency", &urgency.to_string())?;
        }
        if let Some(topic) = &message.topic {
            put("topic", topic)?;
        }
        let body = match message.payload {
            Some(encrypted) => {
                put("content-encoding", encrypted.content_encoding.to_str())?;
                put("content-type", "application/octet-stream")?;
                for (name, value) in &encrypted.crypto_headers {
                    put(name, value)?;
                }
                encrypted.content
            }
            None => return Err("the message was built without its payload".to_owned()),
        };
        Ok(OutboundRequest::post(url, body).with_headers(headers))
    }
}

impl Action for PushAction {
    type Config = PushConfig;

    fn kind(&self) -> &'static str {
        "send_push"
    }

    fn description(&self) -> &'static str {
        "Send a Web Push notification (VAPID, aes128gcm) to every push subscription of the tenant"
    }

    fn needs(&self) -> &'static [RecordKind] {
        &[RecordKind::PushSubscription]
    }

    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        if config.title.trim().is_empty() {
            return Err(ValidationError::field("title", "must not be empty"));
        }
        if config.ttl.is_some_and(|ttl| ttl > MAX_TTL) {
            return Err(ValidationError::field(
                "ttl",
                format!("at most {MAX_TTL} seconds (28 days)"),
            ));
        }
        if config
            .urgency
            .as_deref()
            .is_some_and(|u| parse_urgency(u).is_none())
        {
            return Err(ValidationError::field(
                "urgency",
                format!("must be one of {}", URGENCIES.join(", ")),
            ));
        }
        if let Some(topic) = &config.topic {
            let alphabet_ok = topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if topic.is_empty() || topic.len() > 32 || !alphabet_ok {
                return Err(ValidationError::field(
                    "topic",
                    "1 to 32 characters of the URL-safe base64 alphabet (A-Z a-z 0-9 - _)",
                ));
            }
        }
        // Checked on the saved templates and again on the rendered text, before anything is sent.
        let size = payload(config, uuid::Uuid::nil()).len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(ValidationError::new(format!(
                "title, body and url make a {size}-byte push payload; push services take at most \
                 {MAX_PAYLOAD_BYTES}"
            )));
        }
        Ok(())
    }

    async fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let Some(private_key) = self.private_key.as_deref() else {
            return Err(ActionError::permanent(
                "push is not configured: set --vapid-private-key / VAPID_PRIVATE_KEY",
            ));
        };
        let subscriptions = &ctx.tenant.push_subscriptions;
        if subscriptions.is_empty() {
            return Ok(Outcome {
                summary: "no push subscriptions".to_owned(),
                output: json!({ "subscriptions": [] }),
                effects: Vec::new(),
            });
        }

        let payload = payload(&config, ctx.step_id);
        // The futures are made in a loop, not by a closure passed to `map`: a closure borrowing
        // the subscriptions defeats the `Send` proof of the step's future (rust-lang/rust#110338).
        let mut sends = Vec::with_capacity(subscriptions.len());
        for subscription in subscriptions {
            sends.push(self.deliver(private_key, subscription, &payload, &config));
        }
        let deliveries: Vec<Delivery> = futures::stream::iter(sends)
            .buffered(PARALLEL_SENDS)
            .collect()
            .await;
        settle(deliveries)
    }
}

/// The notification as the service worker receives it.
fn payload(config: &PushConfig, step_id: uuid::Uuid) -> Vec<u8> {
    json!({
        "title": config.title,
        "body": config.body,
        "url": config.url,
        "stepId": step_id,
    })
    .to_string()
    .into_bytes()
}

fn parse_urgency(text: &str) -> Option<Urgency> {
    Some(match text {
        "very-low" => Urgency::VeryLow,
        "low" => Urgency::Low,
        "normal" => Urgency::Normal,
        "high" => Urgency::High,
        _ => return None,
    })
}

/// Unpadded base64url of a key given padded or not; `None` when it is not base64url at all.
fn canonical_b64url(text: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
    let bytes = URL_SAFE_NO_PAD_INDIFFERENT.decode(text.trim()).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Reads `Retry-After` as delay-seconds or an HTTP-date, relative to `now`, capped.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let after = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        // All three HTTP-date forms (RFC 9110 §5.6.7); a date in the past means "now".
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now.into())
            .unwrap_or_default(),
    };
    Some(after.min(MAX_RETRY_AFTER))
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How one subscription fared.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Delivered,
    /// 404/410: the browser unsubscribed; the subscription is removed.
    Gone,
    /// 413 or another 4xx: this subscription will not take this message.
    Rejected,
    /// Refused by the guard (a private address): configuration, not a passing fault.
    Blocked,
    /// The stored subscription cannot be encrypted or signed for.
    Invalid,
    /// 429, 5xx or a network failure: the step is tried again.
    Retry {
        after: Option<Duration>,
    },
}

impl Verdict {
    fn name(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Gone => "gone",
            Verdict::Rejected => "rejected",
            Verdict::Blocked => "blocked",
            Verdict::Invalid => "invalid",
            Verdict::Retry { .. } => "retry",
        }
    }
}

#[derive(Debug)]
struct Delivery {
    endpoint: String,
    status: Option<u16>,
    verdict: Verdict,
    error: Option<String>,
}

impl Delivery {
    fn failed(subscription: &PushSubscription, verdict: Verdict, error: String) -> Self {
        Self {
            endpoint: subscription.endpoint.clone(),
            status: None,
            verdict,
            error: Some(error),
        }
    }

    fn record(&self) -> Value {
        let mut record = json!({
            "endpoint": shorten(&self.endpoint, SHOWN_ENDPOINT_CHARS),
            "status": self.status,
            "outcome": self.verdict.name(),
        });
        if let Some(error) = &self.error {
            record["error"] = json!(error);
        }
        record
    }
}

/// The step's result from every subscription's: retryable if any one is, else a success that
/// lists what happened and removes the gone subscriptions.
fn settle(deliveries: Vec<Delivery>) -> Result<Outcome, ActionError> {
    let total = deliveries.len();
    let count = |name: &str| {
        deliveries
            .iter()
            .filter(|d| d.verdict.name() == name)
            .count()
    };
    let retries: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| matches!(d.verdict, Verdict::Retry { .. }))
        .collect();
    if let Some(first) = retries.first() {
        // Wait for the slowest hint, so the retry does not arrive early at any of them.
        let after = retries
            .iter()
            .filter_map(|d| match d.verdict {
                Verdict::Retry { after } => after,
                _ => None,
            })
            .max();
        return Err(ActionError::Retryable {
            reason: format!(
                "push failed for {} of {total} subscriptions, the whole step will be retried \
                 (first: {}: {})",
                retries.len(),
                shorten(&first.endpoint, SHOWN_ENDPOINT_CHARS),
                first.error.as_deref().unwrap_or("no detail"),
            ),
            after,
        });
    }

    let mut summary = format!(
        "delivered to {} of {total} push subscriptions",
        count("delivered")
    );
    for name in ["gone", "rejected", "blocked", "invalid"] {
        let n = count(name);
        if n > 0 {
            summary.push_str(&format!(", {n} {name}"));
        }
    }
    let effects = deliveries
        .iter()
        .filter(|d| d.verdict == Verdict::Gone)
        .map(|d| Effect::ForgetTenantRecord {
            kind: RecordKind::PushSubscription,
            key: d.endpoint.clone(),
        })
        .collect();
    Ok(Outcome {
        summary,
        output: json!({ "subscriptions": deliveries.iter().map(Delivery::record).collect::<Vec<_>>() }),
        effects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> PushAction {
        let settings = BuiltinSettings::default();
        PushAction::new(&settings, GuardedClient::new(false).expect("client")).expect("action")
    }

    fn config(extra: Value) -> PushConfig {
        let mut base = json!({"title": "Shipped", "body": "Your order is on its way"});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).expect("config")
    }

    #[test]
    fn parameters_are_checked() {
        let action = action();
        assert!(action.validate(&config(json!({}))).is_ok());
        let field = |extra: Value| action.validate(&config(extra)).err().and_then(|e| e.field);
        assert_eq!(field(json!({"title": " "})).as_deref(), Some("title"));
        assert_eq!(field(json!({"ttl": 2_419_201})).as_deref(), Some("ttl"));
        assert_eq!(
            field(json!({"urgency": "urgent"})).as_deref(),
            Some("urgency")
        );
        assert_eq!(
            field(json!({"topic": "a".repeat(33)})).as_deref(),
            Some("topic")
        );
        assert_eq!(
            field(json!({"topic": "no spaces"})).as_deref(),
            Some("topic")
        );
        assert!(
            action
                .validate(&config(
                    json!({"urgency": "very-low", "topic": "order-1_A", "ttl": 0})
                ))
                .is_ok()
        );
        let err = action
            .validate(&config(json!({"body": "x".repeat(3100)})))
            .expect_err("too large");
        assert!(err.message.contains("3052"), "{}", err.message);
        let unknown: Result<PushConfig, _> =
            serde_json::from_value(json!({"title": "a", "body": "b", "icon": "x"}));
        assert!(unknown.is_err());
    }

    #[test]
    fn malformed_vapid_key_is_a_setup_error_and_blank_means_unset() {
        let client = GuardedClient::new(false).expect("client");
        let settings = BuiltinSettings {
            vapid_private_key: Some("not-a-key".to_owned()),
            ..BuiltinSettings::default()
        };
        let err = PushAction::new(&settings, client.clone())
            .err()
            .expect("setup error");
        assert!(err.0.contains("VAPID_PRIVATE_KEY"), "{}", err.0);
        let settings = BuiltinSettings {
            vapid_private_key: Some(" ".to_owned()),
            ..BuiltinSettings::default()
        };
        assert!(
            PushAction::new(&settings, client)
                .expect("blank is unset")
                .private_key
                .is_none()
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Thursday, 01-Jan-26 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn one_retryable_subscription_makes_the_step_retryable() {
        let delivery = |verdict| Delivery {
            endpoint: "https://push.example/x".to_owned(),
            status: None,
            verdict,
            error: None,
        };
        let result = settle(vec![
            delivery(Verdict::Delivered),
            delivery(Verdict::Retry {
                after: Some(Duration::from_secs(3)),
            }),
            delivery(Verdict::Retry {
                after: Some(Duration::from_secs(30)),
            }),
        ]);
        match result {
            Err(ActionError::Retryable { after, .. }) => {
                assert_eq!(after, Some(Duration::from_secs(30)))
            }
            other => panic!("expected retryable, got {other:?}"),
        }
        let outcome = settle(vec![delivery(Verdict::Gone), delivery(Verdict::Rejected)])
            .expect("not retryable");
        assert_eq!(
            outcome.summary,
            "delivered to 0 of 2 push subscriptions, 1 gone, 1 rejected"
        );
        assert_eq!(outcome.effects.len(), 1);
    }

    #[test]
    fn endpoints_are_shortened_on_the_record() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcde…");
    }
}
