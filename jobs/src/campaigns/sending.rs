//! The sending half of a dispatcher: recipients in order, each prepared (contact loaded,
//! variables rendered, or skipped with the reason), paced, then sent only after the campaign
//! is re-read and found still running, inside its window, and still this dispatcher's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::Expr,
};
use tokio::time::Instant;
use uuid::Uuid;
use waflow_entities::{
    campaign, campaign_recipient, contact,
    enums::{MessageStatus, RecipientStatus},
    message, sender, template,
};

use super::{
    CampaignService, Variables,
    dispatch::{RENEW_AFTER, SendSchedule, is_current},
};
use crate::{
    content::{template_components::Components, template_parameters},
    error::{Error, Result},
    messaging::{DELIVERY_UNKNOWN, SendTemplate, TemplateRef},
    sandbox::TemplateError,
};

/// How long one dispatcher job sends before handing over to the next: shorter than a worker's
/// graceful shutdown, so a stopping worker finishes its slice and hands over.
pub(super) const SLICE: Duration = Duration::from_secs(10);
/// Recipients read per query.
const BATCH: u64 = 100;
/// Subscribers hear about new counts at most this often from one dispatcher.
const CHANGED_EVERY: Duration = Duration::from_millis(250);

/// Why a dispatcher stopped sending.
pub(super) enum SliceEnd {
    /// No recipient is left.
    Finished,
    /// The slice is used up; the next job goes on.
    Yield,
    /// The campaign was paused, cancelled or handed to another chain.
    Stopped,
    /// The send window closed (or the start is ahead): sleep until then.
    Closed(DateTime<Utc>, &'static str),
}

/// A recipient ready to be sent to, or already recorded as skipped.
enum Prepared {
    Skipped,
    Ready(Box<contact::Model>, Variables),
}

/// What became of one send.
enum Outcome {
    Done,
    /// The sender's shared budget is spent for now: try the same recipient after this long.
    RetryAfter(Duration),
    /// A safety rule says stop the whole campaign.
    Pause(String),
}

impl CampaignService<'_> {
    /// Sends to PENDING recipients in order until the slice ends or something says stop.
    pub(super) async fn send_slice(
        &self,
        campaign: &campaign::Model,
        token: Uuid,
    ) -> Result<SliceEnd> {
        let db = &self.services.db;
        let Some(sender) = sender::Entity::find_by_id(campaign.sender_id)
            .one(db)
            .await?
        else {
            self.pause_with(campaign, "the campaign's sender was deleted".into(), true)
                .await?;
            return Ok(SliceEnd::Stopped);
        };
        let rate = campaign
            .messages_per_second
            .min(sender.messages_per_second)
            .max(1);
        // A campaign that sent before (an earlier slice, before a pause) keeps its spacing
        // across the hand-over.
        let mut pace = Pace {
            interval: Duration::from_secs_f64(1.0 / f64::from(rate)),
            last: campaign.started_at.map(|_| Instant::now()),
        };
        let variables = Variables::of_campaign(campaign)?;
        let components = template::Entity::find_by_id(campaign.template_id)
            .one(db)
            .await?
            .map(|t| Components::from_json(&t.components))
            .transpose()?;
        let schedule = SendSchedule::of(campaign)?;
        let started = Instant::now();
        let mut renewed = Instant::now();
        let mut announced = Instant::now();
        loop {
            let batch = campaign_recipient::Entity::find()
                .filter(campaign_recipient::Column::CampaignId.eq(campaign.id))
                .filter(campaign_recipient::Column::Status.eq(RecipientStatus::Pending))
                .order_by_asc(campaign_recipient::Column::Id)
                .limit(BATCH)
                .all(db)
                .await?;
            if batch.is_empty() {
                return Ok(SliceEnd::Finished);
            }
            for recipient in batch {
                let Prepared::Ready(contact, rendered) = self
                    .prepare(&variables, components.as_ref(), &recipient)
                    .await?
                else {
                    continue;
                };
                loop {
                    if started.elapsed() > SLICE {
                        return Ok(SliceEnd::Yield);
                    }
                    pace.wait().await;
                    // Re-read right before every send: a pause or cancel stops the very next one.
                    let Some(current) = campaign::Entity::find_by_id(campaign.id).one(db).await?
                    else {
                        return Ok(SliceEnd::Stopped);
                    };
                    if !is_current(&current, token) {
                        return Ok(SliceEnd::Stopped);
                    }
                    if let Some((opens, why)) = schedule.closed_until(Utc::now()) {
                        return Ok(SliceEnd::Closed(opens, why));
                    }
                    if renewed.elapsed() > RENEW_AFTER {
                        if !self.renew(campaign.id, token).await? {
                            return Ok(SliceEnd::Stopped);
                        }
                        renewed = Instant::now();
                    }
                    match self
                        .send_to(&current, &recipient, &contact, rendered.clone())
                        .await?
                    {
                        Outcome::Done => break,
                        Outcome::RetryAfter(wait) => tokio::time::sleep(wait).await,
                        Outcome::Pause(reason) => {
                            self.pause_with(&current, reason, true).await?;
                            return Ok(SliceEnd::Stopped);
                        }
                    }
                }
                if announced.elapsed() >= CHANGED_EVERY {
                    self.changed(campaign.workspace_id, campaign.id).await;
                    announced = Instant::now();
                }
            }
        }
    }

    /// Loads the recipient's contact and renders the variables for them, or records why the
    /// recipient is skipped: opted out, deleted, or values that cannot be rendered or that break
    /// Meta's limits on the template's header and buttons (`components`, when it still exists).
    async fn prepare(
        &self,
        variables: &Variables,
        components: Option<&Components>,
        recipient: &campaign_recipient::Model,
    ) -> Result<Prepared> {
        let Some(contact) = contact::Entity::find_by_id(recipient.contact_id)
            .one(&self.services.db)
            .await?
        else {
            return self
                .skip(
                    recipient,
                    RecipientStatus::SkippedInvalid,
                    "the contact was deleted",
                )
                .await;
        };
        if contact.opted_out {
            return self
                .skip(
                    recipient,
                    RecipientStatus::SkippedOptedOut,
                    "the contact opted out",
                )
                .await;
        }
        let context = self.context(&contact).await?;
        let templates = self.services.sandbox.for_workspace(contact.workspace_id);
        match variables.render(&templates, &context).await {
            Ok(rendered) => {
                let paired = components.map(|c| template_parameters::pair(c, &rendered.parameters));
                if let Some(Err(mismatch)) = paired {
                    let why = format!("{} {}", mismatch.component, mismatch.problem);
                    return self
                        .skip(recipient, RecipientStatus::SkippedInvalid, &why)
                        .await;
                }
                Ok(Prepared::Ready(Box::new(contact), rendered))
            }
            Err(TemplateError::Template(why)) => {
                self.skip(recipient, RecipientStatus::SkippedInvalid, &why)
                    .await
            }
            Err(ours) => Err(ours.on_field("variables")),
        }
    }

    /// Sends the campaign's message to one recipient and records the outcome.
    async fn send_to(
        &self,
        campaign: &campaign::Model,
        recipient: &campaign_recipient::Model,
        contact: &contact::Model,
        rendered: Variables,
    ) -> Result<Outcome> {
        let db = &self.services.db;
        let sent = self
            .services
            .messaging()
            .send_template(
                campaign.workspace_id,
                SendTemplate {
                    sender_id: campaign.sender_id,
                    template: TemplateRef::Id(campaign.template_id),
                    to: contact.address(),
                    recipient_name: None,
                    variables: rendered.positional,
                    named_variables: rendered.named,
                    parameters: rendered.parameters,
                    idempotency_key: Some(format!("campaign:{}:{}", campaign.id, contact.id)),
                },
            )
            .await;
        match sent {
            Ok(message)
                if message.status == MessageStatus::Queued
                    && message.provider_message_id.is_none() =>
            {
                self.delivery_unknown(recipient, message).await?;
                self.after_failure(campaign).await
            }
            Ok(message) => {
                self.mark_sent(recipient, &message).await?;
                if message.status == MessageStatus::Failed {
                    return self.after_failure(campaign).await;
                }
                Ok(Outcome::Done)
            }
            Err(Error::RateLimited {
                retry_after_seconds,
            }) => Ok(Outcome::RetryAfter(Duration::from_secs(
                retry_after_seconds,
            ))),
            Err(Error::RecipientOptedOut) => self
                .skip(
                    recipient,
                    RecipientStatus::SkippedOptedOut,
                    "the contact opted out",
                )
                .await
                .map(|_| Outcome::Done),
            Err(error @ (Error::InvalidPhoneNumber { .. } | Error::Validation(_))) => self
                .skip(
                    recipient,
                    RecipientStatus::SkippedInvalid,
                    &error.public_message(),
                )
                .await
                .map(|_| Outcome::Done),
            Err(Error::SenderOffline { reason }) => {
                Ok(Outcome::Pause(format!("the sender is offline: {reason}")))
            }
            Err(
                error @ (Error::SenderQualityLow
                | Error::SenderNotFound(_)
                | Error::TemplateNotFound { .. }
                | Error::TemplateNotApproved { .. }
                | Error::TemplateVariablesMismatch { .. }
                | Error::TemplateParameterInvalid { .. }),
            ) => Ok(Outcome::Pause(error.public_message())),
            Err(Error::SendFailed { message_id, .. }) => {
                if let Some(message) = message::Entity::find_by_id(message_id).one(db).await? {
                    self.mark_sent(recipient, &message).await?;
                }
                self.after_failure(campaign).await
            }
            Err(other) => Err(other),
        }
    }

    /// The provider never answered this send (no answer came back, or an earlier attempt's
    /// worker died waiting): the customer may or may not have it, and sending again could
    /// message them twice. The message and recipient are FAILED with DELIVERY_UNKNOWN, never
    /// sent again; a campaign counts the recipient as not reached.
    async fn delivery_unknown(
        &self,
        recipient: &campaign_recipient::Model,
        message: message::Model,
    ) -> Result<()> {
        // A send that got no answer says so already (`messaging::DELIVERY_UNKNOWN`).
        let noted = message.error_code.as_deref() == Some(DELIVERY_UNKNOWN);
        let mut model: message::ActiveModel = message.into();
        model.status = Set(MessageStatus::Failed);
        if !noted {
            model.error_code = Set(Some(DELIVERY_UNKNOWN.into()));
            model.error_message = Set(Some(
                "the worker sending this message stopped before the provider answered; it may \
                 or may not have been delivered, so it is not sent again"
                    .into(),
            ));
        }
        model.updated_at = Set(Utc::now());
        let txn = crate::db::begin_write(&self.services.db).await?;
        let message = model.update(&txn).await?;
        txn.commit().await?;
        self.mark_sent(recipient, &message).await?;
        self.services.messaging().publish_status(&message).await;
        Ok(())
    }

    /// A send failed: pause the campaign if the recent failures pass its threshold.
    async fn after_failure(&self, campaign: &campaign::Model) -> Result<Outcome> {
        Ok(match self.failure_rate_exceeded(campaign).await? {
            Some(reason) => Outcome::Pause(reason),
            None => Outcome::Done,
        })
    }

    async fn skip(
        &self,
        recipient: &campaign_recipient::Model,
        status: RecipientStatus,
        why: &str,
    ) -> Result<Prepared> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        campaign_recipient::Entity::update_many()
            .col_expr(campaign_recipient::Column::Status, Expr::value(status))
            .col_expr(
                campaign_recipient::Column::ErrorMessage,
                Expr::value(why.to_owned()),
            )
            .col_expr(
                campaign_recipient::Column::UpdatedAt,
                Expr::value(Utc::now()),
            )
            .filter(campaign_recipient::Column::Id.eq(recipient.id))
            .filter(campaign_recipient::Column::Status.eq(RecipientStatus::Pending))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Prepared::Skipped)
    }

    /// Records the message a recipient was sent, at the status it has reached by now (a
    /// delivery report may have come in before this write).
    async fn mark_sent(
        &self,
        recipient: &campaign_recipient::Model,
        message: &message::Model,
    ) -> Result<()> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::Status,
                Expr::value(super::feedback::recipient_status(message.status)),
            )
            .col_expr(
                campaign_recipient::Column::MessageId,
                Expr::value(message.id),
            )
            .col_expr(
                campaign_recipient::Column::ErrorCode,
                Expr::value(message.error_code.clone()),
            )
            .col_expr(
                campaign_recipient::Column::ErrorMessage,
                Expr::value(message.error_message.clone()),
            )
            .col_expr(campaign_recipient::Column::SentAt, Expr::value(now))
            .col_expr(campaign_recipient::Column::UpdatedAt, Expr::value(now))
            .filter(campaign_recipient::Column::Id.eq(recipient.id))
            .filter(campaign_recipient::Column::Status.eq(RecipientStatus::Pending))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Spaces provider requests `interval` apart, measured from the start of the previous one, so
/// no one-second span holds more than the campaign's rate.
struct Pace {
    interval: Duration,
    last: Option<Instant>,
}

impl Pace {
    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.interval).await;
        }
        self.last = Some(Instant::now());
    }
}
