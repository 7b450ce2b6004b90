//! Server APIs: version, ready, status, metrics, the API list and the log streams.

use super::error::ApiError;
use super::{Body, Shared, json, route_list};
use crate::log::LogStream;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};

type Result = std::result::Result<Response<Body>, ApiError>;

/// This server's version string.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub fn version() -> Result {
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "version": VERSION, "commit": "" }),
    ))
}

pub async fn ready(s: &Shared) -> Result {
    match s.keys.status().await {
        Ok(_) => Ok(super::ok()),
        Err(crate::keystore::StoreError::Unreachable(e)) => {
            s.log_error(&format!("key store is not reachable: {e}"));
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "key store is not reachable",
            ))
        }
        Err(crate::keystore::StoreError::Sealed) => Err(super::error::SEALED),
        Err(e) => {
            s.log_error(&format!("key store is unavailable: {e}"));
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "key store is unavailable",
            ))
        }
    }
}

pub async fn status(s: &Shared) -> Result {
    // KES reports any keystore error as `keystore_unreachable`; `keystore_sealed` (ours, ignored
    // by MinIO) says the keystore answered that it is sealed, which a client may treat as a
    // deliberate stop rather than an outage that the offline cache rides out.
    let (latency, unreachable, sealed) = match s.keys.status().await {
        Ok(d) => (d.as_millis().max(1) as u64, false, false),
        Err(e) => (0, true, e == crate::keystore::StoreError::Sealed),
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut v = serde_json::json!({
        "version": VERSION,
        "os": std::env::consts::OS,
        "arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "uptime": s.uptime().as_secs(),
        "num_cpu": cpus,
        "num_cpu_used": cpus,
        "mem_heap_used": 0,
        "mem_stack_used": 0,
    });
    if latency > 0 {
        v["keystore_latency"] = latency.into();
    }
    if unreachable {
        v["keystore_unreachable"] = true.into();
    }
    if sealed {
        v["keystore_sealed"] = true.into();
    }
    Ok(json(StatusCode::OK, &v))
}

pub fn metrics(s: &Shared) -> Result {
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(super::full(s.metrics.render(s.uptime())))
        .expect("valid response"))
}

pub fn apis(s: &Shared) -> Result {
    Ok(json(StatusCode::OK, &route_list(&s.auth())))
}

pub fn log_stream(stream: &LogStream) -> Result {
    let rx = stream.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => {
                    return Some((Ok(hyper::body::Frame::data(bytes::Bytes::from(line))), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(StreamBody::new(events).boxed())
        .expect("valid response"))
}
