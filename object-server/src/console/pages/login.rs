//! Sign-in and its form. The keys are checked by the S3 service itself: a ListBuckets signed
//! with them either passes the signature check (the keys are right, whatever the user may list)
//! or is refused as `InvalidAccessKeyId` / `SignatureDoesNotMatch`. A refusal waits a moment,
//! so guessing is slow, and never says which of the two keys was wrong; too many from one
//! address lock it out for a while ([`crate::console::throttle`]), refused with 429 before the
//! keys are even checked.
use std::time::Duration;

use askama::Template;
use http::{Method, StatusCode};

use super::render;
use crate::console::csrf;
use crate::console::http_util::{self, Response, redirect, with_cookie};
use crate::console::router::{Console, Req};
use crate::console::s3call::{Call, Creds, read_body};
use crate::console::session::{self, random_token};
use crate::console::xml::{self, S3ErrorDoc};

/// How long the sign-in form's token lasts.
const LOGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How long a refused sign-in waits before answering.
const REFUSAL_DELAY: Duration = Duration::from_millis(300);

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    token: String,
    access_key: String,
    notice: Option<String>,
    error: Option<String>,
}

/// The browser's sign-in token if it has one (a second tab, or a favicon request sent here,
/// must not invalidate the form already shown), else a new one.
fn login_token(req: &Req) -> String {
    session::cookie(&req.headers, csrf::LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(random_token, str::to_owned)
}

fn page(
    console: &Console,
    token: String,
    status: StatusCode,
    access_key: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let resp = render(
        status,
        &LoginPage {
            token: token.clone(),
            access_key: access_key.to_owned(),
            notice,
            error,
        },
    );
    with_cookie(
        resp,
        &session::set_cookie(
            csrf::LOGIN_COOKIE,
            &token,
            LOGIN_TOKEN_LIFETIME,
            console.tls,
        ),
    )
}

/// `GET /login`.
pub fn form(console: &Console, req: &Req, error: Option<String>) -> Response {
    let notice = req
        .param("expired")
        .map(|_| "Your session has ended. Sign in again.".to_owned());
    page(console, login_token(req), StatusCode::OK, "", notice, error)
}

/// `POST /login`.
pub async fn submit(console: &Console, req: Req) -> Response {
    let expected = session::cookie(&req.headers, csrf::LOGIN_COOKIE).map(str::to_owned);
    let peer = req.peer;
    let Some(body) = http_util::read_limited(req.body, http_util::FORM_LIMIT).await else {
        return http_util::text(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
    };
    let form = http_util::pairs(&body);
    if !csrf::matches(
        expected.as_deref().unwrap_or(""),
        http_util::field(&form, "token"),
    ) {
        return page(
            console,
            random_token(),
            StatusCode::FORBIDDEN,
            "",
            None,
            Some("The sign-in form expired. Please try again.".to_owned()),
        );
    }
    let access = http_util::field(&form, "access_key")
        .unwrap_or("")
        .trim()
        .to_owned();
    let secret = http_util::field(&form, "secret_key")
        .unwrap_or("")
        .to_owned();
    let token = expected.unwrap_or_default();
    let refused = |console: &Console, access: &str, msg: &str| {
        page(
            console,
            token.clone(),
            StatusCode::UNAUTHORIZED,
            access,
            None,
            Some(msg.to_owned()),
        )
    };
    if access.is_empty() || secret.is_empty() {
        return refused(console, &access, "Enter an access key and a secret key.");
    }
    if let Err(left) = console.throttle.begin(peer.ip()) {
        tracing::warn!(address = %peer.ip(), "console sign-in refused: too many failures from this address");
        let minutes = left.as_secs().div_ceil(60).max(1);
        return page(
            console,
            token.clone(),
            StatusCode::TOO_MANY_REQUESTS,
            &access,
            None,
            Some(format!(
                "Too many failed sign-ins from your address. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
    }
    let creds = Creds::new(access.clone(), secret);
    let answer = match console
        .s3
        .send(&creds, peer, Call::service(Method::GET))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "console sign-in");
            return http_util::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not check the keys; see its log.",
            );
        }
    };
    let status = answer.status();
    if !status.is_success() {
        let code = match read_body(answer, 64 * 1024).await {
            Ok((_, body)) => xml::parse::<S3ErrorDoc>(&body).unwrap_or_default().code,
            Err(_) => String::new(),
        };
        if code != "AccessDenied" {
            // The access key typed is not logged: a secret key pasted in its place would be.
            tracing::info!(%code, "console sign-in refused");
            tokio::time::sleep(REFUSAL_DELAY).await;
            return refused(
                console,
                &access,
                "Wrong access key or secret key, or the user is disabled.",
            );
        }
    }
    console.throttle.succeeded(peer.ip());
    tracing::info!(user = %access, "console sign-in");
    let id = console.sessions.create(creds);
    let resp = with_cookie(
        redirect("/buckets"),
        &session::set_cookie(
            session::COOKIE,
            &id,
            console.sessions.lifetime(),
            console.tls,
        ),
    );
    with_cookie(
        resp,
        &session::set_cookie(csrf::LOGIN_COOKIE, "", Duration::ZERO, console.tls),
    )
}
