//! Refunds: only a succeeded charge can be refunded, never beyond what it
//! charged.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Charge, ChargeStatus, Invalid};

/// A refund, as the provider's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Refund {
    #[schema(example = "re_0193a0c2d6f87c3e9b1d2a4f5e6d7c8b")]
    pub id: String,
    /// The refunded charge's id.
    pub charge: String,
    pub amount_cents: i64,
    /// Always `succeeded`: the simulated provider refunds at once.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Refunds `requested` cents of `charge` (all that is left when `None`):
/// updates the charge's `refunded_cents` and returns the refund.
pub fn refund(charge: &mut Charge, requested: Option<i64>, id: String, now: OffsetDateTime) -> Result<Refund, Invalid> {
    if charge.status != ChargeStatus::Succeeded {
        return Err(Invalid(format!(
            "charge {} is {}; only succeeded charges can be refunded",
            charge.id,
            charge.status.as_str()
        )));
    }
    let left = charge.amount_cents - charge.refunded_cents;
    let amount = requested.unwrap_or(left);
    if left == 0 {
        return Err(Invalid(format!("charge {} has already been refunded", charge.id)));
    }
    if amount <= 0 {
        return Err(Invalid(format!("amount_cents must be a positive integer, got {amount}")));
    }
    if amount > left {
        return Err(Invalid(format!(
            "refund amount ({amount}) is greater than the unrefunded amount on charge {} ({left})",
            charge.id
        )));
    }
    charge.refunded_cents += amount;
    Ok(Refund { id, charge: charge.id.clone(), amount_cents: amount, status: "succeeded".into(), created_at: now })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{NewCharge, Source};

    fn charge(token: &str) -> Charge {
        let req = NewCharge::parse(1000, "BRL", Source::card(token).unwrap(), "o", None).unwrap();
        Charge::open("ch_1".into(), &req, kernel::time::now())
    }

    #[test]
    fn refunds_default_to_the_rest_and_never_exceed_the_charge() {
        let now = kernel::time::now();
        let mut c = charge("tok_visa");
        assert_eq!(refund(&mut c, Some(300), "re_1".into(), now).unwrap().amount_cents, 300);
        assert!(refund(&mut c, Some(701), "re_2".into(), now).is_err());
        assert_eq!(c.refunded_cents, 300);
        assert_eq!(refund(&mut c, None, "re_3".into(), now).unwrap().amount_cents, 700);
        assert_eq!(c.refunded_cents, 1000);
        assert!(refund(&mut c, None, "re_4".into(), now).is_err());
    }

    #[test]
    fn only_succeeded_charges_are_refunded() {
        let mut c = charge("tok_chargeDeclined");
        assert!(refund(&mut c, None, "re_1".into(), kernel::time::now()).is_err());
        let mut c = charge("tok_visa");
        assert!(refund(&mut c, Some(0), "re_1".into(), kernel::time::now()).is_err());
    }
}
