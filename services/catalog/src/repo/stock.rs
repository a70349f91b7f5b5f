//! Stock rows. Every path that changes several rows locks them in product
//! order first ([`lock_stock`]), so concurrent transactions never wait on
//! each other in a circle.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Availability, Hold, StockLevel};

#[derive(sqlx::FromRow)]
struct LevelRow {
    product_id: Uuid,
    owner_id: Uuid,
    on_hand: i64,
    reserved: i64,
    updated_at: OffsetDateTime,
    sellable: bool,
}

impl From<LevelRow> for Availability {
    fn from(r: LevelRow) -> Self {
        Availability {
            level: StockLevel {
                product_id: r.product_id,
                owner_id: r.owner_id,
                on_hand: r.on_hand,
                reserved: r.reserved,
                updated_at: r.updated_at,
            },
            sellable: r.sellable,
        }
    }
}

const LEVELS: &str = "SELECT s.product_id, p.owner_id, s.on_hand, s.reserved, s.updated_at,
                             (p.active AND p.deleted_at IS NULL) AS sellable
                        FROM stock s JOIN products p ON p.id = s.product_id";

/// Locks the stock rows of `product_ids` in product order, until the
/// transaction ends, and returns those that exist (deleted products
/// included, marked unsellable).
#[tracing::instrument(skip_all, fields(products = product_ids.len()))]
pub async fn lock_stock(conn: &mut PgConnection, product_ids: &[Uuid]) -> sqlx::Result<Vec<Availability>> {
    let mut ids = product_ids.to_vec();
    ids.sort();
    ids.dedup();
    // Rows are locked as the sorted scan returns them: always in one order.
    let rows: Vec<LevelRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LEVELS} WHERE s.product_id = ANY($1) ORDER BY s.product_id FOR UPDATE OF s"
    )))
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Availability::from).collect())
}

/// The stock of a product, without locking it.
pub async fn fetch_stock(conn: &mut PgConnection, product_id: Uuid) -> sqlx::Result<Option<StockLevel>> {
    let row: Option<LevelRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{LEVELS} WHERE s.product_id = $1")))
        .bind(product_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| Availability::from(r).level))
}

/// Writes `levels` (rows the transaction has locked).
#[tracing::instrument(skip_all, fields(products = levels.len()))]
pub async fn update_stock(conn: &mut PgConnection, levels: &[StockLevel]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = levels.iter().map(|l| l.product_id).collect();
    let on_hand: Vec<i64> = levels.iter().map(|l| l.on_hand).collect();
    let reserved: Vec<i64> = levels.iter().map(|l| l.reserved).collect();
    let at: Vec<OffsetDateTime> = levels.iter().map(|l| l.updated_at).collect();
    sqlx::query(
        "UPDATE stock s SET on_hand = v.on_hand, reserved = v.reserved, updated_at = v.at
           FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS v (id, on_hand, reserved, at)
          WHERE s.product_id = v.id",
    )
    .bind(ids)
    .bind(on_hand)
    .bind(reserved)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The reservations holding some of a product's stock, soonest to expire first.
pub async fn holds_of(conn: &mut PgConnection, product_id: Uuid) -> sqlx::Result<Vec<Hold>> {
    let rows: Vec<(Uuid, i64, OffsetDateTime)> = sqlx::query_as(
        "SELECT r.order_id, l.quantity, r.expires_at
           FROM reservation_lines l JOIN reservations r ON r.order_id = l.order_id
          WHERE l.product_id = $1 AND r.status = 'reserved'
          ORDER BY r.expires_at, r.order_id",
    )
    .bind(product_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(order_id, quantity, expires_at)| Hold { order_id, quantity, expires_at }).collect())
}
