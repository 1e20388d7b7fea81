//! `webhook`: a signed POST of the event to a merchant's URL (CONTRACT §5 "Webhook signing").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::{
    GuardedClient, HeaderMap, HeaderName, HeaderValue, OutboundRequest, StatusCode, Url,
};
use crate::sign;
use crate::{Action, ActionError, Outcome, StepContext, ValidationError};

const MAX_URL_LEN: usize = 2048;
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Body text quoted in a failure reason.
const REASON_BODY_CHARS: usize = 200;
/// A `Retry-After` longer than this is taken as this: a receiver cannot park a step for months.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Headers the action sets itself; a configured header may not replace them, or it could forge or
/// break the signature a receiver checks.
const RESERVED_PREFIXES: &[&str] = &["webhook-", "x-switchyard-"];
const RESERVED_NAMES: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// `whsec_…`; generated at save time when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Where "now" comes from; tests move it to sign two attempts at different times without sleeping.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// POSTs `{"type", "timestamp", "data"}` to the configured URL, signed per Standard Webhooks and
/// with `X-Switchyard-Signature`, through the guarded client.
pub struct WebhookAction {
    client: GuardedClient,
    clock: Clock,
}

impl WebhookAction {
    pub fn new(client: GuardedClient) -> Self {
        Self {
            client,
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn request(
        &self,
        url: Url,
        config: &WebhookConfig,
        ctx: &StepContext,
    ) -> Result<OutboundRequest, ActionError> {
        let secret = config
            .secret
            .as_deref()
            .ok_or_else(|| ActionError::permanent("secret: missing"))?;
        let now = (self.clock)();
        let trigger = ctx.event.get("trigger").cloned().unwrap_or(Value::Null);
        let payload = json!({
            "type": trigger,
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": {
                "event": ctx.event,
                "entity": ctx.entity,
                "workflow": ctx.workflow,
                "execution": {
                    "id": ctx.execution_id,
                    "stepId": ctx.step_id,
                    "attempt": ctx.attempt,
                },
            },
        });
        let body = serde_json::to_vec(&payload)
            .map_err(|e| ActionError::permanent(format!("serializing the payload: {e}")))?;

        // Derived from the step alone, so every attempt (a crash-recovered one included) carries
        // the same id: the receiver's idempotency key.
        let msg_id = format!("msg_{}", ctx.step_id.simple());
        let timestamp = now.timestamp();
        let signature = sign::standard_signature(secret, &msg_id, timestamp, &body)
            .map_err(|e| ActionError::permanent(format!("secret: {e}")))?;

        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            // Every value here is ASCII we built; a failure would be a bug, not bad input.
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("content-type", "application/json".to_owned());
        set(
            "user-agent",
            concat!("Switchyard-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        );
        set("webhook-id", msg_id.clone());
        set("webhook-timestamp", timestamp.to_string());
        set("webhook-signature", signature);
        set(
            "x-switchyard-signature",
            sign::switchyard_signature(secret, timestamp, &body),
        );
        if let Some(Value::String(code)) = ctx.event.get("trigger") {
            set("x-switchyard-event-type", code.clone());
        }
        // The seed-002 idempotency key: one per delivered step, like `webhook-id`. The triggering
        // event's key would be shared by every workflow that event starts, so a receiver
        // deduplicating on it would drop all deliveries but one; it is in the body
        // (`data.event.id`) for receivers that want to correlate deliveries with their event.
        set("x-switchyard-event-id", msg_id);
        for (name, value) in config.headers.iter().flatten() {
            let name = HeaderName::from_bytes(name.as_bytes());
            let value = HeaderValue::from_str(value);
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.insert(name, value);
            }
        }
        Ok(OutboundRequest::post(url, body).with_headers(headers))
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        retry_after(headers, (self.clock)())
    }
}

/// Turns a `Retry-After` (delay-seconds or HTTP-date) into a delay from `now`, at most
/// [`MAX_RETRY_AFTER`]. Every action calling a peer that may ask for patience uses this one.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    let after = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::<Utc>::from(httpdate::parse_http_date(value).ok()?);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(after.min(MAX_RETRY_AFTER))
}

fn has_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn validate_secret(secret: &str) -> Result<(), ValidationError> {
    let key =
        sign::secret_key(secret).map_err(|e| ValidationError::field("secret", e.to_string()))?;
    if !(24..=64).contains(&key.len()) {
        return Err(ValidationError::field(
            "secret",
            "must encode between 24 and 64 bytes",
        ));
    }
    Ok(())
}

fn validate_header(name: &str, value: &str) -> Result<(), ValidationError> {
    let field = || format!("headers.{}", name.chars().take(64).collect::<String>());
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ValidationError::field(field(), "not a valid HTTP header name"))?;
    let lower = parsed.as_str();
    if RESERVED_NAMES.contains(&lower) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(ValidationError::field(
            field(),
            "is set by Switchyard and cannot be configured",
        ));
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(ValidationError::field(
            field(),
            format!("value longer than {MAX_HEADER_VALUE_LEN} bytes"),
        ));
    }
    HeaderValue::from_str(value).map_err(|_| {
        ValidationError::field(
            field(),
            "not a valid HTTP header value (visible ASCII, no line breaks)",
        )
    })?;
    Ok(())
}

impl Action for WebhookAction {
    type Config = WebhookConfig;

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn description(&self) -> &'static str {
        "POST the event to a URL, signed with Standard Webhooks"
    }

    fn secret_params(&self) -> &'static [&'static str] {
        &["secret"]
    }

    fn prepare(&self, params: &mut Map<String, Value>) -> Vec<String> {
        let absent = match params.get("secret") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        if !absent {
            return Vec::new();
        }
        params.insert("secret".to_owned(), Value::String(sign::generate_secret()));
        vec!["secret".to_owned()]
    }

    fn endpoint(&self, config: &Self::Config) -> Option<String> {
        Some(config.url.trim().to_owned())
    }

    fn validate(&self, config: &Self::Config) -> Result<(), ValidationError> {
        let url = config.url.trim();
        if url.len() > MAX_URL_LEN {
            return Err(ValidationError::field(
                "url",
                format!("longer than {MAX_URL_LEN} characters"),
            ));
        }
        // A templated URL is only known once rendered; the full check runs again then, before
        // the request. Its scheme must still be written out, so the target kind is fixed at save.
        if has_template(url) {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(ValidationError::field(
                    "url",
                    "must start with http:// or https://",
                ));
            }
        } else {
            let parsed = Url::parse(url)
                .map_err(|e| ValidationError::field("url", format!("not a valid URL: {e}")))?;
            // No I/O here: only what the URL itself shows (scheme, userinfo, an IP literal).
            self.client
                .check_url(&parsed)
                .map_err(|e| ValidationError::field("url", e.to_string()))?;
        }
        let headers = config.headers.as_ref();
        if headers.is_some_and(|h| h.len() > MAX_HEADERS) {
            return Err(ValidationError::field(
                "headers",
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        for (name, value) in headers.into_iter().flatten() {
            validate_header(name, value)?;
        }
        match config.secret.as_deref() {
            Some(secret) => validate_secret(secret),
            None => Err(ValidationError::field("secret", "missing")),
        }
    }

    async fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> Result<Outcome, ActionError> {
        let url = Url::parse(config.url.trim())
            .map_err(|e| ActionError::permanent(format!("url: not a valid URL: {e}")))?;
        let request = self.request(url, &config, ctx)?;
        let response = self.client.send(request).await?;

        let status = response.status;
        let status_text = status_line(status);
        if status.is_success() {
            return Ok(Outcome {
                summary: status_text,
                output: json!({
                    "status": status.as_u16(),
                    "body": response.body.kept,
                    "truncated": response.body.truncated,
                }),
                effects: Vec::new(),
            });
        }

        let quoted: String = response.body.kept.chars().take(REASON_BODY_CHARS).collect();
        let mut reason = format!("HTTP {status_text}");
        if status.is_redirection() {
            let location = response
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(|l| l.chars().take(REASON_BODY_CHARS).collect::<String>());
            reason.push_str(": redirects are not followed");
            if let Some(location) = location {
                reason.push_str(&format!(" (Location: {location})"));
            }
        } else if !quoted.trim().is_empty() {
            reason.push_str(": ");
            reason.push_str(quoted.trim());
        }

        Err(match status {
            StatusCode::GONE => ActionError::EndpointGone { reason },
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                ActionError::Retryable {
                    reason,
                    after: self.retry_after(&response.headers),
                }
            }
            _ => ActionError::retryable(reason),
        })
    }
}

/// `"200 OK"`, or just the code when the status has no standard reason phrase.
pub(crate) fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> WebhookAction {
        WebhookAction::new(GuardedClient::new(false).expect("client"))
    }

    fn config(value: Value) -> WebhookConfig {
        serde_json::from_value(value).expect("config")
    }

    #[test]
    fn prepare_generates_a_valid_secret_once() {
        let action = action();
        let mut params = Map::new();
        params.insert("url".to_owned(), json!("https://example.com/hook"));
        assert_eq!(action.prepare(&mut params), vec!["secret".to_owned()]);
        let secret = params["secret"].as_str().unwrap_or_default().to_owned();
        assert!(secret.starts_with("whsec_"));
        assert!(action.prepare(&mut params).is_empty());
        assert_eq!(params["secret"], json!(secret));
        let cfg = config(Value::Object(params));
        assert_eq!(action.validate(&cfg), Ok(()));
    }

    #[test]
    fn validation_rejects_bad_urls_headers_and_secrets() {
        let action = action();
        let secret = sign::generate_secret();
        let check = |v: Value| action.validate(&config(v)).map_err(|e| e.message);
        let bad = [
            json!({"url": "ftp://example.com", "secret": secret}),
            json!({"url": "https://u:p@example.com", "secret": secret}),
            json!({"url": "not a url", "secret": secret}),
            json!({"url": "http://10.0.0.1/", "secret": secret}),
            json!({"url": format!("https://example.com/{}", "a".repeat(2048)), "secret": secret}),
            json!({"url": "https://example.com", "secret": secret, "headers": {"Webhook-Id": "x"}}),
            json!({"url": "https://example.com", "secret": secret, "headers": {"X-Switchyard-Signature": "x"}}),
            json!({"url": "https://example.com", "secret": secret, "headers": {"Content-Type": "x"}}),
            json!({"url": "https://example.com", "secret": secret, "headers": {"bad name": "x"}}),
            json!({"url": "https://example.com", "secret": secret, "headers": {"X-Ok": "a\nb"}}),
            json!({"url": "https://example.com", "secret": "sk_nope"}),
            json!({"url": "https://example.com", "secret": "whsec_c2hvcnQ="}),
            json!({"url": "https://example.com"}),
        ];
        for value in bad {
            assert!(check(value.clone()).is_err(), "accepted {value}");
        }
        let good = [
            json!({"url": "https://example.com/hooks", "secret": secret, "headers": {"Authorization": "Bearer x"}}),
            json!({"url": "https://{{ entity.shop }}.example.com/h", "secret": secret}),
        ];
        for value in good {
            assert_eq!(check(value.clone()), Ok(()), "refused {value}");
        }
        assert!(check(json!({"url": "{{ entity.url }}", "secret": secret})).is_err());
    }

    #[test]
    fn validation_never_echoes_the_secret() {
        let err = action()
            .validate(&config(
                json!({"url": "https://example.com", "secret": "whsec_!!secret!!"}),
            ))
            .expect_err("malformed");
        assert!(!err.message.contains("!!secret!!"), "{}", err.message);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = Utc::now();
        let action = action().with_clock(move || now);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(action.retry_after(&headers), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::from(now + chrono::Duration::seconds(120));
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(later)).expect("date");
        headers.insert("retry-after", date);
        let after = action.retry_after(&headers).expect("parsed");
        assert!((Duration::from_secs(118)..=Duration::from_secs(120)).contains(&after));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(action.retry_after(&headers), None);
    }
}
