//! argon2id password hashes, computed off the async runtime.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::IdentityError;

/// Hashes and checks passwords (argon2id, the crate's default parameters:
/// 19 MiB, 2 passes, 1 lane). Holds a hash of a random password to check
/// against when an account does not exist, so an unknown e-mail costs the
/// same time as a wrong password.
#[derive(Clone)]
pub struct Passwords {
    dummy_hash: Arc<str>,
}

impl Passwords {
    pub async fn new() -> Result<Passwords, IdentityError> {
        let random = uuid::Uuid::new_v4().to_string();
        let dummy_hash = hash(random).await?;
        Ok(Passwords { dummy_hash: dummy_hash.into() })
    }

    /// True when `password` matches `hash`; with `None` (no such account)
    /// checks the dummy hash and answers false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, IdentityError> {
        let exists = hash.is_some();
        let hash = hash.map(str::to_string).unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()))
                .await
                .map_err(|e| IdentityError::Internal(anyhow::anyhow!("password check panicked: {e}")))?;
        Ok(exists && ok.is_ok())
    }
}

/// An argon2id PHC string of `password` with a fresh random salt.
pub async fn hash(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| IdentityError::Internal(anyhow::anyhow!("password hashing panicked: {e}")))?
        .map_err(|e| IdentityError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}
