//! Webhook signing: Standard Webhooks (`webhook-signature`) and the Stripe-style
//! `X-Switchyard-Signature` that seed-002 receivers check, plus the Standard Webhooks verifier the
//! engine uses for inbound `custom` integration webhooks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret: 192 bits, as Svix generates them.
const GENERATED_SECRET_BYTES: usize = 24;

/// Why a secret or a signature was not accepted. The text never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the secret must start with `whsec_` followed by base64")]
    MalformedSecret,
    #[error("the signature timestamp is outside the tolerance")]
    StaleTimestamp,
    #[error("no valid signature")]
    InvalidSignature,
}

/// A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    // ThreadRng is a CSPRNG seeded (and reseeded) from the operating system.
    rand::fill(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key of a Standard Webhooks secret: the base64-decoded part after `whsec_`.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SignError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignError::MalformedSecret)?;
    STANDARD
        .decode(encoded)
        .map_err(|_| SignError::MalformedSecret)
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn standard_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`, the `webhook-signature` value.
pub fn standard_signature(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    let key = secret_key(secret)?;
    let tag = standard_mac(&key, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`, the `X-Switchyard-Signature` value. The key is
/// the whole `whsec_…` string as bytes, as Stripe does, so receivers need no base64 step.
pub fn switchyard_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(tag.len() * 2);
    for byte in tag.iter() {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    format!("t={timestamp},v1={hex}")
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Checks a Standard Webhooks delivery: `signature_header` is the `webhook-signature` value, a
/// space-separated list of `v1,<base64>` (several while a secret is being rotated); one must match.
/// `now` and `timestamp` are unix seconds; `tolerance` bounds their difference either way, which
/// stops replays of old deliveries.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
    now: i64,
    tolerance: std::time::Duration,
) -> Result<(), SignError> {
    let key = secret_key(secret)?;
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignError::StaleTimestamp);
    }
    let mac = standard_mac(&key, msg_id, timestamp, body);
    let matched = signature_header
        .split(' ')
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        // `verify_slice` compares in constant time; the MAC state is cloned per candidate.
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The test vector of the Standard Webhooks reference implementations.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_signature_matches_the_reference_vector() {
        assert_eq!(
            standard_signature(SECRET, MSG_ID, TIMESTAMP, BODY).as_deref(),
            Ok(EXPECTED)
        );
    }

    #[test]
    fn standard_signature_matches_the_svix_crate_vector() {
        assert_eq!(
            standard_signature(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#,
            )
            .as_deref(),
            Ok("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn verify_accepts_any_of_several_signatures_and_rejects_tampering() {
        let tolerance = Duration::from_secs(300);
        let header = format!("v1,bm9wZQ== {EXPECTED}");
        assert_eq!(
            verify_standard(
                SECRET,
                MSG_ID,
                TIMESTAMP,
                BODY,
                &header,
                TIMESTAMP + 10,
                tolerance
            ),
            Ok(())
        );
        assert_eq!(
            verify_standard(
                SECRET, MSG_ID, TIMESTAMP, b"{}", EXPECTED, TIMESTAMP, tolerance
            ),
            Err(SignError::InvalidSignature)
        );
        assert_eq!(
            verify_standard(
                SECRET,
                MSG_ID,
                TIMESTAMP,
                BODY,
                EXPECTED,
                TIMESTAMP + 301,
                tolerance
            ),
            Err(SignError::StaleTimestamp)
        );
        assert_eq!(
            verify_standard(
                SECRET, MSG_ID, TIMESTAMP, BODY, "v2,abc", TIMESTAMP, tolerance
            ),
            Err(SignError::InvalidSignature)
        );
    }

    #[test]
    fn generated_secrets_are_usable_and_distinct() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert_eq!(secret_key(&a).map(|k| k.len()), Ok(24));
        assert!(standard_signature(&a, "msg_1", 1, b"x").is_ok());
        assert_eq!(
            standard_signature("nope", "msg_1", 1, b"x"),
            Err(SignError::MalformedSecret)
        );
    }

    #[test]
    fn switchyard_signature_is_stripe_shaped() {
        let sig = switchyard_signature(SECRET, TIMESTAMP, BODY);
        let (t, v1) = sig.split_once(',').unwrap_or_default();
        assert_eq!(t, format!("t={TIMESTAMP}"));
        assert_eq!(v1.len(), "v1=".len() + 64);
        assert!(v1[3..].bytes().all(|b| HEX_DIGITS.contains(&b)));
    }
}
