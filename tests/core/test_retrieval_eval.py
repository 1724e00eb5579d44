"""The retrieval evaluation's data stays honest: splits are the seeded ones, every question is well formed,
and the scoring functions compute what their names say."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("retrieval_eval", REPO / "bench" / "retrieval_eval.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["retrieval_eval"] = module
    spec.loader.exec_module(module)
    return module


def test_questions_cover_each_source_and_halves_are_seeded(bench) -> None:
    questions, seed = bench.load_questions()
    by_source = {s: [q for q in questions if q["source"] == s] for s in bench.SOURCES}
    assert len(questions) >= 200
    assert len(by_source["code"]) >= 120 and len(by_source["session"]) >= 50 and len(by_source["browser"]) >= 30
    for rows in by_source.values():
        dev = sum(q["split"] == "dev" for q in rows)
        assert dev - (len(rows) - dev) in (0, 1)
    assert all(q["expected"] and q["q"].strip() for q in questions)


def test_a_question_moved_between_halves_is_refused(bench, tmp_path: Path) -> None:
    doc = json.loads((bench.EVAL / "questions.json").read_text(encoding="utf-8"))
    doc["questions"][0]["split"] = "heldout" if doc["questions"][0]["split"] == "dev" else "dev"
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SystemExit, match="differs from split_seed"):
        bench.load_questions(path)


def test_session_files_are_the_written_ones(bench) -> None:
    """Every session the writer describes is on disk and is found by the questions."""
    spec = importlib.util.spec_from_file_location("write_sessions", bench.EVAL / "write_sessions.py")
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    on_disk = {p.stem for p in (bench.EVAL / "claude-projects").rglob("*.jsonl")}
    assert on_disk == {s["sid"] for s in writer.SESSIONS}
    asked = {ref.split(":", 1)[1] for q in bench.load_questions()[0] for ref in q["expected"]
             if ref.startswith("claude:")}
    assert on_disk <= asked


def test_scores(bench) -> None:
    module = bench
    s = module.score(["x", "a", "y", "b"], {"a", "b"})
    assert s["recall@5"] == 1.0 and s["mrr"] == 0.5
    assert 0 < s["ndcg@10"] < 1
    assert module.score(["a", "b"], {"a", "b"})["ndcg@10"] == pytest.approx(1.0)
    assert module.score(["x"], {"a"}) == {"recall@5": 0.0, "mrr": 0.0, "ndcg@10": 0.0}


def test_fusions_rank_what_they_say() -> None:
    """Default fusion is plain RRF over chunks; item fusion ranks items by their best chunk, and
    ``extra`` lets an item's further chunks add to its score."""
    from brain.core.search import DEFAULT_FUSION, Fusion, fuse_chunks, fuse_items

    ranked = {"bm25": [(1, 9.0), (2, 8.0), (3, 7.0)], "vector": [(3, 0.9), (4, 0.8)]}
    plain = fuse_chunks(ranked, DEFAULT_FUSION)
    assert plain[3] == pytest.approx(1 / 63 + 1 / 61)
    assert max(plain, key=plain.get) == 3
    owner = {1: "a", 2: "a", 3: "b", 4: "c"}
    items = fuse_items(ranked, owner, Fusion(by_item=True))
    assert set(items) == {1, 3, 4}  # one chunk per item: its best
    assert items[1] == pytest.approx(1 / 61) and items[3] == pytest.approx(1 / 62 + 1 / 61)
    more = fuse_items(ranked, owner, Fusion(by_item=True, extra=1.0))
    assert more[1] == pytest.approx(1 / 61 + 1 / 62)
    weighted = fuse_chunks(ranked, Fusion(weights=(("bm25", 1.0), ("vector", 2.0))))
    assert weighted[4] == pytest.approx(2 / 62)
