//! Bucket policies (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus) and ACLs: only the
//! owner's full control exists (`private`); access is granted by policies (see `crate::iam`).
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{CofferS3, storage_err};
use crate::iam::BUCKET_POLICY;
use crate::iam::policy::Policy;

fn owner() -> Owner {
    Owner {
        display_name: Some("coffer".to_owned()),
        id: Some("coffer".to_owned()),
    }
}

fn full_control() -> Grants {
    vec![Grant {
        grantee: Some(Grantee {
            display_name: Some("coffer".to_owned()),
            email_address: None,
            id: Some("coffer".to_owned()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

fn not_private() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        "Only the 'private' canned ACL is supported; grant access with a bucket policy or user policies.",
    )
}

/// An ACL document is accepted only when it grants nothing beyond the owner's full control.
fn check_acl(canned: Option<&str>, acp: Option<&AccessControlPolicy>) -> S3Result<()> {
    if canned.is_some_and(|c| c != "private") {
        return Err(not_private());
    }
    if let Some(p) = acp {
        let only_owner = p.grants.iter().flatten().all(|g| {
            g.permission.as_ref().map(|p| p.as_str()) == Some(Permission::FULL_CONTROL)
                && g.grantee
                    .as_ref()
                    .is_some_and(|who| who.type_.as_str() == Type::CANONICAL_USER)
        });
        if !only_owner {
            return Err(not_private());
        }
    }
    Ok(())
}

impl CofferS3 {
    pub(crate) async fn do_put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        self.store
            .require_bucket(&input.bucket)
            .map_err(storage_err)?;
        let policy = Policy::parse_bucket_policy(input.policy.as_bytes())
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.to_string()))?;
        if !policy.only_about_bucket(&input.bucket) {
            return Err(s3_error!(
                MalformedPolicy,
                "Policy has invalid resource: every Resource must be in this bucket"
            ));
        }
        self.store
            .write_bucket_config(
                &input.bucket,
                BUCKET_POLICY,
                Some(input.policy.into_bytes()),
            )
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    pub(crate) async fn do_get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let doc = self
            .store
            .read_bucket_config(&req.input.bucket, BUCKET_POLICY)
            .await
            .map_err(storage_err)?
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(String::from_utf8_lossy(&doc).into_owned()),
        }))
    }

    pub(crate) async fn do_delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.store
            .write_bucket_config(&req.input.bucket, BUCKET_POLICY, None)
            .await
            .map_err(storage_err)?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    pub(crate) async fn do_get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let doc = self
            .store
            .read_bucket_config(&req.input.bucket, BUCKET_POLICY)
            .await
            .map_err(storage_err)?;
        let public = doc
            .and_then(|d| Policy::parse_bucket_policy(&d).ok())
            .is_some_and(|p| p.is_public());
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(crate) async fn do_get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.store
            .require_bucket(&req.input.bucket)
            .map_err(storage_err)?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(full_control()),
            owner: Some(owner()),
        }))
    }

    pub(crate) async fn do_put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        self.store
            .require_bucket(&input.bucket)
            .map_err(storage_err)?;
        check_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            input.access_control_policy.as_ref(),
        )?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(crate) async fn do_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let obj = self
            .store
            .open_object(&input.bucket, &input.key)
            .await
            .map_err(storage_err)?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta.tags)?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(full_control()),
            owner: Some(owner()),
            request_charged: None,
        }))
    }

    pub(crate) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let obj = self
            .store
            .open_object(&input.bucket, &input.key)
            .await
            .map_err(storage_err)?;
        crate::iam::object_tags::check_object_tags(&req.extensions, &obj.meta.tags)?;
        check_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            input.access_control_policy.as_ref(),
        )?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_acls() {
        assert!(check_acl(None, None).is_ok());
        assert!(check_acl(Some("private"), None).is_ok());
        assert!(check_acl(Some("public-read"), None).is_err());
        let owner_only = AccessControlPolicy {
            grants: Some(full_control()),
            owner: Some(owner()),
        };
        assert!(check_acl(None, Some(&owner_only)).is_ok());
        let mut public = full_control();
        public.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
        let public = AccessControlPolicy {
            grants: Some(public),
            owner: None,
        };
        assert!(check_acl(None, Some(&public)).is_err());
    }
}
