//! Unit tests of the pure builders.

use super::*;
use crate::crd::tenant::DEFAULT_IMAGE;
use crate::pki::{Ca, ca::CA_LIFETIME};
use crate::reconcile::tenant::Leaf;
use k8s_openapi::api::core::v1::Container;
use time::OffsetDateTime;

mod backend;
mod lifecycle;

pub(crate) const KMS_YAML: &str = r#"
apiVersion: coffer.dev/v1alpha1
kind: KMS
metadata: {name: vault, namespace: shop}
spec:
  vault:
    endpoint: https://vault.vault.svc:8200
    engine: kv
    version: v2
    prefix: coffer
    auth:
      appRole: {secretName: vault-approle}
    tls: {caSecretName: vault-ca}
  cache: {any: 5m, unused: 20s}
"#;

pub(crate) const TENANT_YAML: &str = r#"
apiVersion: coffer.dev/v1alpha1
kind: Tenant
metadata: {name: photos, namespace: shop, uid: 1234-5678, generation: 3}
spec:
  kms: {name: vault}
  kes: {cache: {unused: 1m}, logLevel: debug}
"#;

pub(crate) fn fixtures() -> (Tenant, KMS) {
    (
        serde_saphyr::from_str(TENANT_YAML).unwrap(),
        serde_saphyr::from_str(KMS_YAML).unwrap(),
    )
}

pub(super) fn certs(tenant: &Tenant) -> Certs {
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate("test", now, CA_LIFETIME).unwrap();
    let mut issued: std::collections::BTreeMap<_, _> =
        crate::reconcile::tenant::leaf_requests(tenant, std::time::Duration::from_secs(3600))
            .into_iter()
            .map(|(w, r)| (w, ca.issue(&r, now).unwrap()))
            .collect();
    Certs {
        ca_bundle: ca.trust_bundle(),
        s3: issued.remove(&Leaf::S3),
        kes_server: issued.remove(&Leaf::KesServer).unwrap(),
        kes_client: issued.remove(&Leaf::KesClient).unwrap(),
        kms_secrets_version: None,
        backend_secret_version: None,
    }
}

pub(super) fn pod(o: &Owned) -> &k8s_openapi::api::core::v1::PodSpec {
    o.stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

pub(super) fn env_of<'a>(c: &'a Container, name: &str) -> &'a k8s_openapi::api::core::v1::EnvVar {
    c.env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn kes_runs_as_native_sidecar_with_vault_credentials_by_reference() {
    let (t, k) = fixtures();
    let o = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let p = pod(&o);
    let kes = &p.init_containers.as_ref().unwrap()[0];
    assert_eq!(kes.name, "kes");
    assert_eq!(kes.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        kes.args.as_ref().unwrap(),
        &["server", "--config", "/etc/kes/config/config.yaml"]
    );
    for (var, key) in [
        ("VAULT_APPROLE_ID", "roleId"),
        ("VAULT_APPROLE_SECRET", "secretId"),
    ] {
        let e = env_of(kes, var);
        assert!(e.value.is_none(), "credentials must not be inlined");
        let r = e
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("vault-approle", key));
    }
    assert!(
        kes.startup_probe.is_some()
            && kes.readiness_probe.is_some()
            && kes.liveness_probe.is_some()
    );
    let sc = kes.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL"]
    );
    assert_eq!(
        p.security_context
            .as_ref()
            .unwrap()
            .seccomp_profile
            .as_ref()
            .unwrap()
            .type_,
        "RuntimeDefault"
    );
    // The Vault CA is mounted from the KMS's Secret, not copied.
    assert!(
        p.volumes.as_ref().unwrap().iter().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("vault-ca"))
    );
}

#[test]
fn object_server_gets_minio_env() {
    let (t, k) = fixtures();
    let o = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let s = &pod(&o).containers[0];
    assert_eq!(s.name, "object-server");
    assert_eq!(
        s.args.as_ref().unwrap(),
        &[
            "server",
            "--address",
            ":9000",
            "--certs-dir",
            "/etc/coffer/certs",
            "/data"
        ]
    );
    assert_eq!(
        env_of(s, "MINIO_KMS_KES_ENDPOINT").value.as_deref(),
        Some("https://127.0.0.1:7373")
    );
    assert_eq!(
        env_of(s, "MINIO_KMS_KES_KEY_NAME").value.as_deref(),
        Some("photos_default")
    );
    assert_eq!(
        env_of(s, "MINIO_KMS_AUTO_ENCRYPTION").value.as_deref(),
        Some("on")
    );
    let root = env_of(s, "MINIO_ROOT_PASSWORD")
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (root.name.as_str(), root.key.as_str()),
        ("photos-root", "rootPassword")
    );
    let sts = o.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.service_name.as_deref(), Some("photos-hl"));
    assert_eq!(
        sts.volume_claim_templates.as_ref().unwrap()[0]
            .metadata
            .name
            .as_deref(),
        Some("data")
    );
}

#[test]
fn services_and_owner_refs() {
    let (t, k) = fixtures();
    let o = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let names: Vec<_> = o
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["photos", "photos-hl"]);
    let ports = |s: &k8s_openapi::api::core::v1::Service| -> Vec<(String, i32)> {
        let spec = s.spec.as_ref().unwrap();
        spec.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    };
    assert_eq!(
        ports(&o.services[0]),
        [("https".to_string(), 9000), ("console".to_string(), 9001)]
    );
    // The headless Service names pods for S3; the console is reached through the Service.
    assert_eq!(ports(&o.services[1]), [("https".to_string(), 9000)]);
    assert_eq!(
        o.services[1].spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    for m in [
        &o.stateful_set.metadata,
        &o.config_map.metadata,
        &o.pdb.metadata,
        &o.services[0].metadata,
    ] {
        let r = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.controller),
            ("Tenant", "photos", Some(true))
        );
        assert_eq!(m.namespace.as_deref(), Some("shop"));
    }
}

#[test]
fn kes_config_policy_is_tenant_only() {
    let (t, k) = fixtures();
    let c = certs(&t);
    let id = crate::pki::identity_of_pem(&c.kes_client.cert).unwrap();
    let cfg = kes_config::build(&t, &k, &id);
    let p = &cfg.policy["object-server"];
    assert_eq!(p.identities, vec![id.clone()]);
    assert_eq!(
        p.allow,
        [
            "/v1/key/create/photos_*",
            "/v1/key/generate/photos_*",
            "/v1/key/decrypt/photos_*",
            "/v1/key/encrypt/photos_*",
            "/v1/key/describe/photos_*",
            "/v1/status"
        ]
    );
    assert_eq!(cfg.admin.identity, "disabled");
    assert_eq!(cfg.tls.auth, "on");
    assert_eq!(cfg.keystore.vault.prefix.as_deref(), Some("coffer/shop"));
    assert_eq!(cfg.keystore.vault.version.as_deref(), Some("v2"));
    assert_eq!(cfg.keystore.vault.transit, None);
    let expiry = &cfg.cache.as_ref().unwrap().expiry;
    assert_eq!(
        (
            expiry.any.as_deref(),
            expiry.unused.as_deref(),
            expiry.offline.as_deref()
        ),
        (
            Some("5m"),
            Some("1m"),
            Some(kes_config::DEFAULT_OFFLINE_EXPIRY)
        ),
        "neither the KMS nor the Tenant sets offline: Vault outages are bridged by default"
    );
    let yaml = kes_config::to_yaml(&cfg);
    assert!(
        yaml.contains("${VAULT_APPROLE_ID}") && yaml.contains("${VAULT_APPROLE_SECRET}"),
        "{yaml}"
    );
    let back: kes_config::KesConfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, cfg);
    // The ConfigMap carries it; no private key anywhere in it.
    let o = owned(&t, &k, &c, DEFAULT_IMAGE).unwrap();
    let text = &o.config_map.data.as_ref().unwrap()["config.yaml"];
    assert!(text.contains(&id) && !text.contains("PRIVATE KEY"));
}

#[test]
fn new_certificates_do_not_roll_the_pods_new_credentials_do() {
    let (t, k) = fixtures();
    let ann = |o: &Owned| {
        o.stateful_set
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap()
    };
    let a = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let b = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    assert_eq!(
        ann(&a)[CERTS_HASH_ANNOTATION],
        ann(&b)[CERTS_HASH_ANNOTATION],
        "the binaries reload certificates, keys and CAs: a renewal must not roll the pods"
    );
    let mut c = certs(&t);
    c.kms_secrets_version = Some("vault-approle=7".into());
    let rolled = owned(&t, &k, &c, DEFAULT_IMAGE).unwrap();
    assert_ne!(
        ann(&a)[CERTS_HASH_ANNOTATION],
        ann(&rolled)[CERTS_HASH_ANNOTATION],
        "the sidecar reads its Vault credentials only at start"
    );
}

#[test]
fn shared_claim_replaces_claim_templates() {
    let (mut t, k) = fixtures();
    t.spec.replicas = 3;
    t.spec.storage.shared_claim_name = Some("photos-rwx".into());
    let o = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let sts = o.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.replicas, Some(3));
    assert!(sts.volume_claim_templates.is_none());
    let data = pod(&o)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "data")
        .unwrap();
    assert_eq!(
        data.persistent_volume_claim.as_ref().unwrap().claim_name,
        "photos-rwx"
    );
}

#[test]
fn s3_certificate_names_cover_service_and_pods() {
    let (t, _) = fixtures();
    let sans = Names::of(&t).s3_dns_names();
    for want in [
        "photos.shop.svc",
        "photos.shop.svc.cluster.local",
        "*.photos-hl.shop.svc",
        "localhost",
        "127.0.0.1",
    ] {
        assert!(sans.iter().any(|s| s == want), "{want}");
    }
}

#[test]
fn kubernetes_auth_uses_the_service_account_token() {
    let (t, mut k) = fixtures();
    k.spec.vault.auth.app_role = None;
    k.spec.vault.auth.kubernetes = Some(crate::crd::kms::KubernetesAuth {
        engine: "kubernetes".into(),
        role: "coffer".into(),
    });
    let c = certs(&t);
    let cfg = kes_config::build(&t, &k, "id");
    let kube = cfg.keystore.vault.kubernetes.as_ref().unwrap();
    assert_eq!(
        (kube.role.as_str(), kube.jwt.as_str()),
        ("coffer", kes_config::SA_TOKEN)
    );
    assert!(cfg.keystore.vault.approle.is_none());
    let o = owned(&t, &k, &c, DEFAULT_IMAGE).unwrap();
    assert_eq!(pod(&o).automount_service_account_token, Some(true));
    assert!(
        pod(&o).init_containers.as_ref().unwrap()[0]
            .env
            .as_ref()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn external_tls_secret_replaces_the_issued_s3_certificate() {
    let (mut t, k) = fixtures();
    t.spec.tls.external_secret_name = Some("photos-public".into());
    let c = certs(&t);
    assert!(
        c.s3.is_none(),
        "no S3 leaf is requested with an external Secret"
    );
    let o = owned(&t, &k, &c, DEFAULT_IMAGE).unwrap();
    let names: Vec<_> = o
        .secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["photos-kes-tls"]);
    let s3 = pod(&o)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "s3-tls")
        .unwrap();
    assert_eq!(
        s3.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("photos-public")
    );
    // A change of the KMS credentials (environment of the sidecar) rolls the pods.
    let mut c3 = c.clone();
    c3.kms_secrets_version = Some("vault-approle=42".into());
    assert_ne!(c.restart_hash(), c3.restart_hash());
}

#[test]
fn overlapping_key_prefixes_are_a_conflict_for_the_younger_tenant() {
    let (a, _) = fixtures();
    let mut older = a.clone();
    older.metadata.name = Some("old".into());
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
    ));
    older.spec.encryption.key_prefix = Some("photos_".into());
    let mut me = a.clone();
    me.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(2).unwrap(),
    ));
    me.spec.encryption.key_prefix = Some("photos_a".into());
    let all = [older.clone(), me.clone()];
    assert_eq!(
        me.prefix_conflict(&all)
            .and_then(|t| t.metadata.name.clone()),
        Some("old".into())
    );
    assert!(
        older.prefix_conflict(&all).is_none(),
        "the older Tenant keeps its prefix"
    );
    // Default prefixes (`<name>_`) never overlap: names cannot contain `_`.
    let mut x = a.clone();
    x.metadata.name = Some("a".into());
    let mut y = a.clone();
    y.metadata.name = Some("a-b".into());
    assert!(y.prefix_conflict([&x]).is_none() && x.prefix_conflict([&y]).is_none());
}

#[test]
fn the_users_file_is_a_directory_mount_that_updates_in_place() {
    let (t, k) = fixtures();
    let o = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let p = pod(&o);
    let server = &p.containers[0];
    assert_eq!(
        env_of(server, "COFFER_USERS_FILE").value.as_deref(),
        Some("/coffer/users/users.json")
    );
    let m = server
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/coffer/users")
        .expect("users mount");
    // A subPath mount would never see the kubelet's updates.
    assert_eq!((m.read_only, m.sub_path.as_deref()), (Some(true), None));
    let v = p
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == m.name)
        .unwrap();
    assert_eq!(
        v.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("photos-users")
    );
    // Users change without rolling the pods: nothing on the template depends on them.
    let mut with_users = t.clone();
    with_users.spec.users = vec![crate::crd::tenant::UserRef {
        name: "app1".into(),
    }];
    let c = certs(&t);
    assert_eq!(
        owned(&t, &k, &c, DEFAULT_IMAGE).unwrap().stateful_set,
        owned(&with_users, &k, &c, DEFAULT_IMAGE)
            .unwrap()
            .stateful_set
    );
}

/// `(kind, name)` of every object the builders make for `tenant`, with the pods and claims the
/// StatefulSet controller makes for two replicas.
fn owned_names(tenant: &Tenant, kms: &KMS, certs: &Certs) -> Vec<(&'static str, String)> {
    let mut tenant = tenant.clone();
    tenant.spec.network_policy.enabled = true;
    let tenant = &tenant;
    let o = owned(tenant, kms, certs, DEFAULT_IMAGE).unwrap();
    let ca = Ca::generate("test", OffsetDateTime::now_utc(), CA_LIFETIME).unwrap();
    let mut out = vec![
        ("Secret", secrets::ca(tenant, &ca).metadata.name.unwrap()),
        (
            "Secret",
            secrets::root_credentials(tenant).metadata.name.unwrap(),
        ),
        ("Secret", users::secret(tenant, &[]).metadata.name.unwrap()),
        ("ConfigMap", o.config_map.metadata.name.unwrap()),
        ("PodDisruptionBudget", o.pdb.metadata.name.unwrap()),
        (
            "NetworkPolicy",
            o.network_policy.unwrap().metadata.name.unwrap(),
        ),
    ];
    out.extend(
        o.secrets
            .into_iter()
            .map(|s| ("Secret", s.metadata.name.unwrap())),
    );
    out.extend(
        o.services
            .into_iter()
            .map(|s| ("Service", s.metadata.name.unwrap())),
    );
    let sts = o.stateful_set.metadata.name.clone().unwrap();
    for n in 0..2 {
        out.push(("Pod", format!("{sts}-{n}")));
        for claim in o
            .stateful_set
            .spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .iter()
            .flatten()
        {
            let claim = claim.metadata.name.as_deref().unwrap();
            out.push(("PersistentVolumeClaim", format!("{claim}-{sts}-{n}")));
        }
    }
    out.push(("StatefulSet", sts));
    out
}

fn tenant_named(base: &Tenant, name: &str) -> Tenant {
    let mut t = base.clone();
    t.metadata.name = Some(name.into());
    t
}

#[test]
fn owned_names_are_injective_across_accepted_tenants() {
    let (base, kms) = fixtures();
    let certs = certs(&base);
    // Candidate names: `x` followed by every tail of every name `x` generates (`-kes`, `-tls`,
    // `-kes-tls`, `-hl`, …), and two levels of that, so every way one Tenant's name could be
    // another's name plus a suffix is tried.
    let x_names = owned_names(&tenant_named(&base, "x"), &kms, &certs);
    let mut tails: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (_, name) in &x_names {
        if let Some(rest) = name.strip_prefix("x") {
            for (i, _) in rest.match_indices('-') {
                tails.insert(rest[i..].to_string());
                for (j, _) in rest[i + 1..].match_indices('-') {
                    tails.insert(rest[i..i + 1 + j].to_string());
                }
            }
        }
    }
    assert!(tails.contains("-kes") && tails.contains("-hl"), "{tails:?}");
    let mut candidates = std::collections::BTreeSet::from(["x".to_string()]);
    for a in &tails {
        candidates.insert(format!("x{a}"));
        for b in &tails {
            candidates.insert(format!("x{a}{b}"));
        }
    }
    let built: Vec<(String, Vec<(&str, String)>)> = candidates
        .iter()
        .map(|n| {
            (
                n.clone(),
                owned_names(&tenant_named(&base, n), &kms, &certs),
            )
        })
        .collect();
    let collide = |a: &[(&str, String)], b: &[(&str, String)]| {
        a.iter()
            .find(|x| b.contains(x))
            .map(|(k, n)| format!("{k} {n}"))
    };
    for (i, (a, a_names)) in built.iter().enumerate() {
        for (b, b_names) in &built[i + 1..] {
            let accepted = name_collision(a).is_none() && name_collision(b).is_none();
            if let (true, Some(shared)) = (accepted, collide(a_names, b_names)) {
                panic!("accepted Tenants {a:?} and {b:?} both own {shared}");
            }
        }
    }
    // The rule is not vacuous: each reserved suffix names a real collision with `x`.
    for suffix in RESERVED_NAME_SUFFIXES {
        let b = format!("x{suffix}");
        let b_names = owned_names(&tenant_named(&base, &b), &kms, &certs);
        assert!(collide(&x_names, &b_names).is_some(), "{b} collides with x");
        let why = name_collision(&b).unwrap();
        assert!(why.contains(suffix) && why.contains("\"x\""), "{why}");
    }
    for suffix in RESERVED_NAME_SUFFIXES {
        let cel = format!("!self.metadata.name.endsWith('{suffix}')");
        assert!(crate::crd::tenant::NAME_SUFFIX_RULE.contains(&cel), "{cel}");
    }
    assert_eq!(name_collision("x"), None);
    assert_eq!(name_collision("kes"), None);
    assert_eq!(name_collision("x-kesx"), None);
}

/// The images of the pod template's (kes, object-server) containers.
fn images(o: &Owned) -> (String, String) {
    let p = pod(o);
    let image = |c: &Container| c.image.clone().unwrap();
    (
        image(&p.init_containers.as_ref().unwrap()[0]),
        image(&p.containers[0]),
    )
}

#[test]
fn a_tenant_without_an_image_runs_the_operators_default_image() {
    let (t, k) = fixtures();
    let c = certs(&t);
    let upgraded = "registry.example/coffer:0.2.0";
    assert_eq!(
        images(&owned(&t, &k, &c, upgraded).unwrap()),
        (upgraded.to_string(), upgraded.to_string())
    );
    // Another operator image is another pod template: the StatefulSet rolls its pods.
    assert_ne!(
        owned(&t, &k, &c, upgraded).unwrap().stateful_set,
        owned(&t, &k, &c, DEFAULT_IMAGE).unwrap().stateful_set
    );
}

#[test]
fn a_tenants_own_images_win_over_the_operators() {
    let (mut t, k) = fixtures();
    let c = certs(&t);
    t.spec.image = Some("mine/coffer:1".into());
    assert_eq!(
        images(&owned(&t, &k, &c, "operator/coffer:2").unwrap()),
        ("mine/coffer:1".to_string(), "mine/coffer:1".to_string())
    );
    t.spec.kes.image = Some("mine/kes:3".into());
    assert_eq!(
        images(&owned(&t, &k, &c, "operator/coffer:2").unwrap()),
        ("mine/kes:3".to_string(), "mine/coffer:1".to_string())
    );
    t.spec.image = None;
    assert_eq!(
        images(&owned(&t, &k, &c, "operator/coffer:2").unwrap()),
        ("mine/kes:3".to_string(), "operator/coffer:2".to_string())
    );
}

#[test]
fn the_console_is_on_by_default_and_can_be_turned_off() {
    let (mut t, k) = fixtures();
    let on = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    let server = |o: &Owned| pod(o).containers[0].clone();
    let browser = |c: &Container| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == "MINIO_BROWSER")
            .and_then(|e| e.value.clone())
    };
    assert_eq!(browser(&server(&on)), None);
    t.spec.console.enabled = false;
    let off = owned(&t, &k, &certs(&t), DEFAULT_IMAGE).unwrap();
    assert_eq!(browser(&server(&off)).as_deref(), Some("off"));
    let names: Vec<_> = off.services[0]
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["https"]);
    // Turning it off changes the pod template (the pods restart without the console).
    assert_ne!(
        on.stateful_set.spec.as_ref().unwrap().template,
        off.stateful_set.spec.as_ref().unwrap().template
    );
}

#[test]
fn transit_kms_renders_the_transit_keystore_without_kv_settings() {
    let (t, mut k) = fixtures();
    k.spec.vault.prefix = None;
    k.spec.vault.transit = Some(crate::crd::kms::TransitSpec {
        engine: "kms-transit".into(),
    });
    let id = crate::pki::identity_of_pem(&certs(&t).kes_client.cert).unwrap();
    let yaml = kes_config::to_yaml(&kes_config::build(&t, &k, &id));
    let env = |k: &str| Some(format!("<{k}>"));
    let parsed = sidecar_kes::config::parse(&yaml, &env).expect("sidecar-kes reads it");
    let sidecar_kes::config::KeystoreConfig::Vault(v) = &parsed.keystore else {
        panic!("a Vault keystore: {yaml}");
    };
    assert_eq!(
        v.engine,
        sidecar_kes::keystore::vault::VaultEngine::Transit(
            sidecar_kes::keystore::vault::TransitEngine {
                mount: "kms-transit".into()
            }
        ),
        "{yaml}"
    );
    for kv in ["engine: kv", "version:", "prefix:"] {
        assert!(!yaml.contains(kv), "no K/V setting ({kv}): {yaml}");
    }
}
