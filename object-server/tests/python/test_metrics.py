"""MinIO's Prometheus endpoints, read the way MinIO's public Grafana dashboards read them.

Traffic goes through boto3, the token comes from the real `mc admin prometheus generate`, and
every exposition is parsed with the Prometheus client library's own text parser. Counts are
compared as differences between a scrape before and one after the traffic, so requests made by
mc itself do not matter."""
import json
import pathlib
import re
import subprocess
import time

import botocore.exceptions
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server, peer

# Every metric MinIO's public dashboards query (docs/metrics/prometheus/grafana/: the cluster
# dashboard minio-dashboard.json, bucket/minio-bucket.json and node/minio-node.json), by the
# endpoint that serves it in MinIO, for the ones Coffer provides.
PROVIDED = {
    "cluster": [
        "minio_node_process_starttime_seconds", "minio_s3_traffic_received_bytes",
        "minio_cluster_capacity_usable_total_bytes", "minio_cluster_capacity_usable_free_bytes",
        "minio_cluster_usage_total_bytes", "minio_cluster_objects_size_distribution",
        "minio_node_file_descriptor_open_total", "minio_s3_traffic_sent_bytes",
        "minio_cluster_health_status", "minio_cluster_drive_online_total",
        "minio_cluster_drive_offline_total", "minio_cluster_bucket_total",
        "minio_cluster_nodes_online_total", "minio_cluster_usage_object_total",
        "minio_usage_last_activity_nano_seconds", "minio_s3_requests_total",
        "minio_s3_requests_4xx_errors_total", "minio_s3_requests_5xx_errors_total",
        "minio_node_process_resident_memory_bytes", "minio_node_io_rchar_bytes",
        "minio_node_io_wchar_bytes", "minio_node_process_cpu_total_seconds",
        "minio_node_syscall_read_total", "minio_node_syscall_write_total",
        "minio_cluster_kms_uptime", "minio_cluster_kms_request_error", "minio_cluster_kms_online",
        "minio_cluster_kms_request_failure", "minio_cluster_kms_request_success",
    ],
    "node": [
        "minio_node_drive_total", "minio_node_drive_online_total", "minio_node_drive_offline_total",
        "minio_node_drive_total_bytes", "minio_node_drive_used_bytes", "minio_node_drive_free_bytes",
        "minio_node_drive_free_inodes",
    ],
    "bucket": [
        "minio_bucket_objects_size_distribution", "minio_bucket_usage_total_bytes",
        "minio_bucket_usage_object_total", "minio_bucket_usage_version_total",
        "minio_bucket_usage_deletemarker_total", "minio_usage_last_activity_nano_seconds",
    ],
}

# What those dashboards query and Coffer deliberately does not provide, and why.
NOT_PROVIDED = {
    "minio_node_go_routine_total": "a Go runtime figure; Coffer is not a Go program",
    "minio_inter_node_traffic_sent_bytes": "one node per process: no inter-node traffic",
    "minio_inter_node_traffic_received_bytes": "one node per process: no inter-node traffic",
    "minio_heal_time_last_activity_nano_seconds": "no erasure coding, so nothing heals",
    "minio_cluster_health_erasure_set_online_drives": "no erasure sets",
    "minio_cluster_health_erasure_set_read_quorum": "no erasure sets",
    "minio_cluster_health_erasure_set_write_quorum": "no erasure sets",
    "minio_cluster_health_erasure_set_healing_drives": "no erasure sets",
    "minio_cluster_health_erasure_set_status": "no erasure sets",
    "minio_node_scanner_objects_scanned": "no data scanner: usage is counted when scraped",
    "minio_node_scanner_versions_scanned": "no data scanner: usage is counted when scraped",
    "minio_node_scanner_directories_scanned": "no data scanner: usage is counted when scraped",
    "minio_node_scanner_bucket_scans_started": "no data scanner: usage is counted when scraped",
    "minio_node_scanner_bucket_scans_finished": "no data scanner: usage is counted when scraped",
    "minio_http_requests_duration_seconds_count": "MinIO's v1 histogram (only the dashboard's job picker uses it)",
    "minio_bucket_objects_version_distribution": "not counted yet",
    "minio_bucket_requests_ttfb_seconds_distribution": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_requests_4xx_errors_total": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_requests_inflight_total": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_requests_total": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_traffic_sent_bytes": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_traffic_received_bytes": "per-bucket request counters would need a shared map on the request path",
    "minio_bucket_replication_*": "no bucket replication",
    "minio_node_drive_latency_us": "drive latency is not measured",
    "minio_node_drive_errors_availability": "drive errors are not tracked",
    "minio_node_drive_errors_timeout": "drive errors are not tracked",
    "minio_node_drive_io_waiting": "not measured",
}


def mc(cfg, *args):
    r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"mc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


class Scraper:
    """Scrapes with the jobs `mc admin prometheus generate ALIAS [node|bucket]` prints."""

    def __init__(self, tmp_path, server):
        self.cfg = tmp_path / "mc"
        mc(self.cfg, "alias", "set", "c", server.endpoint, server.access, server.secret)
        self.jobs = {}
        for scope in ["cluster", "node", "bucket"]:
            extra = [] if scope == "cluster" else [scope]
            job = yaml.safe_load(mc(self.cfg, "admin", "prometheus", "generate", "c", *extra))["scrape_configs"][0]
            assert job["metrics_path"] == f"/minio/v2/metrics/{scope}", job
            url = f"{job['scheme']}://{job['static_configs'][0]['targets'][0]}{job['metrics_path']}"
            self.jobs[scope] = (url, job["bearer_token"])

    def __call__(self, scope):
        """{name: [(labels, value)]} of one scrape; sample names as exposed (with `_total`)."""
        url, token = self.jobs[scope]
        r = requests.get(url, headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
        out = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
        return out


def value(scrape, name, **labels):
    """The one sample of `name` whose labels include `labels` (0 when there is none: counters
    of an API not called yet are absent)."""
    hits = [v for l, v in scrape.get(name, []) if all(l.get(k) == w for k, w in labels.items())]
    assert len(hits) <= 1, (name, labels, hits)
    return hits[0] if hits else 0


@pytest.fixture
def metrics_server(tmp_path):
    # Usage counted on every scrape, so the counts can be compared right after the traffic.
    s = Server(tmp_path / "data", env={"COFFER_METRICS_USAGE_MAX_AGE": "0"}).start()
    yield s
    s.stop()


def test_dashboards_metrics_count_the_traffic(tmp_path, metrics_server):
    s = metrics_server
    scrape = Scraper(tmp_path, s)
    before = {scope: scrape(scope) for scope in ["cluster", "node"]}
    c = s.client()

    c.create_bucket(Bucket="dash")
    c.create_bucket(Bucket="vers")
    c.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    bodies = {"a": b"x" * 10, "b": b"y" * 2000, "c": b"z" * (2 << 20), "d": b"", "e": b"q" * 100}
    for key, body in bodies.items():
        c.put_object(Bucket="dash", Key=key, Body=body)
    c.put_object(Bucket="vers", Key="v", Body=b"1" * 7)
    c.put_object(Bucket="vers", Key="v", Body=b"2" * 9)
    c.delete_object(Bucket="vers", Key="v")  # a delete marker on top of two versions
    got = sum(len(c.get_object(Bucket="dash", Key=k)["Body"].read()) for k in ["a", "b", "c"])
    for missing in ["nope1", "nope2"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.head_object(Bucket="dash", Key=missing)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket="no-such-bucket", Key="k")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
    assert len(c.list_objects_v2(Bucket="dash")["Contents"]) == 5
    c.delete_object(Bucket="dash", Key="e")

    after = {scope: scrape(scope) for scope in ["cluster", "node", "bucket"]}
    server_label = f"127.0.0.1:{s.port}"

    for scope in ["cluster", "node"]:
        b, a = before[scope], after[scope]
        delta = lambda name, **l: value(a, name, **l) - value(b, name, **l)
        made = {"putbucket": 2, "putbucketversioning": 1, "putobject": 7, "deleteobject": 2, "getobject": 4,
                "headobject": 2, "listobjectsv2": 1}
        for api, n in made.items():
            assert delta("minio_s3_requests_total", api=api) == n, (scope, api, a.get("minio_s3_requests_total"))
            # The TTFB distribution is cumulative, ends with +Inf = the count, as MinIO's.
            dist = [(l["le"], v) for l, v in a["minio_s3_ttfb_seconds_distribution"] if l["api"] == api]
            assert [le for le, _ in dist] == ["0.050", "0.100", "0.250", "0.500", "1.000", "2.500", "5.000", "10.000", "+Inf"]
            assert [v for _, v in dist] == sorted(v for _, v in dist)
            assert dist[-1][1] == value(a, "minio_s3_requests_total", api=api)
        assert delta("minio_s3_requests_4xx_errors_total", api="headobject") == 2
        assert delta("minio_s3_requests_4xx_errors_total", api="getobject") == 1
        assert delta("minio_s3_requests_errors_total", api="getobject") == 1
        assert delta("minio_s3_requests_4xx_errors_total", api="putobject") == 0
        assert sum(v for _, v in a.get("minio_s3_requests_5xx_errors_total", [])) == 0
        sent_put = sum(len(v) for v in bodies.values()) + 16
        assert delta("minio_s3_traffic_received_bytes") >= sent_put, scope
        assert got <= delta("minio_s3_traffic_sent_bytes") < got + 64 * 1024, scope
        # Coffer's own totals from before stay (docs and older scrapers use them).
        assert delta("coffer_s3_requests_total") == sum(made.values())
        for samples in a.values():
            assert all(l.get("server") == server_label for l, _ in samples)

    cl = after["cluster"]
    # Every object PUT and GET here is encrypted (auto-encryption): a data key generated or
    # decrypted each time, all successful.
    kms_ok = value(cl, "minio_cluster_kms_request_success") - value(before["cluster"], "minio_cluster_kms_request_success")
    assert kms_ok >= 7 + 3, kms_ok
    assert value(cl, "minio_cluster_kms_request_error") == value(cl, "minio_cluster_kms_request_failure") == 0
    assert value(cl, "minio_cluster_kms_online") == 1 and value(cl, "minio_cluster_kms_uptime") >= 0
    total, free = value(cl, "minio_cluster_capacity_usable_total_bytes"), value(cl, "minio_cluster_capacity_usable_free_bytes")
    assert 0 < free <= total
    assert value(cl, "minio_cluster_bucket_total") == 2
    assert value(cl, "minio_cluster_usage_object_total") == 4  # a, b, c, d; v's latest is a delete marker
    assert value(cl, "minio_cluster_usage_total_bytes") == 10 + 2000 + (2 << 20) + 7 + 9
    sizes = {l["range"]: v for l, v in cl["minio_cluster_objects_size_distribution"]}
    assert sizes["LESS_THAN_1024_B"] == 2 and sizes["BETWEEN_1024B_AND_1_MB"] == 1 and sizes["BETWEEN_1_MB_AND_10_MB"] == 1
    assert 0 <= value(cl, "minio_usage_last_activity_nano_seconds") < 60e9
    now = time.time()
    assert now - 600 < value(cl, "minio_node_process_starttime_seconds") <= now
    assert value(cl, "minio_node_process_resident_memory_bytes") > 1 << 20
    assert value(cl, "minio_node_file_descriptor_open_total") > 0
    assert value(cl, "minio_node_io_wchar_bytes") >= (2 << 20)  # the 2 MiB object went to disk

    bk = after["bucket"]
    assert value(bk, "minio_bucket_usage_object_total", bucket="dash") == 4
    assert value(bk, "minio_bucket_usage_total_bytes", bucket="dash") == 10 + 2000 + (2 << 20)
    assert value(bk, "minio_bucket_usage_object_total", bucket="vers") == 0
    assert value(bk, "minio_bucket_usage_version_total", bucket="vers") == 3  # two versions and the marker
    assert value(bk, "minio_bucket_usage_deletemarker_total", bucket="vers") == 1
    assert value(bk, "minio_bucket_usage_total_bytes", bucket="vers") == 16

    # Every dashboard metric Coffer claims has samples on the endpoint MinIO serves it on; every
    # one it does not claim is really absent (so this list stays true).
    for scope, names in PROVIDED.items():
        for name in names:
            assert after[scope].get(name), f"{name} missing from /minio/v2/metrics/{scope}"
    for name in NOT_PROVIDED:
        for scrape_ in after.values():
            assert not any(n.startswith(name.rstrip("*")) for n in scrape_), name

    # The chart's own dashboard (charts/coffer-operator/files/coffer-dashboard.json) queries only
    # names the server exposes (the object-server's; coffer_reconcile* and coffer_tenant_* are the
    # operator's).
    dashboard = pathlib.Path(__file__).parents[3] / "charts/coffer-operator/files/coffer-dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    queried = {n for e in exprs for n in re.findall(r"\b(minio_[a-z0-9_]+)", e)}
    exposed = {n for scrape_ in after.values() for n in scrape_}
    assert queried and queried <= exposed, queried - exposed


def test_bucket_usage_is_cached_between_scrapes(tmp_path):
    """Usage walks the store, so a scrape reuses a count younger than the maximum age."""
    s = Server(tmp_path / "data", env={"COFFER_METRICS_USAGE_MAX_AGE": "3600", "MINIO_PROMETHEUS_AUTH_TYPE": "public"}).start()
    c = s.client()
    c.create_bucket(Bucket="cached")
    c.put_object(Bucket="cached", Key="one", Body=b"1")

    def objects():
        text = requests.get(s.endpoint + "/minio/v2/metrics/bucket").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return [x.value for x in families["minio_bucket_usage_object_total"].samples if x.labels["bucket"] == "cached"]

    assert objects() == [1]
    c.put_object(Bucket="cached", Key="two", Body=b"2")
    assert objects() == [1], "a second scrape within the maximum age must not walk the store again"
    s.stop()


def test_a_refused_scrape_shows_nothing(metrics_server):
    for scope in ["cluster", "node", "bucket"]:
        r = requests.get(metrics_server.endpoint + f"/minio/v2/metrics/{scope}")
        assert r.status_code == 403 and r.json()["Code"] == "AccessDenied", r.text
        assert "minio_" not in r.text


def test_the_served_certificates_expiry_is_exported(tmp_path):
    from cryptography import x509

    from conftest import make_certs

    cert = x509.load_pem_x509_certificate(make_certs(tmp_path / "certs").read_bytes())
    s = Server(tmp_path / "data", certs_dir=tmp_path / "certs", env={"MINIO_PROMETHEUS_AUTH_TYPE": "public"}).start()
    text = requests.get(s.endpoint + "/minio/v2/metrics/node", verify=s.ca).text
    samples = {x.name: x.value for f in text_string_to_metric_families(text) for x in f.samples}
    assert samples["coffer_node_tls_certificate_expiry_timestamp_seconds"] == cert.not_valid_after_utc.timestamp()
    s.stop()
