//! A running shipping service on a private database and broker namespace, a
//! scripted carrier served over real HTTP on 127.0.0.1 (switchable: ok, slow,
//! down, or stopped), and the operations the tests need.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use contracts::Envelope;
use contracts::orders::{AddressV1, OrderCancelledV1, OrderConfirmedV1, OrderLineV1, ShippingV1};
use platform::messaging::Broker;
use platform::messaging::dlq::{self, DeadLetter};
use platform::testing::{self, Answer, RunningService, TestEnv, eventually};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 20;

/// The carrier's answers while it is up.
pub const CARRIER_PAC_CENTS: i64 = 1_500;
pub const CARRIER_SEDEX_CENTS: i64 = 2_800;

/// How the scripted carrier behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// Answers after this long (longer than the service's timeout).
    Slow(Duration),
    /// 500 to everything.
    Down,
}

/// What the carrier saw and holds.
#[derive(Debug, Default)]
pub struct CarrierLog {
    /// Every quote request body that reached the carrier (answered or not).
    pub quotes: Vec<Value>,
    /// Every booking request the carrier answered: its Idempotency-Key and body.
    pub booking_requests: Vec<(String, Value)>,
    /// Shipments created, by Idempotency-Key.
    pub shipments: HashMap<String, Value>,
}

#[derive(Clone)]
struct StubState {
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<CarrierLog>>,
}

/// A Correios-like carrier scripted by the test, over real HTTP.
pub struct CarrierStub {
    pub addr: SocketAddr,
    state: StubState,
    server: Option<(CancellationToken, JoinHandle<()>)>,
}

impl CarrierStub {
    pub async fn start() -> CarrierStub {
        let state =
            StubState { mode: Arc::new(Mutex::new(Mode::Ok)), log: Arc::new(Mutex::new(CarrierLog::default())) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the carrier stub");
        let addr = listener.local_addr().expect("the stub's address");
        let mut stub = CarrierStub { addr, state, server: None };
        stub.serve(listener);
        stub
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/quotes", post(quote))
            .route("/v1/shipments", post(book))
            .with_state(self.state.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stopped.cancelled().await }).await;
        });
        self.server = Some((stop, handle));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().expect("stub mode") = mode;
    }

    /// An outage: nothing listens on the carrier's port any more.
    pub async fn stop(&mut self) {
        let (stop, handle) = self.server.take().expect("the stub is running");
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }

    /// Back on the same port after [`CarrierStub::stop`], answering normally.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "the stub is running");
        self.set(Mode::Ok);
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("bind the stub's port again");
        self.serve(listener);
    }

    pub fn log<T>(&self, f: impl FnOnce(&CarrierLog) -> T) -> T {
        f(&self.state.log.lock().expect("stub log"))
    }

    /// Shipments the carrier created.
    pub fn shipments(&self) -> HashMap<String, Value> {
        self.log(|l| l.shipments.clone())
    }
}

impl Drop for CarrierStub {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.server {
            stop.cancel();
        }
    }
}

async fn behave(state: &StubState) -> Option<Response> {
    let mode = *state.mode.lock().expect("stub mode");
    match mode {
        Mode::Ok => None,
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Mode::Down => Some(
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"type": "internal", "message": "down"}})))
                .into_response(),
        ),
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"type": "invalid_request", "message": message}})))
        .into_response()
}

async fn quote(State(st): State<StubState>, axum::Json(body): axum::Json<Value>) -> Response {
    st.log.lock().expect("stub log").quotes.push(body.clone());
    if let Some(r) = behave(&st).await {
        return r;
    }
    if body["destination_cep"] == "99999999" {
        return bad_request("destination_cep is not served");
    }
    axum::Json(json!({"options": [
        {"service": "PAC", "price_cents": CARRIER_PAC_CENTS, "days": 6},
        {"service": "SEDEX", "price_cents": CARRIER_SEDEX_CENTS, "days": 2},
    ]}))
    .into_response()
}

async fn book(State(st): State<StubState>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if let Some(r) = behave(&st).await {
        return r;
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return bad_request("Idempotency-Key is required");
    };
    let mut log = st.log.lock().expect("stub log");
    log.booking_requests.push((key.clone(), body.clone()));
    let n = log.shipments.len() + 1;
    let shipment = log
        .shipments
        .entry(key)
        .or_insert_with(|| {
            json!({
                "id": format!("shp_{n}"),
                "tracking_code": format!("SS{n:09}BR"),
                "service": body["service"],
                "estimated_delivery": "2026-12-01",
                "reference": body["reference"],
                "created_at": "2026-11-24T12:00:00Z",
            })
        })
        .clone();
    (StatusCode::CREATED, axum::Json(shipment)).into_response()
}

/// Who calls the HTTP API.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Customer(Uuid),
    Admin,
    Anonymous,
}

/// One test's shipping service, database, broker and carrier.
pub struct Harness {
    pub env: TestEnv,
    pub svc: Option<RunningService>,
    pub db: PgPool,
    pub broker: Broker,
    pub http: reqwest::Client,
    pub carrier: CarrierStub,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// A fresh environment pointing at a fresh carrier stub, quick timeouts
    /// and retries, `configure` applied last; the service running and consuming.
    pub async fn start_with(configure: impl FnOnce(&mut TestEnv)) -> Harness {
        let carrier = CarrierStub::start().await;
        let mut env = TestEnv::new(&[shipping::SPEC]);
        env.set("FEIRA_SHIPPING_CARRIER_URL", carrier.url())
            .set("FEIRA_SHIPPING_CARRIER_TIMEOUT", "300ms")
            .set("FEIRA_SHIPPING_BREAKER_THRESHOLD", "3")
            .set("FEIRA_SHIPPING_BREAKER_OPEN", "1s")
            .set("FEIRA_SHIPPING_BOOKING_INTERVAL", "100ms")
            .set("FEIRA_SHIPPING_BOOKING_RETRY_BASE", "100ms")
            .set("FEIRA_SHIPPING_BOOKING_RETRY_MAX", "400ms");
        configure(&mut env);
        let db = env.db(&shipping::SPEC).await.expect("create the shipping database");
        let broker = env.broker();
        eprintln!("test namespace: {}", env.namespace);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        let mut h = Harness { env, svc: None, db, broker, http, carrier };
        h.spawn().await;
        h
    }

    pub async fn spawn(&mut self) {
        let svc = self.env.spawn(&shipping::SPEC).await.expect("start shipping");
        for consumer in shipping::SPEC.consumers {
            let queue = self.broker.topology().queue(consumer.name);
            svc.wait_consuming(&self.broker, &queue, WAIT).await;
        }
        self.svc = Some(svc);
    }

    /// Stops the service, then removes the database and the namespace.
    pub async fn close(mut self) {
        if let Some(svc) = self.svc.take() {
            svc.stop().await.expect("shipping stopped cleanly");
        }
        self.db.close().await;
        self.broker.close().await;
        self.env.cleanup().await.expect("clean up the test environment");
    }

    pub fn url(&self, path: &str) -> String {
        self.svc.as_ref().expect("the service is running").url(path)
    }

    fn identify(req: reqwest::RequestBuilder, who: As) -> reqwest::RequestBuilder {
        match who {
            As::Customer(id) => req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", "customer"),
            As::Admin => req.header("x-feira-user-id", Uuid::now_v7().to_string()).header("x-feira-roles", "admin"),
            As::Anonymous => req,
        }
    }

    pub async fn answer(req: reqwest::RequestBuilder) -> Answer {
        Answer::of(req.send().await).await
    }

    pub async fn get(&self, path: &str, who: As) -> Answer {
        Answer::of(Self::identify(self.http.get(self.url(path)), who).send().await).await
    }

    /// `POST /shipping/quotes` as an anonymous shopper.
    pub async fn post_quote(&self, body: &Value) -> Answer {
        Answer::of(self.http.post(self.url("/shipping/quotes")).json(body).send().await).await
    }

    /// A quote that must be created; its body.
    pub async fn quote(&self, body: &Value) -> Value {
        let a = self.post_quote(body).await;
        a.expect(reqwest::StatusCode::CREATED).clone()
    }

    /// `circuit_breaker_state{breaker="carrier"}` from `GET /metrics`.
    pub async fn breaker_state(&self) -> Option<f64> {
        self.metric("circuit_breaker_state{breaker=\"carrier\"}").await
    }

    /// The value of one series of `GET /metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics", As::Anonymous).await.text;
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
    }

    pub async fn publish<T: contracts::Message>(&self, envelope: &Envelope<T>) {
        testing::publish(&self.broker, envelope).await;
    }

    /// The order's shipment row: (id, status, attempts).
    pub async fn shipment_row(&self, order_id: Uuid) -> Option<(Uuid, String, i32)> {
        sqlx::query_as("SELECT id, status, attempts FROM shipments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.db)
            .await
            .expect("query shipments")
    }

    /// Waits until the order's shipment has `status`; its id.
    pub async fn wait_status(&self, order_id: Uuid, status: &str) -> Uuid {
        eventually(WAIT, &format!("the shipment of {order_id} {status}"), || async move {
            self.shipment_row(order_id).await.filter(|(_, s, _)| s == status).map(|(id, _, _)| id)
        })
        .await
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        dlq::list(&self.broker, shipping::SPEC.consumers, 100).await.expect("list the DLQ")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(svc) = &self.svc {
            svc.shutdown.cancel();
        }
    }
}

pub fn quote_body(cep: &str, service: &str) -> Value {
    json!({
        "destination_cep": cep,
        "items": [{"quantity": 2, "weight_grams": 300}, {"quantity": 1, "weight_grams": 150}],
        "service": service,
    })
}

/// A confirmed order of `customer` shipping to `cep` with `quote_id`.
pub fn confirmed(customer: Uuid, quote_id: Uuid, cep: &str) -> Envelope<OrderConfirmedV1> {
    let line = OrderLineV1 {
        product_id: Some(Uuid::now_v7()),
        sku: "SKU-A".into(),
        quantity: 2,
        unit_price_cents: 1990,
        line_total_cents: 3980,
    };
    let address = AddressV1 { cep: cep.into(), ..AddressV1::example() };
    Envelope::new(OrderConfirmedV1 {
        order_id: Uuid::now_v7(),
        customer_id: customer,
        currency: "BRL".into(),
        lines: vec![line],
        total_cents: 3980 + 1500,
        payment_id: Uuid::now_v7(),
        contact_email: None,
        shipping: Some(ShippingV1 { quote_id, freight_cents: 1500, address }),
        confirmed_at: OffsetDateTime::now_utc(),
    })
}

pub fn cancelled(order: &OrderConfirmedV1) -> Envelope<OrderCancelledV1> {
    Envelope::new(OrderCancelledV1 {
        order_id: order.order_id,
        customer_id: order.customer_id,
        reason: "customer_request".into(),
        refund_requested: true,
        contact_email: None,
        cancelled_at: OffsetDateTime::now_utc(),
    })
}
