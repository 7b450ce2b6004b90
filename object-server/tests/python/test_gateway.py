"""Gateway mode against a real MinIO (always) and RGW (when `$COFFER_TEST_BACKEND` names it): two
object-server processes serve one backend bucket at once; the backend, read directly, holds no
plaintext and no key; operations the gateway does not have answer 501; a backend that is down
gives 503 SlowDown, never a partial object.

The rest of the suite runs in gateway mode with `COFFER_TEST_BACKEND=minio` (see gateway.py)."""
import base64
import os

import botocore.exceptions
import pytest

import gateway
from conftest import ACCESS, Server, make_certs, pattern, spread_requests

KMS_KEY = os.urandom(32)
KMS_ENV = {"MINIO_KMS_SECRET_KEY": "gw-key:" + base64.b64encode(KMS_KEY).decode(), "MINIO_KMS_AUTO_ENCRYPTION": "on"}


def code(e):
    return e.value.response["Error"]["Code"]


def status(e):
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def minio(tmp_path_factory):
    b = gateway.start_minio(tmp_path_factory.mktemp("gw-minio"))
    yield b
    b.stop()


def backends(request):
    """The backends of this run: our MinIO, and the one `$COFFER_TEST_BACKEND` names if it is
    another service (RGW)."""
    out = [request.getfixturevalue("minio")]
    other = request.getfixturevalue("gateway_backend")
    if other is not None and other.command is None:
        out.append(other)
    return out


def two_gateways(tmp_path, backend, env=None, versioned=False):
    """Two processes over one new backend bucket (`versioned`: with versioning enabled on the
    backend) (TLS, so SSE-C is allowed), and a client that sends its requests to each in turn."""
    certs = tmp_path / "certs"
    make_certs(certs)
    bucket = backend.new_bucket(versioned=versioned)
    servers = [
        Server(tmp_path / "state", certs_dir=certs, env={**KMS_ENV, **(env or {})}, backend=(backend, bucket)).start()
        for _ in range(2)
    ]
    c = servers[0].client()
    spread_requests(c, servers)
    return servers, bucket, c


def test_two_gateways_store_only_ciphertext_and_sealed_keys(tmp_path, request):
    for backend in backends(request):
        (one, two), backend_bucket, c = two_gateways(tmp_path / backend.host_port.replace(":", "-"), backend)
        c1, c2 = one.client(), two.client()
        c1.create_bucket(Bucket="data")
        # Each process sees what the other wrote, at once.
        assert [b["Name"] for b in c2.list_buckets()["Buckets"]] == ["data"]
        body = pattern(300_000, 7)
        ssec = os.urandom(32)
        c1.put_object(Bucket="data", Key="s3", Body=body)
        c1.put_object(Bucket="data", Key="kms", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId="gw-key")
        c1.put_object(Bucket="data", Key="c", Body=body, SSECustomerAlgorithm="AES256", SSECustomerKey=ssec)
        c1.put_object(Bucket="data", Key="odd/%41 +key", Body=b"odd")
        assert c2.get_object(Bucket="data", Key="s3")["Body"].read() == body
        assert c2.get_object(Bucket="data", Key="kms")["Body"].read() == body
        assert c2.get_object(Bucket="data", Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=ssec)["Body"].read() == body
        r = c2.get_object(Bucket="data", Key="c", Range="bytes=70000-70009", SSECustomerAlgorithm="AES256", SSECustomerKey=ssec)
        assert r["Body"].read() == body[70000:70010] and r["ContentRange"] == f"bytes 70000-70009/{len(body)}"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c2.get_object(Bucket="data", Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=os.urandom(32))
        assert status(e) == 403
        listed = [o["Key"] for o in c2.list_objects_v2(Bucket="data")["Contents"]]
        assert listed == sorted(["s3", "kms", "c", "odd/%41 +key"])
        h = c2.head_object(Bucket="data", Key="kms")
        assert h["ContentLength"] == len(body) and h["ServerSideEncryption"] == "aws:kms"
        # The backend bucket, read directly: the objects are there, and nothing secret is.
        stored = dict(backend.objects(backend_bucket))
        assert len([k for k in stored if k.startswith("data/")]) == 4, sorted(stored)
        windows = {body[i : i + 16] for i in range(0, len(body) - 15, 7)}
        secrets = [KMS_KEY, ssec, base64.b64encode(KMS_KEY), base64.b64encode(ssec), ACCESS.encode() + b":"]
        for k, data in stored.items():
            for i in range(0, len(data) - 15):
                assert data[i : i + 16] not in windows, f"{k} holds plaintext at {i}"
            for s in secrets:
                assert s not in data, f"{k} holds key material"
        # Deleted through one process, gone for the other and in the backend.
        c1.delete_object(Bucket="data", Key="s3")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c2.head_object(Bucket="data", Key="s3")
        assert status(e) == 404
        assert len([k for k in dict(backend.objects(backend_bucket)) if k.startswith("data/")]) == 3
        for s in (one, two):
            s.stop()


def backend_versions(backend, bucket):
    """`{backend key: [version ids]}` and the delete markers of the backend bucket, read directly."""
    versions, markers = {}, []
    for page in backend.client().get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            versions.setdefault(v["Key"], []).append(v["VersionId"])
        markers += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
    return versions, markers


def conditional_puts_hold(backend, bucket):
    """Whether the backend refuses a PUT with `If-None-Match: *` over an existing key and one
    with `If-Match` on another ETag, in `bucket`; asked directly, then the probe is removed."""
    c = backend.client()
    key = "probe-" + os.urandom(4).hex()

    def put(**headers):
        def add(request, **_):
            for k, v in headers.items():
                request.headers[k] = v

        c.meta.events.register_first("before-sign.s3.PutObject", add)
        try:
            c.put_object(Bucket=bucket, Key=key, Body=b"probe")
            return True
        except botocore.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response
            return False
        finally:
            c.meta.events.unregister("before-sign.s3.PutObject", add)

    put()
    held = not put(**{"If-None-Match": "*"}) and not put(**{"If-Match": "0123456789abcdef0123456789abcdef"})
    for v in c.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []):
        c.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    return held


def test_a_versioned_backend_bucket_keeps_no_old_version_of_an_unversioned_bucket(tmp_path, request):
    """Over a backend bucket that keeps versions, overwrites, deletes, multipart uploads and the
    gateway's own documents leave no noncurrent version and no delete marker behind: no old
    ciphertext stays readable in the backend. Turning versioning on for a Coffer bucket is
    refused with 409 InvalidBucketState when the backend bucket keeps no versions (it is passed
    through when it does: the next test). A backend that ignores conditional PUTs in a versioned bucket (Ceph
    RGW 16, the pinned one: `If-None-Match: *` is ignored there) is refused at start."""
    for backend in backends(request):
        where = tmp_path / backend.host_port.replace(":", "-")
        backend_bucket = backend.new_bucket(versioned=True)
        assert backend.client().get_bucket_versioning(Bucket=backend_bucket)["Status"] == "Enabled"
        if not conditional_puts_hold(backend, backend_bucket):
            s = Server(where / "refused", env=KMS_ENV, backend=(backend, backend_bucket), log_dir=tmp_path)
            s._spawn()
            assert s.proc.wait(60) != 0
            assert "ignores conditional writes" in s.output(), s.output()
        else:
            check_versioned_backend_keeps_no_old_version(where, backend)
        # A backend bucket without versions: versioning cannot be turned on, and says why.
        (one, two), _, c = two_gateways(where / "plain", backend)
        c.create_bucket(Bucket="data")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
        assert status(e) == 409 and code(e) == "InvalidBucketState"
        assert "backend" in e.value.response["Error"]["Message"]
        assert "Status" not in c.get_bucket_versioning(Bucket="data")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_bucket_versioning(Bucket="nope", VersioningConfiguration={"Status": "Enabled"})
        assert code(e) == "NoSuchBucket"
        # ListObjectVersions of a bucket that never kept versions: one null version per key.
        c.put_object(Bucket="data", Key="d/k", Body=b"one")
        c.put_object(Bucket="data", Key="d/k", Body=b"two!")
        vs, dms = versions_of(c, "data")
        assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in vs] == [("d/k", "null", True, 4)]
        assert dms == []
        r = c.list_object_versions(Bucket="data", Delimiter="/")
        assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/"] and not r.get("Versions")
        assert c.get_object(Bucket="data", Key="d/k", VersionId="null")["Body"].read() == b"two!"
        for s in (one, two):
            s.stop()


def check_versioned_backend_keeps_no_old_version(where, backend):
    (one, two), backend_bucket, c = two_gateways(where / "versioned", backend, versioned=True)
    assert backend.client().get_bucket_versioning(Bucket=backend_bucket)["Status"] == "Enabled"
    c.create_bucket(Bucket="data")
    bodies = [pattern(200_000, 40 + i) for i in range(3)]
    for b in bodies:
        c.put_object(Bucket="data", Key="k", Body=b)
    c.put_object(Bucket="data", Key="gone", Body=bodies[0])
    c.delete_object(Bucket="data", Key="gone")
    p1, p2 = pattern(5 * 1024 * 1024, 50), pattern(1000, 51)
    uid = c.create_multipart_upload(Bucket="data", Key="mp")["UploadId"]
    e1 = c.upload_part(Bucket="data", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = c.upload_part(Bucket="data", Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    parts = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
    c.complete_multipart_upload(Bucket="data", Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    c.put_object(Bucket="data", Key="mp", Body=b"small now")
    assert c.get_object(Bucket="data", Key="k")["Body"].read() == bodies[2]
    assert c.get_object(Bucket="data", Key="mp")["Body"].read() == b"small now"
    assert "Status" not in c.get_bucket_versioning(Bucket="data")
    versions, markers = backend_versions(backend, backend_bucket)
    assert markers == []
    assert {k: len(v) for k, v in versions.items() if len(v) != 1} == {}
    objects = sorted(k for k in versions if k.startswith("data/"))
    assert [k.rsplit("/", 1)[1] for k in objects] == ["k\x01", "mp\x01"]
    assert not any(k.startswith(".coffer/uploads/") for k in versions)
    # No old body is left in any version: none of the first two bodies' bytes appear.
    stored = b"".join(data for _, data in backend.objects(backend_bucket))
    for b in bodies[:2] + [p1]:
        assert b[1000:1016] not in stored
    for s in (one, two):
        s.stop()


def test_versioning_passed_through_to_a_versioned_backend_bucket(tmp_path, request):
    """A Coffer bucket with versioning Enabled keeps its versions as the backend's: ids, GET/HEAD
    by id, the null version from before, delete markers, ListObjectVersions with pages, prefix
    and delimiter, multipart and copies as new versions; a version id of another bucket names
    nothing; the backend holds no plaintext in any version. Suspending is 501."""
    from test_versioning import test_list_object_versions_pages_prefixes_and_markers as pages_and_prefixes

    tested = []
    for backend in backends(request):
        where = tmp_path / backend.host_port.replace(":", "-")
        probe = backend.new_bucket(versioned=True)
        if not conditional_puts_hold(backend, probe):
            continue  # refused at start: see the test above
        tested.append(backend)
        (one, two), backend_bucket, c = two_gateways(where, backend, versioned=True)
        c.create_bucket(Bucket="ver")
        c.create_bucket(Bucket="other")
        old = pattern(70_000, 1)
        c.put_object(Bucket="ver", Key="k", Body=old)  # before versioning: the null version
        c.put_object(Bucket="other", Key="k", Body=b"other")
        c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
        assert c.get_bucket_versioning(Bucket="ver")["Status"] == "Enabled"
        assert "Status" not in c.get_bucket_versioning(Bucket="other")
        bodies = [pattern(100_000 + i, 10 + i) for i in range(3)]
        ids = [c.put_object(Bucket="ver", Key="k", Body=b)["VersionId"] for b in bodies]
        assert len(set(ids)) == 3 and "null" not in ids
        g = c.get_object(Bucket="ver", Key="k")
        assert g["Body"].read() == bodies[2] and g["VersionId"] == ids[2]
        for vid, b in zip(ids, bodies):
            assert c.get_object(Bucket="ver", Key="k", VersionId=vid)["Body"].read() == b
            r = c.get_object(Bucket="ver", Key="k", VersionId=vid, Range="bytes=50000-50009")
            assert r["Body"].read() == b[50000:50010]
            h = c.head_object(Bucket="ver", Key="k", VersionId=vid)
            assert h["ContentLength"] == len(b) and h["VersionId"] == vid
        g = c.get_object(Bucket="ver", Key="k", VersionId="null")
        assert g["Body"].read() == old and g["VersionId"] == "null"
        vs, dms = versions_of(c, "ver", Prefix="k")
        assert [v["VersionId"] for v in vs] == ids[::-1] + ["null"] and dms == []
        assert [v["IsLatest"] for v in vs] == [True, False, False, False]
        assert [v["Size"] for v in vs] == [len(b) for b in bodies[::-1]] + [len(old)]
        # A version id names a version of the key in the bucket the request names, or nothing.
        for bucket, key in [("other", "k"), ("ver", "elsewhere")]:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket=bucket, Key=key, VersionId=ids[0])
            assert status(e) == 404, bucket
        assert c.get_object(Bucket="other", Key="k")["Body"].read() == b"other"
        for bad in ["../../../etc/passwd", "a/b", "x" * 1025]:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket="ver", Key="k", VersionId=bad)
            assert code(e) == "InvalidArgument" and status(e) == 400
        # A delete marker.
        r = c.delete_object(Bucket="ver", Key="k")
        assert r["DeleteMarker"] is True
        marker = r["VersionId"]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket="ver", Key="k")
        assert status(e) == 404 and e.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.head_object(Bucket="ver", Key="k", VersionId=marker)
        assert status(e) == 405
        assert "k" not in [o["Key"] for o in c.list_objects_v2(Bucket="ver").get("Contents", [])]
        vs, dms = versions_of(c, "ver")
        assert [d["VersionId"] for d in dms] == [marker] and dms[0]["IsLatest"] is True
        assert not any(v["IsLatest"] for v in vs if v["Key"] == "k")
        r = c.delete_object(Bucket="ver", Key="k", VersionId=marker)
        assert r["DeleteMarker"] is True and r["VersionId"] == marker
        assert c.get_object(Bucket="ver", Key="k")["Body"].read() == bodies[2]
        # Deleting the latest version for good promotes the previous one.
        c.delete_object(Bucket="ver", Key="k", VersionId=ids[2])
        assert c.get_object(Bucket="ver", Key="k")["VersionId"] == ids[1]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket="ver", Key="k", VersionId=ids[2])
        assert code(e) == "NoSuchVersion" and status(e) == 404
        # Copies and multipart uploads are new versions.
        r = c.copy_object(Bucket="ver", Key="copy", CopySource={"Bucket": "ver", "Key": "k", "VersionId": ids[0]})
        assert r["CopySourceVersionId"] == ids[0] and r["VersionId"]
        assert c.get_object(Bucket="ver", Key="copy")["Body"].read() == bodies[0]
        r = c.copy_object(Bucket="ver", Key="k", CopySource={"Bucket": "ver", "Key": "k", "VersionId": "null"})
        assert c.get_object(Bucket="ver", Key="k")["Body"].read() == old
        assert versions_of(c, "ver", Prefix="k")[0][0]["VersionId"] == r["VersionId"]
        p1, p2 = pattern(5 * 1024 * 1024, 30), pattern(1000, 31)
        uid = c.create_multipart_upload(Bucket="ver", Key="k")["UploadId"]
        e1 = c.upload_part(Bucket="ver", Key="k", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = c.upload_part(Bucket="ver", Key="k", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        parts = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
        mp = c.complete_multipart_upload(Bucket="ver", Key="k", UploadId=uid, MultipartUpload={"Parts": parts})["VersionId"]
        assert mp and c.get_object(Bucket="ver", Key="k")["VersionId"] == mp
        assert c.get_object(Bucket="ver", Key="k")["Body"].read() == p1 + p2
        assert c.get_object(Bucket="ver", Key="k", VersionId=ids[0])["Body"].read() == bodies[0]
        # Suspending is not passed through yet.
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Suspended"})
        assert status(e) == 501 and code(e) == "NotImplemented"
        assert c.get_bucket_versioning(Bucket="ver")["Status"] == "Enabled"
        # The backend, read directly: every version is ciphertext.
        stored = b"".join(data for _, data in backend.objects(backend_bucket))
        for b in [old, p1] + bodies:
            assert b[1000:1016] not in stored
        # Removing every version empties the bucket; a marker over every key does not.
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.delete_bucket(Bucket="ver")
        assert code(e) == "BucketNotEmpty"
        for key in {v["Key"] for v in versions_of(c, "ver")[0]}:
            c.delete_object(Bucket="ver", Key=key)
        assert c.list_objects_v2(Bucket="ver")["KeyCount"] == 0
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.delete_bucket(Bucket="ver")
        assert code(e) == "BucketNotEmpty"
        vs, dms = versions_of(c, "ver")
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in vs + dms]
        r = c.delete_objects(Bucket="ver", Delete={"Objects": objs})
        assert len(r["Deleted"]) == len(objs) and not r.get("Errors")
        assert versions_of(c, "ver") == ([], [])
        c.delete_bucket(Bucket="ver")
        # Pages, prefixes, delimiters and markers of ListObjectVersions (test_versioning.py's).
        pages_and_prefixes(c)
        for s in (one, two):
            s.stop()
    assert request.getfixturevalue("minio") in tested


def versions_of(c, bucket, **kw):
    r = c.list_object_versions(Bucket=bucket, **kw)
    return r.get("Versions", []), r.get("DeleteMarkers", [])


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.put_object_tagging(Bucket="bkt", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
        lambda c: c.get_object_tagging(Bucket="bkt", Key="k"),
        lambda c: c.put_bucket_policy(Bucket="bkt", Policy='{"Version":"2012-10-17","Statement":[]}'),
        lambda c: c.put_bucket_lifecycle_configuration(
            Bucket="bkt", LifecycleConfiguration={"Rules": [{"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}
        ),
        lambda c: c.put_bucket_cors(Bucket="bkt", CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}),
        lambda c: c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True),
    ],
    ids=["put-tagging", "get-tagging", "policy", "lifecycle", "cors", "object-lock"],
)
def test_operations_the_gateway_lacks_answer_501_and_change_nothing(tmp_path, minio, call):
    (one, _), _, c = two_gateways(tmp_path, minio)
    c.create_bucket(Bucket="bkt")
    c.put_object(Bucket="bkt", Key="k", Body=b"v")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(c)
    assert status(e) == 501 and code(e) == "NotImplemented"
    assert "backend (gateway) mode" in e.value.response["Error"]["Message"]
    assert [b["Name"] for b in c.list_buckets()["Buckets"]] == ["bkt"]
    assert c.get_object(Bucket="bkt", Key="k")["Body"].read() == b"v"
    assert "TagCount" not in c.head_object(Bucket="bkt", Key="k")


def test_a_backend_that_is_down_gives_slowdown_never_a_partial_object(tmp_path):
    backend = gateway.start_minio(tmp_path / "minio")
    try:
        (one, _), _, c = two_gateways(tmp_path, backend)
        c.create_bucket(Bucket="bkt")
        body = pattern(3 * 1024 * 1024, 1)
        c.put_object(Bucket="bkt", Key="k", Body=body)
        backend.halt()
        for call in (
            lambda: c.get_object(Bucket="bkt", Key="k"),
            lambda: c.get_object(Bucket="bkt", Key="k", Range="bytes=100-200"),
            lambda: c.put_object(Bucket="bkt", Key="k", Body=b"new"),
            lambda: c.list_objects_v2(Bucket="bkt"),
            lambda: c.create_multipart_upload(Bucket="bkt", Key="m"),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                call()
            assert status(e) == 503 and code(e) == "SlowDown", e.value.response
        # Back: the object is the one written before, whole; the refused PUT changed nothing.
        assert backend.restart()
        assert c.get_object(Bucket="bkt", Key="k")["Body"].read() == body
        assert "backend" not in one.output().lower() or backend.secret not in one.output()
        # The outage is logged, without the presigned URL of the failed request (its signature
        # would let a reader of the log send that request).
        out = one.output()
        assert "storage backend unavailable" in out, out[-3000:]
        assert "X-Amz-Signature" not in out and "X-Amz-Credential" not in out, out[-3000:]
    finally:
        backend.stop()
