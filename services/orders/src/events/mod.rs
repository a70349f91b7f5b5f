//! Mapping the domain to published events.

use contracts::orders::{OrderLineV1, OrderPlacedV1};

use crate::domain::Order;

pub fn order_placed(order: &Order) -> OrderPlacedV1 {
    OrderPlacedV1 {
        order_id: order.id,
        customer_id: order.customer_id,
        currency: order.currency.code().to_string(),
        lines: order
            .lines
            .iter()
            .map(|l| OrderLineV1 {
                product_id: None,
                sku: l.sku.as_str().to_string(),
                quantity: l.quantity.get(),
                unit_price_cents: l.unit_price.get(),
                line_total_cents: l.total.get(),
            })
            .collect(),
        total_cents: order.total.get(),
        placed_at: order.created_at,
        contact_email: None,
        shipping: None,
    }
}
