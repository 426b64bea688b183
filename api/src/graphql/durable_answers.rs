//! A GraphQL answer leaves only once what its operation committed is on disk
//! (`waflow_jobs::db::Durability`), over HTTP and over WebSocket alike: the `execute` hook runs
//! for every query and mutation whichever transport brought it. HTTP's other routes wait in
//! `app::durable_answer`. On PostgreSQL, and for an operation that committed nothing, nothing
//! waits. A failed flush replaces the answer with an `INTERNAL` error: the client must not take
//! for done what may not survive a power cut.

use std::sync::Arc;

use async_graphql::{
    Pos, Response,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};
use waflow_jobs::Services;

pub struct DurableAnswers;

impl ExtensionFactory for DurableAnswers {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DurableAnswers)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DurableAnswers {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let Some(services) = ctx.data_opt::<Services>() else {
            return response;
        };
        match services.durability.sync().await {
            Ok(()) => response,
            Err(error) => Response::from_errors(vec![
                super::to_gql(waflow_jobs::Error::Database(error))
                    .into_server_error(Pos::default()),
            ]),
        }
    }
}
