"""The access-control findings of the security review (issue #18) and #25, against the real
server: version-specific actions, condition values read from the decoded request, DeleteObjects
decided per key (the action, the version, the governance bypass, at most 1000 keys), the
s3:authType / s3:signatureVersion / s3:LocationConstraint keys, and admin bodies that may not do
more than the action checked allows."""
import datetime
import json

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests

from conftest import Server
from test_iam import as_user, mc


def deny(bucket, actions, resource="*", condition=None):
    st = {"Effect": "Deny", "Principal": "*", "Action": actions, "Resource": [f"arn:aws:s3:::{bucket}/{resource}"]}
    if condition:
        st["Condition"] = condition
    return st


def put_policy(s3, bucket, *statements):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def status(fn, **kw):
    """The HTTP status `fn(**kw)` ends with."""
    try:
        r = fn(**kw)
        return r["ResponseMetadata"]["HTTPStatusCode"]
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


def signed(server, method, path, signed_query, sent_query, body=b""):
    """A SigV4 request whose signature covers `signed_query` but whose URL carries `sent_query`
    (the same parameters spelled differently: the canonical query decodes names and values)."""
    creds = botocore.credentials.Credentials(server.access, server.secret)
    req = botocore.awsrequest.AWSRequest(method=method, url=f"{server.endpoint}{path}?{signed_query}", data=body)
    botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    headers = dict(req.headers.items())
    return requests.request(method, f"{server.endpoint}{path}?{sent_query}", headers=headers, data=body, timeout=10)


def versioned_bucket(s3, name):
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_version_actions_are_asked_for(server, s3):
    b = versioned_bucket(s3, "versions")
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=b, Key="k", Body=b"two")
    put_policy(s3, b, deny(b, ["s3:DeleteObjectVersion", "s3:GetObjectVersion", "s3:PutObjectVersionTagging",
                               "s3:GetObjectVersionTagging", "s3:DeleteObjectVersionTagging"]))
    # The current version stays reachable with the plain actions.
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    assert status(s3.head_object, Bucket=b, Key="k") == 200
    assert status(s3.put_object_tagging, Bucket=b, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}) == 200
    assert status(s3.get_object_tagging, Bucket=b, Key="k") == 200
    # A named version needs the version actions, which the policy denies.
    assert status(s3.get_object, Bucket=b, Key="k", VersionId=v1) == 403
    assert status(s3.head_object, Bucket=b, Key="k", VersionId=v1) == 403
    assert status(s3.put_object_tagging, Bucket=b, Key="k", VersionId=v1,
                  Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}) == 403
    assert status(s3.get_object_tagging, Bucket=b, Key="k", VersionId=v1) == 403
    assert status(s3.delete_object_tagging, Bucket=b, Key="k", VersionId=v1) == 403
    assert status(s3.delete_object, Bucket=b, Key="k", VersionId=v1) == 403
    # The version is still there; a delete marker (no version id) is only s3:DeleteObject.
    assert status(s3.delete_object, Bucket=b, Key="k") == 204
    s3.delete_bucket_policy(Bucket=b)
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"


def test_percent_encoded_query_names_are_the_same_parameter(server, s3):
    b = versioned_bucket(s3, "encoded")
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=b, Key="secret/x", Body=b"x")
    put_policy(s3, b,
               deny(b, ["s3:GetObjectVersion"]),
               {"Effect": "Deny", "Principal": "*", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{b}"],
                "Condition": {"StringLike": {"s3:prefix": ["secret/*"]}}})
    # Spelled plainly, both are refused.
    assert signed(server, "GET", f"/{b}/k", f"versionId={v1}", f"versionId={v1}").status_code == 403
    assert signed(server, "GET", f"/{b}", "list-type=2&prefix=secret%2F", "list-type=2&prefix=secret%2F").status_code == 403
    # A percent-encoded name is the same parameter to the signature and to the operation, so it is
    # refused as well (it used to skip the condition and the version action).
    r = signed(server, "GET", f"/{b}/k", f"versionId={v1}", f"version%49d={v1}")
    assert r.status_code == 403, (r.status_code, r.text)
    r = signed(server, "GET", f"/{b}", "list-type=2&prefix=secret%2F", "list-type=2&pre%66ix=secret%2F")
    assert r.status_code == 403, (r.status_code, r.text)
    # The same requests on what the policy allows go through: the spelling itself is fine.
    r = signed(server, "GET", f"/{b}", "list-type=2&prefix=pub%2F", "list-type=2&pre%66ix=pub%2F")
    assert r.status_code == 200, (r.status_code, r.text)


def test_delete_objects_is_decided_per_key(server, s3):
    b = versioned_bucket(s3, "batch")
    s3.put_object(Bucket=b, Key="protected/a", Body=b"a")
    s3.put_object(Bucket=b, Key="free/b", Body=b"b")
    v = s3.put_object(Bucket=b, Key="free/c", Body=b"c")["VersionId"]
    put_policy(s3, b, deny(b, ["s3:DeleteObject"], "protected/*"), deny(b, ["s3:DeleteObjectVersion"], "free/c"))
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "protected/a"}, {"Key": "free/b"}, {"Key": "free/c", "VersionId": v}]})
    errors = {e["Key"]: e for e in r.get("Errors", [])}
    assert set(errors) == {"protected/a", "free/c"}, r
    assert all(e["Code"] == "AccessDenied" for e in errors.values()), r
    assert errors["free/c"]["VersionId"] == v
    assert [d["Key"] for d in r.get("Deleted", [])] == ["free/b"], r
    # Refused keys are untouched; the allowed one got its delete marker.
    assert s3.get_object(Bucket=b, Key="protected/a")["Body"].read() == b"a"
    assert s3.get_object(Bucket=b, Key="free/c", VersionId=v)["Body"].read() == b"c"
    assert status(s3.get_object, Bucket=b, Key="free/b") == 404


def test_delete_objects_governance_bypass_is_decided_per_key(server, s3):
    b = "locked"
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    versions = {}
    for key in ("keep/a", "other/b"):
        versions[key] = s3.put_object(Bucket=b, Key=key, Body=b"x", ObjectLockMode="GOVERNANCE",
                                      ObjectLockRetainUntilDate=until)["VersionId"]
    put_policy(s3, b, deny(b, ["s3:BypassGovernanceRetention"], "keep/*"))
    r = s3.delete_objects(Bucket=b, BypassGovernanceRetention=True, Delete={"Objects": [
        {"Key": k, "VersionId": v} for k, v in versions.items()]})
    assert [d["Key"] for d in r.get("Deleted", [])] == ["other/b"], r
    assert [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("keep/a", "AccessDenied")], r
    assert s3.head_object(Bucket=b, Key="keep/a", VersionId=versions["keep/a"])["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_delete_objects_with_more_than_1000_keys_is_malformed(server, s3):
    b = "many"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k0", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Code"] == "MalformedXML"
    assert s3.get_object(Bucket=b, Key="k0")["Body"].read() == b"x"
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1000)]})
    assert len(r["Deleted"]) == 1000


def test_auth_type_and_signature_version_are_filled_in(server, s3):
    b = "authtype"
    s3.create_bucket(Bucket=b)
    for k in ("q/x", "v4/x", "v2/x"):
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    put_policy(s3, b,
               deny(b, ["s3:GetObject"], "q/*", {"StringEquals": {"s3:authType": "REST-QUERY-STRING"}}),
               deny(b, ["s3:GetObject"], "v4/*", {"StringEquals": {"s3:signatureversion": "AWS4-HMAC-SHA256"}}),
               deny(b, ["s3:GetObject"], "v2/*", {"StringNotEquals": {"s3:signatureversion": "AWS"}}))
    # Header-signed: allowed on q/, denied on v4/ and v2/ (it is SigV4).
    assert status(s3.get_object, Bucket=b, Key="q/x") == 200
    assert status(s3.get_object, Bucket=b, Key="v4/x") == 403
    assert status(s3.get_object, Bucket=b, Key="v2/x") == 403
    # Presigned: a query signature.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "q/x"})
    assert requests.get(url, timeout=10).status_code == 403
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "other"})
    assert requests.get(url, timeout=10).status_code == 404


def test_location_constraint_is_filled_in(tmp_path):
    s = Server(tmp_path / "data").start()
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]},
        {"Effect": "Deny", "Action": ["s3:CreateBucket"], "Resource": ["arn:aws:s3:::*"],
         "Condition": {"StringEquals": {"s3:LocationConstraint": "eu-west-1"}}}]}))
    mc(s, cfg, "admin", "policy", "create", "c", "no-eu", str(pol))
    mc(s, cfg, "admin", "user", "add", "c", "maker1", "maker1-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "no-eu", "--user", "maker1")
    u = as_user(s, "maker1", "maker1-secret-key").client()
    assert status(u.create_bucket, Bucket="in-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}) == 403
    assert "in-eu" not in [x["Name"] for x in s.client().list_buckets()["Buckets"]]
    assert status(u.create_bucket, Bucket="plain") == 200
    s.stop()


def test_create_user_right_cannot_take_over_a_user(tmp_path):
    s = Server(tmp_path / "data").start()
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["admin:CreateUser", "admin:ListUsers"]}]}))
    mc(s, cfg, "admin", "policy", "create", "c", "user-maker", str(pol))
    mc(s, cfg, "admin", "user", "add", "c", "maker1", "maker1-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "user-maker", "--user", "maker1")
    mc(s, cfg, "admin", "user", "add", "c", "boss1", "boss1-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "consoleAdmin", "--user", "boss1")
    mc(s, cfg, "admin", "user", "add", "c", "off1", "off1-secret-key")
    mc(s, cfg, "admin", "user", "disable", "c", "off1")
    mc(s, cfg, "alias", "set", "m", s.endpoint, "maker1", "maker1-secret-key")
    # A new user: what admin:CreateUser is for.
    mc(s, cfg, "admin", "user", "add", "m", "new1", "new1-secret-key")
    # The admin's secret key cannot be reset with admin:CreateUser alone...
    r = mc(s, cfg, "admin", "user", "add", "m", "boss1", "taken-over-key", check=False)
    assert r.returncode != 0 and "Access Denied" in r.stdout + r.stderr, r.stdout + r.stderr
    r = mc(s, cfg, "admin", "user", "add", "m", "off1", "off1-new-key1", check=False)
    assert r.returncode != 0, r.stdout + r.stderr
    boss = as_user(s, "boss1", "boss1-secret-key").client()
    assert status(boss.list_buckets) == 200
    assert status(as_user(s, "boss1", "taken-over-key").client().list_buckets) == 403
    # ...but maker1 may change its own, and the root user (mc's usual flow) anyone's.
    mc(s, cfg, "admin", "user", "add", "m", "maker1", "maker1-other-key")
    mc(s, cfg, "admin", "user", "add", "c", "boss1", "boss1-second-key")
    assert status(as_user(s, "boss1", "boss1-second-key").client().list_buckets) == 200
    info = json.loads(mc(s, cfg, "admin", "user", "info", "c", "boss1", "--json").stdout)
    assert info["policyName"] == "consoleAdmin", info
    s.stop()


def test_browser_post_is_decided_on_the_form_key(server, s3):
    """A POST upload names its key in the form: the policy sees that key (it used to see only
    the bucket, so a Deny on a prefix let POST uploads through) and s3:authType POST."""
    b = "forms"
    s3.create_bucket(Bucket=b)
    put_policy(s3, b, deny(b, ["s3:PutObject"], "secret/*"),
               deny(b, ["s3:PutObject"], "noform/*", {"StringEquals": {"s3:authType": "POST"}}))

    def post(key):
        p = s3.generate_presigned_post(b, key)
        return requests.post(p["url"], data=p["fields"], files={"file": ("f", b"posted")}, timeout=10).status_code

    assert post("secret/x") == 403
    assert post("noform/x") == 403
    assert post("pub/x") in (200, 204)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    assert keys == ["pub/x"], keys
    # The same keys with a signed PUT: the prefix deny holds, the POST-only deny does not apply.
    assert status(s3.put_object, Bucket=b, Key="secret/y", Body=b"x") == 403
    assert status(s3.put_object, Bucket=b, Key="noform/y", Body=b"x") == 200


def test_write_headers_need_their_actions(server, s3):
    """Tags, retention and legal hold in a PUT's headers need s3:PutObjectTagging,
    s3:PutObjectRetention, s3:PutObjectLegalHold as their own requests do (AWS, MinIO)."""
    b = "headers"
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    put_policy(s3, b, deny(b, ["s3:PutObjectTagging", "s3:PutObjectRetention", "s3:PutObjectLegalHold"]))
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert status(s3.put_object, Bucket=b, Key="plain", Body=b"x") == 200
    assert status(s3.put_object, Bucket=b, Key="t", Body=b"x", Tagging="a=b") == 403
    assert status(s3.put_object, Bucket=b, Key="r", Body=b"x", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=until) == 403
    assert status(s3.put_object, Bucket=b, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON") == 403
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    assert keys == ["plain"], keys


def test_delete_objects_refused_everywhere_tells_nothing_about_the_bucket(server, s3):
    """A caller that may delete none of the keys learns nothing from the batch, not even whether
    the bucket exists."""
    from test_iam import unsigned
    anon = unsigned(server)
    s3.create_bucket(Bucket="exists")
    s3.put_object(Bucket="exists", Key="k", Body=b"x")
    for b in ("exists", "missing"):
        try:
            r = anon.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k"}]})
            assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("k", "AccessDenied")], r
            assert not r.get("Deleted"), r
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDenied", e.response
    assert s3.get_object(Bucket="exists", Key="k")["Body"].read() == b"x"
