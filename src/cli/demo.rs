//! `copyguard demo`: a throwaway PostgreSQL with sample data, copyguard in
//! front of it, and what to type.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// The demo policy (the files of `policies/`), built into the binary so the
/// demo runs from anywhere.
const DEMO_POLICY: &[(&str, &str)] = &[
    ("roles.toml", include_str!("../../policies/roles.toml")),
    (
        "classification.toml",
        include_str!("../../policies/classification.toml"),
    ),
];

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
    let policy = write_policy(&db)?;
    let result = super::runtime()?.block_on(serve(args, &db, &policy));
    db.stop();
    result
}

/// Writes the demo policy next to the throwaway cluster (removed with it).
fn write_policy(db: &DevDb) -> anyhow::Result<PathBuf> {
    let data = db.data_dir();
    let dir = data.parent().unwrap_or(&data).join("policies");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in DEMO_POLICY {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir)
}

async fn serve(args: &DemoArgs, db: &DevDb, policy: &Path) -> anyhow::Result<()> {
    let server = bind(args.listen, args.admin, db, policy).await?;
    let reloader = tokio::spawn(super::serve::reload_on_sighup(
        server.policy_store(),
        server.audit(),
    ));
    print_instructions(&server, db, policy);
    server.run(super::shutdown_signal()).await;
    reloader.abort();
    println!("Stopped; the throwaway database is being removed.");
    Ok(())
}

async fn bind(
    listen: SocketAddr,
    admin: SocketAddr,
    db: &DevDb,
    policy: &Path,
) -> anyhow::Result<Server> {
    let key_file = policy.parent().unwrap_or(policy).join("pseudonym.key");
    std::fs::write(&key_file, hex::encode(rand::random::<[u8; 32]>()))?;
    let grant_keys = grant_dir(policy);
    if !grant_keys.join(crate::dumps::PUBLIC_KEY_FILE).exists() {
        crate::dumps::keygen(&grant_keys)?;
    }
    let grant_pub = grant_keys.join(crate::dumps::PUBLIC_KEY_FILE);
    let config = |listen: SocketAddr, admin: SocketAddr| {
        Config::load(&ConfigArgs {
            listen: Some(listen.to_string()),
            admin: Some(admin.to_string()),
            upstream: Some(format!("{}:{}", db.host(), db.port())),
            policy: Some(policy.display().to_string()),
            audit_path: Some(audit_log(policy).display().to_string()),
            pseudonym_key_file: Some(key_file.display().to_string()),
            dump_public_keys: Some(grant_pub.display().to_string()),
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

/// The demo's grant keys and dump files, beside its policy (removed with
/// the cluster).
fn grant_dir(policy: &Path) -> PathBuf {
    policy.parent().unwrap_or(policy).join("dumps")
}

/// The demo's block log, beside its policy (removed with the cluster).
fn audit_log(policy: &Path) -> PathBuf {
    policy
        .parent()
        .unwrap_or(policy)
        .join("audit")
        .join("copyguard-audit.log")
}

/// How to run this program again from a shell: its absolute path (cargo
/// puts nothing on `PATH`), quoted when needed.
fn this_program() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "cargo run --release -q --".to_owned();
    };
    let text = exe.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn print_instructions(server: &Server, db: &DevDb, policy: &Path) {
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
  policy        {policy}   (edit, then `kill -HUP {pid}` to reload)

As the production role, everything is relayed untouched:
  PGPASSWORD=prod-secret psql "host={host} port={port} user=app_prod dbname={DEMO_DATABASE}"
    SELECT email, full_name FROM users ORDER BY id LIMIT 5;
    \copy users TO STDOUT

As the developer role, the session is guarded:
  PGPASSWORD=dev-secret psql "host={host} port={port} user=dev_alice dbname={DEMO_DATABASE}"
    SELECT country, count(*) FROM users GROUP BY country;    -- fine: no personal data
    SELECT o.id, o.amount_cents FROM orders o JOIN users u ON u.id = o.user_id LIMIT 5;
    SELECT email FROM users ORDER BY id LIMIT 5;             -- a few rows: allowed
    SELECT email FROM users;                                 -- stopped after 20 rows
    \copy users TO STDOUT                                    -- blocked: bulk export
    SELECT * FROM identity_documents;                        -- blocked: forbidden table
    SET ROLE app_prod;                                       -- blocked: identity change

As the tester role, personal data is pseudonymized in flight:
  PGPASSWORD=qa-secret psql "host={host} port={port} user=qa_bob dbname={DEMO_DATABASE}"
    SELECT id, email, full_name, birth_date, phone FROM users ORDER BY id LIMIT 5;
    SELECT id, email, lower(email) FROM users ORDER BY id LIMIT 3;  -- computed: NULL
    \copy users TO STDOUT WITH (FORMAT csv, HEADER)          -- a realistic, harmless copy

Take a sanctioned, anonymized dump: request (with a pre-flight), approve, dump, restore, query:
  {exe} dump request --database {DEMO_DATABASE} --role dev_alice --reason "reproduce a bug" --dsn "host={db_host} port={db_port} user=postgres dbname={DEMO_DATABASE}" --policy {policy} --output {dumps}/request.toml
  {exe} dump approve {dumps}/request.toml --signing-key {dumps}/grant.key --policy {policy} --expires 1h --output {dumps}/grant.txt --log {dumps}/grants-issued.log
  {exe} dump show {dumps}/grant.txt
  PGPASSWORD=dev-secret {exe} dump run {dumps}/grant.txt -- -h {host} -p {port} -Fc -f {dumps}/shop.dump
  createdb -h {db_host} -p {db_port} -U postgres shop_copy
  pg_restore -h {db_host} -p {db_port} -U postgres -d shop_copy --no-owner --exit-on-error {dumps}/shop.dump
  psql -h {db_host} -p {db_port} -U postgres -d shop_copy -c "SELECT id, email, full_name, birth_date FROM users ORDER BY id LIMIT 5"

See why, without running anything:
  {exe} explain --policy {policy} --role dev_alice \
    --dsn "host={db_host} port={db_port} user=postgres dbname={DEMO_DATABASE}" \
    "SELECT lower(email) FROM users"

Review what security sees, and check the block log's integrity:
  {exe} audit review {audit}
  {exe} audit verify {audit} --live
  {exe} audit tail {audit} --format cef

Watch the proxy:
  curl -s http://{admin}/metrics | grep copyguard_

Press Ctrl-C to stop; the throwaway database is removed.
"#,
        db_host = db.host(),
        db_port = db.port(),
        policy = policy.display(),
        audit = audit_log(policy).display(),
        dumps = grant_dir(policy).display(),
        pid = std::process::id(),
        exe = this_program(),
    );
    println!(
        "copyguard demo ready: listen={addr} admin={admin} upstream={}:{}",
        db.host(),
        db.port()
    );
}
