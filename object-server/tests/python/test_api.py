"""Every S3 operation the object server offers, driven by boto3 over SigV4."""
import base64
import datetime
import hashlib
import io

import botocore.exceptions
import pytest
import requests

from conftest import assert_no_plaintext, pattern


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_buckets(s3):
    s3.create_bucket(Bucket="alpha")
    s3.create_bucket(Bucket="beta")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["alpha", "beta"]
    s3.head_bucket(Bucket="alpha")
    assert s3.get_bucket_location(Bucket="alpha").get("LocationConstraint") in (None, "")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="alpha")
    assert code(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="alpha", Key="x", Body=b"1")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="alpha")
    assert code(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="alpha", Key="x")
    s3.delete_bucket(Bucket="alpha")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="alpha")
    assert status(e) == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="nope", Key="x", Body=b"1")
    assert code(e) == "NoSuchBucket"


def test_put_get_head_delete_encrypted_by_default(server, s3, bucket):
    body = pattern(300_000)
    r = s3.put_object(Bucket=bucket, Key="dir/obj", Body=body, ContentType="application/x-test", Metadata={"color": "blue"})
    assert r["ServerSideEncryption"] == "AES256"
    assert r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    h = s3.head_object(Bucket=bucket, Key="dir/obj")
    assert h["ContentLength"] == len(body)
    assert h["ContentType"] == "application/x-test"
    assert h["Metadata"] == {"color": "blue"}
    assert h["ServerSideEncryption"] == "AES256"
    g = s3.get_object(Bucket=bucket, Key="dir/obj")
    assert g["Body"].read() == body
    assert g["ServerSideEncryption"] == "AES256"
    assert_no_plaintext(server.data_dir, body)
    s3.delete_object(Bucket=bucket, Key="dir/obj")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj")
    assert code(e) == "NoSuchKey"
    s3.delete_object(Bucket=bucket, Key="dir/obj")  # deleting a missing key is fine
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_hostile_and_nested_keys(server, s3, bucket):
    keys = ["a", "a/b", "a/b/c", "../escape", "a/../../x", "ü/日本語 key", "sp ace+plus%", "trailing/", "..", "."]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    root = server.data_dir.resolve()
    for f in root.parent.rglob("*"):
        if f.is_file() and not f.name.endswith(".log"):
            assert root in f.resolve().parents, f


def test_list_v2_and_v1(s3, bucket):
    keys = [f"photos/2024/{i:02}.jpg" for i in range(5)] + ["photos/readme", "videos/a.mp4", "z"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["photos/", "videos/"]
    assert [o["Key"] for o in r["Contents"]] == ["z"]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["photos/2024/"]
    assert [o["Key"] for o in r["Contents"]] == ["photos/readme"]
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, **kw)
        seen += [o["Key"] for o in r["Contents"]]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen == sorted(keys)
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="photos/readme")
    assert [o["Key"] for o in r["Contents"]] == ["videos/a.mp4", "z"]
    r = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert r["IsTruncated"] and [o["Key"] for o in r["Contents"]] == sorted(keys)[:2]
    r = s3.list_objects(Bucket=bucket, Marker=sorted(keys)[1])
    assert [o["Key"] for o in r["Contents"]] == sorted(keys)[2:]
    r = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert r["IsTruncated"] and r["NextMarker"] == "photos/"
    p = s3.get_paginator("list_objects_v2")
    assert sum(len(pg.get("Contents", [])) for pg in p.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})) == len(keys)


def test_delete_objects(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(4)] + [{"Key": "missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["k0", "k1", "k2", "k3", "missing"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k4"]


def test_copy_object(server, s3, bucket):
    body = pattern(200_000, 1)
    s3.put_object(Bucket=bucket, Key="src", Body=body, Metadata={"a": "1"}, ContentType="text/plain")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    h = s3.head_object(Bucket=bucket, Key="dst")
    assert h["Metadata"] == {"a": "1"} and h["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == body
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE", Metadata={"b": "2"})
    assert s3.head_object(Bucket=bucket, Key="dst2")["Metadata"] == {"b": "2"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code(e) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src", MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src", CopySourceIfMatch='"nope"')
    assert code(e) == "PreconditionFailed"
    assert_no_plaintext(server.data_dir, body)


def test_multipart(server, s3, bucket):
    part1, part2, part3 = pattern(5 * 1024 * 1024, 2), pattern(5 * 1024 * 1024, 3), pattern(1234, 4)
    up = s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata={"m": "v"}, ContentType="application/big")
    uid = up["UploadId"]
    assert up["ServerSideEncryption"] == "AES256"
    # Uploads are visible while in progress.
    ups = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in ups] == [("big", uid)]
    e1 = s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=1, Body=part1)["ETag"]
    e3 = s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=3, Body=part3)["ETag"]
    s3.put_object(Bucket=bucket, Key="src", Body=part2)
    e2 = s3.upload_part_copy(Bucket=bucket, Key="big", UploadId=uid, PartNumber=2, CopySource=f"{bucket}/src")["CopyPartResult"]["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(part1)), (2, len(part2)), (3, len(part3))]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code(e) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]})
    assert code(e) == "InvalidPart"
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]},
    )
    digests = b"".join(hashlib.md5(p).digest() for p in (part1, part2, part3))
    assert r["ETag"] == '"%s-3"' % hashlib.md5(digests).hexdigest()
    whole = part1 + part2 + part3
    g = s3.get_object(Bucket=bucket, Key="big")
    assert g["Body"].read() == whole and g["Metadata"] == {"m": "v"} and g["ContentType"] == "application/big"
    rng = s3.get_object(Bucket=bucket, Key="big", Range="bytes=5242000-5243000")["Body"].read()
    assert rng == whole[5242000:5243001]
    assert s3.get_object(Bucket=bucket, Key="big", PartNumber=3)["Body"].read() == part3
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=4, Body=b"x")
    assert code(e) == "NoSuchUpload"
    # Abort.
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid2, PartNumber=1, Body=b"abc")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=uid2)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=uid2)
    assert code(e) == "NoSuchUpload"
    # Too-small parts.
    uid3 = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    a = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid3, PartNumber=1, Body=b"a")["ETag"]
    b = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid3, PartNumber=2, Body=b"b")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=uid3, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": a}, {"PartNumber": 2, "ETag": b}]})
    assert code(e) == "EntityTooSmall"
    assert_no_plaintext(server.data_dir, part1[:200_000])


def test_ranges_decrypt_only_what_is_needed(s3, bucket):
    body = pattern(1_000_000, 5)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for first, last in [(0, 0), (65535, 65536), (100, 999_999), (999_999, 999_999), (131072, 262143)]:
        r = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={first}-{last}")
        assert r["Body"].read() == body[first : last + 1]
        assert r["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-10")["Body"].read() == body[-10:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=999990-")["Body"].read() == body[999990:]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=2000000-2000001")
    assert code(e) == "InvalidRange"


def test_conditional_requests(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"hello")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"hello"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"other"')
    assert status(e) == 412
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(e) == 304
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert status(e) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"hello"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert status(e) == 412
    # Conditional writes.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", IfNoneMatch="*")
    assert status(e) == 412
    s3.put_object(Bucket=bucket, Key="new", Body=b"x", IfNoneMatch="*")


def test_content_md5_and_checksums(s3, bucket):
    body = b"checksummed body"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="m", Body=body, ContentMD5=md5)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m2", Body=body, ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert code(e) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="m2")
    for alg in ["CRC32", "SHA1", "SHA256"]:  # CRC32C needs botocore[crt]
        r = s3.put_object(Bucket=bucket, Key=f"c-{alg}", Body=body, ChecksumAlgorithm=alg)
        assert r.get(f"Checksum{alg}"), r
        g = s3.get_object(Bucket=bucket, Key=f"c-{alg}", ChecksumMode="ENABLED")
        assert g["Body"].read() == body
        assert g[f"Checksum{alg}"] == r[f"Checksum{alg}"]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=body, ChecksumSHA256=wrong)
    assert status(e) == 400


def test_sse_kms_and_bucket_encryption(server, s3, bucket):
    key_id = "coffer-default-key"
    ctx = base64.b64encode(b'{"project":"x"}').decode()
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"kms body", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id, SSEKMSEncryptionContext=ctx)
    assert r["ServerSideEncryption"] == "aws:kms" and r["SSEKMSKeyId"].endswith(key_id)
    h = s3.head_object(Bucket=bucket, Key="k")
    assert h["ServerSideEncryption"] == "aws:kms" and h["SSEKMSKeyId"] == f"arn:aws:kms:{key_id}"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kms body"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="no-such-key")
    assert status(e) in (400, 404)
    # SSE headers other than SSE-C on GET are an error.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey=b"k" * 32)
    assert status(e) == 400
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code(e) == "ServerSideEncryptionConfigurationNotFoundError"
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]},
    )
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert s3.put_object(Bucket=bucket, Key="d", Body=b"x")["ServerSideEncryption"] == "aws:kms"
    # Explicit headers win over the bucket default.
    assert s3.put_object(Bucket=bucket, Key="e", Body=b"x", ServerSideEncryption="AES256")["ServerSideEncryption"] == "AES256"
    s3.delete_bucket_encryption(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_bucket_encryption(Bucket=bucket)


def test_ssec_refused_over_plain_http(s3, bucket):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=b"k" * 32)
    assert status(e) == 400
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="c")


def test_anonymous_and_bad_signatures_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"secret")
    log_before = len(server.output())
    r = requests.get(f"{server.endpoint}/{bucket}/p")
    assert r.status_code == 403 and b"secret" not in r.content
    assert requests.get(f"{server.endpoint}/").status_code == 403
    import boto3
    bad = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=server.access, aws_secret_access_key="wrong-secret", region_name="us-east-1")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.get_object(Bucket=bucket, Key="p")
    assert code(e) == "SignatureDoesNotMatch"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    assert requests.get(url).content == b"secret"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60)
    assert requests.put(put_url, data=b"via presigned").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="presigned")["Body"].read() == b"via presigned"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="missing")
    # Client mistakes are answered, not logged as server errors.
    refused = server.output()[log_before:]
    assert "ERROR" not in refused, refused


def test_upload_fileobj_chunked(s3, bucket):
    """boto3's managed transfer (multipart over 8 MiB, aws-chunked bodies with trailing checksums)."""
    body = pattern(9 * 1024 * 1024, 6)
    s3.upload_fileobj(io.BytesIO(body), bucket, "managed")
    out = io.BytesIO()
    s3.download_fileobj(bucket, "managed", out)
    assert out.getvalue() == body


def _signed_put_head(server, path, body, extra):
    """The head of a SigV4-signed PUT, as bytes, for driving the wire by hand."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), "Content-Length": str(len(body)), **extra}
    req = AWSRequest(method="PUT", url=f"{server.endpoint}{path}", data=body, headers=headers)
    S3SigV4Auth(Credentials(server.access, server.secret), "s3", "us-east-1").add_auth(req)
    lines = [f"PUT {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in req.prepare().headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock):
    """`(status line, lower-cased headers, body)` of one response, or None at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (h.split(":", 1) for h in header_lines))
    if status_line.split()[1] == "100":
        return (status_line, headers, rest)
    while len(rest) < int(headers.get("content-length", "0")):
        rest += sock.recv(65536)
    return (status_line, headers, rest)


def test_expect_continue_refused_before_the_body_closes_the_connection(server, s3, bucket):
    import socket

    s3.put_object(Bucket=bucket, Key="taken", Body=b"old")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        # botocore's way: the head, then the body only after `100 Continue`, and no body at all
        # after a final answer.
        sock.sendall(_signed_put_head(server, f"/{bucket}/taken", b"x", {"If-None-Match": "*", "Expect": "100-continue"}))
        status_line, headers, _ = _read_response(sock)
        assert " 412 " in status_line
        # The server still counts on a body of one byte that will never come: the connection
        # must end here, or the next request's first byte would be taken for it.
        assert headers.get("connection") == "close"
        assert _read_response(sock) is None
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"old"

    # A body that is read keeps the connection, and the next request on it is served whole.
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(_signed_put_head(server, f"/{bucket}/fresh", b"x", {"Expect": "100-continue"}))
        status_line, _, _ = _read_response(sock)
        assert " 100 " in status_line
        sock.sendall(b"x")
        status_line, headers, _ = _read_response(sock)
        assert " 200 " in status_line and headers.get("connection") != "close"
        sock.sendall(_signed_put_head(server, f"/{bucket}/second", b"y", {}) + b"y")
        status_line, _, _ = _read_response(sock)
        assert " 200 " in status_line
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"x"
    assert s3.get_object(Bucket=bucket, Key="second")["Body"].read() == b"y"
