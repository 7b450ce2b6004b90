"""Lifecycle rules through boto3, the sped-up scanner (a "day" of a few seconds), and MinIO's `mc`
on versioning, retention, legal hold, tags and lifecycle."""
import datetime
import json
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import Server, peer
from test_versioning import STATIC_KEY, code, soon, versions_of

DAY = 3  # seconds in a lifecycle "day" for these tests
FAST = {
    "MINIO_KMS_SECRET_KEY": STATIC_KEY,
    "MINIO_KMS_AUTO_ENCRYPTION": "on",
    "COFFER_LIFECYCLE_INTERVAL_SECONDS": "1",
    "COFFER_LIFECYCLE_DAY_SECONDS": str(DAY),
}


def wait_for(check, timeout=180, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def keys_with_versions(c, bucket, prefix=""):
    vs, dms = versions_of(c, bucket, Prefix=prefix)
    out = {}
    for v in vs:
        out.setdefault(v["Key"], []).append(("v", v["VersionId"]))
    for d in dms:
        out.setdefault(d["Key"], []).append(("dm", d["VersionId"]))
    return out


def test_lifecycle_configuration_api(tmp_path):
    s = Server(tmp_path / "data", env=FAST).start()
    c = s.client()
    c.create_bucket(Bucket="lcy")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_lifecycle_configuration(Bucket="lcy")
    assert code(e) == "NoSuchLifecycleConfiguration"
    rules = [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}, "NoncurrentVersionExpiration": {"NoncurrentDays": 3}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
        {"ID": "tagged", "Status": "Disabled", "Filter": {"And": {"Prefix": "a/", "Tags": [{"Key": "k", "Value": "v"}]}}, "Expiration": {"Days": 1}},
        {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
        {"ID": "date", "Status": "Enabled", "Filter": {"Tag": {"Key": "t", "Value": "1"}}, "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
    ]
    c.put_bucket_lifecycle_configuration(Bucket="lcy", LifecycleConfiguration={"Rules": rules})
    got = c.get_bucket_lifecycle_configuration(Bucket="lcy")["Rules"]
    assert [r["ID"] for r in got] == ["tmp", "tagged", "markers", "date"]
    assert got[0]["Expiration"] == {"Days": 7} and got[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 3
    assert got[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert got[1]["Status"] == "Disabled" and got[1]["Filter"]["And"]["Tags"] == [{"Key": "k", "Value": "v"}]
    assert got[2]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert got[3]["Filter"] == {"Tag": {"Key": "t", "Value": "1"}} and got[3]["Expiration"]["Date"].year == 2030
    bad_rules = [
        [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}}],  # no action
        [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}],
        [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}, {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "b"}, "Expiration": {"Days": 1}}],
        [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}],
    ]
    for bad in bad_rules:
        with pytest.raises(botocore.exceptions.ClientError):
            c.put_bucket_lifecycle_configuration(Bucket="lcy", LifecycleConfiguration={"Rules": bad})
    assert len(c.get_bucket_lifecycle_configuration(Bucket="lcy")["Rules"]) == 4
    c.delete_bucket_lifecycle(Bucket="lcy")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_lifecycle_configuration(Bucket="lcy")
    assert code(e) == "NoSuchLifecycleConfiguration"
    s.stop()


def test_scanner_expires_what_it_should_and_nothing_locked(data_dirs):
    # Two processes on one directory, both scanning: they take turns, nothing is done twice.
    a = data_dirs.server(0, env=FAST).start()
    b = data_dirs.server(1, env=FAST).start()
    c = a.client()
    # Unversioned: expiration deletes.
    c.create_bucket(Bucket="life-plain")
    c.put_object(Bucket="life-plain", Key="tmp/a", Body=b"a")
    c.put_object(Bucket="life-plain", Key="keep/b", Body=b"b")
    c.put_bucket_lifecycle_configuration(Bucket="life-plain", LifecycleConfiguration={"Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
    # Versioned with object lock.
    c.create_bucket(Bucket="life-v", ObjectLockEnabledForBucket=True)
    locked = c.put_object(Bucket="life-v", Key="tmp/x", Body=b"x1", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon(hours=1))["VersionId"]
    held = c.put_object(Bucket="life-v", Key="tmp/x", Body=b"x2", ObjectLockLegalHoldStatus="ON")["VersionId"]
    c.put_object(Bucket="life-v", Key="tmp/x", Body=b"x3")
    c.put_object(Bucket="life-v", Key="tmp/y", Body=b"y1")
    c.put_object(Bucket="life-v", Key="tmp/y", Body=b"y2")
    keep = [c.put_object(Bucket="life-v", Key="keep/z", Body=f"z{i}".encode())["VersionId"] for i in range(2)]
    tagged = c.put_object(Bucket="life-v", Key="tagged", Body=b"t", Tagging="expire=yes")["VersionId"]
    c.put_object(Bucket="life-v", Key="untagged", Body=b"u")
    uid = c.create_multipart_upload(Bucket="life-v", Key="tmp/upload")["UploadId"]
    keep_uid = c.create_multipart_upload(Bucket="life-v", Key="keep/upload")["UploadId"]
    c.put_bucket_lifecycle_configuration(
        Bucket="life-v",
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
                {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
                {"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "expire", "Value": "yes"}}, "Expiration": {"Days": 1}},
                {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            ]
        },
    )
    wait_for(lambda: "tmp/a" not in [o["Key"] for o in c.list_objects_v2(Bucket="life-plain").get("Contents", [])], what="tmp/a to expire")
    assert [o["Key"] for o in c.list_objects_v2(Bucket="life-plain")["Contents"]] == ["keep/b"]
    # tmp/y: expired (marker), its versions removed when noncurrent, then the lone marker.
    wait_for(lambda: "tmp/y" not in keys_with_versions(c, "life-v"), what="tmp/y to vanish")
    wait_for(lambda: [k for k, _ in keys_with_versions(c, "life-v")["tmp/x"]].count("v") == 2, what="tmp/x to shrink to its locked versions")
    # What the rules expire goes in the same scans; wait for it rather than count on a pause.
    wait_for(lambda: [kind for kind, _ in keys_with_versions(c, "life-v").get("tagged", [])] == ["v", "dm"], what="the tagged object to expire")
    wait_for(lambda: uid not in [u["UploadId"] for u in c.list_multipart_uploads(Bucket="life-v").get("Uploads", [])], what="the tmp/ upload to be aborted")
    # Let a few more scans run: nothing locked goes, whatever the rules say.
    time.sleep(3 * DAY)
    state = keys_with_versions(c, "life-v")
    x = state["tmp/x"]
    assert sorted(vid for kind, vid in x if kind == "v") == sorted([locked, held])
    assert [kind for kind, _ in x].count("dm") == 1
    assert c.get_object(Bucket="life-v", Key="tmp/x", VersionId=locked)["Body"].read() == b"x1"
    assert c.get_object(Bucket="life-v", Key="tmp/x", VersionId=held)["Body"].read() == b"x2"
    assert sorted(vid for _, vid in state["keep/z"]) == sorted(keep)
    assert c.get_object(Bucket="life-v", Key="keep/z")["Body"].read() == b"z1"
    assert [kind for kind, _ in state["tagged"]] == ["v", "dm"] and ("v", tagged) in state["tagged"]
    assert state["untagged"] == [("v", state["untagged"][0][1])]
    uploads = [u["UploadId"] for u in c.list_multipart_uploads(Bucket="life-v").get("Uploads", [])]
    assert uploads == [keep_uid] and uid not in uploads
    # Lifting the hold lets the next scans remove that version; the COMPLIANCE one stays.
    c.put_object_legal_hold(Bucket="life-v", Key="tmp/x", VersionId=held, LegalHold={"Status": "OFF"})
    wait_for(lambda: held not in [vid for _, vid in keys_with_versions(c, "life-v")["tmp/x"]], what="the released version to go")
    assert locked in [vid for _, vid in keys_with_versions(c, "life-v")["tmp/x"]]
    a.stop()
    b.stop()


def mc(server, cfg, *args, check=True):
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"mc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}\nserver:\n{server.output()[-3000:]}")
    return r


def test_mc_versions_retention_legalhold_tags_and_ilm(tmp_path):
    s = Server(tmp_path / "data", env=FAST).start()
    cfg = tmp_path / "mc"
    mc(s, cfg, "alias", "set", "coffer", s.endpoint, s.access, s.secret)
    # Versioning.
    mc(s, cfg, "mb", "coffer/mcv")
    mc(s, cfg, "version", "enable", "coffer/mcv")
    assert "enabled" in mc(s, cfg, "version", "info", "coffer/mcv").stdout.lower()
    f = tmp_path / "f.txt"
    for body in ["one", "two"]:
        f.write_text(body)
        mc(s, cfg, "cp", str(f), "coffer/mcv/f.txt")
    mc(s, cfg, "rm", "coffer/mcv/f.txt")
    lines = [json.loads(l) for l in mc(s, cfg, "ls", "--versions", "--json", "coffer/mcv").stdout.splitlines()]
    assert [l.get("isDeleteMarker", False) for l in lines] == [True, False, False]
    assert [l["versionOrdinal"] for l in lines] == [3, 2, 1]
    old = lines[2]["versionId"]
    assert mc(s, cfg, "cat", "--vid", old, "coffer/mcv/f.txt").stdout == "one"
    mc(s, cfg, "version", "suspend", "coffer/mcv")
    assert "suspended" in mc(s, cfg, "version", "info", "coffer/mcv").stdout.lower()
    # Tags.
    mc(s, cfg, "cp", str(f), "coffer/mcv/t.txt")
    mc(s, cfg, "tag", "set", "coffer/mcv/t.txt", "team=blue&env=test")
    tags = json.loads(mc(s, cfg, "tag", "list", "--json", "coffer/mcv/t.txt").stdout)["tagset"]
    assert tags == {"team": "blue", "env": "test"}
    mc(s, cfg, "tag", "set", "coffer/mcv", "owner=ops")
    assert json.loads(mc(s, cfg, "tag", "list", "--json", "coffer/mcv").stdout)["tagset"] == {"owner": "ops"}
    mc(s, cfg, "tag", "remove", "coffer/mcv/t.txt")
    assert not json.loads(mc(s, cfg, "tag", "list", "--json", "coffer/mcv/t.txt").stdout).get("tagset")
    # Object lock: default retention, legal hold, refusals.
    mc(s, cfg, "mb", "--with-lock", "coffer/mcl")
    mc(s, cfg, "retention", "set", "--default", "GOVERNANCE", "1d", "coffer/mcl")
    info = mc(s, cfg, "retention", "info", "--default", "coffer/mcl").stdout
    assert "GOVERNANCE" in info
    mc(s, cfg, "cp", str(f), "coffer/mcl/locked.txt")
    r = json.loads(mc(s, cfg, "retention", "info", "--json", "coffer/mcl/locked.txt").stdout)
    assert r["mode"] == "GOVERNANCE"
    mc(s, cfg, "legalhold", "set", "coffer/mcl/locked.txt")
    assert "ON" in mc(s, cfg, "legalhold", "info", "coffer/mcl/locked.txt").stdout
    vid = json.loads(mc(s, cfg, "stat", "--json", "coffer/mcl/locked.txt").stdout)["versionID"]
    r = mc(s, cfg, "rm", "--version-id", vid, "coffer/mcl/locked.txt", check=False)
    assert r.returncode != 0 and "WORM" in r.stdout + r.stderr
    assert mc(s, cfg, "cat", "--vid", vid, "coffer/mcl/locked.txt").stdout == "two"
    mc(s, cfg, "legalhold", "clear", "coffer/mcl/locked.txt")
    r = mc(s, cfg, "rm", "--version-id", vid, "coffer/mcl/locked.txt", check=False)
    assert r.returncode != 0 and "WORM" in r.stdout + r.stderr
    mc(s, cfg, "rm", "--bypass", "--version-id", vid, "coffer/mcl/locked.txt")
    assert "locked.txt" not in mc(s, cfg, "ls", "--versions", "coffer/mcl").stdout
    # Lifecycle: a rule, listed back, applied by the scanner.
    mc(s, cfg, "mb", "coffer/mci")
    mc(s, cfg, "cp", str(f), "coffer/mci/old/f.txt")
    mc(s, cfg, "ilm", "rule", "add", "--prefix", "old/", "--expire-days", "1", "coffer/mci")
    listed = mc(s, cfg, "ilm", "rule", "ls", "--json", "coffer/mci").stdout
    assert "old/" in listed
    wait_for(lambda: "f.txt" not in mc(s, cfg, "ls", "--recursive", "coffer/mci").stdout, what="mc's rule to expire old/f.txt")
    s.stop()


def test_unreadable_lifecycle_dates_are_refused(server, s3, bucket):
    """Dates boto3 cannot send (it validates them): sent as raw XML, signed with SigV4. AWS answers
    400 MalformedXML for a rule its schema rejects; nothing is stored."""
    import base64
    import hashlib

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests

    def put(date):
        body = (
            '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>r</ID>'
            f"<Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Expiration><Date>{date}</Date></Expiration>"
            "</Rule></LifecycleConfiguration>"
        ).encode()
        url = f"{server.endpoint}/{bucket}?lifecycle"
        req = botocore.awsrequest.AWSRequest(
            method="PUT", url=url, data=body, headers={"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
        )
        botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(server.access, server.secret), "s3", "us-east-1").add_auth(req)
        return requests.put(url, data=body, headers=dict(req.headers.items()), timeout=10)

    for bad in ["not-a-date", "2030-02-30T00:00:00Z", "2030-13-01T00:00:00Z", "", "2030-01-01"]:
        r = put(bad)
        assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content, (bad, r.status_code, r.text)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(e) == "NoSuchLifecycleConfiguration"
    # The same request with a valid midnight date is stored: the refusals were about the date.
    assert put("2030-01-01T00:00:00Z").status_code == 200
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"]["Date"].year == 2030
