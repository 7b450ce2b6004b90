//! What a Tenant's reconcile reports: the value of one condition ([`ConditionState`]), what
//! stops a Tenant from being deployed ([`Blocker`]), and every reason it writes ([`reason`]).
//! Tests assert these constants, never spelled-out strings, so a renamed reason is one edit.

use std::time::Duration;

pub use crate::reconcile::status::ConditionState;

/// Why a Tenant is not (or no longer) deployed: `Degraded=True` and `Ready=False` with this
/// reason and message until it is fixed, and a retry after `retry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// One of [`reason`]'s constants.
    pub reason: &'static str,
    /// Names and causes only, never a secret value.
    pub message: String,
    /// When to look again.
    pub retry: Duration,
    /// Whether the blocker is also published as a Warning event.
    pub warn: bool,
}

impl Blocker {
    /// A blocker retried after `retry`, reported in the status only.
    pub fn new(reason: &'static str, message: impl Into<String>, retry: Duration) -> Self {
        Self {
            reason,
            message: message.into(),
            retry,
            warn: false,
        }
    }

    /// The same blocker, also published as a Warning event.
    pub fn with_warning(self) -> Self {
        Self { warn: true, ..self }
    }
}

/// The reasons of the Tenant's conditions and events.
pub mod reason {
    /// `KMSReady`/`Degraded`: `spec.kms.name` names no KMS in the namespace.
    pub const KMS_NOT_FOUND: &str = "KMSNotFound";
    /// `KMSReady`/`Degraded`: the KMS's credentials Secret does not exist.
    pub const KMS_SECRET_MISSING: &str = "KMSSecretMissing";
    /// `KMSReady`/`Degraded`: the KMS's credentials Secret lacks the role or secret ID key.
    pub const KMS_SECRET_INCOMPLETE: &str = "KMSSecretIncomplete";
    /// `KMSReady`: the KMS reports Vault healthy.
    pub const VAULT_HEALTHY: &str = "VaultHealthy";
    /// `KMSReady`: the KMS reports Vault unhealthy, unreachable, refusing its login, or not
    /// probed yet (the message carries the KMS's own).
    pub const VAULT_UNAVAILABLE: &str = "VaultUnavailable";
    /// `Degraded`: an older Tenant's key prefix overlaps this one's.
    pub const KEY_PREFIX_CONFLICT: &str = "KeyPrefixConflict";
    /// `Degraded` and a Warning event: the Tenant's owned objects would take another's names.
    pub const NAME_COLLIDES: &str = "NameCollides";
    /// `Degraded`: a spec value the schema cannot check is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `Degraded`: `spec.tls.externalSecretName` is missing or incomplete.
    pub const TLS_SECRET_MISSING: &str = "TLSSecretMissing";
    /// `Degraded` and a Warning event: a Secret of `storage.s3` (credentials or CA) is missing
    /// or lacks a key it names.
    pub const BACKEND_SECRET_MISSING: &str = "BackendSecretMissing";
    /// `Degraded` and a Warning event: the API server refused an owned object (the message
    /// names the object and repeats the API server's words, except for Secrets).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `Degraded` and a Warning event: `storage.size` grew but a claim cannot be expanded
    /// (its StorageClass has no `allowVolumeExpansion`).
    pub const VOLUME_EXPANSION_NOT_SUPPORTED: &str = "VolumeExpansionNotSupported";
    /// `Degraded`: `storage.size` is smaller than the claims (stored before the CRD refused it).
    pub const VOLUME_SHRINK_REFUSED: &str = "VolumeShrinkRefused";
    /// `Progressing` and an event: the claims were expanded and the StatefulSet is being
    /// recreated with the new claim template, its pods left running.
    pub const VOLUMES_EXPANDING: &str = "VolumesExpanding";
    /// `CertificatesReady`: every leaf is issued by the Tenant CA and current.
    pub const ISSUED: &str = "Issued";
    /// `Degraded=False`: nothing needs a human.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// `Progressing=False`: every replica runs the current pod template.
    pub const ROLLED_OUT: &str = "RolledOut";
    /// `Ready=True`: every replica is ready.
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    /// `Progressing=True`: replicas are being replaced or started.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// `Ready=False`: not every replica is ready.
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";

    /// `DeletionBlocked` and a Warning event: the Tenant was deleted while
    /// `spec.deletionProtection` is true; it stays until that is false.
    pub const DELETION_PROTECTED: &str = "DeletionProtected";
    /// Event: `deletionPolicy: Delete` deleted the claims of the Tenant's pods.
    pub const CLAIMS_DELETED: &str = "ClaimsDeleted";

    // --- Upgrades (`UpToDate`, and an event when the reason changes) ---
    /// `UpToDate=True`: the pods run the image the Tenant should run (whether they are ready is
    /// `Ready`'s business).
    pub const IMAGE_CURRENT: &str = "ImageCurrent";
    /// `UpToDate=True` and an event: the rollout of the operator's default image moved the
    /// Tenant and every replica is ready on it.
    pub const UPGRADED: &str = "Upgraded";
    /// `UpToDate=False` and an event: the pods roll to another image.
    pub const UPGRADING: &str = "Upgrading";
    /// `UpToDate=False` and an event: the Tenant waits for an upgrade slot
    /// (`--max-concurrent-upgrades` Tenants are moving).
    pub const WAITING_FOR_UPGRADE_SLOT: &str = "WaitingForUpgradeSlot";
    /// `UpToDate=False` and an event: `coffer.dev/upgrade-paused: "true"` keeps its image.
    pub const UPGRADE_PAUSED: &str = "UpgradePaused";
    /// `UpToDate=False` and an event: not Ready, so the rollout leaves it on its image.
    pub const NOT_READY_FOR_UPGRADE: &str = "NotReadyForUpgrade";

    /// Event: the root credentials Secret was generated.
    pub const ROOT_CREDENTIALS_GENERATED: &str = "RootCredentialsGenerated";
    /// Event: a new CA was issued (none stored, or unreadable).
    pub const CA_ISSUED: &str = "CAIssued";
    /// Event: a CA rotation started.
    pub const CA_ROTATED: &str = "CARotated";
    /// Event: a leaf certificate was re-issued.
    pub const CERTIFICATE_RENEWED: &str = "CertificateRenewed";
    /// Event: the Tenant became Ready.
    pub const READY: &str = "Ready";
    /// Event: the Tenant stopped being Ready while its replicas roll or start.
    pub const PROGRESSING: &str = "Progressing";
}
