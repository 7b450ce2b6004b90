//! Multipart objects on a real directory: moved (not copied) parts, reclaiming, readers.
use std::os::unix::fs::{FileExt, MetadataExt};

use super::*;
use crate::storage::{PartMeta, layout};

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

fn upload_id(n: u8) -> String {
    format!("{n:02x}").repeat(16)
}

/// An upload of `bucket` with one part file per body, as UploadPart leaves it, checked.
async fn upload(s: &Store, id: &str, bodies: &[&[u8]]) -> UploadParts {
    let dir = s.upload_dir("b", id);
    let w = s.writer().await.unwrap();
    w.commit_plain(dir.join("upload.json")).await.unwrap();
    let mut up = UploadParts::new(dir.clone(), id);
    for (i, body) in bodies.iter().enumerate() {
        let n = i as u32 + 1;
        let mut w = s.writer().await.unwrap();
        w.write(body).await.unwrap();
        let m = ObjectMeta {
            size: body.len() as u64,
            etag: format!("{id}-{n}"),
            ..Default::default()
        };
        w.commit(&m, dir.join(part_file_name(n))).await.unwrap();
        let f = std::fs::File::open(dir.join(part_file_name(n))).unwrap();
        up.add(n, &f).unwrap();
    }
    up
}

fn manifest(id: &str, bodies: &[&[u8]]) -> ObjectMeta {
    ObjectMeta {
        size: bodies.iter().map(|b| b.len() as u64).sum(),
        etag: format!("{id}-{}", bodies.len()),
        parts: (1..=bodies.len() as u32)
            .zip(bodies)
            .map(|(n, b)| PartMeta {
                number: n,
                size: b.len() as u64,
                etag: format!("{id}-{n}"),
                key_salt: None,
                checksums: Default::default(),
            })
            .collect(),
        ..Default::default()
    }
}

async fn complete(
    s: &Store,
    key: &str,
    id: &str,
    bodies: &[&[u8]],
    mode: Versioning,
) -> Result<Option<String>, StorageError> {
    let up = upload(s, id, bodies).await;
    let mut m = manifest(id, bodies);
    let w = s.writer().await.unwrap();
    s.commit_object("b", key, w, &mut m, mode, Some(up)).await
}

async fn put(s: &Store, key: &str, body: &[u8], mode: Versioning) -> Option<String> {
    let mut w = s.writer().await.unwrap();
    w.write(body).await.unwrap();
    let mut m = ObjectMeta {
        size: body.len() as u64,
        etag: hex::encode(body),
        ..Default::default()
    };
    s.commit_object("b", key, w, &mut m, mode, None)
        .await
        .unwrap()
}

/// The plaintext body of an opened object: its part files' bodies, or its own.
fn body_of(o: &OpenObject) -> Vec<u8> {
    let mut out = Vec::new();
    let files: Vec<(&std::fs::File, u64)> = if o.meta.part_dir.is_some() {
        o.parts.iter().map(|p| (&*p.file, p.body_len)).collect()
    } else {
        vec![(&*o.file, o.body_len)]
    };
    for (f, len) in files {
        let mut b = vec![0u8; len as usize];
        f.read_exact_at(&mut b, 0).unwrap();
        out.extend(b);
    }
    out
}

async fn read(s: &Store, o: OpenObject) -> Vec<u8> {
    body_of(&s.open_parts(o).await.unwrap().expect("not changed"))
}

fn key_dir(s: &Store, key: &str) -> PathBuf {
    s.root().join("b").join(layout::key_dir(key).unwrap())
}

fn part_dirs(s: &Store, key: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(key_dir(s, key).join(PARTS_DIR))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn complete_moves_the_upload_files_and_copies_nothing() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let id = upload_id(1);
    let up = upload(&s, &id, &[b"hello ", b"world"]).await;
    let inodes: Vec<u64> = (1..=2)
        .map(|n| {
            std::fs::metadata(s.upload_dir("b", &id).join(part_file_name(n)))
                .unwrap()
                .ino()
        })
        .collect();
    let mut m = manifest(&id, &[b"hello ", b"world"]);
    let w = s.writer().await.unwrap();
    s.commit_object("b", "k", w, &mut m, Versioning::Unversioned, Some(up))
        .await
        .unwrap();
    // The upload is gone; its part files (the same inodes) are the object's.
    assert!(!s.upload_dir("b", &id).exists());
    let moved = key_dir(&s, "k").join(PARTS_DIR).join(&id);
    for (n, ino) in (1..=2).zip(&inodes) {
        assert_eq!(
            std::fs::metadata(moved.join(part_file_name(n)))
                .unwrap()
                .ino(),
            *ino
        );
    }
    // Only the listed parts stay (upload.json went).
    assert_eq!(std::fs::read_dir(&moved).unwrap().count(), 2);
    let o = s.open_object("b", "k").await.unwrap();
    assert_eq!(o.body_len, 0);
    assert_eq!(o.meta.part_dir.as_deref(), Some(id.as_str()));
    assert_eq!(read(&s, o).await, b"hello world");
}

#[tokio::test]
async fn overwrite_and_delete_reclaim_the_part_files() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    complete(&s, "a/k", &upload_id(1), &[b"one"], u)
        .await
        .unwrap();
    assert_eq!(part_dirs(&s, "a/k"), vec![upload_id(1)]);
    // A multipart object replacing a multipart object.
    complete(&s, "a/k", &upload_id(2), &[b"two"], u)
        .await
        .unwrap();
    assert_eq!(part_dirs(&s, "a/k"), vec![upload_id(2)]);
    // A single-part PUT replacing it: `parts/` goes entirely.
    put(&s, "a/k", b"plain", u).await;
    assert!(!key_dir(&s, "a/k").join(PARTS_DIR).exists());
    complete(&s, "a/k", &upload_id(3), &[b"three"], u)
        .await
        .unwrap();
    s.delete_object("b", "a/k").await.unwrap();
    // Nothing of the key is left, not even its directories.
    assert!(!s.root().join("b").join("_a").exists());
}

#[tokio::test]
async fn versions_share_and_keep_their_part_files() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let e = Versioning::Enabled;
    let v1 = complete(&s, "k", &upload_id(1), &[b"first ", b"multipart"], e)
        .await
        .unwrap()
        .unwrap();
    // `obj` and `versions/<v1>` are one file: one reference.
    let v2 = put(&s, "k", b"plain", e).await.unwrap();
    assert_eq!(part_dirs(&s, "k"), vec![upload_id(1)]);
    let o = s.open_version("b", "k", &v1).await.unwrap();
    assert_eq!(read(&s, o).await, b"first multipart");
    // A delete marker drops nothing.
    s.put_delete_marker("b", "k", e, 5).await.unwrap();
    assert_eq!(part_dirs(&s, "k"), vec![upload_id(1)]);
    s.delete_version("b", "k", &v1, |_| true).await.unwrap();
    assert!(part_dirs(&s, "k").is_empty());
    let o = s.open_version("b", "k", &v2).await.unwrap();
    assert_eq!(read(&s, o).await, b"plain");
    // Suspended: the null version is replaced, and its parts with it.
    let sus = Versioning::Suspended;
    complete(&s, "k", &upload_id(2), &[b"null"], sus)
        .await
        .unwrap();
    complete(&s, "k", &upload_id(3), &[b"null again"], sus)
        .await
        .unwrap();
    assert_eq!(part_dirs(&s, "k"), vec![upload_id(3)]);
    s.put_delete_marker("b", "k", sus, 6).await.unwrap();
    assert!(part_dirs(&s, "k").is_empty());
    // A metadata rewrite keeps the parts named.
    let v4 = complete(&s, "k", &upload_id(4), &[b"tagged"], e)
        .await
        .unwrap()
        .unwrap();
    let m = s
        .rewrite_meta("b", "k", Some(&v4), |m| {
            m.tags.insert("t".into(), "1".into());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(m.part_dir, Some(upload_id(4)));
    put(&s, "k", b"newer", e).await;
    let o = s.open_version("b", "k", &v4).await.unwrap();
    assert_eq!(o.meta.tags["t"], "1");
    assert_eq!(read(&s, o).await, b"tagged");
}

#[tokio::test]
async fn an_open_reader_keeps_its_bytes_and_a_late_one_opens_again() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    complete(&s, "k", &upload_id(1), &[b"old ", b"bytes"], u)
        .await
        .unwrap();
    let reader = s
        .open_parts(s.open_latest("b", "k").await.unwrap())
        .await
        .unwrap()
        .unwrap();
    // Opened the object file but not yet its parts.
    let late = s.open_latest("b", "k").await.unwrap();
    complete(&s, "k", &upload_id(2), &[b"new"], u)
        .await
        .unwrap();
    assert_eq!(part_dirs(&s, "k"), vec![upload_id(2)]);
    assert_eq!(body_of(&reader), b"old bytes");
    assert!(s.open_parts(late).await.unwrap().is_none());
    let again = s.open_latest("b", "k").await.unwrap();
    assert_eq!(read(&s, again).await, b"new");
}

#[tokio::test]
async fn a_missing_or_foreign_part_is_damage() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    let id = upload_id(1);
    complete(&s, "k", &id, &[b"one", b"two"], u).await.unwrap();
    let dir = key_dir(&s, "k").join(PARTS_DIR).join(&id);
    // Part 2 replaced by a file of another part (its trailer does not match).
    std::fs::copy(dir.join(part_file_name(1)), dir.join(part_file_name(2))).unwrap();
    let o = s.open_latest("b", "k").await.unwrap();
    assert!(matches!(s.open_parts(o).await, Err(StorageError::Damaged)));
    std::fs::remove_file(dir.join(part_file_name(2))).unwrap();
    let o = s.open_latest("b", "k").await.unwrap();
    assert!(matches!(s.open_parts(o).await, Err(StorageError::Damaged)));
}

#[tokio::test]
async fn completing_a_gone_or_changed_upload_changes_nothing() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    put(&s, "k", b"before", u).await;
    // Part 1 uploaded again after the Complete checked it.
    let id = upload_id(1);
    let up = upload(&s, &id, &[b"checked"]).await;
    let mut w = s.writer().await.unwrap();
    w.write(b"again").await.unwrap();
    let again = ObjectMeta {
        size: 5,
        etag: "other".into(),
        ..Default::default()
    };
    w.commit(&again, s.upload_dir("b", &id).join(part_file_name(1)))
        .await
        .unwrap();
    let mut m = manifest(&id, &[b"checked"]);
    let w = s.writer().await.unwrap();
    let r = s
        .commit_object("b", "k", w, &mut m, u, Some(up.clone()))
        .await;
    assert!(matches!(r, Err(StorageError::Refused)), "{r:?}");
    // The upload is back where it was, the key unchanged.
    assert!(s.upload_dir("b", &id).join("upload.json").exists());
    assert_eq!(
        read(&s, s.open_latest("b", "k").await.unwrap()).await,
        b"before"
    );
    // Aborted meanwhile.
    assert!(s.remove_upload_dir(&s.upload_dir("b", &id)).unwrap());
    let mut m = manifest(&id, &[b"checked"]);
    let w = s.writer().await.unwrap();
    let r = s.commit_object("b", "k", w, &mut m, u, Some(up)).await;
    assert!(matches!(r, Err(StorageError::NoSuchUpload)), "{r:?}");
    assert_eq!(
        read(&s, s.open_latest("b", "k").await.unwrap()).await,
        b"before"
    );
}

#[tokio::test]
async fn part_files_no_object_names_are_reclaimed_at_start_up() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    complete(&s, "x/k", &upload_id(1), &[b"kept"], u)
        .await
        .unwrap();
    // What a crash after the move and before the commit (or before a sweep) leaves.
    for key in ["x/k", "y"] {
        let orphan = key_dir(&s, key).join(PARTS_DIR).join(upload_id(9));
        std::fs::create_dir_all(&orphan).unwrap();
        std::fs::write(orphan.join(part_file_name(1)), b"orphan").unwrap();
    }
    assert_eq!(s.reclaim_orphaned_parts(), 2);
    assert_eq!(part_dirs(&s, "x/k"), vec![upload_id(1)]);
    assert!(!key_dir(&s, "y").join(PARTS_DIR).exists());
    assert_eq!(
        read(&s, s.open_latest("b", "x/k").await.unwrap()).await,
        b"kept"
    );
}

/// A crash inside a Complete, after the upload's move and before the object's commit, loses
/// nothing: the start-up sweep puts the upload back, and the retried Complete succeeds. A
/// completed upload's part directory, once no object names it, is removed, not put back.
#[tokio::test]
async fn an_upload_a_crash_left_half_completed_is_put_back() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let u = Versioning::Unversioned;
    put(&s, "x/k", b"old", u).await;
    let id = upload_id(3);
    let bodies: [&[u8]; 2] = [b"first part ", b"second part"];
    let up = upload(&s, &id, &bodies).await;
    // The move, then the crash (the lock dies with the process).
    drop(s.move_in(&key_dir(&s, "x/k"), &up).await.unwrap());
    assert!(!s.upload_dir("b", &id).exists());

    assert_eq!(s.reclaim_orphaned_parts(), 0);
    assert!(s.upload_dir("b", &id).join(UPLOAD_FILE).is_file());
    assert!(!key_dir(&s, "x/k").join(PARTS_DIR).exists());
    assert_eq!(
        read(&s, s.open_latest("b", "x/k").await.unwrap()).await,
        b"old"
    );

    // The client retries: the parts are those it uploaded.
    let mut again = UploadParts::new(s.upload_dir("b", &id), &id);
    for n in 1..=2 {
        let f = std::fs::File::open(s.upload_dir("b", &id).join(part_file_name(n))).unwrap();
        again.add(n, &f).unwrap();
    }
    let mut m = manifest(&id, &bodies);
    let w = s.writer().await.unwrap();
    s.commit_object("b", "x/k", w, &mut m, u, Some(again))
        .await
        .unwrap();
    assert_eq!(
        read(&s, s.open_latest("b", "x/k").await.unwrap()).await,
        b"first part second part"
    );
    assert!(!s.upload_dir("b", &id).exists());

    // Overwritten, the completed upload's parts go, and no upload comes back.
    put(&s, "x/k", b"new", u).await;
    assert_eq!(part_dirs(&s, "x/k"), Vec::<String>::new());
    assert_eq!(s.reclaim_orphaned_parts(), 0);
    assert!(!s.upload_dir("b", &id).exists());
}

/// Completes, PUTs and DELETEs of one key at once (each takes only on-disk locks, so tasks
/// of one process race as two processes would): whatever wins, every part directory left is
/// named by the object, and the object reads whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_one_key_leave_no_orphans() {
    let (_d, s) = store();
    s.create_bucket("b").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let u = Versioning::Unversioned;
            match i % 3 {
                0 => {
                    put(&s, "k", b"plain", u).await;
                }
                1 => {
                    complete(&s, "k", &upload_id(i), &[b"multi", b"part"], u)
                        .await
                        .unwrap();
                }
                _ => s.delete_object("b", "k").await.unwrap(),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    match s.open_latest("b", "k").await {
        Ok(o) => {
            let want = match &o.meta.part_dir {
                Some(d) => vec![d.clone()],
                None => Vec::new(),
            };
            assert_eq!(part_dirs(&s, "k"), want);
            let body = read(&s, o).await;
            assert!(body == b"plain" || body == b"multipart", "{body:?}");
        }
        Err(StorageError::NoSuchKey) => assert!(part_dirs(&s, "k").is_empty()),
        Err(e) => panic!("{e}"),
    }
}
