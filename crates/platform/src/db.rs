//! Database pools and migrations.
//!
//! Each service owns one database. [`connect`] creates it when it is missing,
//! applies the platform's own tables (outbox, inbox, idempotency keys, tracked
//! in `_feira_platform_migrations`) and then the service's migrations.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// The platform's tables, shared by every service's database.
pub fn platform_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name("_feira_platform_migrations");
    m
}

/// Creates the database named in `options` if it does not exist yet.
pub async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().context("the database URL names no database")?.to_string();
    let admin = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}:{}", options.get_host(), options.get_port()))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE
            // (42P04, or 23505 when both inserted into pg_database at once).
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e).with_context(|| format!("create database {name}")),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Drops a database, closing its other sessions first (tests clean up with it).
pub async fn drop_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    let mut conn = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A pool on the service's database, created and migrated if needed.
pub async fn connect(
    options: &PgConnectOptions,
    max_connections: u32,
    migrator: &sqlx::migrate::Migrator,
) -> anyhow::Result<PgPool> {
    ensure_database(options).await?;
    let pool = pool(options, max_connections);
    migrate(&pool, migrator).await?;
    Ok(pool)
}

/// A lazy pool: nothing is opened until the first query.
pub fn pool(options: &PgConnectOptions, max_connections: u32) -> PgPool {
    let options = options.clone().log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// Applies the platform's migrations, then the service's.
pub async fn migrate(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    platform_migrator().run(pool).await.context("apply platform migrations")?;
    migrator.run(pool).await.context("apply service migrations")?;
    Ok(())
}
