//! Mapping the domain to the messages orders sends, and the saga's consumer
//! of the replies.

pub mod saga;

use contracts::catalog::{CommitStockV1, ReleaseStockV1, ReserveStockV1, StockLineV1};
use contracts::orders::{AddressV1, OrderCancelledV1, OrderConfirmedV1, OrderLineV1, OrderPlacedV1, ShippingV1};
use contracts::payments::{ChargePaymentV1, PaymentMethodV1, RefundPaymentV1};
use time::OffsetDateTime;

use crate::domain::{Order, PaymentMethod, Shipping};

fn lines(order: &Order) -> Vec<OrderLineV1> {
    order
        .lines
        .iter()
        .map(|l| OrderLineV1 {
            product_id: l.product_id,
            sku: l.sku.as_str().to_string(),
            quantity: l.quantity.get(),
            unit_price_cents: l.unit_price.get(),
            line_total_cents: l.total.get(),
        })
        .collect()
}

fn shipping(s: &Shipping) -> ShippingV1 {
    let a = &s.address;
    ShippingV1 {
        quote_id: s.quote_id,
        freight_cents: s.freight.get(),
        address: AddressV1 {
            recipient: a.recipient.clone(),
            street: a.street.clone(),
            number: a.number.clone(),
            complement: a.complement.clone(),
            district: a.district.clone(),
            city: a.city.clone(),
            state: a.state.as_str().to_string(),
            cep: a.cep.as_str().to_string(),
        },
    }
}

fn contact_email(order: &Order) -> Option<String> {
    order.checkout.as_ref().map(|c| c.contact_email.as_str().to_string())
}

pub fn order_placed(order: &Order) -> OrderPlacedV1 {
    OrderPlacedV1 {
        order_id: order.id,
        customer_id: order.customer_id,
        currency: order.currency.code().to_string(),
        lines: lines(order),
        total_cents: order.total.get(),
        placed_at: order.created_at,
        contact_email: contact_email(order),
        shipping: order.checkout.as_ref().map(|c| shipping(&c.shipping)),
    }
}

pub fn order_confirmed(order: &Order, now: OffsetDateTime) -> OrderConfirmedV1 {
    OrderConfirmedV1 {
        order_id: order.id,
        customer_id: order.customer_id,
        currency: order.currency.code().to_string(),
        lines: lines(order),
        total_cents: order.total.get(),
        payment_id: order.saga.payment_id.unwrap_or_default(),
        contact_email: contact_email(order),
        shipping: order.checkout.as_ref().map(|c| shipping(&c.shipping)),
        confirmed_at: now,
    }
}

pub fn order_cancelled(order: &Order, refund_requested: bool, now: OffsetDateTime) -> OrderCancelledV1 {
    OrderCancelledV1 {
        order_id: order.id,
        customer_id: order.customer_id,
        reason: order.saga.cancel_reason.map_or("unknown", |r| r.as_str()).to_string(),
        refund_requested,
        contact_email: contact_email(order),
        cancelled_at: now,
    }
}

/// Every line with a catalog product; the quantities of lines that share a
/// product are added up.
pub fn reserve_stock(order: &Order) -> ReserveStockV1 {
    let mut out: Vec<StockLineV1> = Vec::new();
    for l in &order.lines {
        let Some(product_id) = l.product_id else { continue };
        match out.iter_mut().find(|s| s.product_id == product_id) {
            Some(s) => s.quantity += i64::from(l.quantity.get()),
            None => out.push(StockLineV1 { product_id, quantity: i64::from(l.quantity.get()) }),
        }
    }
    ReserveStockV1 { order_id: order.id, lines: out }
}

pub fn release_stock(order: &Order) -> ReleaseStockV1 {
    ReleaseStockV1 {
        order_id: order.id,
        reason: order.saga.cancel_reason.map_or("cancelled", |r| r.as_str()).to_string(),
    }
}

pub fn commit_stock(order: &Order) -> CommitStockV1 {
    CommitStockV1 { order_id: order.id }
}

/// `None` for an order placed before the saga (it has no payment method).
pub fn charge_payment(order: &Order) -> Option<ChargePaymentV1> {
    let checkout = order.checkout.as_ref()?;
    Some(ChargePaymentV1 {
        order_id: order.id,
        customer_id: order.customer_id,
        amount_cents: order.total.get(),
        currency: order.currency.code().to_string(),
        method: match &checkout.payment {
            PaymentMethod::Card { token } => PaymentMethodV1::Card { token: token.clone() },
            PaymentMethod::Pix => PaymentMethodV1::Pix,
        },
    })
}

pub fn refund_payment(order: &Order) -> RefundPaymentV1 {
    RefundPaymentV1 {
        order_id: order.id,
        reason: order.saga.cancel_reason.map_or("cancelled", |r| r.as_str()).to_string(),
    }
}
