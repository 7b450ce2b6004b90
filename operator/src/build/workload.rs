//! The StatefulSet (object-server + KES native sidecar), the Services and the PDB. A Tenant on
//! `storage.s3` gets pods without a data volume (see [`super::backend`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort,
    ServiceSpec, TCPSocketAction, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::kes_config::{self, ENV_APPROLE_ID, ENV_APPROLE_SECRET};
use super::secrets::{ROOT_PASSWORD, ROOT_USER};
use super::{
    CERTS_HASH_ANNOTATION, CONFIG_HASH_ANNOTATION, CONSOLE_PORT, Names, S3_PORT, labels, meta,
};
use super::{backend, users};
use crate::crd::tenant::ProbeTiming;
use crate::crd::{KMS, Tenant};

/// Name of the object-server container.
pub const OBJECT_SERVER: &str = "object-server";
/// Name of the KES sidecar (an init container with `restartPolicy: Always`).
pub const KES: &str = "kes";
/// Where the object-server keeps objects.
pub const DATA_DIR: &str = "/data";
/// MinIO's certs dir layout: `public.crt`, `private.key`, `CAs/`.
pub const CERTS_DIR: &str = "/etc/coffer/certs";
/// The object-server's KES client certificate and the CA.
pub const KES_CLIENT_DIR: &str = "/etc/coffer/kes-client";
/// Where `<t>-users` is mounted: a directory volume, so the kubelet updates the file in place.
pub const USERS_DIR: &str = "/coffer/users";
/// The object-server's environment variable naming the users file it reloads.
pub const USERS_FILE_ENV: &str = "COFFER_USERS_FILE";
/// The UID/GID the containers run as by default.
pub const RUN_AS: i64 = 1000;

pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub(super) fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

pub(super) fn secret_volume(name: &str, secret: &str, items: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: (!items.is_empty()).then(|| {
                items
                    .iter()
                    .map(|(k, p)| KeyToPath {
                        key: k.to_string(),
                        path: p.to_string(),
                        mode: None,
                    })
                    .collect()
            }),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: i32, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn https_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(S3_PORT),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

/// The KES sidecar's probe: `kes status` inside its container, over loopback, with the
/// object-server's client certificate (its policy allows `/v1/status`). It checks what the
/// object-server needs: the TLS handshake, the identity, the policy. KES answers it while
/// Vault is away (`keystore_unreachable`), so a Vault outage does not restart the sidecar and
/// empty its key cache.
fn kes_status_probe(period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(
                [
                    "kes",
                    "status",
                    "--server",
                    &format!("https://{}", kes_config::KES_ADDRESS),
                    "--cert-file",
                    &format!("{KES_CLIENT_DIR}/client.crt"),
                    "--key-file",
                    &format!("{KES_CLIENT_DIR}/client.key"),
                    "--ca",
                    &format!("{KES_CLIENT_DIR}/ca.crt"),
                ]
                .map(String::from)
                .to_vec(),
            ),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

/// `probe` with the fields `timing` sets replaced.
fn with_timing(mut probe: Probe, timing: Option<&ProbeTiming>) -> Probe {
    if let Some(t) = timing {
        probe.initial_delay_seconds = t.initial_delay_seconds.or(probe.initial_delay_seconds);
        probe.period_seconds = t.period_seconds.or(probe.period_seconds);
        probe.timeout_seconds = t.timeout_seconds.or(probe.timeout_seconds);
        probe.failure_threshold = t.failure_threshold.or(probe.failure_threshold);
    }
    probe
}

/// The default container security context: non-root, read-only root filesystem, no
/// privilege escalation, every capability dropped, seccomp RuntimeDefault.
pub fn default_container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The default pod security context: UID/GID/fsGroup 1000, non-root, seccomp RuntimeDefault.
pub fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The KES sidecar: `kes server --config …`, Vault credentials as env by `secretKeyRef` from
/// the KMS's Secret. A native sidecar: it starts before the object-server and stays up.
fn kes_container(tenant: &Tenant, kms: &KMS, default_image: &str) -> Container {
    let spec = &tenant.spec;
    let mut env_vars = vec![];
    if let Some(a) = &kms.spec.vault.auth.app_role {
        env_vars.push(env_secret(ENV_APPROLE_ID, &a.secret_name, &a.role_id_key));
        env_vars.push(env_secret(
            ENV_APPROLE_SECRET,
            &a.secret_name,
            &a.secret_id_key,
        ));
    }
    let mut mounts = vec![
        mount("kes-config", kes_config::CONFIG_DIR),
        mount("kes-tls", kes_config::TLS_DIR),
        // For its probe only: the same Secret, the object-server's client certificate.
        mount("kes-client", KES_CLIENT_DIR),
    ];
    if let Some(t) = &kms.spec.vault.tls {
        if t.ca_secret_name.is_some() {
            mounts.push(mount("vault-ca", kes_config::VAULT_CA_DIR));
        }
        if t.client_secret_name.is_some() {
            mounts.push(mount("vault-client", kes_config::VAULT_CLIENT_DIR));
        }
    }
    Container {
        name: KES.into(),
        image: Some(tenant.kes_image(default_image)),
        command: Some(vec!["kes".into()]),
        args: Some(vec![
            "server".into(),
            "--config".into(),
            format!("{}/{}", kes_config::CONFIG_DIR, kes_config::CONFIG_FILE),
        ]),
        restart_policy: Some("Always".into()),
        env: Some(env_vars),
        // No port: it listens on loopback only.
        startup_probe: Some(kes_status_probe(2, 30)),
        readiness_probe: Some(kes_status_probe(10, 3)),
        liveness_probe: Some(kes_status_probe(20, 3)),
        resources: spec.kes.resources.clone(),
        security_context: Some(
            spec.container_security_context
                .clone()
                .unwrap_or_else(default_container_security_context),
        ),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// The object-server, configured with MinIO's flags and environment.
fn object_server_container(tenant: &Tenant, default_image: &str) -> Container {
    let spec = &tenant.spec;
    let root = tenant.root_secret_name();
    let mut env_vars = vec![
        env_secret("MINIO_ROOT_USER", &root, ROOT_USER),
        env_secret("MINIO_ROOT_PASSWORD", &root, ROOT_PASSWORD),
        env(
            "MINIO_KMS_KES_ENDPOINT",
            format!("https://{}", kes_config::KES_ADDRESS),
        ),
        env(
            "MINIO_KMS_KES_CERT_FILE",
            format!("{KES_CLIENT_DIR}/client.crt"),
        ),
        env(
            "MINIO_KMS_KES_KEY_FILE",
            format!("{KES_CLIENT_DIR}/client.key"),
        ),
        env("MINIO_KMS_KES_CAPATH", format!("{KES_CLIENT_DIR}/ca.crt")),
        env("MINIO_KMS_KES_KEY_NAME", tenant.key_name()),
        env(USERS_FILE_ENV, format!("{USERS_DIR}/{}", users::USERS_FILE)),
        env(
            "MINIO_KMS_AUTO_ENCRYPTION",
            if spec.encryption.auto_encryption {
                "on"
            } else {
                "off"
            },
        ),
    ];
    if !spec.console.enabled {
        env_vars.push(env("MINIO_BROWSER", "off"));
    }
    let s3 = spec.storage.s3.as_ref();
    env_vars.extend(s3.map(backend::env_vars).unwrap_or_default());
    env_vars.extend(spec.env.iter().cloned());
    let mut args: Vec<String> = vec![
        "server".into(),
        "--address".into(),
        format!(":{S3_PORT}"),
        "--certs-dir".into(),
        CERTS_DIR.into(),
    ];
    let mut mounts = vec![];
    if s3.is_none() {
        args.push(DATA_DIR.into());
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        });
    }
    mounts.extend([
        mount("s3-tls", CERTS_DIR),
        mount("kes-client", KES_CLIENT_DIR),
        mount("users", USERS_DIR),
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ]);
    mounts.extend(s3.and_then(backend::volume_mount));
    Container {
        name: OBJECT_SERVER.into(),
        image: Some(tenant.image(default_image)),
        command: Some(vec!["object-server".into()]),
        args: Some(args),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some("https".into()),
            container_port: S3_PORT,
            ..Default::default()
        }]),
        startup_probe: Some(with_timing(
            tcp_probe(S3_PORT, 2, 60),
            spec.probes.startup.as_ref(),
        )),
        readiness_probe: Some(with_timing(
            https_probe("/minio/health/ready", 10, 3),
            spec.probes.readiness.as_ref(),
        )),
        liveness_probe: Some(with_timing(
            https_probe("/minio/health/live", 20, 3),
            spec.probes.liveness.as_ref(),
        )),
        resources: spec.resources.clone(),
        security_context: Some(
            spec.container_security_context
                .clone()
                .unwrap_or_else(default_container_security_context),
        ),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn volumes(tenant: &Tenant, kms: &KMS) -> Vec<Volume> {
    let names = Names::of(tenant);
    let s3_secret = tenant
        .spec
        .tls
        .external_secret_name
        .clone()
        .unwrap_or_else(|| names.tls());
    let mut v = vec![
        Volume {
            name: "kes-config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.kes_config(),
                ..Default::default()
            }),
            ..Default::default()
        },
        secret_volume(
            "kes-tls",
            &names.kes_tls(),
            &[
                ("server.crt", "server.crt"),
                ("server.key", "server.key"),
                ("ca.crt", "ca.crt"),
            ],
        ),
        secret_volume(
            "kes-client",
            &names.kes_tls(),
            &[
                ("client.crt", "client.crt"),
                ("client.key", "client.key"),
                ("ca.crt", "ca.crt"),
            ],
        ),
        secret_volume(
            "s3-tls",
            &s3_secret,
            &[("tls.crt", "public.crt"), ("tls.key", "private.key")],
        ),
        secret_volume(
            "users",
            &names.users(),
            &[(users::USERS_FILE, users::USERS_FILE)],
        ),
        Volume {
            name: "tmp".into(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        },
    ];
    if let Some(t) = &kms.spec.vault.tls {
        if let Some(ca) = &t.ca_secret_name {
            v.push(secret_volume("vault-ca", ca, &[("ca.crt", "ca.crt")]));
        }
        if let Some(c) = &t.client_secret_name {
            v.push(secret_volume(
                "vault-client",
                c,
                &[("tls.crt", "tls.crt"), ("tls.key", "tls.key")],
            ));
        }
    }
    if let Some(claim) = &tenant.spec.storage.shared_claim_name {
        v.push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    v.extend(tenant.spec.storage.s3.as_ref().and_then(backend::volume));
    v
}

/// StatefulSet `<t>`: `replicas` pods of object-server with the KES native sidecar, a claim
/// per pod (or the shared claim, or none on `storage.s3`), and the certificate/config hashes on the pod template. The
/// containers run the Tenant's image, else `default_image` (the operator's own).
pub fn stateful_set(
    tenant: &Tenant,
    kms: &KMS,
    default_image: &str,
    certs_hash: &str,
    config_hash: &str,
) -> StatefulSet {
    let names = Names::of(tenant);
    let spec = &tenant.spec;
    let per_pod_claims = spec.storage.shared_claim_name.is_none() && spec.storage.s3.is_none();
    let claim_templates = per_pod_claims.then(|| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                labels: Some(labels(&names)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: spec.storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity(spec.storage.size.clone()),
                    )])),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        }]
    });
    // The user's labels and annotations first, the operator's over them (the CRD refuses
    // the keys that would clash; a Tenant stored before that still cannot move the selector).
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(labels(&names));
    let mut annotations = spec.pod_annotations.clone();
    annotations.extend([
        (CERTS_HASH_ANNOTATION.to_string(), certs_hash.to_string()),
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string()),
    ]);
    StatefulSet {
        metadata: meta(tenant, names.tenant.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless()),
            selector: LabelSelector {
                match_labels: Some(labels(&names)),
                match_expressions: None,
            },
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![kes_container(tenant, kms, default_image)]),
                    containers: vec![object_server_container(tenant, default_image)],
                    volumes: Some(volumes(tenant, kms)),
                    security_context: Some(
                        spec.pod_security_context
                            .clone()
                            .unwrap_or_else(default_pod_security_context),
                    ),
                    automount_service_account_token: Some(kms.spec.vault.auth.kubernetes.is_some()),
                    enable_service_links: Some(false),
                    node_selector: (!spec.scheduling.node_selector.is_empty())
                        .then(|| spec.scheduling.node_selector.clone()),
                    tolerations: (!spec.scheduling.tolerations.is_empty())
                        .then(|| spec.scheduling.tolerations.clone()),
                    affinity: spec.scheduling.affinity.clone(),
                    priority_class_name: spec.scheduling.priority_class_name.clone(),
                    topology_spread_constraints: topology_spread(tenant),
                    service_account_name: spec.service_account_name.clone(),
                    image_pull_secrets: (!spec.image_pull_secrets.is_empty())
                        .then(|| spec.image_pull_secrets.clone()),
                    termination_grace_period_seconds: spec.termination_grace_period_seconds,
                    ..Default::default()
                }),
            },
            volume_claim_templates: claim_templates,
            ..Default::default()
        }),
        status: None,
    }
}

/// `spec.scheduling.topologySpreadConstraints`, each without a `labelSelector` given the
/// Tenant's pod labels (a constraint selecting no pod spreads nothing).
fn topology_spread(tenant: &Tenant) -> Option<Vec<TopologySpreadConstraint>> {
    let constraints = &tenant.spec.scheduling.topology_spread_constraints;
    let selector = LabelSelector {
        match_labels: Some(labels(&Names::of(tenant))),
        match_expressions: None,
    };
    (!constraints.is_empty()).then(|| {
        constraints
            .iter()
            .cloned()
            .map(|mut c| {
                c.label_selector.get_or_insert_with(|| selector.clone());
                c
            })
            .collect()
    })
}

/// The object-server image of `sts`'s pod template (what [`stateful_set`] put there).
pub fn object_server_image(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == OBJECT_SERVER)?
        .image
        .clone()
}

/// Service `<t>`: the S3 endpoint.
pub fn service(tenant: &Tenant) -> Service {
    let names = Names::of(tenant);
    let mut metadata = meta(tenant, names.tenant.clone());
    if !tenant.spec.service.annotations.is_empty() {
        metadata.annotations = Some(tenant.spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(
                tenant
                    .spec
                    .service
                    .type_
                    .clone()
                    .unwrap_or_else(|| "ClusterIP".into()),
            ),
            selector: Some(labels(&names)),
            ports: Some(
                std::iter::once(s3_port())
                    .chain(tenant.spec.console.enabled.then(console_port))
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// The console's port. The container does not declare it: the object-server listens on it by
/// default, a Service reaches an undeclared port by number, and declaring it would change the
/// pod template and so roll every existing Tenant's pods on an operator upgrade.
fn console_port() -> ServicePort {
    ServicePort {
        name: Some("console".into()),
        port: CONSOLE_PORT,
        target_port: Some(IntOrString::Int(CONSOLE_PORT)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn s3_port() -> ServicePort {
    ServicePort {
        name: Some("https".into()),
        port: S3_PORT,
        target_port: Some(IntOrString::Int(S3_PORT)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Service `<t>-hl`: headless, gives every pod a stable DNS name.
pub fn headless_service(tenant: &Tenant) -> Service {
    let names = Names::of(tenant);
    let mut metadata = meta(tenant, names.headless());
    // Marks it for selectors that want the S3 Service alone (the ServiceMonitor).
    metadata.labels.get_or_insert_default().insert(
        super::service_monitor::HEADLESS_LABEL.into(),
        "headless".into(),
    );
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels(&names)),
            ports: Some(vec![s3_port()]),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        status: None,
    }
}

/// PodDisruptionBudget `<t>`: at most one pod voluntarily down at a time.
pub fn pdb(tenant: &Tenant) -> PodDisruptionBudget {
    let names = Names::of(tenant);
    PodDisruptionBudget {
        metadata: meta(tenant, names.tenant.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(&names)),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}
