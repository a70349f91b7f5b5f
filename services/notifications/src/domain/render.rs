//! The e-mails' words: Portuguese templates (`templates/*.txt`, embedded in
//! the binary) rendered with minijinja. A template's first line is the
//! subject; the body starts after the blank line that follows it.

use std::sync::OnceLock;

use contracts::invoices::InvoiceIssuedV1;
use contracts::orders::OrderCancelledV1;
use contracts::shipping::ShipmentScheduledV1;
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, context};
use time::{Date, OffsetDateTime};

use super::EmailKind;

const TEMPLATES: [(EmailKind, &str); 3] = [
    (EmailKind::InvoiceIssued, include_str!("../../templates/invoice_issued.txt")),
    (EmailKind::OrderCancelled, include_str!("../../templates/order_cancelled.txt")),
    (EmailKind::ShipmentScheduled, include_str!("../../templates/shipment_scheduled.txt")),
];

/// A rendered e-mail: one subject line and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// A template failed to render: a defect of the template, not of the event.
#[derive(Debug, thiserror::Error)]
#[error("render the {kind} e-mail: {source}")]
pub struct RenderError {
    kind: &'static str,
    #[source]
    source: minijinja::Error,
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Block tags on their own lines leave no blank lines behind. (The
        // builder only fails for custom delimiters; the tests would show it.)
        if let Ok(syntax) = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
            env.set_syntax(syntax);
        }
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (kind, source) in TEMPLATES {
            // A template that does not compile fails at render, with its error.
            let _ = env.add_template(kind.as_str(), source);
        }
        env
    })
}

fn render(kind: EmailKind, ctx: minijinja::Value) -> Result<Rendered, RenderError> {
    let err = |source| RenderError { kind: kind.as_str(), source };
    let text = env().get_template(kind.as_str()).and_then(|t| t.render(ctx)).map_err(err)?;
    let (subject, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    Ok(Rendered { subject: subject.trim().to_string(), body: format!("{}\n", body.trim_matches('\n')) })
}

pub fn invoice_issued(e: &InvoiceIssuedV1) -> Result<Rendered, RenderError> {
    render(
        EmailKind::InvoiceIssued,
        context! {
            number => e.number,
            series => e.series.as_str(),
            order_id => e.order_id.to_string(),
            total => money(e.total_cents, &e.currency),
            issued_at => date_time(e.issued_at),
        },
    )
}

pub fn order_cancelled(e: &OrderCancelledV1) -> Result<Rendered, RenderError> {
    render(
        EmailKind::OrderCancelled,
        context! {
            order_id => e.order_id.to_string(),
            reason => reason_in_words(&e.reason),
            refund_requested => e.refund_requested,
        },
    )
}

pub fn shipment_scheduled(e: &ShipmentScheduledV1) -> Result<Rendered, RenderError> {
    render(
        EmailKind::ShipmentScheduled,
        context! {
            order_id => e.order_id.to_string(),
            carrier => e.carrier.as_str(),
            service => e.service.as_str(),
            tracking_code => e.tracking_code.as_str(),
            estimated_delivery => date(e.estimated_delivery),
        },
    )
}

/// Why an order was cancelled, as the customer reads it after "porque".
pub fn reason_in_words(reason: &str) -> String {
    match reason {
        "out_of_stock" => "um ou mais produtos ficaram sem estoque".into(),
        "payment_declined" => "o pagamento foi recusado".into(),
        "payment_failed" => "não foi possível processar o pagamento".into(),
        "timeout" => "não conseguimos concluir o pedido a tempo".into(),
        "customer_request" => "você pediu o cancelamento".into(),
        "price_changed" => "o preço de um ou mais produtos mudou".into(),
        other => format!("ocorreu um problema ({})", other.replace('_', " ")),
    }
}

/// `R$ 1.234,56`, the Brazilian way.
pub fn money(cents: i64, currency: &str) -> String {
    let symbol = match currency {
        "BRL" => "R$",
        "USD" => "US$",
        "EUR" => "€",
        other => other,
    };
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{sign}{symbol} {grouped},{:02}", abs % 100)
}

/// `dd/mm/aaaa`.
pub fn date(d: Date) -> String {
    format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year())
}

/// `dd/mm/aaaa hh:mm (UTC)`.
pub fn date_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} (UTC)", date(t.date()), t.hour(), t.minute())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_the_brazilian_way() {
        assert_eq!(money(0, "BRL"), "R$ 0,00");
        assert_eq!(money(5, "BRL"), "R$ 0,05");
        assert_eq!(money(3980, "BRL"), "R$ 39,80");
        assert_eq!(money(123_456_789, "BRL"), "R$ 1.234.567,89");
        assert_eq!(money(100_000, "USD"), "US$ 1.000,00");
        assert_eq!(money(-150, "EUR"), "-€ 1,50");
    }

    #[test]
    fn the_invoice_email_names_its_number() {
        let mut e = InvoiceIssuedV1::example();
        e.number = 42;
        let r = invoice_issued(&e).unwrap();
        assert_eq!(r.subject, "Sua nota fiscal nº 42");
        assert!(r.body.contains("Nota fiscal: nº 42 (série 1)"), "{}", r.body);
        assert!(r.body.contains("R$ 39,80"), "{}", r.body);
        assert!(r.body.starts_with("Olá,") && r.body.ends_with("feira!\n"), "{:?}", r.body);
    }

    #[test]
    fn the_cancellation_email_gives_the_reason_in_words() {
        let e = OrderCancelledV1 {
            order_id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            reason: "payment_declined".into(),
            refund_requested: true,
            contact_email: None,
            cancelled_at: OffsetDateTime::UNIX_EPOCH,
        };
        let r = order_cancelled(&e).unwrap();
        assert_eq!(r.subject, "Seu pedido foi cancelado");
        assert!(r.body.contains("foi cancelado porque o pagamento foi recusado."), "{}", r.body);
        assert!(r.body.contains("será estornado"), "{}", r.body);
        assert!(!r.body.contains("{%"), "{}", r.body);
        let r =
            order_cancelled(&OrderCancelledV1 { refund_requested: false, reason: "odd_thing".into(), ..e }).unwrap();
        assert!(r.body.contains("Nenhum valor foi cobrado."), "{}", r.body);
        assert!(r.body.contains("ocorreu um problema (odd thing)"), "{}", r.body);
    }

    #[test]
    fn the_shipment_email_gives_the_tracking_code() {
        let e = ShipmentScheduledV1 {
            shipment_id: uuid::Uuid::nil(),
            order_id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            carrier: "Correios".into(),
            service: "SEDEX".into(),
            tracking_code: "BR123456789BR".into(),
            estimated_delivery: time::macros::date!(2026 - 12 - 03),
            scheduled_at: OffsetDateTime::UNIX_EPOCH,
        };
        let r = shipment_scheduled(&e).unwrap();
        assert_eq!(r.subject, "Seu pedido foi enviado — código de rastreio BR123456789BR");
        assert!(r.body.contains("Previsão de entrega: 03/12/2026"), "{}", r.body);
        assert!(r.body.contains("Correios (SEDEX)"), "{}", r.body);
    }
}
