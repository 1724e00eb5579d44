"""Counted nouns: "1 item", "0 items", "2 batches"."""

from __future__ import annotations

import pytest

from brain.shared.words import counted


@pytest.mark.parametrize(("n", "noun", "plural", "expected"), [
    (1, "item", None, "1 item"), (0, "item", None, "0 items"), (2, "item", None, "2 items"),
    (1, "batch", "batches", "1 batch"), (3, "batch", "batches", "3 batches"),
    (1, "memory", "memories", "1 memory"), (-1, "item", None, "-1 items"),
])
def test_counted(n, noun, plural, expected) -> None:
    assert counted(n, noun, plural) == expected
