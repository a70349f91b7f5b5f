//! `OrderConfirmedV1` → a shipment waiting for its booking.

use contracts::Message as _;
use contracts::orders::OrderConfirmedV1;
use platform::messaging::{ConsumerSpec, Handler, HandlerError, Incoming};
use sqlx::PgConnection;

use crate::{Settings, app};

pub const CONSUMER: ConsumerSpec =
    ConsumerSpec { name: "shipping.order_confirmed", bindings: &[OrderConfirmedV1::ROUTING_KEY], max_batch: None };

pub struct OnOrderConfirmed {
    pub settings: Settings,
}

impl Handler for OnOrderConfirmed {
    async fn handle(&self, tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
        let event = msg.payload::<OrderConfirmedV1>()?;
        app::create_shipment(tx, &self.settings, &event).await?;
        Ok(())
    }
}
