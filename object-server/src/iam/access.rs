//! The IAM decision wired into s3s: [`Auth`] gives s3s the secret key of an access key so it can
//! check the SigV4 signature, and [`Access`] decides every operation from the caller's policies
//! and the bucket policy.
//!
//! Rules: the root user may do everything, except what the bucket policy explicitly denies
//! (bucket-policy management itself stays allowed so an owner is never locked out); a user
//! needs an allow from its policies or from the bucket policy and no deny from either; an
//! anonymous request needs an allow from the bucket policy. Canned ACLs other than `private`
//! and grant headers are refused: access is given by policies.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};

use super::Iam;
use super::action::{RequestFacts, condition_values, manages_bucket_policy, s3_action};
use super::policy::{Decision, Request};

/// The client's address, put in the request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Whether the caller may bypass GOVERNANCE retention (`s3:BypassGovernanceRetention`), put in
/// the request extensions when it sends `x-amz-bypass-governance-retention: true`.
#[derive(Debug, Clone, Copy)]
pub struct GovernanceBypass(pub bool);

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
        let snap = self.0.snapshot().await.map_err(|e| {
            tracing::error!(error = %e, "IAM state unavailable");
            s3_error!(InternalError, "The IAM state could not be read.")
        })?;
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

fn access_denied() -> S3Error {
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

    /// Decides one action on `bucket`/`object` (both may be empty) for `caller`.
    pub async fn authorize(
        &self,
        caller: Caller<'_>,
        op: &str,
        action: &str,
        bucket: &str,
        object: &str,
        conditions: &HashMap<String, Vec<String>>,
    ) -> S3Result<()> {
        let req = Request {
            action,
            bucket,
            object,
            principal: caller.name(),
            conditions,
        };
        let by_bucket = if bucket.is_empty() {
            Decision::NoMatch
        } else {
            self.bucket_policy(bucket)
                .map_or(Decision::NoMatch, |p| p.evaluate(&req))
        };
        let by_user = match caller {
            Caller::Root(_) => {
                if by_bucket == Decision::Deny && !manages_bucket_policy(op) {
                    return Err(access_denied());
                }
                return Ok(());
            }
            Caller::Anonymous => Decision::NoMatch,
            Caller::User(name) => {
                let snap = self.snapshot().await.map_err(|e| {
                    tracing::error!(error = %e, "IAM state unavailable");
                    s3_error!(InternalError, "The IAM state could not be read.")
                })?;
                match snap.users.get(name) {
                    Some(u) if u.enabled => snap.evaluate_user(u, &req),
                    _ => return Err(access_denied()),
                }
            }
        };
        match by_user.and(by_bucket) {
            Decision::Allow => Ok(()),
            _ => Err(access_denied()),
        }
    }
}

/// The per-request check.
pub struct Access {
    /// The IAM state.
    pub iam: Arc<Iam>,
    /// Whether clients reach us over TLS (`aws:SecureTransport`).
    pub tls: bool,
}

fn refuse_acl_headers(headers: &http::HeaderMap) -> S3Result<()> {
    if let Some(acl) = headers.get("x-amz-acl")
        && acl.as_bytes() != b"private"
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Only the 'private' canned ACL is supported; grant access with a bucket policy or user policies.",
        ));
    }
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

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
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

    /// A part of a multipart upload carries no SSE header: its SSE condition values are those
    /// the upload was created with (so a deny-unencrypted policy does not refuse its parts).
    async fn upload_sse(&self, bucket: &str, query: Option<&str>) -> Option<&'static str> {
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
        refuse_acl_headers(cx.headers())?;
        let bypass = cx
            .headers()
            .get("x-amz-bypass-governance-retention")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let op = cx.s3_op().name().to_owned();
        let op = op.as_str();
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
        let facts = self.facts(caller, cx.headers(), query, &ext);
        let mut conditions = condition_values(&facts);
        if matches!(
            op,
            "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload"
        ) && let Some(sse) = self.upload_sse(bucket, query).await
        {
            conditions.insert("s3:x-amz-server-side-encryption".into(), vec![sse.into()]);
        }
        let mut r = self
            .iam
            .authorize(caller, op, &s3_action(op), bucket, object, &conditions)
            .await;
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
                .authorize(
                    caller,
                    op,
                    "s3:BypassGovernanceRetention",
                    bucket,
                    object,
                    &conditions,
                )
                .await
                .is_ok();
            ext.insert(GovernanceBypass(allowed));
        }
        *cx.extensions_mut() = ext;
        r
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_copy_source(
            req.credentials.as_ref().map(|c| c.access_key.as_str()),
            &req.input.copy_source,
            &req.headers,
            req.uri.query(),
            &req.extensions,
        )
        .await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(
            req.credentials.as_ref().map(|c| c.access_key.as_str()),
            &req.input.copy_source,
            &req.headers,
            req.uri.query(),
            &req.extensions,
        )
        .await
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let caller = self
            .iam
            .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
        let facts = self.facts(caller, &req.headers, req.uri.query(), &req.extensions);
        let conditions = condition_values(&facts);
        for o in &req.input.delete.objects {
            self.iam
                .authorize(
                    caller,
                    "DeleteObject",
                    "s3:DeleteObject",
                    &req.input.bucket,
                    &o.key,
                    &conditions,
                )
                .await?;
        }
        Ok(())
    }
}

impl Access {
    async fn check_copy_source(
        &self,
        access_key: Option<&str>,
        source: &CopySource,
        headers: &http::HeaderMap,
        query: Option<&str>,
        ext: &http::Extensions,
    ) -> S3Result<()> {
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(s3_error!(
                NotImplemented,
                "Access points are not supported."
            ));
        };
        let caller = self.iam.caller(access_key);
        let facts = self.facts(caller, headers, query, ext);
        let conditions = condition_values(&facts);
        self.iam
            .authorize(
                caller,
                "GetObject",
                "s3:GetObject",
                bucket,
                key,
                &conditions,
            )
            .await
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
        assert_eq!(
            query_param(Some("partNumber=1&uploadId=ab"), "uploadId"),
            Some("ab")
        );
        assert_eq!(query_param(Some("xuploadId=ab"), "uploadId"), None);
        assert_eq!(query_param(None, "uploadId"), None);
    }
}
