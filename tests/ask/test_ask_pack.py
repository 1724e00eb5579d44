"""Packing retrieved chunks into the prompt: budget, numbering, grouping, cutting."""

from __future__ import annotations

import pytest

from brain.core.search import Hit
from brain.rag.ask import (
    MIN_SOURCE_TOKENS,
    SYSTEM_PROMPT,
    build_messages,
    estimate_tokens,
    pack,
    source_budget,
)

CPT = 3.0


def hit(item: str, seq: int = 0, text: str = "x" * 300, title: str | None = None, source: str = "note") -> Hit:
    return Hit(chunk_id=hash((item, seq)) & 0xFFFF, item_id=item, source=source, title=title or f"title {item}",
               uri=f"note://{item}", project=None, created_at="2026-11-01T00:00:00.000Z",
               updated_at="2026-11-02T00:00:00.000Z", meta={}, seq=seq, text=text, snippet=f"snip {item}",
               start_line=seq * 10 + 1, end_line=seq * 10 + 10, score=1.0)


def test_items_are_numbered_in_rank_order_and_chunks_grouped() -> None:
    hits = [hit("note:a", 0), hit("note:b", 0), hit("note:a", 2), hit("note:c", 0)]
    packed = pack(hits, budget=10_000, max_sources=5, chunks_per_source=3, chars_per_token=CPT)
    assert [(c["n"], c["id"]) for c in packed.citations] == [(1, "note:a"), (2, "note:b"), (3, "note:c")]
    assert packed.chunks == 4
    assert packed.citations[0] == {"n": 1, "id": "note:a", "title": "title note:a", "uri": "note://note:a",
                                   "source": "note", "snippet": "snip note:a"}
    context = packed.context
    assert context.index("[1] title note:a") < context.index("[2] title note:b") < context.index("[3] title note:c")
    assert context.count("[1] ") == 1  # two chunks of note:a under one number


def test_chunks_of_one_item_are_in_document_order() -> None:
    hits = [hit("note:a", 5, text="later part"), hit("note:a", 1, text="earlier part")]
    packed = pack(hits, budget=10_000, max_sources=5, chunks_per_source=3, chars_per_token=CPT)
    assert packed.context.index("earlier part") < packed.context.index("later part")


def test_max_sources_and_chunks_per_source_are_respected() -> None:
    hits = [hit(f"note:{i}", s) for i in range(6) for s in range(4)]
    packed = pack(hits, budget=100_000, max_sources=3, chunks_per_source=2, chars_per_token=CPT)
    assert [c["id"] for c in packed.citations] == ["note:0", "note:1", "note:2"]
    assert all(len(s.parts) == 2 for s in packed.sources)


@pytest.mark.parametrize("budget", [150, 400, 1000, 3000])
def test_packed_sources_stay_within_the_budget(budget: int) -> None:
    hits = [hit(f"note:{i}", text=f"word{i} " * 90) for i in range(12)]
    packed = pack(hits, budget=budget, max_sources=12, chunks_per_source=3, chars_per_token=CPT)
    assert packed.used <= budget
    assert estimate_tokens(packed.context, CPT) <= budget + len(packed.sources)  # estimate rounding per part
    assert packed.sources, "something always fits a budget above MIN_SOURCE_TOKENS"


def test_a_chunk_too_big_is_cut_at_a_word_boundary() -> None:
    big = " ".join(f"w{i}" for i in range(2000))
    packed = pack([hit("note:big", text=big)], budget=200, max_sources=5, chunks_per_source=3, chars_per_token=CPT)
    text = packed.sources[0].parts[0][1]
    assert text.endswith(" …") and len(text) < len(big)
    assert text[:-2].split()[-1].startswith("w")  # no half word before the ellipsis
    assert packed.used <= 200


def test_room_below_the_minimum_is_not_filled_with_a_scrap() -> None:
    hits = [hit("note:a", text="a" * 540), hit("note:b", text="b" * 3000), hit("note:c", text="c" * 30)]
    budget = estimate_tokens("a" * 540, CPT) + 40 + MIN_SOURCE_TOKENS - 10
    packed = pack(hits, budget=budget, max_sources=5, chunks_per_source=3, chars_per_token=CPT)
    ids = [c["id"] for c in packed.citations]
    assert "note:b" not in ids  # would only fit as a scrap
    assert ids == ["note:a", "note:c"]  # a small later chunk still fits
    assert [c["n"] for c in packed.citations] == [1, 2]  # numbers have no gaps


def test_file_chunks_show_their_lines() -> None:
    packed = pack([hit("file:h:/x.py", 1, text="def f(): pass", source="file")], budget=1000, max_sources=5,
                  chunks_per_source=3, chars_per_token=CPT)
    assert "(lines 11-20)" in packed.context


def test_budget_reserves_answer_and_instructions() -> None:
    question = "how did I configure WAL?"
    budget = source_budget(question, context_tokens=4096, answer_tokens=1024, chars_per_token=CPT)
    fixed = estimate_tokens(SYSTEM_PROMPT + question, CPT)
    assert 4096 - 1024 - fixed - 100 < budget < 4096 - 1024 - fixed
    longer = source_budget(question * 20, context_tokens=4096, answer_tokens=1024, chars_per_token=CPT)
    assert longer < budget


def test_messages_carry_instructions_sources_and_question() -> None:
    packed = pack([hit("note:a", text="PRAGMA journal_mode=WAL")], budget=1000, max_sources=5,
                  chunks_per_source=3, chars_per_token=CPT)
    messages = build_messages(packed, "which journal mode?")
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "[n]" not in SYSTEM_PROMPT and "[1]" in SYSTEM_PROMPT
    user = messages[1]["content"]
    assert "[1] title note:a" in user and "PRAGMA journal_mode=WAL" in user
    assert user.endswith("Question: which journal mode?")
