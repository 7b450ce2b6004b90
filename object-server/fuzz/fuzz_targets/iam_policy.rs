//! An IAM policy document from arbitrary bytes (as `mc admin policy create` and PutBucketPolicy
//! hand it to us), parsed as a user policy and as a bucket policy, then evaluated against a
//! fixed set of requests: it is refused with an error or evaluated, never a panic.
#![no_main]
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use object_server::iam::policy::{Policy, Request};

fn conditions() -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in [
        ("aws:securetransport", "false"),
        ("aws:sourceip", "10.1.2.3"),
        ("aws:sourceip", "::1"),
        ("aws:username", "app"),
        ("aws:epochtime", "1765000000"),
        ("aws:currenttime", "2026-12-07T01:00:00Z"),
        ("s3:prefix", "home/a"),
        ("s3:prefix", ""),
        ("s3:max-keys", "1000"),
        ("s3:versionid", "v1"),
        ("s3:authtype", "REST-HEADER"),
        ("s3:signatureversion", "AWS4-HMAC-SHA256"),
        ("s3:x-amz-server-side-encryption", "AES256"),
    ] {
        m.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let conditions = conditions();
    for policy in [Policy::parse(data), Policy::parse_bucket_policy(data)]
        .into_iter()
        .flatten()
    {
        let _ = policy.is_public();
        let _ = policy.only_about_bucket("bucket");
        for (action, bucket, object, principal) in [
            ("s3:GetObject", "bucket", "home/a/b.txt", Some("app")),
            ("s3:DeleteObjectVersion", "bucket", "x", None),
            ("s3:ListBucket", "bucket", "", Some("app")),
            ("admin:CreateUser", "", "", Some("app")),
            ("s3:ListAllMyBuckets", "", "", None),
        ] {
            let _ = policy.evaluate(&Request {
                action,
                bucket,
                object,
                principal,
                conditions: &conditions,
            });
        }
    }
});
