//! `copyguard serve`.

use anyhow::Context;

use crate::config::{Config, ConfigArgs};
use crate::proxy::Server;
use crate::telemetry;

/// Loads and validates the configuration, then serves until SIGTERM/SIGINT.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    telemetry::init_logging(config.log_format, &config.log_level);
    super::runtime()?.block_on(async {
        let server = Server::bind(config).await.context("cannot start")?;
        server.run(super::shutdown_signal()).await;
        Ok(())
    })
}
