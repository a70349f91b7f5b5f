//! The provider's webhook signature: `Psp-Signature: t=<unix>,v1=<hex>`
//! where `v1` is HMAC-SHA256(secret, "<t>.<raw body>"), accepted within a
//! tolerance of `t` (replays of an old delivery are refused).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header the provider signs its webhooks in.
pub const SIGNATURE_HEADER: &str = "psp-signature";

/// How far `t` may be from now, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Psp-Signature header is missing")]
    Missing,
    #[error("the Psp-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// The `reason` label of `payments_webhook_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed => "malformed_signature",
            SignatureError::Stale => "stale_timestamp",
            SignatureError::Mismatch => "bad_signature",
        }
    }
}

/// HMAC takes keys of any length, so this never fails in practice.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> Result<HmacSha256, hmac::digest::InvalidLength> {
    let mut mac = HmacSha256::new_from_slice(secret)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The header value the provider sends for `body` at unix time `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    let tag = mac(secret.as_bytes(), t, body)?.finalize().into_bytes();
    Ok(format!("t={t},v1={}", hex::encode(tag)))
}

/// Checks `header` against `body` at unix time `now`, in constant time. Any
/// of several `v1=` entries may match (the provider rotating its secret).
pub fn verify(secret: &str, header: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t: Option<i64> = None;
    let mut tags: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            "t" => t = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => tags.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret.as_bytes(), t, body).map_err(|_| SignatureError::Mismatch)?;
    if tags.iter().any(|tag| expected.clone().verify_slice(tag).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";

    #[test]
    fn a_signed_body_verifies() {
        let h = sign(SECRET, 1_000, b"{}").unwrap();
        assert_eq!(verify(SECRET, Some(&h), b"{}", 1_000), Ok(()));
        assert_eq!(verify(SECRET, Some(&h), b"{}", 1_000 + TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let h = sign(SECRET, 1_000, b"{}").unwrap();
        assert_eq!(verify(SECRET, None, b"{}", 1_000), Err(SignatureError::Missing));
        assert_eq!(verify(SECRET, Some("garbage"), b"{}", 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some("t=1000"), b"{}", 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some("t=x,v1=00"), b"{}", 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some(&h), b"{}", 1_000 + TOLERANCE_SECS + 1), Err(SignatureError::Stale));
        assert_eq!(verify(SECRET, Some(&h), b"{ }", 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify("other", Some(&h), b"{}", 1_000), Err(SignatureError::Mismatch));
        let forged = format!("t=1000,v1={}", "ab".repeat(32));
        assert_eq!(verify(SECRET, Some(&forged), b"{}", 1_000), Err(SignatureError::Mismatch));
    }
}
