"""Versioning, tagging and object lock through boto3 and the AWS CLI, with the static key (and,
for the crash and multi-process cases, the generated one)."""
import base64
import concurrent.futures
import datetime
import json
import os
import pathlib

import botocore.exceptions
import pytest

from conftest import Server, assert_no_plaintext, pattern

STATIC_KEY = "coffer-static:" + base64.b64encode(bytes(range(32))).decode()


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def static_server(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_KMS_SECRET_KEY": STATIC_KEY, "MINIO_KMS_AUTO_ENCRYPTION": "on"}).start()
    yield s
    s.stop()


@pytest.fixture
def vs3(static_server):
    return static_server.client()


def versions_of(c, bucket, **kw):
    r = c.list_object_versions(Bucket=bucket, **kw)
    return r.get("Versions", []), r.get("DeleteMarkers", [])


def version_files(data_dir, bucket):
    return sorted(p for p in (pathlib.Path(data_dir) / bucket).rglob("*") if p.parent.name == "versions" and p.is_file())


def test_versions_markers_and_the_null_version(static_server, vs3):
    c = vs3
    c.create_bucket(Bucket="ver")
    assert "Status" not in c.get_bucket_versioning(Bucket="ver")
    old = pattern(70_000, 1)
    c.put_object(Bucket="ver", Key="k", Body=old)  # before versioning: becomes the null version
    c.put_object(Bucket="ver", Key="plain", Body=b"plain")
    # An unversioned bucket keeps the plain layout.
    assert version_files(static_server.data_dir, "ver") == []
    c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    assert c.get_bucket_versioning(Bucket="ver")["Status"] == "Enabled"
    bodies = [pattern(100_000 + i, 10 + i) for i in range(3)]
    ids = []
    for b in bodies:
        r = c.put_object(Bucket="ver", Key="k", Body=b)
        assert r["ServerSideEncryption"] == "AES256"
        ids.append(r["VersionId"])
    assert len(set(ids)) == 3 and "null" not in ids
    # GET and HEAD: latest without an id, any version with one.
    g = c.get_object(Bucket="ver", Key="k")
    assert g["Body"].read() == bodies[2] and g["VersionId"] == ids[2]
    for vid, b in zip(ids, bodies):
        assert c.get_object(Bucket="ver", Key="k", VersionId=vid)["Body"].read() == b
        h = c.head_object(Bucket="ver", Key="k", VersionId=vid)
        assert h["ContentLength"] == len(b) and h["VersionId"] == vid
    g = c.get_object(Bucket="ver", Key="k", VersionId="null")
    assert g["Body"].read() == old and g["VersionId"] == "null"
    # Newest first, the latest flagged, the null version last.
    vs, dms = versions_of(c, "ver", Prefix="k")
    assert [v["VersionId"] for v in vs] == ids[::-1] + ["null"] and dms == []
    assert [v["IsLatest"] for v in vs] == [True, False, False, False]
    assert [v["Size"] for v in vs] == [len(b) for b in bodies[::-1]] + [len(old)]
    # Every version is its own file with its own sealed key.
    files = version_files(static_server.data_dir, "ver")
    assert len(files) == 4
    sealed = set()
    for f in files:
        data = f.read_bytes()
        n = int.from_bytes(data[-12:-8], "little")
        meta = json.loads(data[-12 - n : -12])
        sealed.add(json.dumps(meta["encryption"]["sealed_key"], sort_keys=True))
    assert len(sealed) == 4
    assert_no_plaintext(static_server.data_dir, bodies[1])
    # DELETE without an id writes a delete marker.
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
    # Older versions stay readable; removing the marker brings the key back.
    assert c.get_object(Bucket="ver", Key="k", VersionId=ids[0])["Body"].read() == bodies[0]
    r = c.delete_object(Bucket="ver", Key="k", VersionId=marker)
    assert r["DeleteMarker"] is True and r["VersionId"] == marker
    assert c.get_object(Bucket="ver", Key="k")["Body"].read() == bodies[2]
    # Deleting the latest version for good promotes the previous one.
    c.delete_object(Bucket="ver", Key="k", VersionId=ids[2])
    assert c.get_object(Bucket="ver", Key="k")["VersionId"] == ids[1]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket="ver", Key="k", VersionId=ids[2])
    assert code(e) == "NoSuchVersion" and status(e) == 404
    # Version ids this server never made are refused, never used as names.
    for bad in ["../../../etc/passwd", "x" * 24, "ABCDEF0123456789ABCDEF01"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket="ver", Key="k", VersionId=bad)
        assert code(e) == "InvalidArgument" and status(e) == 400
    # CopyObject of an old version: a new version, re-encrypted with a fresh key.
    r = c.copy_object(Bucket="ver", Key="copy", CopySource={"Bucket": "ver", "Key": "k", "VersionId": ids[0]})
    assert r["CopySourceVersionId"] == ids[0] and r["VersionId"]
    assert c.get_object(Bucket="ver", Key="copy")["Body"].read() == bodies[0]
    # Restoring an old version by copying it onto its own key.
    r = c.copy_object(Bucket="ver", Key="k", CopySource={"Bucket": "ver", "Key": "k", "VersionId": "null"})
    assert c.get_object(Bucket="ver", Key="k")["Body"].read() == old
    assert versions_of(c, "ver", Prefix="k")[0][0]["VersionId"] == r["VersionId"]
    # Multipart completes into a new version.
    p1, p2 = pattern(5 * 1024 * 1024, 30), pattern(1000, 31)
    uid = c.create_multipart_upload(Bucket="ver", Key="k")["UploadId"]
    e1 = c.upload_part(Bucket="ver", Key="k", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = c.upload_part(Bucket="ver", Key="k", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    r = c.complete_multipart_upload(Bucket="ver", Key="k", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    mp = r["VersionId"]
    assert c.get_object(Bucket="ver", Key="k")["Body"].read() == p1 + p2
    assert c.get_object(Bucket="ver", Key="k", VersionId=ids[0])["Body"].read() == bodies[0]
    # Suspended: writes replace the null version, the others stay.
    c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Suspended"})
    assert c.get_bucket_versioning(Bucket="ver")["Status"] == "Suspended"
    c.put_object(Bucket="ver", Key="k", Body=b"null-1")
    c.put_object(Bucket="ver", Key="k", Body=b"null-2")
    vs, _ = versions_of(c, "ver", Prefix="k")
    listed = [v["VersionId"] for v in vs]
    assert listed[0] == "null" and listed.count("null") == 1 and mp in listed and ids[0] in listed
    assert c.get_object(Bucket="ver", Key="k")["Body"].read() == b"null-2"
    r = c.delete_object(Bucket="ver", Key="k")
    assert r["DeleteMarker"] is True and r["VersionId"] == "null"
    assert versions_of(c, "ver", Prefix="k")[1][0]["VersionId"] == "null"
    # A versioned bucket with versions is not empty; removing every version empties it.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_bucket(Bucket="ver")
    assert code(e) == "BucketNotEmpty"
    vs, dms = versions_of(c, "ver")
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in vs + dms]
    r = c.delete_objects(Bucket="ver", Delete={"Objects": objs})
    assert len(r["Deleted"]) == len(objs) and not r.get("Errors")
    assert versions_of(c, "ver") == ([], [])
    c.delete_bucket(Bucket="ver")
    # Bad configurations.
    c.create_bucket(Bucket="ver2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_bucket_versioning(Bucket="ver2", VersioningConfiguration={"Status": "Sometimes"})
    assert code(e) == "MalformedXML"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_bucket_versioning(Bucket="nope", VersioningConfiguration={"Status": "Enabled"})
    assert code(e) == "NoSuchBucket"


def test_list_object_versions_pages_prefixes_and_markers(vs3):
    c = vs3
    c.create_bucket(Bucket="lvs")
    c.put_bucket_versioning(Bucket="lvs", VersioningConfiguration={"Status": "Enabled"})
    expected = []
    for key in ["a", "b/1", "b/2", "c", "d/x/y"]:
        vids = [c.put_object(Bucket="lvs", Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(3)]
        expected += [(key, v) for v in reversed(vids)]
    dm = c.delete_object(Bucket="lvs", Key="c")["VersionId"]
    expected.insert(expected.index(("c", [v for k, v in expected if k == "c"][0])), ("c", dm))
    # Page by two through everything: the same order as one big page, nothing twice.
    got, km, vm = [], None, None
    while True:
        kw = {"MaxKeys": 2}
        if km:
            kw.update(KeyMarker=km, VersionIdMarker=vm)
        r = c.list_object_versions(Bucket="lvs", **kw)
        page = sorted(
            [(v["Key"], v["VersionId"], v["LastModified"]) for v in r.get("Versions", []) + r.get("DeleteMarkers", [])],
            key=lambda t: [e[:2] for e in expected].index(t[:2]),
        )
        got += [p[:2] for p in page]
        assert len(page) <= 2
        if not r["IsTruncated"]:
            break
        km, vm = r["NextKeyMarker"], r["NextVersionIdMarker"]
    assert got == expected
    # Delimiter and prefix.
    r = c.list_object_versions(Bucket="lvs", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/", "d/"]
    assert sorted({v["Key"] for v in r["Versions"]}) == ["a", "c"]
    r = c.list_object_versions(Bucket="lvs", Prefix="b/", Delimiter="/")
    assert sorted({v["Key"] for v in r["Versions"]}) == ["b/1", "b/2"] and not r.get("CommonPrefixes")
    r = c.list_object_versions(Bucket="lvs", Prefix="d/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/x/"]
    # A key marker alone starts after that key.
    r = c.list_object_versions(Bucket="lvs", KeyMarker="b/2")
    assert {v["Key"] for v in r["Versions"]} == {"c", "d/x/y"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_object_versions(Bucket="lvs", VersionIdMarker="null")
    assert code(e) == "InvalidArgument"


def test_versioned_data_survives_kill9_and_two_processes(data_dirs):
    a = data_dirs.server(0).start()
    ca = a.client()
    ca.create_bucket(Bucket="vvv")
    ca.put_bucket_versioning(Bucket="vvv", VersioningConfiguration={"Status": "Enabled"})
    b = data_dirs.server(1).start()
    cb = b.client()
    # Two processes writing one key at once: every write is one version, the order is one order,
    # and the latest is the newest.
    bodies = [pattern(50_000, 600 + i) for i in range(16)]

    def put(i):
        return (ca if i % 2 else cb).put_object(Bucket="vvv", Key="race", Body=bodies[i])["VersionId"]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        written = list(ex.map(put, range(16)))
    for cl in (ca, cb):
        vs, _ = versions_of(cl, "vvv", Prefix="race")
        assert sorted(v["VersionId"] for v in vs) == sorted(written)
        assert vs[0]["IsLatest"] and [v["VersionId"] for v in vs] == sorted(written)
        latest = cl.get_object(Bucket="vvv", Key="race")
        assert latest["VersionId"] == vs[0]["VersionId"]
        assert latest["Body"].read() == bodies[written.index(vs[0]["VersionId"])]
    # Concurrent deletes and puts from both: still one consistent history.
    def churn(i):
        cl = ca if i % 2 else cb
        if i % 3 == 0:
            cl.delete_object(Bucket="vvv", Key="race")
        else:
            cl.put_object(Bucket="vvv", Key="race", Body=bodies[i])

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(churn, range(16)))
    vs, dms = versions_of(ca, "vvv", Prefix="race")
    assert len(vs) == 16 + 10 and len(dms) == 6
    b.kill9()
    assert a.kill9() == -9
    a.start()
    ca = a.client()
    vs2, dms2 = versions_of(ca, "vvv", Prefix="race")
    assert [v["VersionId"] for v in vs2] == [v["VersionId"] for v in vs]
    for vid in written:
        assert ca.get_object(Bucket="vvv", Key="race", VersionId=vid)["Body"].read() == bodies[written.index(vid)]
    a.stop()


def test_aws_cli_versioning(static_server, tmp_path):
    s = static_server
    s.aws("s3api", "create-bucket", "--bucket", "cliv")
    s.aws("s3api", "put-bucket-versioning", "--bucket", "cliv", "--versioning-configuration", "Status=Enabled")
    assert json.loads(s.aws("s3api", "get-bucket-versioning", "--bucket", "cliv").stdout)["Status"] == "Enabled"
    f = tmp_path / "f"
    ids = []
    for i in range(2):
        f.write_bytes(f"body {i}".encode())
        ids.append(json.loads(s.aws("s3api", "put-object", "--bucket", "cliv", "--key", "f", "--body", str(f)).stdout)["VersionId"])
    out = json.loads(s.aws("s3api", "list-object-versions", "--bucket", "cliv").stdout)
    assert [v["VersionId"] for v in out["Versions"]] == ids[::-1]
    got = tmp_path / "got"
    s.aws("s3api", "get-object", "--bucket", "cliv", "--key", "f", "--version-id", ids[0], str(got))
    assert got.read_bytes() == b"body 0"
    r = json.loads(s.aws("s3api", "delete-object", "--bucket", "cliv", "--key", "f").stdout)
    assert r["DeleteMarker"] is True
    r = s.aws("s3api", "get-object", "--bucket", "cliv", "--key", "f", str(got), check=False)
    assert r.returncode != 0 and "NoSuchKey" in r.stderr
    r = s.aws("s3api", "get-object", "--bucket", "cliv", "--key", "f", "--version-id", "bogus", str(got), check=False)
    assert r.returncode != 0 and "InvalidArgument" in r.stderr
    s.aws("s3api", "delete-object", "--bucket", "cliv", "--key", "f", "--version-id", r_id(out, 0))
    out = json.loads(s.aws("s3api", "list-object-versions", "--bucket", "cliv").stdout)
    assert [v["VersionId"] for v in out["Versions"]] == [ids[0]]


def r_id(listing, i):
    return listing["Versions"][i]["VersionId"]


def test_object_and_bucket_tagging(vs3):
    c = vs3
    c.create_bucket(Bucket="tags")
    c.put_bucket_versioning(Bucket="tags", VersioningConfiguration={"Status": "Enabled"})
    v1 = c.put_object(Bucket="tags", Key="o", Body=b"one", Tagging="team=blue&note=a%20b")["VersionId"]
    assert c.get_object(Bucket="tags", Key="o")["TagCount"] == 2
    got = c.get_object_tagging(Bucket="tags", Key="o")
    assert {t["Key"]: t["Value"] for t in got["TagSet"]} == {"team": "blue", "note": "a b"} and got["VersionId"] == v1
    v2 = c.put_object(Bucket="tags", Key="o", Body=b"two")["VersionId"]
    assert c.get_object_tagging(Bucket="tags", Key="o")["TagSet"] == []
    # Tags of one version, by id; the others keep theirs; the body is untouched.
    r = c.put_object_tagging(Bucket="tags", Key="o", VersionId=v1, Tagging={"TagSet": [{"Key": "x", "Value": "1"}]})
    assert r["VersionId"] == v1
    assert c.get_object_tagging(Bucket="tags", Key="o", VersionId=v1)["TagSet"] == [{"Key": "x", "Value": "1"}]
    assert c.get_object(Bucket="tags", Key="o", VersionId=v1)["Body"].read() == b"one"
    c.put_object_tagging(Bucket="tags", Key="o", Tagging={"TagSet": [{"Key": "latest", "Value": "yes"}]})
    assert c.get_object_tagging(Bucket="tags", Key="o", VersionId=v2)["TagSet"] == [{"Key": "latest", "Value": "yes"}]
    assert c.get_object(Bucket="tags", Key="o")["Body"].read() == b"two"
    assert [v["VersionId"] for v in versions_of(c, "tags")[0]] == [v2, v1]
    c.delete_object_tagging(Bucket="tags", Key="o", VersionId=v1)
    assert c.get_object_tagging(Bucket="tags", Key="o", VersionId=v1)["TagSet"] == []
    # Copy: tags copied by default, replaced with the REPLACE directive.
    c.copy_object(Bucket="tags", Key="c1", CopySource={"Bucket": "tags", "Key": "o"})
    assert c.get_object_tagging(Bucket="tags", Key="c1")["TagSet"] == [{"Key": "latest", "Value": "yes"}]
    c.copy_object(Bucket="tags", Key="c2", CopySource={"Bucket": "tags", "Key": "o"}, TaggingDirective="REPLACE", Tagging="k=v")
    assert c.get_object_tagging(Bucket="tags", Key="c2")["TagSet"] == [{"Key": "k", "Value": "v"}]
    # Multipart takes x-amz-tagging at creation.
    uid = c.create_multipart_upload(Bucket="tags", Key="mp", Tagging="m=1")["UploadId"]
    e = c.upload_part(Bucket="tags", Key="mp", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
    c.complete_multipart_upload(Bucket="tags", Key="mp", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert c.get_object_tagging(Bucket="tags", Key="mp")["TagSet"] == [{"Key": "m", "Value": "1"}]
    # AWS's limits, and nothing changes when refused.
    eleven = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_tagging(Bucket="tags", Key="o", Tagging=eleven)
    assert code(e) == "BadRequest" and status(e) == 400
    for bad in [[{"Key": "k" * 129, "Value": "v"}], [{"Key": "k", "Value": "v" * 257}], [{"Key": "aws:x", "Value": "v"}], [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object_tagging(Bucket="tags", Key="o", Tagging={"TagSet": bad})
        assert code(e) == "InvalidTag", bad
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object(Bucket="tags", Key="o", Body=b"x", Tagging="&".join(f"k{i}=v" for i in range(11)))
    assert code(e) == "BadRequest"
    assert c.get_object_tagging(Bucket="tags", Key="o")["TagSet"] == [{"Key": "latest", "Value": "yes"}]
    assert len(versions_of(c, "tags", Prefix="o")[0]) == 2
    c.put_object_tagging(Bucket="tags", Key="o", Tagging={"TagSet": [{"Key": "k" * 128, "Value": "v" * 256}]})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object_tagging(Bucket="tags", Key="missing")
    assert code(e) == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_tagging(Bucket="tags", Key="o", VersionId="0" * 24, Tagging={"TagSet": []})
    assert code(e) == "NoSuchVersion"
    # A delete marker has no tags.
    marker = c.delete_object(Bucket="tags", Key="o")["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object_tagging(Bucket="tags", Key="o", VersionId=marker)
    assert status(e) == 405
    # Bucket tagging: up to 50 tags.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_tagging(Bucket="tags")
    assert code(e) == "NoSuchTagSet"
    fifty = [{"Key": f"k{i:02}", "Value": str(i)} for i in range(50)]
    c.put_bucket_tagging(Bucket="tags", Tagging={"TagSet": fifty})
    assert c.get_bucket_tagging(Bucket="tags")["TagSet"] == fifty
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_bucket_tagging(Bucket="tags", Tagging={"TagSet": fifty + [{"Key": "one-more", "Value": "x"}]})
    assert code(e) == "BadRequest"
    assert len(c.get_bucket_tagging(Bucket="tags")["TagSet"]) == 50
    c.delete_bucket_tagging(Bucket="tags")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_bucket_tagging(Bucket="tags")
    assert code(e) == "NoSuchTagSet"
    # Unversioned buckets tag their one object too.
    c.create_bucket(Bucket="plain-tags")
    c.put_object(Bucket="plain-tags", Key="p", Body=b"p")
    c.put_object_tagging(Bucket="plain-tags", Key="p", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert c.get_object_tagging(Bucket="plain-tags", Key="p")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert c.get_object(Bucket="plain-tags", Key="p")["Body"].read() == b"p"


def soon(**kw):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(**kw)


def test_object_lock_retention_legal_hold_and_refusals(vs3):
    c = vs3
    c.create_bucket(Bucket="plain")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object_lock_configuration(Bucket="plain")
    assert code(e) == "ObjectLockConfigurationNotFoundError"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_lock_configuration(Bucket="plain", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert code(e) == "InvalidBucketState"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object(Bucket="plain", Key="x", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon(hours=1))
    assert code(e) == "InvalidRequest"
    # A lock bucket is versioned for good.
    c.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    assert c.get_bucket_versioning(Bucket="worm")["Status"] == "Enabled"
    assert c.get_object_lock_configuration(Bucket="worm")["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_bucket_versioning(Bucket="worm", VersioningConfiguration={"Status": "Suspended"})
    assert code(e) == "InvalidBucketState"
    # An existing bucket is not turned into a lock bucket by creating it again.
    for name in ["worm", "plain"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        assert code(e) == "BucketAlreadyOwnedByYou"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object_lock_configuration(Bucket="plain")
    assert code(e) == "ObjectLockConfigurationNotFoundError"
    # Default retention applies to new versions.
    c.put_object_lock_configuration(Bucket="worm", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    got = c.get_object_lock_configuration(Bucket="worm")["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert got == {"Mode": "GOVERNANCE", "Days": 1}
    for bad in [{"Mode": "GOVERNANCE", "Days": 0}, {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}, {"Mode": "FOREVER", "Days": 1}]:
        with pytest.raises(botocore.exceptions.ClientError):
            c.put_object_lock_configuration(Bucket="worm", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": bad}})
    v1 = c.put_object(Bucket="worm", Key="g", Body=b"governed")["VersionId"]
    h = c.head_object(Bucket="worm", Key="g")
    assert h["ObjectLockMode"] == "GOVERNANCE"
    assert abs((h["ObjectLockRetainUntilDate"] - soon(days=1)).total_seconds()) < 120
    r = c.get_object_retention(Bucket="worm", Key="g", VersionId=v1)["Retention"]
    assert r["Mode"] == "GOVERNANCE"
    # A locked version cannot be deleted; a DELETE without an id only adds a marker.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_object(Bucket="worm", Key="g", VersionId=v1)
    assert code(e) == "AccessDenied" and "WORM" in e.value.response["Error"]["Message"]
    marker = c.delete_object(Bucket="worm", Key="g")["VersionId"]
    assert c.get_object(Bucket="worm", Key="g", VersionId=v1)["Body"].read() == b"governed"
    c.delete_object(Bucket="worm", Key="g", VersionId=marker)
    r = c.delete_objects(Bucket="worm", Delete={"Objects": [{"Key": "g", "VersionId": v1}]})
    assert r["Errors"][0]["Code"] == "AccessDenied" and not r.get("Deleted")
    # GOVERNANCE: shortening or removing needs the bypass; the root user has it.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_retention(Bucket="worm", Key="g", VersionId=v1, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(hours=1)})
    assert code(e) == "AccessDenied"
    c.put_object_retention(Bucket="worm", Key="g", VersionId=v1, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(days=2)})
    c.put_object_retention(Bucket="worm", Key="g", VersionId=v1, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(hours=1)}, BypassGovernanceRetention=True)
    c.delete_object(Bucket="worm", Key="g", VersionId=v1, BypassGovernanceRetention=True)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.head_object(Bucket="worm", Key="g", VersionId=v1)
    assert status(e) == 404
    # COMPLIANCE: nobody, the root user with the bypass included, deletes or shortens it.
    v2 = c.put_object(Bucket="worm", Key="c", Body=b"complied", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon(hours=2))["VersionId"]
    assert c.head_object(Bucket="worm", Key="c")["ObjectLockMode"] == "COMPLIANCE"
    for kw in [{}, {"BypassGovernanceRetention": True}]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.delete_object(Bucket="worm", Key="c", VersionId=v2, **kw)
        assert code(e) == "AccessDenied"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object_retention(Bucket="worm", Key="c", VersionId=v2, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(hours=1)}, **kw)
        assert code(e) == "AccessDenied"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object_retention(Bucket="worm", Key="c", VersionId=v2, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon(hours=3)}, **kw)
        assert code(e) == "AccessDenied"
    c.put_object_retention(Bucket="worm", Key="c", VersionId=v2, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(hours=3)})
    assert c.get_object(Bucket="worm", Key="c")["Body"].read() == b"complied"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_retention(Bucket="worm", Key="c", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(hours=-1)})
    assert code(e) == "InvalidArgument"
    # Legal hold: no deletion, whatever the retention, until it is lifted.
    v3 = c.put_object(Bucket="worm", Key="h", Body=b"held", ObjectLockLegalHoldStatus="ON", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon(hours=1))["VersionId"]
    assert c.get_object_legal_hold(Bucket="worm", Key="h")["LegalHold"]["Status"] == "ON"
    assert c.head_object(Bucket="worm", Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_object(Bucket="worm", Key="h", VersionId=v3, BypassGovernanceRetention=True)
    assert code(e) == "AccessDenied"
    c.put_object_legal_hold(Bucket="worm", Key="h", VersionId=v3, LegalHold={"Status": "OFF"})
    assert c.get_object_legal_hold(Bucket="worm", Key="h", VersionId=v3)["LegalHold"]["Status"] == "OFF"
    c.delete_object(Bucket="worm", Key="h", VersionId=v3, BypassGovernanceRetention=True)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object_legal_hold(Bucket="worm", Key="c", LegalHold={"Status": "MAYBE"})
    assert code(e) == "MalformedXML"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object_legal_hold(Bucket="plain", Key="x")
    assert code(e) == "InvalidRequest"
    # Bucket with locked versions cannot be deleted.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_bucket(Bucket="worm")
    assert code(e) == "BucketNotEmpty"


def test_compliance_lock_survives_root_delete_and_restart(data_dirs):
    env = {"MINIO_KMS_SECRET_KEY": STATIC_KEY, "MINIO_KMS_AUTO_ENCRYPTION": "on"}
    s = data_dirs.server(0, env=env).start()
    c = s.client()
    c.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="vault", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    body = pattern(200_000, 77)
    vid = c.put_object(Bucket="vault", Key="ledger", Body=body)["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError):
        c.delete_object(Bucket="vault", Key="ledger", VersionId=vid, BypassGovernanceRetention=True)
    assert s.kill9() == -9
    # Restarted on the other node, where there is one.
    s = data_dirs.server(1, env=env).start()
    c = s.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_object(Bucket="vault", Key="ledger", VersionId=vid, BypassGovernanceRetention=True)
    assert code(e) == "AccessDenied"
    r = c.delete_objects(Bucket="vault", Delete={"Objects": [{"Key": "ledger", "VersionId": vid}]}, BypassGovernanceRetention=True)
    assert r["Errors"][0]["Code"] == "AccessDenied"
    assert s.stop() == 0
    s.start()
    c = s.client()
    assert c.get_object(Bucket="vault", Key="ledger", VersionId=vid)["Body"].read() == body
    assert c.head_object(Bucket="vault", Key="ledger")["ObjectLockMode"] == "COMPLIANCE"
    assert_no_plaintext(s.data_dir, body)
    s.stop()


def test_aws_cli_tagging_lock_and_lifecycle(static_server, tmp_path):
    s = static_server
    f = tmp_path / "f"
    f.write_bytes(b"cli body")
    s.aws("s3api", "create-bucket", "--bucket", "cli-lock", "--object-lock-enabled-for-bucket")
    s.aws("s3api", "put-object-lock-configuration", "--bucket", "cli-lock", "--object-lock-configuration", '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}')
    conf = json.loads(s.aws("s3api", "get-object-lock-configuration", "--bucket", "cli-lock").stdout)
    assert conf["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}
    vid = json.loads(s.aws("s3api", "put-object", "--bucket", "cli-lock", "--key", "o", "--body", str(f), "--tagging", "a=1&b=2").stdout)["VersionId"]
    tags = json.loads(s.aws("s3api", "get-object-tagging", "--bucket", "cli-lock", "--key", "o").stdout)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"a": "1", "b": "2"}
    s.aws("s3api", "put-object-tagging", "--bucket", "cli-lock", "--key", "o", "--version-id", vid, "--tagging", "TagSet=[{Key=c,Value=3}]")
    assert json.loads(s.aws("s3api", "get-object-tagging", "--bucket", "cli-lock", "--key", "o").stdout)["TagSet"] == [{"Key": "c", "Value": "3"}]
    r = s.aws("s3api", "put-object-tagging", "--bucket", "cli-lock", "--key", "o", "--tagging", "TagSet=[{Key=aws:x,Value=3}]", check=False)
    assert r.returncode != 0 and "InvalidTag" in r.stderr
    s.aws("s3api", "delete-object-tagging", "--bucket", "cli-lock", "--key", "o")
    assert json.loads(s.aws("s3api", "get-object-tagging", "--bucket", "cli-lock", "--key", "o").stdout)["TagSet"] == []
    s.aws("s3api", "put-bucket-tagging", "--bucket", "cli-lock", "--tagging", "TagSet=[{Key=owner,Value=ops}]")
    assert json.loads(s.aws("s3api", "get-bucket-tagging", "--bucket", "cli-lock").stdout)["TagSet"] == [{"Key": "owner", "Value": "ops"}]
    ret = json.loads(s.aws("s3api", "get-object-retention", "--bucket", "cli-lock", "--key", "o").stdout)["Retention"]
    assert ret["Mode"] == "GOVERNANCE"
    r = s.aws("s3api", "delete-object", "--bucket", "cli-lock", "--key", "o", "--version-id", vid, check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr and "WORM" in r.stderr
    s.aws("s3api", "put-object-legal-hold", "--bucket", "cli-lock", "--key", "o", "--legal-hold", "Status=ON")
    assert json.loads(s.aws("s3api", "get-object-legal-hold", "--bucket", "cli-lock", "--key", "o").stdout)["LegalHold"]["Status"] == "ON"
    r = s.aws("s3api", "delete-object", "--bucket", "cli-lock", "--key", "o", "--version-id", vid, "--bypass-governance-retention", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    s.aws("s3api", "put-object-legal-hold", "--bucket", "cli-lock", "--key", "o", "--legal-hold", "Status=OFF")
    # GOVERNANCE becomes COMPLIANCE only with the bypass.
    to_compliance = ["s3api", "put-object-retention", "--bucket", "cli-lock", "--key", "o", "--retention", '{"Mode":"COMPLIANCE","RetainUntilDate":"2099-01-01T00:00:00Z"}']
    r = s.aws(*to_compliance, check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    s.aws(*to_compliance, "--bypass-governance-retention")
    r = s.aws("s3api", "delete-object", "--bucket", "cli-lock", "--key", "o", "--version-id", vid, "--bypass-governance-retention", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    r = s.aws("s3api", "get-object-lock-configuration", "--bucket", "nope-bucket", check=False)
    assert r.returncode != 0 and "NoSuchBucket" in r.stderr
    # Lifecycle.
    rules = '{"Rules":[{"ID":"tmp","Status":"Enabled","Filter":{"Prefix":"tmp/"},"Expiration":{"Days":30},"NoncurrentVersionExpiration":{"NoncurrentDays":7},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}'
    s.aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", "cli-lock", "--lifecycle-configuration", rules)
    got = json.loads(s.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", "cli-lock").stdout)["Rules"]
    assert got[0]["ID"] == "tmp" and got[0]["Expiration"] == {"Days": 30}
    r = s.aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", "cli-lock", "--lifecycle-configuration", '{"Rules":[{"ID":"x","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":-1}}]}', check=False)
    assert r.returncode != 0 and "InvalidArgument" in r.stderr
    s.aws("s3api", "delete-bucket-lifecycle", "--bucket", "cli-lock")
    r = s.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", "cli-lock", check=False)
    assert r.returncode != 0 and "NoSuchLifecycleConfiguration" in r.stderr


def test_kill9_during_versioned_writes_leaves_one_consistent_history(data_dirs):
    import threading
    import time

    s = data_dirs.server(0).start()
    c = s.client()
    c.create_bucket(Bucket="crashv")
    c.put_bucket_versioning(Bucket="crashv", VersioningConfiguration={"Status": "Enabled"})
    keys = [f"k{i}" for i in range(6)]
    bodies = {i: pattern(40_000 + i, 7000 + i) for i in range(400)}
    acked = {k: set() for k in keys}
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    def worker(n):
        cl = s.client()
        while not stop.is_set():
            i = next(counter) % 400
            k = keys[(i + n) % len(keys)]
            try:
                if i % 5 == 0:
                    vid = cl.delete_object(Bucket="crashv", Key=k)["VersionId"]
                else:
                    vid = cl.put_object(Bucket="crashv", Key=k, Body=bodies[i])["VersionId"]
            except Exception:
                return
            with lock:
                acked[k].add(vid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    # Kill once enough writes were acknowledged to make a history, however slow the machine: a
    # fixed pause of 2 s can end before the 20 asserted below on a loaded one. Every key needs
    # one: over CephFS all the first writes of a key can still be in flight after 40 of the
    # others' (seen: a key with no version at all failed "the latest is not the newest").
    deadline = time.monotonic() + 120
    while (sum(len(v) for v in acked.values()) <= 40 or not all(acked.values())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.kill9() == -9
    stop.set()
    for t in threads:
        t.join(30)
    assert sum(len(v) for v in acked.values()) > 20
    s = data_dirs.server(1).start()
    c = s.client()
    known = set(bodies.values())
    for k in keys:
        vs, dms = versions_of(c, "crashv", Prefix=k)
        entries = sorted([(v["VersionId"], "v", v["IsLatest"]) for v in vs] + [(d["VersionId"], "dm", d["IsLatest"]) for d in dms])
        ids = [e[0] for e in entries]
        assert len(ids) == len(set(ids)), f"{k}: a version listed twice"
        assert acked[k] <= set(ids), f"{k}: an acknowledged version was lost"
        assert [e[2] for e in entries].count(True) == 1 and entries[0][2], f"{k}: the latest is not the newest"
        for vid, kind, _ in entries:
            if kind == "v":
                assert c.get_object(Bucket="crashv", Key=k, VersionId=vid)["Body"].read() in known
        if entries[0][1] == "v":
            assert c.get_object(Bucket="crashv", Key=k)["VersionId"] == entries[0][0]
        else:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket="crashv", Key=k)
            assert status(e) == 404
        # The key takes new versions as before, on top of the history.
        vid = c.put_object(Bucket="crashv", Key=k, Body=b"after")["VersionId"]
        again = versions_of(c, "crashv", Prefix=k)
        assert again[0][0]["VersionId"] == vid and len(again[0]) + len(again[1]) == len(ids) + 1
    s.stop()


def test_the_null_version_is_named_null_once_the_bucket_is_versioned(vs3):
    c = vs3
    c.create_bucket(Bucket="nul")
    c.put_object(Bucket="nul", Key="old", Body=b"before versioning")
    c.put_object(Bucket="nul", Key="gone", Body=b"to delete")
    # Never versioned: no version id anywhere, as AWS.
    assert "VersionId" not in c.head_object(Bucket="nul", Key="old")
    assert "VersionId" not in c.get_object(Bucket="nul", Key="old")
    for status in ("Enabled", "Suspended"):
        c.put_bucket_versioning(Bucket="nul", VersioningConfiguration={"Status": status})
        assert c.head_object(Bucket="nul", Key="old")["VersionId"] == "null", status
        g = c.get_object(Bucket="nul", Key="old")
        assert g["VersionId"] == "null" and g["Body"].read() == b"before versioning"
        r = c.copy_object(Bucket="nul", Key=f"copy-{status}", CopySource={"Bucket": "nul", "Key": "old"})
        assert r["CopySourceVersionId"] == "null"
        vs, _ = versions_of(c, "nul", Prefix="old")
        assert [(v["VersionId"], v["IsLatest"]) for v in vs] == [("null", True)]
    # DELETE of the null version by id answers with it.
    r = c.delete_object(Bucket="nul", Key="gone", VersionId="null")
    assert r["VersionId"] == "null" and "DeleteMarker" not in r
    # A DELETE without an id in a suspended bucket writes the null delete marker.
    r = c.delete_object(Bucket="nul", Key="old")
    assert r["VersionId"] == "null" and r["DeleteMarker"] is True
    vs, dms = versions_of(c, "nul", Prefix="old")
    assert vs == [] and [(d["VersionId"], d["IsLatest"]) for d in dms] == [("null", True)]


def test_concurrent_creations_of_one_bucket_have_one_winner(data_dirs):
    # Two processes on one directory, so the creations race across processes as well.
    one = data_dirs.server(0, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    other = data_dirs.server(1, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    try:
        clients = [one.client(), other.client(), one.client(), other.client()]

        def create(i, name):
            kw = {"ObjectLockEnabledForBucket": True} if i % 2 == 0 or name.startswith("lk") else {}
            try:
                clients[i].create_bucket(Bucket=name, **kw)
                return ("ok", bool(kw))
            except botocore.exceptions.ClientError as e:
                return (e.response["Error"]["Code"], bool(kw))

        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            # "lk…": every creation asks for object lock; "mx…": lock and plain ones mixed.
            for name in [f"lk{i}" for i in range(12)] + [f"mx{i}" for i in range(12)]:
                results = list(pool.map(lambda i: create(i, name), range(len(clients))))
                winners = [r for r in results if r[0] == "ok"]
                assert len(winners) == 1, (name, results)
                assert sorted(r[0] for r in results if r[0] != "ok") == ["BucketAlreadyOwnedByYou"] * 3, results
                c = clients[0]
                locked = winners[0][1]
                if locked:
                    conf = c.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
                    assert conf["ObjectLockEnabled"] == "Enabled"
                    assert c.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
                else:
                    assert "Status" not in c.get_bucket_versioning(Bucket=name), name
    finally:
        other.stop()


def test_a_key_whose_last_version_is_removed_leaves_nothing(data_dirs):
    a = data_dirs.server(0, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    b = data_dirs.server(1, env={"MINIO_KMS_SECRET_KEY": STATIC_KEY}).start()
    try:
        ca, cb = a.client(), b.client()
        ca.create_bucket(Bucket="prune")
        ca.put_bucket_versioning(Bucket="prune", VersioningConfiguration={"Status": "Enabled"})
        ids = [ca.put_object(Bucket="prune", Key="deep/dir/k", Body=b"v%d" % i)["VersionId"] for i in range(3)]
        ids.append(ca.delete_object(Bucket="prune", Key="deep/dir/k")["VersionId"])
        ca.put_object(Bucket="prune", Key="deep/other", Body=b"stays")
        for i, vid in enumerate(ids):
            ca.delete_object(Bucket="prune", Key="deep/dir/k", VersionId=vid)
            vs, dms = versions_of(ca, "prune", Prefix="deep/dir/")
            assert len(vs) + len(dms) == len(ids) - i - 1
        data = pathlib.Path(a.data_dir) / "prune"
        assert not (data / "_deep" / "_dir").exists(), sorted(map(str, data.rglob("*")))
        assert (data / "_deep" / "_other").is_dir()
        assert [v["Key"] for v in versions_of(ca, "prune")[0]] == ["deep/other"]
        assert [o["Key"] for o in ca.list_objects_v2(Bucket="prune")["Contents"]] == ["deep/other"]
        r = ca.list_objects_v2(Bucket="prune", Prefix="deep/", Delimiter="/")
        assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == [] and len(r["Contents"]) == 1

        # One process removes the only version of a key while the other writes it: every write
        # survives (the pruned versions/ lock is never held by two), no listing shows an empty key.
        def churn(i):
            if i % 2:
                vid = ca.put_object(Bucket="prune", Key=f"race/k{i % 3}", Body=b"gone")["VersionId"]
                ca.delete_object(Bucket="prune", Key=f"race/k{i % 3}", VersionId=vid)
                return None
            return (f"race/k{i % 3}", cb.put_object(Bucket="prune", Key=f"race/k{i % 3}", Body=b"kept %d" % i)["VersionId"])

        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            kept = [k for k in ex.map(churn, range(60)) if k]
        vs, dms = versions_of(cb, "prune", Prefix="race/")
        assert sorted((v["Key"], v["VersionId"]) for v in vs) == sorted(kept) and dms == []
        for key, vid in kept:
            cb.delete_object(Bucket="prune", Key=key, VersionId=vid)
        assert versions_of(ca, "prune", Prefix="race/") == ([], [])
        assert not (data / "_race").exists()
    finally:
        a.stop()
        b.stop()
