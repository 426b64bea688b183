//! GraphQL over HTTP, as the GraphQL-over-HTTP draft specification
//! (<https://graphql.github.io/graphql-over-http/draft/>) has it:
//!
//! - The response's media type follows `Accept`: `application/graphql-response+json` when the
//!   client ranks it highest, `application/json` for `application/json`, `*/*`,
//!   `application/*` or no `Accept` at all (the legacy default). An `Accept` naming neither gets
//!   406 Not Acceptable (the spec's RECOMMENDED choice).
//! - Under `application/graphql-response+json` a request error (the document does not parse or
//!   validate, the operation cannot be chosen, a variable cannot be coerced) is 400, and the
//!   body has no `data` entry; an executed request is 200 even with field errors. Under
//!   `application/json` every GraphQL response is 200 (the legacy behaviour the spec keeps).
//! - A request that is not a GraphQL-over-HTTP request at all is 4xx under either type: POST
//!   without a supported `Content-Type` 415, a body that is not a request (bad JSON, no `query`,
//!   `variables` not an object) 400, a mutation over GET 405 with `Allow: POST`.
//! - POST takes `application/json`, and `multipart/form-data` for uploads (the GraphQL
//!   multipart request spec, parsed by async-graphql); GET takes the parameters in the URL.
//!
//! Telling a request error from an execution error: async-graphql answers both with a response
//! whose `data` is null, so the `graphql::request_phases` extension marks, in the request's data, that
//! execution began. It also refuses missing required variables before execution, which
//! async-graphql would otherwise only notice in the resolver that reads them.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_graphql::{
    Variables,
    http::MultipartOptions,
    parser::types::{DocumentOperations, OperationType},
};
use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use serde::Deserialize;
use waflow_jobs::api_keys::Principal;

use crate::{graphql::ApiSchema, rest_error::RestError};

/// The media types a GraphQL response can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`: the legacy type; every GraphQL response is 200.
    Json,
    /// `application/graphql-response+json`: status codes tell request errors apart.
    GraphqlResponse,
}

impl Media {
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::Json => "application/json; charset=utf-8",
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// One media range of an `Accept` header: its lowercased `type/subtype`, its quality, and
/// whether it asks for a charset other than UTF-8.
struct Range {
    essence: String,
    quality: f32,
    utf8: bool,
}

fn ranges(headers: &HeaderMap) -> Vec<Range> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|raw| {
            let mut parts = raw.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            if essence.is_empty() {
                return None;
            }
            let (mut quality, mut utf8) = (1.0, true);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => quality = value.parse().unwrap_or(0.0),
                    "charset" => utf8 = value.eq_ignore_ascii_case("utf-8"),
                    _ => {}
                }
            }
            Some(Range {
                essence,
                quality,
                utf8,
            })
        })
        .collect()
}

/// The media type to answer in: the supported one the client ranks highest (the first listed
/// among equals); `application/json` without an `Accept` header; `None` when the client accepts
/// neither (406).
pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let ranges = ranges(headers);
    if ranges.is_empty() {
        return Some(Media::Json);
    }
    let mut best: Option<(f32, Media)> = None;
    for range in &ranges {
        let media = match range.essence.as_str() {
            "application/graphql-response+json" => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        if !range.utf8 || range.quality <= 0.0 {
            continue;
        }
        if best.is_none_or(|(quality, _)| range.quality > quality) {
            best = Some((range.quality, media));
        }
    }
    best.map(|(_, media)| media)
}

/// A GET that a browser sends to open the console: no `query` parameter, and an `Accept` that
/// does not ask for a GraphQL media type by name (`text/html`, `*/*`, or none).
pub fn wants_console(request: &Request) -> bool {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return false;
    }
    let has_query = request
        .uri()
        .query()
        .is_some_and(|query| form_urlencoded_keys(query).any(|key| key == "query"));
    if has_query {
        return false;
    }
    let ranges = ranges(request.headers());
    ranges.iter().any(|range| range.essence == "text/html")
        || !ranges.iter().any(|range| {
            matches!(
                range.essence.as_str(),
                "application/json" | "application/graphql-response+json"
            )
        })
}

fn form_urlencoded_keys(query: &str) -> impl Iterator<Item = &str> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
}

/// A refusal (bad key, malformed request…) in the negotiated media type: the body is a GraphQL
/// response of errors without `data`, so it is one under either type.
pub fn refuse(refusal: RestError, media: Option<Media>) -> Response {
    let mut response = refusal.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        media.unwrap_or(Media::Json).content_type(),
    );
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> RestError {
    RestError::new(status, code, message)
}

fn bad_request(message: impl Into<String>) -> RestError {
    RestError::bad_request(message)
}

/// Runs an authenticated GraphQL-over-HTTP request (GET or POST) and answers it in `media`.
pub async fn execute(
    schema: &ApiSchema,
    request: Request,
    principal: Principal,
    media: Option<Media>,
) -> Response {
    let Some(media) = media else {
        return refuse(
            refusal(
                StatusCode::NOT_ACCEPTABLE,
                "NOT_ACCEPTABLE",
                "GraphQL responses are application/graphql-response+json or application/json: \
                 accept one of them",
            ),
            None,
        );
    };
    let graphql_request = match read(request).await {
        Ok(request) => request,
        Err(refusal) => {
            let allow_post = refusal.status == StatusCode::METHOD_NOT_ALLOWED;
            let mut response = refuse(refusal, Some(media));
            if allow_post {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            return response;
        }
    };
    let executed = crate::graphql::request_phases::Executed::default();
    let response = schema
        .execute(graphql_request.data(principal).data(executed.clone()))
        .await;
    crate::metrics::record_graphql(&response);
    respond(response, executed.began(), media)
}

fn respond(response: async_graphql::Response, executed: bool, media: Media) -> Response {
    let request_error = !executed && !response.errors.is_empty();
    let status = if request_error && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let cache_control = response
        .is_ok()
        .then(|| response.cache_control.value())
        .flatten();
    let headers = response.http_headers.clone();
    let body = if request_error {
        // Nothing ran: the response has no `data` entry at all (not even null).
        let mut value = serde_json::to_value(&response).expect("a response serializes");
        if let Some(object) = value.as_object_mut() {
            object.remove("data");
        }
        serde_json::to_vec(&value)
    } else {
        serde_json::to_vec(&response)
    }
    .expect("a response serializes");
    let mut http = (status, Body::from(body)).into_response();
    let out = http.headers_mut();
    out.extend(headers);
    out.insert(header::CONTENT_TYPE, media.content_type());
    out.insert(header::VARY, HeaderValue::from_static("accept"));
    if let Some(value) = cache_control.and_then(|c| HeaderValue::from_str(&c).ok()) {
        out.insert(header::CACHE_CONTROL, value);
    }
    http
}

/// The parameters of a GraphQL-over-HTTP request in a JSON body; `null` means absent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The same in a GET's URL: `variables` and `extensions` are JSON strings there.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UrlParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

fn json_object(
    name: &str,
    text: Option<&str>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, RestError> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(serde_json::Value::Null) => Ok(None),
        _ => Err(bad_request(format!("`{name}` must be a JSON object"))),
    }
}

fn graphql_request(params: JsonParams) -> Result<async_graphql::Request, RestError> {
    let query = params
        .query
        .ok_or_else(|| bad_request("the request has no `query`: the GraphQL document to run"))?;
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name.filter(|name| !name.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables {
        request = request.variables(Variables::from_json(serde_json::Value::Object(variables)));
    }
    if let Some(extensions) = params.extensions {
        request.extensions = serde_json::from_value(serde_json::Value::Object(extensions))
            .map_err(|error| bad_request(format!("invalid `extensions`: {error}")))?;
    }
    Ok(request)
}

/// The GraphQL request of a GET's URL or a POST's body, or why there is none.
async fn read(request: Request) -> Result<async_graphql::Request, RestError> {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        let axum::extract::Query(params) =
            axum::extract::Query::<UrlParams>::try_from_uri(request.uri()).map_err(|error| {
                bad_request(format!("the URL's parameters are malformed: {error}"))
            })?;
        let params = JsonParams {
            variables: json_object("variables", params.variables.as_deref())?,
            extensions: json_object("extensions", params.extensions.as_deref())?,
            query: params.query,
            operation_name: params.operation_name,
        };
        let request = graphql_request(params)?;
        if is_mutation(&request.query, request.operation_name.as_deref()) {
            return Err(refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "mutations are sent with POST, never GET",
            ));
        }
        return Ok(request);
    }

    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let unsupported = || {
        refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the request as application/json (or multipart/form-data for uploads)",
        )
    };
    let Some(content_type) = content_type else {
        return Err(unsupported());
    };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!(
                "the request is larger than {} bytes",
                crate::limits::MAX_BODY_BYTES
            ),
        )
    };
    match essence.as_str() {
        "application/json" if charset_ok => {
            let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .map_err(|error| {
                    if over_limit(&error) {
                        too_large()
                    } else {
                        bad_request(format!("the body could not be read: {error}"))
                    }
                })?;
            if bytes.trim_ascii_start().starts_with(b"[") {
                return Err(bad_request(
                    "batched requests (a JSON list) are not supported: send one request per POST",
                ));
            }
            let params: JsonParams = serde_json::from_slice(&bytes).map_err(|error| {
                bad_request(format!(
                    "the body is not a GraphQL request (a JSON object with a `query` string): \
                     {error}"
                ))
            })?;
            graphql_request(params)
        }
        "multipart/form-data" => {
            let over = Arc::new(AtomicBool::new(false));
            let flag = over.clone();
            let body = request
                .into_body()
                .into_data_stream()
                .map_err(move |error| {
                    if over_limit(&error) {
                        flag.store(true, Ordering::Relaxed);
                    }
                    std::io::Error::other(error)
                })
                .into_async_read();
            async_graphql::http::receive_body(
                Some(content_type.as_str()),
                body,
                MultipartOptions::default(),
            )
            .await
            .map_err(|error| match error {
                async_graphql::ParseRequestError::PayloadTooLarge => too_large(),
                _ if over.load(Ordering::Relaxed) => too_large(),
                error => bad_request(format!("the multipart request is malformed: {error}")),
            })
        }
        _ => Err(unsupported()),
    }
}

/// Whether the body was cut off by the server's size limit.
fn over_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// Whether the operation the request selects is a mutation. A document that does not parse,
/// or names no operation it has, is left to async-graphql's errors.
fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        _ => None,
    };
    operation.is_some_and(|operation| operation.node.ty == OperationType::Mutation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<Media> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn the_media_type_follows_accept() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Media::Json));
        assert_eq!(accept("application/json"), Some(Media::Json));
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept(
                "application/graphql-response+json; charset=utf-8, application/json; charset=utf-8"
            ),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(Media::Json)
        );
        assert_eq!(
            accept("text/html, application/graphql-response+json;q=0.9, */*;q=0.8"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(accept("text/plain"), None);
        assert_eq!(accept("application/json; charset=iso-8859-1"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }

    #[test]
    fn only_mutations_are_found_to_be_mutations() {
        assert!(is_mutation("mutation { a }", None));
        assert!(!is_mutation("{ a }", None));
        assert!(is_mutation("query Q { a } mutation M { b }", Some("M")));
        assert!(!is_mutation("query Q { a } mutation M { b }", Some("Q")));
        assert!(!is_mutation("query Q { a } mutation M { b }", None));
        assert!(!is_mutation("mutation {", None));
    }
}
