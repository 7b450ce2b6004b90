//! Is the engine the KMS names mounted, of the kind it names, and usable by the KMS's token?
//!
//! Asked with `GET sys/internal/ui/mounts/<mount>`, with the probe's kept token
//! ([`super::session`]): Vault answers it to a token that has any capability under the mount
//! (so the keystore's own policy is enough: the K/V guide's `kv/*`, or the Transit paths of
//! `manifests/vault/kes-transit-policy.hcl`) with the mount's `type` and `options.version`, and
//! 403 to a token that has none there (no such mount, or a policy for another one). So a KMS
//! that says `transit` over a K/V mount, K/V v2 over v1, or a mount its AppRole cannot use is
//! not Ready, with the reason, before a Tenant's sidecar fails on it.

use super::session::Target;
use super::{Health, error_chain};
use crate::crd::kms::{Engine, KvVersion};

/// `Healthy` when the mount is the configured engine and the token may use it.
pub async fn check(target: &Target<'_>, token: &str, engine: Engine<'_>) -> Health {
    let mount = match engine {
        Engine::Kv(m, _) | Engine::Transit(m) => m.trim_matches('/'),
    };
    let resp = match target
        .request(
            reqwest::Method::GET,
            &format!("sys/internal/ui/mounts/{mount}"),
        )
        .header("X-Vault-Token", token)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Health::Unreachable(error_chain(&e)),
    };
    let code = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if code == 403 {
        return Health::EngineUnusable(format!(
            "the AppRole's token may not use a secrets engine at {mount:?} (not mounted, or the policy names another path)"
        ));
    }
    if code != 200 {
        return Health::Unreachable(format!(
            "Vault answered HTTP {code} to sys/internal/ui/mounts/{mount}"
        ));
    }
    verdict(engine, mount, &body["data"])
}

/// Compares a mount's description (`data` of the answer) with the configured engine.
pub fn verdict(engine: Engine<'_>, mount: &str, data: &serde_json::Value) -> Health {
    let kind = data["type"].as_str().unwrap_or_default();
    // K/V v1 mounts say no version (or "1"); v2 mounts say "2".
    let kv_version = match data["options"]["version"].as_str() {
        Some("2") => KvVersion::V2,
        _ => KvVersion::V1,
    };
    match engine {
        Engine::Transit(_) if kind == "transit" => Health::Healthy,
        Engine::Kv(_, want) if kind == "kv" && kv_version == want => Health::Healthy,
        Engine::Kv(_, want) if kind == "kv" => Health::EngineUnusable(format!(
            "{mount:?} is a K/V {} engine, the KMS says vault.version {}",
            kv_version.as_str(),
            want.as_str()
        )),
        Engine::Transit(_) => Health::EngineUnusable(format!(
            "{mount:?} is a {kind:?} engine, the KMS says vault.transit (a Transit engine)"
        )),
        Engine::Kv(..) => Health::EngineUnusable(format!(
            "{mount:?} is a {kind:?} engine, the KMS says K/V (vault.engine)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_mount_must_be_the_configured_engine() {
        let transit = json!({"type": "transit", "options": null});
        let kv1 = json!({"type": "kv", "options": null});
        let kv2 = json!({"type": "kv", "options": {"version": "2"}});
        let v1 = Engine::Kv("kv", KvVersion::V1);
        let v2 = Engine::Kv("kv", KvVersion::V2);
        let t = Engine::Transit("transit");
        assert_eq!(verdict(t, "transit", &transit), Health::Healthy);
        assert_eq!(verdict(v1, "kv", &kv1), Health::Healthy);
        assert_eq!(verdict(v2, "kv", &kv2), Health::Healthy);
        for (engine, data) in [(t, &kv1), (v1, &transit), (v1, &kv2), (v2, &kv1)] {
            assert!(
                matches!(verdict(engine, "m", data), Health::EngineUnusable(_)),
                "{engine:?} over {data}"
            );
        }
    }
}
