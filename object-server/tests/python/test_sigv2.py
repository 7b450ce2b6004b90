"""Signature Version 2 (issue #25 item 7), as MinIO accepts it: boto3 with botocore's own V2 signer
(`signature_version='s3'`, HmacV1) for the header form, presigned V2 URLs fetched with `requests`,
and requests signed by hand with the string to sign AWS documents (RESTAuthentication.html) where a
test needs a time stamp or a resource botocore would not send. Root and IAM users; the refusals
(expired URL, wrong signature, unknown key, a stale Date); bucket policies on
`s3:signatureversion` and `s3:authType`."""
import base64
import email.utils
import hashlib
import hmac
import json
import time
import urllib.parse

import botocore.exceptions
import pytest
import requests

from conftest import Server, pattern
from test_iam import as_user, mc
from test_iam_review import deny, put_policy


def v2_client(server):
    """A boto3 client that signs with SigV2 only: every request it sends is checked to carry an
    `Authorization: AWS key:signature` header (so a silent fall-back to V4 fails the test)."""
    c = server.client(signature_version="s3")
    sent = []

    def check(request, **_):
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        assert auth.startswith(f"AWS {server.access}:"), f"not a SigV2 request: {auth!r}"
        sent.append(request.url)

    c.meta.events.register("before-send.s3", check)
    c.sent = sent
    return c


def error(exc_info):
    r = exc_info.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def xml_error(r):
    """(status, S3 error code, message) of a raw response."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(r.content)
    return r.status_code, root.findtext("Code"), root.findtext("Message")


def sign_v2(secret, method, resource, headers, date):
    """AWS's SigV2 signature: HMAC-SHA1 over VERB, Content-MD5, Content-Type, Date (or Expires),
    the x-amz-* headers lower-cased and sorted, and the canonical resource."""
    amz = sorted((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-amz-"))
    string_to_sign = (
        f"{method}\n{headers.get('Content-MD5', '')}\n{headers.get('Content-Type', '')}\n{date}\n"
        + "".join(f"{k}:{v}\n" for k, v in amz)
        + resource
    )
    mac = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def by_hand(server, method, path, query="", resource=None, date=None, headers=None, body=b"", access=None, secret=None):
    """A header-signed V2 request, sent to `path?query`, signing `resource` (default: the path and
    the sub-resources in the query, as AWS says) with `date` (default: now)."""
    headers = dict(headers or {})
    date = date if date is not None else email.utils.formatdate(usegmt=True)
    if date:
        headers["Date"] = date
    sub = "&".join(p for p in query.split("&") if p.split("=")[0] in ("acl", "delete", "tagging", "uploads", "uploadId", "partNumber", "versionId", "versioning", "policy"))
    resource = resource if resource is not None else path + (f"?{sub}" if sub else "")
    sig = sign_v2(secret or server.secret, method, resource, headers, date)
    headers["Authorization"] = f"AWS {access or server.access}:{sig}"
    url = f"{server.endpoint}{path}" + (f"?{query}" if query else "")
    return requests.request(method, url, headers=headers, data=body, timeout=10)


def test_v2_put_get_list_and_delete_as_root(server):
    c = v2_client(server)
    b = "sigv2-" + str(int(time.time()))
    c.create_bucket(Bucket=b)
    assert b in [x["Name"] for x in c.list_buckets()["Buckets"]]
    data = pattern(100_000)
    keys = ["plain", "dir/a b+c~d", "dir/ümlaut%20&=?"]
    for k in keys:
        r = c.put_object(Bucket=b, Key=k, Body=data, ContentType="application/x-test", Metadata={"who": "v2"})
        assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    for k in keys:
        got = c.get_object(Bucket=b, Key=k)
        assert got["Body"].read() == data
        assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"who": "v2"}
    assert c.get_object(Bucket=b, Key="plain", Range="bytes=10-19")["Body"].read() == data[10:20]
    # Listing is a request on the bucket (botocore signs `/bucket/`, sends `/bucket`).
    assert sorted(o["Key"] for o in c.list_objects_v2(Bucket=b)["Contents"]) == sorted(keys)
    assert [o["Key"] for o in c.list_objects(Bucket=b, Prefix="dir/", Delimiter="/")["Contents"]] == sorted(keys[1:])
    listed = c.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]
    # Sub-resources are part of the V2 string to sign.
    c.put_object_tagging(Bucket=b, Key="plain", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    assert c.get_object_tagging(Bucket=b, Key="plain")["TagSet"] == [{"Key": "t", "Value": "1"}]
    # DeleteObjects: POST ?delete with a Content-MD5, which V2 signs.
    r = c.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys[1:]]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(keys[1:])
    c.delete_object(Bucket=b, Key="plain")
    assert c.list_objects_v2(Bucket=b)["KeyCount"] == 0
    c.delete_bucket(Bucket=b)
    assert b not in [x["Name"] for x in server.client().list_buckets()["Buckets"]]
    assert any(u.endswith(f"/{b}") for u in c.sent), "bucket requests were sent without the slash"


def test_v2_multipart_upload(server, bucket):
    c = v2_client(server)
    parts = [pattern(5 << 20, seed=1), pattern(123_457, seed=2)]
    up = c.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-big")
    uid = up["UploadId"]
    etags = [c.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=i + 1, Body=p)["ETag"] for i, p in enumerate(parts)]
    assert [p["PartNumber"] for p in c.list_parts(Bucket=bucket, Key="big", UploadId=uid)["Parts"]] == [1, 2]
    assert [u["UploadId"] for u in c.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    c.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
    )
    got = server.client().get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentType"] == "application/x-big" and got["ETag"].endswith('-2"')
    # An abandoned upload is aborted with V2 too.
    uid = c.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    c.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=uid)
    assert "Uploads" not in c.list_multipart_uploads(Bucket=bucket)


def test_presigned_v2_urls(server, bucket):
    c = server.client(signature_version="s3")
    body = pattern(70_000)
    server.client().put_object(Bucket=bucket, Key="a b/c+d", Body=body)
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a b/c+d"}, ExpiresIn=300)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert set(q) == {"AWSAccessKeyId", "Expires", "Signature"}, url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == body
    r = requests.get(url, headers={"Range": "bytes=5-9"}, timeout=10)
    assert r.status_code == 206 and r.content == body[5:10]
    # A response-* override is a sub-resource of the V2 string to sign.
    url = c.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "a b/c+d", "ResponseContentType": "text/x-v2"}, ExpiresIn=300
    )
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/x-v2"
    # A presigned PUT, then a presigned listing of the bucket.
    url = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=300)
    assert requests.put(url, data=b"uploaded", timeout=10).status_code == 200
    assert server.client().get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded"
    url = c.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    # (botocore asks for url-encoded keys.)
    assert r.status_code == 200 and b"<Key>up</Key>" in r.content and b"<Key>a%20b/c%2Bd</Key>" in r.content


def test_presigned_v2_refusals(server, bucket):
    c = server.client(signature_version="s3")
    server.client().put_object(Bucket=bucket, Key="k", Body=b"secret")
    server.client().put_object(Bucket=bucket, Key="other", Body=b"other")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=-5)
    assert xml_error(requests.get(url, timeout=10)) == (403, "AccessDenied", "Request has expired")

    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))

    def with_query(path=parts.path, **changes):
        return urllib.parse.urlunsplit(parts._replace(path=path, query=urllib.parse.urlencode({**q, **changes})))

    sig = q["Signature"]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    for bad in (
        with_query(Signature=flipped),                          # a wrong signature
        with_query(Expires=str(int(q["Expires"]) + 3600)),     # a later expiry than signed
        with_query(path=f"/{bucket}/other"),                   # another key than signed
    ):
        r = requests.get(bad, timeout=10)
        assert xml_error(r)[:2] == (403, "SignatureDoesNotMatch"), bad
        assert r.content not in (b"secret", b"other")
    r = requests.get(with_query(AWSAccessKeyId="nobody-here"), timeout=10)
    assert xml_error(r)[:2] == (403, "InvalidAccessKeyId")
    assert requests.get(url, timeout=10).content == b"secret"


def test_v2_header_refusals(server, bucket):
    server.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    wrong = as_user(server, server.access, "not-the-secret").client(signature_version="s3")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        wrong.get_object(Bucket=bucket, Key="k")
    assert error(e) == (403, "SignatureDoesNotMatch")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        wrong.put_object(Bucket=bucket, Key="new", Body=b"x")
    assert error(e) == (403, "SignatureDoesNotMatch")
    unknown = as_user(server, "nobody-here", "whatever").client(signature_version="s3")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unknown.list_objects_v2(Bucket=bucket)
    assert error(e) == (403, "InvalidAccessKeyId")
    assert [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    # A header signed for one key does not open another.
    r = by_hand(server, "GET", f"/{bucket}/k", resource=f"/{bucket}/k")
    assert r.status_code == 200 and r.content == b"x"
    r = by_hand(server, "GET", f"/{bucket}/other", resource=f"/{bucket}/k")
    assert xml_error(r)[:2] == (403, "SignatureDoesNotMatch")


def test_v2_header_time_stamp_must_be_recent(server, bucket):
    server.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    now = time.time()
    # AWS allows 15 minutes either way.
    for offset in (-600, 600):
        r = by_hand(server, "GET", f"/{bucket}/k", date=email.utils.formatdate(now + offset, usegmt=True))
        assert r.status_code == 200 and r.content == b"x", r.text
    # A captured request does not replay for ever (nor one from the future).
    for offset in (-20 * 60, 20 * 60, -86400 * 365):
        r = by_hand(server, "GET", f"/{bucket}/k", date=email.utils.formatdate(now + offset, usegmt=True))
        assert xml_error(r)[:2] == (403, "RequestTimeTooSkewed"), offset
    r = by_hand(server, "PUT", f"/{bucket}/late", date=email.utils.formatdate(now - 3600, usegmt=True), body=b"y")
    assert xml_error(r)[:2] == (403, "RequestTimeTooSkewed")
    assert server.client().list_objects_v2(Bucket=bucket, Prefix="late")["KeyCount"] == 0
    # x-amz-date (signed as an x-amz header, with an empty Date line) takes precedence over Date.
    stale = email.utils.formatdate(now - 3600, usegmt=True)
    r = by_hand(server, "GET", f"/{bucket}/k", date="", headers={"x-amz-date": email.utils.formatdate(now, usegmt=True), "Date": stale})
    assert r.status_code == 200, r.text
    r = by_hand(server, "GET", f"/{bucket}/k", date="", headers={"x-amz-date": stale})
    assert xml_error(r)[:2] == (403, "RequestTimeTooSkewed")
    # An unreadable Date.
    r = by_hand(server, "GET", f"/{bucket}/k", date="yesterday")
    assert xml_error(r)[:2] == (403, "AccessDenied")


def test_both_spellings_of_a_bucket_resource(server, bucket):
    """botocore signs `/bucket/` for a path-style bucket request it sends as `/bucket`; a client
    that signs the path it sends (rclone) signs `/bucket`. Both are the same request."""
    server.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    for resource in (f"/{bucket}", f"/{bucket}/"):
        r = by_hand(server, "GET", f"/{bucket}", query="list-type=2", resource=resource)
        assert r.status_code == 200 and b"<Key>k</Key>" in r.content, (resource, r.text)
    r = by_hand(server, "GET", f"/{bucket}/", query="list-type=2", resource=f"/{bucket}/")
    assert r.status_code == 200 and b"<Key>k</Key>" in r.content
    # Neither spelling opens another bucket or another operation.
    server.client().create_bucket(Bucket=bucket + "-2")
    r = by_hand(server, "GET", f"/{bucket}-2", query="list-type=2", resource=f"/{bucket}/")
    assert xml_error(r)[:2] == (403, "SignatureDoesNotMatch")
    r = by_hand(server, "DELETE", f"/{bucket}", resource=f"/{bucket}/", headers={})
    assert xml_error(r)[:2] == (409, "BucketNotEmpty")
    r = by_hand(server, "GET", f"/{bucket}", query="policy", resource=f"/{bucket}/")
    assert xml_error(r)[:2] == (403, "SignatureDoesNotMatch")


def test_v2_for_iam_users_follows_their_policies(tmp_path):
    s = Server(tmp_path / "data").start()
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    mc(s, cfg, "mb", "c/shared")
    mc(s, cfg, "admin", "user", "add", "c", "writer", "writer-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "readwrite", "--user", "writer")
    mc(s, cfg, "admin", "user", "add", "c", "reader", "reader-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "readonly", "--user", "reader")
    writer = v2_client(as_user(s, "writer", "writer-secret-key"))
    reader = v2_client(as_user(s, "reader", "reader-secret-key"))
    writer.put_object(Bucket="shared", Key="w", Body=b"by writer")
    assert reader.get_object(Bucket="shared", Key="w")["Body"].read() == b"by writer"
    assert [o["Key"] for o in writer.list_objects_v2(Bucket="shared")["Contents"]] == ["w"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        reader.put_object(Bucket="shared", Key="r", Body=b"by reader")
    assert error(e) == (403, "AccessDenied")
    url = reader.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "w"}, ExpiresIn=300)
    assert requests.get(url, timeout=10).content == b"by writer"
    url = reader.generate_presigned_url("put_object", Params={"Bucket": "shared", "Key": "r"}, ExpiresIn=300)
    assert xml_error(requests.put(url, data=b"x", timeout=10))[:2] == (403, "AccessDenied")
    # A disabled user cannot sign V2 requests any more.
    mc(s, cfg, "admin", "user", "disable", "c", "writer")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        writer.get_object(Bucket="shared", Key="w")
    assert error(e) == (403, "InvalidAccessKeyId")
    assert "r" not in [o["Key"] for o in s.client().list_objects_v2(Bucket="shared")["Contents"]]


def test_bucket_policy_denying_signature_version_2(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    put_policy(s3, bucket, deny(bucket, ["s3:GetObject", "s3:PutObject"], "*", {"StringEquals": {"s3:signatureversion": "AWS"}}))
    v2 = v2_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        v2.get_object(Bucket=bucket, Key="k")
    assert error(e) == (403, "AccessDenied")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        v2.put_object(Bucket=bucket, Key="v2", Body=b"y")
    assert error(e) == (403, "AccessDenied")
    url = server.client(signature_version="s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert xml_error(requests.get(url, timeout=10))[:2] == (403, "AccessDenied")
    # A decoy SigV4 header beside the V2 query signature (which s3s checks first) changes nothing.
    decoy = {"Authorization": f"AWS4-HMAC-SHA256 Credential={server.access}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"}
    assert xml_error(requests.get(url, headers=decoy, timeout=10))[:2] == (403, "AccessDenied")
    # SigV4, in the header or presigned, goes through.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    s3.put_object(Bucket=bucket, Key="v4", Body=b"z")
    # (botocore presigns with V2 unless told `s3v4`.)
    url = server.client(signature_version="s3v4").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v4"})
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=10)
    assert r.content == b"z", r.text
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["k", "v4"]
    # V2 is refused only where the policy says: listing is not covered by it.
    assert v2.list_objects_v2(Bucket=bucket)["KeyCount"] == 2


def test_bucket_policy_on_auth_type(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    put_policy(s3, bucket, deny(bucket, ["s3:GetObject"], "*", {"StringEquals": {"s3:authType": "REST-QUERY-STRING"}}))
    for client in (server.client(signature_version="s3v4"), server.client(signature_version="s3")):
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
        assert xml_error(requests.get(url, timeout=10))[:2] == (403, "AccessDenied")
    put_policy(s3, bucket, deny(bucket, ["s3:GetObject"], "*", {"StringEquals": {"s3:authType": "REST-HEADER"}}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        v2_client(server).get_object(Bucket=bucket, Key="k")
    assert error(e) == (403, "AccessDenied")
    url = server.client(signature_version="s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert requests.get(url, timeout=10).content == b"x"
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Effect"] == "Deny"
