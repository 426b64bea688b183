//! Published flow versions as runs use them, read once per process (`crate::memo`): a version
//! is only ever inserted, so the row and its parsed definition stay right for as long as the
//! version exists.

use std::sync::Arc;

use sea_orm::EntityTrait;
use uuid::Uuid;
use waflow_entities::flow_version;

use super::definition::{self, Definition};
use crate::{Services, error::Result};

/// A flow version, and its definition parsed.
#[derive(Debug)]
pub struct Version {
    pub row: flow_version::Model,
    /// `None` when the stored definition cannot be read (a run of it fails, saying so).
    pub definition: Option<Arc<Definition>>,
}

/// The version with `id`, from memory after the first read; `None` when there is none.
pub async fn find(services: &Services, id: Uuid) -> Result<Option<Arc<Version>>> {
    services
        .memo
        .get_or_load(id, || async {
            let row = flow_version::Entity::find_by_id(id)
                .one(&services.db)
                .await?;
            Ok(row.map(|row| Version {
                definition: definition::parse(&row.definition).ok().map(Arc::new),
                row,
            }))
        })
        .await
}
