//! The IAM decision wired into s3s: [`Auth`] gives s3s the secret key of an access key so it can
//! check the SigV4 signature, and [`Access`] decides every operation from the caller's policies
//! and the bucket policy.
//!
//! The rules of a decision are [`Decider`]'s. Canned ACLs other than `private` and grant headers
//! are refused: access is given by policies.
//!
//! Each operation asks for the actions AWS documents for it ([`s3_actions`]: a named version
//! needs the version action; tag, retention and legal-hold headers need their own actions), with
//! condition values from the request as s3s decodes it (a percent-encoded parameter name is the
//! same parameter). What only the parsed input shows is decided in the operation's hook: each
//! key of a DeleteObjects on its own (action, resource, `s3:versionid`, governance bypass), the
//! form's key of a browser POST (`s3:authType` `POST`, `s3:signatureversion` of the form's
//! signature; the key as `${filename}` makes it), the `LocationConstraint` of a
//! CreateBucket, the tags in the body of a PutObjectTagging.
//!
//! A copy also needs `s3:GetObject` (`s3:GetObjectVersion` for a named version) on its source,
//! and `s3:GetObjectTagging` (`…VersionTagging`) when it takes the source's tags (CopyObject,
//! tagging directive `COPY`, the default) and the source has tags; `s3:x-amz-copy-source` is
//! the source as the copy reads it (`bucket/key`, decoded), however the header spells it.
//! Object-tag conditions: [`super::object_tags`].
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    CopyObjectInput, CopySource, CreateBucketInput, DeleteObjectsInput, PostObjectInput,
    PutObjectTaggingInput, TaggingDirective, UploadPartCopyInput,
};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};

use super::Iam;
use super::action::{
    RequestFacts, condition_values, names_version, query_pairs, s3_actions, write_header_actions,
};
use super::decider::Decider;
use super::object_tags::{
    CopySourceCheck, EXISTING_OBJECT_TAG, ObjectTagCheck, TagDecision, current_tags,
    existing_tags_apply, header_tags, insert_request,
};
use super::policy::{Decision, Request};

/// The client's address, put in the request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Whether the caller may bypass GOVERNANCE retention (`s3:BypassGovernanceRetention`), put in
/// the request extensions when it sends `x-amz-bypass-governance-retention: true`.
#[derive(Debug, Clone, Copy)]
pub struct GovernanceBypass(pub bool);

/// The most keys one DeleteObjects may name (AWS's limit; more is `MalformedXML`).
pub const MAX_DELETE_KEYS: usize = 1000;

/// The refusal of a DeleteObjects naming more than [`MAX_DELETE_KEYS`] keys, as AWS words it.
pub fn too_many_delete_keys() -> S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

/// What the access check decided for one key of a DeleteObjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDecision {
    /// `s3:DeleteObject` (or `s3:DeleteObjectVersion` for a named version) is allowed on it.
    pub allowed: bool,
    /// The request asked to bypass GOVERNANCE retention and `s3:BypassGovernanceRetention` is
    /// allowed on this key.
    pub bypass: bool,
}

/// The decision for each key of a DeleteObjects, in the order of the request, put in the
/// request extensions: AWS deletes the keys the caller may delete and reports the others as
/// `AccessDenied` in the result, so the batch is decided key by key, never once for the bucket.
#[derive(Debug, Clone)]
pub struct DeleteObjectsDecisions(pub Vec<KeyDecision>);

/// The buckets a ListBuckets may show to a user who may not list them all: those where its
/// policies or the bucket's policy allow `s3:ListBucket` or `s3:GetBucketLocation`.
#[derive(Clone)]
pub struct VisibleBuckets {
    iam: Arc<Iam>,
    snapshot: Arc<super::Snapshot>,
    user: String,
    conditions: HashMap<String, Vec<String>>,
}

impl VisibleBuckets {
    /// Whether `bucket` is listed.
    pub fn shows(&self, bucket: &str) -> bool {
        let Some(u) = self.snapshot.users.get(&self.user) else {
            return false;
        };
        ["s3:ListBucket", "s3:GetBucketLocation"]
            .iter()
            .any(|action| {
                let req = Request {
                    action,
                    bucket,
                    object: "",
                    principal: Some(&self.user),
                    conditions: &self.conditions,
                };
                let by_bucket = self
                    .iam
                    .bucket_policy(bucket)
                    .map_or(Decision::NoMatch, |p| p.evaluate(&req));
                self.snapshot.evaluate_user(u, &req).and(by_bucket) == Decision::Allow
            })
    }
}

/// Secret keys for s3s's SigV4 check: the root user's and every enabled user's.
pub struct Auth(pub Arc<Iam>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.0.root_user() {
            return Ok(SecretKey::from(self.0.root_secret().expose()));
        }
        let unavailable = |e: super::IamError| {
            tracing::error!(error = %e, "IAM state unavailable");
            s3_error!(InternalError, "The IAM state could not be read.")
        };
        let mut snap = self.0.snapshot().await.map_err(unavailable)?;
        if !snap.users.contains_key(access_key) {
            // Perhaps added on another gateway a moment ago.
            snap = self.0.snapshot_for_unknown().await.map_err(unavailable)?;
        }
        match snap.users.get(access_key) {
            Some(u) if u.enabled => Ok(SecretKey::from(u.secret.expose())),
            Some(_) => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "Your account is disabled; please contact your administrator.",
            )),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// The root user.
    Root(&'a str),
    /// A user.
    User(&'a str),
    /// Nobody signed the request.
    Anonymous,
}

impl<'a> Caller<'a> {
    fn name(&self) -> Option<&'a str> {
        match self {
            Caller::Root(n) | Caller::User(n) => Some(n),
            Caller::Anonymous => None,
        }
    }
}

pub(super) fn access_denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied.")
}

impl Iam {
    /// The caller of a request with these credentials.
    pub fn caller<'a>(&self, access_key: Option<&'a str>) -> Caller<'a> {
        match access_key {
            None => Caller::Anonymous,
            Some(k) if k == self.root_user() => Caller::Root(k),
            Some(k) => Caller::User(k),
        }
    }

    /// Decides one action on `bucket`/`object` (both may be empty) for `caller`: `Err` is
    /// `AccessDenied` (or the IAM state being unreadable).
    pub async fn authorize(
        &self,
        caller: Caller<'_>,
        op: &str,
        action: &str,
        bucket: &str,
        object: &str,
        conditions: &HashMap<String, Vec<String>>,
    ) -> S3Result<()> {
        match self
            .allows(caller, op, action, bucket, object, conditions)
            .await?
        {
            true => Ok(()),
            false => Err(access_denied()),
        }
    }

    /// Whether `caller` may do `action` on `bucket`/`object`; `Err` only when the IAM state
    /// cannot be read.
    pub async fn allows(
        &self,
        caller: Caller<'_>,
        op: &str,
        action: &str,
        bucket: &str,
        object: &str,
        conditions: &HashMap<String, Vec<String>>,
    ) -> S3Result<bool> {
        Ok(self
            .decider(caller, bucket)
            .await?
            .allows(op, action, object, conditions))
    }

    /// The decisions of `caller` on `bucket` (empty: service-level), with the caller's policies
    /// and the bucket policy as they are now; `Err` only when the IAM state cannot be read.
    pub async fn decider(&self, caller: Caller<'_>, bucket: &str) -> S3Result<Decider> {
        let bucket_policy = if bucket.is_empty() {
            None
        } else {
            self.bucket_policy(bucket)
        };
        Ok(match caller {
            Caller::Root(name) => Decider::root(name, bucket, bucket_policy),
            Caller::Anonymous => Decider::anonymous(bucket, bucket_policy),
            Caller::User(name) => {
                let snap = self.snapshot().await.map_err(|e| {
                    tracing::error!(error = %e, "IAM state unavailable");
                    s3_error!(InternalError, "The IAM state could not be read.")
                })?;
                Decider::user(name, snap, bucket, bucket_policy)
            }
        })
    }

    /// Decides every action of `actions` (all are needed).
    async fn authorize_all(
        &self,
        caller: Caller<'_>,
        op: &str,
        actions: &[String],
        bucket: &str,
        object: &str,
        conditions: &HashMap<String, Vec<String>>,
    ) -> S3Result<()> {
        for action in actions {
            self.authorize(caller, op, action, bucket, object, conditions)
                .await?;
        }
        Ok(())
    }
}

/// The per-request check.
pub struct Access {
    /// The IAM state.
    pub iam: Arc<Iam>,
    /// Whether clients reach us over TLS (`aws:SecureTransport`).
    pub tls: bool,
    /// The objects, whose tags `s3:ExistingObjectTag` conditions test.
    pub store: crate::storage::Store,
    /// Whether a gateway backend holds the objects: only [`crate::s3::GATEWAY_OPERATIONS`]
    /// are served, every other operation is refused with `501 NotImplemented`.
    pub gateway: bool,
}

/// Refuses a canned ACL other than `private` (a header, or a browser form's field).
fn refuse_canned_acl(acl: Option<&[u8]>) -> S3Result<()> {
    match acl {
        Some(acl) if acl != b"private" => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Only the 'private' canned ACL is supported; grant access with a bucket policy or user policies.",
        )),
        _ => Ok(()),
    }
}

fn refuse_acl_headers(headers: &http::HeaderMap) -> S3Result<()> {
    refuse_canned_acl(headers.get("x-amz-acl").map(|v| v.as_bytes()))?;
    if headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-grant-"))
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "ACL grants are not supported; grant access with a bucket policy or user policies.",
        ));
    }
    Ok(())
}

fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find_map(|(k, v)| (k == name).then_some(v.as_str()))
}

/// Operations decided in their own hook, where s3s has parsed the input the decision needs:
/// each key of a DeleteObjects, the form's key of a browser POST, the `LocationConstraint` of a
/// CreateBucket, the tags in the body of a PutObjectTagging.
fn decided_in_hook(op: &str) -> bool {
    matches!(
        op,
        "DeleteObjects" | "PostObject" | "CreateBucket" | "PutObjectTagging"
    )
}

/// Sets `s3:x-amz-copy-source` to the source as the copy reads it: `bucket/key`, decoded, without
/// a leading `/` or the `versionId`, so that `/b/k` or `b/%6B` cannot slip past a policy written
/// for `b/k`. A header s3s cannot parse is left as it is: s3s refuses that request.
fn normalize_copy_source(conditions: &mut HashMap<String, Vec<String>>, headers: &http::HeaderMap) {
    let parsed = headers
        .get("x-amz-copy-source")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| CopySource::parse(h).ok());
    if let Some(CopySource::Bucket { bucket, key, .. }) = parsed {
        conditions.insert(
            "s3:x-amz-copy-source".into(),
            vec![format!("{bucket}/{key}")],
        );
    }
}

impl Access {
    fn facts<'a>(
        &self,
        caller: Caller<'a>,
        headers: &'a http::HeaderMap,
        query: Option<&'a str>,
        ext: &http::Extensions,
    ) -> RequestFacts<'a> {
        RequestFacts {
            headers,
            query,
            secure: self.tls,
            source_ip: ext.get::<ClientAddr>().map(|a| a.0.ip()),
            user: caller.name(),
            root: matches!(caller, Caller::Root(_)),
        }
    }

    /// Decides `actions` of operation `op` on `object` (empty: the bucket). When a statement that
    /// could decide them tests `s3:ExistingObjectTag`, the tags of the version the request
    /// names are read first, and the decision is returned to be held against the version the
    /// operation opens; otherwise nothing is read and `None` is returned.
    async fn decide_object(
        &self,
        decider: Arc<Decider>,
        op: &str,
        actions: &[String],
        object: &str,
        version_id: Option<&str>,
        conditions: &HashMap<String, Vec<String>>,
    ) -> S3Result<Option<TagDecision>> {
        let tested = existing_tags_apply(op)
            && !object.is_empty()
            && actions
                .iter()
                .any(|a| decider.may_test(a, object, EXISTING_OBJECT_TAG));
        if !tested {
            return match actions
                .iter()
                .all(|a| decider.allows(op, a, object, conditions))
            {
                true => Ok(None),
                false => Err(access_denied()),
            };
        }
        let tags = current_tags(&self.store, decider.bucket(), object, version_id).await?;
        let d = TagDecision::new(
            decider,
            op,
            actions.to_vec(),
            object,
            conditions.clone(),
            None,
        );
        d.check(&tags)?;
        Ok(Some(d.decided_on(tags)))
    }

    /// A part of a multipart upload carries no SSE header: its SSE condition values are those
    /// the upload was created with (so a deny-unencrypted policy does not refuse its parts).
    async fn upload_sse(&self, bucket: &str, query: &[(String, String)]) -> Option<&'static str> {
        let id = query_param(query, "uploadId")?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let path = self
            .iam
            .data_dir
            .join(crate::storage::layout::SYSTEM_DIR)
            .join("multipart")
            .join(bucket)
            .join(id)
            .join("upload.json");
        let data = tokio::fs::read(path).await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
        match v.get("encryption")?.get("mode")?.as_str()? {
            "S3" => Some("AES256"),
            "Kms" => Some("aws:kms"),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        crate::metrics::api::record(cx.s3_op().name());
        if cx.credentials().is_some() {
            crate::sigv2::check_time(
                cx.headers(),
                cx.uri().query(),
                time::OffsetDateTime::now_utc(),
            )?;
        }
        let op = cx.s3_op().name().to_owned();
        let op = op.as_str();
        if self.gateway && !crate::s3::GATEWAY_OPERATIONS.contains(&op) {
            return Err(crate::s3::gateway_refuses(op));
        }
        refuse_acl_headers(cx.headers())?;
        if decided_in_hook(op) {
            return Ok(());
        }
        let bypass = wants_bypass(cx.headers());
        let (bucket, object) = match cx.s3_path() {
            S3Path::Root => (String::new(), String::new()),
            S3Path::Bucket { bucket } => (bucket.to_string(), String::new()),
            S3Path::Object { bucket, key } => (bucket.to_string(), key.to_string()),
        };
        let (bucket, object) = (bucket.as_str(), object.as_str());
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        let caller = self.iam.caller(access_key.as_deref());
        // The root user where no bucket policy applies: nothing to evaluate (the common case,
        // kept cheap).
        if matches!(caller, Caller::Root(_))
            && (bucket.is_empty() || self.iam.bucket_policy(bucket).is_none())
        {
            if bypass {
                cx.extensions_mut().insert(GovernanceBypass(true));
            }
            return Ok(());
        }
        let mut ext = std::mem::take(cx.extensions_mut());
        let query = cx.uri().query();
        let params = query_pairs(query);
        let facts = self.facts(caller, cx.headers(), query, &ext);
        let mut conditions = condition_values(&facts);
        // A malformed x-amz-tagging names no tags here; the operation, parsing the same header
        // with the same function, refuses it before anything is written.
        let tags = header_tags(op, cx.headers()).unwrap_or_default();
        insert_request(
            &mut conditions,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if matches!(op, "CopyObject" | "UploadPartCopy") {
            normalize_copy_source(&mut conditions, cx.headers());
        }
        if matches!(
            op,
            "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload"
        ) && let Some(sse) = self.upload_sse(bucket, &params).await
        {
            conditions.insert("s3:x-amz-server-side-encryption".into(), vec![sse.into()]);
        }
        let mut actions = s3_actions(op, names_version(&params));
        actions.extend(write_header_actions(op, cx.headers()));
        let version_id = query_param(&params, "versionId");
        let mut r = match self.iam.decider(caller, bucket).await {
            Ok(decider) => self
                .decide_object(
                    Arc::new(decider),
                    op,
                    &actions,
                    object,
                    version_id,
                    &conditions,
                )
                .await
                .map(|d| {
                    if let Some(d) = d {
                        ext.insert(ObjectTagCheck(d));
                    }
                }),
            Err(e) => Err(e),
        };
        if op == "ListBuckets"
            && r.is_err()
            && let Caller::User(name) = caller
            && let Ok(snapshot) = self.iam.snapshot().await
            && snapshot.users.get(name).is_some_and(|u| u.enabled)
        {
            ext.insert(VisibleBuckets {
                iam: self.iam.clone(),
                snapshot,
                user: name.to_owned(),
                conditions: conditions.clone(),
            });
            r = Ok(());
        }
        if r.is_ok() && bypass {
            let allowed = self
                .iam
                .allows(
                    caller,
                    op,
                    "s3:BypassGovernanceRetention",
                    bucket,
                    object,
                    &conditions,
                )
                .await?;
            ext.insert(GovernanceBypass(allowed));
        }
        *cx.extensions_mut() = ext;
        r
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let takes_tags = req
            .input
            .tagging_directive
            .as_ref()
            .is_none_or(|d| d.as_str() != TaggingDirective::REPLACE);
        self.check_copy_source(
            req.credentials.as_ref().map(|c| c.access_key.as_str()),
            &req.input.copy_source,
            &req.headers,
            req.uri.query(),
            &mut req.extensions,
            takes_tags,
        )
        .await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(
            req.credentials.as_ref().map(|c| c.access_key.as_str()),
            &req.input.copy_source,
            &req.headers,
            req.uri.query(),
            &mut req.extensions,
            false,
        )
        .await
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let caller = self
            .iam
            .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        let input = &req.input;
        let bucket = input.bucket.as_str();
        if matches!(caller, Caller::Root(_)) && self.iam.bucket_policy(bucket).is_none() {
            return Ok(());
        }
        let facts = self.facts(caller, &req.headers, req.uri.query(), &req.extensions);
        let mut conditions = condition_values(&facts);
        insert_request(
            &mut conditions,
            input.tagging.tag_set.iter().map(|t| {
                (
                    t.key.as_deref().unwrap_or_default(),
                    t.value.as_deref().unwrap_or_default(),
                )
            }),
        );
        let version_id = input.version_id.as_deref();
        let actions = s3_actions("PutObjectTagging", version_id.is_some());
        let decider = Arc::new(self.iam.decider(caller, bucket).await?);
        let decided = self
            .decide_object(
                decider,
                "PutObjectTagging",
                &actions,
                &input.key,
                version_id,
                &conditions,
            )
            .await?;
        if let Some(d) = decided {
            req.extensions.insert(ObjectTagCheck(d));
        }
        Ok(())
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let objects = &req.input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(too_many_delete_keys());
        }
        let wants_bypass = req.input.bypass_governance_retention == Some(true);
        let bucket = req.input.bucket.as_str();
        let caller = self
            .iam
            .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        let decisions =
            if matches!(caller, Caller::Root(_)) && self.iam.bucket_policy(bucket).is_none() {
                let all = KeyDecision {
                    allowed: true,
                    bypass: wants_bypass,
                };
                vec![all; objects.len()]
            } else {
                let facts = self.facts(caller, &req.headers, req.uri.query(), &req.extensions);
                let mut conditions = condition_values(&facts);
                let mut decisions = Vec::with_capacity(objects.len());
                for o in objects {
                    // Each key is its own request to the policy: its own resource, its own
                    // version id (`s3:versionid`), its own action.
                    match &o.version_id {
                        Some(v) => conditions.insert("s3:versionid".into(), vec![v.clone()]),
                        None => conditions.remove("s3:versionid"),
                    };
                    let actions = s3_actions("DeleteObject", o.version_id.is_some());
                    let mut allowed = true;
                    for action in &actions {
                        allowed = allowed
                            && self
                                .iam
                                .allows(caller, "DeleteObject", action, bucket, &o.key, &conditions)
                                .await?;
                    }
                    let bypass = allowed
                        && wants_bypass
                        && self
                            .iam
                            .allows(
                                caller,
                                "DeleteObject",
                                "s3:BypassGovernanceRetention",
                                bucket,
                                &o.key,
                                &conditions,
                            )
                            .await?;
                    decisions.push(KeyDecision { allowed, bypass });
                }
                decisions
            };
        req.extensions.insert(DeleteObjectsDecisions(decisions));
        Ok(())
    }

    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        // The key as it will be stored (`${filename}`) and every field of the form, before the
        // decision.
        let signature = crate::s3::post::resolve(req).await?;
        refuse_canned_acl(req.input.acl.as_ref().map(|a| a.as_str().as_bytes()))?;
        let caller = self
            .iam
            .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        let facts = self.facts(caller, &req.headers, req.uri.query(), &req.extensions);
        let mut conditions = condition_values(&facts);
        // The form, not the headers, carries what a browser upload asks for.
        conditions.insert("s3:authtype".into(), vec!["POST".into()]);
        match signature.condition_value() {
            Some(v) => conditions.insert("s3:signatureversion".into(), vec![v.into()]),
            None => conditions.remove("s3:signatureversion"),
        };
        let input = &req.input;
        // Malformed tags: none here, refused by the upload itself (the same parser).
        let tags = crate::s3::tagging::parse_header(input.tagging.as_deref()).unwrap_or_default();
        insert_request(
            &mut conditions,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if let Some(sse) = &input.server_side_encryption {
            conditions.insert(
                "s3:x-amz-server-side-encryption".into(),
                vec![sse.as_str().to_owned()],
            );
        }
        if let Some(id) = &input.ssekms_key_id {
            conditions.insert(
                "s3:x-amz-server-side-encryption-aws-kms-key-id".into(),
                vec![id.clone()],
            );
        }
        let mut actions = vec!["s3:PutObject".to_owned()];
        if input.tagging.is_some() {
            actions.push("s3:PutObjectTagging".into());
        }
        if input.object_lock_mode.is_some() || input.object_lock_retain_until_date.is_some() {
            actions.push("s3:PutObjectRetention".into());
        }
        if input.object_lock_legal_hold_status.is_some() {
            actions.push("s3:PutObjectLegalHold".into());
        }
        self.iam
            .authorize_all(
                caller,
                "PostObject",
                &actions,
                &input.bucket,
                &input.key,
                &conditions,
            )
            .await
    }

    async fn create_bucket(&self, req: &mut S3Request<CreateBucketInput>) -> S3Result<()> {
        let caller = self
            .iam
            .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        if matches!(caller, Caller::Root(_)) {
            // No bucket policy exists before its bucket.
            return Ok(());
        }
        let facts = self.facts(caller, &req.headers, req.uri.query(), &req.extensions);
        let mut conditions = condition_values(&facts);
        let input = &req.input;
        if let Some(location) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
        {
            conditions.insert(
                "s3:locationconstraint".into(),
                vec![location.as_str().to_owned()],
            );
        }
        let mut actions = vec!["s3:CreateBucket".to_owned()];
        // AWS: a bucket made with object lock also needs the rights to configure it.
        if input.object_lock_enabled_for_bucket == Some(true) {
            actions.push("s3:PutBucketObjectLockConfiguration".into());
            actions.push("s3:PutBucketVersioning".into());
        }
        self.iam
            .authorize_all(
                caller,
                "CreateBucket",
                &actions,
                &input.bucket,
                "",
                &conditions,
            )
            .await
    }
}

fn wants_bypass(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

impl Access {
    /// Decides what a copy reads: `s3:GetObject` (`s3:GetObjectVersion`) on the source, its
    /// tags' conditions, and, when the copy takes the source's tags (`takes_tags`), what the
    /// operation holds against the source it opens ([`CopySourceCheck`]).
    async fn check_copy_source(
        &self,
        access_key: Option<&str>,
        source: &CopySource,
        headers: &http::HeaderMap,
        query: Option<&str>,
        ext: &mut http::Extensions,
        takes_tags: bool,
    ) -> S3Result<()> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(s3_error!(
                NotImplemented,
                "Access points are not supported."
            ));
        };
        let caller = self.iam.caller(access_key);
        let facts = self.facts(caller, headers, query, ext);
        let mut conditions = condition_values(&facts);
        normalize_copy_source(&mut conditions, headers);
        // The source's version, not the destination's query, is what the read names.
        match version_id {
            Some(v) => conditions.insert("s3:versionid".into(), vec![v.to_string()]),
            None => conditions.remove("s3:versionid"),
        };
        let decider = Arc::new(self.iam.decider(caller, bucket).await?);
        let versioned = version_id.is_some();
        let read = self
            .decide_object(
                decider.clone(),
                "GetObject",
                &s3_actions("GetObject", versioned),
                key,
                version_id.as_deref(),
                &conditions,
            )
            .await?;
        let copy_tags = takes_tags.then(|| {
            TagDecision::new(
                decider,
                "GetObjectTagging",
                s3_actions("GetObjectTagging", versioned),
                key,
                conditions,
                None,
            )
        });
        ext.insert(CopySourceCheck { read, copy_tags });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_headers() {
        let mut h = http::HeaderMap::new();
        assert!(refuse_acl_headers(&h).is_ok());
        h.insert("x-amz-acl", "private".parse().unwrap());
        assert!(refuse_acl_headers(&h).is_ok());
        h.insert("x-amz-acl", "public-read".parse().unwrap());
        let e = refuse_acl_headers(&h).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotImplemented);
        let mut g = http::HeaderMap::new();
        g.insert("x-amz-grant-read", "uri=x".parse().unwrap());
        assert!(refuse_acl_headers(&g).is_err());
    }

    #[test]
    fn query_params() {
        let q = query_pairs(Some("partNumber=1&upload%49d=ab"));
        assert_eq!(query_param(&q, "uploadId"), Some("ab"));
        let q = query_pairs(Some("xuploadId=ab"));
        assert_eq!(query_param(&q, "uploadId"), None);
        assert_eq!(query_param(&[], "uploadId"), None);
    }
}
