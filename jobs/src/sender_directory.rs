//! The Cloud API senders and their app secrets, kept in memory by the `senders` row of
//! `shared_version`.
//!
//! A WhatsApp webhook delivery does not say which app's number it is for: its signature is
//! checked against every connected app's secret (`messaging::webhook`). Reading and decrypting
//! every Cloud API sender for each delivery was one of the four transactions of an inbound
//! message. The rows change rarely, and in any process, so a copy is kept with the version it
//! was read at, and the version says when the copy is old:
//!
//! - a database trigger moves the version in the transaction of every change to `sender`,
//!   cascades and hand-written SQL included (migration m0025);
//! - a delivery verified against the copy writes only if the version is still the copy's: an
//!   inbound message reads it in the opening statement of its write transaction
//!   ([`version_query`]), anything else a delivery changes is preceded by one read of it
//!   ([`version`]). A moved version fails the delivery with `Error::SendersChanged`, and it is
//!   verified again against a fresh copy (`messaging::webhook::handle`).
//!
//! So a revoked or rotated app secret stops verifying deliveries in every process: a delivery
//! whose check reads the version after the change committed is verified again, and refused. (One
//! whose check read it just before is ordered before the change, as a delivery that read the
//! senders just before was.) A delivery that changes nothing is checked before it is answered.
//! The secrets are held decrypted for as long as the copy lives (a revoked one until the next
//! delivery finds the version moved, and then verifies nothing); nothing here prints them.

use std::sync::{Arc, Mutex};

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Alias, Expr, ExprTrait as _, Query, SelectStatement},
};
use waflow_entities::{enums::SenderProvider, sender};

use crate::{
    crypto::SecretBox,
    error::{Error, Result},
};

/// The row of `shared_version` that `sender` changes move.
const SENDERS: &str = "senders";

/// The statement that reads the senders' version, for a statement that asks more.
pub fn version_query() -> SelectStatement {
    Query::select()
        .column(Alias::new("version"))
        .from(Alias::new("shared_version"))
        .and_where(Expr::col(Alias::new("name")).eq(SENDERS))
        .to_owned()
}

/// The senders' version as `db` (a transaction, or the pool) sees it.
pub async fn version(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one(&version_query())
        .await?
        .ok_or_else(|| Error::Internal("shared_version has no `senders` row".into()))?;
    Ok(row.try_get("", "version")?)
}

/// The senders that share one app secret.
pub struct App {
    secret: String,
    pub senders: Vec<sender::Model>,
}

impl App {
    /// The app secret, decrypted: for checking a signature, never for output.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// Every Cloud API sender with an app secret that can be read, grouped by secret, as of
/// `version` or newer.
pub struct Directory {
    pub version: i64,
    pub apps: Vec<App>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("version", &self.version)
            .field("apps", &self.apps.len())
            .finish()
    }
}

/// This process's copy of the directory. Cheap to clone; clones share the copy.
#[derive(Clone, Default)]
pub struct SenderDirectory {
    current: Arc<Mutex<Option<Arc<Directory>>>>,
}

impl std::fmt::Debug for SenderDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.lock().as_ref().map(|d| d.version);
        write!(f, "SenderDirectory(version {version:?})")
    }
}

impl SenderDirectory {
    /// The copy this process holds, read first when it holds none.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        secrets: &SecretBox,
    ) -> Result<Arc<Directory>> {
        if let Some(kept) = self.lock().clone() {
            return Ok(kept);
        }
        self.load(db, secrets).await
    }

    /// A copy newer than `old`, whose version a writer found moved. Two tasks asking at once
    /// may both read; either copy is right.
    pub async fn renew(
        &self,
        db: &impl ConnectionTrait,
        secrets: &SecretBox,
        old: &Directory,
    ) -> Result<Arc<Directory>> {
        if let Some(kept) = self.lock().clone()
            && kept.version > old.version
        {
            return Ok(kept);
        }
        self.load(db, secrets).await
    }

    async fn load(&self, db: &impl ConnectionTrait, secrets: &SecretBox) -> Result<Arc<Directory>> {
        // The version first: the rows read after it are at least that new.
        let version = version(db).await?;
        let senders = sender::Entity::find()
            .filter(sender::Column::Provider.eq(SenderProvider::CloudApi))
            .all(db)
            .await?;
        let mut apps: Vec<App> = Vec::new();
        for sender in senders {
            let Some(stored) = sender.app_secret_enc.as_deref() else {
                continue;
            };
            match secrets.decrypt(stored) {
                Ok(secret) => match apps.iter_mut().find(|app| app.secret == secret) {
                    Some(app) => app.senders.push(sender),
                    None => apps.push(App {
                        secret,
                        senders: vec![sender],
                    }),
                },
                Err(error) => {
                    tracing::warn!(sender_id = %sender.id, %error, "skipping a sender whose app secret cannot be read")
                }
            }
        }
        let directory = Arc::new(Directory { version, apps });
        let mut current = self.lock();
        if current.as_ref().is_none_or(|kept| kept.version <= version) {
            *current = Some(directory.clone());
        }
        Ok(directory)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Directory>>> {
        // A panic while the lock was held left the copy whole: go on with it.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}
