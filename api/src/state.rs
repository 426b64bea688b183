//! What every handler shares: the [`AppState`] (services, schema, stop signal, key watch,
//! authentication budgets). It imports no handler, so handlers can depend on it while `app`
//! assembles them into the router.

use waflow_jobs::Services;

use crate::{
    auth::{AuthGate, Authenticator},
    graphql::{self, ApiSchema},
    key_watch::KeyWatch,
};

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub schema: ApiSchema,
    /// Fires once when the process is asked to stop; open WebSockets close on it.
    pub shutdown: Shutdown,
    /// The API keys of open WebSockets, which close when their key is revoked.
    pub keys: KeyWatch,
    /// Failed authentications per client address.
    pub auth: AuthGate,
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

impl Authenticator for AppState {
    fn auth_gate(&self) -> &AuthGate {
        &self.auth
    }

    fn services(&self) -> &Services {
        &self.services
    }
}
