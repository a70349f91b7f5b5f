//! identity's own variables, read once at start.

use std::time::Duration;

use platform::config::{Config, Var};

pub const ISSUER: Var = Var {
    name: "FEIRA_IDENTITY_ISSUER",
    default: "feira-identity",
    help: "`iss` of the access tokens identity issues",
};
pub const AUDIENCE: Var =
    Var { name: "FEIRA_IDENTITY_AUDIENCE", default: "feira", help: "`aud` of the access tokens identity issues" };
pub const ACCESS_TTL: Var =
    Var { name: "FEIRA_IDENTITY_ACCESS_TTL", default: "15m", help: "lifetime of an access token (JWT)" };
pub const REFRESH_TTL: Var = Var {
    name: "FEIRA_IDENTITY_REFRESH_TTL",
    default: "30d",
    help: "lifetime of a refresh token (each exchange issues a new one with a fresh lifetime)",
};
pub const KEY_ROTATION: Var = Var {
    name: "FEIRA_IDENTITY_KEY_ROTATION",
    default: "30d",
    help: "age after which the signing key is replaced automatically (old keys stay in the JWKS until their tokens expired)",
};
pub const LOGIN_MAX_FAILURES: Var = Var {
    name: "FEIRA_IDENTITY_LOGIN_MAX_FAILURES",
    default: "5",
    help: "failed logins of one account within the window before its logins answer 429",
};
pub const LOGIN_MAX_FAILURES_PER_IP: Var = Var {
    name: "FEIRA_IDENTITY_LOGIN_MAX_FAILURES_PER_IP",
    default: "20",
    help: "failed logins from one client IP within the window before its logins answer 429",
};
pub const LOGIN_FAILURE_WINDOW: Var = Var {
    name: "FEIRA_IDENTITY_LOGIN_FAILURE_WINDOW",
    default: "15m",
    help: "window of the failed-login counters (from the first failure)",
};
pub const ADMIN_EMAIL: Var = Var {
    name: "FEIRA_IDENTITY_ADMIN_EMAIL",
    default: "",
    help: "e-mail of an admin account created at start when absent (empty: none)",
};
pub const ADMIN_PASSWORD: Var = Var {
    name: "FEIRA_IDENTITY_ADMIN_PASSWORD",
    default: "",
    help: "password of FEIRA_IDENTITY_ADMIN_EMAIL's account when it is created (10 to 128 characters)",
};
pub const KEY_ENCRYPTION_SECRET: Var = Var {
    name: "FEIRA_IDENTITY_KEY_ENCRYPTION_SECRET",
    default: "",
    help: "when set, private signing keys are stored AES-256-GCM encrypted with a key derived from it (every replica needs the same value)",
};

/// Every variable identity declares.
pub const VARS: &[Var] = &[
    ISSUER,
    AUDIENCE,
    ACCESS_TTL,
    REFRESH_TTL,
    KEY_ROTATION,
    LOGIN_MAX_FAILURES,
    LOGIN_MAX_FAILURES_PER_IP,
    LOGIN_FAILURE_WINDOW,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    KEY_ENCRYPTION_SECRET,
];

/// identity's settings, validated.
#[derive(Clone)]
pub struct Settings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub key_rotation: Duration,
    pub max_failures_account: u32,
    pub max_failures_ip: u32,
    pub failure_window: Duration,
    /// The admin to create at start: (e-mail, password).
    pub admin: Option<(String, String)>,
    pub key_secret: Option<String>,
    /// `<namespace>:identity:`
    pub redis_prefix: String,
    pub redis_url: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("key_rotation", &self.key_rotation)
            .field("redis_prefix", &self.redis_prefix)
            .finish_non_exhaustive()
    }
}

/// The Redis key prefix of identity in a namespace (`feira:identity:`).
pub fn redis_prefix(namespace: &str) -> String {
    format!("{namespace}:identity:")
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        let text = |v: &Var| config.var(v.name).unwrap_or(v.default).trim().to_string();
        let positive = |v: &Var| -> anyhow::Result<Duration> {
            let d = config.duration(v.name)?;
            anyhow::ensure!(!d.is_zero(), "invalid value for {}: must be longer than zero", v.name);
            Ok(d)
        };
        let count = |v: &Var| -> anyhow::Result<u32> {
            let raw = text(v);
            match raw.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => anyhow::bail!("invalid value {raw:?} for {}: must be a whole number of at least 1", v.name),
            }
        };
        let issuer = text(&ISSUER);
        let audience = text(&AUDIENCE);
        anyhow::ensure!(!issuer.is_empty(), "{} must not be empty", ISSUER.name);
        anyhow::ensure!(!audience.is_empty(), "{} must not be empty", AUDIENCE.name);
        let admin_email = text(&ADMIN_EMAIL);
        // Passwords are taken as given (spaces may be part of one).
        let admin_password = config.var(ADMIN_PASSWORD.name).unwrap_or_default().to_string();
        let admin = match (admin_email.is_empty(), admin_password.is_empty()) {
            (true, true) => None,
            (false, false) => Some((admin_email, admin_password)),
            (false, true) => anyhow::bail!("{} is set but {} is empty", ADMIN_EMAIL.name, ADMIN_PASSWORD.name),
            (true, false) => anyhow::bail!("{} is set but {} is empty", ADMIN_PASSWORD.name, ADMIN_EMAIL.name),
        };
        let key_secret = config.var(KEY_ENCRYPTION_SECRET.name).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(Settings {
            issuer,
            audience,
            access_ttl: positive(&ACCESS_TTL)?,
            refresh_ttl: positive(&REFRESH_TTL)?,
            key_rotation: positive(&KEY_ROTATION)?,
            max_failures_account: count(&LOGIN_MAX_FAILURES)?,
            max_failures_ip: count(&LOGIN_MAX_FAILURES_PER_IP)?,
            failure_window: positive(&LOGIN_FAILURE_WINDOW)?,
            admin,
            key_secret,
            redis_prefix: redis_prefix(&config.messaging.namespace),
            redis_url: config.redis_url.clone(),
        })
    }
}
