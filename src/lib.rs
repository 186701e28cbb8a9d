//! copyguard: a PostgreSQL wire-protocol proxy that keeps production data
//! out of non-production hands.
//!
//! Clients connect to copyguard instead of the database. Sessions of
//! production roles are relayed byte for byte.
//!
//! # Layout
//!
//! - [`config`]: `serve` settings from file, flags and `COPYGUARD_*`
//!   variables, validated up front.
//! - [`wire`]: the PostgreSQL protocol: raw frames over TCP or TLS,
//!   startup packets, SSL/GSS negotiation, the messages copyguard builds.
//!   Knows nothing of policy.
//! - [`proxy`]: the accept loop, limits and shutdown; the phases of one
//!   session (negotiate, establish, relay); authentication relay, cancel
//!   routing, the raw production relay. The only module that wires the
//!   others together.
//! - [`admin`]: `/metrics` and `/healthz` over HTTP.
//! - [`telemetry`]: logging set-up and every metric name.
//! - [`devdb`]: throwaway local PostgreSQL clusters for `demo`, tests and
//!   benches.
//! - [`cli`]: one file per subcommand; `main.rs` only dispatches.

pub mod admin;
pub mod cli;
pub mod config;
pub mod devdb;
pub mod proxy;
pub mod telemetry;
pub mod wire;
