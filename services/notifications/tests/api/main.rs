//! Integration tests of the notifications service against the real
//! PostgreSQL and RabbitMQ: each test gets its own database, broker namespace
//! and mail folder, runs the real service (HTTP, consumers, delivery worker)
//! and publishes events the way the other services' relays do. The outside
//! mail server is a tiny SMTP server on 127.0.0.1 ([`helpers::FakeSmtp`]).

mod helpers;

use std::time::Duration;

use contracts::Envelope;
use helpers::{As, FakeSmtp, Harness, Mail, WAIT, cancellation, eml_files, invoice, shipment};
use platform::messaging::dlq;
use platform::testing::{self, eventually};
use reqwest::StatusCode;
use uuid::Uuid;

fn address() -> String {
    format!("ana.{}@example.com", Uuid::new_v4().simple())
}

fn read_mail(path: &std::path::Path) -> Mail {
    Mail::parse(&std::fs::read_to_string(path).expect("read the .eml"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_is_mailed_once_to_the_orders_contact_email() {
    let h = Harness::start().await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let to = address();
    h.place(order_id, customer, Some(&to)).await;
    let issued = Envelope::new(invoice(order_id, customer, 4217));
    h.publish(&issued).await;

    let emails = h.wait_emails(order_id, 1, "sent").await;
    let email = &emails[0];
    assert_eq!(email.kind, "invoice_issued");
    assert_eq!(email.to_address.as_deref(), Some(to.as_str()));
    assert_eq!(email.subject, "Sua nota fiscal nº 4217");
    assert_eq!(email.attempts, 1);

    // Exactly one file, named after the e-mail, an RFC 5322 message.
    let files = h.eml_files();
    assert_eq!(files, vec![h.mail_path().join(format!("{}.eml", email.id))]);
    let mail = read_mail(&files[0]);
    assert_eq!(mail.header("To"), Some(to.as_str()));
    assert_eq!(mail.header("From"), Some("feira <no-reply@feira.local>"));
    assert_eq!(mail.header("Subject"), Some("Sua nota fiscal nº 4217"));
    assert_eq!(mail.header("Message-ID"), Some(format!("<{}@feira.local>", email.id).as_str()));
    assert!(mail.header("Date").is_some());
    assert!(mail.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", mail.headers);
    assert!(mail.body.contains("Nota fiscal: nº 4217 (série 1)"), "{}", mail.body);
    assert!(mail.body.contains("R$ 39,80"), "{}", mail.body);
    assert!(mail.body.contains(&order_id.to_string()), "{}", mail.body);
    let leftovers: Vec<_> = std::fs::read_dir(h.mail_path()).expect("the mail folder").collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");

    // The customer and admins see it over HTTP; nobody else does.
    let (status, body) = h.get(&format!("/emails?order_id={order_id}"), As::Customer(customer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["id"], email.id.to_string());
    assert_eq!(items[0]["kind"], "invoice_issued");
    assert_eq!(items[0]["status"], "sent");
    assert_eq!(items[0]["to"], to);
    assert_eq!(items[0]["source_message_id"], issued.message_id.to_string());
    assert!(items[0]["sent_at"].is_string());
    let (status, one) = h.get(&format!("/emails/{}", email.id), As::Customer(customer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, items[0]);
    let (status, admin) = h.get(&format!("/emails?order_id={order_id}&kind=invoice_issued"), As::Admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin["items"], body["items"]);
    let (_, none) = h.get(&format!("/emails?order_id={order_id}&kind=order_cancelled"), As::Admin).await;
    assert_eq!(none["items"], serde_json::json!([]));
    let stranger = Uuid::now_v7();
    let (status, theirs) = h.get(&format!("/emails?order_id={order_id}"), As::Customer(stranger)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["items"], serde_json::json!([]));
    let (status, _) = h.get(&format!("/emails/{}", email.id), As::Customer(stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.get(&format!("/emails/{}", Uuid::now_v7()), As::Admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.get("/emails", As::Anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = h.get("/emails?kind=spam", As::Admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem.to_string().contains("kind"), "{problem}");
    let (status, _) = h.get("/emails?order_id=not-a-uuid", As::Admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let metrics = h.metrics().await;
    assert!(metrics.contains(r#"notifications_emails_total{kind="invoice_issued",status="sent"} 1"#), "{metrics}");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_invoice_event_sends_nothing_more() {
    let h = Harness::start().await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    h.place(order_id, customer, Some(&address())).await;
    let issued = Envelope::new(invoice(order_id, customer, 7));
    h.publish(&issued).await;
    h.publish(&issued).await;
    h.wait_emails(order_id, 1, "sent").await;
    h.barrier().await;
    // Once more after it was sent.
    h.publish(&issued).await;
    h.barrier().await;

    let emails = h.wait_emails(order_id, 1, "sent").await;
    assert_eq!(emails[0].attempts, 1);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(issued.message_id)
        .fetch_one(&h.db)
        .await
        .expect("count the inbox");
    assert_eq!(inbox, 1);
    // The barriers' two e-mails and this one.
    let db = h.db.clone();
    eventually(WAIT, "every e-mail sent", || {
        let db = db.clone();
        async move {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM emails WHERE status <> 'sent'").fetch_one(&db).await.ok()?;
            (pending == 0).then_some(())
        }
    })
    .await;
    let files = h.eml_files();
    assert_eq!(files.len(), 3, "{files:?}");
    let mine: Vec<_> = files.iter().filter(|f| read_mail(f).body.contains("nº 7 ")).collect();
    assert_eq!(mine.len(), 1, "{files:?}");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_order_is_mailed_once_with_the_reason_in_words() {
    let h = Harness::start().await;
    // The event carries the address: no OrderPlacedV1 needed.
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let to = address();
    let cancelled = Envelope::new(cancellation(order_id, customer, "out_of_stock", Some(&to)));
    h.publish(&cancelled).await;
    h.publish(&cancelled).await;
    let emails = h.wait_emails(order_id, 1, "sent").await;
    assert_eq!(emails[0].kind, "order_cancelled");
    let mail = read_mail(&h.mail_path().join(format!("{}.eml", emails[0].id)));
    assert_eq!(mail.header("To"), Some(to.as_str()));
    assert_eq!(mail.header("Subject"), Some("Seu pedido foi cancelado"));
    assert!(mail.body.contains("foi cancelado porque um ou mais produtos ficaram sem estoque."), "{}", mail.body);
    assert!(mail.body.contains("será estornado"), "{}", mail.body);

    // Without an address in the event, the one the order was placed with.
    let (other, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let placed_to = address();
    h.place(other, customer, Some(&placed_to)).await;
    h.publish(&Envelope::new(cancellation(other, customer, "payment_declined", None))).await;
    let emails = h.wait_emails(other, 1, "sent").await;
    let mail = read_mail(&h.mail_path().join(format!("{}.eml", emails[0].id)));
    assert_eq!(mail.header("To"), Some(placed_to.as_str()));
    assert!(mail.body.contains("porque o pagamento foi recusado."), "{}", mail.body);
    assert_eq!(h.eml_files().len(), 2);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_shipment_is_mailed_once_with_its_tracking_code() {
    let h = Harness::start().await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let to = address();
    h.place(order_id, customer, Some(&to)).await;
    let scheduled = Envelope::new(shipment(order_id, customer, "BR123456789BR"));
    h.publish(&scheduled).await;
    h.publish(&scheduled).await;
    let emails = h.wait_emails(order_id, 1, "sent").await;
    assert_eq!(emails[0].kind, "shipment_scheduled");
    assert_eq!(h.eml_files().len(), 1);
    let mail = read_mail(&h.eml_files()[0]);
    assert_eq!(mail.header("To"), Some(to.as_str()));
    assert_eq!(mail.header("Subject"), Some("Seu pedido foi enviado — código de rastreio BR123456789BR"));
    assert!(mail.body.contains("Código de rastreio: BR123456789BR"), "{}", mail.body);
    assert!(mail.body.contains("Previsão de entrega: 03/12/2026"), "{}", mail.body);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_a_contact_email_gets_its_emails_skipped() {
    let h = Harness::start().await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    h.place(order_id, customer, None).await;
    h.publish(&Envelope::new(invoice(order_id, customer, 3))).await;
    h.publish(&Envelope::new(shipment(order_id, customer, "BR000000001BR"))).await;
    let emails = h.wait_emails(order_id, 2, "skipped").await;
    assert!(emails.iter().all(|e| e.to_address.is_none() && e.attempts == 0), "{emails:?}");
    assert!(emails.iter().all(|e| e.last_error.as_deref() == Some("the order has no contact e-mail")));
    h.barrier().await;
    h.wait_emails(order_id, 2, "skipped").await;
    // Only the barrier's e-mail reached the mail folder.
    let db = h.db.clone();
    eventually(WAIT, "the barrier's e-mail sent", || {
        let db = db.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM emails WHERE status = 'sent'").fetch_one(&db).await.ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    assert_eq!(h.eml_files().len(), 1);
    let (status, body) = h.get(&format!("/emails?order_id={order_id}"), As::Admin).await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<&str> =
        body["items"].as_array().expect("items").iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, vec!["skipped", "skipped"]);
    let metrics = h.metrics().await;
    assert!(metrics.contains(r#"notifications_emails_total{kind="invoice_issued",status="skipped"} 1"#), "{metrics}");
    h.close().await;
}

/// The invoice's event may overtake the order's (they travel on different
/// queues): it fails as unavailable, waits in the retry queue, and is mailed
/// once the order is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_that_arrives_before_its_order_is_mailed_once_the_order_is_known() {
    let h = Harness::start_with(|env| {
        env.set("FEIRA_RETRY_DELAYS", "2s,4s,8s");
    })
    .await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let issued = Envelope::new(invoice(order_id, customer, 11));
    h.publish(&issued).await;

    // It failed once and waits for its retry.
    let consumer = notifications::events::invoice_issued::CONSUMER.name;
    let retry = h.broker.topology().retry_queue(consumer, Duration::from_secs(2));
    let broker = h.broker.clone();
    eventually(WAIT, "the invoice in the retry queue", || {
        let (broker, retry) = (broker.clone(), retry.clone());
        async move { (testing::queue_depth(&broker, &retry).await? == 1).then_some(()) }
    })
    .await;
    assert!(h.emails_of(order_id).await.is_empty());

    let to = address();
    h.place(order_id, customer, Some(&to)).await;
    let emails = h.wait_emails(order_id, 1, "sent").await;
    assert_eq!(emails[0].to_address.as_deref(), Some(to.as_str()));
    assert_eq!(h.eml_files().len(), 1);
    let dead = dlq::list(&h.broker, notifications::events::CONSUMERS, 10).await.expect("list the DLQ");
    assert!(dead.is_empty(), "{dead:?}");
    h.close().await;
}

/// When the order never becomes known, the invoice is parked in the DLQ
/// after the retries; an operator replays it once the order has arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_whose_order_stays_unknown_is_parked_and_mailed_after_a_replay() {
    let h = Harness::start().await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let issued = Envelope::new(invoice(order_id, customer, 12));
    h.publish(&issued).await;
    let consumers = notifications::events::CONSUMERS;
    let broker = h.broker.clone();
    let parked = eventually(WAIT, "the invoice in the DLQ", || {
        let broker = broker.clone();
        async move {
            let l = dlq::list(&broker, consumers, 10).await.ok()?;
            (l.len() == 1).then_some(l)
        }
    })
    .await;
    assert_eq!(parked[0].message_id, issued.message_id.to_string());
    assert_eq!(parked[0].attempts, 3, "first try and two retries: {:?}", parked[0]);
    assert!(parked[0].error.contains("not known yet"), "{}", parked[0].error);
    assert!(h.emails_of(order_id).await.is_empty());

    h.place(order_id, customer, Some(&address())).await;
    h.barrier().await;
    let id = issued.message_id.to_string();
    let replayed = dlq::replay(&h.broker, consumers, Some(&id), "test").await.expect("replay");
    assert_eq!(replayed.len(), 1);
    h.wait_emails(order_id, 1, "sent").await;
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_smtp_server_set_the_email_goes_to_it_once() {
    let smtp = FakeSmtp::start(false).await;
    let url = smtp.url();
    let h = Harness::start_with(|env| {
        env.set("FEIRA_NOTIFICATIONS_SMTP_URL", url);
        env.set("FEIRA_NOTIFICATIONS_FROM", "Loja feira <vendas@loja.example>");
    })
    .await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let to = address();
    h.place(order_id, customer, Some(&to)).await;
    let issued = Envelope::new(invoice(order_id, customer, 88));
    h.publish(&issued).await;
    h.publish(&issued).await;
    let emails = h.wait_emails(order_id, 1, "sent").await;

    let received = smtp.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let r = &received[0];
    assert_eq!(r.mail_from, "vendas@loja.example");
    assert_eq!(r.rcpt_to, vec![to.clone()]);
    let mail = Mail::parse(&r.data);
    assert_eq!(mail.header("To"), Some(to.as_str()));
    assert_eq!(mail.header("From"), Some("\"Loja feira\" <vendas@loja.example>"));
    assert_eq!(mail.header("Message-ID"), Some(format!("<{}@loja.example>", emails[0].id).as_str()));
    assert_eq!(mail.header("Subject"), Some("Sua nota fiscal nº 88"));
    assert!(mail.body.contains("nº 88"), "{}", mail.body);
    assert!(eml_files(&h.mail_path()).is_empty(), "nothing is written to the mail folder");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smtp_server_is_retried_and_gets_the_email_when_it_recovers() {
    let smtp = FakeSmtp::start(true).await;
    let url = smtp.url();
    let h = Harness::start_with(|env| {
        env.set("FEIRA_NOTIFICATIONS_SMTP_URL", url);
        env.set("FEIRA_NOTIFICATIONS_MAX_ATTEMPTS", "1000");
    })
    .await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    let to = address();
    h.place(order_id, customer, Some(&to)).await;
    h.publish(&Envelope::new(shipment(order_id, customer, "BR999999999BR"))).await;

    // Refused a few times, still pending, the reason recorded.
    let db = h.db.clone();
    let row = eventually(WAIT, "three refused attempts", || {
        let db = db.clone();
        async move {
            let row: (String, i32, Option<String>) =
                sqlx::query_as("SELECT status, attempts, last_error FROM emails WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_optional(&db)
                    .await
                    .ok()??;
            (row.1 >= 3).then_some(row)
        }
    })
    .await;
    assert_eq!(row.0, "pending");
    assert!(row.2.as_deref().is_some_and(|e| e.contains("451")), "{row:?}");
    assert!(smtp.refusals() >= 3);
    assert!(smtp.received().is_empty());

    smtp.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let emails = h.wait_emails(order_id, 1, "sent").await;
    let received = smtp.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].rcpt_to, vec![to]);
    assert!(Mail::parse(&received[0].data).body.contains("BR999999999BR"));
    assert!(emails[0].attempts > 3);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_the_smtp_server_keeps_refusing_ends_failed_after_the_last_attempt() {
    let smtp = FakeSmtp::start(true).await;
    let url = smtp.url();
    let h = Harness::start_with(|env| {
        env.set("FEIRA_NOTIFICATIONS_SMTP_URL", url);
        env.set("FEIRA_NOTIFICATIONS_MAX_ATTEMPTS", "3");
    })
    .await;
    let (order_id, customer) = (Uuid::now_v7(), Uuid::now_v7());
    h.place(order_id, customer, Some(&address())).await;
    h.publish(&Envelope::new(invoice(order_id, customer, 5))).await;
    let emails = h.wait_emails(order_id, 1, "failed").await;
    assert_eq!(emails[0].attempts, 3);
    assert!(emails[0].last_error.as_deref().is_some_and(|e| e.contains("451")), "{emails:?}");
    assert_eq!(smtp.refusals(), 3);
    // No more attempts after the last one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(smtp.refusals(), 3);
    let metrics = h.metrics().await;
    assert!(metrics.contains(r#"notifications_emails_total{kind="invoice_issued",status="failed"} 1"#), "{metrics}");
    h.close().await;
}
