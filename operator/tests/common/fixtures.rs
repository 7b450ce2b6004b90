//! The cluster objects the operator's API-server tests share: namespaces, KMS and Tenant YAML,
//! an API server with this build's CRDs, a deployed Tenant, a KMS on a real Vault.

use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::PostParams;
use kube::{Api, Client};

use super::{eventually, start_operator};

pub async fn namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

pub fn kms_yaml(ns: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {ns}}}\n\
         spec:\n  vault:\n    endpoint: {endpoint}\n    auth:\n      appRole: {{secretName: vault-approle}}\n"
    )
}

pub fn tenant_yaml(ns: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  kms: {{name: vault}}\n{extra}"
    )
}

pub fn approle_secret(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {ns}}}\nstringData: {{roleId: r-123, secretId: s-456}}\n"
    )
}

/// An API server with the CRDs this very build prints and namespace `ns`.
pub async fn api_with_crds(ns: &str) -> (KubeApi, Client) {
    let api = KubeApi::start();
    let client = api.client().await;
    api.apply(&operator::crd::crds_yaml());
    api.wait_crds_established();
    namespace(&client, ns).await;
    (api, client)
}

/// A running operator on namespace `ns` and Tenant `photos` deployed (its StatefulSet exists),
/// its KMS at an address where no Vault answers.
pub struct Deployed {
    pub api: KubeApi,
    pub client: Client,
    pub _operator: tokio::sync::oneshot::Sender<()>,
}

impl Deployed {
    pub async fn start(ns: &str) -> Self {
        let (api, client) = api_with_crds(ns).await;
        let operator = start_operator(client.clone(), ns, "test");
        for yaml in [
            approle_secret(ns),
            kms_yaml(ns, "https://127.0.0.1:1"),
            tenant_yaml(ns, "photos", ""),
        ] {
            let (ok, out) = api.try_apply(&yaml);
            assert!(ok, "{out}");
        }
        let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        eventually("StatefulSet photos", Duration::from_secs(30), || async {
            stss.get_opt("photos").await.ok().flatten()
        })
        .await;
        Self {
            api,
            client,
            _operator: operator,
        }
    }

    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }
}

pub fn event_reasons(api: &KubeApi, ns: &str) -> String {
    api.run(&[
        "get",
        "events.v1.events.k8s.io",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ])
}

/// A KMS pointing at a real (TLS, unsealed) Vault, with the AppRole of `vault`, named `real`.
pub async fn real_kms(
    api: &KubeApi,
    secrets: &Api<Secret>,
    ns: &str,
    vault: &coffer_e2e::vault::Vault,
) {
    let ca_pem = std::fs::read_to_string(vault.ca_cert.as_ref().unwrap()).unwrap();
    let ca_secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("vault-ca".into()),
            ..Default::default()
        },
        string_data: Some([("ca.crt".to_string(), ca_pem)].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &ca_secret)
        .await
        .unwrap();
    let approle = vault.kv_with_approle("kv", 1, "coffer");
    let (ok, out) = api.try_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: real-approle, namespace: {ns}}}\n\
             stringData: {{roleId: {}, secretId: {}}}\n",
        approle.role_id, approle.secret_id
    ));
    assert!(ok, "{out}");
    let (ok, out) = api.try_apply(
        &format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: real, namespace: {ns}}}\n\
             spec:\n  vault:\n    endpoint: {}\n    auth:\n      appRole: {{secretName: real-approle}}\n    tls: {{caSecretName: vault-ca}}\n",
            vault.addr
        ),
    );
    assert!(ok, "{out}");
}
