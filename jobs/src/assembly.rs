//! The two profiles, assembled: the context (`crate::context`) with every reaction
//! (`crate::reactions`) registered, which is what the binary, the tests and the benchmarks run.

use sea_orm::DatabaseConnection;

use crate::{
    context::{RedisSettings, Services},
    crypto::SecretBox,
    error::Result,
    reactions,
};

impl Services {
    /// The embedded profile: jobs in the (SQLite) database itself, limits and events in this
    /// process. Errors: `Internal` when the database is not SQLite or the queue's tables cannot
    /// be set up.
    pub async fn embedded(db: DatabaseConnection, secrets: SecretBox) -> Result<Self> {
        Ok(Self::embedded_context(db, secrets)
            .await?
            .with_reactions(reactions::all()))
    }

    /// The production profile: jobs, rate limits and events in Redis, shared by every process.
    /// Errors: `Internal` naming `REDIS_URL` when Redis cannot be reached.
    pub async fn production(
        db: DatabaseConnection,
        secrets: SecretBox,
        redis: &RedisSettings,
    ) -> Result<Self> {
        Ok(Self::production_context(db, secrets, redis)
            .await?
            .with_reactions(reactions::all()))
    }
}
