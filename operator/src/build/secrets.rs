//! Secrets and the ConfigMap: the CA, the TLS certificates, the root credentials, the KES config.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rand::Rng;

use super::{Certs, Names, kept_meta, meta};
use crate::crd::Tenant;
use crate::pki::Ca;

/// Key of the CA certificate in `<t>-ca`.
pub const CA_CERT: &str = "ca.crt";
/// Key of the CA private key in `<t>-ca`.
pub const CA_KEY: &str = "ca.key";
/// Key of the previous CA certificate in `<t>-ca` while a rotation is under way.
pub const CA_PREVIOUS: &str = "previous.crt";
/// Key of the root user in the root credentials Secret.
pub const ROOT_USER: &str = "rootUser";
/// Key of the root password in the root credentials Secret.
pub const ROOT_PASSWORD: &str = "rootPassword";

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// `<t>-ca`: the CA certificate and key (and the previous certificate during a rotation).
/// Not owned by the Tenant: it outlives a deletion, so a Tenant recreated under the same name
/// keeps its CA.
pub fn ca(tenant: &Tenant, ca: &Ca) -> Secret {
    let mut pairs = vec![
        (CA_CERT, ca.current.cert.as_str()),
        (CA_KEY, ca.current.key.as_str()),
    ];
    if let Some(prev) = &ca.previous {
        pairs.push((CA_PREVIOUS, prev.as_str()));
    }
    Secret {
        metadata: kept_meta(tenant, Names::of(tenant).ca()),
        type_: Some("Opaque".into()),
        data: Some(data(&pairs)),
        ..Default::default()
    }
}

/// `<t>-tls`: the S3 certificate (`kubernetes.io/tls`), or `None` with an external Secret.
pub fn s3_tls(tenant: &Tenant, certs: &Certs) -> Option<Secret> {
    let s3 = certs.s3.as_ref()?;
    Some(Secret {
        metadata: meta(tenant, Names::of(tenant).tls()),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data(&[
            ("tls.crt", &s3.cert),
            ("tls.key", &s3.key),
            ("ca.crt", &certs.ca_bundle),
        ])),
        ..Default::default()
    })
}

/// `<t>-kes-tls`: the sidecar's server certificate, the object-server's client certificate,
/// and the CA bundle both verify each other with.
pub fn kes_tls(tenant: &Tenant, certs: &Certs) -> Secret {
    Secret {
        metadata: meta(tenant, Names::of(tenant).kes_tls()),
        type_: Some("Opaque".into()),
        data: Some(data(&[
            ("server.crt", &certs.kes_server.cert),
            ("server.key", &certs.kes_server.key),
            ("client.crt", &certs.kes_client.cert),
            ("client.key", &certs.kes_client.key),
            ("ca.crt", &certs.ca_bundle),
        ])),
        ..Default::default()
    }
}

/// `<t>-kes-config`: the generated KES config (it holds no secret: credentials are `${ENV}`).
pub fn kes_config_map(tenant: &Tenant, config_yaml: String) -> ConfigMap {
    ConfigMap {
        metadata: meta(tenant, Names::of(tenant).kes_config()),
        data: Some(BTreeMap::from([(
            super::kes_config::CONFIG_FILE.to_string(),
            config_yaml,
        )])),
        ..Default::default()
    }
}

/// A fresh root credentials Secret with random values (created only when absent). Not owned
/// by the Tenant: a Tenant recreated under the same name keeps its root credentials.
pub fn root_credentials(tenant: &Tenant) -> Secret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let user = format!("coffer-{}", pick(12).to_lowercase());
    let password = pick(40);
    Secret {
        metadata: kept_meta(tenant, tenant.root_secret_name()),
        type_: Some("Opaque".into()),
        data: Some(data(&[(ROOT_USER, &user), (ROOT_PASSWORD, &password)])),
        ..Default::default()
    }
}
