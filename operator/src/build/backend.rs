//! What a Tenant on `spec.storage.s3` adds to the object-server container: the backend's URL,
//! its keys by `secretKeyRef` (the values never enter the pod spec), the CA as a mounted file.
//! Such pods get no data volume and no claim: the gateway stages uploads in the `/tmp`
//! emptyDir every pod has, and keeps everything else in the backend bucket.

use k8s_openapi::api::core::v1::{EnvVar, Volume, VolumeMount};

use super::workload::{env, env_secret, mount, secret_volume};
use crate::crd::S3StorageSpec;

/// The object-server's variable naming the backend (`http(s)://HOST[:PORT]/BUCKET`).
pub const BACKEND_ENV: &str = "COFFER_BACKEND";
/// The object-server's variable of the backend's access key id.
pub const ACCESS_KEY_ENV: &str = "COFFER_BACKEND_ACCESS_KEY";
/// The object-server's variable of the backend's secret access key.
pub const SECRET_KEY_ENV: &str = "COFFER_BACKEND_SECRET_KEY";
/// The object-server's variable of the SigV4 region.
pub const REGION_ENV: &str = "COFFER_BACKEND_REGION";
/// The object-server's variable naming the backend's CA file.
pub const CA_FILE_ENV: &str = "COFFER_BACKEND_CA_FILE";
/// Where the backend's CA Secret is mounted.
pub const CA_DIR: &str = "/etc/coffer/backend-ca";
/// The file name of the CA in [`CA_DIR`].
pub const CA_FILE: &str = "ca.crt";
/// The name of the CA's volume.
const CA_VOLUME: &str = "backend-ca";

/// The object-server's environment for backend `s3`.
pub fn env_vars(s3: &S3StorageSpec) -> Vec<EnvVar> {
    let creds = &s3.credentials_secret;
    let mut vars = vec![
        env(BACKEND_ENV, s3.backend_url()),
        env_secret(ACCESS_KEY_ENV, &creds.name, &creds.access_key_key),
        env_secret(SECRET_KEY_ENV, &creds.name, &creds.secret_key_key),
    ];
    if let Some(region) = &s3.region {
        vars.push(env(REGION_ENV, region.clone()));
    }
    if s3.ca_secret.is_some() {
        vars.push(env(CA_FILE_ENV, format!("{CA_DIR}/{CA_FILE}")));
    }
    vars
}

/// The CA's volume, when the backend has one.
pub fn volume(s3: &S3StorageSpec) -> Option<Volume> {
    let ca = s3.ca_secret.as_ref()?;
    Some(secret_volume(CA_VOLUME, &ca.name, &[(&ca.key, CA_FILE)]))
}

/// The CA's mount in the object-server, when the backend has one.
pub fn volume_mount(s3: &S3StorageSpec) -> Option<VolumeMount> {
    s3.ca_secret.as_ref().map(|_| mount(CA_VOLUME, CA_DIR))
}
