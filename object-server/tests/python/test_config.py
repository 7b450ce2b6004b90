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


def test_requests_aborted_mid_body_leave_the_in_flight_gauge(tmp_path):
    """A client that disconnects in the middle of a PUT body, or before reading a GET's answer,
    is no longer counted in coffer_s3_requests_inflight_total."""
    import socket
    import time

    from test_api import _signed_put_head

    s = Server(tmp_path / "data", env={"MINIO_PROMETHEUS_AUTH_TYPE": "public"}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    c.put_object(Bucket="bkt", Key="big", Body=pattern(8 << 20))

    def in_flight():
        return metric(requests.get(s.endpoint + "/metrics").text, "coffer_s3_requests_inflight_total")

    body = pattern(1 << 20)
    for i in range(3):
        with socket.create_connection(("127.0.0.1", s.port)) as aborted:
            aborted.sendall(_signed_put_head(s, f"/bkt/aborted-{i}", body, {}) + body[:100_000])
            time.sleep(0.3)
            assert in_flight() == 1, "the PUT in progress is counted"
    with socket.create_connection(("127.0.0.1", s.port)) as unread:
        req = c.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "big"})
        unread.sendall(f"GET {req[len(s.endpoint):]} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
        unread.recv(100)
    deadline = time.time() + 5
    while in_flight() != 0 and time.time() < deadline:
        time.sleep(0.1)
    assert in_flight() == 0, "requests whose clients went away are still counted in flight"
    assert c.list_objects_v2(Bucket="bkt")["KeyCount"] == 1
    s.stop()


def test_open_file_limit_is_raised_to_the_hard_limit(tmp_path):
    # A GET holds a descriptor per part: a soft limit of 1024 would cap concurrent readers.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard > 256, "this test needs a hard limit above 256"
    srv = Server(tmp_path / "data")
    srv.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    srv.start()
    try:
        limits = pathlib.Path(f"/proc/{srv.proc.pid}/limits").read_text()
        soft_now, hard_now = next(l for l in limits.splitlines() if l.startswith("Max open files")).split()[3:5]
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert hard_now == expected
        # An unlimited hard limit leaves the soft one alone (the kernel's nr_open caps it anyway).
        assert soft_now == ("256" if hard == resource.RLIM_INFINITY else expected)
    finally:
        srv.stop()


def _closed_by_server(sock, within):
    """Whether the server closes `sock` (EOF or reset) within `within` seconds, reading and
    dropping whatever it sends first."""
    import socket
    import time

    deadline = time.time() + within
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def test_timeouts_close_slow_idle_and_stalled_connections(tmp_path):
    """MINIO_READ_HEADER_TIMEOUT and MINIO_IDLE_TIMEOUT, as MinIO's: a head that trickles in byte
    by byte is cut off at the deadline (bytes do not extend it), an idle keep-alive connection is
    closed after it, a body that stops midway fails the request and stores nothing, and a prompt
    client is served meanwhile."""
    import socket
    import time

    from test_api import _signed_put_head

    s = Server(tmp_path / "data", env={"MINIO_READ_HEADER_TIMEOUT": "2s", "MINIO_IDLE_TIMEOUT": "2s"}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    live = b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\n\r\n"

    with socket.create_connection(("127.0.0.1", s.port)) as slow:
        started = time.time()
        slow.sendall(b"GET /minio/health/live HTTP/1.1\r\n")
        closed = False
        while not closed and time.time() - started < 6:
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = _closed_by_server(slow, 0.3)
        took = time.time() - started
        assert closed, "a trickling request head was never cut off"
        assert 1.5 < took < 4.5, took

    with socket.create_connection(("127.0.0.1", s.port)) as idle:
        idle.sendall(live)
        assert b"200 OK" in idle.recv(4096)
        assert not _closed_by_server(idle, 1.0), "closed before the timeout"
        assert _closed_by_server(idle, 3.0), "an idle keep-alive connection stayed open"

    body = pattern(100_000)
    with socket.create_connection(("127.0.0.1", s.port)) as stalled:
        stalled.sendall(_signed_put_head(s, "/bkt/stalled", body, {}) + body[:10_000])
        started = time.time()
        assert _closed_by_server(stalled, 8.0), "a stalled body kept its request open"
        assert 1.5 < time.time() - started < 6, time.time() - started
    assert c.list_objects_v2(Bucket="bkt").get("KeyCount") == 0
    assert not list((tmp_path / "data" / ".coffer" / "tmp").glob("*")), "the stalled PUT left a temp file"

    # A client that sends its heads in time keeps its connection.
    with socket.create_connection(("127.0.0.1", s.port)) as prompt:
        for _ in range(3):
            prompt.sendall(live)
            assert b"200 OK" in prompt.recv(4096)
            time.sleep(1.0)
    s.stop()


def test_bad_read_header_timeout_is_a_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_READ_HEADER_TIMEOUT"] = "soon"
    r = subprocess.run([server_bin(), "server", "--address", f"127.0.0.1:{free_port()}", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "MINIO_READ_HEADER_TIMEOUT" in r.stderr and "30s" in r.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
