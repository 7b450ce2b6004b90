//! DeleteObjects as AWS does it: at most [`MAX_DELETE_KEYS`] keys (more is `MalformedXML`,
//! nothing deleted), and every key decided on its own by the access check
//! ([`DeleteObjectsDecisions`]): a key the caller may not delete is reported as `AccessDenied`
//! in the result while the others are deleted, and GOVERNANCE retention is bypassed only on the
//! keys where `s3:BypassGovernanceRetention` is allowed.
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::CofferS3;
use crate::iam::access::{
    DeleteObjectsDecisions, GovernanceBypass, MAX_DELETE_KEYS, too_many_delete_keys,
};

impl CofferS3 {
    pub(crate) async fn do_delete_objects_per_key(
        &self,
        mut req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        if req.input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(too_many_delete_keys());
        }
        // Without an access check (a server with no authentication) nothing was decided.
        let Some(DeleteObjectsDecisions(decisions)) =
            req.extensions.remove::<DeleteObjectsDecisions>()
        else {
            return self.do_delete_objects(req).await;
        };
        let objects = std::mem::take(&mut req.input.delete.objects);
        if decisions.len() != objects.len() {
            return Err(s3s::s3_error!(
                InternalError,
                "The access decision does not cover the request."
            ));
        }
        let mut refused = Vec::new();
        let (mut bypassing, mut plain) = (Vec::new(), Vec::new());
        for (o, d) in objects.into_iter().zip(decisions) {
            if !d.allowed {
                refused.push(Error {
                    code: Some("AccessDenied".to_owned()),
                    key: Some(o.key),
                    message: Some("Access Denied.".to_owned()),
                    version_id: o.version_id,
                });
            } else if d.bypass {
                bypassing.push(o);
            } else {
                plain.push(o);
            }
        }
        if bypassing.is_empty() && plain.is_empty() && !refused.is_empty() {
            // Nothing the caller may delete: not even whether the bucket exists is its to learn.
            return Ok(S3Response::new(DeleteObjectsOutput {
                deleted: Some(Vec::new()),
                errors: Some(refused),
                ..Default::default()
            }));
        }
        let mut deleted = Vec::new();
        let mut errors = refused;
        // One run per bypass decision; an empty run still checks that the bucket exists.
        let runs = [(true, bypassing), (false, plain)];
        let nonempty = runs.iter().filter(|(_, o)| !o.is_empty()).count();
        for (bypass, objects) in runs {
            if objects.is_empty() && (nonempty > 0 || bypass) {
                continue;
            }
            let mut run = req.clone();
            run.input.delete.objects = objects;
            run.extensions.insert(GovernanceBypass(bypass));
            let out = self.do_delete_objects(run).await?.output;
            deleted.extend(out.deleted.unwrap_or_default());
            errors.extend(out.errors.unwrap_or_default());
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }
}
