//! What the production profile shares between processes: one rate-limit budget per sender in
//! Redis, and periodic work claimed once per tick in the database.

use uuid::Uuid;
use waflow_jobs::{RedisSettings, SecretBox, Services, worker::claim_tick};
use waflow_tests::{Backend, RedisNamespace, test_database};

/// Keys of this test only, removed when it ends.
fn redis_namespace() -> RedisNamespace {
    RedisNamespace {
        url: std::env::var("WAFLOW_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        prefix: format!("waflow-test-{}:", Uuid::now_v7().simple()),
    }
}

/// Two processes (two `Services` on one Redis prefix) draw from one budget per sender.
#[tokio::test]
async fn the_rate_limit_is_shared_across_processes() {
    let Some((db, _guard)) = test_database(Backend::Postgres).await else {
        return;
    };
    let namespace = redis_namespace();
    let settings = RedisSettings {
        url: namespace.url.clone(),
        prefix: namespace.prefix.clone(),
    };
    let first = Services::production(db.clone(), SecretBox::random(), &settings)
        .await
        .expect("Redis");
    let second = Services::production(db, SecretBox::random(), &settings)
        .await
        .expect("Redis");
    let sender = Uuid::now_v7();
    first
        .rate_limiter
        .acquire(sender, 2)
        .await
        .expect("first of two per second");
    second
        .rate_limiter
        .acquire(sender, 2)
        .await
        .expect("second of two per second");
    let refused = first
        .rate_limiter
        .acquire(sender, 2)
        .await
        .expect_err("the third in the same second");
    assert_eq!(refused.code(), "RATE_LIMITED");
    second
        .rate_limiter
        .acquire(Uuid::now_v7(), 2)
        .await
        .expect("another sender has its own budget");
}

/// However many processes try, one claims a tick of a periodic task; the next tick is new.
async fn ticks_are_claimed_once(backend: Backend) {
    let Some((db, _guard)) = test_database(backend).await else {
        return;
    };
    let services = match backend {
        Backend::Sqlite => Services::embedded(db, SecretBox::random()).await.unwrap(),
        Backend::Postgres => {
            let namespace = redis_namespace();
            let settings = RedisSettings {
                url: namespace.url.clone(),
                prefix: namespace.prefix.clone(),
            };
            Services::production(db, SecretBox::random(), &settings)
                .await
                .unwrap()
        }
    };
    let claims =
        futures::future::join_all((0..8).map(|_| claim_tick(&services, "refresh-senders", 42)))
            .await;
    assert_eq!(claims.iter().filter(|c| *c.as_ref().unwrap()).count(), 1);
    assert!(claim_tick(&services, "refresh-senders", 43).await.unwrap());
    assert!(claim_tick(&services, "another-task", 42).await.unwrap());
}

#[tokio::test]
async fn ticks_are_claimed_once_on_sqlite() {
    ticks_are_claimed_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn ticks_are_claimed_once_on_postgres() {
    ticks_are_claimed_once(Backend::Postgres).await;
}
