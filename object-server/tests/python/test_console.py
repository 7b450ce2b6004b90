"""The web console in a real browser: Debian's headless Chromium (pinned by e2e/peers/install)
driven by Selenium through chromedriver, against the real object-server. A missing browser or
driver fails the test (conftest.peer); nothing is skipped.

Screenshots of the main pages go to `$COFFER_ARTIFACTS/console-screenshots` (else
`$CARGO_TARGET_DIR/console-screenshots`, else `target/console-screenshots`), for a reviewer.
"""
import base64
import hashlib
import os
import pathlib
import re
import subprocess
import time

import botocore.exceptions
import pytest
import requests

from conftest import ACCESS, SECRET, Server, free_port, make_certs, peer

KEY_NAME = "console-test-key"
KMS_SECRET = base64.b64encode(hashlib.sha256(b"console test master key").digest()).decode()
READER, READER_SECRET = "reader1", "reader1-secret-key"


def screenshots_dir():
    base = os.environ.get("COFFER_ARTIFACTS") or os.environ.get("CARGO_TARGET_DIR")
    root = pathlib.Path(base) if base else pathlib.Path(__file__).resolve().parents[3] / "target"
    d = root / "console-screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


class ConsoleServer(Server):
    """A server with its console on a free loopback port (a new one at each start)."""

    def __init__(self, data_dir, env=None, **kw):
        env = {"MINIO_KMS_SECRET_KEY": f"{KEY_NAME}:{KMS_SECRET}", "MINIO_KMS_AUTO_ENCRYPTION": "on", **(env or {})}
        super().__init__(data_dir, env=env, **kw)
        self.console_port = None

    def args(self):
        self.console_port = free_port()
        a = super().args()
        return a[:-1] + ["--console-address", f"127.0.0.1:{self.console_port}", a[-1]]

    @property
    def console(self):
        return f"{self.scheme}://127.0.0.1:{self.console_port}"

    def start(self, **kw):
        super().start(**kw)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.console + "/login", timeout=5, verify=self.ca or True).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the console did not answer:\n{self.output()}"
            time.sleep(0.1)


def add_reader(server, tmp_path):
    cfg = tmp_path / "mc"
    def mc(*args):
        r = subprocess.run([peer("mc"), "--config-dir", str(cfg), "--no-color", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"mc {args}: {r.stdout}{r.stderr}"
    mc("alias", "set", "c", server.endpoint, ACCESS, SECRET)
    mc("admin", "user", "add", "c", READER, READER_SECRET)
    mc("admin", "policy", "attach", "c", "readonly", "--user", READER)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = peer("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
              f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(a)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=peer("chromedriver")), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    driver.seen = []  # every page's source and URL, checked for secrets at the end
    yield driver
    driver.quit()


def by(kind, value):
    from selenium.webdriver.common.by import By
    return (getattr(By, kind), value)


def find(driver, kind, value, timeout=20):
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located(by(kind, value)))


def record(driver, shot=None):
    driver.seen.append((driver.current_url, driver.page_source))
    if shot:
        driver.save_screenshot(str(screenshots_dir() / f"{shot}.png"))


def sign_in(driver, console, access, secret):
    driver.get(console + "/login")
    driver.find_element(*by("ID", "access_key")).send_keys(access)
    driver.find_element(*by("ID", "secret_key")).send_keys(secret)
    driver.find_element(*by("ID", "sign-in")).click()


def sign_out(driver):
    find(driver, "ID", "sign-out").click()
    find(driver, "ID", "sign-in")


def test_console_in_a_browser(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data").start()
    add_reader(server, tmp_path)
    s3 = server.client()

    # A wrong secret key is refused, and no session is made.
    sign_in(d, server.console, ACCESS, "not-the-secret")
    err = find(d, "ID", "error")
    assert "Wrong access key or secret key" in err.text
    assert d.current_url.endswith("/login")
    assert d.get_cookie("coffer_session") is None
    record(d, "01-sign-in-refused")

    # Root signs in; the session cookie is HttpOnly and SameSite=Strict and holds only an id.
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    assert find(d, "ID", "signed-in-user").text == ACCESS
    cookie = d.get_cookie("coffer_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert re.fullmatch(r"[0-9a-f]{64}", cookie["value"]), cookie
    record(d, "02-buckets-empty")

    # A versioned bucket.
    d.find_element(*by("ID", "bucket-name")).send_keys("photos")
    d.find_element(*by("ID", "bucket-versioning")).click()
    d.find_element(*by("ID", "create-bucket-button")).click()
    assert "Bucket photos created." in find(d, "ID", "notice").text
    assert s3.get_bucket_versioning(Bucket="photos")["Status"] == "Enabled"
    record(d, "03-buckets")
    find(d, "LINK_TEXT", "photos").click()
    assert find(d, "ID", "versioning").text == "Enabled"

    # A 20 MiB upload through the script, in parts, its progress seen on the bar. The upload is
    # slowed to 8 MiB/s in the browser so the bar can be watched (and photographed) half-way.
    data = os.urandom(20 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    d.set_network_conditions(offline=False, latency=1, download_throughput=1 << 30, upload_throughput=8 << 20)
    d.find_element(*by("ID", "upload-file")).send_keys(str(src))
    d.find_element(*by("ID", "upload-button")).click()
    seen, shot = [], False
    deadline = time.monotonic() + 120
    while "uploaded=" not in d.current_url:
        assert time.monotonic() < deadline, f"the upload did not finish; progress seen: {seen}"
        try:
            v = int(d.find_element(*by("ID", "upload-progress")).get_attribute("value"))
            # The next page has a bar too, hidden and at 0: read the value, then make sure it
            # came from this page.
            if d.find_element(*by("ID", "upload-status")).is_displayed():
                if not seen or seen[-1] != v:
                    seen.append(v)
                if 20 <= v <= 80 and not shot:
                    d.save_screenshot(str(screenshots_dir() / "04-upload-progress.png"))
                    shot = True
        except Exception:  # the page changed under us: the upload finished
            pass
        time.sleep(0.05)
    d.delete_network_conditions()
    assert any(0 < v < 100 for v in seen), f"no progress between 0 and 100 was shown: {seen}"
    assert seen == sorted(seen), seen
    shown = d.execute_script("return sessionStorage.getItem('coffer-upload-progress')")
    assert shown.split(",")[-1] == "100", shown
    assert "Uploaded big.bin." in find(d, "ID", "notice").text
    head = s3.head_object(Bucket="photos", Key="big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"'), head  # 3 parts of 8 MiB

    # Listed as encrypted under the KMS key.
    row = find(d, "CSS_SELECTOR", 'tr[data-key="big.bin"]')
    assert row.find_element(*by("CLASS_NAME", "encryption")).text == f"SSE-S3 (key {KEY_NAME})"
    record(d, "05-objects")
    row.find_element(*by("LINK_TEXT", "big.bin")).click()
    assert find(d, "ID", "encryption-mode").text == "SSE-S3"
    assert d.find_element(*by("ID", "kms-key")).text == KEY_NAME
    assert d.find_element(*by("ID", "kms-key-version")).text == "version 1"
    assert d.find_element(*by("ID", "size")).text == f"{len(data)} bytes"
    assert d.find_element(*by("ID", "etag")).text == head["ETag"]
    record(d, "06-object-details")

    # Download: the same bytes.
    d.find_element(*by("ID", "download")).click()
    target = d.downloads / "big.bin"
    deadline = time.monotonic() + 60
    while not (target.exists() and target.stat().st_size == len(data) and not list(d.downloads.glob("*.crdownload"))):
        assert time.monotonic() < deadline, f"no download: {list(d.downloads.iterdir())}"
        time.sleep(0.1)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()

    # Delete: a delete marker on top of the version.
    find(d, "ID", "delete-object").click()
    assert "Deleted big.bin." in find(d, "ID", "notice").text
    assert not d.find_elements(*by("CSS_SELECTOR", 'tr[data-key="big.bin"]'))
    d.find_element(*by("ID", "show-versions")).click()
    marker = find(d, "CSS_SELECTOR", 'tr.delete-marker[data-key="big.bin"]')
    assert "(latest)" in marker.text and "Delete marker" in marker.text
    version = d.find_element(*by("CSS_SELECTOR", 'tr.version[data-key="big.bin"]'))
    assert version.get_attribute("data-version") == head["VersionId"]
    versions = s3.list_object_versions(Bucket="photos")
    assert [m["IsLatest"] for m in versions["DeleteMarkers"]] == [True]
    assert marker.get_attribute("data-version") == versions["DeleteMarkers"][0]["VersionId"]
    record(d, "07-versions")
    d.get(server.console + "/server")
    assert find(d, "ID", "default-key").text == KEY_NAME
    assert d.find_element(*by("ID", "kms-status")).text == "ready"
    record(d, "08-server")
    d.get(server.console + "/users")
    assert find(d, "CSS_SELECTOR", f'tr[data-user="{READER}"] td.policies .policy').text == "readonly"
    assert d.find_element(*by("ID", "policy-readonly"))
    record(d, "08b-users")
    sign_out(d)
    assert d.get_cookie("coffer_session") is None

    # The readonly user sees the buckets but is refused creating one, said plainly.
    sign_in(d, server.console, READER, READER_SECRET)
    assert find(d, "ID", "signed-in-user").text == READER
    assert d.find_element(*by("LINK_TEXT", "photos"))
    d.find_element(*by("ID", "bucket-name")).send_keys("notallowed")
    d.find_element(*by("ID", "create-bucket-button")).click()
    err = find(d, "ID", "error").text
    assert err == "Could not create bucket notallowed: your policies do not allow it (AccessDenied).", err
    record(d, "09-readonly-refused")
    d.get(server.console + "/users")
    assert find(d, "ID", "error").text == "Could not list the users: your policies do not allow it (AccessDenied)."
    assert not d.find_elements(*by("CSS_SELECTOR", "tr[data-user]"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="notallowed")
    assert e.value.response["Error"]["Code"] == "404"

    # No secret key in any page, URL or cookie, nor in the server's log.
    for url, source in d.seen:
        for secret in (SECRET, READER_SECRET, KMS_SECRET):
            assert secret not in url and secret not in source, url
    for c in d.get_cookies():
        assert c["name"] in ("coffer_session", "coffer_login"), c
    log = server.output()
    for secret in (SECRET, READER_SECRET, KMS_SECRET, "not-the-secret"):
        assert secret not in log


def test_an_expired_session_is_sent_to_sign_in(tmp_path, browser):
    d = browser
    server = ConsoleServer(tmp_path / "data", env={"COFFER_CONSOLE_SESSION_LIFETIME": "3s"}).start()
    sign_in(d, server.console, ACCESS, SECRET)
    find(d, "ID", "create-bucket")
    time.sleep(3.5)
    d.get(server.console + "/buckets")
    assert "Your session has ended" in find(d, "ID", "notice").text
    assert d.current_url.endswith("/login?expired=1")
    record(d, "10-session-expired")
    # The expired id is refused by the server, whatever the browser still sends.
    d.find_element(*by("ID", "access_key"))


def signed_in_session(server, access=ACCESS, secret=SECRET):
    s = requests.Session()
    page = s.get(server.console + "/login", verify=server.ca or True)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.text).group(1)
    r = s.post(server.console + "/login", data={"token": token, "access_key": access, "secret_key": secret}, allow_redirects=False, verify=server.ca or True)
    assert r.status_code == 303 and r.headers["location"] == "/buckets", r.text
    s.set_cookie_header = r.headers["set-cookie"]
    return s


def test_a_forged_post_changes_nothing(tmp_path):
    server = ConsoleServer(tmp_path / "data").start()
    s3 = server.client()
    s3.create_bucket(Bucket="keep")
    s = signed_in_session(server)
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', s.get(server.console + "/buckets").text).group(1)

    # Without the token, or with a wrong one: 403 and nothing done.
    for form in ({"name": "forged"}, {"name": "forged", "csrf": "0" * 64}, {"name": "forged", "csrf": ""}):
        r = s.post(server.console + "/buckets", data=form, allow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text, (form, r.status_code, r.text)
    r = s.post(server.console + "/buckets/delete", data={"name": "keep"}, allow_redirects=False)
    assert r.status_code == 403
    r = s.post(server.console + "/api/upload/start/keep", json={"key": "x"})
    assert r.status_code == 403
    r = s.put(server.console + "/api/upload/part/keep?key=x&upload=u&part=1", data=b"x", headers={"x-csrf-token": "f" * 64})
    assert r.status_code == 403
    r = s.post(server.console + "/upload/keep", files={"file": ("x.txt", b"forged")}, data={"prefix": ""}, allow_redirects=False)
    assert r.status_code == 403
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["keep"], names
    assert s3.list_objects_v2(Bucket="keep")["KeyCount"] == 0

    # Another site's page has no session: the same POST without the cookie goes to sign-in.
    r = requests.post(server.console + "/buckets", data={"name": "forged", "csrf": token}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # A sign-in without the form's token is refused too.
    r = requests.post(server.console + "/login", data={"access_key": ACCESS, "secret_key": SECRET}, allow_redirects=False)
    assert r.status_code == 403 and "coffer_session" not in r.headers.get("set-cookie", "")

    # With the token, the same request works (the refusals above were the token's).
    r = s.post(server.console + "/buckets", data={"name": "made", "csrf": token}, allow_redirects=False)
    assert r.status_code == 303, r.text
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["keep", "made"]


def test_under_tls_the_cookies_are_secure(tmp_path):
    certs = tmp_path / "certs"
    make_certs(certs)
    server = ConsoleServer(tmp_path / "data", certs_dir=certs).start()
    assert server.console.startswith("https://")
    login = requests.get(server.console + "/login", verify=server.ca)
    assert re.search(r"coffer_login=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure", login.headers["set-cookie"])
    s = signed_in_session(server)
    assert re.search(r"coffer_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure", s.set_cookie_header)
    page = s.get(server.console + "/buckets", verify=server.ca)
    assert page.status_code == 200 and ACCESS in page.text and SECRET not in page.text
    for h, v in (("content-security-policy", "frame-ancestors 'none'"), ("x-frame-options", "DENY"), ("cache-control", "no-store")):
        assert v in page.headers[h], (h, page.headers)
    # Plain HTTP to the TLS console gets no page.
    with pytest.raises(requests.RequestException):
        requests.get(server.console.replace("https://", "http://") + "/login", timeout=5)
