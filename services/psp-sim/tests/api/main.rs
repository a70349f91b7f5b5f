//! psp-sim's API, over real HTTP against a real PostgreSQL.

mod helpers;

use std::time::Duration;

use helpers::{Receiver, card_charge, key, order_ref, spawn_app};
use platform::testing::eventually;
use psp_sim::domain::webhook;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_card_charge_succeeds_and_is_in_the_ledger() {
    let app = spawn_app().await;
    let order = order_ref();
    let a = app.charge(&key(), &card_charge(&order, "tok_visa", 2590)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.json["id"].as_str().expect("an id");
    assert!(id.starts_with("ch_") && id.len() == 35, "{id}");
    assert_eq!(a.json["status"], "succeeded");
    assert_eq!(a.json["amount_cents"], 2590);
    assert_eq!(a.json["currency"], "BRL");
    assert_eq!(a.json["order_ref"], order.as_str());
    assert_eq!(a.json["source_type"], "card");
    assert_eq!(a.json["failure_code"], Value::Null);
    assert_eq!(a.json["pix"], Value::Null);
    assert_eq!(a.json["refunded_cents"], 0);
    assert!(a.json["created_at"].is_string());

    assert_eq!(app.get(&format!("/v1/charges/{id}")).await.json, a.json);
    assert_eq!(app.ledger(&order).await, vec![a.json.clone()]);
    let missing = app.get("/v1/charges/ch_00000000000000000000000000000000").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_cards_answer_402_with_the_failed_charge() {
    let app = spawn_app().await;
    let order = order_ref();
    for (token, code) in
        [("tok_chargeDeclined", "card_declined"), ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds")]
    {
        let a = app.charge(&key(), &card_charge(&order, token, 1000)).await;
        assert_eq!(a.status, 402, "{}", a.text);
        assert_eq!(a.json["status"], "failed");
        assert_eq!(a.json["failure_code"], code);
    }
    let ledger = app.ledger(&order).await;
    let codes: Vec<&str> = ledger.iter().map(|c| c["failure_code"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["card_declined", "insufficient_funds"], "oldest first");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_are_refused_with_an_invalid_request_error() {
    let app = spawn_app().await;
    let order = order_ref();
    let no_key = app.post("/v1/charges", None, &card_charge(&order, "tok_visa", 100)).await;
    assert_eq!(no_key.status, 400);
    assert_eq!(no_key.json["error"]["type"], "invalid_request_error");
    let bad = [
        card_charge(&order, "visa", 100),
        card_charge(&order, "tok_visa", 0),
        card_charge(&order, "tok_visa", -1),
        json!({"amount_cents": 100, "currency": "XYZ", "source": {"type": "card", "token": "tok_visa"}, "order_ref": order}),
        json!({"amount_cents": 100, "currency": "BRL", "source": {"type": "card", "token": "tok_visa"}}),
        json!({"amount_cents": 10.5, "currency": "BRL", "source": {"type": "pix"}, "order_ref": order}),
        json!({"amount_cents": 100, "currency": "BRL", "source": {"type": "boleto"}, "order_ref": order}),
    ];
    for body in bad {
        let a = app.charge(&key(), &body).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert_eq!(a.json["error"]["type"], "invalid_request_error", "{body}");
        assert!(a.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(app.ledger(&order).await.is_empty(), "nothing was charged");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_and_body_answer_the_first_charge_and_charge_once() {
    let app = spawn_app().await;
    let order = order_ref();
    let k = key();
    let first = app.charge(&k, &card_charge(&order, "tok_visa", 500)).await;
    // Key order and spacing do not make it another request.
    let again = app
        .charge(&k, &json!({"order_ref": order, "source": {"token": "tok_visa", "type": "card"}, "currency": "BRL", "amount_cents": 500}))
        .await;
    assert_eq!(first.status, 201);
    assert_eq!((again.status, &again.json), (first.status, &first.json));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.ledger(&order).await.len(), 1);

    // A declined charge replays as declined.
    let k = key();
    let declined = app.charge(&k, &card_charge(&order, "tok_chargeDeclined", 500)).await;
    let again = app.charge(&k, &card_charge(&order, "tok_chargeDeclined", 500)).await;
    assert_eq!((again.status, &again.json), (declined.status, &declined.json));
    assert_eq!(app.ledger(&order).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_requests_with_one_key_make_one_charge() {
    let app = spawn_app().await;
    let order = order_ref();
    let k = key();
    let body = card_charge(&order, "tok_mastercard", 1234);
    let answers = futures_util::future::join_all((0..10).map(|_| app.charge(&k, &body))).await;
    let ids: Vec<&Value> = answers.iter().map(|a| &a.json["id"]).collect();
    for a in &answers {
        assert_eq!(a.status, 201, "{}", a.text);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(app.ledger(&order).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    let order = order_ref();
    let k = key();
    assert_eq!(app.charge(&k, &card_charge(&order, "tok_visa", 500)).await.status, 201);
    let other = app.charge(&k, &card_charge(&order, "tok_visa", 501)).await;
    assert_eq!(other.status, 400, "{}", other.text);
    assert_eq!(other.json["error"]["type"], "idempotency_error");
    assert_eq!(app.ledger(&order).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn refunds_are_idempotent_and_never_exceed_the_charge() {
    let app = spawn_app().await;
    let order = order_ref();
    let charge = app.charge(&key(), &card_charge(&order, "tok_visa", 1000)).await;
    let id = charge.json["id"].as_str().expect("an id");

    let k = key();
    let part = app.refund(&k, &json!({"charge": id, "amount_cents": 300})).await;
    assert_eq!(part.status, 201, "{}", part.text);
    assert!(part.json["id"].as_str().is_some_and(|r| r.starts_with("re_")));
    assert_eq!((part.json["charge"].as_str(), &part.json["amount_cents"]), (Some(id), &json!(300)));
    assert_eq!(part.json["status"], "succeeded");
    let again = app.refund(&k, &json!({"charge": id, "amount_cents": 300})).await;
    assert_eq!((again.status, &again.json), (part.status, &part.json), "same key, same refund");
    assert_eq!(app.get(&format!("/v1/charges/{id}")).await.json["refunded_cents"], 300);

    let other_body = app.refund(&k, &json!({"charge": id, "amount_cents": 200})).await;
    assert_eq!(other_body.json["error"]["type"], "idempotency_error");
    let too_much = app.refund(&key(), &json!({"charge": id, "amount_cents": 701})).await;
    assert_eq!((too_much.status.as_u16(), &too_much.json["error"]["type"]), (400, &json!("invalid_request_error")));

    let rest = app.refund(&key(), &json!({"charge": id})).await;
    assert_eq!((rest.status.as_u16(), &rest.json["amount_cents"]), (201, &json!(700)));
    assert_eq!(app.get(&format!("/v1/charges/{id}")).await.json["refunded_cents"], 1000);
    assert_eq!(app.refund(&key(), &json!({"charge": id})).await.status, 400, "nothing left to refund");

    let unknown = app.refund(&key(), &json!({"charge": "ch_00000000000000000000000000000000"})).await;
    assert_eq!(unknown.status, 404);
    let declined = app.charge(&key(), &card_charge(&order, "tok_chargeDeclined", 1000)).await;
    let refused = app.refund(&key(), &json!({"charge": declined.json["id"]})).await;
    assert_eq!(refused.status, 400, "a failed charge has nothing to refund");
    assert_eq!(app.post("/v1/refunds", None, &json!({"charge": id})).await.status, 400, "the key is required");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_pix_charge_calls_the_merchant_back_with_a_valid_signature() {
    let app = spawn_app().await;
    // The merchant fails the first delivery: psp-sim retries.
    let merchant = Receiver::start(1).await;
    let order = order_ref();
    let body = json!({"amount_cents": 4990, "currency": "BRL", "source": {"type": "pix"}, "order_ref": order, "notify_url": merchant.url});
    let a = app.charge(&key(), &body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["status"], "pending");
    assert_eq!(a.json["source_type"], "pix");
    let code = a.json["pix"]["code"].as_str().expect("a copia e cola code");
    assert!(code.starts_with("000201") && code.contains("540549.90"), "the amount is in the code: {code}");
    let created = time::OffsetDateTime::parse(
        a.json["created_at"].as_str().expect("created_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let expires = time::OffsetDateTime::parse(
        a.json["pix"]["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert_eq!(expires - created, time::Duration::minutes(30));
    let id = a.json["id"].as_str().expect("an id").to_string();

    let paid = app.post(&format!("/admin/pix/{id}/pay"), None, &json!({})).await;
    assert_eq!(paid.status, 202, "{}", paid.text);
    assert_eq!(app.get(&format!("/v1/charges/{id}")).await.json["status"], "succeeded");

    let calls = eventually(20, "a delivered callback", || async {
        let calls = merchant.received();
        (calls.len() >= 2).then_some(calls)
    })
    .await;
    for call in &calls {
        let sig = call.signature.as_deref().expect("a Psp-Signature header");
        assert!(webhook::verify(psp_sim::DEFAULT_WEBHOOK_SECRET, sig, &call.body), "{sig}");
        assert!(!webhook::verify("whsec_other", sig, &call.body));
    }
    let event: Value = serde_json::from_slice(&calls[1].body).expect("a JSON callback");
    assert_eq!(event["type"], "charge.succeeded");
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["status"], "succeeded");

    let deliveries = eventually(10, "two recorded attempts", || async {
        let d = app.get(&format!("/admin/pix/{id}/deliveries")).await.json["data"].clone();
        (d.as_array().map(Vec::len) == Some(2)).then_some(d)
    })
    .await;
    assert_eq!(deliveries[0]["status_code"], 500);
    assert_eq!(deliveries[1]["status_code"], 200);
    assert_eq!(deliveries[1]["attempt"], 2);

    let twice = app.post(&format!("/admin/pix/{id}/pay"), None, &json!({})).await;
    assert_eq!(twice.status, 400, "a paid charge is not pending");
    assert_eq!(app.post("/admin/pix/ch_00000000000000000000000000000000/pay", None, &json!({})).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_answers_503_until_it_ends() {
    let app = spawn_app().await;
    let order = order_ref();
    let view = app.set_faults(json!({"outage": true})).await;
    assert_eq!(view["outage"], true);
    let a = app.charge(&key(), &card_charge(&order, "tok_visa", 100)).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.json["error"], json!({"type": "api_error", "message": "service unavailable"}));
    assert_eq!(app.get("/v1/charges?order_ref=x").await.status, 503);
    // The admin routes stay up.
    let view = app.get("/admin/faults").await.json;
    assert_eq!((view["requests_total"].as_u64(), view["failed_total"].as_u64()), (Some(2), Some(2)));

    let reset = app.client.delete(app.url("/admin/faults")).send().await.expect("reset");
    assert_eq!(reset.status(), 200);
    assert_eq!(app.charge(&key(), &card_charge(&order, "tok_visa", 100)).await.status, 201);
    assert_eq!(app.ledger(&order).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_injected_error_answers_500_without_charging() {
    let app = spawn_app().await;
    let order = order_ref();
    app.set_faults(json!({"fail_next": 1, "fail_mode": "error"})).await;
    let k = key();
    let body = card_charge(&order, "tok_visa", 100);
    let failed = app.charge(&k, &body).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.json["error"]["type"], "api_error");
    assert!(app.ledger(&order).await.is_empty());
    // Only the next one failed; a retry with the same key charges once.
    assert_eq!(app.charge(&k, &body).await.status, 201);
    assert_eq!(app.ledger(&order).await.len(), 1);

    app.set_faults(json!({"error_rate": 1.0})).await;
    assert_eq!(app.charge(&key(), &card_charge(&order, "tok_visa", 100)).await.status, 500);
    app.set_faults(json!({"error_rate": 0.0})).await;
    assert_eq!(app.ledger(&order).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_before_answers_504_without_charging() {
    let app = spawn_app().await;
    let order = order_ref();
    app.set_faults(json!({"fail_next": 1, "fail_mode": "timeout_before", "hang_ms": 200})).await;
    let a = app.charge(&key(), &card_charge(&order, "tok_visa", 100)).await;
    assert_eq!(a.status, 504);
    assert!(app.ledger(&order).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_after_records_the_charge_and_a_retry_with_the_key_returns_it() {
    let app = spawn_app().await;
    let order = order_ref();
    app.set_faults(json!({"fail_next": 1, "fail_mode": "timeout_after", "hang_ms": 5000})).await;
    let k = key();
    let body = card_charge(&order, "tok_visa", 7700);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("a client");
    let sent = impatient.post(app.url("/v1/charges")).header("Idempotency-Key", &k).json(&body).send().await;
    let err = sent.expect_err("the answer never arrives in time");
    assert!(err.is_timeout(), "{err}");

    // The provider charged anyway; the retry with the same key finds it.
    let ledger = eventually(10, "the recorded charge", || async {
        let l = app.ledger(&order).await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    let retry = app.charge(&k, &body).await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.json["id"], ledger[0]["id"]);
    assert_eq!(app.ledger(&order).await.len(), 1);
}
