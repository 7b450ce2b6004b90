"""CORS against the real binary: Put/Get/DeleteBucketCors with boto3 (and AWS's refusals), preflight
OPTIONS requests with `requests` checked header by header, the headers of actual cross-origin
responses (signed, presigned, an error), none without rules, and MINIO_API_CORS_ALLOW_ORIGIN."""
import json

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import Server

ORIGIN = "https://app.example.com"
RULES = [
    {
        "ID": "apps",
        "AllowedOrigins": ["https://*.example.com"],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["Content-Type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-version-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]


def refused(fn):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn()
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]


def with_origin(client, origin):
    """Every request of `client` carries `Origin` (added after signing, as a browser adds it)."""

    def add(request, **_):
        request.headers["Origin"] = origin

    client.meta.events.register("before-send.s3.*", add)
    return client


def cors_headers(headers):
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-") or k.lower() == "vary"}


def test_put_get_delete_configuration(s3, bucket):
    assert refused(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == RULES
    s3.delete_bucket_cors(Bucket=bucket)
    assert refused(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")
    # Deleting what is not there succeeds, as AWS.
    s3.delete_bucket_cors(Bucket=bucket)
    assert refused(lambda: s3.get_bucket_cors(Bucket="no-such-bucket-cors")) == (404, "NoSuchBucket")


@pytest.mark.parametrize(
    "rules,expected",
    [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], (400, "InvalidRequest")),
        ([{"AllowedOrigins": ["https://*.*.example.com"], "AllowedMethods": ["GET"]}], (400, "InvalidRequest")),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]}], (400, "InvalidRequest")),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, (400, "MalformedXML")),
    ],
)
def test_invalid_configurations_are_refused_and_change_nothing(s3, bucket, rules, expected):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert refused(lambda: s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})) == expected
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES


def test_hundred_rules_are_accepted(s3, bucket):
    rules = [{"AllowedOrigins": [f"https://{i}.example.com"], "AllowedMethods": ["GET"]} for i in range(100)]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 100


def preflight(server, bucket, origin, method, headers=None, key="k"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(f"{server.endpoint}/{bucket}/{key}", headers=h, timeout=30)


def test_preflight_from_the_rules(server, s3, bucket):
    # Without a configuration: AWS's 403 for a bucket without CORS.
    r = preflight(server, bucket, ORIGIN, "GET")
    assert r.status_code == 403, r.text
    assert "<Code>AccessForbidden</Code>" in r.text
    assert "CORSResponse: CORS is not enabled for this bucket." in r.text
    assert cors_headers(r.headers) == {}

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    r = preflight(server, bucket, ORIGIN, "PUT", "content-type, X-Amz-Date")
    assert r.status_code == 200, r.text
    assert cors_headers(r.headers) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type, X-Amz-Date",
        "access-control-expose-headers": "ETag, x-amz-version-id",
        "access-control-max-age": "600",
        "access-control-allow-credentials": "true",
        "vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    }

    # Another origin falls through to the wildcard rule: `*`, no credentials, no max age.
    r = preflight(server, bucket, "https://elsewhere.net", "HEAD")
    assert r.status_code == 200, r.text
    assert cors_headers(r.headers) == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, HEAD",
        "vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    }

    for origin, method, headers in [
        ("https://elsewhere.net", "PUT", None),  # method only for *.example.com
        ("https://elsewhere.net", "GET", "content-type"),  # the wildcard rule allows no headers
        (ORIGIN, "PUT", "authorization"),  # header not allowed
        (ORIGIN, "DELETE", None),  # method allowed by no rule
        ("http://app.example.com", "PUT", None),  # scheme differs
    ]:
        r = preflight(server, bucket, origin, method, headers)
        assert r.status_code == 403, (origin, method, headers, r.text)
        assert "<Code>AccessForbidden</Code>" in r.text
        assert "CORSResponse: This CORS request is not allowed." in r.text
        assert cors_headers(r.headers) == {}, (origin, method, headers)

    # A preflight needs its Origin.
    r = requests.options(f"{server.endpoint}/{bucket}/k", headers={"Access-Control-Request-Method": "GET"}, timeout=30)
    assert r.status_code == 400


def test_actual_requests_carry_the_headers(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)

    # No rules: no CORS header on any response.
    plain = with_origin(server.client(), ORIGIN).get_object(Bucket=bucket, Key="k")
    assert cors_headers(plain["ResponseMetadata"]["HTTPHeaders"]) == {}
    r = requests.get(url, headers={"Origin": ORIGIN}, timeout=30)
    assert r.status_code == 200 and cors_headers(r.headers) == {}

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    expected = {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, PUT",
        "access-control-expose-headers": "ETag, x-amz-version-id",
        "access-control-max-age": "600",
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }
    c = with_origin(server.client(), ORIGIN)
    got = c.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"hello"
    assert cors_headers(got["ResponseMetadata"]["HTTPHeaders"]) == expected
    put = c.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert cors_headers(put["ResponseMetadata"]["HTTPHeaders"]) == expected

    r = requests.get(url, headers={"Origin": ORIGIN}, timeout=30)
    assert r.status_code == 200 and r.content == b"hello"
    assert cors_headers(r.headers) == expected

    # An error response carries them too.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket=bucket, Key="missing")
    meta = e.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 404
    assert cors_headers(meta["HTTPHeaders"]) == expected

    # The wildcard rule: `*` and no credentials.
    r = requests.get(url, headers={"Origin": "https://elsewhere.net"}, timeout=30)
    assert cors_headers(r.headers) == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, HEAD",
        "vary": "Origin",
    }
    # A method no rule allows for the origin: the request is served, without CORS headers.
    d = with_origin(server.client(), "https://elsewhere.net")
    d.delete_object(Bucket=bucket, Key="k2")
    resp = d.put_object(Bucket=bucket, Key="k3", Body=b"x")
    assert cors_headers(resp["ResponseMetadata"]["HTTPHeaders"]) == {}
    # Without an Origin: none.
    assert cors_headers(s3.get_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]) == {}


def test_global_origins_apply_to_buckets_without_rules(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_API_CORS_ALLOW_ORIGIN": "https://a.example, https://b.example"}).start()
    try:
        s3 = s.client()
        s3.create_bucket(Bucket="global")
        s3.put_object(Bucket="global", Key="k", Body=b"x")
        got = with_origin(s.client(), "https://b.example").get_object(Bucket="global", Key="k")
        h = cors_headers(got["ResponseMetadata"]["HTTPHeaders"])
        assert h["access-control-allow-origin"] == "https://b.example"
        assert h["access-control-allow-methods"] == "GET, PUT, POST, DELETE, HEAD"
        assert h["access-control-allow-credentials"] == "true"
        got = with_origin(s.client(), "https://c.example").get_object(Bucket="global", Key="k")
        assert cors_headers(got["ResponseMetadata"]["HTTPHeaders"]) == {}
        r = preflight(s, "global", "https://a.example", "PUT", "x-amz-date")
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Headers"] == "x-amz-date"
        assert preflight(s, "global", "https://c.example", "PUT").status_code == 403

        # Bucket rules win over the global list.
        s3.put_bucket_cors(
            Bucket="global",
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["https://c.example"], "AllowedMethods": ["GET"]}]},
        )
        assert preflight(s, "global", "https://a.example", "GET").status_code == 403
        assert preflight(s, "global", "https://c.example", "GET").status_code == 200
    finally:
        s.stop()


def test_damaged_configuration_allows_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    (server.data_dir / bucket / ".cors.json").write_text("{not json")
    r = preflight(server, bucket, ORIGIN, "GET")
    assert r.status_code == 403 and cors_headers(r.headers) == {}
    got = with_origin(server.client(), ORIGIN).get_object(Bucket=bucket, Key="k")
    assert cors_headers(got["ResponseMetadata"]["HTTPHeaders"]) == {}
    assert refused(lambda: s3.get_bucket_cors(Bucket=bucket))[0] == 500


def test_virtual_host_style_preflight(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_DOMAIN": "s3.coffer.test"}).start()
    try:
        s.client().create_bucket(Bucket="vhost")
        s.client().put_bucket_cors(Bucket="vhost", CORSConfiguration={"CORSRules": RULES})
        h = {"Host": "vhost.s3.coffer.test", "Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
        r = requests.options(f"{s.endpoint}/some/key", headers=h, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        h["Host"] = "other.s3.coffer.test"
        r = requests.options(f"{s.endpoint}/vhost/key", headers=h, timeout=30)
        assert r.status_code == 403, r.text
    finally:
        s.stop()


def test_iam_actions_are_get_and_put_bucket_cors(server, s3, bucket):
    """A bucket policy granting anonymous `s3:GetBucketCORS` lets an unsigned GetBucketCors through
    and nothing else: Put and Delete need `s3:PutBucketCORS`."""
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetBucketCORS"], "Resource": [f"arn:aws:s3:::{bucket}"]}
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    anon = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        config=botocore.config.Config(
            signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1}
        ),
    )
    assert anon.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    assert refused(lambda: anon.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})) == (403, "AccessDenied")
    assert refused(lambda: anon.delete_bucket_cors(Bucket=bucket)) == (403, "AccessDenied")
    policy["Statement"][0]["Action"] = ["s3:PutBucketCORS"]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert refused(lambda: anon.get_bucket_cors(Bucket=bucket)) == (403, "AccessDenied")
    anon.delete_bucket_cors(Bucket=bucket)
    assert refused(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")
