"""``brain backup`` and ``brain restore``: consistent copies of the SQLite database, with rotation.

Why the online backup API and not a file copy: brain-api runs the database in WAL mode and may be
writing while the daily timer fires. Copying ``brain.db`` alone misses commits still in
``brain.db-wal`` and can catch a page half-written; ``sqlite3.Connection.backup`` copies one
consistent snapshot while readers and writers carry on.

Each backup is checked with ``PRAGMA integrity_check`` before it is kept, converted to a single
self-contained file (rollback journal, no ``-wal`` beside it), and written under a temporary name
that is renamed only when complete, so a crash never leaves a half backup that rotation would
count. A restore checks the backup the same way before touching the live database, and keeps a
safety copy of what it replaces.

With ``backup.s3_bucket`` set, each backup also leaves the VM, age-encrypted, to an S3 bucket
(OCI Object Storage's S3 API, or any other), pruned there to ``backup.s3_keep``; ``brain restore
--from-bucket latest --identity KEY`` brings one back onto a fresh host (:mod:`brain.core.offsite`).
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from brain.core import offsite
from brain.shared.settings import ServerConfig

BACKUP_PREFIX = "brain-"
BACKUP_SUFFIX = ".db"
_NAME_RE = re.compile(r"^brain-(\d{8}T\d{6}Z)(?:-(\d+))?\.db$")


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says which file and why."""


@dataclass
class BackupResult:
    """What one ``make_backup`` call produced and removed."""

    path: Path
    size: int
    removed: list[Path] = field(default_factory=list)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open an existing database without ever creating one (a typo must not yield an empty backup)."""
    if not path.is_file():
        raise BackupError(f"database {path} does not exist")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open database {path}: {exc}") from None


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """Return SQLite's integrity_check findings (empty when the database is sound)."""
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def backup_files(dest: Path) -> list[Path]:
    """The backups in ``dest`` made by ``brain backup``, oldest first (by the time in the name,
    then the ``-N`` suffix of a second backup within the same second)."""
    if not dest.is_dir():
        return []
    found = []
    for p in dest.iterdir():
        m = _NAME_RE.match(p.name)
        if m and p.is_file():
            found.append(((m.group(1), int(m.group(2) or 0)), p))
    return [p for _, p in sorted(found)]


def _unique_name(dest: Path, now: datetime) -> Path:
    base = f"{BACKUP_PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    candidate = dest / f"{base}{BACKUP_SUFFIX}"
    n = 1
    while candidate.exists():
        candidate = dest / f"{base}-{n}{BACKUP_SUFFIX}"
        n += 1
    return candidate


def _copy_snapshot(src: sqlite3.Connection, target: Path) -> None:
    """Write a checked, self-contained snapshot of ``src`` to ``target`` (replaced atomically)."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # backups hold everything: owner only
    os.close(fd)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            problems = integrity_problems(dst)
        finally:
            dst.close()
        if problems:
            raise BackupError(f"snapshot {partial} failed its integrity check: {'; '.join(problems[:3])}")
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def make_backup(db_path: str | os.PathLike[str], dest: str | os.PathLike[str], keep: int,
                now: datetime | None = None) -> BackupResult:
    """Snapshot ``db_path`` into ``dest`` as ``brain-YYYYmmddTHHMMSSZ.db`` and keep the newest ``keep``."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}")
    db, dest_dir = Path(db_path), Path(dest)
    src = _connect_readonly(db)
    try:
        try:
            dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BackupError(f"cannot create backup directory {dest_dir}: {exc}") from None
        target = _unique_name(dest_dir, now or datetime.now(UTC))
        try:
            _copy_snapshot(src, target)
        except sqlite3.Error as exc:
            raise BackupError(f"backup of {db} to {target} failed: {exc}") from None
    finally:
        src.close()
    removed = []
    for old in backup_files(dest_dir)[:-keep]:
        old.unlink()
        removed.append(old)
    return BackupResult(target, target.stat().st_size, removed)


def restore_backup(backup: str | os.PathLike[str], db_path: str | os.PathLike[str],
                   safety_copy: bool = True, now: datetime | None = None) -> Path | None:
    """Replace the database at ``db_path`` with ``backup`` after checking the backup is sound.

    Returns the safety copy of the replaced database (None when there was none). The server must
    be stopped: pages are written into the live file through SQLite, so a running server would
    not crash, but its in-flight writes would be lost.
    """
    source, db = Path(backup), Path(db_path)
    src = _connect_readonly(source)
    try:
        problems = integrity_problems(src)
        if problems:
            raise BackupError(f"backup {source} is damaged, nothing restored: {'; '.join(problems[:3])}")
        tables = src.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables == 0:
            raise BackupError(f"backup {source} holds no tables, nothing restored")
        saved = None
        if safety_copy and db.exists():
            stamp = f"{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}"
            saved = db.with_name(f"{db.name}.pre-restore-{stamp}")
            current = _connect_readonly(db)
            try:
                _copy_snapshot(current, saved)
            finally:
                current.close()
        db.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(db)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")  # the mode brain-api runs in
            problems = integrity_problems(dst)
        finally:
            dst.close()
        if problems:
            raise BackupError(f"restored database {db} failed its integrity check: {'; '.join(problems[:3])}")
        return saved
    except sqlite3.Error as exc:
        raise BackupError(f"restore of {source} into {db} failed: {exc}") from None
    finally:
        src.close()


@click.command("backup")
@click.option("--dest", type=click.Path(file_okay=False), help="Directory for the backup (default: backup.dir).")
@click.option("--keep", type=click.IntRange(min=1), help="Backups to keep, oldest removed (default: backup.keep).")
@click.pass_obj
def backup_cmd(obj, dest: str | None, keep: int | None) -> None:
    """Write a consistent snapshot of the database and remove the oldest beyond --keep.

    Safe while brain-api is running (SQLite online backup API). Run daily by the
    brain-backup.timer on the server.

    \b
    Example:
      brain backup --dest /var/backups/brain --keep 7
    """
    cfg = obj.server
    try:
        result = make_backup(cfg.server.db_path, dest or cfg.backup.dir, keep or cfg.backup.keep)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result.path} ({result.size} bytes)")
    for old in result.removed:
        click.echo(f"removed {old}", err=True)
    if offsite.configured(cfg):
        try:
            sent = offsite.send(result.path, cfg)
        except offsite.OffsiteError as exc:  # the local backup stands; the timer's failure is what alerts
            raise click.ClickException(f"backup kept at {result.path}, but not sent off the VM: {exc}") from None
        click.echo(f"sent to s3://{cfg.backup.s3_bucket}/{sent.key} ({sent.size} bytes, encrypted)")
        for key in sent.removed:
            click.echo(f"removed s3://{cfg.backup.s3_bucket}/{key}", err=True)


@click.command("restore")
@click.argument("backup_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--from-bucket", "remote", metavar="NAME|latest",
              help="Restore a backup from the S3 bucket (backup.s3_*) instead of a local file.")
@click.option("--identity", type=click.Path(dir_okay=False),
              help="age identity (private key) file that decrypts bucket backups.")
@click.option("--list", "list_remote", is_flag=True, help="List the backups in the bucket and exit.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-safety-copy", is_flag=True, help="Do not keep a copy of the database being replaced.")
@click.pass_obj
def restore_cmd(obj, backup_file: str | None, remote: str | None, identity: str | None, list_remote: bool,
                yes: bool, no_safety_copy: bool) -> None:
    """Replace the database with BACKUP_FILE (or a bucket backup) after checking its integrity.

    Stop brain-api first. The replaced database is kept beside it as
    <db>.pre-restore-<time> unless --no-safety-copy.

    \b
    Example:
      sudo systemctl stop brain
      sudo -u brain BRAIN_CONFIG=/etc/brain/config.toml \\
        brain restore /var/backups/brain/brain-20261127T031500Z.db --yes
      sudo brain restore --from-bucket latest --identity /root/brain-backup.key --yes
      sudo systemctl start brain
    """
    cfg = obj.server
    if (list_remote or remote) and not offsite.configured(cfg):
        raise click.ClickException("no bucket configured: set backup.s3_endpoint and backup.s3_bucket")
    if list_remote:
        try:
            for r in offsite.Bucket(cfg).list():
                click.echo(f"{r.name}\t{r.size}")
        except offsite.OffsiteError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if bool(backup_file) == bool(remote):
        raise click.UsageError("give either BACKUP_FILE or --from-bucket NAME|latest")
    if remote and not identity:
        raise click.UsageError("--from-bucket needs --identity, the age key the backups were encrypted to")
    db = cfg.server.db_path
    if not yes:
        click.confirm(f"Replace {db} with {backup_file or remote}? brain-api must be stopped", abort=True)
    if remote:
        _restore_remote(cfg, remote, Path(identity or ""), db, not no_safety_copy)
        return
    assert backup_file is not None  # exactly one of BACKUP_FILE and --from-bucket (checked above)
    try:
        saved = restore_backup(backup_file, db, safety_copy=not no_safety_copy)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {backup_file} into {db}")
    if saved:
        click.echo(f"previous database kept as {saved}", err=True)


def _restore_remote(cfg: ServerConfig, remote: str, identity: Path, db: str, safety_copy: bool) -> None:
    """Download and decrypt into a private temporary file beside the database, then restore it."""
    import tempfile

    Path(db).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=Path(db).parent) as tmp:
        plain = Path(tmp) / "backup.db"
        try:
            key = offsite.fetch(remote, identity, plain, cfg)
            saved = restore_backup(plain, db, safety_copy=safety_copy)
        except (offsite.OffsiteError, BackupError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"restored s3://{cfg.backup.s3_bucket}/{key} into {db}")
    if saved:
        click.echo(f"previous database kept as {saved}", err=True)
