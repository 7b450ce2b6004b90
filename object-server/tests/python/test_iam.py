"""Access control with real clients: users and policies made with `mc admin`, used with the AWS
CLI and boto3; bucket policies (anonymous public read, deny unencrypted PUTs); ACLs; users
provisioned from COFFER_USERS_FILE; no secret key in a log or the data directory."""
import json
import os
import pathlib
import signal
import subprocess
import time

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest

from conftest import Server, peer


def mc(server, cfg, *args, check=True):
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"mc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}\nserver:\n{server.output()[-3000:]}")
    return r


def as_user(server, access, secret):
    """A copy of `server` whose clients sign as `access`."""
    u = Server.__new__(Server)
    u.__dict__.update(server.__dict__)
    u.access, u.secret = access, secret
    return u


def unsigned(server):
    conf = botocore.config.Config(signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", config=conf)


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def assert_no_secret(secrets, servers, data_dir):
    """None of `secrets` appears in any server log or any file under `data_dir`."""
    blobs = [(f"log of {s.endpoint}", s.output().encode()) for s in servers]
    blobs += [(str(p), p.read_bytes()) for p in pathlib.Path(data_dir).rglob("*") if p.is_file()]
    assert len(blobs) > len(servers), "the data directory holds files"
    for secret in secrets:
        for where, data in blobs:
            assert secret.encode() not in data, f"secret key found in {where}"


def test_mc_admin_users_and_policies_with_the_aws_cli(tmp_path, data_dirs):
    a = data_dirs.server(0).start()
    cfg = tmp_path / "mc"
    mc(a, cfg, "alias", "set", "c", a.endpoint, a.access, a.secret)
    mc(a, cfg, "mb", "c/shared")
    f = tmp_path / "f.txt"
    f.write_bytes(b"hello from root")
    mc(a, cfg, "cp", str(f), "c/shared/f.txt")

    mc(a, cfg, "admin", "user", "add", "c", "reader1", "reader1-secret-key")
    mc(a, cfg, "admin", "policy", "attach", "c", "readonly", "--user", "reader1")
    info = json.loads(mc(a, cfg, "admin", "user", "info", "c", "reader1", "--json").stdout)
    assert info["policyName"] == "readonly" and info["userStatus"] == "enabled", info
    assert "reader1" in mc(a, cfg, "admin", "user", "list", "c").stdout

    reader = as_user(a, "reader1", "reader1-secret-key")
    up = reader.aws("s3", "cp", str(f), "s3://shared/up.txt", check=False)
    assert up.returncode != 0 and "AccessDenied" in up.stderr, up.stderr
    reader.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_bytes() == b"hello from root"
    # Nothing was written by the refused upload.
    assert "up.txt" not in mc(a, cfg, "ls", "c/shared").stdout

    # A second process on the same directory sees the user; a change on one is in effect at once
    # on the other.
    b = data_dirs.server(1).start()
    reader_b = as_user(b, "reader1", "reader1-secret-key")
    reader_b.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "got-b.txt"))
    mc(a, cfg, "admin", "user", "disable", "c", "reader1")
    for r in (reader, reader_b):
        out = r.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "x.txt"), check=False)
        assert out.returncode != 0 and "403" in out.stderr, out.stderr
    mc(a, cfg, "admin", "user", "enable", "c", "reader1")
    reader_b.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "got-b2.txt"))

    # Everything survives a restart.
    a.stop()
    b.stop()
    a = data_dirs.server(0, port=a.port).start()
    reader = as_user(a, "reader1", "reader1-secret-key")
    reader.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "got-3.txt"))
    up = reader.aws("s3", "cp", str(f), "s3://shared/up.txt", check=False)
    assert "AccessDenied" in up.stderr, up.stderr

    # A policy of our own, attached and detached; writeonly; removal.
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::shared/uploads/*"]}]}))
    mc(a, cfg, "admin", "policy", "create", "c", "uploads-only", str(pol))
    assert "uploads-only" in mc(a, cfg, "admin", "policy", "list", "c").stdout
    doc = json.loads(mc(a, cfg, "admin", "policy", "info", "c", "uploads-only").stdout)
    assert doc["Policy"]["Statement"][0]["Resource"] == ["arn:aws:s3:::shared/uploads/*"]
    mc(a, cfg, "admin", "policy", "attach", "c", "uploads-only", "--user", "reader1")
    reader.aws("s3", "cp", str(f), "s3://shared/uploads/ok.txt")
    assert "AccessDenied" in reader.aws("s3", "cp", str(f), "s3://shared/elsewhere.txt", check=False).stderr
    busy = mc(a, cfg, "admin", "policy", "rm", "c", "uploads-only", check=False)
    assert busy.returncode != 0 and "attached" in busy.stdout + busy.stderr
    mc(a, cfg, "admin", "policy", "detach", "c", "uploads-only", "--user", "reader1")
    assert "AccessDenied" in reader.aws("s3", "cp", str(f), "s3://shared/uploads/no.txt", check=False).stderr
    mc(a, cfg, "admin", "policy", "rm", "c", "uploads-only")

    # ListBuckets shows a user without s3:ListAllMyBuckets only the buckets its policies reach.
    mc(a, cfg, "mb", "c/hidden")
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"]}]}))
    mc(a, cfg, "admin", "policy", "create", "c", "shared-reader", str(pol))
    mc(a, cfg, "admin", "user", "add", "c", "narrow1", "narrow1-secret-key")
    mc(a, cfg, "admin", "policy", "attach", "c", "shared-reader", "--user", "narrow1")
    narrow = as_user(a, "narrow1", "narrow1-secret-key")
    assert [b["Name"] for b in narrow.client().list_buckets()["Buckets"]] == ["shared"]
    assert "f.txt" in narrow.aws("s3", "ls", "s3://shared/").stdout
    assert narrow.aws("s3", "ls", "s3://hidden/", check=False).returncode != 0
    assert {b["Name"] for b in reader.client().list_buckets()["Buckets"]} == {"shared", "hidden"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}')
    r = mc(a, cfg, "admin", "policy", "create", "c", "bad", str(bad), check=False)
    assert r.returncode != 0 and "invalid action" in r.stdout + r.stderr

    # Only the root user or an admin may use the admin API.
    mc(a, cfg, "alias", "set", "r", a.endpoint, "reader1", "reader1-secret-key")
    r = mc(a, cfg, "admin", "user", "list", "r", check=False)
    assert r.returncode != 0 and "Access Denied" in r.stdout + r.stderr
    mc(a, cfg, "admin", "user", "add", "c", "admin2", "admin2-secret-key")
    mc(a, cfg, "admin", "policy", "attach", "c", "consoleAdmin", "--user", "admin2")
    mc(a, cfg, "alias", "set", "a2", a.endpoint, "admin2", "admin2-secret-key")
    assert "reader1" in mc(a, cfg, "admin", "user", "list", "a2").stdout
    assert "readonly" in mc(a, cfg, "admin", "user", "info", "r", "reader1").stdout  # its own info
    r = mc(a, cfg, "admin", "user", "info", "r", "admin2", check=False)
    assert r.returncode != 0 and "Access Denied" in r.stdout + r.stderr
    mc(a, cfg, "admin", "info", "a2")
    # The root user cannot be changed through the API.
    assert mc(a, cfg, "admin", "user", "disable", "c", a.access, check=False).returncode != 0

    mc(a, cfg, "admin", "user", "rm", "c", "reader1")
    out = reader.aws("s3", "cp", "s3://shared/f.txt", str(tmp_path / "x.txt"), check=False)
    assert out.returncode != 0 and "403" in out.stderr
    assert_no_secret(["reader1-secret-key", "admin2-secret-key", "narrow1-secret-key", a.secret], [a, b], data_dirs[0])
    a.stop()


def test_bucket_policy_public_read_lets_only_anonymous_gets_through(server, s3):
    s3.create_bucket(Bucket="public")
    s3.create_bucket(Bucket="closed")
    s3.put_object(Bucket="public", Key="hello.txt", Body=b"public hello")
    s3.put_object(Bucket="closed", Key="hello.txt", Body=b"closed hello")
    anon = unsigned(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        anon.get_object(Bucket="public", Key="hello.txt")
    assert code(e) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_policy(Bucket="public")
    assert code(e) == "NoSuchBucketPolicy"
    assert s3.get_bucket_policy_status(Bucket="public")["PolicyStatus"]["IsPublic"] is False

    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]},
              "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::public/*"]}]}
    s3.put_bucket_policy(Bucket="public", Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket="public")["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket="public")["PolicyStatus"]["IsPublic"] is True

    assert anon.get_object(Bucket="public", Key="hello.txt")["Body"].read() == b"public hello"
    assert anon.head_object(Bucket="public", Key="hello.txt")["ContentLength"] == 12
    refused = [
        lambda: anon.put_object(Bucket="public", Key="new.txt", Body=b"x"),
        lambda: anon.delete_object(Bucket="public", Key="hello.txt"),
        lambda: anon.list_objects_v2(Bucket="public"),
        lambda: anon.get_object(Bucket="closed", Key="hello.txt"),
        lambda: anon.get_bucket_policy(Bucket="public"),
        lambda: anon.put_bucket_policy(Bucket="public", Policy=json.dumps(policy)),
        lambda: anon.list_buckets(),
        lambda: anon.create_bucket(Bucket="anon-bucket"),
    ]
    for call in refused:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="public")["Contents"]] == ["hello.txt"]
    assert "anon-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # A policy about another bucket, or malformed, is refused and changes nothing.
    other = dict(policy, Statement=[dict(policy["Statement"][0], Resource=["arn:aws:s3:::closed/*"])])
    for bad in [json.dumps(other), "{not json", json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::public/*"}]})]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.put_bucket_policy(Bucket="public", Policy=bad)
        assert code(e) == "MalformedPolicy"
    assert json.loads(s3.get_bucket_policy(Bucket="public")["Policy"]) == policy

    s3.delete_bucket_policy(Bucket="public")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        anon.get_object(Bucket="public", Key="hello.txt")
    assert code(e) == "AccessDenied"


def test_bucket_policy_denying_unencrypted_puts(tmp_path):
    # Auto-encryption off: a plain PUT really is unencrypted.
    s = Server(tmp_path / "data", env={"MINIO_KMS_SECRET_KEY": "k:" + "A" * 43 + "="}).start()
    s3 = s.client()
    s3.create_bucket(Bucket="enc")
    deny = {"Version": "2012-10-17", "Statement": [{"Sid": "DenyUnencrypted", "Effect": "Deny", "Principal": "*",
            "Action": "s3:PutObject", "Resource": "arn:aws:s3:::enc/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms"]}}}]}
    s3.put_bucket_policy(Bucket="enc", Policy=json.dumps(deny))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="enc", Key="plain", Body=b"plain")
    assert code(e) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="enc", Key="plain")
    r = s3.put_object(Bucket="enc", Key="sse", Body=b"secret", ServerSideEncryption="AES256")
    assert r["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket="enc", Key="sse")["Body"].read() == b"secret"
    # Multipart: the SSE header is on CreateMultipartUpload only; its parts are allowed.
    uid = s3.create_multipart_upload(Bucket="enc", Key="mp", ServerSideEncryption="AES256")["UploadId"]
    part = os.urandom(5 * 1024 * 1024)
    etag = s3.upload_part(Bucket="enc", Key="mp", UploadId=uid, PartNumber=1, Body=part)["ETag"]
    s3.complete_multipart_upload(Bucket="enc", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket="enc", Key="mp")["Body"].read() == part
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_multipart_upload(Bucket="enc", Key="mp2")
    assert code(e) == "AccessDenied"
    # The owner can still read and remove the policy.
    assert "DenyUnencrypted" in s3.get_bucket_policy(Bucket="enc")["Policy"]
    s3.delete_bucket_policy(Bucket="enc")
    s3.put_object(Bucket="enc", Key="plain", Body=b"plain")
    s.stop()


def test_a_damaged_bucket_policy_denies_instead_of_dropping_its_denies(tmp_path):
    """A stored bucket policy that no longer parses (a bad disk, a hand edit) must not stop its
    denies from applying: every request on the bucket is refused, the root user can still replace
    or delete the policy, and then access is as before."""
    s = Server(tmp_path / "data").start()
    s3 = s.client()
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    mc(s, cfg, "admin", "user", "add", "c", "app1", "app1-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "readwrite", "--user", "app1")
    app1 = as_user(s, "app1", "app1-secret-key").client()
    s3.create_bucket(Bucket="guarded")
    s3.put_object(Bucket="guarded", Key="k", Body=b"kept")
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:GetObject"], "Resource": "arn:aws:s3:::guarded/*"}]}
    s3.put_bucket_policy(Bucket="guarded", Policy=json.dumps(deny))
    for call in [lambda: app1.get_object(Bucket="guarded", Key="k"), lambda: app1.delete_object(Bucket="guarded", Key="k")]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code(e) == "AccessDenied"

    (s.data_dir / "guarded" / ".policy.json").write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "De')
    refused = [
        lambda: app1.get_object(Bucket="guarded", Key="k"),
        lambda: app1.delete_object(Bucket="guarded", Key="k"),
        lambda: app1.put_object(Bucket="guarded", Key="new", Body=b"x"),
        lambda: app1.list_objects_v2(Bucket="guarded"),
        lambda: s3.get_object(Bucket="guarded", Key="k"),
        lambda: unsigned(s).get_object(Bucket="guarded", Key="k"),
    ]
    for call in refused:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code(e) == "AccessDenied", e.value.response
    assert "stored bucket policy does not parse" in s.output()
    # Other buckets are not affected.
    s3.create_bucket(Bucket="other")
    app1.put_object(Bucket="other", Key="k", Body=b"x")

    s3.delete_bucket_policy(Bucket="guarded")
    assert app1.get_object(Bucket="guarded", Key="k")["Body"].read() == b"kept"
    assert [o["Key"] for o in app1.list_objects_v2(Bucket="guarded")["Contents"]] == ["k"]
    s.stop()


def test_canned_acls(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="private")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="pub", Body=b"x", ACL="public-read")
    assert code(e) == "NotImplemented" and "private" in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="pub")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert code(e) == "NotImplemented"
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key="k")):
        assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
        assert acl["Grants"][0]["Grantee"]["Type"] == "CanonicalUser"


def write_users(path: pathlib.Path, users):
    """Replaces the file as kubelet does: a new directory, then the `..data` symlink swapped."""
    root = path.parent
    new = root / f"..{time.time_ns()}"
    new.mkdir()
    (new / "users.json").write_text(json.dumps({"users": users}))
    tmp = root / "..data_tmp"
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(new.name)
    os.replace(tmp, root / "..data")
    if not path.is_symlink():
        path.symlink_to("..data/users.json")


def wait_for(check, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            check()
            return
        except (AssertionError, botocore.exceptions.ClientError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def wait_logged(server, text, count=1, timeout=60):
    deadline = time.time() + timeout
    while server.output().count(text) < count:
        assert time.time() < deadline, f"'{text}' not logged {count} times:\n{server.output()[-3000:]}"
        time.sleep(0.2)


def can_put(server, access, secret, bucket="files"):
    as_user(server, access, secret).client().put_object(Bucket=bucket, Key=f"by-{access}", Body=b"x")


def can_get(server, access, secret, bucket="files"):
    as_user(server, access, secret).client().get_object(Bucket=bucket, Key="seed")


def refused(fn, *args):
    try:
        fn(*args)
    except botocore.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
        return
    raise AssertionError(f"{fn.__name__}{args[1:2]} was allowed")


def test_users_file_reload(tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    users_file = secrets_dir / "users.json"
    write_users(users_file, [
        {"accessKey": "app1", "secretKey": "app1-secret-one", "policies": ["readonly"]},
        {"accessKey": "app2", "secretKey": "app2-secret-two"},
    ])
    env = {"COFFER_USERS_FILE": str(users_file), "COFFER_USERS_RELOAD_SECONDS": "1"}
    s = Server(tmp_path / "data", env=env).start()
    root = s.client()
    root.create_bucket(Bucket="files")
    root.put_object(Bucket="files", Key="seed", Body=b"seed")
    wait_for(lambda: can_get(s, "app1", "app1-secret-one"))
    refused(can_put, s, "app1", "app1-secret-one")
    can_put(s, "app2", "app2-secret-two")  # default policy readwrite
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    mc(s, cfg, "admin", "user", "add", "c", "manual1", "manual1-secret-key")
    mc(s, cfg, "admin", "policy", "attach", "c", "readwrite", "--user", "manual1")
    # The file's users are the file's: the admin API may not change them.
    for args in (["user", "disable", "c", "app1"], ["user", "rm", "c", "app2"], ["user", "add", "c", "app1", "other-secret-key"],
                 ["policy", "attach", "c", "readwrite", "--user", "app1"]):
        r = mc(s, cfg, "admin", *args, check=False)
        assert r.returncode != 0 and "COFFER_USERS_FILE" in r.stdout + r.stderr, r.stdout + r.stderr
    can_get(s, "app1", "app1-secret-one")
    refused(can_put, s, "app1", "app1-secret-one")

    # Change app1 (new key, new policy), drop app2, add app3.
    write_users(users_file, [
        {"accessKey": "app1", "secretKey": "app1-secret-new", "policies": ["readwrite"]},
        {"accessKey": "app3", "secretKey": "app3-secret-three", "policies": ["writeonly"]},
    ])
    wait_for(lambda: can_put(s, "app1", "app1-secret-new"))
    refused(can_get, s, "app1", "app1-secret-one")
    refused(can_get, s, "app2", "app2-secret-two")
    can_put(s, "app3", "app3-secret-three")
    refused(can_get, s, "app3", "app3-secret-three")
    can_put(s, "manual1", "manual1-secret-key")

    # A policy the file names before it exists grants nothing until it is created.
    write_users(users_file, [
        {"accessKey": "app1", "secretKey": "app1-secret-new", "policies": ["readwrite"]},
        {"accessKey": "app3", "secretKey": "app3-secret-three", "policies": ["writeonly"]},
        {"accessKey": "app6", "secretKey": "app6-secret-six", "policies": ["future-policy"]},
    ])
    wait_logged(s, "names a policy that does not exist")
    refused(can_get, s, "app6", "app6-secret-six")
    pol = tmp_path / "future.json"
    pol.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::files/*"]}]}))
    mc(s, cfg, "admin", "policy", "create", "c", "future-policy", str(pol))
    can_get(s, "app6", "app6-secret-six")

    # An invalid file is logged without its secrets; the last good set stays.
    write_users(users_file, [{"accessKey": "app1", "secretKey": "short"}, {"accessKey": "app4", "secretKey": "app4-secret-four"}])
    wait_logged(s, "COFFER_USERS_FILE is invalid")
    can_put(s, "app1", "app1-secret-new")
    refused(can_get, s, "app4", "app4-secret-four")
    (users_file.parent / "..data" / "users.json").write_text("{not json")
    wait_logged(s, "COFFER_USERS_FILE is invalid", count=2)
    can_put(s, "app1", "app1-secret-new")

    # A restart keeps the file's users (sealed in the data directory) and re-applies the file.
    write_users(users_file, [{"accessKey": "app1", "secretKey": "app1-secret-new", "policies": ["readonly"]}])
    s.stop()
    s = Server(tmp_path / "data", env=dict(env, COFFER_USERS_RELOAD_SECONDS="3600")).start()
    wait_for(lambda: refused(can_put, s, "app1", "app1-secret-new"))
    can_get(s, "app1", "app1-secret-new")
    refused(can_get, s, "app3", "app3-secret-three")
    can_put(s, "manual1", "manual1-secret-key")
    # SIGHUP re-reads at once (the poll is an hour here).
    write_users(users_file, [{"accessKey": "app5", "secretKey": "app5-secret-five"}])
    s.proc.send_signal(signal.SIGHUP)
    # Within a minute, however loaded the machine: far below the hour of the poll.
    wait_for(lambda: can_put(s, "app5", "app5-secret-five"))
    refused(can_get, s, "app1", "app1-secret-new")
    assert_no_secret(["app1-secret-one", "app1-secret-new", "app2-secret-two", "app3-secret-three",
                      "app4-secret-four", "app5-secret-five", "app6-secret-six", "manual1-secret-key"], [s], tmp_path / "data")
    s.stop()


def test_mc_anonymous_download_then_none(server, s3, tmp_path):
    import requests

    s3.create_bucket(Bucket="downloads")
    s3.put_object(Bucket="downloads", Key="a.txt", Body=b"for everyone")
    cfg = tmp_path / "mc"
    mc(server, cfg, "alias", "set", "c", server.endpoint, server.access, server.secret)
    assert requests.get(server.endpoint + "/downloads/a.txt").status_code == 403
    mc(server, cfg, "anonymous", "set", "download", "c/downloads")
    assert "download" in mc(server, cfg, "anonymous", "get", "c/downloads").stdout
    r = requests.get(server.endpoint + "/downloads/a.txt")
    assert r.status_code == 200 and r.content == b"for everyone"
    assert requests.put(server.endpoint + "/downloads/b.txt", data=b"x").status_code == 403
    mc(server, cfg, "anonymous", "set", "none", "c/downloads")
    assert requests.get(server.endpoint + "/downloads/a.txt").status_code == 403
