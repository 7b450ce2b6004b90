"""No secret reaches the server's log, even with every log level on (`RUST_LOG=trace`): not an
SSE-C customer key, not a request's signature, not the right signature of a refused request (which
would let a reader of the log send that request), not the checksum of a plaintext, not a secret key.

s3s, our S3 protocol crate, logs all of these at DEBUG; the server caps it at INFO whatever
`RUST_LOG` asks (`server::init_logging`)."""
import base64
import email.utils

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests

from conftest import Server, make_certs, pattern, ssec_args
from test_sigv2 import by_hand, sign_v2


def leaked(log: str, secrets: dict) -> list:
    return [name for name, value in secrets.items() if value and value in log]


def test_secrets_stay_out_of_a_trace_level_log(tmp_path, monkeypatch):
    make_certs(tmp_path / "certs")  # SSE-C is refused without TLS
    s = Server(tmp_path / "data", certs_dir=tmp_path / "certs", env={"RUST_LOG": "trace"}).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", s.ca)
    c = s.client()
    c.create_bucket(Bucket="logs")
    secrets = {"root secret key": s.secret}

    # SSE-C: the customer's key travels in a header of every request on the object.
    key = bytes(range(7, 39))
    body = pattern(3000, seed=11)
    c.put_object(Bucket="logs", Key="ssec", Body=body, **ssec_args(key))
    assert c.get_object(Bucket="logs", Key="ssec", **ssec_args(key))["Body"].read() == body
    secrets["SSE-C key (base64)"] = base64.b64encode(key).decode()
    secrets["SSE-C key (hex)"] = key.hex()

    # A plaintext's checksum: the CRC32 of a 4-byte object is the object.
    put = c.put_object(Bucket="logs", Key="tiny", Body=b"pin!", ChecksumAlgorithm="CRC32")
    secrets["CRC32 of a plaintext"] = put["ChecksumCRC32"]

    # SigV2 with a wrong secret: the server computes the right signature to compare with.
    date = email.utils.formatdate(usegmt=True)
    r = by_hand(s, "GET", "/logs/tiny", date=date, secret="not-the-secret")
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.content
    secrets["right V2 signature of a refused request"] = sign_v2(s.secret, "GET", "/logs/tiny", {}, date)
    ok = by_hand(s, "GET", "/logs/tiny")
    assert ok.status_code == 200 and ok.content == b"pin!"
    secrets["V2 signature of an accepted request"] = ok.request.headers["Authorization"].split(":")[1]

    # SigV4 with a wrong secret, and the signature the right secret gives the same request.
    def sigv4(secret):
        req = botocore.awsrequest.AWSRequest(method="GET", url=f"{s.endpoint}/logs/tiny")
        botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(s.access, secret), "s3", "us-east-1").add_auth(req)
        return req

    for _ in range(20):  # both signed within the same second, so they differ only by the secret
        wrong, right = sigv4("not-the-secret"), sigv4(s.secret)
        if wrong.headers["X-Amz-Date"] == right.headers["X-Amz-Date"]:
            break
    r = requests.get(wrong.url, headers=dict(wrong.headers.items()), timeout=10, verify=s.ca)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.content
    secrets["right V4 signature of a refused request"] = right.headers["Authorization"].split("Signature=")[1]

    log = s.output()
    assert "TRACE" in log or "DEBUG" in log, "the server did not log at trace level: the test proves nothing"
    assert leaked(log, secrets) == [], f"in the log: {leaked(log, secrets)}"
    s.stop()
