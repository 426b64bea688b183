//! Configuration from the environment (a `.env` file is read first when present), each setting
//! with a default that gives the embedded profile: SQLite file, in-process jobs and events.
//!
//! [`Config`] is a clap derive struct: clap reads each variable (`env`) or its default, and one
//! value parser per setting checks it. A blank value counts as unset, as the defaults do: each
//! parser gets `""` for an unset variable and trims what it is given.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::http::HeaderValue;
use clap::Parser;
use waflow_jobs::SecretBox;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://waflow.db?mode=rwc";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

// The fully qualified `Option` and `bool` keep clap's special handling of those types away: a
// setting is always one value (its variable or default) that its parser turns into the type.
#[derive(Debug, Clone, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Config {
    /// SQLite file (embedded) or `postgres://user@host/db` (production).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = database_url)]
    pub database_url: String,
    /// Unset: the embedded profile. Set: the job queue and event fan-out use Redis.
    #[arg(long, env = "REDIS_URL", default_value = "", value_parser = optional)]
    pub redis_url: ::std::option::Option<String>,
    /// Prefix of every Redis key, so deployments can share one Redis.
    #[arg(long, env = "WAFLOW_REDIS_PREFIX", default_value = "waflow:", value_parser = redis_prefix)]
    pub redis_prefix: String,
    /// The address the HTTP server binds.
    #[arg(long, env = "WAFLOW_LISTEN", default_value = DEFAULT_LISTEN, value_parser = listen)]
    pub listen: SocketAddr,
    /// The address clients reach this server at, without a trailing `/`; `http://` and the
    /// listen address when unset.
    #[arg(long, env = "WAFLOW_PUBLIC_URL", default_value = "", value_parser = public_url)]
    pub public_url: String,
    /// 32 random bytes in base64 that encrypt provider secrets at rest.
    #[arg(long, env = "WAFLOW_SECRET_KEY", default_value = "", value_parser = optional, hide_env_values = true)]
    secret_key: ::std::option::Option<String>,
    /// Origins allowed to call the API from a browser (comma-separated).
    #[arg(long, env = "WAFLOW_CORS_ORIGINS", default_value = "", value_parser = cors_origins)]
    pub cors_origins: ::std::vec::Vec<HeaderValue>,
    /// How long a conversation's end waits for its assistant's evaluation.
    #[arg(long, env = "WAFLOW_EVALUATION_TIMEOUT_SECONDS", default_value = "", value_parser = evaluation_timeout)]
    pub evaluation_timeout: Duration,
    /// Finished flow runs older than this are pruned; `None` keeps them all.
    #[arg(long, env = "WAFLOW_RUN_RETENTION_DAYS", default_value = "", value_parser = run_retention)]
    pub run_retention: ::std::option::Option<Duration>,
    /// Whether requests to workspaces' URLs may reach private networks (the egress policy).
    #[arg(long, env = "WAFLOW_ALLOW_PRIVATE_NETWORKS", default_value = "", value_parser = allow_private_networks)]
    pub allow_private_networks: ::std::primitive::bool,
    /// Inbound messages older than this are replays: recorded, running nothing.
    #[arg(long, env = "WAFLOW_INBOUND_MAX_AGE_HOURS", default_value = "", value_parser = inbound_max_age)]
    pub inbound_max_age: Duration,
    /// How long the flow queue's oldest ready job may wait before flow webhooks answer 503
    /// instead of queueing more runs; `None` (`0`) never refuses them.
    #[arg(long, env = "WAFLOW_MAX_RUN_BACKLOG_SECONDS", default_value = "", value_parser = max_run_backlog)]
    pub max_run_backlog: ::std::option::Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "DATABASE_URL points at PostgreSQL, the production profile, which needs REDIS_URL for its job \
         queue and event fan-out (the embedded queue lives in a SQLite file). Set REDIS_URL, or use \
         sqlite:// for a single process"
    )]
    PostgresWithoutRedis,
    #[error(
        "WAFLOW_SECRET_KEY is required with PostgreSQL: every process must encrypt provider secrets \
         with the same key (make one with `openssl rand -base64 32`)"
    )]
    MissingSecretKey,
    #[error(transparent)]
    Key(#[from] waflow_jobs::crypto::KeyError),
    /// Anything else clap refuses (none of the settings' own checks).
    #[error("the configuration cannot be read: {0}")]
    Unreadable(String),
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

fn database_url(text: &str) -> Result<String, ConfigError> {
    let url = match text.trim() {
        "" => DEFAULT_DATABASE_URL,
        url => url,
    };
    if !(url.starts_with("sqlite:") || url.starts_with("postgres")) {
        return Err(invalid(
            "DATABASE_URL",
            "must start with sqlite: or postgres://".into(),
        ));
    }
    Ok(url.to_owned())
}

fn optional(text: &str) -> Result<Option<String>, ConfigError> {
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn redis_prefix(text: &str) -> Result<String, ConfigError> {
    Ok(optional(text)?.unwrap_or_else(|| "waflow:".to_owned()))
}

fn listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let text = match text.trim() {
        "" => DEFAULT_LISTEN,
        text => text,
    };
    text.parse().map_err(|_| {
        invalid(
            "WAFLOW_LISTEN",
            format!("{text:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

/// Trimmed of its trailing `/`; empty until [`Config::from_env`] fills in the default, which
/// depends on the listen address.
fn public_url(text: &str) -> Result<String, ConfigError> {
    Ok(text.trim().trim_end_matches('/').to_owned())
}

fn cors_origins(list: &str) -> Result<Vec<HeaderValue>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| {
                invalid(
                    "WAFLOW_CORS_ORIGINS",
                    format!("{o:?} is not an origin like https://app.example.com"),
                )
            })
        })
        .collect()
}

/// A whole number from `range`, or `None` when `text` is blank.
fn number_in(
    name: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(number) if range.contains(&number) => Ok(Some(number)),
        _ => Err(invalid(
            name,
            format!(
                "{text:?} is not a number of {unit} from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn evaluation_timeout(text: &str) -> Result<Duration, ConfigError> {
    let seconds = number_in(
        "WAFLOW_EVALUATION_TIMEOUT_SECONDS",
        text,
        1..=3600,
        "seconds",
    )?;
    Ok(seconds.map_or(
        waflow_jobs::context::DEFAULT_EVALUATION_TIMEOUT,
        Duration::from_secs,
    ))
}

fn run_retention(text: &str) -> Result<Option<Duration>, ConfigError> {
    let days = number_in("WAFLOW_RUN_RETENTION_DAYS", text, 1..=36_500, "days")?;
    Ok(days.map(|days| Duration::from_secs(days * 86_400)))
}

fn allow_private_networks(text: &str) -> Result<bool, ConfigError> {
    match text.trim() {
        "" | "false" | "0" => Ok(false),
        "true" | "1" => Ok(true),
        other => Err(invalid(
            "WAFLOW_ALLOW_PRIVATE_NETWORKS",
            format!("{other:?} is neither true nor false"),
        )),
    }
}

fn inbound_max_age(text: &str) -> Result<Duration, ConfigError> {
    let hours = number_in("WAFLOW_INBOUND_MAX_AGE_HOURS", text, 1..=8_760, "hours")?;
    Ok(
        hours.map_or(waflow_jobs::context::DEFAULT_INBOUND_MAX_AGE, |hours| {
            Duration::from_secs(hours * 3600)
        }),
    )
}

/// Whole seconds from 0 to 3600; blank is the default (60 s), `0` turns the check off (`None`).
fn max_run_backlog(text: &str) -> Result<Option<Duration>, ConfigError> {
    let seconds = number_in("WAFLOW_MAX_RUN_BACKLOG_SECONDS", text, 0..=3600, "seconds")?;
    Ok(match seconds {
        None => Some(waflow_jobs::queue_stats::DEFAULT_MAX_RUN_BACKLOG),
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
    })
}

/// The setting's own error when its value parser refused it (clap wraps it), else clap's.
fn setting_error(error: clap::Error) -> ConfigError {
    use std::error::Error as _;
    match error.source().and_then(|s| s.downcast_ref::<ConfigError>()) {
        Some(ConfigError::Invalid { name, reason }) => invalid(name, reason.clone()),
        _ => ConfigError::Unreadable(error.to_string()),
    }
}

impl Config {
    /// Reads `.env` (when there is one) into the environment, then every setting from it. The
    /// first invalid setting, in the order above, is the error: `NAME is invalid: reason`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        // No arguments: the settings come from the environment only.
        let mut config =
            Self::try_parse_from(std::iter::empty::<String>()).map_err(setting_error)?;
        if config.public_url.is_empty() {
            config.public_url = format!("http://{}", config.listen);
        }
        Ok(config)
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    pub fn redis(&self) -> Option<waflow_jobs::RedisSettings> {
        self.redis_url
            .as_ref()
            .map(|url| waflow_jobs::RedisSettings {
                url: url.clone(),
                prefix: self.redis_prefix.clone(),
            })
    }

    /// Refuses combinations that cannot work before anything starts: PostgreSQL without Redis.
    pub fn check_runtime_profile(&self) -> Result<(), ConfigError> {
        if self.is_postgres() && self.redis_url.is_none() {
            return Err(ConfigError::PostgresWithoutRedis);
        }
        Ok(())
    }

    /// The key for secrets at rest: `WAFLOW_SECRET_KEY`, or for a SQLite file a key generated
    /// once and kept beside it (`waflow.db.secret-key`).
    pub fn secret_box(&self) -> Result<SecretBox, ConfigError> {
        if let Some(key) = &self.secret_key {
            return Ok(SecretBox::from_base64(key)?);
        }
        match self.sqlite_path() {
            Some(path) => Ok(SecretBox::from_key_file(&key_path_beside(&path))?),
            None if self.database_url.contains(":memory:") => Ok(SecretBox::random()),
            None => Err(ConfigError::MissingSecretKey),
        }
    }

    /// The database file of a `sqlite://` URL, if it names one.
    fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }
}

fn key_path_beside(db: &std::path::Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".secret-key");
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_are_unset_and_get_the_defaults() {
        assert_eq!(database_url(" ").unwrap(), DEFAULT_DATABASE_URL);
        assert_eq!(listen("").unwrap(), DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(redis_prefix("  ").unwrap(), "waflow:");
        assert_eq!(optional(" \t").unwrap(), None);
        assert_eq!(
            optional(" redis://x ").unwrap().as_deref(),
            Some("redis://x")
        );
        assert!(cors_origins(" ").unwrap().is_empty());
        assert_eq!(
            evaluation_timeout("").unwrap(),
            waflow_jobs::context::DEFAULT_EVALUATION_TIMEOUT
        );
        assert_eq!(run_retention("").unwrap(), None);
        assert_eq!(
            run_retention(" 2 ").unwrap(),
            Some(Duration::from_secs(172_800))
        );
        assert!(!allow_private_networks("").unwrap());
        assert!(allow_private_networks("1").unwrap());
        assert_eq!(
            inbound_max_age("").unwrap(),
            waflow_jobs::context::DEFAULT_INBOUND_MAX_AGE
        );
        assert_eq!(
            max_run_backlog(" ").unwrap(),
            Some(waflow_jobs::queue_stats::DEFAULT_MAX_RUN_BACKLOG)
        );
        assert_eq!(max_run_backlog("0").unwrap(), None);
        assert_eq!(
            max_run_backlog(" 5 ").unwrap(),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn invalid_values_are_named_with_the_reason() {
        let message = |error: ConfigError| error.to_string();
        assert_eq!(
            message(run_retention("0").unwrap_err()),
            "WAFLOW_RUN_RETENTION_DAYS is invalid: \"0\" is not a number of days from 1 to 36500"
        );
        assert_eq!(
            message(max_run_backlog("-1").unwrap_err()),
            "WAFLOW_MAX_RUN_BACKLOG_SECONDS is invalid: \"-1\" is not a number of seconds from 0 to 3600"
        );
        assert_eq!(
            message(max_run_backlog("1.5").unwrap_err()),
            "WAFLOW_MAX_RUN_BACKLOG_SECONDS is invalid: \"1.5\" is not a number of seconds from 0 to 3600"
        );
        assert_eq!(
            message(listen("localhost").unwrap_err()),
            "WAFLOW_LISTEN is invalid: \"localhost\" is not an address like 127.0.0.1:8080"
        );
        assert_eq!(
            message(cors_origins("https://a.example, bad\norigin").unwrap_err()),
            "WAFLOW_CORS_ORIGINS is invalid: \"bad\\norigin\" is not an origin like https://app.example.com"
        );
    }

    #[test]
    fn clap_hands_back_the_settings_own_error() {
        // Through clap's parser: the value of an argument, as an environment variable would be.
        let error = Config::try_parse_from(["--listen", "nowhere"]).unwrap_err();
        assert_eq!(
            setting_error(error).to_string(),
            "WAFLOW_LISTEN is invalid: \"nowhere\" is not an address like 127.0.0.1:8080"
        );
        let error = Config::try_parse_from(["--max-run-backlog", "3601"]).unwrap_err();
        assert_eq!(
            setting_error(error).to_string(),
            "WAFLOW_MAX_RUN_BACKLOG_SECONDS is invalid: \"3601\" is not a number of seconds from 0 to 3600"
        );
    }
}
