"""Embedding providers: the local encoder against sentence-transformers' own vectors, and the
openai provider over real HTTP against a stand-in of /v1/embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brain.api import create_app
from brain.core.embed import EmbedError, LocalEmbedder, OpenAIEmbedder, get_embedder, resolve_local_model
from brain.shared import config
from tests.conftest import drain_embeddings
from tests.standins.openai_embeddings import EmbeddingsStandIn

DATA = Path(__file__).parent / "data"


@pytest.fixture
def standin():
    s = EmbeddingsStandIn(dim=64).start()
    yield s
    s.stop()


def test_local_encoder_matches_sentence_transformers():
    """Reference vectors were produced by sentence-transformers 6.2.0 + torch 2.13.0 from the same files."""
    ref = json.loads((DATA / "minilm_reference.json").read_text())
    got = LocalEmbedder("all-MiniLM-L6-v2").embed(ref["texts"])
    expected = np.asarray(ref["vectors"], np.float32)
    assert got.vectors.shape == expected.shape == (5, 384)
    assert np.abs(got.vectors - expected).max() < 1e-4
    assert np.allclose((got.vectors * expected).sum(1), 1.0, atol=1e-5)


def test_local_encoder_truncates_to_model_length_and_counts_tokens():
    e = LocalEmbedder("all-MiniLM-L6-v2")
    assert e.max_tokens == 256 and e.dim == 384 and e.model_id == "local/all-MiniLM-L6-v2"
    long = "word " * 1000
    assert e.count_tokens([long])[0] > 1000
    assert e.embed([long]).tokens == 256
    assert e.embed([]).vectors.shape == (0, 384)


def test_local_model_from_a_folder_path(tmp_path):
    import shutil

    folder = tmp_path / "my-model"
    shutil.copytree(resolve_local_model("all-MiniLM-L6-v2"), folder)
    e = LocalEmbedder(str(folder))
    assert e.model_id == "local/my-model"  # named after the folder
    assert e.embed(["hello"]).vectors.shape == (1, 384)


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedError, match="does not exist"):
        LocalEmbedder(str(tmp_path / "nope"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(EmbedError, match="cannot load|only BERT"):
        LocalEmbedder(str(bad))


def test_openai_provider_batches_and_sorts_by_index(standin):
    e = OpenAIEmbedder("sk-test", "text-embedding-3-small", standin.url, timeout=5, max_retries=0, batch_size=3)
    texts = [f"text number {i}" for i in range(7)]
    res = e.embed(texts)
    assert [len(r["body"]["input"]) for r in standin.requests] == [3, 3, 1]
    assert all(r["body"]["encoding_format"] == "float" for r in standin.requests)
    for text, vec in zip(texts, res.vectors):
        assert np.allclose(vec, standin.vector(text), atol=1e-6)
    assert res.tokens == sum(len(t.split()) for t in texts) and e.dim == 64


def test_openai_provider_batches_by_tokens(standin):
    e = OpenAIEmbedder("sk-test", base_url=standin.url, max_retries=0, batch_size=100, batch_tokens=200)
    e.embed(["x" * 300] * 4)  # ~101 estimated tokens each: two per request
    assert [len(r["body"]["input"]) for r in standin.requests] == [1, 1, 1, 1]
    standin.requests.clear()
    e.embed(["x" * 150] * 4)
    assert [len(r["body"]["input"]) for r in standin.requests] == [3, 1]


def test_openai_provider_retries_429_then_succeeds(standin):
    standin.fail_429 = 2
    e = OpenAIEmbedder("sk-test", base_url=standin.url, timeout=5, max_retries=3)
    res = e.embed(["a", "b"])
    assert res.vectors.shape == (2, 64)
    assert len(standin.requests) == 3


def test_openai_provider_gives_up_with_a_clear_error(standin):
    standin.fail_500 = 10
    e = OpenAIEmbedder("sk-test", base_url=standin.url, timeout=5, max_retries=1)
    with pytest.raises(EmbedError, match=r"answered 500"):
        e.embed(["a"])
    assert len(standin.requests) == 2


def test_openai_provider_bad_key_and_timeout(standin):
    with pytest.raises(EmbedError, match="401"):
        OpenAIEmbedder("sk-wrong", base_url=standin.url, max_retries=0).embed(["a"])
    standin.delay = 30.0  # far past the 0.2 s timeout (the stand-in's threads are daemons: nobody waits)
    with pytest.raises(EmbedError, match=standin.url.split("//")[1].split("/")[0]):
        OpenAIEmbedder("sk-test", base_url=standin.url, timeout=0.2, max_retries=0).embed(["a"])


def test_key_selects_openai_and_api_ingests_through_it(standin, tmp_path):
    cfg = config.load(env={"OPENAI_API_KEY": "sk-test", "BRAIN_EMBED_BASE_URL": standin.url,
                           "BRAIN_DB": str(tmp_path / "b.db"), "BRAIN_API_TOKENS": "tok"})
    assert get_embedder(cfg).model_id == "openai/text-embedding-3-small"
    c = create_app(cfg).test_client()
    h = {"Authorization": "Bearer tok"}
    r = c.post("/api/v1/items", json={"items": [{"id": "note:1", "source": "note", "content": "alpha beta"}]}, headers=h)
    assert r.status_code == 200 and r.json["queued"] == 1 and not standin.requests  # ingest never embeds
    assert drain_embeddings(cfg) == 1 and len(standin.requests) == 1
    assert c.get("/api/v1/stats", headers=h).json["embedding_model"] == "openai/text-embedding-3-small"
    hits = c.get("/api/v1/search?q=alpha beta&mode=vector", headers=h).json["results"]
    assert hits[0]["id"] == "note:1"


def test_ingest_stores_while_the_embeddings_api_fails_and_vectors_follow(standin, tmp_path):
    standin.fail_500 = 100
    cfg = config.load(env={"OPENAI_API_KEY": "sk-test", "BRAIN_EMBED_BASE_URL": standin.url,
                           "BRAIN_EMBED_MAX_RETRIES": "0", "BRAIN_DB": str(tmp_path / "b.db"),
                           "BRAIN_API_TOKENS": "tok"})
    c = create_app(cfg).test_client()
    h = {"Authorization": "Bearer tok"}
    r = c.post("/api/v1/items", json={"items": [{"id": "note:1", "source": "note", "content": "gamma delta"}]},
               headers=h)
    assert r.status_code == 200 and r.json["inserted"] == 1 and r.json["queued"] == 1
    body = c.get("/api/v1/search?q=gamma", headers=h).json  # the query cannot be embedded: BM25 answers
    assert [x["id"] for x in body["results"]] == ["note:1"] and "could not be embedded" in body["degraded"]
    assert body["results"][0]["vectors_pending"] is True
    assert c.get("/api/v1/search?q=gamma&mode=vector", headers=h).json["error"]["code"] == "embedder_unavailable"
    standin.fail_500 = 0
    assert drain_embeddings(cfg) == 1
    body = c.get("/api/v1/search?q=gamma&mode=vector", headers=h).json
    assert body["results"][0]["id"] == "note:1" and body["results"][0]["vectors_pending"] is False
