"""Start-up modes: the README's run command (embedded key), static keys and their _FILE forms,
auto-encryption, health and metrics."""
import base64
import os
import pathlib
import resource
import stat
import subprocess

import requests

from conftest import Server, free_port, pattern, server_bin


def test_readme_mode_embedded_key(tmp_path):
    port = free_port()
    s = Server(tmp_path / "data", creds=False)
    s.args = lambda: [server_bin(), "server", "--address", f":{port}", str(s.data_dir)]
    s.port, s.endpoint = port, f"http://127.0.0.1:{port}"
    s.start()
    out = s.output()
    assert f"http://127.0.0.1:{port}" in out
    assert "minioadmin" in out and "RootPass: minioadmin" in out
    assert "MINIO_KMS_KES_ENDPOINT" in out and "trying" in out
    key = s.data_dir / ".coffer" / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    c = s.client()
    c.create_bucket(Bucket="demo")
    r = c.put_object(Bucket="demo", Key="o", Body=b"encrypted by default")
    assert r["ServerSideEncryption"] == "AES256"
    s.stop()
    s.start()
    assert key.read_bytes() == first
    assert s.client().get_object(Bucket="demo", Key="o")["Body"].read() == b"encrypted by default"
    s.stop()


def test_static_secret_key_from_file_and_auto_encryption(tmp_path):
    secret = tmp_path / "kms-secret"
    secret.write_text("my-static-key:" + base64.b64encode(os.urandom(32)).decode() + "\n")
    s = Server(tmp_path / "data", env={"MINIO_KMS_SECRET_KEY_FILE": str(secret), "MINIO_KMS_AUTO_ENCRYPTION": "on"}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    assert c.put_object(Bucket="bkt", Key="o", Body=b"x")["ServerSideEncryption"] == "AES256"
    r = c.put_object(Bucket="bkt", Key="k", Body=b"x", ServerSideEncryption="aws:kms")
    assert r["SSEKMSKeyId"] == "arn:aws:kms:my-static-key"
    assert "my-static-key" in s.output() and base64.b64encode(b"x").decode() not in s.output()
    s.stop()


def test_auto_encryption_off_stores_plain_unless_asked(tmp_path):
    key = "k1:" + base64.b64encode(os.urandom(32)).decode()
    s = Server(tmp_path / "data", env={"MINIO_KMS_SECRET_KEY": key}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    assert "ServerSideEncryption" not in c.put_object(Bucket="bkt", Key="plain", Body=b"x")
    assert c.put_object(Bucket="bkt", Key="enc", Body=b"x", ServerSideEncryption="AES256")["ServerSideEncryption"] == "AES256"
    assert c.head_object(Bucket="bkt", Key="enc")["ServerSideEncryption"] == "AES256"
    s.stop()


def test_auto_encryption_without_kms_is_a_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_KMS_AUTO_ENCRYPTION"] = "on"
    r = subprocess.run([server_bin(), "server", "--address", f"127.0.0.1:{free_port()}", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "MINIO_KMS_KES_ENDPOINT" in r.stderr and "MINIO_KMS_SECRET_KEY" in r.stderr


def test_bad_static_key_is_refused_without_echoing_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_KMS_SECRET_KEY"] = "name:c2hvcnQ="
    r = subprocess.run([server_bin(), "server", "--address", f"127.0.0.1:{free_port()}", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "c2hvcnQ=" not in r.stderr + r.stdout


def prometheus_token(access, secret, exp_in=3600, iss="prometheus", alg="HS512"):
    """A bearer token shaped as `mc admin prometheus generate` makes it (HS512 over the secret
    key; claims exp, sub, iss), built here so that tests can also make bad ones."""
    import hashlib
    import hmac
    import json
    import time

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    claims = {"exp": int(time.time()) + exp_in, "sub": access}
    if iss is not None:
        claims["iss"] = iss
    signing_input = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    tag = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha512).digest()
    return signing_input + "." + b64(tag)


def metric(text, name):
    return int(next(l for l in text.splitlines() if l.startswith(name + " ")).split()[1])


def test_health_and_metrics(server, s3, bucket):
    assert requests.get(server.endpoint + "/minio/health/live").status_code == 200
    assert requests.get(server.endpoint + "/minio/health/ready").status_code == 200
    s3.put_object(Bucket=bucket, Key="m", Body=pattern(10))
    auth = {"Authorization": "Bearer " + prometheus_token(server.access, server.secret)}
    m = requests.get(server.endpoint + "/minio/v2/metrics/cluster", headers=auth).text
    assert "coffer_s3_requests_total" in m
    assert metric(m, "coffer_s3_requests_total") >= 2


def _mc(cfg, *args):
    from conftest import peer

    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"mc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _scrape_config(cfg, alias):
    """The scrape job `mc admin prometheus generate ALIAS` prints."""
    import yaml

    job = yaml.safe_load(_mc(cfg, "admin", "prometheus", "generate", alias))["scrape_configs"][0]
    return job, f"{job['scheme']}://{job['static_configs'][0]['targets'][0]}{job['metrics_path']}"


def test_metrics_need_the_token_mc_generates(tmp_path):
    """MINIO_PROMETHEUS_AUTH_TYPE=jwt (the default), as MinIO: the scrape config that `mc admin
    prometheus generate` prints works as it is, for the root user and for a user allowed
    admin:Prometheus; no token, a forged, expired, wrongly issued or HS256 token, a user without
    admin:Prometheus and a disabled user get MinIO's 403. The health endpoints stay open."""
    s = Server(tmp_path / "data").start()
    cfg = tmp_path / "mc"
    _mc(cfg, "alias", "set", "c", s.endpoint, s.access, s.secret)
    job, url = _scrape_config(cfg, "c")
    assert job["metrics_path"] == "/minio/v2/metrics/cluster" and url.startswith(s.endpoint), job
    scraped = requests.get(url, headers={"Authorization": "Bearer " + job["bearer_token"]})
    assert scraped.status_code == 200 and "coffer_s3_requests_total" in scraped.text, scraped.text

    for path in ["/minio/health/live", "/minio/health/ready", "/minio/health/cluster"]:
        assert requests.get(s.endpoint + path).status_code == 200, path

    refused = {
        "no token": {},
        "not a bearer": {"Authorization": "Basic Y29mZmVyOnNlY3JldA=="},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "forged": {"Authorization": "Bearer " + prometheus_token(s.access, "not-the-secret-key")},
        "expired": {"Authorization": "Bearer " + prometheus_token(s.access, s.secret, exp_in=-60)},
        "wrong issuer": {"Authorization": "Bearer " + prometheus_token(s.access, s.secret, iss="minio")},
        "no issuer": {"Authorization": "Bearer " + prometheus_token(s.access, s.secret, iss=None)},
        "HS256": {"Authorization": "Bearer " + prometheus_token(s.access, s.secret, alg="HS256")},
        "unknown user": {"Authorization": "Bearer " + prometheus_token("nobody", s.secret)},
    }
    for what, headers in refused.items():
        for path in ["/minio/v2/metrics/cluster", "/minio/v2/metrics/node", "/metrics"]:
            r = requests.get(s.endpoint + path, headers=headers)
            assert r.status_code == 403, (what, path, r.status_code, r.text)
            assert r.json()["Code"] == "AccessDenied" and "coffer_s3" not in r.text, (what, r.text)

    _mc(cfg, "admin", "user", "add", "c", "scraper", "scraper-secret-key")
    _mc(cfg, "admin", "user", "add", "c", "reader", "reader-secret-key")
    _mc(cfg, "admin", "policy", "attach", "c", "diagnostics", "--user", "scraper")
    _mc(cfg, "admin", "policy", "attach", "c", "readonly", "--user", "reader")
    _mc(cfg, "alias", "set", "scraper", s.endpoint, "scraper", "scraper-secret-key")
    _mc(cfg, "alias", "set", "reader", s.endpoint, "reader", "reader-secret-key")
    job, url = _scrape_config(cfg, "scraper")
    assert requests.get(url, headers={"Authorization": "Bearer " + job["bearer_token"]}).status_code == 200
    job, url = _scrape_config(cfg, "reader")
    assert requests.get(url, headers={"Authorization": "Bearer " + job["bearer_token"]}).status_code == 403
    _mc(cfg, "admin", "user", "disable", "c", "scraper")
    job, url = _scrape_config(cfg, "scraper")
    assert requests.get(url, headers={"Authorization": "Bearer " + job["bearer_token"]}).status_code == 403
    assert "scraper-secret-key" not in s.output() and job["bearer_token"] not in s.output()
    s.stop()


def test_public_metrics_need_no_token(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_PROMETHEUS_AUTH_TYPE": "public"}).start()
    for path in ["/minio/v2/metrics/cluster", "/minio/v2/metrics/node", "/metrics"]:
        r = requests.get(s.endpoint + path)
        assert r.status_code == 200 and "coffer_s3_requests_total" in r.text, (path, r.text)
    s.stop()


def test_unknown_prometheus_auth_type_is_a_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_PROMETHEUS_AUTH_TYPE"] = "none"
    r = subprocess.run([server_bin(), "server", "--address", f"127.0.0.1:{free_port()}", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "MINIO_PROMETHEUS_AUTH_TYPE" in r.stderr and "'public'" in r.stderr, r.stderr


def _h2_frame(kind, flags, stream, payload):
    import struct

    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name, value):
    """One header field as an HPACK literal without indexing (no Huffman coding)."""

    def integer(n):
        if n < 127:
            return bytes([n])
        out, n = bytearray([127]), n - 127
        while n >= 128:
            out.append(n % 128 + 128)
            n //= 128
        return bytes(out + bytes([n]))

    return b"\x00" + integer(len(name)) + name.encode() + integer(len(value)) + value.encode()


def _h2_get(server, url):
    """Preface, SETTINGS and a HEADERS frame (stream 1, no body) of an HTTP/2 GET of the
    presigned `url`, spoken in cleartext with prior knowledge, as bytes."""
    path = url[len(server.endpoint):]
    fields = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", f"127.0.0.1:{server.port}")]
    block = b"".join(_hpack_literal(k, v) for k, v in fields)
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"") + _h2_frame(1, 0x4 | 0x1, 1, block)


def test_requests_dropped_mid_way_leave_the_in_flight_gauge(tmp_path):
    """A request whose future is dropped before it finishes is no longer counted in
    coffer_s3_requests_inflight_total: GETs stuck on their object file (a FIFO stands in for a
    slow disk) whose client cancels the HTTP/2 stream (RST_STREAM), closes the HTTP/2 connection,
    or closes the HTTP/1 connection."""
    import socket
    import time

    s = Server(tmp_path / "data", env={"MINIO_PROMETHEUS_AUTH_TYPE": "public"}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    c.put_object(Bucket="bkt", Key="stuck", Body=b"x" * 1000)
    obj = next((tmp_path / "data" / "bkt").rglob("obj"))
    obj.unlink()
    os.mkfifo(obj)
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "stuck"})

    def in_flight():
        return metric(requests.get(s.endpoint + "/metrics").text, "coffer_s3_requests_inflight_total")

    def settles_at_zero():
        deadline = time.time() + 5
        while in_flight() != 0 and time.time() < deadline:
            time.sleep(0.1)
        return in_flight() == 0

    try:
        for how in ["RST_STREAM", "HTTP/2 close", "HTTP/1 close"]:
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                if how == "HTTP/1 close":
                    sock.sendall(f"GET {url[len(s.endpoint):]} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
                else:
                    sock.sendall(_h2_get(s, url))
                time.sleep(0.5)
                assert in_flight() == 1, f"{how}: the stuck GET is counted"
                if how == "RST_STREAM":
                    sock.sendall(_h2_frame(3, 0, 1, (8).to_bytes(4, "big")))  # CANCEL
                    time.sleep(0.5)
            assert settles_at_zero(), f"a GET whose client went away ({how}) is still counted in flight"
    finally:
        # Let the reads blocked on the FIFO finish, so that the server can stop.
        try:
            os.close(os.open(obj, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    s.stop()
