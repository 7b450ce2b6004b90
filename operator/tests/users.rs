//! `Tenant.spec.users` against a real kube-apiserver + etcd: the operator turns user Secrets into
//! `<tenant>-users` and `status.users`, follows changes and deletions at once (not at the
//! 5-minute resync), and names invalid Secrets without ever showing a key's value. The users are
//! then usable: the real object-server, given the file exactly as the Secret holds it (what the
//! kubelet mounts), lets each user in with its policy and locks a removed one out.
//!
//! Needs the peers `etcd`, `kube-apiserver`, `kubectl` and `mc` on PATH
//! (`eval "$(e2e/peers/env)"`) and the `object-server` binary built next to this test
//! (`cargo test --workspace` builds it); fails loudly when they are absent.

mod common;

use std::time::Duration;

use coffer_e2e::kube::KubeApi;
use coffer_e2e::minio::mc_for;
use coffer_e2e::{Process, start_on_free_ports};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use operator::build::users::{USERS_FILE, UsersFile};
use operator::crd::Tenant;

use common::{eventually, printed, tenant_condition};

const NS: &str = "apps";
/// How often the object-server under test re-reads its users file.
const RELOAD_SECONDS: u64 = 1;
/// Well under the operator's 5-minute resync: a change must come through the Secret watch.
const PROMPTLY: Duration = Duration::from_secs(60);

fn user_secret(name: &str, pairs: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        string_data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The users file the operator wrote, or `None` before it exists.
async fn users_file(secrets: &Api<Secret>) -> Option<UsersFile> {
    let s = secrets.get_opt("store-users").await.ok()??;
    serde_json::from_slice(&s.data?.get(USERS_FILE)?.0).ok()
}

fn access_keys(file: &UsersFile) -> Vec<&str> {
    file.users.iter().map(|u| u.access_key.as_str()).collect()
}

fn users_ready(t: &Tenant) -> Option<(String, String, String)> {
    tenant_condition(t, "UsersReady")
}

async fn set_users(tenants: &Api<Tenant>, names: &[&str]) {
    let users: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({"name": n}))
        .collect();
    tenants
        .patch(
            "store",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"users": users}})),
        )
        .await
        .unwrap();
}

/// `<target>/debug/`, where cargo puts the workspace's binaries: this test runs from
/// `<target>/debug/deps/users-<hash>`.
fn object_server_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps/")
        .join("object-server");
    assert!(
        bin.is_file(),
        "`object-server` is not in {}: build it first with `cargo build -p object-server --bins` \
         (or run `cargo test --workspace`, which builds every binary)",
        bin.display()
    );
    bin
}

/// The real object-server reading its users from `users.json` in its scratch directory, as a
/// pod reads `<tenant>-users` from its volume.
struct ObjectServer {
    process: Process,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl ObjectServer {
    fn start(root_user: &str, root_password: &str, users_json: &[u8]) -> ObjectServer {
        let dir = tempfile::tempdir().unwrap();
        let users_file = dir.path().join(USERS_FILE);
        std::fs::write(&users_file, users_json).unwrap();
        let (process, ports, ()) = start_on_free_ports(
            "object-server",
            1,
            Duration::from_secs(60),
            |ports| {
                let mut command = std::process::Command::new(object_server_bin());
                command
                    .args(["server", "--address", &format!("127.0.0.1:{}", ports[0])])
                    .arg(dir.path().join("data"))
                    .env("MINIO_ROOT_USER", root_user)
                    .env("MINIO_ROOT_PASSWORD", root_password)
                    .env(
                        "MINIO_KMS_SECRET_KEY",
                        "users-test-key:Y29mZmVyLXVzZXJzLXRlc3Qtc3RhdGljLWtleS0zMmI=",
                    )
                    .env("COFFER_USERS_FILE", &users_file)
                    .env("COFFER_USERS_RELOAD_SECONDS", RELOAD_SECONDS.to_string());
                Process::spawn(
                    "object-server",
                    command,
                    &dir.path().join("object-server.log"),
                )
            },
            |_, ports| {
                let ready = format!("http://127.0.0.1:{}/minio/health/ready", ports[0]);
                std::process::Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", &ready])
                    .status()
                    .ok()
                    .filter(|s| s.success())
                    .map(|_| ())
            },
        );
        let endpoint = format!("http://127.0.0.1:{}", ports[0]);
        ObjectServer {
            process,
            endpoint,
            dir,
        }
    }

    /// Replaces the users file the way the kubelet does: a new file moved into place.
    fn write_users(&self, users_json: &[u8]) {
        let next = self.dir.path().join("users.json.next");
        std::fs::write(&next, users_json).unwrap();
        std::fs::rename(&next, self.dir.path().join(USERS_FILE)).unwrap();
    }

    /// `mc ARGS` as the user with `access_key`/`secret_key`: (success, output).
    fn mc(&self, access_key: &str, secret_key: &str, args: &[&str]) -> (bool, String) {
        let out = mc_for(&self.endpoint, access_key, secret_key, self.dir.path())
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), printed(&out))
    }

    /// Asserts that `mc ARGS` as `user` succeeds (`allowed`) or is refused.
    fn expect(&self, user: &operator::build::users::User, args: &[&str], allowed: bool) {
        let (ok, out) = self.mc(&user.access_key, &user.secret_key, args);
        assert_eq!(
            ok,
            allowed,
            "mc {args:?} as {}: {out}\n{}",
            user.access_key,
            self.process.log_tail()
        );
        if !allowed {
            // mc words S3's AccessDenied as "Access Denied." or, for uploads, "Insufficient
            // permissions"; anything else (a missing user, a network error) is not a refusal.
            assert!(
                out.contains("Access Denied") || out.contains("Insufficient permissions"),
                "refused for its policy: {out}"
            );
        }
    }
}

/// The raw `users.json` of `<tenant>-users`, exactly as the kubelet would mount it.
async fn users_json(secrets: &Api<Secret>) -> Vec<u8> {
    secrets.get("store-users").await.unwrap().data.unwrap()[USERS_FILE]
        .0
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_secrets_become_the_users_file() {
    let api = KubeApi::start();
    let client = api.client().await;
    api.install_crds();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some(NS.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // The schema keeps spec.users a list of distinct Secrets.
    let tenant = |users: &str| {
        format!(
            "apiVersion: coffer.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: store, namespace: {NS}}}\n\
             spec:\n  kms: {{name: vault}}\n  users: {users}\n"
        )
    };
    let (ok, out) = api.try_apply(&tenant("[{name: app1}, {name: app1}]"));
    assert!(!ok, "a Secret listed twice is refused");
    assert!(out.contains("Duplicate value"), "{out}");

    // A KMS (its Vault need not answer: users do not depend on it), two user Secrets, a Tenant.
    api.apply(&format!(
        "apiVersion: coffer.dev/v1alpha1\nkind: KMS\nmetadata: {{name: vault, namespace: {NS}}}\n\
         spec:\n  vault:\n    endpoint: https://127.0.0.1:1\n    auth:\n      appRole: {{secretName: vault-approle}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: vault-approle, namespace: {NS}}}\n\
         stringData: {{roleId: r-123, secretId: s-456}}\n"
    ));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    for s in [
        user_secret(
            "app1",
            &[("accessKey", "app1"), ("secretKey", "app1-secret-key")],
        ),
        user_secret(
            "app2",
            &[
                ("accessKey", "app2"),
                ("secretKey", "app2-secret-key"),
                ("policy", "readonly"),
            ],
        ),
    ] {
        secrets.create(&pp, &s).await.unwrap();
    }
    let _stop = common::start_operator(client.clone(), NS, "users-test");
    api.apply(&tenant("[{name: app1}, {name: app2}]"));
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), NS);

    // --- Both users end up in <tenant>-users, and the status counts them.
    let file = eventually(
        "both users in store-users",
        Duration::from_secs(60),
        || async {
            users_file(&secrets)
                .await
                .filter(|f| access_keys(f) == ["app1", "app2"])
        },
    )
    .await;
    assert_eq!(file.users[0].secret_key, "app1-secret-key");
    assert_eq!(file.users[0].policies, ["readwrite"]);
    assert_eq!(file.users[1].policies, ["readonly"]);
    let t = eventually("status.users = 2", PROMPTLY, || async {
        let t = tenants.get("store").await.ok()?;
        (t.status.as_ref()?.users == Some(2)).then_some(t)
    })
    .await;
    let (status, reason, _) = users_ready(&t).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AllUsersValid")
    );
    let table = api.run(&["get", "tenant", "store", "-n", NS]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[4], "USERS", "{table}");
    assert_eq!(
        table.lines().nth(1).unwrap().split_whitespace().nth(4),
        Some("2"),
        "{table}"
    );
    // The root credentials were minted, and the pods read the users file as a directory.
    let root = secrets.get("store-root").await.unwrap();
    let root_user = String::from_utf8(root.data.unwrap()["rootUser"].0.clone()).unwrap();
    assert!(root_user.starts_with("coffer-"), "{root_user}");
    let owner = &secrets
        .get("store-users")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Tenant", "store")
    );

    // --- Both users are usable, each with its policy, on the real object-server.
    let root_password = String::from_utf8(
        secrets.get("store-root").await.unwrap().data.unwrap()["rootPassword"]
            .0
            .clone(),
    )
    .unwrap();
    let server = ObjectServer::start(&root_user, &root_password, &users_json(&secrets).await);
    let upload = server.dir.path().join("upload.txt");
    std::fs::write(&upload, "hello").unwrap();
    let upload = upload.to_str().unwrap();
    let (app1, app2) = (&file.users[0], &file.users[1]);
    server.expect(app1, &["mb", "local/shared"], true);
    server.expect(app1, &["cp", upload, "local/shared/by-app1.txt"], true);
    server.expect(app2, &["cat", "local/shared/by-app1.txt"], true);
    server.expect(app2, &["cp", upload, "local/shared/by-app2.txt"], false);
    // MinIO's readonly grants GetObject and GetBucketLocation, not listing.
    server.expect(app2, &["ls", "local/shared"], false);

    // --- A changed Secret changes the user (through the watch, not the resync).
    secrets
        .patch(
            "app2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"policy": "readonly,writeonly"}})),
        )
        .await
        .unwrap();
    eventually("app2's new policies", PROMPTLY, || async {
        let f = users_file(&secrets).await?;
        (f.users.get(1)?.policies == ["readonly", "writeonly"]).then_some(())
    })
    .await;
    server.write_users(&users_json(&secrets).await);
    eventually(
        "app2 may upload once the object-server reloads",
        Duration::from_secs(60),
        || async {
            server
                .mc(
                    &app2.access_key,
                    &app2.secret_key,
                    &["cp", upload, "local/shared/by-app2.txt"],
                )
                .0
                .then_some(())
        },
    )
    .await;

    // --- Deleting a Secret removes that user.
    secrets
        .delete("app2", &DeleteParams::default())
        .await
        .unwrap();
    eventually("app2 gone from store-users", PROMPTLY, || async {
        users_file(&secrets)
            .await
            .filter(|f| access_keys(f) == ["app1"])
    })
    .await;
    let t = eventually("status.users = 1", PROMPTLY, || async {
        let t = tenants.get("store").await.ok()?;
        (t.status.as_ref()?.users == Some(1)).then_some(t)
    })
    .await;
    let (status, reason, message) = users_ready(&t).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidUserSecret")
    );
    assert!(
        message.contains(r#"Secret "app2": does not exist"#),
        "{message}"
    );

    // --- Invalid Secrets are named with what is wrong; the valid user stays; no value shows.
    for s in [
        user_secret("short", &[("accessKey", "app3"), ("secretKey", "tiny-sk")]),
        user_secret(
            "twin",
            &[("accessKey", "app1"), ("secretKey", "twin-secret-key")],
        ),
        user_secret(
            "rooty",
            &[("accessKey", &root_user), ("secretKey", "rooty-secret-key")],
        ),
        user_secret("nokey", &[("accessKey", "app4")]),
    ] {
        secrets.create(&pp, &s).await.unwrap();
    }
    set_users(&tenants, &["app1", "short", "twin", "rooty", "nokey"]).await;
    let t = eventually("the invalid Secrets named", PROMPTLY, || async {
        let t = tenants.get("store").await.ok()?;
        let (_, _, m) = users_ready(&t)?;
        m.contains(r#"Secret "nokey""#).then_some(t)
    })
    .await;
    let (_, _, message) = users_ready(&t).unwrap();
    for want in [
        r#"Secret "short": the secret key must be 8 to 40 characters long"#,
        r#"Secret "twin": the access key is already used by Secret "app1""#,
        r#"Secret "rooty": the access key is the root user's"#,
        r#"Secret "nokey": has no key "secretKey""#,
    ] {
        assert!(message.contains(want), "{want:?} not in {message:?}");
    }
    assert_eq!(t.status.as_ref().unwrap().users, Some(1));
    let file = users_file(&secrets).await.unwrap();
    assert_eq!(access_keys(&file), ["app1"]);
    assert_eq!(
        file.users[0].secret_key, "app1-secret-key",
        "the first keeps it"
    );

    let events = eventually("a Warning event", PROMPTLY, || async {
        let out = api.run(&["get", "events.v1.events.k8s.io", "-n", NS, "-o", "json"]);
        out.contains(r#"Secret \"nokey\""#).then_some(out)
    })
    .await;
    assert!(events.contains("InvalidUserSecret"), "{events}");
    let status = serde_json::to_string(&t.status).unwrap();
    for value in [
        "tiny-sk",
        "twin-secret-key",
        "rooty-secret-key",
        "app1-secret-key",
        &root_user,
        "s-456",
    ] {
        assert!(!status.contains(value), "{value} in the status: {status}");
        assert!(!events.contains(value), "{value} in an event: {events}");
    }

    // --- Fixing a Secret brings its user in.
    secrets
        .patch(
            "short",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"secretKey": "long-enough-now"}})),
        )
        .await
        .unwrap();
    eventually("app3 in store-users", PROMPTLY, || async {
        users_file(&secrets)
            .await
            .filter(|f| access_keys(f) == ["app1", "app3"])
    })
    .await;
}
