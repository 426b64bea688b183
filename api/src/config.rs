//! Configuration from the environment (a `.env` file is read first when present), each setting
//! with a default that gives the embedded profile: SQLite file, in-process jobs and events.

use std::{net::SocketAddr, path::PathBuf};

use axum::http::HeaderValue;
use waflow_jobs::SecretBox;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://waflow.db?mode=rwc";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so deployments can share one Redis.
    pub redis_prefix: String,
    pub listen: SocketAddr,
    pub public_url: String,
    secret_key: Option<String>,
    pub cors_origins: Vec<HeaderValue>,
    /// How long a conversation's end waits for its assistant's evaluation.
    pub evaluation_timeout: std::time::Duration,
    /// Finished flow runs older than this are pruned; `None` keeps them all.
    pub run_retention: Option<std::time::Duration>,
    /// Whether requests to workspaces' URLs may reach private networks (the egress policy).
    pub allow_private_networks: bool,
    /// Inbound messages older than this are replays: recorded, running nothing.
    pub inbound_max_age: std::time::Duration,
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
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let database_url = var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "must start with sqlite: or postgres://".into(),
            });
        }
        let listen_text = var("WAFLOW_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            name: "WAFLOW_LISTEN",
            reason: format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
        })?;
        let public_url = var("WAFLOW_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let cors_origins = var("WAFLOW_CORS_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(|o| {
                        HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| {
                            ConfigError::Invalid {
                                name: "WAFLOW_CORS_ORIGINS",
                                reason: format!(
                                    "{o:?} is not an origin like https://app.example.com"
                                ),
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let evaluation_timeout = match var("WAFLOW_EVALUATION_TIMEOUT_SECONDS") {
            Some(text) => match text.parse::<u64>() {
                Ok(seconds @ 1..=3600) => std::time::Duration::from_secs(seconds),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "WAFLOW_EVALUATION_TIMEOUT_SECONDS",
                        reason: format!("{text:?} is not a number of seconds from 1 to 3600"),
                    });
                }
            },
            None => waflow_jobs::context::DEFAULT_EVALUATION_TIMEOUT,
        };
        let run_retention = match var("WAFLOW_RUN_RETENTION_DAYS") {
            Some(text) => match text.parse::<u64>() {
                Ok(days @ 1..=36_500) => Some(std::time::Duration::from_secs(days * 86_400)),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "WAFLOW_RUN_RETENTION_DAYS",
                        reason: format!("{text:?} is not a number of days from 1 to 36500"),
                    });
                }
            },
            None => None,
        };
        let allow_private_networks = match var("WAFLOW_ALLOW_PRIVATE_NETWORKS").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "WAFLOW_ALLOW_PRIVATE_NETWORKS",
                    reason: format!("{other:?} is neither true nor false"),
                });
            }
        };
        let inbound_max_age = match var("WAFLOW_INBOUND_MAX_AGE_HOURS") {
            Some(text) => match text.parse::<u64>() {
                Ok(hours @ 1..=8_760) => std::time::Duration::from_secs(hours * 3600),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "WAFLOW_INBOUND_MAX_AGE_HOURS",
                        reason: format!("{text:?} is not a number of hours from 1 to 8760"),
                    });
                }
            },
            None => waflow_jobs::context::DEFAULT_INBOUND_MAX_AGE,
        };
        Ok(Self {
            database_url,
            redis_url: var("REDIS_URL"),
            redis_prefix: var("WAFLOW_REDIS_PREFIX").unwrap_or_else(|| "waflow:".to_owned()),
            listen,
            public_url,
            secret_key: var("WAFLOW_SECRET_KEY"),
            cors_origins,
            evaluation_timeout,
            run_retention,
            allow_private_networks,
            inbound_max_age,
        })
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
