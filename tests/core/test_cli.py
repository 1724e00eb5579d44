"""The ``brain`` CLI: help texts with examples, token, config errors, local search/stats/reindex."""

from __future__ import annotations

import json
import os

import pytest

from brain.cli.main import main
from brain.core import store
from brain.core.embed import get_embedder
from tests.conftest import drain_embeddings


@pytest.fixture
def filled_db(db_path, monkeypatch):
    monkeypatch.setenv("BRAIN_DB", str(db_path))
    from brain.shared import config

    cfg = config.load()
    conn = store.connect(db_path)
    store.migrate(conn)
    store.Store(conn).upsert([
        {"id": "note:wal", "source": "note", "title": "WAL", "content": "SQLite write-ahead logging and checkpoints"},
        {"id": "note:pasta", "source": "note", "title": "Pasta", "content": "Boil spaghetti in salted water"},
    ], get_embedder(cfg))
    conn.close()
    drain_embeddings(cfg)
    return db_path


@pytest.mark.parametrize("cmd", [["serve"], ["search"], ["stats"], ["reindex"], ["token", "new"], ["config", "show"]])
def test_every_command_has_help_with_an_example(runner, cmd):
    r = runner.invoke(main, [*cmd, "--help"])
    assert r.exit_code == 0 and "Example:" in r.output


def test_token_new_prints_a_strong_token_and_config_lines(runner):
    r = runner.invoke(main, ["token", "new"])
    token = r.stdout.strip().splitlines()[0]
    assert r.exit_code == 0 and len(token) >= 40
    assert f"BRAIN_API_TOKENS={token}" in r.stderr and f"BRAIN_TOKEN={token}" in r.stderr
    assert runner.invoke(main, ["token", "new"]).stdout.strip() != token


def test_bad_config_fails_with_a_clear_message(runner, monkeypatch):
    monkeypatch.setenv("BRAIN_SERVER_PORT", "http")
    r = runner.invoke(main, ["stats", "--local"])
    assert r.exit_code != 0
    assert "server.port = 'http' (from BRAIN_SERVER_PORT): must be an integer" in r.output


def test_search_local_prints_ranked_results(runner, filled_db):
    r = runner.invoke(main, ["search", "--local", "spaghetti dinner"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("[1] Pasta")
    r = runner.invoke(main, ["search", "--local", "--json", "--source", "note", "-k", "1", "checkpoint"])
    data = json.loads(r.output)
    assert [x["id"] for x in data["results"]] == ["note:wal"]


def test_search_local_rejects_bad_dates(runner, filled_db):
    r = runner.invoke(main, ["search", "--local", "x", "--since", "someday"])
    assert r.exit_code != 0 and "someday" in r.output


def test_stats_and_reindex_local(runner, filled_db, monkeypatch):
    r = runner.invoke(main, ["stats", "--local", "--json"])
    assert json.loads(r.output)["items"] == {"note": 2}
    r = runner.invoke(main, ["stats", "--local"])
    assert r.exit_code == 0 and "items: 2 (note 2)" in r.output
    assert "* local/all-MiniLM-L6-v2: " in r.output and " 0 queued" in r.output
    r = runner.invoke(main, ["reindex"])
    assert r.exit_code == 0 and "reindex: 0 chunk texts queued" in r.output, r.output


def test_reindex_for_a_new_model_queues_and_embeds(runner, filled_db, monkeypatch):
    import shutil

    from brain.core.embed import resolve_local_model

    copy = filled_db.parent / "minilm-copy"
    shutil.copytree(resolve_local_model("all-MiniLM-L6-v2"), copy)
    monkeypatch.setenv("BRAIN_EMBED_LOCAL_MODEL", str(copy))
    nice_before = os.getpriority(os.PRIO_PROCESS, 0)
    r = runner.invoke(main, ["reindex"])
    assert r.exit_code == 0 and "reindex: 2 chunk texts queued, 2 embedded" in r.output, r.output
    # a foreground reindex leaves this process's priority alone (a nice value cannot be raised back)
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice_before
    r = runner.invoke(main, ["stats", "--local", "--json"])
    backlog = json.loads(r.output)["embedding"]
    assert backlog["local/minilm-copy"]["embedded"] == 2 and backlog["local/minilm-copy"]["queued"] == 0
    assert backlog["local/all-MiniLM-L6-v2"]["embedded"] == 2


def test_search_and_stats_through_brain_api(runner, api_server, monkeypatch):
    import requests

    requests.post(api_server.url + "/api/v1/items", headers=api_server.headers, timeout=60, json={"items": [
        {"id": "note:remote", "source": "note", "title": "Remote note", "content": "Caddy terminates TLS"}]})
    monkeypatch.setenv("BRAIN_API_URL", api_server.url)
    monkeypatch.setenv("BRAIN_TOKEN", api_server.token)
    r = runner.invoke(main, ["search", "tls termination", "--mode", "bm25"])
    assert r.exit_code == 0 and r.output.startswith("[1] Remote note"), r.output
    assert json.loads(runner.invoke(main, ["stats", "--json"]).output)["items"] == {"note": 1}
    monkeypatch.setenv("BRAIN_TOKEN", "wrong")
    r = runner.invoke(main, ["search", "tls"])
    assert r.exit_code != 0 and "invalid bearer token" in r.output


def test_the_lazy_command_list_says_what_each_command_says_of_itself():
    """``brain --help`` lists the area commands without importing them (LAZY); each line must be
    the command's own first help line, and every listed command must load."""
    import importlib

    from brain.cli.main import LAZY

    for name, (path, short) in LAZY.items():
        module, _, attr = path.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert command.name == name, path
        assert short == command.get_short_help_str(10_000), name


def test_version_and_help_import_no_area(runner):
    import subprocess
    import sys

    code = ("import sys; from brain.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('brain.core', 'brain.api', 'brain.collect', "
            "'brain.rag', 'brain.gpu', 'brain.mcp', 'flask', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
    version = runner.invoke(__import__("brain.cli.main", fromlist=["main"]).main, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("brain, version 0.1.0")
