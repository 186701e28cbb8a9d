//! copyguard: a PostgreSQL wire-protocol proxy that keeps production data
//! out of non-production hands.
//!
//! Clients connect to copyguard instead of the database. Sessions of
//! production roles are relayed byte for byte; sessions of every other
//! role are guarded: each statement is analyzed and decided by the policy
//! before it reaches the server, and results are checked on the way back.
//!
//! # Layout
//!
//! - [`config`]: `serve` settings from file, flags and `COPYGUARD_*`
//!   variables, each declared once in one table, validated up front.
//! - [`wire`]: the PostgreSQL protocol: raw frames over TCP or TLS,
//!   startup packets, SSL/GSS negotiation, message kinds by direction
//!   ([`wire::FrontendKind`], [`wire::BackendKind`]), the messages
//!   copyguard builds, and [`wire::FrameWriter`], the one buffered writer
//!   of each side of a guarded relay (it knows whether a frame is half
//!   written). Knows nothing of policy.
//! - [`proxy`]: the accept loop, limits and shutdown; the phases of one
//!   session (negotiate, establish, classify, relay); authentication relay,
//!   cancel routing, the raw production relay and the guarded relay (which
//!   moves bytes and runs what [`guard`] decides: `guarded/frontend/`
//!   client to server; `guarded/backend/` server to client, split into
//!   `mod.rs` (loop, dispatch, queue matching, refusals), `rows.rs`
//!   (DataRow limits, budgets, pseudonymizing) and `copy.rs` (COPY TO
//!   rewriting)). The only module that wires the others together.
//! - [`catalog`]: what the upstream database holds (relations, columns,
//!   views, partitions, OIDs) and the per-database cache.
//! - [`analysis`]: SQL text + catalog -> facts (statement kind, relations,
//!   lineage of every output column, functions). Pure.
//! - [`policy`]: policy files -> model; role classes; facts -> verdict;
//!   every rule id as one enum ([`policy::Rule`]: id, SQLSTATE, meaning,
//!   hint); hot reload. Pure.
//! - [`guard`]: the guarded-session core: the session's name-resolution
//!   context, prepared statements, portals and cursors, and the one
//!   ordered decision every guarded statement gets (analysis errors,
//!   session rules, then the policy), shared by `serve` and `explain`.
//!   No sockets.
//! - [`enforce`]: a verdict applied to results: the RowDescription check,
//!   DataRow and COPY rewriting (COPY rows in groups, column by column),
//!   limits and budgets, scrubbing side messages. No sockets.
//! - [`pseudonym`]: keyed deterministic stand-ins per category and type,
//!   text and binary encodings, one value or many at once (FF1 and CMAC
//!   over several values side by side). Pure.
//! - [`audit`]: the block log: records, hash chain, signed anchors,
//!   sinks, verify and review.
//! - [`dumps`]: sanctioned dumps: requests, signed grants, grant checks
//!   at connect time, the class of a granted session.
//! - [`state`]: what several instances will share (grant use counts),
//!   behind small interfaces with in-process defaults.
//! - [`admin`]: `/metrics` and `/healthz` over HTTP.
//! - [`telemetry`]: logging set-up and every metric name.
//! - [`devdb`]: throwaway local PostgreSQL clusters for `demo`, tests and
//!   benches.
//! - [`cli`]: one file per subcommand; `main.rs` only dispatches.

pub mod admin;
pub mod analysis;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod devdb;
pub mod dumps;
pub mod enforce;
pub mod guard;
pub mod policy;
pub mod proxy;
pub mod pseudonym;
pub mod state;
pub mod telemetry;
pub mod wire;
