//! The HTTP server: routes, limits, CORS, and serving until a shutdown signal.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{cors::CorsLayer, limit::RequestBodyLimitLayer};
use waflow_jobs::Services;

use crate::graphql::{self, ApiSchema};

/// Larger bodies are refused with 413 before they are read: GraphQL documents are small, and
/// bulk imports have their own streamed endpoint.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub schema: ApiSchema,
    /// Fires once when the process is asked to stop; open WebSockets close on it.
    pub shutdown: Shutdown,
    /// The API keys of open WebSockets, which close when their key is revoked.
    pub keys: crate::key_watch::KeyWatch,
    /// Failed authentications per client address.
    pub auth: crate::auth::AuthGate,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let schema = graphql::build_schema(services.clone());
        Self {
            services,
            schema,
            shutdown: Shutdown::default(),
            keys: Default::default(),
            auth: Default::default(),
        }
    }
}

/// One stop signal shared by everything that must wind down: the HTTP server (no new
/// requests), the workers (no new jobs) and each open WebSocket (a close frame, so clients
/// reconnect elsewhere instead of seeing a dropped connection).
#[derive(Clone, Default)]
pub struct Shutdown {
    signal: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Read-held by each open WebSocket. The HTTP server's graceful shutdown does not wait for
    /// upgraded connections, so the process waits here for their close frames before it exits.
    open: std::sync::Arc<tokio::sync::RwLock<()>>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.signal.send_replace(true);
    }

    /// Completes once `trigger` was called (at once if it already was).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.signal.subscribe();
        async move {
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }

    /// Held by an open WebSocket until it has said goodbye.
    pub async fn hold(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.open.clone().read_owned().await
    }

    /// Waits, at most `limit`, until no WebSocket holds the process open.
    pub async fn drained(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.open.write()).await;
    }
}

pub fn router(state: AppState, cors_origins: &[header::HeaderValue]) -> Router {
    crate::metrics::handle();
    let mut router = Router::new()
        .route("/graphql", get(graphql_endpoint).post(graphql_endpoint))
        .route("/graphql/assets/{file}", get(crate::console::asset))
        .route("/graphql/ws", get(crate::ws::graphql_ws))
        .route("/api/conversations/export", get(crate::export::export))
        .route("/api/messages/{id}/media", get(crate::media::media))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .merge(crate::webhooks::routes())
        .merge(crate::flow_hooks::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // After the layer: imports and media uploads have limits of their own.
        .merge(crate::import::routes())
        .merge(crate::media::routes())
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
    match crate::auth::authenticate(&state, peer.ip(), bearer(request.headers())).await {
        Ok(principal) => {
            crate::graphql_http::execute(&state.schema, request, principal, media).await
        }
        Err(refusal) => crate::graphql_http::refuse(refusal, media),
    }
}

/// The key of an `Authorization: Bearer KEY` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    strip_bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `KEY` from `Bearer KEY` (either case of the scheme), wherever the value came from.
pub fn strip_bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
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
