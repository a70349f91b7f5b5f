//! Invoices' pure domain: an invoice is drawn from an order; no I/O here.

use time::OffsetDateTime;
use uuid::Uuid;

/// The series new invoices are numbered in.
pub const DEFAULT_SERIES: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

/// An issued nota fiscal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub series: String,
    pub number: i64,
    pub currency: String,
    /// Freight charged with the order (0 when none); the total is the lines plus this.
    pub freight_cents: i64,
    pub total_cents: i64,
    pub lines: Vec<InvoiceLine>,
    pub issued_at: OffsetDateTime,
}

/// What an invoice is drawn from, before it has a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDraft {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub freight_cents: i64,
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("an invoice needs at least one line")]
    NoLines,
    #[error("line {0} is invalid: quantity must be positive and its total must equal quantity x unit price")]
    BadLine(usize),
    #[error("freight {0} is negative")]
    Freight(i64),
    #[error("the order total {stated} is not the sum of its lines and freight {computed}")]
    TotalMismatch { stated: i64, computed: i64 },
    #[error("currency {0:?} is not an ISO 4217 code")]
    Currency(String),
}

impl InvoiceDraft {
    /// Checks that the order is internally consistent before it is invoiced:
    /// its total is the sum of its lines plus the freight.
    pub fn new(
        order_id: Uuid,
        customer_id: Uuid,
        currency: String,
        lines: Vec<InvoiceLine>,
        freight_cents: i64,
        total_cents: i64,
    ) -> Result<Self, DraftError> {
        if lines.is_empty() {
            return Err(DraftError::NoLines);
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(DraftError::Currency(currency));
        }
        let mut computed: i64 = 0;
        for (i, l) in lines.iter().enumerate() {
            let expected = l.unit_price_cents.checked_mul(i64::from(l.quantity));
            if l.quantity <= 0 || l.unit_price_cents < 0 || expected != Some(l.line_total_cents) {
                return Err(DraftError::BadLine(i));
            }
            computed = computed.checked_add(l.line_total_cents).ok_or(DraftError::BadLine(i))?;
        }
        if freight_cents < 0 {
            return Err(DraftError::Freight(freight_cents));
        }
        let computed = computed.checked_add(freight_cents).ok_or(DraftError::Freight(freight_cents))?;
        if computed != total_cents {
            return Err(DraftError::TotalMismatch { stated: total_cents, computed });
        }
        Ok(InvoiceDraft { order_id, customer_id, currency, lines, freight_cents, total_cents })
    }

    /// The invoice, once the series has given it a number. Its time is kept
    /// to the microsecond, as stored, so the event and the API agree.
    pub fn issue(self, series: &str, number: i64, now: OffsetDateTime) -> Invoice {
        let now = kernel::time::stored(now);
        Invoice {
            id: Uuid::now_v7(),
            order_id: self.order_id,
            customer_id: self.customer_id,
            series: series.to_string(),
            number,
            currency: self.currency,
            freight_cents: self.freight_cents,
            total_cents: self.total_cents,
            lines: self.lines,
            issued_at: now,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(q: i32, p: i64) -> InvoiceLine {
        InvoiceLine { sku: "A".into(), quantity: q, unit_price_cents: p, line_total_cents: i64::from(q) * p }
    }

    #[test]
    fn a_consistent_order_makes_a_draft() {
        let d = InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![line(2, 1990), line(1, 10)], 0, 3990)
            .unwrap();
        let inv = d.issue("1", 7, OffsetDateTime::UNIX_EPOCH);
        assert_eq!((inv.series.as_str(), inv.number, inv.total_cents), ("1", 7, 3990));
    }

    #[test]
    fn the_total_of_an_order_with_freight_includes_it() {
        let d = InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![line(2, 1990)], 1500, 5480).unwrap();
        let inv = d.issue("1", 1, OffsetDateTime::UNIX_EPOCH);
        assert_eq!((inv.freight_cents, inv.total_cents), (1500, 5480));
        assert!(matches!(
            InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![line(2, 1990)], 1500, 3980),
            Err(DraftError::TotalMismatch { .. })
        ));
        assert_eq!(
            InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![line(2, 1990)], -1, 3979),
            Err(DraftError::Freight(-1))
        );
    }

    #[test]
    fn an_inconsistent_order_is_refused() {
        assert_eq!(InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![], 0, 0), Err(DraftError::NoLines));
        assert!(matches!(
            InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![line(1, 5)], 0, 6),
            Err(DraftError::TotalMismatch { .. })
        ));
        let mut bad = line(2, 5);
        bad.line_total_cents = 11;
        assert_eq!(
            InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "BRL".into(), vec![bad], 0, 11),
            Err(DraftError::BadLine(0))
        );
        assert!(InvoiceDraft::new(Uuid::nil(), Uuid::nil(), "brl".into(), vec![line(1, 5)], 0, 5).is_err());
    }
}
