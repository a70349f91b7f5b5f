//! The order aggregate.

use time::OffsetDateTime;
use uuid::Uuid;

use super::values::{Quantity, Sku};
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
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Cents,
    /// `unit_price * quantity`, computed once.
    pub total: Cents,
}

impl OrderLine {
    /// A line, or `TotalTooLarge` when its total passes [`Cents::MAX`].
    pub fn new(sku: Sku, quantity: Quantity, unit_price: Cents) -> Result<Self, OrderRuleError> {
        let total = unit_price.times(i64::from(quantity.get())).ok_or(OrderRuleError::TotalTooLarge)?;
        Ok(OrderLine { sku, quantity, unit_price, total })
    }
}

/// A validated request to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: Uuid,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
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
    pub fn new(customer_id: Uuid, currency: Currency, lines: Vec<OrderLine>) -> Result<Self, OrderRuleError> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(OrderRuleError::LineCount);
        }
        let mut total = Cents::ZERO;
        for line in &lines {
            total = total.plus(line.total).ok_or(OrderRuleError::TotalTooLarge)?;
        }
        Ok(NewOrder { customer_id, currency, lines, total })
    }
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub total: Cents,
    pub created_at: OffsetDateTime,
}

impl Order {
    /// A new order starts `PENDING`, with a UUIDv7 id. Its time is kept to
    /// the microsecond, as stored, so it reads back exactly as answered.
    pub fn place(new: NewOrder, now: OffsetDateTime) -> Self {
        let created_at = kernel::time::stored(now);
        Order {
            id: Uuid::now_v7(),
            customer_id: new.customer_id,
            status: OrderStatus::Pending,
            currency: new.currency,
            lines: new.lines,
            total: new.total,
            created_at,
        }
    }

    /// True when `new` asks for exactly this order (same customer, currency
    /// and lines), as a retried request does.
    pub fn matches(&self, new: &NewOrder) -> bool {
        self.customer_id == new.customer_id && self.currency == new.currency && self.lines == new.lines
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(q: i64, price: i64) -> OrderLine {
        OrderLine::new(Sku::parse("ABC-1").unwrap(), Quantity::parse(q).unwrap(), Cents::parse(price).unwrap()).unwrap()
    }

    #[test]
    fn the_total_is_the_sum_of_the_lines() {
        let o = NewOrder::new(Uuid::nil(), Currency::Brl, vec![line(2, 1990), line(1, 500)]).unwrap();
        assert_eq!(o.total.get(), 4480);
    }

    #[test]
    fn an_order_has_one_to_a_hundred_lines() {
        assert_eq!(NewOrder::new(Uuid::nil(), Currency::Brl, vec![]), Err(OrderRuleError::LineCount));
        let many = (0..101).map(|_| line(1, 1)).collect();
        assert_eq!(NewOrder::new(Uuid::nil(), Currency::Brl, many), Err(OrderRuleError::LineCount));
    }

    #[test]
    fn a_total_past_the_maximum_is_refused() {
        let lines = vec![line(10_000, Cents::MAX / 10_000), line(1, 1)];
        assert!(
            OrderLine::new(Sku::parse("A").unwrap(), Quantity::parse(2).unwrap(), Cents::parse(Cents::MAX).unwrap())
                .is_err()
        );
        assert_eq!(NewOrder::new(Uuid::nil(), Currency::Brl, lines), Err(OrderRuleError::TotalTooLarge));
    }

    #[test]
    fn a_placed_order_keeps_its_time_to_the_microsecond() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_234_567);
        let o = Order::place(NewOrder::new(Uuid::nil(), Currency::Brl, vec![line(1, 1)]).unwrap(), now);
        assert_eq!(o.created_at, OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(1_234));
    }

    #[test]
    fn a_placed_order_is_pending() {
        let o = Order::place(
            NewOrder::new(Uuid::nil(), Currency::Brl, vec![line(1, 1)]).unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(o.status, OrderStatus::Pending);
    }
}
