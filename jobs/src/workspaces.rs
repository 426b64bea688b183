//! Workspaces: the tenants. Creating one also creates its first API key, since a workspace
//! nobody can authenticate to is useless.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;
use waflow_entities::workspace;

use super::{Services, api_keys};
use crate::{error::Result, validation::Problems};

pub struct WorkspaceService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn workspaces(&self) -> WorkspaceService<'_> {
        WorkspaceService { services: self }
    }
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
            routes_version: Set(0),
        }
        .insert(&txn)
        .await?;
        let key = api_keys::insert_key(&txn, workspace.id, "default").await?;
        txn.commit().await?;
        Ok((workspace, key))
    }

    /// Every workspace, oldest first (for operators, on the command line).
    pub async fn list(&self) -> Result<Vec<workspace::Model>> {
        Ok(workspace::Entity::find()
            .order_by_asc(workspace::Column::CreatedAt)
            .all(&self.services.db)
            .await?)
    }

    /// The workspace `id_or_name` names: its id, or its exact name when one workspace has it.
    /// Errors: NOT_FOUND; VALIDATION_FAILED when several workspaces have that name.
    pub async fn find(&self, id_or_name: &str) -> Result<workspace::Model> {
        if let Ok(id) = Uuid::parse_str(id_or_name) {
            return self.get(id).await;
        }
        let named = workspace::Entity::find()
            .filter(workspace::Column::Name.eq(id_or_name.trim()))
            .all(&self.services.db)
            .await?;
        match named.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(crate::Error::NotFound("workspace")),
            several => Err(crate::Error::field(
                "workspace",
                format!(
                    "{} workspaces are named {id_or_name:?}; give an id: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|w| w.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<workspace::Model> {
        workspace::Entity::find_by_id(id)
            .one(&self.services.db)
            .await?
            .ok_or(crate::Error::NotFound("workspace"))
    }
}
