"""S3 Bucket Keys (`x-amz-server-side-encryption-bucket-key-enabled`, the bucket default's
`BucketKeyEnabled`) through our KES over real OpenBao Transit, started by tests/python.rs, which
passes its endpoint, the object server's client files, KES's admin identity (COFFER_KES_*) and
OpenBao's audit log (COFFER_VAULT_AUDIT_LOG), where every Transit call is counted.
"""
import base64
import concurrent.futures
import hashlib
import json
import os
import time

import botocore.exceptions
import pytest

from test_rewrap import admin, kes_admin, rotate, server, trailer, version_of


def audit_log():
    p = os.environ.get("COFFER_VAULT_AUDIT_LOG")
    if not p:
        pytest.fail("COFFER_VAULT_AUDIT_LOG is not set: run this file through `cargo test -p object-server --test python bucket_keys`")
    return p


def transit_calls(key):
    """Transit requests Vault logged for `key`: {"datakey": n, "decrypt": n, "encrypt": n}."""
    out = {"datakey": 0, "decrypt": 0, "encrypt": 0}
    with open(audit_log()) as f:
        for line in f:
            e = json.loads(line)
            if e.get("type") != "request":
                continue
            path = e["request"].get("path", "")
            for op, prefix in [("datakey", "transit/datakey/plaintext/"), ("decrypt", "transit/decrypt/"), ("encrypt", "transit/encrypt/")]:
                if path == prefix + key:
                    out[op] += 1
    return out


def obj_meta(data, bucket, key):
    """The `encryption` of the object file of `bucket/key`."""
    p = data / bucket
    for seg in key.split("/"):
        p = p / ("_" + seg)
    return trailer(p / "obj")[1]["encryption"]


def records(data, bucket):
    """Bucket key records of `bucket`: id -> record."""
    out = {}
    for p in (data / bucket).glob(".bucketkey-*.json"):
        name = p.name[len(".bucketkey-"):-len(".json")]
        if not name.startswith("current-"):
            out[name] = json.loads(p.read_bytes())
    return out


def body(i, n=4096):
    return hashlib.sha256(str(i).encode()).digest() * (n // 32)


def code_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


N = 60


def test_bucket_keys_cut_transit_calls_by_orders_of_magnitude(tmp_path):
    tag = os.urandom(3).hex()
    default_key, own, shared = f"coffer-default-{tag}", f"coffer-own-{tag}", f"coffer-bk-{tag}"
    for k in (own, shared):
        kes_admin("POST", f"/v1/key/create/{k}")
    data = tmp_path / "data"
    a = server(data, tmp_path, default_key, 0).start()
    c = a.client()
    c.create_bucket(Bucket="own")
    c.create_bucket(Bucket="bkt")
    c.put_bucket_encryption(Bucket="own", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": own}}]})
    c.put_bucket_encryption(Bucket="bkt", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": shared}, "BucketKeyEnabled": True}]})
    rule = c.get_bucket_encryption(Bucket="bkt")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BucketKeyEnabled"] is True and rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == f"arn:aws:kms:{shared}", rule
    rule = c.get_bucket_encryption(Bucket="own")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BucketKeyEnabled"] is False, rule
    base = {k: transit_calls(k) for k in (own, shared)}

    def run(bucket):
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            puts = list(ex.map(lambda i: c.put_object(Bucket=bucket, Key=f"o/{i}", Body=body(i)), range(N)))
            gets = list(ex.map(lambda i: c.get_object(Bucket=bucket, Key=f"o/{i}")["Body"].read() == body(i), range(N)))
        assert all(gets)
        return puts, time.monotonic() - t0

    own_puts, own_s = run("own")
    bk_puts, bk_s = run("bkt")
    assert all(p["ServerSideEncryption"] == "aws:kms" and "BucketKeyEnabled" not in p for p in own_puts), own_puts[0]
    assert all(p["ServerSideEncryption"] == "aws:kms" and p["BucketKeyEnabled"] is True and p["SSEKMSKeyId"] == f"arn:aws:kms:{shared}" for p in bk_puts), bk_puts[0]
    calls = {k: {op: n - base[k][op] for op, n in transit_calls(k).items()} for k in (own, shared)}
    print(f"Transit calls for {N} PUTs and {N} GETs: own data keys {calls[own]} ({own_s:.2f} s), bucket keys {calls[shared]} ({bk_s:.2f} s)")
    assert calls[own]["datakey"] == N and calls[own]["decrypt"] == N, calls
    # One data key for the bucket; a decrypt only if the run outlasted the cache bound (10 s).
    assert calls[shared]["datakey"] == 1 and calls[shared]["decrypt"] <= 1 + int((bk_s + 1) // 10), calls

    # HEAD and GET say so; on disk the object keeps no KMS ciphertext, only its record's id.
    h = c.head_object(Bucket="bkt", Key="o/1")
    assert h["BucketKeyEnabled"] is True and h["ServerSideEncryption"] == "aws:kms", h
    assert c.get_object(Bucket="bkt", Key="o/1")["BucketKeyEnabled"] is True
    assert "BucketKeyEnabled" not in c.head_object(Bucket="own", Key="o/1")
    recs = records(data, "bkt")
    assert len(recs) == 1, recs
    (rid, rec), = recs.items()
    assert rec["kms_key"] == shared and version_of(rec["ciphertext"]) == 1, rec
    enc = obj_meta(data, "bkt", "o/1")
    assert enc["bucket_key"] == rid and "kms_ciphertext" not in enc and enc["kms_key"] == shared, enc
    assert "bucket_key" not in obj_meta(data, "own", "o/1")

    # The request's header wins over the bucket default, both ways; an SSE-S3 PUT takes one too.
    r = c.put_object(Bucket="own", Key="h/on", Body=b"on", ServerSideEncryption="aws:kms", SSEKMSKeyId=own, BucketKeyEnabled=True)
    assert r["BucketKeyEnabled"] is True and obj_meta(data, "own", "h/on").get("bucket_key")
    r = c.put_object(Bucket="bkt", Key="h/off", Body=b"off", BucketKeyEnabled=False)
    assert "BucketKeyEnabled" not in r and obj_meta(data, "bkt", "h/off").get("kms_ciphertext")
    r = c.put_object(Bucket="bkt", Key="h/s3", Body=b"s3", ServerSideEncryption="AES256")
    assert r["ServerSideEncryption"] == "AES256" and r["BucketKeyEnabled"] is True
    assert obj_meta(data, "bkt", "h/s3")["mode"] == "S3"
    # An SSE-KMS context of the client's own is bound into a data key of the object's own.
    ctx = base64.b64encode(b'{"app":"x"}').decode()
    r = c.put_object(Bucket="bkt", Key="h/ctx", Body=b"ctx", ServerSideEncryption="aws:kms", SSEKMSKeyId=shared, SSEKMSEncryptionContext=ctx)
    assert "BucketKeyEnabled" not in r and obj_meta(data, "bkt", "h/ctx").get("kms_ciphertext")
    # CopyObject and multipart under the bucket key.
    r = c.copy_object(Bucket="bkt", Key="h/copy", CopySource={"Bucket": "own", "Key": "o/2"})
    assert r["BucketKeyEnabled"] is True and obj_meta(data, "bkt", "h/copy")["bucket_key"] == rid
    r = c.copy_object(Bucket="own", Key="h/copy-on", CopySource={"Bucket": "own", "Key": "o/3"}, ServerSideEncryption="aws:kms", SSEKMSKeyId=own, BucketKeyEnabled=True)
    assert r["BucketKeyEnabled"] is True
    up = c.create_multipart_upload(Bucket="bkt", Key="h/mp")
    assert up["BucketKeyEnabled"] is True
    big = os.urandom(5 * 1024 * 1024)
    p1 = c.upload_part(Bucket="bkt", Key="h/mp", UploadId=up["UploadId"], PartNumber=1, Body=big)
    assert p1["BucketKeyEnabled"] is True
    p2 = c.upload_part(Bucket="bkt", Key="h/mp", UploadId=up["UploadId"], PartNumber=2, Body=b"tail")
    done = c.complete_multipart_upload(Bucket="bkt", Key="h/mp", UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    assert done["BucketKeyEnabled"] is True
    assert c.get_object(Bucket="bkt", Key="h/mp")["Body"].read() == big + b"tail"
    assert c.get_object(Bucket="bkt", Key="h/copy")["Body"].read() == body(2)
    # Past the cache bound one decrypt per record, not per object.
    time.sleep(11)
    before = transit_calls(shared)["decrypt"]
    for i in range(N):
        assert c.get_object(Bucket="bkt", Key=f"o/{i}")["Body"].read() == body(i)
    assert transit_calls(shared)["decrypt"] - before == 1
    # ... and no new record for it (the SSE-S3 PUT made one under the default key).
    assert {i for i, r in records(data, "bkt").items() if r["kms_key"] == shared} == {rid}
    a.stop()


def test_two_processes_tampering_rotation_and_shredding(tmp_path):
    tag = os.urandom(3).hex()
    default_key, doomed, kept = f"coffer-default-{tag}", f"coffer-doomed-{tag}", f"coffer-kept-{tag}"
    for k in (doomed, kept):
        kes_admin("POST", f"/v1/key/create/{k}")
    data = tmp_path / "data"
    a = server(data, tmp_path, default_key, 0).start()
    b = server(data, tmp_path, default_key, 0).start()
    ca, cb = a.client(), b.client()
    ca.create_bucket(Bucket="bkt")
    ca.create_bucket(Bucket="plain")
    ca.put_bucket_encryption(Bucket="bkt", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": doomed}, "BucketKeyEnabled": True}]})
    # Both processes write into the empty bucket at once: each may make a record; every object
    # names its own, and all read back through both.
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: (ca if i % 2 else cb).put_object(Bucket="bkt", Key=f"o/{i}", Body=body(i)), range(80)))
    recs = records(data, "bkt")
    assert 1 <= len(recs) <= 2, recs
    used = {obj_meta(data, "bkt", f"o/{i}")["bucket_key"] for i in range(80)}
    assert used <= recs.keys(), (used, recs)
    for cl in (ca, cb):
        for i in range(80):
            assert cl.get_object(Bucket="bkt", Key=f"o/{i}")["Body"].read() == body(i)
    # Objects without bucket keys, and under a bucket key of another KMS key, beside them.
    cb.put_object(Bucket="plain", Key="own", Body=b"own key", ServerSideEncryption="aws:kms", SSEKMSKeyId=kept)
    cb.put_object(Bucket="plain", Key="bk", Body=b"kept bk", ServerSideEncryption="aws:kms", SSEKMSKeyId=kept, BucketKeyEnabled=True)

    # A tampered record is a clear error on a process that has not cached it, never garbage.
    rid = obj_meta(data, "bkt", "o/0")["bucket_key"]
    path = data / "bkt" / f".bucketkey-{rid}.json"
    good = path.read_bytes()
    rec = json.loads(good)
    ct = base64.b64decode(rec["ciphertext"]).decode()  # vault:v1:<base64>
    at = len(ct) - 20
    flipped = ct[:at] + ("A" if ct[at] != "A" else "B") + ct[at + 1:]
    other_bucket = next(iter(records(data, "plain").values()))
    for bad, msg in [
        (dict(rec, ciphertext=base64.b64encode(flipped.encode()).decode()), "could not be decrypted"),
        (dict(rec, ciphertext=other_bucket["ciphertext"]), "could not be decrypted"),
        (other_bucket, "could not be decrypted"),
        ("{not json", "is damaged"),
        (dict(rec, ciphertext="!!"), "is damaged"),
    ]:
        path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
        fresh = server(data, tmp_path, default_key, 0).start()
        assert code_of(lambda: fresh.client().get_object(Bucket="bkt", Key="o/0")) == (500, "InternalError", f"The object's bucket key {msg}."), bad
        fresh.stop()
    path.unlink()
    fresh = server(data, tmp_path, default_key, 0).start()
    assert code_of(lambda: fresh.client().get_object(Bucket="bkt", Key="o/0")) == (500, "InternalError", "The object's bucket key is missing.")
    path.write_bytes(good)
    assert fresh.client().get_object(Bucket="bkt", Key="o/0")["Body"].read() == body(0)
    fresh.stop()

    # Rotation: the re-wrap job moves each record's ciphertext to the newest version, the
    # objects stay as they are, and with version 1 retired everything reads on a fresh process.
    objs_before = {i: (data / "bkt" / "_o" / f"_{i}" / "obj").read_bytes() for i in range(80)}
    calls0 = transit_calls(doomed)
    assert rotate(doomed)["newest"] == 2 and rotate(kept)["newest"] == 2
    status, st = admin(a, "POST")
    assert status == 200, st
    deadline = time.monotonic() + 120
    while st["state"] != "done":
        assert time.monotonic() < deadline, st
        time.sleep(0.3)
        _, st = admin(b, "GET")
    assert st["failed"] == 0, st
    assert {version_of(r["ciphertext"]) for r in records(data, "bkt").values()} == {2}
    assert {version_of(r["ciphertext"]) for r in records(data, "plain").values()} == {2}
    assert version_of(obj_meta(data, "plain", "own")["kms_ciphertext"]) == 2
    assert all((data / "bkt" / "_o" / f"_{i}" / "obj").read_bytes() == objs_before[i] for i in range(80))
    moved = transit_calls(doomed)
    # One decrypt per record at most (the decrypt cache may answer one a process read lately),
    # none per object.
    assert 1 <= moved["decrypt"] - calls0["decrypt"] <= len(recs), (calls0, moved, recs)
    for k in (doomed, kept):
        rotate(k, min_version=2, add=False)
    fresh = server(data, tmp_path, default_key, 0).start()
    for i in range(80):
        assert fresh.client().get_object(Bucket="bkt", Key=f"o/{i}")["Body"].read() == body(i)
    fresh.stop()

    # Crypto-shredding: once the key is deleted, every object under its bucket keys fails to
    # read (and new writes fail) on both processes within the cache bound; the others read.
    assert ca.get_object(Bucket="bkt", Key="o/1")["Body"].read() == body(1)
    kes_admin("DELETE", f"/v1/key/delete/{doomed}")
    time.sleep(11)
    for cl in (ca, cb):
        for i in (0, 1, 79):
            assert code_of(lambda: cl.get_object(Bucket="bkt", Key=f"o/{i}"))[:2] == (400, "KMS.NotFoundException")
        assert code_of(lambda: cl.put_object(Bucket="bkt", Key="new", Body=b"x"))[:2] == (400, "KMS.NotFoundException")
        assert cl.get_object(Bucket="plain", Key="own")["Body"].read() == b"own key"
        assert cl.get_object(Bucket="plain", Key="bk")["Body"].read() == b"kept bk"
    a.stop()
    b.stop()
