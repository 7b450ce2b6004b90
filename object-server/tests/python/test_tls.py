"""TLS from a MinIO-style certs directory, and SSE-C (which needs TLS)."""
import os

import botocore.exceptions
import pytest
import requests

from conftest import assert_no_plaintext, pattern, ssec_args


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_ssec_round_trip_wrong_key_and_rotation(tls_server):
    s3 = tls_server.client()
    s3.create_bucket(Bucket="secure")
    key1, key2 = os.urandom(32), os.urandom(32)
    body = pattern(200_000, 7)
    r = s3.put_object(Bucket="secure", Key="c", Body=body, **ssec_args(key1))
    assert r["SSECustomerAlgorithm"] == "AES256" and "ServerSideEncryption" not in r
    # The ETag of an SSE-C object says nothing about the plaintext.
    import hashlib
    assert r["ETag"].strip('"') != hashlib.md5(body).hexdigest()
    assert s3.get_object(Bucket="secure", Key="c", **ssec_args(key1))["Body"].read() == body
    assert s3.head_object(Bucket="secure", Key="c", **ssec_args(key1))["SSECustomerAlgorithm"] == "AES256"
    assert s3.get_object(Bucket="secure", Key="c", Range="bytes=70000-70010", **ssec_args(key1))["Body"].read() == body[70000:70011]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="secure", Key="c")
    assert status(e) == 400
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="secure", Key="c", **ssec_args(key2))
    assert status(e) == 403
    assert "Error" in e.value.response and key2.hex() not in str(e.value.response)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="secure", Key="c")
    assert status(e) == 400
    # Key rotation: copy the object onto itself under a new key.
    s3.copy_object(Bucket="secure", Key="c", CopySource="secure/c", **ssec_args(key1, "CopySource"), **ssec_args(key2))
    assert s3.get_object(Bucket="secure", Key="c", **ssec_args(key2))["Body"].read() == body
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="secure", Key="c", **ssec_args(key1))
    # SSE-C source to an SSE-S3 destination.
    s3.copy_object(Bucket="secure", Key="plain", CopySource="secure/c", ServerSideEncryption="AES256", **ssec_args(key2, "CopySource"))
    assert s3.get_object(Bucket="secure", Key="plain")["Body"].read() == body
    assert_no_plaintext(tls_server.data_dir, body)


def test_ssec_multipart(tls_server):
    s3 = tls_server.client()
    s3.create_bucket(Bucket="secure")
    key = os.urandom(32)
    p1, p2 = pattern(5 * 1024 * 1024, 8), pattern(4321, 9)
    uid = s3.create_multipart_upload(Bucket="secure", Key="mp", **ssec_args(key))["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError):
        s3.upload_part(Bucket="secure", Key="mp", UploadId=uid, PartNumber=1, Body=p1)
    e1 = s3.upload_part(Bucket="secure", Key="mp", UploadId=uid, PartNumber=1, Body=p1, **ssec_args(key))["ETag"]
    e2 = s3.upload_part(Bucket="secure", Key="mp", UploadId=uid, PartNumber=2, Body=p2, **ssec_args(key))["ETag"]
    s3.complete_multipart_upload(Bucket="secure", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket="secure", Key="mp", **ssec_args(key))["Body"].read() == p1 + p2
    assert_no_plaintext(tls_server.data_dir, p2)


def test_tls_serves_health_and_refuses_plain_http(tls_server):
    assert requests.get(tls_server.endpoint + "/minio/health/ready", verify=tls_server.ca).status_code == 200
    with pytest.raises(requests.RequestException):
        requests.get(tls_server.endpoint.replace("https", "http") + "/minio/health/live", timeout=3)


def test_aws_cli_sse_modes_over_tls(tls_server, tmp_path):
    f = tmp_path / "f"
    body = pattern(100_000, 10)
    f.write_bytes(body)
    tls_server.aws("s3", "mb", "s3://cli")
    key = "K" * 32
    tls_server.aws("s3api", "put-object", "--bucket", "cli", "--key", "c", "--body", str(f), "--sse-customer-algorithm", "AES256", "--sse-customer-key", key)
    out = tmp_path / "out"
    tls_server.aws("s3api", "get-object", "--bucket", "cli", "--key", "c", "--sse-customer-algorithm", "AES256", "--sse-customer-key", key, str(out))
    assert out.read_bytes() == body
    r = tls_server.aws("s3api", "get-object", "--bucket", "cli", "--key", "c", str(out), check=False)
    assert r.returncode != 0
    tls_server.aws("s3api", "put-object", "--bucket", "cli", "--key", "s3", "--body", str(f), "--server-side-encryption", "AES256")
    tls_server.aws("s3api", "put-object", "--bucket", "cli", "--key", "kms", "--body", str(f), "--server-side-encryption", "aws:kms", "--ssekms-key-id", "coffer-default-key")
    assert '"aws:kms"' in tls_server.aws("s3api", "head-object", "--bucket", "cli", "--key", "kms").stdout
    tls_server.aws("s3", "cp", "--no-progress", str(f), "s3://cli/ssec-cp", "--sse-c", "AES256", "--sse-c-key", key)
    tls_server.aws("s3", "cp", "--no-progress", "s3://cli/ssec-cp", str(out), "--sse-c", "AES256", "--sse-c-key", key)
    assert out.read_bytes() == body
