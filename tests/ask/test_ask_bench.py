"""bench/retrieval.py: the fixture corpus is consistent and the metrics are computed correctly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from brain.core import store

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_retrieval", BENCH / "retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_items_are_valid_and_questions_point_at_them(bench) -> None:
    items, questions = bench.load_corpus(BENCH / "corpus")
    assert len({it["id"] for it in items}) == len(items) >= 50
    for i, it in enumerate(items):
        store.validate_item(it, i, 2 * 1024 * 1024)
    assert len(questions) >= 40
    assert {it["source"] for it in items} == set(store.SOURCES)


def test_unknown_expected_id_is_refused(bench, tmp_path) -> None:
    (tmp_path / "items.json").write_text('{"items": [{"id": "note:a", "source": "note", "content": "x"}]}')
    (tmp_path / "questions.json").write_text('{"questions": [{"q": "x", "expected": ["note:b"]}]}')
    with pytest.raises(SystemExit, match="note:b"):
        bench.load_corpus(tmp_path)


class RankedSearcher:
    """Returns fixed rankings per question, to check the arithmetic of recall@k and MRR."""

    def __init__(self, rankings: dict[str, list[str]]):
        self.rankings = rankings

    def search(self, conn, q, k, mode, per_item):
        return [SimpleNamespace(item_id=i) for i in self.rankings[q][:k]]


def test_recall_and_mrr_arithmetic(bench) -> None:
    questions = [{"q": "a", "expected": ["x"]},             # rank 1
                 {"q": "b", "expected": ["x", "y"]},        # y at rank 2, x at rank 7 (outside top 5)
                 {"q": "c", "expected": ["z"]}]             # absent
    searcher = RankedSearcher({"a": ["x", "p"], "b": ["p", "y", "q", "r", "s", "t", "x"], "c": ["p", "q"]})
    result = bench.evaluate(searcher, None, questions, "hybrid", k=5, depth=10)
    assert result["recall@5"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert [m["q"] for m in result["misses"]] == ["c"]
