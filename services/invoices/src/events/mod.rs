//! Consumed messages (one handler per file) and published-event mappers.

pub mod order_confirmed;

use contracts::invoices::InvoiceIssuedV1;

use crate::domain::Invoice;

pub fn invoice_issued(inv: &Invoice) -> InvoiceIssuedV1 {
    InvoiceIssuedV1 {
        invoice_id: inv.id,
        order_id: inv.order_id,
        customer_id: inv.customer_id,
        series: inv.series.clone(),
        number: inv.number,
        currency: inv.currency.clone(),
        total_cents: inv.total_cents,
        issued_at: inv.issued_at,
    }
}
