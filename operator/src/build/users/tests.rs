//! Unit tests of reading, checking and writing users.

use super::*;
use crate::build::tests::fixtures;

fn secret_with(pairs: &[(&str, &[u8])]) -> Secret {
    Secret {
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn user_secret(access: &str, secret_key: &str) -> Secret {
    secret_with(&[
        (ACCESS_KEY, access.as_bytes()),
        (SECRET_KEY, secret_key.as_bytes()),
    ])
}

fn refs(names: &[&str]) -> Vec<UserRef> {
    names
        .iter()
        .map(|n| UserRef {
            name: n.to_string(),
        })
        .collect()
}

#[test]
fn the_longest_keys_the_object_server_takes_are_accepted() {
    let u = read_user(&user_secret(&"a".repeat(128), &"s".repeat(40))).unwrap();
    assert_eq!((u.access_key.len(), u.secret_key.len()), (128, 40));
}

#[test]
fn a_user_gets_readwrite_unless_its_secret_names_policies() {
    let u = read_user(&user_secret("app1", "app1-secret")).unwrap();
    assert_eq!(u.access_key, "app1");
    assert_eq!(u.secret_key, "app1-secret");
    assert_eq!(u.policies, ["readwrite"]);

    let mut s = user_secret("app2", "app2-secret");
    s.data.as_mut().unwrap().insert(
        POLICY.into(),
        ByteString(b" readonly, , diagnostics ".to_vec()),
    );
    assert_eq!(read_user(&s).unwrap().policies, ["readonly", "diagnostics"]);
}

#[test]
fn minio_operator_secrets_are_read_too() {
    let s = secret_with(&[
        (CONSOLE_ACCESS_KEY, b"console"),
        (CONSOLE_SECRET_KEY, b"console123"),
    ]);
    let u = read_user(&s).unwrap();
    assert_eq!(
        (u.access_key.as_str(), u.secret_key.as_str()),
        ("console", "console123")
    );
    // Our own keys win when both are present.
    let mut s = s;
    s.data
        .as_mut()
        .unwrap()
        .insert(ACCESS_KEY.into(), ByteString(b"mine".to_vec()));
    assert_eq!(read_user(&s).unwrap().access_key, "mine");
}

#[test]
fn string_data_counts_for_objects_not_yet_stored() {
    let s = Secret {
        string_data: Some(BTreeMap::from([
            (ACCESS_KEY.into(), "app1".into()),
            (SECRET_KEY.into(), "app1-secret".into()),
        ])),
        ..Default::default()
    };
    assert_eq!(read_user(&s).unwrap().access_key, "app1");
}

#[test]
fn invalid_secrets_say_what_is_wrong_without_values() {
    let cases: Vec<(Secret, UserProblem)> = vec![
        (
            secret_with(&[(SECRET_KEY, b"hush-hush-1")]),
            UserProblem::MissingKey(ACCESS_KEY),
        ),
        (
            secret_with(&[(ACCESS_KEY, b"app1"), (SECRET_KEY, b"")]),
            UserProblem::MissingKey(SECRET_KEY),
        ),
        (
            user_secret("ab", "hush-hush-1"),
            UserProblem::AccessKeyLength,
        ),
        (
            user_secret(&"a".repeat(129), "hush-hush-1"),
            UserProblem::AccessKeyLength,
        ),
        (user_secret("app1", "hush-hu"), UserProblem::SecretKeyLength),
        (
            user_secret("app1", &format!("hush-{}", "h".repeat(36))),
            UserProblem::SecretKeyLength,
        ),
        (
            user_secret("app1", "hush-hush-1\n"),
            UserProblem::ControlCharacter(SECRET_KEY),
        ),
        (
            user_secret("a=b", "hush-hush-1"),
            UserProblem::AccessKeyCharacter("'='"),
        ),
        (
            user_secret("a,b", "hush-hush-1"),
            UserProblem::AccessKeyCharacter("','"),
        ),
        (
            user_secret("a/b", "hush-hush-1"),
            UserProblem::AccessKeyCharacter("'/'"),
        ),
        (
            user_secret("a b", "hush-hush-1"),
            UserProblem::AccessKeyCharacter("whitespace"),
        ),
        (
            secret_with(&[(ACCESS_KEY, b"app1"), (SECRET_KEY, &[0xff; 12])]),
            UserProblem::NotText(SECRET_KEY),
        ),
        (
            secret_with(&[
                (ACCESS_KEY, b"app1"),
                (SECRET_KEY, b"hush-hush-1"),
                (POLICY, b" , "),
            ]),
            UserProblem::EmptyPolicy,
        ),
    ];
    for (s, want) in cases {
        let got = read_user(&s).unwrap_err();
        assert_eq!(got, want);
        let text = got.to_string();
        assert!(!text.contains("hush"), "no secret in {text:?}");
    }
}

#[test]
fn collect_keeps_the_valid_users_and_names_the_rest() {
    let found = BTreeMap::from([
        ("app1".to_string(), user_secret("app1", "app1-secret")),
        ("app2".to_string(), user_secret("app2", "app2-secret")),
        ("twin".to_string(), user_secret("app1", "other-secret")),
        (
            "root".to_string(),
            user_secret("coffer-root", "root-secret"),
        ),
        ("short".to_string(), user_secret("app3", "short")),
    ]);
    let users = collect(
        &refs(&["app1", "twin", "gone", "root", "short", "app2", "app1"]),
        |n| found.get(n),
        Some("coffer-root"),
    );
    let keys: Vec<&str> = users.users.iter().map(|u| u.access_key.as_str()).collect();
    assert_eq!(keys, ["app1", "app2"], "valid users, spec order, no repeat");
    assert_eq!(
        users.users[0].secret_key, "app1-secret",
        "the first keeps it"
    );
    let invalid: Vec<String> = users.invalid.iter().map(ToString::to_string).collect();
    assert_eq!(
        invalid,
        [
            r#"Secret "twin": the access key is already used by Secret "app1""#,
            r#"Secret "gone": does not exist"#,
            r#"Secret "root": the access key is the root user's"#,
            r#"Secret "short": the secret key must be 8 to 40 characters long"#,
        ]
    );
    for line in &invalid {
        assert!(
            !line.contains("-secret") && !line.contains("coffer-root"),
            "no key value in {line:?}"
        );
    }
}

#[test]
fn the_users_secret_holds_the_contract_json_and_is_owned() {
    let (tenant, _) = fixtures();
    let mut readonly = user_secret("app2", "app2-secret");
    readonly
        .data
        .as_mut()
        .unwrap()
        .insert(POLICY.into(), ByteString(b"readonly".to_vec()));
    let found = BTreeMap::from([
        ("a".to_string(), user_secret("app1", "app1-secret")),
        ("b".to_string(), readonly),
    ]);
    let users = collect(&refs(&["a", "b"]), |n| found.get(n), None);
    assert!(users.invalid.is_empty(), "{:?}", users.invalid);
    let s = secret(&tenant, &users.users);
    assert_eq!(s.metadata.name.as_deref(), Some("photos-users"));
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Tenant"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&s.data.as_ref().unwrap()[USERS_FILE].0).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"users": [
            {"accessKey": "app1", "secretKey": "app1-secret", "policies": ["readwrite"]},
            {"accessKey": "app2", "secretKey": "app2-secret", "policies": ["readonly"]},
        ]})
    );
    // Always present, even with no user, so the pods' volume never waits.
    let empty = secret(&tenant, &[]);
    let json: serde_json::Value =
        serde_json::from_slice(&empty.data.as_ref().unwrap()[USERS_FILE].0).unwrap();
    assert_eq!(json, serde_json::json!({"users": []}));
}

#[test]
fn debug_output_hides_the_secret_key() {
    let u = read_user(&user_secret("app1", "hush-hush-1")).unwrap();
    let dbg = format!("{u:?}");
    assert!(dbg.contains("app1") && !dbg.contains("hush"), "{dbg}");
}
