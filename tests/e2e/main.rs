//! End-to-end tests: a real PostgreSQL cluster started by the tests, real
//! clients (`psql`, `pg_dump`, `pgbench`, `tokio-postgres`), and copyguard
//! in between. One test binary, one shared cluster (see `support`).

mod guard_agreement;
mod guard_fixture;
mod raw;
#[path = "../served/mod.rs"]
mod served;
mod support;
mod tap;

mod audit_log;
mod auth_tls;
mod bad_input;
mod block_log;
mod catalog_changes;
mod catalog_sharing;
mod catalog_transactions;
mod clients;
mod decision_cache;
mod demo_lines;
mod driver_matrix;
mod dumps;
mod faults;
mod guarded_core;
mod guarded_errors;
mod guarded_leaks;
mod guarded_settings;
mod guarded_side_effects;
mod guarded_skips;
mod guarded_threads;
mod guarded_usage;
mod large_statements;
mod lifecycle;
mod protocol_fuzz;
mod pseudonymize;
