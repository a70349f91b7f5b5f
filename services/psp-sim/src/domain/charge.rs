//! Charges: a card charge succeeds or fails at once, by its test token; a
//! PIX charge waits for the customer to pay.

use kernel::money::{Cents, Currency};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Invalid, pix};

/// How long a PIX code can be paid.
pub const PIX_VALIDITY: time::Duration = time::Duration::minutes(30);
/// Longest `order_ref` accepted.
pub const MAX_REF_LEN: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Pending,
    Failed,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Succeeded => "succeeded",
            ChargeStatus::Pending => "pending",
            ChargeStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(ChargeStatus::Succeeded),
            "pending" => Some(ChargeStatus::Pending),
            "failed" => Some(ChargeStatus::Failed),
            _ => None,
        }
    }
}

/// Why a card charge failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    CardDeclined,
    InsufficientFunds,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::CardDeclined => "card_declined",
            FailureCode::InsufficientFunds => "insufficient_funds",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "card_declined" => Some(FailureCode::CardDeclined),
            "insufficient_funds" => Some(FailureCode::InsufficientFunds),
            _ => None,
        }
    }
}

/// What is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A card token: `tok_chargeDeclined`, `tok_chargeDeclinedInsufficientFunds`
    /// fail; any other `tok_...` succeeds.
    Card {
        token: String,
    },
    Pix,
}

impl Source {
    pub fn card(token: &str) -> Result<Self, Invalid> {
        match token.strip_prefix("tok_") {
            Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Ok(Source::Card { token: token.to_string() })
            }
            _ => Err(Invalid(format!("no such token: {token:?}; card tokens look like tok_visa"))),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Source::Card { .. } => "card",
            Source::Pix => "pix",
        }
    }

    /// The outcome a card token decides (`None` for a PIX source).
    fn card_outcome(&self) -> Option<Result<(), FailureCode>> {
        match self {
            Source::Card { token } => Some(match token.as_str() {
                "tok_chargeDeclined" => Err(FailureCode::CardDeclined),
                "tok_chargeDeclinedInsufficientFunds" => Err(FailureCode::InsufficientFunds),
                _ => Ok(()),
            }),
            Source::Pix => None,
        }
    }
}

/// A valid charge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    pub amount: Cents,
    pub currency: Currency,
    pub source: Source,
    pub order_ref: String,
    pub notify_url: Option<String>,
}

impl NewCharge {
    pub fn parse(
        amount_cents: i64,
        currency: &str,
        source: Source,
        order_ref: &str,
        notify_url: Option<&str>,
    ) -> Result<Self, Invalid> {
        if amount_cents <= 0 {
            return Err(Invalid(format!("amount_cents must be a positive integer, got {amount_cents}")));
        }
        let amount = Cents::parse(amount_cents).map_err(|e| Invalid(format!("amount_cents {e}")))?;
        let currency = Currency::parse(currency).map_err(|e| Invalid(e.to_string()))?;
        if source == Source::Pix && currency != Currency::Brl {
            return Err(Invalid(format!("pix charges are in BRL only, got {currency}")));
        }
        let order_ref = order_ref.trim();
        if order_ref.is_empty() || order_ref.len() > MAX_REF_LEN {
            return Err(Invalid(format!("order_ref must be 1 to {MAX_REF_LEN} characters")));
        }
        let notify_url = match notify_url.map(str::trim) {
            None | Some("") => None,
            Some(u) if (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048 => {
                Some(u.to_string())
            }
            Some(u) => return Err(Invalid(format!("notify_url must be an http(s) URL, got {u:?}"))),
        };
        Ok(NewCharge { amount, currency, source, order_ref: order_ref.to_string(), notify_url })
    }

    /// What makes two requests the same for one `Idempotency-Key`: the
    /// parsed fields, so key order and spacing in the JSON do not matter.
    pub fn fingerprint(&self) -> String {
        let source = match &self.source {
            Source::Card { token } => format!("card:{token}"),
            Source::Pix => "pix".to_string(),
        };
        format!(
            "charge|{}|{}|{source}|{}|{}",
            self.amount.get(),
            self.currency,
            self.order_ref,
            self.notify_url.as_deref().unwrap_or("")
        )
    }
}

/// The code the customer pastes in the bank app, and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PixDetails {
    /// The PIX "copia e cola" (EMV BR Code) string.
    pub code: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// A charge, as the provider's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Charge {
    #[schema(example = "ch_0193a0c2d6f87c3e9b1d2a4f5e6d7c8b")]
    pub id: String,
    pub status: ChargeStatus,
    pub amount_cents: i64,
    #[schema(example = "BRL")]
    pub currency: String,
    pub order_ref: String,
    /// `card` or `pix`.
    pub source_type: String,
    pub failure_code: Option<FailureCode>,
    pub pix: Option<PixDetails>,
    pub refunded_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Where PIX callbacks go (not shown).
    #[serde(skip)]
    pub notify_url: Option<String>,
    /// The card token charged (not shown).
    #[serde(skip)]
    pub card_token: Option<String>,
}

impl Charge {
    /// The charge `req` creates at `now`: a card is decided at once by its
    /// token, a PIX charge is pending with a code valid for 30 minutes.
    pub fn open(id: String, req: &NewCharge, now: OffsetDateTime) -> Charge {
        let (status, failure_code, pix) = match req.source.card_outcome() {
            Some(Ok(())) => (ChargeStatus::Succeeded, None, None),
            Some(Err(code)) => (ChargeStatus::Failed, Some(code), None),
            None => {
                let code = pix::copia_e_cola(&id, req.amount);
                (ChargeStatus::Pending, None, Some(PixDetails { code, expires_at: now + PIX_VALIDITY }))
            }
        };
        Charge {
            status,
            amount_cents: req.amount.get(),
            currency: req.currency.code().to_string(),
            order_ref: req.order_ref.clone(),
            source_type: req.source.type_name().to_string(),
            failure_code,
            pix,
            refunded_cents: 0,
            created_at: now,
            notify_url: req.notify_url.clone(),
            card_token: match &req.source {
                Source::Card { token } => Some(token.clone()),
                Source::Pix => None,
            },
            id,
        }
    }

    /// The customer paid the PIX code at `now`.
    pub fn pay_pix(&mut self, now: OffsetDateTime) -> Result<(), Invalid> {
        if self.source_type != "pix" {
            return Err(Invalid(format!("charge {} is not a pix charge", self.id)));
        }
        if self.status != ChargeStatus::Pending {
            return Err(Invalid(format!("charge {} is {}, not pending", self.id, self.status.as_str())));
        }
        if self.pix.as_ref().is_some_and(|p| now > p.expires_at) {
            return Err(Invalid(format!("the pix code of charge {} has expired", self.id)));
        }
        self.status = ChargeStatus::Succeeded;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn card(token: &str) -> NewCharge {
        NewCharge::parse(1000, "BRL", Source::card(token).unwrap(), "order-1", None).unwrap()
    }

    #[test]
    fn card_tokens_decide_the_outcome() {
        let now = kernel::time::now();
        let ok = Charge::open("ch_1".into(), &card("tok_visa"), now);
        assert_eq!((ok.status, ok.failure_code), (ChargeStatus::Succeeded, None));
        let ok = Charge::open("ch_2".into(), &card("tok_anything_else"), now);
        assert_eq!(ok.status, ChargeStatus::Succeeded);
        let no = Charge::open("ch_3".into(), &card("tok_chargeDeclined"), now);
        assert_eq!((no.status, no.failure_code), (ChargeStatus::Failed, Some(FailureCode::CardDeclined)));
        let no = Charge::open("ch_4".into(), &card("tok_chargeDeclinedInsufficientFunds"), now);
        assert_eq!(no.failure_code, Some(FailureCode::InsufficientFunds));
    }

    #[test]
    fn tokens_must_look_like_tokens() {
        assert!(Source::card("visa").is_err());
        assert!(Source::card("tok_").is_err());
        assert!(Source::card("tok_visa x").is_err());
    }

    #[test]
    fn bad_amounts_currencies_and_refs_are_refused() {
        let src = || Source::card("tok_visa").unwrap();
        assert!(NewCharge::parse(0, "BRL", src(), "o", None).is_err());
        assert!(NewCharge::parse(-5, "BRL", src(), "o", None).is_err());
        assert!(NewCharge::parse(100, "XYZ", src(), "o", None).is_err());
        assert!(NewCharge::parse(100, "BRL", src(), " ", None).is_err());
        assert!(NewCharge::parse(100, "USD", Source::Pix, "o", None).is_err());
        assert!(NewCharge::parse(100, "BRL", Source::Pix, "o", Some("ftp://x")).is_err());
        assert!(NewCharge::parse(100, "BRL", Source::Pix, "o", Some("http://127.0.0.1:9/cb")).is_ok());
    }

    #[test]
    fn a_pix_charge_is_pending_until_paid_within_its_validity() {
        let now = kernel::time::now();
        let req = NewCharge::parse(2590, "BRL", Source::Pix, "o", None).unwrap();
        let mut c = Charge::open("ch_5".into(), &req, now);
        assert_eq!(c.status, ChargeStatus::Pending);
        let pix = c.pix.clone().unwrap();
        assert_eq!(pix.expires_at, now + PIX_VALIDITY);
        let mut late = c.clone();
        assert!(late.pay_pix(now + PIX_VALIDITY + time::Duration::seconds(1)).is_err());
        c.pay_pix(now).unwrap();
        assert_eq!(c.status, ChargeStatus::Succeeded);
        assert!(c.pay_pix(now).is_err(), "a paid charge cannot be paid again");
    }

    #[test]
    fn the_wire_shape_is_the_documented_one() {
        let c = Charge::open("ch_6".into(), &card("tok_chargeDeclined"), kernel::time::now());
        let v = serde_json::to_value(&c).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "amount_cents",
                "created_at",
                "currency",
                "failure_code",
                "id",
                "order_ref",
                "pix",
                "refunded_cents",
                "source_type",
                "status"
            ]
        );
        assert_eq!(v["failure_code"], "card_declined");
        assert_eq!(v["status"], "failed");
        assert!(v["pix"].is_null());
    }
}
