//! Extractors shared by every API module: the authenticated tenant, JSON bodies, query strings,
//! UUID path parameters, pagination and `If-Match`, each turning bad input into the envelope.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use switchyard_schemas::ErrorCode;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;

/// The tenant behind the request's bearer key. Every handler touching tenant data takes this, and
/// every store call takes its id.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization header: send `Authorization: Bearer sk_…`",
            )
        })?;
        let rejected = || ApiError::new(ErrorCode::Forbidden, "the API key was rejected");
        let value = header.to_str().map_err(|_| rejected())?;
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(rejected)?
            .trim();
        // Work before authentication stays small and bounded: a key that cannot be one of ours
        // is refused without a lookup, one looked up and not found recently without another,
        // and the lookups that remain are coalesced by the key batcher (at most two queries in
        // flight, whatever the number of requests).
        if !crate::store::is_well_formed_key(key) || state.unknown.contains(key.as_bytes()) {
            return Err(rejected());
        }
        let record = state.keys.call(key.to_owned()).await.unwrap_or_else(|| {
            Err(crate::store::StoreError::Unavailable(
                "the key lookup task stopped".to_owned(),
            ))
        })?;
        let Some(record) = record else {
            state.unknown.insert(key.as_bytes());
            return Err(rejected());
        };
        if record.revoked {
            return Err(rejected());
        }
        state.limiter.check(record.tenant_id)?;
        Ok(Tenant {
            id: record.tenant_id,
        })
    }
}

/// A JSON object body; syntax errors, wrong types and unknown fields are `VALIDATION_ERROR` with
/// serde's message (which names the field and position), an oversized body is `PAYLOAD_TOO_LARGE`.
///
/// Every body of the API is an object, and is refused unless it is one: serde would otherwise read
/// a struct from an array of its fields in order (`[null]` as `{"notificationEmail": null}`).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::validation(
                "expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is over 1 MiB")
            } else {
                ApiError::validation(rejection.body_text())
            }
        })?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            return Err(ApiError::validation(
                "the request body must be a JSON object",
            ));
        }
        let value = match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        refuse_nul(&bytes)?;
        Ok(Json(value))
    }
}

/// Refuses a JSON body with U+0000 in any string (key or value). PostgreSQL cannot store it in
/// text or JSON, SQLite would, so it is refused on both: the same answer on either database, a
/// 400 rather than the database's error. JSON can carry it only as a `\u0000` escape, so bodies
/// without one (nearly all) are passed by a scan of their bytes; the others are parsed to tell a
/// real NUL from an escaped backslash followed by `u0000`.
pub fn refuse_nul(body: &[u8]) -> Result<(), ApiError> {
    let maybe = body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"));
    if !maybe {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if contains_nul(&value) => Err(nul_error()),
        _ => Ok(()),
    }
}

/// The error for a string holding U+0000.
pub fn nul_error() -> ApiError {
    ApiError::validation("strings must not contain the NUL character (U+0000)")
}

/// Whether any string (or object key) in `value` holds U+0000.
pub fn contains_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Ids recently looked up and not found (API keys, inbound integration ids), so that a client
/// repeating unknown ones costs a hash and a map lookup instead of a query each time. Entries
/// expire after `ttl`; the map never holds more than `capacity` (it is emptied when full of live
/// entries, which only costs the queries it saved). Ids are kept as SHA-256, not in clear.
pub struct NegativeCache {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
    ttl: std::time::Duration,
    capacity: usize,
}

impl NegativeCache {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        Self {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn digest(id: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(id).into()
    }

    /// Whether `id` was recorded as unknown less than `ttl` ago.
    pub fn contains(&self, id: &[u8]) -> bool {
        let digest = Self::digest(id);
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&digest)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Records `id` as unknown.
    pub fn insert(&self, id: &[u8]) {
        let digest = Self::digest(id);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, at| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, std::time::Instant::now());
    }
}

/// `application/json` or `application/<anything>+json`, parameters (`; charset=utf-8`) aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::validation("expected a JSON body with `Content-Type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::validation(format!(
            "malformed JSON: {}",
            e.body_text()
                .replace("Failed to parse the request body as JSON: ", "")
        )),
        JsonRejection::JsonDataError(e) => ApiError::validation(format!(
            "invalid body: {}",
            e.body_text().replace(
                "Failed to deserialize the JSON body into the target type: ",
                ""
            )
        )),
        other => ApiError::validation(other.body_text()),
    }
}

/// A query string; bad values are `VALIDATION_ERROR`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::validation(format!(
                    "invalid query string: {}",
                    e.body_text()
                        .replace("Failed to deserialize query string: ", "")
                ))
            })
    }
}

/// Parses an id from a path or query value.
pub fn parse_id(what: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::validation(format!(
            "`{}` is not a valid {what} (expected a UUID)",
            text.chars().take(64).collect::<String>()
        ))
    })
}

/// `?limit=&cursor=` of every list (CONTRACT §3).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Validated pagination: a limit of 1–200 (default 50) and the id to continue after.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Uuid>,
}

impl PageParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        // `limit=` (empty) is refused like any other non-number; an empty cursor is the first page.
        let limit = match self.limit.as_deref() {
            None => 50,
            Some(text) => match text.parse::<u32>() {
                Ok(n @ 1..=200) => n,
                _ => {
                    return Err(ApiError::field(
                        "limit",
                        format!(
                            "limit must be an integer from 1 to 200, got `{}`",
                            text.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            },
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(decode_cursor(cursor)?),
        };
        Ok(Page { limit, after })
    }
}

/// Cursors are opaque to clients; inside they carry the last id of the previous page.
pub fn encode_cursor(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::field(
                "cursor",
                "invalid cursor: pass back the `cursor` of the previous page",
            )
        })
}

/// Cuts a page fetched with `limit + 1` rows to `limit` and says where the next one starts;
/// `None` on the last page.
pub fn paginate<T>(items: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
    paginate_within(items, false, page, id)
}

/// [`paginate`] for a page the store's size budget may have `cut` short: then the page ends
/// early and the cursor leads on from its last row.
pub fn paginate_within<T>(
    mut items: Vec<T>,
    cut: bool,
    page: Page,
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Option<String>) {
    if cut || items.len() > page.limit as usize {
        items.truncate(page.limit as usize);
        let cursor = items.last().map(|last| encode_cursor(id(last)));
        (items, cursor)
    } else {
        (items, None)
    }
}

/// `If-Match: "<version>"` (optimistic concurrency, seed 002); absent means apply unconditionally.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::validation("If-Match must be an ETag such as \"3\""))?;
        parse_if_match(text).map(IfMatch).ok_or_else(|| {
            ApiError::validation(format!(
                "If-Match must be an ETag such as \"3\", got `{}`",
                text.chars().take(32).collect::<String>()
            ))
        })
    }
}

/// `*` (any version: `None`), `"3"`, `W/"3"` or a bare `3` — the pattern the OpenAPI document
/// declares. Versions are at most 18 digits, so they always fit an `i64`.
fn parse_if_match(text: &str) -> Option<Option<i64>> {
    let text = text.trim_matches([' ', '\t']);
    if text == "*" {
        return Some(None);
    }
    let digits = match text.strip_prefix("W/").unwrap_or(text).strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None if text.starts_with("W/") => return None,
        None => text,
    };
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(value),
            );
            json_content_type(&headers)
        };
        for good in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(with(good), "{good}");
        }
        for bad in [
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(!with(bad), "{bad}");
        }
        assert!(!json_content_type(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn json_bodies_must_be_objects() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Settings {
            email: Option<String>,
        }
        let request = |body: &'static str| {
            Request::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .expect("request")
        };
        // serde reads a struct from an array of its fields: found by schemathesis (`[null]`).
        for bad in ["[null]", " [\"a@b.c\"]", "null", "1", "\"x\""] {
            let refused = Json::<Settings>::from_request(request(bad), &()).await;
            let error = refused.err().expect(bad);
            assert_eq!(error.code, ErrorCode::ValidationError, "{bad}");
        }
        let ok = Json::<Settings>::from_request(request(" {\"email\": null}"), &()).await;
        assert!(ok.is_ok());
    }

    #[test]
    fn an_empty_limit_is_refused_and_an_empty_cursor_is_the_first_page() {
        let page = |limit: Option<&str>, cursor: Option<&str>| {
            PageParams {
                limit: limit.map(str::to_owned),
                cursor: cursor.map(str::to_owned),
            }
            .page()
        };
        // Found by schemathesis: `?limit=` passed as "absent" while the document says integer.
        assert!(page(Some(""), None).is_err());
        assert!(page(Some("0"), None).is_err());
        assert!(page(Some("201"), None).is_err());
        assert_eq!(
            page(None, Some("")).map(|p| (p.limit, p.after)).ok(),
            Some((50, None))
        );
        let id = Uuid::from_u128(7);
        let next = page(Some("200"), Some(&encode_cursor(id))).expect("a valid page");
        assert_eq!((next.limit, next.after), (200, Some(id)));
    }

    #[test]
    fn if_match_accepts_etags_star_and_bare_versions_only() {
        assert_eq!(parse_if_match("\"3\""), Some(Some(3)));
        assert_eq!(parse_if_match("W/\"12\""), Some(Some(12)));
        assert_eq!(parse_if_match(" 7\t"), Some(Some(7)));
        assert_eq!(parse_if_match("*"), Some(None));
        for bad in [
            "",
            "null",
            "\"\"",
            "\"3",
            "3\"",
            "W/3",
            "-1",
            "+1",
            "\"1\"\"",
            "1234567890123456789",
            "yesterday",
        ] {
            assert_eq!(parse_if_match(bad), None, "{bad:?}");
        }
    }
}
