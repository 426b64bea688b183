//! `stop`: the run ends here, successfully.

use serde::{Deserialize, Serialize};

use super::{Outcome, Simulation, StepContext, StepError, StepType};
use crate::flows::validate::Checks;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {}

impl StepType for Stop {
    const TYPE: &'static str = "stop";
    const SIDE_EFFECTS: bool = false;

    fn validate(&self, _: &str, _: &mut Checks<'_>) {}

    async fn run(&self, _: &StepContext<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Stop)
    }

    async fn simulate(&self, _: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Stop)
    }
}
