"""Helpers of the ask suite: a small corpus, a brain-api app wired to a given LLM, an SSE parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import drain_embeddings

CORPUS = [
    {"id": "note:sqlite-wal", "source": "note", "title": "SQLite WAL mode for concurrent readers",
     "content": "Enable write-ahead logging with PRAGMA journal_mode=WAL so readers never block the writer. "
                "Set busy_timeout to 30000 ms to stop 'database is locked' errors during ingest."},
    {"id": "note:ollama-context", "source": "note", "title": "Ollama context length",
     "content": "Ollama truncates prompts longer than OLLAMA_CONTEXT_LENGTH from the front. Set it to 8192 "
                "in the systemd drop-in for deepseek-coder-v2:16b."},
    {"id": "claude:1111-2222", "source": "claude", "title": "Fix the flaky pytest fixture",
     "uri": "claude://session/1111-2222", "project": "/home/dev/spotter",
     "content": "user: the api_server fixture hangs\nassistant: gunicorn needed a free port; use a socket bound "
                "to port 0 and wait for /healthz before yielding."},
]


def make_ask_app(db_path: Path, token: str, llm_base_url: str, **overrides):
    """A brain-api app whose LLM is at ``llm_base_url``, with the small corpus ingested."""
    import brain.rag.ask  # noqa: F401 - register the area's settings before the config is loaded
    import brain.rag.llm  # noqa: F401
    from brain.api import create_app

    settings = {"server.db_path": str(db_path), "server.api_tokens": [token], "llm.base_url": llm_base_url,
                "llm.read_timeout": 1.0, "llm.connect_timeout": 1.0, "llm.max_retries": 0,
                "llm.answer_tokens": 64}
    settings.update(overrides)
    app = create_app(settings)
    resp = app.test_client().post("/api/v1/items", json={"items": CORPUS},
                                  headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_json()
    drain_embeddings(app)  # what the embedding worker does beside the real server
    return app


def parse_sse(raw: str) -> list[tuple[str, Any]]:
    """Strict framing check: every event is ``event: x`` + one ``data:`` JSON line + a blank line."""
    assert raw.endswith("\n\n"), "the stream must end with a complete event"
    events = []
    for block in raw[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        events.append((lines[0][7:], json.loads(lines[1][6:])))
    return events
