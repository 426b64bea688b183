//! Waiting for what background jobs do: their effects land a moment after the request that
//! caused them, so tests poll for them with a deadline instead of sleeping a guessed time.

use std::time::Duration;

/// Waits (up to 15 s) until `check` yields a value; panics with `what` otherwise. For effects of
/// background jobs, which land a moment after the request that caused them.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
