//! `spawn_app` and the vocabulary the tests speak: callers, requests and
//! answers, and the stand-ins for catalog, shipping and orders (one axum
//! server on 127.0.0.1:0 serving their exact JSON and counting the calls;
//! the real services are wired end to end elsewhere).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use platform::testing::{RedisPrefix, RunningService, TestEnv};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use uuid::Uuid;

pub use platform::testing::Answer;

/// The cart service running in this test, with its stand-ins, on its own
/// database and Redis keys. Dropping it stops the service; then the keys
/// and the database go.
pub struct TestApp {
    pub client: reqwest::Client,
    pub stubs: Arc<Stubs>,
    pub redis: redis::Client,
    pub namespace: String,
    /// A pool on this test's cart database.
    pub db: sqlx::PgPool,
    service: Option<RunningService>,
    _redis_keys: RedisPrefix,
    _env: TestEnv,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with `configure` changing the variables first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut TestEnv)) -> TestApp {
    let stubs = Arc::new(Stubs::default());
    let base = serve_stubs(stubs.clone()).await;
    let mut env = TestEnv::new(&[cart::SPEC]);
    let redis_url = std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    env.set("FEIRA_REDIS_URL", redis_url.clone());
    env.set("FEIRA_CART_CATALOG_URL", base.clone());
    env.set("FEIRA_CART_SHIPPING_URL", base.clone());
    env.set("FEIRA_CART_ORDERS_URL", base);
    configure(&mut env);
    let namespace = env.namespace.clone();
    let redis_keys = RedisPrefix { url: redis_url.clone(), prefix: cart::repo::carts::prefix(&namespace) };
    let service =
        env.spawn(&cart::SPEC).await.expect("the cart service starts (are PostgreSQL, RabbitMQ and Redis running?)");
    let db = env.db(&cart::SPEC).await.expect("the cart database");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    TestApp {
        client,
        stubs,
        redis: redis::Client::open(redis_url).expect("a redis client"),
        namespace,
        db,
        service: Some(service),
        _redis_keys: redis_keys,
        _env: env,
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

/// Who calls: the headers the gateway would set.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Customer(Uuid),
}

impl Caller {
    pub fn customer() -> Self {
        Caller::Customer(Uuid::now_v7())
    }

    pub fn id(&self) -> Uuid {
        match self {
            Caller::Customer(id) => *id,
            Caller::Anonymous => panic!("an anonymous caller has no id"),
        }
    }

    fn identify(&self, req: RequestBuilder) -> RequestBuilder {
        match self {
            Caller::Anonymous => req,
            Caller::Customer(id) => req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", "customer"),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("the service is running").url(path)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        caller: &Caller,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = caller.identify(self.client.request(method, self.url(path)));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Answer::of(req.send().await).await
    }

    pub async fn get_cart(&self, caller: &Caller) -> Answer {
        self.send(Method::GET, "/cart", caller, None, None).await
    }

    pub async fn put_item(&self, caller: &Caller, product: Uuid, quantity: i64) -> Answer {
        self.send(Method::PUT, &format!("/cart/items/{product}"), caller, None, Some(&json!({"quantity": quantity})))
            .await
    }

    pub async fn delete(&self, path: &str, caller: &Caller) -> Answer {
        self.send(Method::DELETE, path, caller, None, None).await
    }

    pub async fn checkout(&self, caller: &Caller, key: Option<&str>, body: &Value) -> Answer {
        self.send(Method::POST, "/cart/checkout", caller, key, Some(body)).await
    }

    /// The Redis key of a customer's cart.
    pub fn cart_key(&self, caller: &Caller) -> String {
        format!("{}:cart:{}", self.namespace, caller.id())
    }

    /// Seconds left before the customer's cart expires (-2: no cart).
    pub async fn ttl(&self, caller: &Caller) -> i64 {
        let mut con = self.redis.get_multiplexed_async_connection().await.expect("redis");
        redis::cmd("TTL").arg(self.cart_key(caller)).query_async(&mut con).await.expect("TTL")
    }

    /// Sets the cart's expiry, as if time had passed.
    pub async fn expire(&self, caller: &Caller, secs: i64) {
        let mut con = self.redis.get_multiplexed_async_connection().await.expect("redis");
        let _: i64 =
            redis::cmd("EXPIRE").arg(self.cart_key(caller)).arg(secs).query_async(&mut con).await.expect("EXPIRE");
    }

    /// Forgets every stored Idempotency-Key answer, as if storing them had
    /// failed after the work was done.
    pub async fn forget_idempotent_answers(&self) {
        sqlx::query("DELETE FROM idempotency_keys").execute(&self.db).await.expect("delete the stored answers");
    }

    /// The service's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        self.client.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("metrics text")
    }
}

/// A valid checkout body for `quote`, shipping to CEP 01310-100.
pub fn checkout_body(quote: Uuid) -> Value {
    json!({
        "shipping_address": {
            "recipient": "Ana Souza",
            "street": "Avenida Paulista",
            "number": "1000",
            "complement": "apto 12",
            "district": "Bela Vista",
            "city": "São Paulo",
            "state": "SP",
            "cep": "01310-100"
        },
        "shipping_quote_id": quote,
        "payment": {"type": "card", "token": "tok_visa"},
        "contact_email": "ana@example.com"
    })
}

// ---------------------------------------------------------------------------
// Stand-ins for catalog, shipping and orders
// ---------------------------------------------------------------------------

/// What orders received.
#[derive(Debug, Clone)]
pub struct OrderCall {
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The exact bytes.
    pub raw: String,
}

/// How the orders stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrdersMode {
    #[default]
    Up,
    /// 503 before doing anything.
    Down,
    /// Places the order, then fails to answer (500).
    PlacesThenFails,
    /// 422 with a field error.
    Rejects,
}

#[derive(Default)]
pub struct Stubs {
    products: Mutex<HashMap<Uuid, Value>>,
    pub catalog_down: AtomicBool,
    pub catalog_calls: AtomicUsize,
    quotes: Mutex<HashMap<Uuid, Value>>,
    expired: Mutex<Vec<Uuid>>,
    pub quote_calls: AtomicUsize,
    orders_mode: Mutex<OrdersMode>,
    order_calls: Mutex<Vec<OrderCall>>,
    /// (user id, key) → (order id, body): what orders placed.
    placed: Mutex<HashMap<(String, String), (Uuid, String)>>,
}

impl Stubs {
    /// An active product in the catalog, as `GET /products/{id}` answers it.
    pub fn product(&self, sku: &str, price_cents: i64, currency: &str) -> Uuid {
        let id = Uuid::now_v7();
        let now = "2026-11-22T12:00:00Z";
        let body = json!({
            "id": id, "owner_id": Uuid::now_v7(), "sku": sku, "title": format!("Caneca {sku}"),
            "description": "", "price_cents": price_cents, "currency": currency, "category_id": null,
            "active": true, "attributes": {}, "available": 10, "created_at": now, "updated_at": now
        });
        self.products.lock().unwrap().insert(id, body);
        id
    }

    /// Changes a field of a product in the catalog.
    pub fn set_product(&self, id: Uuid, field: &str, value: Value) {
        self.products.lock().unwrap().get_mut(&id).expect("a stub product")[field] = value;
    }

    /// The product is no longer sold (the catalog answers 404 to the public).
    pub fn remove_product(&self, id: Uuid) {
        self.products.lock().unwrap().remove(&id);
    }

    pub fn catalog_down(&self, down: bool) {
        self.catalog_down.store(down, Ordering::SeqCst);
    }

    pub fn catalog_calls(&self) -> usize {
        self.catalog_calls.load(Ordering::SeqCst)
    }

    /// A quote for `cep` costing `price_cents`, valid for an hour.
    pub fn quote(&self, cep: &str, price_cents: i64) -> Uuid {
        let id = Uuid::now_v7();
        let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let body = json!({
            "id": id, "destination_cep": cep, "service": "PAC", "price_cents": price_cents, "currency": "BRL",
            "delivery_days": 5, "source": "carrier",
            "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap()
        });
        self.quotes.lock().unwrap().insert(id, body);
        id
    }

    /// A quote shipping answers 410 for.
    pub fn expired_quote(&self) -> Uuid {
        let id = Uuid::now_v7();
        self.expired.lock().unwrap().push(id);
        id
    }

    pub fn orders_mode(&self, mode: OrdersMode) {
        *self.orders_mode.lock().unwrap() = mode;
    }

    /// Every `POST /orders` received, in order.
    pub fn order_calls(&self) -> Vec<OrderCall> {
        self.order_calls.lock().unwrap().clone()
    }

    /// Orders placed (distinct).
    pub fn orders_placed(&self) -> usize {
        self.placed.lock().unwrap().len()
    }
}

async fn serve_stubs(stubs: Arc<Stubs>) -> String {
    let app = axum::Router::new()
        .route("/products/{id}", get(catalog_product))
        .route("/shipping/quotes/{id}", get(shipping_quote))
        .route("/orders", post(place_order))
        .with_state(stubs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the stand-ins");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body =
        json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail});
    (status, [("content-type", "application/problem+json")], body.to_string()).into_response()
}

async fn catalog_product(State(s): State<Arc<Stubs>>, Path(id): Path<Uuid>) -> Response {
    s.catalog_calls.fetch_add(1, Ordering::SeqCst);
    if s.catalog_down.load(Ordering::SeqCst) {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    match s.products.lock().unwrap().get(&id) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => problem(StatusCode::NOT_FOUND, "product not found"),
    }
}

async fn shipping_quote(State(s): State<Arc<Stubs>>, Path(id): Path<Uuid>) -> Response {
    s.quote_calls.fetch_add(1, Ordering::SeqCst);
    if s.expired.lock().unwrap().contains(&id) {
        return problem(StatusCode::GONE, "quote expired");
    }
    match s.quotes.lock().unwrap().get(&id) {
        Some(q) => axum::Json(q.clone()).into_response(),
        None => problem(StatusCode::NOT_FOUND, "quote not found"),
    }
}

/// Orders: dedups per (customer, key) like the real one: the same key and
/// body replays the order (200), another body is refused (422).
async fn place_order(State(s): State<Arc<Stubs>>, headers: HeaderMap, raw: String) -> Response {
    let header_map: HashMap<String, String> =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect();
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    s.order_calls.lock().unwrap().push(OrderCall { headers: header_map.clone(), body: body.clone(), raw: raw.clone() });
    let mode = *s.orders_mode.lock().unwrap();
    match mode {
        OrdersMode::Down => return problem(StatusCode::SERVICE_UNAVAILABLE, "orders is down"),
        OrdersMode::Rejects => {
            let body = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
                "detail": "the request has invalid fields",
                "errors": [{"field": "lines[0].sku", "message": "unknown sku"}]});
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                [("content-type", "application/problem+json")],
                body.to_string(),
            )
                .into_response();
        }
        OrdersMode::Up | OrdersMode::PlacesThenFails => {}
    }
    let user = header_map.get("x-feira-user-id").cloned().unwrap_or_default();
    let key = header_map.get("idempotency-key").cloned().unwrap_or_default();
    let mut placed = s.placed.lock().unwrap();
    let (status, id) = match placed.get(&(user.clone(), key.clone())) {
        Some((id, first)) if *first == raw => (StatusCode::OK, *id),
        Some(_) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used with a different request body",
            );
        }
        None => {
            let id = Uuid::now_v7();
            placed.insert((user, key), (id, raw));
            (StatusCode::CREATED, id)
        }
    };
    drop(placed);
    if mode == OrdersMode::PlacesThenFails {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let total: i64 = body["lines"]
        .as_array()
        .map(|ls| {
            ls.iter().map(|l| l["quantity"].as_i64().unwrap_or(0) * l["unit_price_cents"].as_i64().unwrap_or(0)).sum()
        })
        .unwrap_or(0)
        + body["shipping"]["freight_cents"].as_i64().unwrap_or(0);
    let answer = json!({"id": id, "customer_id": body["customer_id"], "status": "PENDING", "currency": body["currency"],
        "total_cents": total, "items": [], "created_at": "2026-11-22T12:00:00Z"});
    (status, [("location", format!("/orders/{id}"))], axum::Json(answer)).into_response()
}
