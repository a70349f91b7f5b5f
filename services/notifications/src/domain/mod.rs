//! Notifications' pure domain: what an e-mail is, who may receive it, and
//! how it reads (rendered from the templates). No I/O here.

pub mod render;

use time::OffsetDateTime;
use uuid::Uuid;

/// Which event an e-mail tells the customer about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    InvoiceIssued,
    OrderCancelled,
    ShipmentScheduled,
}

impl EmailKind {
    pub const ALL: [EmailKind; 3] = [EmailKind::InvoiceIssued, EmailKind::OrderCancelled, EmailKind::ShipmentScheduled];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::InvoiceIssued => "invoice_issued",
            EmailKind::OrderCancelled => "order_cancelled",
            EmailKind::ShipmentScheduled => "shipment_scheduled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        EmailKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownValue(s.to_string()))
    }
}

/// Where an e-mail is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    /// Waiting for the delivery worker (or for its next attempt).
    Pending,
    Sent,
    /// Every attempt failed, or the mail server refused it for good.
    Failed,
    /// Not sent: the order has no (valid) contact e-mail.
    Skipped,
}

impl EmailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Pending => "pending",
            EmailStatus::Sent => "sent",
            EmailStatus::Failed => "failed",
            EmailStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        [EmailStatus::Pending, EmailStatus::Sent, EmailStatus::Failed, EmailStatus::Skipped]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// An e-mail address as far as we can tell without sending to it: one `@`,
/// something on each side, no spaces or control characters, at most 254
/// characters. (The mail server has the last word.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an e-mail address")]
pub struct InvalidAddress(pub String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        let s = raw.trim();
        let bad = || InvalidAddress(raw.to_string());
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let ok = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        if ok { Ok(EmailAddress(s.to_string())) } else { Err(bad()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who receives an order's e-mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// `None` when the order was placed without a contact e-mail.
    pub email: Option<String>,
}

/// An e-mail as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub id: Uuid,
    pub kind: EmailKind,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub to: Option<String>,
    pub subject: String,
    pub body: String,
    pub status: EmailStatus,
    pub source_message_id: Uuid,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

impl Email {
    /// A new e-mail caused by message `source`: pending when it has a valid
    /// address, skipped otherwise (with the reason in `last_error`).
    pub fn new(
        kind: EmailKind,
        order_id: Uuid,
        customer_id: Uuid,
        to: Option<&str>,
        rendered: render::Rendered,
        source: Uuid,
        now: OffsetDateTime,
    ) -> Email {
        let now = kernel::time::stored(now);
        let (to, status, last_error) = match to.map(EmailAddress::parse) {
            Some(Ok(a)) => (Some(a.as_str().to_string()), EmailStatus::Pending, None),
            Some(Err(e)) => (None, EmailStatus::Skipped, Some(e.to_string())),
            None => (None, EmailStatus::Skipped, Some("the order has no contact e-mail".to_string())),
        };
        Email {
            id: Uuid::now_v7(),
            kind,
            order_id,
            customer_id,
            to,
            subject: rendered.subject,
            body: rendered.body,
            status,
            source_message_id: source,
            attempts: 0,
            next_attempt_at: now,
            last_error,
            created_at: now,
            sent_at: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(EmailAddress::parse(" ana@example.com ").unwrap().as_str(), "ana@example.com");
        for bad in ["", "ana", "@example.com", "ana@", "ana@@example.com", "a na@example.com", "ana@example", "<a@b.c>"]
        {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_email_without_an_address_is_skipped() {
        let r = || render::Rendered { subject: "s".into(), body: "b".into() };
        let now = OffsetDateTime::UNIX_EPOCH;
        let e = Email::new(EmailKind::InvoiceIssued, Uuid::nil(), Uuid::nil(), None, r(), Uuid::nil(), now);
        assert_eq!((e.status, e.to), (EmailStatus::Skipped, None));
        let e = Email::new(EmailKind::InvoiceIssued, Uuid::nil(), Uuid::nil(), Some("x"), r(), Uuid::nil(), now);
        assert_eq!(e.status, EmailStatus::Skipped);
        let e = Email::new(EmailKind::InvoiceIssued, Uuid::nil(), Uuid::nil(), Some("a@b.co"), r(), Uuid::nil(), now);
        assert_eq!((e.status, e.to.as_deref()), (EmailStatus::Pending, Some("a@b.co")));
    }

    #[test]
    fn kinds_round_trip() {
        for k in EmailKind::ALL {
            assert_eq!(EmailKind::parse(k.as_str()), Ok(k));
        }
        assert!(EmailKind::parse("spam").is_err());
    }
}
