//! Access tokens: EdDSA (Ed25519) JWTs issued by identity, verified against
//! its JWKS.
//!
//! The key set is cached by `kid`. A token with a `kid` the cache does not
//! know makes the gateway fetch the JWKS again (at most once per
//! `min_refetch`, one fetch at a time), so a key identity just started
//! signing with works at once; a background loop also refreshes it every
//! `refresh`, so a key identity removed stops verifying. Only `alg: EdDSA`
//! is accepted: `none`, HMAC with the public key as secret (algorithm
//! confusion) and any other algorithm are refused before any key is used.
//! Denylisted (logged-out) tokens are checked by [`crate::limits`]: in the
//! gateway's copy of the denylist, or in Redis while the copy is not current.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

/// Verified tokens kept at most (about 3 MB).
const VERIFIED_CAPACITY: usize = 10_000;

/// Who the token says the caller is.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    pub jti: String,
    pub exp: u64,
    /// Made once per verified token (the cache keeps them with it).
    #[serde(skip)]
    pub derived: Derived,
}

/// What every request of a token needs from its claims, made once.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// `x-feira-user-id`.
    pub user_id: Option<HeaderValue>,
    /// `x-feira-roles`: the roles, comma-separated.
    pub roles: Option<HeaderValue>,
    /// The rate limit's caller: `u:<sub>`.
    pub caller: String,
}

impl Claims {
    fn derive(mut self) -> Claims {
        self.derived = Derived {
            user_id: HeaderValue::from_str(&self.sub.to_string()).ok(),
            roles: HeaderValue::from_str(&self.roles.join(",")).ok(),
            caller: format!("u:{}", self.sub),
        };
        self
    }
}

/// Why a token was refused (logged; the client only learns "invalid_token").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not accepted")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("token revoked")]
    Revoked,
    #[error("claims invalid")]
    Claims,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::UnknownKey => "unknown_kid",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::Revoked => "revoked",
            TokenError::Claims => "claims",
        }
    }
}

pub struct VerifierConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    pub min_refetch: Duration,
}

/// One serving thread's verified tokens.
#[derive(Default)]
struct Verified {
    /// The key set's generation they were verified under.
    generation: u64,
    /// foldhash: tokens are a few hundred bytes, hashed on every request.
    tokens: foldhash::HashMap<Box<str>, Arc<Claims>>,
}

/// Verifies access tokens; clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Tokens already verified (by the whole token text), so a client's
    /// next requests skip the signature check: one cache per serving thread
    /// (they share no lock and no reference count), emptied whenever the
    /// key set changes (`generation`) and when it grows past
    /// `VERIFIED_CAPACITY`. Expiry is still checked on every use, and the
    /// denylist every time (by `crate::limits`).
    verified: thread_local::ThreadLocal<std::cell::RefCell<Verified>>,
    /// Bumped whenever the key set changes.
    generation: std::sync::atomic::AtomicU64,
    validation: Validation,
    min_refetch: Duration,
    /// When the key set was last fetched (successfully or not); held while
    /// fetching, so concurrent misses make one request.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    pub fn new(cfg: VerifierConfig, http: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Verifier {
            inner: Arc::new(Inner {
                jwks_url: cfg.jwks_url,
                http,
                keys: RwLock::new(HashMap::new()),
                verified: thread_local::ThreadLocal::new(),
                generation: std::sync::atomic::AtomicU64::new(0),
                validation,
                min_refetch: cfg.min_refetch,
                last_fetch: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Checks the token's algorithm, key, signature and claims.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        if let Some(c) = self.cached(token) {
            if c.exp + self.inner.validation.leeway > jsonwebtoken::get_current_timestamp() {
                return Ok(c);
            }
            return Err(TokenError::Expired);
        }
        let generation = self.inner.generation.load(std::sync::atomic::Ordering::Acquire);
        let claims = Arc::new(self.verify_uncached(token).await?);
        let mut verified = self.thread_cache().borrow_mut();
        if verified.generation != generation || verified.tokens.len() >= VERIFIED_CAPACITY {
            verified.tokens.clear();
            verified.generation = generation;
        }
        verified.tokens.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn thread_cache(&self) -> &std::cell::RefCell<Verified> {
        self.inner.verified.get_or(Default::default)
    }

    /// This thread's verified claims of `token`, unless the key set changed
    /// since.
    fn cached(&self, token: &str) -> Option<Arc<Claims>> {
        let verified = self.thread_cache().borrow();
        if verified.generation != self.inner.generation.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        verified.tokens.get(token).cloned()
    }

    async fn verify_uncached(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        if let Some(result) = self.verify_with_cached(&kid, token) {
            return result;
        }
        self.refetch().await;
        self.verify_with_cached(&kid, token).unwrap_or(Err(TokenError::UnknownKey))
    }

    fn verify_with_cached(&self, kid: &str, token: &str) -> Option<Result<Claims, TokenError>> {
        let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
        let key = keys.get(kid)?;
        Some(jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation).map(|d| d.claims.derive()).map_err(
            |e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => TokenError::Signature,
                    K::ExpiredSignature => TokenError::Expired,
                    K::InvalidIssuer => TokenError::Issuer,
                    K::InvalidAudience => TokenError::Audience,
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
                    K::MissingRequiredClaim(_) | K::Json(_) | K::ImmatureSignature => TokenError::Claims,
                    _ => TokenError::Malformed,
                }
            },
        ))
    }

    /// Fetches the key set unless one was fetched less than `min_refetch` ago.
    async fn refetch(&self) {
        let mut last = self.inner.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.inner.min_refetch) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch().await {
            tracing::warn!(url = %self.inner.jwks_url, error = format!("{e:#}"), "jwks fetch failed");
        }
    }

    /// Replaces the cached keys with the JWKS's Ed25519 signing keys.
    pub async fn fetch(&self) -> anyhow::Result<usize> {
        let res = self.inner.http.get(&self.inner.jwks_url).timeout(Duration::from_secs(3)).send().await?;
        let set: JwkSet = res.error_for_status()?.json().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), AlgorithmParameters::OctetKeyPair(okp)) = (&jwk.common.key_id, &jwk.algorithm) else {
                continue;
            };
            if okp.curve != EllipticCurve::Ed25519 {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid.clone(), k);
                }
                Err(e) => tracing::warn!(kid, error = %e, "jwks key skipped"),
            }
        }
        let n = keys.len();
        *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        self.inner.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        metrics::counter!("gateway_jwks_fetches_total").increment(1);
        Ok(n)
    }

    /// Refreshes the key set every `every` until `stop` is cancelled.
    pub async fn refresh_loop(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            {
                let mut last = self.inner.last_fetch.lock().await;
                *last = Some(Instant::now());
                match self.fetch().await {
                    Ok(n) => tracing::debug!(keys = n, "jwks refreshed"),
                    Err(e) => tracing::warn!(url = %self.inner.jwks_url, error = format!("{e:#}"), "jwks fetch failed"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
