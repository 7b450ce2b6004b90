"""`mc admin cluster bucket export|import` and `mc admin cluster iam export|import` with the
pinned `mc`, from the real MinIO peer into Coffer and from Coffer into Coffer: every bucket
setting reads back equal through S3, users sign in with their MinIO secret keys and their
policies (own and group's) apply. A readonly user is refused every route; hostile archives
(not a zip, a zip bomb, too many entries, paths out of the archive, a policy no one defines,
bad settings) are refused and change nothing."""
import io
import json
import re
import subprocess
import zipfile

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests

from conftest import Server, peer
from test_import_minio import (  # noqa: F401 (fixtures)
    STATIC_KEY,
    Minio,
    _stop_minio,
    bucket_settings,
    check_users,
    make_users,
)

BUCKETS = ["bkt1", "bkt2", "plain", "ver", "susp", "locked", "gov", "crypt", "kmsb", "empty"]
ROUTES = [("GET", "export-bucket-metadata"), ("PUT", "import-bucket-metadata"), ("GET", "export-iam"),
          ("PUT", "import-iam"), ("PUT", "import-iam-v2")]


class Mc:
    """The pinned `mc` with its own config directory (self-signed certificates accepted)."""

    def __init__(self, root):
        self.root = root
        self.base = [peer("mc"), "--config-dir", str(root / "mc"), "--no-color", "--insecure"]

    def alias(self, name, endpoint, access, secret):
        self(["alias", "set", name, endpoint, access, secret])

    def __call__(self, args, check=True):
        r = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=120, cwd=self.root)
        assert not check or r.returncode == 0, f"mc {args}: {r.stdout}{r.stderr}"
        return r

    def export(self, alias, what):
        """`mc admin cluster {bucket|iam} export ALIAS`: the archive's path."""
        r = self(["admin", "cluster", what, "export", alias])
        name = f"{alias}-bucket-metadata.zip" if what == "bucket" else f"{alias}-iam-info.zip"
        assert name in r.stdout + r.stderr, r.stdout + r.stderr
        return self.root / name

    def import_(self, alias, what, archive):
        return json_stream(self(["--json", "admin", "cluster", what, "import", alias, str(archive)]).stdout)


def json_stream(text):
    """The JSON documents `mc --json` printed one after the other."""
    out, at, dec = [], 0, json.JSONDecoder()
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        doc, at = dec.raw_decode(text, at)
        out.append(doc)
    return out


def bucket_setup(minio):
    """Buckets with every setting Coffer has, and a quota (which it has not)."""
    c = minio.client()
    c.create_bucket(Bucket="plain")
    c.put_bucket_tagging(Bucket="plain", Tagging={"TagSet": [{"Key": "owner", "Value": "ops"},
                                                             {"Key": "env", "Value": "prod eu"}]})
    c.put_bucket_policy(Bucket="plain", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::plain/folder/*"]}]}))
    c.put_bucket_lifecycle_configuration(Bucket="plain", LifecycleConfiguration={"Rules": [
        {"ID": "old-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
        {"ID": "tmp", "Status": "Disabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
    c.create_bucket(Bucket="ver")
    c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    c.create_bucket(Bucket="susp")
    c.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    c.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 3}}})
    c.create_bucket(Bucket="gov", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="gov", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 1}}})
    c.create_bucket(Bucket="crypt")
    c.put_bucket_encryption(Bucket="crypt", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    c.create_bucket(Bucket="kmsb")
    c.put_bucket_encryption(Bucket="kmsb", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "minio-static-key"}}]})
    c.create_bucket(Bucket="empty")


def full_settings(c):
    """`bucket_settings` with the whole lifecycle, encryption and lock answers."""
    got = bucket_settings(c, BUCKETS)
    for b in BUCKETS:
        try:
            got[b]["kms_key"] = c.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0][
                "ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID", "").split(":")[-1].split("/")[-1]
        except c.exceptions.ClientError as e:
            got[b]["kms_key"] = e.response["Error"]["Code"]
        try:
            rules = c.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
            got[b]["lifecycle"] = sorted((r["ID"], r["Status"], r.get("Filter"), r["Expiration"]).__repr__() for r in rules)
        except c.exceptions.ClientError as e:
            got[b]["lifecycle"] = e.response["Error"]["Code"]
        if isinstance(got[b]["tags"], list):
            got[b]["tags"] = sorted((t["Key"], t["Value"]) for t in got[b]["tags"])
    return got


def copy_objects(src, dst):
    """The objects `check_users` reads (bucket metadata carries no objects)."""
    for b in ["bkt1", "bkt2"]:
        dst.put_object(Bucket=b, Key="obj", Body=src.get_object(Bucket=b, Key="obj")["Body"].read())


def admin(server, method, route, body=b"", access=None, secret=None):
    """A signed admin call; (status, body)."""
    url = f"{server.endpoint}/minio/admin/v3/{route}"
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
    creds = botocore.credentials.Credentials(access or server.access, secret or server.secret)
    botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    r = requests.request(method, url, headers=dict(req.headers.items()), data=body, timeout=120)
    return r.status_code, r.content


def error_code(body):
    m = re.search(rb"<Code>([^<]+)</Code>", body)
    return m.group(1).decode() if m else body[:200]


def zip_of(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return out.getvalue()


def state(server, mc, alias):
    """What an import could change: users with status and policies, policies, buckets, settings."""
    users = json_stream(mc(["--json", "admin", "user", "list", alias]).stdout)
    policies = json_stream(mc(["--json", "admin", "policy", "list", alias]).stdout)
    c = server.client()
    buckets = sorted(b["Name"] for b in c.list_buckets()["Buckets"])
    return {
        "users": sorted((u["accessKey"], u.get("userStatus"), u.get("policyName")) for u in users),
        "policies": sorted(p["policy"] for p in policies),
        "buckets": buckets,
        "settings": bucket_settings(c, buckets),
    }


def test_minio_to_coffer_and_coffer_to_coffer_through_mc(tmp_path):
    minio = Minio(tmp_path / "minio", {"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    make_users(minio, tmp_path)
    bucket_setup(minio)
    mc = Mc(tmp_path)
    mc.alias("m", minio.endpoint, "minio-admin", "minio-secret-key")
    mc(["quota", "set", "m/bkt2", "--size", "1GiB"])
    want = full_settings(minio.client())
    assert want["locked"]["lock"]["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 3}, want
    buckets_zip = mc.export("m", "bucket")
    iam_zip = mc.export("m", "iam")
    users = json.loads(zipfile.ZipFile(iam_zip).read("iam-assets/users.json"))
    assert users["alice"]["secretKey"] == "alice-secret-key"  # MinIO's export holds the secret keys

    env = {"MINIO_KMS_SECRET_KEY": STATIC_KEY}
    one = Server(tmp_path / "coffer1", env=env).start()
    mc.alias("c1", one.endpoint, one.access, one.secret)
    report = mc.import_("c1", "bucket", buckets_zip)
    print(json.dumps(report, indent=1))
    got = full_settings(one.client())
    assert got == want
    assert one.client().get_bucket_versioning(Bucket="empty").get("Status") is None
    # The quota is reported as not imported, per bucket, as mc shows MinIO's own refusals.
    text = mc(["admin", "cluster", "bucket", "import", "c1", str(buckets_zip)]).stdout
    assert re.search(r"Name\s*:\s*bkt2\n(.*\n)*?\s*Quota:\s*✗", text), text

    r = mc.import_("c1", "iam", iam_zip)
    print(json.dumps(r, indent=1))
    text = mc(["admin", "cluster", "iam", "import", "c1", str(iam_zip)]).stdout
    assert "Added users: alice, bob, carol" in text and "Skipped service accounts: alicesvc1" in text, text
    assert "Skipped groups: team" in text and "Added policies: getb1" in text, text
    copy_objects(minio.client(), one.client())
    check_users(one.endpoint)
    minio.stop()

    # Coffer → Coffer: what Coffer exports, Coffer imports the same.
    coffer_buckets = mc.export("c1", "bucket")
    coffer_iam = mc.export("c1", "iam")
    names = sorted(zipfile.ZipFile(coffer_buckets).namelist())
    assert "locked/object-lock.xml" in names and "plain/lifecycle.xml" in names, names
    two = Server(tmp_path / "coffer2", env=env).start()
    mc.alias("c2", two.endpoint, two.access, two.secret)
    mc.import_("c2", "bucket", coffer_buckets)
    mc.import_("c2", "iam", coffer_iam)
    assert full_settings(two.client()) == want
    copy_objects(one.client(), two.client())
    check_users(two.endpoint)
    for s in (one, two):
        log = s.output()
        assert "alice-secret-key" not in log and "bob-secret-key1" not in log
    assert state(one, mc, "c1") == state(two, mc, "c2")


@pytest.fixture
def coffer(tmp_path):
    s = Server(tmp_path / "coffer", env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    mc = Mc(tmp_path)
    mc.alias("c", s.endpoint, s.access, s.secret)
    c = s.client()
    c.create_bucket(Bucket="keep")
    c.put_bucket_tagging(Bucket="keep", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["admin:ExportBucketMetadata", "admin:ExportIAM"]}]}))
    mc(["admin", "policy", "create", "c", "exporter", str(pol)])
    mc(["admin", "user", "add", "c", "reader", "reader-secret-key"])
    mc(["admin", "policy", "attach", "c", "readonly", "--user", "reader"])
    mc(["admin", "user", "add", "c", "exp1", "exporter-secret-key"])
    mc(["admin", "policy", "attach", "c", "exporter", "--user", "exp1"])
    return s, mc


def test_each_route_needs_its_admin_action(coffer):
    s, mc = coffer
    before = state(s, mc, "c")
    good_iam = zip_of([("iam-assets/users.json", json.dumps({"newuser": {"secretKey": "new-secret-key", "status": "enabled"}}))])
    good_buckets = zip_of([("newbucket/tagging.xml", "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>")])
    body = {"import-iam": good_iam, "import-iam-v2": good_iam, "import-bucket-metadata": good_buckets}
    for method, route in ROUTES:
        status, out = admin(s, method, route, body.get(route, b""), "reader", "reader-secret-key")
        assert (status, error_code(out)) == (403, "AccessDenied"), (route, status, out)
    mc.alias("reader", s.endpoint, "reader", "reader-secret-key")
    # mc fails (madmin closes an export's error answer before reading it: no message, for MinIO
    # too), and writes no archive.
    r = mc(["admin", "cluster", "iam", "export", "reader"], check=False)
    assert r.returncode != 0 and "Unable to export IAM info" in r.stderr, r.stdout + r.stderr
    assert not (mc.root / "reader-iam-info.zip").exists()
    archive = mc.root / "good-buckets.zip"
    archive.write_bytes(good_buckets)
    r = mc(["admin", "cluster", "bucket", "import", "reader", str(archive)], check=False)
    assert r.returncode != 0 and "Access Denied" in r.stdout + r.stderr, r.stdout + r.stderr
    # admin:Export* allow exporting, not importing.
    for method, route in ROUTES:
        status, out = admin(s, method, route, body.get(route, b""), "exp1", "exporter-secret-key")
        want = 200 if route.startswith("export") else 403
        assert status == want, (route, status, out)
        if status == 200:
            assert zipfile.ZipFile(io.BytesIO(out)).namelist(), route
    assert state(s, mc, "c") == before


def test_hostile_archives_change_nothing(coffer):
    s, mc = coffer
    before = state(s, mc, "c")
    bomb = zip_of([("iam-assets/users.json", b"{" + b" " * (200 << 20) + b"}")])
    assert len(bomb) < 1 << 20, len(bomb)
    bucket_bomb = zip_of([("keep/tagging.xml", b"<Tagging>" + b" " * (50 << 20) + b"</Tagging>")])
    user = {"secretKey": "good-secret-key", "status": "enabled"}
    cases = {
        "import-iam-v2": [
            b"not a zip at all",
            bomb,
            zip_of([(f"iam-assets/{i}.json", "{}") for i in range(17)]),
            zip_of([("../iam-assets/users.json", json.dumps({"x1user": user}))]),
            zip_of([("iam-assets/users.json", json.dumps({"x1user": user})),
                    ("iam-assets/user_mappings.json", json.dumps({"x1user": {"policy": "no-such-policy"}}))]),
            zip_of([("iam-assets/policies.json", json.dumps({"bad": {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}})),
                    ("iam-assets/users.json", json.dumps({"x1user": user}))]),
            zip_of([("iam-assets/users.json", json.dumps({"x1user": user, "coffer-admin": user}))]),
            zip_of([("iam-assets/users.json", json.dumps({"x1user": user, "x2user": {"secretKey": "short"}}))]),
            zip_of([("iam-assets/users.json", "{not json")]),
        ],
        "import-bucket-metadata": [
            b"PK\x03\x04 truncated",
            bucket_bomb,
            zip_of([(f"b{i}/tagging.xml", "<Tagging><TagSet></TagSet></Tagging>") for i in range(10_001)]),
            zip_of([("newbucket/tagging.xml", "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"),
                    ("keep/../../etc/policy.json", "{}")]),
            zip_of([("newbucket/tagging.xml", "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"),
                    ("keep/lifecycle.xml", "<LifecycleConfiguration><Rule><Status>Sometimes</Status></Rule></LifecycleConfiguration>")]),
            zip_of([("newbucket/policy.json", json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::keep/*"]}]}))]),
            zip_of([("Bad_Bucket/tagging.xml", "<Tagging><TagSet></TagSet></Tagging>")]),
            zip_of([("newbucket/tagging.xml", "<Tagging><TagSet><Tag><Key>a</Key>")]),
            zip_of([("newbucket/bucket-encryption.xml",
                     "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>"
                     "<KMSMasterKeyID>no-such-key</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>")]),
            zip_of([("newbucket/unknown.json", "{}")]),
        ],
    }
    want_code = {"import-iam-v2": "XMinioAdminInvalidArgument", "import-bucket-metadata": "InvalidRequest"}
    for route, bodies in cases.items():
        for i, body in enumerate(bodies):
            status, out = admin(s, "PUT", route, body)
            assert (status, error_code(out)) == (400, want_code[route]), (route, i, status, out[:300])
    # Larger than any import is read: refused before it is read.
    status, out = admin(s, "PUT", "import-iam", b"\0" * (17 << 20))
    assert status in (400, 413), (status, out[:300])
    assert state(s, mc, "c") == before
    # mc shows the refusal.
    bad = s.data_dir.parent / "bad.zip"
    bad.write_bytes(cases["import-iam-v2"][4])
    r = mc(["admin", "cluster", "iam", "import", "c", str(bad)], check=False)
    assert r.returncode != 0 and "no-such-policy" in r.stdout + r.stderr, r.stdout + r.stderr
    assert state(s, mc, "c") == before
