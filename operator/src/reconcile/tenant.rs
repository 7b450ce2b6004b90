//! Reconciles one Tenant, top to bottom:
//!
//! 1. the KMS it names, and that KMS's credentials Secret (by reference: only the presence of
//!    the keys is checked, values are never read into the operator's output), and that no
//!    older Tenant's key prefix overlaps this one's, nor its name makes it take another Tenant's
//!    object names (`x-kes`, `x-hl`: see [`crate::build`]);
//! 2. the root credentials Secret, generated once when absent;
//! 3. the CA (`<t>-ca`), rotated at 2/3 of its lifetime (see [`crate::pki::ca`]);
//! 4. the leaf certificates, re-issued at 2/3 of their lifetime or when names/CA change;
//! 5. the user Secrets of `spec.users`, checked (see [`super::users`]), and every owned
//!    object (`<t>-users` first), applied server-side with one field manager;
//! 6. the status, and a requeue for the next renewal.
//!
//! Nothing here deletes anything in Vault: a deleted Tenant's objects are garbage-collected
//! through their owner references, and its master keys stay where they are.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::status::{
    self, CERTIFICATES_READY, DEGRADED, KMS_READY, PROGRESSING, READY, USERS_READY,
};
use super::{Context, Error};
use crate::build::{self, Certs, FIELD_MANAGER, Names, secrets};
use crate::crd::{KMS, Tenant, TenantStatus};
use crate::pki::leaf::{CertInfo, RenewalReason, renewal_reason};
use crate::pki::{Ca, LeafRequest, Pem, Usage, ca::CA_LIFETIME};

/// How often a healthy Tenant is looked at even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Retry delay while something the Tenant depends on is missing.
pub const WAIT: Duration = Duration::from_secs(5);

/// The leaf certificates a Tenant needs, with the Secret and keys each lives under.
pub fn leaf_requests(tenant: &Tenant, lifetime: Duration) -> Vec<(&'static str, LeafRequest)> {
    let names = Names::of(tenant);
    let mut out = vec![];
    if tenant.spec.tls.external_secret_name.is_none() {
        out.push((
            "s3",
            LeafRequest {
                common_name: format!("{}.{}.svc", names.tenant, names.namespace),
                sans: names.s3_dns_names(),
                usage: Usage::Server,
                lifetime,
            },
        ));
    }
    out.push((
        "kes-server",
        LeafRequest {
            common_name: "kes".into(),
            sans: vec!["localhost".into(), "127.0.0.1".into()],
            usage: Usage::Server,
            lifetime,
        },
    ));
    out.push((
        "kes-client",
        LeafRequest {
            common_name: format!("object-server {}/{}", names.namespace, names.tenant),
            sans: vec![],
            usage: Usage::Client,
            lifetime,
        },
    ));
    out
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

fn stored_pem(secret: Option<&Secret>, cert_key: &str, key_key: &str) -> Option<Pem> {
    let s = secret?;
    Some(Pem {
        cert: text(s, cert_key)?,
        key: text(s, key_key)?,
    })
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// A note for the status and events; only names and reasons, never values.
struct Outcome {
    degraded: Option<(&'static str, String)>,
    kms_ready: (bool, &'static str, String),
}

/// One reconcile of `tenant`.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let names = Names::of(&tenant);
    let client = ctx.client.clone();
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let now = OffsetDateTime::now_utc();
    let recorder = ctx.recorder();
    let reference = tenant.object_ref(&());
    let publish = |type_: EventType, reason: &'static str, note: String| {
        let recorder = &recorder;
        let reference = &reference;
        async move {
            let ev = Event {
                type_,
                reason: reason.into(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, reference).await {
                tracing::debug!(error = %e, "event not published");
            }
        }
    };

    // 1. The KMS and its credentials Secret.
    let kms_api: Api<KMS> = Api::namespaced(client.clone(), &names.namespace);
    let Some(kms) = kms_api.get_opt(&tenant.spec.kms.name).await? else {
        let msg = format!(
            "KMS {:?} not found in namespace {:?}",
            tenant.spec.kms.name, names.namespace
        );
        write_status(
            &tenant,
            &ctx,
            &names,
            Outcome {
                degraded: Some(("KMSNotFound", msg.clone())),
                kms_ready: (false, "KMSNotFound", msg),
            },
            None,
        )
        .await?;
        return Ok(Action::requeue(WAIT));
    };
    if let Some(problem) = check_kms_secret(&kms, &secrets_api).await? {
        write_status(
            &tenant,
            &ctx,
            &names,
            Outcome {
                degraded: Some(problem.clone()),
                kms_ready: (false, problem.0, problem.1),
            },
            None,
        )
        .await?;
        return Ok(Action::requeue(WAIT));
    }
    let kms_conds = kms
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let kms_ready = if status::is_true(kms_conds, READY) {
        (
            true,
            "VaultHealthy",
            format!("KMS {:?} reports Vault healthy", kms.name_any()),
        )
    } else {
        let why = kms_conds
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "not probed yet".into());
        (
            false,
            "VaultUnavailable",
            format!("KMS {:?}: {why}", kms.name_any()),
        )
    };

    // A Tenant whose key prefix overlaps an older Tenant's is not deployed: its KES policy
    // would reach the other's keys.
    let describe = |other: &Tenant| {
        format!(
            "key prefix {:?} overlaps the prefix {:?} of Tenant {:?}; set spec.encryption.keyPrefix",
            tenant.key_prefix(),
            other.key_prefix(),
            other.name_any()
        )
    };
    let conflict = match ctx.cached_tenants() {
        Some(cached) => tenant
            .prefix_conflict(cached.iter().map(|t| t.as_ref()))
            .map(describe),
        None => {
            let listed = Api::<Tenant>::namespaced(client.clone(), &names.namespace)
                .list(&Default::default())
                .await?;
            tenant.prefix_conflict(&listed.items).map(describe)
        }
    };
    if let Some(msg) = conflict {
        write_status(
            &tenant,
            &ctx,
            &names,
            Outcome {
                degraded: Some(("KeyPrefixConflict", msg)),
                kms_ready,
            },
            None,
        )
        .await?;
        return Ok(Action::requeue(RESYNC));
    }

    // A Tenant whose owned objects would take another Tenant's names is not deployed (see
    // `build`'s module doc). The CRD refuses such names; this catches Tenants stored before.
    if let Some(msg) = crate::build::name_collision(&names.tenant) {
        publish(EventType::Warning, "NameCollides", msg.clone()).await;
        write_status(
            &tenant,
            &ctx,
            &names,
            Outcome {
                degraded: Some(("NameCollides", msg)),
                kms_ready,
            },
            None,
        )
        .await?;
        return Ok(Action::requeue(RESYNC));
    }

    // 2. Root credentials: generated once, never overwritten.
    let root_name = tenant.root_secret_name();
    if secrets_api.get_opt(&root_name).await?.is_none() {
        match secrets_api
            .create(&PostParams::default(), &secrets::root_credentials(&tenant))
            .await
        {
            Ok(_) => {
                publish(
                    EventType::Normal,
                    "RootCredentialsGenerated",
                    format!("generated root credentials in Secret {root_name:?}"),
                )
                .await
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }

    // 3. The CA.
    let ca_name = names.ca();
    let ca_cn = format!("coffer {}/{} CA", names.namespace, names.tenant);
    let stored_ca = secrets_api.get_opt(&ca_name).await?;
    let mut ca = match stored_ca.as_ref().and_then(|s| {
        Ca::from_pem(
            &text(s, secrets::CA_CERT)?,
            &text(s, secrets::CA_KEY)?,
            text(s, secrets::CA_PREVIOUS),
        )
        .ok()
    }) {
        Some(ca) => ca,
        None => {
            publish(
                EventType::Normal,
                "CAIssued",
                format!("issued a new CA in Secret {ca_name:?}"),
            )
            .await;
            Ca::generate(&ca_cn, now, CA_LIFETIME)?
        }
    };
    if let Some(next) = ca.rotate_if_due(&ca_cn, now)? {
        publish(
            EventType::Normal,
            "CARotated",
            "CA rotation started: old and new CA trusted while leaves re-issue".into(),
        )
        .await;
        ca = next;
    }
    ca.drop_previous_if_expired(now);
    let ca_secret = secrets::ca(&tenant, &ca);
    if stored_ca.as_ref().and_then(|s| s.data.as_ref()) != ca_secret.data.as_ref() {
        apply(&secrets_api, &ca_secret).await?;
    }

    // 4. Leaf certificates.
    let lifetime = match crate::duration::parse(&tenant.spec.tls.certificate_lifetime) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("spec.tls.certificateLifetime: {e}");
            let outcome = Outcome {
                degraded: Some(("InvalidSpec", msg)),
                kms_ready,
            };
            write_status(&tenant, &ctx, &names, outcome, None).await?;
            return Ok(Action::requeue(RESYNC));
        }
    };
    let stored_tls = secrets_api.get_opt(&names.tls()).await?;
    let stored_kes = secrets_api.get_opt(&names.kes_tls()).await?;
    let mut issued: BTreeMap<&str, Pem> = BTreeMap::new();
    let mut next_renewal = now + CA_LIFETIME;
    next_renewal = next_renewal.min(ca.info().renew_at());
    let mut first_expiry: Option<OffsetDateTime> = None;
    for (which, req) in leaf_requests(&tenant, lifetime) {
        let stored = match which {
            "s3" => stored_pem(stored_tls.as_ref(), "tls.crt", "tls.key"),
            "kes-server" => stored_pem(stored_kes.as_ref(), "server.crt", "server.key"),
            _ => stored_pem(stored_kes.as_ref(), "client.crt", "client.key"),
        };
        let reason = match stored.as_ref().map(|p| CertInfo::from_pem(&p.cert)) {
            Some(Ok(info)) => renewal_reason(&info, &req, ca.subject(), now),
            _ => Some(RenewalReason::Due),
        };
        let pem = match (stored, reason) {
            (Some(p), None) => p,
            (old, reason) => {
                let reason = reason.unwrap_or(RenewalReason::Due);
                // The KES client keeps its key: its identity is in the KES config (Ca::renew).
                let p = match (which, &old) {
                    ("kes-client", Some(old)) => ca.renew(&req, now, &old.key)?,
                    _ => ca.issue(&req, now)?,
                };
                if old.is_some() {
                    publish(
                        EventType::Normal,
                        "CertificateRenewed",
                        format!("re-issued the {which} certificate: {reason}"),
                    )
                    .await;
                }
                p
            }
        };
        let info = CertInfo::from_pem(&pem.cert)?;
        next_renewal = next_renewal.min(info.renew_at());
        first_expiry = Some(first_expiry.map_or(info.not_after, |e| e.min(info.not_after)));
        issued.insert(which, pem);
    }
    // An external S3 Secret (cert-manager's) must hold a pair; its renewal is read by the
    // object-server from the mounted files and rolls no pod.
    if let Some(name) = &tenant.spec.tls.external_secret_name {
        match secrets_api.get_opt(name).await? {
            Some(s) if text(&s, "tls.crt").is_some() && text(&s, "tls.key").is_some() => {}
            _ => {
                let msg = format!("TLS Secret {name:?} is missing or has no tls.crt/tls.key");
                write_status(
                    &tenant,
                    &ctx,
                    &names,
                    Outcome {
                        degraded: Some(("TLSSecretMissing", msg)),
                        kms_ready,
                    },
                    None,
                )
                .await?;
                return Ok(Action::requeue(WAIT));
            }
        }
    }
    let kms_secrets_version = kms_secrets_version(&kms, &secrets_api).await?;
    let certs = Certs {
        ca_bundle: ca.trust_bundle(),
        s3: issued.remove("s3"),
        kes_server: issued
            .remove("kes-server")
            .ok_or_else(|| Error::Spec("no KES server certificate".into()))?,
        kes_client: issued
            .remove("kes-client")
            .ok_or_else(|| Error::Spec("no KES client certificate".into()))?,
        kms_secrets_version,
    };

    // The users: the valid ones apply, the others are named (once per change of the list).
    let users = super::users::gather(&tenant, &secrets_api).await?;
    let users_condition = super::users::condition(&tenant, &users);
    let previous_users_message = tenant
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == USERS_READY))
        .map(|c| c.message.as_str());
    if !users_condition.0 && previous_users_message != Some(users_condition.2.as_str()) {
        publish(
            EventType::Warning,
            super::users::INVALID_USER_SECRET,
            users_condition.2.clone(),
        )
        .await;
    }

    // 5. Every owned object; the users file first, so the pods' volume finds it.
    apply(&secrets_api, &build::users::secret(&tenant, &users.users)).await?;
    let owned = build::owned(&tenant, &kms, &certs, &ctx.default_image)?;
    for s in &owned.secrets {
        apply(&secrets_api, s).await?;
    }
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &names.namespace),
        &owned.config_map,
    )
    .await?;
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &names.namespace);
    for s in &owned.services {
        apply(&svc_api, s).await?;
    }
    apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &names.namespace),
        &owned.pdb,
    )
    .await?;
    let sts = apply(
        &Api::<StatefulSet>::namespaced(client.clone(), &names.namespace),
        &owned.stateful_set,
    )
    .await?;

    // 6. Status.
    let identity = crate::pki::identity_of_pem(&certs.kes_client.cert)?;
    let was_ready = tenant
        .status
        .as_ref()
        .is_some_and(|s| status::is_true(&s.conditions, READY));
    let extra = StatusExtra {
        identity,
        expiry: first_expiry,
        ready_replicas: sts
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        updated: sts.status.as_ref().is_some_and(|s| {
            s.observed_generation == sts.metadata.generation
                && s.updated_replicas.unwrap_or(0) == tenant.spec.replicas
                && s.ready_replicas.unwrap_or(0) == tenant.spec.replicas
        }),
        image: tenant.image(&ctx.default_image),
        users_in_effect: users.users.len() as i32,
        users_condition,
    };
    let ready = write_status(
        &tenant,
        &ctx,
        &names,
        Outcome {
            degraded: None,
            kms_ready,
        },
        Some(extra),
    )
    .await?;
    if ready != was_ready {
        let (t, r, n) = if ready {
            (
                EventType::Normal,
                "Ready",
                "every replica is ready".to_string(),
            )
        } else {
            (
                EventType::Normal,
                "Progressing",
                format!("waiting for replicas of StatefulSet {:?}", names.tenant),
            )
        };
        publish(t, r, n).await;
    }

    let until = (next_renewal - OffsetDateTime::now_utc())
        .whole_seconds()
        .max(1) as u64;
    Ok(Action::requeue(Duration::from_secs(until).min(RESYNC)))
}

/// What the happy path adds to the status.
struct StatusExtra {
    identity: String,
    expiry: Option<OffsetDateTime>,
    ready_replicas: i32,
    /// Every replica runs the current pod template.
    updated: bool,
    /// The object-server image of the current pod template.
    image: String,
    users_in_effect: i32,
    users_condition: (bool, &'static str, String),
}

/// `name=resourceVersion` of the KMS's credentials Secret, or `None` when it has none. Only
/// that Secret: the pods take it as environment, read once at start. The Vault CA and client
/// certificate are files KES reads again when they change.
async fn kms_secrets_version(
    kms: &KMS,
    secrets_api: &Api<Secret>,
) -> Result<Option<String>, Error> {
    let Some(name) = kms.spec.credentials_secret() else {
        return Ok(None);
    };
    let rv = secrets_api
        .get_opt(name)
        .await?
        .and_then(|s| s.metadata.resource_version)
        .unwrap_or_default();
    Ok(Some(format!("{name}={rv}")))
}

/// `Some((reason, message))` when the KMS's credentials Secret is missing or incomplete.
pub(crate) async fn check_kms_secret(
    kms: &KMS,
    secrets_api: &Api<Secret>,
) -> Result<Option<(&'static str, String)>, Error> {
    let Some(a) = &kms.spec.vault.auth.app_role else {
        return Ok(None);
    };
    let Some(secret) = secrets_api.get_opt(&a.secret_name).await? else {
        return Ok(Some((
            "KMSSecretMissing",
            format!(
                "Secret {:?} referenced by KMS {:?} does not exist",
                a.secret_name,
                kms.name_any()
            ),
        )));
    };
    let has = |k: &str| {
        secret
            .data
            .as_ref()
            .is_some_and(|d| d.get(k).is_some_and(|v: &ByteString| !v.0.is_empty()))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(k))
    };
    for k in [&a.role_id_key, &a.secret_id_key] {
        if !has(k) {
            return Ok(Some((
                "KMSSecretIncomplete",
                format!(
                    "Secret {:?} referenced by KMS {:?} has no key {k:?}",
                    a.secret_name,
                    kms.name_any()
                ),
            )));
        }
    }
    Ok(None)
}

/// Writes `.status` and returns whether the Tenant is Ready.
async fn write_status(
    tenant: &Tenant,
    ctx: &Context,
    names: &Names,
    outcome: Outcome,
    extra: Option<StatusExtra>,
) -> Result<bool, Error> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let generation = tenant.metadata.generation;
    let mut st: TenantStatus = tenant.status.clone().unwrap_or_default();
    let conds = &mut st.conditions;
    let (kr, kreason, kmsg) = outcome.kms_ready;
    status::set(conds, KMS_READY, kr, kreason, kmsg, generation, now);
    let ready = match (&outcome.degraded, &extra) {
        (Some((reason, msg)), _) => {
            status::set(conds, DEGRADED, true, reason, msg.clone(), generation, now);
            status::set(conds, READY, false, reason, msg.clone(), generation, now);
            status::set(
                conds,
                PROGRESSING,
                false,
                reason,
                "blocked until the problem above is fixed",
                generation,
                now,
            );
            false
        }
        (None, Some(x)) => {
            status::set(
                conds,
                CERTIFICATES_READY,
                true,
                "Issued",
                "every certificate is issued by the Tenant CA and current",
                generation,
                now,
            );
            status::set(conds, DEGRADED, false, "AsExpected", "", generation, now);
            let (ok, reason, msg) = &x.users_condition;
            status::set(
                conds,
                USERS_READY,
                *ok,
                reason,
                msg.clone(),
                generation,
                now,
            );
            let want = tenant.spec.replicas;
            if x.updated {
                st.image = Some(x.image.clone());
                status::set(
                    conds,
                    PROGRESSING,
                    false,
                    "RolledOut",
                    format!("{want}/{want} replicas up to date"),
                    generation,
                    now,
                );
                status::set(
                    conds,
                    READY,
                    true,
                    "AllReplicasReady",
                    format!("{want}/{want} replicas ready"),
                    generation,
                    now,
                );
            } else {
                status::set(
                    conds,
                    PROGRESSING,
                    true,
                    "RollingOut",
                    format!("{}/{want} replicas ready", x.ready_replicas),
                    generation,
                    now,
                );
                status::set(
                    conds,
                    READY,
                    false,
                    "ReplicasNotReady",
                    format!("{}/{want} replicas ready", x.ready_replicas),
                    generation,
                    now,
                );
            }
            st.ready_replicas = Some(x.ready_replicas);
            st.kes_identity = Some(x.identity.clone());
            st.certificate_expiry = x.expiry.and_then(|e| {
                e.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            st.endpoint = Some(names.endpoint());
            st.key_name = Some(tenant.key_name());
            st.users = Some(x.users_in_effect);
            x.updated
        }
        (None, None) => false,
    };
    st.observed_generation = generation;
    if tenant.status.as_ref() != Some(&st) {
        let api: Api<Tenant> = Api::namespaced(ctx.client.clone(), &names.namespace);
        api.patch_status(
            &names.tenant,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": st })),
        )
        .await?;
    }
    Ok(ready)
}
