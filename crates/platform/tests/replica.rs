//! `platform::testing::replica`: a real hot standby of the test PostgreSQL.
//! A test database made on the primary appears on the replica, a write is
//! readable there after `wait_replicated`, and the replica's own statistics
//! prove a read was served by it (how service tests show reads hit the
//! replica).

#![allow(clippy::unwrap_used)]

use platform::service::{RunFuture, Service, ServiceSpec};
use platform::testing::{TestEnv, eventually, replica};
use sqlx::{Connection, PgConnection};

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

fn run(_: Service) -> RunFuture {
    Box::pin(async { Ok(()) })
}

const SPEC: ServiceSpec = ServiceSpec {
    name: "replica-probe",
    default_port: 0,
    migrator: Some(&NO_MIGRATIONS),
    openapi: utoipa::openapi::OpenApi::default,
    vars: &[],
    consumers: &[],
    run,
};

/// Scans of `table` and committed transactions of `database`,
/// as counted by the server `conn` is connected to.
async fn reads(conn: &mut PgConnection, database: &str, table: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = $2),
                (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)",
    )
    .bind(database)
    .bind(table)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_write_on_the_primary_is_read_on_the_replica_and_counted_there() {
    let replica = replica().await.expect("the replica starts (scripts/pg-replica.sh)");
    let mut env = TestEnv::new(&[SPEC]);
    env.read_from(&replica);
    let config = env.config();
    let service = config.service(SPEC.name).unwrap();
    let read_options = service.read_database.clone().expect("the read database points at the replica");
    assert_eq!(read_options.get_port(), replica.port);
    let database = service.database.get_database().unwrap().to_string();

    // The test database and a row, written on the primary only.
    let primary = env.db(&SPEC).await.unwrap();
    sqlx::query("CREATE TABLE probe (id int PRIMARY KEY, name text NOT NULL)").execute(&primary).await.unwrap();
    sqlx::query("INSERT INTO probe VALUES (1, 'written on the primary')").execute(&primary).await.unwrap();

    replica.wait_replicated().await.unwrap();

    let mut observer = PgConnection::connect_with(&replica.database(&database)).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut observer).await.unwrap();
    assert!(in_recovery, "the read database is a standby");
    let (scans_before, commits_before) = reads(&mut observer, &database, "probe").await;

    let mut reader = PgConnection::connect_with(&read_options).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM probe WHERE id = 1").fetch_one(&mut reader).await.unwrap();
    assert_eq!(name, "written on the primary");
    let write = sqlx::query("INSERT INTO probe VALUES (2, 'x')").execute(&mut reader).await;
    assert!(write.is_err(), "the replica is read-only");
    reader.close().await.unwrap();

    // Statistics are flushed asynchronously (at the latest when the reader's
    // session ends, as it just did).
    eventually(15, "the replica to count the read", || async {
        let mut observer = PgConnection::connect_with(&replica.database(&database)).await.ok()?;
        let (scans, commits) = reads(&mut observer, &database, "probe").await;
        (scans > scans_before && commits > commits_before).then_some(())
    })
    .await;
    observer.close().await.unwrap();
    primary.close().await;
    env.cleanup().await.unwrap();
}
