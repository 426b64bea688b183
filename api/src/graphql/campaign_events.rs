//! Campaign subscriptions: live progress of one campaign, and every pause.

use std::time::Duration;

use async_graphql::{Context, ID, SimpleObject, Subscription, futures_util::Stream};
use tokio::sync::broadcast::{Receiver, error::RecvError, error::TryRecvError};
use uuid::Uuid;
use waflow_entities::enums::CampaignStatus;
use waflow_jobs::{
    Error, Services,
    events::{Event, EventPayload},
};

use super::{
    GqlResult,
    campaigns::{CampaignProgress, progress_of},
    parse_id, scope,
    subscriptions::workspace_events,
};

/// Progress is read again at most this often, however fast recipients change.
const THROTTLE: Duration = Duration::from_millis(250);

/// A campaign's state and counts.
#[derive(SimpleObject)]
pub struct CampaignProgressEvent {
    campaign_id: ID,
    status: CampaignStatus,
    status_reason: Option<String>,
    progress: CampaignProgress,
}

/// A campaign stopped sending: a user paused it, or a safety rule did (`automatic`).
#[derive(SimpleObject)]
pub struct CampaignPausedEvent {
    campaign_id: ID,
    campaign_name: String,
    sender_id: ID,
    reason: String,
    automatic: bool,
}

#[derive(Default)]
pub struct CampaignSubscription;

struct Watch {
    services: Services,
    workspace_id: Uuid,
    campaign_id: Uuid,
    receiver: Receiver<std::sync::Arc<Event>>,
    first: bool,
    /// A snapshot failed (the campaign was deleted with its workspace): the stream ends.
    failed: bool,
}

impl Watch {
    fn concerns(&self, event: &Event) -> bool {
        event.workspace_id == self.workspace_id
            && match &event.payload {
                EventPayload::CampaignChanged(c) => c.campaign_id == self.campaign_id,
                EventPayload::CampaignPaused(p) => p.campaign_id == self.campaign_id,
                _ => false,
            }
    }

    /// Waits for a change to this campaign, then lets changes gather for a moment so a busy
    /// campaign costs a few reads a second. A lagging receiver just reads again: the counts
    /// come from the database, so nothing is lost.
    async fn next_change(&mut self) -> bool {
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.concerns(&event) => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return false,
            }
        }
        tokio::time::sleep(THROTTLE).await;
        loop {
            match self.receiver.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Closed) => return false,
            }
        }
    }

    async fn snapshot(&self) -> async_graphql::Result<CampaignProgressEvent> {
        let campaign = self
            .services
            .campaigns()
            .get(self.workspace_id, self.campaign_id)
            .await
            .gql()?;
        Ok(CampaignProgressEvent {
            campaign_id: campaign.id.into(),
            status: campaign.status,
            status_reason: campaign.status_reason,
            progress: progress_of(&self.services, self.campaign_id).await?,
        })
    }
}

#[Subscription]
impl CampaignSubscription {
    /// One campaign's state and counts: now, then as they change (a few updates a second at
    /// most). Delivery reports and replies keep changing the counts after the campaign
    /// completes, so the stream goes on until the client stops it.
    async fn campaign_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CampaignProgressEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let campaign_id = parse_id(&id, || Error::NotFound("campaign"))?;
        services
            .campaigns()
            .get(workspace_id, campaign_id)
            .await
            .gql()?;
        let watch = Watch {
            services: services.clone(),
            workspace_id,
            campaign_id,
            receiver: services.events.subscribe(workspace_id, None),
            first: true,
            failed: false,
        };
        Ok(async_graphql::futures_util::stream::unfold(
            watch,
            |mut watch| async move {
                if watch.failed {
                    return None;
                }
                if !std::mem::take(&mut watch.first) && !watch.next_change().await {
                    return None;
                }
                let item = watch.snapshot().await;
                watch.failed = item.is_err();
                Some((item, watch))
            },
        ))
    }

    /// Every campaign of the workspace that pauses, by a user or by a safety rule.
    async fn campaign_paused(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CampaignPausedEvent>>> {
        let (services, workspace_id) = scope(ctx)?;
        Ok(workspace_events(
            services,
            workspace_id,
            None,
            |payload| match payload {
                EventPayload::CampaignPaused(p) => Some(CampaignPausedEvent {
                    campaign_id: p.campaign_id.into(),
                    campaign_name: p.campaign_name.clone(),
                    sender_id: p.sender_id.into(),
                    reason: p.reason.clone(),
                    automatic: p.automatic,
                }),
                _ => None,
            },
        ))
    }
}
