//! Reading a database's catalog through a DSN, for the commands that run
//! outside the proxy (`explain`, `policy check --dsn`).

use anyhow::Context;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::catalog::{parse_name_array, Catalog, CatalogRows, Row, LOAD_SQL};

/// Connects to `dsn` (libpq key=value or URL form, no TLS) and returns the
/// catalog and the connection's effective search path.
pub async fn fetch_catalog(dsn: &str) -> anyhow::Result<(Catalog, Vec<String>)> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .with_context(|| "cannot connect to the database given by --dsn")?;
    let driver = tokio::spawn(connection);
    let mut sets: Vec<Vec<Row>> = Vec::new();
    let mut current: Vec<Row> = Vec::new();
    for message in client.simple_query(LOAD_SQL).await? {
        match message {
            SimpleQueryMessage::Row(row) => current.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(_) => sets.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    let catalog = CatalogRows::from_sets(sets)?.into_catalog()?;
    let path = client
        .query_one("SELECT pg_catalog.current_schemas(true)::text", &[])
        .await?
        .get::<_, String>(0);
    drop(client);
    driver.abort();
    let search_path = parse_name_array(&path).context("unexpected current_schemas() output")?;
    Ok((catalog, search_path))
}

/// Runs one simple query through `dsn`; its rows as text.
pub async fn fetch_rows(dsn: &str, sql: &str) -> anyhow::Result<Vec<Row>> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .with_context(|| "cannot connect to the database given by --dsn")?;
    let driver = tokio::spawn(connection);
    let mut rows = Vec::new();
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            );
        }
    }
    drop(client);
    driver.abort();
    Ok(rows)
}
