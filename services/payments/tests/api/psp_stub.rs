//! A scripted stand-in for the external payment provider, served over real
//! HTTP on 127.0.0.1:0: the PSP API payments calls (charges with
//! Idempotency-Key, list by order, refunds), a ledger of what it charged,
//! and switchable faults (latency, outage with 503s, "charge then hang").
//!
//! Card tokens: `tok_declined` → 402 card_declined, `tok_insufficient_funds`
//! → 402 insufficient_funds, `tok_invalid` → 400, anything else succeeds.
//! PIX charges are `pending` until the test pays them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Default)]
struct Ledger {
    /// Charges in creation order, and by idempotency key.
    charges: Vec<Value>,
    charge_keys: HashMap<String, usize>,
    /// The status each key answered with the first time (201 or 402).
    charge_status: HashMap<String, u16>,
    refunds: Vec<Value>,
    refund_keys: HashMap<String, usize>,
    /// Every POST /v1/charges received, faults included.
    charge_requests: u32,
    outage: bool,
    latency: Duration,
    /// The next N charge requests record the charge, then never answer.
    hang_charges: u32,
}

#[derive(Clone)]
pub struct PspStub {
    pub url: String,
    ledger: Arc<Mutex<Ledger>>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

impl PspStub {
    pub async fn start() -> PspStub {
        let ledger: Shared = Arc::default();
        let app = Router::new()
            .route("/v1/charges", post(create_charge).get(list_charges))
            .route("/v1/refunds", post(create_refund))
            .with_state(ledger.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the PSP stub");
        let url = format!("http://{}", listener.local_addr().expect("stub address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PspStub { url, ledger }
    }

    /// Every charge the provider made.
    pub fn charges(&self) -> Vec<Value> {
        lock(&self.ledger).charges.clone()
    }

    pub fn charges_of(&self, order_id: uuid::Uuid) -> Vec<Value> {
        self.charges().into_iter().filter(|c| c["order_ref"] == order_id.to_string()).collect()
    }

    pub fn refunds(&self) -> Vec<Value> {
        lock(&self.ledger).refunds.clone()
    }

    pub fn charge_requests(&self) -> u32 {
        lock(&self.ledger).charge_requests
    }

    /// Every call answers 503 while true.
    pub fn set_outage(&self, on: bool) {
        lock(&self.ledger).outage = on;
    }

    pub fn set_latency(&self, d: Duration) {
        lock(&self.ledger).latency = d;
    }

    /// The next `n` charge requests make (or find) the charge, then hang.
    pub fn hang_next_charges(&self, n: u32) {
        lock(&self.ledger).hang_charges = n;
    }

    /// Marks a pending (PIX) charge paid, as the customer's bank would, and
    /// returns it.
    pub fn pay(&self, charge_id: &str) -> Value {
        let mut l = lock(&self.ledger);
        let c = l.charges.iter_mut().find(|c| c["id"] == charge_id).expect("the charge exists");
        c["status"] = json!("succeeded");
        c.clone()
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"type": kind, "message": message}}))).into_response()
}

fn unavailable() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "the provider is down")
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).expect("format now")
}

async fn create_charge(State(ledger): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let (latency, outage) = {
        let mut l = lock(&ledger);
        l.charge_requests += 1;
        (l.latency, l.outage)
    };
    tokio::time::sleep(latency).await;
    if outage {
        return unavailable();
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "Idempotency-Key is required");
    };
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "malformed JSON");
    };
    let (status, charge, hang) = {
        let mut l = lock(&ledger);
        let hang = l.hang_charges > 0;
        if hang {
            l.hang_charges -= 1;
        }
        if let Some(&i) = l.charge_keys.get(&key) {
            (l.charge_status[&key], l.charges[i].clone(), hang)
        } else {
            let token = req["source"]["token"].as_str().unwrap_or_default();
            let pix = req["source"]["type"] == "pix";
            if token == "tok_invalid" {
                return error(StatusCode::BAD_REQUEST, "invalid_request_error", "no such token: tok_invalid");
            }
            let failure = match token {
                "tok_declined" => Some("card_declined"),
                "tok_insufficient_funds" => Some("insufficient_funds"),
                _ => None,
            };
            let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
            let charge = json!({
                "id": id,
                "status": if pix { "pending" } else if failure.is_some() { "failed" } else { "succeeded" },
                "amount_cents": req["amount_cents"],
                "currency": req["currency"],
                "order_ref": req["order_ref"],
                "source_type": if pix { "pix" } else { "card" },
                "failure_code": failure,
                "pix": if pix {
                    json!({"code": format!("00020126pix{}", &id[3..15]), "expires_at": (OffsetDateTime::now_utc() + time::Duration::minutes(30)).format(&Rfc3339).expect("format")})
                } else { Value::Null },
                "refunded_cents": 0,
                "created_at": now(),
            });
            let status = if failure.is_some() { 402 } else { 201 };
            let i = l.charges.len();
            l.charges.push(charge.clone());
            l.charge_keys.insert(key.clone(), i);
            l.charge_status.insert(key, status);
            (status, charge, hang)
        }
    };
    if hang {
        // The charge is made; the answer never comes (until the caller gives up).
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    (StatusCode::from_u16(status).expect("a status"), axum::Json(charge)).into_response()
}

async fn list_charges(State(ledger): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (latency, outage) = {
        let l = lock(&ledger);
        (l.latency, l.outage)
    };
    tokio::time::sleep(latency).await;
    if outage {
        return unavailable();
    }
    let l = lock(&ledger);
    let order_ref = q.get("order_ref").cloned().unwrap_or_default();
    let data: Vec<Value> = l.charges.iter().filter(|c| c["order_ref"] == order_ref.as_str()).cloned().collect();
    axum::Json(json!({"data": data})).into_response()
}

async fn create_refund(State(ledger): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let (latency, outage) = {
        let l = lock(&ledger);
        (l.latency, l.outage)
    };
    tokio::time::sleep(latency).await;
    if outage {
        return unavailable();
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "Idempotency-Key is required");
    };
    let req: Value = serde_json::from_str(&body).unwrap_or_default();
    let mut l = lock(&ledger);
    if let Some(&i) = l.refund_keys.get(&key) {
        return (StatusCode::CREATED, axum::Json(l.refunds[i].clone())).into_response();
    }
    let Some(charge) = l.charges.iter_mut().find(|c| c["id"] == req["charge"]) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "no such charge");
    };
    if charge["status"] != "succeeded" {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "the charge is not captured");
    }
    let amount = req["amount_cents"].as_i64().unwrap_or_else(|| charge["amount_cents"].as_i64().unwrap_or(0));
    charge["refunded_cents"] = json!(amount);
    let refund = json!({
        "id": format!("re_{}", uuid::Uuid::new_v4().simple()),
        "charge": req["charge"],
        "amount_cents": amount,
        "status": "succeeded",
    });
    let i = l.refunds.len();
    l.refunds.push(refund.clone());
    l.refund_keys.insert(key, i);
    (StatusCode::CREATED, axum::Json(refund)).into_response()
}
