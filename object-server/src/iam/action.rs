//! What a request asks for in policy terms: the IAM action of each S3 operation (MinIO's mapping)
//! and the condition values a request carries.
use std::collections::HashMap;
use std::net::IpAddr;

/// The IAM action an S3 operation (s3s's operation name) needs.
pub fn s3_action(op: &str) -> String {
    let a = match op {
        "ListBuckets" => "s3:ListAllMyBuckets",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListParts" => "s3:ListMultipartUploadParts",
        "GetObject" | "HeadObject" | "GetObjectAttributes" => "s3:GetObject",
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy"
        | "PostObject" => "s3:PutObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketNotificationConfiguration" => "s3:GetBucketNotification",
        "PutBucketNotificationConfiguration" => "s3:PutBucketNotification",
        "GetBucketReplication" => "s3:GetReplicationConfiguration",
        "PutBucketReplication" | "DeleteBucketReplication" => "s3:PutReplicationConfiguration",
        // Every other operation has the action of its own name (GetBucketPolicy,
        // PutObjectTagging, GetBucketVersioning, …).
        other => return format!("s3:{other}"),
    };
    a.to_owned()
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
    for pair in f.query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = match k {
            "prefix" => "s3:prefix",
            "delimiter" => "s3:delimiter",
            "max-keys" => "s3:max-keys",
            "versionId" => "s3:versionid",
            _ => continue,
        };
        put(key, decode_query(v));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        assert_eq!(s3_action("UploadPart"), "s3:PutObject");
        assert_eq!(s3_action("HeadObject"), "s3:GetObject");
        assert_eq!(s3_action("GetBucketPolicy"), "s3:GetBucketPolicy");
        assert_eq!(s3_action("ListObjectsV2"), "s3:ListBucket");
        assert_eq!(s3_action("GetBucketCors"), "s3:GetBucketCORS");
        assert_eq!(s3_action("PutBucketCors"), "s3:PutBucketCORS");
        assert_eq!(s3_action("DeleteBucketCors"), "s3:PutBucketCORS");
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
