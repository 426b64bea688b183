//! Where a GraphQL request is when it fails: async-graphql answers a request error (the
//! document does not parse or validate, a variable cannot be coerced) and an execution error
//! alike with a response whose `data` is null, so GraphQL over HTTP (`crate::graphql_http`)
//! puts [`Executed`] in the request's data and this extension marks when execution begins. It
//! also refuses a request before execution when a required variable has no value, which
//! async-graphql would otherwise only notice in the resolver that reads it (GraphQL spec,
//! CoerceVariableValues).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use async_graphql::{
    ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery},
    parser::types::ExecutableDocument,
};

/// Set once the request's operation starts executing: a response that has errors without
/// this had a request error.
#[derive(Clone, Default)]
pub struct Executed(Arc<AtomicBool>);

impl Executed {
    pub fn began(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Marks when execution begins, for requests that carry [`Executed`] (those of this module),
/// and refuses such a request before execution when a required variable has no value.
pub struct RequestPhases;

impl ExtensionFactory for RequestPhases {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestPhasesExtension::default())
    }
}

#[derive(Default)]
struct RequestPhasesExtension {
    /// The missing variables of each operation, by its name (`None` for an anonymous one).
    missing: Mutex<HashMap<Option<String>, Vec<ServerError>>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestPhasesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if ctx.data_opt::<Executed>().is_some() {
            *self.missing.lock().expect("variables lock") = missing_variables(&document, variables);
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        if let Some(executed) = ctx.data_opt::<Executed>() {
            let missing = self
                .missing
                .lock()
                .expect("variables lock")
                .remove(&operation_name.map(str::to_owned))
                .unwrap_or_default();
            if !missing.is_empty() {
                return async_graphql::Response::from_errors(missing);
            }
            executed.0.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }
}

/// Per operation, the errors of its non-null variables without a default that have no value
/// (or null): CoerceVariableValues' request errors that async-graphql's validation leaves out.
fn missing_variables(
    document: &ExecutableDocument,
    variables: &Variables,
) -> HashMap<Option<String>, Vec<ServerError>> {
    document
        .operations
        .iter()
        .map(|(name, operation)| {
            let errors = operation
                .node
                .variable_definitions
                .iter()
                .filter(|definition| {
                    let definition = &definition.node;
                    !definition.var_type.node.nullable
                        && definition.default_value.is_none()
                        && variables
                            .get(definition.name.node.as_str())
                            .is_none_or(|value| *value == async_graphql::Value::Null)
                })
                .map(|definition| {
                    ServerError::new(
                        format!(
                            "Variable \"${}\" of required type \"{}\" was not provided.",
                            definition.node.name.node, definition.node.var_type.node
                        ),
                        Some(definition.pos),
                    )
                })
                .collect();
            (name.map(|name| name.to_string()), errors)
        })
        .collect()
}
