//! The console's stylesheet and script, embedded in the binary (no build step, no Node).
use http::StatusCode;

use super::http_util::{Response, respond, text};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// `GET /static/…`.
pub fn serve(path: &str) -> Response {
    match path {
        "/static/console.css" => respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            bytes::Bytes::from_static(CSS.as_bytes()),
        ),
        "/static/console.js" => respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            bytes::Bytes::from_static(JS.as_bytes()),
        ),
        _ => text(StatusCode::NOT_FOUND, "No such file."),
    }
}
