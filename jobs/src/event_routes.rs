//! Where a workspace's events go: its enabled webhook endpoints and its flow trigger index,
//! kept in memory by the workspace's `routes_version`.
//!
//! Every event consults both (`webhooks::fan_out`, `flows::triggers`), and an inbound message
//! makes two events: reading them per event was four of the eleven transactions of an inbound
//! message. The rows change rarely (a user edits an endpoint, publishes or disables a flow)
//! and in any process, so a copy is kept with the version it was read at, and the version
//! says when the copy is old:
//!
//! - database triggers move `workspace.routes_version` in the transaction of every change to
//!   either table, cascades and hand-written SQL included (migration m0024), so no writer can
//!   forget to;
//! - a transaction that produces an event may read the version with its own rows
//!   ([`version`], [`crate::events::Event::routed_by`]): that event is then routed by the rows
//!   that were current when it was committed, with no read at all. An event without a
//!   version costs one read of it by primary key.
//!
//! A copy at least as new as the version asked for is used as it is: the rows are read after
//! the version, so a copy may be newer than its label (it is then read again once), never
//! older. The cache is bounded: past `CAPACITY` workspaces it starts over.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;
use waflow_entities::{flow_trigger, webhook_endpoint, workspace};

use crate::error::{Error, Result};

/// Workspaces kept before the cache starts over.
const CAPACITY: usize = 4096;

/// What routes a workspace's events, as of `version`.
#[derive(Debug)]
pub struct EventRoutes {
    pub version: i64,
    /// The enabled webhook endpoints (each filters the event types it subscribes to).
    pub endpoints: Vec<webhook_endpoint::Model>,
    /// The trigger index: one row per enabled, published flow.
    pub triggers: Vec<flow_trigger::Model>,
}

/// The workspace's `routes_version` as `db` (a transaction, or the pool) sees it.
/// `NOT_FOUND` for a workspace that does not exist.
pub async fn version(db: &impl ConnectionTrait, workspace_id: Uuid) -> Result<i64> {
    workspace::Entity::find_by_id(workspace_id)
        .select_only()
        .column(workspace::Column::RoutesVersion)
        .into_tuple()
        .one(db)
        .await?
        .ok_or(Error::NotFound("workspace"))
}

/// The routes of every workspace this process has routed an event of. Cheap to clone; clones
/// share the entries.
#[derive(Clone, Default)]
pub struct RoutesCache {
    entries: Arc<Mutex<HashMap<Uuid, Arc<EventRoutes>>>>,
}

impl std::fmt::Debug for RoutesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.lock().len();
        write!(f, "RoutesCache({len} workspaces)")
    }
}

impl RoutesCache {
    /// The workspace's routes at `version` or newer; `None` reads the version first. Two tasks
    /// asking at once may both read; either copy is right.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        version: Option<i64>,
    ) -> Result<Arc<EventRoutes>> {
        let version = match version {
            Some(known) => known,
            None => self::version(db, workspace_id).await?,
        };
        if let Some(kept) = self.lock().get(&workspace_id)
            && kept.version >= version
        {
            return Ok(kept.clone());
        }
        let routes = Arc::new(load(db, workspace_id, version).await?);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let newest = match entries.get(&workspace_id) {
            Some(kept) if kept.version > routes.version => kept.clone(),
            _ => routes,
        };
        entries.insert(workspace_id, newest.clone());
        Ok(newest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<EventRoutes>>> {
        // A panic while the lock was held left a map that is still whole: go on with it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the rows, after `version` was read: they are at least that new.
async fn load(db: &impl ConnectionTrait, workspace_id: Uuid, version: i64) -> Result<EventRoutes> {
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?;
    let triggers = flow_trigger::Entity::find()
        .filter(flow_trigger::Column::WorkspaceId.eq(workspace_id))
        .all(db)
        .await?;
    Ok(EventRoutes {
        version,
        endpoints,
        triggers,
    })
}
