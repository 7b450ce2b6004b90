//! Object tags in policy conditions, as AWS's service authorization reference for S3 assigns
//! them:
//!
//! - `s3:ExistingObjectTag/<key>`: the tags of the version a request reads or changes, for
//!   GetObject/HeadObject (`s3:GetObject`, `s3:GetObjectVersion`), GetObjectAttributes,
//!   Get/Put/DeleteObjectTagging, Get/PutObjectAcl and the source of a copy. Never for
//!   PutObject or DeleteObject (AWS: no policy grants or denies overwriting or deleting an
//!   object by its tags).
//! - `s3:RequestObjectTag/<key>` and the multi-valued `s3:RequestObjectTagKeys`: the tags a
//!   request writes: `x-amz-tagging` of PutObject, CreateMultipartUpload and CopyObject with
//!   `x-amz-tagging-directive: REPLACE` (with `COPY`, the default, the request names no tags:
//!   the keys are absent, as in AWS's request context), the form of a browser POST, the body of
//!   PutObjectTagging.
//!
//! Cost: an object's tags are read before the decision only when a statement that could decide
//! the request (its principal, action and resource match) tests an `s3:ExistingObjectTag` key
//! ([`super::decider::Decider::may_test`]); otherwise no read is added.
//!
//! The check-then-act race: the tags are read at the access check, and the object can be
//! retagged or replaced before the operation opens it. So the decision is kept
//! ([`TagDecision`], in the request's extensions) and held against the version the operation
//! actually serves or changes: GetObject/HeadObject, GetObjectTagging, Get/PutObjectAcl and copy
//! sources decide again on the tags of the version they opened (an open file never changes
//! under its reader); Put/DeleteObjectTagging decide again inside the metadata rewrite, under
//! the key's lock (versioned buckets) or the bucket's guard. What we guarantee: no bytes, tags
//! or tag change are served on the strength of tags the served or changed version does not
//! carry. What we do not: the policies themselves are those of the check (a policy changed
//! mid-request applies from the next request).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use s3s::{S3Result, s3_error};

use super::decider::Decider;
use crate::storage::{StorageError, Store};

/// The prefix of `s3:ExistingObjectTag/<key>` as policies are parsed (lowercase).
pub const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";
/// The prefix of `s3:RequestObjectTag/<key>` (lowercase).
pub const REQUEST_OBJECT_TAG: &str = "s3:requestobjecttag/";
/// `s3:RequestObjectTagKeys` (lowercase).
pub const REQUEST_OBJECT_TAG_KEYS: &str = "s3:requestobjecttagkeys";

/// Whether requests of operation `op` carry `s3:ExistingObjectTag/<key>` (of their object).
pub fn existing_tags_apply(op: &str) -> bool {
    matches!(
        op,
        "GetObject"
            | "HeadObject"
            | "GetObjectAttributes"
            | "GetObjectTagging"
            | "PutObjectTagging"
            | "DeleteObjectTagging"
            | "GetObjectAcl"
            | "PutObjectAcl"
    )
}

/// Sets `s3:ExistingObjectTag/<key>` to each tag's value (replacing any earlier set).
pub fn insert_existing(
    conditions: &mut HashMap<String, Vec<String>>,
    tags: &BTreeMap<String, String>,
) {
    conditions.retain(|k, _| !k.starts_with(EXISTING_OBJECT_TAG));
    for (k, v) in tags {
        conditions.insert(format!("{EXISTING_OBJECT_TAG}{k}"), vec![v.clone()]);
    }
}

/// Sets `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys` from the tags a request
/// writes (every key of a list with a repeated key: the operation refuses it anyway).
pub fn insert_request<'a>(
    conditions: &mut HashMap<String, Vec<String>>,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (k, v) in tags {
        conditions
            .entry(format!("{REQUEST_OBJECT_TAG}{k}"))
            .or_default()
            .push(v.to_owned());
        conditions
            .entry(REQUEST_OBJECT_TAG_KEYS.to_owned())
            .or_default()
            .push(k.to_owned());
    }
}

/// The tags of `x-amz-tagging` a write request asks for: PutObject, CreateMultipartUpload, and
/// CopyObject when `x-amz-tagging-directive` is `REPLACE` (the header is ignored otherwise, as
/// the copy does). A malformed header is an error (the operation's `InvalidTag`).
pub fn header_tags(op: &str, headers: &http::HeaderMap) -> S3Result<BTreeMap<String, String>> {
    let writes_header = match op {
        "PutObject" | "CreateMultipartUpload" => true,
        "CopyObject" => headers
            .get("x-amz-tagging-directive")
            .is_some_and(|d| d.as_bytes() == b"REPLACE"),
        _ => false,
    };
    match headers.get("x-amz-tagging") {
        Some(h) if writes_header => {
            let h = h
                .to_str()
                .map_err(|_| s3_error!(InvalidTag, "The x-amz-tagging header is not valid."))?;
            crate::s3::tagging::parse_header(Some(h))
        }
        _ => Ok(BTreeMap::new()),
    }
}

/// The tags of the version a request names (the latest without `version_id`); none when there
/// is no such object or version (the operation answers that) or it is a delete marker.
pub async fn current_tags(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<BTreeMap<String, String>> {
    let opened = match version_id {
        Some(v) => store.open_version(bucket, key, v).await,
        None => store.open_latest(bucket, key).await,
    };
    match opened {
        Ok(o) => Ok(o.meta.tags),
        Err(
            StorageError::NoSuchKey
            | StorageError::NoSuchVersion
            | StorageError::NoSuchBucket
            | StorageError::InvalidKey(_),
        ) => Ok(BTreeMap::new()),
        // Deciding without the tags could let a tag-conditioned deny pass: refuse instead.
        Err(e) => {
            tracing::error!(%bucket, error = %e, "object tags unreadable for a policy condition");
            Err(s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            ))
        }
    }
}

/// A decision on one object that depends on its tags, kept so the operation can hold it
/// against the version it actually opens.
#[derive(Debug, Clone)]
pub struct TagDecision {
    decider: Arc<Decider>,
    op: String,
    actions: Vec<String>,
    object: String,
    /// The request's condition values, without `s3:ExistingObjectTag`.
    conditions: HashMap<String, Vec<String>>,
    /// The tags the access check saw and allowed; `None` when it decided nothing yet.
    decided_on: Option<BTreeMap<String, String>>,
}

impl TagDecision {
    /// `actions` of operation `op` on `object`, decided by `decider` with `conditions` plus the
    /// object's tags; `decided_on` the tags already found allowed, if any.
    pub fn new(
        decider: Arc<Decider>,
        op: &str,
        actions: Vec<String>,
        object: &str,
        conditions: HashMap<String, Vec<String>>,
        decided_on: Option<BTreeMap<String, String>>,
    ) -> Self {
        Self {
            decider,
            op: op.to_owned(),
            actions,
            object: object.to_owned(),
            conditions,
            decided_on,
        }
    }

    /// The same decision, with `tags` recorded as found allowed.
    pub fn decided_on(self, tags: BTreeMap<String, String>) -> Self {
        Self {
            decided_on: Some(tags),
            ..self
        }
    }

    /// Whether every action is allowed on a version carrying `tags`.
    pub fn admits(&self, tags: &BTreeMap<String, String>) -> bool {
        if self.decided_on.as_ref() == Some(tags) {
            return true;
        }
        let mut conditions = self.conditions.clone();
        insert_existing(&mut conditions, tags);
        self.actions
            .iter()
            .all(|a| self.decider.allows(&self.op, a, &self.object, &conditions))
    }

    /// [`Self::admits`] as the answer to the request: `AccessDenied` when not.
    pub fn check(&self, tags: &BTreeMap<String, String>) -> S3Result<()> {
        if self.admits(tags) {
            Ok(())
        } else {
            Err(super::access::access_denied())
        }
    }
}

/// In the request's extensions: the decision on the request's own object made on its tags.
#[derive(Debug, Clone)]
pub struct ObjectTagCheck(pub TagDecision);

/// Holds the decision of a request on its own object against the tags of the version the
/// operation opened (nothing to hold when no policy tested them).
pub fn check_object_tags(ext: &http::Extensions, tags: &BTreeMap<String, String>) -> S3Result<()> {
    match ext.get::<ObjectTagCheck>() {
        Some(ObjectTagCheck(d)) => d.check(tags),
        None => Ok(()),
    }
}

/// In the request's extensions of a CopyObject or UploadPartCopy: what the source's tags
/// decide, held by the operation against the source version it opened.
#[derive(Debug, Clone, Default)]
pub struct CopySourceCheck {
    /// `s3:GetObject` (`s3:GetObjectVersion`) when a policy tests the source's tags.
    pub read: Option<TagDecision>,
    /// `s3:GetObjectTagging` (`…VersionTagging`) when the copy takes the source's tags
    /// (CopyObject, tagging directive `COPY`): needed only when the source has tags.
    pub copy_tags: Option<TagDecision>,
}

impl CopySourceCheck {
    /// Whether the copy may read a source version carrying `tags` (and take them).
    pub fn check(&self, tags: &BTreeMap<String, String>) -> S3Result<()> {
        if let Some(d) = &self.read {
            d.check(tags)?;
        }
        match &self.copy_tags {
            Some(d) if !tags.is_empty() => d.check(tags),
            _ => Ok(()),
        }
    }
}

/// Holds a copy's source decision against the source version it opened.
pub fn check_copy_source(ext: &http::Extensions, tags: &BTreeMap<String, String>) -> S3Result<()> {
    match ext.get::<CopySourceCheck>() {
        Some(c) => c.check(tags),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_existing_values() {
        let mut c = HashMap::new();
        insert_request(&mut c, [("Env", "prod"), ("team", "a b")]);
        assert_eq!(c["s3:requestobjecttag/Env"], ["prod"]);
        assert_eq!(c["s3:requestobjecttag/team"], ["a b"]);
        assert_eq!(c[REQUEST_OBJECT_TAG_KEYS], ["Env", "team"]);
        let tags = BTreeMap::from([("Env".to_owned(), "dev".to_owned())]);
        insert_existing(&mut c, &tags);
        insert_existing(&mut c, &BTreeMap::from([("x".to_owned(), "y".to_owned())]));
        assert!(
            !c.contains_key("s3:existingobjecttag/Env"),
            "replaced, not added"
        );
        assert_eq!(c["s3:existingobjecttag/x"], ["y"]);
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The race: the check allowed a read on `class=public`; the operation then opens a
    /// version that was retagged `secret` meanwhile. The decision made again on what was
    /// opened refuses it; the same tags pass without deciding again.
    #[test]
    fn a_decision_holds_only_for_the_tags_it_was_made_on() {
        let policy = super::super::policy::Policy::parse_bucket_policy(
            br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
              "Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/class":"public"}}}]}"#,
        )
        .unwrap();
        let decider = Arc::new(Decider::anonymous("b", Some(Arc::new(policy))));
        assert!(decider.may_test("s3:GetObject", "k", EXISTING_OBJECT_TAG));
        assert!(!decider.may_test("s3:PutObject", "k", EXISTING_OBJECT_TAG));
        let d = TagDecision::new(
            decider,
            "GetObject",
            vec!["s3:GetObject".into()],
            "k",
            HashMap::new(),
            None,
        );
        let public = tags(&[("class", "public")]);
        assert!(d.admits(&public));
        let d = d.decided_on(public.clone());
        assert!(d.admits(&public));
        assert!(d.admits(&tags(&[("class", "public")])));
        assert!(!d.admits(&tags(&[("class", "secret")])));
        assert!(!d.admits(&BTreeMap::new()));
        let e = d.check(&tags(&[("Class", "public")])).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::AccessDenied);
        let copy = CopySourceCheck {
            read: None,
            copy_tags: Some(d),
        };
        assert!(copy.check(&BTreeMap::new()).is_ok(), "no tags to take");
        assert!(copy.check(&tags(&[("class", "secret")])).is_err());
    }

    #[test]
    fn tagging_header_counts_only_where_it_is_written() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-tagging", "a=1&b=2".parse().unwrap());
        assert_eq!(header_tags("PutObject", &h).unwrap().len(), 2);
        assert_eq!(header_tags("CreateMultipartUpload", &h).unwrap().len(), 2);
        assert!(header_tags("CopyObject", &h).unwrap().is_empty());
        h.insert("x-amz-tagging-directive", "REPLACE".parse().unwrap());
        assert_eq!(header_tags("CopyObject", &h).unwrap().len(), 2);
        assert!(header_tags("UploadPart", &h).unwrap().is_empty());
        h.insert("x-amz-tagging", "a=1&a=2".parse().unwrap());
        assert!(header_tags("PutObject", &h).is_err());
    }
}
