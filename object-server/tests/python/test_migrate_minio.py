"""`object-server migrate` against the real MinIO peer while it runs, deployed as the MinIO KMS
guide does (MinIO + MinIO's KES + OpenBao, auto-encryption on): every kind of object and bucket
setting the offline import test writes, SSE-KMS under two keys, and a bulk bucket to measure
throughput. The object server started on the migrated directory answers every version as MinIO
did; a second run adds nothing; MinIO's buckets on its drive are unchanged by the migration."""
import base64
import hashlib
import json
import os
import pathlib
import subprocess
import time

import pytest
import requests

from conftest import Server, pattern, server_bin
from test_import_minio import (  # noqa: F401 (fixtures)
    BUCKETS,
    MIB,
    Minio,
    _stop_minio,
    bucket_settings,
    minio_kes,
    snapshot,
    tree_hashes,
    write_everything,
)

ALL = [*BUCKETS, "bulk", "kms"]
SECRET = "minio-secret-key"


def write_kms_and_bulk(c, kes):
    """SSE-KMS under a second key (with a context, multipart too) and a bulk bucket: many small
    objects and a few larger ones (the throughput measured)."""
    second = "minio-key-2"
    r = requests.post(f"{kes['MINIO_KMS_KES_ENDPOINT']}/v1/key/create/{second}", verify=kes["MINIO_KMS_KES_CAPATH"],
                      cert=(kes["MINIO_KMS_KES_CERT_FILE"], kes["MINIO_KMS_KES_KEY_FILE"]), timeout=10)
    assert r.status_code == 200, r.text
    c.create_bucket(Bucket="kms")
    c.put_object(Bucket="kms", Key="auto", Body=b"auto-encrypted")
    c.put_object(Bucket="kms", Key="default-key", Body=b"kms default", ServerSideEncryption="aws:kms")
    ctx = base64.b64encode(json.dumps({"project": "migrate <&> test"}).encode()).decode()
    c.put_object(Bucket="kms", Key="second-key", Body=pattern(3 * MIB, 10), ServerSideEncryption="aws:kms",
                 SSEKMSKeyId=second, SSEKMSEncryptionContext=ctx, Metadata={"m": "1"})
    up = c.create_multipart_upload(Bucket="kms", Key="multi", ServerSideEncryption="aws:kms", SSEKMSKeyId=second)
    parts = []
    for n, body in [(1, pattern(5 * MIB, 11)), (2, pattern(3, 12))]:
        r = c.upload_part(Bucket="kms", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket="kms", Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    c.create_bucket(Bucket="bulk")
    for i in range(150):
        c.put_object(Bucket="bulk", Key=f"small/{i:04d}", Body=pattern(4096, 100 + i))
    for i in range(6):
        c.put_object(Bucket="bulk", Key=f"large/{i}", Body=pattern(4 * MIB, 300 + i))
    return second


def buckets_only(drive: pathlib.Path):
    """The drive's hashes without MinIO's own `.minio.sys` (a running MinIO updates its usage
    and heal state there by itself)."""
    return {k: v for k, v in tree_hashes(drive).items() if not k.startswith(".minio.sys")}


def migrate(*args, env):
    return subprocess.run([server_bin(), "migrate", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=900)


def test_online_migration_of_the_guides_deployment(tmp_path, minio_kes):
    kes, _vault = minio_kes
    minio = Minio(tmp_path / "minio", {**kes, "MINIO_KMS_AUTO_ENCRYPTION": "on"}).start()
    c = minio.client()
    write_everything(c)
    second = write_kms_and_bulk(c, kes)
    want = snapshot(c, ALL, skip={("crypt", "customer")})
    want_settings = bucket_settings(c, ALL)
    heads = {k: c.head_object(Bucket="kms", Key=k) for k in ["auto", "default-key", "second-key", "multi"]}
    assert heads["second-key"]["SSEKMSKeyId"].endswith(second), heads["second-key"]
    assert heads["auto"]["ServerSideEncryption"] == "aws:kms", heads["auto"]
    assert want["ver/k"][1].get("delete_marker") and want["plain/multi"][0]["etag"].endswith('-3"')
    before = buckets_only(minio.drive)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "MC_"))}
    env.update(kes)
    keys = {"MIGRATE_ACCESS_KEY": "minio-admin", "MIGRATE_SECRET_KEY": SECRET}
    source = ["--from", minio.endpoint, "--from-ca-file", minio.certs / "public.crt"]
    data = tmp_path / "coffer"

    # Keys on the command line are refused, before anything is read or written.
    bad = migrate("--from", f"https://minio-admin:{SECRET}@127.0.0.1:{minio.port}", data, env=env)
    assert bad.returncode == 1 and "must not carry keys" in bad.stderr, bad.stderr
    assert SECRET not in bad.stderr and not data.exists()
    # Wrong keys: MinIO's refusal, nothing written.
    wrong = migrate(*source, data, env={**env, **keys, "MIGRATE_SECRET_KEY": "not-the-secret"})
    assert wrong.returncode == 1 and "403 Forbidden SignatureDoesNotMatch" in wrong.stderr, wrong.stderr
    assert not data.exists()

    # A dry run lists and reports, and writes nothing.
    dry = migrate("--dry-run", "--json", "-", *source, data, env={**env, **keys})
    assert dry.returncode == 2, dry.stderr  # the SSE-C object is reported
    dry_report = json.loads(dry.stdout)
    assert not (data / "plain").exists()

    t0 = time.monotonic()
    # Small listing pages: a key's versions (ver/k has six) continue on the next page.
    r = migrate("--json", tmp_path / "report.json", "--list-page-size", "4", *source, data, env={**env, **keys})
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert SECRET not in r.stdout + r.stderr
    assert "migrate: bucket bulk" in r.stderr, r.stderr  # progress
    mib = report["bytes"] / MIB
    print(r.stdout)
    print(f"online migration: {report['versions']} versions, {mib:.1f} MiB in {report['seconds']:.2f} s: "
          f"{mib / report['seconds']:.1f} MiB/s, {report['versions'] / report['seconds']:.1f} versions/s "
          f"(whole command {took:.2f} s)")

    skipped = [(s["bucket"], s.get("object"), s["reason"]) for s in report["skipped"]]
    assert [(b, o) for b, o, _ in skipped] == [("crypt", "customer")], skipped
    assert "SSE-C" in skipped[0][2]
    # Auto-encryption and SSE-KMS are SSE-KMS in today's MinIO; `AES256` requests are SSE-S3.
    versions = sum(1 for rows in want.values() for v in rows if not v.get("delete_marker"))
    markers = sum(1 for rows in want.values() for v in rows if v.get("delete_marker"))
    assert (report["versions"], report["delete_markers"]) == (versions, markers), report
    assert report["encrypted"]["SSE-C"] == 1 and report["encrypted"]["SSE-S3"] == 4, report["encrypted"]
    assert report["encrypted"]["SSE-KMS"] >= 4 + 150 + 6, report["encrypted"]
    for k in ["versions", "delete_markers", "bytes", "objects", "encrypted", "buckets"]:
        assert dry_report[k] == report[k], k
    assert report["bucket_settings"]["plain"] == ["policy", "lifecycle", "tagging"]
    assert report["bucket_settings"]["crypt"] == ["default encryption"]
    assert report["bucket_settings"]["susp"] == ["versioning Suspended"]
    assert report["bucket_settings"]["locked"][0].startswith("versioning Enabled")

    # Resume: a second run (the keys from an mc alias this time) finds everything done.
    alias = {"MC_HOST_old": f"https://minio-admin:{SECRET}@127.0.0.1:{minio.port}"}
    again = migrate("--json", "-", "--from", "old", "--from-ca-file", minio.certs / "public.crt", data,
                    env={**env, **alias})
    assert again.returncode == 2, again.stdout + again.stderr
    second_run = json.loads(again.stdout)
    assert (second_run["versions"], second_run["delete_markers"], second_run["objects"]) == (0, 0, 0), second_run
    assert second_run["resumed"] == versions + markers, second_run
    assert [s.get("object") for s in second_run["skipped"]] == ["customer"]
    assert SECRET not in again.stdout + again.stderr

    got_minio = snapshot(c, ALL, skip={("crypt", "customer")})
    assert got_minio == want, "MinIO's answers changed"
    assert buckets_only(minio.drive) == before, "MinIO's buckets changed on its drive"

    # Written to MinIO since: a third run copies exactly that.
    c.put_object(Bucket="ver", Key="k", Body=b"written after the first runs", Metadata={"late": "yes"})
    c.put_object(Bucket="bulk", Key="late", Body=pattern(1000, 999), Tagging="when=late")
    want = snapshot(c, ALL, skip={("crypt", "customer")})
    before = buckets_only(minio.drive)
    third = migrate("--json", "-", *source, data, env={**env, **keys})
    assert third.returncode == 2, third.stdout + third.stderr
    third_run = json.loads(third.stdout)
    assert (third_run["versions"], third_run["delete_markers"]) == (2, 0), third_run
    assert third_run["resumed"] == versions + markers, third_run
    minio.stop()
    assert buckets_only(minio.drive) == before, "MinIO's buckets changed on its drive"

    s = Server(data, env=kes).start()
    cl = s.client()
    got = snapshot(cl, ALL)
    got_settings = bucket_settings(cl, ALL)
    for b in ALL:
        assert got_settings[b] == want_settings[b], f"{b}:\nMinIO:  {want_settings[b]}\nCoffer: {got_settings[b]}"
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == want[k], f"{k}:\nMinIO:  {want[k]}\nCoffer: {got[k]}"
    for k, h in heads.items():
        mine = cl.head_object(Bucket="kms", Key=k)
        assert mine.get("SSEKMSKeyId") == h.get("SSEKMSKeyId"), (k, mine, h)
    # Stored encrypted by Coffer: no plaintext of the bulk objects on Coffer's disk.
    assert not [f for f in (data / "kms").rglob("*") if f.is_file() and b"auto-encrypted" in f.read_bytes()]
    s.stop()
