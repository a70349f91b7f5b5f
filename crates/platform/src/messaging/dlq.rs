//! Operations on dead-letter queues: list, show, replay, purge.
//!
//! Messages are read with `basic.get` and left unacknowledged, so closing the
//! channel puts every message that was only looked at back in its queue. A
//! replayed message is published to its original queue with its attempt count
//! reset and confirmed by the broker before its dead-letter copy is acked.

use anyhow::Context as _;
use lapin::Channel;
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;

use super::{Broker, ConsumerSpec, header_int, header_str, headers};

/// A parked message, as `feira dlq` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The dead-letter queue holding it.
    pub dlq: String,
    /// The queue it is replayed into.
    pub queue: String,
    pub message_id: String,
    pub message_type: String,
    pub attempts: i64,
    pub error: String,
    pub failed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_by: Option<String>,
    pub body: serde_json::Value,
}

/// Message counts of every dead-letter queue of `consumers` that exists.
pub async fn counts(broker: &Broker, consumers: &[ConsumerSpec]) -> anyhow::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for spec in consumers {
        let name = broker.topology().dead_letter_queue(spec.name);
        // A passive declare fails (and closes the channel) when the queue does
        // not exist yet, so each check gets its own channel.
        let ch = broker.channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        if let Ok(q) = ch.queue_declare(name.clone().into(), passive, FieldTable::default()).await {
            out.push((name, q.message_count()));
        }
        let _ = ch.close(200, "done".into()).await;
    }
    Ok(out)
}

/// Every parked message of `consumers`, oldest first per queue.
pub async fn list(broker: &Broker, consumers: &[ConsumerSpec], limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for (dlq, _) in counts(broker, consumers).await? {
        let ch = broker.channel().await?;
        let messages = peek(&ch, &dlq, limit).await?;
        out.extend(messages.iter().map(|m| describe(&dlq, m)));
        // Closing the channel requeues everything we only looked at.
        let _ = ch.close(200, "done".into()).await;
    }
    Ok(out)
}

/// Replays the parked messages whose id is `id` (or all with `None`) into
/// their original queues. Returns the replayed messages.
pub async fn replay(
    broker: &Broker,
    consumers: &[ConsumerSpec],
    id: Option<&str>,
    actor: &str,
) -> anyhow::Result<Vec<DeadLetter>> {
    let mut replayed = Vec::new();
    for (dlq, _) in counts(broker, consumers).await? {
        let ch = broker.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        for m in peek(&ch, &dlq, usize::MAX).await? {
            let d = describe(&dlq, &m);
            if id.is_some_and(|id| id != d.message_id) {
                continue;
            }
            let mut h = m.delivery.properties.headers().clone().unwrap_or_default();
            h.insert(headers::ATTEMPT.into(), AMQPValue::LongInt(1));
            h.insert(headers::REPLAYED_BY.into(), AMQPValue::LongString(actor.to_string().into()));
            let props = m.delivery.properties.clone().with_headers(h);
            let confirm = ch
                .basic_publish(
                    "".into(),
                    d.queue.clone().into(),
                    BasicPublishOptions::default(),
                    &m.delivery.data,
                    props,
                )
                .await?
                .await?;
            if !confirm.is_ack() {
                anyhow::bail!("the broker refused the replay of {}", d.message_id);
            }
            m.delivery.acker.ack(BasicAckOptions::default()).await?;
            tracing::info!(actor, message_id = %d.message_id, from = %dlq, to = %d.queue, "replayed a dead-lettered message");
            replayed.push(DeadLetter { replayed_by: Some(actor.to_string()), ..d });
        }
        let _ = ch.close(200, "done".into()).await;
    }
    Ok(replayed)
}

/// Deletes every parked message of `consumers`; returns how many.
pub async fn purge(broker: &Broker, consumers: &[ConsumerSpec], actor: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for (dlq, _) in counts(broker, consumers).await? {
        let ch = broker.channel().await?;
        let n = ch.queue_purge(dlq.clone().into(), Default::default()).await.with_context(|| format!("purge {dlq}"))?;
        tracing::warn!(actor, queue = %dlq, messages = n, "purged a dead-letter queue");
        total += u64::from(n);
        let _ = ch.close(200, "done".into()).await;
    }
    Ok(total)
}

async fn peek(ch: &Channel, queue: &str, limit: usize) -> anyhow::Result<Vec<BasicGetMessage>> {
    let mut out = Vec::new();
    while out.len() < limit {
        match ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }).await? {
            Some(m) => out.push(m),
            None => break,
        }
    }
    Ok(out)
}

fn describe(dlq: &str, m: &BasicGetMessage) -> DeadLetter {
    let p = &m.delivery.properties;
    let h = p.headers().as_ref();
    let queue = header_str(h, headers::ORIGINAL_QUEUE).unwrap_or_else(|| dlq.trim_end_matches(".dlq").to_string());
    DeadLetter {
        dlq: dlq.to_string(),
        queue,
        message_id: p.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default(),
        message_type: p.kind().as_ref().map(|s| s.to_string()).unwrap_or_default(),
        attempts: header_int(h, headers::ATTEMPT).or_else(|| header_int(h, "x-delivery-count")).unwrap_or(0),
        error: header_str(h, headers::ERROR)
            .unwrap_or_else(|| "(crashed its consumer repeatedly: delivery limit reached)".into()),
        failed_at: header_str(h, headers::FAILED_AT).unwrap_or_default(),
        replayed_by: header_str(h, headers::REPLAYED_BY),
        body: serde_json::from_slice(&m.delivery.data)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&m.delivery.data).into_owned())),
    }
}
