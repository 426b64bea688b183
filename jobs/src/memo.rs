//! Rows that never change once written, kept in memory once read: a published flow version is
//! only ever inserted (a new publication is a new version), so the engine and the webhooks need
//! not read and parse it again for every run. Because the rows never change, nothing has to
//! invalidate an entry, in this process or another; an id that is deleted is simply never
//! asked for again.
//!
//! The memo is bounded: past `CAPACITY` entries it starts over, which costs one read per
//! version still in use.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

use crate::error::Result;

/// Entries kept before the memo starts over.
const CAPACITY: usize = 4096;

type Entries = HashMap<(TypeId, Uuid), Arc<dyn Any + Send + Sync>>;

/// Immutable values by id and type. Cheap to clone; clones share the entries.
#[derive(Clone, Default)]
pub struct Memo {
    entries: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map(|e| e.len()).unwrap_or_default();
        write!(f, "Memo({len} entries)")
    }
}

impl Memo {
    /// The `T` kept under `id`, or the one `load` gives (kept, unless it is `None`). Two tasks
    /// asking at once may both load; the values are equal, as the row is.
    pub async fn get_or_load<T, F, Fut>(&self, id: Uuid, load: F) -> Result<Option<Arc<T>>>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let key = (TypeId::of::<T>(), id);
        if let Some(kept) = self.lock().get(&key) {
            return Ok(kept.clone().downcast::<T>().ok());
        }
        let Some(value) = load().await? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, value.clone());
        Ok(Some(value))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while the lock was held left a map that is still whole: go on with it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_value_is_loaded_once_per_id_and_type() {
        let memo = Memo::default();
        let loads = AtomicUsize::new(0);
        let id = Uuid::now_v7();
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(7_u32))
        };
        assert_eq!(*memo.get_or_load(id, load).await.unwrap().unwrap(), 7);
        assert_eq!(*memo.get_or_load(id, load).await.unwrap().unwrap(), 7);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Another type under the same id is another entry.
        let text = memo
            .get_or_load(id, || async { Ok(Some(String::from("x"))) })
            .await
            .unwrap();
        assert_eq!(text.as_deref().map(String::as_str), Some("x"));
    }

    #[tokio::test]
    async fn nothing_found_is_not_kept() {
        let memo = Memo::default();
        let id = Uuid::now_v7();
        let none = memo
            .get_or_load::<u32, _, _>(id, || async { Ok(None) })
            .await
            .unwrap();
        assert!(none.is_none());
        let found = memo.get_or_load(id, || async { Ok(Some(1_u32)) }).await;
        assert_eq!(found.unwrap().as_deref(), Some(&1));
    }

    #[tokio::test]
    async fn past_its_capacity_the_memo_starts_over() {
        let memo = Memo::default();
        for _ in 0..CAPACITY + 1 {
            memo.get_or_load(Uuid::now_v7(), || async { Ok(Some(0_u8)) })
                .await
                .unwrap();
        }
        assert_eq!(memo.lock().len(), 1);
    }
}
