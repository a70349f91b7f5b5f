//! The Ed25519 signing keys: creation and rotation (the database is the
//! truth, so every replica signs with the same key), encryption at rest,
//! signing and verifying access tokens, and the published JWKS.
//!
//! # Lifecycle
//! - One key is active (a partial unique index allows no second one); every
//!   issuance reads which one from the database, so a rotation is seen by
//!   all replicas at once.
//! - A rotation (admin request, or the key being older than
//!   `FEIRA_IDENTITY_KEY_ROTATION`) runs under an advisory lock: it marks the
//!   active key superseded, wipes its private half and inserts a new key.
//! - A superseded key stays in the JWKS (and verifies) for the access-token
//!   lifetime plus [`RETIRE_MARGIN`], so every token it signed has expired
//!   before its public key goes; then it is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::IdentityError;
use crate::domain::AccessClaims;
use crate::repo::keys::{self as repo, KeyRow};

/// Time a superseded key stays published beyond the access-token lifetime
/// (clock skew, a token issued while the rotation committed).
pub const RETIRE_MARGIN: Duration = Duration::from_secs(10 * 60);

/// How long the verifying keys are cached before they are read again.
const VERIFIER_REFRESH: Duration = Duration::from_secs(30);
/// An unknown `kid` reloads the keys at most this often.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(1);

/// One public key as published in the JWKS (RFC 8037 `OKP` / `Ed25519`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    #[schema(example = "OKP")]
    pub kty: &'static str,
    #[schema(example = "Ed25519")]
    pub crv: &'static str,
    /// The raw public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: &'static str,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: &'static str,
}

impl PublicJwk {
    fn of(public_key: &[u8], kid: &str) -> PublicJwk {
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.to_string(),
            alg: "EdDSA",
            use_: "sig",
        }
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: its `kid`.
pub fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public_key));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Encrypts private keys at rest (AES-256-GCM, key = SHA-256 of the secret,
/// the `kid` as associated data).
struct KeyCipher(LessSafeKey);

impl KeyCipher {
    fn new(secret: &str) -> Result<KeyCipher, IdentityError> {
        let key = Sha256::digest(secret.as_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, &key)
            .map_err(|_| IdentityError::Internal(anyhow::anyhow!("cannot build the key-encryption key")))?;
        Ok(KeyCipher(LessSafeKey::new(unbound)))
    }

    fn seal(&self, kid: &str, plain: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| internal("no randomness for a nonce"))?;
        let mut data = plain.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| internal("encrypting a signing key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, IdentityError> {
        if sealed.len() < NONCE_LEN {
            return Err(internal("an encrypted signing key is truncated"));
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| internal("bad nonce"))?;
        let mut data = data.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data).map_err(|_| {
            internal(
                "cannot decrypt a signing key: is FEIRA_IDENTITY_KEY_ENCRYPTION_SECRET the one it was stored with?",
            )
        })?;
        Ok(plain.to_vec())
    }
}

fn internal(msg: &'static str) -> IdentityError {
    IdentityError::Internal(anyhow::anyhow!(msg))
}

/// Why a presented access token is refused (never shown to the client).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token or header: {0}")]
    Malformed(String),
    #[error("token algorithm is not EdDSA")]
    Algorithm,
    #[error("unknown or retired kid")]
    UnknownKey,
    #[error("verification failed: {0}")]
    Invalid(String),
}

struct Verifiers {
    keys: HashMap<String, DecodingKey>,
    loaded_at: Option<Instant>,
}

/// Signs and verifies access tokens with the keys in the database.
pub struct KeyRing {
    db: PgPool,
    cipher: Option<KeyCipher>,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    signers: Mutex<HashMap<String, Arc<EncodingKey>>>,
    verifiers: tokio::sync::Mutex<Verifiers>,
}

impl KeyRing {
    pub fn new(
        db: PgPool,
        key_secret: Option<&str>,
        issuer: String,
        audience: String,
        access_ttl: Duration,
    ) -> Result<KeyRing, IdentityError> {
        Ok(KeyRing {
            db,
            cipher: key_secret.map(KeyCipher::new).transpose()?,
            issuer,
            audience,
            access_ttl,
            signers: Mutex::new(HashMap::new()),
            verifiers: tokio::sync::Mutex::new(Verifiers { keys: HashMap::new(), loaded_at: None }),
        })
    }

    /// How long a superseded key stays published.
    pub fn retire_after(&self) -> Duration {
        self.access_ttl + RETIRE_MARGIN
    }

    fn published_since(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.retire_after()
    }

    /// Creates the first key when there is none, and checks the active key
    /// can be used (decrypted with the configured secret).
    pub async fn ensure_active_key(&self) -> Result<String, IdentityError> {
        let kid = self.rotate(Rotation::IfMissing).await?;
        self.signer().await?;
        Ok(kid)
    }

    /// Replaces the active key according to `when`; returns the active kid
    /// afterwards. Safe with several replicas (advisory lock, re-checked).
    #[tracing::instrument(skip_all, fields(rotation = ?when))]
    pub async fn rotate(&self, when: Rotation) -> Result<String, IdentityError> {
        let mut tx = self.db.begin().await?;
        repo::lock_keys(&mut tx).await?;
        let active = repo::fetch_active_key(&mut tx).await?;
        let now = kernel::time::now();
        let due = match (&active, when) {
            (None, _) => true,
            (Some(_), Rotation::IfMissing) => false,
            (Some(_), Rotation::Now) => true,
            (Some(k), Rotation::IfOlderThan(age)) => k.created_at + age <= now,
        };
        if !due {
            tx.commit().await?;
            return Ok(active.map(|k| k.kid).unwrap_or_default());
        }
        let key = self.generate(now)?;
        if active.is_some() {
            repo::supersede_active_key(&mut tx, now).await?;
        }
        repo::insert_key(&mut tx, &key).await?;
        tx.commit().await?;
        tracing::info!(kid = %key.kid, previous = active.as_ref().map(|k| k.kid.as_str()), "signing key created");
        // The next verification reads the keys again.
        self.verifiers.lock().await.loaded_at = None;
        Ok(key.kid)
    }

    fn generate(&self, now: OffsetDateTime) -> Result<KeyRow, IdentityError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| internal("generating an Ed25519 key failed"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| internal("reading the generated Ed25519 key failed"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        let kid = thumbprint(&public_key);
        let (private_key, encrypted) = match &self.cipher {
            Some(c) => (c.seal(&kid, pkcs8.as_ref())?, true),
            None => (pkcs8.as_ref().to_vec(), false),
        };
        Ok(KeyRow { kid, public_key, private_key: Some(private_key), encrypted, created_at: now, superseded_at: None })
    }

    /// The active key: its kid and its encoding key (cached by kid).
    async fn signer(&self) -> Result<(String, Arc<EncodingKey>), IdentityError> {
        let mut conn = self.db.acquire().await?;
        let Some(row) = repo::fetch_active_key(&mut conn).await? else {
            drop(conn);
            self.rotate(Rotation::IfMissing).await?;
            return Box::pin(self.signer()).await;
        };
        if let Some(key) = self.signers.lock().unwrap_or_else(PoisonError::into_inner).get(&row.kid) {
            return Ok((row.kid, key.clone()));
        }
        let stored = row.private_key.as_deref().ok_or_else(|| internal("the active key has no private half"))?;
        let pkcs8 = match (row.encrypted, &self.cipher) {
            (false, _) => stored.to_vec(),
            (true, Some(c)) => c.open(&row.kid, stored)?,
            (true, None) => {
                return Err(internal(
                    "the active signing key is encrypted and FEIRA_IDENTITY_KEY_ENCRYPTION_SECRET is not set",
                ));
            }
        };
        let key = Arc::new(EncodingKey::from_ed_der(&pkcs8));
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        signers.retain(|kid, _| kid == &row.kid);
        signers.insert(row.kid.clone(), key.clone());
        Ok((row.kid, key))
    }

    /// Claims for `user` issued now.
    pub fn claims_for(&self, user: &crate::domain::User) -> AccessClaims {
        let iat = OffsetDateTime::now_utc().unix_timestamp();
        AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.id,
            roles: user.roles.names(),
            jti: uuid::Uuid::now_v7(),
            iat,
            exp: iat + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2),
            email: user.email.as_str().to_string(),
        }
    }

    /// Signs `claims` with the active key.
    pub async fn sign(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        let (kid, key) = self.signer().await?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key)
            .map_err(|e| IdentityError::Internal(anyhow::anyhow!("signing an access token failed: {e}")))
    }

    /// Checks an access token: EdDSA only, a published `kid`, the signature,
    /// `exp` (no leeway), `iss` and `aud`. The denylist is checked by the caller.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.decoding_key(&kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    async fn decoding_key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut v = self.verifiers.lock().await;
        let age = v.loaded_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|a| a > VERIFIER_REFRESH);
        let may_reload_for_unknown = age.is_none_or(|a| a > UNKNOWN_KID_RELOAD);
        if stale || (!v.keys.contains_key(kid) && may_reload_for_unknown) {
            match self.published().await {
                Ok(rows) => {
                    v.keys = rows.iter().map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key))).collect();
                    v.loaded_at = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "reading the signing keys failed; using the cached ones"),
            }
        }
        v.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }

    async fn published(&self) -> Result<Vec<KeyRow>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        repo::fetch_published_keys(&mut conn, self.published_since(kernel::time::now())).await
    }

    /// The JWKS: the active key and the superseded ones still verifying.
    pub async fn jwks(&self) -> Result<Vec<PublicJwk>, IdentityError> {
        Ok(self.published().await?.iter().map(|k| PublicJwk::of(&k.public_key, &k.kid)).collect())
    }

    /// Deletes keys no valid token can name any more; returns how many.
    pub async fn delete_retired(&self) -> Result<u64, IdentityError> {
        let mut conn = self.db.acquire().await?;
        Ok(repo::delete_retired_keys(&mut conn, self.published_since(kernel::time::now())).await?)
    }
}

/// When [`KeyRing::rotate`] creates a key.
#[derive(Debug, Clone, Copy)]
pub enum Rotation {
    /// Only when there is no active key (first start).
    IfMissing,
    /// When the active key is at least this old (the background task).
    IfOlderThan(Duration),
    /// Always (an admin asked).
    Now,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_private_key_opens_only_with_its_secret_and_kid() {
        let c = KeyCipher::new("s3cret").expect("a cipher");
        let sealed = c.seal("kid-1", b"pkcs8 bytes").expect("sealed");
        assert_ne!(&sealed[NONCE_LEN..], b"pkcs8 bytes");
        assert_eq!(c.open("kid-1", &sealed).expect("opened"), b"pkcs8 bytes");
        assert!(c.open("kid-2", &sealed).is_err(), "bound to its kid");
        assert!(KeyCipher::new("other").expect("a cipher").open("kid-1", &sealed).is_err());
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
        let x = URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("base64url");
        assert_eq!(thumbprint(&x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
