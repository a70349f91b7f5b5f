//! The PSP worker: claims payments with provider work and makes one call
//! (or two, for a void that finds a charge to refund) per claim.
//!
//! - Claims are leases (`locked_until`), taken with `FOR UPDATE SKIP LOCKED`
//!   in one short statement; no transaction is open while the provider is
//!   called. Several replicas share the rows; a process that dies mid-call
//!   leaves a lease that expires, and the next attempt sends the same
//!   idempotency key, so the provider answers with the charge it made.
//! - A claim's work is cut off before its lease ends, so two attempts on one
//!   payment never overlap.
//! - A failed attempt records `attempts`, `last_error` and the next attempt
//!   time (exponential backoff with jitter) and releases the lease.
//! - Woken by `NOTIFY payments_work` (new command) and by polling every
//!   [`POLL`] (retries falling due).
//! - Stopping abandons the calls in flight, as a crash would: their leases
//!   expire and the work is done again, safely.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use platform::resilience::Backoff;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{self, Payment, Reply, Status, VoidStep};
use crate::psp::{Psp, PspError};
use crate::repo::{self, Claimed};

/// How often due retries are looked for when no NOTIFY came.
pub const POLL: Duration = Duration::from_millis(200);

/// Payments worked on at once by one process.
const MAX_IN_FLIGHT: usize = 16;

/// What the worker needs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub lease: Duration,
    pub charge_deadline: Duration,
    pub backoff: Backoff,
}

struct Worker {
    db: PgPool,
    psp: Psp,
    settings: WorkerSettings,
}

/// Runs the worker until `shutdown`.
pub async fn run(db: PgPool, psp: Psp, settings: WorkerSettings, shutdown: CancellationToken) {
    let worker = Arc::new(Worker { db, psp, settings });
    let mut listener: Option<PgListener> = None;
    let mut in_flight: JoinSet<()> = JoinSet::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if listener.is_none() {
            listener = listen(&worker.db).await;
        }
        while in_flight.try_join_next().is_some() {}
        let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        let mut claimed = 0;
        if room > 0 {
            match worker.claim(room).await {
                Ok(batch) => {
                    claimed = batch.len();
                    for c in batch {
                        let w = worker.clone();
                        in_flight.spawn(async move { w.process_within_lease(c).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming payments failed"),
            }
        }
        if claimed > 0 && claimed == room {
            continue; // more may be due
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wait_notify(&mut listener) => {}
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    // As a crash would: the leases of abandoned calls expire and the calls
    // are made again with the same idempotency keys.
    if !in_flight.is_empty() {
        tracing::info!(
            abandoned = in_flight.len(),
            "payments worker stopping; calls in flight are retried after their lease"
        );
    }
    in_flight.abort_all();
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut l = match PgListener::connect_with(db).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "payments worker cannot listen; polling only");
            return None;
        }
    };
    match l.listen(repo::WORK_CHANNEL).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "payments worker cannot listen; polling only");
            None
        }
    }
}

async fn wait_notify(listener: &mut Option<PgListener>) {
    match listener.as_mut() {
        Some(l) => {
            if let Err(e) = l.recv().await {
                tracing::warn!(error = %e, "payments worker lost its listener");
                *listener = None;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

impl Worker {
    async fn claim(&self, limit: usize) -> sqlx::Result<Vec<Claimed>> {
        let mut conn = self.db.acquire().await?;
        repo::claim_due(
            &mut conn,
            self.settings.lease.as_secs_f64(),
            self.settings.charge_deadline.as_secs_f64(),
            i64::try_from(limit).unwrap_or(1),
        )
        .await
    }

    /// The claim's work, cut off a little before its lease ends so that no
    /// other attempt starts while this one may still write.
    async fn process_within_lease(&self, c: Claimed) {
        let budget = self.settings.lease.mul_f64(0.8);
        let (id, order_id) = (c.payment.id, c.payment.order_id);
        // The provider call and the reply continue the command's trace.
        let span = tracing::info_span!(
            "payment work",
            payment_id = %id,
            %order_id,
            status = c.payment.status.as_str()
        );
        platform::telemetry::set_parent(&span, c.traceparent.as_deref());
        match tokio::time::timeout(budget, self.process(c).instrument(span)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(payment_id = %id, %order_id, error = format!("{e:#}"), "payment work failed; retried after its lease")
            }
            Err(_) => {
                tracing::warn!(payment_id = %id, %order_id, "payment work outlived its budget; retried after its lease")
            }
        }
    }

    async fn process(&self, c: Claimed) -> anyhow::Result<()> {
        let p = &c.payment;
        match p.status {
            Status::Requested if !c.past_deadline => self.charge(&c).await,
            Status::Requested | Status::Checking => self.check(&c).await,
            Status::Voiding => self.void(&c).await,
            Status::Refunding => self.refund(&c).await,
            _ => self.finish(&c, |_, _| None).await,
        }
    }

    fn delay(&self, p: &Payment) -> time::Duration {
        let d = self.settings.backoff.delay(u32::try_from(p.attempts).unwrap_or(0));
        time::Duration::try_from(d).unwrap_or(time::Duration::seconds(5))
    }

    async fn charge(&self, c: &Claimed) -> anyhow::Result<()> {
        let result = self.psp.create_charge(&c.payment).await;
        log_result("charge", &result);
        self.finish(c, |p, now| match &result {
            Ok(charge) => p.on_charge_answer(charge, now),
            Err(PspError::Rejected { message, .. }) => p.on_charge_rejected(message, now),
            Err(e) => {
                let delay = self.delay(p);
                p.on_provider_unavailable(&e.to_string(), delay, false, now);
                None
            }
        })
        .await
    }

    /// Past the deadline: does a charge exist after all?
    async fn check(&self, c: &Claimed) -> anyhow::Result<()> {
        let result = self.psp.charges_of_order(c.payment.order_id).await;
        log_result("check", &result);
        self.finish(c, |p, now| match &result {
            Ok(charges) => p.on_check(charges, now),
            Err(e) => {
                let delay = self.delay(p);
                p.on_provider_unavailable(&e.to_string(), delay, true, now);
                None
            }
        })
        .await
    }

    /// A refund came before the charge's outcome: refund a charge the
    /// provider made, or void the payment.
    async fn void(&self, c: &Claimed) -> anyhow::Result<()> {
        let charges = match self.psp.charges_of_order(c.payment.order_id).await {
            Ok(charges) => charges,
            Err(e) => {
                tracing::warn!(error = %e, "void check failed; retried later");
                return self
                    .finish(c, |p, now| {
                        let delay = self.delay(p);
                        p.on_provider_unavailable(&e.to_string(), delay, false, now);
                        None
                    })
                    .await;
            }
        };
        let mut draft = c.payment.clone();
        let refund = match draft.on_void_check(&charges, kernel::time::now()) {
            VoidStep::Refund { charge_id } => {
                let r = self.psp.refund(&charge_id, &domain::refund_key(c.payment.order_id)).await;
                log_result("refund", &r);
                Some(r)
            }
            VoidStep::Done(_) => None,
        };
        self.finish(c, |p, now| match (p.on_void_check(&charges, now), &refund) {
            (VoidStep::Done(reply), _) => reply,
            (VoidStep::Refund { .. }, Some(result)) => refund_outcome(self, p, result, now),
            (VoidStep::Refund { .. }, None) => None,
        })
        .await
    }

    async fn refund(&self, c: &Claimed) -> anyhow::Result<()> {
        let Some(charge_id) = c.payment.provider_charge_id.clone() else {
            // Nothing known to refund: find out from the provider.
            return self
                .finish(c, |p, now| {
                    p.status = Status::Voiding;
                    p.on_provider_unavailable("no charge id to refund", time::Duration::ZERO, false, now);
                    None
                })
                .await;
        };
        let result = self.psp.refund(&charge_id, &domain::refund_key(c.payment.order_id)).await;
        log_result("refund", &result);
        self.finish(c, |p, now| refund_outcome(self, p, &result, now)).await
    }

    /// Applies `change` to the payment if this claim still holds its lease,
    /// and writes the state and its reply in one transaction.
    async fn finish<F>(&self, c: &Claimed, change: F) -> anyhow::Result<()>
    where
        F: FnOnce(&mut Payment, time::OffsetDateTime) -> Option<Reply>,
    {
        let mut tx = self.db.begin().await?;
        let Some(mut p) = repo::lock_payment(&mut tx, c.payment.id).await? else {
            return Ok(());
        };
        if p.lease_id != Some(c.lease_id) {
            tracing::info!(
                status = p.status.as_str(),
                "the payment changed hands during the call; its answer is dropped"
            );
            return Ok(());
        }
        let reply = change(&mut p, kernel::time::now());
        p.lease_id = None;
        repo::update_payment(&mut tx, &p).await?;
        if let Some(reply) = reply {
            let cause = crate::app::cause_of(&p, &reply);
            crate::app::announce(&mut tx, reply, cause).await?;
        }
        if p.status.is_due_work() && p.next_attempt_at <= kernel::time::now() {
            repo::notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        record(&p);
        Ok(())
    }
}

fn refund_outcome(
    w: &Worker,
    p: &mut Payment,
    result: &Result<domain::ProviderRefund, PspError>,
    now: time::OffsetDateTime,
) -> Option<Reply> {
    match result {
        Ok(refund) => p.on_refunded(refund, now),
        Err(PspError::Rejected { message, .. }) => {
            tracing::error!(order_id = %p.order_id, error = %message, "the provider refused a refund; an operator must look");
            p.on_refund_rejected(message, now);
            None
        }
        Err(e) => {
            let delay = w.delay(p);
            p.on_provider_unavailable(&e.to_string(), delay, false, now);
            None
        }
    }
}

fn log_result<T>(operation: &str, result: &Result<T, PspError>) {
    if let Err(e) = result {
        if e.is_transient() {
            tracing::warn!(operation, error = %e, "payment provider call failed; retried later");
        } else {
            tracing::warn!(operation, error = %e, "payment provider refused the request");
        }
    }
}

fn record(p: &Payment) {
    let id: Uuid = p.id;
    tracing::info!(payment_id = %id, status = p.status.as_str(), attempts = p.attempts, "payment updated");
}
