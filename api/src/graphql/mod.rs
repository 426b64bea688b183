//! The GraphQL schema: `QueryRoot` and `MutationRoot` merged from one object per domain area, with
//! the shared plumbing every resolver uses (who is asking, error codes, ids, connections).

pub(crate) mod assistants;
mod campaign_events;
mod campaigns;
mod contacts;
mod conversations;
mod dry_runs;
mod durable_answers;
mod flows;
mod guards;
mod messages;
pub mod request_phases;
mod rich_messages;
mod senders;
mod subscriptions;
mod templates;
mod webhooks;
mod workspace;

use async_graphql::{
    Context, ErrorExtensions, ID, MergedObject, MergedSubscription, Schema, SchemaBuilder,
    connection::{Connection, Edge},
};
use uuid::Uuid;
use waflow_jobs::{Page, PageRequest, Services, api_keys::Principal};

pub type ApiSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    workspace::WorkspaceQuery,
    senders::SenderQuery,
    templates::TemplateQuery,
    contacts::ContactQuery,
    assistants::AssistantQuery,
    messages::MessageQuery,
    conversations::ConversationQuery,
    webhooks::WebhookQuery,
    flows::FlowQuery,
    dry_runs::FlowTestQuery,
    campaigns::CampaignQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    workspace::WorkspaceMutation,
    senders::SenderMutation,
    templates::TemplateMutation,
    contacts::ContactMutation,
    assistants::AssistantMutation,
    messages::MessageMutation,
    rich_messages::RichMessageMutation,
    conversations::ConversationMutation,
    webhooks::WebhookMutation,
    flows::FlowMutation,
    campaigns::CampaignMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    subscriptions::EventSubscription,
    campaign_events::CampaignSubscription,
);

/// Deeper or costlier documents are refused before they run. A connection nests at most a few
/// levels in this schema; the deepest document a client legitimately sends is the standard
/// introspection query (graphql-js's `getIntrospectionQuery`, which GraphiQL and code
/// generators send: `ofType` nine deep, 15 levels), so anything deeper is abuse.
const MAX_DEPTH: usize = 16;
const MAX_COMPLEXITY: usize = 1000;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .extension(guards::ExpansionLimit)
    .extension(guards::ErrorCodes)
    .extension(request_phases::RequestPhases)
    .extension(crate::metrics::ActiveSubscriptions)
    .extension(durable_answers::DurableAnswers)
}

pub fn build_schema(services: Services) -> ApiSchema {
    builder().data(services).finish()
}

/// The SDL that `waflow schema` prints and `schema.graphql` must equal.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The services and the calling workspace. The HTTP layer authenticates before executing, so a
/// missing principal means a resolver was reached some other way: refuse it all the same.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Services, Uuid)> {
    let services = ctx.data_unchecked::<Services>();
    let principal = ctx
        .data_opt::<Principal>()
        .ok_or_else(|| to_gql(waflow_jobs::Error::Unauthenticated))?;
    Ok((services, principal.workspace_id))
}

/// Turns a service error into a GraphQL error with `extensions.code` (and the offending fields
/// for validation errors). The one place where codes reach the wire.
pub(crate) fn to_gql(error: waflow_jobs::Error) -> async_graphql::Error {
    use waflow_jobs::Error;
    if matches!(error, Error::Database(_) | Error::Internal(_)) {
        tracing::error!(?error, "request failed");
    }
    async_graphql::Error::new(error.public_message()).extend_with(|_, ext| {
        ext.set("code", error.code());
        let cause = match &error {
            Error::SendFailed { message_id, cause } => {
                ext.set("messageId", message_id.to_string());
                cause.as_ref()
            }
            other => other,
        };
        match cause {
            Error::Validation(fields) => {
                let list: Vec<async_graphql::Value> = fields
                    .iter()
                    .map(|f| {
                        let mut map = async_graphql::indexmap::IndexMap::new();
                        map.insert(async_graphql::Name::new("field"), f.field.clone().into());
                        map.insert(
                            async_graphql::Name::new("message"),
                            f.message.clone().into(),
                        );
                        async_graphql::Value::Object(map)
                    })
                    .collect();
                ext.set("fields", list);
            }
            Error::InvalidPhoneNumber { field, .. } => ext.set("field", field.as_str()),
            Error::RateLimited {
                retry_after_seconds,
            }
            | Error::Unavailable {
                retry_after_seconds,
                ..
            } => ext.set("retryAfterSeconds", *retry_after_seconds),
            Error::OutsideWindow(closed) => {
                if let Some(at) = closed.closed_at {
                    ext.set("windowClosedAt", at.to_rfc3339());
                }
            }
            Error::Provider {
                code: Some(code), ..
            } => ext.set("providerCode", code.as_str()),
            _ => {}
        }
    })
}

pub(crate) trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, waflow_jobs::Error> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_gql)
    }
}

/// Parses an id argument. An id that is not even well-formed names nothing, so it answers like a
/// missing one (`error`), never as a server fault.
pub(crate) fn parse_id(
    id: &ID,
    error: impl FnOnce() -> waflow_jobs::Error,
) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| to_gql(error()))
}

pub(crate) fn page_request(
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<PageRequest> {
    PageRequest::parse(first, after.as_deref()).gql()
}

/// A Relay connection over one page of rows whose cursors are their ids.
pub(crate) fn connection<M, N>(
    page: Page<M>,
    id: impl Fn(&M) -> Uuid,
    node: impl Fn(M) -> N,
) -> Connection<String, N>
where
    N: async_graphql::OutputType,
{
    let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|m| Edge::new(id(&m).to_string(), node(m))),
    );
    connection
}
