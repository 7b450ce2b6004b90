//! Smoke tests of `minio` with the clients our users drive it with: `mc`, the AWS CLI and `warp`.

use coffer_e2e::minio::Minio;
use coffer_e2e::peer_bin;
use std::process::{Command, Output};

fn check(what: &str, out: Output, minio: &Minio) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        minio.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mc_puts_and_stats_an_object() {
    let minio = Minio::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, b"hello coffer").unwrap();
    check(
        "mc mb",
        minio
            .mc()
            .args(["mb", "local/bucket-one"])
            .output()
            .unwrap(),
        &minio,
    );
    check(
        "mc cp",
        minio
            .mc()
            .arg("cp")
            .arg(&file)
            .arg("local/bucket-one/hello.txt")
            .output()
            .unwrap(),
        &minio,
    );
    let stat = check(
        "mc stat",
        minio
            .mc()
            .args(["stat", "--json", "local/bucket-one/hello.txt"])
            .output()
            .unwrap(),
        &minio,
    );
    let stat: serde_json::Value = serde_json::from_str(&stat).expect("mc stat --json");
    assert_eq!(stat["size"], 12, "{stat}");
    let cat = check(
        "mc cat",
        minio
            .mc()
            .args(["cat", "local/bucket-one/hello.txt"])
            .output()
            .unwrap(),
        &minio,
    );
    assert_eq!(cat, "hello coffer");
}

fn aws(minio: &Minio) -> Command {
    let mut command = Command::new(peer_bin("aws"));
    command
        .env("AWS_ACCESS_KEY_ID", &minio.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &minio.secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["--endpoint-url", &minio.endpoint]);
    command
}

#[test]
fn aws_cli_and_warp_against_minio() {
    let minio = Minio::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, vec![7u8; 9 * 1024 * 1024]).unwrap();
    check(
        "aws s3 mb",
        aws(&minio)
            .args(["s3", "mb", "s3://aws-bucket"])
            .output()
            .unwrap(),
        &minio,
    );
    // 9 MiB is above the CLI's 8 MiB threshold: a multipart upload.
    check(
        "aws s3 cp",
        aws(&minio)
            .arg("s3")
            .arg("cp")
            .arg(&file)
            .arg("s3://aws-bucket/blob")
            .output()
            .unwrap(),
        &minio,
    );
    let head = check(
        "aws s3api head-object",
        aws(&minio)
            .args([
                "s3api",
                "head-object",
                "--bucket",
                "aws-bucket",
                "--key",
                "blob",
            ])
            .output()
            .unwrap(),
        &minio,
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], 9 * 1024 * 1024);
    assert!(
        head["ETag"].as_str().unwrap().contains("-2"),
        "multipart ETag: {head}"
    );

    let host = minio.endpoint.trim_start_matches("http://");
    let out = Command::new(peer_bin("warp"))
        .args([
            "put",
            "--host",
            host,
            "--access-key",
            &minio.access_key,
            "--secret-key",
            &minio.secret_key,
        ])
        .args([
            "--duration",
            "10s",
            "--obj.size",
            "64KiB",
            "--concurrent",
            "4",
            "--bucket",
            "warp-smoke",
            "--noclear",
        ])
        .arg("--benchdata")
        .arg(dir.path().join("warp"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = check("warp put", out, &minio);
    assert!(
        text.contains("Report: PUT") && text.contains("obj/s"),
        "warp printed no report: {text}"
    );
    assert!(
        !text.to_lowercase().contains("error"),
        "warp saw errors: {text}"
    );
}
