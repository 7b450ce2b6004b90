"""Gateway mode of the suite: the object-server stores its buckets in a bucket of another S3
service (`object-server server --backend URL`), a real MinIO or Ceph's RGW.

`COFFER_TEST_BACKEND` selects it for every test that uses the `server`/`tls_server` fixtures:
- `minio`: a MinIO (the pinned `minio` peer) started for the session on a free loopback port;
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

    def __init__(self, scheme, host_port, access, secret, proc=None, data_dir=None):
        self.scheme, self.host_port = scheme, host_port
        self.access, self.secret = access, secret
        self.proc, self.data_dir = proc, data_dir
        self.command = None
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

    def new_bucket(self):
        name = "coffer-gw-" + os.urandom(5).hex()
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket):
        """`(key, bytes)` of every object in `bucket`, read directly from the backend."""
        c = self.client()
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                yield o["Key"], c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()

    def restart(self, timeout=60):
        """Starts the MinIO this backend was started as again (same port, same drive); whether
        it came up."""
        cmd, env, log_path = self.command
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(f"{self.endpoint}/minio/health/live", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def halt(self):
        """Stops the service, keeping its data (see `restart`)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_minio(base_dir):
    """A single-drive MinIO on a free loopback port under `base_dir`."""
    from conftest import free_port, peer

    base_dir.mkdir(parents=True, exist_ok=True)
    access, secret = "gw-backend", "gw-backend-secret-" + os.urandom(6).hex()
    for _ in range(5):
        port, console = free_port(), free_port()
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
        cmd = [peer("minio"), "server", "--address", f"127.0.0.1:{port}", "--console-address",
               f"127.0.0.1:{console}", str(base_dir / "drive")]
        b = Backend("s3+http", f"127.0.0.1:{port}", access, secret, None, base_dir)
        b.command = (cmd, env, base_dir / f"minio-{port}.log")
        if b.restart():
            return b
        b.proc.kill()
        b.proc.wait()
    raise AssertionError(f"MinIO did not start: {(base_dir / f'minio-{port}.log').read_text(errors='replace')[-2000:]}")


def from_env(tmp_path_factory):
    """The backend `$COFFER_TEST_BACKEND` names (started if it is `minio`), or None."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    if spec == "minio":
        return start_minio(tmp_path_factory.mktemp("gateway-minio"))
    scheme, _, host_port = spec.partition("://")
    if scheme not in ("s3", "s3+http") or not host_port:
        pytest.fail(f"{ENV}={spec!r}: expected 'minio' or s3+http://HOST:PORT")
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
