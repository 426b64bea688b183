//! Dry runs of flows: the trace of what a run would do, with nothing sent or stored.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;
use waflow_entities::enums::{RunStatus, StepStatus};
use waflow_jobs::{
    Error,
    flows::dry_run::{DryRunOptions, Trace},
};

use super::{GqlResult, parse_id, scope};

/// What a dry run did: SUCCEEDED or FAILED, the first error with its step's path, the steps.
#[derive(SimpleObject)]
pub struct FlowTest {
    status: RunStatus,
    error: Option<String>,
    steps: Vec<FlowTestStep>,
}

/// A step as a run would record it, with where it sits in the definition.
#[derive(SimpleObject)]
pub struct FlowTestStep {
    step_id: String,
    r#type: String,
    /// Like `steps[1].branches[0].steps[0]`.
    path: String,
    iteration: String,
    status: StepStatus,
    /// The step's parameters, rendered: the message that would be sent.
    input: Option<Json<Value>>,
    output: Option<Json<Value>>,
    error: Option<String>,
}

impl From<Trace> for FlowTest {
    fn from(trace: Trace) -> Self {
        Self {
            status: if trace.succeeded {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            error: trace.error,
            steps: trace
                .steps
                .into_iter()
                .map(|s| FlowTestStep {
                    step_id: s.step_id,
                    r#type: s.step_type.to_owned(),
                    path: s.path,
                    iteration: s.iteration,
                    status: if s.succeeded {
                        StepStatus::Succeeded
                    } else {
                        StepStatus::Failed
                    },
                    input: s.input.map(Json),
                    output: s.output.map(Json),
                    error: s.error,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct FlowTestQuery;

#[Object]
impl FlowTestQuery {
    /// Walks the flow's draft with `payload` as its trigger: sends, AI replies and HTTP requests
    /// are rendered, not performed (`allowHttp` performs GET requests), delays and waits are
    /// skipped. A skipped step's output is a placeholder of its real shape (`dry_run: true`, a
    /// send's `message_id`, a request's `status` and empty `body`), or what `stepOutputs`
    /// gives for its id (`{"fetch": {"status": 200, "body": {…}}}`). Nothing is stored; no
    /// customer is messaged.
    async fn test_flow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        payload: Json<Value>,
        #[graphql(default)] allow_http: bool,
        step_outputs: Option<Json<Value>>,
    ) -> async_graphql::Result<FlowTest> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("flow"))?;
        let options = options(allow_http, step_outputs)?;
        services
            .flows()
            .test_flow(workspace_id, id, payload.0, options)
            .await
            .gql()
            .map(FlowTest::from)
    }

    /// `testFlow` for a definition not saved yet (validated first).
    async fn test_flow_definition(
        &self,
        ctx: &Context<'_>,
        definition: Json<Value>,
        payload: Json<Value>,
        #[graphql(default)] allow_http: bool,
        step_outputs: Option<Json<Value>>,
    ) -> async_graphql::Result<FlowTest> {
        let (services, workspace_id) = scope(ctx)?;
        let options = options(allow_http, step_outputs)?;
        services
            .flows()
            .test_definition(workspace_id, &definition.0, payload.0, options)
            .await
            .gql()
            .map(FlowTest::from)
    }
}

/// The dry run's options; `stepOutputs` is an object of step id to output.
fn options(
    allow_http: bool,
    step_outputs: Option<Json<Value>>,
) -> async_graphql::Result<DryRunOptions> {
    let step_outputs = match step_outputs.map(|j| j.0) {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(super::to_gql(Error::field(
                "stepOutputs",
                "must be an object of step id to output, like {\"fetch\": {\"body\": {}}}",
            )));
        }
    };
    Ok(DryRunOptions {
        allow_http,
        step_outputs,
    })
}
