//! Versions on a real directory: markers, the null version, promotion, crash leftovers.
use super::*;
use crate::storage::ObjectWriter;

async fn write(s: &Store, body: &[u8]) -> (ObjectWriter, ObjectMeta) {
    let mut w = s.writer().await.unwrap();
    w.write(body).await.unwrap();
    let m = ObjectMeta {
        size: body.len() as u64,
        etag: hex::encode(body),
        modified_ms: 1,
        ..Default::default()
    };
    (w, m)
}

async fn body_of(s: &Store, o: OpenObject) -> Vec<u8> {
    let _ = s;
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; o.body_len as usize];
    o.file.read_exact_at(&mut b, 0).unwrap();
    b
}

#[tokio::test]
async fn versions_markers_and_the_null_version() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    s.create_bucket("b").await.unwrap();
    // Written before versioning: the null version, plain layout.
    let (w, m) = write(&s, b"old").await;
    w.commit(&m, s.object_path("b", "k").unwrap())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for body in [b"one", b"two"] {
        let (w, mut m) = write(&s, body).await;
        ids.push(
            s.commit_version(w, &mut m, "b", "k", Versioning::Enabled, None)
                .await
                .unwrap(),
        );
    }
    assert!(ids[1] < ids[0], "newer ids sort first");
    let v = s.key_versions("b", "k").await.unwrap();
    let listed: Vec<_> = v.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(listed, vec![ids[1].as_str(), ids[0].as_str(), "null"]);
    assert!(v[0].is_latest && !v[1].is_latest);
    assert_eq!(
        body_of(&s, s.open_object("b", "k").await.unwrap()).await,
        b"two"
    );
    assert_eq!(
        body_of(&s, s.open_version("b", "k", "null").await.unwrap()).await,
        b"old"
    );
    assert_eq!(
        body_of(&s, s.open_version("b", "k", &ids[0]).await.unwrap()).await,
        b"one"
    );
    // A delete marker hides the key; removing it brings the newest version back.
    let marker = s
        .put_delete_marker("b", "k", Versioning::Enabled, 5)
        .await
        .unwrap();
    assert!(matches!(
        s.open_object("b", "k").await,
        Err(StorageError::NoSuchKey)
    ));
    assert!(s.open_latest("b", "k").await.unwrap().meta.delete_marker);
    assert_eq!(
        s.key_versions("b", "k").await.unwrap()[0].version_id,
        marker
    );
    assert!(s.list_keys("b", "", false).await.unwrap().is_empty());
    s.delete_version("b", "k", &marker, |_| true).await.unwrap();
    assert_eq!(
        body_of(&s, s.open_object("b", "k").await.unwrap()).await,
        b"two"
    );
    // Deleting the latest version by id promotes the previous one.
    s.delete_version("b", "k", &ids[1], |_| true).await.unwrap();
    assert_eq!(
        body_of(&s, s.open_object("b", "k").await.unwrap()).await,
        b"one"
    );
    // Suspended: writes replace the null version, other versions stay.
    let (w, mut m) = write(&s, b"n1").await;
    let id = s
        .commit_version(w, &mut m, "b", "k", Versioning::Suspended, None)
        .await
        .unwrap();
    assert_eq!(id, "null");
    let listed: Vec<_> = s
        .key_versions("b", "k")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    assert_eq!(listed, vec!["null".to_owned(), ids[0].clone()]);
    assert_eq!(
        body_of(&s, s.open_version("b", "k", "null").await.unwrap()).await,
        b"n1"
    );
    assert!(matches!(
        s.open_version("b", "k", "../../x").await,
        Err(StorageError::NoSuchVersion)
    ));
    // A suspended bucket's delete marker is the null version, found without `obj`.
    let id = s
        .put_delete_marker(
            "b",
            "k",
            Versioning::Suspended,
            super::now_micros() as i64 / 1000,
        )
        .await
        .unwrap();
    assert_eq!(id, "null");
    let latest = s.open_latest("b", "k").await.unwrap();
    assert!(latest.meta.delete_marker);
    assert_eq!(latest.meta.version_id.as_deref(), Some("null"));
    assert!(!has_live_object(&s.key_path("b", "k").unwrap()));
    assert!(matches!(
        s.delete_bucket("b").await,
        Err(StorageError::BucketNotEmpty)
    ));
    for v in s.key_versions("b", "k").await.unwrap() {
        s.delete_version("b", "k", &v.version_id, |_| true)
            .await
            .unwrap();
    }
    assert!(s.key_versions("b", "k").await.unwrap().is_empty());
    s.delete_bucket("b").await.unwrap();
}

#[tokio::test]
async fn a_crash_before_the_link_still_resolves() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    s.create_bucket("b").await.unwrap();
    let (w, mut m) = write(&s, b"v1").await;
    let v1 = s
        .commit_version(w, &mut m, "b", "k", Versioning::Enabled, None)
        .await
        .unwrap();
    // As if a writer died after renaming its file to `obj` but before linking it.
    let (w, mut m) = write(&s, b"v2").await;
    m.version_id = Some(new_version_id(now_micros() + 10));
    let obj = s.object_path("b", "k").unwrap();
    std::fs::remove_file(&obj).unwrap();
    w.commit(&m, obj).await.unwrap();
    let v = s.key_versions("b", "k").await.unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].version_id, v1);
    // The next write preserves it.
    let (w, mut m) = write(&s, b"v3").await;
    s.commit_version(w, &mut m, "b", "k", Versioning::Enabled, None)
        .await
        .unwrap();
    assert_eq!(s.key_versions("b", "k").await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_key_without_versions_leaves_no_directory() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    s.create_bucket("b").await.unwrap();
    s.set_versioning("b", true).await.unwrap();
    let mut ids = Vec::new();
    for (key, body) in [
        ("a/b/k", &b"one"[..]),
        ("a/b/k", b"two"),
        ("a/other", b"kept"),
    ] {
        let (w, mut m) = write(&s, body).await;
        ids.push(
            s.commit_version(w, &mut m, "b", key, Versioning::Enabled, None)
                .await
                .unwrap(),
        );
    }
    let marker = s
        .put_delete_marker("b", "a/b/k", Versioning::Enabled, 2)
        .await
        .unwrap();
    let key_dir = d.path().join("b/_a/_b/_k");
    for id in [&ids[0], &marker] {
        s.delete_version("b", "a/b/k", id, |_| true).await.unwrap();
        assert!(key_dir.join("versions").is_dir(), "a version is left");
    }
    s.delete_version("b", "a/b/k", &ids[1], |_| true)
        .await
        .unwrap();
    // The key's directories went with its last version; its neighbour's stayed.
    assert!(!d.path().join("b/_a/_b").exists());
    assert!(d.path().join("b/_a/_other/versions").is_dir());
    assert!(s.list_version_keys("b", "", false).await.unwrap() == vec!["a/other".to_owned()]);
    // The key can be written again.
    let (w, mut m) = write(&s, b"again").await;
    s.commit_version(w, &mut m, "b", "a/b/k", Versioning::Enabled, None)
        .await
        .unwrap();
    assert_eq!(s.key_versions("b", "a/b/k").await.unwrap().len(), 1);
}

/// Writes of keys race with deletes of their last version, each worker through its own `Store`
/// (as separate processes would): no write or delete fails, nothing written and kept is lost,
/// and once everything is removed nothing of the keys is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruning_races_with_writers_of_other_processes() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    s.create_bucket("b").await.unwrap();
    s.set_versioning("b", true).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let root = d.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let s = Store::open(&root).unwrap();
            let mut kept = None;
            for round in 0..60 {
                let key = format!("p/k{}", round % 2);
                let (w, mut m) = write(&s, format!("{worker}-{round}").as_bytes()).await;
                let id = s
                    .commit_version(w, &mut m, "b", &key, Versioning::Enabled, None)
                    .await
                    .unwrap();
                // Each worker removes what it wrote at once (often the key's last version),
                // but for one version of its last round.
                if worker == 0 && round == 59 {
                    kept = Some((key, id));
                } else {
                    s.delete_version("b", &key, &id, |_| true).await.unwrap();
                }
            }
            kept
        }));
    }
    let mut kept = Vec::new();
    for t in tasks {
        kept.extend(t.await.unwrap());
    }
    let (key, id) = &kept[0];
    s.open_version("b", key, id).await.unwrap();
    assert_eq!(
        s.list_version_keys("b", "", false).await.unwrap(),
        vec![key.clone()]
    );
    s.delete_version("b", key, id, |_| true).await.unwrap();
    assert!(
        s.list_version_keys("b", "", false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!d.path().join("b/_p").exists());
}

/// Versions imported oldest first with their old modification times keep MinIO's order, also
/// around a null version written in between (which sorts by its time) and a delete marker, and
/// a later live write is newer than all of them.
#[tokio::test]
async fn imported_versions_keep_their_order() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    s.create_bucket("b").await.unwrap();
    let at = |ms: i64| (ms * 1000) as u64;
    let imported = |body: &'static [u8], ms: i64, mode: Versioning| {
        let s = s.clone();
        async move {
            let (w, mut m) = write(&s, body).await;
            m.modified_ms = ms;
            s.commit_imported_version(w, &mut m, "b", "k", mode, at(ms))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let first = imported(b"first", 1_000_000, Versioning::Enabled).await;
    let null = imported(b"null", 2_000_000, Versioning::Suspended).await;
    assert_eq!(null, "null");
    let marker = s
        .put_imported_delete_marker("b", "k", Versioning::Enabled, 3_000_000, at(3_000_000))
        .await
        .unwrap();
    let last = imported(b"last", 4_000_000, Versioning::Enabled).await;
    let listed: Vec<_> = s
        .key_versions("b", "k")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version_id, v.meta.delete_marker))
        .collect();
    assert_eq!(
        listed,
        vec![
            (last.clone(), false),
            (marker, true),
            ("null".to_owned(), false),
            (first, false)
        ]
    );
    let (w, mut m) = write(&s, b"live").await;
    let live = s
        .commit_version(w, &mut m, "b", "k", Versioning::Enabled, None)
        .await
        .unwrap();
    assert!(
        live < last,
        "a live write sorts before (is newer than) every import"
    );
    assert_eq!(
        body_of(&s, s.open_latest("b", "k").await.unwrap()).await,
        b"live"
    );
}
