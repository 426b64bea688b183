//! What the world tells a campaign after its messages went out: delivery reports move recipients
//! along, a recipient's answer marks them REPLIED and ties the conversation to the campaign, and
//! bad news (the sender's quality dropping, too many failures) pauses it before the number is
//! harmed further.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
    sea_query::Expr,
};
use uuid::Uuid;
use waflow_entities::{
    campaign, campaign_recipient, conversation,
    enums::{CampaignStatus, MessageStatus, QualityRating, RecipientStatus},
    message,
};

use super::{CampaignService, logged};
use crate::{
    error::Result,
    events::{Event, EventPayload, MessageReceived, SenderQualityChanged},
};

/// A reply counts for the campaign whose message reached the customer at most this long before.
pub const REPLY_ATTRIBUTION: Duration = Duration::days(7);

/// The recipients a message from `customer_phone` may be the reply of: in the workspace, with
/// that number, sent a campaign's message at most `REPLY_ATTRIBUTION` ago and not answered yet.
/// The campaign's sender is checked after (`CampaignService::on_reply`).
pub fn replied_by(
    workspace_id: Uuid,
    customer_phone: Option<&str>,
) -> Select<campaign_recipient::Entity> {
    campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_recipient::Column::Phone.eq(customer_phone))
        .filter(campaign_recipient::Column::SentAt.gt(Utc::now() - REPLY_ATTRIBUTION))
        .filter(campaign_recipient::Column::Status.is_in([
            RecipientStatus::Sent,
            RecipientStatus::Delivered,
            RecipientStatus::Read,
        ]))
}

/// The recipient status a message's status stands for.
pub fn recipient_status(status: MessageStatus) -> RecipientStatus {
    match status {
        MessageStatus::Delivered => RecipientStatus::Delivered,
        MessageStatus::Read => RecipientStatus::Read,
        MessageStatus::Failed => RecipientStatus::Failed,
        MessageStatus::Received | MessageStatus::Queued | MessageStatus::Sent => {
            RecipientStatus::Sent
        }
    }
}

/// How far along the funnel a status is; a recipient only moves forward.
fn rank(status: RecipientStatus) -> u8 {
    match status {
        RecipientStatus::Pending => 0,
        RecipientStatus::Sent => 1,
        RecipientStatus::Delivered => 2,
        RecipientStatus::Read => 3,
        RecipientStatus::Replied => 4,
        RecipientStatus::Failed
        | RecipientStatus::SkippedOptedOut
        | RecipientStatus::SkippedInvalid
        | RecipientStatus::SkippedCancelled => 5,
    }
}

/// Worse is lower; UNKNOWN says nothing.
fn quality_rank(rating: QualityRating) -> Option<u8> {
    match rating {
        QualityRating::Green => Some(2),
        QualityRating::Yellow => Some(1),
        QualityRating::Red => Some(0),
        QualityRating::Unknown => None,
    }
}

/// Whether a change from `previous` to `current` is a drop to `limit` or worse. Only a drop
/// pauses: a campaign resumed on a YELLOW number is not paused again until it gets worse.
fn drops_to(limit: QualityRating, previous: QualityRating, current: QualityRating) -> bool {
    let (Some(limit), Some(current)) = (quality_rank(limit), quality_rank(current)) else {
        return false;
    };
    current <= limit && quality_rank(previous).is_none_or(|p| p > current)
}

impl CampaignService<'_> {
    /// Called for every event after it is published; a failure is logged, never undoes it.
    pub async fn on_event(&self, event: &Event) {
        match &event.payload {
            EventPayload::MessageStatusUpdated(update) => {
                logged(
                    "could not update a campaign recipient's status",
                    self.on_status(update.message_id),
                )
                .await
            }
            EventPayload::MessageReceived(received) => {
                logged(
                    "could not mark a campaign recipient as replied",
                    self.on_reply(event.workspace_id, received),
                )
                .await
            }
            EventPayload::SenderQualityChanged(change) => {
                logged(
                    "could not pause the campaigns of a sender whose quality dropped",
                    self.on_quality(event.workspace_id, change),
                )
                .await
            }
            _ => {}
        }
    }

    /// A delivery report for a campaign's message moves its recipient forward (a failure only
    /// counts before delivery), and a failure may pause the campaign.
    async fn on_status(&self, message_id: Uuid) -> Result<()> {
        let db = &self.services.db;
        let Some(message) = message::Entity::find_by_id(message_id).one(db).await? else {
            return Ok(());
        };
        // The key names the campaign and contact, so the recipient is found even when the report
        // beats the dispatcher's own write of the message id.
        let Some((campaign_id, contact_id)) =
            message.idempotency_key.as_deref().and_then(parse_key)
        else {
            return Ok(());
        };
        let Some(recipient) = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
            .filter(campaign_recipient::Column::ContactId.eq(contact_id))
            .one(db)
            .await?
        else {
            return Ok(());
        };
        let status = recipient_status(message.status);
        let forward = match status {
            RecipientStatus::Failed => rank(recipient.status) < rank(RecipientStatus::Delivered),
            status => {
                rank(status) > rank(recipient.status) && recipient.status != RecipientStatus::Failed
            }
        };
        if !forward {
            return Ok(());
        }
        let now = Utc::now();
        let mut model: campaign_recipient::ActiveModel = recipient.clone().into();
        model.status = Set(status);
        model.message_id = Set(Some(message.id));
        model.sent_at = Set(Some(recipient.sent_at.unwrap_or(now)));
        if status == RecipientStatus::Failed {
            model.error_code = Set(message.error_code.clone());
            model.error_message = Set(message.error_message.clone());
        }
        model.updated_at = Set(now);
        let txn = crate::db::begin_write(db).await?;
        model.update(&txn).await?;
        txn.commit().await?;
        self.changed(message.workspace_id, campaign_id).await;
        if status == RecipientStatus::Failed
            && let Some(campaign) = campaign::Entity::find_by_id(campaign_id).one(db).await?
            && let Some(reason) = self.failure_rate_exceeded(&campaign).await?
        {
            self.pause_with(&campaign, reason, true).await?;
        }
        Ok(())
    }

    /// A customer wrote to a sender that recently sent them a campaign: the latest such
    /// recipient is REPLIED, and the conversation belongs to that campaign.
    async fn on_reply(&self, workspace_id: Uuid, received: &MessageReceived) -> Result<()> {
        let db = &self.services.db;
        let candidates = replied_by(workspace_id, received.customer_phone.as_deref())
            .order_by_desc(campaign_recipient::Column::SentAt)
            .limit(20)
            .all(db)
            .await?;
        for recipient in candidates {
            let Some(campaign) = campaign::Entity::find_by_id(recipient.campaign_id)
                .one(db)
                .await?
            else {
                continue;
            };
            if campaign.sender_id != received.sender_id {
                continue;
            }
            let txn = crate::db::begin_write(db).await?;
            campaign_recipient::Entity::update_many()
                .col_expr(
                    campaign_recipient::Column::Status,
                    Expr::value(RecipientStatus::Replied),
                )
                .col_expr(
                    campaign_recipient::Column::ConversationId,
                    Expr::value(received.conversation_id),
                )
                .col_expr(
                    campaign_recipient::Column::UpdatedAt,
                    Expr::value(Utc::now()),
                )
                .filter(campaign_recipient::Column::Id.eq(recipient.id))
                .exec(&txn)
                .await?;
            conversation::Entity::update_many()
                .col_expr(conversation::Column::CampaignId, Expr::value(campaign.id))
                .filter(conversation::Column::Id.eq(received.conversation_id))
                .filter(conversation::Column::CampaignId.is_null())
                .exec(&txn)
                .await?;
            txn.commit().await?;
            self.changed(workspace_id, campaign.id).await;
            return Ok(());
        }
        Ok(())
    }

    /// The sender's quality fell to a campaign's limit or below: pause it.
    async fn on_quality(&self, workspace_id: Uuid, change: &SenderQualityChanged) -> Result<()> {
        if quality_rank(change.current).is_none() {
            return Ok(());
        }
        let live = campaign::Entity::find()
            .filter(campaign::Column::WorkspaceId.eq(workspace_id))
            .filter(campaign::Column::SenderId.eq(change.sender.id))
            .filter(
                campaign::Column::Status
                    .is_in([CampaignStatus::Scheduled, CampaignStatus::Running]),
            )
            .all(&self.services.db)
            .await?;
        let rating = super::wire_name(change.current);
        for campaign in live {
            if drops_to(campaign.pause_on_quality, change.previous, change.current) {
                let reason = format!(
                    "the sender {}'s quality rating dropped to {rating}: sending more now risks \
                     the number's messaging limits; resume when it recovers",
                    change.sender.phone_number
                );
                self.pause_with(&campaign, reason, true).await?;
            }
        }
        Ok(())
    }

    /// A reason to pause when more than the campaign's threshold of its last sends failed.
    pub(crate) async fn failure_rate_exceeded(
        &self,
        campaign: &campaign::Model,
    ) -> Result<Option<String>> {
        let window = campaign.failure_rate_window.max(1);
        let recent: Vec<RecipientStatus> = campaign_recipient::Entity::find()
            .select_only()
            .column(campaign_recipient::Column::Status)
            .filter(campaign_recipient::Column::CampaignId.eq(campaign.id))
            .filter(campaign_recipient::Column::SentAt.is_not_null())
            .order_by_desc(campaign_recipient::Column::SentAt)
            .limit(window as u64)
            .into_tuple()
            .all(&self.services.db)
            .await?;
        let failed = recent
            .iter()
            .filter(|s| **s == RecipientStatus::Failed)
            .count();
        let allowed = campaign.failure_rate_threshold * f64::from(window);
        Ok((failed as f64 > allowed).then(|| {
            format!(
                "failure rate too high: {failed} of the last {} sends failed (the limit is {:.0}% \
                 of {window}); check the failures' error codes before resuming",
                recent.len(),
                campaign.failure_rate_threshold * 100.0
            )
        }))
    }
}

/// `campaign:<campaign id>:<contact id>`, the key every campaign send carries.
fn parse_key(key: &str) -> Option<(Uuid, Uuid)> {
    let rest = key.strip_prefix("campaign:")?;
    let (campaign, contact) = rest.split_once(':')?;
    Some((
        Uuid::parse_str(campaign).ok()?,
        Uuid::parse_str(contact).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_only_move_forward() {
        assert!(rank(RecipientStatus::Read) > rank(RecipientStatus::Delivered));
        assert!(rank(RecipientStatus::Replied) > rank(RecipientStatus::Read));
        let id = Uuid::now_v7();
        assert_eq!(parse_key(&format!("campaign:{id}:{id}")), Some((id, id)));
        assert_eq!(parse_key("flow:1:2"), None);
    }

    #[test]
    fn only_a_drop_to_the_limit_pauses() {
        use QualityRating::*;
        assert!(drops_to(Yellow, Green, Yellow));
        assert!(drops_to(Yellow, Green, Red));
        assert!(drops_to(Yellow, Yellow, Red));
        assert!(drops_to(Red, Yellow, Red));
        assert!(drops_to(Red, Unknown, Red));
        // Not far enough for a RED limit, not a drop, or nothing known.
        assert!(!drops_to(Red, Green, Yellow));
        assert!(!drops_to(Yellow, Red, Yellow));
        assert!(!drops_to(Yellow, Yellow, Green));
        assert!(!drops_to(Yellow, Green, Unknown));
    }
}
