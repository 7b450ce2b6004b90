"""Policy conditions users write (issue #25, item 3), against the real server with boto3, the AWS
CLI and mc: s3:ExistingObjectTag/<key>, s3:RequestObjectTag/<key> and s3:RequestObjectTagKeys
(with ForAnyValue:/ForAllValues:) in bucket policies and users' policies; s3:x-amz-copy-source and
s3:x-amz-metadata-directive on CopyObject and UploadPartCopy; the rights a copy needs on its
source; a bucket policy naming another bucket's resources."""
import json

import botocore.exceptions
import pytest

from conftest import Server
from test_iam import as_user, mc


def put_policy(s3, bucket, *statements):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def statement(effect, actions, resources, condition=None, principal="*"):
    st = {"Effect": effect, "Action": actions, "Resource": resources}
    if principal is not None:
        st["Principal"] = principal
    if condition:
        st["Condition"] = condition
    return st


def refused(fn, **kw):
    """`fn(**kw)` fails with 403 AccessDenied."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 403, r
    assert r["Error"]["Code"] == "AccessDenied", r


def malformed(fn, **kw):
    """`fn(**kw)` fails with 400 MalformedPolicy; returns the message."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
    assert r["Error"]["Code"] == "MalformedPolicy", r
    return r["Error"]["Message"]


def head_refused(c, **kw):
    """A HEAD has no body: only its status tells."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.head_object(**kw)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response


def tags_of(c, bucket, key, **kw):
    return {t["Key"]: t["Value"] for t in c.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def tag_set(**tags):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def keys(c, bucket):
    return sorted(o["Key"] for o in c.list_objects_v2(Bucket=bucket).get("Contents", []))


def user_with_policy(server, tmp_path, name, *statements):
    """A user (made with mc admin, as MinIO users make them) with one policy of its own."""
    cfg = tmp_path / "mc"
    mc(server, cfg, "alias", "set", "c", server.endpoint, server.access, server.secret)
    doc = tmp_path / f"{name}.json"
    doc.write_text(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    mc(server, cfg, "admin", "policy", "create", "c", f"{name}-policy", str(doc))
    mc(server, cfg, "admin", "user", "add", "c", name, f"{name}-secret-key")
    mc(server, cfg, "admin", "policy", "attach", "c", f"{name}-policy", "--user", name)
    return as_user(server, name, f"{name}-secret-key")


def test_existing_object_tag_in_a_bucket_policy(server, s3):
    """A deny on the object's current tags stops reads of those objects, for the root user too,
    and follows the tags as they change; a tag key is case-sensitive."""
    b = "tagged"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="pub", Body=b"public data", Tagging="class=public")
    s3.put_object(Bucket=b, Key="sec", Body=b"secret data", Tagging="class=secret")
    s3.put_object(Bucket=b, Key="other-case", Body=b"x", Tagging="Class=secret")
    s3.put_object(Bucket=b, Key="none", Body=b"untagged")
    put_policy(s3, b, statement("Deny", ["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObjectTagging"],
                                [f"arn:aws:s3:::{b}/*"],
                                {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}))
    assert s3.get_object(Bucket=b, Key="pub")["Body"].read() == b"public data"
    assert s3.get_object(Bucket=b, Key="none")["Body"].read() == b"untagged"
    assert s3.get_object(Bucket=b, Key="other-case")["Body"].read() == b"x"
    refused(s3.get_object, Bucket=b, Key="sec")
    head_refused(s3, Bucket=b, Key="sec")
    refused(s3.get_object_tagging, Bucket=b, Key="sec")
    refused(s3.delete_object_tagging, Bucket=b, Key="sec")
    assert s3.head_object(Bucket=b, Key="pub")["ContentLength"] == len(b"public data")
    assert tags_of(s3, b, "pub") == {"class": "public"}
    # PutObjectTagging is not denied: retagged, the object reads again, and the other way round.
    s3.put_object_tagging(Bucket=b, Key="sec", Tagging=tag_set(**{"class": "public"}))
    assert s3.get_object(Bucket=b, Key="sec")["Body"].read() == b"secret data"
    s3.put_object_tagging(Bucket=b, Key="pub", Tagging=tag_set(**{"class": "secret"}))
    refused(s3.get_object, Bucket=b, Key="pub")
    # A new version without the tag replaces the one the deny was about.
    s3.put_object(Bucket=b, Key="pub", Body=b"rewritten")
    assert s3.get_object(Bucket=b, Key="pub")["Body"].read() == b"rewritten"
    # A missing key is still a 404 (nothing to read tags of).
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=b, Key="missing")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_existing_object_tag_on_versions(server, s3):
    """s3:GetObjectVersion is decided on the tags of the version named, not the latest's."""
    b = "tagged-versions"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=b, Key="k", Body=b"old", Tagging="class=secret")["VersionId"]
    new = s3.put_object(Bucket=b, Key="k", Body=b"new", Tagging="class=public")["VersionId"]
    put_policy(s3, b, statement("Deny", ["s3:GetObjectVersion", "s3:GetObject"], [f"arn:aws:s3:::{b}/*"],
                                {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}))
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"new"
    assert s3.get_object(Bucket=b, Key="k", VersionId=new)["Body"].read() == b"new"
    refused(s3.get_object, Bucket=b, Key="k", VersionId=old)


def test_existing_object_tag_in_a_user_policy(server, s3, tmp_path):
    """A user whose own policy allows reading and retagging only objects tagged class=public;
    the AWS CLI sees the same decisions as boto3."""
    b = "team"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="pub", Body=b"public data", Tagging="class=public")
    s3.put_object(Bucket=b, Key="sec", Body=b"secret data", Tagging="class=secret")
    s3.put_object(Bucket=b, Key="none", Body=b"untagged")
    u = user_with_policy(server, tmp_path, "tagreader",
                         statement("Allow", ["s3:GetObject", "s3:GetObjectTagging", "s3:PutObjectTagging"],
                                   [f"arn:aws:s3:::{b}/*"],
                                   {"StringEquals": {"s3:ExistingObjectTag/class": "public"}}, principal=None))
    c = u.client()
    assert c.get_object(Bucket=b, Key="pub")["Body"].read() == b"public data"
    refused(c.get_object, Bucket=b, Key="sec")
    refused(c.get_object, Bucket=b, Key="none")
    assert tags_of(c, b, "pub") == {"class": "public"}
    refused(c.get_object_tagging, Bucket=b, Key="sec")
    # The AWS CLI: the same refusal, and a real download.
    out = u.aws("s3api", "get-object", "--bucket", b, "--key", "sec", str(tmp_path / "sec.out"), check=False)
    assert out.returncode != 0 and "AccessDenied" in out.stderr, out.stderr
    assert not (tmp_path / "sec.out").exists()
    u.aws("s3api", "get-object", "--bucket", b, "--key", "pub", str(tmp_path / "pub.out"))
    assert (tmp_path / "pub.out").read_bytes() == b"public data"
    # Retagging is decided on the tags the object has now: once secret, the user cannot undo it.
    c.put_object_tagging(Bucket=b, Key="pub", Tagging=tag_set(**{"class": "secret"}))
    assert tags_of(s3, b, "pub") == {"class": "secret"}
    refused(c.put_object_tagging, Bucket=b, Key="pub", Tagging=tag_set(**{"class": "public"}))
    assert tags_of(s3, b, "pub") == {"class": "secret"}
    refused(c.get_object, Bucket=b, Key="pub")
    refused(c.put_object_tagging, Bucket=b, Key="sec", Tagging=tag_set(**{"class": "public"}))
    assert tags_of(s3, b, "sec") == {"class": "secret"}


def test_request_object_tag_keys_in_a_user_policy(server, s3, tmp_path):
    """ForAllValues:StringEquals on s3:RequestObjectTagKeys: every tag a user writes, in a PUT's
    header, a PutObjectTagging body, a multipart upload or a copy, must be one of the allowed keys."""
    b = "projects"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="src", Body=b"source", Tagging="Owner=root")
    allowed = {"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["Owner", "Project"]}}
    u = user_with_policy(server, tmp_path, "tagwriter",
                         statement("Allow", ["s3:PutObject", "s3:PutObjectTagging"], [f"arn:aws:s3:::{b}/*"],
                                   allowed, principal=None),
                         statement("Allow", ["s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket"],
                                   [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"], principal=None))
    c = u.client()
    c.put_object(Bucket=b, Key="ok", Body=b"fine", Tagging="Owner=me&Project=p1")
    assert tags_of(s3, b, "ok") == {"Owner": "me", "Project": "p1"}
    c.put_object(Bucket=b, Key="untagged", Body=b"no tags")
    refused(c.put_object, Bucket=b, Key="bad", Body=b"x", Tagging="Owner=me&Secret=1")
    refused(c.put_object_tagging, Bucket=b, Key="ok", Tagging=tag_set(Owner="me", Secret="1"))
    assert tags_of(s3, b, "ok") == {"Owner": "me", "Project": "p1"}
    c.put_object_tagging(Bucket=b, Key="ok", Tagging=tag_set(Project="p2"))
    assert tags_of(s3, b, "ok") == {"Project": "p2"}
    refused(c.create_multipart_upload, Bucket=b, Key="mp", Tagging="Secret=1")
    up = c.create_multipart_upload(Bucket=b, Key="mp", Tagging="Owner=me")["UploadId"]
    s3.abort_multipart_upload(Bucket=b, Key="mp", UploadId=up)
    refused(c.copy_object, Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "src"},
            TaggingDirective="REPLACE", Tagging="Secret=1")
    c.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "src"},
                  TaggingDirective="REPLACE", Tagging="Project=p3")
    assert tags_of(s3, b, "copy") == {"Project": "p3"}
    assert s3.get_object(Bucket=b, Key="copy")["Body"].read() == b"source"
    assert keys(s3, b) == ["copy", "ok", "src", "untagged"]


def test_request_object_tag_in_a_bucket_policy(server, s3):
    """s3:RequestObjectTag/<key> and ForAnyValue: on s3:RequestObjectTagKeys in a bucket policy
    stop the root user's writes as well."""
    b = "classified"
    s3.create_bucket(Bucket=b)
    put_policy(s3, b,
               statement("Deny", ["s3:PutObject"], [f"arn:aws:s3:::{b}/*"],
                         {"StringEquals": {"s3:RequestObjectTag/classification": "secret"}}),
               statement("Deny", ["s3:PutObjectTagging"], [f"arn:aws:s3:::{b}/*"],
                         {"ForAnyValue:StringLike": {"s3:RequestObjectTagKeys": ["tmp-*", "forbidden"]}}))
    refused(s3.put_object, Bucket=b, Key="s", Body=b"x", Tagging="classification=secret")
    s3.put_object(Bucket=b, Key="p", Body=b"public", Tagging="classification=public")
    assert tags_of(s3, b, "p") == {"classification": "public"}
    refused(s3.put_object_tagging, Bucket=b, Key="p", Tagging=tag_set(a="1", forbidden="2"))
    refused(s3.put_object_tagging, Bucket=b, Key="p", Tagging=tag_set(**{"tmp-x": "1"}))
    refused(s3.put_object, Bucket=b, Key="t", Body=b"x", Tagging="tmp-1=x")
    # A malformed header is no way around the deny: the upload refuses it before writing.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=b, Key="m", Body=b"x", Tagging="classification=secret&classification=x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.value.response
    assert e.value.response["Error"]["Code"] == "InvalidTag", e.value.response
    assert tags_of(s3, b, "p") == {"classification": "public"}
    s3.put_object_tagging(Bucket=b, Key="p", Tagging=tag_set(a="1", b="2"))
    assert tags_of(s3, b, "p") == {"a": "1", "b": "2"}
    assert keys(s3, b) == ["p"]


def test_copy_source_and_metadata_directive_conditions(server, s3, tmp_path):
    """A deny on s3:x-amz-copy-source stops CopyObject and UploadPartCopy however the header spells
    the source; a deny on s3:x-amz-metadata-directive stops copies that replace metadata."""
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="dst")
    s3.put_object(Bucket="src", Key="secret/a", Body=b"secret")
    s3.put_object(Bucket="src", Key="public/a", Body=b"public")
    put_policy(s3, "dst",
               statement("Deny", ["s3:PutObject"], ["arn:aws:s3:::dst/*"],
                         {"StringLike": {"s3:x-amz-copy-source": "src/secret/*"}}),
               statement("Deny", ["s3:PutObject"], ["arn:aws:s3:::dst/*"],
                         {"StringEquals": {"s3:x-amz-metadata-directive": "REPLACE"}}))
    refused(s3.copy_object, Bucket="dst", Key="c1", CopySource={"Bucket": "src", "Key": "secret/a"})
    s3.copy_object(Bucket="dst", Key="c2", CopySource={"Bucket": "src", "Key": "public/a"})
    assert s3.get_object(Bucket="dst", Key="c2")["Body"].read() == b"public"

    # Spelled with a leading slash, or with a percent-encoded character: the same source.
    for spelling in ("/src/secret/a", "src/secre%74/a", "src/secret%2Fa"):
        c = server.client()

        def respell(request, spelling=spelling, **_):
            request.headers.replace_header("x-amz-copy-source", spelling)

        c.meta.events.register("before-sign.s3.CopyObject", respell)
        refused(c.copy_object, Bucket="dst", Key="c3", CopySource={"Bucket": "src", "Key": "public/a"})
    c = server.client()
    c.meta.events.register("before-sign.s3.CopyObject",
                           lambda request, **_: request.headers.replace_header("x-amz-copy-source", "/src/public/a"))
    c.copy_object(Bucket="dst", Key="c4", CopySource={"Bucket": "src", "Key": "public/a"})
    assert s3.get_object(Bucket="dst", Key="c4")["Body"].read() == b"public"

    up = s3.create_multipart_upload(Bucket="dst", Key="mp")["UploadId"]
    refused(s3.upload_part_copy, Bucket="dst", Key="mp", UploadId=up, PartNumber=1,
            CopySource={"Bucket": "src", "Key": "secret/a"})
    part = s3.upload_part_copy(Bucket="dst", Key="mp", UploadId=up, PartNumber=1,
                               CopySource={"Bucket": "src", "Key": "public/a"})["CopyPartResult"]
    s3.complete_multipart_upload(Bucket="dst", Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object(Bucket="dst", Key="mp")["Body"].read() == b"public"

    refused(s3.copy_object, Bucket="dst", Key="c5", CopySource={"Bucket": "src", "Key": "public/a"},
            MetadataDirective="REPLACE", Metadata={"a": "b"})
    s3.copy_object(Bucket="dst", Key="c5", CopySource={"Bucket": "src", "Key": "public/a"}, MetadataDirective="COPY")

    # The AWS CLI's copy-object meets the same deny.
    out = server.aws("s3api", "copy-object", "--bucket", "dst", "--key", "cli", "--copy-source", "src/secret/a",
                     check=False)
    assert out.returncode != 0 and "AccessDenied" in out.stderr, out.stderr
    assert keys(s3, "dst") == ["c2", "c4", "c5", "mp"]


def test_a_copy_needs_read_rights_on_its_source(server, s3, tmp_path):
    """CopyObject needs s3:GetObject on the source (s3:GetObjectVersion for a named version) and,
    when it takes the source's tags (the default), s3:GetObjectTagging there; a tag condition on
    the source's read holds for copies and part copies."""
    s3.create_bucket(Bucket="src")
    s3.put_bucket_versioning(Bucket="src", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="dst")
    plain_v = s3.put_object(Bucket="src", Key="plain", Body=b"plain")["VersionId"]
    s3.put_object(Bucket="src", Key="tagged", Body=b"tagged", Tagging="class=public")
    s3.put_object(Bucket="src", Key="secret", Body=b"secret", Tagging="class=secret")
    s3.put_object(Bucket="src", Key="unreadable", Body=b"no")
    u = user_with_policy(server, tmp_path, "copier",
                         statement("Allow", ["s3:PutObject", "s3:PutObjectTagging"], ["arn:aws:s3:::dst/*"],
                                   principal=None),
                         statement("Allow", ["s3:GetObject"],
                                   ["arn:aws:s3:::src/plain", "arn:aws:s3:::src/tagged"], principal=None))
    c = u.client()
    c.copy_object(Bucket="dst", Key="plain", CopySource={"Bucket": "src", "Key": "plain"})
    assert s3.get_object(Bucket="dst", Key="plain")["Body"].read() == b"plain"
    refused(c.copy_object, Bucket="dst", Key="x", CopySource={"Bucket": "src", "Key": "unreadable"})
    refused(c.copy_object, Bucket="dst", Key="x", CopySource={"Bucket": "src", "Key": "plain", "VersionId": plain_v})
    # Tags copied (the default directive) need s3:GetObjectTagging on the source...
    refused(c.copy_object, Bucket="dst", Key="x", CopySource={"Bucket": "src", "Key": "tagged"})
    refused(c.copy_object, Bucket="dst", Key="x", CopySource={"Bucket": "src", "Key": "tagged"},
            TaggingDirective="COPY")
    # ...not when the copy replaces them.
    c.copy_object(Bucket="dst", Key="replaced", CopySource={"Bucket": "src", "Key": "tagged"},
                  TaggingDirective="REPLACE", Tagging="mine=1")
    assert tags_of(s3, "dst", "replaced") == {"mine": "1"}
    assert keys(s3, "dst") == ["plain", "replaced"]

    # With the tag and version rights, and a read allowed only on class=public sources.
    u2 = user_with_policy(server, tmp_path, "copier2",
                          statement("Allow", ["s3:PutObject", "s3:PutObjectTagging"], ["arn:aws:s3:::dst/*"],
                                    principal=None),
                          statement("Allow", ["s3:GetObjectTagging", "s3:GetObjectVersion"], ["arn:aws:s3:::src/*"],
                                    principal=None),
                          statement("Allow", ["s3:GetObject"], ["arn:aws:s3:::src/*"],
                                    {"StringEquals": {"s3:ExistingObjectTag/class": "public"}}, principal=None))
    c2 = u2.client()
    c2.copy_object(Bucket="dst", Key="tagged", CopySource={"Bucket": "src", "Key": "tagged"})
    assert tags_of(s3, "dst", "tagged") == {"class": "public"}
    assert s3.get_object(Bucket="dst", Key="tagged")["Body"].read() == b"tagged"
    c2.copy_object(Bucket="dst", Key="v", CopySource={"Bucket": "src", "Key": "plain", "VersionId": plain_v})
    assert s3.get_object(Bucket="dst", Key="v")["Body"].read() == b"plain"
    refused(c2.copy_object, Bucket="dst", Key="y", CopySource={"Bucket": "src", "Key": "secret"})
    refused(c2.copy_object, Bucket="dst", Key="y", CopySource={"Bucket": "src", "Key": "plain"})
    up = c2.create_multipart_upload(Bucket="dst", Key="mp")["UploadId"]
    refused(c2.upload_part_copy, Bucket="dst", Key="mp", UploadId=up, PartNumber=1,
            CopySource={"Bucket": "src", "Key": "secret"})
    part = c2.upload_part_copy(Bucket="dst", Key="mp", UploadId=up, PartNumber=1,
                               CopySource={"Bucket": "src", "Key": "tagged"})["CopyPartResult"]
    c2.complete_multipart_upload(Bucket="dst", Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object(Bucket="dst", Key="mp")["Body"].read() == b"tagged"
    assert keys(s3, "dst") == ["mp", "plain", "replaced", "tagged", "v"]


def test_bad_policies_are_malformed(server, s3):
    """A bucket policy naming another bucket's resources is refused as AWS refuses it (400
    MalformedPolicy, "Policy has invalid resource"), and so is a malformed tag condition key; a
    refused policy changes nothing."""
    s3.create_bucket(Bucket="mine")
    s3.create_bucket(Bucket="mine2")
    for resources in (["arn:aws:s3:::other/*"], ["arn:aws:s3:::mine2/*"], ["arn:aws:s3:::mine*"],
                      ["arn:aws:s3:::mine/*", "arn:aws:s3:::other/*"], ["*"]):
        doc = json.dumps({"Version": "2012-10-17", "Statement": [statement("Allow", ["s3:GetObject"], resources)]})
        msg = malformed(s3.put_bucket_policy, Bucket="mine", Policy=doc)
        assert "Policy has invalid resource" in msg, (resources, msg)
    nr = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::other/*"}
    malformed(s3.put_bucket_policy, Bucket="mine", Policy=json.dumps({"Statement": [nr]}))
    for key in ("s3:ExistingObjectTag/", "s3:RequestObjectTag", "s3:ExistingObjectTags/x"):
        doc = json.dumps({"Statement": [statement("Deny", ["s3:GetObject"], ["arn:aws:s3:::mine/*"],
                                                  {"StringEquals": {key: "x"}})]})
        malformed(s3.put_bucket_policy, Bucket="mine", Policy=doc)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_policy(Bucket="mine")
    assert e.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    # The bucket itself and its objects are fine.
    put_policy(s3, "mine", statement("Deny", ["s3:GetObject"], ["arn:aws:s3:::mine", "arn:aws:s3:::mine/x/*"],
                                     {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}))
    assert "ExistingObjectTag" in s3.get_bucket_policy(Bucket="mine")["Policy"]


def test_tag_conditions_survive_a_second_process(tmp_path):
    """Decisions on tags read what is on disk: a retag through one process is what the other
    decides on at its next request."""
    a = Server(tmp_path / "data").start()
    b = Server(tmp_path / "data").start()
    ca, cb = a.client(), b.client()
    ca.create_bucket(Bucket="shared")
    ca.put_object(Bucket="shared", Key="k", Body=b"data", Tagging="class=public")
    put_policy(ca, "shared", statement("Deny", ["s3:GetObject"], ["arn:aws:s3:::shared/*"],
                                       {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}))
    assert cb.get_object(Bucket="shared", Key="k")["Body"].read() == b"data"
    ca.put_object_tagging(Bucket="shared", Key="k", Tagging=tag_set(**{"class": "secret"}))
    refused(cb.get_object, Bucket="shared", Key="k")
    a.stop()
    b.stop()
