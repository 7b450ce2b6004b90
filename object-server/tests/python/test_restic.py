"""restic (Debian's package) backing up to and restoring from a versioned, object-locked,
encrypted bucket: the backup tool's view of immutability."""
import filecmp
import os
import subprocess

import botocore.exceptions
import pytest

from conftest import Server, pattern, peer
from test_versioning import STATIC_KEY, code


def restic(server, repo, *args, check=True):
    env = dict(os.environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": server.access,
            "AWS_SECRET_ACCESS_KEY": server.secret,
            "RESTIC_REPOSITORY": f"s3:{server.endpoint}/{repo}",
            "RESTIC_PASSWORD": "restic-test-password",
            "RESTIC_CACHE_DIR": str(server.data_dir.parent / "restic-cache"),
        }
    )
    r = subprocess.run([peer("restic"), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"restic {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}\nserver:\n{server.output()[-3000:]}")
    return r


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, (cmp.left_only, cmp.right_only, cmp.diff_files)
    for sub in cmp.common_dirs:
        same_tree(os.path.join(a, sub), os.path.join(b, sub))
    for f in cmp.common_files:
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read()


def test_restic_backup_and_restore_on_a_locked_encrypted_bucket(tmp_path):
    s = Server(tmp_path / "data", env={"MINIO_KMS_SECRET_KEY": STATIC_KEY, "MINIO_KMS_AUTO_ENCRYPTION": "on"}).start()
    c = s.client()
    c.create_bucket(Bucket="backups", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="backups", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    c.put_bucket_encryption(Bucket="backups", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "big.bin").write_bytes(pattern(6 * 1024 * 1024, 1))
    (src / "docs" / "a.txt").write_text("first version\n")
    (src / "docs" / "deep" / "b.bin").write_bytes(os.urandom(300_000))
    restic(s, "backups", "init")
    restic(s, "backups", "backup", "--host", "test", str(src))
    (src / "docs" / "a.txt").write_text("second version\n")
    (src / "new.bin").write_bytes(pattern(2 * 1024 * 1024, 2))
    restic(s, "backups", "backup", "--host", "test", str(src))
    snaps = restic(s, "backups", "snapshots", "--json").stdout
    assert snaps.count('"id"') == 2
    restic(s, "backups", "check", "--read-data")
    out = tmp_path / "restore"
    restic(s, "backups", "restore", "latest", "--target", str(out))
    same_tree(src, out / str(src).lstrip("/"))
    # Every object restic wrote is encrypted, versioned and under the default retention; a
    # version cannot be removed without the bypass, so a stolen key cannot destroy the backup.
    vs = c.list_object_versions(Bucket="backups")["Versions"]
    assert any(v["Key"].startswith("data/") for v in vs)
    pack = next(v for v in vs if v["Key"].startswith("data/"))
    h = c.head_object(Bucket="backups", Key=pack["Key"], VersionId=pack["VersionId"])
    assert h["ServerSideEncryption"] == "AES256" and h["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_object(Bucket="backups", Key=pack["Key"], VersionId=pack["VersionId"])
    assert code(e) == "AccessDenied"
    # Deleting the repository's objects only hides them behind delete markers: every version of
    # them stays, and restoring the old versions gives the backup back.
    for v in vs:
        if v["IsLatest"]:
            c.delete_object(Bucket="backups", Key=v["Key"])
    assert restic(s, "backups", "snapshots", check=False).returncode != 0
    for v in vs:
        if v["IsLatest"]:
            c.copy_object(Bucket="backups", Key=v["Key"], CopySource={"Bucket": "backups", "Key": v["Key"], "VersionId": v["VersionId"]})
    out2 = tmp_path / "restore2"
    restic(s, "backups", "restore", "latest", "--target", str(out2))
    same_tree(src, out2 / str(src).lstrip("/"))
    s.stop()
