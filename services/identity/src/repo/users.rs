//! Accounts.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Email, Roles, User};

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: Option<String>,
    roles: Vec<String>,
    created_at: OffsetDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = sqlx::Error;

    fn try_from(r: UserRow) -> Result<User, sqlx::Error> {
        let roles = Roles::parse(&r.roles).map_err(|e| sqlx::Error::Decode(e.into()))?;
        Ok(User { id: r.id, email: Email::from_stored(r.email), name: r.name, roles, created_at: r.created_at })
    }
}

/// Inserts an account unless its e-mail is taken; `false` when it was.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn insert_user(conn: &mut PgConnection, user: &User, password_hash: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(user.id)
    .bind(user.email.as_str())
    .bind(&user.name)
    .bind(password_hash)
    .bind(user.roles.names())
    .bind(user.created_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn fetch_user(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as("SELECT id, email, name, roles, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(User::try_from).transpose()
}

/// The account of a (normalized) e-mail and its password hash.
pub async fn fetch_credentials(conn: &mut PgConnection, email: &str) -> sqlx::Result<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row: Option<Row> =
        sqlx::query_as("SELECT id, email, name, roles, created_at, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(conn)
            .await?;
    row.map(|r| Ok((User::try_from(r.user)?, r.password_hash))).transpose()
}
