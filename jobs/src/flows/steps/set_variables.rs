//! `set_variables`: sets run variables (`vars.*` in templates), each value rendered.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Outcome, Simulation, StepContext, StepError, StepType};
use crate::flows::validate::Checks;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVariables {
    pub values: Map<String, Value>,
}

impl StepType for SetVariables {
    const TYPE: &'static str = "set_variables";
    const SIDE_EFFECTS: bool = false;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        for (name, value) in &self.values {
            checks
                .sources
                .value(&format!("{path}.values.{name}"), value);
        }
    }

    /// The values were rendered with the step's input.
    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        match cx.rendered {
            Ok(input) => match &input["values"] {
                Value::Object(values) => Ok(Outcome::Variables(values.clone())),
                _ => unreachable!("an object renders to an object"),
            },
            Err(e) => Err(StepError::template("values", e.clone())),
        }
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(match &cx.input["values"] {
            Value::Object(values) => Outcome::Variables(values.clone()),
            other => Outcome::Output(other.clone()),
        })
    }
}
