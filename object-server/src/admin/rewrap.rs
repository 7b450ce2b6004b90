//! Coffer's own admin call for the re-wrap job ([`crate::rewrap`]):
//! - `POST /minio/admin/v3/coffer/rewrap[?key=NAME][&bucket=BUCKET]` starts a job (everything,
//!   or one bucket; onto each key's newest version, or onto key `NAME`) and answers its status;
//!   409 `XCofferRewrapRunning` while one runs;
//! - `GET /minio/admin/v3/coffer/rewrap` answers the current (or last) job's status:
//!   `{"id","state":"running"|"done","started","targetKey"?,"bucket"?,"scanned","rewrapped",
//!   "skipped","failed","unitsDone","unitsTotal"}`, or `{"state":"none"}`.
//!
//! Neither names a key's material or an object's name; both need the root user or a policy
//! allowing `admin:CofferRewrap` (start) or `admin:CofferRewrapStatus` (status).
use http::{Method, StatusCode};
use s3s::{Body, S3Error, S3ErrorCode, S3Response, S3Result};

use super::{AdminRoute, Call, json};
use crate::rewrap::StartError;

fn error(code: &str, status: u16, message: String) -> S3Error {
    let mut e = S3Error::with_message(
        code.parse().unwrap_or(S3ErrorCode::InvalidArgument),
        message,
    );
    e.set_status_code(StatusCode::from_u16(status).expect("valid status"));
    e
}

pub(super) async fn handle(a: &AdminRoute, c: &Call) -> S3Result<S3Response<Body>> {
    // Only the gateway (S3 backend) mode runs without the job: its objects and state are not in
    // the local store the job walks.
    let Some(job) = &a.rewrap else {
        return Err(error(
            "NotImplemented",
            501,
            "The re-wrap job is not implemented in S3 backend (gateway) mode yet: the objects' keys stay wrapped under the KMS key versions they were written with.".into(),
        ));
    };
    if c.method == Method::GET {
        let status = job.read_status().await.map_err(|e| {
            tracing::error!(error = %e, "re-wrap status");
            error(
                "XMinioAdminInternalError",
                500,
                "The re-wrap state could not be read.".into(),
            )
        })?;
        return match status {
            Some(s) => json(&serde_json::to_value(s).expect("serializes")),
            None => json(&serde_json::json!({"state": "none"})),
        };
    }
    let key = c.param("key").map(str::to_owned);
    if let Some(k) = &key
        && !sidecar_kes::api::names::valid_name(k)
    {
        return Err(error(
            "XMinioAdminInvalidArgument",
            400,
            "The key name is not a valid KMS key name.".into(),
        ));
    }
    let bucket = c.param("bucket").map(str::to_owned);
    match job.start(key, bucket).await {
        Ok(s) => json(&serde_json::to_value(s).expect("serializes")),
        Err(StartError::Running) => Err(error(
            "XCofferRewrapRunning",
            409,
            "A re-wrap job is already running.".into(),
        )),
        Err(StartError::NoSuchBucket) => Err(error(
            "NoSuchBucket",
            404,
            "The specified bucket does not exist".into(),
        )),
        Err(StartError::Kms(e)) => Err(super::kms::kms_err(e)),
        Err(e) => {
            tracing::error!(error = %e, "re-wrap start");
            Err(error(
                "XMinioAdminInternalError",
                500,
                "The re-wrap job could not be started.".into(),
            ))
        }
    }
}
