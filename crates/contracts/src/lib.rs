//! The only types shared between feira's services: the message [`Envelope`]
//! and the versioned events and commands it carries.
//!
//! # Layout
//! - [`Envelope`] and the [`Message`] trait: the wire format of every message.
//! - [`catalog`]: catalog events, stock commands and replies, `CatalogPublishedV1`.
//! - [`orders`]: the order saga's events (placed, confirmed, cancelled).
//! - [`payments`]: the saga's payment commands and the payments replies.
//! - [`invoices`]: events published by the invoices service.
//! - [`shipping`]: events published by the shipping service.
//! - [`catalog()`]: every message type with its routing key, for `feira events`.
//! - [`asyncapi()`]: the catalog as an AsyncAPI 3.0 document, payload schemas
//!   included (`feira events --asyncapi`).
//!
//! # Versioning
//! A message type never changes incompatibly: a new field is optional, and a
//! breaking change is a new type (`OrderPlacedV2`) published beside the old
//! one until no consumer needs it. The routing key ends in the version
//! (`orders.order_placed.v1`), so a consumer binds to the versions it knows.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod asyncapi;
pub mod catalog;
pub mod invoices;
pub mod orders;
pub mod payments;
pub mod shipping;

pub use asyncapi::{Subscriber, asyncapi};

/// A message type: an event (past tense) or a command (imperative).
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable type name, `<service>.<name>`.
    const TYPE: &'static str;
    const VERSION: u16;
    /// Topic routing key, `<service>.<name>.v<version>`.
    const ROUTING_KEY: &'static str;
}

/// What every message carries around its payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope<T> {
    /// UUIDv7; consumers deduplicate on it.
    pub message_id: Uuid,
    #[serde(rename = "type")]
    pub message_type: String,
    pub version: u16,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The id shared by every message of one business flow (the first
    /// message's id, or the request's).
    pub correlation_id: Uuid,
    /// The id of the message whose handling produced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// W3C trace context of the transaction that produced the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub payload: T,
}

impl<T: Message> Envelope<T> {
    /// A message that starts a flow: it is its own correlation.
    pub fn new(payload: T) -> Self {
        let id = Uuid::now_v7();
        Envelope {
            message_id: id,
            message_type: T::TYPE.to_string(),
            version: T::VERSION,
            occurred_at: OffsetDateTime::now_utc(),
            correlation_id: id,
            causation_id: None,
            traceparent: None,
            payload,
        }
    }

    /// A message produced while handling `cause`: same correlation, and
    /// `cause` as its causation.
    pub fn caused_by<C>(cause: &Envelope<C>, payload: T) -> Self {
        Envelope {
            correlation_id: cause.correlation_id,
            causation_id: Some(cause.message_id),
            ..Envelope::new(payload)
        }
    }

    pub fn routing_key(&self) -> &'static str {
        T::ROUTING_KEY
    }
}

/// The JSON schemas of a payload type: its own first, then those it refers to.
pub type Schemas = Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>;

/// One entry of the message catalog.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub message_type: &'static str,
    pub version: u16,
    pub routing_key: &'static str,
    pub publisher: &'static str,
    /// The payload's schema name.
    pub payload: String,
    #[serde(skip)]
    pub schemas: fn() -> Schemas,
}

fn entry<T: Message + utoipa::ToSchema>(publisher: &'static str) -> CatalogEntry {
    CatalogEntry {
        message_type: T::TYPE,
        version: T::VERSION,
        routing_key: T::ROUTING_KEY,
        publisher,
        payload: T::name().into_owned(),
        schemas: schemas_of::<T>,
    }
}

fn schemas_of<T: utoipa::ToSchema>() -> Schemas {
    let mut all = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut all);
    all
}

/// Every message type, with its routing key and publisher.
pub fn catalog() -> Vec<CatalogEntry> {
    use catalog as c;
    vec![
        entry::<orders::OrderPlacedV1>("orders"),
        entry::<orders::OrderConfirmedV1>("orders"),
        entry::<orders::OrderCancelledV1>("orders"),
        entry::<payments::ChargePaymentV1>("orders"),
        entry::<payments::RefundPaymentV1>("orders"),
        entry::<payments::PaymentSucceededV1>("payments"),
        entry::<payments::PaymentPendingV1>("payments"),
        entry::<payments::PaymentFailedV1>("payments"),
        entry::<payments::PaymentRefundedV1>("payments"),
        entry::<invoices::InvoiceIssuedV1>("invoices"),
        entry::<shipping::ShipmentScheduledV1>("shipping"),
        entry::<c::OwnerChangedV1>("catalog"),
        entry::<c::CategoryChangedV1>("catalog"),
        entry::<c::ProductChangedV1>("catalog"),
        entry::<c::StockChangedV1>("catalog"),
        entry::<c::ReserveStockV1>("orders"),
        entry::<c::StockReservedV1>("catalog"),
        entry::<c::StockRejectedV1>("catalog"),
        entry::<c::ReleaseStockV1>("orders"),
        entry::<c::StockReleasedV1>("catalog"),
        entry::<c::CommitStockV1>("orders"),
        entry::<c::StockCommittedV1>("catalog"),
        entry::<c::CatalogPublishedV1>("catalog-publisher"),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_end_in_their_version() {
        for e in catalog() {
            assert!(e.routing_key.ends_with(&format!(".v{}", e.version)), "{e:?}");
            assert!(e.routing_key.starts_with(e.message_type), "{e:?}");
        }
    }

    #[test]
    fn a_caused_message_keeps_the_correlation() {
        let first = Envelope::new(orders::OrderPlacedV1::example());
        let next = Envelope::caused_by(&first, invoices::InvoiceIssuedV1::example());
        assert_eq!(next.correlation_id, first.correlation_id);
        assert_eq!(next.causation_id, Some(first.message_id));
        assert_ne!(next.message_id, first.message_id);
    }

    #[test]
    fn a_shipment_dates_its_delivery_as_a_plain_date() {
        let s = shipping::ShipmentScheduledV1 {
            shipment_id: Uuid::nil(),
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            carrier: "correios".into(),
            service: "PAC".into(),
            tracking_code: "AA123456789BR".into(),
            estimated_delivery: time::macros::date!(2026 - 11 - 30),
            scheduled_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["estimated_delivery"], "2026-11-30");
    }

    #[test]
    fn a_payment_method_is_tagged_by_type() {
        let card = serde_json::to_value(payments::PaymentMethodV1::Card { token: "tok_visa".into() }).unwrap();
        assert_eq!(card, serde_json::json!({"type": "card", "token": "tok_visa"}));
        let pix: payments::PaymentMethodV1 = serde_json::from_str(r#"{"type":"pix"}"#).unwrap();
        assert_eq!(pix, payments::PaymentMethodV1::Pix);
    }

    #[test]
    fn the_envelope_round_trips_through_json() {
        let e = Envelope::new(orders::OrderPlacedV1::example());
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"type\":\"orders.order_placed\""));
        let back: Envelope<orders::OrderPlacedV1> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
