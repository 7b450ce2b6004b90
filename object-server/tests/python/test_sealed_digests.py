"""What an encrypted object's metadata says about its plaintext (the ETag, an MD5; the flexible
checksums; the parts' ETags and checksums) is sealed on disk under the data directory's metadata
key: a disk, a snapshot or a backup gives none of it away (a CRC of a 4- or 8-byte object is the
object), while every client still gets the values AWS documents. Changed or moved sealed digests
are an error, never another answer."""
import base64
import hashlib
import json
import os

import botocore.exceptions
import pytest

from conftest import Server, make_certs, object_files, ssec_args
from test_checksums import checksum, composite

MIB = 1024 * 1024


def trailer_json(path):
    data = path.read_bytes()
    assert data[-8:] == b"COFFER\x00\x01"
    n = int.from_bytes(data[-12:-8], "little")
    return data[: -12 - n], json.loads(data[-12 - n : -12])


def write_trailer(path, body, meta):
    raw = json.dumps(meta).encode()
    path.write_bytes(body + raw + len(raw).to_bytes(4, "little") + b"COFFER\x00\x01")


def obj_file(data_dir, bucket, key):
    return data_dir / bucket / f"_{key}" / "obj"


def digests_on_disk(data_dir, texts):
    """The stored files (the metadata key's file included) that contain one of `texts`."""
    found = []
    for f in object_files(data_dir):
        data = f.read_bytes()
        found += [(f.name, t) for t in texts if t.encode() in data]
    return found


def test_an_encrypted_objects_etag_and_checksums_are_not_on_disk(tmp_path):
    data = tmp_path / "data"
    certs = tmp_path / "certs"  # SSE-C needs TLS
    make_certs(certs)
    server = Server(data, certs_dir=certs).start()
    s3 = server.client()
    s3.create_bucket(Bucket="bkt")
    tiny = b"PIN:4711"  # 8 bytes: its CRC64NVME (the default checksum) would be the object itself
    r = s3.put_object(Bucket="bkt", Key="tiny", Body=tiny, ChecksumCRC64NVME=checksum("CRC64NVME", tiny))
    assert r["ServerSideEncryption"] == "AES256"
    four = b"4711"
    s3.put_object(Bucket="bkt", Key="four", Body=four, ChecksumAlgorithm="CRC32")
    key = os.urandom(16).hex()  # 32 bytes; a str, which every boto3 operation takes
    parts = [os.urandom(5 * MIB), os.urandom(1000)]
    uid = s3.create_multipart_upload(Bucket="bkt", Key="mp", ChecksumAlgorithm="SHA256", **ssec_args(key))[
        "UploadId"
    ]
    done = []
    for n, p in enumerate(parts, 1):
        e = s3.upload_part(
            Bucket="bkt", Key="mp", UploadId=uid, PartNumber=n, Body=p, ChecksumSHA256=checksum("SHA256", p),
            **ssec_args(key),
        )
        done.append({"PartNumber": n, "ETag": e["ETag"], "ChecksumSHA256": e["ChecksumSHA256"]})
    # An upload's parts are on disk before completion, too.
    secrets = [
        hashlib.md5(tiny).hexdigest(),
        checksum("CRC64NVME", tiny),
        checksum("CRC32", tiny),
        hashlib.md5(four).hexdigest(),
        checksum("CRC32", four),
        checksum("CRC64NVME", four),
    ] + [d["ETag"].strip('"') for d in done] + [d["ChecksumSHA256"] for d in done]
    assert digests_on_disk(data, secrets) == []
    s3.complete_multipart_upload(
        Bucket="bkt", Key="mp", UploadId=uid, MultipartUpload={"Parts": done}, **ssec_args(key)
    )
    assert digests_on_disk(data, secrets + [composite("SHA256", parts)]) == []

    # Every client still gets the values, from this process and from another one on the same
    # directory (one metadata key per directory).
    other = Server(data, certs_dir=certs).start()
    for c in (s3, other.client()):
        h = c.head_object(Bucket="bkt", Key="tiny", ChecksumMode="ENABLED")
        assert h["ETag"] == f'"{hashlib.md5(tiny).hexdigest()}"'
        assert h["ChecksumCRC64NVME"] == checksum("CRC64NVME", tiny)
        assert c.head_object(Bucket="bkt", Key="four", ChecksumMode="ENABLED")["ChecksumCRC32"] == checksum(
            "CRC32", four
        )
        listed = {o["Key"]: o["ETag"] for o in c.list_objects_v2(Bucket="bkt")["Contents"]}
        assert listed["tiny"] == h["ETag"]
        g = c.get_object(Bucket="bkt", Key="mp", ChecksumMode="ENABLED", **ssec_args(key))
        assert g["Body"].read() == b"".join(parts)
        assert g["ChecksumSHA256"] == composite("SHA256", parts)
        for d in done:
            g = c.get_object(Bucket="bkt", Key="mp", PartNumber=d["PartNumber"], ChecksumMode="ENABLED", **ssec_args(key))
            assert g["ChecksumSHA256"] == d["ChecksumSHA256"]
    # The key file holds the KMS's ciphertext of the key, readable by the server only.
    key_file = data / ".coffer" / "metadata.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert set(json.loads(key_file.read_text())) == {"kms_key", "ciphertext"}
    other.stop()
    server.stop()


def test_changed_or_moved_sealed_digests_are_an_error_not_another_etag(tmp_path):
    data = tmp_path / "data"
    server = Server(data).start()
    s3 = server.client()
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="a", Body=b"first object")
    s3.put_object(Bucket="bkt", Key="c", Body=b"second object")
    good = s3.head_object(Bucket="bkt", Key="c")["ETag"]
    a_body, a_meta = trailer_json(obj_file(data, "bkt", "a"))
    c_body, c_meta = trailer_json(obj_file(data, "bkt", "c"))
    assert "sealed_digests" in a_meta and a_meta["etag"] == ""

    def refused(key):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.head_object(Bucket="bkt", Key=key)
        return e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    # a's sealed digests on c: they are bound to a's sealed key.
    write_trailer(obj_file(data, "bkt", "c"), c_body, {**c_meta, "sealed_digests": a_meta["sealed_digests"]})
    assert refused("c") == 500
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="bkt", Key="c")
    assert e.value.response["Error"]["Code"] == "InternalError"
    # One character changed.
    s = c_meta["sealed_digests"]
    write_trailer(
        obj_file(data, "bkt", "c"), c_body, {**c_meta, "sealed_digests": ("B" if s[0] == "A" else "A") + s[1:]}
    )
    assert refused("c") == 500
    # Put back, it reads as before; the other object was never affected.
    write_trailer(obj_file(data, "bkt", "c"), c_body, c_meta)
    assert s3.head_object(Bucket="bkt", Key="c")["ETag"] == good
    assert s3.get_object(Bucket="bkt", Key="a")["Body"].read() == b"first object"
    server.stop()


def test_another_kms_cannot_open_the_directorys_metadata_key(tmp_path):
    """A data directory served with another KMS key than the one that made its metadata key
    cannot give its encrypted objects' ETags: requests fail (503, the KMS), nothing is rewritten."""
    data = tmp_path / "data"
    env = {"MINIO_KMS_SECRET_KEY": "my-key:" + base64.b64encode(os.urandom(32)).decode()}
    server = Server(data, env=env).start()
    s3 = server.client()
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"body", ServerSideEncryption="AES256")
    server.stop()
    before = (data / ".coffer" / "metadata.key").read_bytes()
    env = {"MINIO_KMS_SECRET_KEY": "my-key:" + base64.b64encode(os.urandom(32)).decode()}
    stranger = Server(data, env=env).start()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        stranger.client().head_object(Bucket="bkt", Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert (data / ".coffer" / "metadata.key").read_bytes() == before
    stranger.stop()
