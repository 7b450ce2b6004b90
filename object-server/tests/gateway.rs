//! The storage engines against one contract: the local directory, and the S3 gateway engine
//! over a real `minio` and over Ceph's RGW (the pinned peers: `eval "$(e2e/peers/env)"`; RGW needs
//! root, as `e2e/src/ceph.rs` says): two gateway engines over one backend bucket seeing each
//! other's writes, and the backend holding no plaintext and no key.
use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_e2e::minio::Minio;
use object_server::sse::package::{Decryptor, Encryptor, PAYLOAD, decrypt_all, encrypted_size};
use object_server::sse::{ObjectKey, metadata_key, seal};
use object_server::storage::engine::s3::{BackendConfig, S3Store};
use object_server::storage::engine::{ListQuery, Storage};
use object_server::storage::{
    EncryptionMeta, EtagMatch, ObjectMeta, PartMeta, SseMode, StorageError, Store, WriteCondition,
};

/// The process's metadata key (the server loads it through the KMS at start): encrypted
/// objects' ETags and checksums are sealed under it.
fn install_metadata_key() {
    metadata_key::install(metadata_key::MetadataKey::from_bytes([0x33; 32])).unwrap();
}

/// An encrypted object as the handlers make one: a fresh key sealed under `kek` for its path.
struct Sealed {
    key: ObjectKey,
    meta: ObjectMeta,
    stream: Vec<u8>,
}

fn seal_object(kek: &[u8; 32], bucket: &str, key: &str, plaintext: &[u8], etag: &str) -> Sealed {
    let ok = ObjectKey::generate();
    let mut stream = Vec::new();
    let mut e = Encryptor::new(&ok);
    e.update(plaintext, &mut stream);
    e.finish(&mut stream);
    let meta = ObjectMeta {
        size: plaintext.len() as u64,
        etag: etag.to_owned(),
        modified_ms: 1,
        encryption: Some(EncryptionMeta {
            mode: SseMode::C,
            sealed_key: seal::seal(kek, SseMode::C.domain(), bucket, key, &ok),
            kms_key: None,
            kms_ciphertext: None,
            kms_context: BTreeMap::new(),
            bucket_key: None,
        }),
        ..Default::default()
    };
    Sealed {
        key: ok,
        meta,
        stream,
    }
}

async fn put(
    s: &dyn Storage,
    bucket: &str,
    key: &str,
    body: &[u8],
    meta: &ObjectMeta,
    cond: &WriteCondition,
) -> Result<(), StorageError> {
    let mut w = s.writer().await.unwrap();
    w.write(body).await.unwrap();
    s.put_object(bucket, key, w, meta, cond).await.map(drop)
}

fn plain(etag: &str, size: usize) -> ObjectMeta {
    ObjectMeta {
        size: size as u64,
        etag: etag.to_owned(),
        ..Default::default()
    }
}

fn if_none_match_any() -> WriteCondition {
    WriteCondition {
        if_none_match: Some(EtagMatch::Any),
        ..Default::default()
    }
}

fn if_match(t: &str) -> WriteCondition {
    WriteCondition {
        if_match: Some(EtagMatch::Tag(t.to_owned())),
        ..Default::default()
    }
}

/// What every engine must do the same way.
async fn contract(s: &dyn Storage, kek: &[u8; 32]) {
    install_metadata_key();
    s.create_bucket("b1").await.unwrap();
    assert!(matches!(
        s.create_bucket("b1").await,
        Err(StorageError::BucketExists)
    ));
    assert!(matches!(
        s.head_bucket("nope").await,
        Err(StorageError::NoSuchBucket)
    ));
    assert!(matches!(
        s.open_object("nope", "k").await,
        Err(StorageError::NoSuchBucket)
    ));
    assert!(
        s.list_buckets()
            .await
            .unwrap()
            .iter()
            .any(|(b, _)| b == "b1")
    );

    // An encrypted object of three packages; a ranged read asks only for the middle one.
    let plaintext: Vec<u8> = (0..(2 * PAYLOAD + 100)).map(|i| (i % 251) as u8).collect();
    let o = seal_object(kek, "b1", "dir/obj", &plaintext, "etag-1");
    put(
        s,
        "b1",
        "dir/obj",
        &o.stream,
        &o.meta,
        &WriteCondition::default(),
    )
    .await
    .unwrap();
    let got = s.open_object("b1", "dir/obj").await.unwrap();
    assert_eq!(got.meta.size, plaintext.len() as u64);
    assert_eq!(got.meta.etag, "etag-1");
    assert_eq!(got.body_len, encrypted_size(plaintext.len() as u64));
    let whole = got.body.read_at(0, got.body_len).await.unwrap();
    assert_eq!(
        decrypt_all(&o.key, got.meta.size, &whole).unwrap(),
        plaintext
    );
    let d = Decryptor::new(&o.key, got.meta.size);
    let (offset, len) = d.package_span(1);
    let stored = got.body.read_at(offset, len as u64).await.unwrap();
    let mut out = vec![0u8; PAYLOAD];
    let n = d.open_into(1, &stored, &mut out).unwrap();
    assert_eq!(&out[..n], &plaintext[PAYLOAD..2 * PAYLOAD]);
    assert!(
        s.read_bucket_config("b1", "encryption")
            .await
            .unwrap()
            .is_none()
    );

    // Conditional writes decide on the plaintext ETags.
    let m2 = plain("etag-2", 3);
    assert!(matches!(
        put(s, "b1", "dir/obj", b"two", &m2, &if_none_match_any()).await,
        Err(StorageError::PreconditionFailed)
    ));
    assert!(matches!(
        put(s, "b1", "dir/obj", b"two", &m2, &if_match("other")).await,
        Err(StorageError::PreconditionFailed)
    ));
    assert!(matches!(
        put(s, "b1", "absent", b"two", &m2, &if_match("etag-1")).await,
        Err(StorageError::NoSuchKey)
    ));
    put(s, "b1", "dir/obj", b"two", &m2, &if_match("etag-1"))
        .await
        .unwrap();
    put(s, "b1", "new", b"new", &plain("n", 3), &if_none_match_any())
        .await
        .unwrap();

    // Listing: prefix, delimiter, pagination.
    for k in ["a", "a-b", "a/x", "a/y/z", "b/1", "c"] {
        put(
            s,
            "b1",
            k,
            k.as_bytes(),
            &plain(k, k.len()),
            &WriteCondition::default(),
        )
        .await
        .unwrap();
    }
    let q = |prefix, delimiter, after, max| ListQuery {
        prefix,
        delimiter,
        after,
        max,
    };
    let names = |p: &object_server::storage::engine::ListPage| {
        p.entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>()
    };
    let all = s
        .list_objects("b1", &q("", None, None, 1000))
        .await
        .unwrap();
    assert_eq!(
        names(&all),
        ["a", "a-b", "a/x", "a/y/z", "b/1", "c", "dir/obj", "new"]
    );
    assert!(!all.truncated);
    let top = s
        .list_objects("b1", &q("", Some("/"), None, 1000))
        .await
        .unwrap();
    assert_eq!(
        top.entries,
        [
            ("a".into(), false),
            ("a-b".into(), false),
            ("a/".into(), true),
            ("b/".into(), true),
            ("c".into(), false),
            ("dir/".into(), true),
            ("new".into(), false)
        ]
    );
    let under = s
        .list_objects("b1", &q("a/", Some("/"), None, 1000))
        .await
        .unwrap();
    assert_eq!(
        under.entries,
        [("a/x".into(), false), ("a/y/".into(), true)]
    );
    // Pages of two, each after the last entry of the one before (a common prefix included).
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list_objects(
                "b1",
                &ListQuery {
                    prefix: "",
                    delimiter: Some("/"),
                    after: after.as_deref(),
                    max: 2,
                },
            )
            .await
            .unwrap();
        assert!(page.entries.len() <= 2);
        seen.extend(names(&page));
        let next = page.entries.last().map(|e| e.0.clone());
        if !page.truncated {
            break;
        }
        after = next;
    }
    assert_eq!(seen, names(&top));

    // Bucket configuration.
    s.write_bucket_config("b1", "encryption", Some(b"{\"x\":1}".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        s.read_bucket_config("b1", "encryption")
            .await
            .unwrap()
            .unwrap(),
        b"{\"x\":1}"
    );

    // Delete; a bucket with objects is not deleted.
    let r = s.delete_bucket("b1").await;
    assert!(matches!(r, Err(StorageError::BucketNotEmpty)), "{r:?}");
    for k in [
        "a",
        "a-b",
        "a/x",
        "a/y/z",
        "b/1",
        "c",
        "dir/obj",
        "new",
        "never-there",
    ] {
        s.delete_object("b1", k).await.unwrap();
    }
    assert!(matches!(
        s.open_object("b1", "c").await,
        Err(StorageError::NoSuchKey)
    ));
    s.delete_bucket("b1").await.unwrap();
    assert!(matches!(
        s.head_bucket("b1").await,
        Err(StorageError::NoSuchBucket)
    ));
    // Created again, it is empty and has no configuration.
    s.create_bucket("b1").await.unwrap();
    assert!(
        s.read_bucket_config("b1", "encryption")
            .await
            .unwrap()
            .is_none()
    );
    s.delete_bucket("b1").await.unwrap();
}

/// A multipart upload: a large first part, a small last one, completed, read back.
async fn multipart(s: &dyn Storage, kek: &[u8; 32]) {
    install_metadata_key();
    s.create_bucket("mp").await.unwrap();
    let object_key = ObjectKey::generate();
    let id = s
        .create_upload("mp", "big", b"{\"state\":1}")
        .await
        .unwrap();
    assert_eq!(
        s.upload_state("mp", "big", &id).await.unwrap(),
        b"{\"state\":1}"
    );
    let sizes = [5 * 1024 * 1024 + 7, 1000];
    let mut parts = Vec::new();
    let mut want = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let n = i as u32 + 1;
        let salt = object_server::sse::PartSalt::generate();
        let meta = PartMeta {
            number: n,
            size: size as u64,
            etag: format!("part-{n}"),
            key_salt: Some(salt),
            checksums: BTreeMap::new(),
        };
        let plaintext: Vec<u8> = (0..size).map(|j| ((j * 7 + i) % 253) as u8).collect();
        let mut stream = Vec::new();
        let mut e = Encryptor::new(&meta.stream_key(&object_key));
        e.update(&plaintext, &mut stream);
        e.finish(&mut stream);
        let mut w = s.writer().await.unwrap();
        w.write(&stream).await.unwrap();
        // A part's own metadata carries its key's salt, as the handlers write it.
        let part_file_meta = ObjectMeta {
            key_salt: meta.key_salt.clone(),
            ..plain(&meta.etag, size)
        };
        s.put_part("mp", "big", &id, n, w, &part_file_meta)
            .await
            .unwrap();
        assert_eq!(
            s.part_meta("mp", "big", &id, n).await.unwrap().etag,
            meta.etag
        );
        want.push(plaintext);
        parts.push(meta);
    }
    let mut meta = seal_object(kek, "mp", "big", b"", "mp-etag-2").meta;
    meta.size = sizes.iter().sum::<usize>() as u64;
    meta.parts = parts.clone();
    s.complete_upload("mp", "big", &id, &meta, &WriteCondition::default())
        .await
        .unwrap();
    assert!(matches!(
        s.upload_state("mp", "big", &id).await,
        Err(StorageError::NoSuchUpload)
    ));
    let o = match s.open_object("mp", "big").await {
        Ok(o) => o,
        Err(e) => panic!("open the completed object: {e:?}"),
    };
    assert_eq!(o.meta.parts, parts);
    let mut offset = 0;
    for (p, plaintext) in parts.iter().zip(&want) {
        let len = encrypted_size(p.size);
        let stored = o.body.read_at(offset, len).await.unwrap();
        assert_eq!(
            &decrypt_all(&p.stream_key(&object_key), p.size, &stored).unwrap(),
            plaintext
        );
        offset += len;
    }
    assert_eq!(offset, o.body_len);
    // Abort: the upload is gone.
    let id2 = s.create_upload("mp", "other", b"{}").await.unwrap();
    s.abort_upload("mp", "other", &id2).await.unwrap();
    assert!(matches!(
        s.upload_state("mp", "other", &id2).await,
        Err(StorageError::NoSuchUpload)
    ));
    s.delete_object("mp", "big").await.unwrap();
    s.delete_bucket("mp").await.unwrap();
}

/// A backend S3 service under test, and the server process behind it (stopped when dropped).
struct Peer {
    endpoint: String,
    access_key: String,
    secret_key: String,
    scratch: tempfile::TempDir,
    server: Box<dyn std::any::Any>,
}

impl Peer {
    fn mc(&self) -> std::process::Command {
        coffer_e2e::minio::mc_for(
            &self.endpoint,
            &self.access_key,
            &self.secret_key,
            self.scratch.path(),
        )
    }

    fn backend(&self, bucket: &str) -> BackendConfig {
        let url = format!(
            "{}/{bucket}",
            self.endpoint.replace("http://", "s3+http://")
        );
        struct E(String, String);
        impl object_server::config::Env for E {
            fn get(&self, name: &str) -> Option<String> {
                match name {
                    "COFFER_BACKEND_ACCESS_KEY" => Some(self.0.clone()),
                    "COFFER_BACKEND_SECRET_KEY" => Some(self.1.clone()),
                    _ => None,
                }
            }
        }
        let env = E(self.access_key.clone(), self.secret_key.clone());
        BackendConfig::from_env(Some(&url), &env).unwrap().unwrap()
    }

    fn make_bucket(&self, bucket: &str) {
        let out = self
            .mc()
            .args(["mb", &format!("local/{bucket}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "mc mb: {out:?}");
    }
}

#[tokio::test]
async fn local_store_keeps_the_contract() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    contract(&s, &[7u8; 32]).await;
    multipart(&s, &[7u8; 32]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gateway_over_minio() {
    let minio = Minio::start(&[]);
    let peer = Peer {
        endpoint: minio.endpoint.clone(),
        access_key: minio.access_key.clone(),
        secret_key: minio.secret_key.clone(),
        scratch: tempfile::tempdir().unwrap(),
        server: Box::new(minio),
    };
    gateway_suite(peer).await;
}

/// Ceph's RADOS Gateway (RGW), the backend the issue is about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gateway_over_rgw() {
    use coffer_e2e::ceph::{Ceph, CephOptions};
    let ceph = Ceph::start(CephOptions {
        mounts: 0,
        rgw: true,
        ..CephOptions::default()
    });
    let rgw = ceph.rgw().expect("rgw started").clone();
    let peer = Peer {
        endpoint: rgw.endpoint,
        access_key: rgw.access_key,
        secret_key: rgw.secret_key,
        scratch: tempfile::tempdir().unwrap(),
        server: Box::new(ceph),
    };
    gateway_suite(peer).await;
}

/// Two gateway engines over one new bucket of `peer`, then `peer` stopped.
async fn gateway_suite(peer: Peer) {
    install_metadata_key();
    peer.make_bucket("coffer-backend");
    let cfg = peer.backend("coffer-backend");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gateway_one = Arc::new(S3Store::new(cfg.clone(), d1.path()).unwrap());
    let one: Arc<dyn Storage> = gateway_one.clone();
    let two: Arc<dyn Storage> = Arc::new(S3Store::new(cfg.clone(), d2.path()).unwrap());
    let kek = [9u8; 32];

    contract(one.as_ref(), &kek).await;
    multipart(one.as_ref(), &kek).await;

    // Two gateways over one backend bucket: each sees the other's buckets, objects and
    // configuration at once, and a create-only write succeeds for exactly one of them.
    one.create_bucket("shared").await.unwrap();
    assert!(matches!(
        two.create_bucket("shared").await,
        Err(StorageError::BucketExists)
    ));
    let secret = b"the plaintext that must never reach the backend";
    let o = seal_object(&kek, "shared", "doc", secret, "etag-doc");
    put(
        one.as_ref(),
        "shared",
        "doc",
        &o.stream,
        &o.meta,
        &WriteCondition::default(),
    )
    .await
    .unwrap();
    let seen = two.open_object("shared", "doc").await.unwrap();
    let body = seen.body.read_at(0, seen.body_len).await.unwrap();
    assert_eq!(decrypt_all(&o.key, seen.meta.size, &body).unwrap(), secret);
    two.write_bucket_config("shared", "policy", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert!(
        one.read_bucket_config("shared", "policy")
            .await
            .unwrap()
            .is_some()
    );
    let (m1, m2, create_only) = (plain("one", 1), plain("two", 1), if_none_match_any());
    let (r1, r2) = tokio::join!(
        put(one.as_ref(), "shared", "lock", b"1", &m1, &create_only),
        put(two.as_ref(), "shared", "lock", b"2", &m2, &create_only),
    );
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one create-only write wins: {r1:?} {r2:?}"
    );
    let winner = one.open_object("shared", "lock").await.unwrap().meta.etag;

    // A reader opened before an overwrite never reads the new object's bytes: its ranged reads
    // are pinned to the version it opened (the local store keeps the old file open instead).
    let reader = two.open_object("shared", "doc").await.unwrap();
    put(
        one.as_ref(),
        "shared",
        "doc",
        b"replaced",
        &plain("r", 8),
        &WriteCondition::default(),
    )
    .await
    .unwrap();
    assert!(matches!(
        reader.body.read_at(0, 8).await,
        Err(StorageError::Changed)
    ));
    put(
        one.as_ref(),
        "shared",
        "doc",
        &o.stream,
        &o.meta,
        &WriteCondition::default(),
    )
    .await
    .unwrap();
    assert_eq!(winner, if r1.is_ok() { "one" } else { "two" });

    // Everything in the backend bucket, read directly: no plaintext, no key, no key-encryption key.
    let dump = tempfile::tempdir().unwrap();
    let out = peer
        .mc()
        .args(["cp", "--recursive", "local/coffer-backend/"])
        .arg(dump.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "mc cp: {out:?}");
    let mut files = 0;
    let mut stack = vec![dump.path().to_path_buf()];
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let forbidden: Vec<(String, Vec<u8>)> = vec![
        ("plaintext".into(), secret.to_vec()),
        ("object key".into(), o.key.as_bytes().to_vec()),
        (
            "object key, hex".into(),
            hex::encode(o.key.as_bytes()).into_bytes(),
        ),
        (
            "object key, base64".into(),
            b64(o.key.as_bytes()).into_bytes(),
        ),
        ("key-encryption key".into(), kek.to_vec()),
        ("key-encryption key, base64".into(), b64(&kek).into_bytes()),
    ];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                continue;
            }
            files += 1;
            let data = std::fs::read(e.path()).unwrap();
            for (what, needle) in &forbidden {
                assert!(
                    !data.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{what} found in the backend object {}",
                    e.path().display()
                );
            }
        }
    }
    // The bucket record, the policy, the encrypted object and the lock object at least.
    assert!(files >= 4, "only {files} backend objects");

    // A backend bucket that does not exist, or credentials the backend refuses, are a broken
    // backend (503 for the client), never a missing Coffer bucket or object.
    let d3 = tempfile::tempdir().unwrap();
    let missing = S3Store::new(peer.backend("no-such-backend"), d3.path()).unwrap();
    assert!(matches!(
        missing.check().await,
        Err(StorageError::Unavailable(_))
    ));
    let r = missing.head_bucket("shared").await;
    assert!(matches!(r, Err(StorageError::Unavailable(_))), "{r:?}");
    let mut wrong = peer.backend("coffer-backend");
    wrong.secret_key = object_server::config::Secret::new("not-the-secret".into());
    let refused = S3Store::new(wrong, d3.path()).unwrap();
    let r = refused.open_object("shared", "doc").await;
    assert!(
        matches!(r, Err(StorageError::Unavailable(_))),
        "{}",
        r.is_ok()
    );
    assert!(matches!(
        refused.create_bucket("other").await,
        Err(StorageError::Unavailable(_))
    ));
    gateway_one.check().await.unwrap();

    // The backend gone: 503-style errors, never a partial object.
    drop(peer.server);
    let w = one.writer().await.unwrap();
    let r = one
        .put_object(
            "shared",
            "after",
            w,
            &plain("x", 0),
            &WriteCondition::default(),
        )
        .await;
    assert!(matches!(r, Err(StorageError::Unavailable(_))), "{r:?}");
    let r = two.open_object("shared", "doc").await;
    assert!(
        matches!(r, Err(StorageError::Unavailable(_))),
        "{}",
        r.is_ok()
    );
}
