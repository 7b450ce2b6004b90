//! Server information: version, uptime, the KMS and its default key's status, and the S3 port's
//! request rates ([`crate::console::rates`]). Names, states and counts only, never key material
//! or credentials.
use std::time::Duration;

use askama::Template;
use http::StatusCode;

use super::{Frame, render};
use crate::console::http_util::Response;
use crate::console::router::{Console, Signed};

#[derive(Template)]
#[template(path = "console/server.html")]
struct ServerPage {
    frame: Frame,
    version: &'static str,
    uptime: String,
    kms: String,
    default_key: String,
    kms_status: String,
    requests: u64,
    errors: u64,
    overall_rate: String,
    recent_rate: String,
    recent_errors: String,
    busiest: Vec<(&'static str, u64, u64)>,
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{}d {}h {}m {}s",
        s / 86400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// `GET /server`.
pub async fn page(console: &Console, _signed: &Signed, frame: Frame) -> Response {
    let kms_status = match tokio::time::timeout(Duration::from_secs(3), console.kms.ready()).await {
        Ok(Ok(_)) => "ready".to_owned(),
        Ok(Err(e)) => format!("not ready: {e}"),
        Err(_) => "not answering within 3 s".to_owned(),
    };
    let rates = console.rates.view();
    let page = ServerPage {
        requests: rates.requests,
        errors: rates.errors,
        overall_rate: format!("{:.2}", rates.overall),
        recent_rate: format!("{:.2}", rates.recent),
        recent_errors: format!("{:.2}", rates.recent_errors),
        busiest: rates.busiest,
        frame,
        version: env!("CARGO_PKG_VERSION"),
        uptime: human(console.started.elapsed()),
        kms: console.kms.describe(),
        default_key: console.kms.default_key().to_owned(),
        kms_status,
    };
    render(StatusCode::OK, &page)
}
