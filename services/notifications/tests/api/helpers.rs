//! A running notifications service on a private database, broker namespace
//! and mail folder, the events it consumes published the way the other
//! services' relays publish them, a reader for the `.eml` files it writes,
//! and a tiny SMTP server standing in for an outside mail server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use contracts::invoices::InvoiceIssuedV1;
use contracts::orders::{OrderCancelledV1, OrderPlacedV1};
use contracts::shipping::ShipmentScheduledV1;
use contracts::{Envelope, Message};
use platform::messaging::Broker;
use platform::testing::{self, RunningService, TestEnv, eventually};
use reqwest::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

/// Seconds any single wait may take before the test fails.
pub const WAIT: u64 = 20;

/// Who calls the HTTP API.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Customer(Uuid),
    Admin,
    Anonymous,
}

/// One e-mail row, as the tests look at it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EmailRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub to_address: Option<String>,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// One test's notifications service, database, broker handle and mail folder.
pub struct Harness {
    pub env: TestEnv,
    pub svc: Option<RunningService>,
    pub db: PgPool,
    pub broker: Broker,
    pub http: reqwest::Client,
    pub mail_dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// A fresh environment (quick delivery retries, a temporary mail folder)
    /// with the service running and consuming; `configure` may change the
    /// variables first.
    pub async fn start_with(configure: impl FnOnce(&mut TestEnv)) -> Harness {
        let mail_dir = tempfile::tempdir().expect("a temporary mail folder");
        let mut env = TestEnv::new(&[notifications::SPEC]);
        env.set("FEIRA_NOTIFICATIONS_MAIL_DIR", mail_dir.path().join("mail").display().to_string());
        env.set("FEIRA_NOTIFICATIONS_POLL_INTERVAL", "100ms");
        env.set("FEIRA_NOTIFICATIONS_RETRY_BASE", "100ms");
        env.set("FEIRA_NOTIFICATIONS_RETRY_MAX", "300ms");
        configure(&mut env);
        let db = env.db(&notifications::SPEC).await.expect("create the notifications database");
        let broker = env.broker();
        eprintln!("test namespace: {}", env.namespace);
        let mut h = Harness { env, svc: None, db, broker, http: reqwest::Client::new(), mail_dir };
        h.spawn().await;
        h
    }

    /// Starts the service and waits until every consumer consumes.
    pub async fn spawn(&mut self) {
        assert!(self.svc.is_none(), "the service is already running");
        let svc = self.env.spawn(&notifications::SPEC).await.expect("start notifications");
        for c in notifications::events::CONSUMERS {
            let queue = self.broker.topology().queue(c.name);
            svc.wait_consuming(&self.broker, &queue, WAIT).await;
        }
        self.svc = Some(svc);
    }

    /// Stops the service, then removes the database and the namespace.
    pub async fn close(mut self) {
        if let Some(svc) = self.svc.take() {
            svc.stop().await.expect("notifications stopped cleanly");
        }
        self.db.close().await;
        self.broker.close().await;
        self.env.cleanup().await.expect("clean up the test environment");
    }

    pub fn url(&self, path: &str) -> String {
        self.svc.as_ref().expect("the service is running").url(path)
    }

    /// Publishes `envelope` as a relay does and waits for the broker's confirm.
    pub async fn publish<T: Message>(&self, envelope: &Envelope<T>) {
        testing::publish(&self.broker, envelope).await;
    }

    /// Publishes the order's `OrderPlacedV1` (with `email` as its contact).
    pub async fn place(&self, order_id: Uuid, customer_id: Uuid, email: Option<&str>) -> Envelope<OrderPlacedV1> {
        let e = Envelope::new(OrderPlacedV1 {
            order_id,
            customer_id,
            placed_at: OffsetDateTime::now_utc(),
            contact_email: email.map(str::to_string),
            ..OrderPlacedV1::example()
        });
        self.publish(&e).await;
        e
    }

    /// The folder the service writes `.eml` files to.
    pub fn mail_path(&self) -> PathBuf {
        self.mail_dir.path().join("mail")
    }

    /// The `.eml` files in the mail folder (temporary files excluded).
    pub fn eml_files(&self) -> Vec<PathBuf> {
        eml_files(&self.mail_path())
    }

    /// The e-mails of `order_id`, oldest first, straight from the database.
    pub async fn emails_of(&self, order_id: Uuid) -> Vec<EmailRow> {
        sqlx::query_as(
            "SELECT id, kind, status, to_address, subject, body, attempts, last_error
               FROM emails WHERE order_id = $1 ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.db)
        .await
        .expect("query e-mails")
    }

    /// Waits until `order_id` has `n` e-mails, all in `status`.
    pub async fn wait_emails(&self, order_id: Uuid, n: usize, status: &str) -> Vec<EmailRow> {
        let db = self.db.clone();
        let status = status.to_string();
        eventually(WAIT, &format!("{n} e-mails {status} for order {order_id}"), || {
            let (db, status) = (db.clone(), status.clone());
            async move {
                let rows: Vec<EmailRow> = sqlx::query_as(
                    "SELECT id, kind, status, to_address, subject, body, attempts, last_error
                       FROM emails WHERE order_id = $1 ORDER BY id",
                )
                .bind(order_id)
                .fetch_all(&db)
                .await
                .ok()?;
                (rows.len() == n && rows.iter().all(|r| r.status == status)).then_some(rows)
            }
        })
        .await
    }

    /// Publishes an order with an e-mail and its invoice, and waits for the
    /// invoice's e-mail to be stored: every consumer has applied what was
    /// published before on its queue by then.
    pub async fn barrier(&self) {
        let order_id = Uuid::now_v7();
        let customer = Uuid::now_v7();
        self.place(order_id, customer, Some("barrier@example.com")).await;
        self.publish(&Envelope::new(invoice(order_id, customer, 999))).await;
        let db = self.db.clone();
        eventually(WAIT, "the barrier's e-mail", || {
            let db = db.clone();
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM emails WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_one(&db)
                    .await
                    .ok()?;
                (n == 1).then_some(())
            }
        })
        .await;
    }

    /// `GET path` as `who`: the status and the body.
    pub async fn get(&self, path: &str, who: As) -> (StatusCode, serde_json::Value) {
        let mut req = self.http.get(self.url(path));
        match who {
            As::Customer(id) => req = req.header("x-feira-user-id", id.to_string()).header("x-feira-roles", "customer"),
            As::Admin => {
                req = req.header("x-feira-user-id", Uuid::now_v7().to_string()).header("x-feira-roles", "admin")
            }
            As::Anonymous => {}
        }
        let res = req.send().await.expect("send request");
        let status = res.status();
        let body = res.bytes().await.expect("read body");
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    /// The service's Prometheus exposition.
    pub async fn metrics(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.expect("GET /metrics").text().await.expect("metrics text")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(svc) = &self.svc {
            svc.shutdown.cancel();
        }
    }
}

pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

pub fn invoice(order_id: Uuid, customer_id: Uuid, number: i64) -> InvoiceIssuedV1 {
    InvoiceIssuedV1 {
        invoice_id: Uuid::now_v7(),
        order_id,
        customer_id,
        number,
        issued_at: OffsetDateTime::now_utc(),
        ..InvoiceIssuedV1::example()
    }
}

pub fn cancellation(order_id: Uuid, customer_id: Uuid, reason: &str, email: Option<&str>) -> OrderCancelledV1 {
    OrderCancelledV1 {
        order_id,
        customer_id,
        reason: reason.into(),
        refund_requested: true,
        contact_email: email.map(str::to_string),
        cancelled_at: OffsetDateTime::now_utc(),
    }
}

pub fn shipment(order_id: Uuid, customer_id: Uuid, tracking_code: &str) -> ShipmentScheduledV1 {
    ShipmentScheduledV1 {
        shipment_id: Uuid::now_v7(),
        order_id,
        customer_id,
        carrier: "Correios".into(),
        service: "SEDEX".into(),
        tracking_code: tracking_code.into(),
        estimated_delivery: time::macros::date!(2026 - 12 - 03),
        scheduled_at: OffsetDateTime::now_utc(),
    }
}

// Reading RFC 5322 messages ---------------------------------------------------

/// A parsed e-mail: its headers (unfolded, encoded words decoded) and its
/// body (transfer encoding undone).
#[derive(Debug, Clone)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").expect("a blank line between headers and body");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a folded line follows a header");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else {
                let (name, value) = line.split_once(':').expect("a header line");
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        for h in &mut headers {
            h.1 = decode_words(&h.1);
        }
        let mail = Mail { headers, body: String::new() };
        let body = match mail.header("Content-Transfer-Encoding").map(str::to_ascii_lowercase).as_deref() {
            Some("quoted-printable") => decode_qp(body),
            Some("base64") => String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(body.split_whitespace().collect::<String>())
                    .expect("base64 body"),
            )
            .expect("utf-8 body"),
            _ => body.to_string(),
        };
        Mail { body, ..mail }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Undoes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let between = &rest[..start];
        if !(last_was_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let Some(end) = parts.get(2).and_then(|p| p.find("?=")) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let text = &parts[2][..end];
        let bytes = match parts[1].to_ascii_lowercase().as_str() {
            "b" => base64::engine::general_purpose::STANDARD.decode(text).expect("base64 word"),
            _ => decode_qp(&text.replace('_', " ")).into_bytes(),
        };
        out.push_str(&String::from_utf8(bytes).expect("utf-8 word"));
        rest = &parts[2][end + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\n", "");
    let mut bytes = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            bytes.push(u8::from_str_radix(hex, 16).expect("=XX"));
            i += 3;
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).expect("utf-8 text")
}

// A fake SMTP server ----------------------------------------------------------

/// What the fake server received in one transaction.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

/// A mail server on 127.0.0.1 speaking just enough SMTP (220, EHLO, MAIL,
/// RCPT, DATA, ".", RSET, NOOP, QUIT). While `failing` it answers MAIL FROM
/// with `451` (try again later), as a server that is having trouble.
#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub failing: Arc<AtomicBool>,
    pub refusals: Arc<Mutex<u32>>,
}

impl FakeSmtp {
    pub async fn start(failing: bool) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake SMTP server");
        let port = listener.local_addr().expect("its address").port();
        let server = FakeSmtp {
            port,
            received: Arc::default(),
            failing: Arc::new(AtomicBool::new(failing)),
            refusals: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(socket).await;
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn refusals(&self) -> u32 {
        *self.refusals.lock().expect("lock")
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake.smtp ESMTP ready\r\n").await?;
        let mut current: Option<Received> = None;
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250 fake.smtp\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                if self.failing.load(Ordering::SeqCst) {
                    *self.refusals.lock().expect("lock") += 1;
                    b"451 4.3.0 temporary failure, try again later\r\n"
                } else {
                    current = Some(Received { mail_from: addr(&line[10..]), rcpt_to: Vec::new(), data: String::new() });
                    b"250 ok\r\n"
                }
            } else if upper.starts_with("RCPT TO:") {
                match current.as_mut() {
                    Some(c) => {
                        c.rcpt_to.push(addr(&line[8..]));
                        b"250 ok\r\n"
                    }
                    None => b"503 need MAIL first\r\n",
                }
            } else if upper == "DATA" {
                write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = String::new();
                while let Some(l) = lines.next_line().await? {
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
                    data.push_str("\r\n");
                }
                if let Some(mut c) = current.take() {
                    c.data = data;
                    self.received.lock().expect("lock").push(c);
                }
                b"250 ok: queued\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if upper.starts_with("RSET") {
                current = None;
                b"250 ok\r\n"
            } else {
                b"250 ok\r\n"
            };
            write.write_all(reply).await?;
        }
        Ok(())
    }
}

fn addr(s: &str) -> String {
    s.trim().trim_start_matches('<').split('>').next().unwrap_or_default().to_string()
}
