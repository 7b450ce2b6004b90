//! An object's tags on its page: read with GetObjectTagging, replaced from a form of one
//! `key=value` per line with PutObjectTagging (an empty form removes them: DeleteObjectTagging).
//! S3 judges the tags (how many, how long, which characters); a line without `=` is refused
//! here, before anything is sent.
use std::net::SocketAddr;

use http::Method;
use s3s::dto::{Tag, Tagging};

use super::object::{page_href, show};
use super::{Frame, Refusal, ok, ok_dto};
use crate::console::http_util::{Response, field, redirect};
use crate::console::router::{Console, Signed};
use crate::console::s3call::Call;
use crate::console::xml;

/// The tags of one object (version), in S3's order.
pub async fn read(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Vec<(String, String)>, Refusal> {
    let call = Call::object(Method::GET, bucket, key)
        .query("tagging", "")
        .query_opt("versionId", version);
    let tagging: Tagging = ok_dto(console, signed, peer, "read the tags", call).await?;
    Ok(tagging
        .tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect())
}

/// Tags as the form shows them: `key=value` lines.
pub fn as_text(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect::<String>()
}

/// The form's lines as tags; blank lines are skipped. `Err` names the first bad line.
fn parse_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!(
                "Could not save the tags: \"{l}\" is not key=value; nothing was changed."
            )),
        })
        .collect()
}

/// `POST /object-tags/{bucket}`: `key`, `version`, `tags`.
pub async fn save(
    console: &Console,
    signed: &Signed,
    peer: SocketAddr,
    form: &[(String, String)],
    bucket: &str,
) -> Response {
    let key = field(form, "key").unwrap_or("");
    let version = field(form, "version").filter(|v| !v.is_empty());
    let result = match parse_lines(field(form, "tags").unwrap_or("")) {
        Err(message) => Err(Refusal::input(message)),
        Ok(tags) if tags.is_empty() => {
            let call = Call::object(Method::DELETE, bucket, key)
                .query("tagging", "")
                .query_opt("versionId", version);
            ok(console, signed, peer, "remove the tags", call)
                .await
                .map(drop)
        }
        Ok(tags) => {
            let doc = Tagging {
                tag_set: tags
                    .into_iter()
                    .map(|(k, v)| Tag {
                        key: Some(k),
                        value: Some(v),
                    })
                    .collect(),
            };
            let call = Call::object(Method::PUT, bucket, key)
                .query("tagging", "")
                .query_opt("versionId", version)
                .body(xml::body_of(&doc));
            ok(console, signed, peer, "save the tags", call)
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => redirect(&page_href(bucket, key, version, "tags")),
        Err(r) => {
            let mut frame = Frame::new(signed);
            frame.error = Some(r.message);
            show(console, signed, peer, bucket, key, version, frame, r.status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_lines_are_named() {
        let tags = parse_lines("team=ops\n\n  env = prod \nempty=\n").unwrap();
        assert_eq!(
            tags,
            [("team", "ops"), ("env", "prod"), ("empty", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(parse_lines(&as_text(&tags)).unwrap(), tags);
        let e = parse_lines("a=1\nnonsense\n").unwrap_err();
        assert!(e.contains("\"nonsense\""), "{e}");
        assert!(parse_lines("=v").is_err());
    }
}
