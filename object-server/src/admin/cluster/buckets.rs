//! `mc admin cluster bucket export|import`: `GET /export-bucket-metadata[?bucket=B]` answers a
//! zip with one file per configuration of each bucket, as MinIO's `ExportBucketMetadataHandler`
//! writes it (facts from MinIO's public `cmd/admin-bucket-handlers.go`): `B/versioning.xml`,
//! `B/object-lock.xml`, `B/policy.json`, `B/lifecycle.xml`, `B/bucket-encryption.xml`,
//! `B/tagging.xml` (the XML the S3 GET answers), and an empty `B/notification.xml` for every
//! bucket (as MinIO: so a bucket without settings is in the archive too). MinIO's archives
//! may also hold notification rules, `B/quota.json`, `B/replication.xml` and
//! `B/bucket-targets.json`, which Coffer does not have.
//!
//! `PUT /import-bucket-metadata` reads the archive into the same
//! [`BucketSettings`] the offline import reads from MinIO's drives, checks every one as the S3
//! PUT of that configuration checks it, and only when all pass creates the buckets and applies
//! the settings with the offline import's code (`Importer::create_bucket`,
//! `Importer::apply_bucket_configs`). A malformed archive or configuration changes nothing. The
//! answer is madmin's `BucketMetaImportErrs`: per bucket and configuration, whether it was set
//! and why not; notification rules, quotas and replication are answered as not imported.
use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{Body, S3Error, S3ErrorCode, S3Response, S3Result};
use serde_json::{Value, json};

use super::archive::{self, Limits};
use crate::admin::{AdminRoute, Call};
use crate::import::bucket::request;
use crate::import::bucket_meta::{BucketSettings, xml};
use crate::s3::CofferS3;

const POLICY: &str = "policy.json";
const NOTIFICATION: &str = "notification.xml";
const LIFECYCLE: &str = "lifecycle.xml";
const ENCRYPTION: &str = "bucket-encryption.xml";
const TAGGING: &str = "tagging.xml";
const QUOTA: &str = "quota.json";
const OBJECT_LOCK: &str = "object-lock.xml";
const VERSIONING: &str = "versioning.xml";
const REPLICATION: &str = "replication.xml";
const TARGETS: &str = "bucket-targets.json";

const LIMITS: Limits = Limits {
    entries: 10_000,
    entry_bytes: 1 << 20,
    total_bytes: 64 << 20,
};

fn invalid(msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::InvalidRequest, msg);
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn xml_of<T: s3s::xml::SerializeContent>(root: &str, value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = s3s::xml::Serializer::new(&mut out);
    ser.content_with_ns(root, "http://s3.amazonaws.com/doc/2006-03-01/", value)
        .expect("writes into memory");
    out
}

/// `Ok(None)` for the S3 error a GET answers when the bucket has no such configuration.
fn absent<T>(r: S3Result<S3Response<T>>, none: &[&str]) -> S3Result<Option<T>> {
    match r {
        Ok(r) => Ok(Some(r.output)),
        Err(e) if none.contains(&e.code().as_str()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One bucket's files, through the S3 GETs of Coffer's own code.
async fn bucket_files(s3: &CofferS3, b: &str) -> S3Result<Vec<(String, Vec<u8>)>> {
    let bucket = || b.to_owned();
    let mut files = Vec::new();
    let mut add = |name: &str, data: Vec<u8>| files.push((format!("{b}/{name}"), data));
    // Coffer has no notifications; MinIO writes this empty file for every bucket, and it
    // names a bucket that has no settings at all (the import creates it).
    add(
        NOTIFICATION,
        xml_of(
            "NotificationConfiguration",
            &NotificationConfiguration::default(),
        ),
    );
    let v = s3
        .do_get_bucket_versioning(request(GetBucketVersioningInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await?
        .output;
    if let Some(status) = v.status {
        let c = VersioningConfiguration {
            status: Some(status),
            ..Default::default()
        };
        add(VERSIONING, xml_of("VersioningConfiguration", &c));
    }
    let lock = s3
        .do_get_object_lock_configuration(request(GetObjectLockConfigurationInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await;
    if let Some(c) = absent(lock, &["ObjectLockConfigurationNotFoundError"])?
        .and_then(|o| o.object_lock_configuration)
    {
        add(OBJECT_LOCK, xml_of("ObjectLockConfiguration", &c));
    }
    let policy = s3
        .do_get_bucket_policy(request(GetBucketPolicyInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await;
    if let Some(p) = absent(policy, &["NoSuchBucketPolicy"])?.and_then(|o| o.policy) {
        add(POLICY, p.into_bytes());
    }
    let lifecycle = s3
        .do_get_bucket_lifecycle_configuration(request(GetBucketLifecycleConfigurationInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await;
    if let Some(rules) = absent(lifecycle, &["NoSuchLifecycleConfiguration"])?.and_then(|o| o.rules)
    {
        let c = BucketLifecycleConfiguration { rules };
        add(LIFECYCLE, xml_of("LifecycleConfiguration", &c));
    }
    let enc = s3
        .do_get_bucket_encryption(request(GetBucketEncryptionInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await;
    if let Some(c) = absent(enc, &["ServerSideEncryptionConfigurationNotFoundError"])?
        .and_then(|o| o.server_side_encryption_configuration)
    {
        add(ENCRYPTION, xml_of("ServerSideEncryptionConfiguration", &c));
    }
    let tags = s3
        .do_get_bucket_tagging(request(GetBucketTaggingInput {
            bucket: bucket(),
            expected_bucket_owner: None,
        }))
        .await;
    if let Some(o) = absent(tags, &["NoSuchTagSet"])? {
        add(TAGGING, xml_of("Tagging", &Tagging { tag_set: o.tag_set }));
    }
    Ok(files)
}

/// `GET /export-bucket-metadata`.
pub(super) async fn export(a: &AdminRoute, c: &Call) -> S3Result<S3Response<Body>> {
    let buckets = match c.param("bucket") {
        Some(b) => {
            a.store.require_bucket(b).map_err(crate::s3::storage_err)?;
            vec![b.to_owned()]
        }
        None => a
            .store
            .list_buckets()
            .await
            .map_err(crate::s3::storage_err)?
            .into_iter()
            .map(|(b, _)| b)
            .collect(),
    };
    let importer = a.importer();
    let mut files = Vec::new();
    for b in &buckets {
        files.extend(bucket_files(importer.s3(), b).await?);
    }
    tracing::info!(by = %c.access_key, buckets = buckets.len(), "bucket metadata exported");
    Ok(crate::admin::bytes_response(
        archive::write(files.iter().map(|(n, d)| (n.clone(), &d[..]))),
        "application/zip",
    ))
}

/// A bucket of an archive: its settings, and the configurations Coffer does not have.
#[derive(Default)]
struct Imported {
    settings: BucketSettings,
    present: Vec<&'static str>,
    /// (configuration, why not imported)
    not_imported: Vec<(&'static str, String)>,
}

/// Reads and checks every configuration of the archive, as the S3 PUT of each checks it.
async fn read_archive(
    zip: &[u8],
    kms: &dyn crate::kms::Kms,
) -> Result<BTreeMap<String, Imported>, String> {
    let mut out: BTreeMap<String, Imported> = BTreeMap::new();
    for e in archive::read(zip, &LIMITS)? {
        let (bucket, file) = match e.name.split('/').collect::<Vec<_>>()[..] {
            [b, f] => (b.to_owned(), f),
            _ => return Err(format!("{}: expected BUCKET/FILE", e.name)),
        };
        if !s3s::path::check_bucket_name(&bucket) {
            return Err(format!("{}: not a valid bucket name", e.name));
        }
        let b = out.entry(bucket.clone()).or_default();
        let at = |why: String| format!("{}: {why}", e.name);
        let data = &e.data[..];
        let s = &mut b.settings;
        let field = match file {
            VERSIONING => {
                let c: VersioningConfiguration = xml(data, "versioning").map_err(at)?;
                s.versioning = c.status.map(|s| s.as_str().to_owned());
                "versioning"
            }
            OBJECT_LOCK => {
                let c: ObjectLockConfiguration = xml(data, "object lock").map_err(at)?;
                let lock = crate::s3::lock::validate_lock_configuration(Some(c))
                    .map_err(|e| at(e.message().unwrap_or("invalid").to_owned()))?;
                s.object_lock = Some(lock);
                "olock"
            }
            POLICY => {
                let p = crate::iam::policy::Policy::parse_bucket_policy(data)
                    .map_err(|e| at(e.to_string()))?;
                if !p.only_about_bucket(&bucket) {
                    return Err(at("every Resource must be in this bucket".into()));
                }
                s.policy = Some(String::from_utf8_lossy(data).into_owned());
                "policy"
            }
            LIFECYCLE => {
                let c: BucketLifecycleConfiguration = xml(data, "lifecycle").map_err(at)?;
                crate::s3::lifecycle::validate_lifecycle(Some(c))
                    .map_err(|e| at(e.message().unwrap_or("invalid").to_owned()))?;
                s.lifecycle = Some(data.to_vec());
                "lifecycle"
            }
            ENCRYPTION => {
                let c: ServerSideEncryptionConfiguration = xml(data, "encryption").map_err(at)?;
                let rule = c
                    .rules
                    .first()
                    .and_then(|r| r.apply_server_side_encryption_by_default.as_ref())
                    .ok_or_else(|| at("no default rule".into()))?;
                match rule.sse_algorithm.as_str() {
                    ServerSideEncryption::AES256 => {}
                    ServerSideEncryption::AWS_KMS => {
                        if let Some(k) = rule.kms_master_key_id.as_deref() {
                            let k = crate::sse::headers::kms_key_name(k);
                            kms.generate_key(k, b"{}")
                                .await
                                .map_err(|e| at(format!("KMS key {k}: {e}")))?;
                        }
                    }
                    other => return Err(at(format!("unsupported algorithm {other}"))),
                }
                s.encryption = Some(data.to_vec());
                "sse"
            }
            TAGGING => {
                let c: Tagging = xml(data, "tagging").map_err(at)?;
                let pairs = c
                    .tag_set
                    .into_iter()
                    .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()));
                crate::s3::tagging::validate(pairs.collect(), 50)
                    .map_err(|e| at(e.message().unwrap_or("invalid").to_owned()))?;
                s.tagging = Some(data.to_vec());
                "tagging"
            }
            NOTIFICATION => {
                let c: NotificationConfiguration = xml(data, "notification").map_err(at)?;
                let empty = c.event_bridge_configuration.is_none()
                    && c.lambda_function_configurations
                        .is_none_or(|l| l.is_empty())
                    && c.queue_configurations.is_none_or(|l| l.is_empty())
                    && c.topic_configurations.is_none_or(|l| l.is_empty());
                // MinIO exports an empty one for every bucket: nothing to import.
                if empty {
                    continue;
                }
                b.not_imported.push((
                    "notification",
                    "Coffer has no bucket notifications: not imported".into(),
                ));
                continue;
            }
            QUOTA => {
                let q: Value =
                    serde_json::from_slice(data).map_err(|e| at(format!("not JSON: {e}")))?;
                let limit = |k: &str| q.get(k).and_then(Value::as_u64).unwrap_or(0);
                if limit("quota") == 0 && limit("size") == 0 {
                    continue;
                }
                b.not_imported
                    .push(("quota", "Coffer has no bucket quotas: not imported".into()));
                continue;
            }
            REPLICATION | TARGETS => {
                let text = String::from_utf8_lossy(data);
                let text = text.trim();
                let empty = ["", "{}", "[]", "null", "<BucketTargets></BucketTargets>"];
                if file == TARGETS && empty.contains(&text) {
                    continue;
                }
                b.not_imported.push((
                    "error",
                    format!("{file}: Coffer has no bucket replication: not imported"),
                ));
                continue;
            }
            other => return Err(at(format!("{other} is not a bucket configuration file"))),
        };
        b.present.push(field);
    }
    Ok(out)
}

/// `PUT /import-bucket-metadata`.
pub(super) async fn import(a: &AdminRoute, c: &Call) -> S3Result<S3Response<Body>> {
    let kms = a.iam.kms().clone();
    let buckets = read_archive(&c.body, kms.as_ref())
        .await
        .map_err(|e| invalid(format!("nothing was imported: {e}")))?;
    let importer = a.importer();
    let mut answer = serde_json::Map::new();
    for (bucket, b) in &buckets {
        let mut status = serde_json::Map::new();
        for f in &b.present {
            status.insert((*f).to_owned(), json!({"isSet": true}));
        }
        let mut error = Vec::new();
        let existed = a.store.bucket_exists(bucket);
        match importer.create_bucket(bucket, &b.settings).await {
            Err(e) => error.push(format!("creating the bucket: {e}")),
            Ok(()) => {
                if let Some(lock) = &b.settings.object_lock
                    && existed
                    && let Err(e) = existing_lock(importer.s3(), bucket, lock).await
                {
                    status.insert("olock".into(), json!({"isSet": true, "error": e}));
                }
                let (_, failed) = importer.apply_bucket_configs(bucket, &b.settings).await;
                for (what, e) in failed {
                    let field = match what {
                        "default encryption" => "sse",
                        other => other,
                    };
                    status.insert(field.into(), json!({"isSet": true, "error": e}));
                }
            }
        }
        for (field, why) in &b.not_imported {
            match *field {
                "error" => error.push(why.clone()),
                f => {
                    status.insert(f.into(), json!({"isSet": true, "error": why}));
                }
            }
        }
        if !error.is_empty() {
            status.insert("error".into(), Value::String(error.join("; ")));
        }
        answer.insert(bucket.clone(), Value::Object(status));
    }
    tracing::info!(by = %c.access_key, buckets = buckets.len(), "bucket metadata imported");
    crate::admin::json(&json!({ "buckets": answer }))
}

/// An existing bucket keeps its object lock setting (S3 has no way to turn it on later); its
/// default retention is the archive's.
async fn existing_lock(
    s3: &CofferS3,
    bucket: &str,
    lock: &crate::s3::lock::LockConfig,
) -> Result<(), String> {
    let rule = lock.default.as_ref().map(|d| ObjectLockRule {
        default_retention: Some(DefaultRetention {
            days: d.days,
            years: d.years,
            mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
        }),
    });
    let mut input = PutObjectLockConfigurationInput::builder();
    input.set_bucket(bucket.to_owned());
    input.set_object_lock_configuration(Some(ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    }));
    let input = input.build().map_err(|e| e.to_string())?;
    s3.do_put_object_lock_configuration(request(input))
        .await
        .map(|_| ())
        .map_err(|e| e.message().unwrap_or("refused").to_owned())
}
