"""Virtual-host-style requests (`MINIO_DOMAIN`): boto3 with `addressing_style='virtual'`, a presigned
URL through curl, and mc with `--path off`, all against the real binary; path style keeps working.
The names under the test domain resolve to 127.0.0.1 inside this process (getaddrinfo is patched)
and for curl via --resolve; mc goes through a relay it is told is its HTTP proxy."""
import socket
import subprocess
import threading

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import Server, peer

DOMAIN = "s3.coffer.test"


@pytest.fixture
def resolve_test_domain(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kw):
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def vserver(tmp_path, resolve_test_domain):
    s = Server(tmp_path / "data", env={"MINIO_DOMAIN": f"other.example, {DOMAIN}"}).start()
    yield s
    s.stop()


def client(server, style):
    conf = botocore.config.Config(s3={"addressing_style": style}, retries={"max_attempts": 1})
    return boto3.client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{server.port}",
        aws_access_key_id=server.access,
        aws_secret_access_key=server.secret,
        region_name="us-east-1",
        config=conf,
    )


def test_boto3_virtual_host_style_and_path_style_side_by_side(vserver):
    seen_hosts = []
    v = client(vserver, "virtual")
    v.meta.events.register("before-send.s3", lambda request, **_: seen_hosts.append(request.url.split("/")[2]))
    v.create_bucket(Bucket="photos")
    v.put_object(Bucket="photos", Key="a/b.txt", Body=b"virtual")
    assert v.get_object(Bucket="photos", Key="a/b.txt")["Body"].read() == b"virtual"
    assert [o["Key"] for o in v.list_objects_v2(Bucket="photos")["Contents"]] == ["a/b.txt"]
    assert [b["Name"] for b in v.list_buckets()["Buckets"]] == ["photos"]
    # The requests really went to bucket.DOMAIN (and ListBuckets to DOMAIN itself).
    assert f"photos.{DOMAIN}:{vserver.port}" in seen_hosts and f"{DOMAIN}:{vserver.port}" in seen_hosts
    # A wrong signature is still refused on a virtual host.
    bad = boto3.client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{vserver.port}",
        aws_access_key_id=vserver.access,
        aws_secret_access_key="wrong-secret-key",
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.get_object(Bucket="photos", Key="a/b.txt")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # Path style, by the domain name and by IP address, sees the same bucket.
    p = client(vserver, "path")
    assert p.get_object(Bucket="photos", Key="a/b.txt")["Body"].read() == b"virtual"
    ip = vserver.client()
    ip.put_object(Bucket="photos", Key="by-ip", Body=b"path")
    assert v.get_object(Bucket="photos", Key="by-ip")["Body"].read() == b"path"
    # A host under no configured domain is path style too.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        v.head_bucket(Bucket="missing")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Deleting through the virtual host.
    v.delete_object(Bucket="photos", Key="by-ip")
    v.delete_object(Bucket="photos", Key="a/b.txt")
    v.delete_bucket(Bucket="photos")
    assert ip.list_buckets()["Buckets"] == []


def test_presigned_virtual_host_url_through_curl(vserver):
    v = client(vserver, "virtual")
    v.create_bucket(Bucket="shared")
    v.put_object(Bucket="shared", Key="doc.txt", Body=b"presigned body")
    url = v.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "doc.txt"}, ExpiresIn=300)
    assert url.startswith(f"http://shared.{DOMAIN}:{vserver.port}/doc.txt?")
    resolve = f"shared.{DOMAIN}:{vserver.port}:127.0.0.1"
    r = subprocess.run(["curl", "-sS", "--fail", "--resolve", resolve, url], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"presigned body"
    # The same signature for another key is refused.
    r = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", resolve, url.replace("/doc.txt?", "/other.txt?")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.stdout == "403", r


class Relay:
    """A TCP relay to the server that mc is told is its HTTP proxy: mc then sends absolute-form
    requests (`GET http://bucket.DOMAIN:port/key`) without resolving the name itself."""

    def __init__(self, port):
        self.target = ("127.0.0.1", port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.request_lines = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            for a, b, seen in ((conn, up, self.request_lines), (up, conn, None)):
                threading.Thread(target=self._pipe, args=(a, b, seen), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, seen):
        try:
            while data := src.recv(65536):
                if seen is not None:
                    seen.extend(line for line in data.split(b"\r\n") if line.endswith(b" HTTP/1.1"))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_mc_with_path_off(vserver, tmp_path):
    relay = Relay(vserver.port)
    try:
        env = {
            "MC_CONFIG_DIR": str(tmp_path / "mc"),
            "HTTP_PROXY": f"http://127.0.0.1:{relay.port}",
            "http_proxy": f"http://127.0.0.1:{relay.port}",
            "NO_PROXY": "",
            "no_proxy": "",
            "PATH": subprocess.os.environ["PATH"],
        }

        def mc(*args):
            r = subprocess.run([peer("mc"), "--json", *args], env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"mc {args}: {r.stdout}\n{r.stderr}\n{vserver.output()[-2000:]}"
            return r.stdout

        endpoint = f"http://{DOMAIN}:{vserver.port}"
        mc("alias", "set", "v", endpoint, vserver.access, vserver.secret, "--path", "off", "--api", "s3v4")
        mc("mb", "v/mcbucket")
        src = tmp_path / "f.txt"
        src.write_bytes(b"through mc")
        mc("cp", str(src), "v/mcbucket/dir/f.txt")
        assert "dir/f.txt" in mc("ls", "--recursive", "v/mcbucket")
        assert mc("cat", "v/mcbucket/dir/f.txt").endswith("through mc")
        # mc really used virtual-host style (the absolute-form request lines name the bucket's
        # host), and the object is there by path style too.
        assert any(f"http://mcbucket.{DOMAIN}:{vserver.port}/dir/f.txt".encode() in l for l in relay.request_lines), relay.request_lines[:20]
        assert vserver.client().get_object(Bucket="mcbucket", Key="dir/f.txt")["Body"].read() == b"through mc"
    finally:
        relay.close()
