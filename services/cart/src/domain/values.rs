//! Value types that parse: a quantity, a CEP, a UF, an e-mail address, an
//! address's text fields and a payment method.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value does not parse; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Units of one product in a cart: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(u8);

impl Quantity {
    pub const MAX: i64 = 99;

    pub fn parse(n: i64) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Quantity(n as u8))
        } else {
            Err(invalid(format!("must be between 1 and {}", Self::MAX)))
        }
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl TryFrom<i64> for Quantity {
    type Error = Invalid;

    fn try_from(n: i64) -> Result<Self, Invalid> {
        Quantity::parse(n)
    }
}

impl From<Quantity> for i64 {
    fn from(q: Quantity) -> i64 {
        q.get()
    }
}

/// A Brazilian postal code: 8 digits, written `01310100` or `01310-100`, not
/// all zeros. Kept as its 8 digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cep(String);

impl Cep {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let bytes = raw.as_bytes();
        let digits: String = match bytes.len() {
            8 => raw.to_string(),
            9 if bytes[5] == b'-' => format!("{}{}", &raw[..5], &raw[6..]),
            _ => return Err(invalid("must be 8 digits, optionally written 12345-678")),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("must be 8 digits, optionally written 12345-678"));
        }
        if digits.bytes().all(|b| b == b'0') {
            return Err(invalid("is not a real CEP"));
        }
        Ok(Cep(digits))
    }

    /// The 8 digits.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// `12345-678`.
    pub fn formatted(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }
}

impl From<Cep> for String {
    fn from(c: Cep) -> String {
        c.formatted()
    }
}

/// The 27 federative units of Brazil (26 states and the Federal District).
pub const UFS: [&str; 27] = [
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB", "PR", "PE", "PI", "RJ",
    "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
];

/// A federative unit, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Uf(&'static str);

impl Uf {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let up = raw.trim().to_ascii_uppercase();
        UFS.iter()
            .find(|uf| **uf == up)
            .map(|uf| Uf(uf))
            .ok_or_else(|| invalid("must be one of the 27 UFs (SP, RJ, MG, ...)"))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// An e-mail address: `local@domain.tld`, no spaces, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let bad = || invalid("must be an e-mail address like ana@example.com");
        if s.is_empty() || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(bad());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
            || !domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad());
        }
        Ok(Email(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A trimmed, non-empty text of at most `max` characters.
pub fn text(raw: &str, max: usize) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(format!("must be at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(s.to_string())
}

/// Where the order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub recipient: String,
    pub street: String,
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    pub state: Uf,
    pub cep: Cep,
}

/// How the customer pays: a card token from the payment provider, or PIX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Payment {
    Card { token: String },
    Pix,
}

impl Payment {
    /// `kind` is `card` (with a `tok_...` token) or `pix` (without one).
    pub fn parse(kind: &str, token: Option<&str>) -> Result<Self, (&'static str, Invalid)> {
        match kind {
            "card" => {
                let token = token.map(str::trim).unwrap_or_default();
                let valid = token.len() > 4
                    && token.len() <= 255
                    && token.starts_with("tok_")
                    && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if valid {
                    Ok(Payment::Card { token: token.to_string() })
                } else {
                    Err(("token", invalid("a card payment needs the provider's token, like tok_visa")))
                }
            }
            "pix" if token.is_none() => Ok(Payment::Pix),
            "pix" => Err(("token", invalid("a PIX payment takes no token"))),
            _ => Err(("type", invalid("must be card or pix"))),
        }
    }
}

impl fmt::Display for Cep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.formatted())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_quantity_is_one_to_ninety_nine() {
        assert!(Quantity::parse(0).is_err());
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        assert_eq!(Quantity::parse(99).unwrap().get(), 99);
        assert!(Quantity::parse(100).is_err());
        assert!(Quantity::parse(-3).is_err());
    }

    #[test]
    fn a_cep_is_eight_digits_with_an_optional_hyphen() {
        assert_eq!(Cep::parse("01310-100").unwrap().digits(), "01310100");
        assert_eq!(Cep::parse(" 01310100 ").unwrap().formatted(), "01310-100");
        for bad in
            ["0131010", "013101000", "0131-0100", "01310--10", "0131a100", "00000-000", "00000000", "", "01310_100"]
        {
            assert!(Cep::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_uf_is_one_of_the_27() {
        assert_eq!(UFS.len(), 27);
        assert_eq!(Uf::parse("sp").unwrap().as_str(), "SP");
        assert_eq!(Uf::parse("DF").unwrap().as_str(), "DF");
        for bad in ["XX", "S", "SPP", "", "BR"] {
            assert!(Uf::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("ana@example.com").is_ok());
        assert!(Email::parse("ana.souza+loja@mail.example.com.br").is_ok());
        for bad in ["ana", "ana@", "@example.com", "ana@example", "ana@@example.com", "a na@example.com", "ana@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payments_are_a_card_token_or_pix() {
        assert_eq!(Payment::parse("card", Some("tok_visa")).unwrap(), Payment::Card { token: "tok_visa".into() });
        assert_eq!(Payment::parse("pix", None).unwrap(), Payment::Pix);
        assert_eq!(Payment::parse("card", None).unwrap_err().0, "token");
        assert_eq!(Payment::parse("card", Some("visa")).unwrap_err().0, "token");
        assert_eq!(Payment::parse("pix", Some("tok_x")).unwrap_err().0, "token");
        assert_eq!(Payment::parse("boleto", None).unwrap_err().0, "type");
        let json = serde_json::to_value(Payment::Card { token: "tok_visa".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "card", "token": "tok_visa"}));
        assert_eq!(serde_json::to_value(Payment::Pix).unwrap(), serde_json::json!({"type": "pix"}));
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("  Rua A ", 10).unwrap(), "Rua A");
        assert!(text("   ", 10).is_err());
        assert!(text("abcdefghijk", 10).is_err());
    }

    proptest! {
        #[test]
        fn any_eight_digits_but_zeros_are_a_cep(d in "[0-9]{8}") {
            let parsed = Cep::parse(&d);
            prop_assert_eq!(parsed.is_ok(), d != "00000000");
            if let Ok(cep) = parsed {
                prop_assert_eq!(Cep::parse(&cep.formatted()).unwrap(), cep);
            }
        }

        #[test]
        fn quantity_parse_accepts_exactly_its_range(n in any::<i64>()) {
            prop_assert_eq!(Quantity::parse(n).is_ok(), (1..=99).contains(&n));
        }
    }
}
