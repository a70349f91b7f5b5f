//! `spawn_app` and the vocabulary the tests speak: accounts, logins, tokens,
//! Redis keys.

use std::sync::Arc;
use std::time::Duration;

use platform::testing::{RedisPrefix, RunningService, TestEnv};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub use platform::testing::Answer;

/// A password that meets the policy.
pub const PASSWORD: &str = "correct horse battery";

/// The identity service running in this test, on its own database and
/// Redis key prefix.
pub struct TestApp {
    pub client: reqwest::Client,
    /// A pool on this test's identity database.
    pub db: PgPool,
    pub redis: redis::aio::MultiplexedConnection,
    service: Option<RunningService>,
    // Dropped after the service stopped, so nothing writes its keys again.
    _redis_keys: Arc<RedisPrefix>,
    env: Arc<TestEnv>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut TestEnv)) -> TestApp {
    let mut env = TestEnv::new(&[identity::SPEC]);
    configure(&mut env);
    let redis_keys = Arc::new(RedisPrefix {
        url: std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
        prefix: identity::app::settings::redis_prefix(&env.namespace),
    });
    let service = env.spawn(&identity::SPEC).await.expect("identity starts (are PostgreSQL and Redis running?)");
    let options = env.config().service(identity::SPEC.name).expect("identity's configuration").database.clone();
    let redis = redis::Client::open(redis_keys.url.as_str())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    TestApp {
        client,
        db: platform::db::pool(&options, 2),
        redis,
        service: Some(service),
        _redis_keys: redis_keys,
        env: Arc::new(env),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        service.stop_in_drop();
    }
}

/// Who calls.
#[derive(Debug, Clone)]
pub enum As {
    Anonymous,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// The gateway's headers for a user with these roles.
    Forwarded(Uuid, &'static str),
}

impl As {
    fn apply(&self, req: RequestBuilder) -> RequestBuilder {
        match self {
            As::Anonymous => req,
            As::Bearer(token) => req.bearer_auth(token),
            As::Forwarded(id, roles) => req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", *roles),
        }
    }
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    pub fn of(v: &Value) -> Session {
        Session {
            access_token: v["access_token"].as_str().unwrap_or_else(|| panic!("an access token in {v}")).to_string(),
            refresh_token: v["refresh_token"].as_str().unwrap_or_else(|| panic!("a refresh token in {v}")).to_string(),
        }
    }

    pub fn bearer(&self) -> As {
        As::Bearer(self.access_token.clone())
    }

    /// The access token's claims, unverified.
    pub fn claims(&self) -> Value {
        part(&self.access_token, 1)
    }

    /// The access token's header, unverified.
    pub fn header(&self) -> Value {
        part(&self.access_token, 0)
    }
}

fn part(jwt: &str, i: usize) -> Value {
    use base64::Engine as _;
    let seg = jwt.split('.').nth(i).expect("a JWT segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(seg).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

impl TestApp {
    pub fn env(&self) -> &TestEnv {
        &self.env
    }

    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("the service is running").url(path)
    }

    pub fn request(&self, method: Method, path: &str, who: &As) -> RequestBuilder {
        who.apply(self.client.request(method, self.url(path)))
    }

    pub async fn get(&self, path: &str, who: &As) -> Answer {
        Answer::of(self.request(Method::GET, path, who).send().await).await
    }

    pub async fn post(&self, path: &str, who: &As, body: &Value) -> Answer {
        Answer::of(self.request(Method::POST, path, who).json(body).send().await).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Answer {
        self.post("/auth/register", &As::Anonymous, &json!({"email": email, "password": password})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post("/auth/login", &As::Anonymous, &json!({"email": email, "password": password})).await
    }

    /// A login from a client IP (as the gateway forwards it).
    pub async fn login_from(&self, ip: &str, email: &str, password: &str) -> Answer {
        let req = self
            .request(Method::POST, "/auth/login", &As::Anonymous)
            .header("x-forwarded-for", format!("{ip}, 10.0.0.1"))
            .json(&json!({"email": email, "password": password}));
        Answer::of(req.send().await).await
    }

    /// Registers a customer and logs in.
    pub async fn customer(&self, email: &str) -> Session {
        self.register(email, PASSWORD).await.expect(StatusCode::ACCEPTED);
        self.session(email, PASSWORD).await
    }

    pub async fn session(&self, email: &str, password: &str) -> Session {
        Session::of(self.login(email, password).await.expect(StatusCode::OK))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post("/auth/refresh", &As::Anonymous, &json!({"refresh_token": refresh_token})).await
    }

    pub async fn me(&self, who: &As) -> Answer {
        self.get("/me", who).await
    }

    pub async fn jwks(&self) -> Answer {
        self.get("/.well-known/jwks.json", &As::Anonymous).await
    }

    /// A Redis key under this test's namespace, e.g. `identity:denylist:<jti>`.
    pub fn redis_key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.env.namespace)
    }

    pub async fn redis_get(&self, key: &str) -> Option<String> {
        let mut conn = self.redis.clone();
        redis::cmd("GET").arg(key).query_async(&mut conn).await.expect("Redis GET")
    }

    pub async fn redis_ttl(&self, key: &str) -> i64 {
        let mut conn = self.redis.clone();
        redis::cmd("TTL").arg(key).query_async(&mut conn).await.expect("Redis TTL")
    }
}
