"""Fixtures for the object-server suite: start the real binary on a free loopback port in a
temporary directory and drive it with real clients (boto3, the AWS CLI, mc, warp).

Run through `cargo test -p object-server` (tests/python.rs), which sets OBJECT_SERVER_BIN and puts
the peers (~/.cache/coffer/peers) on PATH. A missing peer fails the test; nothing is skipped.
"""
import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

import boto3
import botocore.config
import gateway
import botocore.exceptions
import pytest
import requests
import urllib3

urllib3.disable_warnings()

ACCESS = "coffer-admin"
SECRET = "coffer-secret-key"


def server_bin():
    b = os.environ.get("OBJECT_SERVER_BIN")
    if not b or not os.path.exists(b):
        pytest.fail("OBJECT_SERVER_BIN is not set: run this suite with `cargo test -p object-server`")
    return b


def peer(name):
    p = shutil.which(name)
    if not p:
        pytest.fail(f"peer '{name}' is missing: run e2e/peers/install and eval \"$(e2e/peers/env)\"")
    return p


def free_port():
    """A loopback port that was free a moment ago. Another process may take it before a server
    binds it: whoever starts a server on it must retry on "address in use" (`Server.start` does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ADDRESS_IN_USE = ("Address already in use", "os error 98", "address already in use")


def _listening_socket_inodes(port):
    """The inodes of the TCP sockets listening on `port` (any address) in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def listens_on(pid, port):
    """Whether process `pid` itself holds a socket listening on `port` (not merely: someone does)."""
    inodes = _listening_socket_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[len("socket:[") : -1] in inodes:
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Failure:
    """How a request failed, comparable by value (two exception objects never compare equal, so a
    test comparing them fails exactly when both sides agree): the S3 error code, or for an error
    below S3 (a body cut off mid-stream) the exception's class name. `detail` is for messages only."""

    code: str
    detail: str = dataclasses.field(default="", compare=False, repr=False)


def get_body(c, bucket, key, **kw):
    """The object's bytes, or the `Failure` of the GET."""
    try:
        return c.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()
    except botocore.exceptions.ClientError as e:
        return Failure(e.response["Error"]["Code"], str(e))
    except Exception as e:  # noqa: BLE001 - a damaged object may end the stream any way it can
        return Failure(type(e).__name__, str(e))


def describe(outcome):
    """A short, readable form of a `get_body` result for assertion messages."""
    if isinstance(outcome, bytes):
        return f"{len(outcome)} bytes, sha256 {hashlib.sha256(outcome).hexdigest()[:16]}"
    return repr(outcome)


def make_certs(certs_dir: pathlib.Path):
    """A self-signed certificate for 127.0.0.1/localhost laid out as MinIO expects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certs_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (certs_dir / "public.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (certs_dir / "private.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certs_dir / "public.crt"


_started = []


@pytest.fixture(autouse=True)
def _stop_leftover_servers():
    """Stops every server a test started, even when the test failed half-way."""
    yield
    while _started:
        _started.pop().stop(timeout=30)
    gateway.reset()


@pytest.fixture(scope="session")
def gateway_backend(tmp_path_factory):
    """The S3 service of gateway mode (`$COFFER_TEST_BACKEND`, see gateway.py), or None."""
    b = gateway.from_env(tmp_path_factory)
    yield b
    if b:
        b.stop()


class _PortTaken(Exception):
    """The server could not bind its port: another process holds it."""


class Server:
    """One object-server process."""

    def __init__(self, data_dir, env=None, certs_dir=None, port=None, creds=True, log_dir=None, backend=None):
        self.data_dir = pathlib.Path(data_dir)
        # `(Backend, bucket)`: serve from that bucket of another S3 service (gateway mode).
        self.backend = backend
        # Other processes serving the same buckets: `client()` spreads its requests over all.
        self.peers = []
        self.port = port or free_port()
        self.certs_dir = certs_dir
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("MINIO_"):
                del self.env[k]
        if creds:
            self.env.update({"MINIO_ROOT_USER": ACCESS, "MINIO_ROOT_PASSWORD": SECRET})
        self.env.update(env or {})
        if backend:
            self.env.update(backend[0].server_env())
        self.access = self.env.get("MINIO_ROOT_USER", "minioadmin")
        self.secret = self.env.get("MINIO_ROOT_PASSWORD", "minioadmin")
        self.scheme = "https" if certs_dir else "http"
        self.endpoint = f"{self.scheme}://127.0.0.1:{self.port}"
        self.ca = str(pathlib.Path(certs_dir) / "public.crt") if certs_dir else None
        self.proc = None
        self.log = None
        self._log_start = 0
        # A port the caller chose, or one clients already point at, is never replaced.
        self._port_fixed = port is not None
        self.preexec_fn = None
        self.log_path = pathlib.Path(log_dir or self.data_dir.parent) / f"server-{self.port}.log"

    def args(self):
        a = [server_bin(), "server", "--address", f"127.0.0.1:{self.port}"]
        if self.certs_dir:
            a += ["--certs-dir", str(self.certs_dir)]
        if self.backend:
            a += ["--backend", self.backend[0].url(self.backend[1])]
        return a + [str(self.data_dir)]

    def start(self, wait=True, timeout=60):
        """Starts the process and (with `wait`) returns once it listens on its port and answers
        the liveness probe. A port picked here that another process took in the meantime is
        replaced by a new one; a port the caller chose, or one this server already served on (a
        restart: clients and mc aliases name it), is retried until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_live(deadline - time.monotonic())
                self._port_fixed = True
                return self
            except _PortTaken:
                self.proc.wait()
                if time.monotonic() > deadline:
                    raise AssertionError(f"port {self.port} stayed in use for {timeout} s:\n{self.output()}")
                if self._port_fixed:
                    time.sleep(0.2)
                else:
                    self.port = free_port()
                    self.endpoint = f"{self.scheme}://127.0.0.1:{self.port}"

    def _spawn(self):
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "ab")
        self._log_start = self.log.tell()
        self.proc = subprocess.Popen(
            self.args(), env=self.env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn
        )
        _started.append(self)

    def wait_live(self, timeout=60):
        """Waits until this process (not another one on the same port) listens and is live."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.output_since_start()
                if any(s in out for s in ADDRESS_IN_USE):
                    raise _PortTaken()
                raise AssertionError(f"object-server exited with {self.proc.returncode}:\n{self.output()}")
            if listens_on(self.proc.pid, self.port):
                try:
                    r = requests.get(self.endpoint + "/minio/health/live", verify=False, timeout=5)
                    if r.status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"object-server did not start within {timeout:.0f} s:\n{self.output()}")

    def output_since_start(self):
        """The log of the latest start only (the log file is shared by restarts)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def client(self, **cfg):
        conf = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **cfg)
        c = self._client(conf)
        if self.peers:
            spread_requests(c, [self] + self.peers)
        return c

    def _client(self, conf):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
            config=conf,
            verify=self.ca if self.ca else True,
        )

    def cli_env(self):
        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": self.access,
                "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }
        )
        if self.ca:
            env["AWS_CA_BUNDLE"] = self.ca
        return env

    def aws(self, *args, check=True):
        cmd = [peer("aws"), "--endpoint-url", self.endpoint, *args]
        r = subprocess.run(cmd, env=self.cli_env(), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\nserver:\n{self.output()[-3000:]}")
        return r


SHARED_MOUNTS = "COFFER_SHARED_MOUNTS"


def shared_mounts():
    """The mount points of one shared filesystem as different clients see it (two ceph-fuse
    mounts of one CephFS: two "nodes"), from $COFFER_SHARED_MOUNTS, separated by ':'. Empty
    when the suite runs on a local directory."""
    mounts = [pathlib.Path(m) for m in os.environ.get(SHARED_MOUNTS, "").split(os.pathsep) if m]
    for m in mounts:
        if not m.is_dir():
            pytest.fail(f"{SHARED_MOUNTS} names {m}, which is not a directory")
    if len(mounts) == 1:
        pytest.fail(f"{SHARED_MOUNTS} names one mount: processes on two clients need two")
    return mounts


class DataDirs:
    """One data directory, as each object-server process of a test reaches it: process `i`
    serves `dirs[i]`. On a local run that is `tmp_path/data` for every process; with shared
    mounts it is one directory of the shared filesystem through mount `i % len(mounts)`, so
    neighbouring processes are clients on different nodes. Logs stay in `tmp_path`."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        mounts = shared_mounts()
        if mounts:
            name = f"{tmp_path.name}-{os.urandom(4).hex()}"
            self.dirs = [m / name / "data" for m in mounts]
        else:
            self.dirs = [tmp_path / "data"]
        self.shared = bool(mounts)

    def __getitem__(self, i):
        return self.dirs[i % len(self.dirs)]

    def server(self, i, **kw):
        """Process `i` (not started) on its view of the data directory."""
        return Server(self[i], log_dir=self.tmp_path, **kw)

    def remove(self):
        if self.shared:
            shutil.rmtree(self.dirs[0].parent, ignore_errors=True)


@pytest.fixture
def data_dirs(tmp_path):
    """The data directory of a test whose processes share one (see `DataDirs`). Every test
    that asks for it runs over the shared mounts too (marker `shared_volume`)."""
    d = DataDirs(tmp_path)
    yield d
    # Servers first: a process still writing would keep a removed tree alive.
    while _started:
        _started.pop().stop(timeout=30)
    d.remove()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "shared_volume: runs over the mounts of $COFFER_SHARED_MOUNTS too (it uses data_dirs)"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if "data_dirs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_volume)


def spread_requests(client, servers):
    """Sends each request of `client` to the next of `servers` in turn (before it is signed, so the
    signature names the server that gets it)."""
    turn = [0]

    def pick(request, **_):
        s = servers[turn[0] % len(servers)]
        turn[0] += 1
        # urlsplit keeps the path as it is (urllib3's parser would resolve `..` segments).
        parts = urllib.parse.urlsplit(request.url)
        request.url = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.hostname}:{s.port}"))

    client.meta.events.register("before-sign.s3", pick)


def start_servers(tmp_path, request, **kw):
    """The server of a test: one process on `tmp_path/data`; in gateway mode
    (`$COFFER_TEST_BACKEND`, see gateway.py) two processes over one new backend bucket, sharing
    that state directory, whose clients spread their requests over both."""
    backend = gateway.configured(request)
    if backend is None:
        return Server(tmp_path / "data", **kw).start()
    bucket = backend.new_bucket()
    gateway.use(backend, bucket)
    one = Server(tmp_path / "data", backend=(backend, bucket), **kw).start()
    two = Server(tmp_path / "data", backend=(backend, bucket), **kw).start()
    one.peers = [two]
    return one


@pytest.fixture
def server(tmp_path, request):
    s = start_servers(tmp_path, request)
    yield s
    s.stop()


@pytest.fixture
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = "bucket-" + os.urandom(4).hex()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def tls_server(tmp_path, request):
    certs = tmp_path / "certs"
    make_certs(certs)
    s = start_servers(tmp_path, request, certs_dir=certs)
    yield s
    s.stop()


def object_files(data_dir):
    """Every stored file except the server's own key."""
    for p in pathlib.Path(data_dir).rglob("*"):
        if p.is_file() and p.name != "master.key":
            yield p


def assert_no_plaintext(data_dir, plaintext: bytes):
    """No stored file contains any 16-byte run of `plaintext`; in gateway mode, no object of the
    backend buckets the test's servers use either (read directly from the backend)."""
    windows = {plaintext[i : i + 16] for i in range(0, max(1, len(plaintext) - 15))}
    stored = [(str(f), f.read_bytes()) for f in object_files(data_dir)]
    for backend, bucket in gateway.in_use():
        # (test_gateway.py checks that the gateway stores there at all.)
        stored += [(f"{bucket}/{k!r}", data) for k, data in backend.objects(bucket)]
    for name, data in stored:
        for i in range(0, max(0, len(data) - 15)):
            if data[i : i + 16] in windows:
                raise AssertionError(f"{name} contains plaintext at offset {i}")


def pattern(n, seed=0):
    """`n` bytes in which every 16-byte window is distinct (so a leak is always detected)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def ssec_args(key: bytes, prefix=""):
    """SSE-C parameters for boto3, which base64-encodes the raw key and adds its MD5 itself."""
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}
