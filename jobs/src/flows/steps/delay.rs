//! `delay`: the run waits a number of seconds, or until a time, then goes on.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Deadline, Outcome, Park, Simulation, StepContext, StepError, StepType};
use crate::flows::{
    state::WakeReason,
    validate::{Checks, MAX_WAIT_SECONDS},
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    pub seconds: Option<u64>,
    /// A template rendering an RFC 3339 time.
    pub until: Option<String>,
}

impl StepType for Delay {
    const TYPE: &'static str = "delay";
    const SIDE_EFFECTS: bool = false;
    const WAITS: bool = true;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        match (&self.seconds, &self.until) {
            (Some(_), Some(_)) | (None, None) => checks
                .problems
                .add(path, "a delay takes either seconds or until"),
            (Some(s), None) => checks.problems.check(
                (1..=MAX_WAIT_SECONDS).contains(s),
                format!("{path}.seconds"),
                format!("must be 1 to {MAX_WAIT_SECONDS}"),
            ),
            (None, Some(_)) => {}
        }
        checks.templates(path, &[("until", self.until.as_ref())]);
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let until = match (self.seconds, &self.until) {
            (Some(s), _) => Deadline::After(s),
            (None, Some(until)) => {
                let t = cx.render("until", until).await?;
                chrono::DateTime::parse_from_rfc3339(t.trim())
                    .map(|t| Deadline::At(t.with_timezone(&Utc)))
                    .map_err(|_| {
                        StepError::permanent(format!("until: {t:?} is not an RFC 3339 time"))
                    })?
            }
            (None, None) => Deadline::After(0),
        };
        Ok(Outcome::Park(Park {
            until,
            reason: WakeReason::Delay,
            waiting_for: None,
        }))
    }

    async fn simulate(&self, _: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Output(json!({"dry_run": true, "skipped": true})))
    }
}
