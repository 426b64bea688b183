//! Campaigns: bulk template sends with their audience, pace, send window and live progress.

use async_graphql::{
    Context, Enum, ID, InputObject, Json, Object, SimpleObject, connection::Connection,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use waflow_entities::{
    campaign, campaign_recipient,
    enums::{CampaignStatus, QualityRating, RecipientStatus},
};
use waflow_jobs::{
    Error, Services,
    campaigns::{self as svc, Audience, AudienceFilter, NewCampaign, window::SendWindowSpec},
};

use super::{
    GqlResult, connection,
    messages::{
        Message, TemplateButtonParameterInput, TemplateHeaderParameterInput, template_parameters,
    },
    page_request, parse_id, scope,
    senders::Sender,
};

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "UPPERCASE")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    fn code(self) -> &'static str {
        svc::window::DAYS[self as usize].0
    }

    fn from_code(code: &str) -> Option<Self> {
        use Weekday::*;
        [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
            .into_iter()
            .find(|d| d.code() == code)
    }
}

/// When a campaign may send: these days, from `startTime` to `endTime` (HH:MM, 24-hour) in the
/// campaign's timezone.
#[derive(InputObject, SimpleObject)]
#[graphql(input_name = "SendWindowInput")]
pub struct SendWindow {
    days: Vec<Weekday>,
    start_time: String,
    end_time: String,
}

#[derive(InputObject)]
pub struct AudienceFilterInput {
    /// Contacts with every one of these tags.
    #[graphql(default)]
    tags: Vec<String>,
    /// Contacts whose attributes have these values, like {"plan": "gold"}.
    attributes: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

/// Who receives the campaign: listed contacts, or those matching a filter when it starts.
#[derive(InputObject)]
pub struct AudienceInput {
    contact_ids: Option<Vec<ID>>,
    filter: Option<AudienceFilterInput>,
}

#[derive(InputObject)]
pub struct CreateCampaignInput {
    name: String,
    sender_id: ID,
    template_name: String,
    language: String,
    /// A list for `{{1}}`..`{{n}}` templates or an object for named placeholders; each value a
    /// template over the contact: `{{ contact.name }}`, `{{ contact.attributes.plan }}`.
    variables: Option<Json<serde_json::Value>>,
    /// The header's parameter, as in `sendTemplateMessage`; each string a template over the
    /// contact (`{{ contact.attributes.photo_url }}`).
    header: Option<TemplateHeaderParameterInput>,
    /// The buttons' parameters, as in `sendTemplateMessage`; each string a template over the
    /// contact (`{{ contact.attributes.coupon }}`).
    #[graphql(default)]
    buttons: Vec<TemplateButtonParameterInput>,
    audience: AudienceInput,
    /// Not before this time.
    start_at: Option<DateTime<Utc>>,
    /// An IANA timezone for the send window; UTC when absent.
    timezone: Option<String>,
    send_window: Option<SendWindow>,
    /// 1 to 1000; the sender's rate when absent. The sender's rate also caps it.
    messages_per_second: Option<i32>,
    /// Send a MARKETING template that offers no way to opt out anyway.
    #[graphql(default)]
    acknowledge_no_opt_out: bool,
    /// Pause when the sender's quality drops to this or worse: YELLOW (the default) or RED.
    pause_on_quality: Option<QualityRating>,
    /// Pause when more than `failureRateThreshold` of the last `failureRateWindow` sends failed
    /// (defaults 50 and 0.2).
    failure_rate_window: Option<i32>,
    failure_rate_threshold: Option<f64>,
}

/// Recipients' counts, cumulative along the funnel: a read message also counts as delivered
/// and sent.
#[derive(SimpleObject)]
pub struct CampaignProgress {
    total: i64,
    pending: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    replied: i64,
    failed: i64,
    skipped: i64,
}

impl From<svc::Progress> for CampaignProgress {
    fn from(p: svc::Progress) -> Self {
        Self {
            total: p.total,
            pending: p.pending,
            sent: p.sent,
            delivered: p.delivered,
            read: p.read,
            replied: p.replied,
            failed: p.failed,
            skipped: p.skipped,
        }
    }
}

pub(crate) async fn progress_of(
    services: &Services,
    campaign_id: Uuid,
) -> async_graphql::Result<CampaignProgress> {
    services
        .campaigns()
        .progress(campaign_id)
        .await
        .gql()
        .map(Into::into)
}

pub struct Campaign(campaign::Model);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<Sender> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .senders()
            .get(workspace_id, self.0.sender_id)
            .await
            .gql()
            .map(Sender)
    }
    async fn template_name(&self) -> &str {
        &self.0.template_name
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn variables(&self) -> Option<Json<serde_json::Value>> {
        (!self.0.variables.is_null()).then(|| Json(self.0.variables.clone()))
    }
    /// `{"header": …, "buttons": […]}` as given at creation, when the template needs them.
    async fn template_parameters(&self) -> Option<Json<serde_json::Value>> {
        self.0.template_parameters.clone().map(Json)
    }
    /// `{"contactIds": [...]}` or `{"filter": {"tags": [...], "attributes": {...}}}`.
    async fn audience(&self) -> Json<serde_json::Value> {
        Json(self.0.audience.clone())
    }
    async fn start_at(&self) -> Option<DateTime<Utc>> {
        self.0.start_at
    }
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn send_window(&self) -> Option<SendWindow> {
        let spec: SendWindowSpec = serde_json::from_value(self.0.send_window.clone()?).ok()?;
        Some(SendWindow {
            days: spec
                .days
                .iter()
                .filter_map(|d| Weekday::from_code(d))
                .collect(),
            start_time: spec.start_time,
            end_time: spec.end_time,
        })
    }
    async fn messages_per_second(&self) -> i32 {
        self.0.messages_per_second
    }
    async fn status(&self) -> CampaignStatus {
        self.0.status
    }
    /// Why it is PAUSED or SCHEDULED.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    async fn pause_on_quality(&self) -> QualityRating {
        self.0.pause_on_quality
    }
    async fn failure_rate_window(&self) -> i32 {
        self.0.failure_rate_window
    }
    async fn failure_rate_threshold(&self) -> f64 {
        self.0.failure_rate_threshold
    }
    async fn acknowledge_no_opt_out(&self) -> bool {
        self.0.acknowledge_no_opt_out
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn progress(&self, ctx: &Context<'_>) -> async_graphql::Result<CampaignProgress> {
        let (services, _) = scope(ctx)?;
        progress_of(services, self.0.id).await
    }
    /// Recipients in sending order (written when the campaign starts).
    async fn recipients(
        &self,
        ctx: &Context<'_>,
        status: Option<RecipientStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, CampaignRecipient>> {
        let (services, _) = scope(ctx)?;
        let page = services
            .campaigns()
            .recipients(&self.0, status, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |r| r.id, CampaignRecipient))
    }
}

pub struct CampaignRecipient(campaign_recipient::Model);

#[Object]
impl CampaignRecipient {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn contact_id(&self) -> ID {
        self.0.contact_id.into()
    }
    async fn phone(&self) -> &str {
        &self.0.phone
    }
    async fn status(&self) -> RecipientStatus {
        self.0.status
    }
    /// The provider's error code of a FAILED send.
    async fn error_code(&self) -> Option<&str> {
        self.0.error_code.as_deref()
    }
    /// Why the send failed or the recipient was skipped.
    async fn error_message(&self) -> Option<&str> {
        self.0.error_message.as_deref()
    }
    async fn message_id(&self) -> Option<ID> {
        self.0.message_id.map(Into::into)
    }
    /// The conversation the recipient replied in.
    async fn conversation_id(&self) -> Option<ID> {
        self.0.conversation_id.map(Into::into)
    }
    /// When the message was handed to the provider.
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

fn campaign_id(id: &ID) -> async_graphql::Result<Uuid> {
    parse_id(id, || Error::NotFound("campaign"))
}

#[derive(Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .get(workspace_id, campaign_id(&id)?)
            .await
            .gql()
            .map(Campaign)
    }

    /// Campaigns oldest first, optionally in one state.
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        status: Option<CampaignStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Campaign>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .campaigns()
            .list(workspace_id, status, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |c| c.id, Campaign))
    }
}

#[derive(Default)]
pub struct CampaignMutation;

impl CreateCampaignInput {
    fn into_new(self) -> async_graphql::Result<NewCampaign> {
        let audience = match (self.audience.contact_ids, self.audience.filter) {
            (Some(ids), None) => Audience::ContactIds(
                ids.iter()
                    .map(|id| {
                        Uuid::parse_str(id.as_str()).map_err(|_| {
                            Error::field(
                                "audience.contactIds",
                                format!("{:?} is not a contact id", id.as_str()),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()
                    .gql()?,
            ),
            (None, Some(filter)) => Audience::Filter(AudienceFilter {
                tags: filter.tags,
                attributes: filter.attributes.map(|a| a.0).unwrap_or_default(),
            }),
            _ => {
                return Err(Error::field(
                    "audience",
                    "give either contactIds or filter (exactly one)",
                ))
                .gql();
            }
        };
        Ok(NewCampaign {
            name: self.name,
            sender_id: parse_id(&self.sender_id, || {
                Error::SenderNotFound(self.sender_id.to_string())
            })?,
            template_name: self.template_name,
            language: self.language,
            variables: self.variables.map(|v| v.0),
            parameters: template_parameters(self.header, self.buttons),
            audience,
            start_at: self.start_at,
            timezone: self.timezone,
            send_window: self.send_window.map(|w| SendWindowSpec {
                days: w.days.iter().map(|d| d.code().to_owned()).collect(),
                start_time: w.start_time,
                end_time: w.end_time,
            }),
            messages_per_second: self.messages_per_second,
            acknowledge_no_opt_out: self.acknowledge_no_opt_out,
            pause_on_quality: self.pause_on_quality,
            failure_rate_window: self.failure_rate_window,
            failure_rate_threshold: self.failure_rate_threshold,
        })
    }
}

#[Object]
impl CampaignMutation {
    /// Checks and stores a DRAFT campaign: the template must be APPROVED, the variables must
    /// fit its placeholders, and a MARKETING template must offer a way to opt out.
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CreateCampaignInput,
    ) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .create(workspace_id, input.into_new()?)
            .await
            .gql()
            .map(Campaign)
    }

    /// Sends the campaign's message, rendered for the contact with this phone, to that one
    /// number. Try it on yourself before a bulk send; nothing is recorded on the campaign.
    async fn test_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        phone: String,
    ) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .test(workspace_id, campaign_id(&id)?, &phone)
            .await
            .gql()
            .map(Message)
    }

    /// Freezes the audience into recipients and starts sending (or waits for the start time and
    /// send window: SCHEDULED).
    async fn start_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .start(workspace_id, campaign_id(&id)?)
            .await
            .gql()
            .map(Campaign)
    }

    async fn pause_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .pause(workspace_id, campaign_id(&id)?, reason)
            .await
            .gql()
            .map(Campaign)
    }

    /// Goes on where it stopped; nobody already sent is sent again.
    async fn resume_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .resume(workspace_id, campaign_id(&id)?)
            .await
            .gql()
            .map(Campaign)
    }

    /// Stops for good; recipients not yet sent become SKIPPED_CANCELLED.
    async fn cancel_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .campaigns()
            .cancel(workspace_id, campaign_id(&id)?)
            .await
            .gql()
            .map(Campaign)
    }
}
