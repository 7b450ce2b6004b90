"""The console's management pages in a real browser (Debian's headless Chromium through
Selenium, as test_console.py): object tags, retention and legal hold; bucket settings; users and
policies; KMS keys and their rotation (against MinIO's `kes`, which cannot rotate) and request
rates; bucket usage (with `mc stat` and `mc admin info`); sign-in throttling; the pages at a
phone's width. Each change is made as root and checked with boto3 or mc; the same change by an
auditor (may read everything, change nothing) is refused with S3's reason and changes nothing.

Screenshots go where test_console.py puts them.
"""
import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest
import requests

from conftest import ACCESS, SECRET, peer
from test_console import KEY_NAME, ConsoleServer, browser, by, find, record, screenshots_dir, sign_in, sign_out, signed_in_session  # noqa: F401
from test_kes import kes  # noqa: F401  (MinIO's kes, for the KMS page)

AUDITOR, AUDITOR_SECRET = "auditor1", "auditor1-secret-key"
AUDIT_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": ["arn:aws:s3:::*"]},
        {"Effect": "Allow", "Action": ["admin:ListUsers", "admin:ListUserPolicies", "admin:GetPolicy",
                                        "kms:ListKeys", "kms:KeyStatus", "kms:Status"]},
    ],
}


def mc(server, tmp_path, *args):
    cfg = tmp_path / "mc"
    base = [peer("mc"), "--config-dir", str(cfg), "--no-color"]
    if not (cfg / "config.json").exists():
        subprocess.run(base + ["alias", "set", "c", server.endpoint, ACCESS, SECRET], check=True, capture_output=True, timeout=60)
    r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"mc {args}: {r.stdout}{r.stderr}"
    return r.stdout


def add_auditor(server, tmp_path):
    doc = tmp_path / "audit.json"
    doc.write_text(json.dumps(AUDIT_POLICY))
    mc(server, tmp_path, "admin", "policy", "create", "c", "audit", str(doc))
    mc(server, tmp_path, "admin", "user", "add", "c", AUDITOR, AUDITOR_SECRET)
    mc(server, tmp_path, "admin", "policy", "attach", "c", "audit", "--user", AUDITOR)


def choose(driver, select_id, value):
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(*by("ID", select_id))).select_by_value(value)


def fill(driver, field_id, text):
    el = driver.find_element(*by("ID", field_id))
    el.clear()
    el.send_keys(text)


def wait_for_next_page(driver, old):
    """Waits until `old` (the previous page's root) has left the document and the next page has
    loaded. While Chrome swaps documents, asking about the old node can fail with "Node with given
    id does not belong to the document" instead of a stale-element error (seen in CI with Chrome
    156); both mean the old page is gone."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def old_page_gone(_):
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in (e.msg or ""):
                return True
            raise

    def next_page_loaded(d):
        try:
            return d.execute_script("return document.readyState") == "complete"
        except WebDriverException:  # the document is still being replaced
            return False

    WebDriverWait(driver, 20).until(old_page_gone)
    WebDriverWait(driver, 20).until(next_page_loaded)


def press(driver, kind, value):
    """Clicks a button that submits a form and waits for the page it leads to (the old page's
    notice or error must not be read for the new one's)."""
    old = driver.find_element(*by("TAG_NAME", "html"))
    driver.find_element(*by(kind, value)).click()
    wait_for_next_page(driver, old)


def error_text(driver):
    return find(driver, "ID", "error").text


def no_error(driver):
    return driver.find_elements(*by("ID", "error")) == []


def selected(driver, select_id):
    from selenium.webdriver.support.ui import Select
    return Select(driver.find_element(*by("ID", select_id))).first_selected_option.get_attribute("value")


def csrf_of(session, url):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', session.get(url).text).group(1)


def admin_get(server, path, access, secret):
    """A signed GET of the admin API, as madmin sends it."""
    url = f"{server.endpoint}{path}"
    req = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(access, secret), "s3", "us-east-1").add_auth(req)
    return requests.get(url, headers=dict(req.headers.items()), timeout=30)


def test_object_tags_retention_and_legal_hold(tmp_path, browser):
    from selenium.webdriver.common.keys import Keys
    d = browser
    server = ConsoleServer(tmp_path / "data").start()
    add_auditor(server, tmp_path)
    s3 = server.client()
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="vault", Key="docs/report.txt", Body=b"quarterly")
    page = server.console + "/object/vault?key=" + urllib.parse.quote("docs/report.txt")

    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    d.get(page)
    assert find(d, "ID", "no-tags").text == "No tags."
    assert d.find_element(*by("ID", "retention")).text == "none"
    assert d.find_element(*by("ID", "legal-hold")).text == "OFF"

    # Tags typed and saved with the keyboard alone: the button is the next stop after the field.
    area = d.find_element(*by("ID", "tags-text"))
    area.send_keys("team=ops", Keys.ENTER, "env=prod")
    area.send_keys(Keys.TAB)
    assert d.switch_to.active_element.get_attribute("id") == "save-tags"
    old = d.find_element(*by("TAG_NAME", "html"))
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for_next_page(d, old)
    assert find(d, "ID", "notice").text == "Tags saved."
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="vault", Key="docs/report.txt")["TagSet"]}
    assert tags == {"team": "ops", "env": "prod"}, tags
    assert d.find_element(*by("CSS_SELECTOR", '#tags li[data-tag="team"]')).text == "team = ops"

    # A line that is not key=value is refused before S3 is asked; S3 refuses an 11th tag.
    fill(d, "tags-text", "team=ops\nnonsense")
    press(d, "ID", "save-tags")
    assert error_text(d) == 'Could not save the tags: "nonsense" is not key=value; nothing was changed.'
    fill(d, "tags-text", "\n".join(f"k{i}=v" for i in range(11)))
    press(d, "ID", "save-tags")
    assert error_text(d) == "Could not save the tags: Object tags cannot be greater than 10 (BadRequest)."
    assert len(s3.get_object_tagging(Bucket="vault", Key="docs/report.txt")["TagSet"]) == 2

    # COMPLIANCE for 2 days; shortening it to 1 is refused with S3's reason and changes nothing.
    choose(d, "retention-mode", "COMPLIANCE")
    fill(d, "retention-days", "2")
    press(d, "ID", "set-retention")
    assert find(d, "ID", "notice").text == "Retention saved."
    kept = s3.get_object_retention(Bucket="vault", Key="docs/report.txt")["Retention"]
    assert kept["Mode"] == "COMPLIANCE"
    assert d.find_element(*by("ID", "retention")).text.startswith("COMPLIANCE until ")
    choose(d, "retention-mode", "COMPLIANCE")
    fill(d, "retention-days", "1")
    d.find_element(*by("ID", "retention-bypass")).click()
    press(d, "ID", "set-retention")
    assert error_text(d) == "Could not set the retention: Object is WORM protected and cannot be overwritten (AccessDenied)."
    assert s3.get_object_retention(Bucket="vault", Key="docs/report.txt")["Retention"] == kept
    record(d, "11-object-tags-retention")

    press(d, "ID", "toggle-legal-hold")
    assert find(d, "ID", "notice").text == "Legal hold saved."
    assert s3.get_object_legal_hold(Bucket="vault", Key="docs/report.txt")["LegalHold"]["Status"] == "ON"
    assert d.find_element(*by("ID", "legal-hold")).text == "ON"
    sign_out(d)

    # The auditor sees tags and protection and is refused changing them.
    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    d.get(page)
    assert d.find_element(*by("CSS_SELECTOR", '#tags li[data-tag="env"]')).text == "env = prod"
    fill(d, "tags-text", "team=intruder")
    press(d, "ID", "save-tags")
    assert error_text(d) == "Could not save the tags: your policies do not allow it (AccessDenied)."
    press(d, "ID", "toggle-legal-hold")
    assert error_text(d) == "Could not set the legal hold: your policies do not allow it (AccessDenied)."
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="vault", Key="docs/report.txt")["TagSet"]}
    assert tags == {"team": "ops", "env": "prod"}
    assert s3.get_object_legal_hold(Bucket="vault", Key="docs/report.txt")["LegalHold"]["Status"] == "ON"
    record(d, "12-object-auditor-refused")


def test_bucket_settings(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data").start()
    add_auditor(server, tmp_path)
    s3 = server.client()
    s3.create_bucket(Bucket="logs", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="site")
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    d.get(server.console + "/b/site")
    find(d, "ID", "bucket-settings").click()
    assert find(d, "ID", "versioning-status").text == "Off"
    assert "no object lock" in d.find_element(*by("ID", "lock-default")).text

    # Versioning on, then suspended.
    d.find_element(*by("ID", "versioning-enabled")).click()
    press(d, "ID", "save-versioning")
    assert find(d, "ID", "notice").text == "Versioning saved."
    assert s3.get_bucket_versioning(Bucket="site")["Status"] == "Enabled"
    d.find_element(*by("ID", "versioning-suspended")).click()
    press(d, "ID", "save-versioning")
    assert find(d, "ID", "versioning-status").text == "Suspended"
    assert s3.get_bucket_versioning(Bucket="site")["Status"] == "Suspended"

    # Lifecycle: two expiration rules added, one deleted; mc sees the same.
    for prefix, days in (("tmp/", "7"), ("", "365")):
        fill(d, "rule-prefix", prefix)
        fill(d, "rule-days", days)
        press(d, "ID", "add-rule")
        assert find(d, "ID", "notice").text == "Lifecycle rule added."
    rules = s3.get_bucket_lifecycle_configuration(Bucket="site")["Rules"]
    assert [(r["ID"], r["Filter"].get("Prefix"), r["Expiration"]["Days"]) for r in rules] == [("expire-7d-1", "tmp/", 7), ("expire-365d-1", "", 365)], rules
    row = d.find_element(*by("CSS_SELECTOR", 'tr[data-rule="expire-7d-1"]'))
    assert "expire after 7 days" in row.text and "tmp/" in row.text
    # The browser would not send 0 (min=1); without that check, the server refuses it too.
    d.execute_script("document.getElementById('rule-days').removeAttribute('min')")
    fill(d, "rule-days", "0")
    press(d, "ID", "add-rule")
    assert "the days must be a whole number of at least 1" in error_text(d)
    press(d, "CSS_SELECTOR", 'button[aria-label="Delete rule expire-7d-1"]')
    assert find(d, "ID", "notice").text == "Lifecycle rule deleted."
    assert "expire-7d-1" not in mc(server, tmp_path, "ilm", "rule", "ls", "c/site")
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket="site")["Rules"]] == ["expire-365d-1"]

    # Default encryption: SSE-KMS with the key's name, then SSE-S3.
    choose(d, "encryption-mode", "SSE-KMS")
    fill(d, "encryption-key", KEY_NAME)
    press(d, "ID", "save-encryption")
    assert find(d, "ID", "encryption-status").text == f"SSE-KMS (key {KEY_NAME})"
    # The form shows what is set (a save without touching it keeps it).
    assert selected(d, "encryption-mode") == "SSE-KMS"
    assert d.find_element(*by("ID", "encryption-key")).get_attribute("value") == KEY_NAME
    rule = s3.get_bucket_encryption(Bucket="site")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"].endswith(KEY_NAME)
    choose(d, "encryption-mode", "SSE-S3")
    press(d, "ID", "save-encryption")
    assert find(d, "ID", "encryption-status").text == "SSE-S3"
    assert selected(d, "encryption-mode") == "SSE-S3"

    # Anonymous download, as `mc anonymous get` reads it; anyone can then read, not write.
    s3.put_object(Bucket="site", Key="index.html", Body=b"<h1>hi</h1>")
    choose(d, "anonymous-preset", "download")
    press(d, "ID", "save-anonymous")
    assert find(d, "ID", "anonymous-status").text == "download"
    assert selected(d, "anonymous-preset") == "download"
    assert "`download`" in mc(server, tmp_path, "anonymous", "get", "c/site")
    assert requests.get(server.endpoint + "/site/index.html").content == b"<h1>hi</h1>"
    assert requests.put(server.endpoint + "/site/evil.html", data=b"x").status_code == 403

    # A malformed policy shows S3's error, stays in the editor, and changes nothing.
    before = s3.get_bucket_policy(Bucket="site")["Policy"]
    bad = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"'
    fill(d, "policy-text", bad)
    press(d, "ID", "save-policy")
    err = error_text(d)
    assert err.startswith("Could not save the bucket policy: ") and err.endswith("(MalformedPolicy)."), err
    assert d.find_element(*by("ID", "policy-text")).get_attribute("value") == bad
    assert s3.get_bucket_policy(Bucket="site")["Policy"] == before
    record(d, "13-bucket-settings-policy-refused")
    choose(d, "anonymous-preset", "none")
    press(d, "ID", "save-anonymous")
    assert find(d, "ID", "anonymous-status").text == "none"
    assert requests.get(server.endpoint + "/site/index.html").status_code == 403

    # Object lock's default retention on the lock bucket.
    d.get(server.console + "/settings/logs")
    choose(d, "lock-mode", "GOVERNANCE")
    fill(d, "lock-days", "30")
    press(d, "ID", "save-lock")
    assert find(d, "ID", "lock-default").text == "GOVERNANCE 30 days"
    d.get(server.console + "/settings/logs")
    assert selected(d, "lock-mode") == "GOVERNANCE"
    assert d.find_element(*by("ID", "lock-days")).get_attribute("value") == "30"
    rule = s3.get_object_lock_configuration(Bucket="logs")["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("GOVERNANCE", 30)
    record(d, "14-bucket-settings")
    sign_out(d)

    # The auditor sees the settings and changes none of them.
    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    d.get(server.console + "/settings/site")
    assert find(d, "ID", "versioning-status").text == "Suspended"
    assert selected(d, "anonymous-preset") == "none" and selected(d, "encryption-mode") == "SSE-S3"
    d.find_element(*by("ID", "versioning-enabled")).click()
    press(d, "ID", "save-versioning")
    assert error_text(d) == "Could not change versioning: your policies do not allow it (AccessDenied)."
    choose(d, "anonymous-preset", "public")
    press(d, "ID", "save-anonymous")
    assert error_text(d) == "Could not set anonymous access: your policies do not allow it (AccessDenied)."
    assert s3.get_bucket_versioning(Bucket="site")["Status"] == "Suspended"
    assert requests.get(server.endpoint + "/site/index.html").status_code == 403
    record(d, "15-bucket-settings-auditor-refused")


def test_users_and_policies(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data").start()
    add_auditor(server, tmp_path)
    s3 = server.client()
    s3.create_bucket(Bucket="shared")
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    d.get(server.console + "/users")

    # A policy, then a user with it: the user's keys work against S3 as the policy says.
    fill(d, "new-policy-name", "shared-read")
    fill(d, "new-policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"]}]}))
    press(d, "ID", "create-policy")
    assert find(d, "ID", "notice").text == "Policy shared-read saved."
    # Post/Redirect/Get: the change's answer is a redirect, so a reload asks for the page again.
    assert d.current_url.endswith("/users?done=create-policy&name=shared-read"), d.current_url
    fill(d, "new-policy-name", "broken")
    fill(d, "new-policy-document", '{"Statement": [')
    press(d, "ID", "create-policy")
    assert "Could not create policy broken" in error_text(d)
    assert "broken" not in mc(server, tmp_path, "admin", "policy", "ls", "c")
    fill(d, "new-access-key", "app1")
    fill(d, "new-secret-key", "app1-secret-key-xyz")
    choose(d, "new-user-policy", "shared-read")
    press(d, "ID", "create-user")
    assert find(d, "ID", "notice").text == "User app1 created with policy shared-read."
    assert "app1-secret-key-xyz" not in d.page_source
    app = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="app1",
                       aws_secret_access_key="app1-secret-key-xyz",
                       config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    assert app.list_objects_v2(Bucket="shared")["KeyCount"] == 0
    assert d.find_element(*by("CSS_SELECTOR", 'tr[data-user="app1"] .policy')).text == "shared-read"
    assert selected(d, "attach-app1") == "shared-read"

    # Attach readwrite, detach shared-read, disable, enable: mc sees each.
    choose(d, "attach-app1", "readwrite")
    press(d, "CSS_SELECTOR", 'button[aria-label="Attach the chosen policy to app1"]')
    assert find(d, "ID", "notice").text == "Policy readwrite attached to app1."
    press(d, "CSS_SELECTOR", 'button[aria-label="Detach shared-read from app1"]')
    assert find(d, "ID", "notice").text == "Policy shared-read detached from app1."
    info = json.loads(mc(server, tmp_path, "admin", "user", "info", "c", "app1", "--json"))
    assert info["policyName"] == "readwrite", info
    assert selected(d, "attach-app1") == "readwrite"
    press(d, "CSS_SELECTOR", 'button[aria-label="Disable app1"]')
    assert find(d, "CSS_SELECTOR", 'tr[data-user="app1"] .status').text == "disabled"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        app.list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId", e.value.response
    press(d, "CSS_SELECTOR", 'button[aria-label="Enable app1"]')
    assert find(d, "CSS_SELECTOR", 'tr[data-user="app1"] .status').text == "enabled"
    assert [b["Name"] for b in app.list_buckets()["Buckets"]] == ["shared"]
    record(d, "16-users")
    sign_out(d)

    # The auditor sees users and is refused making or deleting one.
    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    d.get(server.console + "/users")
    assert find(d, "CSS_SELECTOR", 'tr[data-user="app1"] .status').text == "enabled"
    fill(d, "new-access-key", "sneaky")
    fill(d, "new-secret-key", "sneaky-secret-key")
    press(d, "ID", "create-user")
    assert error_text(d) == "Could not create user sneaky: your policies do not allow it (AccessDenied)."
    press(d, "CSS_SELECTOR", 'button[aria-label="Delete user app1"]')
    assert error_text(d) == "Could not delete user app1: your policies do not allow it (AccessDenied)."
    users = mc(server, tmp_path, "admin", "user", "ls", "c")
    assert "app1" in users and "sneaky" not in users
    record(d, "17-users-auditor-refused")
    sign_out(d)

    # Root deletes the user and the policy.
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    d.get(server.console + "/users")
    press(d, "CSS_SELECTOR", 'button[aria-label="Delete user app1"]')
    assert find(d, "ID", "notice").text == "User app1 deleted."
    d.find_element(*by("CSS_SELECTOR", "#policy-shared-read summary")).click()
    press(d, "CSS_SELECTOR", 'button[aria-label="Delete policy shared-read"]')
    assert find(d, "ID", "notice").text == "Policy shared-read deleted."
    # A reload repeats nothing: a second delete would be refused (XMinioAdminNoSuchPolicy).
    old = d.find_element(*by("TAG_NAME", "html"))
    d.refresh()
    wait_for_next_page(d, old)
    assert find(d, "ID", "notice").text == "Policy shared-read deleted." and no_error(d)
    # The form's answer itself: 303 to the page that says what was done; a notice cannot be
    # made up through the link.
    s = signed_in_session(server)
    token = csrf_of(s, server.console + "/users")
    r = s.post(server.console + "/users", data={"csrf": token, "do": "create-policy", "name": "prg", "document": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::shared/*"]}]})},
        allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/users?done=create-policy&name=prg", (r.status_code, r.headers)
    r = s.post(server.console + "/users", data={"csrf": token, "do": "delete-policy", "name": "no-such-policy"}, allow_redirects=False)
    assert r.status_code == 404 and "Could not delete policy no-such-policy" in r.text, (r.status_code, r.text)
    assert 'id="notice"' not in s.get(server.console + "/users?done=user-status&user=x&status=hacked").text
    r = s.post(server.console + "/users", data={"do": "delete-policy", "name": "prg"}, allow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert "prg" in mc(server, tmp_path, "admin", "policy", "ls", "c")
    assert "app1" not in mc(server, tmp_path, "admin", "user", "ls", "c")
    assert "shared-read" not in mc(server, tmp_path, "admin", "policy", "ls", "c")
    assert "app1-secret-key-xyz" not in server.output()


def test_kms_keys_and_request_rates(tmp_path, browser, kes):  # noqa: F811
    d = browser
    default_key = "coffer-console-" + os.urandom(3).hex()
    server = ConsoleServer(tmp_path / "data", env={**kes, "MINIO_KMS_KES_KEY_NAME": default_key})
    del server.env["MINIO_KMS_SECRET_KEY"]
    server.start()
    add_auditor(server, tmp_path)
    s3 = server.client()
    for _ in range(20):
        s3.list_buckets()
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")

    d.get(server.console + "/kms")
    assert find(d, "ID", "kms-default-key").text == default_key
    assert d.find_element(*by("ID", "kms-reachable")).text == "reachable"
    made = "coffer-made-" + os.urandom(3).hex()
    fill(d, "new-key-name", made)
    press(d, "ID", "create-key")
    assert find(d, "ID", "notice").text == f"Key {made} created."
    assert d.find_element(*by("CSS_SELECTOR", f'tr[data-key-name="{made}"] .key-status')).text == "OK"
    # Post/Redirect/Get: a reload asks for the page again, it does not create the key again
    # (which KES would refuse: the key exists).
    assert d.current_url.endswith(f"/kms?done=created&key={made}"), d.current_url
    old = d.find_element(*by("TAG_NAME", "html"))
    d.refresh()
    wait_for_next_page(d, old)
    assert find(d, "ID", "notice").text == f"Key {made} created." and no_error(d)
    assert made in mc(server, tmp_path, "admin", "kms", "key", "list", "c")
    fill(d, "new-key-name", made)
    press(d, "ID", "create-key")
    assert error_text(d).startswith(f"Could not create key {made}: ") and error_text(d).endswith("(XMinioKMSKeyExists)."), error_text(d)
    record(d, "18-kms")

    # Rotation. Our KES adds a version; MinIO's has none, so the console says the KMS cannot,
    # with the status the admin API answered (501), and the key is as it was.
    s3.create_bucket(Bucket="rotated")
    s3.put_object(Bucket="rotated", Key="before", Body=b"before", ServerSideEncryption="aws:kms", SSEKMSKeyId=made)
    press(d, "CSS_SELECTOR", f'button[aria-label="Rotate key {made}"]')
    s = signed_in_session(server)
    token = csrf_of(s, server.console + "/kms")
    if os.environ["COFFER_TEST_KES"] == "ours":
        assert find(d, "ID", "notice").text == (
            f"Key {made} rotated: new data keys are made under its version 2; objects under older versions still decrypt.")
        assert d.current_url.endswith(f"/kms?done=rotated&key={made}&version=2"), d.current_url
        old = d.find_element(*by("TAG_NAME", "html"))
        d.refresh()
        wait_for_next_page(d, old)
        assert no_error(d)
        record(d, "21-kms-rotated")
        # The reload rotated nothing: the next rotation is version 3.
        r = s.post(server.console + "/kms", data={"csrf": token, "do": "rotate", "name": made}, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/kms?done=rotated&key={made}&version=3", (r.status_code, r.headers)
    else:
        err = error_text(d)
        assert err.startswith(f"Could not rotate key {made}: the KES server at ") and err.endswith(
            "has no key rotation (MinIO's KES has none; Coffer's sidecar-kes has) (NotImplemented)."), err
        record(d, "21-kms-rotation-refused")
        r = s.post(server.console + "/kms", data={"csrf": token, "do": "rotate", "name": made}, allow_redirects=False)
        assert r.status_code == 501 and "has no key rotation" in r.text, (r.status_code, r.text)
    assert d.find_element(*by("CSS_SELECTOR", f'tr[data-key-name="{made}"] .key-status')).text == "OK"
    s3.put_object(Bucket="rotated", Key="after", Body=b"after", ServerSideEncryption="aws:kms", SSEKMSKeyId=made)
    assert [s3.get_object(Bucket="rotated", Key=k)["Body"].read() for k in ("before", "after")] == [b"before", b"after"]
    # Each object's details say which key version seals its data key (never the key itself).
    newest = "version 3" if os.environ["COFFER_TEST_KES"] == "ours" else "version 1"
    for key, version in (("before", "version 1"), ("after", newest)):
        d.get(server.console + f"/object/rotated?key={key}")
        assert find(d, "ID", "kms-key").text == made
        assert d.find_element(*by("ID", "kms-key-version")).text == version, key
    r = s.post(server.console + "/kms", data={"csrf": token, "do": "rotate", "name": ""}, allow_redirects=False)
    assert r.status_code == 400 and "Enter a key name; nothing was changed." in r.text
    # Without the CSRF token nothing reaches the KMS: 403 from the console itself.
    r = s.post(server.console + "/kms", data={"do": "rotate", "name": made}, allow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = s.post(server.console + "/kms", data={"do": "create", "name": "coffer-forged"}, allow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert "coffer-forged" not in mc(server, tmp_path, "admin", "kms", "key", "list", "c")
    # A created key's answer is a redirect to the page that says so.
    made2 = "coffer-made-" + os.urandom(3).hex()
    r = s.post(server.console + "/kms", data={"csrf": token, "do": "create", "name": made2}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/kms?done=created&key={made2}", (r.status_code, r.headers)
    assert made2 in mc(server, tmp_path, "admin", "kms", "key", "list", "c")

    d.get(server.console + "/server")
    total = int(find(d, "ID", "requests-total").text)
    listed = int(d.find_element(*by("CSS_SELECTOR", 'tr[data-api="listbuckets"] .count')).text)
    assert listed >= 20 and total >= listed, (listed, total)
    assert float(d.find_element(*by("ID", "rate-recent")).text) > 0
    record(d, "19-server-rates")
    sign_out(d)

    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    d.get(server.console + "/kms")
    assert find(d, "CSS_SELECTOR", f'tr[data-key-name="{made}"] .key-status').text == "OK"
    fill(d, "new-key-name", "coffer-sneaky")
    press(d, "ID", "create-key")
    assert error_text(d) == "Could not create key coffer-sneaky: your policies do not allow it (AccessDenied)."
    assert "coffer-sneaky" not in mc(server, tmp_path, "admin", "kms", "key", "list", "c")
    # The auditor may not rotate: the IAM refuses before the KMS is asked.
    press(d, "CSS_SELECTOR", f'button[aria-label="Rotate key {made}"]')
    assert error_text(d) == f"Could not rotate key {made}: your policies do not allow it (AccessDenied)."
    assert d.find_element(*by("CSS_SELECTOR", f'tr[data-key-name="{made}"] .key-status')).text == "OK"


def test_bucket_usage(tmp_path, browser):
    """Objects and bytes per bucket on the buckets page, from the admin API's `datausageinfo`,
    which `mc stat` and `mc admin info` read too; a user without admin:DataUsageInfo is told
    why the columns are empty."""
    d = browser
    server = ConsoleServer(tmp_path / "data", env={"COFFER_METRICS_USAGE_MAX_AGE": "0"}).start()
    add_auditor(server, tmp_path)
    s3 = server.client()
    s3.create_bucket(Bucket="photos")
    s3.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="photos", Key="a", Body=b"a" * 1000)
    s3.put_object(Bucket="photos", Key="a", Body=b"A" * 1500)
    s3.put_object(Bucket="photos", Key="b", Body=b"b" * 2000)
    s3.put_object(Bucket="photos", Key="c", Body=b"c" * 3000)
    s3.delete_object(Bucket="photos", Key="c")
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="d", Body=b"d" * 5000)
    s3.create_bucket(Bucket="empty")

    # The admin API: madmin's DataUsageInfo (plaintext bytes of every version, latest objects).
    r = admin_get(server, "/minio/admin/v3/datausageinfo?capacity=true", ACCESS, SECRET)
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["objectsCount"], u["objectsTotalSize"], u["bucketsCount"]) == (3, 12500, 3), u
    p = u["bucketsUsageInfo"]["photos"]
    assert (p["objectsCount"], p["versionsCount"], p["deleteMarkersCount"], p["size"]) == (2, 4, 1, 7500), p
    assert p["objectsSizesHistogram"]["BETWEEN_1024B_AND_1_MB"] == 2, p
    assert u["bucketsUsageInfo"]["empty"]["objectsCount"] == 0 and u["capacity"] > 0 and u["lastUpdate"], u
    r = admin_get(server, "/minio/admin/v3/datausageinfo", AUDITOR, AUDITOR_SECRET)
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text, (r.status_code, r.text)

    # The real mc reads the same: `mc stat` of a bucket and `mc admin info`.
    stat = json.loads(mc(server, tmp_path, "stat", "c/photos", "--json"))["Usage"]
    assert (stat["objectsCount"], stat["versionsCount"], stat["size"]) == (2, 4, 7500), stat
    info = json.loads(mc(server, tmp_path, "admin", "info", "c", "--json"))["info"]
    assert (info["objects"]["count"], info["usage"]["size"]) == (3, 12500), info

    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")

    def row(bucket):
        r = d.find_element(*by("CSS_SELECTOR", f'tr[data-bucket="{bucket}"]'))
        objects, size = r.find_element(*by("CSS_SELECTOR", ".objects")), r.find_element(*by("CSS_SELECTOR", ".size"))
        return objects.text, size.text, size.get_attribute("data-bytes")

    assert row("photos") == ("2", "7.3 KiB", "7500"), row("photos")
    assert row("docs") == ("1", "4.9 KiB", "5000"), row("docs")
    assert row("empty") == ("0", "0 B", "0"), row("empty")
    assert find(d, "ID", "total-objects").text == "3"
    assert d.find_element(*by("ID", "total-size")).get_attribute("data-bytes") == "12500"
    assert d.find_element(*by("ID", "total-buckets")).text == "3"
    record(d, "22-bucket-usage")
    # A change shows at the next count (the cache's age is 0 here).
    s3.delete_object(Bucket="docs", Key="d")
    d.get(server.console + "/buckets")
    assert row("docs") == ("0", "0 B", "0"), row("docs")
    assert find(d, "ID", "total-objects").text == "2"
    sign_out(d)

    # The auditor lists the buckets but may not read usage: the page says so, shows no counts.
    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    assert find(d, "ID", "usage-unavailable").text == (
        "Usage is not shown: Could not read the bucket usage: your policies do not allow it (AccessDenied).")
    assert d.find_elements(*by("ID", "usage-totals")) == []
    assert row("photos") == ("–", "–", None), row("photos")
    record(d, "23-bucket-usage-auditor")


def sign_in_from(server, source, access, secret):
    """A sign-in from loopback address `source`: (status, page)."""
    host, port = "127.0.0.1", server.console_port
    conn = http.client.HTTPConnection(host, port, source_address=(source, 0), timeout=30)
    conn.request("GET", "/login")
    r = conn.getresponse()
    page = r.read().decode()
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    body = urllib.parse.urlencode({"token": token, "access_key": access, "secret_key": secret})
    conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"coffer_login={token}"})
    r = conn.getresponse()
    out = (r.status, r.read().decode())
    conn.close()
    return out


def test_sign_in_throttling(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data", env={"COFFER_CONSOLE_SIGNIN_LOCKOUT": "4s"}).start()
    for _ in range(5):
        sign_in(d, server.console, ACCESS, "wrong-secret")
        assert "Wrong access key or secret key" in error_text(d)
    # The sixth attempt is refused before the keys are checked, the right keys included.
    sign_in(d, server.console, ACCESS, SECRET)
    assert error_text(d) == "Too many failed sign-ins from your address. Try again in 1 minute."
    assert d.get_cookie("coffer_session") is None
    record(d, "20-sign-in-throttled")
    status, page = sign_in_from(server, "127.0.0.1", ACCESS, SECRET)
    assert status == 429 and "Too many failed sign-ins" in page
    # Another address is not locked out.
    assert sign_in_from(server, "127.0.0.2", ACCESS, SECRET)[0] == 303
    time.sleep(4.2)
    sign_in(d, server.console, ACCESS, SECRET)
    assert find(d, "ID", "signed-in-user").text == ACCESS


def test_pages_fit_a_phone(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data").start()
    s3 = server.client()
    s3.create_bucket(Bucket="phone-photos", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="phone-photos", Key="holidays/2026/a-rather-long-file-name-for-a-phone.jpg", Body=b"x" * 1000)
    add_auditor(server, tmp_path)
    d.set_window_size(390, 844)
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    pages = {
        "buckets": "/buckets",
        "objects": "/b/phone-photos?prefix=holidays%2F2026%2F",
        "object": "/object/phone-photos?key=holidays%2F2026%2Fa-rather-long-file-name-for-a-phone.jpg",
        "settings": "/settings/phone-photos",
        "users": "/users",
        "kms": "/kms",
        "server": "/server",
    }
    for name, path in pages.items():
        d.get(server.console + path)
        find(d, "ID", "main")
        width = d.execute_script("return document.documentElement.clientWidth")
        scroll = d.execute_script("return document.documentElement.scrollWidth")
        d.save_screenshot(str(screenshots_dir() / f"phone-{name}.png"))
        assert scroll <= width, f"{name}: the page is {scroll}px wide in a {width}px window"
        # Every form control has a label a screen reader reads out.
        unlabeled = d.execute_script("""
            return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.id || e.name);""")
        assert unlabeled == [], f"{name}: unlabeled controls {unlabeled}"
