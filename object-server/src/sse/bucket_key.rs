//! S3 Bucket Keys: one KMS data key per bucket, KMS key and [`PERIOD`], under which the object
//! keys of SSE-S3 and SSE-KMS objects are sealed instead of under a data key of their own. A PUT
//! then costs no KMS call and a GET one per [`TTL`] and process, where each asked the KMS once
//! (AWS's `x-amz-server-side-encryption-bucket-key-enabled` and `BucketKeyEnabled`).
//!
//! # On disk
//!
//! - `DIR/<bucket>/.bucketkey-<id>.json` ([`Record`]): the KMS key name, the KMS ciphertext of
//!   the bucket key (generated with the context [`kms_context`] `{"coffer:bucket-key":
//!   "<bucket>/<id>"}`) and its creation time. Nothing else of the key is stored. `id` is 128
//!   random bits (hex); a record is written once (temp file, rename) and afterwards only
//!   replaced by the re-wrap job with a ciphertext of the same key ([`crate::rewrap`]).
//! - `DIR/<bucket>/.bucketkey-current-<hash of the KMS key name>.json`: the id of the record new
//!   objects under that KMS key use, replaced when a new record is made.
//! - Each object (each upload) names its record in [`crate::storage::EncryptionMeta::bucket_key`]
//!   and keeps no KMS ciphertext of its own.
//!
//! # Several processes
//!
//! A process makes a new record when the current one is absent, older than [`PERIOD`], of
//! another KMS key, or damaged; within a process one task at a time does so (the others wait
//! and take its record). Two processes may each make one at the same moment: each writes its own
//! record under its own id and then the pointer (last one wins), and every object names the
//! record it was sealed under, so both stay readable. Records are never deleted but with
//! their bucket.
//!
//! # Cache bound: crypto-shredding and rotation
//!
//! A record's plaintext is kept in memory for at most [`TTL`] after the KMS last gave it
//! (never refreshed by use), the bound of [`crate::kms::decrypt_cache`]: once its KMS key is
//! deleted, every object under a bucket key of that key fails to read (and new writes fail)
//! within that bound, with the KMS's error, as objects with a data key of their own do. A
//! rotation leaves the bucket key as it is: new records use the newest key version, the
//! re-wrap job moves each record's ciphertext (not the objects, which hold none) to it.
//!
//! # Hostile records
//!
//! A record whose ciphertext was changed, copied from another bucket or id, or replaced by an
//! object's data key does not decrypt (the KMS authenticates it with its context); a record that
//! does not parse or a plaintext that is no 32-byte key is [`BucketKeyError::Damaged`]; an object
//! naming a record that is not there is [`BucketKeyError::Missing`]. Each is an error naming
//! the bucket key, never a key made up or another record used instead.
//!
//! # No key and nonce are ever used twice
//!
//! The bucket key encrypts nothing itself: it is only the HMAC key of [`super::seal`]'s
//! derivation. Each object (and each upload) draws a fresh random object key, and the key that
//! seals it is `HMAC-SHA256(bucket key, "coffer-seal-v1" ‖ iv ‖ domain ‖ 0 ‖ bucket/object)`
//! with a fresh random 32-byte `iv` drawn for that seal and stored with the object: a sealing key
//! repeats only if two 256-bit random values do, so its fixed nonce is used once per key. The
//! domain ([`domain`]) differs from the modes' own, so a sealed key never opens under another
//! mode. Object bodies are package streams under their own random object key
//! ([`super::package`]); nothing about them changes with bucket keys.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::kms::{Kms, KmsError};
use crate::storage::engine::Storage;
use crate::storage::{SseMode, StorageError};

/// How long a record is the current one for new objects (then a new one is made).
pub const PERIOD: Duration = Duration::from_secs(3600);
/// How long a bucket key, once the KMS gave it, is used without asking again.
pub const TTL: Duration = crate::kms::decrypt_cache::TTL;
/// Keys kept in memory at most (about 100 bytes each).
const MAX_ENTRIES: usize = 4096;
/// Record file prefix (bucket configuration names: `DIR/<bucket>/.<name>.json`).
pub const RECORD_PREFIX: &str = "bucketkey-";

/// Why a bucket key could not be had. Messages name no key material.
#[derive(Debug, thiserror::Error)]
pub enum BucketKeyError {
    /// The KMS refused or failed (key deleted, ciphertext not authentic, unreachable).
    #[error("bucket key: KMS: {0}")]
    Kms(#[from] KmsError),
    /// The record the object names is not there.
    #[error("the object's bucket key is missing")]
    Missing,
    /// The record (or the id the object names) is malformed.
    #[error("the bucket key record is damaged")]
    Damaged,
    /// The record could not be read or written.
    #[error("bucket key: {0}")]
    Storage(#[from] StorageError),
}

/// A bucket key's record as stored (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// KMS key name.
    pub kms_key: String,
    /// Base64 of the KMS ciphertext of the bucket key.
    pub ciphertext: String,
    /// When it was made, Unix milliseconds.
    pub created_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Current {
    id: String,
}

/// A bucket key in memory (wiped on drop).
pub struct BucketKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl BucketKey {
    /// The record's id (what objects name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key-encryption key for [`super::seal`].
    pub fn kek(&self) -> &[u8] {
        &self.key[..]
    }
}

impl std::fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BucketKey({})", self.id)
    }
}

/// The sealing domain of objects of `mode` under a bucket key.
pub fn domain(mode: SseMode) -> String {
    format!("{}+bucket-key", mode.domain())
}

/// The KMS context of record `id` of `bucket`. Its one entry's name has a `:`, which no bucket
/// name has, so it is never an object's context ([`crate::kms::object_context`] always names the
/// bucket).
pub fn kms_context(bucket: &str, id: &str) -> Vec<u8> {
    let m = BTreeMap::from([("coffer:bucket-key", format!("{bucket}/{id}"))]);
    serde_json::to_vec(&m).expect("a map of strings serializes")
}

/// Whether `id` is one this module makes (32 lower-case hex digits): it names a file.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The configuration name of record `id`.
pub fn record_name(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

fn current_name(kms_key: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, kms_key.as_bytes());
    format!("{RECORD_PREFIX}current-{}", hex::encode(&d.as_ref()[..16]))
}

/// Parses a record file.
pub fn parse_record(raw: &[u8]) -> Result<Record, BucketKeyError> {
    serde_json::from_slice(raw).map_err(|_| BucketKeyError::Damaged)
}

/// Asks the KMS for the key of `record` (id `id` of `bucket`).
pub async fn open_record(
    kms: &dyn Kms,
    bucket: &str,
    id: &str,
    record: &Record,
) -> Result<BucketKey, BucketKeyError> {
    let ct = B64
        .decode(&record.ciphertext)
        .map_err(|_| BucketKeyError::Damaged)?;
    let plain = kms
        .decrypt_key(&record.kms_key, &ct, &kms_context(bucket, id))
        .await?;
    let key: [u8; 32] = plain[..].try_into().map_err(|_| BucketKeyError::Damaged)?;
    Ok(BucketKey {
        id: id.to_owned(),
        key: Zeroizing::new(key),
    })
}

type Entries = Mutex<HashMap<(String, String), (Instant, Arc<BucketKey>)>>;

/// The bucket keys of one process: made, read and kept for [`TTL`].
pub struct BucketKeys {
    /// By (bucket, id): keys opened for reading (and the current ones).
    opened: Entries,
    /// By (bucket, KMS key name): the key new objects are sealed under.
    current: Entries,
    /// One task at a time makes or reads a given key (striped by name).
    flights: [tokio::sync::Mutex<()>; 16],
}

impl Default for BucketKeys {
    fn default() -> Self {
        Self {
            opened: Mutex::default(),
            current: Mutex::default(),
            flights: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }
}

fn fresh(entries: &Entries, k: &(String, String)) -> Option<Arc<BucketKey>> {
    let e = entries.lock().unwrap_or_else(|p| p.into_inner());
    e.get(k)
        .filter(|(at, _)| at.elapsed() < TTL)
        .map(|(_, v)| v.clone())
}

fn remember(entries: &Entries, k: (String, String), v: Arc<BucketKey>, at: Instant) {
    let mut e = entries.lock().unwrap_or_else(|p| p.into_inner());
    if e.len() >= MAX_ENTRIES {
        e.retain(|_, (at, _)| at.elapsed() < TTL);
        if e.len() >= MAX_ENTRIES {
            e.clear();
        }
    }
    e.insert(k, (at, v));
}

fn now_ms() -> i64 {
    crate::s3::now_ms()
}

impl BucketKeys {
    fn flight(&self, k: &(String, String)) -> &tokio::sync::Mutex<()> {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{}\0{}", k.0, k.1).as_bytes(),
        );
        &self.flights[usize::from(d.as_ref()[0]) % self.flights.len()]
    }

    /// The key new objects of `bucket` under KMS key `kms_key` are sealed under: the current
    /// record's if it is fresh, else a new one.
    pub async fn current(
        &self,
        kms: &dyn Kms,
        store: &dyn Storage,
        bucket: &str,
        kms_key: &str,
    ) -> Result<Arc<BucketKey>, BucketKeyError> {
        let ck = (bucket.to_owned(), kms_key.to_owned());
        if let Some(k) = self.fresh_current(store, &ck).await? {
            return Ok(k);
        }
        let _flight = self.flight(&ck).lock().await;
        if let Some(k) = self.fresh_current(store, &ck).await? {
            return Ok(k);
        }
        let key = match self.reuse(kms, store, bucket, kms_key).await? {
            Some(k) => k,
            None => self.make(kms, store, bucket, kms_key).await?,
        };
        let key = Arc::new(key);
        let at = Instant::now();
        remember(&self.current, ck, key.clone(), at);
        remember(
            &self.opened,
            (bucket.to_owned(), key.id.clone()),
            key.clone(),
            at,
        );
        Ok(key)
    }

    /// The cached current key of `ck`, if its record is still stored: a bucket deleted and made
    /// again (by any process) took its records with it, and no object may name a record that
    /// is gone. (One `stat`: configuration files are cached by their stamp.)
    async fn fresh_current(
        &self,
        store: &dyn Storage,
        ck: &(String, String),
    ) -> Result<Option<Arc<BucketKey>>, BucketKeyError> {
        let Some(k) = fresh(&self.current, ck) else {
            return Ok(None);
        };
        if store
            .read_bucket_config(&ck.0, &record_name(&k.id))
            .await?
            .is_some()
        {
            return Ok(Some(k));
        }
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ck);
        Ok(None)
    }

    /// The current record's key, if there is one that new objects may still use. A pointer or
    /// record that is damaged or does not decrypt is passed over (logged): a new record is made
    /// and the objects under the old one fail to read with their own error.
    async fn reuse(
        &self,
        kms: &dyn Kms,
        store: &dyn Storage,
        bucket: &str,
        kms_key: &str,
    ) -> Result<Option<BucketKey>, BucketKeyError> {
        let Some(raw) = store
            .read_bucket_config(bucket, &current_name(kms_key))
            .await?
        else {
            return Ok(None);
        };
        let Ok(Current { id }) = serde_json::from_slice::<Current>(&raw) else {
            tracing::warn!(
                bucket,
                "the current bucket key pointer is damaged: a new bucket key is made"
            );
            return Ok(None);
        };
        if !valid_id(&id) {
            return Ok(None);
        }
        let Some(raw) = store.read_bucket_config(bucket, &record_name(&id)).await? else {
            return Ok(None);
        };
        let Ok(record) = parse_record(&raw) else {
            tracing::warn!(
                bucket,
                id,
                "a bucket key record is damaged: a new bucket key is made"
            );
            return Ok(None);
        };
        let age = now_ms().saturating_sub(record.created_ms);
        if record.kms_key != kms_key || !(0..PERIOD.as_millis() as i64).contains(&age) {
            return Ok(None);
        }
        match open_record(kms, bucket, &id, &record).await {
            Ok(k) => Ok(Some(k)),
            Err(BucketKeyError::Damaged | BucketKeyError::Kms(KmsError::DecryptionFailed)) => {
                tracing::warn!(
                    bucket,
                    id,
                    "a bucket key record does not decrypt: a new bucket key is made"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a new record (one KMS generate) and makes it the current one.
    async fn make(
        &self,
        kms: &dyn Kms,
        store: &dyn Storage,
        bucket: &str,
        kms_key: &str,
    ) -> Result<BucketKey, BucketKeyError> {
        let id = crate::storage::random_name();
        let dk = kms.generate_key(kms_key, &kms_context(bucket, &id)).await?;
        let key: [u8; 32] = dk.plaintext[..].try_into().map_err(|_| {
            BucketKeyError::Kms(KmsError::Unavailable("a data key is not 32 bytes".into()))
        })?;
        let record = Record {
            kms_key: kms_key.to_owned(),
            ciphertext: B64.encode(&dk.ciphertext),
            created_ms: now_ms(),
        };
        // The record first: no pointer (and no object) ever names a record not yet stored.
        let doc = serde_json::to_vec(&record).expect("a record serializes");
        store
            .write_bucket_config(bucket, &record_name(&id), Some(doc))
            .await?;
        let ptr = serde_json::to_vec(&Current { id: id.clone() }).expect("serializes");
        store
            .write_bucket_config(bucket, &current_name(kms_key), Some(ptr))
            .await?;
        tracing::info!(bucket, id, kms_key, "new bucket key");
        Ok(BucketKey {
            id,
            key: Zeroizing::new(key),
        })
    }

    /// The key of record `id` of `bucket`, to open an object sealed under it.
    pub async fn open(
        &self,
        kms: &dyn Kms,
        store: &dyn Storage,
        bucket: &str,
        id: &str,
    ) -> Result<Arc<BucketKey>, BucketKeyError> {
        if !valid_id(id) {
            return Err(BucketKeyError::Damaged);
        }
        let ck = (bucket.to_owned(), id.to_owned());
        if let Some(k) = fresh(&self.opened, &ck) {
            return Ok(k);
        }
        let _flight = self.flight(&ck).lock().await;
        if let Some(k) = fresh(&self.opened, &ck) {
            return Ok(k);
        }
        let raw = store
            .read_bucket_config(bucket, &record_name(id))
            .await?
            .ok_or(BucketKeyError::Missing)?;
        let key = Arc::new(open_record(kms, bucket, id, &parse_record(&raw)?).await?);
        remember(&self.opened, ck, key.clone(), Instant::now());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::counting::CountingKms;
    use crate::kms::static_key::StaticKms;
    use crate::sse::{ObjectKey, seal};
    use crate::storage::Store;

    fn counting() -> CountingKms {
        CountingKms::new(StaticKms::generate("k").0)
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.create_bucket("b").await.unwrap();
        (d, s)
    }

    fn expire(entries: &Entries) {
        for (at, _) in entries.lock().unwrap().values_mut() {
            *at = Instant::now().checked_sub(TTL).unwrap();
        }
    }

    #[tokio::test]
    async fn one_generate_per_period_and_one_decrypt_per_ttl() {
        let (_d, s) = store().await;
        let kms = counting();
        let keys = BucketKeys::default();
        let a = keys.current(&kms, &s, "b", "k").await.unwrap();
        for _ in 0..100 {
            let b = keys.current(&kms, &s, "b", "k").await.unwrap();
            assert_eq!(b.id(), a.id());
            keys.open(&kms, &s, "b", a.id()).await.unwrap();
        }
        assert_eq!((kms.generated(), kms.decrypted()), (1, 0));
        // Past the TTL the record is read again: one decrypt, the same key.
        expire(&keys.current);
        expire(&keys.opened);
        let b = keys.current(&kms, &s, "b", "k").await.unwrap();
        assert_eq!((b.id(), b.kek()), (a.id(), a.kek()));
        assert_eq!((kms.generated(), kms.decrypted()), (1, 1));
        // A process starting afresh reads the same record.
        let other = BucketKeys::default();
        let c = other.open(&kms, &s, "b", a.id()).await.unwrap();
        assert_eq!(c.kek(), a.kek());
        // Another KMS key of the bucket has a key of its own.
        let d = keys.current(&kms, &s, "b", "k2").await;
        assert!(
            matches!(d, Err(BucketKeyError::Kms(KmsError::KeyNotFound))),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn a_bucket_made_again_gets_a_new_record() {
        let (_d, s) = store().await;
        let kms = counting();
        let keys = BucketKeys::default();
        let a = keys.current(&kms, &s, "b", "k").await.unwrap();
        s.delete_bucket("b").await.unwrap();
        s.create_bucket("b").await.unwrap();
        let b = keys.current(&kms, &s, "b", "k").await.unwrap();
        assert_ne!(a.id(), b.id());
        assert!(
            s.read_bucket_config("b", &record_name(b.id()))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn concurrent_writers_share_one_new_key() {
        let (_d, s) = store().await;
        let kms = counting();
        let keys = BucketKeys::default();
        let all =
            futures::future::join_all((0..20).map(|_| keys.current(&kms, &s, "b", "k"))).await;
        let ids: std::collections::HashSet<String> = all
            .into_iter()
            .map(|k| k.unwrap().id().to_owned())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(kms.generated(), 1);
    }

    #[tokio::test]
    async fn an_old_record_is_replaced_and_stays_readable() {
        let (_d, s) = store().await;
        let kms = counting();
        let keys = BucketKeys::default();
        let a = keys.current(&kms, &s, "b", "k").await.unwrap();
        let name = record_name(a.id());
        let mut r =
            parse_record(&s.read_bucket_config("b", &name).await.unwrap().unwrap()).unwrap();
        r.created_ms -= PERIOD.as_millis() as i64;
        s.write_bucket_json("b", &name, &r).await.unwrap();
        expire(&keys.current);
        let b = keys.current(&kms, &s, "b", "k").await.unwrap();
        assert_ne!(b.id(), a.id());
        let fresh = BucketKeys::default();
        assert_eq!(
            fresh.open(&kms, &s, "b", a.id()).await.unwrap().kek(),
            a.kek()
        );
    }

    #[tokio::test]
    async fn tampered_records_are_errors_never_another_key() {
        let (_d, s) = store().await;
        let kms = counting();
        let keys = BucketKeys::default();
        let a = keys.current(&kms, &s, "b", "k").await.unwrap();
        let ok = ObjectKey::generate();
        let sealed = seal::seal(a.kek(), &domain(SseMode::Kms), "b", "o", &ok);
        let name = record_name(a.id());
        let good = s.read_bucket_config("b", &name).await.unwrap().unwrap();
        let r = parse_record(&good).unwrap();
        let mut ct = B64.decode(&r.ciphertext).unwrap();
        let last = ct.len() - 1;
        ct[last] ^= 1;
        let flipped = Record {
            ciphertext: B64.encode(&ct),
            ..r.clone()
        };
        // Another record's ciphertext (same KMS key, another id's context).
        let b = keys.current(&kms, &s, "b2", "k").await;
        assert!(b.is_err(), "no bucket b2");
        s.create_bucket("b2").await.unwrap();
        let b = keys.current(&kms, &s, "b2", "k").await.unwrap();
        let foreign = parse_record(
            &s.read_bucket_config("b2", &record_name(b.id()))
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        for (bad, want_damaged) in [
            (serde_json::to_vec(&flipped).unwrap(), false),
            (serde_json::to_vec(&foreign).unwrap(), false),
            (b"{".to_vec(), true),
            (
                serde_json::to_vec(&Record {
                    ciphertext: "!!".into(),
                    ..r.clone()
                })
                .unwrap(),
                true,
            ),
        ] {
            s.write_bucket_config("b", &name, Some(bad)).await.unwrap();
            let e = BucketKeys::default()
                .open(&kms, &s, "b", a.id())
                .await
                .unwrap_err();
            if want_damaged {
                assert!(matches!(e, BucketKeyError::Damaged), "{e:?}");
            } else {
                assert!(
                    matches!(e, BucketKeyError::Kms(KmsError::DecryptionFailed)),
                    "{e:?}"
                );
            }
        }
        s.write_bucket_config("b", &name, None).await.unwrap();
        assert!(matches!(
            BucketKeys::default().open(&kms, &s, "b", a.id()).await,
            Err(BucketKeyError::Missing)
        ));
        for bad_id in ["../x", "", &"A".repeat(32)] {
            assert!(matches!(
                BucketKeys::default().open(&kms, &s, "b", bad_id).await,
                Err(BucketKeyError::Damaged)
            ));
        }
        // Writers pass over the damaged current record and make a new one.
        s.write_bucket_config("b", &name, Some(serde_json::to_vec(&flipped).unwrap()))
            .await
            .unwrap();
        expire(&keys.current);
        let c = keys.current(&kms, &s, "b", "k").await.unwrap();
        assert_ne!(c.id(), a.id());
        // The good record back: the object opens again; its sealed key only under its domain.
        s.write_bucket_config("b", &name, Some(good)).await.unwrap();
        let k = BucketKeys::default()
            .open(&kms, &s, "b", a.id())
            .await
            .unwrap();
        let opened = seal::unseal(k.kek(), &domain(SseMode::Kms), "b", "o", &sealed).unwrap();
        assert_eq!(opened.as_bytes(), ok.as_bytes());
        assert!(seal::unseal(k.kek(), SseMode::Kms.domain(), "b", "o", &sealed).is_err());
        assert!(seal::unseal(k.kek(), &domain(SseMode::S3), "b", "o", &sealed).is_err());
    }

    #[test]
    fn contexts_are_never_object_contexts() {
        let c = kms_context("b", "0123");
        assert_eq!(c, br#"{"coffer:bucket-key":"b/0123"}"#.to_vec());
        assert_ne!(
            c,
            crate::kms::object_context("b", "0123", &Default::default())
        );
    }
}
