//! Value types: each `parse` accepts only valid values (parse, don't validate).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// Trimmed text of `min..=max` characters without control characters.
fn text(s: &str, min: usize, max: usize) -> Result<String, ValueError> {
    let s = s.trim();
    let n = s.chars().count();
    if n < min || n > max {
        return Err(ValueError(format!("must be {min} to {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(ValueError("must not contain control characters".into()));
    }
    Ok(s.to_string())
}

/// Serialized values parse again when read (a cached copy included), so a
/// value that breaks today's rules never comes back in.
macro_rules! serde_via_parse {
    ($name:ident, $raw:ty, $parse:expr, $raw_of:expr) => {
        impl TryFrom<$raw> for $name {
            type Error = ValueError;

            fn try_from(raw: $raw) -> Result<Self, ValueError> {
                $parse(raw)
            }
        }

        impl From<$name> for $raw {
            fn from(v: $name) -> $raw {
                $raw_of(v)
            }
        }
    };
}

pub use kernel::money::{Cents, Currency};

/// A stock-keeping unit, unique per owner: 1 to 64 of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

serde_via_parse!(Sku, String, |s: String| Sku::parse(&s), |v: Sku| v.0);

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

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        serde_via_parse!($name, String, |s: String| $name::parse(&s), |v: $name| v.0);

        impl $name {
            pub const MAX: usize = $max;

            pub fn parse(s: &str) -> Result<Self, ValueError> {
                text(s, $min, $max).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A seller's display name: 1 to 120 characters, trimmed.
    OwnerName, 1, 120
);
text_type!(
    /// A category's name: 1 to 80 characters, trimmed; unique per owner
    /// regardless of case.
    CategoryName, 1, 80
);
text_type!(
    /// A product's title: 1 to 200 characters, trimmed.
    Title, 1, 200
);

/// A product's description: up to 5 000 characters (line breaks allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

serde_via_parse!(Description, String, |s: String| Description::parse(&s), |v: Description| v.0);

impl Description {
    pub const MAX: usize = 5_000;

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        if s.chars().count() > Self::MAX {
            return Err(ValueError(format!("must be at most {} characters", Self::MAX)));
        }
        if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(ValueError("must not contain control characters".into()));
        }
        Ok(Description(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-form product attributes: a JSON object of at most 16 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct Attributes(serde_json::Map<String, serde_json::Value>);

serde_via_parse!(Attributes, serde_json::Value, Attributes::parse, |a: Attributes| serde_json::Value::Object(a.0));

impl Attributes {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(v: serde_json::Value) -> Result<Self, ValueError> {
        let serde_json::Value::Object(map) = v else {
            return Err(ValueError("must be a JSON object".into()));
        };
        if serde_json::to_vec(&map).map(|b| b.len()).unwrap_or(usize::MAX) > Self::MAX_BYTES {
            return Err(ValueError(format!("must be at most {} bytes of JSON", Self::MAX_BYTES)));
        }
        Ok(Attributes(map))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.clone())
    }
}

/// Words to look for in titles and descriptions (web search syntax:
/// `"exact phrase"`, `-excluded`, `or`): 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    /// `None` for blank text: no search.
    pub fn parse(s: &str) -> Result<Option<Self>, ValueError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        text(s, 1, 200).map(|t| Some(SearchText(t)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units on hand: 0 to 10^9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnHand(i64);

impl OnHand {
    pub const MAX: i64 = 1_000_000_000;

    pub fn parse(n: i64) -> Result<Self, ValueError> {
        if !(0..=Self::MAX).contains(&n) {
            return Err(ValueError(format!("must be between 0 and {}", Self::MAX)));
        }
        Ok(OnHand(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Units of one reservation line: 1 to 10^6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    pub const MAX: i64 = 1_000_000;

    pub fn parse(n: i64) -> Result<Self, ValueError> {
        if !(1..=Self::MAX).contains(&n) {
            return Err(ValueError(format!("must be between 1 and {}", Self::MAX)));
        }
        Ok(Quantity(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_are_iso_codes_we_sell_in() {
        assert_eq!(Currency::parse("EUR").unwrap(), Currency::Eur);
        assert!(Currency::parse("brl").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OwnerName::parse("  Loja da Ana ").unwrap().as_str(), "Loja da Ana");
        assert!(OwnerName::parse("   ").is_err());
        assert!(CategoryName::parse(&"x".repeat(81)).is_err());
        assert!(Title::parse("a\u{0}b").is_err());
        assert_eq!(Title::parse(&"é".repeat(200)).unwrap().as_str().chars().count(), 200, "characters, not bytes");
    }

    #[test]
    fn descriptions_may_be_empty_and_span_lines() {
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        assert!(Description::parse("one\ntwo").is_ok());
        assert!(Description::parse(&"x".repeat(5_001)).is_err());
    }

    #[test]
    fn attributes_are_a_bounded_json_object() {
        assert!(Attributes::parse(serde_json::json!({"color": "red", "sizes": [1, 2]})).is_ok());
        assert!(Attributes::parse(serde_json::json!(["red"])).is_err());
        assert!(Attributes::parse(serde_json::json!("red")).is_err());
        assert!(Attributes::parse(serde_json::json!({"big": "x".repeat(20_000)})).is_err());
    }

    #[test]
    fn skus_reject_spaces_and_empty() {
        assert!(Sku::parse("ABC-1.b_2").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn serialized_values_are_parsed_again_when_read_back() {
        let sku: Sku = serde_json::from_str("\"ABC-1\"").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"ABC-1\"");
        assert_eq!(serde_json::to_string(&Currency::Usd).unwrap(), "\"USD\"");
        assert_eq!(serde_json::to_string(&Cents::parse(5).unwrap()).unwrap(), "5");
        assert!(serde_json::from_str::<Sku>("\"a b\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"XYZ\"").is_err());
        assert!(serde_json::from_str::<Cents>("-1").is_err());
        assert!(serde_json::from_str::<Title>("\"\"").is_err());
        assert!(serde_json::from_str::<Attributes>("[1]").is_err());
    }

    proptest! {
        #[test]
        fn cents_parse_accepts_exactly_the_valid_range(n in any::<i64>()) {
            prop_assert_eq!(Cents::parse(n).is_ok(), (0..=Cents::MAX).contains(&n));
        }

        #[test]
        fn quantities_are_positive_and_bounded(n in any::<i64>()) {
            prop_assert_eq!(Quantity::parse(n).is_ok(), (1..=Quantity::MAX).contains(&n));
        }

        #[test]
        fn on_hand_is_never_negative(n in any::<i64>()) {
            prop_assert_eq!(OnHand::parse(n).is_ok(), (0..=OnHand::MAX).contains(&n));
        }

        #[test]
        fn parsed_text_is_trimmed_and_within_bounds(s in "\\PC{0,130}") {
            if let Ok(name) = OwnerName::parse(&s) {
                prop_assert_eq!(name.as_str(), s.trim());
                prop_assert!((1..=120).contains(&name.as_str().chars().count()));
            }
        }
    }
}
