//! What every GraphQL document passes through, over HTTP and WebSocket alike:
//!
//! - `ExpansionLimit`: a document is measured as it will run, each fragment counted every time
//!   it is spread, before async-graphql checks it. A 1 KB document of fragments that each
//!   spread the previous one twice expands to millions of fields; validating it took 21 s and
//!   3 GB. It is refused in microseconds instead (the count is memoized per fragment).
//! - `ErrorCodes`: errors async-graphql raises itself (a syntax error, an unknown field, a limit)
//!   get `extensions.code` VALIDATION_FAILED, like every error Waflow raises has a code.

use std::collections::HashMap;

use async_graphql::{
    Response, ServerError, ServerResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
    },
    futures_util::stream::{BoxStream, StreamExt},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// Fields a document may expand to, fragments counted each time they are used: beyond any
/// screen's query (the complexity limit, 1,000, is checked after), far below an attack.
pub const MAX_EXPANDED_FIELDS: u64 = 5_000;

pub struct ExpansionLimit;

impl ExtensionFactory for ExpansionLimit {
    fn create(&self) -> std::sync::Arc<dyn Extension> {
        std::sync::Arc::new(ExpansionLimit)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ExpansionLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Measured on a parse of our own, before async-graphql's: its recursion check, part of
        // its parsing, already walks every expansion. A document that does not parse is left
        // to it, for its error.
        if let Ok(document) = async_graphql::parser::parse_query(query)
            && expanded_fields(&document) > MAX_EXPANDED_FIELDS
        {
            let message = format!(
                "the document expands to more than {MAX_EXPANDED_FIELDS} fields (each fragment \
                 counted every time it is spread)"
            );
            return Err(ServerError::new(message, None));
        }
        next.run(ctx, query, variables).await
    }
}

/// The fields the document's operations select, fragments expanded; saturates.
pub fn expanded_fields(document: &ExecutableDocument) -> u64 {
    let mut counter = Counter {
        document,
        sizes: HashMap::new(),
    };
    document
        .operations
        .iter()
        .map(|(_, operation)| counter.set(&operation.node.selection_set.node))
        .fold(0, u64::saturating_add)
}

struct Counter<'d> {
    document: &'d ExecutableDocument,
    /// Each fragment's expanded size once known; `None` while being counted (a cycle, which
    /// validation refuses, counts as nothing here).
    sizes: HashMap<&'d str, Option<u64>>,
}

impl<'d> Counter<'d> {
    fn set(&mut self, set: &'d SelectionSet) -> u64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    1u64.saturating_add(self.set(&field.node.selection_set.node))
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            })
            .fold(0, u64::saturating_add)
    }

    fn fragment(&mut self, name: &'d str) -> u64 {
        match self.sizes.get(name) {
            Some(Some(size)) => return *size,
            Some(None) => return 0,
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return 0;
        };
        self.sizes.insert(name, None);
        let size = self.set(&fragment.node.selection_set.node);
        self.sizes.insert(name, Some(size));
        size
    }
}

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        tag_rejected_documents(&mut response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                tag_rejected_documents(&mut response);
                response
            })
            .boxed()
    }
}

/// Errors without a code reject the request's document or input: VALIDATION_FAILED.
fn tag_rejected_documents(response: &mut Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "VALIDATION_FAILED");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    #[test]
    fn fragments_count_every_time_they_are_spread() {
        let doc = parse(
            "{ a b ...F } fragment F on Q { c d { e } ...G ...G } fragment G on Q { x: f y: f }",
        );
        // a b, F's c d e (3), G twice (2 each).
        assert_eq!(expanded_fields(&doc), 2 + 3 + 4);
    }

    #[test]
    fn the_doubling_fragments_of_the_issue_expand_to_millions() {
        let mut query = String::from("{ ...F24 } fragment F0 on QueryRoot { __typename }");
        for n in 1..=24 {
            query.push_str(&format!(
                " fragment F{n} on QueryRoot {{ ...F{m} ...F{m} }}",
                m = n - 1
            ));
        }
        let started = std::time::Instant::now();
        assert_eq!(expanded_fields(&parse(&query)), 1 << 24);
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        // A cycle ends the count instead of the process.
        let cycle = parse("{ ...A } fragment A on Q { x ...B } fragment B on Q { y ...A }");
        assert_eq!(expanded_fields(&cycle), 2);
    }
}
