"""Embedding providers: a local BERT-family sentence encoder on CPU, or an OpenAI-compatible API.

The local encoder runs the model's own ``model.safetensors`` as a fused ONNX Runtime graph
(``onnx_embed``; ``embed.local_runtime = "numpy"`` keeps the plain NumPy forward pass defined here,
which gives identical vectors). Neither needs PyTorch. The model folder is a path the user names, or
a pinned download (``brain model fetch``, see ``model_fetch``) under ``embed.models_dir``; the tests
load the same files through the same code.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from brain.core.embed_base import (  # noqa: F401 - EmbedError and the rest are part of this module's API
    MODEL_FILES,
    EmbedError,
    EmbedResult,
    default_models_dir,
    file_sha256,
    local_model_id,
    resolve_local_model,
    text_hash,
)
from brain.shared.settings import ServerConfig, embed_provider

log = logging.getLogger(__name__)


class TextModel(Protocol):
    """What ingest needs to cut chunks for a model: its id and its token counts (no vectors)."""

    model_id: str  # recorded with every vector; search never mixes two model ids
    max_tokens: int  # longest input the model reads; chunks are sized below it

    def count_tokens(self, texts: list[str]) -> list[int]: ...


class Embedder(TextModel, Protocol):
    """What the embedding worker and search need from a provider."""

    dim: int
    price_per_mtok: float  # USD per million tokens (0 for local)

    def embed(self, texts: list[str]) -> EmbedResult: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32, copy=False)


# ---------------------------------------------------------------- local model (NumPy BERT)

def _gelu(x: np.ndarray, block: int = 1 << 15) -> np.ndarray:
    """Exact (erf) GELU, in place, over cache-sized blocks.

    This element-wise step, not the matrix products, dominated the encoder's time: a dozen passes
    over a 100 MB activation array are memory-bound, the same passes over a 128 KB block stay in
    the CPU cache (measured 2.5x faster)."""
    flat = x.reshape(-1)
    for start in range(0, flat.size, block):
        _gelu_block(flat[start:start + block])
    return x


def _gelu_block(x: np.ndarray) -> None:
    """NumPy has no erf: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), in place on ``x``."""
    a = np.abs(x) * np.float32(1 / math.sqrt(2.0))  # |x| / sqrt(2)
    t = a * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|x|/sqrt2)
    # gelu = x * (1 + erf(x/sqrt2)) / 2; for x >= 0: x * (1 - poly/2), for x < 0: x * poly/2
    poly *= 0.5
    x *= np.where(x >= 0, 1.0 - poly, poly)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class LocalTokenizer:
    """A local model's token counts and limits without its weights: all that ingest needs.

    Its tokenizer never truncates and is never reconfigured after construction, so any number of
    threads may use it at once (a tokenizer whose truncation is switched on and off per call is
    not thread-safe: a concurrent ``embed`` then encodes untruncated text)."""

    def __init__(self, model: str, folder: Path | None = None):
        from tokenizers import Tokenizer

        folder = folder or resolve_local_model(model)
        try:
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            config = json.loads((folder / "config.json").read_text())
            st_cfg = folder / "sentence_bert_config.json"
            seq = json.loads(st_cfg.read_text()).get("max_seq_length", 256) if st_cfg.exists() else 256
        except Exception as exc:  # OSError, ValueError, or the tokenizers library's own exception
            raise EmbedError(f"cannot load the tokenizer of local model {model!r} from {folder}: {exc}",
                             transient=False) from exc
        self._tok.no_padding()
        self._tok.no_truncation()
        self.folder = folder
        self.max_tokens = int(min(seq, config.get("max_position_embeddings", 512)))
        self.model_id = local_model_id(model, folder)

    def count_tokens(self, texts: list[str]) -> list[int]:
        # the fast variant skips computing character offsets, which counting does not need
        return [len(e.ids) for e in self._tok.encode_batch_fast(texts, add_special_tokens=True)]


class LocalEmbedder:
    """Sentence embeddings from a BERT encoder with mean pooling, as sentence-transformers does."""

    price_per_mtok = 0.0

    def __init__(self, model: str, batch_size: int = 32, folder: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = folder or resolve_local_model(model)
        try:
            config = json.loads((folder / "config.json").read_text())
            self._w = load_file(str(folder / "model.safetensors"))
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except (OSError, ValueError) as exc:
            raise EmbedError(f"cannot load local embedding model from {folder}: {exc}") from exc
        if config.get("model_type") != "bert":
            raise EmbedError(f"{folder}: only BERT-architecture models are supported, "
                             f"not {config.get('model_type')!r}")
        st_cfg = folder / "sentence_bert_config.json"
        seq = json.loads(st_cfg.read_text()).get("max_seq_length", 256) if st_cfg.exists() else 256
        self.max_tokens = int(min(seq, config.get("max_position_embeddings", 512)))
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self.dim = int(config["hidden_size"])
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self._w else ""
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_tokens)
        self._counter = LocalTokenizer(model, folder)
        self.batch_size = batch_size
        self.model_id = local_model_id(model, folder)
        # one forward pass at a time per process: they are CPU-bound and already use every core,
        # so concurrent requests would only thrash the caches and all finish later
        self._lock = threading.Lock()
        # pre-transpose linear weights once so the forward pass is plain x @ W
        self._lin: dict[str, np.ndarray] = {}
        for key, value in self._w.items():
            if key.endswith(".weight") and value.ndim == 2 and "embeddings" not in key:
                self._lin[key] = np.ascontiguousarray(value.T)

    def _p(self, name: str) -> np.ndarray:
        return self._w[self._prefix + name]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._lin[self._prefix + name + ".weight"] + self._p(name + ".bias")

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts without truncation (a tokenizer of its own: the shared one truncates)."""
        return self._counter.count_tokens(texts)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, seq = ids.shape
        h = (self._p("embeddings.word_embeddings.weight")[ids]
             + self._p("embeddings.position_embeddings.weight")[:seq][None, :, :]
             + self._p("embeddings.token_type_embeddings.weight")[0][None, None, :])
        h = _layer_norm(h, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self._eps)
        heads, dh = self._heads, self.dim // self._heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i in range(self._layers):
            pre = f"encoder.layer.{i}."
            x2 = h.reshape(batch * seq, self.dim)

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3)

            q = split(self._dense(x2, pre + "attention.self.query"))
            k = split(self._dense(x2, pre + "attention.self.key"))
            v = split(self._dense(x2, pre + "attention.self.value"))
            per_head = np.empty((batch, heads, seq, dh), np.float32)
            for b in range(batch):  # one text at a time keeps the score matrix in the CPU cache
                scores = q[b] @ k[b].transpose(0, 2, 1)
                scores *= np.float32(1 / math.sqrt(dh))
                scores += bias[b]
                scores -= scores.max(-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(-1, keepdims=True)
                np.matmul(scores, v[b], out=per_head[b])
            ctx = per_head.transpose(0, 2, 1, 3).reshape(batch * seq, self.dim)
            attn = self._dense(ctx, pre + "attention.output.dense") + x2
            attn = _layer_norm(attn, self._p(pre + "attention.output.LayerNorm.weight"),
                               self._p(pre + "attention.output.LayerNorm.bias"), self._eps)
            inter = _gelu(self._dense(attn, pre + "intermediate.dense"))
            out = self._dense(inter, pre + "output.dense") + attn
            out = _layer_norm(out, self._p(pre + "output.LayerNorm.weight"),
                              self._p(pre + "output.LayerNorm.bias"), self._eps)
            h = out.reshape(batch, seq, self.dim)
        m = mask[:, :, None].astype(np.float32)
        return (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)

    def embed(self, texts: list[str]) -> EmbedResult:
        """Embed in length-sorted batches so padding (wasted work) stays small."""
        if not texts:
            return EmbedResult(np.zeros((0, self.dim), np.float32), 0)
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> EmbedResult:
        encodings = self._tok.encode_batch(texts, add_special_tokens=True)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self.dim), np.float32)
        tokens = 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            seq = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), seq), np.int64)
            mask = np.zeros((len(idx), seq), np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
                tokens += n
            out[idx] = self._forward(ids, mask)
        return EmbedResult(_normalise(out), tokens)


# ---------------------------------------------------------------- OpenAI-compatible API

OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedder:
    """Embeddings over the official ``openai`` client; any OpenAI-compatible server works.

    Retries (429, 5xx, timeouts, connection errors) use the client's own exponential backoff,
    which also honours ``Retry-After``; batches are cut by count and by estimated tokens.
    """

    max_tokens = 8000

    def __init__(self, api_key: str, model: str = "text-embedding-3-small", base_url: str = "",
                 timeout: float = 30.0, max_retries: int = 5, batch_size: int = 128,
                 batch_tokens: int = 100_000, price_per_mtok: float = 0.02):
        import openai

        self._client = openai.OpenAI(api_key=api_key or "none", base_url=base_url or None,
                                     timeout=timeout, max_retries=max_retries)
        self._base = base_url or "https://api.openai.com/v1"
        self.model = model
        self.model_id = "openai/" + model
        self.dim = OPENAI_DIMS.get(model, 0)  # learnt from the first answer when unknown
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.price_per_mtok = price_per_mtok

    def count_tokens(self, texts: list[str]) -> list[int]:
        """An upper-bound estimate (about 3 characters a token): no tokenizer download needed."""
        return [len(t) // 3 + 1 for t in texts]

    def _batches(self, texts: list[str]) -> list[list[int]]:
        batches: list[list[int]] = [[]]
        used = 0
        for i, n in enumerate(self.count_tokens(texts)):
            if batches[-1] and (len(batches[-1]) >= self.batch_size or used + n > self.batch_tokens):
                batches.append([])
                used = 0
            batches[-1].append(i)
            used += n
        return batches

    def embed(self, texts: list[str]) -> EmbedResult:
        import openai

        if not texts:
            return EmbedResult(np.zeros((0, self.dim), np.float32), 0)
        rows: list[np.ndarray | None] = [None] * len(texts)
        tokens = 0
        for batch in self._batches(texts):
            try:
                # floats, not the client's default base64: not every OpenAI-compatible server speaks base64
                resp = self._client.embeddings.create(model=self.model, input=[texts[i] for i in batch],
                                                      encoding_format="float")
            except openai.APIStatusError as exc:
                transient = exc.status_code in (408, 409, 429) or exc.status_code >= 500
                raise EmbedError(f"embeddings API {self._base} answered {exc.status_code}: {exc.message}",
                                 transient=transient) from exc
            except openai.APIError as exc:
                raise EmbedError(f"embeddings API {self._base} failed: {exc}") from exc
            data = sorted(resp.data, key=lambda d: d.index)
            if len(data) != len(batch):
                raise EmbedError(f"embeddings API {self._base} returned {len(data)} vectors for {len(batch)} inputs")
            for i, d in zip(batch, data):
                rows[i] = np.asarray(d.embedding, dtype=np.float32)
            tokens += resp.usage.prompt_tokens if resp.usage else sum(self.count_tokens([texts[i] for i in batch]))
        matrix = np.vstack(rows)  # type: ignore[arg-type]
        self.dim = matrix.shape[1]
        return EmbedResult(_normalise(matrix), tokens)


_CACHE: dict[tuple, Embedder] = {}


def get_embedder(cfg: ServerConfig, threads: int | None = None) -> Embedder:
    """Build (once per process) the provider the configuration asks for.

    ``threads`` sizes a local model's CPU pool: the embedding worker passes ``embed.threads`` (all
    cores), an API process leaves it to ``embed.query_threads`` (one: its request threads share it,
    and two processes each spinning a pool of two threads on two cores only thrash)."""
    provider = embed_provider(cfg)
    if provider == "openai":
        key: tuple = ("openai", cfg.embed.openai_api_key, cfg.embed.openai_base_url, cfg.embed.openai_model,
                      cfg.embed.timeout, cfg.embed.max_retries)
        if key not in _CACHE:
            _CACHE[key] = OpenAIEmbedder(
                cfg.embed.openai_api_key, cfg.embed.openai_model, cfg.embed.openai_base_url,
                cfg.embed.timeout, cfg.embed.max_retries, cfg.embed.openai_batch_size,
                cfg.embed.openai_batch_tokens, cfg.embed.openai_price_per_mtok)
        return _CACHE[key]
    threads = threads if threads is not None else cfg.embed.query_threads
    runtime = cfg.embed.local_runtime
    key = ("local", cfg.embed.local_model, cfg.embed.models_dir, runtime, threads, cfg.embed.onnx_cache_dir)
    if key not in _CACHE:
        from brain.core.model_fetch import locate_model

        folder = locate_model(cfg)
        if runtime == "numpy":
            _CACHE[key] = LocalEmbedder(cfg.embed.local_model, folder=folder)
        else:
            from brain.core.onnx_embed import OnnxEmbedder

            cache = cfg.embed.onnx_cache_dir
            emb = OnnxEmbedder(cfg.embed.local_model, threads=threads or None,
                               quantize="int8" if runtime == "onnx-int8" else "fp32",
                               cache_dir=Path(cache) if cache else None, folder=folder)
            emb.model_id += _runtime_suffix(runtime)
            _CACHE[key] = emb
    return _CACHE[key]


def _runtime_suffix(runtime: str) -> str:
    """int8 weights give vectors of their own (cosine ~0.99 to fp32): they must not share an id with
    fp32 ones. The fp32 ONNX graph and the NumPy pass agree to 1e-7 and share the model's id."""
    return "+int8" if runtime == "onnx-int8" else ""


_TEXT_MODELS: dict[tuple, TextModel] = {}


def get_text_model(cfg: ServerConfig) -> TextModel:
    """What ingest cuts chunks with: the configured model's id and token counts, without loading it.

    Ingest must work while the embedder is slow, busy or down, so it never builds the embedder:
    for the local model only the tokenizer is read; the API provider's counts are an estimate."""
    if embed_provider(cfg) == "openai":
        return get_embedder(cfg)
    key = ("local", cfg.embed.local_model, cfg.embed.models_dir, cfg.embed.local_runtime)
    if key not in _TEXT_MODELS:
        from brain.core.model_fetch import locate_model

        counter = LocalTokenizer(cfg.embed.local_model, locate_model(cfg))
        counter.model_id += _runtime_suffix(cfg.embed.local_runtime)
        _TEXT_MODELS[key] = counter
    return _TEXT_MODELS[key]
