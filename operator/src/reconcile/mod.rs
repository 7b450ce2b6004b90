//! The controllers: [`tenant`] turns a Tenant into its owned objects, [`kms`] probes Vault and
//! reports it; [`leader`] makes sure only one operator process reconciles; [`run_controllers`]
//! (per namespace with [`run_controllers_in`]) wires them into kube-rs `Controller`s, which also watch the Secrets the objects name
//! ([`secret_refs`]).

pub mod finalizer;
pub mod kms;
pub mod leader;
pub mod metrics;
pub mod monitoring;
pub mod secret_refs;
pub mod status;
pub mod tenant;
pub mod users;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::crd::{KMS, Tenant};

/// Why a reconcile failed. Messages name objects and causes, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Minting or reading a certificate failed.
    #[error("PKI: {0}")]
    Pki(#[from] crate::pki::PkiError),
    /// A spec value that the schema cannot check is invalid.
    #[error("invalid spec: {0}")]
    Spec(String),
}

impl Error {
    /// The `reason` label of a failed reconcile: which kind of thing went wrong, never the
    /// message (which names objects and would make a label per object).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_)) => "kube_api",
            Self::Kube(_) => "kube",
            Self::Pki(_) => "pki",
            Self::Spec(_) => "spec",
        }
    }
}

/// What every reconcile needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Who publishes events.
    pub reporter: Reporter,
    /// Reconcile counters.
    pub metrics: metrics::Metrics,
    /// The image of a Tenant without `spec.image`: the operator's own (`COFFER_DEFAULT_IMAGE`).
    pub default_image: String,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The Tenant controllers' caches (one per watched namespace, or one for all), once they
    /// run (for checks across Tenants without a LIST).
    tenants: Mutex<Vec<kube::runtime::reflector::Store<Tenant>>>,
    /// The KMS probe's Vault token per KMS.
    vault_sessions: kms::session::Sessions,
    /// How often a healthy KMS is probed, in milliseconds.
    kms_probe_interval_ms: AtomicU64,
    /// Tests: the key rotation period of every Tenant that sets one, in milliseconds (0: the
    /// Tenant's own).
    rotation_period_ms: AtomicU64,
    /// Tests: where the Tenants' object-servers answer, instead of their Services.
    s3_endpoint: Mutex<Option<(String, Option<Vec<u8>>)>>,
    /// The namespace the operator's pod runs in (`None` outside a pod): a Tenant's
    /// NetworkPolicy admits it to S3, which the key rotation's re-wrap call needs.
    operator_namespace: Mutex<Option<String>>,

    // --- Upgrades (see `tenant::upgrade`) ---
    /// How many Tenants the rollout of the default image moves at a time.
    max_concurrent_upgrades: AtomicUsize,
    /// Held while a Tenant counts the upgrade slots and applies the StatefulSet that takes one.
    upgrade_slots: tokio::sync::Mutex<()>,
    /// The namespaces the controllers watch (`None`: all), where the slots are counted.
    scopes: Mutex<Vec<Option<String>>>,
}

impl Context {
    /// A context for `client`, publishing events as `reporter`, Tenants defaulting to
    /// [`crate::crd::tenant::DEFAULT_IMAGE`].
    pub fn new(client: Client, reporter: Reporter) -> Arc<Self> {
        Self::with_default_image(client, reporter, crate::crd::tenant::DEFAULT_IMAGE.into())
    }

    /// [`Context::new`], Tenants without `spec.image` running `default_image`.
    pub fn with_default_image(
        client: Client,
        reporter: Reporter,
        default_image: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            reporter,
            metrics: Default::default(),
            default_image,
            failures: Default::default(),
            tenants: Default::default(),
            vault_sessions: Default::default(),
            kms_probe_interval_ms: AtomicU64::new(kms::PROBE_INTERVAL.as_millis() as u64),
            rotation_period_ms: AtomicU64::new(0),
            s3_endpoint: Default::default(),
            operator_namespace: Default::default(),
            max_concurrent_upgrades: AtomicUsize::new(DEFAULT_MAX_CONCURRENT_UPGRADES),
            upgrade_slots: Default::default(),
            scopes: Default::default(),
        })
    }

    /// How many Tenants the rollout of the default image moves at a time
    /// ([`DEFAULT_MAX_CONCURRENT_UPGRADES`] unless set; 0: none).
    pub fn max_concurrent_upgrades(&self) -> usize {
        self.max_concurrent_upgrades.load(Ordering::Relaxed)
    }

    /// Sets [`Context::max_concurrent_upgrades`] (`operator run --max-concurrent-upgrades`).
    pub fn set_max_concurrent_upgrades(&self, n: usize) {
        self.max_concurrent_upgrades.store(n, Ordering::Relaxed);
    }

    /// A StatefulSet API per watched namespace (one for all namespaces when the controllers
    /// watch all); `fallback`'s alone before any controller runs (unit tests).
    fn stateful_set_apis(&self, fallback: &str) -> Vec<Api<StatefulSet>> {
        let scopes = self.scopes.lock().expect("not poisoned").clone();
        if scopes.is_empty() {
            return vec![Api::namespaced(self.client.clone(), fallback)];
        }
        scopes
            .into_iter()
            .map(|ns| match ns {
                Some(ns) => Api::namespaced(self.client.clone(), &ns),
                None => Api::all(self.client.clone()),
            })
            .collect()
    }

    /// Every Tenant the controller has seen, from its cache; `None` before the controller runs.
    pub fn cached_tenants(&self) -> Option<Vec<Arc<Tenant>>> {
        let stores = self.tenants.lock().expect("not poisoned");
        (!stores.is_empty()).then(|| stores.iter().flat_map(|s| s.state()).collect())
    }

    /// How often a healthy KMS is probed ([`kms::PROBE_INTERVAL`] unless set).
    pub fn kms_probe_interval(&self) -> Duration {
        Duration::from_millis(self.kms_probe_interval_ms.load(Ordering::Relaxed))
    }

    /// Probes healthy KMSes every `interval` instead (tests; at least 100 ms).
    pub fn set_kms_probe_interval(&self, interval: Duration) {
        let ms = interval.as_millis().max(100) as u64;
        self.kms_probe_interval_ms.store(ms, Ordering::Relaxed);
    }

    /// Rotates the keys of every Tenant with `encryption.rotation` every `period` instead of the
    /// Tenant's (tests: the CRD refuses less than an hour; at least a second).
    pub fn set_rotation_period(&self, period: Duration) {
        let ms = period.as_millis().max(1000) as u64;
        self.rotation_period_ms.store(ms, Ordering::Relaxed);
    }

    /// The rotation period set by [`Context::set_rotation_period`].
    pub fn rotation_period(&self) -> Option<Duration> {
        match self.rotation_period_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Calls every Tenant's object-server admin API at `endpoint`, trusting `ca_pem` (tests: an
    /// object-server run outside the cluster).
    pub fn set_s3_endpoint(&self, endpoint: String, ca_pem: Option<Vec<u8>>) {
        *self.s3_endpoint.lock().expect("not poisoned") = Some((endpoint, ca_pem));
    }

    /// Sets [`Context::operator_namespace`] (`operator run` in a pod: `$POD_NAMESPACE`).
    pub fn set_operator_namespace(&self, namespace: String) {
        *self.operator_namespace.lock().expect("not poisoned") = Some(namespace);
    }

    /// The namespace of the operator's pod, when it runs in one.
    pub fn operator_namespace(&self) -> Option<String> {
        self.operator_namespace
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// The endpoint set by [`Context::set_s3_endpoint`].
    pub fn s3_endpoint(&self) -> Option<(String, Option<Vec<u8>>)> {
        self.s3_endpoint.lock().expect("not poisoned").clone()
    }

    /// An event recorder.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    fn backoff(&self, key: String) -> Duration {
        let mut f = self.failures.lock().expect("not poisoned");
        let n = f.entry(key).or_insert(0);
        *n = (*n + 1).min(8);
        backoff_delay(*n)
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().expect("not poisoned").remove(key);
    }
}

/// How many Tenants the rollout of a new default image moves at a time unless told.
pub const DEFAULT_MAX_CONCURRENT_UPGRADES: usize = 1;

/// The delay after `n` consecutive failures: 2s, 4s, 8s … capped at 5 minutes.
pub fn backoff_delay(n: u32) -> Duration {
    Duration::from_secs((1u64 << n.min(8)).min(300))
}

fn key<K: kube::Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

async fn reconcile_tenant(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("reconcile", controller = "tenant", object = %key(t.as_ref()));
    let start = std::time::Instant::now();
    let out = async {
        let action = tenant::reconcile(t.clone(), ctx.clone()).await?;
        // A Tenant let go (deleted, not protected) gets nothing new.
        if t.metadata.deletion_timestamp.is_none() || t.spec.deletion_protection {
            monitoring::reconcile(&t, &ctx).await?;
        }
        Ok(action)
    }
    .instrument(span)
    .await;
    ctx.metrics.observe(
        "tenant",
        start.elapsed(),
        out.as_ref().err().map(Error::reason),
    );
    let (ns, name) = (
        t.metadata.namespace.as_deref().unwrap_or(""),
        t.metadata.name.as_deref().unwrap_or(""),
    );
    let expiry = t
        .status
        .as_ref()
        .and_then(|s| s.certificate_expiry.as_deref());
    if t.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_tenant(ns, name);
    } else {
        ctx.metrics.tenant_certificate_expiry(ns, name, expiry);
    }
    if out.is_ok() {
        ctx.succeeded(&key(t.as_ref()));
    }
    out
}

fn tenant_error(t: Arc<Tenant>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(key(t.as_ref()));
    tracing::warn!(tenant = %key(t.as_ref()), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_kms(k: Arc<KMS>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("reconcile", controller = "kms", object = %key(k.as_ref()));
    let start = std::time::Instant::now();
    let out = kms::reconcile(k.clone(), ctx.clone())
        .instrument(span)
        .await;
    ctx.metrics.observe(
        "kms",
        start.elapsed(),
        out.as_ref().err().map(Error::reason),
    );
    if out.is_ok() {
        ctx.succeeded(&format!("kms:{}", key(k.as_ref())));
    }
    out
}

fn kms_error(k: Arc<KMS>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(format!("kms:{}", key(k.as_ref())));
    tracing::warn!(kms = %key(k.as_ref()), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs both controllers in each of `namespaces` (all namespaces when empty) until `shutdown`
/// resolves. Each namespace gets its own watches: the operator then lists and watches nothing
/// cluster-wide, so namespaced Roles are all the RBAC it needs.
pub async fn run_controllers_in(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    if namespaces.is_empty() {
        return run_controllers(ctx, None, shutdown).await;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    futures::future::join_all(namespaces.into_iter().map(|ns| {
        let mut rx = rx.clone();
        run_controllers(ctx.clone(), Some(ns), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    }))
    .await;
}

/// Runs both controllers until `shutdown` resolves. `namespace` limits them to one namespace
/// (`None`: all namespaces).
pub async fn run_controllers(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=coffer-operator");
    let kmses = Controller::new(api::<KMS>(&client, &namespace), watcher::Config::default());
    let kms_store = kmses.store();
    let tenants = Controller::new(
        api::<Tenant>(&client, &namespace),
        watcher::Config::default(),
    );
    let store = tenants.store();
    ctx.tenants
        .lock()
        .expect("not poisoned")
        .push(store.clone());
    ctx.scopes
        .lock()
        .expect("not poisoned")
        .push(namespace.clone());
    // A moving StatefulSet that rolled out frees its upgrade slot: the Tenants that wait for
    // one are reconciled now, not at their next retry.
    let slot_freed = {
        let store = store.clone();
        move |sts: StatefulSet| {
            if !tenant::upgrade::frees_slot(&sts) {
                return Vec::new();
            }
            store
                .state()
                .into_iter()
                .filter(|t| tenant::upgrade::waits_for_slot(t))
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let tenant_ctl = tenants
        .owns(api::<StatefulSet>(&client, &namespace), owned.clone())
        .owns(api::<Secret>(&client, &namespace), owned.clone())
        .owns(api::<Service>(&client, &namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, &namespace), owned.clone())
        .owns(
            api::<PodDisruptionBudget>(&client, &namespace),
            owned.clone(),
        )
        .owns(api::<NetworkPolicy>(&client, &namespace), owned.clone())
        .watches(
            api::<Secret>(&client, &namespace),
            watcher::Config::default(),
            {
                // A change of a user Secret, of a root credentials Secret the operator did not
                // generate, or of a Secret of the Tenant's KMS (the pods read it) requeues the
                // Tenants that use it.
                let store = store.clone();
                let kms_store = kms_store.clone();
                move |secret: Secret| {
                    let tenants = store.state();
                    secret_refs::tenants_using(
                        &secret,
                        tenants.iter().map(|t| t.as_ref()),
                        &kms_store.state(),
                    )
                }
            },
        )
        .watches(
            api::<KMS>(&client, &namespace),
            watcher::Config::default(),
            move |kms: KMS| {
                // A KMS change requeues every Tenant that refers to it.
                let ns = kms.namespace();
                let name = kms.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|t| t.namespace() == ns && t.spec.kms.name == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(api::<StatefulSet>(&client, &namespace), owned, slot_freed)
        .graceful_shutdown_on(signal(rx.clone()))
        .run(reconcile_tenant, tenant_error, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let kms_ctl = kmses
        // A Tenant change (its deletion, another spec.kms.name) reconciles the KMS it names:
        // a deleted KMS held for its Tenants goes as soon as the last one lets go.
        .watches(
            api::<Tenant>(&client, &namespace),
            watcher::Config::default(),
            |tenant: Tenant| {
                let ns = tenant.namespace().unwrap_or_default();
                Some(ObjectRef::<KMS>::new(&tenant.spec.kms.name).within(&ns))
            },
        )
        .watches(
            api::<Secret>(&client, &namespace),
            watcher::Config::default(),
            // A change of a Secret the KMS names (AppRole credentials, Vault CA, client
            // certificate) reconciles it now: a fixed or broken Secret shows within seconds,
            // not at the next probe.
            move |secret: Secret| {
                secret_refs::kmses_using(&secret, kms_store.state().iter().map(|k| k.as_ref()))
            },
        )
        .graceful_shutdown_on(signal(rx))
        .run(reconcile_kms, kms_error, ctx)
        .for_each(|_| futures::future::ready(()));
    tokio::join!(tenant_ctl, kms_ctl);
}
