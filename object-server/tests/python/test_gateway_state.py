"""Stateless gateways: users, policies, the metadata key and bucket settings live in the backend
bucket, so gateway processes with different (or no) local directories serve one Tenant. Over a
real MinIO always, and over RGW when `$COFFER_TEST_BACKEND` names it (see gateway.py).

One gateway runs as `object-server gateway s3 URL` without any directory, the other as
`server --backend URL DIR` on its own empty directory: a user added on one signs in on the other,
a policy attached on one applies on the other, a bucket's default encryption set on one applies
to PUTs on the other, concurrent user adds on both lose none, the backend (read directly) holds
no plaintext secret key and no KMS key, and no client key reaches the reserved `.coffer/` prefix.
"""
import base64
import concurrent.futures
import json
import os
import subprocess
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests

import gateway
from conftest import Server, peer, server_bin
from test_iam import as_user, mc

KMS_KEY = os.urandom(32)
KMS_ENV = {"MINIO_KMS_SECRET_KEY": "gw-key:" + base64.b64encode(KMS_KEY).decode(), "MINIO_KMS_AUTO_ENCRYPTION": "on"}
# The bound documented in docs/gateway.md (iam::store::SHARED_REFRESH is 1 s), with room for a
# loaded machine.
REFRESH_BOUND = 3.0


class Stateless(Server):
    """`object-server gateway s3 URL`: no directory on the command line at all."""

    def args(self):
        return [server_bin(), "gateway", "s3", "--address", f"127.0.0.1:{self.port}", self.backend[0].url(self.backend[1])]


@pytest.fixture(scope="module")
def minio(tmp_path_factory):
    b = gateway.start_minio(tmp_path_factory.mktemp("gw-state-minio"))
    yield b
    b.stop()


def backends(request):
    out = [request.getfixturevalue("minio")]
    other = request.getfixturevalue("gateway_backend")
    if other is not None and other.command is None:
        out.append(other)
    return out


def code(e):
    return e.value.response["Error"]["Code"]


def status(e):
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def eventually(check, bound=REFRESH_BOUND):
    """Retries `check` (raising while not yet true) for `bound` seconds; the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - start
        except (AssertionError, botocore.exceptions.ClientError, pytest.fail.Exception):
            if time.monotonic() - start > bound:
                raise
            time.sleep(0.1)


def two_stateless_gateways(tmp_path, backend):
    bucket = backend.new_bucket()
    gateway.use(backend, bucket)
    tmp_path.mkdir(parents=True, exist_ok=True)
    unused = tmp_path / "a-never-created"
    a = Stateless(unused, env=KMS_ENV, backend=(backend, bucket), log_dir=tmp_path).start()
    b = Server(tmp_path / "b-state", env=KMS_ENV, backend=(backend, bucket)).start()
    return a, b, bucket, unused


def rewrap_call(s):
    url = f"{s.endpoint}/minio/admin/v3/coffer/rewrap"
    req = botocore.awsrequest.AWSRequest(method="POST", url=url, data=b"")
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(s.access, s.secret), "s3", "us-east-1").add_auth(req)
    return requests.post(url, headers=dict(req.headers.items()), timeout=60)


def test_users_policies_and_bucket_settings_are_shared_through_the_backend(tmp_path, request):
    for backend in backends(request):
        where = tmp_path / backend.host_port.replace(":", "-")
        a, b, backend_bucket, unused = two_stateless_gateways(where, backend)
        cfg = where / "mc"
        mc(a, cfg, "alias", "set", "a", a.endpoint, a.access, a.secret)
        mc(b, cfg, "alias", "set", "b", b.endpoint, b.access, b.secret)
        ca, cb = a.client(), b.client()
        ca.create_bucket(Bucket="data")
        ca.put_object(Bucket="data", Key="hello", Body=b"hello from a")

        # A user added on A signs in on B at once (an unknown key makes B look in the backend).
        mc(a, cfg, "admin", "user", "add", "a", "reader1", "reader1-secret-key")
        rb = as_user(b, "reader1", "reader1-secret-key").client()
        with pytest.raises(botocore.exceptions.ClientError) as e:
            rb.get_object(Bucket="data", Key="hello")
        assert code(e) == "AccessDenied" and status(e) == 403  # signed in; no policy yet
        # A policy attached on B applies on A within the documented bound.
        mc(b, cfg, "admin", "policy", "attach", "b", "readonly", "--user", "reader1")
        ra = as_user(a, "reader1", "reader1-secret-key").client()
        took = eventually(lambda: ra.get_object(Bucket="data", Key="hello"))
        print(f"{backend.host_port}: policy attached on B in effect on A after {took:.2f} s")
        assert ra.get_object(Bucket="data", Key="hello")["Body"].read() == b"hello from a"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ra.put_object(Bucket="data", Key="denied", Body=b"x")
        assert code(e) == "AccessDenied" and status(e) == 403
        # A policy made on B, attached on A, applies on B.
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::data/up/*"]}]}
        (where / "up.json").write_text(json.dumps(doc))
        mc(b, cfg, "admin", "policy", "create", "b", "upload-only", str(where / "up.json"))
        mc(a, cfg, "admin", "policy", "attach", "a", "upload-only", "--user", "reader1")
        eventually(lambda: rb.put_object(Bucket="data", Key="up/x", Body=b"up"))
        # Disabled on A: refused on B within the bound.
        mc(a, cfg, "admin", "user", "disable", "a", "reader1")

        def refused_on_b():
            with pytest.raises(botocore.exceptions.ClientError) as e:
                rb.get_object(Bucket="data", Key="hello")
            assert code(e) == "InvalidAccessKeyId" and status(e) == 403

        eventually(refused_on_b)

        # A bucket's default encryption set on A applies to PUTs on B.
        cb.create_bucket(Bucket="kmsbucket")
        ca.put_bucket_encryption(
            Bucket="kmsbucket",
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "gw-key"}}]},
        )
        cb.put_object(Bucket="kmsbucket", Key="o", Body=b"default-encrypted")
        h = ca.head_object(Bucket="kmsbucket", Key="o")
        assert h["ServerSideEncryption"] == "aws:kms" and h["SSEKMSKeyId"].endswith("gw-key"), h
        assert cb.get_bucket_encryption(Bucket="kmsbucket")["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

        # Users added on both at once: none lost.
        names = [(s, alias, f"{alias}-user-{i}") for i in range(8) for s, alias in ((a, "a"), (b, "b"))]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: mc(t[0], cfg, "admin", "user", "add", t[1], t[2], t[2] + "-secret"), names))
        for s, alias in ((a, "a"), (b, "b")):
            listed = mc(s, cfg, "admin", "user", "list", alias).stdout
            missing = [n for _, _, n in names if n not in listed]
            assert not missing, f"{alias} lost {missing}:\n{listed}"
        for s, _, n in names[:4]:
            other = b if s is a else a
            as_user(other, n, n + "-secret").client().list_buckets()

        # The backend, read directly: the state is there, sealed.
        stored = dict(backend.objects(backend_bucket))
        assert ".coffer/system/iam/users.json" in stored and ".coffer/system/iam/policies.json" in stored, sorted(stored)
        assert ".coffer/system/metadata.key" in stored, sorted(stored)
        users = json.loads(stored[".coffer/system/iam/users.json"])["users"]
        assert {n for _, _, n in names} | {"reader1"} == set(users), sorted(users)
        secrets = [b"reader1-secret-key"] + [(n + "-secret").encode() for _, _, n in names]
        key_forms = [KMS_KEY, base64.b64encode(KMS_KEY), KMS_KEY.hex().encode()]
        for k, data in stored.items():
            for s in secrets + key_forms:
                assert s not in data, f"{k!r} holds a secret"
        # Nothing of it on local disk: A has no directory at all, B's holds no IAM state or key.
        assert not unused.exists()
        local = [p.relative_to(where / "b-state") for p in (where / "b-state").rglob("*") if p.is_file()]
        assert not [p for p in local if "iam" in p.parts or p.name == "metadata.key"], local

        # No client key reaches the reserved prefix: `.coffer` is no bucket name, and a key that
        # spells the state document's path is an object of its bucket like any other.
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ca.create_bucket(Bucket=".coffer")
        assert status(e) == 400 and code(e) == "InvalidBucketName"
        assert ".coffer" not in [x["Name"] for x in cb.list_buckets()["Buckets"]]
        ca.put_object(Bucket="data", Key="../../.coffer/system/iam/users.json", Body=b"{}")
        ca.put_object(Bucket="data", Key=".coffer/system/iam/users.json", Body=b"{}")
        assert dict(backend.objects(backend_bucket))[".coffer/system/iam/users.json"] == stored[".coffer/system/iam/users.json"]
        as_user(b, names[0][2], names[0][2] + "-secret").client().list_buckets()
        listed = [o["Key"] for o in ca.list_objects_v2(Bucket="data")["Contents"]]
        assert ".coffer/system/iam/users.json" in listed and "hello" in listed

        # The re-wrap job walks a local store: refused in gateway mode, with AWS's code.
        r = rewrap_call(a)
        assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text, r.text

        # A gateway started later, on yet another empty directory, has everything at once.
        c = Server(where / "c-state", env=KMS_ENV, backend=(backend, backend_bucket)).start()
        assert c.client().get_object(Bucket="data", Key="hello")["Body"].read() == b"hello from a"
        as_user(c, names[-1][2], names[-1][2] + "-secret").client().list_buckets()
        for s in (a, b, c):
            s.stop()
        assert not unused.exists()


def test_a_gateway_without_a_directory_needs_a_kms_every_gateway_shares(tmp_path, minio):
    bucket = minio.new_bucket()
    s = Stateless(tmp_path / "none", backend=(minio, bucket), log_dir=tmp_path)
    s._spawn()
    assert s.proc.wait(30) != 0
    out = s.output()
    assert "MINIO_KMS_SECRET_KEY" in out and "state directory" in out, out
    assert not (tmp_path / "none").exists()
    # Without a backend a directory is required.
    env = {k: v for k, v in os.environ.items() if k != "COFFER_BACKEND"}
    r = subprocess.run([server_bin(), "server", "--address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60,
                       env={**env, **KMS_ENV})
    assert r.returncode != 0 and "a data directory is needed" in (r.stdout + r.stderr), r.stdout + r.stderr
    # Nothing was written to the backend bucket by the refused start.
    assert list(minio.objects(bucket)) == []
