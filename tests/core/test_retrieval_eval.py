"""The retrieval evaluation's data stays honest: splits are the seeded ones, every question is well formed,
and the scoring functions compute what their names say."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("retrieval_eval", REPO / "bench" / "retrieval_eval.py")
    assert spec is not None and spec.loader is not None
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
    assert spec is not None and spec.loader is not None
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
    assert max(plain, key=lambda c: plain[c]) == 3
    owner = {1: "a", 2: "a", 3: "b", 4: "c"}
    items = fuse_items(ranked, owner, Fusion(by_item=True))
    assert set(items) == {1, 3, 4}  # one chunk per item: its best
    assert items[1] == pytest.approx(1 / 61) and items[3] == pytest.approx(1 / 62 + 1 / 61)
    more = fuse_items(ranked, owner, Fusion(by_item=True, extra=1.0))
    assert more[1] == pytest.approx(1 / 61 + 1 / 62)
    weighted = fuse_chunks(ranked, Fusion(weights=(("bm25", 1.0), ("vector", 2.0))))
    assert weighted[4] == pytest.approx(2 / 62)


def _hit(item_id: str, text: str):
    from brain.core.search import Hit

    return Hit(chunk_id=0, item_id=item_id, source="file", title=f"pkg/{item_id}.py", uri=None, project=None,
               created_at="", updated_at="", meta={}, seq=0, text=text, snippet=text, start_line=None,
               end_line=None, score=0.0)


class _Judge:
    """A stand-in for an OpenAI-compatible ``POST /v1/chat/completions`` that answers one token:
    "Yes" when the passage holds ``RELEVANT``, else "No", with ``top_logprobs`` in OpenAI's shape
    (what llama-cpp-python's server returns), or without any when ``logprobs`` is False (a server
    that ignores the field)."""

    def __init__(self, logprobs: bool = True):
        from tests.standins.http import JsonHandler, LoopbackHTTPServer

        self.logprobs = logprobs
        self.requests: list[tuple[str, dict[str, Any]]] = []
        judge = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.read_json()
                judge.requests.append((self.path, body))
                yes = "RELEVANT" in body["messages"][-1]["content"]
                word = "Yes" if yes else "No"
                choice = {"index": 0, "message": {"role": "assistant", "content": word}, "finish_reason": "length"}
                if judge.logprobs:
                    top = [{"token": word, "logprob": -0.1}, {"token": " yes" if not yes else "no", "logprob": -2.5},
                           {"token": "The", "logprob": -3.0}]
                    choice["logprobs"] = {"content": [{"token": word, "logprob": -0.1, "top_logprobs": top}]}
                self.send_json(200, {"object": "chat.completion", "choices": [choice]})

        self.http = LoopbackHTTPServer(Handler).start()

    @property
    def base_url(self) -> str:
        return self.http.base_url + "/v1"


def test_yes_probability_reads_logprobs_then_text(bench) -> None:
    lp = {"content": [{"token": "No", "logprob": math.log(0.5), "top_logprobs": [
        {"token": "No", "logprob": math.log(0.5)}, {"token": "Yes", "logprob": math.log(0.2)},
        {"token": " yes", "logprob": math.log(0.1)}, {"token": "The", "logprob": math.log(0.1)}]}]}
    assert bench.yes_probability({"logprobs": lp}) == (pytest.approx(0.3 / 0.8), "logprobs")
    assert bench.yes_probability({"message": {"content": " Yes."}}) == (1.0, "text")
    assert bench.yes_probability({"message": {"content": "no"}, "logprobs": None}) == (0.0, "text")
    neither = {"content": [{"token": "The", "logprob": -0.1, "top_logprobs": [{"token": "The", "logprob": -0.1}]}]}
    assert bench.yes_probability({"message": {"content": "The"}, "logprobs": neither}) == (0.5, "unclear")


@pytest.mark.parametrize("logprobs", [True, False])
def test_llm_reranker_orders_by_the_servers_judgment(bench, logprobs: bool) -> None:
    judge = _Judge(logprobs)
    try:
        rr = bench.LLMReranker(judge.base_url, "standin", top=3)
        hits = [_hit("a", "nothing here"), _hit("b", "also nothing"), _hit("c", "RELEVANT code"), _hit("d", "RELEVANT")]
        assert [h.item_id for h in rr.order("where?", hits)] == ["c", "a", "b", "d"]  # d is below top: not judged
        # RRF of hybrid ranks 1,2,3 and LLM ranks 2,3,1: a = 1/61 + 1/62 > c = 1/63 + 1/61 > b
        assert [h.item_id for h in rr.order("where?", hits, fused=True)] == ["a", "c", "b", "d"]
        assert len(judge.requests) == 3  # the second order reused the judgments
        path, body = judge.requests[0]
        assert path == "/v1/chat/completions"
        assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["model"] == "standin"
        assert body["logprobs"] is True and body["top_logprobs"] == 10
        assert body["messages"][-1]["content"].startswith("Question: where?")  # the prefix candidates share
        assert rr.how == ({"logprobs": 3} if logprobs else {"text": 3})
        assert set(rr.spent_ms) == {"where?"}
    finally:
        judge.http.stop()


def test_sample_is_fixed_and_per_half(bench) -> None:
    questions, _ = bench.load_questions()
    first = bench.sample_questions(questions, 5)
    assert first == bench.sample_questions(list(reversed(questions)), 5)
    assert sum(q["split"] == "dev" for q in first) == 5 and sum(q["split"] == "heldout" for q in first) == 5


def test_llm_modes_need_a_url(bench) -> None:
    with pytest.raises(SystemExit, match="need --llm-url"):
        bench.main(["--modes", "hybrid,hybrid+llm"])
