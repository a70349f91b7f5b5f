//! The order aggregate.

use time::OffsetDateTime;
use uuid::Uuid;

use super::saga::{SagaState, Timeouts};
use super::values::{Address, Email, PaymentMethod, Quantity, Sku};
use kernel::money::{Cents, Currency};

pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OrderStatus::Pending),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The catalog product (absent only on orders placed before the saga).
    pub product_id: Option<Uuid>,
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Cents,
    /// `unit_price * quantity`, computed once.
    pub total: Cents,
}

impl OrderLine {
    /// A line, or `TotalTooLarge` when its total passes [`Cents::MAX`].
    pub fn new(
        product_id: Option<Uuid>,
        sku: Sku,
        quantity: Quantity,
        unit_price: Cents,
    ) -> Result<Self, OrderRuleError> {
        let total = unit_price.times(i64::from(quantity.get())).ok_or(OrderRuleError::TotalTooLarge)?;
        Ok(OrderLine { product_id, sku, quantity, unit_price, total })
    }
}

/// Where and how an order ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipping {
    /// The shipping service's quote the customer accepted.
    pub quote_id: Uuid,
    pub freight: Cents,
    pub address: Address,
}

/// What the saga needs besides the lines: where to ship, how to pay, whom
/// to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub shipping: Shipping,
    pub payment: PaymentMethod,
    pub contact_email: Email,
}

/// A validated request to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: Uuid,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub checkout: Checkout,
    /// Items plus freight.
    pub total: Cents,
}

/// Why a set of lines cannot form an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRuleError {
    #[error("an order needs between 1 and {MAX_LINES} items")]
    LineCount,
    #[error("the order total is too large")]
    TotalTooLarge,
}

impl NewOrder {
    pub fn new(
        customer_id: Uuid,
        currency: Currency,
        lines: Vec<OrderLine>,
        checkout: Checkout,
    ) -> Result<Self, OrderRuleError> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(OrderRuleError::LineCount);
        }
        let mut total = checkout.shipping.freight;
        for line in &lines {
            total = total.plus(line.total).ok_or(OrderRuleError::TotalTooLarge)?;
        }
        Ok(NewOrder { customer_id, currency, lines, checkout, total })
    }
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    /// Absent only on orders placed before the saga.
    pub checkout: Option<Checkout>,
    pub total: Cents,
    pub created_at: OffsetDateTime,
    /// Where the saga stands, the status included.
    pub saga: SagaState,
}

impl Order {
    /// A new order starts `PENDING`, with a UUIDv7 id. Its time is kept to
    /// the microsecond, as stored, so it reads back exactly as answered.
    pub fn place(new: NewOrder, now: OffsetDateTime, timeouts: &Timeouts) -> Self {
        let created_at = kernel::time::stored(now);
        Order {
            id: Uuid::now_v7(),
            customer_id: new.customer_id,
            currency: new.currency,
            lines: new.lines,
            checkout: Some(new.checkout),
            total: new.total,
            created_at,
            saga: SagaState::placed(created_at, timeouts),
        }
    }

    pub fn status(&self) -> OrderStatus {
        self.saga.status
    }

    /// The freight charged (zero for orders placed before the saga).
    pub fn freight(&self) -> Cents {
        self.checkout.as_ref().map_or(Cents::ZERO, |c| c.shipping.freight)
    }

    /// True when `new` asks for exactly this order (same customer, currency,
    /// lines and checkout), as a retried request does.
    pub fn matches(&self, new: &NewOrder) -> bool {
        self.customer_id == new.customer_id
            && self.currency == new.currency
            && self.lines == new.lines
            && self.checkout.as_ref() == Some(&new.checkout)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::domain::{Cep, Uf};

    fn line(q: i64, price: i64) -> OrderLine {
        OrderLine::new(
            Some(Uuid::nil()),
            Sku::parse("ABC-1").unwrap(),
            Quantity::parse(q).unwrap(),
            Cents::parse(price).unwrap(),
        )
        .unwrap()
    }

    fn checkout(freight: i64) -> Checkout {
        Checkout {
            shipping: Shipping {
                quote_id: Uuid::nil(),
                freight: Cents::parse(freight).unwrap(),
                address: Address {
                    recipient: "Ana".into(),
                    street: "Rua A".into(),
                    number: "1".into(),
                    complement: None,
                    district: "Centro".into(),
                    city: "São Paulo".into(),
                    state: Uf::parse("SP").unwrap(),
                    cep: Cep::parse("01310100").unwrap(),
                },
            },
            payment: PaymentMethod::Pix,
            contact_email: Email::parse("ana@example.com").unwrap(),
        }
    }

    fn new_order(lines: Vec<OrderLine>) -> Result<NewOrder, OrderRuleError> {
        NewOrder::new(Uuid::nil(), Currency::Brl, lines, checkout(0))
    }

    #[test]
    fn the_total_is_the_sum_of_the_lines() {
        let o = new_order(vec![line(2, 1990), line(1, 500)]).unwrap();
        assert_eq!(o.total.get(), 4480);
        let with_freight = NewOrder::new(Uuid::nil(), Currency::Brl, vec![line(1, 500)], checkout(1500)).unwrap();
        assert_eq!(with_freight.total.get(), 2000);
    }

    #[test]
    fn an_order_has_one_to_a_hundred_lines() {
        assert_eq!(new_order(vec![]), Err(OrderRuleError::LineCount));
        let many = (0..101).map(|_| line(1, 1)).collect();
        assert_eq!(new_order(many), Err(OrderRuleError::LineCount));
    }

    #[test]
    fn a_total_past_the_maximum_is_refused() {
        let lines = vec![line(10_000, Cents::MAX / 10_000), line(1, 1)];
        assert!(
            OrderLine::new(
                None,
                Sku::parse("A").unwrap(),
                Quantity::parse(2).unwrap(),
                Cents::parse(Cents::MAX).unwrap()
            )
            .is_err()
        );
        assert_eq!(new_order(lines), Err(OrderRuleError::TotalTooLarge));
    }

    #[test]
    fn a_placed_order_keeps_its_time_to_the_microsecond() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_234_567);
        let o = Order::place(new_order(vec![line(1, 1)]).unwrap(), now, &Timeouts::default());
        assert_eq!(o.created_at, OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(1_234));
    }

    #[test]
    fn a_placed_order_is_pending() {
        let o = Order::place(new_order(vec![line(1, 1)]).unwrap(), OffsetDateTime::UNIX_EPOCH, &Timeouts::default());
        assert_eq!(o.status(), OrderStatus::Pending);
    }
}
