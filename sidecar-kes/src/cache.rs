//! The key cache in front of a keystore, with KES's three expiry rules:
//! `any` (evict after this long, used or not), `unused` (evict if not used for this long)
//! and `offline` (while the keystore is unreachable, keep serving cached keys this long).
//!
//! What it guarantees beyond the expiry rules:
//!
//! - **A sealed keystore stops key use.** Sealing Vault is an operator's emergency stop, not
//!   an outage: once the keystore reports itself sealed ([`Keystore::is_sealed`]), every key
//!   request fails with `key store is sealed`, fresh cache entries included, and the cache
//!   drops its keys (at the next request or the next eviction pass, every 5 s). The offline
//!   rule never applies to a sealed keystore. The bound: Vault's seal is seen at the latest by
//!   the keystore's next health check, every `keystore.vault.status.ping` (default 10 s), or
//!   sooner by any K/V read that Vault answers with 503 "Vault is sealed"; so a KES stops
//!   using keys at most one ping interval (plus the health request's round trip, milliseconds
//!   against a sealed Vault, which answers at once) after the seal, every replica on its own
//!   clock. A keystore that is merely unreachable keeps the offline rule. A keystore once seen
//!   sealed counts as sealed until a health check sees it unsealed, even if it is unreachable
//!   in between: an unknown state after a stop stays stopped.
//! - **A deleted key is never served again by the replica that deleted it.** A read that missed
//!   the cache and started fetching before a delete could finish its fetch after the delete
//!   removed the entry, and put the deleted key back. Every delete therefore bumps a
//!   generation (under the entries' lock, once the keystore delete has returned), and a fetch
//!   caches its result only if no delete happened since the fetch began. Such a fetch still
//!   answers its own request: it read the keystore before the delete took effect, so it is
//!   ordered before the delete, like any request that was already being answered.
//! - **A rotation is seen at once by the replica that made it**, and by every other replica
//!   within its cache bound: an entry is a whole [`KeyRing`], kept at most `any` after it was
//!   read (default 5 min; `unused` 30 s drops it sooner when idle). Until then another replica
//!   makes data keys with the version it has, the previous newest, which stays valid: only
//!   raising the minimum version retires one, and that too reaches other replicas within
//!   `any`. A ciphertext naming a version newer than the cached ring makes the cache read
//!   the keystore again at once ([`KeyCache::invalidate`]). The same generation counter as
//!   for deletes keeps a read in flight from caching the ring a rotation replaced.

use crate::crypto::{KeyRing, KeyVersion};
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
    key: Arc<KeyRing>,
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
    /// Bumped by every delete, replace and invalidation, under the `entries` write lock; see
    /// the module doc.
    deletions: AtomicU64,
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
            deletions: AtomicU64::new(0),
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
    pub async fn get(&self, name: &str) -> Result<Arc<KeyRing>, CacheError> {
        self.get_at(name, Instant::now()).await
    }

    /// [`Self::get`] at `now`, a time the caller has already read (the request's start), so
    /// that a cache hit reads no clock.
    pub async fn get_at(&self, name: &str, now: Instant) -> Result<Arc<KeyRing>, CacheError> {
        if self.store.is_sealed() {
            self.drop_all();
            return Err(StoreError::Sealed.into());
        }
        if let Some(e) = self.entries.read().expect("lock").get(name)
            && self.fresh(e, now)
        {
            e.used.store(self.millis(now), Ordering::Relaxed);
            return Ok(e.key.clone());
        }
        let now_ms = self.millis(now);
        let deletions = self.deletions.load(Ordering::SeqCst);
        let fetched = self.store.get(name).await;
        self.note(&fetched);
        match fetched {
            Ok(bytes) => {
                let key = Arc::new(
                    KeyRing::decode(&bytes).map_err(|e| CacheError::Decode(e.to_string()))?,
                );
                let mut entries = self.entries.write().expect("lock");
                if self.deletions.load(Ordering::SeqCst) == deletions {
                    entries.insert(
                        name.to_string(),
                        Entry {
                            key: key.clone(),
                            fetched: Instant::now(),
                            used: AtomicU64::new(now_ms),
                        },
                    );
                }
                Ok(key)
            }
            Err(StoreError::Sealed) => {
                self.drop_all();
                Err(StoreError::Sealed.into())
            }
            Err(err @ StoreError::Unreachable(_)) => {
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

    /// Changes a stored key: reads it from the keystore (not the cache), applies `change`, and
    /// replaces it if nobody changed it meanwhile (else reads and applies again, a few times).
    /// This replica's cache holds the new ring at once; other replicas' caches see it when
    /// their entry expires (`cache.expiry.any`, or `unused`), see the module doc.
    pub async fn update<E: From<CacheError>>(
        &self,
        name: &str,
        change: impl Fn(&KeyRing) -> Result<KeyRing, E>,
    ) -> Result<Arc<KeyRing>, E> {
        const ATTEMPTS: usize = 5;
        let mut last = StoreError::Changed;
        for _ in 0..ATTEMPTS {
            if self.store.is_sealed() {
                self.drop_all();
                return Err(CacheError::from(StoreError::Sealed).into());
            }
            let old = self.store.get(name).await;
            self.note(&old);
            let old = old.map_err(CacheError::from)?;
            let ring = KeyRing::decode(&old).map_err(|e| CacheError::Decode(e.to_string()))?;
            let next = Arc::new(change(&ring)?);
            let r = self.store.replace(name, &old, &next.encode()).await;
            self.note(&r);
            match r {
                Ok(()) => {
                    let mut entries = self.entries.write().expect("lock");
                    // A fetch that began before the replace must not cache the old ring.
                    self.deletions.fetch_add(1, Ordering::SeqCst);
                    entries.insert(
                        name.to_string(),
                        Entry {
                            key: next.clone(),
                            fetched: Instant::now(),
                            used: AtomicU64::new(self.millis(Instant::now())),
                        },
                    );
                    return Ok(next);
                }
                Err(StoreError::Changed) => last = StoreError::Changed,
                Err(e) => return Err(CacheError::from(e).into()),
            }
        }
        Err(CacheError::from(last).into())
    }

    /// Forgets the cached entry of `name` (a ciphertext named a version newer than it has),
    /// so that the next use reads the keystore; a fetch in flight does not cache its result.
    pub fn invalidate(&self, name: &str) {
        let mut entries = self.entries.write().expect("lock");
        self.deletions.fetch_add(1, Ordering::SeqCst);
        entries.remove(name);
    }

    /// Deletes a key from the keystore and the cache. A read that was fetching the key
    /// meanwhile does not cache it (see the module doc).
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.entries.write().expect("lock").remove(name);
        let r = self.store.delete(name).await;
        self.note(&r);
        let mut entries = self.entries.write().expect("lock");
        self.deletions.fetch_add(1, Ordering::SeqCst);
        entries.remove(name);
        r
    }

    /// Forgets every cached key (the keystore is sealed).
    fn drop_all(&self) {
        let mut entries = self.entries.write().expect("lock");
        if !entries.is_empty() {
            entries.clear();
            tracing::warn!("key store is sealed: cached keys dropped");
        }
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
        if self.store.is_sealed() {
            self.drop_all();
            return;
        }
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

    /// A store that can be switched off or sealed.
    struct Flaky {
        inner: MemStore,
        down: AtomicBool,
        /// Answers every request with `Sealed`.
        sealed: AtomicBool,
        /// What `is_sealed` says (a health check's finding).
        seen_sealed: AtomicBool,
        gets: AtomicU64,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.sealed.load(Ordering::SeqCst) {
                Err(StoreError::Sealed)
            } else if self.down.load(Ordering::SeqCst) {
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
        fn is_sealed(&self) -> bool {
            self.seen_sealed.load(Ordering::SeqCst)
        }
    }

    fn flaky() -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: MemStore::new(),
            down: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            seen_sealed: AtomicBool::new(false),
            gets: AtomicU64::new(0),
        })
    }

    /// A store whose `get`, while `pause` is set, reads the value and then waits for
    /// `release` before answering: a fetch in flight while something else happens.
    struct PausedGet {
        inner: MemStore,
        pause: AtomicBool,
        fetched: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    impl Keystore for PausedGet {
        fn describe(&self) -> String {
            "paused".into()
        }
        fn status(&self) -> BoxFuture<'_, Result<Duration, StoreError>> {
            async move { Ok(Duration::ZERO) }.boxed()
        }
        fn create<'a>(&'a self, n: &'a str, v: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.create(n, v)
        }
        fn get<'a>(
            &'a self,
            n: &'a str,
        ) -> BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, StoreError>> {
            async move {
                let value = self.inner.get(n).await;
                if self.pause.load(Ordering::SeqCst) {
                    self.fetched.notify_one();
                    self.release.notified().await;
                }
                value
            }
            .boxed()
        }
        fn delete<'a>(&'a self, n: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.delete(n)
        }
        fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
            self.inner.list()
        }
    }

    /// Finding 9 of issue #18: a read that fetched the key before a delete and finishes after
    /// it must not put the deleted key back into the cache.
    #[tokio::test]
    async fn a_fetch_in_flight_during_a_delete_does_not_cache_the_deleted_key() {
        let store = Arc::new(PausedGet {
            inner: MemStore::new(),
            pause: AtomicBool::new(false),
            fetched: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        let cache = Arc::new(KeyCache::new(store.clone(), CacheConfig::default()));
        let kv = KeyVersion::generate(Cipher::Aes256, Identity::new("x"));
        cache.create("k", &kv).await.unwrap();
        store.pause.store(true, Ordering::SeqCst);
        let reader = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get("k").await }
        });
        store.fetched.notified().await; // the reader holds the key's bytes, not yet cached
        cache.delete("k").await.unwrap();
        store.release.notify_one();
        // The read began before the delete: it may answer with the key it fetched.
        assert_eq!(reader.await.unwrap().unwrap().newest().1.key, kv.key);
        store.pause.store(false, Ordering::SeqCst);
        assert!(
            cache.is_empty(),
            "the deleted key was put back into the cache"
        );
        assert_eq!(
            cache.get("k").await.unwrap_err(),
            CacheError::Store(StoreError::NotFound)
        );
    }

    /// Finding 9 of issue #18: once the store says it is sealed, cached keys stop serving at
    /// once, fresh or not, and the offline rule does not cover a sealed store.
    #[tokio::test]
    async fn a_sealed_store_stops_cached_keys_and_the_offline_rule_does_not_apply() {
        let store = flaky();
        let cfg = CacheConfig {
            any: Some(Duration::from_millis(50)),
            unused: None,
            offline: Some(Duration::from_secs(3600)),
        };
        let cache = KeyCache::new(store.clone(), cfg);
        let kv = KeyVersion::generate(Cipher::Aes256, Identity::new("x"));
        cache.create("k", &kv).await.unwrap();
        cache.get("k").await.unwrap();
        // The health check saw the seal: a fresh entry is refused and forgotten.
        store.seen_sealed.store(true, Ordering::SeqCst);
        assert_eq!(
            cache.get("k").await.unwrap_err(),
            CacheError::Store(StoreError::Sealed)
        );
        assert!(cache.is_empty());
        // Unsealed: served again, from the store.
        store.seen_sealed.store(false, Ordering::SeqCst);
        assert_eq!(cache.get("k").await.unwrap().newest().1.key, kv.key);
        assert_eq!(cache.len(), 1);
        // A fetch answered `sealed` (before any health check): no offline serving either.
        store.sealed.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await; // past `any`
        assert_eq!(
            cache.get("k").await.unwrap_err(),
            CacheError::Store(StoreError::Sealed)
        );
        assert!(cache.is_empty());
        // The eviction pass forgets keys of a sealed store too.
        store.sealed.store(false, Ordering::SeqCst);
        cache.get("k").await.unwrap();
        store.seen_sealed.store(true, Ordering::SeqCst);
        cache.evict();
        assert!(cache.is_empty());
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
        assert_eq!(cache.get("k").await.unwrap().newest().1.key, kv.key);
        store.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Expired by `any`, the store is down: the offline rule serves it.
        assert_eq!(cache.get("k").await.unwrap().newest().1.key, kv.key);
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
