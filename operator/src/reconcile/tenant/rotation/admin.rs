//! [`RewrapApi`] over the object-server's admin call `/minio/admin/v3/coffer/rewrap`, signed
//! (SigV4, in the query: rusty-s3's signer, as the object-server's console signs its own calls)
//! with the Tenant's root credentials, which the operator made and already holds: no new
//! identity. The signed URL lives for one minute and is never logged.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::plan::{RewrapApi, StartRefused};
use crate::crd::tenant::RewrapStatus;

/// The admin path.
pub const REWRAP_PATH: &str = "/minio/admin/v3/coffer/rewrap";
/// What the object-server calls its region (MinIO's default).
const REGION: &str = "us-east-1";
/// How long a signed call stays valid.
const SIGNED_FOR: u64 = 60;

/// One Tenant's object-server.
pub struct AdminClient {
    /// Trusts the Tenant's S3 certificate.
    pub http: reqwest::Client,
    /// `https://<tenant>.<namespace>.svc:9000`.
    pub endpoint: reqwest::Url,
    /// The root user.
    pub access_key: String,
    /// The root password (never logged).
    pub secret_key: String,
}

impl AdminClient {
    async fn call(&self, method: rusty_s3::Method) -> Result<(u16, serde_json::Value), String> {
        let url = self
            .endpoint
            .join(REWRAP_PATH)
            .map_err(|e| format!("the endpoint: {e}"))?;
        let signed = rusty_s3::signing::sign(
            &k8s_openapi::jiff::Timestamp::now(),
            method,
            url,
            &self.access_key,
            &self.secret_key,
            None,
            REGION,
            SIGNED_FOR,
            std::iter::empty(),
            std::iter::empty(),
        );
        let req = match method {
            rusty_s3::Method::Post => self.http.post(signed),
            _ => self.http.get(signed),
        };
        // The URL carries a signature: only the error's kind and source, never the URL.
        let resp = req
            .send()
            .await
            .map_err(|e| crate::reconcile::kms::error_chain(&e.without_url()))?;
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(
            |_| serde_json::json!({ "text": text.chars().take(300).collect::<String>() }),
        );
        Ok((code, body))
    }
}

fn refused(code: u16, body: &serde_json::Value) -> String {
    // S3 errors are XML (the body's first characters); admin errors JSON with `Code`.
    let said = body["Code"]
        .as_str()
        .or_else(|| body["text"].as_str())
        .unwrap_or_default();
    format!("the object-server answered HTTP {code}: {said}")
}

impl RewrapApi for AdminClient {
    fn status(&self) -> BoxFuture<'_, Result<Option<RewrapStatus>, String>> {
        async move {
            match self.call(rusty_s3::Method::Get).await? {
                (200, body) if body["state"] == "none" => Ok(None),
                (200, body) => serde_json::from_value(body)
                    .map(Some)
                    .map_err(|e| format!("the re-wrap status: {e}")),
                (code, body) => Err(refused(code, &body)),
            }
        }
        .boxed()
    }

    fn start(&self) -> BoxFuture<'_, Result<RewrapStatus, StartRefused>> {
        async move {
            match self
                .call(rusty_s3::Method::Post)
                .await
                .map_err(StartRefused::Failed)?
            {
                (200, body) => serde_json::from_value(body)
                    .map_err(|e| StartRefused::Failed(format!("the re-wrap status: {e}"))),
                (409, _) => Err(StartRefused::Running),
                (code, body) => Err(StartRefused::Failed(refused(code, &body))),
            }
        }
        .boxed()
    }
}
