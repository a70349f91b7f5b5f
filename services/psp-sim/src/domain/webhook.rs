//! Callback signatures: `Psp-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<raw body>")>`, Stripe's scheme, so a receiver
//! can check who sent the body and when.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Psp-Signature";

/// The hex HMAC-SHA256 of `"<t>.<body>"`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Psp-Signature` header value for `body` sent at unix time `t`.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// Whether `header` is a valid signature of `body` by `secret` (what a
/// receiver does; the simulator's tests use it).
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    sigs.iter().any(|s| hex::decode(s).is_ok_and(|raw| mac.clone().verify_slice(&raw).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_and_body() {
        let h = signature_header("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify("whsec_x", &h, b"{\"a\":1}"));
        assert!(!verify("whsec_y", &h, b"{\"a\":1}"));
        assert!(!verify("whsec_x", &h, b"{\"a\":2}"));
        assert!(!verify("whsec_x", "v1=00", b"{\"a\":1}"));
    }

    #[test]
    fn the_signed_text_is_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.x"), computed independently (Python's hmac).
        assert_eq!(sign("key", 1, b"x"), "fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec");
        assert_ne!(sign("key", 1, b"x"), sign("key", 2, b"x"));
    }
}
