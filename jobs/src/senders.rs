//! Senders: the WhatsApp numbers a workspace sends from. Provider secrets are encrypted on the
//! way in and never handed back.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;
use waflow_entities::{
    E164,
    enums::{QualityRating, SenderProvider, SenderStatus},
    sender,
};

use crate::context::{Services, find_in_workspace};
use crate::egress::{Egress, same_origin, secret_stays_home};
use crate::{
    error::{Error, Result},
    events::{Event, EventPayload, SenderQualityChanged},
    pagination::{Page, PageRequest, paginate},
    validation::Problems,
};

/// Meta's Graph API; tests and self-hosted proxies point `apiBaseUrl` elsewhere.
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v21.0";
/// Cloud API's default throughput per phone number.
pub const DEFAULT_MESSAGES_PER_SECOND: i32 = 80;
/// Thirty minutes, as in the platform Waflow replaces.
pub const DEFAULT_INACTIVITY_TIMEOUT_SECONDS: i32 = 1800;

#[derive(Debug, Clone)]
pub struct CloudApiCredentials {
    pub phone_number_id: String,
    pub business_account_id: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CloudApiChanges {
    pub phone_number_id: Option<String>,
    pub business_account_id: Option<String>,
    pub access_token: Option<String>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSender {
    pub phone_number: String,
    pub display_name: String,
    pub provider: SenderProvider,
    pub cloud_api: Option<CloudApiCredentials>,
    pub messages_per_second: Option<i32>,
    pub inactivity_timeout_seconds: Option<i32>,
    /// The assistant that answers inbound messages automatically.
    pub assistant_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct SenderChanges {
    pub display_name: Option<String>,
    pub allow_marketing_on_low_quality: Option<bool>,
    pub status: Option<SenderStatus>,
    pub cloud_api: Option<CloudApiChanges>,
    pub messages_per_second: Option<i32>,
    pub inactivity_timeout_seconds: Option<i32>,
    /// `Some(None)` stops auto-reply.
    pub assistant_id: Option<Option<Uuid>>,
}

pub struct SenderService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn senders(&self) -> SenderService<'_> {
        SenderService { services: self }
    }
}

fn check_limits(problems: &mut Problems, mps: Option<i32>, timeout: Option<i32>) {
    if let Some(mps) = mps {
        problems.range("messagesPerSecond", mps.into(), 1, 1000);
    }
    if let Some(timeout) = timeout {
        // Up to WhatsApp's own 24-hour window.
        problems.range("inactivityTimeoutSeconds", timeout.into(), 5, 86_400);
    }
}

fn check_credentials(problems: &mut Problems, egress: &Egress, creds: &CloudApiCredentials) {
    problems.text("cloudApi.phoneNumberId", &creds.phone_number_id, 64);
    problems.text("cloudApi.businessAccountId", &creds.business_account_id, 64);
    problems.text("cloudApi.accessToken", &creds.access_token, 4096);
    problems.text("cloudApi.appSecret", &creds.app_secret, 256);
    problems.text("cloudApi.verifyToken", &creds.verify_token, 256);
    if let Some(url) = &creds.api_base_url {
        problems.outgoing_url(egress, "cloudApi.apiBaseUrl", url);
    }
}

impl SenderService<'_> {
    /// An assistant a sender names must be one of the workspace's.
    async fn ensure_assistant(&self, workspace_id: Uuid, id: Option<Uuid>) -> Result<()> {
        let Some(id) = id else { return Ok(()) };
        self.services
            .assistants()
            .get(workspace_id, id)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::field("assistantId", "no such assistant"),
                other => other,
            })
            .map(|_| ())
    }

    pub async fn create(&self, workspace_id: Uuid, input: NewSender) -> Result<sender::Model> {
        let phone = E164::parse(&input.phone_number).map_err(|e| Error::phone("phoneNumber", e))?;
        let mut problems = Problems::new();
        problems.text("displayName", &input.display_name, 256);
        check_limits(
            &mut problems,
            input.messages_per_second,
            input.inactivity_timeout_seconds,
        );
        match (&input.provider, &input.cloud_api) {
            (SenderProvider::CloudApi, Some(creds)) => {
                check_credentials(&mut problems, &self.services.egress, creds)
            }
            (SenderProvider::CloudApi, None) => {
                problems.add("cloudApi", "is required for a CLOUD_API sender")
            }
            (SenderProvider::Sandbox, Some(_)) => {
                problems.add("cloudApi", "is only for CLOUD_API senders")
            }
            (SenderProvider::Sandbox, None) => {}
        }
        problems.into_result()?;
        self.ensure_assistant(workspace_id, input.assistant_id)
            .await?;
        self.ensure_unique(
            workspace_id,
            &phone,
            input.cloud_api.as_ref().map(|c| c.phone_number_id.trim()),
            None,
        )
        .await?;

        let secrets = &self.services.secrets;
        let now = Utc::now();
        let creds = input.cloud_api.as_ref();
        let model = sender::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            phone_number: Set(phone.to_string()),
            display_name: Set(input.display_name.trim().to_owned()),
            provider: Set(input.provider),
            // A sandbox sender is online at once; a Cloud API sender once Meta says so.
            status: Set(match input.provider {
                SenderProvider::Sandbox => SenderStatus::Online,
                SenderProvider::CloudApi => SenderStatus::Offline,
            }),
            status_reason: Set(match input.provider {
                SenderProvider::Sandbox => None,
                SenderProvider::CloudApi => {
                    Some("not yet confirmed by the WhatsApp Cloud API".into())
                }
            }),
            quality_rating: Set(match input.provider {
                SenderProvider::Sandbox => QualityRating::Green,
                SenderProvider::CloudApi => QualityRating::Unknown,
            }),
            messaging_limit_tier: Set(None),
            phone_number_id: Set(creds.map(|c| c.phone_number_id.trim().to_owned())),
            business_account_id: Set(creds.map(|c| c.business_account_id.trim().to_owned())),
            api_base_url: Set(creds.map(|c| {
                c.api_base_url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_BASE_URL.to_owned())
            })),
            access_token_enc: Set(creds.map(|c| secrets.encrypt(c.access_token.trim()))),
            app_secret_enc: Set(creds.map(|c| secrets.encrypt(c.app_secret.trim()))),
            verify_token_enc: Set(creds.map(|c| secrets.encrypt(c.verify_token.trim()))),
            messages_per_second: Set(input
                .messages_per_second
                .unwrap_or(DEFAULT_MESSAGES_PER_SECOND)),
            inactivity_timeout_seconds: Set(input
                .inactivity_timeout_seconds
                .unwrap_or(DEFAULT_INACTIVITY_TIMEOUT_SECONDS)),
            assistant_id: Set(input.assistant_id),
            allow_marketing_on_low_quality: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let sender = model.insert(&self.services.db).await.map_err(|e| {
            Error::from_unique_violation(
                e,
                "phoneNumber",
                "a sender with this phone number already exists",
            )
        })?;
        // Enqueued after the row is committed, so the job always finds it.
        self.services.jobs.refresh_sender(&sender).await?;
        Ok(sender)
    }

    /// Refuses a second sender with the same number in the workspace, and a Cloud API phone
    /// number id already connected anywhere (Meta's webhooks are routed by it).
    async fn ensure_unique(
        &self,
        workspace_id: Uuid,
        phone: &E164,
        phone_number_id: Option<&str>,
        except: Option<Uuid>,
    ) -> Result<()> {
        let db = &self.services.db;
        let mut same_phone = sender::Entity::find()
            .filter(sender::Column::WorkspaceId.eq(workspace_id))
            .filter(sender::Column::PhoneNumber.eq(phone.as_str()));
        if let Some(id) = except {
            same_phone = same_phone.filter(sender::Column::Id.ne(id));
        }
        if same_phone.one(db).await?.is_some() {
            return Err(Error::field(
                "phoneNumber",
                "a sender with this phone number already exists",
            ));
        }
        if let Some(pnid) = phone_number_id {
            let mut same_pnid =
                sender::Entity::find().filter(sender::Column::PhoneNumberId.eq(pnid));
            if let Some(id) = except {
                same_pnid = same_pnid.filter(sender::Column::Id.ne(id));
            }
            if same_pnid.one(db).await?.is_some() {
                return Err(Error::field(
                    "cloudApi.phoneNumberId",
                    "this phone number id is already connected to a sender",
                ));
            }
        }
        Ok(())
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        changes: SenderChanges,
    ) -> Result<sender::Model> {
        let current = self.get(workspace_id, id).await?;
        let mut problems = Problems::new();
        if let Some(name) = &changes.display_name {
            problems.text("displayName", name, 256);
        }
        check_limits(
            &mut problems,
            changes.messages_per_second,
            changes.inactivity_timeout_seconds,
        );
        if changes.status.is_some() && current.provider == SenderProvider::CloudApi {
            problems.add(
                "status",
                "a CLOUD_API sender's status comes from the WhatsApp Cloud API",
            );
        }
        if let Some(cloud) = &changes.cloud_api {
            if current.provider != SenderProvider::CloudApi {
                problems.add("cloudApi", "is only for CLOUD_API senders");
            }
            for (field, value, max) in [
                ("cloudApi.phoneNumberId", &cloud.phone_number_id, 64),
                ("cloudApi.businessAccountId", &cloud.business_account_id, 64),
                ("cloudApi.accessToken", &cloud.access_token, 4096),
                ("cloudApi.appSecret", &cloud.app_secret, 256),
                ("cloudApi.verifyToken", &cloud.verify_token, 256),
            ] {
                if let Some(value) = value {
                    problems.text(field, value, max);
                }
            }
            if let Some(url) = &cloud.api_base_url {
                problems.outgoing_url(&self.services.egress, "cloudApi.apiBaseUrl", url);
                problems.check(
                    cloud.access_token.is_some()
                        || same_origin(current.api_base_url.as_deref(), Some(url)),
                    "cloudApi.accessToken",
                    secret_stays_home("access token", "apiBaseUrl"),
                );
            }
        }
        problems.into_result()?;
        if let Some(pnid) = changes
            .cloud_api
            .as_ref()
            .and_then(|c| c.phone_number_id.as_deref())
        {
            let phone =
                E164::parse(&current.phone_number).map_err(|e| Error::phone("phoneNumber", e))?;
            self.ensure_unique(workspace_id, &phone, Some(pnid.trim()), Some(id))
                .await?;
        }

        let secrets = &self.services.secrets;
        let mut model: sender::ActiveModel = current.into();
        if let Some(name) = changes.display_name {
            model.display_name = Set(name.trim().to_owned());
        }
        if let Some(allow) = changes.allow_marketing_on_low_quality {
            model.allow_marketing_on_low_quality = Set(allow);
        }
        if let Some(status) = changes.status {
            model.status = Set(status);
            model.status_reason = Set(None);
        }
        if let Some(mps) = changes.messages_per_second {
            model.messages_per_second = Set(mps);
        }
        if let Some(timeout) = changes.inactivity_timeout_seconds {
            model.inactivity_timeout_seconds = Set(timeout);
        }
        if let Some(assistant_id) = changes.assistant_id {
            self.ensure_assistant(workspace_id, assistant_id).await?;
            model.assistant_id = Set(assistant_id);
        }
        let credentials_changed = changes.cloud_api.is_some();
        if let Some(cloud) = changes.cloud_api {
            if let Some(v) = cloud.phone_number_id {
                model.phone_number_id = Set(Some(v.trim().to_owned()));
            }
            if let Some(v) = cloud.business_account_id {
                model.business_account_id = Set(Some(v.trim().to_owned()));
            }
            if let Some(v) = cloud.api_base_url {
                model.api_base_url = Set(Some(v));
            }
            if let Some(v) = cloud.access_token {
                model.access_token_enc = Set(Some(secrets.encrypt(v.trim())));
            }
            if let Some(v) = cloud.app_secret {
                model.app_secret_enc = Set(Some(secrets.encrypt(v.trim())));
            }
            if let Some(v) = cloud.verify_token {
                model.verify_token_enc = Set(Some(secrets.encrypt(v.trim())));
            }
        }
        model.updated_at = Set(Utc::now());
        let sender = model.update(&self.services.db).await?;
        if credentials_changed {
            self.services.jobs.refresh_sender(&sender).await?;
        }
        Ok(sender)
    }

    /// Deletes a sender with its templates. Its conversations and messages stay (the history
    /// belongs to the contacts), with the sender link cleared.
    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Uuid> {
        let sender = self.get(workspace_id, id).await?;
        sender::Entity::delete_by_id(sender.id)
            .exec(&self.services.db)
            .await?;
        Ok(sender.id)
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<sender::Model> {
        find_in_workspace!(&self.services.db, sender, workspace_id, id, "sender")
    }

    pub async fn list(&self, workspace_id: Uuid, page: PageRequest) -> Result<Page<sender::Model>> {
        let select = sender::Entity::find().filter(sender::Column::WorkspaceId.eq(workspace_id));
        paginate(&self.services.db, select, sender::Column::Id, page).await
    }
}

/// What a status refresh learned about a Cloud API sender.
#[derive(Debug, Clone)]
pub struct Health {
    pub status: SenderStatus,
    pub reason: Option<String>,
    pub quality_rating: QualityRating,
    pub messaging_limit_tier: Option<String>,
}

impl SenderService<'_> {
    /// Asks the Cloud API how the number is doing and stores its status, quality rating and
    /// messaging limit. A number Meta reports CONNECTED is ONLINE; an expired or revoked token
    /// (Meta code 190), a disconnected number or an unreachable API make it OFFLINE with the
    /// reason shown on the sender. A sandbox sender is left as it is.
    pub async fn refresh_status(&self, sender_id: Uuid) -> Result<sender::Model> {
        use crate::providers::cloud_api::CloudApi;
        let sender = sender::Entity::find_by_id(sender_id)
            .one(&self.services.db)
            .await?
            .ok_or(Error::NotFound("sender"))?;
        if sender.provider != SenderProvider::CloudApi {
            return Ok(sender);
        }
        let health = match CloudApi::for_sender(self.services, &sender)?
            .phone_number()
            .await
        {
            Ok(info) => {
                let connected = info
                    .status
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("CONNECTED"));
                Health {
                    status: if connected {
                        SenderStatus::Online
                    } else {
                        SenderStatus::Offline
                    },
                    reason: (!connected).then(|| {
                        format!(
                            "Meta reports the number as {}",
                            info.status.as_deref().unwrap_or("unknown")
                        )
                    }),
                    quality_rating: info.quality(),
                    messaging_limit_tier: info.messaging_limit_tier.clone(),
                }
            }
            Err(refusal) => Health {
                status: SenderStatus::Offline,
                reason: Some(match refusal.code.as_deref() {
                    Some("190") => format!(
                        "the access token is expired or invalid (Meta code 190): update cloudApi.accessToken. {}",
                        refusal.message
                    ),
                    _ => refusal.message,
                }),
                quality_rating: sender.quality_rating,
                messaging_limit_tier: sender.messaging_limit_tier.clone(),
            },
        };
        let unchanged = (
            sender.status,
            &sender.status_reason,
            sender.quality_rating,
            &sender.messaging_limit_tier,
        ) == (
            health.status,
            &health.reason,
            health.quality_rating,
            &health.messaging_limit_tier,
        );
        if unchanged {
            // No write: every write to `sender` makes each process read the senders again
            // (`crate::sender_directory`), and the periodic check mostly finds nothing new.
            return Ok(sender);
        }
        let previous = sender.quality_rating;
        let mut model: sender::ActiveModel = sender.into();
        model.status = Set(health.status);
        model.status_reason = Set(health.reason);
        model.quality_rating = Set(health.quality_rating);
        model.messaging_limit_tier = Set(health.messaging_limit_tier);
        model.updated_at = Set(Utc::now());
        let sender = model.update(&self.services.db).await?;
        self.publish_quality(&sender, previous).await;
        Ok(sender)
    }

    /// Tells subscribers (and the log) when a sender's quality rating changed.
    async fn publish_quality(&self, sender: &sender::Model, previous: QualityRating) {
        if sender.quality_rating == previous {
            return;
        }
        tracing::info!(sender_id = %sender.id, ?previous, current = ?sender.quality_rating, "sender quality changed");
        let change = SenderQualityChanged {
            sender: sender.into(),
            previous,
            current: sender.quality_rating,
        };
        let event = Event::new(
            sender.workspace_id,
            EventPayload::SenderQualityChanged(change),
        );
        self.services.emit(event).await;
    }

    /// Stores a quality rating Meta reported; `Some(previous)` when it changed.
    pub async fn set_quality(
        &self,
        sender: sender::Model,
        rating: QualityRating,
    ) -> Result<Option<QualityRating>> {
        let previous = sender.quality_rating;
        if previous == rating {
            return Ok(None);
        }
        let mut model: sender::ActiveModel = sender.into();
        model.quality_rating = Set(rating);
        model.updated_at = Set(Utc::now());
        let sender = model.update(&self.services.db).await?;
        self.publish_quality(&sender, previous).await;
        Ok(Some(previous))
    }

    /// Cloud API senders, for the periodic status refresh.
    pub async fn cloud_api_sender_ids(&self) -> Result<Vec<Uuid>> {
        Ok(sender::Entity::find()
            .filter(sender::Column::Provider.eq(SenderProvider::CloudApi))
            .all(&self.services.db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect())
    }
}
