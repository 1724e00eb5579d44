"""Backups off the VM: each ``brain backup`` also goes, encrypted with age, to an S3 bucket.

Why: a backup on the brain VM dies with the VM (a replaced instance, Oracle reclaiming an idle
Always Free one). OCI Object Storage speaks the S3 API (``https://<namespace>.compat.objectstorage.
<region>.oraclecloud.com``, a Customer Secret Key as access/secret key, path-style addressing),
and so do most others, so one client serves any of them.

Why age to a *recipient*: the VM holds only the public key (``backup.age_recipient``), so the
backups in the bucket cannot be read with anything found on the VM or in the bucket's
credentials; the identity (private key) stays with the user and is needed only to restore.
age is a small, audited tool with a Debian package; it streams, so memory stays flat.

Retention: the newest ``backup.s3_keep`` objects under ``backup.s3_prefix`` are kept; names carry
the UTC time (``brain-20261127T031500Z.db.age``), so name order is time order.
"""

from __future__ import annotations

import builtins
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from brain.shared.settings import ServerConfig

AGE_TIMEOUT = 3600.0  # a multi-GB database on a slow disk; age itself is fast
SUFFIX = ".age"
_NAME = re.compile(r"^brain-\d{8}T\d{6}Z(?:-\d+)?\.db\.age$")


class OffsiteError(RuntimeError):
    """An off-VM backup step failed; the message names the endpoint, bucket, key or file."""


@dataclass(frozen=True)
class Remote:
    """One backup in the bucket."""

    key: str
    size: int

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def configured(cfg: ServerConfig) -> bool:
    return bool(cfg.backup.s3_endpoint and cfg.backup.s3_bucket)


def _age(args: list[str], what: str) -> None:
    """Run age; a missing binary or a failure is an OffsiteError saying which."""
    exe = shutil.which("age")
    if exe is None:
        raise OffsiteError("the age command is not installed (Debian/Ubuntu: apt-get install age)")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, timeout=AGE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise OffsiteError(f"{what}: age did not finish within {AGE_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise OffsiteError(f"{what}: age failed: {proc.stderr.decode(errors='replace').strip()[:300]}")


def encrypt(src: Path, dst: Path, recipient: str) -> None:
    if not recipient.startswith("age1"):
        raise OffsiteError("backup.age_recipient must be an age public key (age1...), made with age-keygen")
    _age(["--encrypt", "--recipient", recipient, "--output", str(dst), str(src)], f"encrypting {src}")


def decrypt(src: Path, dst: Path, identity: Path) -> None:
    if not identity.is_file():
        raise OffsiteError(f"age identity file {identity} does not exist")
    _age(["--decrypt", "--identity", str(identity), "--output", str(dst), str(src)],
         f"decrypting {src} with {identity}")


class Bucket:
    """The bucket through boto3, with timeouts and bounded retries on every request."""

    def __init__(self, cfg: ServerConfig, client: Any = None):
        self.endpoint = cfg.backup.s3_endpoint
        self.bucket = cfg.backup.s3_bucket
        self.prefix = cfg.backup.s3_prefix
        self._client = client or _client(cfg)

    def where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix} at {self.endpoint}"

    def _call(self, what: str, key: str, fn: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise OffsiteError(f"{what} {self.where(key)}: {err.get('Code', '?')}: {err.get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise OffsiteError(f"{what} {self.where(key)}: {exc}") from None

    def upload(self, path: Path, name: str) -> str:
        key = self.prefix + name
        self._call("uploading to", key, lambda: self._client.upload_file(str(path), self.bucket, key))
        return key

    def list(self) -> list[Remote]:
        """The backups under the prefix, oldest first (other objects are left alone)."""
        out: list[Remote] = []
        token: str | None = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix} | ({"ContinuationToken": token} if token else {})
            page = self._call("listing", "", partial(self._client.list_objects_v2, **kw))
            out += [Remote(o["Key"], int(o.get("Size", 0))) for o in page.get("Contents", [])
                    if _NAME.match(o["Key"][len(self.prefix):])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(out, key=lambda r: r.name)

    def prune(self, keep: int) -> builtins.list[str]:
        """Delete all but the newest ``keep`` backups; returns the keys deleted."""
        old = [r.key for r in self.list()[:-keep]] if keep > 0 else []
        for key in old:
            self._call("deleting", key, partial(self._client.delete_object, Bucket=self.bucket, Key=key))
        return old

    def download(self, key: str, dest: Path) -> None:
        self._call("downloading", key, lambda: self._client.download_file(self.bucket, key, str(dest)))


def _client(cfg: ServerConfig) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    timeout = cfg.backup.s3_timeout
    conf = BotoConfig(connect_timeout=timeout, read_timeout=timeout, signature_version="s3v4",
                      retries={"max_attempts": cfg.backup.s3_retries + 1, "mode": "standard"},
                      s3={"addressing_style": "path"},  # OCI's S3 compatibility serves path-style
                      request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.session.Session().client(
        "s3", endpoint_url=cfg.backup.s3_endpoint, region_name=cfg.backup.s3_region or None,
        aws_access_key_id=cfg.backup.s3_access_key or None,
        aws_secret_access_key=cfg.backup.s3_secret_key or None, config=conf)


@dataclass
class Sent:
    key: str
    size: int
    removed: list[str]


def send(backup: Path, cfg: ServerConfig, bucket: Bucket | None = None) -> Sent:
    """Encrypt ``backup`` to ``backup.age_recipient``, upload it, prune the bucket to ``backup.s3_keep``."""
    bucket = bucket or Bucket(cfg)
    recipient = cfg.backup.age_recipient
    if not recipient:
        raise OffsiteError("backup.s3_bucket is set but backup.age_recipient is not: backups leave the VM "
                           "only encrypted (make a key with age-keygen, keep its private half off the VM)")
    with tempfile.TemporaryDirectory(prefix="brain-offsite-") as tmp:
        sealed = Path(tmp) / (backup.name + SUFFIX)
        encrypt(backup, sealed, recipient)
        key = bucket.upload(sealed, sealed.name)
        size = sealed.stat().st_size
    return Sent(key, size, bucket.prune(cfg.backup.s3_keep))


def fetch(which: str, identity: Path, dest: Path, cfg: ServerConfig, bucket: Bucket | None = None) -> str:
    """Download backup ``which`` (a key, a name, or ``latest``) and decrypt it to ``dest``; returns its key."""
    bucket = bucket or Bucket(cfg)
    found = bucket.list()
    if which == "latest":
        if not found:
            raise OffsiteError(f"no backups in {bucket.where()}")
        key = found[-1].key
    else:
        key = next((r.key for r in found if which in (r.key, r.name, r.name.removesuffix(SUFFIX))), "")
        if not key:
            raise OffsiteError(f"no backup {which!r} in {bucket.where()} ({len(found)} there: `brain restore --list`)")
    with tempfile.TemporaryDirectory(prefix="brain-offsite-") as tmp:
        sealed = Path(tmp) / Path(key).name
        bucket.download(key, sealed)
        decrypt(sealed, dest, identity)
    return key
