//! `spec.storage.s3`: the Tenant's objects in a bucket of another S3 service (Ceph's RGW, MinIO,
//! AWS), served by the object-server's gateway engine (`object-server/src/storage/engine/s3`).
//! The gateway keeps users, policies, the metadata key and bucket settings in that bucket too,
//! so the pods hold nothing of their own: no volume claims, any number of replicas.
//!
//! The backend's keys reach a pod only through `secretKeyRef` (the kubelet resolves them); the
//! Tenant names the Secret and its keys, never a value, and the operator only checks that the
//! keys are present (their values are never read into its status, events or logs).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// CEL rule of `storage`: a Tenant on `s3` has no volume settings.
pub const S3_NO_VOLUME_RULE: &str = "!has(self.s3) || (!has(self.sharedClaimName) && !has(self.storageClassName) && self.size == '10Gi')";
/// What the API server answers when [`S3_NO_VOLUME_RULE`] refuses a Tenant.
pub const S3_NO_VOLUME_MESSAGE: &str = "storage.s3 keeps the objects in the backend bucket and the pods have no volume: remove storage.size, storage.storageClassName and storage.sharedClaimName (or remove storage.s3 to store on volumes)";
/// CEL transition rule of `storage`: `s3` is neither added nor removed.
pub const S3_FIXED_RULE: &str = "has(self.s3) == has(oldSelf.s3)";
/// What the API server answers when [`S3_FIXED_RULE`] refuses a change.
pub const S3_FIXED_MESSAGE: &str = "storage.s3 cannot be added or removed: the objects stay where they are (in the volumes, or in the backend bucket). Create a new Tenant with the other storage and copy the objects over (mc mirror)";
/// CEL transition rule of `storage.s3`: the bucket keeps its name.
pub const S3_BUCKET_FIXED_RULE: &str = "self.bucket == oldSelf.bucket";
/// What the API server answers when [`S3_BUCKET_FIXED_RULE`] refuses a change.
pub const S3_BUCKET_FIXED_MESSAGE: &str = "storage.s3.bucket cannot change: every object, user and setting of the Tenant is in that bucket. Copy the bucket on the backend and create a new Tenant on the copy";
/// CEL rule of `storage.s3.endpoint`.
pub const S3_ENDPOINT_RULE: &str = "self.matches('^https?://[^/@?#]+/?$')";
/// What the API server answers when [`S3_ENDPOINT_RULE`] refuses an endpoint.
pub const S3_ENDPOINT_MESSAGE: &str = "storage.s3.endpoint must be http(s)://HOST[:PORT] with no path and no credentials, e.g. http://rook-ceph-rgw-my-store.rook-ceph.svc (the keys go in credentialsSecret)";
/// CEL rule of `storage.s3.bucket` (S3's bucket naming rules, as the gateway checks them).
pub const S3_BUCKET_RULE: &str = "self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')";
/// What the API server answers when [`S3_BUCKET_RULE`] refuses a bucket name.
pub const S3_BUCKET_MESSAGE: &str = "storage.s3.bucket must be an S3 bucket name: 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit";

/// Where a gateway Tenant stores everything.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(S3_BUCKET_FIXED_RULE).message(S3_BUCKET_FIXED_MESSAGE))]
pub struct S3StorageSpec {
    /// The backend's S3 endpoint, `http(s)://HOST[:PORT]` (requests are path-style). Plain
    /// `http` only inside the cluster network, e.g. Rook's RGW Service
    /// `http://rook-ceph-rgw-<store>.<namespace>.svc`. May change (the pods roll).
    #[x_kube(validation = kube::core::Rule::new(S3_ENDPOINT_RULE).message(S3_ENDPOINT_MESSAGE))]
    #[schemars(length(min = 8, max = 512))]
    pub endpoint: String,
    /// The backend bucket, which must exist (e.g. made by an ObjectBucketClaim, or with the
    /// user's keys: `aws s3 mb`). It holds only ciphertext and sealed metadata. Fixed at creation.
    #[x_kube(validation = kube::core::Rule::new(S3_BUCKET_RULE).message(S3_BUCKET_MESSAGE))]
    #[schemars(length(max = 63))]
    pub bucket: String,
    /// The SigV4 region (default `us-east-1`, what RGW and MinIO accept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// The Secret (same namespace) with the backend's access and secret keys.
    pub credentials_secret: BackendCredentials,
    /// A Secret (same namespace) with the PEM CA certificates to trust for an `https` endpoint
    /// (default: the image's system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<BackendCa>,
}

/// The Secret of the backend's keys. The defaults are the keys of the Secret Rook makes for a
/// `CephObjectStoreUser` (`rook-ceph-object-user-<store>-<user>`: `AccessKey`, `SecretKey`);
/// an ObjectBucketClaim's Secret has `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendCredentials {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the access key id (default `AccessKey`).
    #[serde(default = "default_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_key: String,
    /// The key holding the secret access key (default `SecretKey`).
    #[serde(default = "default_secret_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_key_key: String,
}

fn default_access_key_key() -> String {
    "AccessKey".into()
}

fn default_secret_key_key() -> String {
    "SecretKey".into()
}

/// The Secret with the CA certificates of an `https` backend.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendCa {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the PEM certificates (default `ca.crt`).
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

impl S3StorageSpec {
    /// The object-server's backend URL (`COFFER_BACKEND`): the endpoint, then the bucket.
    pub fn backend_url(&self) -> String {
        format!("{}/{}", self.endpoint.trim_end_matches('/'), self.bucket)
    }

    /// The Secrets the pods read (credentials, then the CA's when given).
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.credentials_secret.name.as_str())
            .chain(self.ca_secret.as_ref().map(|c| c.name.as_str()))
    }
}
