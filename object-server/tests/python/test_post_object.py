"""Browser uploads (POST Object): an HTML form posted by `requests` as a browser sends it
(multipart/form-data, the file last), its policy and fields made by boto3's
`generate_presigned_post`; the stored object checked with boto3. Each refusal is checked for
AWS's status and error code, and for storing nothing."""
import base64
import datetime
import hashlib
import hmac
import json
import pathlib
import urllib.parse
import xml.etree.ElementTree as ET

import boto3
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import Server, assert_no_plaintext, make_certs, pattern


def child(doc, name):
    """The text of `doc`'s child `name`, with or without S3's XML namespace."""
    return next((c.text for c in doc if c.tag.rsplit("}", 1)[-1] == name), None)


def post(p, content, filename="photo.png", extra=None, drop=(), url=None, verify=True, **kw):
    """Posts the form `p` (boto3's presigned post) as a browser does: every field, then the file."""
    fields = {k: v for k, v in p["fields"].items() if k not in drop}
    fields.update(extra or {})
    return requests.post(url or p["url"], data=fields, files={"file": (filename, content, "image/png")},
                         timeout=60, verify=verify, **kw)


def error(r):
    """(status, S3 error code) of a refused form."""
    return r.status_code, child(ET.fromstring(r.content), "Code")


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def tmp_files(server):
    return [p for p in (server.data_dir / ".coffer" / "tmp").rglob("*") if p.is_file()]


def client(server, access=None, secret=None):
    """A boto3 client whose presigned posts are SigV4-signed (boto3's default here is SigV2)."""
    access, secret = access or server.access, secret or server.secret
    conf = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                  signature_version="s3v4")
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1", config=conf, verify=server.ca if server.ca else True)


@pytest.fixture
def plain(tmp_path):
    """A server that encrypts only what a request or the bucket's default asks for."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [
        {"accessKey": "writer1", "secretKey": "writer1-secret-key", "policies": ["readwrite"]},
        {"accessKey": "reader1", "secretKey": "reader1-secret-key", "policies": ["readonly"]},
    ]}))
    s = Server(tmp_path / "data", env={"MINIO_KMS_AUTO_ENCRYPTION": "off", "COFFER_USERS_FILE": str(users)}).start()
    yield s
    s.stop()


def test_a_form_upload_is_stored_as_a_put(plain):
    s3 = client(plain)
    s3.create_bucket(Bucket="photos")
    meta = {"x-amz-meta-owner": "alice", "Content-Type": "image/png"}
    tags = "<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>"
    p = s3.generate_presigned_post(
        "photos", "uploads/${filename}", Fields={**meta, "tagging": tags},
        Conditions=[{"x-amz-meta-owner": "alice"}, ["starts-with", "$Content-Type", "image/"],
                    {"tagging": tags}, ["content-length-range", 1, 1 << 20]], ExpiresIn=600)
    body = pattern(200_000, seed=1)
    r = post(p, body, filename="cat.png")
    assert r.status_code == 204, r.text
    h = s3.head_object(Bucket="photos", Key="uploads/cat.png")
    assert h["Metadata"] == {"owner": "alice"}
    assert h["ContentType"] == "image/png"
    assert "ServerSideEncryption" not in h, "no SSE asked for, no bucket default, auto-encryption off"
    assert s3.get_object(Bucket="photos", Key="uploads/cat.png")["Body"].read() == body
    assert s3.get_object_tagging(Bucket="photos", Key="uploads/cat.png")["TagSet"] == [{"Key": "team", "Value": "web"}]
    assert h["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()

    # The bucket's default encryption applies to a form as to a PUT.
    s3.put_bucket_encryption(Bucket="photos", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    secret = pattern(100_000, seed=2)
    p = s3.generate_presigned_post("photos", "enc/default", ExpiresIn=600)
    assert post(p, secret).status_code == 204
    h = s3.head_object(Bucket="photos", Key="enc/default")
    assert h["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket="photos", Key="enc/default")["Body"].read() == secret
    assert_no_plaintext(plain.data_dir, secret)

    # SSE-KMS asked for in the form (the field needs its condition, as on AWS).
    p = s3.generate_presigned_post("photos", "enc/kms", Fields={"x-amz-server-side-encryption": "aws:kms"},
                                   Conditions=[{"x-amz-server-side-encryption": "aws:kms"}], ExpiresIn=600)
    r = post(p, secret)
    assert r.status_code == 204, r.text
    assert s3.head_object(Bucket="photos", Key="enc/kms")["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket="photos", Key="enc/kms")["Body"].read() == secret


def test_success_action_status_and_redirect(plain):
    s3 = client(plain)
    s3.create_bucket(Bucket="forms")
    p = s3.generate_presigned_post("forms", "in/${filename}", Fields={"success_action_status": "201"},
                                   Conditions=[{"success_action_status": "201"}], ExpiresIn=600)
    r = post(p, b"created", filename="a b&c.txt")
    assert r.status_code == 201, r.text
    doc = ET.fromstring(r.content)
    assert doc.tag.endswith("PostResponse")
    assert child(doc, "Key") == "in/a b&c.txt", r.text
    assert child(doc, "Bucket") == "forms"
    etag = s3.head_object(Bucket="forms", Key="in/a b&c.txt")["ETag"]
    assert child(doc, "ETag").strip('"') == etag.strip('"')

    p = s3.generate_presigned_post("forms", "plain-200", Fields={"success_action_status": "200"},
                                   Conditions=[{"success_action_status": "200"}], ExpiresIn=600)
    r = post(p, b"ok")
    assert (r.status_code, r.content) == (200, b"")

    done = "https://app.example/done?from=form"
    p = s3.generate_presigned_post("forms", "up/${filename}", Fields={"success_action_redirect": done},
                                   Conditions=[{"success_action_redirect": done}], ExpiresIn=600)
    r = post(p, b"redirected", filename="r.txt", allow_redirects=False)
    assert r.status_code == 303, r.text
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "app.example", "/done")
    q = urllib.parse.parse_qs(loc.query)
    etag = s3.head_object(Bucket="forms", Key="up/r.txt")["ETag"]
    assert q["from"] == ["form"] and q["bucket"] == ["forms"] and q["key"] == ["up/r.txt"], q
    assert q["etag"][0].strip('"') == etag.strip('"')
    assert s3.get_object(Bucket="forms", Key="up/r.txt")["Body"].read() == b"redirected"


def test_refused_forms_store_nothing(plain):
    s3 = client(plain)
    s3.create_bucket(Bucket="guarded")
    s3.create_bucket(Bucket="other")
    cond = [["starts-with", "$key", "uploads/"], {"x-amz-meta-owner": "alice"}, ["eq", "$Content-Type", "image/png"],
            ["content-length-range", 1, 1024]]
    fields = {"x-amz-meta-owner": "alice", "Content-Type": "image/png"}
    p = s3.generate_presigned_post("guarded", "uploads/${filename}", Fields=fields, Conditions=cond, ExpiresIn=600)
    assert post(p, b"fits", filename="ok.png").status_code == 204
    cases = {
        "key outside starts-with": dict(extra={"key": "elsewhere/x"}),
        "eq violated": dict(extra={"Content-Type": "text/html"}),
        "condition's field missing": dict(drop=("x-amz-meta-owner",)),
        "x-amz-meta field not in the policy": dict(extra={"x-amz-meta-extra": "1"}),
        "SSE field not in the policy": dict(extra={"x-amz-server-side-encryption": "AES256"}),
        "another bucket": dict(url=p["url"].replace("/guarded", "/other")),
    }
    for name, kw in cases.items():
        r = post(p, b"refused", filename=f"{name}.png", **kw)
        assert error(r) == (403, "AccessDenied"), (name, r.text)
        assert b"Invalid according to Policy" in r.content, (name, r.text)
    # A file beyond the policy's content-length-range; one under its minimum.
    assert error(post(p, pattern(4 << 20), filename="big.png")) == (400, "EntityTooLarge")
    assert error(post(p, b"", filename="empty.png")) == (400, "EntityTooSmall")
    # An expired policy.
    old = s3.generate_presigned_post("guarded", "uploads/${filename}", Fields=fields, Conditions=cond, ExpiresIn=-5)
    r = post(old, b"late", filename="late.png")
    assert error(r) == (403, "AccessDenied") and b"Policy expired" in r.content, r.text
    # A policy signed with another secret key, and an access key nobody has.
    forged = client(plain, plain.access, "not-the-secret-key").generate_presigned_post(
        "guarded", "uploads/${filename}", Fields=fields, Conditions=cond, ExpiresIn=600)
    assert error(post(forged, b"forged")) == (403, "SignatureDoesNotMatch")
    ghost = client(plain, "ghost", "ghost-secret-key").generate_presigned_post("guarded", "uploads/x", ExpiresIn=600)
    assert error(post(ghost, b"ghost")) == (403, "InvalidAccessKeyId")
    # A signed form without its key fails the policy's key condition; a form without any key
    # is AWS's 400 InvalidArgument.
    assert error(post(p, b"x", drop=("key",))) == (403, "AccessDenied")
    r = requests.post(p["url"], data={"x-ignore-note": "n"}, files={"file": ("a", b"anon")}, timeout=30)
    assert error(r) == (400, "InvalidArgument")
    # An unsigned form on a bucket without a policy.
    r = requests.post(p["url"], data={"key": "uploads/anon"}, files={"file": ("a", b"anon")}, timeout=30)
    assert error(r) == (403, "AccessDenied")
    # Only the private canned ACL exists here, in a form as in a header.
    acl = s3.generate_presigned_post("guarded", "uploads/acl", Fields={"acl": "public-read"},
                                     Conditions=[{"acl": "public-read"}], ExpiresIn=600)
    assert error(post(acl, b"acl")) == (501, "NotImplemented")
    assert keys(s3, "guarded") == ["uploads/ok.png"]
    assert keys(s3, "other") == []
    assert tmp_files(plain) == []


def test_oversized_file_is_refused_before_it_is_held(plain):
    """Without a content-length-range, a form's file is bounded by the server (s3s holds it in
    memory until the policy is checked): past 64 MiB it is refused and nothing is stored."""
    s3 = client(plain)
    s3.create_bucket(Bucket="big")
    p = s3.generate_presigned_post("big", "huge", ExpiresIn=600)
    status = pathlib.Path(f"/proc/{plain.proc.pid}/status")

    def peak_mib():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) // 1024

    before = peak_mib()
    try:
        r = post(p, b"\0" * (80 << 20))
        assert error(r) == (400, "EntityTooLarge"), r.text[:300]
    except requests.ConnectionError:
        pass  # the server may close the connection while the rest of the body is still coming
    assert keys(s3, "big") == []
    assert tmp_files(plain) == []
    assert peak_mib() - before < 64 + 48, (before, peak_mib())
    # Just under the bound is stored.
    ok = pattern(3 << 20, seed=3)
    assert post(p, ok).status_code == 204
    assert s3.get_object(Bucket="big", Key="huge")["Body"].read() == ok


def test_users_sign_forms_with_their_own_keys(plain):
    s3 = client(plain)
    s3.create_bucket(Bucket="team")
    writer = client(plain, "writer1", "writer1-secret-key")
    p = writer.generate_presigned_post("team", "by-writer", ExpiresIn=600)
    assert post(p, b"from writer1").status_code == 204
    assert s3.get_object(Bucket="team", Key="by-writer")["Body"].read() == b"from writer1"
    reader = client(plain, "reader1", "reader1-secret-key")
    r = post(reader.generate_presigned_post("team", "by-reader", ExpiresIn=600), b"from reader1")
    assert error(r) == (403, "AccessDenied")
    assert keys(s3, "team") == ["by-writer"]


def v2_form(bucket, key, access, secret, url):
    """A SigV2-signed form (`AWSAccessKeyId`, `signature`: HMAC-SHA1 of the policy)."""
    expiration = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policy = base64.b64encode(json.dumps({"expiration": expiration, "conditions": [
        {"bucket": bucket}, {"key": key}]}).encode()).decode()
    sig = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    return {"url": url, "fields": {"key": key, "AWSAccessKeyId": access, "policy": policy, "signature": sig}}


def test_signature_version_and_auth_type_conditions(plain):
    s3 = client(plain)
    s3.create_bucket(Bucket="sig")

    def deny(prefix, test, key, value):
        return {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::sig/{prefix}*"], "Condition": {test: {key: value}}}

    s3.put_bucket_policy(Bucket="sig", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        deny("needs-v4/", "StringNotEquals", "s3:signatureversion", "AWS4-HMAC-SHA256"),
        deny("no-v2/", "StringEquals", "s3:signatureversion", "AWS"),
        deny("no-forms/", "StringEquals", "s3:authType", "POST"),
    ]}))
    url = f"{plain.endpoint}/sig"
    v4 = lambda key: post(s3.generate_presigned_post("sig", key, ExpiresIn=600), b"v4")  # noqa: E731
    v2 = lambda key: post(v2_form("sig", key, plain.access, plain.secret, url), b"v2")  # noqa: E731
    assert v4("needs-v4/a").status_code == 204
    assert error(v2("needs-v4/b")) == (403, "AccessDenied")
    assert v4("no-v2/a").status_code == 204
    assert error(v2("no-v2/b")) == (403, "AccessDenied")
    assert v2("free/b").status_code == 204
    assert error(v4("no-forms/a")) == (403, "AccessDenied")
    # A PUT is not a form.
    s3.put_object(Bucket="sig", Key="no-forms/put", Body=b"x")
    assert keys(s3, "sig") == ["free/b", "needs-v4/a", "no-forms/put", "no-v2/a"]


def test_sse_c_form_fields_over_tls(tmp_path):
    certs = tmp_path / "certs"
    make_certs(certs)
    s = Server(tmp_path / "data", certs_dir=certs).start()
    s3 = client(s)
    s3.create_bucket(Bucket="private")
    key = bytes(range(32))
    ssec = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }
    cond = [["starts-with", f"${name}", ""] for name in ssec]
    p = s3.generate_presigned_post("private", "mine", Fields=ssec, Conditions=cond, ExpiresIn=600)
    body = pattern(150_000, seed=4)
    r = post(p, body, verify=s.ca)
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket="private", Key="mine", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == body and got["SSECustomerAlgorithm"] == "AES256"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket="private", Key="mine")
    assert_no_plaintext(s.data_dir, body)
    # The same fields without their conditions are refused (AWS exempts no SSE field).
    p = s3.generate_presigned_post("private", "unlisted", Fields=ssec, ExpiresIn=600)
    assert error(post(p, body, verify=s.ca)) == (403, "AccessDenied")
    assert keys(s3, "private") == ["mine"]
    s.stop()
