"""The online re-wrap job after a key rotation, and crypto-shredding, through our KES over real
OpenBao Transit (started by tests/python.rs, which passes its endpoint, the object server's
client files and KES's admin identity in COFFER_KES_*).

Transit ciphertexts name their key version (`vault:v<N>:...`), which is what is checked on disk.

Size: COFFER_REWRAP_OBJECTS objects (default 2,000, what CI runs; the issue's acceptance run is
10,000). Measurements go to the file COFFER_REWRAP_REPORT names, if set.
"""
import base64
import concurrent.futures
import hashlib
import json
import os
import pathlib
import random
import subprocess
import threading
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests

from conftest import Server, peer

MAGIC = b"COFFER\x00\x01"
OBJECTS = int(os.environ.get("COFFER_REWRAP_OBJECTS", "2000"))


def report(line):
    print(line)
    if os.environ.get("COFFER_REWRAP_REPORT"):
        with open(os.environ["COFFER_REWRAP_REPORT"], "a") as f:
            f.write(line + "\n")


def kes_env():
    try:
        return {k: os.environ[k] for k in ["COFFER_KES_ENDPOINT", "COFFER_KES_CA", "COFFER_KES_CERT", "COFFER_KES_KEY", "COFFER_KES_ADMIN_CERT", "COFFER_KES_ADMIN_KEY"]}
    except KeyError as e:
        pytest.fail(f"{e} is not set: run this file through `cargo test -p object-server --test python rewrap`")


def kes_admin(method, path, body=None):
    """A call to our KES as its admin."""
    e = kes_env()
    r = requests.request(method, e["COFFER_KES_ENDPOINT"] + path, json=body, cert=(e["COFFER_KES_ADMIN_CERT"], e["COFFER_KES_ADMIN_KEY"]), verify=e["COFFER_KES_CA"], timeout=30)
    assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def rotate(name, min_version=None, add=True):
    body = {"add_version": add}
    if min_version is not None:
        body["min_version"] = min_version
    return kes_admin("POST", f"/v1/coffer/key/rotate/{name}", body)


def our_kes():
    """The object server's MINIO_KMS_KES_* settings for our KES (COFFER_KES_*)."""
    e = kes_env()
    return {
        "MINIO_KMS_KES_ENDPOINT": e["COFFER_KES_ENDPOINT"],
        "MINIO_KMS_KES_CAPATH": e["COFFER_KES_CA"],
        "MINIO_KMS_KES_CERT_FILE": e["COFFER_KES_CERT"],
        "MINIO_KMS_KES_KEY_FILE": e["COFFER_KES_KEY"],
    }


def server(data_dir, log_dir, default_key, rate, kes=None, **env):
    return Server(data_dir, log_dir=log_dir, env={
        **(kes or our_kes()),
        "MINIO_KMS_KES_KEY_NAME": default_key,
        "COFFER_REWRAP_RATE": str(rate),
        "MINIO_PROMETHEUS_AUTH_TYPE": "public",
        **env,
    })


def admin(s, method, query="", path="/minio/admin/v3/coffer/rewrap"):
    """A signed call of the re-wrap admin route (or another admin `path`); (status, JSON)."""
    url = f"{s.endpoint}{path}" + (f"?{query}" if query else "")
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=b"")
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(s.access, s.secret), "s3", "us-east-1").add_auth(req)
    r = requests.request(method, url, headers=dict(req.headers.items()), timeout=60)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def trailer(path):
    """(body length, metadata JSON) of an object file."""
    data = path.read_bytes()
    assert data[-8:] == MAGIC, path
    n = int.from_bytes(data[-12:-8], "little")
    body = len(data) - 12 - n
    return body, json.loads(data[body:len(data) - 12]), hashlib.sha256(data[:body]).hexdigest()


def version_of(ciphertext_b64):
    ct = base64.b64decode(ciphertext_b64).decode()
    assert ct.startswith("vault:v"), ct
    return int(ct.split(":")[1][1:])


def stored_ciphertexts(data):
    """Every KMS ciphertext kept under `data`: (where, key name, version)."""
    out = []
    for p in data.rglob("*"):
        if not p.is_file() or "/.coffer/" in str(p) or "/parts/" in str(p) or p.name.startswith("."):
            continue
        if p.name != "obj" and p.parent.name != "versions":
            continue
        _, meta, _ = trailer(p)
        enc = meta.get("encryption")
        if enc and enc.get("kms_ciphertext"):
            out.append((str(p), enc["kms_key"], version_of(enc["kms_ciphertext"])))
    for p in (data / ".coffer" / "multipart").rglob("upload.json"):
        enc = json.loads(p.read_bytes()).get("encryption")
        if enc:
            out.append((str(p), enc["kms_key"], version_of(enc["kms_ciphertext"])))
    mk = json.loads((data / ".coffer" / "metadata.key").read_bytes())
    out.append(("metadata.key", mk["kms_key"], version_of(mk["ciphertext"])))
    users = json.loads((data / ".coffer" / "iam" / "users.json").read_bytes())["users"]
    for name, u in users.items():
        out.append((f"user {name}", u["secret"]["kms_key"], version_of(u["secret"]["kms_ciphertext"])))
    return out


def body_files(data):
    """Part files: path -> (inode, mtime, hash); single-part object files: path -> hash of the
    stored body bytes (the file itself is replaced by a metadata change)."""
    parts, bodies = {}, {}
    for p in data.rglob("*"):
        if not p.is_file() or "/.coffer/" in str(p):
            continue
        if "/parts/" in str(p):
            st = p.stat()
            parts[str(p)] = (st.st_ino, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        elif p.name == "obj" or p.parent.name == "versions":
            _, meta, h = trailer(p)
            bodies[(str(p), meta.get("version_id"), meta.get("modified_ms"))] = h
    return parts, bodies


def put_many(servers, jobs, threads=16):
    """Runs each job (a function of a client) on `threads` threads, each with its own client of
    one of `servers` in turn: the writes of thousands of objects overlap their KMS calls."""
    local = threading.local()
    made = iter(range(1 << 30))
    lock = threading.Lock()

    def run(job):
        if not hasattr(local, "client"):
            with lock:
                i = next(made)
            local.client = servers[i % len(servers)].client(max_pool_connections=4)
        return job(local.client)

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(run, jobs))


def wait_done(s, deadline_s):
    started = time.monotonic()
    while True:
        status, st = admin(s, "GET")
        assert status == 200, st
        if st["state"] == "done":
            return st, time.monotonic() - started
        assert time.monotonic() - started < deadline_s, st
        time.sleep(0.2)


def test_rewrap_after_rotation_with_writers_deleters_and_a_kill9(tmp_path):
    tag = os.urandom(3).hex()
    default_key, kms_key = f"coffer-default-{tag}", f"coffer-kms-{tag}"
    kes_admin("POST", f"/v1/key/create/{kms_key}")
    data = tmp_path / "data"
    assert OBJECTS >= 1000, "COFFER_REWRAP_OBJECTS: at least 1,000"
    # Paced, so that the kill lands mid-way also with few objects.
    rate = 250
    a = server(data, tmp_path, default_key, rate).start()
    b = server(data, tmp_path, default_key, rate).start()
    c = a.client()
    cfg = tmp_path / "mc"
    subprocess.run([peer("mc"), "--config-dir", str(cfg), "alias", "set", "c", a.endpoint, a.access, a.secret], check=True, capture_output=True)
    subprocess.run([peer("mc"), "--config-dir", str(cfg), "admin", "user", "add", "c", "app1", "app1-secret-key"], check=True, capture_output=True)

    for bk in ["plain", "ver", "kms"]:
        c.create_bucket(Bucket=bk)
    c.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    expected = {}  # (bucket, key, version or None) -> sha256 of the body
    lock = threading.Lock()

    def body(seed, n=None):
        return random.Random(seed).randbytes(n or random.Random(seed).randint(1, 3000))

    def put(bk, key, seed, **kw):
        def run(cl):
            data_ = body(seed)
            r = cl.put_object(Bucket=bk, Key=key, Body=data_, **kw)
            with lock:
                expected[(bk, key, r.get("VersionId"))] = hashlib.sha256(data_).hexdigest()
        return run

    sse_s3 = {"ServerSideEncryption": "AES256"}
    sse_kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
    # OBJECTS objects: 35 % SSE-S3 single-part, 30 % versions (two of each key), 35 % SSE-KMS,
    # of which a few multipart (SSE-S3 and SSE-KMS).
    n_plain, n_ver, n_mp = OBJECTS * 35 // 100, OBJECTS * 15 // 100, max(6, OBJECTS // 500)
    n_kms = OBJECTS - n_plain - 2 * n_ver - n_mp
    jobs = [put("plain", f"p/{i:05d}", i, **sse_s3) for i in range(n_plain)]
    jobs += [put("ver", f"v/{i:05d}", 100000 + i * 2 + g, **sse_s3) for g in range(2) for i in range(n_ver)]
    jobs += [put("kms", f"k/{i:05d}", 200000 + i, **sse_kms) for i in range(n_kms)]
    t0 = time.monotonic()
    put_many([a, b], jobs)
    # Multipart objects (SSE-S3 and SSE-KMS), and uploads left open over the re-wrap.
    big = body(1, 5 * 1024 * 1024)

    def multipart(i, bk, kw):
        def run(cl):
            key = f"mp/{i}"
            up = cl.create_multipart_upload(Bucket=bk, Key=key, **kw)["UploadId"]
            tail = body(300000 + i)
            e1 = cl.upload_part(Bucket=bk, Key=key, UploadId=up, PartNumber=1, Body=big)["ETag"]
            e2 = cl.upload_part(Bucket=bk, Key=key, UploadId=up, PartNumber=2, Body=tail)["ETag"]
            cl.complete_multipart_upload(Bucket=bk, Key=key, UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
            with lock:
                expected[(bk, key, None)] = hashlib.sha256(big + tail).hexdigest()
        return run

    put_many([a, b], [multipart(i, *(("plain", sse_s3) if i % 2 else ("kms", sse_kms))) for i in range(n_mp)], threads=4)
    open_uploads = []
    for i in range(3):
        key = f"open/{i}"
        up = c.create_multipart_upload(Bucket="kms", Key=key, **sse_kms)["UploadId"]
        part = body(400000 + i)
        etag = c.upload_part(Bucket="kms", Key=key, UploadId=up, PartNumber=1, Body=part)["ETag"]
        open_uploads.append((key, up, etag, part))
    wrote = time.monotonic() - t0
    assert len(expected) == OBJECTS, len(expected)
    report(f"test_rewrap: wrote {len(expected)} objects in {wrote:.1f} s ({len(expected) / wrote:.0f}/s)")
    before = stored_ciphertexts(data)
    assert {v for _, _, v in before} == {1}, "everything on version 1 before the rotation"
    parts_before, bodies_before = body_files(data)
    assert len(parts_before) >= 2 * n_mp

    for k in (default_key, kms_key):
        assert rotate(k)["newest"] == 2

    # A writer and a deleter on the same buckets while the job runs.
    stop = threading.Event()
    touched = set()
    errors = []

    def writer():
        cl, i = b.client(), 0
        while not stop.is_set():
            i += 1
            try:
                bk, key, kw = random.choice([("plain", f"p/{random.randrange(0, n_plain, 10):05d}", sse_s3), ("kms", f"k/{random.randrange(0, n_kms, 10):05d}", sse_kms), ("ver", f"v/{random.randrange(0, n_ver, 10):05d}", sse_s3), ("plain", f"new/{i}", sse_s3)])
                with lock:
                    touched.add((bk, key))
                put(bk, key, 500000 + i, **kw)(cl)
            except Exception as e:  # a killed server refuses connections for a moment
                if a.proc.poll() is None and not isinstance(e, botocore.exceptions.EndpointConnectionError):
                    errors.append(repr(e))
            time.sleep(0.01)

    def deleter():
        cl = b.client()
        for i in range(5, n_plain, 10):
            if stop.is_set():
                return
            key = f"p/{i:05d}"
            with lock:
                touched.add(("plain", key))
                expected.pop(("plain", key, None), None)
            cl.delete_object(Bucket="plain", Key=key)
            # And one old version of a versioned key.
            vkey = f"v/{i % n_ver:05d}"
            with lock:
                touched.add(("ver", vkey))
                vids = [k[2] for k in expected if k[0] == "ver" and k[1] == vkey]
            if len(vids) > 1:
                cl.delete_object(Bucket="ver", Key=vkey, VersionId=vids[0])
                with lock:
                    expected.pop(("ver", vkey, vids[0]), None)
            time.sleep(0.02)

    threads = [threading.Thread(target=writer), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    started = time.monotonic()
    status, st = admin(a, "POST")
    assert status == 200 and st["state"] == "running", st
    again, err = admin(b, "POST")
    assert again == 409 and "XCofferRewrapRunning" in str(err), (again, err)
    # Kill -9 one process mid-way, start it again.
    while True:
        _, st = admin(b, "GET")
        if st["rewrapped"] >= OBJECTS // 6 or st["state"] == "done":
            break
        time.sleep(0.2)
    assert st["state"] == "running", f"the job ended before the kill: {st}"
    a.kill9()
    a.start()
    while True:
        _, st = admin(a, "GET")
        if st["state"] == "done":
            break
        assert time.monotonic() - started < 600 + OBJECTS / 10, st
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    report(f"test_rewrap: re-wrap {st} in {elapsed:.1f} s: {st['rewrapped'] / elapsed:.0f} re-wraps/s (2 processes, one killed -9, {rate} a second each at most)")
    assert st["failed"] == 0 and st["rewrapped"] >= OBJECTS * 3 // 4 and st["unitsDone"] == st["unitsTotal"] == 4, st
    metrics = requests.get(f"{a.endpoint}/minio/v2/metrics/cluster", timeout=30).text
    line = next((l for l in metrics.splitlines() if l.startswith('coffer_kms_rewrap_objects{') and 'result="rewrapped"' in l), None)
    assert line and float(line.split()[-1]) == st["rewrapped"], (line, st)

    # Every stored ciphertext names the newest version (the writer's new ones were made with it).
    after = stored_ciphertexts(data)
    stale = [x for x in after if x[2] != 2]
    assert not stale, stale[:10]
    assert {k for _, k, _ in after} == {default_key, kms_key}
    # No body changed: part files are the same files; the body bytes of every object file the
    # writer and deleter left alone are what they were.
    parts_after, bodies_after = body_files(data)
    for p, v in parts_before.items():
        if p in parts_after:
            assert parts_after[p] == v, p
    assert sum(p in parts_after for p in parts_before) >= 2 * n_mp
    by_path = {k[0]: h for k, h in bodies_after.items()}
    checked = 0
    for (p, vid, mtime), h in bodies_before.items():
        rel = pathlib.Path(p).relative_to(data).parts
        bk, key = rel[0], "/".join(s[1:] for s in rel[1:-1] if s.startswith("_"))
        if (bk, key) in touched or p not in by_path:
            continue
        assert by_path[p] == h, p
        checked += 1
    assert checked >= OBJECTS // 2, checked

    def read_all(srv):
        def read(item):
            def run(cl):
                (bk, key, vid), h = item
                kw = {"VersionId": vid} if vid else {}
                got = cl.get_object(Bucket=bk, Key=key, **kw)["Body"].read()
                assert hashlib.sha256(got).hexdigest() == h, (bk, key, vid)
            return run
        put_many([srv], [read(item) for item in sorted(expected.items(), key=lambda x: (x[0][0], x[0][1], x[0][2] or ""))], threads=8)
        return len(expected)

    assert read_all(a) >= OBJECTS * 9 // 10
    # The open uploads complete with their re-wrapped key.
    for key, up, etag, part in open_uploads:
        c = a.client()
        c.complete_multipart_upload(Bucket="kms", Key=key, UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        expected[("kms", key, None)] = hashlib.sha256(part).hexdigest()
    # Version 1 retired: everything still reads, on both processes; the user still signs in.
    for k in (default_key, kms_key):
        assert rotate(k, min_version=2, add=False)["min_version"] == 2
    a.stop()
    a.start()
    assert read_all(a) == read_all(b)
    user = Server.__new__(Server)
    user.__dict__.update(a.__dict__)
    user.access, user.secret = "app1", "app1-secret-key"
    user.client().list_buckets()
    a.stop()
    b.stop()


def test_a_deleted_key_fails_clearly_on_every_process(tmp_path):
    tag = os.urandom(3).hex()
    default_key, doomed = f"coffer-default-{tag}", f"coffer-shred-{tag}"
    kes_admin("POST", f"/v1/key/create/{doomed}")
    data = tmp_path / "data"
    a = server(data, tmp_path, default_key, 0).start()
    b = server(data, tmp_path, default_key, 0).start()
    c = a.client()
    c.create_bucket(Bucket="shred")
    shred_default = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": doomed}}]}
    c.put_bucket_encryption(Bucket="shred", ServerSideEncryptionConfiguration=shred_default)
    c.put_object(Bucket="shred", Key="shredded", Body=b"secret body", ServerSideEncryption="aws:kms", SSEKMSKeyId=doomed)
    c.put_object(Bucket="shred", Key="kept", Body=b"kept body", ServerSideEncryption="AES256")
    # Read once through a (its decrypt cache then holds the data key for up to 10 s).
    assert c.get_object(Bucket="shred", Key="shredded")["Body"].read() == b"secret body"
    kes_admin("DELETE", f"/v1/key/delete/{doomed}")
    time.sleep(11)
    for s in (a, b):
        cl = s.client()
        for call in (
            lambda: cl.get_object(Bucket="shred", Key="shredded"),
            lambda: cl.copy_object(Bucket="shred", Key="copy", CopySource={"Bucket": "shred", "Key": "shredded"}),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                call()
            err = e.value.response
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
            assert err["Error"]["Code"] == "KMS.NotFoundException", err
            assert "does not exist" in err["Error"]["Message"], err
        assert cl.get_object(Bucket="shred", Key="kept")["Body"].read() == b"kept body"
    cfg = tmp_path / "mc"
    subprocess.run([peer("mc"), "--config-dir", str(cfg), "alias", "set", "c", b.endpoint, b.access, b.secret], check=True, capture_output=True)
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", "admin", "kms", "key", "status", "c", doomed], capture_output=True, text=True, timeout=60)
    assert "key does not exist" in r.stdout + r.stderr, r.stdout + r.stderr
    # Never a working decryption (this mc shows `Decryption ?` once encryption failed).
    assert "Encryption ✗ (key does not exist)" in r.stdout and "Decryption ✔" not in r.stdout, r.stdout
    # The bucket's default still names the key, as AWS's and MinIO's do (and `mc encrypt info`).
    enc = b.client().get_bucket_encryption(Bucket="shred")["ServerSideEncryptionConfiguration"]
    rule = enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    # Answered as an ARN (as before the shredding): the same key.
    assert rule["SSEAlgorithm"] == "aws:kms", enc
    assert rule["KMSMasterKeyID"].removeprefix("arn:aws:kms:") == doomed, enc
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--json", "encrypt", "info", "c/shred"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and doomed in r.stdout, r.stdout + r.stderr
    # Hostile or wrong input is refused and starts nothing.
    for query, want in [("bucket=a%2F..%2Fshred", (404, "NoSuchBucket")), ("bucket=nope", (404, "NoSuchBucket")), ("key=bad%2Fname", (400, "XMinioAdminInvalidArgument"))]:
        status, err = admin(a, "POST", query)
        assert (status, want[1] in str(err)) == (want[0], True), (query, status, err)
    assert admin(b, "GET") == (200, {"state": "none"})
    # A user without an admin policy may neither start nor read it.
    subprocess.run([peer("mc"), "--config-dir", str(cfg), "admin", "user", "add", "c", "app2", "app2-secret-key"], check=True, capture_output=True)
    user = Server.__new__(Server)
    user.__dict__.update(a.__dict__)
    user.access, user.secret = "app2", "app2-secret-key"
    for method in ("POST", "GET"):
        status, err = admin(user, method)
        assert status == 403 and "AccessDenied" in str(err), (method, status, err)
    # A re-wrap onto it is refused: 404, naming the missing key.
    status, err = admin(a, "POST", f"key={doomed}")
    assert status == 404 and "XMinioKMSKeyNotFound" in str(err), (status, err)
    # And the re-wrap of everything fails on the shredded object only, leaving it as it was.
    rotate(default_key)
    status, st = admin(a, "POST")
    assert status == 200, st
    deadline = time.monotonic() + 120
    while st["state"] != "done":
        assert time.monotonic() < deadline, st
        time.sleep(0.3)
        _, st = admin(b, "GET")
    assert st["failed"] == 1 and st["rewrapped"] >= 2, st
    # The status names the deleted key and how many stored ciphertexts are under it.
    assert st["missingKeys"] == {doomed: 1}, st
    assert b.client().get_object(Bucket="shred", Key="kept")["Body"].read() == b"kept body"
    a.stop()
    b.stop()
