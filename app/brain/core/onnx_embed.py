"""The local sentence encoder as a fused ONNX Runtime graph, built from the model's own safetensors.

Why this exists next to the NumPy forward pass (``brain.core.embed.LocalEmbedder``): the embedder sets
ingest speed. A plain ONNX export runs no faster than NumPy; the gain is in ONNX Runtime's fused
transformer kernels (``Attention`` with packed QKV weights, ``SkipLayerNormalization``, ``BiasGelu``).
Measured with bench/embed_speed.py on 2 vCPUs with AVX2 only (1,000 stdlib chunks, 159 tokens on
average): fp32 1.9x the NumPy path (24 vs 13 chunks/s, cosine >= 0.9999998 to it), int8 2.7x
(35 chunks/s, cosine >= 0.98); when other work took the cores, NumPy fell to 5.5 and ORT held ~22. There fp32 runs at about 80% of what ORT's own matrix product reaches alone (~80-100
GFLOP/s on both cores, about 3.3 GFLOP per chunk), so more fp32 speed needs a faster CPU, not a
better graph.

Why the graph is built here rather than exported: exporting needs PyTorch + transformers at build
time (about 1 GB, and a CUDA build by default on x86_64), and no package ships an ONNX export of the
model. The graph is small and regular, so it is written node by node with ``onnx.helper`` from the
same ``model.safetensors`` the NumPy path reads, straight into the fused contrib ops; no optimizer
pass has to recognise a pattern first. Every contrib op's semantics were checked against ONNX
Runtime's ContribOperators.md and CPU kernels (BiasGelu is the exact erf GELU; FastGelu, the tanh
approximation, is not used).

The graph is built once per model and cached on disk, keyed by the sha256 of model.safetensors and
``BUILDER_VERSION``; files are written to a temporary name and renamed, so a killed build leaves no
half file, and a cached file that does not load (or lacks the key stamped into its metadata, which
protobuf serialises last) is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from brain.core.embed_base import EmbedError, EmbedResult, file_sha256, local_model_id, resolve_local_model

log = logging.getLogger(__name__)

# Bump whenever the graph this module writes changes: cached graphs of other versions are ignored.
BUILDER_VERSION = "bert-fused-1"
_META_KEY = "brain_graph_key"
_OPSET = 17  # LayerNormalization is a standard op from opset 17
_IR_VERSION = 8  # the oldest IR that carries opset 17: loadable by any ONNX Runtime of the last years
_STALE_TMP_S = 3600  # temporary files older than this are leftovers of a killed build


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/brain/onnx`` (only an absolute XDG value counts), else ``~/.cache/brain/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if base and os.path.isabs(base) else Path.home() / ".cache") / "brain" / "onnx"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is not secret, other service users read it
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean_stale_tmp(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------- the graph

def _read_bert(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The model's config and weights, or an EmbedError that names the folder and what is wrong."""
    from safetensors.numpy import load_file

    weights_file, config_file = folder / "model.safetensors", folder / "config.json"
    for needed in (weights_file, config_file, folder / "tokenizer.json"):
        if not needed.is_file():
            raise EmbedError(f"local embedding model folder {folder} has no {needed.name}", transient=False)
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise EmbedError(f"cannot read {config_file}: {exc}", transient=False) from exc
    problems = []
    if config.get("model_type") != "bert":
        problems.append(f"model_type is {config.get('model_type')!r}, only 'bert' is supported")
    if config.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act is {config.get('hidden_act')!r}, only the exact 'gelu' is supported")
    if config.get("position_embedding_type", "absolute") != "absolute":
        problems.append(f"position_embedding_type is {config.get('position_embedding_type')!r}, "
                        "only 'absolute' is supported")
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads") if k not in config]
    if missing:
        problems.append("config.json lacks " + ", ".join(missing))
    if problems:
        raise EmbedError(f"{folder}: unsupported model: " + "; ".join(problems), transient=False)
    try:
        weights = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise EmbedError(f"cannot load {weights_file}: {exc}", transient=False) from exc
    if "bert.embeddings.word_embeddings.weight" in weights:
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    return config, weights


def build_bert_graph(folder: Path) -> Any:
    """An ``onnx.ModelProto`` of the BERT encoder + mean pooling, with ONNX Runtime's fused ops.

    Inputs ``input_ids`` and ``attention_mask`` (int64 [batch, seq], right-padded); output
    ``embedding`` (float32 [batch, hidden]): the mask-weighted mean of the last hidden states, not
    yet L2-normalised. Per layer: Attention (packed QKV) -> MatMul -> SkipLayerNormalization (adds
    the residual and the dense bias) -> MatMul -> BiasGelu -> MatMul -> SkipLayerNormalization.
    Only token type 0 is used (single texts), so its row is folded into the position table."""
    from onnx import TensorProto, helper, numpy_helper

    config, w = _read_bert(folder)
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    inits: list[Any] = []
    nodes: list[Any] = []

    def weight(name: str) -> np.ndarray:
        try:
            return np.ascontiguousarray(w[name], dtype=np.float32)
        except KeyError:
            raise EmbedError(f"{folder / 'model.safetensors'} has no tensor {name!r}: not a BERT checkpoint",
                             transient=False) from None

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, ms: bool = False, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output,
                                      domain="com.microsoft" if ms else "", **attrs))
        return output

    # embeddings: word + (position + token type 0), then LayerNorm
    pos_type = weight("embeddings.position_embeddings.weight") + weight("embeddings.token_type_embeddings.weight")[0]
    word = node("Gather", [init("word_embeddings", weight("embeddings.word_embeddings.weight")), "input_ids"], "word")
    shape = node("Shape", ["input_ids"], "ids_shape")
    seq = node("Slice", [shape, init("one_i64", np.array([1], np.int64)), init("two_i64", np.array([2], np.int64))],
               "seq_len")
    pos = node("Slice", [init("pos_type_embeddings", pos_type), init("zero_i64", np.array([0], np.int64)), seq],
               "pos")
    summed = node("Add", [word, pos], "embed_sum")
    h = node("LayerNormalization", [summed, init("emb_ln_w", weight("embeddings.LayerNorm.weight")),
                                    init("emb_ln_b", weight("embeddings.LayerNorm.bias"))], "emb_ln",
             axis=-1, epsilon=eps)
    # Attention's raw key-padding mask: int32 [batch, seq], 1 = attend, 0 = padding
    mask32 = node("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([weight(p + f"attention.self.{t}.weight").T for t in ("query", "key", "value")], 1)
        qkv_b = np.concatenate([weight(p + f"attention.self.{t}.bias") for t in ("query", "key", "value")])
        ctx = node("Attention", [h, init(f"l{i}_qkv_w", np.ascontiguousarray(qkv_w)), init(f"l{i}_qkv_b", qkv_b),
                                 mask32], f"l{i}_attn", ms=True, num_heads=heads)
        out = node("MatMul", [ctx, init(f"l{i}_ao_w", np.ascontiguousarray(weight(p + "attention.output.dense.weight").T))],
                   f"l{i}_ao")
        h1 = node("SkipLayerNormalization", [out, h, init(f"l{i}_ln1_w", weight(p + "attention.output.LayerNorm.weight")),
                                             init(f"l{i}_ln1_b", weight(p + "attention.output.LayerNorm.bias")),
                                             init(f"l{i}_ao_b", weight(p + "attention.output.dense.bias"))],
                  f"l{i}_ln1", ms=True, epsilon=eps)
        inter = node("MatMul", [h1, init(f"l{i}_in_w", np.ascontiguousarray(weight(p + "intermediate.dense.weight").T))],
                     f"l{i}_in")
        gelu = node("BiasGelu", [inter, init(f"l{i}_in_b", weight(p + "intermediate.dense.bias"))], f"l{i}_gelu", ms=True)
        out2 = node("MatMul", [gelu, init(f"l{i}_out_w", np.ascontiguousarray(weight(p + "output.dense.weight").T))],
                    f"l{i}_out")
        h = node("SkipLayerNormalization", [out2, h1, init(f"l{i}_ln2_w", weight(p + "output.LayerNorm.weight")),
                                            init(f"l{i}_ln2_b", weight(p + "output.LayerNorm.bias")),
                                            init(f"l{i}_out_b", weight(p + "output.dense.bias"))],
                 f"l{i}_ln2", ms=True, epsilon=eps)
    # mean pooling over the mask, as sentence-transformers' Pooling(mean) does
    maskf = node("Unsqueeze", [node("Cast", ["attention_mask"], "mask_f32", to=TensorProto.FLOAT),
                               init("axis2", np.array([2], np.int64))], "mask_f32_3d")
    axis1 = init("axis1", np.array([1], np.int64))
    total = node("ReduceSum", [node("Mul", [h, maskf], "masked"), axis1], "masked_sum", keepdims=0)
    count = node("Max", [node("ReduceSum", [maskf, axis1], "mask_count", keepdims=0),
                         init("min_count", np.array([1e-9], np.float32))], "mask_count_min")
    node("Div", [total, count], "embedding")

    graph = helper.make_graph(
        nodes, "bert_mean_pooling",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits)
    return helper.make_model(graph, producer_name="brain.core.onnx_embed", producer_version=BUILDER_VERSION,
                             ir_version=_IR_VERSION,
                             opset_imports=[helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)])


def _stamp(model: Any, key: str) -> bytes:
    """Serialise with the cache key in metadata_props, which protobuf writes after the graph: a file
    truncated anywhere loses it (or fails to parse), so the key check also catches a short file."""
    del model.metadata_props[:]
    model.metadata_props.add(key=_META_KEY, value=key)
    return model.SerializeToString()


def _quantize_int8(fp32: Any, out_path: Path, key: str) -> None:
    """Dynamic int8 with per-channel weight scales (per-tensor int8 measured cos ~0.94 to fp32, per-channel
    >= 0.98); MatMul weights and the packed QKV weights of Attention (QAttention) are quantized; the
    word-embedding table (Gather) stays fp32: it is a lookup, not a product, so int8 would only lose accuracy.
    ``DefaultTensorType``: ONNX shape inference knows no contrib op, so the quantizer is told that the
    tensors it cannot type are float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        quantize_dynamic(fp32, tmp, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        write_atomic(out_path, _stamp(onnx.load(tmp), key))
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load_checked(path: Path, key: str) -> Any:
    """The cached graph as a ModelProto if it parses and carries ``key``, else None."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # protobuf's DecodeError, OSError...
        return None
    found = {p.key: p.value for p in model.metadata_props}.get(_META_KEY)
    return model if found == key else None


BUILDS: dict[str, int] = {"fp32": 0, "int8": 0}  # graphs built by this process (the cache tests read it)


def ensure_graph(folder: Path, cache_dir: Path, quantize: str = "fp32", *, rebuild: bool = False) -> tuple[Path, str]:
    """The cached graph's path and the key stamped in it, building (and for int8 quantizing) it first
    if absent, or if ``rebuild`` (the caller found the cached file unusable)."""
    key = f"{BUILDER_VERSION}-{file_sha256(folder / 'model.safetensors')[:32]}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = cache_dir / f"{key}.onnx"
    target, target_key = (fp32_path, key) if quantize == "fp32" else (cache_dir / f"{key}.int8.onnx", key + ".int8")
    if target.exists() and not rebuild:
        return target, target_key
    _clean_stale_tmp(cache_dir)
    fp32 = None if quantize == "fp32" else _load_checked(fp32_path, key)
    if fp32 is None:
        start = time.perf_counter()
        fp32 = build_bert_graph(folder)
        write_atomic(fp32_path, _stamp(fp32, key))
        BUILDS["fp32"] += 1
        log.info("built ONNX graph of %s in %.1f s: %s", folder, time.perf_counter() - start, fp32_path)
    if quantize == "int8":
        _quantize_int8(fp32, target, target_key)
        BUILDS["int8"] += 1
        log.info("quantized ONNX graph to int8: %s", target)
    return target, target_key


# ---------------------------------------------------------------- the embedder

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxEmbedder:
    """Sentence embeddings from the fused ONNX graph: same interface and vectors as ``LocalEmbedder``.

    Session options, on purpose:

    - ``intra_op_num_threads = threads`` (default: the cores this process may run on,
      ``len(os.sched_getaffinity(0))``): one intra-op pool per process sized to the cores, since a
      matrix product already uses them all; pools larger than the cores only thrash.
    - ``inter_op_num_threads = 1`` and sequential execution: the graph is a chain, there is nothing
      to run side by side, and a second pool would compete with the first for the same cores.
    - graph optimisation level all: ORT's own last fusions and constant folding on top of ours.
    - one session per embedder, shared by every thread of the process (gunicorn's request threads):
      ``run`` is thread-safe, and a lock lets one batch at a time have the whole pool, so N concurrent
      callers do not split the cores N ways and all finish late (a query waits at most one batch).
    - ``session.intra_op.allow_spinning = 0``: ORT's pool threads busy-wait for the next task by
      default, which burns the cores the other process needs (the API and the embedding worker share
      them; the NumPy path lost 7x to OpenBLAS's busy-waiting). Measured in bench/embed_speed.py, off
      costs nothing here: 23.8 vs 24.4 chunks/s (1,000 chunks), equal within the noise at load 6-8 too.
      ``allow_spinning`` (class attribute) switches it back on.
    - ``batch_size = 16``: measured 8 and 16 equal within the noise, 32 about 20% slower (the
      activations of a batch outgrow the 1 MB L2 cache); batches are length-sorted, so padding is small.

    The tokenizer never truncates and is never reconfigured after construction, so threads share it
    safely; ``embed`` cuts each text's ids to ``max_tokens`` itself, keeping the final [SEP], exactly
    as the tokenizer's own truncation would.
    """

    price_per_mtok = 0.0
    allow_spinning = False

    def __init__(self, model: str, *, threads: int | None = None, batch_size: int = 16, quantize: str = "fp32",
                 cache_dir: Path | None = None, folder: Path | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if quantize not in ("fp32", "int8"):
            raise EmbedError(f"quantize must be 'fp32' or 'int8', not {quantize!r}", transient=False)
        folder = folder or resolve_local_model(model)
        for needed in ("model.safetensors", "config.json", "tokenizer.json"):
            if not (folder / needed).is_file():
                raise EmbedError(f"local embedding model folder {folder} has no {needed}", transient=False)
        try:
            config = json.loads((folder / "config.json").read_text())
            st_cfg = folder / "sentence_bert_config.json"
            seq = json.loads(st_cfg.read_text()).get("max_seq_length", 256) if st_cfg.exists() else 256
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # OSError, ValueError, or the tokenizers library's own exception
            raise EmbedError(f"cannot load local embedding model from {folder}: {exc}", transient=False) from exc
        if config.get("model_type") != "bert":
            raise EmbedError(f"{folder}: unsupported model: model_type is {config.get('model_type')!r}, "
                             "only 'bert' is supported", transient=False)
        self._tok.no_padding()
        self._tok.no_truncation()
        self.folder = folder
        self.model_id = local_model_id(model, folder)
        self.dim = int(config["hidden_size"])
        self.max_tokens = int(min(seq, config.get("max_position_embeddings", 512)))
        self.batch_size = batch_size
        self.quantize = quantize
        self.threads = threads or _cpu_count()
        self.cache_dir = cache_dir or default_cache_dir()
        self._lock = threading.Lock()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        opts.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not to the logging module
        builds_before = sum(BUILDS.values())
        for attempt in (0, 1):
            path, key = ensure_graph(folder, self.cache_dir, quantize, rebuild=attempt > 0)
            try:
                self._session = self._open(ort, path, key, opts)
                break
            except Exception as exc:  # a damaged cache file: ORT raises its own InvalidProtobuf/Fail/... types
                if attempt:
                    raise EmbedError(f"ONNX Runtime cannot load the graph it just built from {folder} "
                                     f"({path}): {exc}", transient=False) from exc
                log.warning("cached ONNX graph %s is unusable (%s): rebuilding it", path, exc)
        self.graph_path = path
        self.built = sum(BUILDS.values()) > builds_before  # whether this construction had to build

    @staticmethod
    def _open(ort: Any, path: Path, key: str, opts: Any) -> Any:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        found = session.get_modelmeta().custom_metadata_map.get(_META_KEY)
        if found != key:
            raise ValueError(f"graph key {found!r}, expected {key!r}")
        return session

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts without truncation (what the chunker sizes chunks by)."""
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=True)]

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids cut to ``max_tokens``: the head of the text, then its final [SEP]."""
        out = []
        for enc in self._tok.encode_batch(texts, add_special_tokens=True):
            ids = enc.ids
            out.append(ids if len(ids) <= self.max_tokens else ids[:self.max_tokens - 1] + ids[-1:])
        return out

    def embed(self, texts: list[str]) -> EmbedResult:
        """Embed in length-sorted batches so padding (wasted work) stays small."""
        if not texts:
            return EmbedResult(np.zeros((0, self.dim), np.float32), 0)
        ids = self._ids(texts)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        out = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            seq = max(len(ids[i]) for i in idx)
            batch_ids = np.zeros((len(idx), seq), np.int64)
            mask = np.zeros((len(idx), seq), np.int64)
            for row, i in enumerate(idx):
                batch_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            with self._lock:
                out[idx] = self._session.run(["embedding"], {"input_ids": batch_ids, "attention_mask": mask})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return EmbedResult((out / norms).astype(np.float32, copy=False), sum(len(x) for x in ids))
