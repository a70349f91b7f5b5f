//! `CategoryChangedV1` → store the category (a deleted one stays as a tombstone).
//!
//! Applied only when newer than the stored row; when applied, the owner is
//! marked dirty in the same transaction.

use contracts::catalog::CategoryChangedV1;
use platform::messaging::{HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::CategoryChange;

pub async fn handle(tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
    let event = msg.payload::<CategoryChangedV1>()?;
    let change = CategoryChange::try_from(&event.payload).map_err(super::refused)?;
    app::apply_category_change(tx, &change).await?;
    Ok(())
}
