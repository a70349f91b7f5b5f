//! The gateway under test and what stands around it: tiny upstreams that
//! echo what they received and count hits, a JWKS server with Ed25519 keys
//! made at test time, token minting, and the gateway started as
//! `feira run gateway` would, on a routes file written by the test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::revocations::{self, Names, Revoked};
use platform::testing::{RedisPrefix, RunningService, TestEnv, eventually};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

// Upstreams ----------------------------------------------------------------------

/// A tiny upstream: `/fail*` answers 503, `/slow*` answers after 2 s, any
/// other path echoes the request as JSON. Every request is counted.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct UpState {
    name: String,
    hits: Arc<AtomicUsize>,
}

async fn echo(State(s): State<UpState>, req: Request) -> axum::response::Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    if path.starts_with("/fail") {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let headers: serde_json::Map<String, Value> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), Value::from(v.to_str().unwrap_or("?")))).collect();
    let mut res = axum::Json(json!({
        "upstream": s.name,
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "headers": headers,
    }))
    .into_response();
    // Hop-by-hop headers the gateway must not pass back.
    res.headers_mut().insert("connection", "x-secret-hop".parse().expect("a header"));
    res.headers_mut().insert("x-secret-hop", "1".parse().expect("a header"));
    res.headers_mut().insert("keep-alive", "timeout=5".parse().expect("a header"));
    res
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream");
        Self::serve(name, listener, Arc::new(AtomicUsize::new(0)))
    }

    /// Starts on `addr` (a stopped upstream's port), counting into `hits`.
    pub async fn start_on(addr: SocketAddr, name: &str, hits: Arc<AtomicUsize>) -> Upstream {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the upstream's port again");
        Self::serve(name, listener, hits)
    }

    fn serve(name: &str, listener: tokio::net::TcpListener, hits: Arc<AtomicUsize>) -> Upstream {
        let addr = listener.local_addr().expect("an address");
        let state = UpState { name: name.to_string(), hits: hits.clone() };
        let app = Router::new().route("/", any(echo)).route("/{*path}", any(echo)).with_state(state);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await }).await;
        });
        Upstream { addr, hits, stop, handle }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops listening and closes its connections.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.handle).await;
    }
}

/// An address where nothing listens.
pub async fn dead_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("an address");
    drop(l);
    format!("http://{addr}")
}

// Keys, JWKS, tokens -----------------------------------------------------------------

/// An Ed25519 signing key as identity holds one.
pub struct SigningKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    pub public: Vec<u8>,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("the key parses");
        SigningKey { kid: kid.to_string(), pkcs8: doc.as_ref().to_vec(), public: pair.public_key().as_ref().to_vec() }
    }

    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&self.public), "kid": self.kid, "alg": "EdDSA", "use": "sig"})
    }

    /// A token signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("sign a token")
    }
}

/// The claims identity puts in an access token, valid for 15 minutes.
pub fn claims(user: Uuid, roles: &[&str]) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "iss": "feira-identity", "aud": "feira", "sub": user.to_string(), "roles": roles,
        "jti": Uuid::now_v7().to_string(), "iat": now, "exp": now + 900, "email": "someone@example.com",
    })
}

type JwksState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

/// identity's `GET /.well-known/jwks.json`, with keys the test changes.
pub struct Jwks {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub fetches: Arc<AtomicUsize>,
}

impl Jwks {
    pub async fn start(keys: &[&SigningKey]) -> Jwks {
        let state =
            (Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect::<Vec<_>>())), Arc::new(AtomicUsize::new(0)));
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State((keys, fetches)): State<JwksState>| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = keys.lock().expect("keys").clone();
                    axum::Json(json!({ "keys": keys }))
                }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the jwks server");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Jwks { url: format!("http://{addr}/.well-known/jwks.json"), keys: state.0, fetches: state.1 }
    }

    pub fn set(&self, keys: &[&SigningKey]) {
        *self.keys.lock().expect("keys") = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

// The gateway ----------------------------------------------------------------------

/// Gateways started on one routes file, one Redis namespace and one JWKS.
pub struct Gateways {
    pub env: TestEnv,
    pub client: reqwest::Client,
    pub running: Vec<RunningService>,
    _routes: tempfile::NamedTempFile,
    _redis: RedisPrefix,
}

impl Gateways {
    pub fn url(&self, path: &str) -> String {
        self.running[0].url(path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("the gateway answers")
    }

    /// The gateway's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("metrics text")
    }

    /// Logs the token `jti` out as identity does (platform::revocations):
    /// once this returns, no gateway may let it through.
    pub async fn revoke(&self, jti: &str) -> Revoked {
        let client = redis::Client::open(self.env.config().redis_url).expect("a redis url");
        let mut con = client.get_multiplexed_async_connection().await.expect("redis runs");
        let names = Names::new(&self.env.namespace);
        revocations::revoke(&client, &mut con, &names, jti, Duration::from_secs(60))
            .await
            .expect("the token is revoked")
    }

    /// How many gateways' copies of the denylist have an open window, as a
    /// logout sees them (platform::revocations).
    pub async fn open_copies(&self) -> usize {
        let client = redis::Client::open(self.env.config().redis_url).expect("a redis url");
        let mut con = client.get_multiplexed_async_connection().await.expect("redis runs");
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await.expect("TIME");
        let now_ms = secs * 1000 + micros / 1000;
        let copies = format!("{}:identity:copies", self.env.namespace);
        redis::cmd("ZCOUNT")
            .arg(copies)
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query_async(&mut con)
            .await
            .expect("ZCOUNT")
    }

    /// Waits until all the gateways' copies of the denylist have registered
    /// a window (each is current from its PING's answer, a moment later).
    pub async fn copies_current(&self) {
        let n = self.running.len();
        eventually(10, "every gateway's denylist copy is current", || async {
            (self.open_copies().await == n).then_some(())
        })
        .await;
    }
}

/// A routes file (TOML) in a temporary file, and the environment of a
/// gateway reading it with `jwks` as identity.
pub fn env_for(routes: &str, jwks: &str) -> (TestEnv, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary routes file");
    std::io::Write::write_all(&mut file, routes.as_bytes()).expect("write the routes file");
    let mut env = TestEnv::new(&[gateway::SPEC]);
    env.set("FEIRA_GATEWAY_ROUTES", file.path().to_string_lossy().to_string());
    env.set("FEIRA_GATEWAY_JWKS_URL", jwks);
    env.set("FEIRA_GATEWAY_JWKS_MIN_REFETCH", "0s");
    (env, file)
}

pub async fn spawn(routes: &str, jwks: &str) -> Gateways {
    spawn_n(1, routes, jwks, |_| {}).await
}

/// `n` gateway replicas sharing the routes, Redis namespace and JWKS.
pub async fn spawn_n(n: usize, routes: &str, jwks: &str, configure: impl FnOnce(&mut TestEnv)) -> Gateways {
    let (mut env, file) = env_for(routes, jwks);
    configure(&mut env);
    let redis = RedisPrefix {
        url: std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
        prefix: format!("{}:", env.namespace),
    };
    let mut running = Vec::new();
    for _ in 0..n {
        running.push(env.spawn(&gateway::SPEC).await.expect("the gateway starts (is Redis running?)"));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client");
    Gateways { env, client, running, _routes: file, _redis: redis }
}

/// A value of the gateway's metrics: the sample line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// A problem+json answer: its status and `type`.
pub async fn problem(res: reqwest::Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(ct, "application/problem+json", "status {status}");
    let body: Value = res.json().await.expect("a problem body");
    (status, body["type"].as_str().unwrap_or_default().to_string(), body)
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}
