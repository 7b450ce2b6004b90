"""The console's management pages in a real browser (Debian's headless Chromium through
Selenium, as test_console.py): object tags, retention and legal hold; bucket settings; users and
policies; KMS keys (against MinIO's `kes`) and request rates; sign-in throttling; the pages at a
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
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import ACCESS, SECRET, peer
from test_console import KEY_NAME, ConsoleServer, browser, by, find, record, screenshots_dir, sign_in, sign_out  # noqa: F401
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
    rule = s3.get_bucket_encryption(Bucket="site")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"].endswith(KEY_NAME)
    choose(d, "encryption-mode", "SSE-S3")
    press(d, "ID", "save-encryption")
    assert find(d, "ID", "encryption-status").text == "SSE-S3"

    # Anonymous download, as `mc anonymous get` reads it; anyone can then read, not write.
    s3.put_object(Bucket="site", Key="index.html", Body=b"<h1>hi</h1>")
    choose(d, "anonymous-preset", "download")
    press(d, "ID", "save-anonymous")
    assert find(d, "ID", "anonymous-status").text == "download"
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
    rule = s3.get_object_lock_configuration(Bucket="logs")["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("GOVERNANCE", 30)
    record(d, "14-bucket-settings")
    sign_out(d)

    # The auditor sees the settings and changes none of them.
    sign_in(d, server.console, AUDITOR, AUDITOR_SECRET)
    find(d, "ID", "signed-in-user")
    d.get(server.console + "/settings/site")
    assert find(d, "ID", "versioning-status").text == "Suspended"
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

    # Attach readwrite, detach shared-read, disable, enable: mc sees each.
    choose(d, "attach-app1", "readwrite")
    press(d, "CSS_SELECTOR", 'button[aria-label="Attach the chosen policy to app1"]')
    assert find(d, "ID", "notice").text == "Policy readwrite attached to app1."
    press(d, "CSS_SELECTOR", 'button[aria-label="Detach shared-read from app1"]')
    assert find(d, "ID", "notice").text == "Policy shared-read detached from app1."
    info = json.loads(mc(server, tmp_path, "admin", "user", "info", "c", "app1", "--json"))
    assert info["policyName"] == "readwrite", info
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
    assert made in mc(server, tmp_path, "admin", "kms", "key", "list", "c")
    fill(d, "new-key-name", made)
    press(d, "ID", "create-key")
    assert error_text(d).startswith(f"Could not create key {made}: ") and error_text(d).endswith("(XMinioKMSKeyExists)."), error_text(d)
    record(d, "18-kms")

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
