//! `spawn_app` and the vocabulary the tests speak: charges, refunds, the
//! ledger, the fault switch, and a merchant endpoint that receives PIX
//! callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::testing::{Answer, RunningService, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

/// The psp-sim running in this test, on its own database.
pub struct TestApp {
    pub client: reqwest::Client,
    service: Option<RunningService>,
    // Dropped last: the service must be stopped before its database goes.
    _env: TestEnv,
}

pub async fn spawn_app() -> TestApp {
    let env = TestEnv::new(&[psp_sim::SPEC]);
    let service = env.spawn(&psp_sim::SPEC).await.expect("psp-sim starts (is PostgreSQL running?)");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    TestApp { client, service: Some(service), _env: env }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        service.stop_in_drop();
    }
}

/// A fresh merchant reference (one order).
pub fn order_ref() -> String {
    format!("order-{}", Uuid::now_v7())
}

/// A fresh idempotency key.
pub fn key() -> String {
    Uuid::new_v4().to_string()
}

pub fn card_charge(order_ref: &str, token: &str, amount_cents: i64) -> Value {
    json!({"amount_cents": amount_cents, "currency": "BRL", "source": {"type": "card", "token": token}, "order_ref": order_ref})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.service.as_ref().expect("running").url(path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(self.client.get(self.url(path)).send().await).await
    }

    /// POST with an `Idempotency-Key` (`None`: no header).
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Answer {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Answer::of(req.send().await).await
    }

    pub async fn charge(&self, key: &str, body: &Value) -> Answer {
        self.post("/v1/charges", Some(key), body).await
    }

    pub async fn refund(&self, key: &str, body: &Value) -> Answer {
        self.post("/v1/refunds", Some(key), body).await
    }

    /// Every charge of an order, oldest first.
    pub async fn ledger(&self, order_ref: &str) -> Vec<Value> {
        let a = self.get(&format!("/v1/charges?order_ref={order_ref}")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json["data"].as_array().cloned().expect("a list of charges")
    }

    pub async fn set_faults(&self, settings: Value) -> Value {
        let a = Answer::of(self.client.put(self.url("/admin/faults")).json(&settings).send().await).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
    }
}

/// One callback as the merchant received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

/// A merchant's callback endpoint on 127.0.0.1: answers 500 to the first
/// `fail_first` calls, then 200, and keeps every call.
pub struct Receiver {
    pub url: String,
    pub calls: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let calls: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/psp/callback",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let signature = headers.get("psp-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let mut calls = seen.lock().expect("lock");
                    calls.push(Received { signature, body: body.to_vec() });
                    if calls.len() <= fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{addr}/psp/callback"), calls }
    }

    pub fn received(&self) -> Vec<Received> {
        self.calls.lock().expect("lock").clone()
    }
}
