//! `copyguard demo`: a throwaway PostgreSQL with sample data, copyguard in
//! front of it, and what to type.

use std::net::SocketAddr;

use anyhow::Context;

use crate::config::{Config, ConfigArgs};
use crate::devdb::{DevDb, DevDbOptions};
use crate::proxy::Server;
use crate::telemetry;

/// Sample schema and data: users with personal data, orders, identity
/// documents, a production role and a developer role.
pub const SAMPLE_SQL: &str = include_str!("demo.sql");

/// The demo's database name.
pub const DEMO_DATABASE: &str = "shop";

/// Options of `copyguard demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address copyguard listens on (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:6432")]
    listen: SocketAddr,
    /// Admin HTTP address (/metrics, /healthz).
    #[arg(long, default_value = "127.0.0.1:9187")]
    admin: SocketAddr,
}

/// Runs the demo until SIGINT/SIGTERM, then removes the throwaway database.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    telemetry::init_logging(crate::config::LogFormat::Text, "warn");
    println!("Starting a throwaway PostgreSQL cluster...");
    let db = DevDb::start(DevDbOptions::default()).context("cannot start PostgreSQL")?;
    db.psql("postgres", &format!("CREATE DATABASE {DEMO_DATABASE}"))?;
    db.psql(DEMO_DATABASE, SAMPLE_SQL)
        .context("cannot load the sample data")?;
    let result = super::runtime()?.block_on(serve(args, &db));
    db.stop();
    result
}

async fn serve(args: &DemoArgs, db: &DevDb) -> anyhow::Result<()> {
    let server = bind(args.listen, args.admin, db).await?;
    print_instructions(&server, db);
    server.run(super::shutdown_signal()).await;
    println!("Stopped; the throwaway database is being removed.");
    Ok(())
}

async fn bind(listen: SocketAddr, admin: SocketAddr, db: &DevDb) -> anyhow::Result<Server> {
    let config = |listen: SocketAddr, admin: SocketAddr| {
        Config::load(&ConfigArgs {
            listen: Some(listen.to_string()),
            admin: Some(admin.to_string()),
            upstream: Some(format!("{}:{}", db.host(), db.port())),
            ..ConfigArgs::default()
        })
    };
    match Server::bind(config(listen, admin)?).await {
        Ok(server) => Ok(server),
        Err(e) => {
            let any = |a: SocketAddr| SocketAddr::new(a.ip(), 0);
            eprintln!("note: {e}; using free ports instead");
            Ok(Server::bind(config(any(listen), any(admin))?).await?)
        }
    }
}

fn print_instructions(server: &Server, db: &DevDb) {
    let addr = server.local_addr();
    let (host, port) = (addr.ip(), addr.port());
    let admin = server
        .admin_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        r#"
copyguard demo is running.

  copyguard     {addr}   (in front of PostgreSQL on {db_host}:{db_port})
  admin HTTP    http://{admin}/metrics  and  /healthz
  database      {DEMO_DATABASE}: users (emails, names, birth dates, phones),
                orders, identity_documents

Connect through copyguard as the production role (relayed untouched):
  PGPASSWORD=prod-secret psql "host={host} port={port} user=app_prod dbname={DEMO_DATABASE}"

...or as the developer role:
  PGPASSWORD=dev-secret psql "host={host} port={port} user=dev_alice dbname={DEMO_DATABASE}"

Then try, for example:
  SELECT count(*) FROM users;
  SELECT id, email, full_name FROM users ORDER BY id LIMIT 5;
  \copy (SELECT * FROM identity_documents) TO STDOUT
  SELECT pg_sleep(30);   -- then press Ctrl-C: the cancel goes through copyguard

Or dump it through the proxy:
  PGPASSWORD=dev-secret pg_dump -h {host} -p {port} -U dev_alice {DEMO_DATABASE} | head -40

Watch the proxy:
  curl -s http://{admin}/metrics | grep copyguard_

Right now every role is relayed unchanged; guarding developer roles comes
with the policy work (see README).

Press Ctrl-C to stop; the throwaway database is removed.
"#,
        db_host = db.host(),
        db_port = db.port(),
    );
    println!(
        "copyguard demo ready: listen={addr} admin={admin} upstream={}:{}",
        db.host(),
        db.port()
    );
}
