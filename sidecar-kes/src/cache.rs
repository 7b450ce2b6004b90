//! The key cache in front of a keystore, with KES's three expiry rules:
//! `any` (evict after this long, used or not), `unused` (evict if not used for this long)
//! and `offline` (while the keystore is unreachable, keep serving cached keys this long).

use crate::crypto::KeyVersion;
use crate::keystore::{Keystore, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Cache expiry settings; `None` disables a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Evict every entry this long after it was fetched.
    pub any: Option<Duration>,
    /// Evict entries not used for this long.
    pub unused: Option<Duration>,
    /// While the keystore is offline, serve entries fetched at most this long ago.
    pub offline: Option<Duration>,
}

impl Default for CacheConfig {
    /// KES's defaults: any 5m, unused 30s, offline off.
    fn default() -> Self {
        CacheConfig {
            any: Some(Duration::from_secs(300)),
            unused: Some(Duration::from_secs(30)),
            offline: None,
        }
    }
}

struct Entry {
    key: Arc<KeyVersion>,
    fetched: Instant,
    /// Milliseconds since `KeyCache::epoch` of the last use.
    used: AtomicU64,
}

/// A keystore with a cache of decoded keys.
pub struct KeyCache {
    store: Arc<dyn Keystore>,
    cfg: CacheConfig,
    epoch: Instant,
    entries: RwLock<HashMap<String, Entry>>,
    online: AtomicBool,
}

/// Errors of the cache: the keystore's, or a stored key that cannot be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The keystore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored value is not a key.
    #[error("stored key is invalid: {0}")]
    Decode(String),
}

impl KeyCache {
    /// A cache over `store`.
    pub fn new(store: Arc<dyn Keystore>, cfg: CacheConfig) -> Self {
        KeyCache {
            store,
            cfg,
            epoch: Instant::now(),
            entries: RwLock::new(HashMap::new()),
            online: AtomicBool::new(true),
        }
    }

    /// The keystore behind the cache.
    pub fn store(&self) -> &Arc<dyn Keystore> {
        &self.store
    }

    /// `now` in milliseconds since the cache's epoch (the unit of `Entry::used`).
    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        if let Some(any) = self.cfg.any
            && now.saturating_duration_since(e.fetched) >= any
        {
            return false;
        }
        if let Some(unused) = self.cfg.unused
            && self
                .millis(now)
                .saturating_sub(e.used.load(Ordering::Relaxed))
                >= unused.as_millis() as u64
        {
            return false;
        }
        true
    }

    /// Whether the last keystore contact succeeded.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    fn note(&self, r: &Result<impl Sized, StoreError>) {
        match r {
            Err(StoreError::Unreachable(_) | StoreError::Sealed) => {
                self.online.store(false, Ordering::Relaxed)
            }
            _ => self.online.store(true, Ordering::Relaxed),
        }
    }

    /// Checks the keystore and records whether it is online.
    pub async fn status(&self) -> Result<Duration, StoreError> {
        let r = self.store.status().await;
        self.note(&r);
        r
    }

    /// The key `name`, from the cache or the keystore.
    pub async fn get(&self, name: &str) -> Result<Arc<KeyVersion>, CacheError> {
        self.get_at(name, Instant::now()).await
    }

    /// [`Self::get`] at `now`, a time the caller has already read (the request's start), so
    /// that a cache hit reads no clock.
    pub async fn get_at(&self, name: &str, now: Instant) -> Result<Arc<KeyVersion>, CacheError> {
        if let Some(e) = self.entries.read().expect("lock").get(name)
            && self.fresh(e, now)
        {
            e.used.store(self.millis(now), Ordering::Relaxed);
            return Ok(e.key.clone());
        }
        let now_ms = self.millis(now);
        let fetched = self.store.get(name).await;
        self.note(&fetched);
        match fetched {
            Ok(bytes) => {
                let key = Arc::new(
                    KeyVersion::decode(&bytes).map_err(|e| CacheError::Decode(e.to_string()))?,
                );
                self.entries.write().expect("lock").insert(
                    name.to_string(),
                    Entry {
                        key: key.clone(),
                        fetched: Instant::now(),
                        used: AtomicU64::new(now_ms),
                    },
                );
                Ok(key)
            }
            Err(err @ (StoreError::Unreachable(_) | StoreError::Sealed)) => {
                if let Some(offline) = self.cfg.offline
                    && let Some(e) = self.entries.read().expect("lock").get(name)
                    && e.fetched.elapsed() < offline
                {
                    e.used.store(now_ms, Ordering::Relaxed);
                    return Ok(e.key.clone());
                }
                Err(err.into())
            }
            Err(err) => {
                if err == StoreError::NotFound {
                    self.entries.write().expect("lock").remove(name);
                }
                Err(err.into())
            }
        }
    }

    /// Creates a key in the keystore (never overwrites).
    pub async fn create(&self, name: &str, key: &KeyVersion) -> Result<(), StoreError> {
        let r = self.store.create(name, &key.encode()).await;
        self.note(&r);
        r
    }

    /// Deletes a key from the keystore and the cache.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.entries.write().expect("lock").remove(name);
        let r = self.store.delete(name).await;
        self.note(&r);
        r
    }

    /// Sorted key names with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let r = self.store.list().await;
        self.note(&r);
        r.map(|names| crate::keystore::filter_sorted(names, prefix))
    }

    /// Drops entries that no rule keeps (called periodically). While the keystore is
    /// offline, entries the offline rule still covers are kept.
    pub fn evict(&self) {
        let now = Instant::now();
        let offline = !self.is_online();
        self.entries.write().expect("lock").retain(|_, e| {
            self.fresh(e, now)
                || (offline
                    && self
                        .cfg
                        .offline
                        .is_some_and(|o| now.saturating_duration_since(e.fetched) < o))
        });
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.entries.read().expect("lock").len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::crypto::Cipher;
    use crate::keystore::mem::MemStore;
    use futures::future::{BoxFuture, FutureExt};

    /// A store that can be switched off.
    struct Flaky {
        inner: MemStore,
        down: AtomicBool,
        gets: AtomicU64,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unreachable("down".into()))
            } else {
                Ok(())
            }
        }
    }

    impl Keystore for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
            async move { self.check().map(|_| Duration::ZERO) }.boxed()
        }
        fn create<'a>(&'a self, n: &'a str, v: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
            async move {
                self.check()?;
                self.inner.create(n, v).await
            }
            .boxed()
        }
        fn get<'a>(
            &'a self,
            n: &'a str,
        ) -> BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, StoreError>> {
            async move {
                self.gets.fetch_add(1, Ordering::SeqCst);
                self.check()?;
                self.inner.get(n).await
            }
            .boxed()
        }
        fn delete<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
            async move {
                self.check()?;
                self.inner.delete(n).await
            }
            .boxed()
        }
        fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
            async move {
                self.check()?;
                self.inner.list().await
            }
            .boxed()
        }
    }

    fn flaky() -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: MemStore::new(),
            down: AtomicBool::new(false),
            gets: AtomicU64::new(0),
        })
    }

    #[tokio::test]
    async fn serves_from_cache_and_refetches_when_unused_expires() {
        let store = flaky();
        let cfg = CacheConfig {
            any: None,
            unused: Some(Duration::from_millis(100)),
            offline: None,
        };
        let cache = KeyCache::new(store.clone(), cfg);
        cache
            .create(
                "k",
                &KeyVersion::generate(Cipher::Aes256, Identity::new("x")),
            )
            .await
            .unwrap();
        cache.get("k").await.unwrap();
        cache.get("k").await.unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        cache.get("k").await.unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn offline_rule_keeps_serving_while_store_is_down() {
        let store = flaky();
        let cfg = CacheConfig {
            any: Some(Duration::from_millis(50)),
            unused: None,
            offline: Some(Duration::from_secs(60)),
        };
        let cache = KeyCache::new(store.clone(), cfg);
        let kv = KeyVersion::generate(Cipher::Aes256, Identity::new("x"));
        cache.create("k", &kv).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().key, kv.key);
        store.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Expired by `any`, the store is down: the offline rule serves it.
        assert_eq!(cache.get("k").await.unwrap().key, kv.key);
        assert!(!cache.is_online());
        cache.evict();
        assert_eq!(cache.len(), 1);
        // A key never cached is an error.
        assert!(matches!(
            cache.get("other").await,
            Err(CacheError::Store(StoreError::Unreachable(_)))
        ));
        store.down.store(false, Ordering::SeqCst);
        assert!(cache.status().await.is_ok());
        assert!(cache.is_online());
    }

    #[tokio::test]
    async fn without_offline_rule_errors_when_store_is_down() {
        let store = flaky();
        let cfg = CacheConfig {
            any: Some(Duration::from_millis(20)),
            unused: None,
            offline: None,
        };
        let cache = KeyCache::new(store.clone(), cfg);
        cache
            .create(
                "k",
                &KeyVersion::generate(Cipher::Aes256, Identity::new("x")),
            )
            .await
            .unwrap();
        cache.get("k").await.unwrap();
        store.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(cache.get("k").await.is_err());
        cache.evict();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn delete_drops_cached_key() {
        let store = flaky();
        let cache = KeyCache::new(store.clone(), CacheConfig::default());
        cache
            .create(
                "k",
                &KeyVersion::generate(Cipher::Aes256, Identity::new("x")),
            )
            .await
            .unwrap();
        cache.get("k").await.unwrap();
        cache.delete("k").await.unwrap();
        assert_eq!(
            cache.get("k").await.unwrap_err(),
            CacheError::Store(StoreError::NotFound)
        );
    }
}
