//! The whole platform in one test: every target of `feira up` on its own
//! database, a private broker namespace and Redis prefix, and ports chosen
//! up front so the services can be told each other's URLs. Only the two
//! outside parties are simulators (psp-sim, carrier-sim), served over real
//! HTTP with switchable faults.
//!
//! The vocabulary is the shopper's and the operator's: a seller stocks a
//! product, a customer asks for a quote and checks out from the cart, and
//! the test reads back what each service says over HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use platform::testing::{Answer, RedisPrefix, RunningService, TestEnv, eventually};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub const WAIT: u64 = 60;

/// The running platform.
pub struct Shop {
    pub client: reqwest::Client,
    pub mail_dir: PathBuf,
    services: BTreeMap<&'static str, RunningService>,
    _redis: RedisPrefix,
    // Dropped last: the services stop before their databases go.
    pub env: Arc<TestEnv>,
}

/// A product a seller put on sale.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub id: Uuid,
    pub seller: Uuid,
}

/// Variables for a whole platform in one test: ports, the URLs the
/// services use to find each other, private folders, quick timeouts.
pub fn shop_env(configure: impl FnOnce(&mut TestEnv)) -> TestEnv {
    let mut env = TestEnv::new(feira::targets::TARGETS);
    env.assign_free_ports();
    let tmp = std::env::temp_dir();
    let ns = env.namespace.clone();
    let url = |s: &str| env.url_of(s);
    let vars = [
        ("FEIRA_CART_CATALOG_URL", url("catalog")),
        ("FEIRA_CART_SHIPPING_URL", url("shipping")),
        ("FEIRA_CART_ORDERS_URL", url("orders")),
        ("FEIRA_PAYMENTS_PSP_URL", url("psp-sim")),
        ("FEIRA_PAYMENTS_PUBLIC_URL", url("payments")),
        ("FEIRA_SHIPPING_CARRIER_URL", url("carrier-sim")),
        ("FEIRA_GATEWAY_JWKS_URL", format!("{}/.well-known/jwks.json", url("identity"))),
        ("FEIRA_CATALOG_PUBLISHER_STORE", format!("file://{}", tmp.join(format!("feira-e2e-store-{ns}")).display())),
        ("FEIRA_NOTIFICATIONS_MAIL_DIR", tmp.join(format!("feira-e2e-mail-{ns}")).display().to_string()),
        // Quick enough for a test, slow enough for a loaded 2-core machine.
        ("FEIRA_PAYMENTS_PSP_TIMEOUT", "1s".into()),
        ("FEIRA_PAYMENTS_CLAIM_LEASE", "3s".into()),
        ("FEIRA_PAYMENTS_BREAKER_OPEN", "2s".into()),
        ("FEIRA_PAYMENTS_BREAKER_THRESHOLD", "3".into()),
        ("FEIRA_SHIPPING_CARRIER_TIMEOUT", "500ms".into()),
        ("FEIRA_SHIPPING_BREAKER_OPEN", "2s".into()),
        ("FEIRA_ORDERS_SAGA_SWEEP", "200ms".into()),
    ];
    for (k, v) in vars {
        env.set(k, v);
    }
    configure(&mut env);
    env
}

impl Shop {
    /// Every target behind the edge (identity and the gateway are not
    /// needed when the test speaks to the services as the gateway would),
    /// started in this process.
    pub async fn start() -> Shop {
        Shop::start_with(|_| {}, &[]).await
    }

    /// As [`Shop::start`], but without `skip` too (which the test runs
    /// itself, e.g. as a child process), after `configure` changed the
    /// variables.
    pub async fn start_with(configure: impl FnOnce(&mut TestEnv), skip: &[&str]) -> Shop {
        let skip: Vec<&str> = skip.iter().copied().chain(["identity", "gateway"]).collect();
        Shop::start_targets(configure, &skip).await
    }

    /// Every target but `skip`.
    pub async fn start_targets(configure: impl FnOnce(&mut TestEnv), skip: &[&str]) -> Shop {
        let env = Arc::new(shop_env(configure));
        let redis = RedisPrefix {
            url: std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
            prefix: format!("{}:", env.namespace),
        };
        let mut services = BTreeMap::new();
        for spec in feira::targets::TARGETS.iter().filter(|s| !skip.contains(&s.name)) {
            let running = env
                .spawn(spec)
                .await
                .unwrap_or_else(|e| panic!("{} starts (PostgreSQL, RabbitMQ and Redis running?): {e:#}", spec.name));
            services.insert(spec.name, running);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let mail_dir = PathBuf::from(env.vars["FEIRA_NOTIFICATIONS_MAIL_DIR"].clone());
        Shop { client, mail_dir, services, _redis: redis, env }
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.env.url_of(service))
    }

    /// A request to `service` as the gateway would forward it for `user`
    /// with `roles` (services trust these headers; see platform::http::caller).
    pub fn call(&self, method: Method, service: &str, path: &str, user: Uuid, roles: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(service, path))
            .header("x-feira-user-id", user.to_string())
            .header("x-feira-roles", roles)
    }

    pub async fn admin_get(&self, service: &str, path: &str) -> Value {
        let answer = Answer::of(self.call(Method::GET, service, path, Uuid::now_v7(), "admin").send().await).await;
        answer.expect(StatusCode::OK).clone()
    }

    /// A seller with one product at `price_cents` and `on_hand` units.
    pub async fn product(&self, price_cents: i64, on_hand: i64) -> Product {
        let seller = Uuid::now_v7();
        let put = |path: String, body: Value| {
            let req = self.call(Method::PUT, "catalog", &path, seller, "seller").json(&body);
            async move { Answer::of(req.send().await).await }
        };
        let owner = put(format!("/owners/{seller}"), json!({"name": "Loja da Ana"})).await;
        assert!(owner.status.is_success(), "{owner:?}");
        let created = Answer::of(
            self.call(Method::POST, "catalog", &format!("/owners/{seller}/products"), seller, "seller")
                .json(&json!({
                    "sku": format!("SKU-{}", &Uuid::new_v4().simple().to_string()[..8]),
                    "title": "Caneca de cerâmica",
                    "price_cents": price_cents,
                    "attributes": {"weight_grams": 400}
                }))
                .send()
                .await,
        )
        .await;
        let id: Uuid = created.expect(StatusCode::CREATED)["id"].as_str().unwrap_or_default().parse().expect("an id");
        let stock = put(format!("/products/{id}/stock"), json!({"on_hand": on_hand})).await;
        assert!(stock.status.is_success(), "{stock:?}");
        Product { id, seller }
    }

    /// `(on_hand, reserved, available)` as the seller reads them.
    pub async fn stock(&self, p: &Product) -> (i64, i64, i64) {
        let a = Answer::of(
            self.call(Method::GET, "catalog", &format!("/products/{}/stock", p.id), p.seller, "seller").send().await,
        )
        .await;
        let s = a.expect(StatusCode::OK);
        (
            s["on_hand"].as_i64().unwrap_or(-1),
            s["reserved"].as_i64().unwrap_or(-1),
            s["available"].as_i64().unwrap_or(-1),
        )
    }

    /// A shipping quote to São Paulo for `units` of 400 g; `(id, answer)`.
    pub async fn quote(&self, units: i64) -> (Uuid, Value) {
        let a = Answer::of(
            self.client
                .post(self.url("shipping", "/shipping/quotes"))
                .json(&json!({"destination_cep": "01310-100", "items": [{"quantity": units, "weight_grams": 400}]}))
                .send()
                .await,
        )
        .await;
        let q = a.expect(StatusCode::CREATED).clone();
        (q["id"].as_str().unwrap_or_default().parse().expect("a quote id"), q)
    }

    /// Puts `quantity` of `product` in `customer`'s cart.
    pub async fn add_to_cart(&self, customer: Uuid, product: &Product, quantity: i64) {
        let a = Answer::of(
            self.call(Method::PUT, "cart", &format!("/cart/items/{}", product.id), customer, "customer")
                .json(&json!({"quantity": quantity}))
                .send()
                .await,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "add to cart: {a:?}");
    }

    /// `POST /cart/checkout` with `key`, paying with `payment`.
    pub async fn checkout(&self, customer: Uuid, quote: Uuid, payment: Value, key: &str) -> Answer {
        let body = json!({
            "shipping_address": {
                "recipient": "Ana Souza", "street": "Avenida Paulista", "number": "1000",
                "district": "Bela Vista", "city": "São Paulo", "state": "SP", "cep": "01310-100"
            },
            "shipping_quote_id": quote,
            "payment": payment,
            "contact_email": format!("c{}@example.com", &customer.simple().to_string()[..8]),
        });
        Answer::of(
            self.call(Method::POST, "cart", "/cart/checkout", customer, "customer")
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await,
        )
        .await
    }

    /// Cart, quote and checkout of `quantity` × `product` by card `token`;
    /// returns the order id.
    pub async fn buy(&self, customer: Uuid, product: &Product, quantity: i64, token: &str) -> Uuid {
        self.add_to_cart(customer, product, quantity).await;
        let (quote, _) = self.quote(quantity).await;
        let answer =
            self.checkout(customer, quote, json!({"type": "card", "token": token}), &Uuid::new_v4().to_string()).await;
        order_id(&answer)
    }

    pub async fn order(&self, id: Uuid) -> Value {
        self.admin_get("orders", &format!("/orders/{id}")).await
    }

    /// Waits until the order's saga is done; returns the order.
    pub async fn settled(&self, id: Uuid) -> Value {
        eventually(WAIT, &format!("order {id} to settle"), || async {
            let o = self.order(id).await;
            (o["status"] != "PENDING").then_some(o)
        })
        .await
    }

    /// The provider's ledger: every charge it made for the order.
    pub async fn charges(&self, order: Uuid) -> Vec<Value> {
        let r = self.client.get(self.url("psp-sim", &format!("/v1/charges?order_ref={order}"))).send().await;
        let v: Value = r.expect("GET /v1/charges").json().await.expect("json");
        v["data"].as_array().cloned().unwrap_or_default()
    }

    pub async fn invoices(&self, order: Uuid) -> Vec<Value> {
        self.page("invoices", &format!("/invoices?order_id={order}")).await
    }

    pub async fn emails(&self, order: Uuid) -> Vec<Value> {
        self.page("notifications", &format!("/emails?order_id={order}")).await
    }

    pub async fn shipments(&self, order: Uuid) -> Vec<Value> {
        self.page("shipping", &format!("/shipments?order_id={order}")).await
    }

    async fn page(&self, service: &str, path: &str) -> Vec<Value> {
        self.admin_get(service, path).await["items"].as_array().cloned().unwrap_or_default()
    }

    /// Sets a simulator's faults (`PUT /admin/faults`).
    pub async fn faults(&self, simulator: &str, settings: Value) {
        let r = self.client.put(self.url(simulator, "/admin/faults")).json(&settings).send().await.expect("faults");
        assert!(r.status().is_success(), "set faults on {simulator}: {:?}", r.text().await);
    }

    /// A series' value in a service's `/metrics`.
    pub async fn metric(&self, service: &str, series: &str) -> Option<f64> {
        let text = self.client.get(self.url(service, "/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Stops every service (as on SIGTERM).
    pub async fn stop(mut self) {
        for (name, s) in std::mem::take(&mut self.services).into_iter().rev() {
            s.stop().await.unwrap_or_else(|e| panic!("{name} stops cleanly: {e:#}"));
        }
        let _ = std::fs::remove_dir_all(&self.mail_dir);
    }
}

/// The order id of a `202` checkout answer.
pub fn order_id(answer: &Answer) -> Uuid {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "checkout: {answer:?}");
    answer.json["order_id"].as_str().and_then(|s| s.parse().ok()).expect("an order id")
}

/// `kind` e-mails among `emails`.
pub fn of_kind<'a>(emails: &'a [Value], kind: &str) -> Vec<&'a Value> {
    emails.iter().filter(|e| e["kind"] == kind).collect()
}

impl Shop {
    /// The platform as another process runs it on `env`'s ports (`feira up`
    /// as a child, see `helpers::Feira`): the same shopper's helpers, but no
    /// service is started in this process. Build `env` with [`shop_env`].
    pub fn attach(env: TestEnv) -> Shop {
        let env = Arc::new(env);
        let redis = RedisPrefix {
            url: std::env::var("FEIRA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
            prefix: format!("{}:", env.namespace),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let mail_dir = PathBuf::from(env.vars["FEIRA_NOTIFICATIONS_MAIL_DIR"].clone());
        Shop { client, mail_dir, services: BTreeMap::new(), _redis: redis, env }
    }

    /// A customer buys `quantity` × `product` by card from the cart and the
    /// saga confirms it; returns `(order id, quote price in cents)`.
    pub async fn buy_confirmed(&self, customer: Uuid, product: &Product, quantity: i64) -> (Uuid, i64) {
        self.add_to_cart(customer, product, quantity).await;
        let (quote, q) = self.quote(quantity).await;
        let key = Uuid::new_v4().to_string();
        let id = order_id(&self.checkout(customer, quote, json!({"type": "card", "token": "tok_visa"}), &key).await);
        let order = self.settled(id).await;
        assert_eq!(order["status"], "CONFIRMED", "{order}");
        (id, q["price_cents"].as_i64().expect("a quote has a price"))
    }

    /// Waits for the order's invoices (at least one); returns them all.
    pub async fn invoiced(&self, order: Uuid) -> Vec<Value> {
        eventually(WAIT, &format!("order {order}'s invoice"), || async {
            let v = self.invoices(order).await;
            (!v.is_empty()).then_some(v)
        })
        .await
    }
}
