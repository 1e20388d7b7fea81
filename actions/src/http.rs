//! The guarded outbound HTTP client used for every call to a merchant-chosen URL (webhooks, push
//! services, integration credential checks): no proxy, no redirects, a total timeout, a capped
//! response body and, unless the operator allows private targets, no way to reach a non-public
//! address — checked on the addresses DNS actually returned, so DNS rebinding cannot get around it.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
pub use reqwest::{Method, StatusCode, Url};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The whole exchange, connect to last body byte, must finish within this (CONTRACT §5).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this much of a response body is read; the rest is left unread and the connection closed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The first this-many bytes of a response body are kept (on the attempt, in error reasons).
pub const KEPT_BODY_BYTES: usize = 2 * 1024;

/// Why a target was refused before any packet was sent to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("only http and https URLs are allowed, not `{0}`")]
    Scheme(String),
    #[error("URLs with a user name or password are not allowed")]
    UserInfo,
    #[error("the URL has no host")]
    NoHost,
    // One wording for a refused address, a name resolving only to refused addresses and a name
    // that does not resolve at all: telling them apart would let a tenant probe which internal
    // names exist (configure errors and attempt records are theirs to read).
    #[error("target not allowed: {0} is not a public address or does not resolve to one")]
    Address(IpAddr),
    #[error("target not allowed: {0} is not a public address or does not resolve to one")]
    Resolved(String),
}

/// How a request failed, in words short enough for an attempt record.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Refused by the SSRF guard: retrying will not help.
    #[error("{0}")]
    Blocked(GuardError),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// No connection could be made: refused, unreachable, or the name does not resolve.
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// The client could not be built (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("building the HTTP client: {0}")]
pub struct BuildError(String);

/// How a step that could not reach its peer fails: a refused target will be refused every time;
/// a timeout or a connection failure is worth another attempt.
impl From<SendError> for crate::ActionError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Blocked(reason @ (GuardError::Address(_) | GuardError::Resolved(_))) => {
                crate::ActionError::permanent(reason.to_string())
            }
            SendError::Blocked(other) => {
                crate::ActionError::permanent(format!("target not allowed: {other}"))
            }
            other => crate::ActionError::retryable(other.to_string()),
        }
    }
}

impl From<BuildError> for crate::builtin::SetupError {
    fn from(e: BuildError) -> Self {
        crate::builtin::SetupError(e.to_string())
    }
}

/// One outbound request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl OutboundRequest {
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: Url, body: Vec<u8>) -> Self {
        Self::new(Method::POST, url).with_body(body)
    }

    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// The part of a response body that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedBody {
    /// The first [`KEPT_BODY_BYTES`] (or the caller's `keep`), as lossy UTF-8, never ending in
    /// half a character.
    pub kept: String,
    /// Bytes taken off the wire; at most the cap plus the one chunk that crossed it.
    pub bytes_read: usize,
    /// The body was longer than the cap (or than `keep`): what is kept is not all of it.
    pub truncated: bool,
}

/// A response with its capped body.
#[derive(Debug, Clone)]
pub struct CappedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: CappedBody,
}

/// The guarded client. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    inner: reqwest::Client,
    allow_private_targets: bool,
    timeout: Duration,
}

/// Settings of a [`GuardedClient`]; tests shorten the timeout.
#[derive(Debug, Clone)]
pub struct GuardedClientBuilder {
    allow_private_targets: bool,
    timeout: Duration,
}

impl GuardedClientBuilder {
    pub fn allow_private_targets(mut self, allow: bool) -> Self {
        self.allow_private_targets = allow;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn build(self) -> Result<GuardedClient, BuildError> {
        let mut builder = reqwest::Client::builder()
            // An operator's HTTP(S)_PROXY would otherwise see (and could be made to reach)
            // merchant-chosen targets the guard never saw.
            .no_proxy()
            // A redirect would lead to a target the guard never checked; a 3xx is reported as is.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .user_agent(concat!("Switchyard/", env!("CARGO_PKG_VERSION")));
        if !self.allow_private_targets {
            builder = builder.dns_resolver(PublicOnlyResolver);
        }
        let inner = builder.build().map_err(|e| BuildError(e.to_string()))?;
        Ok(GuardedClient {
            inner,
            allow_private_targets: self.allow_private_targets,
            timeout: self.timeout,
        })
    }
}

impl GuardedClient {
    /// A client with the contract's 15 s timeout.
    pub fn new(allow_private_targets: bool) -> Result<Self, BuildError> {
        Self::builder()
            .allow_private_targets(allow_private_targets)
            .build()
    }

    pub fn builder() -> GuardedClientBuilder {
        GuardedClientBuilder {
            allow_private_targets: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn allows_private_targets(&self) -> bool {
        self.allow_private_targets
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The checks that need no DNS: http(s) only, no userinfo, and an IP-literal host must be
    /// public (reqwest does not call the resolver for IP literals, so this is their only check).
    pub fn check_url(&self, url: &Url) -> Result<(), GuardError> {
        check_url_shape(url)?;
        if self.allow_private_targets {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(GuardError::NoHost),
        };
        if is_public_ip(ip) {
            Ok(())
        } else {
            Err(GuardError::Address(ip))
        }
    }

    /// Sends the request and reads at most [`MAX_BODY_BYTES`] of the answer, keeping
    /// [`KEPT_BODY_BYTES`]. Any status is a response, not an error: the caller decides.
    pub async fn send(&self, request: OutboundRequest) -> Result<CappedResponse, SendError> {
        self.send_capped(request, MAX_BODY_BYTES, KEPT_BODY_BYTES)
            .await
    }

    /// [`send`](Self::send) with other caps (a credential check that parses a larger JSON).
    pub async fn send_capped(
        &self,
        request: OutboundRequest,
        max_bytes: usize,
        keep: usize,
    ) -> Result<CappedResponse, SendError> {
        let response = self.send_streaming(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.read_capped(response, max_bytes, keep).await?;
        Ok(CappedResponse {
            status,
            headers,
            body,
        })
    }

    /// Sends the request and returns once the response head arrived; the body is left to the
    /// caller, who should read it with [`read_capped`](Self::read_capped). The client's timeout
    /// still bounds the body.
    pub async fn send_streaming(
        &self,
        request: OutboundRequest,
    ) -> Result<reqwest::Response, SendError> {
        self.check_url(&request.url).map_err(SendError::Blocked)?;
        self.inner
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await
            .map_err(|e| classify(&e, self.timeout))
    }

    /// Reads a response body as a stream, counting but not keeping bytes past `keep`, and stops after
    /// `max_bytes`: an endless body costs neither memory nor more than one chunk of extra reading.
    /// Dropping the response then closes the connection instead of returning it to the pool.
    pub async fn read_capped(
        &self,
        mut response: reqwest::Response,
        max_bytes: usize,
        keep: usize,
    ) -> Result<CappedBody, SendError> {
        let mut kept = Vec::with_capacity(keep.min(KEPT_BODY_BYTES));
        let mut bytes_read = 0usize;
        let mut truncated = false;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(classify(&e, self.timeout)),
            };
            bytes_read = bytes_read.saturating_add(chunk.len());
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
            if chunk.len() > room {
                truncated = true;
            }
            if bytes_read >= max_bytes {
                // Whether anything followed is unknown without reading on; assume it did.
                truncated = true;
                break;
            }
        }
        Ok(CappedBody {
            kept: lossy_utf8_prefix(&kept),
            bytes_read,
            truncated,
        })
    }
}

fn check_url_shape(url: &Url) -> Result<(), GuardError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GuardError::Scheme(url.scheme().chars().take(16).collect()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::UserInfo);
    }
    if url.host().is_none() {
        return Err(GuardError::NoHost);
    }
    Ok(())
}

/// Lossy UTF-8, dropping a character cut in half by the cap rather than showing U+FFFD for it.
fn lossy_utf8_prefix(bytes: &[u8]) -> String {
    let end = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        // `error_len() == None`: the input ends inside a character.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Turns reqwest's error into one of ours, looking through its chain for the guard's refusal.
fn classify(error: &reqwest::Error, timeout: Duration) -> SendError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<GuardError>() {
            return SendError::Blocked(blocked.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return SendError::Timeout(timeout);
    }
    if error.is_connect() {
        let mut source: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return SendError::Connect(match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                    _ => format!("could not connect: {io}"),
                });
            }
            source = e.source();
        }
        if error.is_dns() {
            let host = error.url().and_then(Url::host_str).unwrap_or("the host");
            return SendError::Connect(format!("could not resolve {host}"));
        }
        return SendError::Connect(format!("could not connect: {}", root_cause(error)));
    }
    SendError::Other(root_cause(error))
}

/// The innermost error's text: reqwest's outer ones ("error sending request for url …") repeat
/// the URL and say little.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Resolves with the system resolver and keeps only public addresses.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // A name that does not resolve is refused like one that resolves privately, with the
            // same error (see `GuardError`); the cost is that a passing DNS failure is not
            // retried as a connection failure would be.
            let public: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(resolved) => resolved.filter(|a| is_public_ip(a.ip())).collect(),
                Err(_) => Vec::new(),
            };
            if public.is_empty() {
                return Err(Box::new(GuardError::Resolved(host)) as BoxError);
            }
            Ok::<Addrs, BoxError>(Box::new(public.into_iter()))
        })
    }
}

/// Whether `ip` is a globally routable unicast address. Everything special-purpose (IANA
/// registries) is refused, including IPv6 forms that embed a non-public IPv4 address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // ::ffff:a.b.c.d (mapped) reaches the IPv4 address on a dual-stack socket.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // ::a.b.c.d (deprecated IPv4-compatible) and NAT64 64:ff9b::/96 also lead to the IPv4 address.
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 2002:AABB:CCDD::/48 carries the IPv4 address in its 2nd and 3rd segments.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let refused = s[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
        || s[0] & 0xffc0 == 0xfe80 // link-local fe80::/10
        || s[0] & 0xffc0 == 0xfec0 // site-local fec0::/10 (deprecated)
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] & 0xfff0 == 0x3ff0) // documentation 3fff::/20
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: the IPv4 server is reachable through it
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0) // benchmarking 2001:2::/48
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || s[0] == 0; // whatever else lies in ::/16 is reserved
    !refused
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_prefix_drops_a_cut_character() {
        let text = "aé".as_bytes();
        assert_eq!(lossy_utf8_prefix(&text[..2]), "a");
        assert_eq!(lossy_utf8_prefix(text), "aé");
        assert_eq!(lossy_utf8_prefix(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn url_shape_is_checked_before_any_address() {
        let open = GuardedClient::builder()
            .allow_private_targets(true)
            .build()
            .expect("client");
        let parse = |s: &str| Url::parse(s).expect("url");
        assert_eq!(
            open.check_url(&parse("ftp://example.com/")),
            Err(GuardError::Scheme("ftp".to_owned()))
        );
        assert_eq!(
            open.check_url(&parse("https://u:p@example.com/")),
            Err(GuardError::UserInfo)
        );
        assert_eq!(open.check_url(&parse("http://127.0.0.1:1/")), Ok(()));
        let guarded = GuardedClient::new(false).expect("client");
        // The WHATWG parser turns a decimal host into an IPv4 address, so this is 127.0.0.1.
        assert!(matches!(
            guarded.check_url(&parse("http://2130706433/")),
            Err(GuardError::Address(_))
        ));
        assert_eq!(guarded.check_url(&parse("https://example.com/")), Ok(()));
    }
}
