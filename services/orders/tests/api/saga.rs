//! The order saga against the real broker: the test plays the catalog and
//! payments (publishing their replies) and watches the commands and events
//! orders sends.

use contracts::Envelope;
use contracts::Message;
use contracts::catalog::{
    CommitStockV1, ReleaseStockV1, ReserveStockV1, StockCommittedV1, StockRejectedV1, StockReservedV1,
};
use contracts::orders::{OrderCancelledV1, OrderConfirmedV1};
use contracts::payments::{ChargePaymentV1, PaymentFailedV1, PaymentPendingV1, PaymentSucceededV1, RefundPaymentV1};
use contracts::shipping::ShipmentScheduledV1;
use platform::testing::{Subscription, eventually, publish, subscribe};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::helpers::{Answer, Caller, TestApp, spawn_app, spawn_app_with, valid_order};

/// Every command and event orders sends, in one private queue.
async fn watch(app: &TestApp) -> Subscription {
    subscribe(
        &app.broker(),
        &[
            ReserveStockV1::ROUTING_KEY,
            ChargePaymentV1::ROUTING_KEY,
            CommitStockV1::ROUTING_KEY,
            ReleaseStockV1::ROUTING_KEY,
            RefundPaymentV1::ROUTING_KEY,
            OrderConfirmedV1::ROUTING_KEY,
            OrderCancelledV1::ROUTING_KEY,
        ],
    )
    .await
}

/// The next message's type and payload.
async fn next(sub: &Subscription) -> (String, Value) {
    let e: Envelope<Value> = sub.next_envelope().await;
    (e.message_type, e.payload)
}

/// The types of the next `n` messages, sorted (their order across one
/// transaction is not part of the contract).
async fn next_types(sub: &Subscription, n: usize) -> Vec<String> {
    let mut types = Vec::new();
    for _ in 0..n {
        types.push(next(sub).await.0);
    }
    types.sort();
    types
}

async fn place(app: &TestApp, who: &Caller) -> Uuid {
    let answer = app.place_order(who, &valid_order(who.id())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    answer.json["id"].as_str().unwrap().parse().unwrap()
}

async fn status(app: &TestApp, who: &Caller, id: Uuid) -> (String, Value) {
    let o = app.get(&format!("/orders/{id}"), who).await;
    (o.json["status"].as_str().unwrap_or_default().to_string(), o.json.clone())
}

async fn wait_status(app: &TestApp, who: &Caller, id: Uuid, want: &str) -> Value {
    eventually(20, &format!("order {id} to be {want}"), || async {
        let (s, json) = status(app, who, id).await;
        (s == want).then_some(json)
    })
    .await
}

fn reserved(order_id: Uuid) -> Envelope<StockReservedV1> {
    Envelope::new(StockReservedV1 {
        order_id,
        lines: vec![],
        expires_at: OffsetDateTime::now_utc() + Duration::minutes(15),
    })
}

fn succeeded(order_id: Uuid) -> Envelope<PaymentSucceededV1> {
    Envelope::new(PaymentSucceededV1 {
        order_id,
        payment_id: Uuid::now_v7(),
        provider_charge_id: "ch_1".into(),
        amount_cents: 3980,
        currency: "BRL".into(),
        method: "card".into(),
        captured_at: OffsetDateTime::now_utc(),
    })
}

fn failed(order_id: Uuid, reason: &str) -> Envelope<PaymentFailedV1> {
    Envelope::new(PaymentFailedV1 {
        order_id,
        payment_id: Uuid::now_v7(),
        reason: reason.into(),
        detail: "test".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_reserves_charges_and_confirms_with_a_timeline() {
    let app = spawn_app().await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;

    let (t, reserve) = next(&sub).await;
    assert_eq!(t, ReserveStockV1::TYPE);
    assert_eq!(reserve["order_id"], id.to_string());
    assert_eq!(reserve["lines"][0]["quantity"], 2, "the order's quantities are reserved");
    publish(&app.broker(), &reserved(id)).await;

    let (t, charge) = next(&sub).await;
    assert_eq!(t, ChargePaymentV1::TYPE);
    assert_eq!(charge["amount_cents"], 3980);
    assert_eq!(charge["method"]["type"], "card");
    publish(&app.broker(), &succeeded(id)).await;

    assert_eq!(next_types(&sub, 2).await, [CommitStockV1::TYPE, OrderConfirmedV1::TYPE]);
    let order = wait_status(&app, &alice, id, "CONFIRMED").await;
    assert_eq!(order["saga_step"], "done");
    publish(&app.broker(), &Envelope::new(StockCommittedV1 { order_id: id })).await;

    let timeline = eventually(20, "the commit in the timeline", || async {
        let t = app.get(&format!("/orders/{id}/timeline"), &alice).await;
        let steps: Vec<String> = t.json["entries"]
            .as_array()?
            .iter()
            .map(|e| format!("{}:{}", e["step"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        steps.iter().any(|s| s.starts_with("commit_stock")).then_some(steps)
    })
    .await;
    assert_eq!(
        timeline,
        [
            "placed:PENDING",
            "reserve_stock:requested",
            "reserve_stock:reserved",
            "charge_payment:requested",
            "charge_payment:captured",
            "confirmed:stock committed, payment captured",
            "commit_stock:committed",
        ]
    );
    let other = app.get(&format!("/orders/{id}/timeline"), &Caller::customer()).await;
    other.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_cancels_without_charging() {
    let app = spawn_app().await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    assert_eq!(next(&sub).await.0, ReserveStockV1::TYPE);

    let rejected = StockRejectedV1 { order_id: id, reason: "out_of_stock".into(), short_lines: vec![] };
    publish(&app.broker(), &Envelope::new(rejected)).await;

    let (t, cancelled) = next(&sub).await;
    assert_eq!(t, OrderCancelledV1::TYPE);
    assert_eq!(cancelled["reason"], "out_of_stock");
    assert_eq!(cancelled["contact_email"], "ana@example.com");
    let order = wait_status(&app, &alice, id, "CANCELLED").await;
    assert_eq!(order["cancel_reason"], "out_of_stock");
    assert!(sub.try_next().await.is_none(), "no charge, no other command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_releases_the_stock_and_cancels() {
    let app = spawn_app().await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    next(&sub).await;
    publish(&app.broker(), &reserved(id)).await;
    assert_eq!(next(&sub).await.0, ChargePaymentV1::TYPE);

    publish(&app.broker(), &failed(id, "declined")).await;

    assert_eq!(next_types(&sub, 2).await, [ReleaseStockV1::TYPE, OrderCancelledV1::TYPE]);
    let order = wait_status(&app, &alice, id, "CANCELLED").await;
    assert_eq!(order["cancel_reason"], "payment_declined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_never_answers_times_out_and_compensates() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_ORDERS_PAYMENT_TIMEOUT", "1s");
        env.set("FEIRA_ORDERS_SAGA_SWEEP", "100ms");
    })
    .await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    next(&sub).await;
    publish(&app.broker(), &reserved(id)).await;
    assert_eq!(next(&sub).await.0, ChargePaymentV1::TYPE);

    assert_eq!(
        next_types(&sub, 3).await,
        [ReleaseStockV1::TYPE, OrderCancelledV1::TYPE, RefundPaymentV1::TYPE],
        "stock released and the charge voided"
    );
    let order = wait_status(&app, &alice, id, "CANCELLED").await;
    assert_eq!(order["cancel_reason"], "timeout");

    // The provider answers after all: the money goes back.
    publish(&app.broker(), &succeeded(id)).await;
    assert_eq!(next(&sub).await.0, RefundPaymentV1::TYPE);
    assert_eq!(status(&app, &alice, id).await.0, "CANCELLED", "a late payment never confirms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_reservation_that_never_answers_times_out() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_ORDERS_RESERVE_TIMEOUT", "1s");
        env.set("FEIRA_ORDERS_SAGA_SWEEP", "100ms");
    })
    .await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    next(&sub).await;

    assert_eq!(next_types(&sub, 2).await, [ReleaseStockV1::TYPE, OrderCancelledV1::TYPE]);
    wait_status(&app, &alice, id, "CANCELLED").await;

    // The catalog reserves late: the hold is given back at once.
    publish(&app.broker(), &reserved(id)).await;
    assert_eq!(next(&sub).await.0, ReleaseStockV1::TYPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pix_payment_waits_for_the_customer() {
    let app = spawn_app_with(|env| {
        env.set("FEIRA_ORDERS_PAYMENT_TIMEOUT", "1s");
        env.set("FEIRA_ORDERS_SAGA_SWEEP", "100ms");
    })
    .await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    next(&sub).await;
    publish(&app.broker(), &reserved(id)).await;
    next(&sub).await;
    let pending = PaymentPendingV1 {
        order_id: id,
        payment_id: Uuid::now_v7(),
        provider_charge_id: "ch_pix".into(),
        pix_code: Some("000201...".into()),
        expires_at: OffsetDateTime::now_utc() + Duration::minutes(30),
    };
    publish(&app.broker(), &Envelope::new(pending)).await;
    let waiting = eventually(20, "the order to await PIX", || async {
        let (_, o) = status(&app, &alice, id).await;
        (o["saga_step"] == "awaiting_pix").then_some(o)
    })
    .await;
    assert_eq!(waiting["status"], "PENDING");

    // Longer than the card timeout: still waiting.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(status(&app, &alice, id).await.0, "PENDING");
    publish(&app.broker(), &succeeded(id)).await;
    wait_status(&app, &alice, id, "CONFIRMED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_survives_a_restart() {
    let mut app = spawn_app().await;
    let alice = Caller::customer();
    let id = place(&app, &alice).await;
    let sub = watch(&app).await;

    app.restart().await;
    publish(&app.broker(), &reserved(id)).await;
    assert_eq!(next(&sub).await.0, ChargePaymentV1::TYPE);
    app.restart().await;
    publish(&app.broker(), &succeeded(id)).await;

    wait_status(&app, &alice, id, "CONFIRMED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancels_a_confirmed_order_until_it_ships() {
    let app = spawn_app().await;
    let sub = watch(&app).await;
    let alice = Caller::customer();
    let (a, b) = (place(&app, &alice).await, place(&app, &alice).await);
    for id in [a, b] {
        publish(&app.broker(), &reserved(id)).await;
        publish(&app.broker(), &succeeded(id)).await;
        wait_status(&app, &alice, id, "CONFIRMED").await;
    }
    let shipped = ShipmentScheduledV1 {
        shipment_id: Uuid::now_v7(),
        order_id: b,
        customer_id: alice.id(),
        carrier: "correios".into(),
        service: "PAC".into(),
        tracking_code: "AA123456789BR".into(),
        estimated_delivery: time::macros::date!(2026 - 12 - 01),
        scheduled_at: OffsetDateTime::now_utc(),
    };
    publish(&app.broker(), &Envelope::new(shipped)).await;
    eventually(20, "the tracking code on the order", || async {
        let (_, o) = status(&app, &alice, b).await;
        (o["tracking_code"] == "AA123456789BR").then_some(())
    })
    .await;
    while sub.try_next().await.is_some() {}
    // Drain what the two sagas sent; give late ones a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while sub.try_next().await.is_some() {}

    let bob = Caller::customer();
    let path = format!("/orders/{a}/cancel");
    let refused = Answer::of(app.request(Method::POST, &path, &bob).send().await).await;
    refused.assert_problem(StatusCode::NOT_FOUND);
    let cancelled = Answer::of(app.request(Method::POST, &path, &alice).send().await).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(cancelled.json["status"], "CANCELLED");
    assert_eq!(cancelled.json["cancel_reason"], "customer_request");
    assert_eq!(
        next_types(&sub, 3).await,
        [ReleaseStockV1::TYPE, OrderCancelledV1::TYPE, RefundPaymentV1::TYPE],
        "stock released and the payment refunded"
    );
    let again = Answer::of(app.request(Method::POST, &path, &alice).send().await).await;
    assert_eq!(again.status, StatusCode::OK, "cancelling twice changes nothing");

    let too_late = Answer::of(app.request(Method::POST, &format!("/orders/{b}/cancel"), &alice).send().await).await;
    too_late.assert_problem(StatusCode::CONFLICT);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sub.try_next().await.is_none(), "nothing sent for the refused or repeated cancellations");
}
