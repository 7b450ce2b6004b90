//! One reconcile at a time against a scripted API server ([`fake_api`]): what the cluster
//! holds goes in, the status, the applied objects and the events come out.

mod fake_api;
mod upgrades;

use std::sync::Arc;

use http::Method;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;

use super::{RESYNC, WAIT, reason, reconcile};
use crate::build::tests::fixtures;
use crate::crd::{KMS, Tenant};
use crate::reconcile::status::{
    CERTIFICATES_READY, DEGRADED, KMS_READY, PROGRESSING, READY, USERS_READY,
};
use crate::reconcile::{Context, Error, users};
use fake_api::{FakeApi, path_of};

const NS: &str = "shop";

fn approle_secret(keys: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("vault-approle".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            keys.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A cluster with the Tenant `photos`, its KMS `vault` and the KMS's complete Secret.
fn cluster() -> (FakeApi, Tenant) {
    let (tenant, kms) = fixtures();
    let api = FakeApi::default();
    api.put(&tenant);
    api.put(&kms);
    api.put(&approle_secret(&[
        ("roleId", "r-123"),
        ("secretId", "s-456"),
    ]));
    (api, tenant)
}

async fn run(api: &FakeApi, tenant: &Tenant) -> Result<Action, Error> {
    let ctx = Context::new(
        api.client(),
        Reporter {
            controller: "coffer-operator".into(),
            instance: Some("unit".into()),
        },
    );
    reconcile(Arc::new(tenant.clone()), ctx).await
}

/// The stored Tenant (with the status the reconcile wrote).
fn stored(api: &FakeApi) -> Tenant {
    api.get::<Tenant>(NS, "photos").unwrap()
}

/// `(status, reason, message)` of condition `type_`.
fn condition(t: &Tenant, type_: &str) -> (bool, String, String) {
    let c = t
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no condition {type_}: {:?}", t.status));
    (c.status == "True", c.reason.clone(), c.message.clone())
}

fn event_reasons(api: &FakeApi) -> Vec<String> {
    api.events().into_iter().map(|(_, r, _)| r).collect()
}

fn nothing_deployed(api: &FakeApi) {
    assert!(api.get::<StatefulSet>(NS, "photos").is_none());
    assert!(api.get::<Secret>(NS, "photos-ca").is_none());
}

#[tokio::test]
async fn a_missing_kms_blocks_the_tenant() {
    let (tenant, _) = fixtures();
    let api = FakeApi::default();
    api.put(&tenant);
    assert_eq!(run(&api, &tenant).await.unwrap(), Action::requeue(WAIT));
    let t = stored(&api);
    let (degraded, why, message) = condition(&t, DEGRADED);
    assert!(degraded);
    assert_eq!(why, reason::KMS_NOT_FOUND);
    assert_eq!(message, r#"KMS "vault" not found in namespace "shop""#);
    assert_eq!(
        condition(&t, KMS_READY),
        (false, why.clone(), message.clone())
    );
    assert!(!condition(&t, READY).0);
    assert_eq!(t.status.unwrap().observed_generation, Some(3));
    nothing_deployed(&api);
}

#[tokio::test]
async fn a_missing_or_incomplete_kms_secret_blocks_the_tenant() {
    let (tenant, kms) = fixtures();
    let api = FakeApi::default();
    api.put(&tenant);
    api.put(&kms);
    assert_eq!(run(&api, &tenant).await.unwrap(), Action::requeue(WAIT));
    let (_, why, message) = condition(&stored(&api), DEGRADED);
    assert_eq!(why, reason::KMS_SECRET_MISSING);
    assert!(message.contains(r#"Secret "vault-approle""#), "{message}");

    api.put(&approle_secret(&[("roleId", "r-123")]));
    run(&api, &tenant).await.unwrap();
    let t = stored(&api);
    let (degraded, why, message) = condition(&t, DEGRADED);
    assert!(degraded);
    assert_eq!(why, reason::KMS_SECRET_INCOMPLETE);
    assert!(message.contains(r#"no key "secretId""#), "{message}");
    assert!(!serde_json::to_string(&t.status).unwrap().contains("r-123"));
    nothing_deployed(&api);
}

#[tokio::test]
async fn the_first_reconcile_deploys_every_object() {
    let (api, tenant) = cluster();
    run(&api, &tenant).await.unwrap();
    for name in [
        "photos-root",
        "photos-ca",
        "photos-tls",
        "photos-kes-tls",
        "photos-users",
    ] {
        assert!(api.get::<Secret>(NS, name).is_some(), "Secret {name}");
    }
    let writes = api.writes();
    let sts_path = path_of::<StatefulSet>(NS, "photos");
    let users_path = path_of::<Secret>(NS, "photos-users");
    let position = |p: &str| writes.iter().position(|(_, w)| w == p).unwrap();
    assert!(
        position(&users_path) < position(&sts_path),
        "the users file exists before the pods mount it: {writes:?}"
    );
    assert_eq!(
        writes.last().map(|(m, p)| (m.clone(), p.as_str())),
        Some((
            Method::PATCH,
            format!("{}/status", path_of::<Tenant>(NS, "photos")).as_str()
        )),
        "the status is written last"
    );

    let t = stored(&api);
    assert_eq!(
        condition(&t, CERTIFICATES_READY),
        (
            true,
            reason::ISSUED.into(),
            "every certificate is issued by the Tenant CA and current".into()
        )
    );
    assert_eq!(
        condition(&t, DEGRADED),
        (false, reason::AS_EXPECTED.into(), String::new())
    );
    // No kubelet: the StatefulSet has no ready replica.
    assert_eq!(
        condition(&t, READY),
        (
            false,
            reason::REPLICAS_NOT_READY.into(),
            "0/1 replicas ready".into()
        )
    );
    assert_eq!(condition(&t, PROGRESSING).1, reason::ROLLING_OUT);
    assert_eq!(
        condition(&t, KMS_READY),
        (
            false,
            reason::VAULT_UNAVAILABLE.into(),
            r#"KMS "vault": not probed yet"#.into()
        )
    );
    assert_eq!(condition(&t, USERS_READY).1, users::ALL_USERS_VALID);
    let st = t.status.as_ref().unwrap();
    assert_eq!(st.endpoint.as_deref(), Some("https://photos.shop.svc:9000"));
    assert_eq!(st.kes_identity.as_ref().map(String::len), Some(64));
    assert_eq!(st.image, None, "no replica runs the template yet");
    assert!(!serde_json::to_string(&st).unwrap().contains("s-456"));
    assert_eq!(
        event_reasons(&api),
        [reason::ROOT_CREDENTIALS_GENERATED, reason::CA_ISSUED]
    );
}

#[tokio::test]
async fn a_second_reconcile_writes_nothing_new() {
    let (api, tenant) = cluster();
    run(&api, &tenant).await.unwrap();
    let root = api.get::<Secret>(NS, "photos-root").unwrap();
    let ca = api.get::<Secret>(NS, "photos-ca").unwrap();
    api.clear_log();
    let action = run(&api, &stored(&api)).await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let writes = api.writes();
    assert!(
        !writes.iter().any(|(m, p)| *m == Method::POST
            || p.ends_with("/status")
            || p.ends_with("/photos-ca")),
        "no create, no CA write, no status write: {writes:?}"
    );
    assert!(api.events().is_empty(), "{:?}", api.events());
    assert_eq!(
        api.get::<Secret>(NS, "photos-root").unwrap().data,
        root.data
    );
    assert_eq!(api.get::<Secret>(NS, "photos-ca").unwrap().data, ca.data);
}

#[tokio::test]
async fn ready_replicas_make_the_tenant_ready() {
    let (api, tenant) = cluster();
    run(&api, &tenant).await.unwrap();
    let mut sts = api.get::<StatefulSet>(NS, "photos").unwrap();
    sts.status = Some(StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: 1,
        ready_replicas: Some(1),
        updated_replicas: Some(1),
        ..Default::default()
    });
    api.put(&sts);
    let mut kms: KMS = api.get(NS, "vault").unwrap();
    kms.status = Some(crate::crd::KmsStatus {
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: READY.into(),
            status: "True".into(),
            reason: "VaultHealthy".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        }],
        ..Default::default()
    });
    api.put(&kms);
    api.clear_log();
    run(&api, &stored(&api)).await.unwrap();
    let t = stored(&api);
    assert_eq!(
        condition(&t, READY),
        (
            true,
            reason::ALL_REPLICAS_READY.into(),
            "1/1 replicas ready".into()
        )
    );
    assert_eq!(condition(&t, PROGRESSING).1, reason::ROLLED_OUT);
    assert_eq!(condition(&t, KMS_READY).1, reason::VAULT_HEALTHY);
    assert_eq!(
        t.status.unwrap().image.as_deref(),
        Some(crate::crd::tenant::DEFAULT_IMAGE)
    );
    assert_eq!(event_reasons(&api), [reason::READY]);
}

#[tokio::test]
async fn an_older_tenant_with_an_overlapping_prefix_wins() {
    let (api, mut tenant) = cluster();
    let mut older = tenant.clone();
    older.metadata.name = Some("album".into());
    older.spec.encryption.key_prefix = Some("photos".into());
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap(),
    ));
    tenant.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap(),
        ));
    api.put(&older);
    api.put(&tenant);
    assert_eq!(run(&api, &tenant).await.unwrap(), Action::requeue(RESYNC));
    let (degraded, why, message) = condition(&stored(&api), DEGRADED);
    assert!(degraded);
    assert_eq!(why, reason::KEY_PREFIX_CONFLICT);
    assert!(message.contains(r#"Tenant "album""#), "{message}");
    nothing_deployed(&api);
}

#[tokio::test]
async fn a_name_taking_another_tenants_objects_is_refused_with_a_warning() {
    let (api, mut tenant) = cluster();
    tenant.metadata.name = Some("x-kes".into());
    api.put(&tenant);
    run(&api, &tenant).await.unwrap();
    let t = api.get::<Tenant>(NS, "x-kes").unwrap();
    assert_eq!(condition(&t, DEGRADED).1, reason::NAME_COLLIDES);
    let events = api.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Warning", reason::NAME_COLLIDES)
    );
    assert!(api.get::<StatefulSet>(NS, "x-kes").is_none());
}

#[tokio::test]
async fn a_missing_external_tls_secret_blocks_the_tenant() {
    let (api, mut tenant) = cluster();
    tenant.spec.tls.external_secret_name = Some("photos-cert-manager".into());
    api.put(&tenant);
    assert_eq!(run(&api, &tenant).await.unwrap(), Action::requeue(WAIT));
    let (_, why, message) = condition(&stored(&api), DEGRADED);
    assert_eq!(why, reason::TLS_SECRET_MISSING);
    assert!(message.contains("photos-cert-manager"), "{message}");
    assert!(api.get::<StatefulSet>(NS, "photos").is_none());
}

#[tokio::test]
async fn an_unparsable_lifetime_is_invalid_spec() {
    let (api, mut tenant) = cluster();
    tenant.spec.tls.certificate_lifetime = "3days".into();
    api.put(&tenant);
    run(&api, &tenant).await.unwrap();
    let (_, why, message) = condition(&stored(&api), DEGRADED);
    assert_eq!(why, reason::INVALID_SPEC);
    assert!(
        message.starts_with("spec.tls.certificateLifetime"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_users_are_warned_about_once() {
    let (api, mut tenant) = cluster();
    tenant.spec.users = vec![crate::crd::tenant::UserRef {
        name: "gone".into(),
    }];
    api.put(&tenant);
    run(&api, &tenant).await.unwrap();
    let t = stored(&api);
    assert_eq!(condition(&t, USERS_READY).1, users::INVALID_USER_SECRET);
    let warnings = |api: &FakeApi| {
        api.events()
            .into_iter()
            .filter(|(ty, r, _)| ty == "Warning" && r == users::INVALID_USER_SECRET)
            .count()
    };
    assert_eq!(warnings(&api), 1);
    api.clear_log();
    run(&api, &t).await.unwrap();
    assert_eq!(
        warnings(&api),
        0,
        "the same problem is not warned about again"
    );
}

#[tokio::test]
async fn a_refused_apply_is_degraded_with_a_warning() {
    let (api, tenant) = cluster();
    let refusal = "StatefulSet.apps \"photos\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
    api.fail(
        Method::PATCH,
        &path_of::<StatefulSet>(NS, "photos"),
        422,
        refusal,
    );
    run(&api, &tenant).await.unwrap();
    let t = stored(&api);
    let (degraded, why, message) = condition(&t, DEGRADED);
    assert!(degraded);
    assert_eq!(why, reason::APPLY_FAILED);
    assert_eq!(
        message,
        format!(r#"the API server refused StatefulSet "photos": {refusal}"#)
    );
    assert_eq!(condition(&t, READY), (false, why.clone(), message.clone()));
    let events = api.events();
    assert!(
        events
            .iter()
            .any(|(ty, r, note)| ty == "Warning" && r == reason::APPLY_FAILED && *note == message),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_refused_secret_is_named_without_the_api_servers_words() {
    let (api, tenant) = cluster();
    api.fail(
        Method::PATCH,
        &path_of::<Secret>(NS, "photos-kes-tls"),
        422,
        "Secret \"photos-kes-tls\" is invalid: data[client.key]: Invalid value: \"-----BEGIN PRIVATE KEY-----\"",
    );
    run(&api, &tenant).await.unwrap();
    let (_, why, message) = condition(&stored(&api), DEGRADED);
    assert_eq!(why, reason::APPLY_FAILED);
    assert_eq!(
        message,
        r#"the API server refused Secret "photos-kes-tls": HTTP 422 Invalid"#
    );
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff() {
    let (api, tenant) = cluster();
    api.fail(
        Method::PATCH,
        &path_of::<StatefulSet>(NS, "photos"),
        500,
        "etcdserver: request timed out",
    );
    let err = run(&api, &tenant).await.unwrap_err();
    assert!(
        matches!(&err, Error::Kube(kube::Error::Api(s)) if s.code == 500),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_long_refusal_is_cut_in_the_event_and_whole_in_the_status() {
    let (api, tenant) = cluster();
    let refusal = format!(
        "StatefulSet.apps \"photos\" is invalid: {}",
        "x".repeat(2000)
    );
    api.fail(
        Method::PATCH,
        &path_of::<StatefulSet>(NS, "photos"),
        422,
        &refusal,
    );
    run(&api, &tenant).await.unwrap();
    let (_, _, message) = condition(&stored(&api), DEGRADED);
    assert!(message.ends_with(&refusal), "{message}");
    let events = api.events();
    let note = &events
        .iter()
        .find(|(_, r, _)| r == reason::APPLY_FAILED)
        .unwrap()
        .2;
    assert_eq!(note.len(), 1024);
    assert!(note.ends_with('…') && message.starts_with(note.trim_end_matches('…')));
}
