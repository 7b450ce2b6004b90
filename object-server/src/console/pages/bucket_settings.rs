//! A bucket's settings page: versioning, object lock's default retention, lifecycle rules
//! ([`super::bucket_lifecycle`]), default encryption, the bucket policy and anonymous access
//! ([`super::bucket_policy`]). Each section is read with its S3 GET and changed with its S3
//! PUT or DELETE, so what a user may see or change is what S3 lets it; a section the user may
//! not read says so instead of showing a guess.
use std::net::SocketAddr;

use askama::Template;
use http::{Method, StatusCode};
use s3s::dto::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};

use super::bucket_lifecycle::{self, RuleRow};
use super::bucket_policy;
use super::{Frame, Refusal, absent_as_none, ok, ok_dto, render};
use crate::console::http_util::{Response, field, redirect};
use crate::console::router::{Console, Req, Signed};
use crate::console::s3call::Call;
use crate::console::xml;

/// Object lock's default retention as the page shows it.
struct LockDefaults {
    /// `GOVERNANCE`, `COMPLIANCE`, or empty for none.
    mode: String,
    /// Days (years are shown as days × 365).
    days: i32,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    frame: Frame,
    bucket: String,
    /// `Enabled`, `Suspended`, `Off`; `None` when unreadable.
    versioning: Option<String>,
    /// `None`: no object lock on the bucket, or unreadable.
    lock: Option<LockDefaults>,
    rules: Option<Vec<RuleRow>>,
    /// (`none` | `SSE-S3` | `SSE-KMS`, key name).
    encryption: Option<(String, String)>,
    /// The editor's text: what the user typed when S3 refused it, else the stored policy.
    policy_draft: String,
    /// `none`, `download`, `upload`, `public` or `custom`.
    anonymous: Option<&'static str>,
    /// Sections the user may not read, with S3's reason.
    unreadable: Vec<String>,
}

impl SettingsPage {
    /// Whether the bucket's default encryption is `mode` (its dropdown's current value).
    fn encryption_is(&self, mode: &str) -> bool {
        self.encryption.as_ref().is_some_and(|e| e.0 == mode)
    }

    /// Whether the bucket's anonymous access is `preset`.
    fn anonymous_is(&self, preset: &str) -> bool {
        self.anonymous == Some(preset)
    }
}

fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "versioning" => "Versioning saved.",
        "lock" => "Default retention saved.",
        "lifecycle-add" => "Lifecycle rule added.",
        "lifecycle-delete" => "Lifecycle rule deleted.",
        "encryption" => "Default encryption saved.",
        "policy" => "Bucket policy saved.",
        "anonymous" => "Anonymous access saved.",
        _ => return None,
    })
}

/// `GET /settings/{bucket}`.
pub async fn page(console: &Console, signed: &Signed, req: &Req, bucket: &str) -> Response {
    let mut frame = Frame::new(signed);
    frame.notice = req.param("done").and_then(done_message).map(str::to_owned);
    show(
        console,
        signed,
        req.peer,
        bucket,
        frame,
        StatusCode::OK,
        None,
    )
    .await
}

/// Keeps a section's value, or notes why it could not be read.
fn section<T>(r: Result<T, Refusal>, unreadable: &mut Vec<String>) -> Option<T> {
    r.map_err(|e| unreadable.push(e.message)).ok()
}

async fn show(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    frame: Frame,
    status: StatusCode,
    policy_draft: Option<String>,
) -> Response {
    let mut unreadable = Vec::new();
    let get = |sub: &str| Call::bucket(Method::GET, bucket).query(sub, "");
    let versioning = ok_dto::<VersioningConfiguration>(
        console,
        signed,
        peer,
        "read versioning",
        get("versioning"),
    )
    .await
    .map(|v| v.status.map_or("Off".to_owned(), |s| s.as_str().to_owned()));
    let versioning = section(versioning, &mut unreadable);
    let lock = ok_dto::<ObjectLockConfiguration>(
        console,
        signed,
        peer,
        "read object lock",
        get("object-lock"),
    )
    .await;
    let lock = section(
        absent_as_none(lock, &["ObjectLockConfigurationNotFoundError"]),
        &mut unreadable,
    )
    .flatten()
    .map(|c| {
        let d = c.rule.and_then(|r| r.default_retention);
        LockDefaults {
            mode: d
                .as_ref()
                .and_then(|d| d.mode.as_ref())
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            days: d.map_or(0, |d| d.days.unwrap_or(0) + d.years.unwrap_or(0) * 365),
        }
    });
    let rules = section(
        bucket_lifecycle::rows(console, signed, peer, bucket).await,
        &mut unreadable,
    );
    let encryption = ok_dto::<ServerSideEncryptionConfiguration>(
        console,
        signed,
        peer,
        "read default encryption",
        get("encryption"),
    )
    .await;
    let encryption = section(
        absent_as_none(
            encryption,
            &["ServerSideEncryptionConfigurationNotFoundError"],
        ),
        &mut unreadable,
    )
    .map(|c| {
        let default = c.and_then(|c| {
            c.rules
                .into_iter()
                .find_map(|r| r.apply_server_side_encryption_by_default)
        });
        match default {
            None => ("none".to_owned(), String::new()),
            Some(d) if d.sse_algorithm.as_str() == ServerSideEncryption::AES256 => {
                ("SSE-S3".to_owned(), String::new())
            }
            Some(d) => (
                "SSE-KMS".to_owned(),
                d.kms_master_key_id
                    .map(|k| crate::sse::headers::kms_key_name(&k).to_owned())
                    .unwrap_or_default(),
            ),
        }
    });
    let policy = section(
        bucket_policy::read(console, signed, peer, bucket).await,
        &mut unreadable,
    );
    let anonymous = policy
        .as_deref()
        .map(|p| bucket_policy::anonymous_preset(bucket, p));
    let page = SettingsPage {
        frame,
        bucket: bucket.to_owned(),
        versioning,
        lock,
        rules,
        encryption,
        policy_draft: policy_draft.unwrap_or_else(|| policy.unwrap_or_default()),
        anonymous,
        unreadable,
    };
    render(status, &page)
}

/// `POST /settings/{bucket}`: `do` names the change, the other fields are its values.
pub async fn change(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Response {
    let what = field(form, "do").unwrap_or("");
    let result = match what {
        "versioning" => versioning(console, signed, peer, form, bucket).await,
        "lock" => lock_defaults(console, signed, peer, form, bucket).await,
        "lifecycle-add" => bucket_lifecycle::add(console, signed, peer, form, bucket).await,
        "lifecycle-delete" => bucket_lifecycle::delete(console, signed, peer, form, bucket).await,
        "encryption" => encryption(console, signed, peer, form, bucket).await,
        "policy" => bucket_policy::save(console, signed, peer, form, bucket).await,
        "anonymous" => bucket_policy::set_anonymous(console, signed, peer, form, bucket).await,
        _ => Err(Refusal::input("Unknown change.")),
    };
    match result {
        Ok(()) => redirect(&format!("/settings/{bucket}?done={what}")),
        Err(r) => {
            let mut frame = Frame::new(signed);
            frame.error = Some(r.message);
            // A refused policy stays in the editor, to be fixed rather than typed again.
            let draft = (what == "policy").then(|| field(form, "policy").unwrap_or("").to_owned());
            show(console, signed, peer, bucket, frame, r.status, draft).await
        }
    }
}

async fn versioning(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let status = match field(form, "status") {
        Some(s @ ("Enabled" | "Suspended")) => s.to_owned(),
        _ => return Err(Refusal::input("Choose Enabled or Suspended.")),
    };
    let doc = VersioningConfiguration {
        status: Some(status.into()),
        ..Default::default()
    };
    let call = Call::bucket(Method::PUT, bucket)
        .query("versioning", "")
        .body(xml::body_of(&doc));
    ok(console, signed, peer, "change versioning", call)
        .await
        .map(drop)
}

async fn lock_defaults(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let rule = match field(form, "mode") {
        Some("") | None => None,
        Some(m @ ("GOVERNANCE" | "COMPLIANCE")) => {
            let days = field(form, "days")
                .and_then(|d| d.trim().parse::<i32>().ok())
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| {
                    Refusal::input(
                        "Could not save the default retention: the days must be a whole number from 1 to 36500; nothing was changed.",
                    )
                })?;
            Some(ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    mode: Some(ObjectLockRetentionMode::from(m.to_owned())),
                    days: Some(days),
                    years: None,
                }),
            })
        }
        Some(_) => return Err(Refusal::input("Choose none, GOVERNANCE or COMPLIANCE.")),
    };
    let doc = ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    };
    let call = Call::bucket(Method::PUT, bucket)
        .query("object-lock", "")
        .body(xml::body_of(&doc));
    ok(console, signed, peer, "save the default retention", call)
        .await
        .map(drop)
}

async fn encryption(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Result<(), Refusal> {
    let key = field(form, "key").unwrap_or("").trim();
    let default = match field(form, "mode") {
        Some("none") => {
            let call = Call::bucket(Method::DELETE, bucket).query("encryption", "");
            return ok(console, signed, peer, "remove default encryption", call)
                .await
                .map(drop);
        }
        Some("SSE-S3") => ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
            kms_master_key_id: None,
        },
        Some("SSE-KMS") if !key.is_empty() => ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS),
            kms_master_key_id: Some(key.to_owned()),
        },
        Some("SSE-KMS") => {
            return Err(Refusal::input(
                "Could not save default encryption: SSE-KMS needs a key name; nothing was changed.",
            ));
        }
        _ => return Err(Refusal::input("Choose none, SSE-S3 or SSE-KMS.")),
    };
    let doc = ServerSideEncryptionConfiguration {
        rules: vec![ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(default),
            ..Default::default()
        }],
    };
    let call = Call::bucket(Method::PUT, bucket)
        .query("encryption", "")
        .body(xml::body_of(&doc));
    ok(console, signed, peer, "save default encryption", call)
        .await
        .map(drop)
}
