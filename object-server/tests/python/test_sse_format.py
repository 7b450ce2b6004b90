"""The encrypted format on disk: no two package streams share a key and nonce (a part uploaded
again must not reuse the key of the part it replaces), and data directories written by earlier
versions (tests/fixtures/format-v1, see its README) read back byte for byte."""
import base64
import json
import os
import pathlib
import shutil

import pytest

from conftest import Server, make_certs, pattern, ssec_args

PAYLOAD = 64 * 1024
MIB = 1024 * 1024
FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "format-v1"


def split_object_file(path):
    """(body, metadata) of an object file (`body ‖ JSON ‖ u32 LE length ‖ magic`)."""
    data = path.read_bytes()
    assert data[-8:] == b"COFFER\x00\x01", path
    n = int.from_bytes(data[-12:-8], "little")
    return data[: -12 - n], json.loads(data[-12 - n : -12])


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def sse_args(mode, ssec_key):
    if mode == "SSE-C":
        return ssec_args(ssec_key)
    return {"ServerSideEncryption": mode}


def copy_sse_args(mode, ssec_key):
    """The destination's SSE arguments of an UploadPartCopy (only SSE-C repeats them)."""
    return ssec_args(ssec_key) if mode == "SSE-C" else {}


@pytest.mark.parametrize("mode", ["AES256", "aws:kms", "SSE-C"])
def test_a_part_uploaded_again_is_encrypted_under_a_new_key(tls_server, mode):
    s3 = tls_server.client()
    s3.create_bucket(Bucket="bkt")
    ssec_key = os.urandom(32)
    part_args = copy_sse_args(mode, ssec_key)
    uid = s3.create_multipart_upload(Bucket="bkt", Key="k", **sse_args(mode, ssec_key))["UploadId"]
    part_file = tls_server.data_dir / ".coffer" / "multipart" / "bkt" / uid / "part.1"
    # Three writes of part 1, as retrying clients do: two UploadParts and an UploadPartCopy.
    bodies = [pattern(PAYLOAD + 5000, 1), pattern(PAYLOAD + 5000, 2), pattern(PAYLOAD + 5000, 3)]
    s3.put_object(Bucket="bkt", Key="source", Body=bodies[2])
    stored = []
    for i, body in enumerate(bodies):
        if i < 2:
            s3.upload_part(Bucket="bkt", Key="k", UploadId=uid, PartNumber=1, Body=body, **part_args)
        else:
            s3.upload_part_copy(Bucket="bkt", Key="k", UploadId=uid, PartNumber=1, CopySource="bkt/source", **part_args)
        stored.append(split_object_file(part_file))
    for i in range(len(bodies)):
        for j in range(i + 1, len(bodies)):
            (ci, mi), (cj, mj) = stored[i], stored[j]
            assert len(ci) == len(cj) == len(bodies[i]) + 2 * 16
            # Under one key and nonce, AES-GCM's keystream repeats, so the XOR of the two
            # ciphertexts would be the XOR of the plaintexts (in every package).
            for pkg in range(2):
                at = pkg * (PAYLOAD + 16)
                n = min(PAYLOAD, len(bodies[i]) - pkg * PAYLOAD)
                leak = xor(ci[at : at + n], cj[at : at + n]) == xor(
                    bodies[i][pkg * PAYLOAD : pkg * PAYLOAD + n], bodies[j][pkg * PAYLOAD : pkg * PAYLOAD + n]
                )
                assert not leak, f"writes {i} and {j} of part 1 share key and nonce (package {pkg})"
            # Each write drew its own random value, and the part's metadata says so.
            assert mi["key_salt"] != mj["key_salt"]
    etag = s3.list_parts(Bucket="bkt", Key="k", UploadId=uid)["Parts"][0]["ETag"]
    s3.complete_multipart_upload(
        Bucket="bkt", Key="k", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    got = s3.get_object(Bucket="bkt", Key="k", **part_args)["Body"].read()
    assert got == bodies[2]
    # The completed object names the last write's random value with the part.
    key_dir = tls_server.data_dir / "bkt" / "_k"
    _, meta = split_object_file(key_dir / "obj")
    assert [p["key_salt"] for p in meta["parts"]] == [stored[2][1]["key_salt"]]
    # A changed random value does not open the part: it is part of the key.
    part = key_dir / "parts" / meta["part_dir"] / "part.1"
    body, pmeta = split_object_file(part)
    salt = bytearray(base64.b64decode(pmeta["key_salt"]))
    salt[0] ^= 1
    meta["parts"][0]["key_salt"] = base64.b64encode(bytes(salt)).decode()
    js = json.dumps(meta).encode()
    (key_dir / "obj").write_bytes(js + len(js).to_bytes(4, "little") + b"COFFER\x00\x01")
    with pytest.raises(Exception):
        s3.get_object(Bucket="bkt", Key="k", **part_args)["Body"].read()


def fixture_server(tmp_path):
    """A server on a copy of the fixture written by the earlier format, with its master key."""
    manifest = json.loads((FIXTURE / "objects.json").read_text())
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "data", data)
    certs = tmp_path / "certs"
    make_certs(certs)
    env = {"MINIO_KMS_SECRET_KEY": manifest["kms_secret_key"]}
    return Server(data, env=env, certs_dir=certs).start(), manifest


def test_objects_written_by_the_earlier_format_read_back_byte_for_byte(tmp_path):
    server, manifest = fixture_server(tmp_path)
    s3 = server.client()
    ssec_key = bytes.fromhex(manifest["ssec_key_hex"])
    bucket = manifest["bucket"]
    assert manifest["objects"], "the fixture lists its objects"
    for o in manifest["objects"]:
        want = b"".join(pattern(size, seed) for size, seed in o["parts"])
        args = ssec_args(ssec_key) if o["sse"] == "SSE-C" else {}
        r = s3.get_object(Bucket=bucket, Key=o["key"], **args)
        assert r["Body"].read() == want, o["key"]
        assert r["ETag"] == o["etag"], o["key"]
        if o["sse"] in ("AES256", "aws:kms"):
            assert r["ServerSideEncryption"] == o["sse"], o["key"]
        elif o["sse"] == "SSE-C":
            assert r["SSECustomerAlgorithm"] == "AES256"
        else:
            assert "ServerSideEncryption" not in r
        # A range across the first package boundary (or the whole of a small object).
        if want:
            lo, hi = max(0, min(len(want), PAYLOAD) - 10), min(len(want), PAYLOAD + 10) - 1
            got = s3.get_object(Bucket=bucket, Key=o["key"], Range=f"bytes={lo}-{hi}", **args)["Body"].read()
            assert got == want[lo : hi + 1], o["key"]
    # None of the fixture's parts carries the new per-part value: the earlier format was read.
    for p in (server.data_dir / bucket).rglob("part.*"):
        assert "key_salt" not in split_object_file(p)[1]


def test_an_upload_begun_by_the_earlier_format_completes_with_parts_of_both(tmp_path):
    server, manifest = fixture_server(tmp_path)
    s3 = server.client()
    bucket = manifest["bucket"]
    pending = manifest["pending_upload"]
    uid, key = pending["upload_id"], pending["key"]
    (size2, seed2) = pending["part2"]
    p1 = pattern(5 * MIB, 99)
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    parts = {p["PartNumber"]: p["ETag"] for p in s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]}
    assert parts[1] == e1 and 2 in parts
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": parts[2]}]},
    )
    want = p1 + pattern(size2, seed2)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == want
    lo = 5 * MIB - 7
    assert s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{lo + 20}")["Body"].read() == want[lo : lo + 21]
    # Part 1 is in the new format (a random value), part 2 as the earlier version wrote it.
    kd = server.data_dir / bucket
    for seg in key.split("/"):
        kd = kd / f"_{seg}"
    _, meta = split_object_file(kd / "obj")
    assert "key_salt" in meta["parts"][0] and "key_salt" not in meta["parts"][1]
