"""What a commit guarantees under races and damage (issue #18 and #25 of the security review):
conditional writes decided at the commit under the key's lock (threads and two processes), a
bucket deleted during a write stays deleted, a damaged bucket configuration fails writes instead
of weakening them, object lock retention changes, lifecycle dates and part numbers answered as AWS.
"""
import datetime
import http.client
import json
import os
import threading
import time
import urllib.parse

import botocore.exceptions
import pytest

from conftest import Server, pattern


def code_of(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def call(fn, **kw):
    """The answer's (code, status): ("OK", 200) or the error's."""
    try:
        fn(**kw)
        return ("OK", 200)
    except botocore.exceptions.ClientError as e:
        return code_of(e)


def race(calls):
    """Runs every call at once (after a barrier) and returns their answers, in order."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def run(i, fn, kw):
        barrier.wait()
        out[i] = call(fn, **kw)

    threads = [threading.Thread(target=run, args=(i, fn, kw)) for i, (fn, kw) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def one_winner(answers):
    """Exactly one write won; every other one was refused as a failed precondition."""
    won = [a for a in answers if a == ("OK", 200)]
    lost = [a for a in answers if a != ("OK", 200)]
    assert len(won) == 1, answers
    for a in lost:
        assert a in (("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)), answers


# Large enough that every request's early check runs long before any commit.
BODY = 8 << 20


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_concurrent_if_none_match_puts_of_a_new_key_one_wins(data_dirs, processes):
    servers = [data_dirs.server(i).start() for i in range(processes)]
    clients = [s.client() for s in servers]
    clients[0].create_bucket(Bucket="locks")
    for round in range(2):
        key = f"lock-{round}"
        calls = [
            (clients[i % processes].put_object, dict(Bucket="locks", Key=key, Body=pattern(BODY, seed=i), IfNoneMatch="*"))
            for i in range(6)
        ]
        answers = race(calls)
        one_winner(answers)
        winner = answers.index(("OK", 200))
        got = clients[0].get_object(Bucket="locks", Key=key)["Body"].read()
        assert got == pattern(BODY, seed=winner), "the stored object is the winner's"


@pytest.mark.parametrize("versioned", [False, True])
def test_concurrent_if_match_with_one_etag_one_wins(data_dirs, versioned):
    a = data_dirs.server(0).start()
    b = data_dirs.server(1).start()
    s3a, s3b = a.client(), b.client()
    s3a.create_bucket(Bucket="bkt")
    if versioned:
        s3a.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
    etag = s3a.put_object(Bucket="bkt", Key="k", Body=b"v0")["ETag"]
    calls = [
        ((s3a, s3b)[i % 2].put_object, dict(Bucket="bkt", Key="k", Body=pattern(BODY, seed=10 + i), IfMatch=etag))
        for i in range(6)
    ]
    answers = race(calls)
    one_winner(answers)
    winner = answers.index(("OK", 200))
    assert s3b.get_object(Bucket="bkt", Key="k")["Body"].read() == pattern(BODY, seed=10 + winner)
    # The stale ETag is refused from now on; If-Match of a key without an object is 404.
    assert call(s3a.put_object, Bucket="bkt", Key="k", Body=b"x", IfMatch=etag) == ("PreconditionFailed", 412)
    assert call(s3a.put_object, Bucket="bkt", Key="none", Body=b"x", IfMatch=etag) == ("NoSuchKey", 404)


def test_concurrent_completes_with_if_none_match_one_wins(data_dirs):
    a = data_dirs.server(0).start()
    b = data_dirs.server(1).start()
    s3a, s3b = a.client(), b.client()
    s3a.create_bucket(Bucket="bkt")
    uploads = []
    for i in range(8):
        up = s3a.create_multipart_upload(Bucket="bkt", Key="k")["UploadId"]
        etag = s3a.upload_part(Bucket="bkt", Key="k", UploadId=up, PartNumber=1, Body=pattern(1000, seed=i))["ETag"]
        uploads.append((up, etag))
    calls = [
        (
            (s3a, s3b)[i % 2].complete_multipart_upload,
            dict(
                Bucket="bkt",
                Key="k",
                UploadId=up,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
                IfNoneMatch="*",
            ),
        )
        for i, (up, etag) in enumerate(uploads)
    ]
    answers = race(calls)
    one_winner(answers)
    winner = answers.index(("OK", 200))
    assert s3a.get_object(Bucket="bkt", Key="k")["Body"].read() == pattern(1000, seed=winner)
    # A refused Complete leaves its upload as it was: it can still be aborted.
    loser = (winner + 1) % len(uploads)
    s3a.abort_multipart_upload(Bucket="bkt", Key="k", UploadId=uploads[loser][0])


def test_copy_object_honours_destination_conditions(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    etag = s3.put_object(Bucket=bucket, Key="dst", Body=b"old")["ETag"]
    src = {"Bucket": bucket, "Key": "src"}
    assert call(s3.copy_object, Bucket=bucket, Key="dst", CopySource=src, IfNoneMatch="*") == ("PreconditionFailed", 412)
    assert call(s3.copy_object, Bucket=bucket, Key="dst", CopySource=src, IfMatch='"0123"') == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old"
    assert call(s3.copy_object, Bucket=bucket, Key="dst", CopySource=src, IfMatch=etag) == ("OK", 200)
    assert call(s3.copy_object, Bucket=bucket, Key="new", CopySource=src, IfNoneMatch="*") == ("OK", 200)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"


def start_slow_put(server, s3, bucket, key, body):
    """Sends a presigned PUT's head and the first half of its body; returns the connection."""
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.putrequest("PUT", f"{u.path}?{u.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[: len(body) // 2])
    return conn


@pytest.mark.parametrize("processes", [1, 2])
def test_a_bucket_deleted_during_a_put_stays_deleted(data_dirs, processes):
    """The PUT goes to the first process, the DELETE to the last: with two, a process on another
    node (with shared mounts) deletes the bucket a write holds."""
    servers = [data_dirs.server(i).start() for i in range(processes)]
    server, s3, deleter = servers[0], servers[0].client(), servers[-1].client()
    s3.create_bucket(Bucket="gone")
    s3.put_bucket_encryption(
        Bucket="gone",
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    body = pattern(1 << 20)
    conn = start_slow_put(server, s3, "gone", "k", body)
    time.sleep(0.5)
    deleter.delete_bucket(Bucket="gone")
    conn.send(body[len(body) // 2 :])
    r = conn.getresponse()
    text = r.read().decode()
    assert r.status == 404 and "<Code>NoSuchBucket</Code>" in text, (r.status, text)
    assert call(s3.head_bucket, Bucket="gone") == ("404", 404)
    assert "gone" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not (server.data_dir / "gone").exists()


def test_a_bucket_deleted_during_a_copy_stays_deleted(server, s3):
    """A copy into a bucket deleted while it reads its source never brings the bucket back.
    How long a 96 MiB copy takes depends on the machine (0.3 s on an idle one), so the delete is
    sent after shorter and shorter waits: every round must end consistently (the delete first:
    NoSuchBucket and the bucket gone; the copy first: BucketNotEmpty and the object there), and at
    least one delete must land while its copy was still running."""
    s3.create_bucket(Bucket="src")
    s3.put_object(Bucket="src", Key="big", Body=pattern(96 << 20))
    during = 0
    for wait in (0.3, 0.1, 0.03, 0.01):
        s3.create_bucket(Bucket="gone")
        result = {}

        def copy():
            t0 = time.time()
            result["answer"] = call(s3.copy_object, Bucket="gone", Key="k", CopySource={"Bucket": "src", "Key": "big"})
            result["took"] = time.time() - t0

        t = threading.Thread(target=copy)
        t.start()
        time.sleep(wait)
        deleted = call(s3.delete_bucket, Bucket="gone")
        t.join(120)
        if deleted[1] in (200, 204):
            assert result["answer"] == ("NoSuchBucket", 404), (wait, deleted, result)
            assert not (server.data_dir / "gone").exists()
            assert call(s3.head_bucket, Bucket="gone") == ("404", 404)
            during += 1
        else:
            assert deleted == ("BucketNotEmpty", 409), (wait, deleted, result)
            assert result["answer"] == ("OK", 200), (wait, deleted, result)
            assert s3.head_object(Bucket="gone", Key="k")["ContentLength"] == 96 << 20
            s3.delete_object(Bucket="gone", Key="k")
            s3.delete_bucket(Bucket="gone")
    assert during > 0, "no delete landed while its copy ran: the race was not exercised"


def test_complete_after_the_bucket_was_deleted_is_no_such_bucket(server, s3):
    # As AWS: a bucket with uploads in progress (and no object) may be deleted; they go with it.
    s3.create_bucket(Bucket="gone")
    up = s3.create_multipart_upload(Bucket="gone", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="gone", Key="k", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    s3.delete_bucket(Bucket="gone")
    answer = call(
        s3.complete_multipart_upload,
        Bucket="gone",
        Key="k",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert answer == ("NoSuchBucket", 404)
    assert not (server.data_dir / "gone").exists()


def test_a_damaged_default_encryption_fails_the_write_never_plaintext(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_KMS_AUTO_ENCRYPTION": "off"}).start()
    s3 = s.client()
    s3.create_bucket(Bucket="bkt")
    s3.put_bucket_encryption(
        Bucket="bkt",
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    s3.put_object(Bucket="bkt", Key="before", Body=b"x")
    assert s3.head_object(Bucket="bkt", Key="before")["ServerSideEncryption"] == "AES256"
    (s.data_dir / "bkt" / ".encryption.json").write_text('{"algorithm": "AES2')
    secret = pattern(4096, seed=6)
    assert call(s3.put_object, Bucket="bkt", Key="k", Body=secret) == ("InternalError", 500)
    up = call(s3.create_multipart_upload, Bucket="bkt", Key="m")
    assert up == ("InternalError", 500)
    assert call(s3.copy_object, Bucket="bkt", Key="c", CopySource={"Bucket": "bkt", "Key": "before"}) == ("InternalError", 500)
    assert call(s3.get_bucket_encryption, Bucket="bkt") == ("InternalError", 500)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt").get("Contents", [])] == ["before"]
    for f in (s.data_dir).rglob("*"):
        if f.is_file():
            assert secret[:64] not in f.read_bytes(), f
    assert "default encryption file does not parse" in s.output()


def test_a_lock_bucket_without_its_versioning_file_refuses_writes(tmp_path):
    s = Server(tmp_path / "data").start()
    s3 = s.client()
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="worm",
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}},
    )
    s3.put_object(Bucket="worm", Key="k", Body=b"kept")
    (s.data_dir / "worm" / ".versioning.json").unlink()
    assert call(s3.put_object, Bucket="worm", Key="k", Body=b"overwrite") == ("InternalError", 500)
    assert call(s3.put_object, Bucket="worm", Key="new", Body=b"unprotected") == ("InternalError", 500)
    assert "no versioning file" in s.output()


def future(days):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


def test_governance_retention_changes_need_the_bypass(server, s3):
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    vid = s3.put_object(
        Bucket="worm", Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=future(2)
    )["VersionId"]

    def retain(mode, days, bypass=False):
        kw = dict(Bucket="worm", Key="k", VersionId=vid, Retention={"Mode": mode, "RetainUntilDate": future(days)})
        if bypass:
            kw["BypassGovernanceRetention"] = True
        return call(s3.put_object_retention, **kw)

    def mode():
        return s3.get_object_retention(Bucket="worm", Key="k", VersionId=vid)["Retention"]["Mode"]

    # Another mode, or shorter, only with the bypass.
    assert retain("COMPLIANCE", 3) == ("AccessDenied", 403)
    assert mode() == "GOVERNANCE"
    assert retain("GOVERNANCE", 1) == ("AccessDenied", 403)
    # Longer in the same mode needs none.
    assert retain("GOVERNANCE", 3) == ("OK", 200)
    assert retain("GOVERNANCE", 1, bypass=True) == ("OK", 200)
    assert retain("COMPLIANCE", 2, bypass=True) == ("OK", 200)
    assert mode() == "COMPLIANCE"
    # COMPLIANCE: never shorter, never GOVERNANCE, whatever the caller says; longer is fine.
    assert retain("COMPLIANCE", 1, bypass=True) == ("AccessDenied", 403)
    assert retain("GOVERNANCE", 5, bypass=True) == ("AccessDenied", 403)
    assert retain("COMPLIANCE", 4) == ("OK", 200)
    assert mode() == "COMPLIANCE"


def test_lifecycle_dates_must_be_midnight_utc(server, s3, bucket):
    def rule(date):
        return {"Rules": [{"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Date": date}}]}

    utc = datetime.timezone.utc
    for bad in [datetime.datetime(2030, 1, 1, 12, 0, tzinfo=utc), datetime.datetime(2030, 1, 1, 0, 0, 1, tzinfo=utc)]:
        e = call(s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration=rule(bad))
        assert e == ("InvalidArgument", 400), (bad, e)
    assert call(s3.get_bucket_lifecycle_configuration, Bucket=bucket) == ("NoSuchLifecycleConfiguration", 404)
    good = datetime.datetime(2030, 1, 1, tzinfo=utc)
    assert call(s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration=rule(good)) == ("OK", 200)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"]["Date"]
    assert got == good


def test_a_part_number_that_does_not_exist_is_416(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain body")
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = []
    for n, body in [(1, pattern(5 << 20)), (2, b"tail")]:
        parts.append({"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=body)["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)["Body"].read() == b"plain body"
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)["Body"].read() == b"tail"
    for key, n in [("plain", 2), ("mp", 3), ("mp", 10000)]:
        try:
            s3.get_object(Bucket=bucket, Key=key, PartNumber=n)
            raise AssertionError(f"part {n} of {key} was served")
        except botocore.exceptions.ClientError as e:
            assert code_of(e) == ("InvalidPartNumber", 416), (key, n, e.response)
            assert e.response["Error"]["Message"] == "The requested partnumber is not satisfiable"
        assert call(s3.head_object, Bucket=bucket, Key=key, PartNumber=n) == ("416", 416)


@pytest.mark.parametrize("versioned", [False, True])
def test_a_stale_if_match_delete_never_removes_a_newer_put(data_dirs, versioned):
    """DeleteObject If-Match is decided under the key's lock, as a conditional PUT: a PUT that
    commits after the DELETE saw the old ETag is never deleted (nor hidden behind a delete
    marker). Before that fix about 7 % of these rounds lost the PUT (two processes)."""
    a = data_dirs.server(0).start()
    b = data_dirs.server(1).start()
    s3a, s3b = a.client(), b.client()
    s3a.create_bucket(Bucket="bkt")
    if versioned:
        s3a.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
    deleted = 0
    # Over a shared filesystem each round costs seconds; fewer still meet the race there.
    for i in range(40 if data_dirs.shared else 150):
        key = f"k{i % 5}"
        old = s3a.put_object(Bucket="bkt", Key=key, Body=b"old %d" % i)["ETag"]
        put, delete = race(
            [
                (s3a.put_object, dict(Bucket="bkt", Key=key, Body=b"new %d" % i)),
                (s3b.delete_object, dict(Bucket="bkt", Key=key, IfMatch=old)),
            ]
        )
        assert put == ("OK", 200)
        assert delete in (("OK", 200), ("PreconditionFailed", 412)), delete
        deleted += delete == ("OK", 200)
        got = call(s3b.get_object, Bucket="bkt", Key=key)
        assert got == ("OK", 200), f"round {i}: the PUT that answered OK is gone ({got}; delete: {delete})"
        assert s3b.get_object(Bucket="bkt", Key=key)["Body"].read() == b"new %d" % i
    assert deleted > 0, "no conditional delete ever ran before its PUT: the race was not exercised"
    # The rules themselves: a stale ETag is 412, a key without an object 404, a match deletes.
    assert call(s3a.delete_object, Bucket="bkt", Key="k0", IfMatch=old) == ("PreconditionFailed", 412)
    assert call(s3a.delete_object, Bucket="bkt", Key="none", IfMatch=old) == ("NoSuchKey", 404)
    current = s3a.head_object(Bucket="bkt", Key="k4")["ETag"]
    assert call(s3a.delete_object, Bucket="bkt", Key="k4", IfMatch=current) == ("OK", 200)
    assert call(s3a.head_object, Bucket="bkt", Key="k4") == ("404", 404)


def test_a_bucket_deleted_by_one_process_while_another_writes_is_all_or_nothing(data_dirs):
    """One process deletes the bucket while another commits new keys into it, round after
    round. The bucket guard (a lock every process takes) decides the order: either the delete
    came first (every PUT is NoSuchBucket and the bucket stays gone) or a PUT did (the delete is
    BucketNotEmpty and every acknowledged object is there). A guard that held only inside one
    process (or one node) lets a commit land between the delete's check and its removal."""
    a, b = data_dirs.server(0).start(), data_dirs.server(1).start()
    writer, deleter = a.client(max_pool_connections=16), b.client()
    for rnd in range(12):
        name = f"del-{rnd}"
        writer.create_bucket(Bucket=name)
        deleter.head_bucket(Bucket=name)
        calls = [(writer.put_object, dict(Bucket=name, Key=f"k{i}", Body=pattern(20_000, i))) for i in range(12)]
        calls.insert(6, (deleter.delete_bucket, dict(Bucket=name)))
        answers = race(calls)
        deleted = answers[6] in (("OK", 200), ("OK", 204))
        puts = answers[:6] + answers[7:]
        acked = [i for i, p in enumerate(puts) if p == ("OK", 200)]
        for p in puts:
            assert p in (("OK", 200), ("NoSuchBucket", 404)), (rnd, answers)
        if deleted:
            assert not acked, f"round {rnd}: the bucket was deleted after PUTs into it were acknowledged: {answers}"
            assert call(writer.head_bucket, Bucket=name) == ("404", 404), f"round {rnd}: the deleted bucket is back"
            assert call(deleter.head_bucket, Bucket=name) == ("404", 404)
        else:
            assert answers[6] == ("BucketNotEmpty", 409), (rnd, answers)
            for i in acked:
                got = deleter.get_object(Bucket=name, Key=f"k{i}")["Body"].read()
                assert got == pattern(20_000, i), f"round {rnd}: acknowledged k{i} is not there"
