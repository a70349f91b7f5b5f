//! The cart: product → quantity plus the last price seen, and how it is
//! priced against what the catalog says now.

use kernel::money::{Cents, Currency};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::Quantity;

/// Distinct products one cart may hold (an order takes at most 100 lines).
pub const MAX_LINES: usize = 100;

/// What the cart remembers of a product: what it was and its last known price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub sku: String,
    pub title: String,
    pub unit_price_cents: Cents,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub snapshot: Snapshot,
}

/// A customer's cart, its lines ordered by product id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<CartLine>,
}

impl Cart {
    pub fn new(mut lines: Vec<CartLine>) -> Self {
        lines.sort_by_key(|l| l.product_id);
        Cart { lines }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The currency of the cart: that of its lines (one cart, one currency).
    pub fn currency(&self) -> Option<Currency> {
        self.lines.first().map(|l| l.snapshot.currency)
    }
}

/// What the catalog says about a product right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Price {
    /// Sold now, at this price; `available` units in stock when the catalog says.
    Current { snapshot: Snapshot, active: bool, available: Option<i64> },
    /// Not sold any more (unknown, inactive or deleted).
    Gone,
    /// The catalog could not be asked: only the last known price is there.
    Unknown,
}

/// One line as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub snapshot: Snapshot,
    pub line_total: Cents,
    /// Whether it can be bought now as it is (sold, in the cart's currency,
    /// enough stock); `None` when the catalog could not be asked.
    pub available: Option<bool>,
    /// The catalog said it is sold now, in the cart's currency.
    pub sold: bool,
}

/// The cart, priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartView {
    pub lines: Vec<PricedLine>,
    pub currency: Option<Currency>,
    pub items_total: Cents,
    /// Some prices are the last known ones: the catalog could not be asked.
    pub price_stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartRuleError {
    #[error("the cart's total is too large")]
    TooLarge,
}

/// Prices `cart` with `prices` (one per line, in order). A line keeps its
/// last known price when the catalog could not be asked (`price_stale`), or
/// when the product is not sold any more or changed currency (not available).
pub fn price(cart: &Cart, prices: &[Price]) -> Result<CartView, CartRuleError> {
    let currency = cart.currency();
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut stale = false;
    let mut total = Cents::ZERO;
    for (i, line) in cart.lines.iter().enumerate() {
        let (snapshot, available, sold) = match prices.get(i).unwrap_or(&Price::Unknown) {
            Price::Current { snapshot, active, available } if Some(snapshot.currency) == currency => {
                let in_stock = available.is_none_or(|n| n >= line.quantity.get());
                (snapshot.clone(), Some(*active && in_stock), *active)
            }
            Price::Current { .. } | Price::Gone => (line.snapshot.clone(), Some(false), false),
            Price::Unknown => {
                stale = true;
                (line.snapshot.clone(), None, false)
            }
        };
        let line_total = snapshot.unit_price_cents.times(line.quantity.get()).ok_or(CartRuleError::TooLarge)?;
        total = total.plus(line_total).ok_or(CartRuleError::TooLarge)?;
        lines.push(PricedLine {
            product_id: line.product_id,
            quantity: line.quantity,
            snapshot,
            line_total,
            available,
            sold,
        });
    }
    Ok(CartView { lines, currency, items_total: total, price_stale: stale })
}

/// The new snapshots worth remembering: lines whose catalog price (in the
/// cart's currency) differs from the one stored.
pub fn changed_snapshots(cart: &Cart, prices: &[Price]) -> Vec<(Uuid, Snapshot)> {
    let currency = cart.currency();
    cart.lines
        .iter()
        .zip(prices)
        .filter_map(|(line, price)| match price {
            Price::Current { snapshot, .. } if Some(snapshot.currency) == currency && *snapshot != line.snapshot => {
                Some((line.product_id, snapshot.clone()))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub fn snap(sku: &str, cents: i64, currency: Currency) -> Snapshot {
        Snapshot {
            sku: sku.into(),
            title: format!("Produto {sku}"),
            unit_price_cents: Cents::parse(cents).unwrap(),
            currency,
        }
    }

    pub fn line(id: u128, qty: i64, s: Snapshot) -> CartLine {
        CartLine { product_id: Uuid::from_u128(id), quantity: Quantity::parse(qty).unwrap(), snapshot: s }
    }

    fn current(s: Snapshot, available: Option<i64>) -> Price {
        Price::Current { snapshot: s, active: true, available }
    }

    #[test]
    fn lines_are_priced_from_the_catalog_and_added_up() {
        let cart =
            Cart::new(vec![line(2, 3, snap("B", 500, Currency::Brl)), line(1, 2, snap("A", 1990, Currency::Brl))]);
        let prices = [current(snap("A", 2000, Currency::Brl), Some(10)), current(snap("B", 500, Currency::Brl), None)];
        let view = price(&cart, &prices).unwrap();
        assert_eq!(view.lines[0].product_id, Uuid::from_u128(1), "ordered by product id");
        assert_eq!(view.lines[0].line_total.get(), 4000, "the catalog's price, not the remembered one");
        assert_eq!(view.lines[1].line_total.get(), 1500);
        assert_eq!(view.items_total.get(), 5500);
        assert_eq!(view.currency, Some(Currency::Brl));
        assert!(!view.price_stale);
        assert_eq!(view.lines[0].available, Some(true));
        assert_eq!(changed_snapshots(&cart, &prices), vec![(Uuid::from_u128(1), snap("A", 2000, Currency::Brl))]);
    }

    #[test]
    fn without_the_catalog_the_last_known_prices_are_stale() {
        let cart = Cart::new(vec![line(1, 2, snap("A", 1990, Currency::Brl))]);
        let view = price(&cart, &[Price::Unknown]).unwrap();
        assert!(view.price_stale);
        assert_eq!(view.items_total.get(), 3980);
        assert_eq!(view.lines[0].available, None);
        assert!(changed_snapshots(&cart, &[Price::Unknown]).is_empty());
    }

    #[test]
    fn a_product_gone_short_or_in_another_currency_is_not_available() {
        let cart = Cart::new(vec![
            line(1, 2, snap("A", 100, Currency::Brl)),
            line(2, 5, snap("B", 100, Currency::Brl)),
            line(3, 1, snap("C", 100, Currency::Brl)),
        ]);
        let prices =
            [Price::Gone, current(snap("B", 100, Currency::Brl), Some(4)), current(snap("C", 7, Currency::Usd), None)];
        let view = price(&cart, &prices).unwrap();
        let available: Vec<_> = view.lines.iter().map(|l| l.available).collect();
        assert_eq!(available, [Some(false), Some(false), Some(false)]);
        assert_eq!(view.lines[2].snapshot.currency, Currency::Brl, "keeps its last price in the cart's currency");
        assert_eq!(view.items_total.get(), 800);
        assert!(!view.price_stale);
    }

    #[test]
    fn an_empty_cart_costs_nothing_and_has_no_currency() {
        let view = price(&Cart::default(), &[]).unwrap();
        assert_eq!((view.items_total, view.currency, view.lines.len()), (Cents::ZERO, None, 0));
    }

    #[test]
    fn totals_never_overflow_silently() {
        let cart = Cart::new(vec![line(1, 99, snap("A", Cents::MAX, Currency::Brl))]);
        assert_eq!(price(&cart, &[Price::Unknown]), Err(CartRuleError::TooLarge));
    }
}
