"""Issue 12: ``--dry-run`` takes the real run's path, so it fails or warns exactly as a real run
would: both sinks encode an item the same way (``outbox.item_body``) and the CLI's summaries of a
poisoned transcript match."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from brain.cli.main import main
from brain.collect.outbox import DryRunSink, OutboxSink, Queued, State

from .test_claude import write_poisoned_sessions


def _item(title: str) -> dict:
    return {"id": "note:dry-run", "source": "note", "title": title, "content": "body"}


@pytest.mark.parametrize("title", ["PASSED \ud83d", "\udc80 half of a pair"])
def test_both_sinks_refuse_a_string_the_outbox_cannot_store(tmp_path: Path, title: str) -> None:
    real, dry = State(tmp_path / "real.db"), State(tmp_path / "dry.db", dry_run=True)
    try:
        with pytest.raises(UnicodeEncodeError) as real_error:
            OutboxSink(real).upsert(Queued(_item(title), Counter()))
        printed: list[str] = []
        with pytest.raises(UnicodeEncodeError) as dry_error:
            DryRunSink(dry, printed.append).upsert(Queued(_item(title), Counter()))
        assert str(dry_error.value) == str(real_error.value)
        assert printed == []  # nothing claimed as "would be sent"
    finally:
        real.close()
        dry.close()


def test_both_sinks_take_the_same_items(tmp_path: Path) -> None:
    real, dry = State(tmp_path / "real.db"), State(tmp_path / "dry.db", dry_run=True)
    try:
        outbox, printed = OutboxSink(real), []
        dry_sink = DryRunSink(dry, printed.append)
        for title in ("caf\u00e9 \U0001f600", "plain"):
            q = Queued({**_item(title), "id": f"note:{title}"}, Counter())
            assert outbox.upsert(q) is True and dry_sink.upsert(q) is True
        assert (outbox.queued, dry_sink.queued) == (2, 2) and len(printed) == 2
    finally:
        real.close()
        dry.close()


def _summary(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("claude:"))


def test_a_poisoned_transcript_gives_the_same_summary_dry_and_real(home: Path, runner: CliRunner) -> None:
    write_poisoned_sessions(home / ".claude" / "projects")
    env = {"BRAIN_API_URL": "http://127.0.0.1:9", "BRAIN_TOKEN": ""}
    dry = runner.invoke(main, ["collect", "claude", "--dry-run"], env=env)
    real = runner.invoke(main, ["collect", "claude"], env=env)
    assert "repaired" in _summary(dry.output), dry.output
    assert _summary(dry.output) == _summary(real.output)
