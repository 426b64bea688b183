//! The HTTP server: routes, limits, CORS, and serving until a shutdown signal.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{cors::CorsLayer, limit::RequestBodyLimitLayer};

use crate::{auth::bearer, limits::MAX_BODY_BYTES, state::AppState};

/// GraphQL over HTTP (GET and POST).
const GRAPHQL_PATH: &str = "/graphql";

pub fn router(state: AppState, cors_origins: &[header::HeaderValue]) -> Router {
    crate::metrics::handle();
    let mut router = Router::new()
        .route(GRAPHQL_PATH, get(graphql_endpoint).post(graphql_endpoint))
        .route("/graphql/assets/{file}", get(crate::console::asset))
        .route("/graphql/ws", get(crate::ws::graphql_ws))
        .route("/api/conversations/export", get(crate::export::export))
        .route("/api/messages/{id}/media", get(crate::media::media))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move {
                crate::metrics::render(&state.services).await
            }),
        )
        .merge(crate::webhooks::routes())
        .merge(crate::flow_hooks::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // After the layer: imports and media uploads have limits of their own.
        .merge(crate::import::routes())
        .merge(crate::media::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            durable_answer,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state);
    if !cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(cors_origins.to_vec())
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    router
}

/// The answer to a request that may have written (any method but GET, HEAD and OPTIONS) waits
/// until what it committed is on disk (`waflow_jobs::db::Durability`): a run answered 202, a
/// message answered 200 to Meta, an id handed out survive a power cut. Concurrent answers share
/// one fsync, a request that committed nothing (a GraphQL query over POST) makes none; on
/// PostgreSQL nothing waits. A failed flush answers 500 `INTERNAL`. GraphQL operations wait in
/// `graphql::durable_answers` instead, whichever transport brought them (a WebSocket's never
/// pass here): waiting here too would add a flush of other requests' commits to every answer.
async fn durable_answer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && request.uri().path() != GRAPHQL_PATH;
    let response = next.run(request).await;
    if writes && let Err(error) = state.services.durability.sync().await {
        return crate::rest_error::RestError::from(waflow_jobs::Error::Database(error))
            .into_response();
    }
    response
}

/// 200 when this process can serve (database and Redis answer, schema current), else 503 with
/// what is wrong: a load balancer keeps traffic away until it is ready.
async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.services.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Every GraphQL request must carry a valid key; the whole request is refused otherwise, so no
/// resolver ever runs unauthenticated. GET and POST alike, as GraphQL over HTTP has them
/// (`graphql_http`); a browser's GET without a `query` gets the console, which needs no key.
async fn graphql_endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    if crate::graphql_http::wants_console(&request) {
        return crate::console::page().await.into_response();
    }
    let media = crate::graphql_http::negotiate(request.headers());
    let authenticated = state
        .auth
        .authenticate(&state.services, peer.ip(), bearer(request.headers()))
        .await;
    match authenticated {
        Ok(principal) => {
            crate::graphql_http::execute(&state.schema, request, principal, media).await
        }
        Err(refusal) => crate::graphql_http::refuse(refusal, media),
    }
}

/// Serves `router` on an already bound listener until Ctrl-C or SIGTERM.
/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
