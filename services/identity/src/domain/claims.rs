//! The access token's claims (the contract the gateway verifies).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Claims of an access token (a JWT signed with Ed25519, `alg: EdDSA`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: Uuid,
    /// `customer`, `seller`, `admin`.
    pub roles: Vec<String>,
    /// The token's id (the key of the logout denylist).
    pub jti: Uuid,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    pub email: String,
}

impl AccessClaims {
    /// Seconds left before the token expires at `now` (Unix seconds), at least 1.
    pub fn remaining_secs(&self, now: i64) -> u64 {
        u64::try_from(self.exp.saturating_sub(now)).unwrap_or(0).max(1)
    }
}
