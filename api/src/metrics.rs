//! Prometheus metrics at `GET /metrics`: HTTP requests, GraphQL requests and errors, open
//! subscriptions and the job queues' backlog here; messages, jobs and webhook deliveries are
//! counted where they happen (in `waflow-jobs`, through the `metrics` facade). One recorder per
//! process, installed when the first router is built.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use async_graphql::{
    Response as GqlResponse,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextSubscribe},
    futures_util::{StreamExt, stream::BoxStream},
};
use axum::{
    extract::{MatchedPath, Request},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use waflow_jobs::Services;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from a cache hit to a slow provider.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed in this process")
    })
}

/// `GET /metrics` in Prometheus' text format, with the queues' backlog read from `services`.
pub async fn render(services: &Services) -> Response {
    record_queue_backlog(services).await;
    let handle = handle();
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// The queues' backlog, read as the scrape asks: the queues are shared, so this is the same in
/// every process. A slow or unreachable queue leaves the last figures and says so in the log.
async fn record_queue_backlog(services: &Services) {
    match tokio::time::timeout(Duration::from_secs(2), services.jobs.stats()).await {
        Ok(Ok(queues)) => {
            for q in queues {
                let depth = |state: &'static str, n: u64| {
                    metrics::gauge!("waflow_queue_depth", "queue" => q.queue, "state" => state)
                        .set(n as f64);
                };
                depth("ready", q.ready);
                depth("scheduled", q.scheduled);
                metrics::gauge!("waflow_queue_oldest_job_age_seconds", "queue" => q.queue)
                    .set(q.oldest_ready_age.as_secs_f64());
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "queue figures left out of /metrics"),
        Err(_) => tracing::warn!("the job queue took over 2 s to answer; figures left out"),
    }
}

/// The header a request id comes in (from a proxy) and goes back out in.
pub const REQUEST_ID: &str = "x-request-id";

/// Counts every request by route template (never the raw path: ids would explode the series)
/// and status, and times it. Everything logged while serving it carries its `request_id` (the
/// caller's `X-Request-Id`, or a new one), which the response returns.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().to_string();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!("request", %request_id, %method, %route);
    let started = Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request served"
        )
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    metrics::counter!("waflow_http_requests_total", "method" => method, "route" => route.clone(),
        "status" => response.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!("waflow_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Counts a GraphQL response over HTTP and its errors by code.
pub fn record_graphql(response: &GqlResponse) {
    metrics::counter!("waflow_graphql_requests_total").increment(1);
    for error in &response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|c| match c {
                async_graphql::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "UNKNOWN".into());
        metrics::counter!("waflow_graphql_errors_total", "code" => code).increment(1);
    }
}

/// Keeps `waflow_graphql_subscriptions_active` at the number of open subscription streams.
pub struct ActiveSubscriptions;

impl ExtensionFactory for ActiveSubscriptions {
    fn create(&self) -> std::sync::Arc<dyn Extension> {
        std::sync::Arc::new(ActiveSubscriptions)
    }
}

/// One open subscription; dropping it (the stream ends or the client leaves) counts it out.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("waflow_graphql_subscriptions_active").increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("waflow_graphql_subscriptions_active").decrement(1.0);
    }
}

impl Extension for ActiveSubscriptions {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, GqlResponse>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, GqlResponse> {
        let open = Open::new();
        next.run(ctx, stream)
            .map(move |response| {
                let _still_open = &open;
                response
            })
            .boxed()
    }
}
