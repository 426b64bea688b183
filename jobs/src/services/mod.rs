//! Domain services, one per area. Each takes the caller's workspace id and never reads or
//! writes another workspace's rows: a foreign id is indistinguishable from a missing one.

pub mod api_keys;
pub mod assistants;
pub mod contacts;
pub mod senders;
pub mod templates;
pub mod workspaces;

use sea_orm::DatabaseConnection;

use crate::crypto::SecretBox;

/// What every service needs: the database and the key for secrets at rest. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    pub db: DatabaseConnection,
    pub secrets: SecretBox,
}

impl Services {
    pub fn new(db: DatabaseConnection, secrets: SecretBox) -> Self {
        Self { db, secrets }
    }

    pub fn workspaces(&self) -> workspaces::WorkspaceService<'_> {
        workspaces::WorkspaceService { services: self }
    }

    pub fn api_keys(&self) -> api_keys::ApiKeyService<'_> {
        api_keys::ApiKeyService { services: self }
    }

    pub fn senders(&self) -> senders::SenderService<'_> {
        senders::SenderService { services: self }
    }

    pub fn templates(&self) -> templates::TemplateService<'_> {
        templates::TemplateService { services: self }
    }

    pub fn contacts(&self) -> contacts::ContactService<'_> {
        contacts::ContactService { services: self }
    }

    pub fn assistants(&self) -> assistants::AssistantService<'_> {
        assistants::AssistantService { services: self }
    }
}

/// Fetches one row of `entity` by id within `workspace_id`, or NOT_FOUND naming `what`.
macro_rules! find_in_workspace {
    ($db:expr, $entity:ident, $workspace_id:expr, $id:expr, $what:expr) => {{
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        waflow_entities::$entity::Entity::find_by_id($id)
            .filter(waflow_entities::$entity::Column::WorkspaceId.eq($workspace_id))
            .one($db)
            .await?
            .ok_or($crate::Error::NotFound($what))
    }};
}
pub(crate) use find_in_workspace;
