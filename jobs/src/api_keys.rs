//! API keys: random bearer tokens, shown once, stored as SHA-256 hashes. A hash suffices (no
//! slow KDF) because keys carry 256 random bits; nothing about them can be guessed offline.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waflow_entities::api_key;

use crate::context::{Services, find_in_workspace};
use crate::{
    error::{Error, Result},
    events::{ApiKeyRevoked, Event, EventPayload},
    validation::Problems,
};

const KEY_PREFIX: &str = "wf_";
/// How stale `last_used_at` may get before a request refreshes it: one write per key per minute,
/// not one per request.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

pub struct ApiKeyService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn api_keys(&self) -> ApiKeyService<'_> {
        ApiKeyService { services: self }
    }
}

/// A key just created: the only moment its plaintext exists outside the client.
#[derive(Debug)]
pub struct NewApiKey {
    pub model: api_key::Model,
    pub plaintext: String,
}

/// Who a request is, once its key checked out.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub workspace_id: Uuid,
    pub api_key_id: Uuid,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub(super) async fn insert_key(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    name: &str,
) -> Result<NewApiKey> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let model = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        name: Set(name.trim().to_owned()),
        prefix: Set(plaintext[..KEY_PREFIX.len() + 6].to_owned()),
        key_hash: Set(hash(&plaintext)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewApiKey { model, plaintext })
}

impl ApiKeyService<'_> {
    /// Resolves a bearer token to its workspace; a missing, unknown or revoked key is refused.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Principal> {
        let key = bearer
            .map(str::trim)
            .filter(|k| k.starts_with(KEY_PREFIX))
            .ok_or(Error::Unauthenticated)?;
        let found = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash(key)))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(&self.services.db)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let now = Utc::now();
        if found
            .last_used_at
            .is_none_or(|t| now - t > LAST_USED_RESOLUTION)
        {
            let principal = Principal {
                workspace_id: found.workspace_id,
                api_key_id: found.id,
            };
            let mut active: api_key::ActiveModel = found.into();
            active.last_used_at = Set(Some(now));
            active.update(&self.services.db).await?;
            return Ok(principal);
        }
        Ok(Principal {
            workspace_id: found.workspace_id,
            api_key_id: found.id,
        })
    }

    pub async fn create(&self, workspace_id: Uuid, name: &str) -> Result<NewApiKey> {
        let mut problems = Problems::new();
        problems.text("name", name, 200);
        problems.into_result()?;
        insert_key(&self.services.db, workspace_id, name).await
    }

    /// Revokes a key at once. The last active key cannot be revoked: the workspace would be
    /// locked out for good, since only the API can make new keys for it.
    pub async fn revoke(&self, workspace_id: Uuid, id: Uuid) -> Result<api_key::Model> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let key = find_in_workspace!(&txn, api_key, workspace_id, id, "API key")?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let active = api_key::Entity::find()
            .filter(api_key::Column::WorkspaceId.eq(workspace_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&txn)
            .await?;
        if active <= 1 {
            return Err(Error::field(
                "id",
                "this is the workspace's last active API key; create another before revoking it",
            ));
        }
        let mut model: api_key::ActiveModel = key.into();
        model.revoked_at = Set(Some(Utc::now()));
        let key = model.update(&txn).await?;
        txn.commit().await?;
        // Every process closes the connections the key opened.
        let revoked = ApiKeyRevoked { api_key_id: key.id };
        self.services
            .events
            .publish(Event::new(
                workspace_id,
                EventPayload::ApiKeyRevoked(revoked),
            ))
            .await;
        Ok(key)
    }

    /// Which of `ids` are keys that still work (not revoked, not deleted).
    pub async fn active_among(&self, ids: Vec<Uuid>) -> Result<HashSet<Uuid>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(api_key::Entity::find()
            .filter(api_key::Column::Id.is_in(ids))
            .filter(api_key::Column::RevokedAt.is_null())
            .all(&self.services.db)
            .await?
            .into_iter()
            .map(|key| key.id)
            .collect())
    }

    pub async fn list(&self, workspace_id: Uuid) -> Result<Vec<api_key::Model>> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::WorkspaceId.eq(workspace_id))
            .order_by_asc(api_key::Column::Id)
            .all(&self.services.db)
            .await?)
    }
}
