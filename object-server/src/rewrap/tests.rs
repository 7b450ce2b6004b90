//! The job end to end on a data directory, through a KMS whose key has versions (ciphertexts
//! named `vault:v<N>:` as Transit names them, each version a static key of its own).
use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::*;
use crate::kms::static_key::StaticKms;
use crate::kms::{DataKey, object_context};
use crate::sse::{ObjectKey, seal};
use crate::storage::{EncryptionMeta, ObjectMeta, SseMode};

/// Key `k` with versions 1..=n, and key `other` (one version).
struct VersionedKms {
    versions: Mutex<Vec<StaticKms>>,
    other: StaticKms,
}

impl VersionedKms {
    fn new() -> Self {
        Self {
            versions: Mutex::new(vec![StaticKms::generate("k").0]),
            other: StaticKms::generate("other").0,
        }
    }

    fn rotate(&self) {
        self.versions
            .lock()
            .unwrap()
            .push(StaticKms::generate("k").0);
    }

    fn seal(&self, name: &str, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError> {
        let (v, ct) = match name {
            "k" => {
                let versions = self.versions.lock().unwrap();
                (
                    versions.len(),
                    versions.last().unwrap().encrypt(plaintext, context),
                )
            }
            "other" => (1, self.other.encrypt(plaintext, context)),
            _ => return Err(KmsError::KeyNotFound),
        };
        Ok(format!("vault:v{v}:{}", B64.encode(ct)).into_bytes())
    }
}

#[async_trait::async_trait]
impl Kms for VersionedKms {
    fn default_key(&self) -> &str {
        "k"
    }
    fn describe(&self) -> String {
        "versioned test KMS".into()
    }
    async fn create_key(&self, _: &str) -> Result<(), KmsError> {
        Err(KmsError::KeyExists)
    }
    async fn generate_key(&self, name: &str, context: &[u8]) -> Result<DataKey, KmsError> {
        let plaintext = Zeroizing::new(vec![7u8; 32]);
        let ciphertext = self.seal(name, &plaintext, context)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }
    async fn decrypt_key(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let v = crate::kms::ciphertext_version(ciphertext) as usize;
        let text = std::str::from_utf8(ciphertext).map_err(|_| KmsError::DecryptionFailed)?;
        let raw = B64
            .decode(text.rsplit(':').next().unwrap())
            .map_err(|_| KmsError::DecryptionFailed)?;
        match name {
            "k" => self
                .versions
                .lock()
                .unwrap()
                .get(v - 1)
                .ok_or(KmsError::DecryptionFailed)?
                .decrypt(&raw, context),
            "other" => self.other.decrypt(&raw, context),
            _ => Err(KmsError::KeyNotFound),
        }
    }
    async fn encrypt_key(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.seal(name, plaintext, context)
    }
    async fn ready(&self) -> Result<(), KmsError> {
        Ok(())
    }
}

/// Writes `bucket/key` encrypted under a fresh data key of `k`, body `body`.
async fn put(store: &Store, kms: &VersionedKms, bucket: &str, key: &str, body: &[u8]) {
    put_under(store, kms, "k", bucket, key, body).await
}

/// Writes `bucket/key` encrypted under a fresh data key of `k`, naming key `name` (a name the
/// KMS does not know stands for a deleted key).
async fn put_under(
    store: &Store,
    kms: &VersionedKms,
    name: &str,
    bucket: &str,
    key: &str,
    body: &[u8],
) {
    let ctx = object_context(bucket, key, &BTreeMap::new());
    let dk = kms.generate_key("k", &ctx).await.unwrap();
    let ok = ObjectKey::generate();
    let meta = ObjectMeta {
        size: body.len() as u64,
        etag: "etag".into(),
        encryption: Some(EncryptionMeta {
            mode: SseMode::S3,
            sealed_key: seal::seal(&dk.plaintext, "SSE-S3", bucket, key, &ok),
            kms_key: Some(name.into()),
            kms_ciphertext: Some(B64.encode(&dk.ciphertext)),
            kms_context: BTreeMap::new(),
            bucket_key: None,
        }),
        ..Default::default()
    };
    let mut w = store.writer().await.unwrap();
    w.write(body).await.unwrap();
    w.commit(&meta, store.object_path(bucket, key).unwrap())
        .await
        .unwrap();
}

/// The key name, the version its ciphertext names, and the data key it opens to.
async fn stored(
    store: &Store,
    kms: &VersionedKms,
    bucket: &str,
    key: &str,
) -> (String, u32, Vec<u8>) {
    let o = store.open_object(bucket, key).await.unwrap();
    let enc = o.meta.encryption.unwrap();
    let ct = B64.decode(enc.kms_ciphertext.unwrap()).unwrap();
    let name = enc.kms_key.unwrap();
    let ctx = object_context(bucket, key, &BTreeMap::new());
    let dk = kms.decrypt_key(&name, &ct, &ctx).await.unwrap();
    (name, crate::kms::ciphertext_version(&ct), dk.to_vec())
}

async fn run_to_end(r: &Arc<Rewrapper>) -> JobStatus {
    for _ in 0..50 {
        r.work().await.unwrap();
        let s = r.read_status().await.unwrap().unwrap();
        if s.state == "done" {
            return s;
        }
    }
    panic!("the job did not finish");
}

#[tokio::test]
async fn moves_every_object_to_the_newest_version_and_then_to_another_key() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    store.create_bucket("b").await.unwrap();
    let kms = Arc::new(VersionedKms::new());
    for i in 0..5 {
        put(&store, &kms, "b", &format!("o{i}"), b"body bytes").await;
    }
    let before: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(stored(&store, &kms, "b", &format!("o{i}")).await);
        }
        v
    };
    assert!(before.iter().all(|(_, v, _)| *v == 1));
    kms.rotate();
    let r = Rewrapper::new(store.clone(), kms.clone(), 0, 4).unwrap();
    let s = r.start(None, None).await.unwrap();
    assert_eq!((s.state, s.units_total), ("running", 2));
    // A second start while it runs is refused.
    assert!(matches!(
        r.start(None, None).await,
        Err(StartError::Running)
    ));
    let s = run_to_end(&r).await;
    assert_eq!((s.counts.rewrapped, s.counts.failed), (5, 0), "{s:?}");
    for (i, (_, _, dk)) in before.iter().enumerate() {
        let key = format!("o{i}");
        let (name, v, now) = stored(&store, &kms, "b", &key).await;
        assert_eq!((name.as_str(), v), ("k", 2));
        assert_eq!(&now, dk, "the data key is the same");
        // The body is what it was.
        let o = store.open_object("b", &key).await.unwrap();
        assert_eq!(o.body_len, 10);
    }
    // Again: everything is current.
    let s = r.start(None, None).await.unwrap();
    assert_eq!(s.counts, Counts::default());
    let s = run_to_end(&r).await;
    assert_eq!((s.counts.rewrapped, s.counts.skipped), (0, 6), "{s:?}");
    // Onto another key, one bucket; an unknown key is refused up front.
    assert!(matches!(
        r.start(Some("missing".into()), Some("b".into())).await,
        Err(StartError::Kms(KmsError::KeyNotFound))
    ));
    assert!(matches!(
        r.start(None, Some("nope".into())).await,
        Err(StartError::NoSuchBucket)
    ));
    r.start(Some("other".into()), Some("b".into()))
        .await
        .unwrap();
    let s = run_to_end(&r).await;
    assert_eq!((s.counts.rewrapped, s.units_total), (5, 1), "{s:?}");
    for (i, (_, _, dk)) in before.iter().enumerate() {
        let (name, _, now) = stored(&store, &kms, "b", &format!("o{i}")).await;
        assert_eq!(name, "other");
        assert_eq!(&now, dk);
    }
}

#[tokio::test]
async fn a_unit_leased_by_another_process_is_left_to_it() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    store.create_bucket("b").await.unwrap();
    let kms = Arc::new(VersionedKms::new());
    put(&store, &kms, "b", "o", b"x").await;
    kms.rotate();
    let r = Rewrapper::new(store.clone(), kms.clone(), 0, 4).unwrap();
    r.start(None, Some("b".into())).await.unwrap();
    let lease = crate::storage::try_lock_named(store.root(), "rewrap-bucket-b")
        .unwrap()
        .unwrap();
    r.work().await.unwrap();
    assert_eq!(stored(&store, &kms, "b", "o").await.1, 1, "not touched");
    drop(lease);
    let s = run_to_end(&r).await;
    assert_eq!(s.counts.rewrapped, 1);
    assert_eq!(stored(&store, &kms, "b", "o").await.1, 2);
}

#[tokio::test]
async fn many_keys_in_flight_each_once_and_a_deleted_key_named() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    store.create_bucket("b").await.unwrap();
    let kms = Arc::new(VersionedKms::new());
    for i in 0..150 {
        put(&store, &kms, "b", &format!("o{i:03}"), b"body").await;
    }
    put_under(&store, &kms, "gone", "b", "shredded-1", b"x").await;
    put_under(&store, &kms, "gone", "b", "shredded-2", b"x").await;
    kms.rotate();
    let r = Rewrapper::new(store.clone(), kms.clone(), 0, 16).unwrap();
    r.start(None, Some("b".into())).await.unwrap();
    let s = run_to_end(&r).await;
    assert_eq!(
        (s.counts.scanned, s.counts.rewrapped, s.counts.failed),
        (152, 150, 2),
        "{s:?}"
    );
    assert_eq!(s.missing_keys, BTreeMap::from([("gone".to_owned(), 2)]));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["missingKeys"], serde_json::json!({"gone": 2}));
    for i in 0..150 {
        assert_eq!(stored(&store, &kms, "b", &format!("o{i:03}")).await.1, 2);
    }
    // The saved cursor is the last key, and the saved counts are the whole unit's.
    let job = r.dir.job().unwrap().unwrap();
    let unit = r.dir.unit(&job, "bucket-b").unwrap();
    assert_eq!(unit.cursor.as_deref(), Some("shredded-2"));
    assert_eq!(unit.counts, s.counts);
}

#[tokio::test]
async fn a_run_resumes_after_its_saved_cursor() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    store.create_bucket("b").await.unwrap();
    let kms = Arc::new(VersionedKms::new());
    for i in 0..20 {
        put(&store, &kms, "b", &format!("o{i:02}"), b"body").await;
    }
    kms.rotate();
    let r = Rewrapper::new(store.clone(), kms.clone(), 0, 4).unwrap();
    r.start(None, Some("b".into())).await.unwrap();
    // As a process killed after saving the cursor at o09 would leave it: o00..=o09 counted.
    let job = r.dir.job().unwrap().unwrap();
    let mut unit = r.dir.unit(&job, "bucket-b").unwrap();
    unit.cursor = Some("o09".into());
    unit.counts.scanned = 10;
    unit.counts.rewrapped = 10;
    r.dir.write_unit("bucket-b", &unit).unwrap();
    let s = run_to_end(&r).await;
    assert_eq!((s.counts.scanned, s.counts.rewrapped), (20, 20), "{s:?}");
    for i in 0..20 {
        let v = stored(&store, &kms, "b", &format!("o{i:02}")).await.1;
        assert_eq!(
            v,
            if i < 10 { 1 } else { 2 },
            "o{i:02}: only keys after the cursor"
        );
    }
}
