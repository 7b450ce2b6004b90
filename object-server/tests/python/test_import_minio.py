"""`object-server import-minio` against the real MinIO peer (single drive): MinIO writes every
kind of object, is stopped, its drive is imported (after a dry run), and the object server
started on the imported directory answers every version as MinIO did. The drive is hashed file
by file before and after: the importer never writes it."""
import base64
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import Server, free_port, make_certs, pattern, peer, server_bin, ssec_args

STATIC_KEY = "minio-static-key:" + base64.b64encode(hashlib.sha256(b"import test key").digest()).decode()
MIB = 1024 * 1024


_STARTED = []


@pytest.fixture(autouse=True)
def _stop_minio():
    """A test that fails while MinIO runs leaves no MinIO behind."""
    yield
    while _STARTED:
        _STARTED.pop().stop()


class Minio:
    """The pinned `minio` on one drive, over TLS (SSE-C needs it), on a free loopback port."""

    def __init__(self, root: pathlib.Path, env, drives=1):
        self.root = root
        self.drive = root / "drive"
        self.drives = [self.drive] if drives == 1 else [root / f"drive{i}" for i in range(1, drives + 1)]
        self.certs = root / "certs"
        make_certs(self.certs)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
        self.env.update(
            {
                "MINIO_ROOT_USER": "minio-admin",
                "MINIO_ROOT_PASSWORD": "minio-secret-key",
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                # Several drives on the machine's root disk: MinIO refuses them otherwise.
                "MINIO_CI_CD": "1",
                "HOME": str(root),
            }
        )
        self.env.update(env)
        self.proc = None
        self.log = root / "minio.log"

    def start(self):
        _STARTED.append(self)
        for d in self.drives:
            d.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            self.endpoint = f"https://127.0.0.1:{self.port}"
            args = [peer("minio"), "server", "--address", f"127.0.0.1:{self.port}",
                    "--console-address", f"127.0.0.1:{free_port()}", "--certs-dir", str(self.certs), *map(str, self.drives)]
            self.proc = subprocess.Popen(args, env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if requests.get(self.endpoint + "/minio/health/cluster", verify=False, timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError("minio did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="minio-admin", aws_secret_access_key="minio-secret-key",
            region_name="us-east-1", verify=False,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )


def tree_hashes(root: pathlib.Path):
    """Every file and directory under `root`: path → sha256 of the content (directories: '')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
    return out


def write_everything(c):
    """Buckets and objects of every kind this import covers; returns the SSE-C keys by object."""
    c.create_bucket(Bucket="plain")
    c.put_object(Bucket="plain", Key="small.txt", Body=b"hello", ContentType="text/plain",
                 Metadata={"Color": "blue", "owner": "ops"}, Tagging="team=ops&env=prod%20eu",
                 CacheControl="max-age=60", ContentDisposition="attachment", ContentLanguage="de")
    c.put_object(Bucket="plain", Key="dir/big.bin", Body=pattern(3 * MIB + 5, 1))
    c.put_object(Bucket="plain", Key="empty", Body=b"")
    c.put_object(Bucket="plain", Key="folder/", Body=b"")
    c.put_object(Bucket="plain", Key="folder/inside", Body=b"x" * 300)
    c.put_bucket_tagging(Bucket="plain", Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
    c.put_bucket_policy(Bucket="plain", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::plain/folder/*"]}]}))
    c.put_bucket_lifecycle_configuration(Bucket="plain", LifecycleConfiguration={"Rules": [{
        "ID": "old-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}]})
    up = c.create_multipart_upload(Bucket="plain", Key="multi", ContentType="application/x-test")
    parts = []
    for n, body in [(1, pattern(5 * MIB, 2)), (2, pattern(5 * MIB, 3)), (3, b"tail")]:
        r = c.upload_part(Bucket="plain", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket="plain", Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})

    # Versions: a null version from before versioning, versions, delete markers in between.
    c.create_bucket(Bucket="ver")
    c.put_object(Bucket="ver", Key="k", Body=b"null version")
    c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        c.put_object(Bucket="ver", Key="k", Body=b"version %d" % i, Metadata={"n": str(i)})
    c.delete_object(Bucket="ver", Key="k")
    c.put_object(Bucket="ver", Key="k", Body=b"after the marker")
    c.put_object(Bucket="ver", Key="gone", Body=b"deleted")
    c.delete_object(Bucket="ver", Key="gone")
    c.put_object(Bucket="ver", Key="tagged", Body=b"t", Tagging="a=1")
    c.put_object(Bucket="ver", Key="tagged", Body=b"t2", Tagging="a=2&b=3")

    # Suspended: a version, then the null version written while suspended is the latest.
    c.create_bucket(Bucket="susp")
    c.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="susp", Key="k", Body=b"enabled")
    c.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    c.put_object(Bucket="susp", Key="k", Body=b"suspended null")

    # SSE-S3 with MinIO's static key: inline, in a part file, multipart; SSE-C.
    c.create_bucket(Bucket="crypt")
    c.put_bucket_encryption(Bucket="crypt", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    c.put_object(Bucket="crypt", Key="small", Body=b"secret" * 100, ServerSideEncryption="AES256", Metadata={"k": "v"})
    c.put_object(Bucket="crypt", Key="big", Body=pattern(2 * MIB + 17, 4), ServerSideEncryption="AES256")
    c.put_object(Bucket="crypt", Key="empty", Body=b"", ServerSideEncryption="AES256")
    up = c.create_multipart_upload(Bucket="crypt", Key="multi", ServerSideEncryption="AES256")
    parts = []
    for n, body in [(1, pattern(5 * MIB, 5)), (2, pattern(1000, 6))]:
        r = c.upload_part(Bucket="crypt", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket="crypt", Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    customer = os.urandom(32)
    c.put_object(Bucket="crypt", Key="customer", Body=b"only the owner", **ssec_args(customer))

    # Object lock: retention and legal hold on versions.
    c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 3}}})
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    c.put_object(Bucket="locked", Key="held", Body=b"keep me", ObjectLockMode="GOVERNANCE",
                 ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")
    c.put_object(Bucket="locked", Key="held", Body=b"newer")


def bucket_settings(c, buckets):
    """Each bucket's versioning, object lock, policy, lifecycle, default encryption and tags as
    a server answers them (None where it has none)."""
    def ask(f, pick, **kw):
        try:
            return pick(f(**kw))
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"]
    out = {}
    for b in buckets:
        out[b] = {
            "versioning": ask(c.get_bucket_versioning, lambda r: r.get("Status"), Bucket=b),
            "lock": ask(c.get_object_lock_configuration, lambda r: r["ObjectLockConfiguration"], Bucket=b),
            "policy": ask(c.get_bucket_policy, lambda r: json.loads(r["Policy"])["Statement"][0]["Resource"], Bucket=b),
            "lifecycle": ask(c.get_bucket_lifecycle_configuration,
                             lambda r: [(x["ID"], x["Status"], x["Expiration"]) for x in r["Rules"]], Bucket=b),
            "encryption": ask(c.get_bucket_encryption, lambda r: r["ServerSideEncryptionConfiguration"]["Rules"][0]
                              ["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], Bucket=b),
            "tags": ask(c.get_bucket_tagging, lambda r: r["TagSet"], Bucket=b),
        }
    return out


def snapshot(c, buckets, skip=()):
    """What a server answers for every version of every key: per key, the versions newest first
    (delete markers as such) with bytes' hash, ETag, headers, user metadata, tags, lock."""
    out = {}
    for b in buckets:
        lock = b == "locked"
        paginator = c.get_paginator("list_object_versions")
        entries = []
        for page in paginator.paginate(Bucket=b):
            for v in page.get("Versions", []):
                entries.append((v["Key"], v["LastModified"], "v", v))
            for d in page.get("DeleteMarkers", []):
                entries.append((d["Key"], d["LastModified"], "d", d))
        keys = {}
        for key, _, kind, v in entries:
            if (b, key) in skip:
                continue
            keys.setdefault(key, []).append((kind, v))
        for key, vs in keys.items():
            vs.sort(key=lambda kv: kv[1]["LastModified"], reverse=True)
            rows = []
            for kind, v in vs:
                if kind == "d":
                    rows.append({"delete_marker": True, "latest": v["IsLatest"], "null": v["VersionId"] == "null"})
                    continue
                vid = v["VersionId"]
                args = {} if vid == "null" and b == "plain" else {"VersionId": vid}
                r = c.get_object(Bucket=b, Key=key, **args)
                body = r["Body"].read()
                tags = c.get_object_tagging(Bucket=b, Key=key, **args)["TagSet"]
                row = {
                    "latest": v["IsLatest"],
                    "null": vid == "null",
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "size": len(body),
                    "etag": r["ETag"],
                    "content_type": r.get("ContentType"),
                    "cache_control": r.get("CacheControl"),
                    "disposition": r.get("ContentDisposition"),
                    "language": r.get("ContentLanguage"),
                    "metadata": r["Metadata"],
                    "tags": sorted((t["Key"], t["Value"]) for t in tags),
                    "last_modified_s": int(r["LastModified"].timestamp()),
                    "sse": r.get("ServerSideEncryption"),
                }
                if lock:
                    row["lock_mode"] = r.get("ObjectLockMode")
                    row["retain_until"] = str(r.get("ObjectLockRetainUntilDate"))
                    row["legal_hold"] = r.get("ObjectLockLegalHoldStatus")
                rows.append(row)
            out[f"{b}/{key}"] = rows
    return out


def run_import(*args, env):
    cmd = [server_bin(), "import-minio", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def import_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env.update(extra)
    return env


BUCKETS = ["crypt", "locked", "plain", "susp", "ver"]


def test_single_drive_import_serves_what_minio_served(tmp_path):
    minio = Minio(tmp_path / "minio", {"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    c = minio.client()
    write_everything(c)
    want = snapshot(c, BUCKETS, skip={("crypt", "customer")})
    want_settings = bucket_settings(c, BUCKETS)
    minio.stop()
    assert want_settings["plain"]["tags"] == [{"Key": "owner", "Value": "ops"}]
    assert want_settings["locked"]["lock"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert want_settings["crypt"]["encryption"] == "AES256"
    # The snapshot holds what is compared: versions in order, markers, tags, metadata, lock.
    assert [("d" if v.get("delete_marker") else "v", v["null"]) for v in want["ver/k"]] == [
        ("v", False), ("d", False), ("v", False), ("v", False), ("v", False), ("v", True)]
    assert want["ver/k"][2]["metadata"] == {"n": "2"}
    assert want["susp/k"][0]["null"] and want["susp/k"][0]["latest"]
    assert want["plain/small.txt"][0]["tags"] == [("env", "prod eu"), ("team", "ops")]
    assert want["plain/small.txt"][0]["metadata"] == {"color": "blue", "owner": "ops"}
    assert want["plain/multi"][0]["etag"].endswith('-3"')
    assert want["crypt/multi"][0]["sse"] == "AES256" and want["crypt/multi"][0]["etag"].endswith('-2"')
    held = want["locked/held"][1]
    assert (held["lock_mode"], held["legal_hold"]) == ("GOVERNANCE", "ON"), held
    drive = minio.drive
    before = tree_hashes(drive)

    env = import_env({"MINIO_KMS_SECRET_KEY": STATIC_KEY})
    data = tmp_path / "coffer"
    # A dry run reports and writes nothing.
    dry = run_import("--dry-run", "--json", "-", "--drives", drive, data, env=env)
    assert dry.returncode == 2, dry.stderr  # the SSE-C object is reported
    dry_report = json.loads(dry.stdout)
    assert not data.exists()

    t0 = time.monotonic()
    r = run_import("--json", tmp_path / "report.json", "--drives", drive, data, env=env)
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    print(r.stdout, f"(whole command {took:.2f} s)")
    assert tree_hashes(drive) == before, "the source drive changed"

    skipped = [(s["bucket"], s.get("object"), s["reason"]) for s in report["skipped"]]
    assert [(b, o) for b, o, _ in skipped] == [("crypt", "customer")], skipped
    assert "SSE-C" in skipped[0][2]
    assert report["encrypted"] == {"SSE-C": 1, "SSE-S3": 4}, report["encrypted"]
    want_versions = sum(1 for rows in want.values() for v in rows if not v.get("delete_marker"))
    want_markers = sum(1 for rows in want.values() for v in rows if v.get("delete_marker"))
    assert (report["versions"], report["delete_markers"]) == (want_versions, want_markers)
    for k in ["versions", "delete_markers", "bytes", "objects", "encrypted", "buckets"]:
        assert dry_report[k] == report[k], k
    assert report["bucket_settings"]["ver"] == ["versioning Enabled"]
    assert report["bucket_settings"]["plain"] == ["policy", "lifecycle", "tagging"]
    assert report["bucket_settings"]["crypt"] == ["default encryption"]
    assert report["bucket_settings"]["susp"] == ["versioning Suspended"]
    assert report["bucket_settings"]["locked"][0].startswith("versioning Enabled")

    s = Server(data, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    got = snapshot(s.client(), BUCKETS)
    got_settings = bucket_settings(s.client(), BUCKETS)
    for b in BUCKETS:
        assert got_settings[b] == want_settings[b], f"{b}:\nMinIO:  {want_settings[b]}\nCoffer: {got_settings[b]}"
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == want[k], f"{k}:\nMinIO:  {want[k]}\nCoffer: {got[k]}"
    # Imported objects are stored encrypted by Coffer where MinIO had them encrypted.
    crypt = pathlib.Path(data) / "crypt"
    assert all(b"secret" * 4 not in f.read_bytes() for f in crypt.rglob("obj"))
    s.stop()


def test_damaged_objects_are_reported_and_the_rest_imported(tmp_path):
    minio = Minio(tmp_path / "minio", {"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    c = minio.client()
    c.create_bucket(Bucket="bkt")
    for k in ["a", "truncated", "z"]:
        c.put_object(Bucket="bkt", Key=k, Body=b"body of " + k.encode())
    c.put_object(Bucket="bkt", Key="rotten", Body=pattern(2 * MIB, 7))
    c.put_object(Bucket="bkt", Key="sealed", Body=pattern(2 * MIB, 8), ServerSideEncryption="AES256")
    minio.stop()
    drive = minio.drive
    meta = drive / "bkt" / "truncated" / "xl.meta"
    meta.write_bytes(meta.read_bytes()[:-40])
    part = next((drive / "bkt" / "rotten").glob("*/part.1"))
    raw = bytearray(part.read_bytes())
    raw[1000] ^= 1
    part.write_bytes(bytes(raw))
    before = tree_hashes(drive)

    # The wrong static key: the SSE-S3 object's data key does not decrypt.
    wrong = "minio-static-key:" + base64.b64encode(b"w" * 32).decode()
    r = run_import("--json", "-", "--drives", drive, tmp_path / "coffer", env=import_env({"MINIO_KMS_SECRET_KEY": wrong}))
    assert r.returncode == 2, r.stderr
    report = json.loads(r.stdout)
    reasons = {s["object"]: s["reason"] for s in report["skipped"]}
    assert sorted(reasons) == ["rotten", "sealed", "truncated"], reasons
    assert "truncated" in reasons["truncated"] or "malformed" in reasons["truncated"], reasons
    assert "bitrot" in reasons["rotten"], reasons
    assert "decrypt" in reasons["sealed"], reasons
    assert report["versions"] == 2 and report["objects"] == 2
    assert tree_hashes(drive) == before

    s = Server(tmp_path / "coffer").start()
    cl = s.client()
    assert cl.get_object(Bucket="bkt", Key="a")["Body"].read() == b"body of a"
    assert cl.get_object(Bucket="bkt", Key="z")["Body"].read() == b"body of z"
    keys = [o["Key"] for o in cl.list_objects_v2(Bucket="bkt").get("Contents", [])]
    assert keys == ["a", "z"]
    s.stop()


def openbao(d: pathlib.Path):
    """OpenBao (`vault`) in dev mode on a free port, set up as the MinIO KMS guide does: a K/V
    engine at `kv/`, AppRole, the `kv/minio/*` policy and role; returns its address, the role
    and secret ids, and the process."""
    d.mkdir(parents=True, exist_ok=True)
    log = d / "vault.log"
    for _ in range(5):
        port = free_port()
        addr = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([peer("vault"), "server", "-dev", "-dev-root-token-id=root",
                                 f"-dev-listen-address=127.0.0.1:{port}"],
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(d)})
        env = {**os.environ, "VAULT_ADDR": addr, "VAULT_TOKEN": "root", "HOME": str(d)}
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if subprocess.run([peer("vault"), "status"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            break
    else:
        pytest.fail("OpenBao did not start:\n" + log.read_text(errors="replace"))

    def vault(*args):
        r = subprocess.run([peer("vault"), *args], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"vault {args}: {r.stdout}{r.stderr}"
        return r.stdout

    vault("secrets", "enable", "kv")
    vault("auth", "enable", "approle")
    (d / "minio-kes-policy.hcl").write_text('path "kv/minio/*" {\n  capabilities = [ "create", "read", "delete" ]\n}\n')
    vault("policy", "write", "minio-key-policy", str(d / "minio-kes-policy.hcl"))
    vault("write", "auth/approle/role/kes-role", "token_num_uses=0", "secret_id_num_uses=0", "period=5m")
    vault("write", "auth/approle/role/kes-role", "policies=minio-key-policy")
    role_id = vault("read", "-field=role_id", "auth/approle/role/kes-role/role-id").strip()
    secret_id = vault("write", "-f", "-field=secret_id", "auth/approle/role/kes-role/secret-id").strip()
    return addr, role_id, secret_id, proc, vault


@pytest.fixture
def minio_kes(tmp_path):
    """The MinIO KMS guide's key service: MinIO's own `kes` with OpenBao's K/V as its keystore
    (AppRole, prefix `minio`); the KES client settings both MinIO and Coffer use (one identity,
    allowed the `minio-*` keys). Yields the MINIO_KMS_KES_* settings and a `vault` CLI runner."""
    from test_kes import pki

    d = tmp_path / "kes"
    identity = pki(d)
    vault_addr, role_id, secret_id, bao, vault = openbao(tmp_path / "openbao")
    for _ in range(5):
        port = free_port()
        (d / "config.yml").write_text(
            f"""address: 127.0.0.1:{port}
admin:
  identity: disabled
tls:
  key: {d / 'kes.key'}
  cert: {d / 'kes.crt'}
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/describe/minio-*
    - /v1/key/list/*
    - /v1/status
    identities:
    - {identity}
keystore:
  vault:
    endpoint: {vault_addr}
    engine: kv
    version: v1
    prefix: minio
    approle:
      engine: approle
      id: "{role_id}"
      secret: "{secret_id}"
"""
        )
        log = d / "kes.log"
        proc = subprocess.Popen([peer("minio-kes"), "server", "--config", str(d / "config.yml")],
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"Server is up" not in log.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None and b"Server is up" in log.read_bytes():
            break
        proc.kill()
        proc.wait()
    else:
        bao.terminate()
        pytest.fail("minio-kes did not start:\n" + log.read_text(errors="replace"))
    env = {
        "MINIO_KMS_KES_ENDPOINT": f"https://127.0.0.1:{port}",
        "MINIO_KMS_KES_CAPATH": str(d / "ca.crt"),
        "MINIO_KMS_KES_CERT_FILE": str(d / "client.crt"),
        "MINIO_KMS_KES_KEY_FILE": str(d / "client.key"),
        "MINIO_KMS_KES_KEY_NAME": "minio-key-1",
    }
    yield env, vault
    proc.terminate()
    proc.wait(60)
    bao.terminate()
    bao.wait(60)


def test_sse_kms_through_minios_kes(tmp_path, minio_kes):
    """The MinIO KMS guide's deployment: MinIO with MinIO's KES and auto-encryption; SSE-S3 and
    SSE-KMS under two keys (one with a client context), multipart too. Imported through the same
    KES (Coffer's KES client unseals MinIO's keys), served as MinIO served them."""
    kes, vault = minio_kes
    minio = Minio(tmp_path / "minio", {**kes, "MINIO_KMS_AUTO_ENCRYPTION": "on"}).start()
    second = "minio-key-2"
    r = requests.post(f"{kes['MINIO_KMS_KES_ENDPOINT']}/v1/key/create/{second}", verify=kes["MINIO_KMS_KES_CAPATH"],
                      cert=(kes["MINIO_KMS_KES_CERT_FILE"], kes["MINIO_KMS_KES_KEY_FILE"]), timeout=10)
    assert r.status_code == 200, r.text
    c = minio.client()
    c.create_bucket(Bucket="kms")
    c.put_object(Bucket="kms", Key="auto", Body=b"auto-encrypted")
    c.put_object(Bucket="kms", Key="s3", Body=pattern(1500 * 1024, 9), ServerSideEncryption="AES256")
    c.put_object(Bucket="kms", Key="default-key", Body=b"kms default", ServerSideEncryption="aws:kms")
    ctx = base64.b64encode(json.dumps({"project": "import <&> test"}).encode()).decode()
    c.put_object(Bucket="kms", Key="second-key", Body=pattern(3 * MIB, 10), ServerSideEncryption="aws:kms",
                 SSEKMSKeyId=second, SSEKMSEncryptionContext=ctx, Metadata={"m": "1"})
    up = c.create_multipart_upload(Bucket="kms", Key="multi", ServerSideEncryption="aws:kms", SSEKMSKeyId=second)
    parts = []
    for n, body in [(1, pattern(5 * MIB, 11)), (2, pattern(3, 12))]:
        r = c.upload_part(Bucket="kms", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket="kms", Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    want = snapshot(c, ["kms"])
    heads = {k: c.head_object(Bucket="kms", Key=k) for k in ["auto", "s3", "default-key", "second-key", "multi"]}
    make_users(minio, tmp_path)
    minio.stop()
    assert heads["second-key"]["SSEKMSKeyId"].endswith(second), heads["second-key"]
    # The master keys live in OpenBao's K/V under the guide's prefix.
    assert {"minio-key-1", second} <= set(json.loads(vault("kv", "list", "-format=json", "kv/minio")))
    drive = minio.drive
    identity = drive / ".minio.sys/config/iam/users/alice/identity.json/xl.meta"
    assert b"alice-secret-key" not in identity.read_bytes() and b'"keyid":"minio-key-1"' in identity.read_bytes()
    before = tree_hashes(drive)

    data = tmp_path / "coffer"
    t0 = time.monotonic()
    r = run_import("--json", "-", "--drives", drive, data, env=import_env(kes))
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr  # the group and the service account are reported
    report = json.loads(r.stdout)
    print(f"import through KES + OpenBao: {took:.2f} s")
    assert report["versions"] == 7, report
    assert [s for s in report["skipped"] if "iam" not in s] == [], report["skipped"]
    assert report["encrypted"] == {"SSE-KMS": 6, "SSE-S3": 1}, report["encrypted"]
    check_iam_report(report)
    assert want["kms/second-key"][0]["sse"] == "aws:kms" and want["kms/second-key"][0]["metadata"] == {"m": "1"}
    assert tree_hashes(drive) == before

    s = Server(data, env=kes).start()
    cl = s.client()
    got = snapshot(cl, ["kms"])
    for k in want:
        assert got[k] == want[k], f"{k}:\nMinIO:  {want[k]}\nCoffer: {got[k]}"
    for k, h in heads.items():
        mine = cl.head_object(Bucket="kms", Key=k)
        assert mine.get("SSEKMSKeyId") == h.get("SSEKMSKeyId"), (k, mine, h)
    check_users(s.endpoint)
    s.stop()


def test_four_drive_erasure_set_with_a_lost_drive_and_a_rotten_shard(tmp_path):
    """MinIO on four drives (EC 2+2): one drive deleted and one shard block corrupted on another
    before the import; every version still comes back, rebuilt from parity."""
    minio = Minio(tmp_path / "minio", {"MINIO_KMS_SECRET_KEY": STATIC_KEY}, drives=4).start()
    c = minio.client()
    c.create_bucket(Bucket="set")
    c.put_bucket_versioning(Bucket="set", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="set", Key="small", Body=b"inline in every xl.meta", Metadata={"a": "b"}, Tagging="x=y")
    c.put_object(Bucket="set", Key="big", Body=pattern(3 * MIB + 333, 20))
    c.put_object(Bucket="set", Key="big", Body=pattern(2 * MIB, 21), ServerSideEncryption="AES256")
    c.delete_object(Bucket="set", Key="big")
    c.put_object(Bucket="set", Key="sealed-small", Body=b"tiny secret", ServerSideEncryption="AES256")
    up = c.create_multipart_upload(Bucket="set", Key="multi", ServerSideEncryption="AES256")
    parts = []
    for n, body in [(1, pattern(5 * MIB, 22)), (2, pattern(77, 23))]:
        r = c.upload_part(Bucket="set", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket="set", Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    want = snapshot(c, ["set"])
    minio.stop()
    d1, d2, d3, d4 = minio.drives
    # The layout is what this test is about: EC 2+2, shards spread over the four drives.
    assert all((d / "set" / "big" / "xl.meta").is_file() for d in minio.drives)
    shutil.rmtree(d4)
    part = sorted((d1 / "set" / "multi").glob("*/part.1"))[0]
    raw = bytearray(part.read_bytes())
    raw[32 + 1000] ^= 0xFF
    part.write_bytes(bytes(raw))
    before = {d: tree_hashes(d) for d in (d1, d2, d3)}

    data = tmp_path / "coffer"
    t0 = time.monotonic()
    r = run_import("--json", "-", "--drives", d3, d1, d2, data, env=import_env({"MINIO_KMS_SECRET_KEY": STATIC_KEY}))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    print(f"4-drive import of {report['bytes']} bytes, {report['versions']} versions in {took:.2f} s")
    assert report["skipped"] == [] and report["versions"] == 5 and report["delete_markers"] == 1, report
    assert report["healed_shards"] > 0, report
    assert {d: tree_hashes(d) for d in (d1, d2, d3)} == before

    s = Server(data, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    got = snapshot(s.client(), ["set"])
    for k in want:
        assert got[k] == want[k], f"{k}:\nMinIO:  {want[k]}\nCoffer: {got[k]}"
    assert sorted(got) == sorted(want)
    s.stop()

    # Two drives gone: blocks of the big objects cannot be rebuilt, and say so.
    r = run_import("--json", "-", "--drives", d1, tmp_path / "coffer2", env=import_env({"MINIO_KMS_SECRET_KEY": STATIC_KEY}))
    assert r.returncode == 2
    reasons = {x["object"]: x["reason"] for x in json.loads(r.stdout)["skipped"] if x.get("object")}
    assert "needed" in reasons["multi"], reasons


def mc(minio, *args):
    """`mc` against `minio` (its self-signed certificate accepted)."""
    cfg = minio.root / "mc"
    base = [peer("mc"), "--config-dir", str(cfg), "--no-color", "--insecure"]
    if not (cfg / "config.json").exists():
        r = subprocess.run([*base, "alias", "set", "m", minio.endpoint, "minio-admin", "minio-secret-key"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"mc {args}: {r.stdout}{r.stderr}"
    return r.stdout


def make_users(minio, tmp_path):
    """Users, a custom policy, a group with a policy, a disabled user and a service account."""
    c = minio.client()
    c.create_bucket(Bucket="bkt1")
    c.put_object(Bucket="bkt1", Key="obj", Body=b"readable by alice and bob")
    c.create_bucket(Bucket="bkt2")
    c.put_object(Bucket="bkt2", Key="obj", Body=b"not for alice")
    pol = tmp_path / "getb1.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::bkt1/*"]}]}))
    mc(minio, "admin", "policy", "create", "m", "getb1", str(pol))
    mc(minio, "admin", "user", "add", "m", "alice", "alice-secret-key")
    mc(minio, "admin", "policy", "attach", "m", "getb1", "--user", "alice")
    mc(minio, "admin", "user", "add", "m", "bob", "bob-secret-key1")
    mc(minio, "admin", "group", "add", "m", "team", "bob")
    mc(minio, "admin", "policy", "attach", "m", "readonly", "--group", "team")
    mc(minio, "admin", "user", "add", "m", "carol", "carol-secret-key")
    mc(minio, "admin", "policy", "attach", "m", "readwrite", "--user", "carol")
    mc(minio, "admin", "user", "disable", "m", "carol")
    mc(minio, "admin", "user", "svcacct", "add", "m", "alice", "--access-key", "alicesvc1", "--secret-key", "alice-svc-secret")


def check_users(endpoint, verify=False):
    """After the import: each user signs in with its MinIO keys and its MinIO policies apply."""
    def client(ak, sk):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                            region_name="us-east-1", verify=verify,
                            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def refused(call, status, code):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        err = e.value.response
        assert (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]) == (status, code), err

    alice = client("alice", "alice-secret-key")
    assert alice.get_object(Bucket="bkt1", Key="obj")["Body"].read() == b"readable by alice and bob"
    alice.put_object(Bucket="bkt1", Key="from-alice", Body=b"x")
    refused(lambda: alice.get_object(Bucket="bkt2", Key="obj"), 403, "AccessDenied")
    refused(lambda: client("alice", "wrong-secret-key").get_object(Bucket="bkt1", Key="obj"), 403, "SignatureDoesNotMatch")
    bob = client("bob", "bob-secret-key1")  # readonly through group team
    assert bob.get_object(Bucket="bkt2", Key="obj")["Body"].read() == b"not for alice"
    refused(lambda: bob.put_object(Bucket="bkt2", Key="from-bob", Body=b"x"), 403, "AccessDenied")
    refused(lambda: client("carol", "carol-secret-key").get_object(Bucket="bkt1", Key="obj"), 403, "InvalidAccessKeyId")
    refused(lambda: client("alicesvc1", "alice-svc-secret").get_object(Bucket="bkt1", Key="obj"), 403, "InvalidAccessKeyId")


def check_iam_report(report):
    assert report["users"] == ["alice", "bob", "carol"], report
    assert report["policies"] == ["getb1"], report
    iam = {s["iam"]: s["reason"] for s in report["skipped"] if "iam" in s}
    assert sorted(iam) == ["group team", "service account alicesvc1"], iam
    assert "attached to its members (bob)" in iam["group team"]


def test_users_and_policies_sealed_by_a_static_key(tmp_path):
    """MinIO with `MINIO_KMS_SECRET_KEY` seals its IAM files with it; after the import the users
    sign in with their old keys and their policies (own and group's) apply."""
    minio = Minio(tmp_path / "minio", {"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    make_users(minio, tmp_path)
    minio.stop()
    drive = minio.drive
    identity = drive / ".minio.sys/config/iam/users/alice/identity.json/xl.meta"
    assert b"alice-secret-key" not in identity.read_bytes() and b'"kmskey"' in identity.read_bytes()
    before = tree_hashes(drive)

    env = import_env({"MINIO_KMS_SECRET_KEY": STATIC_KEY})
    data = tmp_path / "coffer"
    dry = run_import("--dry-run", "--json", "-", "--drives", drive, data, env=env)
    assert dry.returncode == 2, dry.stdout + dry.stderr  # the group and the service account are reported
    check_iam_report(json.loads(dry.stdout))
    assert not data.exists()
    r = run_import("--json", "-", "--drives", drive, data, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    report = json.loads(r.stdout)
    check_iam_report(report)
    assert tree_hashes(drive) == before, "the source drive changed"
    # The secret keys are sealed by Coffer's KMS, never stored plain.
    assert not [f for f in data.rglob("*") if f.is_file() and b"alice-secret-key" in f.read_bytes()]

    # The wrong static key: nothing of IAM opens, each file is reported.
    wrong = "minio-static-key:" + base64.b64encode(b"w" * 32).decode()
    bad = run_import("--dry-run", "--json", "-", "--drives", drive, tmp_path / "other",
                     env=import_env({"MINIO_KMS_SECRET_KEY": wrong}))
    bad_report = json.loads(bad.stdout)
    assert bad_report["users"] == [] and bad_report["policies"] == [], bad_report
    reasons = {s["iam"]: s["reason"] for s in bad_report["skipped"] if "iam" in s}
    assert "KMS did not decrypt" in reasons["user alice"], reasons

    s = Server(data, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    check_users(s.endpoint)
    s.stop()
