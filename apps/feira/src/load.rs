//! `feira load checkout`: the shopper's checkout driven against running
//! services, measuring completed (CONFIRMED) checkouts per second and the
//! time from checkout to CONFIRMED.
//!
//! # What one checkout is
//! A fresh customer (a new UUIDv7: the services trust the gateway's
//! `x-feira-user-id` / `x-feira-roles` headers, which the driver sets as the
//! gateway would) puts one unit of a product in the cart
//! (`PUT /cart/items/{id}`), asks shipping for a quote
//! (`POST /shipping/quotes`) and checks out (`POST /cart/checkout` with an
//! `Idempotency-Key`, answered `202 {order_id}`). The saga then reserves the
//! stock and charges the card at psp-sim (`tok_visa`), and orders publishes
//! `orders.order_confirmed.v1` (or `orders.order_cancelled.v1`). Set-up
//! makes one seller with `--products` products of 10^9 units each, so stock
//! never runs out and reservations are spread over several rows.
//!
//! # Two modes
//! - Closed loop (`--rate 0`): `--concurrency` shoppers; each starts its next
//!   checkout once its previous order settled (CONFIRMED or CANCELLED), so
//!   the figure is the throughput of whole checkouts with that many in
//!   flight. Latencies count from the moment the checkout request is sent.
//! - Open loop (`--rate R`): checkout request `i` is due at `start + i / R`, a
//!   fixed timeline that does not wait for answers. Carts and quotes are
//!   prepared just ahead of it by `--concurrency` preparers (so each checkout
//!   costs the services the same work as in the closed loop). Latencies count
//!   from the due time, not the sending time: a late driver or a saturated
//!   service shows up in the figures instead of hiding (no coordinated
//!   omission). The scheduling lag (sent − due) is reported too.
//!
//! # How orders are followed
//! A private, exclusive, auto-deleted queue bound to the two events above on
//! the installation's events exchange (`<FEIRA_AMQP_NAMESPACE>.events`). An
//! order is settled when its event reaches the driver: what any downstream
//! service would see (the outbox relay and the broker hop included), with no
//! polling load on orders and no polling-interval error. Orders with no event
//! by the end of `--drain` are read once from orders (`GET /orders/{id}`) and
//! reported apart as unsettled, with the status orders gave.
//!
//! Completed per second = orders confirmed during the load window (from
//! the first due time for `--duration` seconds) / `--duration`.
//!
//! # Layout
//! - [`LoadCommand`], [`CheckoutArgs`]: the command line.
//! - `Shop`: the HTTP calls of a seller and a shopper.
//! - `Orders`: orders awaiting their event, and their outcome.
//! - `closed_loop` / `open_loop`: the two drivers; `Report`: the figures.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use contracts::Message as _;
use contracts::orders::{OrderCancelledV1, OrderConfirmedV1};
use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use platform::config::Config;
use platform::messaging::{Broker, Topology};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::targets;

/// `feira load ...`.
#[derive(clap::Subcommand)]
pub enum LoadCommand {
    /// Checkouts against running services (`feira up`): completed checkouts
    /// per second and latency from checkout to CONFIRMED.
    Checkout(CheckoutArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckoutArgs {
    /// Checkouts started per second on a fixed timeline (open loop);
    /// 0: as fast as `--concurrency` shoppers go (closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Closed loop: shoppers checking out at once. Open loop: carts and
    /// quotes being prepared at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Products the seller sells (checkouts go round them).
    #[arg(long, default_value_t = 10)]
    products: usize,
    /// Seconds to wait after the load for orders still PENDING.
    #[arg(long, default_value_t = 60.0)]
    drain: f64,
    /// Host of every service, on the ports of `FEIRA_<SERVICE>_PORT`
    /// (default: FEIRA_BIND_HOST, or 127.0.0.1 when it binds every address).
    #[arg(long)]
    host: Option<String>,
    /// Catalog's base URL, overriding --host.
    #[arg(long)]
    base_url_catalog: Option<String>,
    /// Cart's base URL, overriding --host.
    #[arg(long)]
    base_url_cart: Option<String>,
    /// Shipping's base URL, overriding --host.
    #[arg(long)]
    base_url_shipping: Option<String>,
    /// Orders' base URL, overriding --host.
    #[arg(long)]
    base_url_orders: Option<String>,
    /// Also write the figures as a JSON object to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(command: LoadCommand) -> anyhow::Result<()> {
    match command {
        LoadCommand::Checkout(args) => checkout(args).await,
    }
}

// --- the run -------------------------------------------------------------------

async fn checkout(args: CheckoutArgs) -> anyhow::Result<()> {
    let mode = Mode::of(&args)?;
    let config = Config::from_env(&targets::ports(), &targets::vars()).context("invalid configuration")?;
    let shop = Shop::new(Urls::of(&args, &config)?)?;
    let orders = Arc::new(Orders::default());
    let ns = config.messaging.namespace.clone();
    let broker = Broker::new(config.amqp_url.clone(), "feira-load", Topology::new(ns.clone()));
    let listener = follow(&broker, orders.clone()).await?;
    let result = drive(&args, mode, shop, orders, &ns).await;
    listener.abort();
    broker.close().await;
    let report = result?;
    print!("{}", report.text());
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{}\n", report.json()))
            .with_context(|| format!("write the figures to {}", path.display()))?;
    }
    Ok(())
}

async fn drive(args: &CheckoutArgs, mode: Mode, shop: Shop, orders: Arc<Orders>, ns: &str) -> anyhow::Result<Report> {
    let products = shop.stock_products(args.products).await.context("set up the seller's products")?;
    println!(
        "feira load checkout: {}, {} s, {} products, namespace {ns}; catalog {}, cart {}, shipping {}, orders {}",
        mode.describe(args.concurrency),
        args.duration,
        products.len(),
        shop.urls.catalog,
        shop.urls.cart,
        shop.urls.shipping,
        shop.urls.orders
    );
    let ctx = Arc::new(Ctx { shop, products, orders, tally: Mutex::default() });
    let duration = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_secs_f64(args.drain);
    let start = match mode {
        Mode::Closed => closed_loop(&ctx, args.concurrency, duration).await,
        Mode::Open { rate } => open_loop(&ctx, rate, args.concurrency, duration).await,
    };
    let loaded = Instant::now();
    let deadline = loaded + drain;
    while ctx.orders.pending_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unsettled = ctx.unsettled_statuses().await;
    Ok(Report::new(args, mode, &ctx, start, duration, unsettled))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Closed,
    Open { rate: f64 },
}

impl Mode {
    fn of(args: &CheckoutArgs) -> anyhow::Result<Mode> {
        anyhow::ensure!(args.rate.is_finite() && args.rate >= 0.0, "--rate must be 0 or a positive number");
        anyhow::ensure!(args.duration.is_finite() && args.duration > 0.0, "--duration must be positive");
        anyhow::ensure!(args.drain.is_finite() && args.drain >= 0.0, "--drain must be 0 or positive");
        anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!((1..=1000).contains(&args.products), "--products must be between 1 and 1000");
        if args.rate == 0.0 {
            return Ok(Mode::Closed);
        }
        anyhow::ensure!(
            planned(args.rate, args.duration) <= 1_000_000,
            "--rate × --duration is over a million checkouts"
        );
        Ok(Mode::Open { rate: args.rate })
    }

    fn describe(self, concurrency: usize) -> String {
        match self {
            Mode::Closed => format!("closed loop, {concurrency} shoppers"),
            Mode::Open { rate } => format!("open loop at {rate}/s, {concurrency} preparers"),
        }
    }
}

/// Checkouts an open loop at `rate` per second starts in `duration` seconds.
fn planned(rate: f64, duration: f64) -> usize {
    (rate * duration).round().max(0.0) as usize
}

/// When checkout `i` of an open loop at `rate` per second is due, after the
/// start. Computed from `i` (never by adding intervals), so the timeline
/// does not drift however late the driver runs.
fn due_offset(i: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

// --- the drivers ---------------------------------------------------------------

/// What the drivers share.
struct Ctx {
    shop: Shop,
    products: Vec<Uuid>,
    orders: Arc<Orders>,
    tally: Mutex<Tally>,
}

/// Everything counted at the checkout request.
#[derive(Default)]
struct Tally {
    started: u64,
    failures: BTreeMap<String, u64>,
    /// Due (open loop) or sent (closed loop) → the checkout's answer.
    answer: Vec<Duration>,
    /// Sent − due (open loop only).
    lag: Vec<Duration>,
}

/// A cart filled and a quote obtained, ready to check out.
struct Prepared {
    customer: Uuid,
    quote: Uuid,
}

impl Ctx {
    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn prepare(&self, i: usize) -> Result<Prepared, Failure> {
        let customer = Uuid::now_v7();
        self.shop.fill_cart(customer, self.products[i % self.products.len()]).await?;
        let quote = self.shop.quote().await?;
        Ok(Prepared { customer, quote })
    }

    /// A checkout that could not even be attempted counts as started and failed.
    fn failed_before_checkout(&self, f: Failure) {
        let mut t = self.tally();
        t.started += 1;
        *t.failures.entry(f.0).or_default() += 1;
    }

    /// Sends the checkout due at `due`; the order's outcome when placed.
    async fn place(&self, p: Prepared, due: Instant) -> Option<oneshot::Receiver<Settled>> {
        let sent = Instant::now();
        let answer = self.shop.checkout(p.customer, p.quote).await;
        let answered = Instant::now();
        let mut t = self.tally();
        t.started += 1;
        t.lag.push(sent.saturating_duration_since(due));
        match answer {
            Ok(order) => {
                t.answer.push(answered.saturating_duration_since(due));
                drop(t);
                Some(self.orders.track(order, due))
            }
            Err(f) => {
                *t.failures.entry(f.0).or_default() += 1;
                None
            }
        }
    }

    /// Orders with no event yet, by the status orders gives now.
    async fn unsettled_statuses(&self) -> BTreeMap<String, u64> {
        let ids = self.orders.pending_ids();
        let statuses: Vec<String> = futures_util::stream::iter(ids)
            .map(|id| async move { self.shop.order_status(id).await.unwrap_or_else(|f| f.0) })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut by = BTreeMap::new();
        for s in statuses {
            *by.entry(s).or_default() += 1;
        }
        by
    }
}

/// `concurrency` shoppers for `duration`, each waiting for its order to
/// settle (at most until the end) before the next checkout. Returns the
/// start.
async fn closed_loop(ctx: &Arc<Ctx>, concurrency: usize, duration: Duration) -> Instant {
    let start = Instant::now();
    let end = start + duration;
    let mut shoppers = JoinSet::new();
    for w in 0..concurrency {
        let ctx = ctx.clone();
        shoppers.spawn(async move {
            let mut i = w;
            while Instant::now() < end {
                match ctx.prepare(i).await {
                    Ok(p) => {
                        let placed = ctx.place(p, Instant::now()).await;
                        if let Some(settled) = placed {
                            let _ = tokio::time::timeout_at(end, settled).await;
                        }
                    }
                    Err(f) => {
                        ctx.failed_before_checkout(f);
                        // Do not spin on a service that refuses.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                i += concurrency;
            }
        });
    }
    while shoppers.join_next().await.is_some() {}
    start
}

/// Checkout `i` due at `start + i / rate`, for `duration`; carts and quotes
/// prepared ahead by `concurrency` preparers. Returns the start.
async fn open_loop(ctx: &Arc<Ctx>, rate: f64, concurrency: usize, duration: Duration) -> Instant {
    let n = planned(rate, duration.as_secs_f64());
    // About a second of checkouts (at least one per preparer) ready ahead.
    let ahead = (rate.ceil() as usize).clamp(1, 10_000).max(concurrency).min(n.max(1));
    let (tx, mut rx) = mpsc::channel::<Result<Prepared, Failure>>(ahead);
    let next = Arc::new(AtomicUsize::new(0));
    let mut preparers = JoinSet::new();
    for _ in 0..concurrency {
        let (ctx, tx, next) = (ctx.clone(), tx.clone(), next.clone());
        preparers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || tx.send(ctx.prepare(i).await).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    // Start once the channel is full (or every preparer is done).
    while rx.len() < ahead.min(n) && !rx.is_closed() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start = Instant::now();
    let mut checkouts = JoinSet::new();
    for i in 0..n {
        let due = start + due_offset(i, rate);
        tokio::time::sleep_until(due).await;
        let Some(item) = rx.recv().await else { break };
        match item {
            Ok(p) => {
                let ctx = ctx.clone();
                checkouts.spawn(async move { ctx.place(p, due).await.map(drop) });
            }
            Err(f) => ctx.failed_before_checkout(f),
        }
        while checkouts.try_join_next().is_some() {}
    }
    while checkouts.join_next().await.is_some() {}
    while preparers.join_next().await.is_some() {}
    start
}

// --- following orders ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Confirmed,
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
struct Settled {
    outcome: Outcome,
    /// When the event reached the driver.
    at: Instant,
}

/// A settled order of this run.
#[derive(Debug, Clone, Copy)]
struct Finished {
    outcome: Outcome,
    at: Instant,
    /// From the checkout's due (or sent) time to the event.
    latency: Duration,
}

/// Orders placed by this run, waiting for or matched with their event. An
/// event may arrive before the checkout's answer: it waits in `early`.
#[derive(Default)]
struct Orders {
    state: Mutex<OrdersState>,
}

#[derive(Default)]
struct OrdersState {
    pending: HashMap<Uuid, (Instant, oneshot::Sender<Settled>)>,
    early: HashMap<Uuid, Settled>,
    finished: Vec<Finished>,
}

impl Orders {
    fn lock(&self) -> MutexGuard<'_, OrdersState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows `order`, checked out at `start`; the receiver gets its outcome.
    fn track(&self, order: Uuid, start: Instant) -> oneshot::Receiver<Settled> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.lock();
        match s.early.remove(&order) {
            Some(settled) => {
                s.finish(start, settled);
                let _ = tx.send(settled);
            }
            None => {
                s.pending.insert(order, (start, tx));
            }
        }
        rx
    }

    /// `order`'s event arrived.
    fn settle(&self, order: Uuid, settled: Settled) {
        let mut s = self.lock();
        match s.pending.remove(&order) {
            Some((start, tx)) => {
                s.finish(start, settled);
                let _ = tx.send(settled);
            }
            // Not answered yet, or not an order of this run.
            None => {
                s.early.entry(order).or_insert(settled);
            }
        }
    }

    fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    fn pending_ids(&self) -> Vec<Uuid> {
        self.lock().pending.keys().copied().collect()
    }

    fn finished(&self) -> Vec<Finished> {
        self.lock().finished.clone()
    }
}

impl OrdersState {
    fn finish(&mut self, start: Instant, settled: Settled) {
        self.finished.push(Finished {
            outcome: settled.outcome,
            at: settled.at,
            latency: settled.at.saturating_duration_since(start),
        });
    }
}

/// Binds a private queue to the orders' outcome events and feeds `orders`
/// from it until aborted.
async fn follow(broker: &Broker, orders: Arc<Orders>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let exchange = broker.topology().events_exchange();
    let ch = broker.channel().await.context("connect to RabbitMQ (FEIRA_AMQP_URL)")?;
    let declared = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .context("declare the driver's private queue")?;
    let queue = declared.name().to_string();
    for key in [OrderConfirmedV1::ROUTING_KEY, OrderCancelledV1::ROUTING_KEY] {
        ch.queue_bind(
            queue.clone().into(),
            exchange.clone().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("bind to {exchange}: is feira up, with this FEIRA_AMQP_NAMESPACE?"))?;
    }
    let mut deliveries = ch
        .basic_consume(
            queue.into(),
            "feira-load".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .context("consume the driver's private queue")?;
    Ok(tokio::spawn(async move {
        let _channel = ch;
        while let Some(delivery) = deliveries.next().await {
            let delivery = match delivery {
                Ok(d) => d,
                Err(error) => {
                    eprintln!("warning: the order events stopped ({error}); unsettled orders are read from orders");
                    return;
                }
            };
            let at = Instant::now();
            let outcome = match delivery.routing_key.as_str() {
                OrderConfirmedV1::ROUTING_KEY => Outcome::Confirmed,
                _ => Outcome::Cancelled,
            };
            if let Some(order) = event_order_id(&delivery.data) {
                orders.settle(order, Settled { outcome, at });
            }
        }
    }))
}

/// The `payload.order_id` of an event envelope.
fn event_order_id(body: &[u8]) -> Option<Uuid> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["payload"]["order_id"].as_str()?.parse().ok()
}

// --- HTTP -------------------------------------------------------------------------

/// Base URLs of the services the driver talks to.
#[derive(Debug, Clone)]
struct Urls {
    catalog: String,
    cart: String,
    shipping: String,
    orders: String,
}

impl Urls {
    fn of(args: &CheckoutArgs, config: &Config) -> anyhow::Result<Urls> {
        let host = match &args.host {
            Some(h) => h.clone(),
            None if config.bind_host.is_unspecified() => "127.0.0.1".to_string(),
            None => config.bind_host.to_string(),
        };
        let url = |given: &Option<String>, service: &str| -> anyhow::Result<String> {
            Ok(match given {
                Some(u) => u.trim_end_matches('/').to_string(),
                None => format!("http://{host}:{}", config.service(service)?.port),
            })
        };
        Ok(Urls {
            catalog: url(&args.base_url_catalog, "catalog")?,
            cart: url(&args.base_url_cart, "cart")?,
            shipping: url(&args.base_url_shipping, "shipping")?,
            orders: url(&args.base_url_orders, "orders")?,
        })
    }
}

/// Why a step failed, as counted in the report: `checkout: HTTP 503`.
#[derive(Debug)]
struct Failure(String);

struct Shop {
    http: reqwest::Client,
    urls: Urls,
}

impl Shop {
    fn new(urls: Urls) -> anyhow::Result<Shop> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build()
            .context("an HTTP client")?;
        Ok(Shop { http, urls })
    }

    /// A request as the gateway forwards it for `user` with `roles`.
    fn call(&self, method: Method, url: String, user: Uuid, roles: &str) -> RequestBuilder {
        self.http.request(method, url).header("x-feira-user-id", user.to_string()).header("x-feira-roles", roles)
    }

    /// Sends `req`; its JSON answer when its status is one of `expect`.
    async fn send(&self, what: &str, req: RequestBuilder, expect: &[StatusCode]) -> Result<Value, Failure> {
        let res = req.send().await.map_err(|e| Failure(format!("{what}: {}", transport(&e))))?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| Failure(format!("{what}: {}", transport(&e))))?;
        if !expect.contains(&status) {
            return Err(Failure(format!("{what}: HTTP {}", status.as_u16())));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// One seller with `n` products of 10^9 units each.
    async fn stock_products(&self, n: usize) -> anyhow::Result<Vec<Uuid>> {
        let seller = Uuid::now_v7();
        let c = &self.urls.catalog;
        let owner = self.call(Method::PUT, format!("{c}/owners/{seller}"), seller, "seller");
        let owner = owner.json(&json!({"name": "Loja de carga"}));
        self.send("create the owner", owner, &[StatusCode::OK, StatusCode::CREATED]).await.map_err(setup)?;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let create =
                self.call(Method::POST, format!("{c}/owners/{seller}/products"), seller, "seller").json(&json!({
                    "sku": format!("LOAD-{}-{i}", &seller.simple().to_string()[24..]),
                    "title": format!("Caneca {i}"),
                    "price_cents": 4990,
                    "attributes": {"weight_grams": 400}
                }));
            let created = self.send("create a product", create, &[StatusCode::CREATED]).await.map_err(setup)?;
            let id: Uuid = created["id"].as_str().and_then(|s| s.parse().ok()).context("a product id")?;
            let stock = self
                .call(Method::PUT, format!("{c}/products/{id}/stock"), seller, "seller")
                .json(&json!({"on_hand": 1_000_000_000}));
            self.send("stock a product", stock, &[StatusCode::OK]).await.map_err(setup)?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn fill_cart(&self, customer: Uuid, product: Uuid) -> Result<(), Failure> {
        let put = self.call(Method::PUT, format!("{}/cart/items/{product}", self.urls.cart), customer, "customer");
        self.send("cart", put.json(&json!({"quantity": 1})), &[StatusCode::OK]).await.map(drop)
    }

    async fn quote(&self) -> Result<Uuid, Failure> {
        let post = self.http.post(format!("{}/shipping/quotes", self.urls.shipping)).json(&json!({
            "destination_cep": "01310-100",
            "items": [{"quantity": 1, "weight_grams": 400}]
        }));
        let q = self.send("quote", post, &[StatusCode::CREATED]).await?;
        q["id"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| Failure("quote: no id".into()))
    }

    async fn checkout(&self, customer: Uuid, quote: Uuid) -> Result<Uuid, Failure> {
        let post = self
            .call(Method::POST, format!("{}/cart/checkout", self.urls.cart), customer, "customer")
            .header("idempotency-key", Uuid::new_v4().to_string())
            .json(&json!({
                "shipping_address": {
                    "recipient": "Ana Souza", "street": "Avenida Paulista", "number": "1000",
                    "district": "Bela Vista", "city": "São Paulo", "state": "SP", "cep": "01310-100"
                },
                "shipping_quote_id": quote,
                "payment": {"type": "card", "token": "tok_visa"},
                "contact_email": format!("c{}@example.com", customer.simple()),
            }));
        let placed = self.send("checkout", post, &[StatusCode::ACCEPTED]).await?;
        placed["order_id"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| Failure("checkout: no order id".into()))
    }

    async fn order_status(&self, order: Uuid) -> Result<String, Failure> {
        let get = self.call(Method::GET, format!("{}/orders/{order}", self.urls.orders), Uuid::now_v7(), "admin");
        let o = self.send("order", get, &[StatusCode::OK]).await?;
        Ok(o["status"].as_str().unwrap_or("?").to_string())
    }
}

fn setup(f: Failure) -> anyhow::Error {
    anyhow::anyhow!(f.0)
}

fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused"
    } else {
        "transport error"
    }
}

// --- the figures -----------------------------------------------------------------------

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending).
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p90, p99 and max of some latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Option<Spread> {
        samples.sort_unstable();
        let ms = |p: f64| percentile(&samples, p).map(|d| d.as_secs_f64() * 1000.0);
        Some(Spread { p50: ms(50.0)?, p90: ms(90.0)?, p99: ms(99.0)?, max: ms(100.0)? })
    }

    fn json(s: Option<Spread>) -> Value {
        match s {
            Some(s) => {
                json!({"p50_ms": round2(s.p50), "p90_ms": round2(s.p90), "p99_ms": round2(s.p99), "max_ms": round2(s.max)})
            }
            None => Value::Null,
        }
    }

    fn text(s: Option<Spread>) -> String {
        match s {
            Some(s) => format!("p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms", s.p50, s.p90, s.p99, s.max),
            None => "-".to_string(),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Report {
    mode: Mode,
    concurrency: usize,
    duration: Duration,
    products: usize,
    started: u64,
    confirmed: u64,
    cancelled: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    unsettled: BTreeMap<String, u64>,
    confirmed_in_window: u64,
    to_confirmed: Option<Spread>,
    answer: Option<Spread>,
    lag: Option<Spread>,
}

impl Report {
    fn new(
        args: &CheckoutArgs,
        mode: Mode,
        ctx: &Ctx,
        start: Instant,
        duration: Duration,
        unsettled: BTreeMap<String, u64>,
    ) -> Report {
        let finished = ctx.orders.finished();
        let confirmed: Vec<&Finished> = finished.iter().filter(|f| f.outcome == Outcome::Confirmed).collect();
        let window_end = start + duration;
        let t = ctx.tally();
        Report {
            mode,
            concurrency: args.concurrency,
            duration,
            products: ctx.products.len(),
            started: t.started,
            confirmed: confirmed.len() as u64,
            cancelled: (finished.len() - confirmed.len()) as u64,
            failed: t.failures.values().sum(),
            failures: t.failures.clone(),
            unsettled,
            confirmed_in_window: confirmed.iter().filter(|f| f.at <= window_end).count() as u64,
            to_confirmed: Spread::of(confirmed.iter().map(|f| f.latency).collect()),
            answer: Spread::of(t.answer.clone()),
            lag: match mode {
                Mode::Open { .. } => Spread::of(t.lag.clone()),
                Mode::Closed => None,
            },
        }
    }

    fn completed_per_second(&self) -> f64 {
        self.confirmed_in_window as f64 / self.duration.as_secs_f64()
    }

    fn unsettled_total(&self) -> u64 {
        self.unsettled.values().sum()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("checkouts started      {}", self.started));
        line(format!("  confirmed            {}", self.confirmed));
        line(format!("  cancelled            {}", self.cancelled));
        line(format!("  failed               {}", self.failed));
        for (why, n) in &self.failures {
            line(format!("    {why}: {n}"));
        }
        line(format!("  unsettled            {}", self.unsettled_total()));
        for (status, n) in &self.unsettled {
            line(format!("    orders says {status}: {n}"));
        }
        line(format!(
            "completed/s            {:.1}  ({} confirmed within the {:.1} s window)",
            self.completed_per_second(),
            self.confirmed_in_window,
            self.duration.as_secs_f64()
        ));
        let from = match self.mode {
            Mode::Open { .. } => "from the due time",
            Mode::Closed => "from the request",
        };
        line(format!("checkout → CONFIRMED   {}  ({from})", Spread::text(self.to_confirmed)));
        line(format!("checkout HTTP answer   {}", Spread::text(self.answer)));
        if let Mode::Open { .. } = self.mode {
            line(format!("driver lag (sent−due)  {}", Spread::text(self.lag)));
        }
        out
    }

    fn json(&self) -> Value {
        let (mode, rate) = match self.mode {
            Mode::Closed => ("closed", Value::Null),
            Mode::Open { rate } => ("open", json!(rate)),
        };
        json!({
            "mode": mode,
            "rate": rate,
            "concurrency": self.concurrency,
            "duration_s": self.duration.as_secs_f64(),
            "products": self.products,
            "started": self.started,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "failures": self.failures,
            "unsettled": self.unsettled_total(),
            "unsettled_by_status": self.unsettled,
            "confirmed_in_window": self.confirmed_in_window,
            "completed_per_s": round2(self.completed_per_second()),
            "checkout_to_confirmed": Spread::json(self.to_confirmed),
            "checkout_answer": Spread::json(self.answer),
            "driver_lag": Spread::json(self.lag),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 99.9), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&ms(&[7]), 1.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_spread_sorts_its_samples_first() {
        let s = Spread::of(ms(&[30, 10, 20, 40])).expect("samples");
        assert_eq!(s, Spread { p50: 20.0, p90: 40.0, p99: 40.0, max: 40.0 });
        assert_eq!(Spread::of(Vec::new()), None);
    }

    #[test]
    fn the_open_loop_timeline_is_fixed_and_does_not_drift() {
        assert_eq!(planned(40.0, 20.0), 800);
        assert_eq!(planned(2.5, 3.0), 8);
        assert_eq!(due_offset(0, 40.0), Duration::ZERO);
        assert_eq!(due_offset(1, 40.0), Duration::from_millis(25));
        // The 10 000th is due at exactly 250 s: computed from its index,
        // not by adding 25 ms intervals (which would accumulate rounding).
        assert_eq!(due_offset(10_000, 40.0), Duration::from_secs(250));
        assert_eq!(due_offset(3, 3.0), Duration::from_secs(1));
    }

    #[test]
    fn an_event_is_matched_whether_it_comes_before_or_after_the_answer() {
        let orders = Orders::default();
        let t0 = Instant::now();
        let (a, b, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

        let mut rx_a = orders.track(a, t0);
        assert_eq!(orders.pending_count(), 1);
        orders.settle(a, Settled { outcome: Outcome::Confirmed, at: t0 + Duration::from_millis(120) });
        assert_eq!(rx_a.try_recv().expect("a settled").outcome, Outcome::Confirmed);

        orders.settle(b, Settled { outcome: Outcome::Cancelled, at: t0 + Duration::from_millis(50) });
        orders.settle(stranger, Settled { outcome: Outcome::Confirmed, at: t0 });
        let mut rx_b = orders.track(b, t0 + Duration::from_millis(10));
        assert_eq!(rx_b.try_recv().expect("b settled").outcome, Outcome::Cancelled);

        assert_eq!(orders.pending_count(), 0);
        let finished = orders.finished();
        let latencies: Vec<_> = finished.iter().map(|f| (f.outcome, f.latency)).collect();
        assert_eq!(
            latencies,
            vec![(Outcome::Confirmed, Duration::from_millis(120)), (Outcome::Cancelled, Duration::from_millis(40))]
        );
    }

    #[test]
    fn the_order_id_is_read_from_the_envelope() {
        let id = Uuid::now_v7();
        let body = json!({"message_id": Uuid::now_v7(), "payload": {"order_id": id}}).to_string();
        assert_eq!(event_order_id(body.as_bytes()), Some(id));
        assert_eq!(event_order_id(b"{}"), None);
        assert_eq!(event_order_id(b"not json"), None);
    }
}
