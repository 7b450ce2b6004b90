"""Real clients: the AWS CLI (`aws s3` incl. multipart and sync), MinIO's `mc`, and `warp mixed`."""
import json
import re
import subprocess

from conftest import Server, assert_no_plaintext, pattern, peer


def test_aws_cli_s3_commands(server, tmp_path):
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    big = pattern(9 * 1024 * 1024, 20)  # over the CLI's 8 MiB threshold: a multipart upload
    (src / "big.bin").write_bytes(big)
    (src / "small.txt").write_bytes(b"small file")
    (src / "nested" / "deep.txt").write_bytes(b"deep file")
    server.aws("s3", "mb", "s3://cli")
    server.aws("s3", "cp", "--no-progress", str(src / "big.bin"), "s3://cli/big.bin")
    out = tmp_path / "big.out"
    server.aws("s3", "cp", "--no-progress", "s3://cli/big.bin", str(out))
    assert out.read_bytes() == big
    head = json.loads(server.aws("s3api", "head-object", "--bucket", "cli", "--key", "big.bin").stdout)
    assert head["ServerSideEncryption"] == "AES256" and head["ETag"].endswith('-2"')
    server.aws("s3", "sync", "--no-progress", str(src), "s3://cli/synced/")
    ls = server.aws("s3", "ls", "--recursive", "s3://cli/synced/").stdout
    assert "synced/nested/deep.txt" in ls and "synced/small.txt" in ls and "synced/big.bin" in ls
    top = server.aws("s3", "ls", "s3://cli/").stdout
    assert "PRE synced/" in top and "big.bin" in top
    dst = tmp_path / "down"
    server.aws("s3", "sync", "--no-progress", "s3://cli/synced/", str(dst))
    assert (dst / "nested" / "deep.txt").read_bytes() == b"deep file"
    server.aws("s3", "rm", "--recursive", "s3://cli/synced/")
    assert "synced" not in server.aws("s3", "ls", "s3://cli/").stdout
    server.aws("s3", "rm", "s3://cli/big.bin")
    server.aws("s3", "rb", "s3://cli")
    assert_no_plaintext(server.data_dir, big[:300_000])


def mc(server, cfg, *args, check=True):
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"mc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}\nserver:\n{server.output()[-3000:]}")
    return r.stdout


def test_mc_as_in_the_kms_guide(tmp_path):
    # The guide's legacy names: MINIO_ACCESS_KEY/MINIO_SECRET_KEY, MINIO_KMS_MASTER_KEY, auto-encryption.
    env = {
        "MINIO_ACCESS_KEY": "minio",
        "MINIO_SECRET_KEY": "minio123",
        "MINIO_KMS_MASTER_KEY": "minio-demo-key:6368616e676520746869732070617373776f726420746f206120736563726574",
        "MINIO_KMS_AUTO_ENCRYPTION": "on",
    }
    s = Server(tmp_path / "data", env=env, creds=False).start()
    cfg = tmp_path / "mc"
    try:
        mc(s, cfg, "alias", "set", "myminio", s.endpoint, "minio", "minio123")
        mc(s, cfg, "mb", "myminio/crypt")
        f = tmp_path / "test.file"
        f.write_bytes(b"hello")
        mc(s, cfg, "cp", str(f), "myminio/crypt/")
        stat = mc(s, cfg, "stat", "myminio/crypt/test.file")
        assert re.search(r"Encrypt\w*\s*:\s*SSE-S3", stat), stat
        meta = json.loads(mc(s, cfg, "stat", "--json", "myminio/crypt/test.file"))["metadata"]
        assert meta["X-Amz-Server-Side-Encryption"] == "AES256"
        assert mc(s, cfg, "cat", "myminio/crypt/test.file") == "hello"
        assert "test.file" in mc(s, cfg, "ls", "myminio/crypt/")
        mc(s, cfg, "rm", "myminio/crypt/test.file")
        assert "test.file" not in mc(s, cfg, "ls", "myminio/crypt/")
    finally:
        s.stop()


def test_warp_mixed_has_no_errors(server, tmp_path):
    r = subprocess.run(
        [
            peer("warp"), "mixed", "--host", server.endpoint.split("://")[1],
            "--access-key", server.access, "--secret-key", server.secret,
            "--duration", "8s", "--objects", "60", "--obj.size", "256KiB", "--concurrent", "8",
            "--bucket", "warp-mixed", "--noclear", "--benchdata", str(tmp_path / "warp"),
        ],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + server.output()[-3000:]
    assert "Report: Total" in out, out
    assert not re.search(r"[Ee]rrors?:\s*[1-9]", out), out
    assert "ERROR" not in out, out
