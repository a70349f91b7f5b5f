//! Checkout and the order saga, end to end (issue 4's acceptance): cart →
//! orders → catalog → payments → psp-sim, then invoices, shipping and
//! notifications, everything real except the two simulators.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use platform::testing::{Answer, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::Feira;
use crate::shop::{Shop, WAIT, of_kind, order_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_confirmed_charged_once_invoiced_mailed_and_shipped() {
    let shop = Shop::start().await;
    let mug = shop.product(3590, 10).await;
    let ana = Uuid::now_v7();

    shop.add_to_cart(ana, &mug, 2).await;
    let (quote, q) = shop.quote(2).await;
    let answer = shop.checkout(ana, quote, json!({"type": "card", "token": "tok_visa"}), "checkout-1").await;
    let id = order_id(&answer);
    assert_eq!(answer.json["status"], "PENDING");
    assert_eq!(answer.location(), Some(format!("/orders/{id}").as_str()));
    let cart = Answer::of(shop.call(Method::GET, "cart", "/cart", ana, "customer").send().await).await;
    assert_eq!(cart.expect(StatusCode::OK)["items"], json!([]), "the cart is emptied once the order exists");

    let order = shop.settled(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let total = 2 * 3590 + q["price_cents"].as_i64().unwrap();
    assert_eq!(order["total_cents"], total, "items plus freight");

    let charges = shop.charges(id).await;
    assert_eq!(charges.len(), 1, "exactly one charge: {charges:?}");
    assert_eq!(charges[0]["status"], "succeeded");
    assert_eq!(charges[0]["amount_cents"], total);
    let on_hand = eventually(WAIT, "the sale to leave the shelf", || async {
        let s = shop.stock(&mug).await;
        (s.1 == 0).then_some(s)
    })
    .await;
    assert_eq!(on_hand, (8, 0, 8), "stock dropped by the ordered quantity");

    let invoices = eventually(WAIT, "the invoice", || async {
        let v = shop.invoices(id).await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["total_cents"], total);
    let shipment = eventually(WAIT, "the shipment's tracking code", || async {
        let s = shop.shipments(id).await.pop()?;
        s["tracking_code"].is_string().then_some(s)
    })
    .await;
    assert!(shipment["tracking_code"].as_str().unwrap().ends_with("BR"), "{shipment}");
    let emails = eventually(WAIT, "the invoice and shipment e-mails to be sent", || async {
        let e = shop.emails(id).await;
        (e.len() >= 2 && e.iter().all(|m| m["status"] == "sent")).then_some(e)
    })
    .await;
    assert_eq!(of_kind(&emails, "invoice_issued").len(), 1, "one invoice e-mail: {emails:?}");
    assert_eq!(of_kind(&emails, "shipment_scheduled").len(), 1);
    let eml = std::fs::read_dir(&shop.mail_dir).expect("the mail folder").count();
    assert_eq!(eml, 2, "one .eml file per e-mail");
    let timeline = shop.admin_get("orders", &format!("/orders/{id}/timeline")).await;
    let steps: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["step"].as_str().unwrap()).collect();
    for step in ["placed", "reserve_stock", "charge_payment", "confirmed"] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_cancels_with_no_charge_no_invoice_and_a_cancellation_email() {
    let shop = Shop::start().await;
    let mug = shop.product(3590, 5).await;
    let ana = Uuid::now_v7();
    shop.add_to_cart(ana, &mug, 2).await;
    // Someone else buys 4 of the 5 before Ana checks out.
    let bob = shop.buy(Uuid::now_v7(), &mug, 4, "tok_visa").await;
    assert_eq!(shop.settled(bob).await["status"], "CONFIRMED");

    let (quote, _) = shop.quote(2).await;
    let id = order_id(&shop.checkout(ana, quote, json!({"type": "card", "token": "tok_visa"}), "k").await);

    let order = shop.settled(id).await;
    assert_eq!((order["status"].as_str(), order["cancel_reason"].as_str()), (Some("CANCELLED"), Some("out_of_stock")));
    assert!(shop.charges(id).await.is_empty(), "no charge");
    let emails = eventually(WAIT, "the cancellation e-mail", || async {
        let e = shop.emails(id).await;
        e.iter().any(|m| m["status"] == "sent").then_some(e)
    })
    .await;
    assert_eq!(of_kind(&emails, "order_cancelled").len(), 1, "{emails:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(shop.invoices(id).await.is_empty(), "no invoice for a cancelled order");
    assert_eq!(shop.stock(&mug).await, (1, 0, 1));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_releases_the_stock_and_cancels_without_an_invoice() {
    let shop = Shop::start().await;
    let mug = shop.product(3590, 10).await;

    let id = shop.buy(Uuid::now_v7(), &mug, 3, "tok_chargeDeclined").await;

    let order = shop.settled(id).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["cancel_reason"], "payment_declined");
    let stock = eventually(WAIT, "the reservation to be released", || async {
        let s = shop.stock(&mug).await;
        (s.1 == 0).then_some(s)
    })
    .await;
    assert_eq!(stock, (10, 0, 10), "every unit back on sale");
    let charges = shop.charges(id).await;
    assert!(charges.iter().all(|c| c["status"] == "failed"), "nothing captured: {charges:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(shop.invoices(id).await.is_empty());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_times_out_and_then_succeeds_charges_exactly_once() {
    let shop = Shop::start().await;
    let mug = shop.product(1000, 10).await;
    // The provider charges, then hangs past payments' 1 s timeout, twice.
    shop.faults("psp-sim", json!({"fail_next": 2, "fail_mode": "timeout_after", "hang_ms": 2500})).await;

    let id = shop.buy(Uuid::now_v7(), &mug, 1, "tok_visa").await;

    assert_eq!(shop.settled(id).await["status"], "CONFIRMED");
    let charges = shop.charges(id).await;
    assert_eq!(charges.len(), 1, "the idempotency key held across three attempts: {charges:?}");
    let faults = shop.admin_get("psp-sim", "/admin/faults").await;
    assert_eq!(faults["failed_total"], 2, "both lost answers really happened");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_longer_than_the_saga_cancels_without_charging_and_the_breaker_recovers() {
    let shop = Shop::start_with(
        |env| {
            // Long enough for the order placed after the recovery: its
            // charge may meet the breaker still open (2 s) and then wait
            // for payments' backoff (200 ms doubling), more so on a loaded
            // machine; 4 s made that order time out now and then.
            env.set("FEIRA_ORDERS_PAYMENT_TIMEOUT", "8s");
        },
        &[],
    )
    .await;
    let mug = shop.product(1000, 10).await;
    shop.faults("psp-sim", json!({"outage": true})).await;

    let ids =
        [shop.buy(Uuid::now_v7(), &mug, 1, "tok_visa").await, shop.buy(Uuid::now_v7(), &mug, 2, "tok_visa").await];
    let breaker = r#"circuit_breaker_state{breaker="psp"}"#;
    eventually(WAIT, "the psp breaker to open", || async {
        (shop.metric("payments", breaker).await? == 1.0).then_some(())
    })
    .await;
    for id in ids {
        let order = shop.settled(id).await;
        assert_eq!((order["status"].as_str(), order["cancel_reason"].as_str()), (Some("CANCELLED"), Some("timeout")));
    }
    eventually(WAIT, "the stock released", || async { (shop.stock(&mug).await == (10, 0, 10)).then_some(()) }).await;

    shop.faults("psp-sim", json!({"outage": false})).await;
    let after = shop.buy(Uuid::now_v7(), &mug, 1, "tok_visa").await;
    assert_eq!(shop.settled(after).await["status"], "CONFIRMED", "new orders succeed after recovery");
    for id in ids {
        assert!(shop.charges(id).await.is_empty(), "the timed-out orders were never charged");
    }
    eventually(WAIT, "the breaker to close", || async {
        (shop.metric("payments", breaker).await? == 0.0).then_some(())
    })
    .await;
    let moved = |to: &str| format!(r#"circuit_breaker_transitions_total{{breaker="psp",to="{to}"}}"#);
    for to in ["open", "half_open", "closed"] {
        assert!(shop.metric("payments", &moved(to)).await.unwrap_or(0.0) >= 1.0, "the breaker went {to}");
    }
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_killed_between_the_providers_charge_and_its_own_write_charges_exactly_once() {
    // payments runs as its own process, so it can really be killed.
    let shop = Shop::start_with(|_| {}, &["payments"]).await;
    let mut payments = Feira::start(&shop.env, &["run", "payments"], &["payments"]).await;
    let mug = shop.product(1000, 10).await;
    // The provider records the charge, then hangs: the answer never arrives.
    shop.faults("psp-sim", json!({"fail_next": 1, "fail_mode": "timeout_after", "hang_ms": 20000})).await;
    let id = shop.buy(Uuid::now_v7(), &mug, 1, "tok_visa").await;
    eventually(WAIT, "the provider to record the charge", || async {
        (!shop.charges(id).await.is_empty()).then_some(())
    })
    .await;

    payments.kill9().await;
    let mut payments = Feira::start(&shop.env, &["run", "payments"], &["payments"]).await;

    assert_eq!(shop.settled(id).await["status"], "CONFIRMED");
    assert_eq!(shop.charges(id).await.len(), 1, "charged exactly once");
    let status = payments.terminate().await;
    assert!(status.success());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_carrier_down_quotes_answer_from_the_fallback_and_the_breaker_closes_again() {
    let shop = Shop::start().await;
    shop.faults("carrier-sim", json!({"outage": true})).await;
    let breaker = r#"circuit_breaker_state{breaker="carrier"}"#;

    for _ in 0..4 {
        let (_, q) = shop.quote(1).await;
        assert_eq!(q["source"], "fallback", "{q}");
        assert!(q["price_cents"].as_i64().unwrap() > 0);
    }
    assert_eq!(shop.metric("shipping", breaker).await, Some(1.0), "open after consecutive failures");

    shop.faults("carrier-sim", json!({"outage": false})).await;
    let q = eventually(WAIT, "a quote from the carrier again", || async {
        let (_, q) = shop.quote(1).await;
        (q["source"] == "carrier").then_some(q)
    })
    .await;
    assert!(q["price_cents"].as_i64().unwrap() > 0);
    assert_eq!(shop.metric("shipping", breaker).await, Some(0.0), "closed by the half-open probe");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_checkout_twice_with_one_key_places_one_order() {
    let shop = Shop::start().await;
    let mug = shop.product(1000, 10).await;
    let ana = Uuid::now_v7();
    shop.add_to_cart(ana, &mug, 1).await;
    let (quote, _) = shop.quote(1).await;
    let pay = json!({"type": "card", "token": "tok_visa"});

    let first = shop.checkout(ana, quote, pay.clone(), "same-key").await;
    let second = shop.checkout(ana, quote, pay, "same-key").await;

    assert_eq!(order_id(&first), order_id(&second));
    let mine = shop.admin_get("orders", &format!("/orders?customer_id={ana}")).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "one order");
    assert_eq!(shop.settled(order_id(&first)).await["status"], "CONFIRMED");
    assert_eq!(shop.charges(order_id(&first)).await.len(), 1);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_customers_racing_for_the_last_five_units_never_oversell() {
    let shop = Shop::start().await;
    let mug = shop.product(1000, 5).await;
    let customers: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    for c in &customers {
        shop.add_to_cart(*c, &mug, 1).await;
    }
    let (quote, _) = shop.quote(1).await;

    let shop_ref = &shop;
    let answers = futures_util::future::join_all(customers.iter().map(|c| async move {
        let key = format!("race-{c}");
        shop_ref.checkout(*c, quote, json!({"type": "card", "token": "tok_visa"}), &key).await
    }))
    .await;
    let ids: Vec<Uuid> = answers.iter().map(order_id).collect();

    let mut confirmed = 0;
    for id in &ids {
        let order = shop.settled(*id).await;
        match order["status"].as_str() {
            Some("CONFIRMED") => confirmed += 1,
            _ => assert_eq!(order["cancel_reason"], "out_of_stock", "{order}"),
        }
    }
    assert_eq!(confirmed, 5, "exactly the five units were sold");
    let stock = eventually(WAIT, "no unit left held", || async {
        let s = shop.stock(&mug).await;
        (s.1 == 0).then_some(s)
    })
    .await;
    assert_eq!(stock, (0, 0, 0), "no oversell, nothing left reserved");
    let mut charged = 0;
    for id in &ids {
        charged += shop.charges(*id).await.len();
    }
    assert_eq!(charged, 5, "only the confirmed orders were charged");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pix_payment_with_a_forged_callback_never_confirms_the_order() {
    let shop = Shop::start().await;
    let mug = shop.product(1000, 10).await;
    let ana = Uuid::now_v7();
    shop.add_to_cart(ana, &mug, 1).await;
    let (quote, _) = shop.quote(1).await;
    let id = order_id(&shop.checkout(ana, quote, json!({"type": "pix"}), "pix-1").await);
    let charge = eventually(WAIT, "the pending PIX charge", || async {
        let o = shop.order(id).await;
        (o["saga_step"] == "awaiting_pix").then_some(())?;
        shop.charges(id).await.pop()
    })
    .await;
    assert_eq!(charge["status"], "pending");

    let mut paid = charge.clone();
    paid["status"] = json!("succeeded");
    let body = json!({"type": "charge.succeeded", "data": paid}).to_string();
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged = shop
        .client
        .post(shop.url("payments", "/payments/webhooks/psp"))
        .header("content-type", "application/json")
        .header("psp-signature", format!("t={t},v1={}", "ab".repeat(32)))
        .body(body)
        .send()
        .await
        .expect("POST the forged callback");
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let order = shop.order(id).await;
    assert_eq!((order["status"].as_str(), order["saga_step"].as_str()), (Some("PENDING"), Some("awaiting_pix")));

    // The customer really pays: the provider's signed callback confirms it.
    let pay = shop.client.post(shop.url("psp-sim", &format!("/admin/pix/{}/pay", charge["id"].as_str().unwrap())));
    assert_eq!(pay.send().await.expect("pay").status(), StatusCode::ACCEPTED);
    assert_eq!(shop.settled(id).await["status"], "CONFIRMED");
    assert_eq!(shop.charges(id).await.len(), 1);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancels_a_confirmed_order_before_it_ships_and_gets_the_money_and_the_stock_back() {
    // No carrier: the shipment waits, so the order has not shipped.
    let shop = Shop::start_with(|_| {}, &[]).await;
    shop.faults("carrier-sim", json!({"outage": true})).await;
    let mug = shop.product(1000, 10).await;
    let ana = Uuid::now_v7();
    let id = shop.buy(ana, &mug, 2, "tok_visa").await;
    assert_eq!(shop.settled(id).await["status"], "CONFIRMED");
    eventually(WAIT, "the sale", || async { (shop.stock(&mug).await == (8, 0, 8)).then_some(()) }).await;

    let cancel =
        Answer::of(shop.call(Method::POST, "orders", &format!("/orders/{id}/cancel"), ana, "customer").send().await)
            .await;
    assert_eq!(cancel.expect(StatusCode::OK)["cancel_reason"], "customer_request");

    eventually(WAIT, "the units back on the shelf", || async { (shop.stock(&mug).await == (10, 0, 10)).then_some(()) })
        .await;
    let refunded = eventually(WAIT, "the refund", || async {
        let c = shop.charges(id).await.pop()?;
        (c["refunded_cents"] == c["amount_cents"]).then_some(c)
    })
    .await;
    assert_eq!(refunded["status"], "succeeded");
    assert_eq!(shop.charges(id).await.len(), 1);
    shop.stop().await;
}
