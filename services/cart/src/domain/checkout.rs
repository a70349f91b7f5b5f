//! Checkout: the customer's details, the freight quote, and the order they
//! make together with the re-priced cart.

use kernel::money::{Cents, Currency};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::cart::{Cart, Price};
use super::values::{Address, Email, Payment, Quantity};

/// What the customer sends to check out, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutDetails {
    pub shipping_address: Address,
    pub shipping_quote_id: Uuid,
    pub payment: Payment,
    pub contact_email: Email,
}

/// A freight quote, as shipping answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub id: Uuid,
    /// As shipping wrote it (8 digits, maybe with a hyphen).
    pub destination_cep: String,
    pub price: Cents,
    pub currency: Currency,
    pub expires_at: Option<OffsetDateTime>,
}

/// One line of the order, at the catalog's price now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub sku: String,
    pub quantity: Quantity,
    pub unit_price: Cents,
}

/// The order the checkout asks orders to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDraft {
    pub customer_id: Uuid,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub quote_id: Uuid,
    pub freight: Cents,
    pub address: Address,
    pub payment: Payment,
    pub contact_email: Email,
    pub items_total: Cents,
    pub total: Cents,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRuleError {
    #[error("the cart is empty")]
    EmptyCart,
    #[error("no longer sold: {}", ids(.0))]
    NotSold(Vec<Uuid>),
    #[error("the cart mixes currencies")]
    MixedCurrencies,
    #[error("quote expired")]
    QuoteExpired,
    #[error("the shipping quote is for CEP {quote}, not the address's CEP {address}")]
    QuoteForAnotherCep { quote: String, address: String },
    #[error("the shipping quote is in {quote}, the cart in {cart}")]
    QuoteCurrency { quote: Currency, cart: Currency },
    #[error("the order's total is too large")]
    TooLarge,
}

fn ids(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
}

/// The order lines at the catalog's prices now (one `Price` per cart line).
/// Every product must still be sold, in one currency. Stock is not checked
/// here: the order saga reserves it.
pub fn reprice(cart: &Cart, prices: &[Price]) -> Result<(Currency, Vec<OrderLine>), CheckoutRuleError> {
    if cart.is_empty() {
        return Err(CheckoutRuleError::EmptyCart);
    }
    let mut not_sold = Vec::new();
    let mut lines = Vec::with_capacity(cart.lines.len());
    for (i, line) in cart.lines.iter().enumerate() {
        match prices.get(i) {
            Some(Price::Current { snapshot, active: true, .. }) => lines.push((
                snapshot.currency,
                OrderLine {
                    product_id: line.product_id,
                    sku: snapshot.sku.clone(),
                    quantity: line.quantity,
                    unit_price: snapshot.unit_price_cents,
                },
            )),
            _ => not_sold.push(line.product_id),
        }
    }
    if !not_sold.is_empty() {
        return Err(CheckoutRuleError::NotSold(not_sold));
    }
    let currency = lines[0].0;
    if lines.iter().any(|(c, _)| *c != currency) {
        return Err(CheckoutRuleError::MixedCurrencies);
    }
    Ok((currency, lines.into_iter().map(|(_, l)| l).collect()))
}

/// The order: re-priced lines, the quote's freight to the customer's address.
pub fn draft(
    customer_id: Uuid,
    currency: Currency,
    lines: Vec<OrderLine>,
    quote: &Quote,
    details: CheckoutDetails,
    now: OffsetDateTime,
) -> Result<OrderDraft, CheckoutRuleError> {
    if lines.is_empty() {
        return Err(CheckoutRuleError::EmptyCart);
    }
    if quote.expires_at.is_some_and(|at| at <= now) {
        return Err(CheckoutRuleError::QuoteExpired);
    }
    let quote_cep: String = quote.destination_cep.chars().filter(char::is_ascii_digit).collect();
    if quote_cep != details.shipping_address.cep.digits() {
        return Err(CheckoutRuleError::QuoteForAnotherCep {
            quote: quote.destination_cep.clone(),
            address: details.shipping_address.cep.formatted(),
        });
    }
    if quote.currency != currency {
        return Err(CheckoutRuleError::QuoteCurrency { quote: quote.currency, cart: currency });
    }
    let mut items_total = Cents::ZERO;
    for l in &lines {
        let line_total = l.unit_price.times(l.quantity.get()).ok_or(CheckoutRuleError::TooLarge)?;
        items_total = items_total.plus(line_total).ok_or(CheckoutRuleError::TooLarge)?;
    }
    let total = items_total.plus(quote.price).ok_or(CheckoutRuleError::TooLarge)?;
    Ok(OrderDraft {
        customer_id,
        currency,
        lines,
        quote_id: quote.id,
        freight: quote.price,
        address: details.shipping_address,
        payment: details.payment,
        contact_email: details.contact_email,
        items_total,
        total,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::cart::tests::{line, snap};
    use crate::domain::values::{Cep, Uf};

    fn details(cep: &str) -> CheckoutDetails {
        CheckoutDetails {
            shipping_address: Address {
                recipient: "Ana".into(),
                street: "Av. Paulista".into(),
                number: "1000".into(),
                complement: None,
                district: "Bela Vista".into(),
                city: "São Paulo".into(),
                state: Uf::parse("SP").unwrap(),
                cep: Cep::parse(cep).unwrap(),
            },
            shipping_quote_id: Uuid::from_u128(9),
            payment: Payment::Pix,
            contact_email: Email::parse("ana@example.com").unwrap(),
        }
    }

    fn quote(cep: &str, cents: i64) -> Quote {
        Quote {
            id: Uuid::from_u128(9),
            destination_cep: cep.into(),
            price: Cents::parse(cents).unwrap(),
            currency: Currency::Brl,
            expires_at: Some(now() + time::Duration::hours(1)),
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-22 12:00 UTC)
    }

    fn priced(cart: &Cart) -> (Currency, Vec<OrderLine>) {
        let prices: Vec<Price> = cart
            .lines
            .iter()
            .map(|l| Price::Current {
                snapshot: Snapshot { unit_price_cents: Cents::parse(2000).unwrap(), ..l.snapshot.clone() },
                active: true,
                available: Some(0),
            })
            .collect();
        reprice(cart, &prices).unwrap()
    }

    use crate::domain::cart::Snapshot;

    #[test]
    fn the_order_is_the_repriced_lines_plus_the_quotes_freight() {
        let cart =
            Cart::new(vec![line(1, 2, snap("A", 1990, Currency::Brl)), line(2, 1, snap("B", 500, Currency::Brl))]);
        let (currency, lines) = priced(&cart);
        let order =
            draft(Uuid::from_u128(7), currency, lines, &quote("01310100", 1500), details("01310-100"), now()).unwrap();
        assert_eq!(order.lines[0].unit_price.get(), 2000, "today's price, stock left to the saga");
        assert_eq!(order.items_total.get(), 6000);
        assert_eq!(order.freight.get(), 1500);
        assert_eq!(order.total.get(), 7500);
        assert_eq!(order.quote_id, Uuid::from_u128(9));
    }

    #[test]
    fn an_empty_cart_or_a_product_no_longer_sold_cannot_be_ordered() {
        assert_eq!(reprice(&Cart::default(), &[]), Err(CheckoutRuleError::EmptyCart));
        let cart =
            Cart::new(vec![line(1, 2, snap("A", 1990, Currency::Brl)), line(2, 1, snap("B", 500, Currency::Brl))]);
        let inactive = Price::Current { snapshot: snap("B", 500, Currency::Brl), active: false, available: None };
        let prices = [Price::Gone, inactive];
        assert_eq!(
            reprice(&cart, &prices),
            Err(CheckoutRuleError::NotSold(vec![Uuid::from_u128(1), Uuid::from_u128(2)]))
        );
        let mixed = [
            Price::Current { snapshot: snap("A", 1, Currency::Brl), active: true, available: None },
            Price::Current { snapshot: snap("B", 1, Currency::Usd), active: true, available: None },
        ];
        assert_eq!(reprice(&cart, &mixed), Err(CheckoutRuleError::MixedCurrencies));
    }

    #[test]
    fn the_quote_must_be_fresh_for_the_addresss_cep_and_currency() {
        let cart = Cart::new(vec![line(1, 1, snap("A", 100, Currency::Brl))]);
        let (currency, lines) = priced(&cart);
        let mut expired = quote("01310100", 1500);
        expired.expires_at = Some(now());
        let order = |q: &Quote| draft(Uuid::from_u128(7), currency, lines.clone(), q, details("01310100"), now());
        assert_eq!(order(&expired), Err(CheckoutRuleError::QuoteExpired));
        assert!(matches!(order(&quote("20040-020", 1500)), Err(CheckoutRuleError::QuoteForAnotherCep { .. })));
        let mut usd = quote("01310-100", 1500);
        usd.currency = Currency::Usd;
        assert!(matches!(order(&usd), Err(CheckoutRuleError::QuoteCurrency { .. })));
        assert!(order(&quote("01310-100", 0)).is_ok());
    }
}
