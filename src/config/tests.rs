//! Tests that read the environment or the working directory run inside `figment::Jail`, which
//! serializes them and restores both afterwards; the rest use `Config::from_toml_str`, which
//! reads neither.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use figment::Jail;

use super::*;

const SECRET: &str = "Kx9-fake-secret-for-tests";
const BASE: &str = "/srv/orgsync";

/// Runs a test with an empty environment and a temporary working directory, both restored after.
// The lint objects to figment's error type, which this closure has to return.
#[allow(clippy::result_large_err)]
fn in_jail(test: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        test(jail);
        Ok(())
    });
}

/// Writes `orgsync.toml` in the jail and returns its absolute path.
fn config_file(jail: &Jail, toml: &str) -> PathBuf {
    jail.create_file("orgsync.toml", toml).unwrap();
    jail.directory().join("orgsync.toml")
}

/// Loads `toml` as the config file, which must fail: the error's message, and the file's path
/// as messages name it.
fn load_error(jail: &Jail, toml: &str) -> (String, String) {
    let path = config_file(jail, toml);
    let error = Config::load(&path).unwrap_err();
    (error.to_string(), path.display().to_string())
}

/// A config file with only the required key and a secret file next to it, mode 0600.
fn minimal_files(jail: &Jail) -> PathBuf {
    secret_file(jail, "secret", &format!("{SECRET}\n"), 0o600);
    config_file(
        jail,
        "[wecom]\ncorp_id = \"ww0123456789abcdef\"\ncorp_secret_file = \"secret\"\n",
    )
}

/// Loads the minimal files with the environment variable `var` set to `value`, which must
/// fail: the error, and the config file's path.
fn env_error(jail: &mut Jail, var: &str, value: &str) -> (ConfigError, PathBuf) {
    let path = minimal_files(jail);
    jail.set_env(var, value);
    (Config::load(&path).unwrap_err(), path)
}

fn secret_file(jail: &Jail, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = jail.directory().join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `extra` is TOML with dotted keys (`wecom.concurrency = 8`), added to a valid base.
fn from_str(extra: &str) -> Result<Config, ConfigError> {
    let toml = format!(
        "wecom.corp_id = \"ww0123456789abcdef\"\nwecom.corp_secret = \"{SECRET}\"\n{extra}\n"
    );
    Config::from_toml_str(&toml, Path::new(BASE))
}

/// The key and the message of a value that fails validation.
fn rejected(extra: &str) -> (String, String) {
    match from_str(extra) {
        Err(error @ ConfigError::InvalidValue { .. }) => {
            let message = error.to_string();
            let ConfigError::InvalidValue { key, .. } = error else {
                unreachable!()
            };
            (key, message)
        }
        other => panic!("expected InvalidValue for {extra:?}, got {other:?}"),
    }
}

#[test]
fn defaults_apply_to_every_unset_key() {
    in_jail(|jail| {
        let config = Config::load(&minimal_files(jail)).unwrap();

        assert_eq!(config.wecom.corp_id, "ww0123456789abcdef");
        assert_eq!(config.wecom.agent_id, None);
        assert_eq!(config.wecom.api_base, "https://qyapi.weixin.qq.com");
        assert_eq!(config.wecom.root_department, 1);
        assert_eq!(config.wecom.concurrency, 4);
        assert_eq!(config.wecom.request_timeout_secs, 30);
        assert_eq!(config.wecom.retry_attempts, 3);
        assert_eq!(config.wecom.retry_base_delay_ms, 1000);
        assert_eq!(config.wecom.rate_limit_pause_secs, 60);
        // The client's own defaults, which the keys override.
        let (retry, client) = (config.wecom.retry(), crate::wecom::RetryPolicy::default());
        assert_eq!(retry.max_retries, client.max_retries);
        assert_eq!(retry.base_delay, client.base_delay);
        assert_eq!(retry.concurrency_wait, client.concurrency_wait);
        assert_eq!(retry.rate_limit_wait, client.rate_limit_wait);
        assert_eq!(retry.max_delay, client.max_delay);
        assert_eq!(config.schedule.cron, "0 0 2 * * *");
        assert_eq!(config.schedule.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(config.store.path, Path::new("/var/lib/orgsync/orgsync.db"));
        assert_eq!(config.store.busy_timeout(), crate::store::BUSY_TIMEOUT);
        assert_eq!(config.socket.path, Path::new("/run/orgsync/orgsync.sock"));
        assert_eq!(config.socket.group, None);
        assert!(config.socket.admin_uids.is_empty());
        assert!(config.socket.admin_gids.is_empty());
        assert_eq!(config.socket.max_connections, 256);
        assert_eq!(config.safety.max_deletes, 500);
        assert_eq!(config.safety.max_delete_ratio, 0.2);
        assert_eq!(config.events.retention_days, 30);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    });
}

#[test]
fn the_file_overrides_defaults() {
    in_jail(|jail| {
        jail.create_file(
            "orgsync.toml",
            r#"
            [wecom]
            corp_id = "ww0123456789abcdef"
            corp_secret_file = "secret"
            agent_id = 1000002
            api_base = "http://127.0.0.1:8080/"
            root_department = 7
            concurrency = 8
            request_timeout_secs = 5
            retry_attempts = 0
            retry_base_delay_ms = 20
            rate_limit_pause_secs = 2

            [schedule]
            cron = "0 30 3 * * Mon-Fri"
            timezone = "Europe/Berlin"

            [store]
            path = "/tmp/o.db"
            busy_timeout_secs = 1

            [socket]
            path = "/tmp/o.sock"
            group = "orgsync-clients"
            admin_uids = [1000, 1001]
            admin_gids = [50]
            max_connections = 16

            [safety]
            max_deletes = 10
            max_delete_ratio = 1

            [events]
            retention_days = 7

            [log]
            format = "json"
            level = "info,orgsync=debug"
            "#,
        )
        .unwrap();
        secret_file(jail, "secret", SECRET, 0o600);
        let config = Config::load(Path::new("orgsync.toml")).unwrap();

        assert_eq!(config.wecom.agent_id, Some(1000002));
        assert_eq!(config.wecom.api_base, "http://127.0.0.1:8080");
        assert_eq!(config.wecom.root_department, 7);
        assert_eq!(config.wecom.concurrency, 8);
        assert_eq!(config.wecom.request_timeout_secs, 5);
        assert_eq!(config.wecom.retry_attempts, 0);
        assert_eq!(config.wecom.retry_base_delay_ms, 20);
        assert_eq!(config.wecom.rate_limit_pause_secs, 2);
        let retry = config.wecom.retry();
        assert_eq!(retry.max_retries, 0);
        assert_eq!(retry.base_delay, std::time::Duration::from_millis(20));
        assert_eq!(retry.concurrency_wait, std::time::Duration::from_millis(20));
        assert_eq!(retry.rate_limit_wait, std::time::Duration::from_secs(2));
        assert_eq!(config.schedule.cron, "0 30 3 * * Mon-Fri");
        assert_eq!(config.schedule.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(config.store.path, Path::new("/tmp/o.db"));
        assert_eq!(config.store.busy_timeout_secs, 1);
        assert_eq!(config.socket.path, Path::new("/tmp/o.sock"));
        assert_eq!(config.socket.group.as_deref(), Some("orgsync-clients"));
        assert_eq!(config.socket.admin_uids, [1000, 1001]);
        assert_eq!(config.socket.admin_gids, [50]);
        assert_eq!(config.socket.max_connections, 16);
        assert_eq!(config.safety.max_deletes, 10);
        assert_eq!(config.safety.max_delete_ratio, 1.0);
        assert_eq!(config.events.retention_days, 7);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "info,orgsync=debug");
    });
}

#[test]
fn environment_variables_override_the_file() {
    in_jail(|jail| {
        let path = minimal_files(jail);
        jail.set_env("ORGSYNC_WECOM__CORP_ID", "ww123");
        jail.set_env("ORGSYNC_WECOM__API_BASE", "http://localhost:9000");
        jail.set_env("ORGSYNC_SAFETY__MAX_DELETES", "10");
        jail.set_env("ORGSYNC_SAFETY__MAX_DELETE_RATIO", "0.5");
        jail.set_env("ORGSYNC_SOCKET__ADMIN_UIDS", "[1000, 1001]");
        jail.set_env("ORGSYNC_SOCKET__GROUP", "\"1000\"");
        jail.set_env("ORGSYNC_LOG__LEVEL", "info,orgsync=debug");
        let config = Config::load(&path).unwrap();

        assert_eq!(config.wecom.corp_id, "ww123");
        assert_eq!(config.wecom.api_base, "http://localhost:9000");
        assert_eq!(config.safety.max_deletes, 10);
        assert_eq!(config.safety.max_delete_ratio, 0.5);
        assert_eq!(config.socket.admin_uids, [1000, 1001]);
        assert_eq!(config.socket.group.as_deref(), Some("1000"));
        assert_eq!(config.log.level, "info,orgsync=debug");

        // A value that fails validation names the variable that set it.
        jail.set_env("ORGSYNC_SAFETY__MAX_DELETE_RATIO", "2");
        assert_eq!(
            Config::load(&path).unwrap_err().to_string(),
            "environment variable ORGSYNC_SAFETY__MAX_DELETE_RATIO: 2 is not within 0..=1 \
             (it is a fraction: 0.2 means 20%)"
        );
    });
}

#[test]
fn a_number_in_the_environment_for_a_string_key_says_how_to_quote_it() {
    in_jail(|jail| {
        let (error, _) = env_error(jail, "ORGSYNC_WECOM__CORP_ID", "123");

        assert!(
            matches!(&error, ConfigError::InvalidValue { key, origin: Origin::Env(var), .. }
                if key == "wecom.corp_id" && var == "ORGSYNC_WECOM__CORP_ID"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "environment variable ORGSYNC_WECOM__CORP_ID: expected a string, found unsigned int \
             `123` (to pass it as a string, quote it: ORGSYNC_WECOM__CORP_ID='\"...\"')"
        );
    });
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_a_suggestion() {
    in_jail(|jail| {
        let (error, path) = load_error(jail, "[wecom]\ncorpid = \"ww1\"\n");
        assert_eq!(
            error,
            format!("unknown key `wecom.corpid` in {path} (did you mean `wecom.corp_id`?)")
        );
    });
}

#[test]
fn an_unknown_section_lists_the_known_ones() {
    let error = from_str("[wecomm]\ncorp_id = \"x\"").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown key `wecomm` (did you mean `wecom`?)"
    );
    let error = from_str("[database]\npath = \"x\"").unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown key `database`; the keys allowed there are `wecom`, `schedule`, `store`, \
         `socket`, `safety`, `matching`, `events`, `log`, `http`, `callback`, `sinks`"
    );
}

#[test]
fn an_unknown_environment_variable_is_named() {
    in_jail(|jail| {
        let (error, path) = env_error(jail, "ORGSYNC_WECOM__CORPID", "ww1");
        assert!(
            matches!(&error, ConfigError::UnknownKey { key, origin: Origin::Env(_), .. }
                if key == "wecom.corpid"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "unknown environment variable ORGSYNC_WECOM__CORPID \
             (did you mean ORGSYNC_WECOM__CORP_ID?)"
        );

        // ORGSYNC_CONFIG names the config file (the command line's --config), not a key.
        jail.clear_env();
        jail.set_env("ORGSYNC_CONFIG", "/etc/orgsync/orgsync.toml");
        assert!(Config::load(&path).is_ok());
    });
}

#[test]
fn a_wrong_type_names_the_key_and_the_expected_type() {
    in_jail(|jail| {
        let (error, path) = load_error(
            jail,
            "[wecom]\ncorp_id = \"ww1\"\n[safety]\nmax_deletes = \"ten\"\n",
        );
        assert_eq!(
            error,
            format!(
                "key `safety.max_deletes` in {path}: expected a non-negative integer, found string \"ten\""
            )
        );

        let path = config_file(jail, "[wecom]\ncorp_id = \"ww1\"\n");
        jail.set_env("ORGSYNC_WECOM__CONCURRENCY", "-1");
        let error = Config::load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable ORGSYNC_WECOM__CONCURRENCY: expected a non-negative integer, \
             found signed int `-1`"
        );
    });
    let (key, message) = rejected("log.format = \"xml\"");
    assert_eq!(key, "log.format");
    assert_eq!(
        message,
        "key `log.format`: `xml` is not one of `text`, `json`"
    );
    let (key, message) = rejected("safety = 3");
    assert_eq!(key, "safety");
    assert_eq!(
        message,
        "key `safety`: expected a table, found signed int `3`"
    );
}

#[test]
fn a_missing_config_file_says_how_to_pass_one() {
    in_jail(|_| {
        let error = Config::load(Path::new("/etc/orgsync/nonexistent.toml")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config file /etc/orgsync/nonexistent.toml does not exist; check the path given \
             with --config or ORGSYNC_CONFIG, or create it from orgsync.example.toml \
             (docs/configuration.md)"
        );
    });
}

#[test]
fn a_missing_corp_id_is_named() {
    in_jail(|jail| {
        let (error, path) = load_error(jail, "[schedule]\ntimezone = \"UTC\"\n");
        assert_eq!(
            error,
            format!(
                "missing required key `wecom.corp_id` in {path}: add it, or set ORGSYNC_WECOM__CORP_ID"
            )
        );
    });
}

#[test]
fn a_toml_syntax_error_is_one_line_naming_the_file() {
    in_jail(|jail| {
        let (message, path) = load_error(jail, "[wecom\ncorp_id = \"ww1\"\n");
        assert!(
            message.starts_with(&format!(
                "config file {path} is not valid TOML: line 1, column 7"
            )),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    });
}

#[test]
fn secret_from_a_file_is_trimmed_and_relative_to_the_config() {
    in_jail(|jail| {
        let path = minimal_files(jail);
        let config = Config::load(&path).unwrap();
        assert_eq!(config.corp_secret(), Some(SECRET));
        let expected = jail.directory().join("secret");
        assert_eq!(
            config.wecom.corp_secret_file.as_deref(),
            Some(expected.as_path())
        );
        assert_eq!(
            config.secret_source(),
            Some(&SecretSource::File(expected.clone()))
        );
        assert_eq!(
            config.secret_source().map(ToString::to_string).as_deref(),
            Some(format!("file {}", expected.display()).as_str())
        );
    });
}

#[test]
fn secret_inline_works_with_a_warning() {
    let config = from_str("").unwrap();
    assert_eq!(config.corp_secret(), Some(SECRET));
    assert_eq!(config.secret_source(), Some(&SecretSource::Inline));
    assert_eq!(config.warnings(), [ConfigWarning::InlineSecret]);

    let toml = "[wecom]\ncorp_id = \"ww1\"\ncorp_secret = \" \"\n";
    let error = Config::from_toml_str(toml, Path::new(BASE)).unwrap_err();
    assert!(matches!(error, ConfigError::SecretEmpty), "{error:?}");
}

#[test]
fn secret_from_the_systemd_credential_when_no_key_is_set() {
    in_jail(|jail| {
        config_file(jail, "[wecom]\ncorp_id = \"ww1\"\n");
        let credentials = jail
            .directory()
            .join(jail.create_dir("credentials").unwrap());
        let credential = secret_file(
            jail,
            "credentials/corp_secret",
            &format!("{SECRET}\n"),
            0o400,
        );
        jail.set_env("CREDENTIALS_DIRECTORY", credentials.display());
        let config = Config::load(Path::new("orgsync.toml")).unwrap();

        assert_eq!(config.corp_secret(), Some(SECRET));
        assert_eq!(
            config.secret_source(),
            Some(&SecretSource::Credential(credential.clone()))
        );
        assert_eq!(
            config.secret_source().map(ToString::to_string).as_deref(),
            Some(format!("systemd credential corp_secret ({})", credential.display()).as_str())
        );
        assert!(config.warnings().is_empty());

        // A key wins over the credential, with a warning that the credential is unused.
        jail.set_env("ORGSYNC_WECOM__CORP_SECRET_FILE", "secret");
        secret_file(jail, "secret", "from-the-file", 0o600);
        let config = Config::load(Path::new("orgsync.toml")).unwrap();
        assert_eq!(config.corp_secret(), Some("from-the-file"));
        assert_eq!(
            config.warnings(),
            [ConfigWarning::CredentialIgnored { credential }]
        );
    });
}

#[test]
fn both_secret_keys_are_an_error_naming_both() {
    in_jail(|jail| {
        let (error, _) = env_error(jail, "ORGSYNC_WECOM__CORP_SECRET", "inline");
        assert!(matches!(error, ConfigError::SecretConflict), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("`wecom.corp_secret`"), "{message}");
        assert!(message.contains("`wecom.corp_secret_file`"), "{message}");
    });
}

#[test]
fn commands_that_never_call_wecom_load_without_reading_the_secret() {
    in_jail(|jail| {
        // The service's shape: the secret is a systemd credential, absent in a shell; and a
        // secret file the caller may not read.
        config_file(
            jail,
            "[wecom]\ncorp_id = \"ww1\"\n[socket]\npath = \"run/orgsync.sock\"\n",
        );
        let config = Config::load_without_secret(Path::new("orgsync.toml")).unwrap();
        assert_eq!(config.corp_secret(), None);
        assert_eq!(config.secret_source(), None);
        assert_eq!(
            config.socket.path,
            jail.directory().join("run/orgsync.sock")
        );
        assert!(config
            .redacted_toml()
            .starts_with("# corp secret: not read\n"));

        jail.set_env("ORGSYNC_WECOM__CORP_SECRET_FILE", "/nonexistent/secret");
        assert!(Config::load_without_secret(Path::new("orgsync.toml")).is_ok());
        assert!(Config::load(Path::new("orgsync.toml")).is_err());

        // Everything else is validated as usual.
        jail.set_env("ORGSYNC_SAFETY__MAX_DELETE_RATIO", "2");
        assert!(matches!(
            Config::load_without_secret(Path::new("orgsync.toml")),
            Err(ConfigError::InvalidValue { .. })
        ));
    });
}

#[test]
fn a_missing_secret_says_where_it_looked_and_how_to_provide_it() {
    in_jail(|jail| {
        config_file(jail, "[wecom]\ncorp_id = \"ww1\"\n");
        let error = Config::load(Path::new("orgsync.toml")).unwrap_err();
        assert!(
            matches!(error, ConfigError::SecretMissing { credential: None }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "no WeCom corp secret: looked for `wecom.corp_secret_file`, `wecom.corp_secret` and \
             the systemd credential `corp_secret` ($CREDENTIALS_DIRECTORY is not set); set \
             `wecom.corp_secret_file` to a file that holds the app's Secret, or pass it as a \
             systemd credential (LoadCredential=corp_secret:/path/to/secret)"
        );

        let credentials = jail
            .directory()
            .join(jail.create_dir("credentials").unwrap());
        jail.set_env("CREDENTIALS_DIRECTORY", credentials.display());
        let error = Config::load(Path::new("orgsync.toml")).unwrap_err();
        let expected = format!(
            "the systemd credential {} (not found)",
            credentials.join("corp_secret").display()
        );
        assert!(error.to_string().contains(&expected), "{error}");
    });
}

#[test]
fn secret_files_that_cannot_hold_a_secret_are_rejected() {
    in_jail(|jail| {
        let path = minimal_files(jail);
        let problem = |contents: &[u8]| {
            fs::write(jail.directory().join("secret"), contents).unwrap();
            match Config::load(&path).unwrap_err() {
                ConfigError::SecretFile { from, problem } => {
                    assert_eq!(from, SecretSource::File(jail.directory().join("secret")));
                    problem
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(matches!(problem(b" \n\n"), SecretFileProblem::Empty));
        assert!(matches!(
            problem(&[b'x'; 4097]),
            SecretFileProblem::TooLarge { limit: 4096 }
        ));
        assert!(matches!(problem(b"\xff\xfe"), SecretFileProblem::NotUtf8));

        fs::write(jail.directory().join("secret"), [b'x'; 4096]).unwrap();
        assert_eq!(
            Config::load(&path).unwrap().corp_secret().map(str::len),
            Some(4096)
        );

        fs::remove_file(jail.directory().join("secret")).unwrap();
        let error = Config::load(&path).unwrap_err();
        assert!(
            matches!(
                &error,
                ConfigError::SecretFile {
                    problem: SecretFileProblem::Io(_),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("No such file"), "{error}");
        assert!(
            error.to_string().ends_with(
                "; write the app's Secret into it (chmod 600), or set `wecom.corp_secret_file` \
                 to the file that holds it"
            ),
            "{error}"
        );
    });
}

#[test]
fn a_secret_file_readable_by_others_gives_a_warning() {
    in_jail(|jail| {
        let path = minimal_files(jail);
        let secret = secret_file(jail, "secret", SECRET, 0o640);
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config.warnings(),
            [ConfigWarning::SecretFileReadable {
                path: secret,
                mode: 0o640
            }]
        );
        assert!(config.warnings()[0].to_string().contains("(mode 0640)"));
    });
}

#[test]
fn the_secret_never_shows_in_redacted_toml_or_debug() {
    let config = from_str("").unwrap();
    let redacted = config.redacted_toml();
    assert!(!redacted.contains(SECRET), "{redacted}");
    assert!(
        redacted.contains("corp_secret = \"<redacted>\""),
        "{redacted}"
    );
    assert!(
        redacted.starts_with("# corp secret: inline `wecom.corp_secret`\n"),
        "{redacted}"
    );
    assert!(!format!("{config:?}").contains(SECRET));
    assert!(!format!("{:?}", config.wecom).contains(SECRET));

    in_jail(|jail| {
        let path = minimal_files(jail);
        let config = Config::load(&path).unwrap();
        let redacted = config.redacted_toml();
        assert!(!redacted.contains(SECRET), "{redacted}");
        assert!(!redacted.contains("<redacted>"), "{redacted}");
        let secret_path = jail.directory().join("secret");
        assert!(
            redacted.contains(&format!("corp_secret_file = \"{}\"", secret_path.display())),
            "{redacted}"
        );
        assert!(!format!("{config:?}").contains(SECRET));
    });
}

#[test]
fn redacted_toml_is_the_effective_config_and_loads_again() {
    let config = from_str("safety.max_deletes = 7\nschedule.timezone = \"UTC\"").unwrap();
    let redacted = config.redacted_toml();
    let reloaded = Config::from_toml_str(&redacted, Path::new(BASE)).unwrap();
    assert_eq!(reloaded.safety, config.safety);
    assert_eq!(reloaded.schedule, config.schedule);
    assert_eq!(reloaded.socket, config.socket);
    assert_eq!(reloaded.log, config.log);
}

#[test]
fn relative_paths_are_resolved_against_the_config_directory() {
    in_jail(|jail| {
        let dir = jail.create_dir("etc").unwrap();
        fs::write(
            dir.join("orgsync.toml"),
            "[wecom]\ncorp_id = \"ww1\"\ncorp_secret_file = \"secret\"\n\
             [store]\npath = \"data/orgsync.db\"\n",
        )
        .unwrap();
        fs::write(dir.join("secret"), SECRET).unwrap();
        jail.set_env("ORGSYNC_SOCKET__PATH", "run/orgsync.sock");
        // Loaded from elsewhere: neither the working directory nor the source of the value matters.
        jail.change_dir(jail.create_dir("elsewhere").unwrap())
            .unwrap();
        let config = Config::load(Path::new("../etc/orgsync.toml")).unwrap();

        let dir = jail.directory().join("elsewhere/../etc");
        assert_eq!(config.store.path, dir.join("data/orgsync.db"));
        assert_eq!(config.socket.path, dir.join("run/orgsync.sock"));
        assert_eq!(config.corp_secret(), Some(SECRET));
    });

    let config = from_str("store.path = \"orgsync.db\"").unwrap();
    assert_eq!(config.store.path, Path::new(BASE).join("orgsync.db"));
}

#[test]
fn cron_must_be_one_the_scheduler_accepts() {
    let (key, message) = rejected("schedule.cron = \"0 2 * * *\"");
    assert_eq!(key, "schedule.cron");
    assert!(message.contains("6 fields with seconds"), "{message}");
    let (key, _) = rejected("schedule.cron = \"0 0 25 * * *\"");
    assert_eq!(key, "schedule.cron");
    let (_, message) = rejected("schedule.cron = \"0 0 0 30 2 *\"");
    assert!(message.contains("never run"), "{message}");
    assert!(from_str("schedule.cron = \"0 */15 8-18 * * Mon-Fri\"").is_ok());
}

#[test]
fn timezone_must_be_an_iana_name() {
    let (key, message) = rejected("schedule.timezone = \"Asia/Beijing\"");
    assert_eq!(key, "schedule.timezone");
    assert_eq!(
        message,
        "key `schedule.timezone`: unknown time zone `Asia/Beijing`; use an IANA name such as \
         `Asia/Shanghai`"
    );
    let (_, message) = rejected("schedule.timezone = \"asia/shanghai\"");
    assert!(
        message.contains("did you mean `Asia/Shanghai`?"),
        "{message}"
    );
}

#[test]
fn api_base_is_https_or_loopback_http_without_cgi_bin() {
    let accepted = |value: &str| {
        from_str(&format!("wecom.api_base = \"{value}\""))
            .map(|config| config.wecom.api_base)
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        accepted("https://qyapi.weixin.qq.com/").unwrap(),
        "https://qyapi.weixin.qq.com"
    );
    assert_eq!(
        accepted("https://proxy.example/wecom/").unwrap(),
        "https://proxy.example/wecom"
    );
    assert_eq!(
        accepted("http://127.0.0.1:8080").unwrap(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(accepted("http://127.9.9.9").unwrap(), "http://127.9.9.9");
    assert_eq!(
        accepted("http://localhost:1234/").unwrap(),
        "http://localhost:1234"
    );
    assert_eq!(accepted("http://[::1]:8080").unwrap(), "http://[::1]:8080");

    let message = accepted("http://qyapi.weixin.qq.com").unwrap_err();
    assert!(message.starts_with("key `wecom.api_base`: "), "{message}");
    assert!(message.contains("use https"), "{message}");
    assert!(accepted("http://10.0.0.1").is_err());
    assert!(accepted("http://localhost.evil.example").is_err());
    let message = accepted("https://qyapi.weixin.qq.com/cgi-bin/").unwrap_err();
    assert!(
        message.ends_with("without the `/cgi-bin` suffix: `https://qyapi.weixin.qq.com`"),
        "{message}"
    );
    assert!(accepted("https://qyapi.weixin.qq.com/?debug=1").is_err());
    assert!(accepted("ftp://qyapi.weixin.qq.com").is_err());
    assert!(accepted("qyapi.weixin.qq.com").is_err());
}

#[test]
fn out_of_range_values_are_named() {
    for (extra, key) in [
        ("wecom.concurrency = 0", "wecom.concurrency"),
        ("wecom.agent_id = 0", "wecom.agent_id"),
        ("wecom.agent_id = -1000002", "wecom.agent_id"),
        ("wecom.concurrency = 33", "wecom.concurrency"),
        (
            "wecom.request_timeout_secs = 0",
            "wecom.request_timeout_secs",
        ),
        ("wecom.root_department = 0", "wecom.root_department"),
        ("wecom.retry_attempts = 11", "wecom.retry_attempts"),
        ("wecom.retry_attempts = -1", "wecom.retry_attempts"),
        ("wecom.retry_base_delay_ms = 0", "wecom.retry_base_delay_ms"),
        (
            "wecom.retry_base_delay_ms = 30001",
            "wecom.retry_base_delay_ms",
        ),
        (
            "wecom.rate_limit_pause_secs = 0",
            "wecom.rate_limit_pause_secs",
        ),
        (
            "wecom.rate_limit_pause_secs = 3601",
            "wecom.rate_limit_pause_secs",
        ),
        ("store.busy_timeout_secs = 0", "store.busy_timeout_secs"),
        ("safety.max_delete_ratio = 1.5", "safety.max_delete_ratio"),
        ("safety.max_delete_ratio = -0.1", "safety.max_delete_ratio"),
        ("safety.max_delete_ratio = nan", "safety.max_delete_ratio"),
        ("events.retention_days = 0", "events.retention_days"),
        ("socket.max_connections = 0", "socket.max_connections"),
        ("socket.group = \"\"", "socket.group"),
        ("store.path = \"\"", "store.path"),
        ("log.level = \"info,[\"", "log.level"),
        ("log.level = \"verbose\"", "log.level"),
        ("log.level = \"info,loud\"", "log.level"),
        ("log.level = \"\"", "log.level"),
    ] {
        assert_eq!(rejected(extra).0, key, "{extra}");
    }
    assert_eq!(
        rejected("safety.max_delete_ratio = 1.5").1,
        "key `safety.max_delete_ratio`: 1.5 is not within 0..=1 (it is a fraction: 0.2 means 20%)"
    );
    assert!(from_str("wecom.concurrency = 32\nsafety.max_delete_ratio = 0").is_ok());
    for level in [
        "DEBUG",
        "warn,orgsync::wecom=trace",
        "off",
        "orgsync[run]=debug",
    ] {
        assert!(
            from_str(&format!("log.level = \"{level}\"")).is_ok(),
            "{level}"
        );
    }
    assert!(from_str("wecom.retry_attempts = 0\nwecom.retry_base_delay_ms = 1").is_ok());
}

#[test]
fn a_socket_path_too_long_for_a_unix_socket_is_rejected() {
    let long = format!("/run/{}/orgsync.sock", "d".repeat(100));
    let (key, message) = rejected(&format!("socket.path = \"{long}\""));
    assert_eq!(key, "socket.path");
    assert!(message.contains("at most 107"), "{message}");
}

#[test]
fn corp_id_must_be_a_single_word() {
    let error = |corp_id: &str| {
        let toml = format!("[wecom]\ncorp_id = \"{corp_id}\"\ncorp_secret = \"s\"\n");
        Config::from_toml_str(&toml, Path::new(BASE))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(""),
        "key `wecom.corp_id`: is empty; set it to your corp ID (ww...)"
    );
    assert_eq!(
        error("ww12 34"),
        "key `wecom.corp_id`: `ww12 34` contains whitespace; a corp ID never does"
    );
}

#[test]
fn the_example_config_parses_and_documents_the_defaults() {
    in_jail(|jail| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/orgsync.example.toml");
        let secret = secret_file(jail, "secret", SECRET, 0o600);
        jail.set_env("ORGSYNC_WECOM__CORP_SECRET_FILE", secret.display());
        let config = Config::load(&example).unwrap();
        assert_eq!(config.corp_secret(), Some(SECRET));

        let defaults = from_str("").unwrap();
        assert_eq!(config.wecom.agent_id, defaults.wecom.agent_id);
        assert_eq!(config.wecom.api_base, defaults.wecom.api_base);
        assert_eq!(config.wecom.root_department, defaults.wecom.root_department);
        assert_eq!(config.wecom.concurrency, defaults.wecom.concurrency);
        assert_eq!(
            config.wecom.request_timeout_secs,
            defaults.wecom.request_timeout_secs
        );
        assert_eq!(config.wecom.retry_attempts, defaults.wecom.retry_attempts);
        assert_eq!(
            config.wecom.retry_base_delay_ms,
            defaults.wecom.retry_base_delay_ms
        );
        assert_eq!(
            config.wecom.rate_limit_pause_secs,
            defaults.wecom.rate_limit_pause_secs
        );
        assert_eq!(config.schedule, defaults.schedule);
        assert_eq!(config.store, defaults.store);
        assert_eq!(config.socket, defaults.socket);
        assert_eq!(config.safety, defaults.safety);
        assert_eq!(config.events, defaults.events);
        assert_eq!(config.log, defaults.log);
    });
}

#[test]
fn sink_and_token_names_are_one_rule_and_each_error_says_what_the_name_names() {
    let rule = "must be 1 to 64 letters, digits, `_` or `-`";
    let cases = [
        (
            "[[sinks.webhook]]\nname = \"a b\"\nurl = \"https://hooks.example.com/o\"",
            "sinks.webhook",
            "webhook[0].name \"a b\"",
            "(it names the sink's cursor, `sink:NAME`, and its credential, `sink_secret_NAME`)",
        ),
        (
            "[[sinks.nats]]\nname = \"\"\nservers = [\"tls://nats.example.com:4222\"]",
            "sinks.nats",
            "nats[0].name \"\"",
            "(it names the sink's cursor, `sink:NAME`)",
        ),
        (
            &format!(
                "[[http.tokens]]\nname = \"{}\"\nscope = \"read\"",
                "t".repeat(65)
            ),
            "http.tokens",
            &format!("tokens[0].name \"{}\"", "t".repeat(64)),
            "(it names the token's consumers, `token:NAME`, and its credential, `http_token_NAME`)",
        ),
    ];
    for (toml, expected_key, subject, names) in cases {
        let (key, message) = rejected(toml);
        assert_eq!(key, expected_key, "{message}");
        assert!(
            message.contains(&format!("{subject} {rule} {names}")),
            "{message}"
        );
    }
    // A valid name passes the check and the sink goes on to need its secret.
    for name in ["crm", "CRM_2", "a-b"] {
        let toml =
            format!("[[sinks.webhook]]\nname = \"{name}\"\nurl = \"https://h.example.com/\"");
        let (_, message) = rejected(&toml);
        assert!(
            message.contains(&format!("no systemd credential sink_secret_{name} ")),
            "{message}"
        );
    }
}
