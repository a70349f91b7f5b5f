//! Redis state of identity: failed-login counters and the access-token
//! denylist. Both fail closed: when Redis cannot be reached, logins and
//! token checks answer 503 rather than skip a brute-force limit or accept a
//! token that was logged out.
//!
//! # Keys (prefix `<FEIRA_AMQP_NAMESPACE>:identity:`)
//! - `login-failures:account:<sha256 hex of the normalized e-mail>`: failed
//!   logins of one account, expiring `FEIRA_IDENTITY_LOGIN_FAILURE_WINDOW`
//!   after the first failure; deleted by a successful login.
//! - `login-failures:ip:<client ip>`: failed logins from one client IP, same
//!   window; not reset by a success.
//! - `denylist:<jti>`: `"1"` for a logged-out access token, expiring when the
//!   token does. The gateway checks exactly this key while its copy of the
//!   denylist is not current.
//! - `denylist` (sorted set), `revocations` (channel), `revocations:<jti>`
//!   (acknowledgements), `copies` (sorted set): the gateways' copies of the
//!   denylist and how a logout waits for them (`platform::revocations`,
//!   docs/adr/0021-revocation-copies.md).

use std::net::IpAddr;
use std::time::Duration;

use platform::revocations;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::IdentityError;

/// Bound of one Redis round trip.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Limits of failed logins.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_account: u32,
    pub per_ip: u32,
    pub window: Duration,
}

/// identity's Redis. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    client: redis::Client,
    conn: std::sync::Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    names: revocations::Names,
    limits: Limits,
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(anyhow::anyhow!("redis: {e}"))
}

impl Guard {
    pub fn new(url: &str, prefix: String, limits: Limits) -> anyhow::Result<Guard> {
        let names = revocations::Names::with_prefix(prefix.clone());
        Ok(Guard { client: redis::Client::open(url)?, conn: Default::default(), prefix, names, limits })
    }

    /// The denylist key of a token id (the gateway's contract).
    pub fn denylist_key(&self, jti: Uuid) -> String {
        self.names.denylist_key(&jti.to_string())
    }

    fn account_key(&self, email: &str) -> String {
        format!("{}login-failures:account:{}", self.prefix, hex(&Sha256::digest(email.as_bytes())))
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        format!("{}login-failures:ip:{ip}", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, IdentityError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1);
                tokio::time::timeout(TIMEOUT * 2, ConnectionManager::new_with_config(self.client.clone(), config))
                    .await
                    .map_err(|_| unavailable("no connection within 2 s"))?
                    .map_err(unavailable)
            })
            .await?;
        Ok(conn.clone())
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, IdentityError> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(TIMEOUT, pipe.query_async(&mut conn))
            .await
            .map_err(|_| unavailable("no answer within 1 s"))?
            .map_err(unavailable)
    }

    /// `Err(Throttled)` when the account or the IP has used up its failures;
    /// the retry delay is the longer of the blocking counters' remaining time.
    pub async fn check_login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), IdentityError> {
        let mut pipe = redis::pipe();
        let account = self.account_key(email);
        pipe.get(&account).pttl(&account);
        if let Some(ip) = ip {
            let key = self.ip_key(ip);
            pipe.get(&key).pttl(&key);
        }
        let values: Vec<Option<i64>> = self.query(&pipe).await?;
        let mut retry_after_ms = None;
        let limits = [self.limits.per_account, self.limits.per_ip];
        for (pair, limit) in values.chunks(2).zip(limits) {
            if let [Some(count), ttl] = pair
                && *count >= i64::from(limit)
            {
                let ms = ttl.filter(|t| *t > 0).unwrap_or(1000);
                retry_after_ms = Some(retry_after_ms.unwrap_or(0).max(ms));
            }
        }
        match retry_after_ms {
            Some(ms) => Err(IdentityError::Throttled { retry_after_secs: (ms as u64).div_ceil(1000).max(1) }),
            None => Ok(()),
        }
    }

    /// Counts a failed login against the account and the IP.
    pub async fn record_failure(&self, email: &str, ip: Option<IpAddr>) -> Result<(), IdentityError> {
        let window = self.limits.window.as_secs().max(1) as i64;
        let mut keys = vec![self.account_key(email)];
        keys.extend(ip.map(|ip| self.ip_key(ip)));
        let mut pipe = redis::pipe();
        for key in &keys {
            // The window starts at the first failure (NX keeps it).
            pipe.incr(key, 1).ignore().cmd("EXPIRE").arg(key).arg(window).arg("NX").ignore();
        }
        self.query::<()>(&pipe).await
    }

    /// A successful login clears the account's failures.
    pub async fn reset_account(&self, email: &str) -> Result<(), IdentityError> {
        let mut pipe = redis::pipe();
        pipe.del(self.account_key(email)).ignore();
        self.query::<()>(&pipe).await
    }

    /// Denylists an access token until it expires, and returns once no
    /// gateway lets it through any more: the gateways' copies of the
    /// denylist have acknowledged it, or stopped trusting themselves
    /// (platform::revocations; at most 500 ms when a copy fails).
    pub async fn deny(&self, jti: Uuid, ttl_secs: u64) -> Result<(), IdentityError> {
        let mut conn = self.conn().await?;
        let jti = jti.to_string();
        let ttl = Duration::from_secs(ttl_secs.max(1));
        let revoke = revocations::revoke(&self.client, &mut conn, &self.names, &jti, ttl);
        // The script's round trip, then at most FRESH for the copies.
        let waited = tokio::time::timeout(TIMEOUT + revocations::FRESH * 3, revoke)
            .await
            .map_err(|_| unavailable("revocation not confirmed within 2.5 s"))?
            .map_err(unavailable)?;
        tracing::debug!(acknowledged = waited.acknowledged, waited_out = waited.waited_out, "token revoked");
        Ok(())
    }

    pub async fn is_denied(&self, jti: Uuid) -> Result<bool, IdentityError> {
        let mut pipe = redis::pipe();
        pipe.exists(self.denylist_key(jti));
        let (exists,): (bool,) = self.query(&pipe).await?;
        Ok(exists)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
