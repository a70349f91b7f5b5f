//! A product's stock: units on hand, units reserved for orders, and what is
//! left to sell (`available = on_hand - reserved`, never negative).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use super::values::OnHand;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub product_id: Uuid,
    pub owner_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    pub updated_at: OffsetDateTime,
}

/// Why a stock change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockRuleError {
    #[error("on_hand {on_hand} is below the {reserved} units reserved for orders; release or commit them first")]
    BelowReserved { on_hand: i64, reserved: i64 },
    #[error(
        "product {product_id}: {movement:?} of {quantity} units does not fit its stock ({on_hand} on hand, {reserved} reserved)"
    )]
    DoesNotFit { product_id: Uuid, movement: Movement, quantity: i64, on_hand: i64, reserved: i64 },
    #[error("product {0} has no stock row")]
    NoStock(Uuid),
}

/// How a reservation moves stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Units leave `available` for `reserved`.
    Reserve,
    /// Reserved units go back to `available` (release or expiry).
    Release,
    /// Reserved units are sold: `on_hand` and `reserved` both drop.
    Commit,
    /// Sold units come back (the order was cancelled before it shipped).
    Return,
}

impl StockLevel {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    /// The level with `on_hand` units, or `None` when nothing changes.
    /// Reserved units stay reserved, so on hand may not drop below them.
    pub fn with_on_hand(&self, on_hand: OnHand, now: OffsetDateTime) -> Result<Option<StockLevel>, StockRuleError> {
        let on_hand = on_hand.get();
        if on_hand < self.reserved {
            return Err(StockRuleError::BelowReserved { on_hand, reserved: self.reserved });
        }
        Ok((on_hand != self.on_hand).then(|| StockLevel { on_hand, updated_at: now, ..self.clone() }))
    }

    /// The level after `movement` of `quantity` units; never below zero.
    pub fn moved(&self, movement: Movement, quantity: i64, now: OffsetDateTime) -> Result<StockLevel, StockRuleError> {
        let (on_hand, reserved) = match movement {
            Movement::Reserve => (self.on_hand, self.reserved + quantity),
            Movement::Release => (self.on_hand, self.reserved - quantity),
            Movement::Commit => (self.on_hand - quantity, self.reserved - quantity),
            Movement::Return => (self.on_hand + quantity, self.reserved),
        };
        if quantity <= 0 || reserved < 0 || on_hand < reserved {
            return Err(StockRuleError::DoesNotFit {
                product_id: self.product_id,
                movement,
                quantity,
                on_hand: self.on_hand,
                reserved: self.reserved,
            });
        }
        Ok(StockLevel { on_hand, reserved, updated_at: now, ..self.clone() })
    }
}

/// `levels` after moving each `(product, quantity)` of `lines` (a product may
/// appear more than once), in product order; only the products moved.
pub fn move_stock(
    levels: &[StockLevel],
    lines: &[(Uuid, i64)],
    movement: Movement,
    now: OffsetDateTime,
) -> Result<Vec<StockLevel>, StockRuleError> {
    let mut totals: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (product_id, quantity) in lines {
        *totals.entry(*product_id).or_default() += quantity;
    }
    totals
        .into_iter()
        .map(|(product_id, quantity)| {
            let level =
                levels.iter().find(|l| l.product_id == product_id).ok_or(StockRuleError::NoStock(product_id))?;
            level.moved(movement, quantity, now)
        })
        .collect()
}

/// An active reservation holding some of a product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub order_id: Uuid,
    pub quantity: i64,
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn level(on_hand: i64, reserved: i64) -> StockLevel {
        StockLevel {
            product_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            on_hand,
            reserved,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn on_hand_may_not_drop_below_what_is_reserved() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            level(10, 4).with_on_hand(OnHand::parse(3).unwrap(), now),
            Err(StockRuleError::BelowReserved { on_hand: 3, reserved: 4 })
        );
        let set = level(10, 4).with_on_hand(OnHand::parse(4).unwrap(), now).unwrap().unwrap();
        assert_eq!((set.on_hand, set.reserved, set.available()), (4, 4, 0));
        assert_eq!(level(10, 4).with_on_hand(OnHand::parse(10).unwrap(), now), Ok(None));
    }

    #[test]
    fn reserving_releasing_and_selling_move_the_right_counters() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let l = level(10, 0).moved(Movement::Reserve, 3, now).unwrap();
        assert_eq!((l.on_hand, l.reserved, l.available()), (10, 3, 7));
        let sold = l.moved(Movement::Commit, 3, now).unwrap();
        assert_eq!((sold.on_hand, sold.reserved, sold.available()), (7, 0, 7));
        let back = l.moved(Movement::Release, 3, now).unwrap();
        assert_eq!((back.on_hand, back.reserved, back.available()), (10, 0, 10));
    }

    #[test]
    fn no_movement_takes_a_counter_below_zero() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(level(2, 0).moved(Movement::Reserve, 3, now).is_err());
        assert!(level(2, 1).moved(Movement::Release, 2, now).is_err());
        assert!(level(2, 1).moved(Movement::Commit, 2, now).is_err());
        assert!(level(2, 0).moved(Movement::Reserve, 0, now).is_err());
    }

    #[test]
    fn lines_of_one_product_move_it_once_by_their_sum() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let levels = [StockLevel { product_id: b, ..level(5, 5) }, StockLevel { product_id: a, ..level(9, 4) }];
        let moved = move_stock(&levels, &[(b, 2), (a, 1), (b, 3)], Movement::Release, now).unwrap();
        let got: Vec<(Uuid, i64)> = moved.iter().map(|l| (l.product_id, l.reserved)).collect();
        assert_eq!(got, [(a, 3), (b, 0)]);
        assert_eq!(
            move_stock(&levels, &[(Uuid::from_u128(3), 1)], Movement::Release, now),
            Err(StockRuleError::NoStock(Uuid::from_u128(3)))
        );
    }
}
