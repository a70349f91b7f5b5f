//! `OwnerChangedV1` → store the owner's name ("valida owner": one without a name is refused).
//!
//! Applied only when newer than the stored row; when applied, the owner is
//! marked dirty in the same transaction.

use contracts::catalog::OwnerChangedV1;
use platform::messaging::{HandlerError, Incoming};
use sqlx::PgConnection;

use crate::app;
use crate::domain::OwnerChange;

pub async fn handle(tx: &mut PgConnection, msg: &Incoming) -> Result<(), HandlerError> {
    let event = msg.payload::<OwnerChangedV1>()?;
    let change = OwnerChange::try_from(&event.payload).map_err(super::refused)?;
    app::apply_owner_change(tx, &change).await?;
    Ok(())
}
