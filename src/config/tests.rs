//! Tests of the configuration: precedence, errors, every setting.

use std::path::Path;

use super::*;

fn load_toml(text: &str, args: ConfigArgs) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "cg-config-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("copyguard.toml");
    std::fs::write(&path, text).unwrap();
    let args = ConfigArgs {
        config: Some(path.clone()),
        policy: args.policy.or_else(|| Some(dir.display().to_string())),
        ..args
    };
    let result = Config::load(&args);
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

#[test]
fn defaults_and_file_values() {
    let c = load_toml(
        "upstream = \"db.internal:5433\"\n[limits]\nstartup_timeout = \"5s\"\nmax_message_size = \"1MiB\"\n",
        ConfigArgs::default(),
    )
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:6432".parse().unwrap());
    assert_eq!(
        (c.upstream_host.as_str(), c.upstream_port),
        ("db.internal", 5433)
    );
    assert_eq!(c.limits.startup_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.max_message_size, 1 << 20);
    assert_eq!(c.tls.mode, ClientTlsMode::Disable);
    assert_eq!(c.upstream_tls.server_name, "db.internal");
}

#[test]
fn flags_override_file() {
    let args = ConfigArgs {
        upstream: Some("127.0.0.1:1".into()),
        ..Default::default()
    };
    let c = load_toml("upstream = \"db:5432\"\n", args).unwrap();
    assert_eq!(c.upstream_port, 1);
}

#[test]
fn errors_name_key_and_line() {
    let err = load_toml(
        "upstream = \"db:5432\"\n\n[tls]\nmode = \"maybe\"\n",
        ConfigArgs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`tls.mode`"), "{err}");
    assert!(err.contains("line 4"), "{err}");

    let err = load_toml(
        "upstream = \"db:5432\"\nlisten_addr = 1\n",
        ConfigArgs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("listen_addr"), "{err}");

    let err = Config::load(&ConfigArgs::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`upstream`") && err.contains("COPYGUARD_UPSTREAM"),
        "{err}"
    );

    let args = ConfigArgs {
        upstream: Some("db:5432".into()),
        tls_mode: Some("require".into()),
        policy: Some(std::env::temp_dir().display().to_string()),
        ..Default::default()
    };
    let err = Config::load(&args).unwrap_err().to_string();
    assert!(err.contains("`tls.cert`"), "{err}");
}

#[test]
fn every_listed_setting_has_a_flag_and_a_file_key() {
    let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (key, flag, env, _) in SETTINGS {
        let args = ConfigArgs::default();
        assert!(args.get(key).is_none());
        assert!(flag.starts_with("--"), "{key}");
        assert!(env.starts_with("COPYGUARD_"), "{key}");
        let (section, name) = key.split_once('.').unwrap_or(("", key));
        sections
            .entry(section)
            .or_default()
            .push(format!("{name} = \"x\""));
    }
    let mut text = sections.remove("").unwrap_or_default().join("\n");
    for (section, lines) in sections {
        text.push_str(&format!("\n[{section}]\n{}", lines.join("\n")));
    }
    let file: FileConfig = toml::from_str(&text).expect("every listed key is a file key");
    for (key, ..) in SETTINGS {
        assert!(file.get(key).is_some(), "{key} not read from the file");
    }
}

#[test]
fn audit_defaults_and_settings() {
    let c = load_toml("upstream = \"db:5432\"\n", ConfigArgs::default()).unwrap();
    assert_eq!(c.audit, AuditConfig::default());
    assert!(c.audit.generate_keys);

    let c = load_toml(
        "upstream = \"db:5432\"\n[audit]\npath = \"/var/log/cg/audit.log\"\nflush = \"5ms\"\nrotate_size = \"off\"\nrotate_interval = \"1h\"\nanchor_interval = 10\nproduction_statements = true\n",
        ConfigArgs::default(),
    )
    .unwrap();
    assert_eq!(c.audit.path, Path::new("/var/log/cg/audit.log"));
    assert_eq!(c.audit.anchors, Path::new("/var/log/cg/audit.anchors"));
    assert_eq!(
        c.audit.chain_key_file,
        Path::new("/var/log/cg/audit.keys/chain.key")
    );
    assert_eq!(
        c.audit.flush,
        FlushPolicy::Interval(Duration::from_millis(5))
    );
    assert_eq!(c.audit.rotate_size, None);
    assert_eq!(c.audit.rotate_interval, Some(Duration::from_secs(3600)));
    assert_eq!(c.audit.anchor_interval, Duration::from_secs(10));
    assert!(c.audit.production_statements);

    let args = ConfigArgs {
        audit_rotate_size: Some("1GiB".into()),
        audit_flush: Some("every".into()),
        ..Default::default()
    };
    let c = load_toml("upstream = \"db:5432\"\n", args).unwrap();
    assert_eq!(c.audit.rotate_size, Some(1 << 30));
    assert_eq!(c.audit.flush, FlushPolicy::Every);
}

#[test]
fn audit_errors_name_the_key() {
    let err = |text: &str, args: ConfigArgs| load_toml(text, args).unwrap_err().to_string();
    let e = err(
        "upstream = \"db:5432\"\n[audit]\nflush = \"sometimes\"\n",
        ConfigArgs::default(),
    );
    assert!(e.contains("`audit.flush`") && e.contains("line 3"), "{e}");
    let e = err(
        "upstream = \"db:5432\"\n[audit]\nchain_key_file = \"/nonexistent/chain.key\"\n",
        ConfigArgs::default(),
    );
    assert!(e.contains("`audit.chain_key_file`"), "{e}");
    let key = std::env::temp_dir().join(format!("cg-key-{}", std::process::id()));
    std::fs::write(&key, "00").unwrap();
    let args = ConfigArgs {
        audit_chain_key_file: Some(key.display().to_string()),
        ..Default::default()
    };
    let e = err("upstream = \"db:5432\"\n", args);
    std::fs::remove_file(&key).unwrap();
    assert!(
        e.contains("`audit.signing_key_file`") && e.contains("COPYGUARD_AUDIT_SIGNING_KEY_FILE"),
        "{e}"
    );
    let args = ConfigArgs {
        audit_production_statements: Some("maybe".into()),
        ..Default::default()
    };
    let e = err("upstream = \"db:5432\"\n", args);
    assert!(e.contains("`audit.production_statements`"), "{e}");
    let e = err(
        "upstream = \"db:5432\"\n[audit]\nrotate_size = \"12\"\n",
        ConfigArgs::default(),
    );
    assert!(e.contains("`audit.rotate_size`"), "{e}");
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert!(parse_size("2GiB").is_err());
    assert!(parse_size("12 parsecs").is_err());
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
}

#[test]
fn flags_follow_the_field_names_clap_derives_them_from() {
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConfigArgs,
    }
    let cmd = Cli::command();
    for (key, flag, env, _) in SETTINGS {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == flag.strip_prefix("--"))
            .unwrap_or_else(|| panic!("{key}: no {flag}"));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(*env), "{key}");
    }
}

/// Issue 17: `--startup-timeout 0s` was accepted and every login then
/// failed; zero is refused wherever it makes no sense.
#[test]
fn zero_durations_are_refused_where_meaningless() {
    let err = |text: &str, args: ConfigArgs| load_toml(text, args).unwrap_err().to_string();
    for key in [
        "startup_timeout",
        "connect_timeout",
        "catalog_refresh",
        "catalog_check",
    ] {
        for zero in ["0s", "0", "0ms"] {
            let e = err(
                &format!("upstream = \"db:5432\"\n[limits]\n{key} = \"{zero}\"\n"),
                ConfigArgs::default(),
            );
            assert!(e.contains(&format!("`limits.{key}`")), "{e}");
            assert!(e.contains("must be more than 0"), "{e}");
        }
    }
    let args = ConfigArgs {
        upstream: Some("db:5432".into()),
        startup_timeout: Some("0s".into()),
        ..Default::default()
    };
    let e = err("", args);
    assert!(e.contains("--startup-timeout"), "{e}");
    let c = load_toml(
        "upstream = \"db:5432\"\n[limits]\nshutdown_timeout = \"0s\"\n",
        ConfigArgs::default(),
    )
    .unwrap();
    assert_eq!(c.limits.shutdown_timeout, Duration::ZERO, "close at once");
}

#[test]
fn dump_public_keys_from_file_flag_or_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pub");
    let b = dir.path().join("b.pub");
    for (path, seed) in [(&a, 1u8), (&b, 2u8)] {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        std::fs::write(path, hex::encode(key.verifying_key().as_bytes())).unwrap();
    }
    let c = load_toml("upstream = \"db:5432\"\n", ConfigArgs::default()).unwrap();
    assert!(c.grant_keys.is_empty());
    let text = format!(
        "upstream = \"db:5432\"\n[dumps]\npublic_keys = [{:?}, {:?}]\n",
        a.display().to_string(),
        b.display().to_string()
    );
    let c = load_toml(&text, ConfigArgs::default()).unwrap();
    assert!(!c.grant_keys.is_empty());
    let args = ConfigArgs {
        dump_public_keys: Some(format!("{},{}", a.display(), b.display())),
        ..ConfigArgs::default()
    };
    assert!(!load_toml("upstream = \"db:5432\"\n", args)
        .unwrap()
        .grant_keys
        .is_empty());
    let args = ConfigArgs {
        dump_public_keys: Some("/nonexistent/grant.pub".into()),
        ..ConfigArgs::default()
    };
    let e = load_toml("upstream = \"db:5432\"\n", args)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dumps.public_keys`"), "{e}");
    assert!(e.contains("--dump-public-keys"), "{e}");
}
