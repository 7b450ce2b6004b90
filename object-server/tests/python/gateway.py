"""Gateway mode of the suite: the object-server stores its buckets in a bucket of another S3
service (`object-server server --backend URL`), a real MinIO or Ceph's RGW.

`COFFER_TEST_BACKEND` selects it for every test that uses the `server`/`tls_server` fixtures:
- `minio`: a MinIO (the pinned `minio` peer) started for the session on a free loopback port;
- `minio-ec`: MinIO in erasure-coded mode, four `minio` processes on free loopback ports, one
  drive each (EC:2), the same command line on each (see `start_minio_erasure_coded`);
- `s3+http://HOST:PORT` (or `s3://` for HTTPS): a running service, e.g. RGW from
  `/work/shared/peers/ceph/up.sh`, with its credentials in `COFFER_TEST_BACKEND_ACCESS_KEY` /
  `COFFER_TEST_BACKEND_SECRET_KEY` (else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
Unset: the suite runs on a local data directory as always.

Each test gets a new backend bucket; its servers are two processes over it (see
`conftest.start_servers`), and `conftest.assert_no_plaintext` reads that bucket directly.
"""
import os
import shutil
import subprocess
import time

import boto3
import botocore.config
import pytest
import requests

ENV = "COFFER_TEST_BACKEND"

_in_use = []


class Backend:
    """An S3 service the gateway stores into, and a client that reads it directly."""

    def __init__(self, scheme, host_port, access, secret, data_dir=None):
        self.scheme, self.host_port = scheme, host_port
        self.access, self.secret = access, secret
        self.data_dir = data_dir
        # MinIO started by the suite: `(argv, env, log path)` of each of its processes, started
        # and stopped together; None for a service the suite did not start.
        self.command = None
        self.health = "/minio/health/live"
        self.procs = []
        http = "https" if scheme == "s3" else "http"
        self.endpoint = f"{http}://{host_port}"

    def url(self, bucket):
        return f"{self.scheme}://{self.host_port}/{bucket}"

    def server_env(self):
        """The environment a gateway process reads its backend credentials from."""
        return {"COFFER_BACKEND_ACCESS_KEY": self.access, "COFFER_BACKEND_SECRET_KEY": self.secret}

    def client(self):
        conf = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
            config=conf,
        )

    def new_bucket(self, versioned=False, object_lock=False):
        name = "coffer-gw-" + os.urandom(5).hex()
        c = self.client()
        if object_lock:
            c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            c.create_bucket(Bucket=name)
            if versioned:
                c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def objects(self, bucket):
        """`(key, bytes)` of every object version in `bucket`, read directly from the backend."""
        c = self.client()
        for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for o in page.get("Versions", []):
                yield o["Key"], c.get_object(Bucket=bucket, Key=o["Key"], VersionId=o["VersionId"])["Body"].read()

    def restart(self, timeout=60):
        """Starts the MinIO this backend was started as again (same ports, same drives); whether
        it came up (with write quorum, for the erasure-coded one)."""
        self.procs = []
        for cmd, env, log_path in self.command:
            log = open(log_path, "ab")
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and all(p.poll() is None for p in self.procs):
            try:
                if requests.get(f"{self.endpoint}{self.health}", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def halt(self):
        """Stops the service, keeping its data (see `restart`)."""
        self._end_processes()

    def _end_processes(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self):
        self._end_processes()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _minio_env(base_dir, access, secret):
    env = dict(os.environ)
    env.update(
        {
            "MINIO_ROOT_USER": access,
            "MINIO_ROOT_PASSWORD": secret,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "HOME": str(base_dir),
        }
    )
    return env


def _started(b, base_dir):
    """`b` started, or None after its processes are ended (a port taken meanwhile: try others)."""
    if b.restart():
        return b
    b.halt()
    return None


def _failed(base_dir):
    logs = "".join(p.read_text(errors="replace")[-1500:] for p in sorted(base_dir.glob("minio-*.log")))
    raise AssertionError(f"MinIO did not start:\n{logs}")


def start_minio(base_dir):
    """A single-drive MinIO on a free loopback port under `base_dir`."""
    from conftest import free_port, peer

    base_dir.mkdir(parents=True, exist_ok=True)
    access, secret = "gw-backend", "gw-backend-secret-" + os.urandom(6).hex()
    for _ in range(5):
        port, console = free_port(), free_port()
        cmd = [peer("minio"), "server", "--address", f"127.0.0.1:{port}", "--console-address",
               f"127.0.0.1:{console}", str(base_dir / "drive")]
        b = Backend("s3+http", f"127.0.0.1:{port}", access, secret, base_dir)
        b.command = [(cmd, _minio_env(base_dir, access, secret), base_dir / f"minio-{port}.log")]
        if _started(b, base_dir):
            return b
    _failed(base_dir)


def start_minio_erasure_coded(base_dir, nodes=4):
    """MinIO in distributed erasure-coded mode: `nodes` processes on free loopback ports, each
    serving one drive under `base_dir`, every one given the same list of all drives (what MinIO
    requires of a distributed deployment). The gateway talks to the first one; MinIO spreads each
    object over all four drives (EC:2).

    Two settings make MinIO accept loopback nodes on one host here: `MINIO_CI_CD` lets it use
    drives on the root filesystem (else "drive is part of root drive"), and `_MINIO_SERVER_LOCAL`
    names the process's own endpoint, because inside a container (`/.dockerenv`) MinIO waits
    forever for `127.0.0.1` to "resolve to a valid IP" before it picks its local drive."""
    from conftest import free_port, peer

    base_dir.mkdir(parents=True, exist_ok=True)
    access, secret = "gw-backend", "gw-backend-secret-" + os.urandom(6).hex()
    for _ in range(5):
        ports = [free_port() for _ in range(nodes)]
        drives = [f"http://127.0.0.1:{p}{base_dir}/drive{i}" for i, p in enumerate(ports)]
        b = Backend("s3+http", f"127.0.0.1:{ports[0]}", access, secret, base_dir)
        b.health = "/minio/health/cluster"
        b.command = []
        for p in ports:
            env = _minio_env(base_dir, access, secret)
            env.update({"MINIO_CI_CD": "1", "_MINIO_SERVER_LOCAL": f"127.0.0.1:{p}"})
            cmd = [peer("minio"), "server", "--address", f"127.0.0.1:{p}", "--console-address",
                   f"127.0.0.1:{free_port()}", *drives]
            b.command.append((cmd, env, base_dir / f"minio-{p}.log"))
        if _started(b, base_dir):
            return b
    _failed(base_dir)


def from_env(tmp_path_factory):
    """The backend `$COFFER_TEST_BACKEND` names (started if it is `minio`), or None."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    if spec == "minio":
        return start_minio(tmp_path_factory.mktemp("gateway-minio"))
    if spec == "minio-ec":
        return start_minio_erasure_coded(tmp_path_factory.mktemp("gateway-minio-ec"))
    scheme, _, host_port = spec.partition("://")
    if scheme not in ("s3", "s3+http") or not host_port:
        pytest.fail(f"{ENV}={spec!r}: expected 'minio', 'minio-ec' or s3+http://HOST:PORT")
    access = os.environ.get("COFFER_TEST_BACKEND_ACCESS_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("COFFER_TEST_BACKEND_SECRET_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        pytest.fail(f"{ENV}={spec!r} needs COFFER_TEST_BACKEND_ACCESS_KEY and _SECRET_KEY")
    return Backend(scheme, host_port.rstrip("/"), access, secret)


def configured(request):
    return request.getfixturevalue("gateway_backend")


def use(backend, bucket):
    _in_use.append((backend, bucket))


def in_use():
    return list(_in_use)


def reset():
    _in_use.clear()
