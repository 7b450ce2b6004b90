"""S3's flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) as AWS documents them: single
part and multipart (COMPOSITE and FULL_OBJECT) writes, the values returned by every operation that
carries them, GetObjectAttributes, listings, copies, and each refusal's status and code.

Every expected value is computed here, independently of the server: zlib and hashlib, and the
CRC32C and CRC64NVME below (the venv has no awscrt, so boto3 cannot compute those two itself;
the tests send them precomputed)."""
import base64
import hashlib
import json
import os
import zlib

import botocore.exceptions
import pytest

from conftest import pattern, ssec_args
from test_sse_format import fixture_server

MIB = 1024 * 1024
ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def _crc_table(poly, bits):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table, (1 << bits) - 1


_CRC32C = _crc_table(0x82F63B78, 32)
_CRC64NVME = _crc_table(0x9A6C9329AC4BC9B5, 64)


def _reflected_crc(spec, data):
    table, mask = spec
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def digest(alg, data):
    """The raw digest of `data`, big-endian for the CRCs, as S3 encodes them."""
    if alg == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if alg == "CRC32C":
        return _reflected_crc(_CRC32C, data).to_bytes(4, "big")
    if alg == "CRC64NVME":
        return _reflected_crc(_CRC64NVME, data).to_bytes(8, "big")
    return hashlib.new(alg.lower(), data).digest()


def b64(raw):
    return base64.b64encode(raw).decode()


def checksum(alg, data):
    return b64(digest(alg, data))


def composite(alg, parts):
    """AWS's composite checksum: the hash of the concatenated part digests, then `-N`."""
    return f"{checksum(alg, b''.join(digest(alg, p) for p in parts))}-{len(parts)}"


def test_reference_crcs_match_published_check_values():
    # The "123456789" check values of CRC-32C (iSCSI) and CRC-64/NVME.
    assert _reflected_crc(_CRC32C, b"123456789") == 0xE3069283
    assert _reflected_crc(_CRC64NVME, b"123456789") == 0xAE8B14860A799888


def error(exc_info):
    r = exc_info.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def refused(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    return error(e)


def missing(s3, bucket, key):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return error(e) == (404, "404")


@pytest.fixture
def plain(server):
    """A client that sends no checksum unless told to (boto3 adds CRC32 by default)."""
    return server.client(request_checksum_calculation="when_required", response_checksum_validation="when_required")


def arg(alg):
    return "Checksum" + alg


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_single_part_each_algorithm(s3, bucket, alg):
    body = pattern(300_000, seed=len(alg))
    want = checksum(alg, body)
    r = s3.put_object(Bucket=bucket, Key="k", Body=body, **{arg(alg): want})
    assert r[arg(alg)] == want and r["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[arg(alg)] == want and head["ChecksumType"] == "FULL_OBJECT"
    # Only asked for: without the mode no checksum is returned.
    assert not [h for h in s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"] if h.startswith("x-amz-checksum")]
    g = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert g[arg(alg)] == want and g["Body"].read() == body
    # A byte range is not described by the object's checksum: none is sent.
    g = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED", Range="bytes=10-99")
    assert arg(alg) not in g and g["Body"].read() == body[10:100]
    # partNumber=1 of a single-part object is the whole object.
    assert s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED", PartNumber=1)[arg(alg)] == want
    a = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert a["Checksum"] == {arg(alg): want, "ChecksumType": "FULL_OBJECT"}
    assert a["ObjectSize"] == len(body) and a["StorageClass"] == "STANDARD"
    assert a["ETag"].strip('"') == hashlib.md5(body).hexdigest() and "ObjectParts" not in a
    (o,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert o["ChecksumAlgorithm"] == [alg] and o["ChecksumType"] == "FULL_OBJECT"
    (o,) = s3.list_objects(Bucket=bucket)["Contents"]
    assert o["ChecksumAlgorithm"] == [alg]
    # RestoreStatus is the one optional attribute AWS has; nothing here is archived.
    (o,) = s3.list_objects_v2(Bucket=bucket, OptionalObjectAttributes=["RestoreStatus"])["Contents"]
    assert o["ChecksumAlgorithm"] == [alg] and "RestoreStatus" not in o


@pytest.mark.parametrize("alg", ["CRC32", "SHA1", "SHA256"])
def test_single_part_sdk_computed_trailer(s3, bucket, alg):
    """boto3 computes these itself and sends them as an aws-chunked trailer."""
    body = pattern(200_000, seed=3)
    r = s3.put_object(Bucket=bucket, Key="t", Body=body, ChecksumAlgorithm=alg)
    assert r[arg(alg)] == checksum(alg, body)
    assert s3.head_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")[arg(alg)] == checksum(alg, body)


def test_no_checksum_gets_crc64nvme_by_default(plain, bucket):
    body = pattern(70_000, seed=5)
    r = plain.put_object(Bucket=bucket, Key="d", Body=body)
    assert r["ChecksumCRC64NVME"] == checksum("CRC64NVME", body)
    h = plain.head_object(Bucket=bucket, Key="d", ChecksumMode="ENABLED")
    assert h["ChecksumCRC64NVME"] == checksum("CRC64NVME", body) and h["ChecksumType"] == "FULL_OBJECT"


def test_single_part_refusals_store_nothing(s3, bucket):
    body = b"the body"
    wrong = checksum("SHA256", b"another body")
    assert refused(s3.put_object, Bucket=bucket, Key="x", Body=body, ChecksumSHA256=wrong) == (400, "BadDigest")
    assert refused(s3.put_object, Bucket=bucket, Key="x", Body=body, ChecksumCRC32C=checksum("CRC32C", b"nope")) == (400, "BadDigest")
    # Not a value of the algorithm's length, or not base64.
    assert refused(s3.put_object, Bucket=bucket, Key="x", Body=body, ChecksumCRC32=checksum("SHA1", body)) == (400, "InvalidRequest")
    assert refused(s3.put_object, Bucket=bucket, Key="x", Body=body, ChecksumCRC64NVME="!!!") == (400, "InvalidRequest")
    # Two checksums in one request.
    assert refused(
        s3.put_object, Bucket=bucket, Key="x", Body=body, ChecksumCRC32=checksum("CRC32", body), ChecksumSHA1=checksum("SHA1", body)
    ) == (400, "InvalidRequest")
    assert missing(s3, bucket, "x")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def parts_of(seed):
    return [pattern(5 * MIB, seed), pattern(5 * MIB + 7, seed + 1), pattern(1000, seed + 2)]


def upload(s3, bucket, key, parts, alg, **create):
    """A multipart upload whose parts carry `alg` checksums computed here; returns the upload id
    and the Complete body (with the part checksums)."""
    c = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg, **create)
    assert c["ChecksumAlgorithm"] == alg
    uid = c["UploadId"]
    listed = []
    for n, body in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body, **{arg(alg): checksum(alg, body)})
        assert r[arg(alg)] == checksum(alg, body)
        listed.append({"PartNumber": n, "ETag": r["ETag"], arg(alg): r[arg(alg)]})
    return uid, c, {"Parts": listed}


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_multipart_composite(s3, bucket, alg):
    parts = parts_of(10)
    whole = b"".join(parts)
    uid, created, listed = upload(s3, bucket, "mp", parts, alg, ChecksumType="COMPOSITE")
    assert created["ChecksumType"] == "COMPOSITE"
    lp = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert lp["ChecksumAlgorithm"] == alg and lp["ChecksumType"] == "COMPOSITE"
    assert [p[arg(alg)] for p in lp["Parts"]] == [checksum(alg, p) for p in parts]
    want = composite(alg, parts)
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload=listed)
    assert r[arg(alg)] == want and r["ChecksumType"] == "COMPOSITE"
    h = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert h[arg(alg)] == want and h["ChecksumType"] == "COMPOSITE"
    assert s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")["Body"].read() == whole
    # One part by number: that part's checksum, which boto3 checks against the bytes it gets.
    g = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED", PartNumber=2)
    assert g[arg(alg)] == checksum(alg, parts[1]) and g["Body"].read() == parts[1] and g["PartsCount"] == 3
    a = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum", "ObjectParts", "ObjectSize"])
    assert a["Checksum"] == {arg(alg): want, "ChecksumType": "COMPOSITE"} and a["ObjectSize"] == len(whole)
    op = a["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and not op["IsTruncated"]
    assert [(p["PartNumber"], p["Size"], p[arg(alg)]) for p in op["Parts"]] == [
        (n, len(p), checksum(alg, p)) for n, p in enumerate(parts, 1)
    ]
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=1, PartNumberMarker=1)["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [2] and page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    (o,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert o["ChecksumAlgorithm"] == [alg] and o["ChecksumType"] == "COMPOSITE"


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME"])
def test_multipart_full_object(s3, bucket, alg):
    parts = parts_of(20)
    whole = b"".join(parts)
    want = checksum(alg, whole)
    uid, created, listed = upload(s3, bucket, "full", parts, alg, ChecksumType="FULL_OBJECT")
    assert created["ChecksumType"] == "FULL_OBJECT"
    # The whole object's CRC, checked by the server against the parts' combined CRCs.
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="full", UploadId=uid, MultipartUpload=listed, ChecksumType="FULL_OBJECT", MpuObjectSize=len(whole), **{arg(alg): want}
    )
    assert r[arg(alg)] == want and r["ChecksumType"] == "FULL_OBJECT"
    h = s3.head_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert h[arg(alg)] == want and h["ChecksumType"] == "FULL_OBJECT"
    # boto3 checks a CRC32 body against the header itself; the others are compared here.
    g = s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert g[arg(alg)] == want and g["Body"].read() == whole
    a = s3.get_object_attributes(Bucket=bucket, Key="full", ObjectAttributes=["Checksum", "ObjectParts"])
    assert a["Checksum"] == {arg(alg): want, "ChecksumType": "FULL_OBJECT"}
    assert [p[arg(alg)] for p in a["ObjectParts"]["Parts"]] == [checksum(alg, p) for p in parts]


def test_crc64nvme_upload_defaults_to_full_object_and_parts_may_omit_checksums(s3, plain, bucket):
    parts = parts_of(30)[1:]
    c = s3.create_multipart_upload(Bucket=bucket, Key="n", ChecksumAlgorithm="CRC64NVME")
    assert c["ChecksumType"] == "FULL_OBJECT"
    # A FULL_OBJECT upload computes what a part does not send.
    etags = [plain.upload_part(Bucket=bucket, Key="n", UploadId=c["UploadId"], PartNumber=n, Body=p)["ETag"] for n, p in enumerate(parts, 1)]
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="n", UploadId=c["UploadId"], MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}
    )
    assert r["ChecksumCRC64NVME"] == checksum("CRC64NVME", b"".join(parts)) and r["ChecksumType"] == "FULL_OBJECT"


def test_multipart_without_algorithm_gets_full_object_crc64nvme(plain, bucket):
    parts = parts_of(40)[1:]
    uid = plain.create_multipart_upload(Bucket=bucket, Key="u")["UploadId"]
    etags = [plain.upload_part(Bucket=bucket, Key="u", UploadId=uid, PartNumber=n, Body=p)["ETag"] for n, p in enumerate(parts, 1)]
    lp = plain.list_parts(Bucket=bucket, Key="u", UploadId=uid)
    assert "ChecksumAlgorithm" not in lp
    r = plain.complete_multipart_upload(Bucket=bucket, Key="u", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    assert r["ChecksumCRC64NVME"] == checksum("CRC64NVME", b"".join(parts)) and r["ChecksumType"] == "FULL_OBJECT"


def test_boto3_managed_transfer_round_trips_with_its_default_checksums(s3, bucket, tmp_path):
    """upload_file splits into 8 MiB parts with CRC32 by default; download_file checks what it gets."""
    import boto3.s3.transfer

    body = pattern(17 * MIB + 5, seed=50)
    src = tmp_path / "src"
    src.write_bytes(body)
    s3.upload_file(str(src), bucket, "managed", Config=boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MIB))
    h = s3.head_object(Bucket=bucket, Key="managed", ChecksumMode="ENABLED")
    chunks = [body[i : i + 8 * MIB] for i in range(0, len(body), 8 * MIB)]
    expected = {"FULL_OBJECT": checksum("CRC32", body), "COMPOSITE": composite("CRC32", chunks)}
    assert h["ChecksumCRC32"] == expected[h["ChecksumType"]], h
    dst = tmp_path / "dst"
    s3.download_file(bucket, "managed", str(dst))
    assert dst.read_bytes() == body


def test_create_multipart_refusals(s3, bucket):
    for kw in [
        {"ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "SHA1", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"},
        {"ChecksumType": "COMPOSITE"},
    ]:
        assert refused(s3.create_multipart_upload, Bucket=bucket, Key="r", **kw) == (400, "InvalidRequest"), kw
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_upload_part_refusals(s3, plain, bucket):
    body = pattern(1000, 60)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="p", ChecksumAlgorithm="SHA256")["UploadId"]
    part = {"Bucket": bucket, "Key": "p", "UploadId": uid, "PartNumber": 1, "Body": body}
    # Another algorithm than the upload's.
    assert refused(s3.upload_part, **part, ChecksumCRC32=checksum("CRC32", body)) == (400, "InvalidRequest")
    assert refused(s3.upload_part, **part, ChecksumAlgorithm="SHA1") == (400, "InvalidRequest")
    # No checksum at all in a COMPOSITE upload.
    assert refused(plain.upload_part, **part) == (400, "InvalidRequest")
    # A wrong value.
    assert refused(s3.upload_part, **part, ChecksumSHA256=checksum("SHA256", b"other")) == (400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="p", UploadId=uid).get("Parts", []) == []
    # The SDK computing the right one is accepted.
    assert s3.upload_part(**part, ChecksumAlgorithm="SHA256")["ChecksumSHA256"] == checksum("SHA256", body)


def test_complete_refusals_store_nothing(s3, bucket):
    alg = "CRC32C"
    parts = parts_of(70)[1:]
    uid, _, listed = upload(s3, bucket, "c", parts, alg)
    go = {"Bucket": bucket, "Key": "c", "UploadId": uid}

    def with_part(n, **change):
        body = json.loads(json.dumps(listed))
        body["Parts"][n].update(change)
        for k in [k for k, v in body["Parts"][n].items() if v is None]:
            del body["Parts"][n][k]
        return body

    # COMPOSITE: every part's checksum must be listed.
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=with_part(1, **{arg(alg): None})) == (400, "InvalidRequest")
    # A wrong value of the upload's algorithm, or of another one.
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=with_part(0, **{arg(alg): checksum(alg, b"x")})) == (400, "InvalidPart")
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=with_part(0, ChecksumSHA1=checksum("SHA1", b"x"))) == (400, "BadDigest")
    # A whole-object checksum that is not the object's.
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=listed, ChecksumCRC32C=checksum(alg, b"x")) == (400, "BadDigest")
    # Another checksum type than the upload's, and a wrong size.
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=listed, ChecksumType="FULL_OBJECT") == (400, "InvalidRequest")
    assert refused(s3.complete_multipart_upload, **go, MultipartUpload=listed, MpuObjectSize=1) == (400, "InvalidRequest")
    assert missing(s3, bucket, "c")
    # The upload is still there and completes with the right values (its composite value may
    # be given with or without its -N).
    want = composite(alg, parts)
    r = s3.complete_multipart_upload(**go, MultipartUpload=listed, ChecksumCRC32C=want.rsplit("-", 1)[0])
    assert r[arg(alg)] == want


def test_copy_object_and_upload_part_copy_compute_the_new_checksum(s3, bucket):
    parts = parts_of(80)[1:]
    whole = b"".join(parts)
    uid, _, listed = upload(s3, bucket, "src", parts, "SHA256")
    s3.complete_multipart_upload(Bucket=bucket, Key="src", UploadId=uid, MultipartUpload=listed)
    # A copy is one part: a full-object checksum of the algorithm asked for...
    r = s3.copy_object(Bucket=bucket, Key="as-crc32c", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC32C")
    assert r["CopyObjectResult"]["ChecksumCRC32C"] == checksum("CRC32C", whole)
    h = s3.head_object(Bucket=bucket, Key="as-crc32c", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32C"] == checksum("CRC32C", whole) and h["ChecksumType"] == "FULL_OBJECT" and "ChecksumSHA256" not in h
    # ...or of the source's algorithm.
    r = s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ChecksumSHA256"] == checksum("SHA256", whole)
    assert s3.head_object(Bucket=bucket, Key="same", ChecksumMode="ENABLED")["ChecksumType"] == "FULL_OBJECT"
    # UploadPartCopy computes the upload's algorithm over the bytes copied.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="pc", ChecksumAlgorithm="SHA1")["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket, Key="pc", UploadId=uid, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes=0-{5 * MIB - 1}"
    )["CopyPartResult"]
    assert first["ChecksumSHA1"] == checksum("SHA1", whole[: 5 * MIB])
    last = s3.upload_part(Bucket=bucket, Key="pc", UploadId=uid, PartNumber=2, Body=b"tail", ChecksumAlgorithm="SHA1")
    r = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="pc",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["ETag"], "ChecksumSHA1": first["ChecksumSHA1"]},
                {"PartNumber": 2, "ETag": last["ETag"], "ChecksumSHA1": last["ChecksumSHA1"]},
            ]
        },
    )
    assert r["ChecksumSHA1"] == composite("SHA1", [whole[: 5 * MIB], b"tail"])


def test_list_object_versions_names_the_algorithm(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="v", Body=b"one", ChecksumSHA1=checksum("SHA1", b"one"))
    s3.put_object(Bucket=bucket, Key="v", Body=b"two", ChecksumCRC32C=checksum("CRC32C", b"two"))
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["ChecksumAlgorithm"][0] for v in versions) == ["CRC32C", "SHA1"]
    assert all(v["ChecksumType"] == "FULL_OBJECT" for v in versions)
    old = next(v for v in versions if not v["IsLatest"])
    a = s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=old["VersionId"], ObjectAttributes=["Checksum"])
    assert a["Checksum"]["ChecksumSHA1"] == checksum("SHA1", b"one") and a["VersionId"] == old["VersionId"]


def test_get_object_attributes_refusals(s3, bucket):
    assert refused(s3.get_object_attributes, Bucket=bucket, Key="nothing", ObjectAttributes=["ETag"]) == (404, "NoSuchKey")
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    assert refused(s3.get_object_attributes, Bucket=bucket, Key="a", ObjectAttributes=["Colour"]) == (400, "InvalidArgument")


def test_get_object_attributes_of_ssec_object_needs_the_key(tls_server):
    s3 = tls_server.client()
    s3.create_bucket(Bucket="secure")
    key, other = os.urandom(32), os.urandom(32)
    body = pattern(10_000, 90)
    s3.put_object(Bucket="secure", Key="c", Body=body, ChecksumSHA256=checksum("SHA256", body), **ssec_args(key))
    attrs = ["Checksum", "ObjectSize"]

    def ssec_b64(k):
        # boto3 encodes the key itself only for the operations that carry a body.
        return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b64(k), "SSECustomerKeyMD5": b64(hashlib.md5(k).digest())}

    # The checksum describes the plaintext: without the key, or with another, nothing is told.
    assert refused(s3.get_object_attributes, Bucket="secure", Key="c", ObjectAttributes=attrs) == (400, "InvalidRequest")
    assert refused(s3.get_object_attributes, Bucket="secure", Key="c", ObjectAttributes=attrs, **ssec_b64(other)) == (403, "AccessDenied")
    a = s3.get_object_attributes(Bucket="secure", Key="c", ObjectAttributes=attrs, **ssec_b64(key))
    assert a["Checksum"]["ChecksumSHA256"] == checksum("SHA256", body) and a["ObjectSize"] == len(body)


def test_aws_cli_get_object_attributes_and_head_checksum_mode(server, s3, bucket):
    parts = parts_of(100)[1:]
    uid, _, listed = upload(s3, bucket, "cli", parts, "CRC32", ChecksumType="FULL_OBJECT")
    s3.complete_multipart_upload(Bucket=bucket, Key="cli", UploadId=uid, MultipartUpload=listed)
    r = server.aws("s3api", "get-object-attributes", "--bucket", bucket, "--key", "cli", "--object-attributes", "Checksum", "ObjectParts", "ObjectSize")
    out = json.loads(r.stdout)
    assert out["Checksum"] == {"ChecksumCRC32": checksum("CRC32", b"".join(parts)), "ChecksumType": "FULL_OBJECT"}
    assert out["ObjectParts"]["TotalPartsCount"] == 2 and out["ObjectSize"] == sum(map(len, parts))
    head = json.loads(server.aws("s3api", "head-object", "--bucket", bucket, "--key", "cli", "--checksum-mode", "ENABLED").stdout)
    assert head["ChecksumCRC32"] == checksum("CRC32", b"".join(parts)) and head["ChecksumType"] == "FULL_OBJECT"
    ls = json.loads(server.aws("s3api", "list-objects-v2", "--bucket", bucket).stdout)
    assert ls["Contents"][0]["ChecksumAlgorithm"] == ["CRC32"]


def test_objects_of_the_earlier_format_answer_with_what_they_stored(tmp_path):
    """Objects written before checksum types and part checksums were kept (tests/fixtures/
    format-v1): single-part ones have the CRC32 boto3 sent, full-object; multipart ones none."""
    server, manifest = fixture_server(tmp_path)
    s3 = server.client()
    bucket, ssec_key = manifest["bucket"], bytes.fromhex(manifest["ssec_key_hex"])
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for o in manifest["objects"]:
        want = b"".join(pattern(size, seed) for size, seed in o["parts"])
        args = ssec_args(ssec_key) if o["sse"] == "SSE-C" else {}
        h = s3.head_object(Bucket=bucket, Key=o["key"], ChecksumMode="ENABLED", **args)
        g = s3.get_object(Bucket=bucket, Key=o["key"], ChecksumMode="ENABLED", **args)
        assert g["Body"].read() == want, o["key"]
        if o["key"].startswith("single/"):
            assert h["ChecksumCRC32"] == g["ChecksumCRC32"] == checksum("CRC32", want), o["key"]
            assert h["ChecksumType"] == "FULL_OBJECT" and listed[o["key"]]["ChecksumAlgorithm"] == ["CRC32"]
        else:
            assert not [k for k in h if k.startswith("Checksum")], (o["key"], h)
            assert "ChecksumAlgorithm" not in listed[o["key"]]
            if o["sse"] != "SSE-C":
                a = s3.get_object_attributes(Bucket=bucket, Key=o["key"], ObjectAttributes=["Checksum", "ObjectParts"])
                assert "Checksum" not in a and a["ObjectParts"]["TotalPartsCount"] == len(o["parts"])
