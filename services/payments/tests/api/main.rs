//! Integration tests of the payments service against the real PostgreSQL and
//! RabbitMQ, with a scripted PSP stub over real HTTP standing in for the
//! external provider. Each test gets its own database and broker namespace,
//! sends the saga's commands as the orders relay does, and reads the
//! replies, the API, the provider's ledger and the metrics.

mod helpers;
mod psp_stub;

use contracts::Envelope;
use contracts::payments::{PaymentFailedV1, PaymentMethodV1, PaymentPendingV1, PaymentRefundedV1, PaymentSucceededV1};
use helpers::{As, Harness, SECRET, WAIT, card, charge_cmd, signed, unix_now};
use platform::testing::eventually;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_charge_succeeds_once_and_only_its_customer_and_admins_see_it() {
    let h = Harness::start().await;
    let cmd = charge_cmd(card("tok_visa"));
    let (order_id, customer) = (cmd.payload.order_id, cmd.payload.customer_id);
    h.charge(&cmd).await;

    let ok = h.reply::<PaymentSucceededV1>().await;
    assert_eq!(ok.causation_id, Some(cmd.message_id));
    assert_eq!(ok.correlation_id, cmd.correlation_id);
    let s = &ok.payload;
    assert_eq!((s.order_id, s.amount_cents, s.currency.as_str(), s.method.as_str()), (order_id, 15_990, "BRL", "card"));

    // The provider charged once, with the order's idempotency key.
    let charges = h.psp.charges_of(order_id);
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["id"], s.provider_charge_id.as_str());
    assert_eq!(charges[0]["amount_cents"], 15_990);

    // The API shows it captured to its customer and admins only.
    let mine = h.get(&format!("/payments?order_id={order_id}"), As::Customer(customer)).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    let p = &mine.json["items"][0];
    assert_eq!(p["id"], s.payment_id.to_string());
    assert_eq!(p["status"], "captured");
    assert_eq!(p["provider_charge_id"], s.provider_charge_id.as_str());
    let one = h.get(&format!("/payments/{}", s.payment_id), As::Customer(customer)).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json, *p);
    assert_eq!(h.get(&format!("/payments/{}", s.payment_id), As::Admin).await.status, 200);
    let stranger = As::Customer(Uuid::now_v7());
    assert_eq!(h.get(&format!("/payments/{}", s.payment_id), stranger).await.status, 404);
    let theirs = h.get(&format!("/payments?order_id={order_id}"), stranger).await;
    assert_eq!(theirs.json["items"], serde_json::json!([]));
    let anon = h.get("/payments", As::Anonymous).await;
    assert_eq!(anon.status, 401);
    assert!(anon.is_problem());
    let bad = h.get("/payments/not-a-uuid", As::Admin).await;
    assert_eq!(bad.status, 400);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_cards_and_refused_requests_fail_with_their_reason() {
    let h = Harness::start().await;
    for (token, reason) in
        [("tok_declined", "declined"), ("tok_insufficient_funds", "insufficient_funds"), ("tok_invalid", "failed")]
    {
        let cmd = charge_cmd(card(token));
        h.charge(&cmd).await;
        let failed = h.reply::<PaymentFailedV1>().await;
        assert_eq!(failed.causation_id, Some(cmd.message_id));
        assert_eq!((failed.payload.order_id, failed.payload.reason.as_str()), (cmd.payload.order_id, reason));
        let p = h.payment_of(cmd.payload.order_id).await;
        assert_eq!((p["status"].as_str(), p["failure_reason"].as_str()), (Some("failed"), Some(reason)));
    }
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_answers_are_lost_is_retried_with_the_same_key_and_charged_once() {
    let h = Harness::start().await;
    // The provider charges, but its first two answers never arrive.
    h.psp.hang_next_charges(2);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;

    let ok = h.reply::<PaymentSucceededV1>().await;
    assert_eq!(ok.payload.order_id, order_id);
    assert!(h.psp.charge_requests() >= 3, "two lost answers, then one");
    let charges = h.psp.charges_of(order_id);
    assert_eq!(charges.len(), 1, "exactly one charge: {charges:?}");
    assert_eq!(charges[0]["id"], ok.payload.provider_charge_id.as_str());
    let p = h.payment_of(order_id).await;
    assert_eq!((p["status"].as_str(), p["attempts"].as_i64()), (Some("captured"), Some(2)));
    assert_eq!(h.outbox_count::<PaymentSucceededV1>(order_id).await, 1);
    let timeouts = h.metric(r#"payments_psp_requests_total{operation="charge",outcome="timeout"}"#).await;
    assert_eq!(timeouts, Some(2.0));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_breaker_and_the_charge_succeeds_after_recovery() {
    let h =
        Harness::start_with(&[("FEIRA_PAYMENTS_BREAKER_THRESHOLD", "2"), ("FEIRA_PAYMENTS_BREAKER_OPEN", "1s")]).await;
    h.psp.set_outage(true);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;

    let open = r#"circuit_breaker_state{breaker="psp"}"#;
    // The breaker opens at the second failure, just before that attempt is recorded.
    let p = eventually(WAIT, "the psp breaker open after two failed attempts", || async {
        let p = h.payment_of(order_id).await;
        (h.metric(open).await == Some(1.0) && p["attempts"].as_i64() >= Some(2)).then_some(p)
    })
    .await;
    assert_eq!(p["status"], "requested");
    assert!(h.psp.charges_of(order_id).is_empty());

    h.psp.set_outage(false);
    let ok = h.reply::<PaymentSucceededV1>().await;
    assert_eq!(ok.payload.order_id, order_id);
    assert_eq!(h.psp.charges_of(order_id).len(), 1);
    assert_eq!(h.metric(open).await, Some(0.0), "closed again");
    let half_open = h.metric(r#"circuit_breaker_transitions_total{breaker="psp",to="half_open"}"#).await;
    assert!(half_open >= Some(1.0), "recovered through half-open: {half_open:?}");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_payment_is_refunded_once() {
    let h = Harness::start().await;
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    let ok = h.reply::<PaymentSucceededV1>().await;

    let refund = h.refund(order_id).await;
    let r = h.reply::<PaymentRefundedV1>().await;
    assert_eq!(r.causation_id, Some(refund.message_id));
    assert_eq!(r.correlation_id, refund.correlation_id);
    assert_eq!(
        (r.payload.outcome.as_str(), r.payload.amount_cents, r.payload.payment_id),
        ("refunded", 15_990, Some(ok.payload.payment_id))
    );
    let refunds = h.psp.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["charge"], ok.payload.provider_charge_id.as_str());
    let p = h.payment_of(order_id).await;
    assert_eq!((p["status"].as_str(), p["refunded_cents"].as_i64()), (Some("refunded"), Some(15_990)));

    // A repeated refund is answered the same, and refunds nothing more.
    h.refund(order_id).await;
    let again = h.reply::<PaymentRefundedV1>().await;
    assert_eq!(again.payload, r.payload);
    assert_eq!(h.psp.refunds().len(), 1);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_before_the_charge_means_the_order_is_never_charged() {
    let h = Harness::start().await;
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;

    let refund = h.refund(order_id).await;
    let r = h.reply::<PaymentRefundedV1>().await;
    assert_eq!(r.causation_id, Some(refund.message_id));
    assert_eq!((r.payload.outcome.as_str(), r.payload.payment_id), ("nothing_to_refund", None));

    // The charge arrives late: refused.
    h.charge(&cmd).await;
    let failed = h.reply::<PaymentFailedV1>().await;
    assert_eq!(failed.causation_id, Some(cmd.message_id));
    assert_eq!((failed.payload.reason.as_str(), failed.payload.detail.as_str()), ("failed", "cancelled before charge"));
    assert!(h.psp.charges_of(order_id).is_empty());
    assert_eq!(h.psp.charge_requests(), 0, "the provider was never asked");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_while_the_provider_is_down_voids_the_payment_and_it_is_never_charged() {
    let h = Harness::start().await;
    h.psp.set_outage(true);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    eventually(WAIT, "a failed attempt", || async {
        (h.payment_of(order_id).await["attempts"].as_i64() >= Some(1)).then_some(())
    })
    .await;

    h.refund(order_id).await;
    h.wait_status(order_id, "voiding").await;
    h.psp.set_outage(false);
    let r = h.reply::<PaymentRefundedV1>().await;
    assert_eq!((r.payload.outcome.as_str(), r.payload.amount_cents), ("voided", 0));
    assert!(h.psp.charges_of(order_id).is_empty(), "no charge");

    // Not attempted again, even when the charge command is repeated.
    let requests = h.psp.charge_requests();
    h.charge(&Envelope::new(cmd.payload.clone())).await;
    let probe = charge_cmd(card("tok_visa"));
    h.charge(&probe).await;
    let (kind, e) = h.next_reply().await;
    assert_eq!(
        (kind.as_str(), e.payload["order_id"].as_str()),
        ("payments.payment_succeeded", Some(&*probe.payload.order_id.to_string()))
    );
    assert_eq!(h.psp.charge_requests(), requests + 1, "only the probe's charge");
    assert_eq!(h.payment_of(order_id).await["status"], "voided");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_during_a_charge_whose_answer_is_lost_refunds_the_charge() {
    let h = Harness::start().await;
    h.psp.hang_next_charges(1);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    eventually(WAIT, "the charge made at the provider", || async {
        (!h.psp.charges_of(order_id).is_empty()).then_some(())
    })
    .await;

    // The saga gives up while the charge's answer is still on its way.
    h.refund(order_id).await;
    let r = h.reply::<PaymentRefundedV1>().await;
    assert_eq!((r.payload.outcome.as_str(), r.payload.amount_cents), ("refunded", 15_990));
    let charges = h.psp.charges_of(order_id);
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["refunded_cents"], 15_990);
    assert_eq!(h.outbox_count::<PaymentSucceededV1>(order_id).await, 0, "no success is announced");
    assert_eq!(h.payment_of(order_id).await["status"], "refunded");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pix_payment_is_pending_until_a_signed_webhook_confirms_it() {
    let h = Harness::start().await;
    let cmd = charge_cmd(PaymentMethodV1::Pix);
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    let pending = h.reply::<PaymentPendingV1>().await;
    assert_eq!(pending.causation_id, Some(cmd.message_id));
    assert!(pending.payload.pix_code.as_deref().is_some_and(|c| c.starts_with("0002")), "{pending:?}");
    assert_eq!(h.payment_of(order_id).await["status"], "pending");

    let charge = h.psp.pay(&pending.payload.provider_charge_id);
    let (body, sig) = signed("charge.succeeded", &charge, SECRET, unix_now());
    let a = h.webhook(&body, Some(sig.clone())).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["result"], "applied");
    let ok = h.reply::<PaymentSucceededV1>().await;
    assert_eq!(ok.causation_id, Some(cmd.message_id), "answers the charge command");
    assert_eq!((ok.payload.order_id, ok.payload.method.as_str()), (order_id, "pix"));
    assert_eq!(h.payment_of(order_id).await["status"], "captured");

    // The provider delivers it again: nothing changes.
    let again = h.webhook(&body, Some(sig)).await;
    assert_eq!((again.status.as_u16(), again.json["result"].as_str()), (200, Some("unchanged")));
    assert_eq!(h.outbox_count::<PaymentSucceededV1>(order_id).await, 1);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_missing_or_stale_signatures_are_refused_and_change_nothing() {
    let h = Harness::start().await;
    let cmd = charge_cmd(PaymentMethodV1::Pix);
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    let pending = h.reply::<PaymentPendingV1>().await;
    let charge = h.psp.pay(&pending.payload.provider_charge_id);

    let (body, forged) = signed("charge.succeeded", &charge, "whsec_attacker", unix_now());
    let (_, stale) = signed("charge.succeeded", &charge, SECRET, unix_now() - 600);
    let (_, other_body) = signed("charge.succeeded", &serde_json::json!({"id": "x"}), SECRET, unix_now());
    for (sig, reason) in [
        (Some(forged), "bad_signature"),
        (Some(other_body), "bad_signature"),
        (Some(stale), "stale_timestamp"),
        (None, "missing_signature"),
        (Some("t=abc".to_string()), "malformed_signature"),
    ] {
        let a = h.webhook(&body, sig).await;
        assert_eq!(a.status, 400, "{reason}: {}", a.text);
        assert!(a.is_problem(), "{}", a.text);
        let n = h.metric(&format!(r#"payments_webhook_rejected_total{{reason="{reason}"}}"#)).await;
        assert!(n >= Some(1.0), "{reason} counted");
    }
    assert_eq!(h.payment_of(order_id).await["status"], "pending");
    assert_eq!(h.outbox_count::<PaymentSucceededV1>(order_id).await, 0);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_charge_command_makes_one_payment_and_repeats_its_outcome() {
    let h = Harness::start().await;
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    // The saga sends the command twice while the provider is slow (a
    // retry), and the broker redelivers the first.
    h.psp.set_latency(std::time::Duration::from_millis(500));
    let retry = Envelope::caused_by(&cmd, cmd.payload.clone());
    h.charge(&cmd).await;
    h.charge(&retry).await;
    h.charge(&cmd).await;
    let first = h.reply::<PaymentSucceededV1>().await;
    eventually(WAIT, "every command handled", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&h.db).await.ok()?;
        (n == 2).then_some(())
    })
    .await;
    assert_eq!(h.payment_rows(order_id).await, 1);
    assert_eq!(h.psp.charges_of(order_id).len(), 1);

    // Once the outcome is known, a repeated command gets it again.
    let late = Envelope::new(cmd.payload.clone());
    h.charge(&late).await;
    let again = eventually(WAIT, "the outcome announced again", || async {
        let (kind, e) = h.next_reply().await;
        (kind == "payments.payment_succeeded" && e.causation_id == Some(late.message_id)).then_some(e)
    })
    .await;
    let payload: PaymentSucceededV1 = serde_json::from_value(again.payload).expect("a success");
    assert_eq!(payload, first.payload);
    assert_eq!(h.payment_rows(order_id).await, 1);
    assert_eq!(h.psp.charges_of(order_id).len(), 1);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_charge_and_its_record_charges_once_after_restart() {
    let mut h =
        Harness::start_with(&[("FEIRA_PAYMENTS_PSP_TIMEOUT", "3s"), ("FEIRA_PAYMENTS_CLAIM_LEASE", "9s")]).await;
    h.psp.hang_next_charges(1);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    eventually(WAIT, "the charge made at the provider", || async {
        (!h.psp.charges_of(order_id).is_empty()).then_some(())
    })
    .await;

    // The process dies while the provider's answer is on its way.
    h.crash().await;
    let p: (String, Option<String>) =
        sqlx::query_as("SELECT status, provider_charge_id FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&h.db)
            .await
            .expect("the payment row");
    assert_eq!(p, ("requested".to_string(), None), "nothing recorded of the charge");

    h.spawn().await;
    let ok = h.reply::<PaymentSucceededV1>().await;
    assert_eq!(ok.causation_id, Some(cmd.message_id));
    let charges = h.psp.charges_of(order_id);
    assert_eq!(charges.len(), 1, "exactly one charge: {charges:?}");
    assert_eq!(charges[0]["id"], ok.payload.provider_charge_id.as_str());
    assert_eq!(h.outbox_count::<PaymentSucceededV1>(order_id).await, 1);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_deadline_a_charge_fails_only_once_the_provider_confirms_there_is_none() {
    let h = Harness::start_with(&[("FEIRA_PAYMENTS_CHARGE_DEADLINE", "1s")]).await;
    h.psp.set_outage(true);
    let cmd = charge_cmd(card("tok_visa"));
    let order_id = cmd.payload.order_id;
    h.charge(&cmd).await;
    // The provider cannot say whether it charged: no verdict yet.
    h.wait_status(order_id, "checking").await;
    assert!(h.replies.try_next().await.is_none(), "no reply while unsure");

    h.psp.set_outage(false);
    let failed = h.reply::<PaymentFailedV1>().await;
    assert_eq!((failed.payload.order_id, failed.payload.reason.as_str()), (order_id, "failed"));
    assert!(h.psp.charges_of(order_id).is_empty());
    h.close().await;
}
