//! Events published by the shipping service.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::Message;

time::serde::format_description!(plain_date, Date, "[year]-[month]-[day]");

/// The carrier accepted the shipment of a confirmed order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ShipmentScheduledV1 {
    pub shipment_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub carrier: String,
    /// The carrier's service, e.g. `PAC` or `SEDEX`.
    pub service: String,
    pub tracking_code: String,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    #[serde(with = "plain_date")]
    pub estimated_delivery: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_at: OffsetDateTime,
}

impl Message for ShipmentScheduledV1 {
    const TYPE: &'static str = "shipping.shipment_scheduled";
    const VERSION: u16 = 1;
    const ROUTING_KEY: &'static str = "shipping.shipment_scheduled.v1";
}
