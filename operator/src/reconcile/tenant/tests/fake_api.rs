//! A scripted API server for reconcile tests: a [`kube::Client`] whose requests are answered
//! in-process from a map of stored objects, so that a test states what the cluster holds,
//! runs one reconcile, and reads back what it wrote, without a kube-apiserver.
//! As the API server does, a write that changes an object's `spec` increments its
//! `metadata.generation` (a controller's `status.observedGeneration` then lags behind).
//!
//! It speaks the subset of the API the Tenant reconcile uses: GET of an object or of a
//! namespaced collection, POST (create, 409 when present), PATCH (server-side apply replaces
//! the object but keeps its status; a merge patch, on `/status` too, merges), DELETE. Every
//! request is logged; [`FakeApi::fail`] scripts an error answer for one method and path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One request the client made.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    /// The path without the query.
    pub path: String,
    /// The body, parsed as JSON (`Null` when empty).
    pub body: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    failures: Vec<(Method, String, u16, String)>,
    log: Vec<Logged>,
    resource_version: u64,
}

/// The in-process API server; clones share it.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// The path of the object `name` of kind `K` in `ns`.
pub fn path_of<K: Resource<DynamicType = ()>>(ns: &str, name: &str) -> String {
    format!("{}/{name}", K::url_path(&(), Some(ns)))
}

impl FakeApi {
    /// A client of this server, default namespace `default`.
    pub fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.answer(req).await) }
        });
        Client::new(service, "default")
    }

    /// Stores `obj` (in its namespace) as if created.
    pub fn put<K>(&self, obj: &K)
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let meta = obj.meta();
        let path = path_of::<K>(
            meta.namespace.as_deref().expect("a namespaced object"),
            meta.name.as_deref().expect("a named object"),
        );
        let mut value = serde_json::to_value(obj).unwrap();
        value["apiVersion"] = json!(K::api_version(&()));
        value["kind"] = json!(K::kind(&()));
        let mut state = self.state.lock().unwrap();
        stamp(&mut state, &mut value);
        state.objects.insert(path, value);
    }

    /// The stored object of kind `K` named `name` in `ns`.
    pub fn get<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let state = self.state.lock().unwrap();
        let v = state.objects.get(&path_of::<K>(ns, name))?;
        Some(serde_json::from_value(v.clone()).unwrap())
    }

    /// Answers every `method` request to `path` with `code` and `message` from now on.
    pub fn fail(&self, method: Method, path: &str, code: u16, message: &str) {
        self.state
            .lock()
            .unwrap()
            .failures
            .push((method, path.into(), code, message.into()));
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Forgets the logged requests.
    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The paths written (POST, PATCH, DELETE) so far, in order.
    pub fn writes(&self) -> Vec<(Method, String)> {
        self.log()
            .into_iter()
            .filter(|l| l.method != Method::GET)
            .filter(|l| !l.path.contains("/events"))
            .map(|l| (l.method, l.path))
            .collect()
    }

    /// `(type, reason, note)` of every event published so far.
    pub fn events(&self) -> Vec<(String, String, String)> {
        self.log()
            .into_iter()
            .filter(|l| l.method == Method::POST && l.path.contains("/events"))
            .map(|l| {
                let s = |k: &str| l.body[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("reason"), s("note"))
            })
            .collect()
    }

    async fn answer(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().trim_end_matches('/').to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut state = self.state.lock().unwrap();
        state.log.push(Logged {
            method: parts.method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        if let Some((_, _, code, message)) = state
            .failures
            .iter()
            .find(|(m, p, _, _)| *m == parts.method && *p == path)
        {
            return status(*code, "Invalid", message);
        }
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (path.clone(), false),
        };
        let collection = is_collection(&object_path);
        match parts.method {
            Method::GET if collection => {
                let prefix = format!("{object_path}/");
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| k.strip_prefix(&prefix).is_some_and(|n| !n.contains('/')))
                    .map(|(_, v)| v.clone())
                    .collect();
                respond(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
                )
            }
            Method::GET => match state.objects.get(&object_path) {
                Some(v) => respond(200, v),
                None => status(404, "NotFound", &format!("{object_path} not found")),
            },
            Method::POST if collection => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!("{object_path}/{name}");
                if state.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{key} already exists"));
                }
                let mut value = body.clone();
                stamp(&mut state, &mut value);
                state.objects.insert(key, value.clone());
                respond(201, &value)
            }
            Method::PATCH if !collection => {
                let mut value = if content_type.starts_with("application/apply-patch") {
                    let mut v = body.clone();
                    if let Some(old) = state.objects.get(&object_path)
                        && let Some(st) = old.get("status")
                    {
                        v["status"] = st.clone();
                    }
                    v
                } else {
                    let Some(old) = state.objects.get(&object_path) else {
                        return status(404, "NotFound", &format!("{object_path} not found"));
                    };
                    let mut v = old.clone();
                    let patch = if subresource {
                        json!({"status": body["status"].clone()})
                    } else {
                        body.clone()
                    };
                    merge(&mut v, &patch);
                    v
                };
                let old = state.objects.get(&object_path);
                let old_generation = old.map(|o| o["metadata"]["generation"].clone());
                let generation = match (old, old_generation) {
                    (Some(old), Some(g)) if old.get("spec") == value.get("spec") => g,
                    (Some(_), Some(g)) => json!(g.as_i64().unwrap_or(0) + 1),
                    _ => Value::Null,
                };
                value["metadata"]["generation"] = generation;
                stamp(&mut state, &mut value);
                state.objects.insert(object_path, value.clone());
                respond(200, &value)
            }
            Method::DELETE if !collection => match state.objects.remove(&object_path) {
                Some(v) => respond(200, &v),
                None => status(404, "NotFound", &format!("{object_path} not found")),
            },
            _ => status(405, "MethodNotAllowed", &format!("{} {path}", parts.method)),
        }
    }
}

/// `/api/v1/namespaces/NS/PLURAL` or `/apis/GROUP/VERSION/namespaces/NS/PLURAL`.
fn is_collection(path: &str) -> bool {
    let segments = path.trim_start_matches('/').split('/').count();
    if path.starts_with("/api/") {
        segments == 5
    } else {
        segments == 6
    }
}

/// A new resourceVersion, and the generation an object has after a write.
fn stamp(state: &mut State, value: &mut Value) {
    state.resource_version += 1;
    value["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
    if value["metadata"]["generation"].is_null() {
        value["metadata"]["generation"] = json!(1);
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    respond(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}
