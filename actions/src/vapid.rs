//! VAPID keys (RFC 8292) and the checks a Web Push subscription must pass before it is saved.
//!
//! Keys travel as base64url, the form browsers take for `applicationServerKey` and the form
//! `switchyard vapid generate` prints: the private key is the raw 32-byte P-256 scalar, the public
//! key the 65-byte uncompressed point. The engine uses this module for `vapid generate`,
//! `GET /api/integrations/vapid-public-key` and `POST /api/integrations/save-vapid-subscription`;
//! the `send_push` action uses it to read the operator's key once, at start.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};

use crate::ValidationError;

/// The longest push endpoint accepted: real ones (FCM, Mozilla, Apple, WNS) stay well under 1 KiB.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A VAPID key pair, both halves base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VapidKeys {
    /// The raw 32-byte P-256 scalar: `--vapid-private-key` / `VAPID_PRIVATE_KEY`.
    pub private_key: String,
    /// The 65-byte uncompressed point: what browsers pass as `applicationServerKey`.
    pub public_key: String,
}

/// Why a VAPID private key is unusable. Raised at start, so the operator sees it at once rather
/// than on the first push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("VAPID private key is not base64url: {0}")]
    NotBase64(String),
    #[error(
        "VAPID private key must be the raw 32-byte P-256 scalar (base64url, 43 characters), got {0} bytes"
    )]
    WrongLength(usize),
    #[error("VAPID private key is not a valid P-256 scalar (zero or not below the curve order)")]
    OutOfRange,
}

/// A new random key pair, from the thread-local CSPRNG (seeded by the operating system).
pub fn generate_keypair() -> VapidKeys {
    loop {
        let mut scalar = [0u8; 32];
        rand::fill(&mut scalar[..]);
        // Zero or a value at or above the curve order is not a key; with 256 random bits that
        // happens with probability ~2^-32, so the loop runs once in practice.
        if let Ok(secret) = SecretKey::from_slice(&scalar) {
            return VapidKeys {
                private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
                public_key: encode_public(&secret.public_key()),
            };
        }
    }
}

/// The base64url public key (65-byte uncompressed point) for a base64url private key.
pub fn public_key_for(private_b64url: &str) -> Result<String, VapidError> {
    Ok(encode_public(
        &parse_private_key(private_b64url)?.public_key(),
    ))
}

/// Parses a base64url private key (padded or not, surrounding whitespace ignored: keys often
/// arrive from files and environment variables with a trailing newline).
pub(crate) fn parse_private_key(private_b64url: &str) -> Result<SecretKey, VapidError> {
    let bytes = URL_SAFE_NO_PAD_INDIFFERENT
        .decode(private_b64url.trim())
        .map_err(|e| VapidError::NotBase64(e.to_string()))?;
    if bytes.len() != 32 {
        return Err(VapidError::WrongLength(bytes.len()));
    }
    SecretKey::from_slice(&bytes).map_err(|_| VapidError::OutOfRange)
}

/// The canonical (unpadded) base64url form of a private key, as `web-push` wants it.
pub(crate) fn canonical_private_key(secret: &SecretKey) -> String {
    URL_SAFE_NO_PAD.encode(secret.to_bytes())
}

fn encode_public(public: &PublicKey) -> String {
    URL_SAFE_NO_PAD.encode(public.to_encoded_point(false).as_bytes())
}

/// Checks a browser's `PushSubscription` before it is saved, so that a bad one is refused with
/// a clear message instead of failing every later push.
///
/// `endpoint` must be an `https` URL (plain `http` only when `allow_private_targets`, for local
/// test push services) of at most [`MAX_ENDPOINT_LEN`] characters; `p256dh` must be base64url
/// (padded or not) of a 65-byte uncompressed P-256 point on the curve; `auth` base64url of exactly
/// 16 bytes (RFC 8291 §2).
pub fn validate_subscription(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    allow_private_targets: bool,
) -> Result<(), ValidationError> {
    validate_endpoint(endpoint, allow_private_targets)?;

    let key = decode_b64url(p256dh).map_err(|e| ValidationError::field("p256dh", e))?;
    if key.len() != 65 || key[0] != 0x04 {
        return Err(ValidationError::field(
            "p256dh",
            format!(
                "must be a 65-byte uncompressed P-256 point (base64url, starting with 0x04), got {} bytes",
                key.len()
            ),
        ));
    }
    // Encrypting to a point that is not on the curve would fail on every push (and is the shape
    // of an invalid-curve attack), so it is refused here.
    PublicKey::from_sec1_bytes(&key)
        .map_err(|_| ValidationError::field("p256dh", "is not a point on the P-256 curve"))?;

    let secret = decode_b64url(auth).map_err(|e| ValidationError::field("auth", e))?;
    if secret.len() != 16 {
        return Err(ValidationError::field(
            "auth",
            format!(
                "must be a 16-byte authentication secret (base64url), got {} bytes",
                secret.len()
            ),
        ));
    }
    Ok(())
}

fn validate_endpoint(endpoint: &str, allow_private_targets: bool) -> Result<(), ValidationError> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(ValidationError::field(
            "endpoint",
            format!("at most {MAX_ENDPOINT_LEN} characters"),
        ));
    }
    let url = url::Url::parse(endpoint)
        .map_err(|e| ValidationError::field("endpoint", format!("is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private_targets => {}
        "http" => {
            return Err(ValidationError::field(
                "endpoint",
                "must be an https URL (push services are only reached over TLS)",
            ));
        }
        other => {
            return Err(ValidationError::field(
                "endpoint",
                format!("must be an https URL, not {other}:"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::field("endpoint", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::field(
            "endpoint",
            "must not carry credentials",
        ));
    }
    Ok(())
}

fn decode_b64url(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD_INDIFFERENT
        .decode(text.trim())
        .map_err(|e| format!("is not base64url: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip() {
        let keys = generate_keypair();
        assert_eq!(keys.private_key.len(), 43);
        assert_eq!(keys.public_key.len(), 87);
        assert_eq!(
            public_key_for(&keys.private_key),
            Ok(keys.public_key.clone())
        );
        // Padding and a trailing newline (a key read from a file) are tolerated.
        assert_eq!(
            public_key_for(&format!("{}=\n", keys.private_key)),
            Ok(keys.public_key)
        );
    }

    #[test]
    fn known_key_gives_known_public_key() {
        // The base64 test vector of the web-push crate's own tests.
        assert_eq!(
            public_key_for("IQ9Ur0ykXoHS9gzfYX0aBjy9lvdrjx_PFUXmie9YRcY").as_deref(),
            Ok(
                "BMjQIp55pdbU8pfCBKyXcZjlmER_mXt5LqNrN1hrXbdBS5EnhIbMu3Au-RV53iIpztzNXkGI56BFB1udQ8Bq_H4"
            )
        );
    }

    #[test]
    fn malformed_private_keys_are_refused() {
        assert!(matches!(
            public_key_for("not base64!"),
            Err(VapidError::NotBase64(_))
        ));
        assert_eq!(public_key_for("AAAA"), Err(VapidError::WrongLength(3)));
        assert_eq!(
            public_key_for(&URL_SAFE_NO_PAD.encode([0u8; 32])),
            Err(VapidError::OutOfRange)
        );
        assert_eq!(
            public_key_for(&URL_SAFE_NO_PAD.encode([0xffu8; 32])),
            Err(VapidError::OutOfRange)
        );
    }
}
