//! Value types: each `parse` accepts only valid values (parse, don't validate).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// An ISO 4217 currency the shop sells in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    Brl,
    Usd,
    Eur,
}

impl Currency {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        match s {
            "BRL" => Ok(Currency::Brl),
            "USD" => Ok(Currency::Usd),
            "EUR" => Ok(Currency::Eur),
            other => Err(ValueError(format!("unknown currency {other:?}; use BRL, USD or EUR"))),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Currency::Brl => "BRL",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 64 {
            return Err(ValueError("must be 1 to 64 characters".into()));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(ValueError("may contain only letters, digits, '-', '_' and '.'".into()));
        }
        Ok(Sku(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many units of a line: 1 to 10 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    pub const MAX: i64 = 10_000;

    pub fn parse(n: i64) -> Result<Self, ValueError> {
        if !(1..=Self::MAX).contains(&n) {
            return Err(ValueError(format!("must be between 1 and {}", Self::MAX)));
        }
        Ok(Quantity(n as i32))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A non-negative amount in cents, at most 10^13 (100 billion in units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(i64);

impl Cents {
    pub const MAX: i64 = 10_000_000_000_000;
    pub const ZERO: Cents = Cents(0);

    pub fn parse(n: i64) -> Result<Self, ValueError> {
        if n < 0 {
            return Err(ValueError("must not be negative".into()));
        }
        if n > Self::MAX {
            return Err(ValueError(format!("must be at most {}", Self::MAX)));
        }
        Ok(Cents(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self * q`, or `None` past [`Cents::MAX`].
    pub fn times(self, q: Quantity) -> Option<Cents> {
        self.0.checked_mul(i64::from(q.get())).filter(|v| *v <= Self::MAX).map(Cents)
    }

    pub fn plus(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).filter(|v| *v <= Self::MAX).map(Cents)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_are_iso_codes_we_sell_in() {
        assert_eq!(Currency::parse("BRL").unwrap(), Currency::Brl);
        assert!(Currency::parse("brl").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn quantity_is_positive_and_bounded() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert!(Quantity::parse(10_001).is_err());
        assert_eq!(Quantity::parse(3).unwrap().get(), 3);
    }

    #[test]
    fn skus_reject_spaces_and_empty() {
        assert!(Sku::parse("ABC-1").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    proptest! {
        #[test]
        fn cents_parse_accepts_exactly_the_valid_range(n in any::<i64>()) {
            prop_assert_eq!(Cents::parse(n).is_ok(), (0..=Cents::MAX).contains(&n));
        }

        #[test]
        fn multiplication_never_overflows_silently(c in 0..=Cents::MAX, q in 1..=Quantity::MAX) {
            let cents = Cents::parse(c).unwrap();
            let qty = Quantity::parse(q).unwrap();
            match cents.times(qty) {
                Some(v) => prop_assert_eq!(i128::from(v.get()), i128::from(c) * i128::from(q)),
                None => prop_assert!(i128::from(c) * i128::from(q) > i128::from(Cents::MAX)),
            }
        }
    }
}
