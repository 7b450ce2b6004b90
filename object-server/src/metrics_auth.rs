//! Who may scrape the Prometheus endpoints (`/minio/v2/metrics/cluster`, `/minio/v2/metrics/node`
//! and `/metrics`), as MinIO decides it with `MINIO_PROMETHEUS_AUTH_TYPE`:
//!
//! - `jwt` (the default): the request carries `Authorization: Bearer <token>`, the token that
//!   `mc admin prometheus generate ALIAS` prints. mc makes it locally, without asking the server:
//!   a JWT signed with HMAC-SHA512 (`alg: HS512`) whose key is the alias's secret key, with the
//!   claims `exp` (Unix seconds; mc puts it 100 years ahead), `sub` (the alias's access key) and
//!   `iss: "prometheus"`. MinIO takes the access key from `accessKey` when present, else `sub`.
//! - `public`: anyone may scrape.
//! - anything else is a start-up error (MinIO starts with any value and treats it as `jwt`; a
//!   typo that silently left metrics closed, or worse a later change that opened them, is
//!   better caught at start).
//!
//! A token is accepted only when all of these hold, in this order: it has three base64url parts
//! and its header names `HS512`; the access key names the root user or an enabled IAM user
//! (looked up in [`crate::iam`], never reimplemented); the signature verifies under that
//! user's secret key (aws-lc's constant-time HMAC verification); `exp` is present and in the
//! future, `nbf` (if any) is past, `iss` is `prometheus`; and the user's policies allow
//! `admin:Prometheus` (the root user always is), as MinIO checks. Any failure is the same 403
//! `AccessDenied` MinIO answers, so the answer tells a prober nothing about which check failed;
//! the reason goes to the debug log, without the token.
//!
//! We are stricter than MinIO in two places, both harmless for mc's tokens: MinIO also accepts
//! HS256/HS384 and tokens without `exp`; we do not (a token that never expires must say so).
//!
//! The health endpoints (`/minio/health/live`, `/ready`, `/cluster`) stay open, as MinIO's:
//! kubelets and load balancers probe them without credentials.
use std::collections::HashMap;

use base64::Engine as _;

use crate::iam::Iam;
use crate::iam::access::Caller;

/// The environment variable that picks the mode.
pub const ENV: &str = "MINIO_PROMETHEUS_AUTH_TYPE";
/// The issuer mc writes and MinIO requires.
pub const ISSUER: &str = "prometheus";
/// The IAM action a non-root scraper needs.
pub const ACTION: &str = "admin:Prometheus";

/// `MINIO_PROMETHEUS_AUTH_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthType {
    /// A bearer token is required.
    #[default]
    Jwt,
    /// No authentication.
    Public,
}

impl AuthType {
    /// Parses the variable's value (case-insensitive, as MinIO lower-cases it); `None` is `jwt`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("jwt") => Ok(Self::Jwt),
            Some("public") => Ok(Self::Public),
            Some(other) => Err(format!(
                "{ENV} must be 'jwt' (the default: a bearer token from `mc admin prometheus generate`) or 'public', not '{other}'"
            )),
        }
    }
}

/// Why a scrape was refused (logged at debug level; the client sees one 403 for all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than HS512.
    #[error("unsupported signing algorithm")]
    Algorithm,
    /// Neither `accessKey` nor `sub`.
    #[error("token names no access key")]
    NoAccessKey,
    /// The access key is not the root user nor an enabled user.
    #[error("unknown or disabled access key")]
    UnknownUser,
    /// The signature does not verify under the user's secret key.
    #[error("bad signature")]
    Signature,
    /// `exp` is missing or past, or `nbf` is ahead.
    #[error("token expired or not yet valid")]
    Expired,
    /// `iss` is not `prometheus`.
    #[error("wrong issuer")]
    Issuer,
    /// The user's policies do not allow `admin:Prometheus`.
    #[error("not allowed admin:Prometheus")]
    NotAllowed,
    /// The IAM state could not be read.
    #[error("IAM state unavailable")]
    Iam,
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub struct Token<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    claims: serde_json::Map<String, serde_json::Value>,
}

fn b64(part: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed)
}

impl<'a> Token<'a> {
    /// Splits and decodes `token`; refuses any algorithm but HS512.
    pub fn parse(token: &'a str) -> Result<Self, Refusal> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let header: serde_json::Value =
            serde_json::from_slice(&b64(header)?).map_err(|_| Refusal::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS512") {
            return Err(Refusal::Algorithm);
        }
        let claims = match serde_json::from_slice(&b64(payload)?) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(Refusal::Malformed),
        };
        Ok(Self {
            signing_input: &token[..token.len() - signature.len() - 1],
            signature: b64(signature)?,
            claims,
        })
    }

    /// The access key the token claims to be signed by: `accessKey`, else `sub` (MinIO's order).
    pub fn access_key(&self) -> Result<&str, Refusal> {
        ["accessKey", "sub"]
            .iter()
            .find_map(|k| self.claims.get(*k))
            .ok_or(Refusal::NoAccessKey)?
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or(Refusal::Malformed)
    }

    /// Checks the signature under `secret`, then the time claims against `now` (Unix seconds)
    /// and the issuer. Claims are trusted only after the signature verified.
    pub fn verify(&self, secret: &[u8], now: i64) -> Result<(), Refusal> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, secret);
        aws_lc_rs::hmac::verify(&key, self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Refusal::Signature)?;
        let number = |name: &str| -> Result<Option<i64>, Refusal> {
            match self.claims.get(name) {
                None => Ok(None),
                // Go's jwt library reads JSON numbers as floats: accept `1.7e9` as mc never
                // writes it but another generator might.
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or(Refusal::Malformed),
            }
        };
        match number("exp")? {
            Some(exp) if now < exp => {}
            _ => return Err(Refusal::Expired),
        }
        if number("nbf")?.is_some_and(|nbf| now < nbf) {
            return Err(Refusal::Expired);
        }
        if self.claims.get("iss").and_then(|i| i.as_str()) != Some(ISSUER) {
            return Err(Refusal::Issuer);
        }
        Ok(())
    }
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Decides whether the request with `headers` from `peer` may scrape the metrics.
pub async fn authorize(
    iam: &Iam,
    headers: &http::HeaderMap,
    peer: Option<std::net::IpAddr>,
    tls: bool,
) -> Result<(), Refusal> {
    let token = Token::parse(bearer(headers).ok_or(Refusal::Missing)?)?;
    let access_key = token.access_key()?;
    let caller = iam.caller(Some(access_key));
    match caller {
        Caller::Root(_) => token.verify(iam.root_secret().expose().as_bytes(), now_unix())?,
        _ => {
            let snapshot = iam.snapshot().await.map_err(|e| {
                tracing::error!(error = %e, "IAM state unavailable");
                Refusal::Iam
            })?;
            match snapshot.users.get(access_key) {
                Some(u) if u.enabled => token.verify(u.secret.expose().as_bytes(), now_unix())?,
                _ => return Err(Refusal::UnknownUser),
            }
        }
    }
    let conditions: HashMap<String, Vec<String>> =
        crate::iam::action::condition_values(&crate::iam::action::RequestFacts {
            headers,
            query: None,
            secure: tls,
            source_ip: peer,
            user: Some(access_key),
            root: matches!(caller, Caller::Root(_)),
        });
    iam.authorize(caller, "", ACTION, "", "", &conditions)
        .await
        .map_err(|_| Refusal::NotAllowed)
}

/// MinIO's answer to a refused scrape: 403 with its JSON error body.
pub fn refused(path: &str) -> http::Response<s3s::Body> {
    let body = serde_json::json!({
        "Code": "AccessDenied",
        "Message": "Access Denied.",
        "Resource": path,
        "RequestId": "",
        "HostId": "",
    });
    http::Response::builder()
        .status(http::StatusCode::FORBIDDEN)
        .header("content-type", "application/json")
        .body(s3s::Body::from(body.to_string()))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let input = format!("{}.{}", e(header), e(claims));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    const HS512: &str = r#"{"alg":"HS512","typ":"JWT"}"#;
    const NOW: i64 = 1_800_000_000;

    fn check(token: &str, secret: &[u8]) -> Result<String, Refusal> {
        let t = Token::parse(token)?;
        t.verify(secret, NOW)?;
        Ok(t.access_key()?.to_owned())
    }

    #[test]
    fn mc_shaped_tokens_verify_and_name_their_access_key() {
        let t = sign(
            HS512,
            r#"{"exp":4900000000,"sub":"admin","iss":"prometheus"}"#,
            b"secret-key",
        );
        assert_eq!(check(&t, b"secret-key").as_deref(), Ok("admin"));
        // `accessKey` wins over `sub`, as in MinIO.
        let t = sign(
            HS512,
            r#"{"exp":4900000000,"sub":"x","accessKey":"admin","iss":"prometheus"}"#,
            b"k",
        );
        assert_eq!(check(&t, b"k").as_deref(), Ok("admin"));
    }

    #[test]
    fn every_bad_token_is_refused_for_its_reason() {
        let good = r#"{"exp":4900000000,"sub":"admin","iss":"prometheus"}"#;
        let cases: Vec<(String, Refusal)> = vec![
            (sign(HS512, good, b"other-secret"), Refusal::Signature),
            (
                sign(
                    HS512,
                    r#"{"exp":1700000000,"sub":"admin","iss":"prometheus"}"#,
                    b"s",
                ),
                Refusal::Expired,
            ),
            (
                sign(HS512, r#"{"sub":"admin","iss":"prometheus"}"#, b"s"),
                Refusal::Expired,
            ),
            (
                sign(
                    HS512,
                    r#"{"exp":4900000000,"nbf":4800000000,"sub":"admin","iss":"prometheus"}"#,
                    b"s",
                ),
                Refusal::Expired,
            ),
            (
                sign(HS512, r#"{"exp":4900000000,"sub":"admin"}"#, b"s"),
                Refusal::Issuer,
            ),
            (
                sign(
                    HS512,
                    r#"{"exp":4900000000,"sub":"admin","iss":"minio"}"#,
                    b"s",
                ),
                Refusal::Issuer,
            ),
            (sign(r#"{"alg":"HS256"}"#, good, b"s"), Refusal::Algorithm),
            (sign(r#"{"alg":"none"}"#, good, b"s"), Refusal::Algorithm),
            ("a.b".into(), Refusal::Malformed),
            ("a.b.c.d".into(), Refusal::Malformed),
            ("!!.??.**".into(), Refusal::Malformed),
        ];
        for (token, why) in cases {
            let got = Token::parse(&token).and_then(|t| t.verify(b"s", NOW));
            assert_eq!(got, Err(why.clone()), "{token}");
        }
        // A token without any access key is refused before a secret is looked up.
        let t = sign(HS512, r#"{"exp":4900000000,"iss":"prometheus"}"#, b"s");
        assert_eq!(
            Token::parse(&t).unwrap().access_key(),
            Err(Refusal::NoAccessKey)
        );
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let t = sign(
            HS512,
            r#"{"exp":4900000000,"sub":"reader","iss":"prometheus"}"#,
            b"s",
        );
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"exp":4900000000,"sub":"admin","iss":"prometheus"}"#);
        parts[1] = &forged;
        assert_eq!(check(&parts.join("."), b"s"), Err(Refusal::Signature));
    }

    #[test]
    fn the_auth_type_is_jwt_public_or_a_start_up_error() {
        assert_eq!(AuthType::parse(None), Ok(AuthType::Jwt));
        assert_eq!(AuthType::parse(Some("jwt")), Ok(AuthType::Jwt));
        assert_eq!(AuthType::parse(Some("PUBLIC")), Ok(AuthType::Public));
        let e = AuthType::parse(Some("none")).unwrap_err();
        assert!(e.contains(ENV) && e.contains("'none'"), "{e}");
    }

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Basic YTpi".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc.def.ghi"));
        h.insert("authorization", "bearer  ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
