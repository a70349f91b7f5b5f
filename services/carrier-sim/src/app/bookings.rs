//! Booked shipments, kept in memory for the life of the process. One lock
//! covers the key check and the booking, so concurrent requests with one
//! `Idempotency-Key` book one shipment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::CarrierError;
use crate::domain::{NewShipment, Shipment};

/// The most shipments one list answers.
pub const LIST_LIMIT: usize = 1000;

/// The result of a booking request.
#[derive(Debug, Clone)]
pub struct Booked {
    pub shipment: Shipment,
    /// A replay of an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Debug, Default)]
struct Book {
    /// Oldest first.
    shipments: Vec<Shipment>,
    /// Idempotency key → (request fingerprint, index in `shipments`).
    keys: HashMap<String, (String, usize)>,
}

/// The carrier's bookings; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Bookings(Arc<Mutex<Book>>);

impl Bookings {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Books `req` once per `key`.
    pub fn book(&self, key: &str, req: &NewShipment) -> Result<Booked, CarrierError> {
        let fingerprint = req.fingerprint();
        let mut book = self.lock();
        if let Some((seen, index)) = book.keys.get(key) {
            if *seen != fingerprint {
                return Err(CarrierError::Idempotency(format!(
                    "keys for idempotent requests can only be used with the same parameters they were first \
                     used with; key {key:?} was used with different ones"
                )));
            }
            let shipment = book.shipments.get(*index).cloned().ok_or(CarrierError::Lost)?;
            return Ok(Booked { shipment, replayed: true });
        }
        let serial = loop {
            let candidate = fresh_serial();
            if !book.shipments.iter().any(|s| s.tracking_code[2..10] == format!("{candidate:08}")) {
                break candidate;
            }
        };
        let id = format!("sh_{}", uuid::Uuid::now_v7().simple());
        let shipment = Shipment::book(id, serial, req, kernel::time::now());
        let index = book.shipments.len();
        book.shipments.push(shipment.clone());
        book.keys.insert(key.to_string(), (fingerprint, index));
        tracing::info!(shipment = %shipment.id, tracking_code = %shipment.tracking_code, reference = %shipment.reference, "shipment booked");
        Ok(Booked { shipment, replayed: false })
    }

    pub fn get(&self, id: &str) -> Option<Shipment> {
        self.lock().shipments.iter().find(|s| s.id == id).cloned()
    }

    /// Shipments oldest first, of one reference or of all.
    pub fn list(&self, reference: Option<&str>) -> Vec<Shipment> {
        self.lock()
            .shipments
            .iter()
            .filter(|s| reference.is_none_or(|r| s.reference == r))
            .take(LIST_LIMIT)
            .cloned()
            .collect()
    }
}

/// A random 8-digit parcel serial.
fn fresh_serial() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 100_000_000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(weight: i64) -> NewShipment {
        NewShipment::parse("PAC", "01310100", "20040002", weight, "order-1").unwrap()
    }

    #[test]
    fn one_key_books_once_and_refuses_another_request() {
        let b = Bookings::default();
        let first = b.book("k1", &req(500)).unwrap();
        let again = b.book("k1", &req(500)).unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(first.shipment, again.shipment);
        assert!(matches!(b.book("k1", &req(600)), Err(CarrierError::Idempotency(_))));
        b.book("k2", &req(500)).unwrap();
        assert_eq!(b.list(Some("order-1")).len(), 2);
        assert!(b.list(Some("order-2")).is_empty());
        assert_eq!(b.get(&first.shipment.id), Some(first.shipment));
    }
}
