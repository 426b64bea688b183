//! Workspaces: the tenants. Creating one also creates its first API key, since a workspace
//! nobody can authenticate to is useless.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use uuid::Uuid;
use waflow_entities::workspace;

use super::{Services, api_keys};
use crate::{error::Result, validation::Problems};

pub struct WorkspaceService<'a> {
    pub(super) services: &'a Services,
}

impl WorkspaceService<'_> {
    /// Creates a workspace with one key; the key's plaintext is returned only here.
    pub async fn create(&self, name: &str) -> Result<(workspace::Model, api_keys::NewApiKey)> {
        let mut problems = Problems::new();
        problems.text("name", name, 200);
        problems.into_result()?;

        let txn = crate::db::begin_write(&self.services.db).await?;
        let workspace = workspace::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name.trim().to_owned()),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        let key = api_keys::insert_key(&txn, workspace.id, "default").await?;
        txn.commit().await?;
        Ok((workspace, key))
    }

    pub async fn get(&self, id: Uuid) -> Result<workspace::Model> {
        workspace::Entity::find_by_id(id)
            .one(&self.services.db)
            .await?
            .ok_or(crate::Error::NotFound("workspace"))
    }
}
