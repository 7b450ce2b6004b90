"""Start-up modes: the README's run command (embedded key), static keys and their _FILE forms,
auto-encryption, health and metrics."""
import base64
import os
import pathlib
import resource
import stat
import subprocess

import requests

from conftest import Server, pattern, server_bin


def test_readme_mode_embedded_key(tmp_path):
    s = Server(tmp_path / "data", creds=False)
    # The README's `--address :PORT` (every interface); read at each start, so a port another
    # process took first is replaced by `start`.
    s.args = lambda: [server_bin(), "server", "--address", f":{s.port}", str(s.data_dir)]
    s.start()
    out = s.output()
    assert f"http://127.0.0.1:{s.port}" in out
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
    r = subprocess.run([server_bin(), "server", "--address", "127.0.0.1:0", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "MINIO_KMS_KES_ENDPOINT" in r.stderr and "MINIO_KMS_SECRET_KEY" in r.stderr


def test_bad_static_key_is_refused_without_echoing_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_KMS_SECRET_KEY"] = "name:c2hvcnQ="
    r = subprocess.run([server_bin(), "server", "--address", "127.0.0.1:0", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
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
    """The value of the sample `name` (every sample carries MinIO's `server` label)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    assert len(samples) == 1, (name, samples)
    return int(samples[0].value)


def test_health_and_metrics(server, s3, bucket):
    assert requests.get(server.endpoint + "/minio/health/live").status_code == 200
    assert requests.get(server.endpoint + "/minio/health/ready").status_code == 200
    s3.put_object(Bucket=bucket, Key="m", Body=pattern(10))
    auth = {"Authorization": "Bearer " + prometheus_token(server.access, server.secret)}
    m = requests.get(server.endpoint + "/minio/v2/metrics/cluster", headers=auth).text
    assert "coffer_s3_requests_total" in m
    assert metric(m, "coffer_s3_requests_total") >= 2


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

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


# The server's timeouts in the next test, and how late its close may come on a loaded machine
# (a scheduler that starves the server or this process for seconds). The lower bounds are exact:
# each is measured from a moment before the server could start the clock it enforces.
TIMEOUT = 3
LATE = 12


def test_timeouts_close_slow_idle_and_stalled_connections(tmp_path):
    """MINIO_READ_HEADER_TIMEOUT and MINIO_IDLE_TIMEOUT, as MinIO's: a head that trickles in byte
    by byte is cut off at the deadline (bytes do not extend it), an idle keep-alive connection is
    closed after it, a body that stops midway fails the request and stores nothing, and a prompt
    client is served meanwhile."""
    import socket
    import time

    from test_api import _signed_put_head

    s = Server(tmp_path / "data", env={"MINIO_READ_HEADER_TIMEOUT": f"{TIMEOUT}s", "MINIO_IDLE_TIMEOUT": f"{TIMEOUT}s"}).start()
    c = s.client()
    c.create_bucket(Bucket="bkt")
    live = b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\n\r\n"

    # Trickled for far longer than the timeout: a deadline that each byte pushed back would never
    # close it.
    started = time.monotonic()  # before the server can accept the connection and start its clock
    with socket.create_connection(("127.0.0.1", s.port)) as slow:
        slow.sendall(b"GET /minio/health/live HTTP/1.1\r\n")
        closed = False
        while not closed and time.monotonic() - started < TIMEOUT + LATE:
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = _closed_by_server(slow, 0.3)
        took = time.monotonic() - started
        assert closed, f"a request head trickled in for {took:.1f} s was never cut off"
        assert TIMEOUT - 0.5 < took < TIMEOUT + LATE, took

    with socket.create_connection(("127.0.0.1", s.port)) as idle:
        sent = time.monotonic()  # the server's idle clock starts after it answers this
        idle.sendall(live)
        assert b"200 OK" in idle.recv(4096)
        assert _closed_by_server(idle, TIMEOUT + LATE), "an idle keep-alive connection stayed open"
        took = time.monotonic() - sent
        assert took > TIMEOUT - 0.5, f"closed after {took:.1f} s, before the idle timeout"

    body = pattern(100_000)
    with socket.create_connection(("127.0.0.1", s.port)) as stalled:
        started = time.monotonic()  # before the server can have read the last byte
        stalled.sendall(_signed_put_head(s, "/bkt/stalled", body, {}) + body[:10_000])
        assert _closed_by_server(stalled, TIMEOUT + LATE), "a stalled body kept its request open"
        took = time.monotonic() - started
        assert TIMEOUT - 0.5 < took < TIMEOUT + LATE, took
    assert c.list_objects_v2(Bucket="bkt").get("KeyCount") == 0
    assert not list((tmp_path / "data" / ".coffer" / "tmp").glob("*")), "the stalled PUT left a temp file"

    # A client that sends its heads in time keeps its connection, for longer than one timeout in
    # all (the deadline is per request, not per connection).
    with socket.create_connection(("127.0.0.1", s.port)) as prompt:
        prompt.settimeout(60)
        for _ in range(4):
            prompt.sendall(live)
            assert b"200 OK" in prompt.recv(4096)
            time.sleep(TIMEOUT / 3)
    s.stop()


def test_bad_read_header_timeout_is_a_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env["MINIO_READ_HEADER_TIMEOUT"] = "soon"
    r = subprocess.run([server_bin(), "server", "--address", "127.0.0.1:0", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "MINIO_READ_HEADER_TIMEOUT" in r.stderr and "30s" in r.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_a_port_another_process_took_first_is_replaced(tmp_path, monkeypatch):
    """The suite's own start-up (conftest.Server): a port picked free can be taken by another
    process before the server binds it. Here that process even answers the liveness probe: the
    start must neither take its answer for the server's nor fail, but move to another port."""
    import http.server
    import threading

    import conftest

    class AlwaysLive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    squatter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlwaysLive)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    taken = squatter.server_address[1]
    picks = iter([taken])
    real_free_port = conftest.free_port
    monkeypatch.setattr(conftest, "free_port", lambda: next(picks, None) or real_free_port())
    try:
        s = Server(tmp_path / "data").start()
        assert s.port != taken
        assert conftest.listens_on(s.proc.pid, s.port)
        c = s.client()
        c.create_bucket(Bucket="moved")
        assert [b["Name"] for b in c.list_buckets()["Buckets"]] == ["moved"]
        assert "in use" in s.output(), "the first start did not meet the taken port"
        # A restart keeps its port (clients name it), whoever held it before.
        port = s.port
        s.stop()
        s.start()
        assert s.port == port and s.client().list_buckets()["Buckets"][0]["Name"] == "moved"
        s.stop()
    finally:
        squatter.shutdown()
        squatter.server_close()


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
    r = subprocess.run([server_bin(), "server", "--address", "127.0.0.1:0", str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30)
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

    def settles_at(n):
        # Polled, not slept on: a loaded machine may take seconds to run the server's side.
        deadline = time.monotonic() + 60
        while in_flight() != n and time.monotonic() < deadline:
            time.sleep(0.1)
        return in_flight() == n

    try:
        for how in ["RST_STREAM", "HTTP/2 close", "HTTP/1 close"]:
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                if how == "HTTP/1 close":
                    sock.sendall(f"GET {url[len(s.endpoint):]} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
                else:
                    sock.sendall(_h2_get(s, url))
                assert settles_at(1), f"{how}: the stuck GET is counted"
                if how == "RST_STREAM":
                    sock.sendall(_h2_frame(3, 0, 1, (8).to_bytes(4, "big")))  # CANCEL
                    assert settles_at(0), "a GET whose stream was cancelled is still counted in flight"
            assert settles_at(0), f"a GET whose client went away ({how}) is still counted in flight"
    finally:
        # Let the reads blocked on the FIFO finish, so that the server can stop.
        try:
            os.close(os.open(obj, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    s.stop()
