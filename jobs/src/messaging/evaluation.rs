//! The post-conversation evaluation. When a conversation whose assistant evaluates ends, its end
//! is announced only after the assistant has extracted its variables, or after a deadline, by
//! two jobs: whichever of them moves the conversation out of PENDING announces it, exactly once.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::Value;
use uuid::Uuid;
use waflow_entities::{assistant, conversation, enums::ExtractionStatus};

use crate::context::Services;
use crate::{
    ai,
    error::Result,
    events::{ConversationEnded, Event, EventPayload},
};

pub struct EvaluationService<'a> {
    pub(super) services: &'a Services,
}

impl Services {
    pub fn evaluation(&self) -> EvaluationService<'_> {
        EvaluationService { services: self }
    }
}

/// How an evaluation ended.
enum Outcome {
    Completed(serde_json::Map<String, Value>),
    /// Why, in words a user can act on.
    Failed(String),
    TimedOut,
}

impl EvaluationService<'_> {
    /// The evaluation job: asks the assistant for the variables and stores them. A result that
    /// comes after the deadline is still stored (queries and the export see it); the event has
    /// gone out by then.
    pub async fn evaluate(&self, conversation_id: Uuid) -> Result<()> {
        let db = &self.services.db;
        let Some(conversation) = conversation::Entity::find_by_id(conversation_id)
            .one(db)
            .await?
        else {
            return Ok(());
        };
        if !matches!(
            conversation.extraction_status,
            Some(ExtractionStatus::Pending | ExtractionStatus::TimedOut)
        ) {
            return Ok(());
        }
        let assistant = match conversation.assistant_id {
            Some(id) => assistant::Entity::find_by_id(id).one(db).await?,
            None => None,
        };
        let Some(assistant) = assistant else {
            tracing::warn!(%conversation_id, "the conversation's assistant is gone; nothing to evaluate");
            let failed = Outcome::Failed("the conversation's assistant was deleted".into());
            return self.finish(conversation_id, failed).await;
        };
        let contact = self.services.conversations().contact(&conversation).await?;
        let variables = ai::prompt::variables(&conversation, contact.as_ref());
        let transcript = ended_payload(&conversation)
            .map(|p| p.transcript_text)
            .unwrap_or_default();
        match ai::extraction::evaluate(self.services, &assistant, &variables, &transcript).await {
            Ok(values) => {
                self.finish(conversation_id, Outcome::Completed(values))
                    .await
            }
            Err(error) => {
                tracing::warn!(%conversation_id, %error, "the evaluation failed");
                let failed = Outcome::Failed(error.public_message());
                self.finish(conversation_id, failed).await
            }
        }
    }

    /// The deadline job: announces the end as it is if the evaluation has not.
    pub async fn deadline(&self, conversation_id: Uuid) -> Result<()> {
        self.finish(conversation_id, Outcome::TimedOut).await
    }

    /// Records the evaluation's outcome; the first outcome for a PENDING conversation also
    /// announces the end. Late values (after TIMED_OUT) are stored without a second announcement.
    async fn finish(&self, conversation_id: Uuid, outcome: Outcome) -> Result<()> {
        let (status, values, error) = match outcome {
            Outcome::Completed(values) => (ExtractionStatus::Completed, Some(values), None),
            Outcome::Failed(why) => (ExtractionStatus::Failed, None, Some(why)),
            Outcome::TimedOut => (ExtractionStatus::TimedOut, None, None),
        };
        let txn = crate::db::begin_write(&self.services.db).await?;
        let Some(conversation) = conversation::Entity::find_by_id(conversation_id)
            .one(&txn)
            .await?
        else {
            return Ok(());
        };
        let Some(was) = conversation.extraction_status else {
            return Ok(());
        };
        let announce = was == ExtractionStatus::Pending;
        let late = was == ExtractionStatus::TimedOut && values.is_some();
        if !announce && !late {
            return Ok(());
        }
        let Some(mut payload) = ended_payload(&conversation) else {
            return Ok(());
        };
        let status = if late {
            ExtractionStatus::Completed
        } else {
            status
        };
        if let Some(values) = values {
            payload.extracted_variables = Value::Object(values);
        }
        payload.extraction_status = Some(status);
        let changed = conversation::Entity::update_many()
            .col_expr(conversation::Column::ExtractionStatus, Expr::value(status))
            .col_expr(conversation::Column::ExtractionError, Expr::value(error))
            .col_expr(
                conversation::Column::ExtractedVariables,
                Expr::value(payload.extracted_variables.clone()),
            )
            .col_expr(
                conversation::Column::EndedPayload,
                Expr::value(serde_json::to_value(&payload).expect("payload serializes")),
            )
            .filter(conversation::Column::Id.eq(conversation_id))
            .filter(conversation::Column::ExtractionStatus.eq(was))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        if changed == 1 && announce {
            let event = Event::new(
                conversation.workspace_id,
                EventPayload::ConversationEnded(Box::new(payload)),
            );
            self.services.emit(event).await;
        }
        Ok(())
    }
}

fn ended_payload(conversation: &conversation::Model) -> Option<ConversationEnded> {
    serde_json::from_value(conversation.ended_payload.clone()?).ok()
}
