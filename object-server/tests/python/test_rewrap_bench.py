"""Re-wrap throughput (objects/s) of one object server, unpaced, through a KES: ours (its
keystore, Transit or K/V, chosen by tests/python.rs, which passes COFFER_KES_* and a label in
COFFER_REWRAP_BENCH_LABEL) or MinIO's (COFFER_REWRAP_BENCH_KES=minio, started here on its fs
keystore). Two jobs: after a rotation (our KES only: MinIO's KES has no key versions), and onto
another key (any KES: MinIO's `keyrotate`), each a KMS decrypt and encrypt per object.

Size: COFFER_REWRAP_BENCH_OBJECTS (default 1,000). The numbers go to COFFER_REWRAP_REPORT's file.
"""
import base64
import hashlib
import json
import os
import random

from test_kes import minio_kes
from test_rewrap import admin, kes_env, put_many, report, rotate, server, wait_done

OBJECTS = int(os.environ.get("COFFER_REWRAP_BENCH_OBJECTS", "1000"))


def stored_keys(data, bucket):
    """(key name, ciphertext prefix up to its version) of every object file of `bucket`."""
    out = []
    for p in (data / bucket).rglob("obj"):
        raw = p.read_bytes()
        n = int.from_bytes(raw[-12:-8], "little")
        enc = json.loads(raw[len(raw) - 12 - n:len(raw) - 12])["encryption"]
        out.append((enc["kms_key"], base64.b64decode(enc["kms_ciphertext"])))
    return out


def bench(tmp_path, kes, label, can_rotate):
    tag = os.urandom(3).hex()
    first, second = f"coffer-bench-{tag}", f"coffer-bench2-{tag}"
    data = tmp_path / "data"
    s = server(data, tmp_path, f"coffer-default-{tag}", 0, kes=kes).start()
    c = s.client()
    c.create_bucket(Bucket="bench")
    for k in (first, second):
        status, err = admin(s, "POST", f"key-id={k}", path="/minio/kms/v1/key/create")
        assert status == 200, (status, err)
    bodies = {}

    def put(i):
        def run(cl):
            b = random.Random(i).randbytes(1024)
            cl.put_object(Bucket="bench", Key=f"o/{i:06d}", Body=b, ServerSideEncryption="aws:kms", SSEKMSKeyId=first)
            bodies[f"o/{i:06d}"] = hashlib.sha256(b).hexdigest()
        return run

    put_many([s], [put(i) for i in range(OBJECTS)])
    assert {k for k, _ in stored_keys(data, "bench")} == {first}
    jobs = []
    if can_rotate:
        rotate(first)
        jobs.append(("after a rotation", ""))
    jobs.append(("onto another key", f"key={second}&"))
    for what, query in jobs:
        status, st = admin(s, "POST", query + "bucket=bench")
        assert status == 200, st
        st, secs = wait_done(s, 600)
        assert (st["rewrapped"], st["failed"]) == (OBJECTS, 0), st
        report(f"re-wrap throughput, {label}, {what}: {OBJECTS} objects in {secs:.1f} s = {OBJECTS / secs:.0f} objects/s (1 process, unpaced, parallelism {os.environ.get('COFFER_REWRAP_PARALLELISM', 'default')})")
    assert {k for k, _ in stored_keys(data, "bench")} == {second}
    for key, h in list(bodies.items())[:: max(1, OBJECTS // 100)]:
        assert hashlib.sha256(c.get_object(Bucket="bench", Key=key)["Body"].read()).hexdigest() == h
    s.stop()


def test_rewrap_throughput(tmp_path):
    if os.environ.get("COFFER_REWRAP_BENCH_KES") == "minio":
        allow = ("create", "generate", "decrypt", "encrypt", "describe")
        with minio_kes(tmp_path / "minio-kes", allow) as kes:
            bench(tmp_path, kes, "MinIO's KES (fs keystore)", can_rotate=False)
    else:
        kes_env()
        bench(tmp_path, None, os.environ.get("COFFER_REWRAP_BENCH_LABEL", "our KES"), can_rotate=True)
