"""Every SSE mode through a KES server: MinIO's `kes` (started here) or ours (started in-process
by tests/python.rs, which passes its endpoint and files in COFFER_KES_*).

COFFER_TEST_KES selects which: `minio` or `ours`.
"""
import contextlib
import datetime
import hashlib
import os
import pathlib
import subprocess
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests

from conftest import ADDRESS_IN_USE, Server, assert_no_plaintext, free_port, listens_on, make_certs, pattern, peer, ssec_args


def pki(d: pathlib.Path):
    """A CA, a server leaf for 127.0.0.1 and a self-signed client certificate; returns the
    client's KES identity."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def builder(subject, issuer, pub):
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kes-test-ca")])
    ca = builder(ca_name, ca_name, ca_key.public_key()).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kes")]), ca_name, srv_key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cl_key = ec.generate_private_key(ec.SECP256R1())
    cl_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "object-server")])
    cl = builder(cl_name, cl_name, cl_key.public_key()).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False).sign(cl_key, hashes.SHA256())
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "kes.crt").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (d / "kes.key").write_bytes(pem_key(srv_key))
    (d / "client.crt").write_bytes(cl.public_bytes(serialization.Encoding.PEM))
    (d / "client.key").write_bytes(pem_key(cl_key))
    spki = cl.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@pytest.fixture(scope="module")
def kes(tmp_path_factory):
    which = os.environ.get("COFFER_TEST_KES")
    if which == "ours":
        env = {k: os.environ[k] for k in ["COFFER_KES_ENDPOINT", "COFFER_KES_CA", "COFFER_KES_CERT", "COFFER_KES_KEY"]}
        yield {
            "MINIO_KMS_KES_ENDPOINT": env["COFFER_KES_ENDPOINT"],
            "MINIO_KMS_KES_CAPATH": env["COFFER_KES_CA"],
            "MINIO_KMS_KES_CERT_FILE": env["COFFER_KES_CERT"],
            "MINIO_KMS_KES_KEY_FILE": env["COFFER_KES_KEY"],
        }
        return
    if which != "minio":
        pytest.fail("set COFFER_TEST_KES=minio or ours (tests/python.rs does)")
    with minio_kes(tmp_path_factory.mktemp("minio-kes")) as env:
        yield env


@contextlib.contextmanager
def minio_kes(d, allow=("create", "generate", "decrypt", "describe")):
    """MinIO's KES on an fs keystore in `d`, allowing the object server's identity `allow` on
    `coffer-*` keys and listing; yields the object server's MINIO_KMS_KES_* settings."""
    identity = pki(d)
    allowed = "".join(f"    - /v1/key/{a}/coffer-*\n" for a in allow)
    # The port is picked before KES binds it: another process may take it in between, and then
    # KES is started again on another one.
    for attempt in range(5):
        port = free_port()
        (d / "config.yml").write_text(
            f"""address: 127.0.0.1:{port}
admin:
  identity: disabled
tls:
  key: {d / 'kes.key'}
  cert: {d / 'kes.crt'}
policy:
  coffer:
    allow:
{allowed}    - /v1/key/list/*
    identities:
    - {identity}
keystore:
  fs:
    path: {d / 'keys'}
"""
        )
        log_path = d / f"kes-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([peer("minio-kes"), "server", "--config", str(d / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (b"Server is up" in log_path.read_bytes() and listens_on(proc.pid, port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            break
        proc.kill()
        proc.wait()
        out = log_path.read_text(errors="replace")
        if not any(s in out for s in ADDRESS_IN_USE):
            pytest.fail("minio-kes did not start:\n" + out)
    else:
        pytest.fail("minio-kes found its port taken 5 times:\n" + out)
    try:
        yield {
            "MINIO_KMS_KES_ENDPOINT": f"https://127.0.0.1:{port}",
            "MINIO_KMS_KES_CA_PATH": str(d / "ca.crt"),
            "MINIO_KMS_KES_CERT_FILE": str(d / "client.crt"),
            "MINIO_KMS_KES_KEY_FILE": str(d / "client.key"),
        }
    finally:
        proc.terminate()
        proc.wait(60)


def start(tmp_path, kes, auto="on", key_name=None, tls=False):
    env = dict(kes)
    env["MINIO_KMS_KES_KEY_NAME"] = key_name or "coffer-" + os.urandom(4).hex()
    env["MINIO_KMS_AUTO_ENCRYPTION"] = auto
    certs = None
    if tls:
        certs = tmp_path / "certs"
        make_certs(certs)
    return Server(tmp_path / "data", env=env, certs_dir=certs).start()


def test_every_mode_through_kes(tmp_path, kes):
    s = start(tmp_path, kes, tls=True)
    try:
        assert requests.get(s.endpoint + "/minio/health/ready", verify=s.ca).status_code == 200
        c = s.client()
        c.create_bucket(Bucket="kes")
        body = pattern(400_000, 50)
        # Auto-encryption with the default key (created at start).
        r = c.put_object(Bucket="kes", Key="auto", Body=body)
        assert r["ServerSideEncryption"] == "AES256"
        assert c.get_object(Bucket="kes", Key="auto")["Body"].read() == body
        # SSE-KMS with another key (the server's identity may create coffer-* keys) and a context.
        default_key = s.env["MINIO_KMS_KES_KEY_NAME"]
        r = c.put_object(Bucket="kes", Key="kms", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=default_key)
        assert r["ServerSideEncryption"] == "aws:kms"
        assert c.get_object(Bucket="kes", Key="kms")["Body"].read() == body
        with pytest.raises(botocore.exceptions.ClientError):
            c.put_object(Bucket="kes", Key="kms2", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId="coffer-does-not-exist")
        # SSE-C never reaches KES.
        key = os.urandom(32)
        c.put_object(Bucket="kes", Key="ssec", Body=body, **ssec_args(key))
        assert c.get_object(Bucket="kes", Key="ssec", **ssec_args(key))["Body"].read() == body
        # Multipart with per-part keys.
        p1, p2 = pattern(5 * 1024 * 1024, 51), pattern(777, 52)
        uid = c.create_multipart_upload(Bucket="kes", Key="mp")["UploadId"]
        e1 = c.upload_part(Bucket="kes", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = c.upload_part(Bucket="kes", Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        c.complete_multipart_upload(Bucket="kes", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        assert c.get_object(Bucket="kes", Key="mp", Range="bytes=5242870-5242890")["Body"].read() == (p1 + p2)[5242870:5242891]
        # Bucket default encryption and copy.
        c.put_bucket_encryption(Bucket="kes", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        c.copy_object(Bucket="kes", Key="copy", CopySource="kes/kms")
        assert c.get_object(Bucket="kes", Key="copy")["Body"].read() == body
        assert_no_plaintext(s.data_dir, body)
        # A restart keeps everything readable.
        assert s.stop() == 0
        s.start()
        c = s.client()
        for k in ["auto", "kms", "copy"]:
            assert c.get_object(Bucket="kes", Key=k)["Body"].read() == body
        assert c.get_object(Bucket="kes", Key="mp")["Body"].read() == p1 + p2
    finally:
        s.stop()


def test_auto_encryption_off_and_explicit_sse_s3(tmp_path, kes):
    s = start(tmp_path, kes, auto="off")
    try:
        c = s.client()
        c.create_bucket(Bucket="kes")
        assert "ServerSideEncryption" not in c.put_object(Bucket="kes", Key="plain", Body=b"plain")
        assert c.put_object(Bucket="kes", Key="enc", Body=b"secret", ServerSideEncryption="AES256")["ServerSideEncryption"] == "AES256"
        assert c.get_object(Bucket="kes", Key="enc")["Body"].read() == b"secret"
    finally:
        s.stop()


def test_key_outside_policy_is_refused(tmp_path, kes):
    # The identity may only use coffer-* keys: a server whose default key is outside is not ready
    # and its SSE requests fail, without leaking anything.
    s = start(tmp_path, kes, key_name="forbidden-key")
    try:
        assert requests.get(s.endpoint + "/minio/health/ready").status_code == 503
        c = s.client()
        c.create_bucket(Bucket="kes")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket="kes", Key="x", Body=b"x")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 500, 503)
    finally:
        s.stop()


def test_mc_and_warp_through_kes(tmp_path, kes):
    import json
    import re

    s = start(tmp_path, kes)
    try:
        cfg = tmp_path / "mc"

        def mc(*args):
            r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr + s.output()[-2000:]
            return r.stdout

        mc("alias", "set", "myminio", s.endpoint, s.access, s.secret)
        mc("mb", "myminio/crypt")
        f = tmp_path / "test.file"
        f.write_bytes(b"hello")
        mc("cp", str(f), "myminio/crypt/")
        assert json.loads(mc("stat", "--json", "myminio/crypt/test.file"))["metadata"]["X-Amz-Server-Side-Encryption"] == "AES256"
        assert mc("cat", "myminio/crypt/test.file") == "hello"
        r = subprocess.run(
            [peer("warp"), "mixed", "--host", s.endpoint.split("://")[1], "--access-key", s.access, "--secret-key", s.secret,
             "--duration", "5s", "--objects", "40", "--obj.size", "128KiB", "--concurrent", "8", "--bucket", "warp-kes",
             "--noclear", "--benchdata", str(tmp_path / "warp")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "Report: Total" in out, out + s.output()[-2000:]
        assert not re.search(r"[Ee]rrors?:\s*[1-9]", out) and "ERROR" not in out, out
    finally:
        s.stop()


def test_versions_are_each_encrypted_through_kes(tmp_path, kes):
    """Every version its own sealed key via KES; SSE-C versions need their own key; the bucket
    default applies to new versions; copying a version re-encrypts it as asked."""
    import json as _json

    s = start(tmp_path, kes, auto="off", tls=True)
    try:
        c = s.client()
        c.create_bucket(Bucket="kesv", ObjectLockEnabledForBucket=True)
        bodies = [pattern(150_000, 900 + i) for i in range(4)]
        key_a, key_b = os.urandom(32), os.urandom(32)
        v_s3 = c.put_object(Bucket="kesv", Key="k", Body=bodies[0], ServerSideEncryption="AES256")["VersionId"]
        v_ca = c.put_object(Bucket="kesv", Key="k", Body=bodies[1], **ssec_args(key_a))["VersionId"]
        v_cb = c.put_object(Bucket="kesv", Key="k", Body=bodies[2], **ssec_args(key_b))["VersionId"]
        # The bucket default applies to a version written without SSE headers.
        c.put_bucket_encryption(Bucket="kesv", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": s.env["MINIO_KMS_KES_KEY_NAME"]}}]})
        r = c.put_object(Bucket="kesv", Key="k", Body=bodies[3])
        v_kms = r["VersionId"]
        assert r["ServerSideEncryption"] == "aws:kms"
        assert c.head_object(Bucket="kesv", Key="k", VersionId=v_s3)["ServerSideEncryption"] == "AES256"
        assert c.get_object(Bucket="kesv", Key="k", VersionId=v_s3)["Body"].read() == bodies[0]
        assert c.get_object(Bucket="kesv", Key="k")["Body"].read() == bodies[3]
        # Each SSE-C version opens with its own key only.
        assert c.get_object(Bucket="kesv", Key="k", VersionId=v_ca, **ssec_args(key_a))["Body"].read() == bodies[1]
        assert c.get_object(Bucket="kesv", Key="k", VersionId=v_cb, **ssec_args(key_b))["Body"].read() == bodies[2]
        for vid, wrong in [(v_ca, key_b), (v_cb, key_a)]:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket="kesv", Key="k", VersionId=vid, **ssec_args(wrong))
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
            with pytest.raises(botocore.exceptions.ClientError):
                c.get_object(Bucket="kesv", Key="k", VersionId=vid)
        # Every version's file holds its own sealed key.
        files = [p for p in (s.data_dir / "kesv").rglob("*") if p.parent.name == "versions" and p.is_file()]
        sealed = set()
        for f in files:
            data = f.read_bytes()
            n = int.from_bytes(data[-12:-8], "little")
            sealed.add(_json.dumps(_json.loads(data[-12 - n : -12])["encryption"]["sealed_key"], sort_keys=True))
        assert len(files) == 4 and len(sealed) == 4
        for b in bodies:
            assert_no_plaintext(s.data_dir, b[:50_000])
        # Copying a version re-encrypts it as asked: an SSE-C version to SSE-S3, an SSE-S3 one to SSE-C.
        r = c.copy_object(Bucket="kesv", Key="copy-s3", CopySource={"Bucket": "kesv", "Key": "k", "VersionId": v_ca}, ServerSideEncryption="AES256", **ssec_args(key_a, "CopySource"))
        assert r["ServerSideEncryption"] == "AES256" and r["CopySourceVersionId"] == v_ca
        assert c.get_object(Bucket="kesv", Key="copy-s3")["Body"].read() == bodies[1]
        key_c = os.urandom(32)
        c.copy_object(Bucket="kesv", Key="copy-c", CopySource={"Bucket": "kesv", "Key": "k", "VersionId": v_s3}, **ssec_args(key_c))
        assert c.get_object(Bucket="kesv", Key="copy-c", **ssec_args(key_c))["Body"].read() == bodies[0]
        with pytest.raises(botocore.exceptions.ClientError):
            c.get_object(Bucket="kesv", Key="copy-c")
        # A restart keeps every version readable through KES.
        assert s.stop() == 0
        s.start()
        c = s.client()
        assert c.get_object(Bucket="kesv", Key="k", VersionId=v_kms)["Body"].read() == bodies[3]
        assert c.get_object(Bucket="kesv", Key="k", VersionId=v_s3)["Body"].read() == bodies[0]
        assert [v["VersionId"] for v in c.list_object_versions(Bucket="kesv", Prefix="k")["Versions"]] == [v_kms, v_cb, v_ca, v_s3]
    finally:
        s.stop()


def test_mc_admin_kms_key_status_create_list(tmp_path, kes):
    s = start(tmp_path, kes)
    try:
        cfg = tmp_path / "mc"

        def mc(*args, check=True):
            r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
            assert not check or r.returncode == 0, r.stdout + r.stderr + s.output()[-2000:]
            return r

        mc("alias", "set", "c", s.endpoint, s.access, s.secret)
        default = s.env["MINIO_KMS_KES_KEY_NAME"]
        out = mc("admin", "kms", "key", "status", "c").stdout
        assert default in out and "Encryption ✔" in out and "Decryption ✔" in out, out
        new = "coffer-made-by-mc-" + os.urandom(3).hex()
        mc("admin", "kms", "key", "create", "c", new)
        out = mc("admin", "kms", "key", "status", "c", new).stdout
        assert new in out and "Encryption ✔" in out and "Decryption ✔" in out, out
        again = mc("admin", "kms", "key", "create", "c", new, check=False)
        assert again.returncode != 0 and "already exists" in again.stdout + again.stderr
        # The KES policy allows only coffer-* keys: the refusal comes back as such.
        denied = mc("admin", "kms", "key", "create", "c", "other-key", check=False)
        assert denied.returncode != 0 and "not authorized" in denied.stdout + denied.stderr
        missing = mc("admin", "kms", "key", "status", "c", "coffer-never-made", check=False)
        assert "key does not exist" in missing.stdout + missing.stderr
        listed = mc("admin", "kms", "key", "list", "c", "--json").stdout
        assert default in listed and new in listed, listed
    finally:
        s.stop()


def kms_post(s, route, access, secret):
    """A signed POST to the server's KMS API (`/minio/kms/v1/...`), as madmin sends it."""
    url = f"{s.endpoint}/minio/kms/v1{route}"
    req = botocore.awsrequest.AWSRequest(method="POST", url=url, data=b"")
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(access, secret), "s3", "us-east-1").add_auth(req)
    return requests.post(url, headers=dict(req.headers.items()), data=b"", timeout=30)


def test_key_rotation_through_the_kms_api(tmp_path, kes):
    """`POST /minio/kms/v1/key/rotate` (kms:RotateKey): our KES adds a version (objects under
    the older one still read); MinIO's KES has no rotation, so the answer is 501 and the key
    works as before. A user without kms:RotateKey is refused before the KMS is asked."""
    s = start(tmp_path, kes)
    try:
        cfg = tmp_path / "mc"

        def mc(*args):
            r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr + s.output()[-2000:]
            return r.stdout

        mc("alias", "set", "c", s.endpoint, s.access, s.secret)
        key = "coffer-rotated-" + os.urandom(3).hex()
        mc("admin", "kms", "key", "create", "c", key)
        mc("admin", "user", "add", "c", "app1", "app1-secret-key-xyz")
        mc("admin", "policy", "attach", "c", "readwrite", "--user", "app1")
        s3 = s.client()
        s3.create_bucket(Bucket="rot")
        s3.put_object(Bucket="rot", Key="before", Body=b"written before", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)

        r = kms_post(s, f"/key/rotate?key-id={key}", "app1", "app1-secret-key-xyz")
        assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text, (r.status_code, r.text)
        r = kms_post(s, f"/key/rotate?key-id={key}", s.access, s.secret)
        if os.environ["COFFER_TEST_KES"] == "ours":
            # Version 2: the refused call above did not rotate.
            assert r.status_code == 200 and r.json() == {"key-id": key, "version": 2}, (r.status_code, r.text)
            r = kms_post(s, f"/key/rotate?key-id={key}", s.access, s.secret)
            assert r.status_code == 200 and r.json()["version"] == 3, r.text
            r = kms_post(s, "/key/rotate?key-id=coffer-never-made", s.access, s.secret)
            assert r.status_code == 404 and "XMinioKMSKeyNotFound" in r.text, (r.status_code, r.text)
        else:
            assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text and "has no key rotation" in r.text, (r.status_code, r.text)
        s3.put_object(Bucket="rot", Key="after", Body=b"written after", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
        assert s3.get_object(Bucket="rot", Key="before")["Body"].read() == b"written before"
        assert s3.get_object(Bucket="rot", Key="after")["Body"].read() == b"written after"
        out = mc("admin", "kms", "key", "status", "c", key)
        assert "Encryption ✔" in out and "Decryption ✔" in out, out
        r = kms_post(s, "/key/rotate", s.access, s.secret)
        assert r.status_code == 400 and "key-id" in r.text, (r.status_code, r.text)
    finally:
        s.stop()


def test_users_sealed_through_kes_survive_a_restart(tmp_path, kes):
    s = start(tmp_path, kes)
    try:
        cfg = tmp_path / "mc"

        def mc(*args):
            r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr + s.output()[-2000:]
            return r

        mc("alias", "set", "c", s.endpoint, s.access, s.secret)
        mc("mb", "c/users")
        mc("admin", "user", "add", "c", "kesuser", "kesuser-secret-key")
        mc("admin", "policy", "attach", "c", "readwrite", "--user", "kesuser")
        s.stop()
        s.start()
        s.access, s.secret = "kesuser", "kesuser-secret-key"
        user = s.client()
        user.put_object(Bucket="users", Key="k", Body=b"written by a KES-sealed user")
        assert user.get_object(Bucket="users", Key="k")["Body"].read() == b"written by a KES-sealed user"
        stored = (tmp_path / "data" / ".coffer" / "iam" / "users.json").read_text()
        assert "kesuser" in stored and "kesuser-secret-key" not in stored
        assert_no_plaintext(tmp_path / "data", b"kesuser-secret-key")
    finally:
        s.stop()
