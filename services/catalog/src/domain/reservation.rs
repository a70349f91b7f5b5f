//! Stock reservations of the order saga: all lines or none, one outcome per
//! order, held until committed, released or expired.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::stock::StockLevel;
use super::values::Quantity;

/// Lines one reservation may have.
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLine {
    pub product_id: Uuid,
    pub quantity: Quantity,
}

/// A valid request to reserve stock for an order: 1 to [`MAX_LINES`] lines,
/// one per product (lines of the same product are added up), in product
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub order_id: Uuid,
    pub lines: Vec<ReservationLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("a reservation needs between 1 and {MAX_LINES} lines")]
    LineCount,
    #[error("the lines of product {0} add up to more than {max} units", max = Quantity::MAX)]
    TooMuch(Uuid),
}

impl ReservationRequest {
    pub fn new(order_id: Uuid, lines: Vec<ReservationLine>) -> Result<Self, RequestError> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(RequestError::LineCount);
        }
        let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
        for l in lines {
            *merged.entry(l.product_id).or_default() += l.quantity.get();
        }
        let lines = merged
            .into_iter()
            .map(|(product_id, q)| {
                Quantity::parse(q)
                    .map(|quantity| ReservationLine { product_id, quantity })
                    .map_err(|_| RequestError::TooMuch(product_id))
            })
            .collect::<Result<_, _>>()?;
        Ok(ReservationRequest { order_id, lines })
    }

    /// The products, in order (the order their stock rows are locked in).
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|l| l.product_id).collect()
    }
}

/// The locked stock of a product and whether it may be sold now (it exists,
/// is active and not deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub level: StockLevel,
    pub sellable: bool,
}

/// Why nothing was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    OutOfStock,
    UnknownProduct,
    InvalidRequest,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfStock => "out_of_stock",
            RejectReason::UnknownProduct => "unknown_product",
            RejectReason::InvalidRequest => "invalid_request",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "out_of_stock" => Some(RejectReason::OutOfStock),
            "unknown_product" => Some(RejectReason::UnknownProduct),
            "invalid_request" => Some(RejectReason::InvalidRequest),
            _ => None,
        }
    }
}

/// A line that could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortLine {
    pub product_id: Uuid,
    pub requested: i64,
    /// 0 for an unknown, inactive or deleted product.
    pub available: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Reserve,
    Reject { reason: RejectReason, short_lines: Vec<ShortLine> },
}

/// Every line is served, or none: a line is short when its product cannot
/// be sold (`unknown_product`, which wins) or has fewer units available than
/// asked (`out_of_stock`). Every short line is reported.
pub fn decide(request: &ReservationRequest, stock: &[Availability]) -> Decision {
    let mut unknown = false;
    let mut short_lines = Vec::new();
    for line in &request.lines {
        let requested = line.quantity.get();
        match stock.iter().find(|s| s.level.product_id == line.product_id) {
            Some(s) if s.sellable => {
                if s.level.available() < requested {
                    short_lines.push(ShortLine {
                        product_id: line.product_id,
                        requested,
                        available: s.level.available(),
                    });
                }
            }
            _ => {
                unknown = true;
                short_lines.push(ShortLine { product_id: line.product_id, requested, available: 0 });
            }
        }
    }
    match (short_lines.is_empty(), unknown) {
        (true, _) => Decision::Reserve,
        (false, true) => Decision::Reject { reason: RejectReason::UnknownProduct, short_lines },
        (false, false) => Decision::Reject { reason: RejectReason::OutOfStock, short_lines },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Stock is held until `expires_at`.
    Reserved,
    /// Nothing was held.
    Rejected,
    /// Given back by a release command.
    Released,
    /// Sold.
    Committed,
    /// Given back because it was neither committed nor released in time.
    Expired,
    /// Sold, then given back: the order was cancelled before it shipped.
    Returned,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "reserved",
            ReservationStatus::Rejected => "rejected",
            ReservationStatus::Released => "released",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reserved" => Some(ReservationStatus::Reserved),
            "rejected" => Some(ReservationStatus::Rejected),
            "released" => Some(ReservationStatus::Released),
            "committed" => Some(ReservationStatus::Committed),
            "expired" => Some(ReservationStatus::Expired),
            "returned" => Some(ReservationStatus::Returned),
            _ => None,
        }
    }
}

/// One line of a recorded reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedLine {
    pub product_id: Uuid,
    pub quantity: i64,
    /// For a rejected reservation, what was available of a short line.
    pub short_available: Option<i64>,
}

/// The recorded outcome of an order's reservation and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub order_id: Uuid,
    pub status: ReservationStatus,
    /// Why it was rejected, or the reason a release gave.
    pub reason: Option<String>,
    pub lines: Vec<ReservedLine>,
    /// When unreleased stock goes back; `None` for a rejection.
    pub expires_at: Option<OffsetDateTime>,
    /// The correlation of the flow that asked for it.
    pub correlation_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a release or commit does to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Stock moves and the reservation becomes this.
    Apply(Reservation),
    /// It was already done: nothing moves, the same answer is given again.
    Repeat,
    /// It cannot be done in this state: nothing moves.
    Refuse,
}

impl Reservation {
    /// Records `decision` for `request`; a reservation holds until `now + ttl`.
    pub fn decided(
        request: &ReservationRequest,
        decision: &Decision,
        ttl: Duration,
        correlation_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Self {
        let (status, reason, expires_at, short) = match decision {
            Decision::Reserve => (ReservationStatus::Reserved, None, Some(now + ttl), &[][..]),
            Decision::Reject { reason, short_lines } => {
                (ReservationStatus::Rejected, Some(reason.as_str().to_string()), None, &short_lines[..])
            }
        };
        let lines = request
            .lines
            .iter()
            .map(|l| ReservedLine {
                product_id: l.product_id,
                quantity: l.quantity.get(),
                short_available: short.iter().find(|s| s.product_id == l.product_id).map(|s| s.available),
            })
            .collect();
        Reservation {
            order_id: request.order_id,
            status,
            reason,
            lines,
            expires_at,
            correlation_id,
            created_at: now,
            updated_at: now,
        }
    }

    /// True when this is the outcome of a request for exactly these lines.
    pub fn asks_for(&self, request: &ReservationRequest) -> bool {
        self.lines.len() == request.lines.len()
            && self
                .lines
                .iter()
                .zip(&request.lines)
                .all(|(a, b)| a.product_id == b.product_id && a.quantity == b.quantity.get())
    }

    /// Why it was rejected; `None` unless it was.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self.status {
            ReservationStatus::Rejected => self.reason.as_deref().and_then(RejectReason::parse),
            _ => None,
        }
    }

    pub fn short_lines(&self) -> Vec<ShortLine> {
        self.lines
            .iter()
            .filter_map(|l| {
                l.short_available.map(|available| ShortLine {
                    product_id: l.product_id,
                    requested: l.quantity,
                    available,
                })
            })
            .collect()
    }

    /// `(product, quantity)` of every line.
    pub fn quantities(&self) -> Vec<(Uuid, i64)> {
        self.lines.iter().map(|l| (l.product_id, l.quantity)).collect()
    }

    /// Held past its time: it must expire before anything else happens to it.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.status == ReservationStatus::Reserved && self.expires_at.is_some_and(|t| t <= now)
    }

    /// The reservation once its time is over; `None` unless it holds stock.
    pub fn expired(&self, now: OffsetDateTime) -> Option<Reservation> {
        (self.status == ReservationStatus::Reserved).then(|| Reservation {
            status: ReservationStatus::Expired,
            updated_at: now,
            ..self.clone()
        })
    }

    /// Compensation: held stock goes back; released or expired stock is
    /// already back; a rejection or a sale holds nothing to give back.
    pub fn release(&self, reason: &str, now: OffsetDateTime) -> Transition {
        match self.status {
            ReservationStatus::Reserved => Transition::Apply(Reservation {
                status: ReservationStatus::Released,
                reason: Some(reason.to_string()),
                updated_at: now,
                ..self.clone()
            }),
            // A sale undone before shipment: the units go back on the shelf.
            ReservationStatus::Committed => Transition::Apply(Reservation {
                status: ReservationStatus::Returned,
                reason: Some(reason.to_string()),
                updated_at: now,
                ..self.clone()
            }),
            ReservationStatus::Released | ReservationStatus::Expired | ReservationStatus::Returned => {
                Transition::Repeat
            }
            ReservationStatus::Rejected => Transition::Refuse,
        }
    }

    /// The sale: held stock is sold once; stock given back (or never held)
    /// is not sold.
    pub fn commit(&self, now: OffsetDateTime) -> Transition {
        match self.status {
            ReservationStatus::Reserved => {
                Transition::Apply(Reservation { status: ReservationStatus::Committed, updated_at: now, ..self.clone() })
            }
            ReservationStatus::Committed => Transition::Repeat,
            ReservationStatus::Rejected
            | ReservationStatus::Released
            | ReservationStatus::Expired
            | ReservationStatus::Returned => Transition::Refuse,
        }
    }

    /// The `reason` of the `StockReleasedV1` that describes this state:
    /// `released`, `expired`, `returned` (sold, then given back), or
    /// `nothing_reserved` (rejected, sold, held).
    pub fn released_reason(&self) -> &'static str {
        match self.status {
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Returned => "returned",
            _ => "nothing_reserved",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn line(product: u128, q: i64) -> ReservationLine {
        ReservationLine { product_id: id(product), quantity: Quantity::parse(q).unwrap() }
    }

    fn stock(product: u128, on_hand: i64, reserved: i64, sellable: bool) -> Availability {
        Availability {
            level: StockLevel {
                product_id: id(product),
                owner_id: Uuid::nil(),
                on_hand,
                reserved,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            sellable,
        }
    }

    #[test]
    fn lines_are_merged_per_product_and_sorted() {
        let r = ReservationRequest::new(id(9), vec![line(2, 1), line(1, 2), line(2, 3)]).unwrap();
        let got: Vec<(Uuid, i64)> = r.lines.iter().map(|l| (l.product_id, l.quantity.get())).collect();
        assert_eq!(got, [(id(1), 2), (id(2), 4)]);
        assert_eq!(ReservationRequest::new(id(9), vec![]), Err(RequestError::LineCount));
        let many = (0..=MAX_LINES as u128).map(|n| line(n, 1)).collect();
        assert_eq!(ReservationRequest::new(id(9), many), Err(RequestError::LineCount));
        let huge = vec![line(1, Quantity::MAX), line(1, 1)];
        assert_eq!(ReservationRequest::new(id(9), huge), Err(RequestError::TooMuch(id(1))));
    }

    #[test]
    fn everything_available_is_reserved() {
        let r = ReservationRequest::new(id(9), vec![line(1, 2), line(2, 5)]).unwrap();
        assert_eq!(decide(&r, &[stock(1, 2, 0, true), stock(2, 10, 5, true)]), Decision::Reserve);
    }

    #[test]
    fn one_short_line_rejects_the_whole_order_and_every_short_line_is_named() {
        let r = ReservationRequest::new(id(9), vec![line(1, 3), line(2, 1), line(3, 6)]).unwrap();
        let d = decide(&r, &[stock(1, 4, 2, true), stock(2, 1, 0, true), stock(3, 5, 0, true)]);
        let short = vec![
            ShortLine { product_id: id(1), requested: 3, available: 2 },
            ShortLine { product_id: id(3), requested: 6, available: 5 },
        ];
        assert_eq!(d, Decision::Reject { reason: RejectReason::OutOfStock, short_lines: short });
    }

    #[test]
    fn an_unknown_or_unsellable_product_wins_over_out_of_stock() {
        let r = ReservationRequest::new(id(9), vec![line(1, 3), line(2, 1), line(3, 1)]).unwrap();
        let d = decide(&r, &[stock(1, 0, 0, true), stock(2, 5, 0, false)]);
        let Decision::Reject { reason, short_lines } = d else { panic!("rejected") };
        assert_eq!(reason, RejectReason::UnknownProduct);
        let avail: Vec<(Uuid, i64)> = short_lines.iter().map(|s| (s.product_id, s.available)).collect();
        assert_eq!(avail, [(id(1), 0), (id(2), 0), (id(3), 0)]);
    }

    fn reserved() -> Reservation {
        let r = ReservationRequest::new(id(9), vec![line(1, 2)]).unwrap();
        Reservation::decided(&r, &Decision::Reserve, Duration::from_secs(60), None, OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_reservation_holds_until_its_time_then_is_due() {
        let r = reserved();
        assert_eq!(r.expires_at, Some(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60)));
        assert!(!r.is_due(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(59)));
        assert!(r.is_due(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60)));
        let gone = r.expired(OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(gone.status, ReservationStatus::Expired);
        assert_eq!(gone.expired(OffsetDateTime::UNIX_EPOCH), None, "expires once");
        assert!(!gone.is_due(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(600)));
    }

    #[test]
    fn release_and_commit_happen_once_and_a_sale_can_only_be_returned() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let r = reserved();
        let Transition::Apply(released) = r.release("payment_declined", now) else { panic!("released") };
        assert_eq!(released.released_reason(), "released");
        assert_eq!(released.release("again", now), Transition::Repeat);
        assert_eq!(released.commit(now), Transition::Refuse, "released stock is not sold");
        let Transition::Apply(sold) = r.commit(now) else { panic!("committed") };
        assert_eq!(sold.commit(now), Transition::Repeat);
        let Transition::Apply(returned) = sold.release("customer_request", now) else {
            panic!("a sale cancelled before shipment comes back")
        };
        assert_eq!(returned.released_reason(), "returned");
        assert_eq!(returned.release("again", now), Transition::Repeat, "returned once");
        assert_eq!(returned.commit(now), Transition::Refuse, "returned stock is not sold again");
        let expired = r.expired(now).unwrap();
        assert_eq!(expired.commit(now), Transition::Refuse, "expired stock is not sold");
        assert_eq!(expired.release("late", now), Transition::Repeat);
        assert_eq!(expired.released_reason(), "expired");
    }

    #[test]
    fn a_rejection_keeps_its_reason_and_short_lines() {
        let r = ReservationRequest::new(id(9), vec![line(1, 3), line(2, 1)]).unwrap();
        let d = decide(&r, &[stock(1, 1, 0, true), stock(2, 1, 0, true)]);
        let rec = Reservation::decided(&r, &d, Duration::from_secs(60), None, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(rec.status, ReservationStatus::Rejected);
        assert_eq!(rec.expires_at, None);
        assert_eq!(rec.reject_reason(), Some(RejectReason::OutOfStock));
        assert_eq!(rec.short_lines(), [ShortLine { product_id: id(1), requested: 3, available: 1 }]);
        assert!(rec.asks_for(&r));
        assert!(!rec.asks_for(&ReservationRequest::new(id(9), vec![line(1, 3)]).unwrap()));
        assert_eq!(rec.release("x", OffsetDateTime::UNIX_EPOCH), Transition::Refuse);
        assert_eq!(rec.released_reason(), "nothing_reserved");
    }
}
