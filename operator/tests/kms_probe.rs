//! The KMS probe against a real OpenBao (audited) and kube-apiserver: how often it logs in.
//!
//! Needs the peers `etcd`, `kube-apiserver` and `kubectl` on PATH (`eval "$(e2e/peers/env)"`) and `vault`;
//! fails loudly when they are absent.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use operator::crd::KMS;

use common::fixtures::{api_with_crds, real_kms};
use common::{eventually, kms_condition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kms_probe_logs_in_once_and_keeps_renewing_its_token() {
    // Probes every second; the AppRole's tokens live 3 s unless renewed. Over many probes (and
    // TTLs) Vault's audit log must show one login, the rest being lookups and renewals of that
    // token; a revoked token is replaced by one new login.
    let ns = "shop";
    let (api, client) = api_with_crds(ns).await;
    let vault = coffer_e2e::vault::Vault::production_audited();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    real_kms(&api, &secrets, ns, &vault).await;
    vault.run(&["write", "auth/approle/role/coffer", "period=3s"]);
    let ctx = operator::reconcile::Context::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "coffer-operator".into(),
            instance: Some("test".into()),
        },
    );
    ctx.set_kms_probe_interval(Duration::from_secs(1));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(operator::reconcile::run_controllers(
        ctx,
        Some(ns.into()),
        async move {
            let _ = stopped.await;
        },
    ));
    let kmss: Api<KMS> = Api::namespaced(client.clone(), ns);
    eventually("KMS real Ready", Duration::from_secs(30), || async {
        let k = kmss.get("real").await.ok()?;
        kms_condition(&k, "Ready").filter(|(s, _, _)| s == "True")
    })
    .await;
    let logins = |vault: &coffer_e2e::vault::Vault| {
        vault
            .audited_requests("coffer")
            .into_iter()
            .filter(|p| p == "auth/approle/login")
            .count()
    };
    let count = |vault: &coffer_e2e::vault::Vault, path: &str| {
        vault
            .audited_requests("coffer")
            .into_iter()
            .filter(|p| p == path)
            .count()
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(logins(&vault), 1, "one login over 8 probes");
    let (lookups, renewals) = (
        count(&vault, "auth/token/lookup-self"),
        count(&vault, "auth/token/renew-self"),
    );
    assert!(
        lookups + renewals >= 6,
        "the probes ran: {lookups} lookups, {renewals} renewals"
    );
    assert!(renewals >= 2, "a 3 s token outlived 8 s by renewals");
    let k = kmss.get("real").await.unwrap();
    assert_eq!(kms_condition(&k, "Ready").unwrap().0, "True");

    // Revoked (every token of the AppRole), it is replaced by one new login.
    vault.run(&["token", "revoke", "-mode=path", "auth/approle/login"]);
    eventually("a second login", Duration::from_secs(15), || async {
        (logins(&vault) == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(logins(&vault), 2, "one login per revocation");
    let k = kmss.get("real").await.unwrap();
    assert_eq!(kms_condition(&k, "Ready").unwrap().0, "True");
    let _ = stop.send(());
}
