"""Chunking bounds and boundaries; configuration precedence and validation."""

from __future__ import annotations

import pytest

from brain.core.chunking import chunk_text
from brain.shared import config
from brain.shared.settings import embed_provider


def words(texts):
    return [len(t.split()) + 2 for t in texts]


def test_prose_chunks_respect_token_bound_and_overlap():
    paras = [f"para{i} " + "word " * 20 for i in range(10)]
    chunks = chunk_text("\n\n".join(paras), code=False, max_tokens=60, overlap=25, count=words)
    assert len(chunks) > 3
    assert all(c.tokens <= 60 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        last_para_of_a = a.text.split("\n\n")[-1].split()[0]
        assert last_para_of_a in b.text  # overlap repeats the tail
    joined = " ".join(c.text for c in chunks)
    assert all(f"para{i}" in joined for i in range(10))


def test_code_chunks_start_at_definitions_with_comments_attached():
    src = "import os\n\n# helper one\ndef one():\n    return 1\n\n\nclass Two:\n    def m(self):\n        pass\n"
    chunks = chunk_text(src, code=True, max_tokens=10, overlap=0, count=words)
    starts = [c.text.split("\n")[0] for c in chunks]
    assert "# helper one" in starts and "class Two:" in starts
    one = next(c for c in chunks if c.text.startswith("# helper one"))
    assert (one.start_line, one.end_line) == (3, 5)
    two = next(c for c in chunks if c.text.startswith("class Two:"))
    assert (two.start_line, two.end_line) == (8, 10)


def test_single_huge_line_is_split_by_characters():
    line = "x" * 5000
    chunks = chunk_text(line, code=False, max_tokens=100, overlap=0, count=lambda ts: [len(t) // 4 + 1 for t in ts])
    assert len(chunks) > 1 and all(c.tokens <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == line


def test_empty_content_has_no_chunks():
    assert chunk_text("   \n\n ", code=False, max_tokens=50, overlap=0, count=words) == []


# ---------------------------------------------------------------- config


def test_precedence_env_over_file_over_default(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\nworkers = 3\n[embed]\nprovider = "local"\n')
    cfg = config.load(f, env={"BRAIN_SERVER_PORT": "9100"})
    assert cfg.server.port == 9100 and cfg.sources["server.port"] == "BRAIN_SERVER_PORT"
    assert cfg.server.workers == 3 and cfg.sources["server.workers"] == str(f)
    assert cfg.server.max_batch_items == 500 and cfg.sources["server.max_batch_items"] == "default"


def test_every_bad_value_is_reported_with_its_origin(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = "eighty"\nbogus = 1\n[embed]\nprovider = "magic"\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(f, env={"BRAIN_SERVER_WORKERS": "0", "BRAIN_API_URL": "ftp://x", "OPENAI_API_KEY": "sk-1"})
    msg = str(err.value)
    assert f"server.port = 'eighty' (from {f}): must be an integer" in msg
    assert "server.bogus" in msg and "unknown setting" in msg
    assert "embed.provider = 'magic'" in msg and "must be one of auto, local, openai" in msg
    assert "server.workers = '0' (from BRAIN_SERVER_WORKERS): must be >= 1" in msg
    assert "client.api_url" in msg and "http://" in msg


def test_secrets_are_masked_in_errors_and_display(tmp_path):
    cfg = config.load(env={"OPENAI_API_KEY": "sk-secret", "BRAIN_API_TOKENS": "a,b"})
    assert cfg.server.api_tokens == ["a", "b"]
    shown = cfg.redacted()
    assert shown["embed.openai_api_key"] == "***" and "sk-secret" not in repr(shown)


def test_bad_toml_and_missing_explicit_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[server\nport=1")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(f, env={})
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(env={"BRAIN_CONFIG": str(tmp_path / "nope.toml")})


def test_auto_provider_uses_openai_only_with_a_key(tmp_path):
    assert embed_provider(config.load(env={})) == "local"
    assert embed_provider(config.load(env={"OPENAI_API_KEY": "k"})) == "openai"
    forced = config.load(env={"OPENAI_API_KEY": "k", "BRAIN_EMBED_PROVIDER": "local"})
    assert embed_provider(forced) == "local"
