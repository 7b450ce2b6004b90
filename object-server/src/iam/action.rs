//! What a request asks for in policy terms: the IAM action of each S3 operation (MinIO's mapping)
//! and the condition values a request carries.
use std::collections::HashMap;
use std::net::IpAddr;

/// The IAM actions an S3 operation needs, every one of them, as AWS's service authorization
/// reference lists them. `version_id` is whether the request names a version (`versionId`):
/// a named version needs the version action (`s3:DeleteObjectVersion`, `s3:GetObjectVersion`,
/// `s3:…VersionTagging`, `s3:…VersionAcl`), which is what lets a policy protect old versions;
/// retention and legal hold keep their action either way.
pub fn s3_actions(op: &str, version_id: bool) -> Vec<String> {
    let v = version_id;
    let a: &[&str] = match op {
        "ListBuckets" => &["s3:ListAllMyBuckets"],
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => &["s3:ListBucket"],
        "ListObjectVersions" => &["s3:ListBucketVersions"],
        "ListMultipartUploads" => &["s3:ListBucketMultipartUploads"],
        "ListParts" => &["s3:ListMultipartUploadParts"],
        "GetObject" | "HeadObject" if v => &["s3:GetObjectVersion"],
        "GetObject" | "HeadObject" => &["s3:GetObject"],
        "GetObjectAttributes" if v => &["s3:GetObjectVersion", "s3:GetObjectVersionAttributes"],
        "GetObjectAttributes" => &["s3:GetObject", "s3:GetObjectAttributes"],
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy"
        | "PostObject" => &["s3:PutObject"],
        "AbortMultipartUpload" => &["s3:AbortMultipartUpload"],
        "DeleteObject" | "DeleteObjects" if v => &["s3:DeleteObjectVersion"],
        "DeleteObject" | "DeleteObjects" => &["s3:DeleteObject"],
        "GetObjectTagging" if v => &["s3:GetObjectVersionTagging"],
        "PutObjectTagging" if v => &["s3:PutObjectVersionTagging"],
        "DeleteObjectTagging" if v => &["s3:DeleteObjectVersionTagging"],
        "GetObjectAcl" if v => &["s3:GetObjectVersionAcl"],
        "PutObjectAcl" if v => &["s3:PutObjectVersionAcl"],
        "PutBucketEncryption" | "DeleteBucketEncryption" => &["s3:PutEncryptionConfiguration"],
        "GetBucketEncryption" => &["s3:GetEncryptionConfiguration"],
        "DeleteBucketTagging" => &["s3:PutBucketTagging"],
        "GetBucketCors" => &["s3:GetBucketCORS"],
        "PutBucketCors" | "DeleteBucketCors" => &["s3:PutBucketCORS"],
        "PutObjectLockConfiguration" => &["s3:PutBucketObjectLockConfiguration"],
        "GetObjectLockConfiguration" => &["s3:GetBucketObjectLockConfiguration"],
        "GetBucketLifecycleConfiguration" => &["s3:GetLifecycleConfiguration"],
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            &["s3:PutLifecycleConfiguration"]
        }
        "GetBucketNotificationConfiguration" => &["s3:GetBucketNotification"],
        "PutBucketNotificationConfiguration" => &["s3:PutBucketNotification"],
        "GetBucketReplication" => &["s3:GetReplicationConfiguration"],
        "PutBucketReplication" | "DeleteBucketReplication" => &["s3:PutReplicationConfiguration"],
        // Every other operation has the action of its own name (GetBucketPolicy,
        // PutObjectTagging, GetObjectRetention, GetBucketVersioning, …).
        other => return vec![format!("s3:{other}")],
    };
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// The actions a write needs beyond `s3:PutObject` for what its headers ask: tags
/// (`s3:PutObjectTagging`), a retention (`s3:PutObjectRetention`) and a legal hold
/// (`s3:PutObjectLegalHold`), as AWS and MinIO ask for them.
pub fn write_header_actions(op: &str, headers: &http::HeaderMap) -> Vec<String> {
    if !matches!(
        op,
        "PutObject" | "CopyObject" | "CreateMultipartUpload" | "PostObject"
    ) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if headers.contains_key("x-amz-tagging") {
        out.push("s3:PutObjectTagging".to_owned());
    }
    if headers.contains_key("x-amz-object-lock-mode")
        || headers.contains_key("x-amz-object-lock-retain-until-date")
    {
        out.push("s3:PutObjectRetention".to_owned());
    }
    if headers.contains_key("x-amz-object-lock-legal-hold") {
        out.push("s3:PutObjectLegalHold".to_owned());
    }
    out
}

/// Operations that manage the bucket policy itself: the root user keeps them even when the
/// bucket policy denies it, so a policy can never lock the owner out.
pub fn manages_bucket_policy(op: &str) -> bool {
    matches!(
        op,
        "GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy" | "GetBucketPolicyStatus"
    )
}

/// What a request carries that conditions can test.
pub struct RequestFacts<'a> {
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// Whether the client reached us over TLS.
    pub secure: bool,
    /// The client's address, when known.
    pub source_ip: Option<IpAddr>,
    /// The caller's access key; `None` when anonymous.
    pub user: Option<&'a str>,
    /// Whether the caller is the root user.
    pub root: bool,
}

/// Decodes a URL query component (`%XX` and `+`).
pub fn decode_query(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a query string, names and values percent-decoded as s3s decodes them
/// for the operation and the signature: `version%49d=` is `versionId=` to both, so it must be
/// to the policy as well.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_query(k), decode_query(v))
        })
        .collect()
}

/// Whether the decoded query names a version (`versionId`).
pub fn names_version(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, _)| k == "versionId")
}

/// How s3s authenticated a request, as `(s3:authType, s3:signatureversion)`: in the
/// `Authorization` header (`REST-HEADER`) or in the query (`REST-QUERY-STRING`, a presigned URL),
/// with SigV4 (`AWS4-HMAC-SHA256`) or SigV2 (`AWS`), the values AWS documents. `None` for an
/// unsigned request. (A browser POST is `POST`, set where the form is known.)
///
/// The order is s3s's own (`SignatureContext::check`): a `Signature` parameter (V2 query) wins
/// over any header, then a single `Authorization: AWS …:…` (V2 header), then `X-Amz-Signature`
/// (V4 query), then a single `Authorization` header (V4). Asking in another order would let a
/// request carry a decoy (a bogus V4 header beside the V2 query signature s3s verifies) and dodge
/// a policy on `s3:signatureversion`. Call it only for a request s3s accepted as signed.
pub fn signature_kind(
    headers: &http::HeaderMap,
    query: &[(String, String)],
) -> Option<(&'static str, &'static str)> {
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    // s3s reads the header with `get_unique`: two `Authorization` headers are none.
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let auth = match (all.next(), all.next()) {
        (Some(v), None) => Some(v.as_bytes()),
        _ => None,
    };
    if has("Signature") {
        Some(("REST-QUERY-STRING", "AWS"))
    } else if auth.is_some_and(|a| a.starts_with(b"AWS ") && a.contains(&b':')) {
        Some(("REST-HEADER", "AWS"))
    } else if has("X-Amz-Signature") {
        Some(("REST-QUERY-STRING", "AWS4-HMAC-SHA256"))
    } else if auth.is_some() {
        Some(("REST-HEADER", "AWS4-HMAC-SHA256"))
    } else {
        None
    }
}

/// The condition values of a request, keyed by lowercase condition key.
pub fn condition_values(f: &RequestFacts<'_>) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    let mut put = |k: &str, v: String| m.entry(k.to_owned()).or_default().push(v);
    put("aws:securetransport", f.secure.to_string());
    if let Some(ip) = f.source_ip {
        put("aws:sourceip", ip.to_string());
    }
    let now = time::OffsetDateTime::now_utc();
    put("aws:epochtime", now.unix_timestamp().to_string());
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        put("aws:currenttime", t);
    }
    put(
        "aws:principaltype",
        match (f.user, f.root) {
            (None, _) => "Anonymous",
            (Some(_), true) => "Account",
            (Some(_), false) => "User",
        }
        .to_owned(),
    );
    if let Some(u) = f.user {
        put("aws:username", u.to_owned());
        put("aws:userid", u.to_owned());
    }
    for (name, value) in f.headers {
        let Ok(v) = value.to_str() else { continue };
        let n = name.as_str();
        if n.starts_with("x-amz-") {
            put(&format!("s3:{n}"), v.to_owned());
        } else if n == "user-agent" {
            put("aws:useragent", v.to_owned());
        } else if n == "referer" {
            put("aws:referer", v.to_owned());
        }
    }
    let query = query_pairs(f.query);
    for (k, v) in &query {
        let key = match k.as_str() {
            "prefix" => "s3:prefix",
            "delimiter" => "s3:delimiter",
            "max-keys" => "s3:max-keys",
            "versionId" => "s3:versionid",
            _ => continue,
        };
        put(key, v.clone());
    }
    if f.user.is_some()
        && let Some((auth_type, version)) = signature_kind(f.headers, &query)
    {
        put("s3:authtype", auth_type.to_owned());
        put("s3:signatureversion", version.to_owned());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let one = |op, v| s3_actions(op, v).join(",");
        assert_eq!(one("UploadPart", false), "s3:PutObject");
        assert_eq!(one("HeadObject", false), "s3:GetObject");
        assert_eq!(one("GetBucketPolicy", false), "s3:GetBucketPolicy");
        assert_eq!(one("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(one("GetBucketCors", false), "s3:GetBucketCORS");
        assert_eq!(one("PutBucketCors", false), "s3:PutBucketCORS");
        assert_eq!(one("DeleteBucketCors", false), "s3:PutBucketCORS");
    }

    /// A request naming a version asks for the version action (AWS's service authorization
    /// reference), so `Deny s3:DeleteObjectVersion` protects versions.
    #[test]
    fn a_named_version_needs_the_version_action() {
        let one = |op, v| s3_actions(op, v).join(",");
        for (op, plain, versioned) in [
            ("GetObject", "s3:GetObject", "s3:GetObjectVersion"),
            ("HeadObject", "s3:GetObject", "s3:GetObjectVersion"),
            ("DeleteObject", "s3:DeleteObject", "s3:DeleteObjectVersion"),
            ("DeleteObjects", "s3:DeleteObject", "s3:DeleteObjectVersion"),
            (
                "GetObjectTagging",
                "s3:GetObjectTagging",
                "s3:GetObjectVersionTagging",
            ),
            (
                "PutObjectTagging",
                "s3:PutObjectTagging",
                "s3:PutObjectVersionTagging",
            ),
            (
                "DeleteObjectTagging",
                "s3:DeleteObjectTagging",
                "s3:DeleteObjectVersionTagging",
            ),
            ("GetObjectAcl", "s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
            ("PutObjectAcl", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
            (
                "GetObjectAttributes",
                "s3:GetObject,s3:GetObjectAttributes",
                "s3:GetObjectVersion,s3:GetObjectVersionAttributes",
            ),
            // Retention and legal hold keep their action with a version id.
            (
                "GetObjectRetention",
                "s3:GetObjectRetention",
                "s3:GetObjectRetention",
            ),
            (
                "PutObjectRetention",
                "s3:PutObjectRetention",
                "s3:PutObjectRetention",
            ),
            (
                "GetObjectLegalHold",
                "s3:GetObjectLegalHold",
                "s3:GetObjectLegalHold",
            ),
            (
                "PutObjectLegalHold",
                "s3:PutObjectLegalHold",
                "s3:PutObjectLegalHold",
            ),
        ] {
            assert_eq!(one(op, false), plain, "{op}");
            assert_eq!(one(op, true), versioned, "{op} with a version id");
        }
    }

    #[test]
    fn write_headers_need_their_own_actions() {
        let mut h = http::HeaderMap::new();
        assert!(write_header_actions("PutObject", &h).is_empty());
        h.insert("x-amz-tagging", "a=b".parse().unwrap());
        h.insert("x-amz-object-lock-mode", "GOVERNANCE".parse().unwrap());
        h.insert("x-amz-object-lock-legal-hold", "ON".parse().unwrap());
        assert_eq!(
            write_header_actions("CopyObject", &h),
            [
                "s3:PutObjectTagging",
                "s3:PutObjectRetention",
                "s3:PutObjectLegalHold"
            ]
        );
        assert!(write_header_actions("GetObject", &h).is_empty());
    }

    fn facts<'a>(headers: &'a http::HeaderMap, query: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            headers,
            query: Some(query),
            secure: false,
            source_ip: None,
            user: Some("app"),
            root: false,
        }
    }

    /// s3s decodes parameter names for the operation and the signature; a percent-encoded
    /// name must not hide a value from the conditions.
    #[test]
    fn condition_values_come_from_decoded_names() {
        let h = http::HeaderMap::new();
        let m = condition_values(&facts(
            &h,
            "version%49d=v1&pre%66ix=home%2F&%64elimiter=%2F&max%2Dkeys=5",
        ));
        assert_eq!(m["s3:versionid"], vec!["v1"]);
        assert_eq!(m["s3:prefix"], vec!["home/"]);
        assert_eq!(m["s3:delimiter"], vec!["/"]);
        assert_eq!(m["s3:max-keys"], vec!["5"]);
    }

    #[test]
    fn auth_type_and_signature_version() {
        let mut h = http::HeaderMap::new();
        let m = condition_values(&facts(&h, ""));
        assert!(!m.contains_key("s3:authtype") && !m.contains_key("s3:signatureversion"));
        let m = condition_values(&facts(
            &h,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=x",
        ));
        assert_eq!(m["s3:authtype"], vec!["REST-QUERY-STRING"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS4-HMAC-SHA256"]);
        let m = condition_values(&facts(&h, "AWSAccessKeyId=a&Signature=s&Expires=1"));
        assert_eq!(m["s3:authtype"], vec!["REST-QUERY-STRING"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS"]);
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=a/b".parse().unwrap(),
        );
        let m = condition_values(&facts(&h, ""));
        assert_eq!(m["s3:authtype"], vec!["REST-HEADER"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS4-HMAC-SHA256"]);
        h.insert("authorization", "AWS a:sig".parse().unwrap());
        let m = condition_values(&facts(&h, ""));
        assert_eq!(m["s3:authtype"], vec!["REST-HEADER"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS"]);
    }

    /// s3s checks a V2 query signature before any header: a decoy V4 header beside it must not
    /// turn the request into a V4 one for the policy.
    #[test]
    fn signature_kind_follows_the_order_s3s_checks_in() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=a/b".parse().unwrap(),
        );
        let m = condition_values(&facts(&h, "AWSAccessKeyId=a&Signature=s&Expires=1"));
        assert_eq!(m["s3:authtype"], vec!["REST-QUERY-STRING"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS"]);
        // A V2 header wins over a V4 query signature.
        h.insert("authorization", "AWS a:sig".parse().unwrap());
        let m = condition_values(&facts(&h, "X-Amz-Signature=x"));
        assert_eq!(m["s3:authtype"], vec!["REST-HEADER"]);
        assert_eq!(m["s3:signatureversion"], vec!["AWS"]);
        // Two Authorization headers are none to s3s.
        h.append(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=a/b".parse().unwrap(),
        );
        assert_eq!(signature_kind(&h, &[]), None);
        // An anonymous request has no signature kind, whatever it carries.
        let h = http::HeaderMap::new();
        let mut f = facts(&h, "AWSAccessKeyId=a&Signature=s&Expires=1");
        f.user = None;
        assert!(!condition_values(&f).contains_key("s3:signatureversion"));
    }

    #[test]
    fn values() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
        h.insert("user-agent", "boto3".parse().unwrap());
        let f = RequestFacts {
            headers: &h,
            query: Some("list-type=2&prefix=home%2Fa+b&delimiter=%2F"),
            secure: false,
            source_ip: Some("127.0.0.1".parse().unwrap()),
            user: Some("app"),
            root: false,
        };
        let m = condition_values(&f);
        assert_eq!(m["s3:x-amz-server-side-encryption"], vec!["AES256"]);
        assert_eq!(m["s3:prefix"], vec!["home/a b"]);
        assert_eq!(m["s3:delimiter"], vec!["/"]);
        assert_eq!(m["aws:securetransport"], vec!["false"]);
        assert_eq!(m["aws:sourceip"], vec!["127.0.0.1"]);
        assert_eq!(m["aws:principaltype"], vec!["User"]);
        assert_eq!(m["aws:useragent"], vec!["boto3"]);
    }
}
