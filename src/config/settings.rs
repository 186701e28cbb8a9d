//! Every `serve` setting, declared once: its key in the file (`tls.mode`),
//! its flag (`--tls-mode`), its variable (`COPYGUARD_TLS_MODE`) and its
//! help. The flag and variable arguments ([`ConfigArgs`]), the file's
//! sections and the lookups by key are generated from this one table; what
//! a value means is in `resolve` (`mod.rs`).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::Raw;

type Field = Option<Spanned<Raw>>;

macro_rules! settings {
    (
        top { $( $tname:ident => $tfield:ident, $tflag:literal, $tenv:literal, $thelp:literal; )* }
        $( $section:ident : $Section:ident {
            $( $name:ident => $field:ident, $flag:literal, $env:literal, $help:literal; )*
        } )*
    ) => {
        /// Every setting: dotted key in the file, flag, environment
        /// variable, help.
        pub const SETTINGS: &[(&str, &str, &str, &str)] = &[
            $( (stringify!($tname), $tflag, $tenv, $thelp), )*
            $( $( (concat!(stringify!($section), ".", stringify!($name)), $flag, $env, $help), )* )*
        ];

        /// Flags and environment variables of `copyguard serve`.
        #[derive(Clone, Debug, Default, clap::Args)]
        pub struct ConfigArgs {
            /// TOML configuration file.
            #[arg(long, env = "COPYGUARD_CONFIG")]
            pub config: Option<PathBuf>,
            $(
                #[doc = $thelp]
                #[arg(long, env = $tenv)]
                pub $tfield: Option<String>,
            )*
            $( $(
                #[doc = $help]
                #[arg(long, env = $env)]
                pub $field: Option<String>,
            )* )*
        }

        impl ConfigArgs {
            /// The value given for the setting `key` by flag or variable.
            pub(super) fn get(&self, key: &str) -> Option<&String> {
                $( if key == stringify!($tname) {
                    return self.$tfield.as_ref();
                } )*
                $( $( if key == concat!(stringify!($section), ".", stringify!($name)) {
                    return self.$field.as_ref();
                } )* )*
                None
            }
        }

        /// The configuration file: every key optional, unknown keys refused.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct FileConfig {
            $( $tname: Field, )*
            $( #[serde(default)] $section: $Section, )*
        }

        $(
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            struct $Section {
                $( $name: Field, )*
            }
        )*

        impl FileConfig {
            /// The value written in the file for the setting `key`.
            pub(super) fn get(&self, key: &str) -> Option<&Spanned<Raw>> {
                $( if key == stringify!($tname) {
                    return self.$tname.as_ref();
                } )*
                $( $( if key == concat!(stringify!($section), ".", stringify!($name)) {
                    return self.$section.$name.as_ref();
                } )* )*
                None
            }
        }
    };
}

settings! {
    top {
        listen => listen, "--listen", "COPYGUARD_LISTEN", "address clients connect to [127.0.0.1:6432]";
        upstream => upstream, "--upstream", "COPYGUARD_UPSTREAM", "PostgreSQL server HOST:PORT (required)";
        admin => admin, "--admin", "COPYGUARD_ADMIN", "HTTP address for /metrics and /healthz [off]";
        policy => policy, "--policy", "COPYGUARD_POLICY", "directory of policy files (required)";
    }
    tls: TlsSection {
        mode => tls_mode, "--tls-mode", "COPYGUARD_TLS_MODE", "client TLS: disable | allow | require [allow with a certificate, else disable]";
        cert => tls_cert, "--tls-cert", "COPYGUARD_TLS_CERT", "PEM certificate chain presented to clients";
        key => tls_key, "--tls-key", "COPYGUARD_TLS_KEY", "PEM private key of that certificate";
    }
    upstream_tls: UpstreamTlsSection {
        mode => upstream_tls_mode, "--upstream-tls-mode", "COPYGUARD_UPSTREAM_TLS_MODE", "upstream TLS: disable | require | verify-full [disable]";
        ca => upstream_tls_ca, "--upstream-tls-ca", "COPYGUARD_UPSTREAM_TLS_CA", "PEM CA certificates for verify-full";
        server_name => upstream_tls_server_name, "--upstream-tls-server-name", "COPYGUARD_UPSTREAM_TLS_SERVER_NAME", "name checked in the server certificate [upstream host]";
    }
    limits: LimitsSection {
        max_connections => max_connections, "--max-connections", "COPYGUARD_MAX_CONNECTIONS", "concurrent client connections [1000]";
        max_startups_per_client => max_startups_per_client, "--max-startups-per-client", "COPYGUARD_MAX_STARTUPS_PER_CLIENT", "connections from one client address still logging in [100]";
        startup_timeout => startup_timeout, "--startup-timeout", "COPYGUARD_STARTUP_TIMEOUT", "time from connect to ready-for-query [30s]";
        connect_timeout => connect_timeout, "--connect-timeout", "COPYGUARD_CONNECT_TIMEOUT", "time to reach the upstream [10s]";
        max_message_size => max_message_size, "--max-message-size", "COPYGUARD_MAX_MESSAGE_SIZE", "largest client message [128MiB]";
        shutdown_timeout => shutdown_timeout, "--shutdown-timeout", "COPYGUARD_SHUTDOWN_TIMEOUT", "grace period for sessions on SIGTERM/SIGINT [30s]";
        catalog_refresh => catalog_refresh, "--catalog-refresh", "COPYGUARD_CATALOG_REFRESH", "reload a database's catalog after this long [5m]";
        catalog_check => catalog_check, "--catalog-check", "COPYGUARD_CATALOG_CHECK", "probe a database's schema for changes made outside copyguard this often [1s]";
    }
    log: LogSection {
        format => log_format, "--log-format", "COPYGUARD_LOG_FORMAT", "text | json [text]";
        level => log_level, "--log-level", "COPYGUARD_LOG_LEVEL", "tracing filter, e.g. info or copyguard=debug [info]";
    }
    audit: AuditSection {
        path => audit_path, "--audit-path", "COPYGUARD_AUDIT_PATH", "block log file; rotated files sit beside it [copyguard-audit.log]";
        anchors => audit_anchors, "--audit-anchors", "COPYGUARD_AUDIT_ANCHORS", "signed anchor file [NAME.anchors beside the log]";
        chain_key_file => audit_chain_key_file, "--audit-chain-key-file", "COPYGUARD_AUDIT_CHAIN_KEY_FILE", "HMAC chain key (`audit keygen`) [NAME.keys/chain.key, created if both keys are unset]";
        signing_key_file => audit_signing_key_file, "--audit-signing-key-file", "COPYGUARD_AUDIT_SIGNING_KEY_FILE", "Ed25519 anchor signing key (`audit keygen`) [NAME.keys/signing.key]";
        anchor_interval => audit_anchor_interval, "--audit-anchor-interval", "COPYGUARD_AUDIT_ANCHOR_INTERVAL", "time between signed anchors [60s]";
        flush => audit_flush, "--audit-flush", "COPYGUARD_AUDIT_FLUSH", "every (fdatasync per record batch) | a sync interval like 5ms [every]";
        rotate_size => audit_rotate_size, "--audit-rotate-size", "COPYGUARD_AUDIT_ROTATE_SIZE", "rotate the log at this size, or off [100MiB]";
        rotate_interval => audit_rotate_interval, "--audit-rotate-interval", "COPYGUARD_AUDIT_ROTATE_INTERVAL", "rotate the log when its first record is this old, or off [1d]";
        production_statements => audit_production_statements, "--audit-production-statements", "COPYGUARD_AUDIT_PRODUCTION_STATEMENTS", "also record fingerprints of production statements: true | false [false]";
    }
    pseudonym: PseudonymSection {
        key_file => pseudonym_key_file, "--pseudonym-key-file", "COPYGUARD_PSEUDONYM_KEY_FILE", "secret of the pseudonymization key, hex or base64, at least 32 bytes [none: nothing is pseudonymized]";
        key_id => pseudonym_key_id, "--pseudonym-key-id", "COPYGUARD_PSEUDONYM_KEY_ID", "id of that key, recorded in the block log [k1]";
        email_domain => pseudonym_email_domain, "--pseudonym-email-domain", "COPYGUARD_PSEUDONYM_EMAIL_DOMAIN", "domain of stand-in email addresses [example.invalid]";
        date_shift_days => pseudonym_date_shift_days, "--pseudonym-date-shift-days", "COPYGUARD_PSEUDONYM_DATE_SHIFT_DAYS", "largest shift of date_shift, in days either way [180]";
    }
    dumps: DumpsSection {
        public_keys => dump_public_keys, "--dump-public-keys", "COPYGUARD_DUMP_PUBLIC_KEYS", "grant public key files (grant.pub), comma-separated [none: grants are refused]";
        use_grace => dump_use_grace, "--dump-use-grace", "COPYGUARD_DUMP_USE_GRACE", "a grant session starting this long after the last one ended is the same use [30s]";
    }
}
