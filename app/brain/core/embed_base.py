"""What the embedders and the model's download share: the embedding error, the vectors a call
returns, content hashes, and where a local model's files are found.

Why a module of its own: the ONNX runtime (``onnx_embed``) and the download (``model_fetch``) need
these, and ``embed`` builds on both; with the shared part here the imports go one way.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain.shared.config import data_dir


class EmbedError(RuntimeError):
    """The embedder could not produce vectors (model missing, API down after retries...).

    ``transient`` says whether the same call may succeed later (a 503, a timeout, a busy API):
    the embedding worker backs off and retries those, and counts the others against the texts."""

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


@dataclass
class EmbedResult:
    vectors: np.ndarray  # float32, shape (n, dim), rows L2-normalised
    tokens: int  # tokens billed or processed, for the cost ledger


def text_hash(text: str) -> str:
    """Key of the embedding cache (together with the model id)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MB blocks (model weights are tens of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json")  # what loading a folder reads


def default_models_dir() -> Path:
    """Where fetched models live: ``$BRAIN_EMBED_MODELS_DIR``, else ``$XDG_DATA_HOME/brain/models``.

    The environment variable is the ``embed.models_dir`` setting's own; reading it here lets code
    that names a model without a configuration (tests, benchmarks) find the same folder."""
    env = os.environ.get("BRAIN_EMBED_MODELS_DIR", "")
    return Path(env).expanduser() if env else data_dir() / "models"


def resolve_local_model(name: str, models_dir: Path | None = None) -> Path:
    """Find the model folder: ``name`` as a path, else ``<models_dir>/<name>`` once fetched.

    A fetch renames its staging folder into place only when every pinned file is verified, so a
    folder that exists under the models dir is complete."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if "/" in name or name.startswith(("~", ".")):
        raise EmbedError(f"local embedding model folder {str(path)!r} does not exist", transient=False)
    root = models_dir or default_models_dir()
    if (root / name).is_dir():
        return root / name
    raise EmbedError(
        f"local embedding model {name!r} is not in {root}: run `brain model fetch` (a pinned, "
        "checksummed download), or set embed.local_model to a folder holding model.safetensors, "
        "config.json and tokenizer.json", transient=False)


def local_model_id(model: str, folder: Path) -> str:
    """The id vectors of a local model are stored under: its name, or the folder's name for a path."""
    return "local/" + (folder.name if Path(model).expanduser().is_dir() else model)
