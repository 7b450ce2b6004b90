//! A Tenant on `storage.s3`, as the builders render it: no claim, no data volume, the backend's
//! keys by reference only, the CA as a file, and what rolls the pods.

use super::*;
use crate::build::backend::{ACCESS_KEY_ENV, BACKEND_ENV, CA_FILE_ENV, REGION_ENV, SECRET_KEY_ENV};

const SECRET_VALUES: [&str; 2] = ["AKIA-NEVER-IN-SPEC", "never-in-the-pod-spec"];

fn gateway_tenant(s3_yaml: &str) -> Tenant {
    serde_saphyr::from_str(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: photos, namespace: shop, uid: 1234-5678}}\nspec:\n  kms: {{name: vault}}\n  replicas: 3\n  storage:\n    s3:\n{s3_yaml}"
    ))
    .unwrap()
}

fn built(t: &Tenant) -> Owned {
    let (_, k) = fixtures();
    owned(t, &k, &certs(t), DEFAULT_IMAGE).unwrap()
}

fn object_server(o: &Owned) -> &Container {
    pod(o)
        .containers
        .iter()
        .find(|c| c.name == workload::OBJECT_SERVER)
        .unwrap()
}

#[test]
fn gateway_pods_have_no_claim_and_no_data_volume() {
    let t = gateway_tenant(
        "      endpoint: http://rook-ceph-rgw-store.rook-ceph.svc\n      bucket: coffer-photos\n      credentialsSecret: {name: rook-ceph-object-user-store-coffer}\n",
    );
    let o = built(&t);
    let sts = o.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.replicas, Some(3));
    assert!(sts.volume_claim_templates.is_none(), "no PVC per pod");
    let volumes = pod(&o).volumes.as_ref().unwrap();
    assert!(volumes.iter().all(|v| v.name != "data"));
    assert!(volumes.iter().all(|v| v.persistent_volume_claim.is_none()));
    let tmp = volumes.iter().find(|v| v.name == "tmp").unwrap();
    assert!(tmp.empty_dir.is_some(), "uploads are staged in an emptyDir");
    let c = object_server(&o);
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().all(|m| m.mount_path != workload::DATA_DIR));
    let args = c.args.as_ref().unwrap();
    assert!(
        !args.iter().any(|a| a == workload::DATA_DIR),
        "no data directory argument: {args:?}"
    );
    assert_eq!(
        env_of(c, BACKEND_ENV).value.as_deref(),
        Some("http://rook-ceph-rgw-store.rook-ceph.svc/coffer-photos")
    );
}

#[test]
fn backend_keys_are_secret_key_refs_with_rooks_key_names_by_default() {
    let t = gateway_tenant(
        "      endpoint: https://rgw.example:8443/\n      bucket: coffer-photos\n      region: eu-1\n      credentialsSecret: {name: creds}\n      caSecret: {name: rgw-ca}\n",
    );
    let o = built(&t);
    let c = object_server(&o);
    for (env, key) in [(ACCESS_KEY_ENV, "AccessKey"), (SECRET_KEY_ENV, "SecretKey")] {
        let var = env_of(c, env);
        assert!(var.value.is_none(), "{env} has no value in the spec");
        let r = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("creds", key));
    }
    assert_eq!(
        env_of(c, BACKEND_ENV).value.as_deref(),
        Some("https://rgw.example:8443/coffer-photos")
    );
    assert_eq!(env_of(c, REGION_ENV).value.as_deref(), Some("eu-1"));
    assert_eq!(
        env_of(c, CA_FILE_ENV).value.as_deref(),
        Some("/etc/coffer/backend-ca/ca.crt")
    );
    let ca = pod(&o)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "backend-ca")
        .unwrap();
    let items = ca.secret.as_ref().unwrap().items.as_ref().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("ca.crt", "ca.crt")
    );
    assert!(
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "backend-ca" && m.read_only == Some(true))
    );
}

#[test]
fn named_keys_are_used_and_no_value_ever_reaches_an_owned_object() {
    let t = gateway_tenant(
        "      endpoint: http://minio.store.svc:9000\n      bucket: coffer-photos\n      credentialsSecret: {name: obc, accessKeyKey: AWS_ACCESS_KEY_ID, secretKeyKey: AWS_SECRET_ACCESS_KEY}\n",
    );
    let o = built(&t);
    let c = object_server(&o);
    let key_of = |env: &str| {
        env_of(c, env)
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key
            .clone()
    };
    assert_eq!(key_of(ACCESS_KEY_ENV), "AWS_ACCESS_KEY_ID");
    assert_eq!(key_of(SECRET_KEY_ENV), "AWS_SECRET_ACCESS_KEY");
    // The builders never see the values: nothing they render can hold them.
    let rendered = serde_json::to_string(&o.stateful_set).unwrap();
    for v in SECRET_VALUES {
        assert!(!rendered.contains(v));
    }
    assert!(!rendered.contains(CA_FILE_ENV), "no CA without caSecret");
}

#[test]
fn a_new_backend_secret_version_rolls_the_pods_and_volume_tenants_keep_their_hash() {
    let t = gateway_tenant(
        "      endpoint: http://rgw.svc\n      bucket: coffer-photos\n      credentialsSecret: {name: creds}\n",
    );
    let (_, k) = fixtures();
    let hash_of = |c: &Certs| {
        owned(&t, &k, c, DEFAULT_IMAGE)
            .unwrap()
            .stateful_set
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CERTS_HASH_ANNOTATION]
            .clone()
    };
    let mut c = certs(&t);
    c.backend_secret_version = Some("creds=1".into());
    let first = hash_of(&c);
    c.backend_secret_version = Some("creds=2".into());
    assert_ne!(
        first,
        hash_of(&c),
        "the object-server reads the keys at start"
    );
    // Without storage.s3 the hash is the one of before this field existed.
    let plain = certs(&t);
    assert_eq!(plain.restart_hash(), hash(std::iter::empty::<&[u8]>()));
}
