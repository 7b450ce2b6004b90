//! `spec.monitoring.serviceMonitor`: keeps the Tenant's ServiceMonitor applied, or removed
//! when turned off.
//!
//! The Prometheus Operator is optional. Without its CRD the Tenant still reconciles: nothing
//! is created and a Warning event (`ServiceMonitorUnavailable`) says why; the same when the
//! operator may not write ServiceMonitors (403). Neither is a reconcile error, so neither
//! causes a retry loop: the next periodic reconcile (or installing the CRD and touching the
//! Tenant) picks it up.
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource};

use super::{Context, Error};
use crate::build::service_monitor::{self, GROUP, KIND, VERSION};
use crate::build::{FIELD_MANAGER, Names};
use crate::crd::Tenant;

/// What happened to the ServiceMonitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created or updated.
    Applied,
    /// Turned off: removed if it was there.
    Removed,
    /// Turned off and the CRD is absent: nothing to do.
    Off,
    /// Wanted, but the CRD is not installed or the operator may not write it.
    Unavailable,
}

/// The ServiceMonitors API of `namespace`, or `None` when the CRD is not installed.
async fn api(client: &Client, namespace: &str) -> Result<Option<Api<DynamicObject>>, Error> {
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, KIND);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((resource, _)) => Ok(Some(Api::namespaced_with(
            client.clone(),
            namespace,
            &resource,
        ))),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Applies or removes the ServiceMonitor of `tenant`.
pub async fn reconcile(tenant: &Tenant, ctx: &Context) -> Result<Outcome, Error> {
    let names = Names::of(tenant);
    let wanted = tenant.spec.monitoring.service_monitor;
    let Some(api) = api(&ctx.client, &names.namespace).await? else {
        if !wanted {
            return Ok(Outcome::Off);
        }
        unavailable(
            tenant,
            ctx,
            format!("spec.monitoring.serviceMonitor is set but the {KIND} CRD ({GROUP}/{VERSION}) is not installed: no {KIND} created"),
        )
        .await;
        return Ok(Outcome::Unavailable);
    };
    if !wanted {
        // Only ours goes: a ServiceMonitor of that name someone else made stays.
        let ours = match api.get_opt(&names.tenant).await {
            Ok(found) => found.is_some_and(|sm| {
                let uid = tenant.metadata.uid.as_deref();
                sm.metadata
                    .owner_references
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o.kind == "Tenant" && Some(o.uid.as_str()) == uid)
            }),
            Err(kube::Error::Api(e)) if e.code == 403 => false,
            Err(e) => return Err(e.into()),
        };
        if !ours {
            return Ok(Outcome::Off);
        }
        return match api.delete(&names.tenant, &DeleteParams::default()).await {
            Ok(_) => Ok(Outcome::Removed),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Outcome::Off),
            Err(e) => Err(e.into()),
        };
    }
    let body = service_monitor::service_monitor(tenant);
    match api
        .patch(
            &names.tenant,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
    {
        Ok(_) => Ok(Outcome::Applied),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            unavailable(
                tenant,
                ctx,
                format!("the operator may not write {KIND}s: {}", e.message),
            )
            .await;
            Ok(Outcome::Unavailable)
        }
        Err(e) => Err(e.into()),
    }
}

async fn unavailable(tenant: &Tenant, ctx: &Context, note: String) {
    tracing::info!(tenant = %Names::of(tenant).tenant, %note, "no ServiceMonitor");
    let event = Event {
        type_: EventType::Warning,
        reason: "ServiceMonitorUnavailable".into(),
        note: Some(note),
        action: "Monitoring".into(),
        secondary: None,
    };
    if let Err(e) = ctx
        .recorder()
        .publish(&event, &tenant.object_ref(&()))
        .await
    {
        tracing::debug!(error = %e, "event not published");
    }
}
