//! Value types: each `parse` accepts only valid values (parse, don't validate).
//! Money (`Cents`, `Currency`) comes from the shared kernel.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

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

/// A Brazilian postal code: eight digits (`01310-100` is accepted and kept
/// as `01310100`); all zeros is not a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cep(String);

impl Cep {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        let digits = match s.split_once('-') {
            Some((a, b)) if a.len() == 5 && b.len() == 3 => format!("{a}{b}"),
            Some(_) => return Err(ValueError("must be 8 digits, as 01310100 or 01310-100".into())),
            None => s.to_string(),
        };
        if digits.len() != 8 || !digits.chars().all(|c| c.is_ascii_digit()) || digits == "00000000" {
            return Err(ValueError("must be 8 digits, as 01310100 or 01310-100".into()));
        }
        Ok(Cep(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One of Brazil's 27 federative units (`SP`, `RJ`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uf(String);

const UFS: [&str; 27] = [
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB", "PR", "PE", "PI", "RJ",
    "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
];

impl Uf {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let up = s.trim().to_ascii_uppercase();
        if UFS.contains(&up.as_str()) {
            Ok(Uf(up))
        } else {
            Err(ValueError("must be a Brazilian state's two letters, as SP".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Non-empty text of at most `max` characters, trimmed.
pub fn text(s: &str, max: usize) -> Result<String, ValueError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(ValueError(format!("must be 1 to {max} characters")));
    }
    Ok(t.to_string())
}

/// An e-mail address: `local@domain.tld`, at most 254 characters, kept
/// lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || ValueError("must be an e-mail address".into());
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub recipient: String,
    pub street: String,
    pub number: String,
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    pub state: Uf,
    pub cep: Cep,
}

/// How the customer pays: a provider's card token (never card data) or PIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    Card { token: String },
    Pix,
}

impl PaymentMethod {
    /// A card token is the provider's `tok_...` (1 to 128 characters).
    pub fn card(token: &str) -> Result<Self, ValueError> {
        let t = token.trim();
        if !t.starts_with("tok_") || t.len() > 128 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ValueError("must be a card token from the payment provider, as tok_visa".into()));
        }
        Ok(PaymentMethod::Card { token: t.to_string() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantity_is_positive_and_bounded() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert!(Quantity::parse(10_001).is_err());
        assert_eq!(Quantity::parse(3).unwrap().get(), 3);
    }

    #[test]
    fn ceps_are_eight_digits() {
        assert_eq!(Cep::parse("01310-100").unwrap().as_str(), "01310100");
        assert_eq!(Cep::parse("01310100").unwrap().as_str(), "01310100");
        for bad in ["", "0131010", "013101000", "0131a100", "00000000", "0131-0100", "01310--100"] {
            assert!(Cep::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_are_the_27_ufs() {
        assert_eq!(Uf::parse("sp").unwrap().as_str(), "SP");
        assert!(Uf::parse("XX").is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(Email::parse(" Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in ["", "ana", "ana@", "@x.com", "ana@x", "a b@x.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn card_tokens_come_from_the_provider() {
        assert!(PaymentMethod::card("tok_visa").is_ok());
        assert!(PaymentMethod::card("4111111111111111").is_err());
    }

    #[test]
    fn skus_reject_spaces_and_empty() {
        assert!(Sku::parse("ABC-1").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }
}
