//! `wait_for_reply`: the run waits for the contact's next message (its output is the message),
//! or for its timeout (`timed_out: true`).

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use waflow_entities::CustomerAddress;

use super::{Deadline, Outcome, Park, Simulation, StepContext, StepError, StepType};
use crate::flows::{
    runs,
    state::WakeReason,
    validate::{Checks, MAX_WAIT_SECONDS, Reference},
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitForReply {
    pub timeout_seconds: u64,
    /// Defaults to the trigger's sender.
    pub sender_id: Option<Uuid>,
    /// A template; defaults to the trigger's customer phone.
    pub phone: Option<String>,
}

impl StepType for WaitForReply {
    const TYPE: &'static str = "wait_for_reply";
    const WAITS: bool = true;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.problems.check(
            (1..=MAX_WAIT_SECONDS).contains(&self.timeout_seconds),
            format!("{path}.timeoutSeconds"),
            format!("must be 1 to {MAX_WAIT_SECONDS}"),
        );
        checks.templates(path, &[("phone", self.phone.as_ref())]);
        if let Some(id) = self.sender_id {
            checks.references.push(Reference::Sender {
                path: format!("{path}.senderId"),
                id,
            });
        }
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let trigger = &cx.context["trigger"];
        let sender = self.sender_id.or_else(|| {
            trigger["sender_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        });
        let phone = match &self.phone {
            Some(p) => cx.templates().render(p, cx.context).await.ok(),
            None => trigger["customer_phone"]
                .as_str()
                .or(trigger["customer_user_id"].as_str())
                .map(str::to_owned),
        };
        let (Some(sender), Some(customer)) = (
            sender,
            phone.and_then(|p| CustomerAddress::parse_known(&p).ok()),
        ) else {
            return Err(StepError::permanent(
                "wait_for_reply needs a sender and a contact's phone: give senderId and phone, or use a WhatsApp trigger",
            ));
        };
        Ok(Outcome::Park(Park {
            until: Deadline::After(self.timeout_seconds),
            reason: WakeReason::ReplyTimeout,
            waiting_for: Some(runs::reply_key(sender, &customer)),
        }))
    }

    async fn simulate(&self, _: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Output(
            json!({"dry_run": true, "skipped": true, "timed_out": false, "message": null}),
        ))
    }
}
